-- Fine cube of the closed 1–5 items: additive counts per month, area, service, instrument and
-- item. `rollup.sql` sums it to every period type, geography level and service; item_scores.sql
-- turns the sums into figures after disclosure control.
-- Registered inputs: answers, responses (the warehouse), ordinal_items (instrument, item_code,
-- top_low: the lowest value of the scale's top box, from schemas/).
-- Placeholders: {from} and {to}, the first and last month (YYYY-MM) recomputed.
SELECT r.period AS month,
       r.county AS county,
       coalesce(r.cooperation_area, 'unknown') AS cooperation_area,
       coalesce(r.municipality, 'unknown') AS municipality,
       coalesce(r.local_area, 'unknown') AS local_area,
       coalesce(r.service, 'unknown') AS service,
       r.instrument AS instrument,
       a.item_code AS item_code,
       sum(CASE WHEN a.status <> 'missing' THEN 1 ELSE 0 END) AS n,
       sum(CASE WHEN a.status = 'answered' THEN 1 ELSE 0 END) AS n_answered,
       sum(CASE WHEN a.status = 'cant_say' THEN 1 ELSE 0 END) AS n_cant_say,
       sum(CASE WHEN a.status = 'not_applicable' THEN 1 ELSE 0 END) AS n_not_applicable,
       sum(CASE WHEN a.value = 1 THEN 1 ELSE 0 END) AS n_value_1,
       sum(CASE WHEN a.value = 2 THEN 1 ELSE 0 END) AS n_value_2,
       sum(CASE WHEN a.value = 3 THEN 1 ELSE 0 END) AS n_value_3,
       sum(CASE WHEN a.value = 4 THEN 1 ELSE 0 END) AS n_value_4,
       sum(CASE WHEN a.value = 5 THEN 1 ELSE 0 END) AS n_value_5,
       sum(CASE WHEN a.value >= i.top_low THEN 1 ELSE 0 END) AS n_agree,
       sum(CAST(coalesce(a.value, 0) AS BIGINT)) AS value_sum,
       sum(CAST(coalesce(a.value, 0) AS BIGINT) * CAST(coalesce(a.value, 0) AS BIGINT)) AS value_sumsq
FROM answers a
JOIN responses r
  ON a.response_key = r.response_key AND a.period = r.period AND a.county = r.county
JOIN ordinal_items i
  ON i.instrument = r.instrument AND i.item_code = a.item_code
WHERE a.option_code IS NULL
  AND a.period >= '{from}' AND a.period <= '{to}'
  AND r.period >= '{from}' AND r.period <= '{to}'
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
