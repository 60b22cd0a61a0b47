//! The PostgreSQL front end: psql, DBeaver, R, Python and BI tools over the wire protocol, one
//! session per connection.
//!
//! From the datafusion-postgres family only the parts that hold no policy are used: pgwire's
//! protocol, the parser for PostgreSQL clients' dialect, `pg_catalog` (what psql's `\d` and
//! DBeaver read), the `SET`/`SHOW` and transaction hooks and the Arrow → PostgreSQL encoding.
//! What decides who connects and what runs is here: the startup handler speaks SCRAM-SHA-256
//! against the access file's verifiers (no plaintext password, no user without one, no
//! fallback to plain TCP off loopback); a connection's session holds its role's tables only
//! ([`session::session`]); every statement but a query, `SHOW`, a client setting or a
//! transaction boundary is refused before it is planned, and a query runs under the server's
//! query slots, time limit and memory pool, on the simple and on the extended protocol alike.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;

use super::access::User;
use super::secrets::ScramExchange;
use super::{ServeError, Server, session};

/// The SASL mechanism offered: SCRAM-SHA-256 without channel binding.
const SCRAM: &str = "SCRAM-SHA-256";

/// The client settings `SET` may change; every other `SET` (the engine's `datafusion.*`
/// options above all) is refused.
const CLIENT_SETTINGS: [&str; 8] = [
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
    "client_min_messages",
];

/// What a statement is, decided from its syntax before anything is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// a query: planned, checked read-only and run under the limits
    Query,
    /// `SHOW`, a client setting, a transaction boundary: answered by the session hooks
    Session,
    /// anything else, with the reason given to the client
    Refused(String),
}

/// The kind of `statement`.
pub fn classify(statement: &Statement) -> Kind {
    match statement {
        Statement::Query(_) | Statement::ShowTables { .. } | Statement::ShowColumns { .. } => {
            Kind::Query
        }
        Statement::Explain { statement, .. } if matches!(**statement, Statement::Query(_)) => {
            Kind::Query
        }
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::ShowVariable { .. } => Kind::Session,
        Statement::Set(Set::SetTimeZone { local: false, .. }) => Kind::Session,
        Statement::Set(Set::SingleAssignment {
            scope: None,
            hivevar: false,
            variable,
            ..
        }) => {
            let name = variable.to_string().to_lowercase();
            if CLIENT_SETTINGS.contains(&name.as_str()) {
                Kind::Session
            } else {
                Kind::Refused(format!(
                    "SET {name} is not accepted: the engine's settings are the server's; a client may set {}",
                    CLIENT_SETTINGS.join(", ")
                ))
            }
        }
        other => {
            // the statement's leading keywords: CREATE EXTERNAL TABLE, COPY, INSERT, …
            const LEADING: [&str; 12] = [
                "CREATE",
                "OR",
                "REPLACE",
                "EXTERNAL",
                "TEMPORARY",
                "UNLOGGED",
                "TABLE",
                "VIEW",
                "INDEX",
                "SCHEMA",
                "DATABASE",
                "FUNCTION",
            ];
            let text = other.to_string();
            let mut words = text.split_whitespace();
            let first = words.next().unwrap_or("").to_uppercase();
            let mut word = first.clone();
            if first == "CREATE" {
                for w in words.map(str::to_uppercase) {
                    if !LEADING.contains(&w.as_str()) {
                        break;
                    }
                    word = format!("{word} {w}");
                }
            }
            Kind::Refused(format!(
                "the server is read-only: {word} is not accepted (queries, SHOW and the client settings are)"
            ))
        }
    }
}

/// The statements of `sql` in PostgreSQL clients' dialect. DataFusion's own statements that
/// dialect cannot read (`CREATE EXTERNAL TABLE … STORED AS CSV`, `COPY … TO`) are refused by
/// name rather than as a syntax error.
pub fn parse(parser: &PostgresCompatibilityParser, sql: &str) -> PgWireResult<Vec<Statement>> {
    use datafusion::sql::parser::{DFParser, Statement as Df};
    parser.parse(sql).map_err(|e| {
        let refused = DFParser::parse_sql(sql).ok().and_then(|statements| {
            statements.iter().find_map(|s| match s {
                Df::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE"),
                Df::CopyTo(_) => Some("COPY"),
                _ => None,
            })
        });
        match refused {
            Some(what) => error(
                "25006",
                format!(
                    "the server is read-only: {what} is not accepted (queries, SHOW and the client settings are)"
                ),
            ),
            None => error("42601", e.to_string()),
        }
    })
}

fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A failed statement as the client sees it: PostgreSQL's SQLSTATE for its kind.
fn failure(e: &ServeError) -> PgWireError {
    use datafusion::error::DataFusionError as D;
    let code = match e {
        ServeError::TimeLimit(_) => "57014",
        ServeError::Busy => "53000",
        ServeError::Query(q) => match q.find_root() {
            D::SQL(..) => "42601",
            D::Plan(_) | D::SchemaError(..) => "42000",
            D::ResourcesExhausted(_) => "53200",
            _ => "XX000",
        },
        _ => "XX000",
    };
    error(code, crate::ops::exit::render(e))
}

/// What one connection holds: its user once authenticated, its session.
pub struct Connection {
    server: Arc<Server>,
    /// whether plain TCP is accepted on the address the client connected to
    plain_allowed: bool,
    user: OnceLock<User>,
    /// the session and the ledger row it was made at; made again when a run commits
    session: Mutex<Option<(i64, Arc<SessionContext>)>>,
    parser: PostgresCompatibilityParser,
}

impl Connection {
    fn user(&self) -> PgWireResult<&User> {
        self.user
            .get()
            .ok_or_else(|| error("28000", "not authenticated"))
    }

    /// The session for the server's current snapshot: the role's tables and pg_catalog.
    fn session(&self) -> PgWireResult<(i64, Arc<SessionContext>)> {
        let snapshot = self.server.snapshots.current();
        let mut held = self.session.lock().expect("not poisoned");
        if let Some((seq, ctx)) = held.as_ref()
            && *seq == snapshot.seq
        {
            return Ok((*seq, ctx.clone()));
        }
        let user = self.user()?;
        let ctx = session::session(
            &user.role,
            &snapshot,
            &self.server.snapshots.runtime,
            self.server.limits,
        )
        .map_err(|e| failure(&e))?;
        setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider)
            .map_err(|e| error("XX000", format!("pg_catalog: {e}")))?;
        let ctx = Arc::new(ctx);
        *held = Some((snapshot.seq, ctx.clone()));
        Ok((snapshot.seq, ctx))
    }

    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        parse(&self.parser, sql)
    }

    /// Run a query's plan for this connection's user: a query slot, the limits (the client's
    /// `statement_timeout` when shorter than the server's), the access log and the metrics.
    async fn run<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        (seq, ctx): (i64, &SessionContext),
        plan: LogicalPlan,
        format: &Format,
    ) -> PgWireResult<Response> {
        let s = &self.server;
        let user = self.user()?;
        let started = Instant::now();
        let slot = s.query_slot().await.map_err(|e| failure(&e))?;
        let _running = s.metrics.running();
        let mut limits = s.limits;
        if let Some(ms) = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            limits.query_time = limits.query_time.min(std::time::Duration::from_millis(ms));
        }
        let result = session::run_plan(ctx, plan, limits, slot).await;
        let seconds = started.elapsed().as_secs_f64();
        let (planned, batches) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(
                    target: "palaute::access", front = "pg", user = %user.name, role = user.role.name(),
                    kind = "sql", outcome = "refused", seconds, "statement failed"
                );
                return Err(failure(&e));
            }
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        s.metrics
            .query("pg", user.role.name(), "sql", seconds, rows as u64);
        tracing::info!(
            target: "palaute::access", front = "pg", user = %user.name, role = user.role.name(),
            kind = "sql", rows, seconds, ledger_seq = seq, "statement"
        );
        let schema = batches.first().map_or(planned, |b| b.schema());
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, Some(options))?);
        let encoding = fields.clone();
        let rows = futures::stream::iter(
            batches
                .into_iter()
                .flat_map(move |b| encode_recordbatch(encoding.clone(), b)),
        );
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
}

/// The handlers of one connection (pgwire asks the factory for each).
pub struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
}

impl Handlers {
    pub fn new(server: Arc<Server>, plain_allowed: bool) -> Handlers {
        let conn = Arc::new(Connection {
            server,
            plain_allowed,
            user: OnceLock::new(),
            session: Mutex::new(None),
            parser: PostgresCompatibilityParser::new(),
        });
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        Handlers {
            startup: Arc::new(Startup {
                conn: conn.clone(),
                exchange: tokio::sync::Mutex::new(None),
                parameters,
            }),
            queries: Arc::new(Queries {
                parser: Arc::new(Parser { conn: conn.clone() }),
                conn,
            }),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// The exchange under way: the server's side of SCRAM and the user it is for (none for an
/// unknown user, whose exchange runs against a decoy verifier and fails at the proof).
type Exchange = (ScramExchange, Option<User>);

/// SCRAM-SHA-256 against the access file's verifiers.
pub struct Startup {
    conn: Arc<Connection>,
    exchange: tokio::sync::Mutex<Option<Exchange>>,
    parameters: DefaultServerParameterProvider,
}

fn server_nonce() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 18];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[async_trait]
impl StartupHandler for Startup {
    /// Every failure before authentication ends the connection: pgwire answers a non-fatal
    /// error with ReadyForQuery, which for a startup error would let a client past the
    /// exchange (the query handlers would still refuse it: they need an authenticated user).
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.step(client, message).await.map_err(|e| {
            let mut info: ErrorInfo = e.into();
            info.severity = "FATAL".into();
            PgWireError::UserError(Box::new(info))
        })
    }
}

impl Startup {
    async fn step<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let server = &self.conn.server;
        let name = || {
            client
                .metadata()
                .get(METADATA_USER)
                .cloned()
                .unwrap_or_default()
        };
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if !client.is_secure() && !self.conn.plain_allowed {
                    server.metrics.auth_failure("pg");
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28000".into(),
                        "TLS is required on this address: connect with sslmode=require".into(),
                    ))));
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![SCRAM.to_string()],
                    )))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let mut exchange = self.exchange.lock().await;
                match exchange.take() {
                    None => {
                        let first = msg.into_sasl_initial_response()?;
                        if first.auth_method != SCRAM {
                            return Err(PgWireError::UnsupportedSASLAuthMethod(first.auth_method));
                        }
                        let data = first.data.unwrap_or_default();
                        let text = std::str::from_utf8(&data)
                            .map_err(|_| PgWireError::InvalidScramMessage("not UTF-8".into()))?;
                        let name = name();
                        let user = server
                            .access()
                            .users
                            .get(&name)
                            .filter(|u| u.password.is_some())
                            .cloned();
                        let verifier = user
                            .as_ref()
                            .and_then(|u| u.password.clone())
                            .unwrap_or_else(|| server.tokens.decoy_verifier(&name));
                        let (started, server_first) =
                            ScramExchange::start(verifier, text, &server_nonce())
                                .map_err(PgWireError::InvalidScramMessage)?;
                        *exchange = Some((started, user));
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(server_first.into_bytes().into()),
                            ))
                            .await?;
                    }
                    Some((started, user)) => {
                        let response = msg.into_sasl_response()?;
                        let text = std::str::from_utf8(&response.data).unwrap_or("");
                        let name = name();
                        match (started.finish(text), user) {
                            (Ok(server_final), Some(user)) => {
                                client
                                    .send(PgWireBackendMessage::Authentication(
                                        Authentication::SASLFinal(server_final.into_bytes().into()),
                                    ))
                                    .await?;
                                let (pid, key) =
                                    RandomPidSecretKeyGenerator::default().generate(client);
                                client.set_pid_and_secret_key(pid, key);
                                tracing::info!(
                                    target: "palaute::access", front = "pg", user = %user.name,
                                    role = user.role.name(), outcome = "connected", "authenticated"
                                );
                                let _ = self.conn.user.set(user);
                                finish_authentication(client, &self.parameters).await?;
                            }
                            _ => {
                                server.metrics.auth_failure("pg");
                                tracing::info!(target: "palaute::access", front = "pg", outcome = "refused", "authentication refused");
                                return Err(PgWireError::InvalidPassword(name));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A prepared statement: its syntax, its plan, and whether the session hooks answer it.
#[derive(Clone, Debug)]
pub struct Prepared {
    statement: Statement,
    plan: LogicalPlan,
    by_hooks: bool,
    /// the ledger row of the session it was planned in (its tables' versions)
    seq: i64,
}

/// Parses and plans the extended protocol's statements, refusing as the simple protocol does.
pub struct Parser {
    conn: Arc<Connection>,
}

/// A plan's parameters `$1, $2, …` in order, with the types DataFusion inferred.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types: HashMap<String, Option<DataType>> = plan
        .get_parameter_types()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut ordered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .map(|(id, t)| {
            let n = id
                .trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX);
            (n, t)
        })
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    Ok(ordered.into_iter().map(|(_, t)| t).collect())
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.conn.parse(sql)?;
        if statements.is_empty() {
            return Ok(None);
        }
        if statements.len() > 1 {
            return Err(error("42601", "a prepared statement holds one statement"));
        }
        let statement = statements.remove(0);
        let (seq, ctx) = self.conn.session()?;
        let kind = classify(&statement);
        if let Kind::Refused(why) = kind {
            return Err(error("25006", why));
        }
        if kind == Kind::Session {
            let hooks: [&dyn QueryHook; 2] = [&TransactionStatementHook, &SetShowHook];
            for hook in hooks {
                if let Some(plan) = hook
                    .handle_extended_parse_query(&statement, &ctx, client)
                    .await
                {
                    return Ok(Some(Prepared {
                        statement,
                        plan: plan?,
                        by_hooks: true,
                        seq,
                    }));
                }
            }
        }
        let plan = session::plan(&ctx, statement.clone())
            .await
            .map_err(|e| failure(&e))?;
        Ok(Some(Prepared {
            statement,
            plan,
            by_hooks: false,
            seq,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        parameter_types(&stmt.plan)?
            .iter()
            .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        arrow_schema_to_pg_fields(
            stmt.plan.schema().as_arrow(),
            column_format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

/// Both query protocols of one connection.
pub struct Queries {
    conn: Arc<Connection>,
    parser: Arc<Parser>,
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.conn.parse(query)?;
        let (seq, ctx) = self.conn.session()?;
        let mut out = Vec::with_capacity(statements.len());
        for statement in statements {
            // BEGIN / COMMIT / ROLLBACK, and nothing else in a failed transaction
            if let Some(r) = TransactionStatementHook
                .handle_simple_query(&statement, &ctx, client)
                .await
            {
                out.push(r?);
                continue;
            }
            match classify(&statement) {
                Kind::Refused(why) => return Err(error("25006", why)),
                Kind::Session => {
                    if let Some(r) = SetShowHook
                        .handle_simple_query(&statement, &ctx, client)
                        .await
                    {
                        out.push(r?);
                        continue;
                    }
                }
                Kind::Query => {}
            }
            let plan = session::plan(&ctx, statement)
                .await
                .map_err(|e| failure(&e))?;
            out.push(
                self.conn
                    .run(&*client, (seq, &ctx), plan, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let (_, ctx) = self.conn.session()?;
        let none = ParamValues::List(vec![]);
        if let Some(r) = TransactionStatementHook
            .handle_extended_query(&prepared.statement, &prepared.plan, &none, &ctx, client)
            .await
        {
            return r;
        }
        if prepared.by_hooks {
            return SetShowHook
                .handle_extended_query(&prepared.statement, &prepared.plan, &none, &ctx, client)
                .await
                .unwrap_or_else(|| Ok(Response::Execution(Tag::new("SET"))));
        }
        let types = parameter_types(&prepared.plan)?;
        let refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
        let params = deserialize_parameters(portal, &refs)?;
        let plan = prepared
            .plan
            .clone()
            .replace_params_with_values(&params)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        self.conn
            .run(
                &*client,
                (prepared.seq, &ctx),
                plan,
                &portal.result_column_format,
            )
            .await
    }
}

/// Serve one accepted connection (TLS negotiated as the client asks; required off loopback).
pub async fn connection(
    server: Arc<Server>,
    stream: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    plain_allowed: bool,
) {
    let handlers = Arc::new(Handlers::new(server, plain_allowed));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    if let Err(e) = pgwire::tokio::process_socket(stream, acceptor, handlers).await {
        tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement of the table and the kind the server takes it for.
    #[test]
    fn statements_are_classified_before_planning() {
        let cases = include_str!("pg_statements.txt");
        let parser = PostgresCompatibilityParser::new();
        let mut checked = 0;
        for line in cases
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (want, sql) = line.split_once('|').expect("kind | statement");
            let statements = parser
                .parse(sql.trim())
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(statements.len(), 1, "{sql}");
            let got = match classify(&statements[0]) {
                Kind::Query => "query",
                Kind::Session => "session",
                Kind::Refused(_) => "refused",
            };
            assert_eq!(got, want.trim(), "{sql}");
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} cases");
    }

    #[test]
    fn a_refusal_names_what_was_refused() {
        let parser = PostgresCompatibilityParser::new();
        let s = parser
            .parse("SET datafusion.execution.target_partitions = 1")
            .unwrap();
        let Kind::Refused(why) = classify(&s[0]) else {
            panic!("accepted")
        };
        assert!(
            why.contains("datafusion.execution.target_partitions"),
            "{why}"
        );
        let s = parser.parse("CREATE TABLE t (a INT)").unwrap();
        let Kind::Refused(why) = classify(&s[0]) else {
            panic!("accepted")
        };
        assert!(why.contains("CREATE TABLE is"), "{why}");
        for sql in [
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp/x'",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/tmp/x.csv'",
        ] {
            let why = match parse(&parser, sql) {
                Ok(s) => match classify(&s[0]) {
                    Kind::Refused(why) => why,
                    k => panic!("{sql}: {k:?}"),
                },
                Err(e) => e.to_string(),
            };
            assert!(
                why.contains("CREATE EXTERNAL TABLE is not accepted"),
                "{sql}: {why}"
            );
        }
        let e = parse(&parser, "SELEC 1").unwrap_err().to_string();
        assert!(!e.contains("not accepted"), "{e}");
    }
}
