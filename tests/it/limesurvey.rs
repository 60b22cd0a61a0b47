//! The LimeSurvey database source against real servers: LimeSurvey-shaped tables are created in
//! a local MariaDB and a local PostgreSQL (`.ci/databases.sh` starts both and sets
//! PALAUTE_TEST_MYSQL_URL / PALAUTE_TEST_POSTGRES_URL) and read by `palaute run` over a real
//! connection. Without a server the test fails under CI=true and is skipped, on the terminal,
//! elsewhere.

use sqlx::AnyPool;

use crate::common::{Fixture, files_under, int_str, needs, palaute, s};

const SID: u64 = 123456;

#[derive(Clone, Copy, PartialEq)]
enum Db {
    MySql,
    Postgres,
}

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    V3,
    V5,
    V7,
}

fn server(var: &str) -> Option<String> {
    needs(
        &[var],
        "start the servers with `eval \"$(.ci/databases.sh)\"` (.ci/run does)",
    )
    .map(|mut v| v.remove(0))
}

struct Ls {
    db: Db,
    layout: Layout,
    prefix: String,
    pool: AnyPool,
    rt: tokio::runtime::Runtime,
}

impl Ls {
    fn new(url: &str, db: Db, layout: Layout) -> Ls {
        sqlx::any::install_default_drivers();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let pool = rt
            .block_on(
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(url),
            )
            .expect("the test database accepts connections");
        let prefix = format!(
            "t{}_",
            uuid::Uuid::new_v4().simple().to_string()[..10].to_lowercase()
        );
        Ls {
            db,
            layout,
            prefix,
            pool,
            rt,
        }
    }

    fn q(&self, ident: &str) -> String {
        match self.db {
            Db::MySql => format!("`{ident}`"),
            Db::Postgres => format!("\"{ident}\""),
        }
    }

    fn exec(&self, sql: &str) {
        self.rt
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&self.pool))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn table(&self) -> String {
        match self.layout {
            Layout::V7 => format!("{}responses_{SID}", self.prefix),
            _ => format!("{}survey_{SID}", self.prefix),
        }
    }

    /// The response-table column of question `qid` (and subquestion `sub`, given as its qid and
    /// its code).
    fn col(&self, qid: u32, sub: Option<(u32, &str)>) -> String {
        match (self.layout, sub) {
            (Layout::V7, None) => format!("Q{qid}"),
            (Layout::V7, Some((sq, _))) => format!("Q{qid}_S{sq}"),
            (_, None) => format!("{SID}X10X{qid}"),
            (_, Some((_, code))) => format!("{SID}X10X{qid}{code}"),
        }
    }

    fn create(&self) {
        let p = &self.prefix;
        let ts = match self.db {
            Db::MySql => "DATETIME",
            Db::Postgres => "TIMESTAMP",
        };
        let v3 = self.layout == Layout::V3;
        self.exec(&format!(
            "CREATE TABLE {p}questions (qid INT NOT NULL, parent_qid INT NOT NULL, sid INT NOT NULL, gid INT NOT NULL, type VARCHAR(1) NOT NULL, title VARCHAR(20) NOT NULL{})",
            if v3 { ", question TEXT, language VARCHAR(20) NOT NULL" } else { "" }
        ));
        // (qid, parent, type, title)
        let questions = [
            (1, 0, "L", "kunta"),
            (2, 0, "L", "tuki"),
            (3, 0, "N", "suositus"),
            (4, 0, "M", "toiminta"),
            (41, 4, "T", "SQ001"),
            (42, 4, "T", "SQ002"),
            (5, 0, "T", "hyvaa"),
        ];
        for (qid, parent, ty, title) in questions {
            if v3 {
                for lang in ["fi", "en"] {
                    self.exec(&format!(
                        "INSERT INTO {p}questions VALUES ({qid}, {parent}, {SID}, 10, '{ty}', '{title}', '<p>Kysymys</p>', '{lang}')"
                    ));
                }
            } else {
                self.exec(&format!(
                    "INSERT INTO {p}questions VALUES ({qid}, {parent}, {SID}, 10, '{ty}', '{title}')"
                ));
            }
        }
        // answer options: (aid, qid, code, fi label, en label)
        let answers = [
            (1, 1, "A091", "Helsinki", "Helsinki"),
            (2, 1, "A837", "Tampere", "Tampere"),
            (3, 2, "AO01", "Täysin eri mieltä", "Strongly disagree"),
            (4, 2, "AO02", "Jokseenkin eri mieltä", "Somewhat disagree"),
            (5, 2, "AO03", "Ei samaa eikä eri mieltä", "Neither"),
            (
                6,
                2,
                "AO04",
                "<b>Jokseenkin</b> samaa mieltä",
                "Somewhat agree",
            ),
            (7, 2, "AO05", "Täysin samaa mieltä", "Strongly agree"),
            (8, 2, "AO06", "En osaa sanoa", "Cannot say"),
        ];
        if v3 {
            self.exec(&format!(
                "CREATE TABLE {p}answers (qid INT NOT NULL, code VARCHAR(5) NOT NULL, answer TEXT NOT NULL, sortorder INT NOT NULL, language VARCHAR(20) NOT NULL, scale_id INT NOT NULL)"
            ));
            for (_, qid, code, fi, en) in answers {
                for (lang, label) in [("fi", fi), ("en", en)] {
                    self.exec(&format!(
                        "INSERT INTO {p}answers VALUES ({qid}, '{code}', '{label}', 0, '{lang}', 0)"
                    ));
                }
            }
        } else {
            self.exec(&format!(
                "CREATE TABLE {p}answers (aid INT NOT NULL, qid INT NOT NULL, code VARCHAR(5) NOT NULL, sortorder INT NOT NULL, assessment_value INT NOT NULL, scale_id INT NOT NULL)"
            ));
            self.exec(&format!(
                "CREATE TABLE {p}answer_l10ns (id INT NOT NULL, aid INT NOT NULL, answer TEXT NOT NULL, language VARCHAR(20) NOT NULL)"
            ));
            for (aid, qid, code, fi, en) in answers {
                self.exec(&format!(
                    "INSERT INTO {p}answers VALUES ({aid}, {qid}, '{code}', 0, 0, 0)"
                ));
                self.exec(&format!(
                    "INSERT INTO {p}answer_l10ns VALUES ({}, {aid}, '{en}', 'en')",
                    aid * 2
                ));
                self.exec(&format!(
                    "INSERT INTO {p}answer_l10ns VALUES ({}, {aid}, '{fi}', 'fi')",
                    aid * 2 + 1
                ));
            }
        }
        let numeric = match self.db {
            Db::MySql => "DECIMAL(30,10)",
            Db::Postgres => "NUMERIC(30,10)",
        };
        let cols = [
            (self.col(1, None), "VARCHAR(5)".to_string()),
            (self.col(2, None), "VARCHAR(5)".to_string()),
            (self.col(3, None), numeric.to_string()),
            (self.col(4, Some((41, "SQ001"))), "VARCHAR(5)".to_string()),
            (self.col(4, Some((42, "SQ002"))), "VARCHAR(5)".to_string()),
            (self.col(5, None), "TEXT".to_string()),
        ];
        let qcols: Vec<String> = cols
            .iter()
            .map(|(c, t)| format!("{} {t} NULL", self.q(c)))
            .collect();
        self.exec(&format!(
            "CREATE TABLE {} (id INT NOT NULL PRIMARY KEY, token VARCHAR(36) NULL, submitdate {ts} NULL, lastpage INT NULL, startlanguage VARCHAR(20) NOT NULL, seed VARCHAR(31) NULL, startdate {ts} NOT NULL, datestamp {ts} NOT NULL, ipaddr TEXT NULL, refurl TEXT NULL, {})",
            self.table(),
            qcols.join(", ")
        ));
    }

    /// Insert a response; `None` answers are NULL (not shown).
    #[allow(clippy::too_many_arguments)]
    fn response(
        &self,
        id: u32,
        submitted: Option<&str>,
        last: &str,
        kunta: &str,
        tuki: Option<&str>,
        suositus: Option<&str>,
        toiminta: (&str, &str),
        hyvaa: &str,
    ) {
        let lit = |v: Option<&str>| v.map(|v| format!("'{v}'")).unwrap_or("NULL".into());
        let cols = [
            self.col(1, None),
            self.col(2, None),
            self.col(3, None),
            self.col(4, Some((41, "SQ001"))),
            self.col(4, Some((42, "SQ002"))),
            self.col(5, None),
        ];
        let names: Vec<String> = cols.iter().map(|c| self.q(c)).collect();
        self.exec(&format!(
            "INSERT INTO {} (id, token, submitdate, lastpage, startlanguage, seed, startdate, datestamp, ipaddr, refurl, {}) VALUES ({id}, 'tok-SECRET-{id}', {}, 2, 'fi', '12345', '{last}', '{last}', '192.0.2.{id}', 'https://example.fi/?u=secret', '{kunta}', {}, {}, '{}', '{}', '{hyvaa}')",
            self.table(),
            names.join(", "),
            lit(submitted),
            lit(tuki),
            suositus.unwrap_or("NULL"),
            toiminta.0,
            toiminta.1,
        ));
    }

    fn submit(&self, id: u32, at: &str) {
        self.exec(&format!(
            "UPDATE {} SET submitdate = '{at}', datestamp = '{at}' WHERE id = {id}",
            self.table()
        ));
    }
}

fn pipeline(f: &Fixture, ls: &Ls, name: &str, incomplete: &str) -> std::path::PathBuf {
    let text = format!(
        r#"name: {name}
source:
  kind: limesurvey_db
  url_env: PALAUTE_TEST_LS_URL
  survey_id: {SID}
  table_prefix: {prefix}
  incomplete: {incomplete}
  system: ls-{name}
mapping:
  instrument: local_everyday
  version: 1
  response_id: id
  submitted_at: {{column: submitdate, fallback: datestamp}}
  completion: completion
  municipality: kunta
  language: startlanguage
  items:
    everyday_support: tuki
    recommend: suositus
    activities:
      columns: {{group: "toiminta[SQ001]", peer: "toiminta[SQ002]"}}
    good: hyvaa
  ignore: [lastpage, startdate]
quality:
  max_quarantined_pct: 50
"#,
        prefix = ls.prefix
    );
    let p = f.path(&format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn now_minus_days(d: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(d))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn last_run(f: &Fixture) -> serde_json::Map<String, serde_json::Value> {
    f.sql(
        "SELECT status, rows_read, rows_loaded, rows_duplicate FROM runs WHERE pipeline = 'ls' ORDER BY seq DESC LIMIT 1",
    )
    .remove(0)
}

fn scenario(url: &str, db: Db, layout: Layout) {
    let ls = Ls::new(url, db, layout);
    ls.create();
    ls.response(
        1,
        Some("2024-05-02 10:00:00"),
        "2024-05-02 10:00:00",
        "A091",
        Some("AO05"),
        Some("9"),
        ("Y", ""),
        "Hyvä, soita 040 1234567",
    );
    ls.response(
        2,
        Some("2024-05-03 11:00:00"),
        "2024-05-03 11:00:00",
        "A091",
        None,
        Some("10"),
        ("", "Y"),
        "",
    );
    // started, not submitted, active today: holds the watermark
    ls.response(
        3,
        None,
        &now_minus_days(0),
        "A837",
        Some("AO04"),
        None,
        ("", ""),
        "",
    );
    ls.response(
        4,
        Some("2024-05-05 12:00:00"),
        "2024-05-05 12:00:00",
        "A837",
        Some("AO06"),
        Some("3"),
        ("Y", "Y"),
        "",
    );
    let f = Fixture::new();
    let p = pipeline(&f, &ls, "ls", "skip");
    let env = [("PALAUTE_TEST_LS_URL", url)];
    let wh = f.warehouse();
    let run =
        |envs: &[(&str, &str)]| palaute(&["run", "--warehouse", &wh, p.to_str().unwrap()], envs);

    let c = palaute(&["check", "--warehouse", &wh, p.to_str().unwrap()], &env);
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    assert!(
        c.stdout.contains(&ls.table()) && c.stdout.contains("new"),
        "{}",
        c.stdout
    );

    let r = run(&env);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = f.sql("SELECT source_row, municipality, language, nps, completion, CAST(submitted_at AS VARCHAR) AS t FROM responses ORDER BY source_row");
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r["source_row"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 4], "the unsubmitted response is skipped");
    assert_eq!(s(&rows[0], "municipality"), Some("091"));
    assert_eq!(s(&rows[2], "municipality"), Some("837"));
    assert_eq!(s(&rows[0], "language"), Some("fi"));
    assert_eq!(rows[0]["nps"].as_i64(), Some(9));
    assert_eq!(s(&rows[0], "completion"), Some("complete"));
    // 10:00 in Helsinki in May is 07:00 UTC
    assert!(
        s(&rows[0], "t").unwrap().starts_with("2024-05-02T07:00:00"),
        "{rows:?}"
    );
    let a = f.sql("SELECT r.source_row, value, status FROM answers a JOIN responses r USING (response_key) WHERE item_code = 'everyday_support' ORDER BY r.source_row");
    let got: Vec<(Option<i64>, &str)> = a
        .iter()
        .map(|r| (r["value"].as_i64(), s(r, "status").unwrap()))
        .collect();
    // labels through the answer tables (Finnish), NULL = not shown
    assert_eq!(
        got,
        vec![
            (Some(5), "answered"),
            (None, "not_shown"),
            (None, "cant_say")
        ]
    );
    let sel = f.sql("SELECT r.source_row, option_code FROM answers a JOIN responses r USING (response_key) WHERE item_code = 'activities' ORDER BY r.source_row, option_code");
    let got = int_str(&sel, "source_row", "option_code");
    assert_eq!(
        got,
        vec![(1, "group"), (2, "peer"), (4, "group"), (4, "peer")]
    );
    assert_eq!(
        s(&f.sql("SELECT text FROM comments")[0], "text"),
        Some("Hyvä, soita [phone]")
    );
    for file in files_under(&f.path("wh")) {
        let b = std::fs::read(&file).unwrap();
        for secret in [&b"tok-SECRET"[..], b"192.0.2.", b"u=secret"] {
            assert!(
                !b.windows(secret.len()).any(|w| w == secret),
                "{}",
                file.display()
            );
        }
    }

    // nothing new: the object is unchanged and not read
    let r = run(&env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(last_run(&f)["rows_read"].as_i64(), Some(0));

    // response 3 is submitted, 5 arrives: read from the watermark (after 2), 4 again a duplicate
    ls.submit(3, "2024-05-06 09:00:00");
    ls.response(
        5,
        Some("2024-05-07 09:00:00"),
        "2024-05-07 09:00:00",
        "A837",
        Some("AO01"),
        Some("0"),
        ("", ""),
        "",
    );
    let r = run(&env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lr = last_run(&f);
    assert_eq!(
        (
            lr["rows_read"].as_i64(),
            lr["rows_loaded"].as_i64(),
            lr["rows_duplicate"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(f.count("responses"), 5);

    // a failed run does not advance the watermark
    ls.response(
        6,
        Some("2024-05-08 09:00:00"),
        "2024-05-08 09:00:00",
        "A091",
        Some("AO02"),
        Some("7"),
        ("", ""),
        "",
    );
    let mut failing = env.to_vec();
    failing.push(("PALAUTE_FAILPOINT", "error:write"));
    assert_ne!(run(&failing).code, 0);
    assert_eq!(f.count("responses"), 5);
    let r = run(&env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.count("responses"), 6);
    let r = run(&env);
    assert_eq!(r.code, 0);
    assert_eq!(last_run(&f)["rows_read"].as_i64(), Some(0));

    // partial responses: loaded as partial, timed by their last activity; an abandoned one
    // (older than pending_days) no longer holds the watermark
    let p2 = pipeline(&f, &ls, "lspartial", "partial");
    ls.response(
        7,
        None,
        &now_minus_days(30),
        "A091",
        Some("AO03"),
        None,
        ("", ""),
        "",
    );
    let r = palaute(&["run", "--warehouse", &wh, p2.to_str().unwrap()], &env);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let part = f.sql("SELECT source_row, completion FROM responses WHERE pipeline = 'lspartial' ORDER BY source_row");
    let got = int_str(&part, "source_row", "completion");
    assert_eq!(
        got,
        vec![
            (1, "complete"),
            (2, "complete"),
            (3, "complete"),
            (4, "complete"),
            (5, "complete"),
            (6, "complete"),
            (7, "partial")
        ]
    );
}

#[test]
fn limesurvey_5_and_7_on_mariadb() {
    let Some(url) = server("PALAUTE_TEST_MYSQL_URL") else {
        return;
    };
    scenario(&url, Db::MySql, Layout::V5);
    scenario(&url, Db::MySql, Layout::V7);
}

#[test]
fn limesurvey_3_and_7_on_postgresql() {
    let Some(url) = server("PALAUTE_TEST_POSTGRES_URL") else {
        return;
    };
    scenario(&url, Db::Postgres, Layout::V3);
    scenario(&url, Db::Postgres, Layout::V7);
}

#[test]
fn a_missing_or_wrong_connection_string_is_an_environment_error_that_hides_the_secret() {
    let f = Fixture::new();
    let text = "name: ls\nsource:\n  kind: limesurvey_db\n  url_env: PALAUTE_TEST_LS_NOWHERE\n  survey_id: 1\nmapping:\n  instrument: local_everyday\n  version: 1\n  response_id: id\n  submitted_at: submitdate\n  items:\n    recommend: suositus\n";
    let p = f.path("ls.yaml");
    std::fs::write(&p, text).unwrap();
    let wh = f.warehouse();
    let r = palaute(&["run", "--warehouse", &wh, p.to_str().unwrap()], &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("PALAUTE_TEST_LS_NOWHERE") && r.stderr.contains("not set"),
        "{}",
        r.stderr
    );
    // a server that refuses: the password is never printed
    let r = palaute(
        &["run", "--warehouse", &wh, p.to_str().unwrap()],
        &[(
            "PALAUTE_TEST_LS_NOWHERE",
            "postgres://palaute:Sal4sana@127.0.0.1:1/x",
        )],
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(!r.stderr.contains("Sal4sana"), "{}", r.stderr);
    // a format block on a database source is a configuration error
    std::fs::write(
        &p,
        text.replace("mapping:", "format:\n  kind: csv\nmapping:"),
    )
    .unwrap();
    let r = palaute(&["check", p.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("remove `format`"), "{}", r.stderr);
}
