-- Fine cube of the closed 1–5 items: additive counts per month, area, service, instrument and
-- item. `rollup.sql` sums it to every period type, geography level and service; item_scores.sql
-- turns the sums into figures after disclosure control.
-- Registered inputs: answers (the warehouse), response_dims (response_key → dim_id, from
-- response_dims.sql), dims (dim_id → month, county, cooperation_area, municipality, local_area,
-- service, instrument), ordinal_items (instrument, item_code, top_low: the lowest value of the
-- scale's top box, from schemas/; a region's own 1–5 items are not in schemas/ and take the agree
-- scale's top box, 4–5). The 0–10 item is not in answers; numbers of numeric scales (status
-- 'measured': sliders, counts) are no agreement and stay out.
-- Placeholders: {from} and {to}, the first and last month (YYYY-MM) recomputed.
WITH c AS (
  SELECT rd.dim_id, a.item_code,
         sum(CASE WHEN a.status IN ('answered', 'cant_say', 'not_applicable') THEN 1 ELSE 0 END) AS n,
         sum(CASE WHEN a.status = 'answered' THEN 1 ELSE 0 END) AS n_answered,
         sum(CASE WHEN a.status = 'cant_say' THEN 1 ELSE 0 END) AS n_cant_say,
         sum(CASE WHEN a.status = 'not_applicable' THEN 1 ELSE 0 END) AS n_not_applicable,
         sum(CASE WHEN a.value = 1 THEN 1 ELSE 0 END) AS n_value_1,
         sum(CASE WHEN a.value = 2 THEN 1 ELSE 0 END) AS n_value_2,
         sum(CASE WHEN a.value = 3 THEN 1 ELSE 0 END) AS n_value_3,
         sum(CASE WHEN a.value = 4 THEN 1 ELSE 0 END) AS n_value_4,
         sum(CASE WHEN a.value = 5 THEN 1 ELSE 0 END) AS n_value_5,
         sum(CAST(coalesce(a.value, 0) AS BIGINT)) AS value_sum,
         sum(CAST(coalesce(a.value, 0) AS BIGINT) * CAST(coalesce(a.value, 0) AS BIGINT)) AS value_sumsq
  FROM answers a
  JOIN response_dims rd ON a.response_key = rd.response_key
  WHERE a.option_code IS NULL AND a.status <> 'measured'
    AND a.period >= '{from}' AND a.period <= '{to}'
  GROUP BY rd.dim_id, a.item_code
)
SELECT d.month, d.county, d.cooperation_area, d.municipality, d.local_area, d.service,
       d.instrument, c.item_code,
       c.n, c.n_answered, c.n_cant_say, c.n_not_applicable,
       c.n_value_1, c.n_value_2, c.n_value_3, c.n_value_4, c.n_value_5,
       CASE WHEN coalesce(i.top_low, 4) <= 1 THEN c.n_value_1 ELSE 0 END
       + CASE WHEN coalesce(i.top_low, 4) <= 2 THEN c.n_value_2 ELSE 0 END
       + CASE WHEN coalesce(i.top_low, 4) <= 3 THEN c.n_value_3 ELSE 0 END
       + CASE WHEN coalesce(i.top_low, 4) <= 4 THEN c.n_value_4 ELSE 0 END
       + c.n_value_5 AS n_agree,
       c.value_sum, c.value_sumsq
FROM c
JOIN dims d ON d.dim_id = c.dim_id
LEFT JOIN ordinal_items i ON i.instrument = d.instrument AND i.item_code = c.item_code
