//! The demo's spontaneous feedback: a county's "Anna palautetta" web form exported to Excel in
//! Microsoft Forms' layout (ID, Start time, Completion time, Email, Name, Last modified time, then
//! one column per question headed by its text). Completion times are date cells; the sender's
//! name, e-mail address and phone number sit in their own columns, which the pipeline only reads
//! for whether they are filled.

use std::path::Path;

use chrono::{Duration, TimeZone};
use rand::prelude::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use super::{GenError, text};

pub const FILE: &str = "anna_palautetta.xlsx";

pub const HEADER: &[&str] = &[
    "ID",
    "Start time",
    "Completion time",
    "Email",
    "Name",
    "Last modified time",
    "Palautteen tyyppi",
    "Mitä palvelua palaute koskee?",
    "Kunta",
    "Palaute",
    "Haluatko, että sinuun otetaan yhteyttä?",
    "Puhelinnumero",
];

const TYPES: &[&str] = &["Kiitos", "Moite", "Kehitysehdotus", "Kysymys"];
const SERVICES: &[&str] = &[
    "Terveysasema",
    "Kotihoito",
    "Suun terveydenhuolto",
    "Sosiaalityö",
];
const MUNICIPALITIES: &[&str] = &["Lahti", "Heinola", "Hollola", "Orimattila", "Asikkala"];

/// Write the export; returns how many feedbacks it holds.
pub fn write(dir: &Path, seed: u64) -> Result<usize, GenError> {
    let err = |e: rust_xlsxwriter::XlsxError| GenError {
        path: dir.join(FILE).display().to_string(),
        message: e.to_string(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfeed);
    let n = rng.random_range(50..=80);
    let tz = chrono_tz::Europe::Helsinki;
    let start = tz
        .with_ymd_and_hms(2025, 1, 2, 8, 0, 0)
        .single()
        .expect("valid time");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Form1").map_err(err)?;
    for (c, h) in HEADER.iter().enumerate() {
        ws.write_string(0, c as u16, *h).map_err(err)?;
    }
    let date = Format::new().set_num_format("d.m.yyyy h:mm");
    for i in 0..n {
        let r = i as u32 + 1;
        let at = (start
            + Duration::days(rng.random_range(0..88))
            + Duration::minutes(rng.random_range(0..10 * 60)))
        .naive_local();
        let cell = ExcelDateTime::parse_from_str(&at.format("%Y-%m-%dT%H:%M:%S").to_string())
            .map_err(err)?;
        ws.write_number(r, 0, r as f64).map_err(err)?;
        ws.write_datetime_with_format(r, 1, cell.clone(), &date)
            .map_err(err)?;
        ws.write_datetime_with_format(r, 2, cell, &date)
            .map_err(err)?;
        let contact = rng.random_bool(0.3);
        let first = ["Matti", "Liisa", "Aino", "Juha"]
            .choose(&mut rng)
            .expect("non-empty");
        if contact || rng.random_bool(0.2) {
            ws.write_string(
                r,
                3,
                format!("{}.palaute{}@example.fi", first.to_lowercase(), r),
            )
            .map_err(err)?;
            ws.write_string(r, 4, format!("{first} Esimerkki"))
                .map_err(err)?;
        }
        let t = *TYPES.choose(&mut rng).expect("non-empty");
        // one mistyped type, quarantined with the list of allowed ones
        let t = if i == 7 { "Palaute??" } else { t };
        ws.write_string(r, 6, t).map_err(err)?;
        ws.write_string(r, 7, *SERVICES.choose(&mut rng).expect("non-empty"))
            .map_err(err)?;
        ws.write_string(r, 8, *MUNICIPALITIES.choose(&mut rng).expect("non-empty"))
            .map_err(err)?;
        ws.write_string(r, 9, text::answer(&mut rng, 1.0, 0.25))
            .map_err(err)?;
        ws.write_string(r, 10, if contact { "Kyllä" } else { "Ei" })
            .map_err(err)?;
        if contact && rng.random_bool(0.5) {
            ws.write_string(
                r,
                11,
                format!(
                    "040 {} {}",
                    rng.random_range(100..999),
                    rng.random_range(1000..9999)
                ),
            )
            .map_err(err)?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| GenError {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    wb.save(dir.join(FILE)).map_err(err)?;
    Ok(n)
}
