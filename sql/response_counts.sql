-- response_counts: coverage of the collection, responses per channel, respondent role, age
-- group, gender and language (one breakdown per row; breakdown 'total' is every response) per
-- period, area, service and instrument, with the share of the cell's total.
-- Input `cells`: rollup.sql's sums of cube_response_counts.sql with `suppression`.
-- Placeholders: {reliable_n}.
WITH tot AS (
  SELECT period_type, period, geo_level, geo_parent, geo_code, service, instrument,
         n_responses AS total, suppression AS tsup
  FROM cells WHERE breakdown = 'total'
)
SELECT c.period, c.period_start, c.period_end, c.geo_level, c.geo_parent, c.geo_code, c.service,
       c.instrument, c.breakdown, c.category,
       CASE WHEN c.suppression IS NULL THEN c.n_responses END AS n_responses,
       CASE WHEN c.suppression IS NULL AND t.tsup IS NULL THEN
         CAST(c.n_responses AS DOUBLE) / t.total
       END AS share,
       CASE WHEN c.suppression IS NULL THEN c.n_responses < {reliable_n} END AS low_reliability,
       c.suppression,
       c.period_type, c.year
FROM cells c JOIN tot t
  ON c.period_type = t.period_type AND c.period = t.period AND c.geo_level = t.geo_level
 AND (c.geo_parent IS NOT DISTINCT FROM t.geo_parent) AND c.geo_code = t.geo_code
 AND c.service = t.service AND c.instrument = t.instrument
