//! `palaute serve`: the warehouse for planners' and BI tools, read-only, each user seeing what
//! their role allows (docs/serve.md).
//!
//! The server reads the tables at the ledger's last row ([`snapshot`]) and takes the next row
//! when a run commits; each request gets a session of its own with only its role's tables
//! ([`session`]); who may connect is the access file ([`access`]), whose passwords and tokens
//! are stored as SCRAM verifiers and argon2 hashes ([`secrets`]). The HTTP front end is
//! [`http`]. Plain TCP is accepted on loopback only; any other address needs TLS.

pub mod access;
pub mod formats;
pub mod http;
pub mod metrics;
pub mod pg;
pub mod secrets;
pub mod session;
pub mod snapshot;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Cause;
use crate::warehouse::{Warehouse, WarehouseError};
use access::{Access, AccessError, User};
use metrics::Metrics;
use secrets::TokenHash;
use session::Limits;
use snapshot::Snapshots;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("opening the tables: {0}")]
    Open(#[source] Cause),
    #[error("{0}")]
    Usage(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("the query ran longer than the server's limit of {} s", .0.as_secs())]
    TimeLimit(Duration),
    #[error("the server is busy: every query slot is taken; try again")]
    Busy,
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

impl ServeError {
    pub fn exit_code(&self) -> i32 {
        use crate::ops::exit;
        match self {
            ServeError::Access(_) | ServeError::Usage(_) | ServeError::Tls(_) => exit::CONFIG,
            ServeError::Warehouse(e) => e.exit_code(),
            _ => exit::ENVIRONMENT,
        }
    }

    /// The HTTP status a failed statement answers with.
    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode as S;
        use datafusion::error::DataFusionError as D;
        match self {
            ServeError::Query(e) => match e.find_root() {
                D::SQL(..) | D::Plan(_) | D::SchemaError(..) => S::BAD_REQUEST,
                D::ResourcesExhausted(_) => S::INSUFFICIENT_STORAGE,
                _ => S::INTERNAL_SERVER_ERROR,
            },
            ServeError::TimeLimit(_) => S::REQUEST_TIMEOUT,
            ServeError::Busy => S::SERVICE_UNAVAILABLE,
            _ => S::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What `palaute serve` was given.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub access: PathBuf,
    pub http: Option<SocketAddr>,
    pub pg: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_connections: usize,
    pub max_queries: usize,
    pub limits: Limits,
    /// how often the ledger and the access file are looked at
    pub refresh: Duration,
}

/// Verified tokens (by a keyed hash of the token, never the token), so that argon2 runs once
/// per token and reading of the access file; refusals always pay it.
pub struct Tokens {
    key: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], String>>,
    /// checked instead when the token names no user with a token, so that an unknown user's
    /// refusal takes as long as a wrong secret's
    decoy: TokenHash,
}

impl Tokens {
    fn new() -> Tokens {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Tokens {
            key,
            verified: Mutex::new(HashMap::new()),
            decoy: TokenHash::new(&secrets::new_token("decoy")),
        }
    }

    /// The verifier an unknown user's SCRAM exchange runs against: the same for the same name
    /// while the server runs, so that nothing tells it apart from a user's.
    pub fn decoy_verifier(&self, user: &str) -> secrets::ScramVerifier {
        secrets::ScramVerifier::decoy(&self.key, user)
    }

    fn forget(&self) {
        self.verified.lock().expect("not poisoned").clear();
    }

    /// The user `token` authenticates, if any.
    pub async fn check(&self, access: &Access, token: &str) -> Option<User> {
        let id: [u8; 32] = blake3::keyed_hash(&self.key, token.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .expect("not poisoned")
            .get(&id)
            .cloned();
        if let Some(name) = cached {
            return access.users.get(&name).cloned();
        }
        let name = token.split_once(':').map(|(n, _)| n).unwrap_or("");
        let user = access
            .users
            .get(name)
            .filter(|u| u.token.is_some())
            .cloned();
        let hash = user
            .as_ref()
            .and_then(|u| u.token.clone())
            .unwrap_or_else(|| self.decoy.clone());
        let token = token.to_string();
        let ok = tokio::task::spawn_blocking(move || hash.verify(&token))
            .await
            .unwrap_or(false);
        let user = user.filter(|_| ok)?;
        self.verified
            .lock()
            .expect("not poisoned")
            .insert(id, user.name.clone());
        Some(user)
    }
}

/// What every connection shares.
pub struct Server {
    pub snapshots: Snapshots,
    access: RwLock<Arc<Access>>,
    pub tokens: Tokens,
    pub metrics: Metrics,
    pub limits: Limits,
    queries: Arc<Semaphore>,
}

impl Server {
    pub fn access(&self) -> Arc<Access> {
        self.access.read().expect("not poisoned").clone()
    }

    /// A query slot; waits up to the query time limit for one.
    pub async fn query_slot(&self) -> Result<OwnedSemaphorePermit, ServeError> {
        tokio::time::timeout(self.limits.query_time, self.queries.clone().acquire_owned())
            .await
            .map_err(|_| ServeError::Busy)?
            .map_err(|_| ServeError::Busy)
    }
}

fn modified(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Check what the options ask for before anything listens: TLS everywhere but on loopback, a
/// readable certificate and key.
fn tls_config(o: &ServeOptions) -> Result<Option<Arc<rustls::ServerConfig>>, ServeError> {
    let (cert, key) = match (&o.tls_cert, &o.tls_key) {
        (None, None) => {
            let off_loopback = [("--http", o.http), ("--pg", o.pg)]
                .into_iter()
                .find_map(|(flag, a)| a.filter(|a| !a.ip().is_loopback()).map(|a| (flag, a)));
            if let Some((flag, a)) = off_loopback {
                return Err(ServeError::Usage(format!(
                    "{flag} {a}: plain TCP is accepted on loopback only; give --tls-cert and --tls-key"
                )));
            }
            return Ok(None);
        }
        (Some(c), Some(k)) => (c, k),
        _ => {
            return Err(ServeError::Usage(
                "--tls-cert and --tls-key go together".into(),
            ));
        }
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
    };
    let cert_pem = read(cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServeError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| ServeError::Tls(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(Some(Arc::new(config)))
}

/// Run the server until SIGTERM or SIGINT.
pub async fn serve(wh: Warehouse, o: ServeOptions) -> Result<(), ServeError> {
    let tls = tls_config(&o)?;
    if o.http.is_none() && o.pg.is_none() {
        return Err(ServeError::Usage(
            "nothing to serve: give --http ADDR:PORT, --pg ADDR:PORT or both".into(),
        ));
    }
    let access = Access::load(&o.access)?;
    let snapshots = Snapshots::open(wh).await?;
    let server = Arc::new(Server {
        snapshots,
        access: RwLock::new(Arc::new(access)),
        tokens: Tokens::new(),
        metrics: Metrics::default(),
        limits: o.limits,
        queries: Arc::new(Semaphore::new(o.max_queries.max(1))),
    });
    let seq = server.snapshots.current().seq;
    server
        .metrics
        .ledger_seq
        .store(seq, std::sync::atomic::Ordering::Relaxed);
    let http = listen(o.http).await?;
    let pg = listen(o.pg).await?;
    tracing::info!(
        http = ?http.as_ref().map(|l| l.1), pg = ?pg.as_ref().map(|l| l.1), tls = tls.is_some(),
        ledger_seq = seq, users = server.access().users.len(), "serving"
    );
    // the actual addresses on stdout, for whoever started the server with port 0
    if let Some((_, a)) = &http {
        println!("{} {a}", if tls.is_some() { "https" } else { "http" });
    }
    if let Some((_, a)) = &pg {
        println!("pg {a}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    // one limit of open connections for both front ends
    let connections = Arc::new(Semaphore::new(o.max_connections.max(1)));
    let front = |l: Option<(TcpListener, SocketAddr)>, kind: Front| {
        let (server, tls, connections) = (server.clone(), tls.clone(), connections.clone());
        async move {
            match l {
                Some((listener, _)) => accept(server, listener, tls, connections, kind).await,
                None => std::future::pending().await,
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    // the watcher runs beside the accept loops on this task (its warehouse reads are not
    // spawned), until a signal ends them
    tokio::select! {
        _ = front(http, Front::Http) => {}
        _ = front(pg, Front::Pg) => {}
        _ = watch(server.clone(), o.access.clone(), o.refresh) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("server stopped");
    Ok(())
}

async fn listen(addr: Option<SocketAddr>) -> Result<Option<(TcpListener, SocketAddr)>, ServeError> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    Ok(Some((listener, bound)))
}

#[derive(Debug, Clone, Copy)]
enum Front {
    Http,
    Pg,
}

/// Accept connections of one front end while the shared limit of open connections allows.
async fn accept(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    connections: Arc<Semaphore>,
    front: Front,
) {
    let app = http::router(server.clone());
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        // plain TCP on loopback only (the start-up checks made TLS required elsewhere)
        let plain_allowed = stream.local_addr().is_ok_and(|a| a.ip().is_loopback());
        let app = app.clone();
        let tls = tls.clone();
        let server = server.clone();
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            server.metrics.connections.fetch_add(1, Relaxed);
            match front {
                Front::Http => serve_http(app, stream, tls).await,
                Front::Pg => pg::connection(server.clone(), stream, tls, plain_allowed).await,
            }
            server.metrics.connections.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
}

async fn serve_http(
    app: axum::Router,
    stream: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let served = match tls {
        Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
            Ok(s) => builder
                .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("TLS handshake: {e}")),
        },
        None => builder
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Take each new ledger row and each change of the access file, every `every`.
async fn watch(server: Arc<Server>, access_path: PathBuf, every: Duration) {
    let mut seen = modified(&access_path);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match server.snapshots.refresh().await {
            Ok(Some(seq)) => {
                server
                    .metrics
                    .ledger_seq
                    .store(seq, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(ledger_seq = seq, "serving the tables of a new ledger row");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %crate::ops::exit::render(&e), "the ledger could not be read: serving the tables as they were")
            }
        }
        let now = modified(&access_path);
        if now != seen {
            seen = now;
            match Access::load(&access_path) {
                Ok(a) => {
                    let users = a.users.len();
                    *server.access.write().expect("not poisoned") = Arc::new(a);
                    server.tokens.forget();
                    server
                        .metrics
                        .access_reloads
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(users, "access file read again");
                }
                Err(e) => {
                    tracing::error!(error = %e, "the access file's change was not taken: it is not valid")
                }
            }
        }
    }
}

/// `palaute serve hash-password`: the line to put in the access file for a secret read from
/// standard input (a password: its SCRAM verifier; a token: its argon2 hash).
pub fn hash_line(secret: &str, token: bool) -> String {
    if token {
        format!("token: \"{}\"", TokenHash::new(secret).as_str())
    } else {
        format!(
            "password: \"{}\"",
            secrets::ScramVerifier::new(secret).encode()
        )
    }
}
