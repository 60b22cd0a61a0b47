//! The demo's local project survey (as in the seed story): UTF-8 with a BOM, ',' separated, ISO
//! times with offsets, one column per activity marked 'x', a year of birth, and an e-mail column
//! that the pipeline must leave out.

use std::path::Path;

use chrono::{Duration, TimeZone};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{GenError, text, write_file};

pub const HEADER: &[&str] = &[
    "Response ID",
    "Submitted",
    "Email",
    "Year of birth",
    "Group activity",
    "Individual guidance",
    "Excursions",
    "Peer support",
    "Digital support",
    "Shared meal",
    "I got support for my everyday life",
    "Recommend 0-10",
    "What was good",
    "What should be improved",
];

/// How many responses the demo project has for a seed (15–200, as small projects do).
pub fn size(seed: u64) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    rng.random_range(40..=120)
}

pub fn write(dir: &Path, seed: u64) -> Result<usize, GenError> {
    let n = size(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa11e);
    let tz = chrono_tz::Europe::Helsinki;
    let start = tz
        .with_ymd_and_hms(2025, 3, 3, 9, 0, 0)
        .single()
        .expect("valid time");
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let err = |e: csv::Error| GenError {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    w.write_record(HEADER).map_err(err)?;
    let probs = [0.6, 0.35, 0.25, 0.3, 0.15, 0.4];
    for i in 0..n {
        let at = start
            + Duration::days(rng.random_range(0..56))
            + Duration::minutes(rng.random_range(0..8 * 60));
        let mut row = vec![
            format!("P{:04}", i + 1),
            at.to_rfc3339(),
            if rng.random_bool(0.4) {
                format!("osallistuja{}@example.fi", rng.random_range(1..500))
            } else {
                String::new()
            },
            if rng.random_bool(0.9) {
                rng.random_range(1940..2008).to_string()
            } else {
                String::new()
            },
        ];
        for p in probs {
            row.push(if rng.random_bool(p) {
                "x".into()
            } else {
                String::new()
            });
        }
        let lat: f64 = rng.random_range(3.0..5.0);
        row.push(((lat + rng.random_range(-1.0..1.0)).round().clamp(1.0, 5.0) as i32).to_string());
        row.push(
            ((lat * 2.0 + rng.random_range(-1.5..1.5))
                .round()
                .clamp(0.0, 10.0) as i32)
                .to_string(),
        );
        row.push(text::answer(&mut rng, 0.7, 0.15));
        row.push(text::answer(&mut rng, 0.5, 0.1));
        w.write_record(&row).map_err(err)?;
    }
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend(w.into_inner().map_err(|e| GenError {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?);
    write_file(&dir.join("arjen_tuki_kysely.csv"), &bytes)?;
    Ok(n)
}
