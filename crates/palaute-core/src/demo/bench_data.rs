//! The benchmark's wide export, in the 26-column layout of the benchmark's reference generator:
//! `response_id, submitted_at, municipality_code, service_code, channel, respondent_type,
//! age_group, gender, q1..q7, nps, act_1..act_8, good, improve`.
//!
//! Rows are generated in chunks of 10,000, each from its own seeded generator, so the first
//! N rows of a larger file equal a file of N rows (N a multiple of 10,000): a cumulative export is
//! a bigger file with the same seed.

use std::io::Write;
use std::path::Path;

use chrono::{Duration, TimeZone};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{GenError, text};
use crate::schema::Catalog;

pub const CHUNK: usize = 10_000;

pub const HEADER: &[&str] = &[
    "response_id",
    "submitted_at",
    "municipality_code",
    "service_code",
    "channel",
    "respondent_type",
    "age_group",
    "gender",
    "q1",
    "q2",
    "q3",
    "q4",
    "q5",
    "q6",
    "q7",
    "nps",
    "act_1",
    "act_2",
    "act_3",
    "act_4",
    "act_5",
    "act_6",
    "act_7",
    "act_8",
    "good",
    "improve",
];

const CHANNELS: &[(&str, u32)] = &[("web", 70), ("paper", 15), ("sms", 10), ("kiosk", 5)];
const ROLES: &[(&str, u32)] = &[("client", 75), ("relative", 18), ("helped_by_worker", 7)];
const AGES: &[&str] = &["18-29", "30-49", "50-64", "65-74", "75+"];
const ACT_P: [f64; 8] = [0.45, 0.30, 0.22, 0.15, 0.12, 0.08, 0.05, 0.03];

fn services() -> Vec<String> {
    let areas = [
        ("SH", "AIK"),
        ("SH", "LAP"),
        ("SH", "VAN"),
        ("SH", "VAM"),
        ("SH", "MTP"),
        ("TH", "VOS"),
        ("TH", "SUU"),
        ("TH", "KUN"),
        ("TH", "ERI"),
        ("TH", "PAI"),
    ];
    areas
        .iter()
        .flat_map(|(a, b)| (1..=4).map(move |i| format!("{a}-{b}-{i:02}")))
        .collect()
}

/// Write `rows` rows to `path`.
pub fn write(path: &Path, rows: usize, seed: u64) -> Result<(), GenError> {
    let start = chrono_tz::Europe::Helsinki
        .with_ymd_and_hms(2023, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    write_between(path, rows, seed, start, 2 * 365 * 24 * 60)
}

/// [`write()`] with submission times spread over `span_minutes` from `start` (the demo's national
/// reference covers the demo county's months).
pub fn write_between(
    path: &Path,
    rows: usize,
    seed: u64,
    start: chrono::DateTime<chrono_tz::Tz>,
    span_minutes: i64,
) -> Result<(), GenError> {
    let err = |e: std::io::Error| GenError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let munis: Vec<(String, u32)> = Catalog::embedded()
        .municipalities
        .municipality_codes(2024)
        .into_iter()
        .map(|m| {
            let w = match m.code.as_str() {
                "091" => 660,
                "049" => 310,
                "837" => 250,
                "092" => 245,
                "564" => 215,
                "853" => 200,
                _ => 10 + (m.code.bytes().map(|b| b as u32).sum::<u32>() % 40),
            };
            (m.code.clone(), w)
        })
        .collect();
    let services = services();
    let tmp = path.with_extension("tmp");
    let f = std::fs::File::create(&tmp).map_err(err)?;
    let mut w =
        csv::WriterBuilder::new().from_writer(std::io::BufWriter::with_capacity(1 << 20, f));
    let cerr = |e: csv::Error| GenError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    w.write_record(HEADER).map_err(cerr)?;
    let mut row: Vec<String> = Vec::with_capacity(26);
    for chunk in 0..rows.div_ceil(CHUNK) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003) ^ chunk as u64);
        for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(rows) {
            row.clear();
            row.push((i + 1).to_string());
            let at = start + Duration::minutes(rng.random_range(0..span_minutes));
            row.push(at.format("%Y-%m-%dT%H:%M:%S%:z").to_string());
            let r: f64 = rng.random();
            row.push(if r < 0.002 {
                String::new()
            } else if r < 0.0025 {
                "999".into()
            } else {
                munis
                    .choose_weighted(&mut rng, |m| m.1)
                    .expect("non-empty")
                    .0
                    .clone()
            });
            row.push(services.choose(&mut rng).expect("non-empty").clone());
            row.push(
                CHANNELS
                    .choose_weighted(&mut rng, |c| c.1)
                    .expect("non-empty")
                    .0
                    .into(),
            );
            row.push(
                ROLES
                    .choose_weighted(&mut rng, |c| c.1)
                    .expect("non-empty")
                    .0
                    .into(),
            );
            row.push(if rng.random_bool(0.04) {
                String::new()
            } else {
                AGES.choose(&mut rng).expect("non-empty").to_string()
            });
            let g: f64 = rng.random();
            row.push(
                if g < 0.06 {
                    ""
                } else if g < 0.46 {
                    "1"
                } else if g < 0.96 {
                    "2"
                } else {
                    "3"
                }
                .into(),
            );
            let lat: f64 = 3.9 + rng.random_range(-1.2..1.2);
            for _ in 0..7 {
                let r: f64 = rng.random();
                row.push(if r < 0.05 {
                    "EOS".into()
                } else if r < 0.08 {
                    String::new()
                } else {
                    ((lat + rng.random_range(-0.9..0.9)).round().clamp(1.0, 5.0) as i32).to_string()
                });
            }
            row.push(if rng.random_bool(0.06) {
                String::new()
            } else {
                (((lat - 1.0) * 2.5 + rng.random_range(-2.0..2.0))
                    .round()
                    .clamp(0.0, 10.0) as i32)
                    .to_string()
            });
            for p in ACT_P {
                row.push(if rng.random_bool(p) {
                    "Y".into()
                } else {
                    String::new()
                });
            }
            row.push(text::answer(&mut rng, 0.4, 0.08));
            row.push(text::answer(&mut rng, 0.4, 0.08));
            w.write_record(&row).map_err(cerr)?;
        }
    }
    let mut inner = w.into_inner().map_err(|e| GenError {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    inner.flush().map_err(err)?;
    drop(inner);
    std::fs::rename(&tmp, path).map_err(err)
}
