//! Compiling a pipeline's mapping for one object's columns ([`Normalizer::new`]): the
//! response's own fields, its background dimensions, then its items (`items`).

mod binder;
mod items;

use std::collections::{BTreeSet, HashSet};

use chrono_tz::Tz;

use super::Normalizer;
use super::compiled::{CompiledItem, Dimensions, From, ItemKind, Submitted, Text};
use super::time::{self, TimeFormat};
use crate::config::{ItemSpec, Mapping, Pipeline, PipelineKind};
use crate::privacy::keys::KeySecret;
use crate::schema::{Catalog, Instrument, InstrumentVersion, Labels};
use binder::{Binder, layout_identifiers, plausible_window, text_placeholders, time_format};

/// The response's own fields: which instrument version, the time zone, the id column (`None`:
/// rows keyed by their content; `Err`: the column is not there) and the submission time.
struct ResponseFields {
    instrument: Option<&'static Instrument>,
    version: Option<&'static InstrumentVersion>,
    tz: Tz,
    id_col: Result<Option<usize>, ()>,
    submitted: Option<Submitted>,
    submitted_fallback: Option<usize>,
}

impl Normalizer {
    /// Compile the mapping for an object with the columns `names`. Every problem is listed.
    pub fn new(
        p: &Pipeline,
        catalog: &'static Catalog,
        names: &[String],
        object: &str,
        secret: Option<KeySecret>,
    ) -> Result<Normalizer, Vec<String>> {
        let m = &p.mapping;
        let mut b = Binder::new(names);
        b.layout_identifiers = layout_identifiers(p);
        let mut errors = Vec::new();
        let feedback = p.kind == PipelineKind::Feedback;
        let r = response_fields(m, catalog, feedback, object, &mut b, &mut errors);
        let d = dimensions(m, catalog, names, &mut b, &mut errors);
        let (items, text_cols) = items(m, catalog, &r, &mut b, &mut errors);
        let ResponseFields {
            tz,
            id_col,
            submitted,
            submitted_fallback,
            ..
        } = r;
        errors.append(&mut b.errors);
        let (Ok(id_col), Some(submitted)) = (id_col, submitted) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut hash_cols: BTreeSet<usize> = BTreeSet::new();
        for c in m.columns() {
            if let Some(i) = names.iter().position(|n| *n == c) {
                hash_cols.insert(i);
            }
        }
        Ok(Normalizer {
            instrument: m.instrument.clone(),
            version: m.version.0.clone(),
            system: p.source.system().to_string(),
            survey: p.source.survey(),
            secret,
            names: names.to_vec(),
            id_col,
            submitted,
            mixed_dates: None,
            wide_bands: Default::default(),
            submitted_fallback,
            dims: d,
            tz,
            plausible: plausible_window(p),
            guard: Default::default(),
            items,
            hash_cols: hash_cols.into_iter().collect(),
            text_cols,
            catalog,
        })
    }
}

/// The instrument version, the time zone, the id column and the submission time.
fn response_fields(
    m: &Mapping,
    catalog: &'static Catalog,
    feedback: bool,
    object: &str,
    b: &mut Binder,
    errors: &mut Vec<String>,
) -> ResponseFields {
    let instrument = match catalog.instrument(&m.instrument) {
        _ if feedback => None,
        Ok(i) => Some(i),
        Err(e) => {
            errors.push(format!("mapping.instrument: {e}"));
            None
        }
    };
    let version = instrument.and_then(|i| match i.version(&m.version.0) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(format!("mapping.version: {e}"));
            None
        }
    });
    let tz: Tz = match m.timezone.parse() {
        Ok(t) => t,
        Err(_) => {
            errors.push(format!(
                "mapping.timezone: unknown time zone '{}'",
                m.timezone
            ));
            chrono_tz::Europe::Helsinki
        }
    };
    // Ok(None): rows are keyed by their content; Err: the id column is not there
    let id_col: Result<Option<usize>, ()> = match &m.response_id.0.column {
        Some(c) => b.column("response_id", c).map(Some).ok_or(()),
        None => Ok(None),
    };
    let submitted = match (
        &m.submitted_at.0.constant,
        &m.submitted_at.0.from_object_name,
    ) {
        (Some(c), _) => time::parse_time(&c.0, &TimeFormat::Auto, tz).map(Submitted::Fixed),
        (None, Some(f)) => match time::date_in_name(object, f) {
            Ok(Some(d)) => {
                time::parse_time(&d.to_string(), &TimeFormat::Auto, tz).map(Submitted::Fixed)
            }
            _ => {
                errors.push(format!(
                    "mapping.submitted_at.from_object_name: the object's name has no date in the form '{f}'"
                ));
                None
            }
        },
        (None, None) => b
            .from("submitted_at", &m.submitted_at)
            .and_then(|f| match f {
                From::Column(i, _) => Some(Submitted::Column(i, time_format(&m.submitted_at))),
                From::Constant(_) => None,
            }),
    };
    let submitted_fallback = m
        .submitted_at
        .0
        .fallback
        .as_ref()
        .and_then(|c| b.column("submitted_at.fallback", c));
    ResponseFields {
        instrument,
        version,
        tz,
        id_col,
        submitted,
        submitted_fallback,
    }
}

/// Completion, the feedback's type and contact, the start time, geography and the coded
/// dimensions, each checked against its code list.
fn dimensions(
    m: &Mapping,
    catalog: &'static Catalog,
    names: &[String],
    b: &mut Binder,
    errors: &mut Vec<String>,
) -> Dimensions {
    let completion = b.coded("completion", &m.completion, None);
    let feedback_type = b.coded(
        "feedback_type",
        &m.feedback_type,
        Some(catalog.list("feedback_type")),
    );
    let contact_requested = b.coded("contact_requested", &m.contact_requested, None);
    // contact details: only whether one is filled is read
    let mut contact_columns = Vec::new();
    for c in &m.contact_columns {
        match names.iter().position(|n| n == c) {
            Some(i) => contact_columns.push(i),
            None => errors.push(format!(
                "mapping.contact_columns: column '{c}' is not in the source"
            )),
        }
    }
    if let Some(c) = &completion {
        for v in c.values.values() {
            if !matches!(v.as_str(), "complete" | "partial") {
                errors.push(format!(
                    "mapping.completion.values: '{v}' is neither complete nor partial"
                ));
            }
        }
    }
    let started = m
        .started_at
        .as_ref()
        .and_then(|f| match b.from("started_at", f) {
            Some(From::Column(i, _)) => Some((i, time_format(f))),
            _ => None,
        });
    let municipality = m
        .municipality
        .as_ref()
        .and_then(|f| b.from("municipality", f));
    let county = m.county.as_ref().and_then(|f| b.from("county", f));
    if let Some(From::Constant(c)) = &county
        && !catalog.municipalities.is_county(c)
    {
        errors.push(format!(
            "mapping.county.constant: '{c}' is not a wellbeing services county code (01–21, 90, 91)"
        ));
    }
    if let Some(From::Constant(c)) = &municipality {
        let y = *catalog.municipalities.years().last().unwrap_or(&2026);
        if catalog.municipalities.resolve(c, y).is_none()
            && catalog
                .municipalities
                .years()
                .iter()
                .all(|y| catalog.municipalities.resolve(c, *y).is_none())
        {
            errors.push(format!(
                "mapping.municipality.constant: '{c}' is not a municipality code or name"
            ));
        }
    }
    let local_area = b.coded("local_area", &m.local_area, None);
    let org_unit = b.coded("org_unit", &m.org_unit, None);
    let service = b.coded("service", &m.service, None);
    let channel = b.coded("channel", &m.channel, Some(catalog.list("channel")));
    let respondent_role = b.coded(
        "respondent_role",
        &m.respondent_role,
        Some(catalog.list("respondent_role")),
    );
    let language = b.coded("language", &m.language, Some(catalog.list("language")));
    let age_group = b.coded("age_group", &m.age_group, Some(catalog.list("age_group")));
    let birth_year = m.birth_year.as_ref().and_then(|f| b.from("birth_year", f));
    let gender = b.coded("gender", &m.gender, Some(catalog.list("gender")));
    Dimensions {
        completion,
        feedback_type,
        contact_requested,
        contact_columns,
        started,
        municipality,
        county,
        local_area,
        org_unit,
        service,
        channel,
        respondent_role,
        language,
        age_group,
        birth_year,
        gender,
    }
}

/// The items: a feedback's text, then the instrument version's items and the pipeline's own,
/// with the columns that hold open text.
fn items(
    m: &Mapping,
    catalog: &'static Catalog,
    r: &ResponseFields,
    b: &mut Binder,
    errors: &mut Vec<String>,
) -> (Vec<CompiledItem>, HashSet<usize>) {
    let (instrument, version) = (r.instrument, r.version);
    let mut items = Vec::new();
    let mut text_cols = HashSet::new();
    // a feedback's text is an open-text item of its own
    if let Some(f) = &m.text {
        match b.from("text", f) {
            Some(From::Column(col, _)) => {
                text_cols.insert(col);
                let missing = text_placeholders("text", &f.0.values, errors);
                items.push(CompiledItem {
                    code: "text".to_string(),
                    kind: ItemKind::Text(Text { col, missing }),
                    options: Vec::new(),
                });
            }
            Some(From::Constant(_)) => {
                errors.push("mapping.text: name the column holding the text".into())
            }
            None => {}
        }
    }
    for (code, spec) in &m.items {
        let (scale_name, options): (String, Vec<(String, Labels)>) = if let Some(own) =
            m.own_items.get(code)
        {
            if instrument.is_some_and(|i| i.items.contains_key(code)) {
                errors.push(format!(
                    "mapping.own_items.{code}: the instrument already has an item with this code"
                ));
            }
            (
                own.scale.clone(),
                own.options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        } else {
            match (instrument, version) {
                (Some(i), Some(v)) => {
                    if !v.items.contains(code) {
                        errors.push(format!(
                                "mapping.items.{code}: not an item of {} version {} (items: {}; a region's own statements go under own_items)",
                                i.code,
                                v.version,
                                v.items.join(", ")
                            ));
                        continue;
                    }
                    let it = &i.items[code];
                    (
                        it.scale.clone(),
                        it.options
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    )
                }
                _ => continue,
            }
        };
        let Some(scale) = catalog.scales.get(&scale_name) else {
            errors.push(format!(
                "mapping.own_items.{code}: unknown scale '{scale_name}'"
            ));
            continue;
        };
        let key = format!("items.{code}");
        let s: &ItemSpec = &spec.0;
        let option_codes: Vec<String> = options.iter().map(|(k, _)| k.clone()).collect();
        let item = items::Item {
            code,
            key: &key,
            s,
            scale,
            scale_name: &scale_name,
            options: &options,
            option_codes: &option_codes,
            strict: m.strict,
        };
        let Some(kind) = item.compile(b, errors, &mut text_cols) else {
            continue;
        };
        items.push(CompiledItem {
            code: code.clone(),
            kind,
            options: option_codes,
        });
    }
    (items, text_cols)
}
