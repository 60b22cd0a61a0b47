-- Sums a fine cube (registered as `cube`: month, county, cooperation_area, municipality,
-- local_area, service, the mart's keys and additive measures) to every period type in `periods`
-- (month → period_type, period, period_start, period_end, year), every geography level and
-- each service as well as all services together.
-- Placeholders: {keys} (the mart's key columns), {measures} (its measure columns) and {sums}
-- (sum(m) AS m for each measure).
-- A geography cell is keyed by (geo_level, geo_parent, geo_code): municipalities sit in their
-- county of the response's classification year, counties in their cooperation area; an unknown
-- municipality of county X is the cell (municipality, X, 'unknown'), so that every level
-- partitions the one above it exactly.
WITH base AS (
  SELECT p.period_type, p.period, p.period_start, p.period_end, p.year, c.*
  FROM cube c JOIN periods p ON p.month = c.month
),
geo AS (
  SELECT period_type, period, period_start, period_end, year,
         'municipality' AS geo_level, county AS geo_parent, municipality AS geo_code,
         service, {keys}, {measures}
  FROM base
  UNION ALL
  SELECT period_type, period, period_start, period_end, year,
         'county', cooperation_area, county, service, {keys}, {measures}
  FROM base
  UNION ALL
  SELECT period_type, period, period_start, period_end, year,
         'cooperation_area', 'FI', cooperation_area, service, {keys}, {measures}
  FROM base
  UNION ALL
  SELECT period_type, period, period_start, period_end, year,
         'local_area', 'FI', local_area, service, {keys}, {measures}
  FROM base
  UNION ALL
  SELECT period_type, period, period_start, period_end, year,
         'nation', CAST(NULL AS VARCHAR), 'FI', service, {keys}, {measures}
  FROM base
),
services AS (
  SELECT * FROM geo
  UNION ALL
  SELECT period_type, period, period_start, period_end, year,
         geo_level, geo_parent, geo_code, 'all', {keys}, {measures}
  FROM geo
)
SELECT period_type, period, period_start, period_end, year,
       geo_level, geo_parent, geo_code, service, {keys}, {sums}
FROM services
WHERE geo_level IN ({levels})
GROUP BY period_type, period, period_start, period_end, year,
         geo_level, geo_parent, geo_code, service, {keys}
