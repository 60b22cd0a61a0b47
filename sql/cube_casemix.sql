-- Fine cube of the case-mix models' pool (src/marts/casemix): per month, county, instrument,
-- outcome and combination of adjuster levels (channel, respondent role, age group, language;
-- 'unknown' for a missing value), the respondents in the outcome's denominator (n; n_cant_say
-- those who answered "can't say", counted as 0 when the FFT convention puts them in the
-- denominator), the sum of the outcome (y_sum) and of its square (y_sumsq).
-- Outcomes: each closed 1–5 item of item_scores (y = 1 for an agreeing answer: the scale's top
-- box from ordinal_items, 4–5 for a region's own items); recommendation's nps_score (+1
-- promoter 9–10, 0 passive, −1 detractor 0–6) and recommend_value (the 0–10 answer).
-- Registered inputs: responses, answers (the warehouse), ordinal_items.
-- Placeholders: {from} and {to}, the first and last month (YYYY-MM).
WITH r AS (
  SELECT response_key, period AS month, county, instrument,
         coalesce(channel, 'unknown') AS channel,
         coalesce(respondent_role, 'unknown') AS respondent_role,
         coalesce(age_group, 'unknown') AS age_group,
         coalesce(language, 'unknown') AS language,
         CAST(nps AS BIGINT) AS nps
  FROM responses
  WHERE period >= '{from}' AND period <= '{to}'
),
items AS (
  SELECT r.month, r.county, r.instrument, a.item_code,
         r.channel, r.respondent_role, r.age_group, r.language,
         sum(CASE WHEN a.status = 'answered' THEN 1 ELSE 0 END) AS n,
         sum(CASE WHEN a.status = 'cant_say' THEN 1 ELSE 0 END) AS n_cant_say,
         sum(CASE WHEN a.status = 'answered' AND a.value >= coalesce(i.top_low, 4) AND a.value <= 5
                  THEN 1 ELSE 0 END) AS agree
  FROM answers a
  JOIN r ON a.response_key = r.response_key
  LEFT JOIN ordinal_items i ON i.instrument = r.instrument AND i.item_code = a.item_code
  WHERE a.option_code IS NULL AND a.status IN ('answered', 'cant_say')
    AND a.period >= '{from}' AND a.period <= '{to}'
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
)
SELECT month, county, instrument, 'item_scores' AS mart, item_code AS outcome,
       channel, respondent_role, age_group, language,
       CAST(n AS BIGINT) AS n, CAST(n_cant_say AS BIGINT) AS n_cant_say,
       CAST(agree AS BIGINT) AS y_sum, CAST(agree AS BIGINT) AS y_sumsq
FROM items
UNION ALL
SELECT month, county, instrument, 'recommendation', 'nps_score',
       channel, respondent_role, age_group, language,
       count(nps), CAST(0 AS BIGINT),
       sum(CASE WHEN nps >= 9 THEN 1 WHEN nps <= 6 THEN -1 ELSE 0 END),
       sum(CASE WHEN nps >= 9 OR nps <= 6 THEN 1 ELSE 0 END)
FROM r WHERE nps IS NOT NULL
GROUP BY 1, 2, 3, 6, 7, 8, 9
UNION ALL
SELECT month, county, instrument, 'recommendation', 'recommend_value',
       channel, respondent_role, age_group, language,
       count(nps), CAST(0 AS BIGINT), sum(nps), sum(nps * nps)
FROM r WHERE nps IS NOT NULL
GROUP BY 1, 2, 3, 6, 7, 8, 9
