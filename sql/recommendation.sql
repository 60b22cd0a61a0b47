-- recommendation: the 0–10 "would you recommend" item per period, area, service and instrument.
-- NPS = 100 × (promoters 9–10 − detractors 0–6) / answers, on −100…100, with a 95 % interval
-- from the variance of the promoter (+1) / passive (0) / detractor (−1) score. The mean of the
-- 0–10 answers is a different figure and is published as mean_recommend, never as NPS.
-- Comparison with the rest of the country (nation minus the cell): NPS by a two-sided z-test
-- on the difference of two independent NPS estimates, the mean by Welch's test (normal
-- approximation); significant = |z| > {z}.
-- Input `cells`: rollup.sql's sums of cube_recommendation.sql with `suppression`, and the
-- case-mix adjustment's terms of the two outcomes (as in item_scores.sql): cm_nps_term,
-- cm_nps_term_rest, cm_nps_var for the promoter/passive/detractor score (+1/0/−1: NPS units
-- are 100 × score), cm_mean_term, cm_mean_term_rest, cm_mean_var for the 0–10 value.
-- Placeholders: {reliable_n}, {z}.
WITH f AS (
  SELECT c.*,
         CAST(n_answered AS DOUBLE) AS na,
         CAST(n_promoters AS DOUBLE) AS pro,
         CAST(n_detractors AS DOUBLE) AS det,
         CAST(value_sum AS DOUBLE) AS s,
         CAST(value_sumsq AS DOUBLE) AS ss
  FROM cells c
),
nat AS (
  SELECT period_type, period, service, instrument,
         na AS nna, pro AS npro, det AS ndet, s AS ns, ss AS nss, suppression AS nsup
  FROM f WHERE geo_level = 'nation'
),
j AS (
  SELECT f.*, nat.nna, nat.npro, nat.ndet, nat.ns, nat.nss, nat.nsup,
         100 * (f.pro - f.det) / f.na AS nps,
         f.s / f.na AS m,
         100 * (nat.npro - nat.ndet) / nat.nna AS nnps,
         nat.ns / nat.nna AS nm,
         nat.nna - f.na AS rna,
         nat.npro - f.pro AS rpro,
         nat.ndet - f.det AS rdet,
         nat.ns - f.s AS rs,
         nat.nss - f.ss AS rss
  FROM f LEFT JOIN nat
    ON f.period_type = nat.period_type AND f.period = nat.period AND f.service = nat.service
   AND f.instrument = nat.instrument
),
v AS (
  SELECT j.*,
         -- variance of one answer's score (+1 / 0 / −1), in NPS units squared
         10000 * ((pro + det) / na - ((pro - det) / na) * ((pro - det) / na)) AS var1,
         CASE WHEN rna > 0 THEN
           10000 * ((rpro + rdet) / rna - ((rpro - rdet) / rna) * ((rpro - rdet) / rna))
         END AS var2,
         (suppression IS NULL AND nsup IS NULL AND na >= {reliable_n} AND cm_nps_term IS NOT NULL) AS adj_nps,
         (suppression IS NULL AND nsup IS NULL AND na >= {reliable_n} AND cm_mean_term IS NOT NULL) AS adj_mean,
         CASE WHEN na > 1 AND rna > 1 THEN
           (ss - s * s / na) / (na - 1) / na + (rss - rs * rs / rna) / (rna - 1) / rna
         END AS mean_var
  FROM j
)
SELECT period, period_start, period_end, geo_level, geo_parent, geo_code, service, instrument,
       CASE WHEN suppression IS NULL THEN n_answered END AS n_answered,
       CASE WHEN suppression IS NULL THEN n_promoters END AS n_promoters,
       CASE WHEN suppression IS NULL THEN n_passives END AS n_passives,
       CASE WHEN suppression IS NULL THEN n_detractors END AS n_detractors,
       CASE WHEN suppression IS NULL THEN nps END AS nps,
       CASE WHEN suppression IS NULL THEN greatest(-100.0, nps - {z} * sqrt(var1 / na)) END AS nps_ci_low,
       CASE WHEN suppression IS NULL THEN least(100.0, nps + {z} * sqrt(var1 / na)) END AS nps_ci_high,
       CASE WHEN suppression IS NULL THEN m END AS mean_recommend,
       CASE WHEN nsup IS NULL THEN nnps END AS national_nps,
       CASE WHEN nsup IS NULL THEN nm END AS national_mean_recommend,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' THEN nps - nnps END AS nps_diff,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' THEN m - nm END AS mean_recommend_diff,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' AND rna > 0 THEN
         CASE WHEN var1 / na + var2 / rna > 0 THEN
           abs(nps - 100 * (rpro - rdet) / rna) / sqrt(var1 / na + var2 / rna) > {z}
         ELSE nps <> 100 * (rpro - rdet) / rna END
       END AS nps_diff_significant,
       CASE WHEN suppression IS NULL AND nsup IS NULL AND geo_level <> 'nation' AND na > 1 AND rna > 1 THEN
         CASE WHEN (ss - s * s / na) / (na - 1) / na + (rss - rs * rs / rna) / (rna - 1) / rna > 0 THEN
           abs(m - rs / rna) / sqrt((ss - s * s / na) / (na - 1) / na + (rss - rs * rs / rna) / (rna - 1) / rna) > {z}
         ELSE m <> rs / rna END
       END AS mean_recommend_diff_significant,
       CASE WHEN suppression IS NULL THEN n_answered < {reliable_n} END AS low_reliability,
       suppression,
       CASE WHEN adj_nps THEN nps - 100 * cm_nps_term END AS nps_adjusted,
       CASE WHEN adj_nps AND geo_level <> 'nation' THEN nps - 100 * cm_nps_term - nnps END AS nps_adjusted_diff,
       CASE WHEN adj_nps AND geo_level <> 'nation' AND cm_nps_term_rest IS NOT NULL AND rna > 0 THEN
         CASE WHEN var1 / na + var2 / rna + 10000 * coalesce(cm_nps_var, 0) > 0 THEN
           abs(nps - 100 * (rpro - rdet) / rna - 100 * cm_nps_term_rest)
             / sqrt(var1 / na + var2 / rna + 10000 * coalesce(cm_nps_var, 0)) > {z}
         ELSE nps - 100 * (rpro - rdet) / rna - 100 * cm_nps_term_rest <> 0 END
       END AS nps_adjusted_diff_significant,
       CASE WHEN adj_mean THEN m - cm_mean_term END AS mean_recommend_adjusted,
       CASE WHEN adj_mean AND geo_level <> 'nation' THEN m - cm_mean_term - nm END AS mean_recommend_adjusted_diff,
       CASE WHEN adj_mean AND geo_level <> 'nation' AND cm_mean_term_rest IS NOT NULL AND mean_var IS NOT NULL THEN
         CASE WHEN mean_var + coalesce(cm_mean_var, 0) > 0 THEN
           abs(m - rs / rna - cm_mean_term_rest) / sqrt(mean_var + coalesce(cm_mean_var, 0)) > {z}
         ELSE m - rs / rna - cm_mean_term_rest <> 0 END
       END AS mean_recommend_adjusted_diff_significant,
       period_type, year
FROM v
