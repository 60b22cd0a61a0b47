//! `palaute template INSTRUMENT`: a keying template for paper forms, and the pipeline that loads
//! it strictly.
//!
//! The template has two header rows — what to key in each column, with its allowed values, in
//! the chosen language, then the column codes the pipeline maps — and no channel column: keyed
//! forms are channel `paper`. CSV is UTF-8 with a BOM and `;` (what Excel on a Finnish machine
//! opens cleanly); XLSX adds a drop-down list of the allowed values to every coded column and a
//! second sheet listing them.

use std::path::Path;

use crate::Cause;
use crate::normalize::{STRICT_MARK, STRICT_STATUSES};
use crate::schema::{Catalog, Labels, ScaleKind, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("--language {0}: use fi, sv or en")]
    Language(String),
}

/// One column of a template.
#[derive(Debug, Clone)]
pub struct TemplateColumn {
    pub code: String,
    /// what to key, in the chosen language
    pub label: String,
    /// the values a cell may hold (empty: free text or a code list too long to list)
    pub allowed: Vec<String>,
    /// a description of what is allowed, for the header
    pub hint: String,
    /// how the pipeline maps it: a field name, or `items.<code>` / `items.<code>.<option>`
    pub maps_to: String,
}

fn pick(l: &Labels, lang: &str) -> String {
    let s = match lang {
        "sv" => &l.sv,
        "en" => &l.en,
        _ => &l.fi,
    };
    if s.is_empty() {
        l.fi.clone()
    } else {
        s.clone()
    }
}

fn t(fi: &str, sv: &str, en: &str, lang: &str) -> String {
    match lang {
        "sv" => sv,
        "en" => en,
        _ => fi,
    }
    .to_string()
}

/// The columns of the response's own fields: the form number, the date, where and by whom.
fn response_columns(catalog: &Catalog, lang: &str) -> Vec<TemplateColumn> {
    let free = |code: &str, label: String, hint: String, maps_to: &str| TemplateColumn {
        code: code.to_string(),
        label,
        allowed: Vec::new(),
        hint,
        maps_to: maps_to.to_string(),
    };
    let coded = |code: &str, label: String, list: &str| {
        let codes: Vec<String> = catalog
            .list(list)
            .codes()
            .into_iter()
            .map(str::to_string)
            .collect();
        TemplateColumn {
            code: code.to_string(),
            label,
            hint: codes.join(" / "),
            allowed: codes,
            maps_to: list.to_string(),
        }
    };
    vec![
        free(
            "form_id",
            t(
                "Lomakkeen numero",
                "Blankettens nummer",
                "Form number",
                lang,
            ),
            t(
                "pakollinen, yksilöllinen",
                "obligatorisk, unik",
                "required, unique",
                lang,
            ),
            "response_id",
        ),
        free(
            "date",
            t("Vastauspäivä", "Svarsdatum", "Date answered", lang),
            "p.k.vvvv".to_string(),
            "submitted_at",
        ),
        free(
            "municipality",
            t("Kunta", "Kommun", "Municipality", lang),
            t("numero tai nimi", "nummer eller namn", "code or name", lang),
            "municipality",
        ),
        free(
            "service",
            t("Palvelu", "Tjänst", "Service", lang),
            t("palvelun koodi", "tjänstens kod", "service code", lang),
            "service",
        ),
        coded(
            "respondent_role",
            t("Vastaaja", "Svarande", "Respondent", lang),
            "respondent_role",
        ),
        coded(
            "age_group",
            t("Ikäryhmä", "Åldersgrupp", "Age group", lang),
            "age_group",
        ),
        coded("gender", t("Sukupuoli", "Kön", "Gender", lang), "gender"),
        coded(
            "language",
            t("Kieli", "Språk", "Language", lang),
            "language",
        ),
    ]
}

/// The template's columns for an instrument version.
pub fn columns(
    catalog: &Catalog,
    instrument: &str,
    version: &str,
    lang: &str,
) -> Result<Vec<TemplateColumn>, TemplateError> {
    if !matches!(lang, "fi" | "sv" | "en") {
        return Err(TemplateError::Language(lang.to_string()));
    }
    let ins = catalog.instrument(instrument)?;
    let ver = ins.version(version)?;
    let mut cols = response_columns(catalog, lang);
    for code in &ver.items {
        let item = &ins.items[code];
        let scale = catalog.scales.get(&item.scale);
        match scale.map(|s| s.kind) {
            Some(ScaleKind::Ordinal) => {
                let s = scale.expect("known scale");
                let mut allowed: Vec<String> = (s.min..=s.max).map(|v| v.to_string()).collect();
                for (st, word) in STRICT_STATUSES {
                    if s.statuses.contains_key(st) {
                        allowed.push(word.to_string());
                    }
                }
                let hint = format!(
                    "{}–{}{}",
                    s.min,
                    s.max,
                    allowed[(s.max - s.min + 1) as usize..]
                        .iter()
                        .map(|w| format!(", {w}"))
                        .collect::<String>()
                );
                cols.push(TemplateColumn {
                    code: code.clone(),
                    label: pick(&item.labels, lang),
                    allowed,
                    hint,
                    maps_to: format!("items.{code}"),
                });
            }
            Some(ScaleKind::Multi) => {
                for (opt, labels) in &item.options {
                    cols.push(TemplateColumn {
                        code: format!("{code}.{opt}"),
                        label: format!("{}: {}", pick(&item.labels, lang), pick(labels, lang)),
                        allowed: vec![STRICT_MARK.to_string()],
                        hint: t("x = valittu", "x = vald", "x = chosen", lang),
                        maps_to: format!("items.{code}.{opt}"),
                    });
                }
            }
            _ => cols.push(TemplateColumn {
                code: code.clone(),
                label: pick(&item.labels, lang),
                allowed: Vec::new(),
                hint: t("vapaa teksti", "fritext", "free text", lang),
                maps_to: format!("items.{code}"),
            }),
        }
    }
    Ok(cols)
}

fn header(c: &TemplateColumn) -> String {
    format!("{} ({})", c.label, c.hint)
}

pub fn write_csv(path: &Path, cols: &[TemplateColumn]) -> Result<(), TemplateError> {
    csv_bytes(cols)
        .and_then(|bytes| Ok(std::fs::write(path, bytes)?))
        .map_err(|source| TemplateError::Write {
            path: path.display().to_string(),
            source,
        })
}

/// The CSV template: a byte order mark (Excel then reads UTF-8), the headers, the codes.
fn csv_bytes(cols: &[TemplateColumn]) -> Result<Vec<u8>, Cause> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    w.write_record(cols.iter().map(header))?;
    w.write_record(cols.iter().map(|c| c.code.as_str()))?;
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend(w.into_inner().map_err(|e| e.into_error())?);
    Ok(bytes)
}

pub fn write_xlsx(path: &Path, cols: &[TemplateColumn], lang: &str) -> Result<(), TemplateError> {
    workbook(cols, lang)
        .and_then(|mut wb| Ok(wb.save(path)?))
        .map_err(|source| TemplateError::Write {
            path: path.display().to_string(),
            source,
        })
}

/// The XLSX template: the form sheet (headers, codes, a drop-down of the allowed values under
/// each column) and a sheet of the allowed values.
fn workbook(cols: &[TemplateColumn], lang: &str) -> Result<rust_xlsxwriter::Workbook, Cause> {
    use rust_xlsxwriter::{DataValidation, Format, Workbook};
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold().set_text_wrap();
    let ws = wb.add_worksheet();
    ws.set_name(t("Lomakkeet", "Blanketter", "Forms", lang))?;
    for (i, c) in cols.iter().enumerate() {
        let col = i as u16;
        ws.write_string_with_format(0, col, header(c), &bold)?;
        ws.write_string(1, col, &c.code)?;
        ws.set_column_width(col, 18)?;
        if !c.allowed.is_empty() {
            let dv = DataValidation::new()
                .allow_list_strings(&c.allowed)?
                .set_error_message(format!("{}: {}", c.code, c.allowed.join(", ")))?;
            ws.add_data_validation(2, col, 10_000, col, &dv)?;
        }
    }
    ws.set_freeze_panes(2, 0)?;
    let help = wb.add_worksheet();
    help.set_name(t(
        "Sallitut arvot",
        "Tillåtna värden",
        "Allowed values",
        lang,
    ))?;
    for (i, c) in cols.iter().enumerate() {
        let r = i as u32;
        help.write_string(r, 0, &c.code)?;
        help.write_string(r, 1, &c.label)?;
        help.write_string(r, 2, &c.hint)?;
    }
    Ok(wb)
}

/// A pipeline that loads keyed templates from `location`, strictly.
pub fn pipeline_yaml(
    name: &str,
    instrument: &str,
    version: &str,
    cols: &[TemplateColumn],
    xlsx: bool,
    location: &str,
) -> String {
    let mut y = format!(
        "# Loads keyed paper forms written from `palaute template {instrument}`; strict: a mistyped\n\
         # value is quarantined with the allowed values in its reason.\n\
         name: {name}\nsource:\n  kind: files\n  location: {location}\n  glob: \"*.{ext}\"\n  system: paper\n  survey: {name}\n\
         format:\n  kind: {kind}\n  header_rows: 2\n\
         mapping:\n  instrument: {instrument}\n  version: \"{version}\"\n  strict: true\n  channel: {{constant: paper}}\n  timezone: Europe/Helsinki\n",
        ext = if xlsx { "xlsx" } else { "csv" },
        kind = if xlsx { "spreadsheet" } else { "csv" },
    );
    let mut items: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for c in cols {
        match c.maps_to.strip_prefix("items.") {
            None => y.push_str(&format!("  {}: {}\n", c.maps_to, c.code)),
            Some(rest) => match rest.split_once('.') {
                None => items.push((rest.to_string(), Vec::new())),
                Some((item, opt)) => match items.last_mut() {
                    Some((last, opts)) if last == item => {
                        opts.push((opt.to_string(), c.code.clone()))
                    }
                    _ => items.push((item.to_string(), vec![(opt.to_string(), c.code.clone())])),
                },
            },
        }
    }
    y.push_str("  items:\n");
    for (item, opts) in items {
        if opts.is_empty() {
            y.push_str(&format!("    {item}: {item}\n"));
        } else {
            y.push_str(&format!("    {item}:\n      columns:\n"));
            for (o, c) in opts {
                y.push_str(&format!("        {o}: \"{c}\"\n"));
            }
        }
    }
    y
}
