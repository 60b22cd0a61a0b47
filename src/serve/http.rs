//! The HTTP front end (axum): the marts as CSV, JSON, Parquet or XLSX, SQL for the users allowed
//! it, health and metrics. Bearer-token authentication: `Authorization: Bearer <user>:<secret>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::Server;
use super::access::User;
use super::formats::{self, Format};
use super::session;
use crate::warehouse::tables::MART_TABLES;

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/marts/{mart}", get(mart))
        .route("/api/v1/sql", post(sql))
        .with_state(server)
}

/// A refusal or a failure, as the client sees it: a status and one line of text.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut r = (self.0, format!("{}\n", self.1)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"palaute\""),
            );
        }
        r
    }
}

async fn health(State(s): State<Arc<Server>>) -> Response {
    s.metrics.request("health", 200);
    let body = serde_json::json!({"status": "ok", "ledger_seq": s.snapshots.current().seq});
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<Server>>) -> Response {
    s.metrics.request("metrics", 200);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// The user a request's bearer token names, checked against its hash.
async fn authenticate(s: &Server, headers: &HeaderMap) -> Result<User, Failure> {
    let refused = || {
        Failure(
            StatusCode::UNAUTHORIZED,
            "authentication required: Authorization: Bearer <token>".into(),
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        s.metrics.auth_failure("http");
        return Err(refused());
    };
    match s.tokens.check(&s.access(), token).await {
        Some(u) => Ok(u),
        None => {
            s.metrics.auth_failure("http");
            tracing::info!(target: "palaute::access", front = "http", outcome = "refused", "authentication refused");
            Err(Failure(
                StatusCode::UNAUTHORIZED,
                "the token was refused".into(),
            ))
        }
    }
}

/// The format a request asks for: `format=`, else its `Accept` header, else CSV.
fn format_of(params: &BTreeMap<String, String>, headers: &HeaderMap) -> Result<Format, Failure> {
    if let Some(f) = params.get("format") {
        return Format::named(f).ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("format={f}: use csv, json, parquet or xlsx"),
            )
        });
    }
    Ok(headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::accepted)
        .unwrap_or(Format::Csv))
}

/// The filters `GET /api/v1/marts/{mart}` takes, each a column of every mart.
const MART_FILTERS: [&str; 6] = [
    "period_type",
    "period",
    "geo_level",
    "geo_code",
    "service",
    "instrument",
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn mart(
    State(s): State<Arc<Server>>,
    Path(mart): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let user = authenticate(&s, &headers).await?;
        let format = format_of(&params, &headers)?;
        for k in params.keys() {
            if k != "format" && !MART_FILTERS.contains(&k.as_str()) {
                return Err(Failure(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown parameter {k} (filters: {}, and format)",
                        MART_FILTERS.join(", ")
                    ),
                ));
            }
        }
        if !MART_TABLES.contains(&mart.as_str()) {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no mart {mart} (marts: {})", MART_TABLES.join(", ")),
            ));
        }
        let mut sql = format!("SELECT * FROM {mart}");
        let filters: Vec<String> = MART_FILTERS
            .iter()
            .filter_map(|c| params.get(*c).map(|v| format!("{c} = {}", quote(v))))
            .collect();
        if !filters.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&filters.join(" AND "));
        }
        // a fixed order: by the text columns, which hold every key of a mart's rows
        let snapshot = s.snapshots.current();
        let Some(table) = snapshot.providers.get(&mart) else {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("{mart} has not been computed in this warehouse yet"),
            ));
        };
        let order: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .filter(|f| {
                matches!(
                    f.data_type(),
                    arrow::datatypes::DataType::Utf8
                        | arrow::datatypes::DataType::LargeUtf8
                        | arrow::datatypes::DataType::Utf8View
                        | arrow::datatypes::DataType::Dictionary(..)
                )
            })
            .map(|f| format!("\"{}\"", f.name()))
            .collect();
        if !order.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&order.join(", "));
        }
        run(&s, &user, "mart", &sql, format, &mart).await
    }
    .await;
    respond(&s, "mart", r)
}

async fn sql(
    State(s): State<Arc<Server>>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = async {
        let user = authenticate(&s, &headers).await?;
        if !user.sql {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may not run SQL over HTTP: use GET /api/v1/marts/{{mart}}",
                    user.name
                ),
            ));
        }
        let format = format_of(&params, &headers)?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| Failure(StatusCode::BAD_REQUEST, "the body is not UTF-8".into()))?;
        // a JSON body {"sql": "..."} or the statement as it is
        let statement = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) => o
                .get("sql")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    Failure(StatusCode::BAD_REQUEST, "a JSON body needs \"sql\"".into())
                })?,
            _ => text.to_string(),
        };
        run(&s, &user, "sql", &statement, format, "result").await
    }
    .await;
    respond(&s, "sql", r)
}

/// Run `statement` for `user` and encode its result.
async fn run(
    s: &Server,
    user: &User,
    kind: &'static str,
    statement: &str,
    format: Format,
    name: &str,
) -> Result<Response, Failure> {
    let started = Instant::now();
    let slot = s
        .query_slot()
        .await
        .map_err(|e| Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let _running = s.metrics.running();
    let snapshot = s.snapshots.current();
    let ctx = session::session(&user.role, &snapshot, &s.snapshots.runtime, s.limits)
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let result = session::query(&ctx, statement, s.limits, slot).await;
    let seconds = started.elapsed().as_secs_f64();
    let (planned, batches) = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(
                target: "palaute::access", front = "http", user = %user.name, role = user.role.name(),
                kind, outcome = "refused", seconds, "statement failed"
            );
            return Err(Failure(e.http_status(), e.to_string()));
        }
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    s.metrics
        .query("http", user.role.name(), kind, seconds, rows as u64);
    tracing::info!(
        target: "palaute::access", front = "http", user = %user.name, role = user.role.name(),
        kind, rows, seconds, ledger_seq = snapshot.seq, "statement"
    );
    // the batches' own schema when there are rows (what the Parquet writer checks them against)
    let schema = batches.first().map_or(planned, |b| b.schema());
    let bytes = formats::encode(format, &schema, &batches)
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let disposition = format!("inline; filename=\"{name}.{}\"", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

fn respond(s: &Server, endpoint: &'static str, r: Result<Response, Failure>) -> Response {
    let r = r.unwrap_or_else(|f| f.into_response());
    s.metrics.request(endpoint, r.status().as_u16());
    r
}
