//! `palaute serve --pg` (issue 19): the PostgreSQL front end, driven with the clients planners
//! use: Debian's `psql` and Python's `psycopg` (simple and extended protocol, text and binary
//! results). A planner of county 09 sees 09's and the nation's rows only, through plain
//! selects, joins, unions, subqueries, CTEs and the catalogs psql's `\d` reads; every statement
//! but a query is refused; passwords are checked by SCRAM against verifiers; a long-lived
//! connection sees a new run once it commits; 20 clients for 30 s get only correct answers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Fixture, loaded_bench, needs};
use crate::serve::{
    Served, delta_versions, hashed, paused_second_run, rss_kb, visible_to_09, wait_until,
};

/// The psql program: `PALAUTE_TEST_PSQL`, else `psql` on the path (.ci/run installs Debian's
/// postgresql-client); none: the test is skipped, and fails under CI=true.
pub(crate) fn psql_program() -> Option<String> {
    let program = std::env::var("PALAUTE_TEST_PSQL").unwrap_or_else(|_| "psql".into());
    if Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(program);
    }
    // the same rule as every other missing client: fail under CI=true, else skip
    needs(
        &["PALAUTE_TEST_PSQL"],
        "no psql (Debian's postgresql-client; .ci/run installs it)",
    )
    .map(|v| v[0].clone())
}

/// A Python with psycopg (`PALAUTE_TEST_PYTHON`); none: the test is skipped, and fails under
/// CI=true.
fn psycopg_python() -> Option<String> {
    needs(
        &["PALAUTE_TEST_PYTHON"],
        "a Python with psycopg (.ci/run installs it)",
    )
    .map(|v| v[0].clone())
}

struct Psql {
    program: String,
    port: u16,
}

struct PsqlOut {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Psql {
    fn run(&self, user: &str, password: &str, sql: &str) -> PsqlOut {
        let out = Command::new(&self.program)
            .args(["-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", user, "-d", "palaute", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "disable")
            .env("PGCONNECT_TIMEOUT", "20")
            .output()
            .expect("psql runs");
        PsqlOut {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// The rows of a query that must succeed, each split at `|`.
    fn rows(&self, user: &str, password: &str, sql: &str) -> Vec<Vec<String>> {
        let o = self.run(user, password, sql);
        assert!(o.ok, "{sql}: {}", o.stderr);
        o.stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }
}

fn geo(r: &[String]) -> (String, String, String) {
    (r[0].clone(), r[1].clone(), r[2].clone())
}

/// The psycopg client of tests/it/serve_pg_client.py, one request at a time.
struct Py {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Py {
    fn start(python: &str) -> Py {
        let script = format!("{}/tests/it/serve_pg_client.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        Py {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    fn call(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?} for {request}"))
    }

    fn query(&mut self, sql: &str, params: Value, binary: bool) -> Value {
        self.call(json!({"op": "query", "sql": sql, "params": params, "binary": binary}))
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dsn(port: u16, user: &str, password: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} dbname=palaute user={user} password={password} sslmode=disable"
    )
}

/// Rows of a psycopg answer as (geo_level, geo_code, geo_parent).
fn py_geos(answer: &Value) -> Vec<(String, String, String)> {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let v = |i: usize| r[i].as_str().unwrap_or("").to_string();
            (v(0), v(1), v(2))
        })
        .collect()
}

/// Speak the protocol by hand: a startup message, a SASLInitialResponse for `PLAIN` (which the
/// server does not offer) and a query; the types of the messages the server answers with
/// after its authentication request, until it closes the connection (the read ends: a
/// connection left open would time out the read and fail the test).
fn broken_off_exchange(port: u16) -> Vec<u8> {
    use std::io::Read;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = b"user\0planner09\0database\0palaute\0\0";
    let mut startup = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    startup.extend(196_608u32.to_be_bytes());
    startup.extend(body);
    sock.write_all(&startup).unwrap();
    // AuthenticationSASL: 'R', length, 10, the mechanisms offered
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).unwrap();
    assert_eq!(head[0], b'R');
    assert_eq!(u32::from_be_bytes(head[5..9].try_into().unwrap()), 10);
    let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
    let mut mechanisms = vec![0u8; len - 8];
    sock.read_exact(&mut mechanisms).unwrap();
    assert_eq!(
        mechanisms, b"SCRAM-SHA-256\0\0",
        "only SCRAM-SHA-256 is offered"
    );
    let (mechanism, data) = (b"PLAIN\0", b"\0planner09\0guess");
    let mut msg = vec![b'p'];
    msg.extend(((4 + mechanism.len() + 4 + data.len()) as u32).to_be_bytes());
    msg.extend(mechanism);
    msg.extend((data.len() as u32).to_be_bytes());
    msg.extend(data);
    let query = b"SELECT geo_code FROM item_scores\0";
    msg.push(b'Q');
    msg.extend(((4 + query.len()) as u32).to_be_bytes());
    msg.extend(query);
    // the server may have closed the connection before the query arrives
    let _ = sock.write_all(&msg);
    let mut answer = Vec::new();
    if let Err(e) = sock.read_to_end(&mut answer) {
        // closed with our query unread (a reset) is closed; a read that times out is not
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection was left open: {e}"
        );
    }
    let mut types = Vec::new();
    let mut i = 0;
    while i + 5 <= answer.len() {
        types.push(answer[i]);
        if answer[i] == b'E' {
            let text = String::from_utf8_lossy(&answer[i..]);
            assert!(text.contains("FATAL"), "{text}");
        }
        i += 1 + u32::from_be_bytes(answer[i + 1..i + 5].try_into().unwrap()) as usize;
    }
    types
}

const PLANNER_PASSWORD: &str = "k3-Planner-09-salasana";
const ENGINEER_PASSWORD: &str = "w7-Engineer-salasana";

#[test]
fn psql_and_psycopg_see_a_planners_areas_only_and_write_nothing() {
    let Some(psql) = psql_program() else { return };
    let Some(python) = psycopg_python() else {
        return;
    };
    let f = Fixture::new();
    let p = loaded_bench(&f, 3000, 7);
    let wh = f.warehouse();
    let access = f.path("access.yaml");
    std::fs::write(
        &access,
        format!(
            "users:\n  planner09:\n    role: planner\n    areas: [county:09]\n    {}\n  engineer:\n    role: engineer\n    {}\n",
            hashed(PLANNER_PASSWORD, false),
            hashed(ENGINEER_PASSWORD, false)
        ),
    )
    .unwrap();
    let s = Served::start_with(&wh, &access, &["--pg", "127.0.0.1:0"]);
    let port = s.pg_port.unwrap();
    let psql = Psql {
        program: psql,
        port,
    };
    let planner = |sql: &str| psql.rows("planner09", PLANNER_PASSWORD, sql);

    // plain selects, joins, unions, subqueries, CTEs: 09, its municipalities and the nation
    let all = planner("SELECT geo_level, geo_code, geo_parent FROM item_scores");
    let g: Vec<_> = all.iter().map(|r| geo(r)).collect();
    assert!(g.iter().any(|x| x.0 == "county" && x.1 == "09"), "no 09");
    assert!(g.iter().any(|x| x.0 == "municipality" && x.2 == "09"));
    assert!(g.iter().any(|x| x.0 == "nation"));
    assert!(
        g.iter().all(visible_to_09),
        "{:?}",
        g.iter().find(|x| !visible_to_09(x))
    );
    let engineer = |sql: &str| psql.rows("engineer", ENGINEER_PASSWORD, sql);
    let of_08 =
        engineer("SELECT count(*) FROM item_scores WHERE geo_level = 'county' AND geo_code = '08'");
    assert!(
        of_08[0][0].parse::<u64>().unwrap() > 0,
        "the fixture has no 08"
    );
    for sql in [
        "SELECT a.geo_level, a.geo_code, a.geo_parent FROM (SELECT DISTINCT geo_level, geo_code, geo_parent FROM item_scores) a JOIN (SELECT DISTINCT geo_level, geo_code FROM recommendation) b ON a.geo_code = b.geo_code AND a.geo_level = b.geo_level",
        "SELECT r.geo_level, r.geo_code, r.geo_parent FROM response_counts r LEFT JOIN (SELECT DISTINCT geo_code FROM item_scores WHERE geo_level = 'county') c ON r.geo_parent = c.geo_code WHERE r.geo_level = 'municipality'",
        "SELECT geo_level, geo_code, geo_parent FROM item_scores UNION SELECT geo_level, geo_code, geo_parent FROM recommendation",
        "SELECT geo_level, geo_code, geo_parent FROM (SELECT * FROM response_counts) s WHERE geo_code IN (SELECT geo_code FROM recommendation WHERE geo_code <> '09')",
        "WITH x AS (SELECT * FROM response_counts WHERE geo_code = '08' OR geo_parent = '08') SELECT geo_level, geo_code, geo_parent FROM x",
        "SELECT geo_level, geo_code, geo_parent FROM selections WHERE geo_level = 'county' AND geo_code <> '09'",
    ] {
        let rows = planner(sql);
        assert!(
            rows.iter().map(|r| geo(r)).all(|g| visible_to_09(&g)),
            "{sql}: {:?}",
            rows.iter().find(|r| !visible_to_09(&geo(r)))
        );
    }
    assert_eq!(
        planner("SELECT count(*) FROM item_scores WHERE geo_code = '08' OR geo_parent = '08'"),
        vec![vec!["0".to_string()]]
    );

    // the catalogs psql's \d reads hold the planner's tables only
    let d = psql.run("planner09", PLANNER_PASSWORD, "\\d");
    assert!(d.ok, "{}", d.stderr);
    for mart in ["item_scores", "recommendation", "response_counts"] {
        assert!(d.stdout.contains(mart), "\\d lacks {mart}: {}", d.stdout);
    }
    for hidden in ["responses", "answers", "comments", "quarantine"] {
        assert!(
            !d.stdout.split(['|', '\n']).any(|w| w == hidden),
            "\\d shows {hidden}"
        );
    }
    let di = psql.run("planner09", PLANNER_PASSWORD, "\\d item_scores");
    assert!(
        di.ok && di.stdout.contains("geo_code") && di.stdout.contains("share_agree"),
        "{}{}",
        di.stdout,
        di.stderr
    );
    let classes = planner("SELECT relname FROM pg_catalog.pg_class");
    let names: Vec<&str> = classes.iter().map(|r| r[0].as_str()).collect();
    assert!(names.contains(&"item_scores"), "{names:?}");
    for hidden in ["responses", "answers", "comments"] {
        assert!(!names.contains(&hidden), "pg_class shows {hidden}");
        let t = planner(&format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '{hidden}'"
        ));
        assert_eq!(t[0][0], "0", "information_schema shows {hidden}");
    }

    // every statement but a query is refused, clearly, and nothing is written
    let versions: Vec<usize> = ["item_scores", "responses"]
        .iter()
        .map(|t| delta_versions(&f, t))
        .collect();
    for (sql, says) in [
        ("SELECT * FROM comments", "not found"),
        ("SELECT * FROM responses", "not found"),
        ("SELECT * FROM answers", "not found"),
        ("SELECT * FROM '/etc/passwd'", "not found"),
        ("SELECT * FROM datafusion.public.responses", "not found"),
        ("CREATE TABLE t (a INT)", "CREATE TABLE is not accepted"),
        (
            "CREATE VIEW v AS SELECT * FROM item_scores",
            "CREATE VIEW is not accepted",
        ),
        ("DROP TABLE item_scores", "DROP is not accepted"),
        (
            "INSERT INTO item_scores SELECT * FROM item_scores",
            "INSERT is not accepted",
        ),
        ("DELETE FROM item_scores", "DELETE is not accepted"),
        (
            "COPY item_scores TO '/tmp/palaute-pg-copy.csv'",
            "COPY is not accepted",
        ),
        (
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp'",
            "CREATE EXTERNAL TABLE is not accepted",
        ),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE is not accepted",
        ),
        (
            "SET datafusion.execution.target_partitions = 1",
            "SET datafusion.execution.target_partitions is not accepted",
        ),
        (
            "SET datafusion.catalog.information_schema = false",
            "is not accepted",
        ),
    ] {
        let o = psql.run("planner09", PLANNER_PASSWORD, sql);
        assert!(!o.ok, "{sql} was accepted: {}", o.stdout);
        assert!(
            o.stderr.contains("ERROR") && o.stderr.contains(says),
            "{sql}: {}",
            o.stderr
        );
    }
    assert!(!std::path::Path::new("/tmp/palaute-pg-copy.csv").exists());
    // the engineer reads every table and writes none
    let n_responses: u64 = engineer("SELECT count(*) FROM responses")[0][0]
        .parse()
        .unwrap();
    assert_eq!(n_responses, f.count("responses") as u64);
    assert!(!engineer("SELECT count(*) FROM comments").is_empty());
    for sql in [
        "DELETE FROM responses",
        "INSERT INTO responses SELECT * FROM responses",
        "COPY responses TO '/tmp/palaute-pg-copy.csv'",
    ] {
        let o = psql.run("engineer", ENGINEER_PASSWORD, sql);
        assert!(
            !o.ok && o.stderr.contains("not accepted"),
            "{sql}: {}",
            o.stderr
        );
    }
    let after: Vec<usize> = ["item_scores", "responses"]
        .iter()
        .map(|t| delta_versions(&f, t))
        .collect();
    assert_eq!(versions, after, "a table was written");
    // client settings are accepted, and SHOW answers
    assert_eq!(
        planner("SET extra_float_digits = 3"),
        vec![vec!["SET".to_string()]]
    );
    assert_eq!(
        planner("SHOW search_path"),
        vec![vec!["public".to_string()]]
    );

    // wrong password and unknown user: the same refusal, in the same time
    let refusal = |user: &str, password: &str| {
        let t = Instant::now();
        let o = psql.run(user, password, "SELECT 1");
        assert!(!o.ok);
        assert!(
            o.stderr.contains("password authentication failed")
                || o.stderr.contains("Password authentication failed"),
            "{user}: {}",
            o.stderr
        );
        assert!(!o.stderr.contains("county"), "{}", o.stderr);
        (t.elapsed(), o.stderr.replace(user, "USER"))
    };
    let median = |user: &str, password: &str| {
        let mut v: Vec<(Duration, String)> = (0..7).map(|_| refusal(user, password)).collect();
        v.sort();
        v.swap_remove(3)
    };
    let (wrong, wrong_text) = median("planner09", "not-the-password");
    let (unknown, unknown_text) = median("somebody", PLANNER_PASSWORD);
    assert_eq!(wrong_text, unknown_text, "the refusals tell the two apart");
    let (a, b) = (wrong.as_secs_f64(), unknown.as_secs_f64());
    assert!(
        a.max(b) / a.min(b) < 3.0,
        "wrong password {a:.4} s, unknown user {b:.4} s"
    );

    // a client that leaves the exchange (another mechanism) and sends a query anyway is
    // disconnected with one FATAL error and nothing else
    let types = broken_off_exchange(port);
    assert_eq!(
        types.first(),
        Some(&b'E'),
        "{:?}",
        String::from_utf8_lossy(&types)
    );
    // no row description, data row or command completion: the query was never run (pgwire
    // follows a fatal error with ReadyForQuery before it closes the connection)
    assert!(
        !types.iter().any(|t| b"TDC12".contains(t)),
        "{:?}",
        String::from_utf8_lossy(&types)
    );

    // psycopg: the extended protocol with parameters, text and binary results, a transaction
    let mut py = Py::start(&python);
    let c = py.call(json!({"op": "connect", "dsn": dsn(port, "planner09", PLANNER_PASSWORD)}));
    assert_eq!(c["ok"], true, "{c}");
    for binary in [false, true] {
        let a = py.query(
            "SELECT geo_level, geo_code, geo_parent, n, share_agree FROM item_scores WHERE geo_level = %s AND n >= %s",
            json!(["county", 0]),
            binary,
        );
        let g = py_geos(&a);
        assert!(!g.is_empty() && g.iter().all(|x| x.1 == "09"), "{a}");
        let text =
            planner("SELECT count(*) FROM item_scores WHERE geo_level = 'county' AND n >= 0");
        assert_eq!(g.len().to_string(), text[0][0], "binary={binary}");
        let a = py.query(
            "SELECT geo_level, geo_code, geo_parent FROM response_counts WHERE geo_code = %s OR geo_parent = %s",
            json!(["08", "08"]),
            binary,
        );
        assert!(py_geos(&a).is_empty(), "{a}");
    }
    let a = py.query("SELECT * FROM comments", json!([]), false);
    assert_eq!(a["ok"], false, "{a}");
    let a = py.query(
        "DELETE FROM item_scores WHERE geo_code = %s",
        json!(["09"]),
        false,
    );
    assert_eq!(a["ok"], false, "{a}");
    assert_eq!(a["sqlstate"], "25006", "{a}");
    let a = py.query("SET datafusion.execution.batch_size = 1", json!([]), false);
    assert_eq!(a["ok"], false, "{a}");
    let a = py.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = %s",
        json!(["responses"]),
        false,
    );
    assert_eq!(a["rows"], json!([[0]]), "{a}");

    // a long-lived connection sees a new run's rows once it commits, never before
    let mut eng = Py::start(&python);
    let c = eng.call(json!({"op": "connect", "dsn": dsn(port, "engineer", ENGINEER_PASSWORD), "autocommit": true}));
    assert_eq!(c["ok"], true, "{c}");
    let count = |eng: &mut Py| {
        let a = eng.query("SELECT count(*) FROM responses", json!([]), false);
        a["rows"][0][0].as_u64().unwrap_or_else(|| panic!("{a}"))
    };
    assert_eq!(count(&mut eng), n_responses);
    let mut paused = paused_second_run(&f, &p);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(count(&mut eng), n_responses, "half a run is visible");
    assert!(paused.wait().unwrap().success());
    let n_after = f.count("responses") as u64;
    assert!(n_after > n_responses + 300, "{n_responses} → {n_after}");
    wait_until("the new run's rows never appeared", || {
        count(&mut eng) == n_after
    });

    // the metrics count the PostgreSQL front end's statements and refusals
    let (st, m) = crate::serve::get(&s, "/metrics", None);
    assert_eq!(st, 200);
    let metric = |prefix: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {m}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(metric("palaute_auth_failures_total{front=\"pg\"}") >= 14);
    assert!(metric("palaute_queries_total{front=\"pg\",role=\"planner\",kind=\"sql\"}") >= 10);
    assert!(metric("palaute_queries_total{front=\"pg\",role=\"engineer\",kind=\"sql\"}") >= 3);

    // nothing secret or answered in the log
    let log = s.stop();
    assert!(log.contains("\"front\":\"pg\""), "no access log line");
    for secret in [PLANNER_PASSWORD, ENGINEER_PASSWORD, "SCRAM-SHA-256$"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
    assert!(!log.contains("SELECT"), "the log holds statement text");
}

#[test]
fn twenty_psycopg_clients_for_thirty_seconds_get_only_correct_answers_in_steady_memory() {
    let Some(python) = psycopg_python() else {
        return;
    };
    let f = Fixture::new();
    loaded_bench(&f, 1500, 11);
    let wh = f.warehouse();
    let access = f.path("access.yaml");
    std::fs::write(
        &access,
        format!(
            "users:\n  planner09:\n    role: planner\n    areas: [county:09]\n    {}\n",
            hashed(PLANNER_PASSWORD, false)
        ),
    )
    .unwrap();
    let s = Served::start_with(&wh, &access, &["--pg", "127.0.0.1:0", "--max-queries", "4"]);
    let port = s.pg_port.unwrap();
    let dsn = dsn(port, "planner09", PLANNER_PASSWORD);
    let mut py = Py::start(&python);
    let cases = json!([
        [
            "SELECT geo_level, geo_code, geo_parent, count(*) AS n FROM item_scores GROUP BY geo_level, geo_code, geo_parent ORDER BY geo_level, geo_code, geo_parent",
            []
        ],
        [
            "SELECT period, item_code, service, instrument, n, mean FROM item_scores WHERE geo_level = %s AND geo_code = %s AND period_type = %s ORDER BY period, item_code, service, instrument",
            ["county", "09", "year"]
        ],
        [
            "SELECT count(*) FROM response_counts WHERE geo_code = %s OR geo_parent = %s",
            ["08", "08"]
        ],
    ]);
    let pid = s.child.id();
    let before = rss_kb(pid);
    // the server's memory 10 s into the load and near its end
    let sampler = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        let mid = rss_kb(pid);
        std::thread::sleep(Duration::from_secs(18));
        (mid, rss_kb(pid))
    });
    let r =
        py.call(json!({"op": "load", "dsn": dsn, "clients": 20, "seconds": 30, "cases": cases}));
    let (mid, late) = sampler.join().unwrap();
    assert_eq!(r["ok"], true, "{r}");
    // the answers every client was held to are the planner's: 09's and the nation's rows
    let expected = r["expected"].as_array().unwrap();
    let groups = expected[0].as_array().unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        let v = |i: usize| g[i].as_str().unwrap_or("").to_string();
        assert!(visible_to_09(&(v(0), v(1), v(2))), "{g}");
    }
    assert!(!expected[1].as_array().unwrap().is_empty());
    assert_eq!(expected[2], json!([[0]]));
    assert_eq!(r["n_errors"], 0, "{r}");
    assert_eq!(r["n_wrong"], 0, "{r}");
    let per_client = r["per_client"].as_array().unwrap();
    assert_eq!(per_client.len(), 20);
    assert!(
        per_client.iter().all(|n| n.as_u64().unwrap() > 0),
        "a client got no answer: {r}"
    );
    // steady: what the server holds late in the load is not growing with the answers given
    assert!(
        late < mid * 2 + 50_000,
        "RSS {before} kB before, {mid} kB after 10 s, {late} kB after 28 s"
    );
    let log = s.stop();
    assert!(!log.contains(PLANNER_PASSWORD));
}
