//! Compiling a mapping's items, one function per scale kind: which columns an item reads and
//! what its cells may hold.

use std::collections::{HashMap, HashSet};

use super::super::compiled::{
    Choice, ItemKind, MultiCell, MultiColumns, Number, Ordinal, Target, Text,
};
use super::super::values::parse_integral;
use super::super::{STRICT_MARK, STRICT_STATUSES, Status};
use super::binder::{Binder, scalar_map, text_placeholders};
use crate::config::ItemSpec;
use crate::schema::codes::fold;
use crate::schema::{Labels, Scale, ScaleKind};

/// What compiling one item needs: its code, the mapping's key for it, its spec, its scale and
/// options (code and labels, by index).
#[derive(Clone, Copy)]
pub(super) struct Item<'a> {
    pub(super) code: &'a str,
    pub(super) key: &'a str,
    pub(super) s: &'a ItemSpec,
    pub(super) scale: &'a Scale,
    pub(super) scale_name: &'a str,
    pub(super) options: &'a [(String, Labels)],
    pub(super) option_codes: &'a [String],
    /// a strict mapping (a paper-form template)
    pub(super) strict: bool,
}

impl Item<'_> {
    /// The item's kind compiled, or `None` when it cannot be (the reason is in `errors`).
    pub(super) fn compile(
        &self,
        b: &mut Binder,
        errors: &mut Vec<String>,
        text_cols: &mut HashSet<usize>,
    ) -> Option<ItemKind> {
        match self.scale.kind {
            ScaleKind::Ordinal => self.ordinal(b, errors),
            ScaleKind::Multi => self.multi(b, errors),
            ScaleKind::Choice | ScaleKind::Number => self.choice_or_number(b, errors),
            ScaleKind::Text => self.text(b, errors, text_cols),
        }
    }

    /// A value of an ordinal scale: the scale's values and labels, its statuses' words, and the
    /// mapping's own values (a strict mapping reads only numbers and the strict words).
    fn ordinal(&self, b: &mut Binder, errors: &mut Vec<String>) -> Option<ItemKind> {
        let Item {
            key,
            s,
            scale,
            scale_name,
            strict,
            ..
        } = *self;
        let Some(col) = s.column.as_ref().and_then(|c| b.column(key, c)) else {
            if s.column.is_none() {
                errors.push(format!("mapping.{key}: an ordinal item reads one `column`"));
            }
            return None;
        };
        let mut lookup = HashMap::new();
        let mut allowed = None;
        if strict {
            let mut words = vec![format!("{}–{}", scale.min, scale.max)];
            for (st, word) in STRICT_STATUSES {
                if scale.statuses.contains_key(st) {
                    let status = Status::parse(st).unwrap_or(Status::CantSay);
                    lookup.insert(fold(word), Target::Status(status));
                    words.push(word.to_string());
                }
            }
            allowed = Some(words.join(", "));
        } else {
            for (st, words) in &scale.statuses {
                let status = Status::parse(st).unwrap_or(Status::CantSay);
                for w in words {
                    lookup.insert(fold(w), Target::Status(status));
                }
            }
            for (v, labels) in &scale.values {
                for l in labels.all() {
                    lookup.insert(fold(l), Target::Value(*v));
                }
            }
        }
        for (k, v) in scalar_map(&s.values) {
            let t = if let Some(st) = Status::parse(&v) {
                Target::Status(st)
            } else if let Some(n) =
                parse_integral(&v).filter(|n| (scale.min as i64..=scale.max as i64).contains(n))
            {
                Target::Value(n as i16)
            } else {
                errors.push(format!(
                    "mapping.{key}.values: '{v}' is neither a value of scale {scale_name} ({}–{}) nor cant_say / not_applicable / missing",
                    scale.min, scale.max
                ));
                return None;
            };
            lookup.insert(fold(&k), t);
        }
        Some(ItemKind::Ordinal(Ordinal {
            col,
            min: scale.min,
            max: scale.max,
            lookup,
            nps: scale_name == "recommend11",
            allowed,
        }))
    }

    /// A multi-select: a column per option, or the options in one cell.
    fn multi(&self, b: &mut Binder, errors: &mut Vec<String>) -> Option<ItemKind> {
        let Item {
            code,
            key,
            s,
            options,
            option_codes,
            strict,
            ..
        } = *self;
        if !s.columns.is_empty() {
            let mut cols = Vec::new();
            for (opt, col) in &s.columns {
                match option_codes.iter().position(|o| o == opt) {
                    Some(oi) => {
                        if let Some(c) = b.column(&format!("{key}.columns.{opt}"), col) {
                            cols.push((oi as u16, c));
                        }
                    }
                    None => errors.push(format!(
                        "mapping.{key}.columns: '{opt}' is not an option of {code} (options: {})",
                        option_codes.join(", ")
                    )),
                }
            }
            let selected = if strict {
                Some([fold(STRICT_MARK)].into_iter().collect())
            } else {
                (!s.selected.is_empty()).then(|| s.selected.iter().map(|x| fold(&x.0)).collect())
            };
            Some(ItemKind::MultiColumns(MultiColumns {
                tally: cols.iter().map(|_| Default::default()).collect(),
                cols,
                selected,
                strict,
            }))
        } else {
            let col = s.column.as_ref().and_then(|c| b.column(key, c))?;
            let mut opts: Vec<(String, u16)> = Vec::new();
            for (oi, (oc, labels)) in options.iter().enumerate() {
                opts.push((fold(oc), oi as u16));
                for l in labels.all() {
                    opts.push((fold(l), oi as u16));
                }
            }
            for (k, v) in scalar_map(&s.values) {
                match option_codes.iter().position(|o| *o == v) {
                    Some(oi) => opts.push((fold(&k), oi as u16)),
                    None => errors.push(format!(
                        "mapping.{key}.values: '{v}' is not an option of {code} (options: {})",
                        option_codes.join(", ")
                    )),
                }
            }
            opts.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            Some(ItemKind::MultiCell(MultiCell {
                col,
                sep: s.separator.clone().unwrap_or_else(|| ";".to_string()),
                options: opts,
            }))
        }
    }

    /// One option of the item's own list, or a whole number in the scale's range.
    fn choice_or_number(&self, b: &mut Binder, errors: &mut Vec<String>) -> Option<ItemKind> {
        let Item {
            code,
            key,
            s,
            scale,
            options,
            option_codes,
            ..
        } = *self;
        let what = if scale.kind == ScaleKind::Choice {
            "a single-choice item"
        } else {
            "a numeric item"
        };
        for (set, field) in [
            (!s.columns.is_empty(), "columns"),
            (s.separator.is_some(), "separator"),
            (!s.selected.is_empty(), "selected"),
        ] {
            if set {
                errors.push(format!(
                    "mapping.{key}.{field}: {code} is {what}, which reads one `column`"
                ));
            }
        }
        let Some(col) = s.column.as_ref().and_then(|c| b.column(key, c)) else {
            if s.column.is_none() {
                errors.push(format!("mapping.{key}: {what} reads one `column`"));
            }
            return None;
        };
        let mut missing = HashSet::new();
        let mut mapped = HashMap::new();
        for (k, v) in scalar_map(&s.values) {
            if v == "missing" {
                missing.insert(fold(&k));
            } else if scale.kind == ScaleKind::Choice
                && let Some(oi) = option_codes.iter().position(|o| *o == v)
            {
                mapped.insert(fold(&k), oi as u16);
            } else {
                errors.push(format!(
                    "mapping.{key}.values: '{v}' is {}",
                    if scale.kind == ScaleKind::Choice {
                        format!(
                            "neither an option of {code} ({}) nor missing",
                            option_codes.join(", ")
                        )
                    } else {
                        "not missing (a numeric item's cells are its numbers)".into()
                    }
                ));
            }
        }
        if scale.kind == ScaleKind::Number {
            Some(ItemKind::Number(Number {
                col,
                min: scale.min,
                max: scale.max,
                missing,
            }))
        } else {
            if options.is_empty() {
                errors.push(format!(
                    "mapping.own_items.{code}: a single-choice item needs its `options`"
                ));
            }
            for (oi, (oc, labels)) in options.iter().enumerate() {
                mapped.entry(fold(oc)).or_insert(oi as u16);
                for l in labels.all() {
                    mapped.entry(fold(l)).or_insert(oi as u16);
                }
            }
            Some(ItemKind::Choice(Choice {
                col,
                options: mapped,
                missing,
            }))
        }
    }

    /// Open text, with the placeholders that mean no answer.
    fn text(
        &self,
        b: &mut Binder,
        errors: &mut Vec<String>,
        text_cols: &mut HashSet<usize>,
    ) -> Option<ItemKind> {
        let Item { code, key, s, .. } = *self;
        for (set, what) in [
            (!s.columns.is_empty(), "columns"),
            (s.separator.is_some(), "separator"),
            (!s.selected.is_empty(), "selected"),
        ] {
            if set {
                errors.push(format!(
                    "mapping.{key}.{what}: {code} is an open-text item, which has no options"
                ));
            }
        }
        let missing = text_placeholders(key, &s.values, errors);
        let col = s.column.as_ref().and_then(|c| b.column(key, c))?;
        text_cols.insert(col);
        Some(ItemKind::Text(Text { col, missing }))
    }
}
