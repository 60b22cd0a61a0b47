-- Fine cube of the multi-select items: per month, area, service, instrument, item and option
-- the respondents who chose the option, and (option_code = '*') the respondents who chose at
-- least one option of the item, the denominator of the shares.
-- Registered inputs: answers, responses. Placeholders: {from}, {to} (YYYY-MM).
WITH chosen AS (
  SELECT r.period AS month,
         r.county AS county,
         coalesce(r.cooperation_area, 'unknown') AS cooperation_area,
         coalesce(r.municipality, 'unknown') AS municipality,
         coalesce(r.local_area, 'unknown') AS local_area,
         coalesce(r.service, 'unknown') AS service,
         r.instrument AS instrument,
         a.item_code AS item_code,
         a.option_code AS option_code,
         a.response_key AS response_key
  FROM answers a
  JOIN responses r
    ON a.response_key = r.response_key AND a.period = r.period AND a.county = r.county
  WHERE a.option_code IS NOT NULL AND a.status = 'answered'
    AND a.period >= '{from}' AND a.period <= '{to}'
    AND r.period >= '{from}' AND r.period <= '{to}'
)
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       item_code, option_code, count(*) AS n_selected
FROM chosen GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
UNION ALL
SELECT month, county, cooperation_area, municipality, local_area, service, instrument,
       item_code, '*', count(DISTINCT response_key)
FROM chosen GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
