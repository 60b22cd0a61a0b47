//! JSON exports.
//!
//! Layouts handled here:
//! - `ndjson`: one JSON object per line, as kiosks and SMS vendors drop them; blank lines are
//!   skipped, a line that is not a JSON object (or not UTF-8) is a row of its own that the
//!   normalizer quarantines (reason `field_count`), numbered by its line.
//! - `array`: one JSON array of objects.
//! - `limesurvey_remotecontrol`: what RemoteControl 2's `export_responses(…, "json", …)` returns —
//!   the document base64-encoded, saved as the bare base64 text, as a JSON string, or as the whole
//!   JSON-RPC reply (`{"id":…,"result":"<base64>","error":null}`). The decoded document holds a
//!   `responses` array whose elements are either the response object itself or, in older
//!   versions, an object keyed by the response id holding it. An error reply (`result` being an
//!   object with a `status`, e.g. "No Response found") is an error naming the object.
//!
//! Every object becomes one row; the column names are the union of the keys in order of first
//! appearance. Nested objects are flattened with dots (`answers.q1`); an array of scalars becomes
//! its elements joined with `|` (map it with `separator: "|"`); null is empty; numbers and
//! booleans are written as JSON writes them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value};

use super::{FormatError, table::TableObject};
use crate::config::{JsonFormat, JsonLayout};

/// The separator an array of scalars is joined with.
pub const ARRAY_SEPARATOR: &str = "|";

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a
            .iter()
            .map(scalar_text)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(ARRAY_SEPARATOR),
        Value::Object(_) => v.to_string(),
    }
}

fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in m {
        let key = if prefix.is_empty() {
            k.trim().to_string()
        } else {
            format!("{prefix}.{}", k.trim())
        };
        match v {
            Value::Object(inner) => flatten(&key, inner, out),
            other => out.push((key, scalar_text(other))),
        }
    }
}

/// Rows of objects → a table: names in order of first appearance.
struct Builder {
    names: Vec<String>,
    index: HashMap<String, usize>,
    rows: Vec<(u64, Vec<(usize, String)>)>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            names: Vec::new(),
            index: HashMap::new(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, line: u64, obj: Option<&Map<String, Value>>) {
        let mut fields = Vec::new();
        if let Some(o) = obj {
            let mut flat = Vec::new();
            flatten("", o, &mut flat);
            for (k, v) in flat {
                let i = match self.index.get(&k) {
                    Some(&i) => i,
                    None => {
                        self.names.push(k.clone());
                        self.index.insert(k, self.names.len() - 1);
                        self.names.len() - 1
                    }
                };
                fields.push((i, v));
            }
        }
        self.rows.push((line, fields));
    }

    fn finish(self, description: String) -> TableObject {
        let width = self.names.len();
        let rows = self
            .rows
            .into_iter()
            .map(|(line, fields)| {
                // an unparseable row keeps no fields, so the normalizer quarantines it
                if fields.is_empty() {
                    return (line, Vec::new());
                }
                let mut r = vec![String::new(); width];
                for (i, v) in fields {
                    r[i] = v;
                }
                (line, r)
            })
            .collect();
        TableObject::new(self.names, rows, description)
    }
}

fn decode_remotecontrol(object: &str, text: &str) -> Result<Vec<Map<String, Value>>, FormatError> {
    let bad = |message: String| FormatError::Unreadable {
        object: object.to_string(),
        message,
    };
    let t = text.trim().trim_start_matches('\u{feff}');
    // the JSON-RPC reply, a JSON string, or the bare base64 text
    let b64: String = match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(o)) if o.contains_key("result") => match &o["result"] {
            Value::String(s) => s.clone(),
            Value::Object(r) => {
                return Err(bad(format!(
                    "RemoteControl returned an error: {}",
                    r.get("status")
                        .map(scalar_text)
                        .unwrap_or_else(|| "(no status)".into())
                )));
            }
            other => return Err(bad(format!("RemoteControl result is {other}"))),
        },
        Ok(Value::Object(o)) if o.contains_key("responses") => {
            // already decoded
            return responses_of(object, Value::Object(o));
        }
        Ok(Value::String(s)) => s,
        _ => t.to_string(),
    };
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| bad(format!("not base64 of a RemoteControl export: {e}")))?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("the decoded export is not JSON: {e}")))?;
    responses_of(object, doc)
}

fn responses_of(object: &str, doc: Value) -> Result<Vec<Map<String, Value>>, FormatError> {
    let Some(Value::Array(list)) = doc.get("responses").cloned() else {
        return Err(FormatError::Unreadable {
            object: object.to_string(),
            message: "the export has no `responses` array".into(),
        });
    };
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let Value::Object(o) = r else {
            out.push(Map::new());
            continue;
        };
        // older versions: {"<id>": {…response…}}
        if o.len() == 1
            && let Some((_, Value::Object(inner))) = o.iter().next()
        {
            out.push(inner.clone());
        } else {
            out.push(o);
        }
    }
    Ok(out)
}

pub fn open(path: &Path, object: &str, cfg: &JsonFormat) -> Result<TableObject, FormatError> {
    let io = |e: std::io::Error| FormatError::Unreadable {
        object: object.to_string(),
        message: e.to_string(),
    };
    let mut b = Builder::new();
    match cfg.layout {
        JsonLayout::Ndjson => {
            let f = std::fs::File::open(path).map_err(io)?;
            for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
                let line = line.map_err(io)?;
                // a line that is not UTF-8 is a row of its own, quarantined like broken JSON
                let Ok(text) = std::str::from_utf8(&line) else {
                    b.push(i as u64 + 1, None);
                    continue;
                };
                let l = text.trim().trim_start_matches('\u{feff}');
                if l.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(l) {
                    Ok(Value::Object(o)) => b.push(i as u64 + 1, Some(&o)),
                    _ => b.push(i as u64 + 1, None),
                }
            }
            Ok(b.finish("json, one object per line".into()))
        }
        JsonLayout::Array => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let v: Value =
                serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| {
                    FormatError::Unreadable {
                        object: object.to_string(),
                        message: format!("not JSON: {e}"),
                    }
                })?;
            let Value::Array(list) = v else {
                return Err(FormatError::Unreadable {
                    object: object.to_string(),
                    message: "not a JSON array of objects".into(),
                });
            };
            for (i, r) in list.iter().enumerate() {
                b.push(i as u64 + 1, r.as_object());
            }
            Ok(b.finish("json array".into()))
        }
        JsonLayout::LimesurveyRemotecontrol => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            for (i, r) in decode_remotecontrol(object, &text)?.iter().enumerate() {
                b.push(i as u64 + 1, Some(r));
            }
            Ok(b.finish("LimeSurvey RemoteControl export (base64 JSON)".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotecontrol_reply_shapes() {
        let doc =
            r#"{"responses":[{"1":{"id":"1","q1":"A1"}},{"id":"2","q1":null,"m":["a","b"]}]}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
        for text in [
            b64.clone(),
            format!("\"{b64}\""),
            format!("{{\"id\":1,\"result\":\"{b64}\",\"error\":null}}"),
        ] {
            let r = decode_remotecontrol("x", &text).unwrap();
            assert_eq!(r.len(), 2);
            assert_eq!(r[0]["q1"], "A1");
            assert_eq!(scalar_text(&r[1]["m"]), "a|b");
        }
        let err = decode_remotecontrol(
            "x",
            r#"{"id":1,"result":{"status":"No Response found"},"error":null}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("No Response found"), "{err}");
    }
}
