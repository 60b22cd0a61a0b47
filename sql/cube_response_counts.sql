-- Coverage of the collection: response_cube unpivoted to one breakdown at a time. The row
-- breakdown = 'total', category = 'all' is every response of the cell; each other breakdown's
-- categories (with 'unknown' for a missing value) partition it.
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       'total' AS breakdown, 'all' AS category, sum(n_responses) AS n_responses
FROM response_cube GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       'channel', channel, sum(n_responses)
FROM response_cube GROUP BY 1, 2, 3, 4, 5, 6, 7, 9
UNION ALL
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       'respondent_role', respondent_role, sum(n_responses)
FROM response_cube GROUP BY 1, 2, 3, 4, 5, 6, 7, 9
UNION ALL
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       'age_group', age_group, sum(n_responses)
FROM response_cube GROUP BY 1, 2, 3, 4, 5, 6, 7, 9
UNION ALL
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       'gender', gender, sum(n_responses)
FROM response_cube GROUP BY 1, 2, 3, 4, 5, 6, 7, 9
UNION ALL
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       'language', language, sum(n_responses)
FROM response_cube GROUP BY 1, 2, 3, 4, 5, 6, 7, 9
