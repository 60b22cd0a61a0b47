//! `palaute extract`: a researcher's package — pseudonymised, k-anonymous and l-diverse Parquet
//! tables with a Data Package descriptor, a codebook and a disclosure report — derived
//! reproducibly from one ledger row's table versions; and `palaute extract verify`, which
//! derives it again and compares the bytes.
//!
//! Plan, then execute: the spec and the warehouse state are resolved ([`read::state`]), the
//! selection read ([`read::select`]), the generalisation searched ([`anonymize::search`]), the
//! package built in memory ([`build`]) and only then written, into a folder of its own renamed
//! into place, and recorded in the warehouse (so that `vacuum` keeps what it needs).

pub mod anonymize;
pub mod package;
pub mod read;
pub mod record;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Cause;
use crate::schema::Catalog;
use crate::warehouse::{Warehouse, WarehouseError};
use anonymize::{Qi, Record};
use package::{Column, Table};
pub use spec::ExtractSpec;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// the spec is wrong, or cannot be met
    #[error("{0}")]
    Spec(String),
    #[error(
        "no secret for the pseudonyms: set {env} or name a `secret_file` in the spec (at least 16 characters; it is never written into the package)",
        env = spec::SECRET_ENV
    )]
    NoSecret,
    #[error(
        "k = {k} and l = {l} cannot be met by suppressing at most {allowed} of {total} responses (max_suppressed_pct): the least would suppress {best} with {levels}; nothing was written"
    )]
    Unsatisfiable {
        k: usize,
        l: usize,
        allowed: usize,
        total: usize,
        best: usize,
        levels: String,
    },
    #[error(
        "the warehouse no longer has version {version} of table {table}, which ledger row {seq} committed (it was vacuumed past it): {message}"
    )]
    VersionGone {
        table: String,
        version: u64,
        seq: i64,
        message: String,
    },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("reading the warehouse: {0}")]
    Read(#[source] Cause),
    #[error("writing the package: {0}")]
    Write(#[source] Cause),
    #[error("writing the package: {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: not an extract package: {message}")]
    NotAPackage { dir: PathBuf, message: String },
    #[error("{0}")]
    Differs(String),
}

impl ExtractError {
    pub fn exit_code(&self) -> i32 {
        use crate::ops::exit;
        match self {
            ExtractError::Spec(_) | ExtractError::NoSecret | ExtractError::NotAPackage { .. } => {
                exit::CONFIG
            }
            ExtractError::Unsatisfiable { .. } | ExtractError::Differs(_) => exit::QUALITY,
            ExtractError::VersionGone { .. }
            | ExtractError::Read(_)
            | ExtractError::Write(_)
            | ExtractError::WriteFile { .. } => exit::ENVIRONMENT,
            ExtractError::Warehouse(e) => e.exit_code(),
        }
    }
}

/// The secret of the pseudonyms: the spec's `secret_file`, else `PALAUTE_EXTRACT_SECRET`.
pub fn secret(spec: &ExtractSpec, file: Option<&Path>) -> Result<Vec<u8>, ExtractError> {
    let text = match file.or(spec.secret_file.as_deref()) {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| ExtractError::Spec(format!("secret_file {}: {e}", f.display())))?,
        None => std::env::var(spec::SECRET_ENV).unwrap_or_default(),
    };
    let s = text.trim();
    if s.chars().count() < 16 {
        return Err(ExtractError::NoSecret);
    }
    Ok(s.as_bytes().to_vec())
}

/// The pseudonym of a response key: BLAKE3 in keyed mode (a MAC, as HMAC is) under a key derived
/// from the extract's secret, so that extracts with different secrets cannot be linked.
fn pseudonymiser(secret: &[u8]) -> impl Fn(&str) -> String {
    let key = blake3::derive_key("palaute 2026 extract pseudonym", secret);
    move |k: &str| blake3::keyed_hash(&key, k.as_bytes()).to_hex()[..32].to_string()
}

/// A package built in memory: file name → bytes, and its report.
pub struct Built {
    pub files: BTreeMap<String, Vec<u8>>,
    pub report: Report,
    pub state: read::State,
}

/// What an extract did, for the summary and the disclosure report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub name: String,
    pub permit: String,
    pub seq: i64,
    pub responses_selected: usize,
    pub responses: usize,
    pub answers: usize,
    pub comments: usize,
    pub levels: BTreeMap<String, String>,
    pub k: usize,
    pub l: usize,
    pub k_achieved: usize,
    pub l_achieved: BTreeMap<String, usize>,
    pub suppressed: usize,
    pub suppressed_pct: f64,
    pub classes: usize,
    pub in_smallest_pct: f64,
    pub below_2k_pct: f64,
    pub max_risk: f64,
    pub evaluated: usize,
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 * 1000.0 / b as f64).round() / 10.0
    }
}

/// Labels of a code list's codes.
fn list_labels(c: &Catalog, list: &str) -> BTreeMap<String, [String; 3]> {
    c.list(list)
        .entries
        .iter()
        .map(|e| {
            (
                e.code.clone(),
                [
                    e.labels.fi.clone(),
                    e.labels.sv.clone(),
                    e.labels.en.clone(),
                ],
            )
        })
        .collect()
}

/// Derive the package of `spec` (its text `spec_text`) at `seq` (the spec's version when `None`):
/// the state and the selection, the anonymisation, then the tables and the package's files.
pub async fn build(
    wh: &Warehouse,
    spec: &ExtractSpec,
    spec_text: &str,
    secret: &[u8],
    seq: Option<i64>,
) -> Result<Built, ExtractError> {
    let catalog = Catalog::embedded();
    let seq = seq.or(match spec.version {
        spec::Version::Latest => None,
        spec::Version::Seq(s) => Some(s),
    });
    let state = read::state(wh, seq).await?;
    let sel = read::select(wh, spec, &state).await?;
    // the quasi-identifiers in the spec's order (a BTreeMap: by name)
    let qis: Vec<Qi> = spec
        .quasi_identifiers
        .iter()
        .map(|(name, levels)| Qi {
            name: name.clone(),
            levels: levels.clone(),
        })
        .collect();
    let outcome = anonymise(spec, &sel, &qis)?;

    let pseudo = pseudonymiser(secret);
    // the responses kept, by pseudonym
    let mut kept: Vec<(String, usize)> = (0..sel.records.len())
        .filter(|&i| !outcome.suppressed[i])
        .map(|i| (pseudo(&sel.keys[i]), i))
        .collect();
    kept.sort();
    let pseudo_of: BTreeMap<&str, &str> = kept
        .iter()
        .map(|(p, i)| (sel.keys[*i].as_str(), p.as_str()))
        .collect();
    let mut tables = vec![responses_table(
        spec,
        catalog,
        &qis,
        &outcome,
        &sel.records,
        &kept,
    )];
    if spec.answers {
        tables.push(answers_table(catalog, &sel.answers, &pseudo_of));
    }
    if spec.comments {
        tables.push(comments_table(&sel.comments, &pseudo_of));
    }

    let report = disclosure_report(spec, &state, &qis, &outcome, sel.records.len(), &tables);
    let files = package_files(spec, spec_text, catalog, &state, &tables, &report)?;
    Ok(Built {
        files,
        report,
        state,
    })
}

/// Each sensitive attribute's value per selected response: a response field's value, or an
/// item's answers (its options, value or status, sorted and joined).
fn sensitive_values(
    spec: &ExtractSpec,
    sel: &read::Selected,
) -> Vec<(String, Vec<Option<String>>)> {
    spec.sensitive
        .iter()
        .map(|s| {
            let values = match s.strip_prefix("item:") {
                Some(code) => {
                    let mut by_key: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                    for a in sel.answers.iter().filter(|a| a.item == code) {
                        let v = a
                            .option
                            .clone()
                            .or(a.value.map(|v| v.to_string()))
                            .unwrap_or_else(|| a.status.clone());
                        by_key.entry(a.key.as_str()).or_default().push(v);
                    }
                    sel.keys
                        .iter()
                        .map(|k| {
                            by_key.get(k.as_str()).map(|v| {
                                let mut v = v.clone();
                                v.sort();
                                v.join(",")
                            })
                        })
                        .collect()
                }
                None => sel
                    .records
                    .iter()
                    .map(|r| r.get(s).map(str::to_string))
                    .collect(),
            };
            (s.clone(), values)
        })
        .collect()
}

/// The generalisation and local suppression that make the selection k-anonymous and
/// l-diverse within the spec's suppression budget, or why none does.
fn anonymise(
    spec: &ExtractSpec,
    sel: &read::Selected,
    qis: &[Qi],
) -> Result<anonymize::Outcome, ExtractError> {
    let n = sel.records.len();
    let sensitive = sensitive_values(spec, sel);
    let allowed = (n as f64 * spec.max_suppressed_pct / 100.0).floor() as usize;
    anonymize::search(&sel.records, qis, &sensitive, spec.k, spec.l, allowed).map_err(|u| {
        ExtractError::Unsatisfiable {
            k: spec.k,
            l: spec.l,
            allowed: u.allowed,
            total: n,
            best: u.best_suppressed,
            levels: qis
                .iter()
                .zip(&u.best_levels)
                .map(|(q, l)| format!("{} at {l}", q.name))
                .collect::<Vec<_>>()
                .join(", "),
        }
    })
}

/// What the package's disclosure document and provenance say: the selection, the levels
/// chosen, the k and l achieved, what was suppressed and the re-identification risk.
fn disclosure_report(
    spec: &ExtractSpec,
    state: &read::State,
    qis: &[Qi],
    outcome: &anonymize::Outcome,
    n: usize,
    tables: &[Table],
) -> Report {
    let kept_n = tables[0].rows();
    Report {
        name: spec.name.clone(),
        permit: spec.permit.clone(),
        seq: state.seq,
        responses_selected: n,
        responses: kept_n,
        answers: tables
            .get(1)
            .filter(|_| spec.answers)
            .map(Table::rows)
            .unwrap_or(0),
        comments: tables
            .last()
            .filter(|_| spec.comments)
            .map(Table::rows)
            .unwrap_or(0),
        levels: qis
            .iter()
            .zip(&outcome.levels)
            .map(|(q, l)| (q.name.clone(), l.clone()))
            .collect(),
        k: spec.k,
        l: spec.l,
        k_achieved: outcome.k_achieved,
        l_achieved: outcome.l_achieved.iter().cloned().collect(),
        suppressed: outcome.n_suppressed,
        suppressed_pct: pct(outcome.n_suppressed, n),
        classes: outcome.classes,
        in_smallest_pct: pct(outcome.in_smallest, kept_n),
        below_2k_pct: pct(outcome.below_2k, kept_n),
        max_risk: if outcome.k_achieved == 0 {
            0.0
        } else {
            1.0 / outcome.k_achieved as f64
        },
        evaluated: outcome.evaluated,
    }
}

/// The package's files by name: a Parquet file per table, the codebook, the disclosure
/// document and `datapackage.json` (resources with their hashes, and the provenance).
fn package_files(
    spec: &ExtractSpec,
    spec_text: &str,
    catalog: &Catalog,
    state: &read::State,
    tables: &[Table],
    report: &Report,
) -> Result<BTreeMap<String, Vec<u8>>, ExtractError> {
    let mut files = BTreeMap::new();
    let mut resources = Vec::new();
    for t in tables {
        let bytes = package::parquet_bytes(t)?;
        let missing = vec![package::MissingValue {
            value: String::new(),
            label: if t.name == "answers" {
                "no value: the status says why (cant_say = can't say, not_applicable = not applicable, missing = not answered, not_shown = not asked)".into()
            } else {
                "not known or not given".into()
            },
        }];
        resources.push(package::resource(t, &bytes, missing));
        files.insert(format!("{}.parquet", t.name), bytes);
    }
    let header = vec![
        ("permit".to_string(), spec.permit.clone()),
        (
            "data as of".to_string(),
            format!("ledger row {} ({})", state.seq, state.as_of.to_rfc3339()),
        ),
        ("k, l".to_string(), format!("{}, {}", spec.k, spec.l)),
    ];
    let items = item_labels(catalog);
    let refs: Vec<&Table> = tables.iter().collect();
    files.insert(
        "codebook.md".into(),
        package::codebook(&spec.name, &header, &refs, &items, spec.k).into_bytes(),
    );
    files.insert("disclosure.md".into(), disclosure_text(report).into_bytes());
    let documents: BTreeMap<&str, String> = ["codebook.md", "disclosure.md"]
        .into_iter()
        .map(|f| (f, format!("sha256:{}", package::sha256_hex(&files[f]))))
        .collect();
    let provenance = serde_json::json!({
        "documents": documents,
        "spec": spec_text,
        "spec_sha256": package::sha256_hex(spec_text.as_bytes()),
        "palaute_version": env!("CARGO_PKG_VERSION"),
        "ledger_seq": state.seq,
        "data_as_of": state.as_of.to_rfc3339(),
        "table_versions": read::TABLES.iter()
            .map(|t| (t.to_string(), state.versions.get(*t).copied().unwrap_or(0)))
            .collect::<BTreeMap<_, _>>(),
        "pseudonyms": "BLAKE3 keyed hash of the response key under a key derived from the extract's secret (not in the package)",
        "disclosure": report,
    });
    let dp = package::DataPackage {
        schema: "https://datapackage.org/profiles/2.0/datapackage.json",
        name: spec.name.to_lowercase().replace('_', "-"),
        title: spec.title.clone().unwrap_or_else(|| spec.name.clone()),
        description: spec.description.clone().unwrap_or_else(|| {
            format!(
                "Client feedback extract {} under permit {}: pseudonymised, {}-anonymous and {}-diverse",
                spec.name, spec.permit, spec.k, spec.l
            )
        }),
        version: format!("seq-{}", state.seq),
        resources,
        provenance,
    };
    let mut json = serde_json::to_vec_pretty(&dp).map_err(|e| ExtractError::Write(e.into()))?;
    json.push(b'\n');
    files.insert("datapackage.json".into(), json);
    Ok(files)
}

fn item_labels(c: &Catalog) -> BTreeMap<String, [String; 3]> {
    let mut m = BTreeMap::new();
    for i in c.instruments.values() {
        for (code, it) in &i.items {
            m.entry(code.clone()).or_insert_with(|| {
                [
                    it.labels.fi.clone(),
                    it.labels.sv.clone(),
                    it.labels.en.clone(),
                ]
            });
        }
    }
    m
}

fn responses_table(
    spec: &ExtractSpec,
    catalog: &Catalog,
    qis: &[Qi],
    outcome: &anonymize::Outcome,
    records: &[Record],
    kept: &[(String, usize)],
) -> Table {
    let mut columns = vec![Column {
        name: "pseudonym".into(),
        integer: false,
        description: "the response's pseudonym in this extract (a keyed hash; not linkable to other extracts)".into(),
        categories: BTreeMap::new(),
        values: kept.iter().map(|(p, _)| Some(p.clone())).collect(),
    }];
    for (q, level) in qis.iter().zip(&outcome.levels) {
        let (description, categories) = qi_meta(catalog, &q.name, level);
        columns.push(Column {
            name: q.name.clone(),
            integer: false,
            description,
            categories,
            values: kept
                .iter()
                .map(|(_, i)| anonymize::generalise(&q.name, level, &records[*i]))
                .collect(),
        });
    }
    for c in &spec.columns {
        let (description, categories) = plain_meta(catalog, c);
        columns.push(Column {
            name: c.clone(),
            integer: c == "nps",
            description,
            categories,
            values: kept
                .iter()
                .map(|(_, i)| records[*i].get(c).map(str::to_string))
                .collect(),
        });
    }
    Table {
        name: "responses",
        description: "one row per response: its quasi-identifiers at the generalisation levels of the disclosure report, and the columns the spec gives as they are".into(),
        columns,
    }
}

fn qi_meta(c: &Catalog, qi: &str, level: &str) -> (String, BTreeMap<String, [String; 3]>) {
    match qi {
        "age_group" => (
            format!(
                "age group, generalised to level '{level}' (group: the national bands; wide: 7-17, 18-49, 50-74, 75+; broad: 7-17, 18-64, 65+; all: *)"
            ),
            if level == "group" {
                list_labels(c, "age_group")
            } else {
                BTreeMap::new()
            },
        ),
        "area" => (
            format!(
                "area at level '{level}' (municipality, county or cooperation-area code of Statistics Finland's classification, or FI for the nation)"
            ),
            if level == "county" {
                c.municipalities
                    .county_codes()
                    .into_iter()
                    .map(|code| {
                        let name = c
                            .municipalities
                            .county_name(&code)
                            .unwrap_or_default()
                            .to_string();
                        (code, [name, String::new(), String::new()])
                    })
                    .collect()
            } else {
                BTreeMap::new()
            },
        ),
        "time" => (
            format!(
                "when the response was given, at level '{level}' (month YYYY-MM, two-month period YYYY-Bn, quarter YYYY-Qn, year YYYY; Finnish time)"
            ),
            BTreeMap::new(),
        ),
        "service" => (
            format!("the service, at level '{level}' (all: *)"),
            BTreeMap::new(),
        ),
        other => {
            let (d, cats) = plain_meta(c, other);
            (
                format!("{d}, at level '{level}' (all: *)"),
                if level == "value" {
                    cats
                } else {
                    BTreeMap::new()
                },
            )
        }
    }
}

fn plain_meta(c: &Catalog, col: &str) -> (String, BTreeMap<String, [String; 3]>) {
    match col {
        "channel" | "respondent_role" | "language" | "gender" => (
            format!("{} (code list {col})", col.replace('_', " ")),
            list_labels(c, col),
        ),
        "nps" => (
            "the answer to the 0–10 would-you-recommend item".into(),
            BTreeMap::new(),
        ),
        "instrument" => (
            "the instrument (questionnaire) answered".into(),
            BTreeMap::new(),
        ),
        "instrument_version" => ("its version".into(), BTreeMap::new()),
        "completion" => (
            "complete or partial".into(),
            [
                ("complete", "valmis", "fullständig", "complete"),
                ("partial", "osittainen", "partiell", "partial"),
            ]
            .into_iter()
            .map(|(k, fi, sv, en)| (k.to_string(), [fi.into(), sv.into(), en.into()]))
            .collect(),
        ),
        other => (other.to_string(), BTreeMap::new()),
    }
}

fn answers_table(
    catalog: &Catalog,
    answers: &[read::AnswerRow],
    pseudo_of: &BTreeMap<&str, &str>,
) -> Table {
    let mut rows: Vec<(&str, &read::AnswerRow)> = answers
        .iter()
        .filter_map(|a| pseudo_of.get(a.key.as_str()).map(|p| (*p, a)))
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1.item, &a.1.option).cmp(&(b.0, &b.1.item, &b.1.option)));
    let status: BTreeMap<String, [String; 3]> = [
        ("answered", "vastattu", "besvarad", "answered"),
        ("cant_say", "en osaa sanoa", "vet ej", "can't say"),
        (
            "not_applicable",
            "ei koske minua",
            "gäller inte mig",
            "not applicable",
        ),
        ("missing", "ei vastausta", "inget svar", "not answered"),
        ("not_shown", "ei kysytty", "inte frågad", "not asked"),
        ("measured", "luku", "tal", "a number"),
    ]
    .into_iter()
    .map(|(k, fi, sv, en)| (k.to_string(), [fi.into(), sv.into(), en.into()]))
    .collect();
    let items = item_labels(catalog);
    Table {
        name: "answers",
        description: "one row per answer to a closed item (one per chosen option of a multi-select or single-choice item)".into(),
        columns: vec![
            Column {
                name: "pseudonym".into(),
                integer: false,
                description: "the response (responses.pseudonym)".into(),
                categories: BTreeMap::new(),
                values: rows.iter().map(|(p, _)| Some(p.to_string())).collect(),
            },
            Column {
                name: "item_code".into(),
                integer: false,
                description: "the item (its question text in the codebook)".into(),
                categories: rows
                    .iter()
                    .filter_map(|(_, a)| items.get(&a.item).map(|l| (a.item.clone(), l.clone())))
                    .collect(),
                values: rows.iter().map(|(_, a)| Some(a.item.clone())).collect(),
            },
            Column {
                name: "option_code".into(),
                integer: false,
                description: "the option chosen (multi-select and single-choice items)".into(),
                categories: BTreeMap::new(),
                values: rows.iter().map(|(_, a)| a.option.clone()).collect(),
            },
            Column {
                name: "value".into(),
                integer: true,
                description: "the value on the item's scale (1–5 for statements; a number for sliders and counts)".into(),
                categories: BTreeMap::new(),
                values: rows.iter().map(|(_, a)| a.value.map(|v| v.to_string())).collect(),
            },
            Column {
                name: "status".into(),
                integer: false,
                description: "answered, or why there is no value".into(),
                categories: status,
                values: rows.iter().map(|(_, a)| Some(a.status.clone())).collect(),
            },
        ],
    }
}

fn comments_table(comments: &[read::CommentRow], pseudo_of: &BTreeMap<&str, &str>) -> Table {
    let mut rows: Vec<(&str, &read::CommentRow)> = comments
        .iter()
        .filter_map(|c| pseudo_of.get(c.key.as_str()).map(|p| (*p, c)))
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1.field).cmp(&(b.0, &b.1.field)));
    Table {
        name: "comments",
        description: "open-text answers as the warehouse holds them: scrubbed of e-mail addresses, phone numbers, henkilötunnus, IBANs, URLs and street addresses before they were stored".into(),
        columns: vec![
            Column {
                name: "pseudonym".into(),
                integer: false,
                description: "the response (responses.pseudonym)".into(),
                categories: BTreeMap::new(),
                values: rows.iter().map(|(p, _)| Some(p.to_string())).collect(),
            },
            Column {
                name: "field".into(),
                integer: false,
                description: "the open-text item".into(),
                categories: BTreeMap::new(),
                values: rows.iter().map(|(_, c)| Some(c.field.clone())).collect(),
            },
            Column {
                name: "text".into(),
                integer: false,
                description: "the scrubbed text".into(),
                categories: BTreeMap::new(),
                values: rows.iter().map(|(_, c)| Some(c.text.clone())).collect(),
            },
        ],
    }
}

/// The disclosure report, in sdcMicro's terms.
pub fn disclosure_text(r: &Report) -> String {
    let mut s = format!(
        "# Disclosure report: {}\n\n- permit: {}\n- data as of ledger row {}\n- responses selected: {}; released: {}; locally suppressed: {} ({} %)\n- k-anonymity: required {}, achieved {} (the smallest equivalence class)\n",
        r.name,
        r.permit,
        r.seq,
        r.responses_selected,
        r.responses,
        r.suppressed,
        r.suppressed_pct,
        r.k,
        r.k_achieved
    );
    for (a, l) in &r.l_achieved {
        s.push_str(&format!(
            "- l-diversity of {a}: required {}, achieved {l}\n",
            r.l
        ));
    }
    s.push_str(&format!(
        "- equivalence classes: {}; records in the smallest classes: {} %; in classes under 2k: {} %\n- maximum re-identification risk (1 / smallest class): {:.3}\n- level combinations evaluated: {}\n\n## Generalisation (full-domain, least total height)\n\n| quasi-identifier | level |\n|---|---|\n",
        r.classes, r.in_smallest_pct, r.below_2k_pct, r.max_risk, r.evaluated
    ));
    for (q, l) in &r.levels {
        s.push_str(&format!("| {q} | {l} |\n"));
    }
    s
}

/// Write a built package into `out` (created; an existing package there is replaced), through a
/// folder of its own renamed into place.
pub fn write(out: &Path, built: &Built) -> Result<(), ExtractError> {
    let err = |source| ExtractError::WriteFile {
        path: out.to_path_buf(),
        source,
    };
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(err)?;
    if out.exists() {
        let foreign = std::fs::read_dir(out)
            .map_err(err)?
            .filter_map(|e| e.ok())
            .any(|e| {
                !built
                    .files
                    .contains_key(&e.file_name().to_string_lossy().to_string())
            });
        if foreign {
            return Err(ExtractError::Write(
                format!(
                    "{}: the folder holds files that are not this package's; give an empty or new folder",
                    out.display()
                )
                .into(),
            ));
        }
    }
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(err)?;
    for (name, bytes) in &built.files {
        std::fs::write(tmp.join(name), bytes).map_err(err)?;
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(err)?;
    }
    std::fs::rename(&tmp, out).map_err(err)?;
    Ok(())
}

/// `palaute extract verify`: derive the package in `dir` again from the warehouse at the ledger
/// row it names and compare file by file. Returns the lines of the comparison.
pub async fn verify(
    wh: &Warehouse,
    dir: &Path,
    secret_file: Option<&Path>,
) -> Result<Vec<String>, ExtractError> {
    let not = |message: String| ExtractError::NotAPackage {
        dir: dir.to_path_buf(),
        message,
    };
    let dp_bytes = std::fs::read(dir.join("datapackage.json"))
        .map_err(|e| not(format!("datapackage.json: {e}")))?;
    let dp: serde_json::Value =
        serde_json::from_slice(&dp_bytes).map_err(|e| not(format!("datapackage.json: {e}")))?;
    let prov = &dp["palaute:provenance"];
    let (Some(text), Some(seq)) = (prov["spec"].as_str(), prov["ledger_seq"].as_i64()) else {
        return Err(not(
            "datapackage.json has no palaute:provenance with its spec and ledger row".into(),
        ));
    };
    let spec: ExtractSpec = crate::config::parse_reporting_every_unknown_key(text)
        .map_err(|e| not(format!("its spec: {e}")))?;
    let secret = secret(&spec, secret_file)?;
    let built = build(wh, &spec, text, &secret, Some(seq)).await?;
    let mut recorded: BTreeMap<String, String> = dp["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r["path"].as_str()?.to_string(),
                r["hash"].as_str()?.to_string(),
            ))
        })
        .collect();
    if let Some(docs) = prov["documents"].as_object() {
        for (k, v) in docs {
            if let Some(h) = v.as_str() {
                recorded.insert(k.clone(), h.to_string());
            }
        }
    }
    let mut lines = Vec::new();
    let mut differs = false;
    for (name, bytes) in &built.files {
        let line = match std::fs::read(dir.join(name)) {
            Err(_) => {
                differs = true;
                format!("{name}: missing from the package")
            }
            Ok(b) if b == *bytes => format!("{name}: identical"),
            Ok(b) => {
                differs = true;
                let own = recorded.get(name);
                if own.is_some_and(|h| *h != format!("sha256:{}", package::sha256_hex(&b))) {
                    format!(
                        "{name}: differs — changed after the package was written (its sha256 is not the one datapackage.json records)"
                    )
                } else {
                    format!(
                        "{name}: differs — the warehouse at ledger row {seq} gives other bytes (another secret, or another palaute version)"
                    )
                }
            }
        };
        lines.push(line);
    }
    if differs {
        return Err(ExtractError::Differs(format!(
            "{}: the package is not what the warehouse gives:\n  {}",
            dir.display(),
            lines.join("\n  ")
        )));
    }
    Ok(lines)
}

/// `palaute extract SPEC --out DIR`: build the package, write it, record it in the warehouse.
/// The caller holds the writer lease (the record adds a ledger row).
pub async fn run(wh: &Warehouse, spec_path: &Path, out: &Path) -> Result<Report, ExtractError> {
    let (spec, text) = ExtractSpec::load(spec_path).map_err(ExtractError::Spec)?;
    let secret = secret(&spec, None)?;
    let built = build(wh, &spec, &text, &secret, None).await?;
    write(out, &built)?;
    let mut files = BTreeMap::new();
    for t in read::TABLES {
        if let Some(v) = built.state.versions.get(t) {
            let table = wh.table(t, Some(*v)).await?;
            files.insert(
                t.to_string(),
                wh.files(&table)
                    .await?
                    .into_iter()
                    .map(|f| f.path)
                    .collect(),
            );
        }
    }
    record::record(
        wh,
        &record::ExtractRecord {
            name: spec.name.clone(),
            permit: spec.permit.clone(),
            spec_sha256: package::sha256_hex(text.as_bytes()),
            ledger_seq: built.state.seq,
            table_versions: built.state.versions.clone(),
            files,
        },
    )
    .await?;
    Ok(built.report)
}

/// The summary line of an extract.
pub fn summary(r: &Report, out: &Path) -> String {
    format!(
        "extract {} → {}: {} of {} responses ({} suppressed, {} %), {} answers, {} comments; k {} (achieved {}), l {}; levels: {}\n",
        r.name,
        out.display(),
        r.responses,
        r.responses_selected,
        r.suppressed,
        r.suppressed_pct,
        r.answers,
        r.comments,
        r.k,
        r.k_achieved,
        r.l,
        r.levels
            .iter()
            .map(|(q, l)| format!("{q} {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
