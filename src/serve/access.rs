//! Who may connect and what each sees: the access file (docs/serve.md), read at start-up and
//! again whenever it changes.
//!
//! A user is a `planner`, scoped to areas (counties, municipalities, cooperation areas, local
//! areas), who sees the marts only, and only the rows of those areas and of the nation; or an
//! `engineer`, who reads every table. Passwords (PostgreSQL clients) are stored as SCRAM-SHA-256
//! verifiers and tokens (HTTP) as argon2 hashes, never in clear ([`super::secrets`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secrets::{ScramVerifier, TokenHash};
use crate::schema::Catalog;

/// The access file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    users: BTreeMap<String, UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    role: RoleName,
    /// `level:code`, e.g. `county:09` (planners only)
    #[serde(default)]
    areas: Vec<String>,
    /// SCRAM-SHA-256 verifier (`palaute serve hash-password`): may connect over PostgreSQL
    password: Option<String>,
    /// argon2 hash of the bearer token (`palaute serve hash-password --token`): may use HTTP
    token: Option<String>,
    /// may run SQL of their own over HTTP (`POST /api/v1/sql`); PostgreSQL clients always do.
    /// Default: engineers yes, planners no.
    sql: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleName {
    Planner,
    Engineer,
}

/// What a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// the marts, rows of `scope` and of the nation
    Planner(Scope),
    /// every table, read-only
    Engineer,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Planner(_) => "planner",
            Role::Engineer => "engineer",
        }
    }
}

/// The areas a planner sees, with what they contain: a county's municipalities (by the
/// municipality rows' parent) and a cooperation area's counties and their municipalities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// (geo_level, geo_code) pairs shown
    pub areas: BTreeSet<(String, String)>,
    /// counties whose municipalities are shown
    pub counties: BTreeSet<String>,
    /// cooperation areas whose counties are shown
    pub cooperation_areas: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub password: Option<ScramVerifier>,
    pub token: Option<TokenHash>,
    pub sql: bool,
}

/// The users of one reading of the access file.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub users: BTreeMap<String, User>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The geography levels a planner's scope may name.
pub const SCOPE_LEVELS: [&str; 4] = ["municipality", "county", "cooperation_area", "local_area"];

impl Access {
    /// Read and check the access file at `path`.
    pub fn load(path: &Path) -> Result<Access, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Access::parse(&text).map_err(|message| AccessError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse an access file's text; every problem is named with its user.
    pub fn parse(text: &str) -> Result<Access, String> {
        let file: AccessFile = crate::config::keys::parse_reporting_every_unknown_key(text)?;
        let catalog = Catalog::embedded();
        let mut users = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, e) in file.users {
            match user(catalog, &name, e) {
                Ok(u) => {
                    users.insert(name, u);
                }
                Err(m) => problems.push(format!("user {name}: {m}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok(Access { users })
    }
}

fn user(catalog: &Catalog, name: &str, e: UserEntry) -> Result<User, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err("a user name is letters, digits, '_', '-' and '.'".into());
    }
    let role = match e.role {
        RoleName::Engineer => {
            if !e.areas.is_empty() {
                return Err("an engineer reads every table: 'areas' is for planners".into());
            }
            Role::Engineer
        }
        RoleName::Planner => {
            if e.areas.is_empty() {
                return Err("a planner needs 'areas' (e.g. [county:09])".into());
            }
            Role::Planner(scope(catalog, &e.areas)?)
        }
    };
    if e.password.is_none() && e.token.is_none() {
        return Err("neither 'password' nor 'token': the user could not connect".into());
    }
    let password = e
        .password
        .as_deref()
        .map(ScramVerifier::parse)
        .transpose()
        .map_err(|m| format!("password: {m}"))?;
    let token = e
        .token
        .as_deref()
        .map(TokenHash::parse)
        .transpose()
        .map_err(|m| format!("token: {m}"))?;
    Ok(User {
        name: name.to_string(),
        sql: e.sql.unwrap_or(role == Role::Engineer),
        role,
        password,
        token,
    })
}

fn scope(catalog: &Catalog, areas: &[String]) -> Result<Scope, String> {
    let mut s = Scope::default();
    let munis = &catalog.municipalities;
    for a in areas {
        let Some((level, code)) = a.split_once(':') else {
            return Err(format!(
                "area '{a}': write level:code, e.g. county:09 (levels: {})",
                SCOPE_LEVELS.join(", ")
            ));
        };
        match level {
            "county" => {
                if !munis.is_county(code) {
                    return Err(format!("area '{a}': no county {code} in the code list"));
                }
                s.counties.insert(code.to_string());
            }
            "cooperation_area" => {
                let counties: Vec<String> = munis
                    .county_codes()
                    .into_iter()
                    .filter(|c| munis.county_cooperation_area(c) == Some(code))
                    .collect();
                if counties.is_empty() {
                    return Err(format!(
                        "area '{a}': no cooperation area {code} in the code list"
                    ));
                }
                s.cooperation_areas.insert(code.to_string());
                for c in counties {
                    s.areas.insert(("county".into(), c.clone()));
                    s.counties.insert(c);
                }
            }
            "municipality" => {
                let known = munis
                    .years()
                    .iter()
                    .any(|y| munis.municipality_codes(*y).iter().any(|m| m.code == code));
                if !known {
                    return Err(format!(
                        "area '{a}': no municipality {code} in the code lists"
                    ));
                }
            }
            "local_area" => {
                if code.is_empty() {
                    return Err(format!("area '{a}': no code"));
                }
            }
            other => {
                return Err(format!(
                    "area '{a}': unknown level '{other}' (levels: {})",
                    SCOPE_LEVELS.join(", ")
                ));
            }
        }
        s.areas.insert((level.to_string(), code.to_string()));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3Q=:dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3Q=";

    #[test]
    fn the_demo_access_file_holds_the_secrets_docs_serve_md_names() {
        let a = Access::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/access/demo_access.yaml"),
        )
        .unwrap();
        let docs =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/serve.md"))
                .unwrap();
        for (user, password, token) in [
            (
                "planner09",
                "demo-planner-password",
                "planner09:demo-planner-token-09",
            ),
            (
                "engineer",
                "demo-engineer-password",
                "engineer:demo-engineer-token",
            ),
        ] {
            assert!(
                docs.contains(password) && docs.contains(token),
                "docs/serve.md names {user}'s secrets"
            );
            let u = &a.users[user];
            let v = u.password.as_ref().unwrap();
            assert_eq!(
                &ScramVerifier::with_salt(password, &v.salt, v.iterations),
                v
            );
            assert!(u.token.as_ref().unwrap().verify(token));
        }
        let Role::Planner(s) = &a.users["planner09"].role else {
            panic!("planner09 is a planner")
        };
        assert_eq!(s.counties.iter().collect::<Vec<_>>(), ["09"]);
        assert!(a.users["engineer"].sql && !a.users["planner09"].sql);
    }

    #[test]
    fn a_cooperation_area_covers_its_counties_and_misspellings_are_named() {
        let a = Access::parse(&format!(
            "users:\n  p:\n    role: planner\n    areas: [cooperation_area:1]\n    password: \"{VERIFIER}\"\n"
        ))
        .unwrap();
        let Role::Planner(s) = &a.users["p"].role else {
            panic!("a planner")
        };
        assert!(s.areas.contains(&("cooperation_area".into(), "1".into())));
        assert!(!s.counties.is_empty());
        assert!(
            s.counties
                .iter()
                .all(|c| s.areas.contains(&("county".into(), c.clone())))
        );
        assert!(!a.users["p"].sql);

        let e = Access::parse(&format!(
            "users:\n  p:\n    role: planner\n    aeras: [county:09]\n    password: \"{VERIFIER}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("aeras") && e.contains("areas"), "{e}");
        let e = Access::parse(&format!(
            "users:\n  p:\n    role: planner\n    areas: [county:99, region:1]\n    password: \"{VERIFIER}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("no county 99"), "{e}");
        let e =
            Access::parse("users:\n  p:\n    role: engineer\n    password: secret\n").unwrap_err();
        assert!(e.contains("user p: password"), "{e}");
    }
}
