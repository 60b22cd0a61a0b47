//! Synthetic Finnish open-text answers, some with contact details that must be scrubbed.

use rand::Rng;
use rand::seq::IndexedRandom;

const WORDS: &[&str] = &[
    "hoitaja",
    "palvelu",
    "oli",
    "erittäin",
    "hyvä",
    "ystävällinen",
    "odotusaika",
    "liian",
    "pitkä",
    "kiitos",
    "lääkäri",
    "ajanvaraus",
    "puhelin",
    "jonotus",
    "selkeä",
    "tieto",
    "kuunteli",
    "ammattitaitoinen",
    "henkilökunta",
    "nopea",
    "hidas",
    "vastaanotto",
    "kotihoito",
    "omainen",
    "käynti",
    "aika",
    "tuntui",
    "että",
    "ei",
    "mutta",
    "kyllä",
    "hyvin",
    "sai",
    "apua",
    "kun",
    "soitin",
    "takaisin",
    "päätös",
    "kesti",
    "viikkoa",
    "asiointi",
    "helppoa",
    "ohjeet",
    "epäselvät",
    "neuvonta",
    "terveysasema",
    "kuntoutus",
    "palveluohjaus",
    "kiire",
    "näkyi",
    "toivoisin",
    "enemmän",
    "aikaa",
    "keskustelulle",
    "ryhmä",
    "retki",
    "vertaistuki",
];
const NAMES: &[&str] = &[
    "matti", "liisa", "juha", "anna", "mikko", "sanna", "pekka", "aino",
];
const SURNAMES: &[&str] = &[
    "virtanen", "korhonen", "nieminen", "makinen", "laine", "koskinen",
];
const HETU_CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

/// A henkilötunnus-shaped code with a valid check character (individual numbers 900–999 are the
/// range reserved for temporary identifiers, so no real person has one).
pub fn synthetic_hetu<R: Rng>(rng: &mut R) -> String {
    let d = rng.random_range(1..=28u32);
    let m = rng.random_range(1..=12u32);
    let y = rng.random_range(30..=99u32);
    let n = rng.random_range(900..=999u32);
    let v = (d * 10_000 + m * 100 + y) as u64 * 1000 + n as u64;
    format!(
        "{d:02}{m:02}{y:02}-{n:03}{}",
        HETU_CHECK[(v % 31) as usize] as char
    )
}

/// Which contact detail a generated text carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pii {
    None,
    Email,
    Phone,
    Hetu,
}

/// A sentence or two, optionally ending with a contact detail.
pub fn sentence<R: Rng>(rng: &mut R, pii: Pii) -> String {
    let n = rng.random_range(4..14);
    let mut words: Vec<&str> = (0..n)
        .map(|_| *WORDS.choose(rng).expect("non-empty"))
        .collect();
    if rng.random_bool(0.2) {
        words.push("3 kertaa viikossa");
    }
    if rng.random_bool(0.15) {
        words.push("klo 14.30");
    }
    let mut s = words.join(" ");
    if let Some(c) = s.get_mut(0..1) {
        c.make_ascii_uppercase();
    }
    s.push('.');
    match pii {
        Pii::None => {}
        Pii::Email => {
            let f = NAMES.choose(rng).expect("non-empty");
            let l = SURNAMES.choose(rng).expect("non-empty");
            s.push_str(&format!(" Ottakaa yhteyttä {f}.{l}@example.fi"));
        }
        Pii::Phone => {
            let p = ["040", "050", "044", "+358 40"]
                .choose(rng)
                .expect("non-empty");
            s.push_str(&format!(
                " Soittakaa {p} {} {}",
                rng.random_range(100..999),
                rng.random_range(1000..9999)
            ));
        }
        Pii::Hetu => s.push_str(&format!(" Henkilötunnukseni on {}", synthetic_hetu(rng))),
    }
    s
}

/// A free-text answer: empty about half the time; `pii_share` of the rest carry a contact detail.
pub fn answer<R: Rng>(rng: &mut R, fill: f64, pii_share: f64) -> String {
    if !rng.random_bool(fill) {
        return String::new();
    }
    let pii = if rng.random_bool(pii_share) {
        *[Pii::Email, Pii::Phone, Pii::Hetu]
            .choose(rng)
            .expect("non-empty")
    } else {
        Pii::None
    };
    let mut s = sentence(rng, Pii::None);
    if rng.random_bool(0.3) {
        s.push_str(if rng.random_bool(0.5) { "\n" } else { " \"" });
        s.push_str(&sentence(rng, Pii::None));
        if s.contains('"') {
            s.push('"');
        }
    }
    if pii != Pii::None {
        s.push(' ');
        s.push_str(sentence(rng, pii).as_str());
    }
    s
}
