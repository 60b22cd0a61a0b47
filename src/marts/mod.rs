//! The comparison marts (docs/marts.md): `item_scores`, `recommendation`, `response_counts` and
//! `selections`. Each is computed by SQL in `sql/` — a fine cube at month grain from the
//! warehouse tables, `rollup.sql` to every period type, geography level and service, and the
//! mart's figures file — with disclosure control applied in between
//! ([`crate::marts::disclosure`]) over the hierarchies [`cells`] derives from the cells' keys.

pub mod casemix;
pub mod cells;
pub mod cube;
pub mod cube_cache;
pub mod disclosure;
pub mod periods;
pub mod rollup;

use crate::marts::disclosure::Rules;

pub const ITEM_SCORES: &str = "item_scores";
pub const RECOMMENDATION: &str = "recommendation";
pub const RESPONSE_COUNTS: &str = "response_counts";
pub const SELECTIONS: &str = "selections";
/// The marts of cells, in the order they are computed (the warehouse's `MART_TABLES`, which
/// also hold the case-mix models' coefficients, [`casemix::COEFFICIENTS`]).
pub const MARTS: [&str; 4] = [ITEM_SCORES, RECOMMENDATION, RESPONSE_COUNTS, SELECTIONS];
const _: () = assert!(MARTS.len() + 1 == crate::warehouse::tables::MART_TABLES.len());

/// The geography levels, from the finest.
pub const GEO_LEVELS: [&str; 5] = [
    "municipality",
    "local_area",
    "county",
    "cooperation_area",
    "nation",
];

pub const SQL_CUBE_ITEMS: &str = include_str!("../../sql/cube_items.sql");
pub const SQL_CUBE_RESPONSES: &str = include_str!("../../sql/cube_responses.sql");
pub const SQL_RESPONSE_DIMS: &str = include_str!("../../sql/response_dims.sql");
pub const SQL_CUBE_RECOMMENDATION: &str = include_str!("../../sql/cube_recommendation.sql");
pub const SQL_CUBE_RESPONSE_COUNTS: &str = include_str!("../../sql/cube_response_counts.sql");
pub const SQL_CUBE_SELECTIONS: &str = include_str!("../../sql/cube_selections.sql");
pub const SQL_ROLLUP: &str = include_str!("../../sql/rollup.sql");
pub const SQL_ITEM_SCORES: &str = include_str!("../../sql/item_scores.sql");
pub const SQL_RECOMMENDATION: &str = include_str!("../../sql/recommendation.sql");
pub const SQL_RESPONSE_COUNTS: &str = include_str!("../../sql/response_counts.sql");
pub const SQL_SELECTIONS: &str = include_str!("../../sql/selections.sql");
pub const SQL_CUBE_CASEMIX: &str = include_str!("../../sql/cube_casemix.sql");

/// z for a two-sided 95 % interval and a test at α = 0.05.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The statement of the statistical method, stored in each mart's table metadata and in the
/// docs.
pub const METHOD: &str = "Comparison with the nation: each cell is tested against the rest of the country \
(nation minus the cell) so that the samples are independent. Shares agreeing: two-sided two-proportion \
z-test with the pooled proportion; NPS: z-test on the difference of two independent NPS estimates \
(variance of the +1/0/-1 score); means: Welch's test with the normal approximation. Significant means \
|z| > 1.96 (alpha 0.05), with no correction for multiple comparisons. Intervals: Wilson score interval \
(shares), normal interval (NPS), both 95 %. Adjusted figures (*_adjusted, a model output): raw figure \
minus sum of beta x (cell's share of each adjuster level - the nation's), beta from a linear model per \
outcome (top-2 indicator; promoter/detractor score; 0-10 value) fitted on the national pool of the 12 \
months ending with the period (configurable) with county fixed effects and the adjusters channel, \
respondent role, age group and language, HC1 standard errors, kiosk answers out of the fit; published \
only with the raw figure, from at least the reliability threshold's answers, and from published \
respondent mixes only; the coefficients are in casemix_coefficients (docs/marts.md).";

/// How one mart is computed.
pub struct MartSpec {
    pub name: &'static str,
    /// the fine cube (from the warehouse, or from `response_cube`)
    pub cube_sql: &'static str,
    /// the mart's own key columns, after the period, geography and service
    pub keys: &'static [&'static str],
    /// additive measures of the cube
    pub measures: &'static [&'static str],
    /// the measure children are ranked by, and the primary rule's n
    pub size: &'static str,
    /// further measures whose small non-zero values also fail the primary rule
    pub also_primary: &'static [&'static str],
    /// the key whose '*' rows are the units of suppression (options follow their item)
    pub unit_key: Option<&'static str>,
    /// a key that partitions its total row (response_counts: breakdown 'total' → categories)
    pub breakdown: Option<(&'static str, &'static str)>,
    pub figures_sql: &'static str,
    /// published count columns the audit tries to recover, and their within-row sums
    /// (total, parts)
    pub audited: &'static [&'static str],
    pub row_sums: &'static [(&'static str, &'static [&'static str])],
    /// a mean and its count: their product is a sum the audit also differences
    pub mean_times: Option<(&'static str, &'static str)>,
}

pub const SPECS: [MartSpec; 4] = [
    MartSpec {
        name: ITEM_SCORES,
        cube_sql: SQL_CUBE_ITEMS,
        keys: &["instrument", "item_code"],
        measures: &[
            "n",
            "n_answered",
            "n_cant_say",
            "n_not_applicable",
            "n_value_1",
            "n_value_2",
            "n_value_3",
            "n_value_4",
            "n_value_5",
            "n_agree",
            "value_sum",
            "value_sumsq",
        ],
        size: "n",
        also_primary: &["n_answered"],
        unit_key: None,
        breakdown: None,
        figures_sql: SQL_ITEM_SCORES,
        audited: &[
            "n",
            "n_answered",
            "n_cant_say",
            "n_not_applicable",
            "n_value_1",
            "n_value_2",
            "n_value_3",
            "n_value_4",
            "n_value_5",
            "n_agree",
        ],
        row_sums: &[
            ("n", &["n_answered", "n_cant_say", "n_not_applicable"]),
            (
                "n_answered",
                &[
                    "n_value_1",
                    "n_value_2",
                    "n_value_3",
                    "n_value_4",
                    "n_value_5",
                ],
            ),
        ],
        mean_times: Some(("mean", "n_answered")),
    },
    MartSpec {
        name: RECOMMENDATION,
        cube_sql: SQL_CUBE_RECOMMENDATION,
        keys: &["instrument"],
        measures: &[
            "n_answered",
            "n_promoters",
            "n_passives",
            "n_detractors",
            "value_sum",
            "value_sumsq",
        ],
        size: "n_answered",
        also_primary: &[],
        unit_key: None,
        breakdown: None,
        figures_sql: SQL_RECOMMENDATION,
        audited: &["n_answered", "n_promoters", "n_passives", "n_detractors"],
        row_sums: &[("n_answered", &["n_promoters", "n_passives", "n_detractors"])],
        mean_times: Some(("mean_recommend", "n_answered")),
    },
    MartSpec {
        name: RESPONSE_COUNTS,
        cube_sql: SQL_CUBE_RESPONSE_COUNTS,
        keys: &["instrument", "breakdown", "category"],
        measures: &["n_responses"],
        size: "n_responses",
        also_primary: &[],
        unit_key: None,
        breakdown: Some(("breakdown", "total")),
        figures_sql: SQL_RESPONSE_COUNTS,
        audited: &["n_responses"],
        row_sums: &[],
        mean_times: None,
    },
    MartSpec {
        name: SELECTIONS,
        cube_sql: SQL_CUBE_SELECTIONS,
        keys: &["instrument", "item_code", "option_code"],
        measures: &["n_selected"],
        size: "n_selected",
        also_primary: &[],
        unit_key: Some("option_code"),
        breakdown: None,
        figures_sql: SQL_SELECTIONS,
        audited: &["n_selected"],
        row_sums: &[],
        mean_times: None,
    },
];

pub fn spec(name: &str) -> &'static MartSpec {
    SPECS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} is a mart"))
}

/// Fill a SQL file's placeholders.
pub fn fill(sql: &str, vars: &[(&str, String)]) -> String {
    let mut s = sql.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// The placeholders of the figures files.
pub fn figure_vars(rules: &Rules) -> Vec<(&'static str, String)> {
    vec![
        (
            "cant_say_in_denominator",
            rules.cant_say_in_denominator.to_string(),
        ),
        ("reliable_n", rules.reliable_n.to_string()),
        ("z", format!("{Z95}")),
    ]
}

/// rollup.sql for one mart.
pub fn rollup_sql(spec: &MartSpec, levels: &[&str]) -> String {
    let sums: Vec<String> = spec
        .measures
        .iter()
        .map(|m| format!("sum({m}) AS {m}"))
        .collect();
    fill(
        SQL_ROLLUP,
        &[
            ("keys", spec.keys.join(", ")),
            ("measures", spec.measures.join(", ")),
            ("sums", sums.join(", ")),
            (
                "levels",
                levels
                    .iter()
                    .map(|l| format!("'{l}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ],
    )
}
