-- Each response's cell of the fine cubes as a small integer: `dims` (registered: one row per
-- distinct month, county, cooperation area, municipality, local area, service and instrument of
-- response_cube, numbered dim_id) joined back to the responses. The answer cubes then group by
-- (dim_id, item) instead of seven strings per answer.
-- Placeholders: {from}, {to} (YYYY-MM).
SELECT r.response_key, d.dim_id
FROM responses r
JOIN dims d
  ON d.month = r.period AND d.county = r.county
 AND d.cooperation_area = coalesce(r.cooperation_area, 'unknown')
 AND d.municipality = coalesce(r.municipality, 'unknown')
 AND d.local_area = coalesce(r.local_area, 'unknown')
 AND d.service = coalesce(r.service, 'unknown')
 AND d.instrument = r.instrument
WHERE r.period >= '{from}' AND r.period <= '{to}'
