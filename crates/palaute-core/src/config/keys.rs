//! Every misspelt key of a YAML file at once, each with its line and column and the nearest
//! known key. serde stops at the first unknown field, and loses the position inside tagged
//! enums (`source:`, `format:`); so the key is found in the text, its line (and the lines nested
//! under it) blanked — the line numbers stay — and the file parsed again, until the parse
//! succeeds or fails for another reason.

use serde::de::DeserializeOwned;

/// At most this many unknown keys are collected.
const MAX_KEYS: usize = 20;

/// Parse `text`; on failure, every unknown key found (one per line of the message), then the
/// first other error.
pub fn parse_reporting_every_unknown_key<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut text = text.to_string();
    let mut found: Vec<String> = Vec::new();
    // the text before the last renaming, the key's place and the name it was given
    let mut renamed: Option<(String, Place, String)> = None;
    loop {
        let e = match serde_yaml::from_str::<T>(&text) {
            Ok(v) if found.is_empty() => return Ok(v),
            Ok(_) => break,
            Err(e) => e,
        };
        let msg = e.to_string();
        // the nearest key was there already: without the misspelt one instead
        if let Some((before, p, to)) = renamed.take()
            && msg.contains(&format!("duplicate field `{to}`"))
        {
            text = before;
            if !p.block {
                break;
            }
            blank_block(&mut text, &p);
            continue;
        }
        let Some((key, expected)) = unknown_field(&msg) else {
            // another kind of error: reported as it is, after the unknown keys found so far
            found.push(msg);
            break;
        };
        let hint = nearest(&key, &expected)
            .map(|k| format!(" — did you mean `{k}`?"))
            .unwrap_or_default();
        let expected_text = if expected.is_empty() {
            String::new()
        } else {
            format!(
                " (expected one of {})",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut places = key_places(&text, &key);
        match places.as_slice() {
            [p] => {
                found.push(format!(
                    "line {} column {}: unknown key `{key}`{hint}{expected_text}",
                    p.line, p.column
                ));
                if found.len() >= MAX_KEYS {
                    break;
                }
                // read on as if the nearest key had been written (so that what it holds is
                // checked too, and no "missing field" follows from the misspelling); with none,
                // without the key
                match nearest(&key, &expected) {
                    Some(k) => {
                        let before = text.clone();
                        rename_key(&mut text, p, &key, k);
                        renamed = Some((before, places.swap_remove(0), k.to_string()));
                    }
                    None if p.block => blank_block(&mut text, p),
                    None => break,
                }
            }
            _ => {
                // not found, or in several places: said without a position, and no further
                found.push(format!("unknown key `{key}`{hint}{expected_text}"));
                break;
            }
        }
    }
    Err(found.join("\n  "))
}

/// The key and the expected keys of serde's "unknown field `x`, expected one of `a`, `b`".
fn unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let i = msg.find("unknown field `")?;
    let rest = &msg[i + "unknown field `".len()..];
    let end = rest.find('`')?;
    let key = rest[..end].to_string();
    let after = &rest[end + 1..];
    // the expected keys end where serde_yaml's " at line …" begins
    let list = after.split(" at line ").next().unwrap_or("");
    let expected = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((key, expected))
}

/// The known key nearest to a misspelt one, if it is near enough to be meant.
fn nearest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

struct Place {
    line: usize,
    column: usize,
    /// a block mapping's key (`key:` first on its line), which can be blanked with its block
    block: bool,
    indent: usize,
}

/// Where `key` is written as a mapping key in `text`.
fn key_places(text: &str, key: &str) -> Vec<Place> {
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.split(" #").next().unwrap_or(line);
        let indent = body.len() - body.trim_start().len();
        let trimmed = body.trim_start();
        for quoted in [key.to_string(), format!("\"{key}\""), format!("'{key}'")] {
            if let Some(after) = trimmed.strip_prefix(&quoted)
                && after.trim_start().starts_with(':')
            {
                v.push(Place {
                    line: n + 1,
                    column: indent + 1,
                    block: true,
                    indent,
                });
            }
        }
        // in a flow mapping: `{a: 1, key: 2}`
        let mut from = 0;
        while let Some(i) = body[from..].find(key).map(|i| i + from) {
            from = i + key.len();
            let before = body[..i].trim_end();
            let after = body[i + key.len()..].trim_start();
            if (before.ends_with('{') || before.ends_with(',')) && after.starts_with(':') && i > 0 {
                v.push(Place {
                    line: n + 1,
                    column: i + 1,
                    block: false,
                    indent,
                });
            }
        }
    }
    v
}

/// Write `to` in place of the key `from` at `p`.
fn rename_key(text: &mut String, p: &Place, from: &str, to: &str) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(line) = lines.get_mut(p.line - 1) {
        let at = p.column - 1;
        // a quoted key keeps its quote: the name starts one byte later
        let at = if line[at..].starts_with(from) {
            at
        } else {
            at + 1
        };
        if line.get(at..at + from.len()) == Some(from) {
            line.replace_range(at..at + from.len(), to);
        }
    }
    *text = lines.join("\n");
    text.push('\n');
}

/// Blank the key's line and the lines nested under it (more indented, or blank), keeping the
/// number of lines.
fn blank_block(text: &mut String, p: &Place) {
    let mut out = Vec::new();
    let mut inside = false;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        if n + 1 == p.line {
            inside = true;
            out.push(String::new());
            continue;
        }
        if inside && (line.trim().is_empty() || indent > p.indent) {
            out.push(String::new());
            continue;
        }
        inside = false;
        out.push(line.to_string());
    }
    *text = out.join("\n");
    text.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        column: Option<String>,
        values: Option<std::collections::BTreeMap<String, String>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
        other: Option<Inner>,
    }

    #[test]
    fn every_unknown_key_with_its_place_and_the_nearest_known_one() {
        let text =
            "name: x\nnmae: y\ninner:\n  colum: a\n  values:\n    a: b\nothre:\n  column: c\n";
        let e = parse_reporting_every_unknown_key::<Outer>(text).unwrap_err();
        let lines: Vec<&str> = e.lines().map(str::trim).collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with("line 2 column 1: unknown key `nmae` — did you mean `name`?"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("line 4 column 3: unknown key `colum` — did you mean `column`?"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("line 7 column 1: unknown key `othre` — did you mean `other`?"),
            "{e}"
        );
        // a flow mapping's key is placed too; a key near no known one is left out
        let e = parse_reporting_every_unknown_key::<Outer>(
            "name: x\ninner: {colum: a}\nzzzzzz:\n  - 1\nother: {valeus: {}}\n",
        )
        .unwrap_err();
        let lines: Vec<&str> = e.lines().map(str::trim).collect();
        assert!(
            lines[0].starts_with("line 2 column 9: unknown key `colum`"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("line 3 column 1: unknown key `zzzzzz` (expected"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("line 5 column 9: unknown key `valeus` — did you mean `values`?"),
            "{e}"
        );
        assert_eq!(lines.len(), 3, "{e}");
        // other errors come through
        let e = parse_reporting_every_unknown_key::<Outer>("inner: {}\n").unwrap_err();
        assert!(e.contains("missing field `name`"), "{e}");
        assert!(parse_reporting_every_unknown_key::<Outer>("name: x\ninner: {}\n").is_ok());
    }
}
