//! Numbers and multi-select cells as survey tools write them.

use crate::schema::codes::fold;

/// A number as survey tools write one (`1`, `1.0000000000`, `0,5`), or `None`.
pub(super) fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return None;
    }
    t.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
}

/// Parse a number as survey tools write one: `4`, `4.0`, `4,0`, `68.0000000000`.
pub(super) fn parse_integral(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = s.replace(',', ".").parse().ok()?;
    (f.fract() == 0.0 && f.is_finite()).then_some(f as i64)
}

/// Split a multi-select cell into options, matching known option texts (longest first) before
/// separators, so that labels that contain the separator are kept whole.
pub(super) fn split_options(
    cell: &str,
    sep: &str,
    options: &[(String, u16)],
) -> Result<Vec<u16>, ()> {
    let folded = fold(cell);
    let mut rest = folded.as_str();
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        while let Some(r) = rest.strip_prefix(sep.trim()) {
            rest = r.trim_start();
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let hit = options.iter().find(|(text, _)| {
            // the option text must end at a separator or at the end of the cell
            rest.starts_with(text.as_str()) && {
                let after = rest[text.len()..].trim_start();
                after.is_empty() || after.starts_with(sep.trim())
            }
        });
        match hit {
            Some((text, oi)) => {
                if !out.contains(oi) {
                    out.push(*oi);
                }
                rest = &rest[text.len()..];
            }
            None => return Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_cells_split_by_known_labels() {
        let opts = vec![
            (fold("Ryhmät, kurssit ja kerhot"), 0u16),
            (fold("Retket"), 1),
            (fold("Muu"), 2),
        ];
        let mut o = opts.clone();
        o.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
        assert_eq!(
            split_options("Ryhmät, kurssit ja kerhot, Retket", ",", &o),
            Ok(vec![0, 1])
        );
        assert_eq!(split_options("Retket", ",", &o), Ok(vec![1]));
        assert_eq!(split_options("", ",", &o), Ok(vec![]));
        assert_eq!(split_options("Retket, Uinti", ",", &o), Err(()));
    }

    #[test]
    fn numbers_as_tools_write_them() {
        assert_eq!(parse_integral("4"), Some(4));
        assert_eq!(parse_integral("4,0"), Some(4));
        assert_eq!(parse_integral("68.0000000000"), Some(68));
        assert_eq!(parse_integral("4,5"), None);
        assert_eq!(parse_integral("abc"), None);
    }
}
