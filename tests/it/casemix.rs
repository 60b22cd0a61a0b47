//! Case-mix adjustment on generated data with a known answer, through `palaute run`,
//! `palaute aggregate` and `palaute sql`: four areas, two of them identical in service quality
//! but collecting mostly by SMS and mostly on paper, one truly better by a set margin, one with
//! more relatives answering; a fifth too small for an adjusted figure.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};

use crate::common::{Fixture, palaute};

/// The channel effect on the probability of agreeing (SMS right after a visit, against paper).
const SMS_EFFECT: f64 = 0.25;
/// The effect of a relative answering instead of the client.
const RELATIVE_EFFECT: f64 = -0.10;
/// How much better area C truly is.
const C_MARGIN: f64 = 0.10;

/// (municipality, base probability of agreeing, share answering by SMS, share of relatives,
/// respondents)
const AREAS: [(&str, f64, f64, f64, usize); 5] = [
    ("837", 0.45, 0.8, 0.2, 2500),            // A: mostly SMS
    ("205", 0.45, 0.15, 0.2, 2500),           // B: as good as A, mostly paper
    ("091", 0.45 + C_MARGIN, 0.5, 0.2, 2500), // C: better by C_MARGIN
    ("853", 0.45, 0.5, 0.4, 2500),            // D: more relatives
    ("231", 0.45, 0.5, 0.2, 12),              // E: too few for an adjusted figure
];

const MAPPING: &str = r#"mapping:
  instrument: thl_national
  version: 2
  response_id: id
  submitted_at: time
  municipality: kunta
  channel: kanava
  respondent_role: vastaaja
  language: {constant: fi}
  items:
    availability: q1
    recommend: nps
"#;

/// The export, and how many kiosk responses area A has (self-selected, all agreeing).
fn export() -> String {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let mut out = String::from("id,time,kunta,kanava,vastaaja,q1,nps\n");
    let mut id = 0;
    for (muni, base, sms, relatives, n) in AREAS {
        for i in 0..n {
            id += 1;
            let by_sms = rng.random::<f64>() < sms;
            let relative = rng.random::<f64>() < relatives;
            let p = base
                + if by_sms { SMS_EFFECT } else { 0.0 }
                + if relative { RELATIVE_EFFECT } else { 0.0 };
            let agree = rng.random::<f64>() < p;
            let q1 = if agree {
                rng.random_range(4..=5)
            } else {
                rng.random_range(1..=3)
            };
            // the recommendation: a promoter exactly when agreeing, else a detractor
            let nps = if agree { 9 } else { 5 };
            out.push_str(&format!(
                "R-{id:06},2025-{:02}-{:02}T10:00:00+02:00,{muni},{},{},{q1},{nps}\n",
                1 + i % 12,
                1 + i % 27,
                if by_sms { "sms" } else { "paper" },
                if relative { "relative" } else { "client" },
            ));
        }
    }
    // kiosk answers in area A: no sample, left out of the fit
    for i in 0..60 {
        id += 1;
        out.push_str(&format!(
            "R-{id:06},2025-{:02}-10T10:00:00+02:00,837,kiosk,client,5,10\n",
            1 + i % 12
        ));
    }
    out
}

fn f(row: &serde_json::Map<String, serde_json::Value>, k: &str) -> f64 {
    row[k]
        .as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number: {row:?}"))
}

/// The year's municipality rows of item_scores for availability, by municipality.
fn year_scores(fx: &Fixture) -> HashMap<String, serde_json::Map<String, serde_json::Value>> {
    fx.sql(
        "SELECT * FROM item_scores WHERE period_type = 'year' AND geo_level = 'municipality' \
         AND service = 'all' AND item_code = 'availability'",
    )
    .into_iter()
    .map(|r| (r["geo_code"].as_str().unwrap().to_string(), r))
    .collect()
}

fn loaded() -> Fixture {
    let fx = Fixture::new();
    fx.input("export.csv", export().as_bytes());
    let p = fx.pipeline("", MAPPING);
    let r = fx.run(&p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // the single-level adjusters are named in the aggregation's report
    assert!(
        r.stdout
            .contains("language dropped: a single level ('fi') in the pool"),
        "{}",
        r.stdout
    );
    fx
}

#[test]
fn channel_mix_is_adjusted_away_and_a_true_margin_kept() {
    let fx = loaded();
    let rows = year_scores(&fx);
    let (a, b, c, d, e) = (
        &rows["837"],
        &rows["205"],
        &rows["091"],
        &rows["853"],
        &rows["231"],
    );
    // A and B are equally good: raw figures differ by the channel mix, adjusted ones do not
    let raw_ab = f(a, "share_agree") - f(b, "share_agree");
    let adj_ab = f(a, "share_agree_adjusted") - f(b, "share_agree_adjusted");
    let expected_raw = SMS_EFFECT * (0.8 - 0.15);
    assert!(
        (raw_ab - expected_raw).abs() < 0.05,
        "raw A − B {raw_ab}, expected about {expected_raw}"
    );
    assert!(
        adj_ab.abs() < 0.04,
        "adjusted A − B {adj_ab}, expected about 0"
    );
    // C is better by C_MARGIN: the raw figures hide part of it (C has fewer SMS answers than
    // A), the adjusted ones show it
    let raw_ca = f(c, "share_agree") - f(a, "share_agree");
    let adj_ca = f(c, "share_agree_adjusted") - f(a, "share_agree_adjusted");
    assert!(raw_ca < C_MARGIN - 0.03, "raw C − A {raw_ca}");
    assert!(
        (adj_ca - C_MARGIN).abs() < 0.04,
        "adjusted C − A {adj_ca}, expected about {C_MARGIN}"
    );
    // D's relatives: adjusted D is as good as adjusted A and B
    let adj_db = f(d, "share_agree_adjusted") - f(b, "share_agree_adjusted");
    assert!(adj_db.abs() < 0.04, "adjusted D − B {adj_db}");
    // the adjusted difference from the nation is the adjusted figure less the national one
    for r in [a, b, c, d] {
        let diff = f(r, "share_agree_adjusted") - f(r, "national_share_agree");
        assert!(
            (f(r, "share_agree_adjusted_diff") - diff).abs() < 1e-12,
            "{r:?}"
        );
    }
    // A looks better than the nation only for its SMS answers: its raw difference is positive
    // and significant, its adjusted one negative (C, truly better, lifts the nation)
    assert_eq!(a["share_agree_diff_significant"], serde_json::json!(true));
    assert!(f(a, "share_agree_diff") > 0.03, "{a:?}");
    assert!(f(a, "share_agree_adjusted_diff") < 0.0, "{a:?}");
    assert!(a["share_agree_adjusted_diff_significant"].is_boolean());
    // E publishes raw figures but, below the reliability threshold, no adjusted ones
    assert!(
        f(e, "n_answered") < 30.0 && e["share_agree"].is_number(),
        "{e:?}"
    );
    for k in [
        "share_agree_adjusted",
        "share_agree_adjusted_diff",
        "share_agree_adjusted_diff_significant",
    ] {
        assert!(e[k].is_null(), "{k} of a cell under the threshold: {e:?}");
    }
    // recommendation: promoters exactly when agreeing, so the same holds for NPS
    let rec: HashMap<String, serde_json::Map<String, serde_json::Value>> = fx
        .sql(
            "SELECT * FROM recommendation WHERE period_type = 'year' \
             AND geo_level = 'municipality' AND service = 'all'",
        )
        .into_iter()
        .map(|r| (r["geo_code"].as_str().unwrap().to_string(), r))
        .collect();
    let nps_ab = f(&rec["837"], "nps_adjusted") - f(&rec["205"], "nps_adjusted");
    let raw_nps_ab = f(&rec["837"], "nps") - f(&rec["205"], "nps");
    assert!(raw_nps_ab > 20.0, "raw NPS A − B {raw_nps_ab}");
    assert!(nps_ab.abs() < 8.0, "adjusted NPS A − B {nps_ab}");
    let mean_ab =
        f(&rec["837"], "mean_recommend_adjusted") - f(&rec["205"], "mean_recommend_adjusted");
    assert!(mean_ab.abs() < 0.3, "adjusted mean A − B {mean_ab}");
    assert!(rec["231"]["nps_adjusted"].is_null());

    // the audit recomputes every adjusted figure from published numbers, and passes
    let r = palaute(&["audit-disclosure", "--warehouse", &fx.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let checked: u64 = r
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_suffix(" case-mix adjusted figures, each recomputed from published numbers")
        })
        .unwrap_or_else(|| panic!("{}", r.stdout))
        .parse()
        .unwrap();
    let published = fx.sql(
        "SELECT (SELECT count(share_agree_adjusted) FROM item_scores)          + (SELECT count(nps_adjusted) FROM recommendation)          + (SELECT count(mean_recommend_adjusted) FROM recommendation) AS n",
    );
    assert_eq!(Some(checked), published[0]["n"].as_u64(), "{}", r.stdout);

    // the report shows the adjusted figure beside the raw one, with its one-line explanation
    let page = fx.path("a.html");
    let r = palaute(
        &[
            "report",
            "--warehouse",
            &fx.warehouse(),
            "--area",
            "municipality:837",
            "--period-type",
            "year",
            "--period",
            "2025",
            "--language",
            "en",
            "--out",
            page.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    let adjusted = f(a, "share_agree_adjusted");
    assert!(
        html.contains(&format!(
            "data-field=\"share_agree_adjusted\" data-value=\"{adjusted}\""
        )),
        "{html}"
    );
    assert!(
        html.contains("Adjusted: the area's figure had its respondents"),
        "{html}"
    );
}

/// β of (outcome, adjuster, level) in the year's model, with its standard error.
fn coefficient(
    coefficients: &[serde_json::Map<String, serde_json::Value>],
    outcome: &str,
    adjuster: &str,
    level: &str,
) -> (f64, f64) {
    let r = coefficients
        .iter()
        .find(|r| r["outcome"] == outcome && r["adjuster"] == adjuster && r["level"] == level)
        .unwrap_or_else(|| panic!("no coefficient {outcome} {adjuster} {level}"));
    (f(r, "beta"), f(r, "se"))
}

#[test]
fn coefficients_are_recovered_published_and_check_by_hand() {
    let fx = loaded();
    let coefficients = fx.sql(
        "SELECT * FROM casemix_coefficients WHERE window_end = '2025-12' \
         AND instrument = 'thl_national'",
    );
    // the channel and role effects, each within its standard error (and precise)
    let (sms, sms_se) = coefficient(&coefficients, "availability", "channel", "sms");
    let ref_channel = coefficients
        .iter()
        .find(|r| r["adjuster"] == "channel" && r["estimate"] == "reference")
        .unwrap();
    assert_eq!(
        ref_channel["level"], "paper",
        "paper and SMS are both ~50 %"
    );
    assert!(
        (sms - SMS_EFFECT).abs() < 2.0 * sms_se && sms_se < 0.02,
        "sms {sms} ± {sms_se}"
    );
    let (rel, rel_se) = coefficient(&coefficients, "availability", "respondent_role", "relative");
    assert!(
        (rel - RELATIVE_EFFECT).abs() < 2.0 * rel_se && rel_se < 0.02,
        "relative {rel} ± {rel_se}"
    );
    // on the ±1 score behind NPS the effects double
    let (sms_score, se_score) = coefficient(&coefficients, "nps_score", "channel", "sms");
    assert!((sms_score - 2.0 * SMS_EFFECT).abs() < 2.0 * se_score);
    // an adjuster with one level in the pool is dropped with a note; kiosks are not in the pool
    let lang = coefficients
        .iter()
        .find(|r| r["outcome"] == "availability" && r["adjuster"] == "language")
        .unwrap();
    assert_eq!(lang["estimate"], "dropped");
    assert!(lang["beta"].is_null());
    assert!(
        lang["note"]
            .as_str()
            .unwrap()
            .contains("single level ('fi')"),
        "{lang:?}"
    );
    assert!(
        !coefficients.iter().any(|r| r["level"] == "kiosk"),
        "kiosk answers are no sample and stay out of the fit"
    );
    // the pool counts are rounded to tens, and no response id reaches the table
    for r in &coefficients {
        for k in ["n", "n_pool"] {
            if let Some(n) = r[k].as_i64() {
                assert_eq!(n % 10, 0, "{k} {r:?}");
            }
        }
    }
    let all = fx.sql_csv("SELECT * FROM casemix_coefficients");
    assert!(!all.contains("R-0"), "a response id in the coefficients");

    // anyone can check the arithmetic from published numbers: A's adjusted share is its raw
    // share less β × (A's share of SMS and relatives − the nation's), from response_counts
    let shares = |geo_level: &str, geo_code: &str| -> HashMap<String, f64> {
        let rows = fx.sql(&format!(
            "SELECT breakdown, category, n_responses FROM response_counts \
             WHERE period_type = 'year' AND geo_level = '{geo_level}' AND geo_code = '{geo_code}' \
             AND service = 'all' AND instrument = 'thl_national'"
        ));
        let total = rows
            .iter()
            .find(|r| r["breakdown"] == "total")
            .map(|r| f(r, "n_responses"))
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    format!(
                        "{}={}",
                        r["breakdown"].as_str().unwrap(),
                        r["category"].as_str().unwrap()
                    ),
                    f(r, "n_responses") / total,
                )
            })
            .collect()
    };
    let (mine, nation) = (shares("municipality", "837"), shares("nation", "FI"));
    let g = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let mut term = 0.0;
    for r in coefficients
        .iter()
        .filter(|r| r["outcome"] == "availability" && r["estimate"] == "estimated")
    {
        let k = format!(
            "{}={}",
            r["adjuster"].as_str().unwrap(),
            r["level"].as_str().unwrap()
        );
        term += f(r, "beta") * (g(&mine, &k) - g(&nation, &k));
    }
    let a = &year_scores(&fx)["837"];
    assert!(
        (f(a, "share_agree") - term - f(a, "share_agree_adjusted")).abs() < 1e-9,
        "{a:?} term {term}"
    );
    // with the kiosks in the fit, they have a coefficient of their own
    let r = palaute(
        &[
            "aggregate",
            "--warehouse",
            &fx.warehouse(),
            "--fit-exclude-channel",
            "none",
            "--marts",
            "item_scores",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stderr, r.stdout);
    let kiosk = fx.sql(
        "SELECT estimate FROM casemix_coefficients WHERE level = 'kiosk' \
         AND outcome = 'availability' AND window_end = '2025-12'",
    );
    assert_eq!(kiosk.len(), 1, "{kiosk:?}");
}

#[test]
fn no_adjustment_leaves_the_raw_figures_and_the_sql_cubes_give_the_same_adjustment() {
    let fx = loaded();
    let dump = |fx: &Fixture| {
        let mut s = crate::common::dump_marts(fx);
        s.push_str(&fx.sql_csv(
            "SELECT * FROM casemix_coefficients ORDER BY window_end, instrument, mart, outcome, \
             adjuster, level",
        ));
        s
    };
    let before = dump(&fx);
    // the reference path (SQL cubes) fits the same models and publishes the same figures
    let r = palaute(
        &["aggregate", "--warehouse", &fx.warehouse(), "--sql-cubes"],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stderr, r.stdout);
    assert_eq!(before, dump(&fx), "--sql-cubes differs");
    // without adjustment: the raw figures as they were, no adjusted figure, no coefficient
    let raw = fx.sql_csv(
        "SELECT period_type, period, geo_level, geo_code, service, item_code, share_agree \
         FROM item_scores ORDER BY 1, 2, 3, 4, 5, 6",
    );
    let r = palaute(
        &[
            "aggregate",
            "--warehouse",
            &fx.warehouse(),
            "--no-adjustment",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stderr, r.stdout);
    assert_eq!(
        raw,
        fx.sql_csv(
            "SELECT period_type, period, geo_level, geo_code, service, item_code, share_agree \
             FROM item_scores ORDER BY 1, 2, 3, 4, 5, 6",
        )
    );
    let left = fx.sql(
        "SELECT count(share_agree_adjusted) AS a, (SELECT count(*) FROM casemix_coefficients) AS c, \
         (SELECT count(nps_adjusted) FROM recommendation) AS r FROM item_scores",
    );
    assert_eq!(left[0]["a"], 0);
    assert_eq!(left[0]["c"], 0);
    assert_eq!(left[0]["r"], 0);
    // a window out of range is a usage error naming the flag
    let r = palaute(
        &[
            "aggregate",
            "--warehouse",
            &fx.warehouse(),
            "--adjustment-window",
            "0",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}{}", r.stderr, r.stdout);
    assert!(r.stderr.contains("--adjustment-window"), "{}", r.stderr);
}

#[test]
fn marts_of_a_warehouse_written_before_the_adjustment_gain_its_columns() {
    let fx = Fixture::new();
    fx.input("export.csv", export().as_bytes());
    let p = fx.pipeline("", MAPPING);
    // the marts created as the version before the adjustment created them
    let r = fx.run_env(&p, &[("PALAUTE_FAILPOINT", "skip:case-mix-columns")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let q = "SELECT count(share_agree_adjusted) AS n FROM item_scores";
    let r = palaute(
        &["sql", "--warehouse", &fx.warehouse(), "--format", "json", q],
        &[],
    );
    assert_ne!(
        r.code, 0,
        "the old table has no adjusted column: {}",
        r.stdout
    );
    // the next aggregation adds the columns to the tables, and fills them
    let r = palaute(&["aggregate", "--warehouse", &fx.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let n = fx.sql(q);
    assert!(n[0]["n"].as_i64().unwrap() > 0, "{n:?}");
    let rec = fx.sql("SELECT count(nps_adjusted) AS n FROM recommendation");
    assert!(rec[0]["n"].as_i64().unwrap() > 0, "{rec:?}");
    let r = palaute(&["audit-disclosure", "--warehouse", &fx.warehouse()], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
