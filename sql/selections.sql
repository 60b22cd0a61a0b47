-- selections: multi-select items, the share of respondents choosing each option among those
-- who chose at least one (option_code '*': chose any option, the denominator).
-- Input `cells`: rollup.sql's sums of cube_selections.sql with `suppression` (decided for the
-- item as a whole and shared by its options).
-- Placeholders: {reliable_n}.
WITH unit AS (
  SELECT period_type, period, geo_level, geo_parent, geo_code, service, instrument, item_code,
         n_selected AS answered
  FROM cells WHERE option_code = '*'
)
SELECT c.period, c.period_start, c.period_end, c.geo_level, c.geo_parent, c.geo_code, c.service,
       c.instrument, c.item_code, c.option_code,
       CASE WHEN c.suppression IS NULL THEN u.answered END AS n_answered,
       CASE WHEN c.suppression IS NULL THEN c.n_selected END AS n_selected,
       CASE WHEN c.suppression IS NULL THEN CAST(c.n_selected AS DOUBLE) / u.answered END AS share_selected,
       CASE WHEN c.suppression IS NULL THEN u.answered < {reliable_n} END AS low_reliability,
       c.suppression,
       c.period_type, c.year
FROM cells c JOIN unit u
  ON c.period_type = u.period_type AND c.period = u.period AND c.geo_level = u.geo_level
 AND (c.geo_parent IS NOT DISTINCT FROM u.geo_parent) AND c.geo_code = u.geo_code
 AND c.service = u.service AND c.instrument = u.instrument AND c.item_code = u.item_code
