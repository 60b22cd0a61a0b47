-- Fine cube of the multi-select items: per month, area, service, instrument, item and option
-- the respondents who chose the option, and (option_code = '*') the respondents who chose at
-- least one option of the item, the denominator of the shares.
-- Registered inputs: answers, response_dims, dims (see cube_items.sql).
-- Placeholders: {from}, {to} (YYYY-MM).
WITH chosen AS (
  SELECT rd.dim_id, a.item_code, a.option_code, a.response_key
  FROM answers a
  JOIN response_dims rd ON a.response_key = rd.response_key
  WHERE a.option_code IS NOT NULL AND a.status = 'answered'
    AND a.period >= '{from}' AND a.period <= '{to}'
),
c AS (
  SELECT dim_id, item_code, option_code, count(*) AS n_selected
  FROM chosen GROUP BY dim_id, item_code, option_code
  UNION ALL
  SELECT dim_id, item_code, '*', count(DISTINCT response_key)
  FROM chosen GROUP BY dim_id, item_code
)
SELECT d.month, d.county, d.cooperation_area, d.municipality, d.local_area, d.service,
       d.instrument, c.item_code, c.option_code, c.n_selected
FROM c JOIN dims d ON d.dim_id = c.dim_id
