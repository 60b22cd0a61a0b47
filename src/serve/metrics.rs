//! The server's counters, in the Prometheus text exposition format (`GET /metrics`). Labels
//! name endpoints, roles and outcomes, never a user's query or its results.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// (front end, role, statement kind)
type QueryKey = (&'static str, &'static str, &'static str);
/// (statements, seconds, rows)
type QueryTotals = (u64, f64, u64);

#[derive(Default)]
pub struct Metrics {
    /// (endpoint, status) → requests
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// (front end, role, statement kind) → (queries, seconds, rows)
    queries: Mutex<BTreeMap<QueryKey, QueryTotals>>,
    /// refused authentications, by front end
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    pub connections: AtomicI64,
    pub queries_running: AtomicI64,
    pub ledger_seq: AtomicI64,
    pub access_reloads: AtomicU64,
}

impl Metrics {
    pub fn request(&self, endpoint: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .expect("not poisoned")
            .entry((endpoint, status))
            .or_default() += 1;
    }

    pub fn query(
        &self,
        front: &'static str,
        role: &'static str,
        kind: &'static str,
        seconds: f64,
        rows: u64,
    ) {
        let mut q = self.queries.lock().expect("not poisoned");
        let e = q.entry((front, role, kind)).or_default();
        e.0 += 1;
        e.1 += seconds;
        e.2 += rows;
    }

    /// Count a statement as running until the guard is dropped.
    pub fn running(&self) -> Running<'_> {
        self.queries_running.fetch_add(1, Ordering::Relaxed);
        Running(self)
    }

    pub fn auth_failure(&self, front: &'static str) {
        *self
            .auth_failures
            .lock()
            .expect("not poisoned")
            .entry(front)
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP palaute_http_requests_total HTTP requests by endpoint and status."
        );
        let _ = writeln!(s, "# TYPE palaute_http_requests_total counter");
        for ((endpoint, status), n) in self.requests.lock().expect("not poisoned").iter() {
            let _ = writeln!(
                s,
                "palaute_http_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let queries = self.queries.lock().expect("not poisoned");
        for (name, help, kind) in [
            (
                "palaute_queries_total",
                "Statements run, by front end, role and kind.",
                "counter",
            ),
            (
                "palaute_query_seconds_total",
                "Seconds spent running statements.",
                "counter",
            ),
            (
                "palaute_rows_returned_total",
                "Rows returned to clients.",
                "counter",
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {kind}");
            for ((front, role, k), (n, secs, rows)) in queries.iter() {
                let v = match name {
                    "palaute_queries_total" => n.to_string(),
                    "palaute_query_seconds_total" => format!("{secs:.6}"),
                    _ => rows.to_string(),
                };
                let _ = writeln!(
                    s,
                    "{name}{{front=\"{front}\",role=\"{role}\",kind=\"{k}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP palaute_auth_failures_total Refused authentications."
        );
        let _ = writeln!(s, "# TYPE palaute_auth_failures_total counter");
        for (front, n) in self.auth_failures.lock().expect("not poisoned").iter() {
            let _ = writeln!(s, "palaute_auth_failures_total{{front=\"{front}\"}} {n}");
        }
        for (name, help, v) in [
            (
                "palaute_connections",
                "Open client connections.",
                self.connections.load(Ordering::Relaxed),
            ),
            (
                "palaute_queries_running",
                "Statements running now.",
                self.queries_running.load(Ordering::Relaxed),
            ),
            (
                "palaute_ledger_seq",
                "The ledger row the served tables are at.",
                self.ledger_seq.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} gauge");
            let _ = writeln!(s, "{name} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP palaute_access_reloads_total Times the access file was read again."
        );
        let _ = writeln!(s, "# TYPE palaute_access_reloads_total counter");
        let _ = writeln!(
            s,
            "palaute_access_reloads_total {}",
            self.access_reloads.load(Ordering::Relaxed)
        );
        s
    }
}

/// A running statement, counted in `palaute_queries_running` while it lives.
pub struct Running<'a>(&'a Metrics);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.queries_running.fetch_sub(1, Ordering::Relaxed);
    }
}
