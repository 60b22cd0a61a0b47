-- The recommendation item's fine cube: response_cube without the respondent profile, only
-- cells where someone answered the 0–10 item.
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       sum(n_answered) AS n_answered,
       sum(n_promoters) AS n_promoters,
       sum(n_passives) AS n_passives,
       sum(n_detractors) AS n_detractors,
       sum(value_sum) AS value_sum,
       sum(value_sumsq) AS value_sumsq
FROM response_cube
GROUP BY 1, 2, 3, 4, 5, 6, 7
HAVING sum(n_answered) > 0
