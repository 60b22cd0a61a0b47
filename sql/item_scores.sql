-- item_scores: the figures of the closed 1–5 items per period, area, service, instrument and
-- item, compared with the nation.
-- Input `cells`: rollup.sql's sums of cube_items.sql with the disclosure decision
-- (`suppression`: NULL when published, else primary / secondary / cascade).
-- Placeholders: {cant_say_in_denominator} (true: "can't say" counts in the share's denominator,
-- the FFT convention; false: THL's, the default), {reliable_n}, {z} (1.959964: 95 %).
--
-- share_agree = n_agree / (n_answered [+ n_cant_say]), with a Wilson score interval.
-- The national comparison is against the rest of the country (nation minus the cell), so that
-- the two samples are independent: shares by a two-sided two-proportion z-test with the pooled
-- proportion, means by Welch's test with the normal approximation; "significant" = |z| > {z}
-- (α = 0.05). A suppressed cell publishes no count, share, mean, difference or test.
--
-- Case-mix adjustment (src/marts/casemix, docs/marts.md): `cells` also holds cm_term
-- (Σ β × (cell's adjuster shares − the nation's), from the period's model of the item),
-- cm_term_rest (the same against the rest of the country) and cm_var (the term's variance
-- from the coefficients' covariance), NULL where no adjusted figure may be published (the cell's
-- respondent mix not published in full, fewer than {reliable_n} answers, no model).
-- share_agree_adjusted = share_agree − cm_term; its difference from the nation and the
-- two-proportion test against the rest of the country with the term subtracted and its variance
-- added.
WITH f AS (
  SELECT c.*,
         CAST(n_answered + CASE WHEN {cant_say_in_denominator} THEN n_cant_say ELSE 0 END AS DOUBLE) AS d,
         CAST(n_answered AS DOUBLE) AS na,
         CAST(n_agree AS DOUBLE) AS agr,
         CAST(value_sum AS DOUBLE) AS s,
         CAST(value_sumsq AS DOUBLE) AS ss
  FROM cells c
),
nat AS (
  SELECT period_type, period, service, instrument, item_code,
         d AS nd, na AS nna, agr AS ntop, s AS ns, ss AS nss, suppression AS nsup
  FROM f WHERE geo_level = 'nation'
),
j AS (
  SELECT f.*, nat.nd, nat.nna, nat.ntop, nat.ns, nat.nss, nat.nsup,
         f.agr / nullif(f.d, 0) AS p,
         f.s / nullif(f.na, 0) AS m,
         nat.ntop / nullif(nat.nd, 0) AS np,
         nat.ns / nullif(nat.nna, 0) AS nm,
         nat.nd - f.d AS rd,
         nat.ntop - f.agr AS rtop,
         nat.nna - f.na AS rna,
         nat.ns - f.s AS rs,
         nat.nss - f.ss AS rss
  FROM f LEFT JOIN nat
    ON f.period_type = nat.period_type AND f.period = nat.period AND f.service = nat.service
   AND f.instrument = nat.instrument AND f.item_code = nat.item_code
),
t AS (
  SELECT j.*,
         CASE WHEN geo_level <> 'nation' AND d > 0 AND rd > 0 AND ntop > 0 AND ntop < nd THEN
           (p - rtop / rd) / sqrt((ntop / nd) * (1 - ntop / nd) * (1 / d + 1 / rd))
         END AS z_share,
         CASE WHEN geo_level <> 'nation' AND na > 1 AND rna > 1 THEN
           sqrt((ss - s * s / na) / (na - 1) / na + (rss - rs * rs / rna) / (rna - 1) / rna)
         END AS se_mean,
         (suppression IS NULL AND nsup IS NULL AND na >= {reliable_n} AND cm_term IS NOT NULL) AS adj,
         CASE WHEN d > 0 AND rd > 0 AND nd > 0 THEN
           (ntop / nd) * (1 - ntop / nd) * (1 / d + 1 / rd) + coalesce(cm_var, 0)
         END AS adj_var
  FROM j
)
SELECT period, period_start, period_end, geo_level, geo_parent, geo_code, service,
       instrument, item_code,
       CASE WHEN suppression IS NULL THEN n END AS n,
       CASE WHEN suppression IS NULL THEN n_answered END AS n_answered,
       CASE WHEN suppression IS NULL THEN n_cant_say END AS n_cant_say,
       CASE WHEN suppression IS NULL THEN n_not_applicable END AS n_not_applicable,
       CASE WHEN suppression IS NULL THEN n_value_1 END AS n_value_1,
       CASE WHEN suppression IS NULL THEN n_value_2 END AS n_value_2,
       CASE WHEN suppression IS NULL THEN n_value_3 END AS n_value_3,
       CASE WHEN suppression IS NULL THEN n_value_4 END AS n_value_4,
       CASE WHEN suppression IS NULL THEN n_value_5 END AS n_value_5,
       CASE WHEN suppression IS NULL THEN n_agree END AS n_agree,
       CASE WHEN suppression IS NULL THEN m END AS mean,
       CASE WHEN suppression IS NULL THEN p END AS share_agree,
       CASE WHEN suppression IS NULL AND d > 0 THEN
         (p + {z} * {z} / (2 * d) - {z} * sqrt(p * (1 - p) / d + {z} * {z} / (4 * d * d)))
           / (1 + {z} * {z} / d)
       END AS share_agree_ci_low,
       CASE WHEN suppression IS NULL AND d > 0 THEN
         (p + {z} * {z} / (2 * d) + {z} * sqrt(p * (1 - p) / d + {z} * {z} / (4 * d * d)))
           / (1 + {z} * {z} / d)
       END AS share_agree_ci_high,
       CASE WHEN nsup IS NULL THEN nm END AS national_mean,
       CASE WHEN nsup IS NULL THEN np END AS national_share_agree,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' THEN m - nm END AS mean_diff,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' THEN p - np END AS share_agree_diff,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND se_mean IS NOT NULL THEN
         CASE WHEN se_mean > 0 THEN abs(m - rs / rna) / se_mean > {z} ELSE m <> rs / rna END
       END AS mean_diff_significant,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' AND d > 0 AND rd > 0 THEN
         coalesce(abs(z_share) > {z}, false)
       END AS share_agree_diff_significant,
       CASE WHEN suppression IS NULL THEN n_answered < {reliable_n} END AS low_reliability,
       suppression,
       CASE WHEN adj THEN p - cm_term END AS share_agree_adjusted,
       CASE WHEN adj AND geo_level <> 'nation' THEN p - cm_term - np END AS share_agree_adjusted_diff,
       CASE WHEN adj AND geo_level <> 'nation' AND cm_term_rest IS NOT NULL AND adj_var IS NOT NULL THEN
         CASE WHEN adj_var > 0 THEN abs(p - rtop / rd - cm_term_rest) / sqrt(adj_var) > {z}
         ELSE p - rtop / rd - cm_term_rest <> 0 END
       END AS share_agree_adjusted_diff_significant,
       period_type, year
FROM t
