//! The demo county's national-measure survey: monthly cumulative exports from a survey tool,
//! Windows-1252, ';'-separated, two header rows, Finnish dates, a few broken rows, one response
//! edited at the source between two exports, and free text with contact details.

use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{GenError, text, write_file};

const MUNICIPALITIES: &[(&str, u32)] = &[
    ("Lahti", 120),
    ("Hollola", 24),
    ("Orimattila", 16),
    ("Heinola", 18),
    ("Asikkala", 8),
    ("Iitti", 7),
    ("Kärkölä", 4),
    ("Padasjoki", 3),
    ("Sysmä", 4),
    ("Hartola", 3),
];
const SERVICES: &[&str] = &[
    "Terveysasema",
    "Suun terveydenhuolto",
    "Kotihoito",
    "Sosiaalityö",
    "Perheneuvola",
];
const CHANNELS: &[(&str, u32)] = &[
    ("Tekstiviesti", 60),
    ("Verkkolinkki", 20),
    ("QR-koodi", 10),
    ("Paperilomake", 10),
];
const ROLES: &[(&str, u32)] = &[
    ("Asiakas itse", 80),
    ("Omainen tai läheinen", 15),
    ("Asiakas työntekijän avustamana", 5),
];
const AGES: &[&str] = &[
    "13–17 v",
    "18–29 v",
    "30–49 v",
    "50–64 v",
    "65–74 v",
    "75 v tai yli",
];
const GENDERS: &[&str] = &["Mies", "Nainen", "Muu", ""];
const AGREE: &[&str] = &[
    "Täysin eri mieltä",
    "Jokseenkin eri mieltä",
    "Ei samaa eikä eri mieltä",
    "Jokseenkin samaa mieltä",
    "Täysin samaa mieltä",
];

const QUESTIONS: &[(&str, &str)] = &[
    ("Vastaustunnus", "id"),
    ("Vastattu", "vastattu"),
    ("Asuinkunta", "kunta"),
    ("Palvelu", "palvelu"),
    ("Miten vastaat?", "kanava"),
    ("Kuka vastaa?", "vastaaja"),
    ("Ikäryhmä", "ika"),
    ("Sukupuoli", "sukupuoli"),
    (
        "Kuinka todennäköisesti suosittelisit saamaasi palvelua läheisellesi tai ystävällesi?",
        "suositus",
    ),
    ("Sain palvelua riittävän nopeasti.", "q_saatavuus"),
    ("Minua kohdeltiin arvostavasti.", "q_kohtaaminen"),
    ("Asioitani käsiteltiin yhdessä kanssani.", "q_osallisuus"),
    ("Koin oloni turvalliseksi.", "q_turvallisuus"),
    ("Sain tarvitsemani tiedon ymmärrettävästi.", "q_tieto"),
    ("Palvelusta oli minulle hyötyä.", "q_hyoty"),
    ("Mitä muuta haluaisit kertoa?", "avoin"),
    ("IP-osoite", "ip_osoite"),
    ("Nimi (vapaaehtoinen)", "vastaajan_nimi"),
];

/// Response ids of the deliberately broken rows, and why each fails.
pub const BROKEN: &[(u32, &str)] = &[
    (10007, "invalid_time"),
    (10023, "unknown_municipality"),
    (10042, "out_of_range"),
    (10077, "county_mismatch"),
];
/// The response edited at the source after the second export.
pub const EDITED: u32 = 10003;

fn weighted<'a, R: Rng>(rng: &mut R, items: &'a [(&'a str, u32)]) -> &'a str {
    items.choose_weighted(rng, |x| x.1).expect("non-empty").0
}

struct Response {
    id: u32,
    at: NaiveDateTime,
    fields: Vec<String>,
}

fn responses(seed: u64, months: &[(i32, u32)], per_month: usize) -> Vec<Response> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0c0f_fee5);
    let mut out = Vec::new();
    let mut id = 10_000u32;
    for &(y, m) in months {
        let start = NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
        let days = if m == 12 {
            31
        } else {
            (NaiveDate::from_ymd_opt(y, m + 1, 1).expect("valid") - start).num_days()
        };
        let mut times: Vec<NaiveDateTime> = (0..per_month)
            .map(|_| {
                start.and_hms_opt(7, 0, 0).expect("valid")
                    + Duration::days(rng.random_range(0..days))
                    + Duration::minutes(rng.random_range(0..14 * 60))
            })
            .collect();
        times.sort();
        for at in times {
            id += 1;
            let lat: f64 = rng.random_range(2.5..5.0);
            let likert = |rng: &mut ChaCha8Rng| -> String {
                let r: f64 = rng.random();
                if r < 0.05 {
                    "En osaa sanoa".into()
                } else if r < 0.07 {
                    "Ei koske minua".into()
                } else if r < 0.10 {
                    String::new()
                } else {
                    let v = (lat + rng.random_range(-1.2..1.2)).round().clamp(1.0, 5.0) as usize;
                    AGREE[v - 1].to_string()
                }
            };
            let rec = if rng.random_bool(0.05) {
                String::new()
            } else {
                (((lat - 1.0) * 2.5 + rng.random_range(-1.5..1.5))
                    .round()
                    .clamp(0.0, 10.0) as i32)
                    .to_string()
            };
            let mut fields = vec![
                id.to_string(),
                format!(
                    "{}.{}.{} {}.{:02}",
                    at.day(),
                    at.month(),
                    at.year(),
                    chrono::Timelike::hour(&at),
                    chrono::Timelike::minute(&at)
                ),
                weighted(&mut rng, MUNICIPALITIES).to_string(),
                SERVICES.choose(&mut rng).expect("non-empty").to_string(),
                weighted(&mut rng, CHANNELS).to_string(),
                weighted(&mut rng, ROLES).to_string(),
                AGES.choose(&mut rng).expect("non-empty").to_string(),
                GENDERS.choose(&mut rng).expect("non-empty").to_string(),
                rec,
            ];
            for _ in 0..6 {
                fields.push(likert(&mut rng));
            }
            fields.push(text::answer(&mut rng, 0.5, 0.2));
            fields.push(format!(
                "10.{}.{}.{}",
                rng.random_range(0..255),
                rng.random_range(0..255),
                rng.random_range(1..255)
            ));
            fields.push(if rng.random_bool(0.05) {
                "Maija Meikäläinen".into()
            } else {
                String::new()
            });
            match id {
                10007 => fields[1] = "31.2.2025 12.00".into(),
                10023 => fields[2] = "Tuntematon".into(),
                10042 => fields[12] = "6".into(),
                10077 => fields[2] = "Helsinki".into(),
                _ => {}
            }
            out.push(Response { id, at, fields });
        }
    }
    out
}

/// The file name of the export made at the end of `(year, month)`.
pub fn export_name(y: i32, m: u32) -> String {
    format!("asiakaspalaute_{y}-{m:02}.csv")
}

/// The demo's months.
pub const MONTHS: &[(i32, u32)] = &[(2025, 1), (2025, 2), (2025, 3), (2025, 4)];

/// Write the cumulative export made at the end of month `upto` (an index into `MONTHS`).
pub fn write_export(dir: &Path, seed: u64, upto: usize, per_month: usize) -> Result<(), GenError> {
    let all = responses(seed, MONTHS, per_month);
    let (y, m) = MONTHS[upto];
    let end = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    }
    .expect("valid")
    .and_hms_opt(0, 0, 0)
    .expect("valid");
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let err = |e: csv::Error| GenError {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    w.write_record(QUESTIONS.iter().map(|q| q.0)).map_err(err)?;
    w.write_record(QUESTIONS.iter().map(|q| q.1)).map_err(err)?;
    for r in all.iter().filter(|r| r.at < end) {
        let mut f = r.fields.clone();
        if r.id == EDITED && upto >= 3 {
            // the respondent's answer was corrected in the survey tool
            f[9] = AGREE[4].to_string();
        }
        w.write_record(&f).map_err(err)?;
    }
    let utf8 = String::from_utf8(w.into_inner().map_err(|e| GenError {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?)
    .expect("the generator writes text");
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&utf8);
    debug_assert!(!unmappable);
    write_file(&dir.join(export_name(y, m)), &bytes)
}
