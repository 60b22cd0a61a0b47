//! Reading what an extract may hold from the warehouse, at the table versions of one ledger row.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use super::ExtractError;
use super::anonymize::Record;
use super::spec::{ExtractSpec, Filters};
use crate::warehouse::Warehouse;
use crate::warehouse::ledger;

/// The tables an extract reads.
pub const TABLES: [&str; 3] = ["responses", "answers", "comments"];

/// The warehouse state an extract reads: a ledger row's seq, its end and its table versions.
#[derive(Debug, Clone)]
pub struct State {
    pub seq: i64,
    pub as_of: chrono::DateTime<chrono::Utc>,
    pub versions: BTreeMap<String, u64>,
}

/// The ledger row `seq` (the last one when `None`).
pub async fn state(wh: &Warehouse, seq: Option<i64>) -> Result<State, ExtractError> {
    let runs = ledger::read_runs(wh).await?;
    // `latest`: the last row that committed anything but an extract (an extract's own row
    // changes no table), so that extracting twice reads the same state
    let r = match seq {
        None => runs.iter().rev().find(|r| r.pipeline != "extract"),
        Some(s) => runs.iter().find(|r| r.seq == s),
    }
    .ok_or_else(|| match seq {
        None => ExtractError::Spec("the warehouse has no committed run to extract from".into()),
        Some(s) => ExtractError::Spec(format!(
            "version: the ledger has no row {s} (rows 1–{})",
            runs.last().map(|r| r.seq).unwrap_or(0)
        )),
    })?;
    Ok(State {
        seq: r.seq,
        as_of: r.finished_at,
        versions: r.table_versions.clone(),
    })
}

/// One answer of an extracted response.
#[derive(Debug, Clone)]
pub struct AnswerRow {
    pub key: String,
    pub item: String,
    pub option: Option<String>,
    pub value: Option<i16>,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct CommentRow {
    pub key: String,
    pub field: String,
    pub text: String,
}

/// What the spec selects, as read.
pub struct Selected {
    pub keys: Vec<String>,
    pub records: Vec<Record>,
    pub answers: Vec<AnswerRow>,
    pub comments: Vec<CommentRow>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(col: &str, values: &[String]) -> Option<String> {
    (!values.is_empty()).then(|| {
        format!(
            "{col} IN ({})",
            values
                .iter()
                .map(|v| quote(v))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The WHERE clause of the spec's filters on `responses`.
fn filter(f: &Filters) -> String {
    let mut parts = vec!["TRUE".to_string()];
    parts.extend(list("instrument", &f.instruments));
    parts.extend(list("county", &f.counties));
    parts.extend(list("service", &f.services));
    if let Some(p) = &f.periods {
        parts.push(format!(
            "period >= {} AND period <= {}",
            quote(&p.from),
            quote(&p.to)
        ));
    }
    parts.join(" AND ")
}

/// Every column of `batches` as optional strings, by name.
fn strings(batches: &[RecordBatch]) -> Result<HashMap<String, Vec<Option<String>>>, ExtractError> {
    let mut out: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for b in batches {
        for (i, f) in b.schema().fields().iter().enumerate() {
            let col = arrow::compute::cast(b.column(i), &DataType::Utf8)
                .map_err(|e| ExtractError::Read(e.into()))?;
            let s = col.as_string::<i32>();
            let v = out.entry(f.name().clone()).or_default();
            v.extend((0..s.len()).map(|j| (!s.is_null(j)).then(|| s.value(j).to_string())));
        }
    }
    Ok(out)
}

/// Read the responses, answers and comments the spec selects at `state`.
pub async fn select(
    wh: &Warehouse,
    spec: &ExtractSpec,
    state: &State,
) -> Result<Selected, ExtractError> {
    let tables = wh
        .committed_tables_at(&TABLES, &state.versions)
        .await
        .map_err(|e| gone(e, state))?;
    // a version whose log remains but whose files a vacuum deleted cannot be read either
    for (name, t) in &tables {
        for f in wh.files(t).await? {
            let path = wh.loc.child(&format!("{name}/{}", f.path));
            if let Err(e) = object_store::ObjectStoreExt::head(wh.loc.store.as_ref(), &path).await {
                return Err(ExtractError::VersionGone {
                    table: name.clone(),
                    version: state.versions.get(name).copied().unwrap_or(0),
                    seq: state.seq,
                    message: format!("its file {} is gone: {e}", f.path),
                });
            }
        }
    }
    let ctx = crate::ops::sql::session_of(&tables)
        .await
        .map_err(|e| ExtractError::Read(e.into()))?;
    let run = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let df = ctx
                .sql(&sql)
                .await
                .map_err(|e| ExtractError::Read(e.into()))?;
            df.collect().await.map_err(|e| ExtractError::Read(e.into()))
        }
    };
    let wher = filter(&spec.filters);
    let r = strings(&run(format!(
        "SELECT response_key, period, municipality, county, cooperation_area, age_group, service, \
         instrument, instrument_version, channel, respondent_role, language, gender, nps, completion \
         FROM responses WHERE {wher}"
    ))
    .await?)?;
    let n = r.get("response_key").map(Vec::len).unwrap_or(0);
    let mut keys = Vec::with_capacity(n);
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        keys.push(r["response_key"][i].clone().unwrap_or_default());
        let mut rec = Record::default();
        for (c, v) in &r {
            if c != "response_key" {
                rec.values.insert(c.clone(), v[i].clone());
            }
        }
        records.push(rec);
    }
    let in_selection = format!("response_key IN (SELECT response_key FROM responses WHERE {wher})");
    let mut answers = Vec::new();
    if spec.answers || spec.sensitive.iter().any(|s| s.starts_with("item:")) {
        let a = strings(&run(format!(
            "SELECT response_key, item_code, option_code, value, status FROM answers WHERE {in_selection}"
        ))
        .await?)?;
        let mut a = a;
        let mut col = |name: &str| a.remove(name).unwrap_or_default().into_iter();
        let (keys, items, options, values, statuses) = (
            col("response_key"),
            col("item_code"),
            col("option_code"),
            col("value"),
            col("status"),
        );
        for ((((key, item), option), value), status) in
            keys.zip(items).zip(options).zip(values).zip(statuses)
        {
            answers.push(AnswerRow {
                key: key.unwrap_or_default(),
                item: item.unwrap_or_default(),
                option,
                value: value.as_deref().and_then(|v| v.parse().ok()),
                status: status.unwrap_or_default(),
            });
        }
    }
    let mut comments = Vec::new();
    if spec.comments {
        let c = strings(
            &run(format!(
                "SELECT response_key, field, text FROM comments WHERE {in_selection}"
            ))
            .await?,
        )?;
        let mut c = c;
        let mut col = |name: &str| c.remove(name).unwrap_or_default().into_iter();
        let (keys, fields, texts) = (col("response_key"), col("field"), col("text"));
        for ((key, field), text) in keys.zip(fields).zip(texts) {
            comments.push(CommentRow {
                key: key.unwrap_or_default(),
                field: field.unwrap_or_default(),
                text: text.unwrap_or_default(),
            });
        }
    }
    Ok(Selected {
        keys,
        records,
        answers,
        comments,
    })
}

/// A table version that cannot be opened any more: the warehouse was vacuumed past it.
fn gone(e: crate::warehouse::WarehouseError, state: &State) -> ExtractError {
    match &e {
        crate::warehouse::WarehouseError::Delta { table, .. } => ExtractError::VersionGone {
            table: table.clone(),
            version: state.versions.get(table).copied().unwrap_or(0),
            seq: state.seq,
            message: crate::ops::exit::render(&e),
        },
        _ => ExtractError::Warehouse(e),
    }
}
