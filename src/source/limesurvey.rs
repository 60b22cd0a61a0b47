//! The `limesurvey_db` source kind: a LimeSurvey installation's own database, MariaDB / MySQL or
//! PostgreSQL (sqlx), read incrementally by response id.
//!
//! Quirks handled here:
//! - layouts: LimeSurvey 3–6 keep responses in `<prefix>survey_<sid>` with one column per question
//!   named `<sid>X<gid>X<qid>` plus a subquestion or `other` / `comment` suffix; LimeSurvey 7 in
//!   `<prefix>responses_<sid>` with `Q<qid>` columns (a subquestion as `_S<qid of the
//!   subquestion>`). `schema: auto` tells them apart by the tables present.
//! - column names: the mapping names a question by its code as LimeSurvey's own exports head it —
//!   `q1`, `q1[SQ001]`, `q1[other]` — resolved through `<prefix>questions`; a column whose
//!   question is unknown keeps its database name.
//! - answer codes (`AO01`) become their labels in the chosen language, joined through
//!   `<prefix>answers` (LimeSurvey 3–4: the label and language are in that table) or
//!   `<prefix>answers` + `<prefix>answer_l10ns` (5 and later); HTML tags in labels are dropped.
//!   `answers: code` keeps the codes.
//! - NULL in a question column means the question was not shown (its conditions were false);
//!   it is read as `{question_not_shown}`, as the VV export writes it, and an empty string as an
//!   unanswered question.
//! - identifier columns (`token`, `ipaddr`, `refurl`, and `seed`) are never selected.
//! - incomplete responses (`submitdate` NULL): `incomplete: skip` leaves them, `partial` loads
//!   them with completion `partial` (a synthetic `completion` column holds complete / partial;
//!   map `submitted_at: {column: submitdate, fallback: datestamp}` to give them a time).
//! - incremental: the watermark (the highest response id whose row is final) is stored as the
//!   object's fingerprint in the run ledger; a failed run records no objects, so it does not
//!   advance. An unsubmitted response younger than `pending_days` holds the watermark back, so
//!   it is read again (and loaded, or updated) once submitted; rows after it are read again
//!   meanwhile and count as duplicates. At most `max_rows_per_run` rows are read per run.
//! - the connection string comes from an environment variable (`url_env`); it is never printed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Once;

use chrono::{NaiveDateTime, Utc};
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;

use super::{SourceError, SourceObject};
use crate::config::{Incomplete, LimesurveyDbSource, LimesurveySchema};
use crate::format::table::TableObject;
use crate::schema::NOT_SHOWN;

/// Response-table columns that identify a respondent or are of no use: never selected.
const NEVER_READ: [&str; 4] = ["token", "ipaddr", "refurl", "seed"];
/// Response-table columns that are not questions.
const FIXED: [&str; 6] = [
    "id",
    "submitdate",
    "lastpage",
    "startlanguage",
    "startdate",
    "datestamp",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    MySql,
    Postgres,
}

impl Dialect {
    fn quote(self, ident: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
            Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }
    fn text(self, expr: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST({expr} AS CHAR)"),
            Dialect::Postgres => format!("CAST({expr} AS TEXT)"),
        }
    }
    fn current_schema(self) -> &'static str {
        match self {
            Dialect::MySql => "DATABASE()",
            Dialect::Postgres => "current_schema()",
        }
    }
}

/// One column of the response table as the mapping sees it.
#[derive(Debug, Clone)]
struct Column {
    db_name: String,
    name: String,
    /// the question whose answer labels apply
    qid: Option<i64>,
    question: bool,
}

impl Column {
    /// A column that is not a question's, read under its database name.
    fn plain(name: String) -> Column {
        Column {
            db_name: name.clone(),
            name,
            qid: None,
            question: false,
        }
    }
}

pub struct LimesurveyReader {
    cfg: LimesurveyDbSource,
    pipeline: String,
    pool: AnyPool,
    dialect: Dialect,
    table: String,
    schema: LimesurveySchema,
}

fn db_err(pipeline: &str, what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Database {
        pipeline: pipeline.to_string(),
        message: format!("{what}: {e}"),
    }
}

fn strip_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

impl LimesurveyReader {
    pub async fn connect(cfg: &LimesurveyDbSource, pipeline: &str) -> Result<Self, SourceError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let url = std::env::var(&cfg.url_env)
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| SourceError::Database {
                pipeline: pipeline.to_string(),
                message: format!(
                    "the environment variable {} (the LimeSurvey database's connection string) is not set",
                    cfg.url_env
                ),
            })?;
        let dialect = if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Dialect::MySql
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(SourceError::Database {
                pipeline: pipeline.to_string(),
                message: format!(
                    "{}: the connection string must start with mysql://, mariadb:// or postgres://",
                    cfg.url_env
                ),
            });
        };
        let url = url.replacen("mariadb:", "mysql:", 1);
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(20))
            .connect(&url)
            .await
            .map_err(|e| db_err(pipeline, &format!("cannot connect ({})", cfg.url_env), e))?;
        let mut r = LimesurveyReader {
            cfg: cfg.clone(),
            pipeline: pipeline.to_string(),
            pool,
            dialect,
            table: String::new(),
            schema: cfg.schema,
        };
        let sid = cfg.survey_id;
        let p = &cfg.table_prefix;
        let v7 = format!("{p}responses_{sid}");
        let v3 = format!("{p}survey_{sid}");
        if r.schema == LimesurveySchema::Auto {
            r.schema = if r.table_exists(&v7).await? {
                LimesurveySchema::V7
            } else if r.table_exists(&v3).await? {
                if r.table_exists(&format!("{p}answer_l10ns")).await? {
                    LimesurveySchema::V5
                } else {
                    LimesurveySchema::V3
                }
            } else {
                return Err(SourceError::Database {
                    pipeline: pipeline.to_string(),
                    message: format!(
                        "survey {sid}: neither {v3} (LimeSurvey 3–6) nor {v7} (LimeSurvey 7) exists; check source.survey_id and source.table_prefix"
                    ),
                });
            };
        }
        r.table = if r.schema == LimesurveySchema::V7 {
            v7
        } else {
            v3
        };
        if !r.table_exists(&r.table).await? {
            return Err(SourceError::Database {
                pipeline: pipeline.to_string(),
                message: format!("survey {sid}: table {} does not exist", r.table),
            });
        }
        Ok(r)
    }

    /// The object name the ledger keeps the watermark under.
    pub fn object_name(&self) -> &str {
        &self.table
    }

    async fn texts(&self, sql: &str, what: &str) -> Result<Vec<Vec<Option<String>>>, SourceError> {
        // identifiers in the statement are validated (the prefix), numeric (the survey id) or
        // quoted (column names read from the catalog); no value of a response is interpolated
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(&self.pipeline, what, e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<Option<String>, _>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| db_err(&self.pipeline, what, e))
            })
            .collect()
    }

    async fn table_exists(&self, name: &str) -> Result<bool, SourceError> {
        let d = self.dialect;
        let sql = format!(
            "SELECT {} FROM information_schema.tables WHERE table_schema = {} AND table_name = '{}'",
            d.text("table_name"),
            d.current_schema(),
            name
        );
        Ok(!self.texts(&sql, "listing tables").await?.is_empty())
    }

    async fn columns(&self) -> Result<Vec<Column>, SourceError> {
        let d = self.dialect;
        let sql = format!(
            "SELECT {} FROM information_schema.columns WHERE table_schema = {} AND table_name = '{}' ORDER BY ordinal_position",
            d.text("column_name"),
            d.current_schema(),
            self.table
        );
        let db_cols: Vec<String> = self
            .texts(&sql, "listing the response table's columns")
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        // question codes
        let p = &self.cfg.table_prefix;
        let qsql = format!(
            "SELECT {}, {}, {} FROM {} WHERE sid = {}",
            d.text("qid"),
            d.text("parent_qid"),
            d.text("title"),
            d.quote(&format!("{p}questions")),
            self.cfg.survey_id
        );
        let mut titles: HashMap<i64, String> = HashMap::new();
        for r in self.texts(&qsql, "reading the survey's questions").await? {
            if let (Some(Some(q)), Some(Some(t))) = (r.first(), r.get(2))
                && let Ok(q) = q.parse::<i64>()
            {
                titles.insert(q, t.clone());
            }
        }
        let sgqa = regex::Regex::new(&format!(r"^{}X(\d+)X(\d+)(.*)$", self.cfg.survey_id))
            .expect("valid pattern");
        let v7 = regex::Regex::new(r"^Q(\d+)(.*)$").expect("valid pattern");
        let mut out = Vec::new();
        for c in db_cols {
            if NEVER_READ.contains(&c.as_str()) {
                continue;
            }
            if FIXED.contains(&c.as_str()) {
                out.push(Column::plain(c));
                continue;
            }
            let parsed = match self.schema {
                LimesurveySchema::V7 => v7
                    .captures(&c)
                    .map(|m| (m[1].to_string(), m[2].to_string())),
                _ => sgqa
                    .captures(&c)
                    .map(|m| (m[2].to_string(), m[3].to_string())),
            };
            let Some((qid, suffix)) = parsed else {
                out.push(Column::plain(c));
                continue;
            };
            let qid: i64 = qid.parse().unwrap_or(-1);
            let name = match titles.get(&qid) {
                None => c.clone(),
                Some(t) if suffix.is_empty() => t.clone(),
                Some(t) => {
                    let sub = suffix.trim_start_matches('_');
                    // LimeSurvey 7: _S<qid of the subquestion>
                    let sub = sub
                        .strip_prefix('S')
                        .and_then(|n| n.parse::<i64>().ok())
                        .filter(|_| self.schema == LimesurveySchema::V7)
                        .and_then(|n| titles.get(&n).cloned())
                        .unwrap_or_else(|| sub.to_string());
                    format!("{t}[{sub}]")
                }
            };
            out.push(Column {
                db_name: c,
                name,
                qid: Some(qid),
                question: true,
            });
        }
        Ok(out)
    }

    /// (qid, code) → label in the chosen language.
    async fn labels(&self) -> Result<HashMap<(i64, String), String>, SourceError> {
        let d = self.dialect;
        let p = &self.cfg.table_prefix;
        let sid = self.cfg.survey_id;
        let (a, q) = (
            d.quote(&format!("{p}answers")),
            d.quote(&format!("{p}questions")),
        );
        let sql = match self.schema {
            LimesurveySchema::V3 => format!(
                "SELECT {}, {}, {}, {} FROM {a} a JOIN {q} q ON q.qid = a.qid WHERE q.sid = {sid}",
                d.text("a.qid"),
                d.text("a.code"),
                d.text("a.answer"),
                d.text("a.language")
            ),
            _ => format!(
                "SELECT {}, {}, {}, {} FROM {a} a JOIN {} l ON l.aid = a.aid JOIN {q} q ON q.qid = a.qid WHERE q.sid = {sid}",
                d.text("a.qid"),
                d.text("a.code"),
                d.text("l.answer"),
                d.text("l.language"),
                d.quote(&format!("{p}answer_l10ns")),
            ),
        };
        // (qid, code) → language → label
        let mut all: BTreeMap<(i64, String), BTreeMap<String, String>> = BTreeMap::new();
        let mut langs: BTreeMap<String, usize> = BTreeMap::new();
        for r in self.texts(&sql, "reading answer labels").await? {
            let [Some(qid), Some(code), Some(label), Some(lang)] =
                <[Option<String>; 4]>::try_from(r).unwrap_or([None, None, None, None])
            else {
                continue;
            };
            let Ok(qid) = qid.parse::<i64>() else {
                continue;
            };
            *langs.entry(lang.clone()).or_default() += 1;
            all.entry((qid, code))
                .or_default()
                .insert(lang, strip_html(&label));
        }
        let lang = match &self.cfg.language {
            Some(l) => l.clone(),
            None => ["fi", "sv", "en"]
                .iter()
                .find(|l| langs.contains_key(**l))
                .map(|l| l.to_string())
                .or_else(|| langs.keys().next().cloned())
                .unwrap_or_default(),
        };
        Ok(all
            .into_iter()
            .filter_map(|(k, mut by)| {
                by.remove(&lang)
                    .or_else(|| by.into_values().next())
                    .map(|l| (k, l))
            })
            .collect())
    }

    fn parse_watermark(prev: Option<&str>) -> i64 {
        prev.and_then(|f| f.strip_prefix("wm:"))
            .and_then(|f| f.split(';').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The one object this source offers: the rows after the watermark stored in `prev` (the
    /// fingerprint of the last counted run), with the next watermark as its fingerprint.
    pub async fn list(&self, prev: Option<&str>) -> Result<Vec<SourceObject>, SourceError> {
        let d = self.dialect;
        let from = Self::parse_watermark(prev);
        let mut sql = format!(
            "SELECT {}, {}, {}, {} FROM {} WHERE id > {from}",
            d.text("id"),
            d.text("submitdate"),
            d.text("datestamp"),
            d.text("startdate"),
            d.quote(&self.table)
        );
        sql.push_str(&format!(" ORDER BY id LIMIT {}", self.cfg.max_rows_per_run));
        let rows = self.texts(&sql, "listing new responses").await?;
        let cutoff = Utc::now().naive_utc() - chrono::Duration::days(self.cfg.pending_days as i64);
        let mut watermark = from;
        let mut held = false;
        let (mut max, mut count) = (from, 0u64);
        // (id, submitted) of the rows after the watermark: their state is part of the fingerprint
        let mut after: Vec<(i64, bool)> = Vec::new();
        for r in &rows {
            let Some(id) = r[0].as_deref().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let done = r[1].is_some();
            let last = r[2].as_deref().or(r[3].as_deref()).and_then(|t| {
                NaiveDateTime::parse_from_str(&t[..t.len().min(19)], "%Y-%m-%d %H:%M:%S").ok()
            });
            let pending = !done && last.is_none_or(|t| t > cutoff);
            if pending {
                held = true;
            }
            if !held {
                watermark = id;
            } else {
                after.push((id, done));
            }
            max = id;
            if done || self.cfg.incomplete == Incomplete::Partial {
                count += 1;
            }
        }
        Ok(vec![SourceObject {
            name: self.table.clone(),
            size: count,
            etag: None,
            last_modified: Utc::now(),
            // the same whatever the previous watermark was, so that a run that finds the
            // same rows in the same state sees the object unchanged
            fingerprint: Some(format!(
                "wm:{watermark};max:{max};submitted:{}",
                after.iter().filter(|(_, d)| *d).count()
            )),
            range: Some((from, max)),
        }])
    }

    /// The rows of `obj` (as listed), named as the mapping sees them.
    pub async fn records(&self, obj: &SourceObject) -> Result<TableObject, SourceError> {
        let d = self.dialect;
        let (from, to) = obj.range.unwrap_or((0, 0));
        let columns = self.columns().await?;
        let labels = if self.cfg.answers == crate::config::AnswerText::Label {
            self.labels().await?
        } else {
            HashMap::new()
        };
        let select: Vec<String> = columns
            .iter()
            .map(|c| d.text(&d.quote(&c.db_name)))
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {} WHERE id > {from} AND id <= {to}",
            select.join(", "),
            d.quote(&self.table)
        );
        if self.cfg.incomplete == Incomplete::Skip {
            sql.push_str(" AND submitdate IS NOT NULL");
        }
        sql.push_str(" ORDER BY id");
        let rows = self.texts(&sql, "reading responses").await?;
        let completion = columns.iter().position(|c| c.db_name == "submitdate");
        let mut data = Vec::with_capacity(rows.len());
        for r in rows {
            let id = r
                .first()
                .and_then(|v| v.as_deref())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let mut out: Vec<String> = r
                .iter()
                .zip(&columns)
                .map(|(v, c)| match (v, c.question) {
                    (None, true) => NOT_SHOWN.to_string(),
                    (None, false) => String::new(),
                    (Some(v), _) => {
                        let v = v.trim();
                        c.qid
                            .and_then(|q| labels.get(&(q, v.to_string())))
                            .cloned()
                            .unwrap_or_else(|| v.to_string())
                    }
                })
                .collect();
            let done = completion.is_some_and(|i| r[i].is_some());
            out.push(if done { "complete" } else { "partial" }.to_string());
            data.push((id, out));
        }
        let mut names: Vec<String> = columns.into_iter().map(|c| c.name).collect();
        names.push("completion".to_string());
        let description = format!(
            "LimeSurvey {} database ({}), table {}, ids {}..={}",
            match self.schema {
                LimesurveySchema::V3 => "3–4",
                LimesurveySchema::V5 => "5–6",
                _ => "7",
            },
            match d {
                Dialect::MySql => "MariaDB/MySQL",
                Dialect::Postgres => "PostgreSQL",
            },
            self.table,
            from + 1,
            to
        );
        Ok(TableObject::new(names, data, description))
    }
}
