-- Fine cube of the responses: counts per month, area, service, instrument and respondent
-- profile, with the additive parts of the 0–10 recommendation item. recommendation and
-- response_counts are rolled up from it.
-- Registered inputs: responses. Placeholders: {from}, {to} (YYYY-MM).
SELECT period AS month,
       county,
       coalesce(cooperation_area, 'unknown') AS cooperation_area,
       coalesce(municipality, 'unknown') AS municipality,
       coalesce(local_area, 'unknown') AS local_area,
       coalesce(service, 'unknown') AS service,
       instrument,
       coalesce(channel, 'unknown') AS channel,
       coalesce(respondent_role, 'unknown') AS respondent_role,
       coalesce(age_group, 'unknown') AS age_group,
       coalesce(gender, 'unknown') AS gender,
       coalesce(language, 'unknown') AS language,
       count(*) AS n_responses,
       count(nps) AS n_answered,
       sum(CASE WHEN nps >= 9 THEN 1 ELSE 0 END) AS n_promoters,
       sum(CASE WHEN nps BETWEEN 7 AND 8 THEN 1 ELSE 0 END) AS n_passives,
       sum(CASE WHEN nps <= 6 THEN 1 ELSE 0 END) AS n_detractors,
       sum(CAST(coalesce(nps, 0) AS BIGINT)) AS value_sum,
       sum(CAST(coalesce(nps, 0) AS BIGINT) * CAST(coalesce(nps, 0) AS BIGINT)) AS value_sumsq
FROM responses
WHERE period >= '{from}' AND period <= '{to}'
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
