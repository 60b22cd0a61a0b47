//! Scrubbing of open text: personal data is replaced by typed markers before anything is stored.
//!
//! Detected: URLs with a query string, e-mail addresses, IBANs (mod-97 checked), henkilötunnus
//! (date and check character validated), phone numbers (Finnish domestic `0…`, `+358`/`00358`,
//! and other international `+…` numbers), and Finnish/Swedish street addresses with a number.
//! Ordinary numbers, times (`klo 14.30`), dates (`5.3.2024`) and amounts are left alone: a phone
//! number needs a leading 0 or +, and separators other than space or hyphen end it.

use regex::Regex;

use crate::config::PiiKind;

/// Scrubbed text and what was removed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scrubbed {
    pub text: String,
    pub redactions: u32,
    /// kinds found, in the order of [`PiiKind::ALL`], comma-separated (`email,phone`)
    pub kinds: String,
}

pub struct Scrubber {
    re: Option<Regex>,
    /// capture group names in pattern order, with their kind
    groups: Vec<(&'static str, PiiKind)>,
    /// the first names, when `name` is scrubbed
    names: Option<&'static Names>,
}

/// The pattern of a kind found by a regular expression (`name` is found by [`Names`]).
fn pattern(kind: PiiKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        PiiKind::Name => return None,
        PiiKind::Url => ("url", r#"(?i:https?://|www\.)[^\s<>"']+\?[^\s<>"']+"#),
        PiiKind::Email => ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
        PiiKind::Iban => (
            "iban",
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
        ),
        PiiKind::Hetu => (
            "hetu",
            r"(?-u:\b)[0-3][0-9][01][0-9][0-9]{2}[-+A-FU-Y][0-9]{3}[0-9A-FHJ-NPR-Y](?-u:\b)",
        ),
        PiiKind::Phone => (
            "phone",
            r"(?:\+|(?-u:\b)00)[1-9](?:[ -]?\(?[0-9]\)?){6,13}|(?:\(0[1-9][0-9]{0,2}\)|(?-u:\b)0[1-9])(?:[ -]?[0-9]){5,9}(?-u:\b)",
        ),
        PiiKind::Address => (
            "address",
            r"[A-ZÅÄÖ][a-zåäö-]+(?:tie|katu|kuja|polku|kaari|väylä|raitti|rinne|aukio|tori|vägen|gatan|gränd|stigen)\s+[0-9]{1,4}(?:\s?[A-Za-z](?:\s?[0-9]{1,3})?)?",
        ),
    })
}

/// Can any pattern match `text`? Exact for every pattern: each needs a byte that this looks for
/// (a digit: phone, henkilötunnus, IBAN, address; '@': e-mail; '?': a URL's query string). The
/// test `fast_path_is_exact_for_every_pattern` checks it against each pattern's text.
fn may_match(text: &str) -> bool {
    text.bytes()
        .any(|b| b.is_ascii_digit() || b == b'@' || b == b'?')
}

const HETU_CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

/// A henkilötunnus is valid when its date exists and its check character matches.
pub fn valid_hetu(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 11 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> { s.get(r)?.parse().ok() };
    let (Some(dd), Some(mm), Some(yy), Some(nnn)) =
        (digits(0..2), digits(2..4), digits(4..6), digits(7..10))
    else {
        return false;
    };
    let century = match b[6] {
        b'+' => 1800,
        b'-' | b'U'..=b'Y' => 1900,
        b'A'..=b'F' => 2000,
        _ => return false,
    };
    if chrono::NaiveDate::from_ymd_opt((century + yy) as i32, mm, dd).is_none() {
        return false;
    }
    let n = (dd * 10_000 + mm * 100 + yy) as u64 * 1000 + nnn as u64;
    HETU_CHECK[(n % 31) as usize] == b[10]
}

/// An IBAN is valid when its mod-97 check holds.
pub fn valid_iban(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let mut rem: u64 = 0;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        let v = match c {
            b'0'..=b'9' => (c - b'0') as u64,
            b'A'..=b'Z' => (c - b'A') as u64 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

impl Scrubber {
    pub fn new(kinds: &[PiiKind]) -> Scrubber {
        let mut groups = Vec::new();
        let mut parts = Vec::new();
        for k in PiiKind::ALL {
            if let (true, Some((name, pat))) = (kinds.contains(&k), pattern(k)) {
                groups.push((name, k));
                parts.push(format!("(?P<{name}>{pat})"));
            }
        }
        let re = (!parts.is_empty())
            .then(|| Regex::new(&parts.join("|")).expect("the scrubbing patterns are valid"));
        let names = kinds.contains(&PiiKind::Name).then(Names::embedded);
        Scrubber { re, groups, names }
    }

    /// Replace every personal datum in `text` with its marker.
    pub fn scrub(&self, text: &str) -> Scrubbed {
        let mut found = [false; PiiKind::ALL.len()];
        let mut n = 0u32;
        let mut out = match &self.re {
            Some(re) if may_match(text) => self.scrub_patterns(re, text, &mut found, &mut n),
            _ => None,
        };
        if let Some(names) = self.names {
            let current = out.as_deref().unwrap_or(text);
            if let Some(t) = names.scrub(current, &mut n) {
                found[PiiKind::ALL.len() - 1] = true;
                out = Some(t);
            }
        }
        let Some(text) = out else {
            return Scrubbed {
                text: text.to_string(),
                redactions: 0,
                kinds: String::new(),
            };
        };
        let kinds = PiiKind::ALL
            .iter()
            .zip(found)
            .filter(|(_, f)| *f)
            .map(|(k, _)| k.name())
            .collect::<Vec<_>>()
            .join(",");
        Scrubbed {
            text,
            redactions: n,
            kinds,
        }
    }

    /// The regular expressions' pass: the text with markers, or `None` when nothing matched.
    fn scrub_patterns(
        &self,
        re: &Regex,
        text: &str,
        found: &mut [bool; PiiKind::ALL.len()],
        n: &mut u32,
    ) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let before = *n;
        for caps in re.captures_iter(text) {
            let Some((kind, m)) = self
                .groups
                .iter()
                .find_map(|(name, k)| caps.name(name).map(|m| (*k, m)))
            else {
                continue;
            };
            let ok = match kind {
                PiiKind::Hetu => valid_hetu(m.as_str()),
                PiiKind::Iban => valid_iban(m.as_str()),
                _ => true,
            };
            if !ok {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            out.push_str(kind.marker());
            last = m.end();
            *n += 1;
            found[PiiKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)] = true;
        }
        if *n == before {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// First names from `schemas/names/first_names.txt`, with the inflected forms a name takes in
/// Finnish (`Liisalle`, `Matin`, `Niklasille`) and Swedish or English (`Annas`).
pub struct Names {
    /// lowercase form → (the name, whether the form is the name itself)
    forms: std::collections::HashMap<String, (String, bool)>,
}

/// Names that are also common words: not taken as a name as the first word of a sentence.
const AMBIGUOUS: [&str; 22] = [
    "aino", "anna", "onni", "toivo", "satu", "usko", "sulo", "tuuli", "lempi", "sini", "suvi",
    "urho", "sampo", "veli", "lahja", "sointu", "aarre", "taisto", "helmi", "lilja", "kai", "bo",
];

/// Case endings a person's name takes (locative ones, which places take, left out: "Kaarinassa"
/// is the town).
const ENDINGS: [&str; 16] = [
    "lle", "lla", "llä", "lta", "ltä", "ksi", "kin", "nkin", "n", "a", "ä", "na", "nä", "s", "'s",
    "ineen",
];

impl Names {
    pub fn embedded() -> &'static Names {
        static NAMES: std::sync::OnceLock<Names> = std::sync::OnceLock::new();
        NAMES
            .get_or_init(|| Names::parse(include_str!("../../../../schemas/names/first_names.txt")))
    }

    fn parse(list: &str) -> Names {
        let mut forms = std::collections::HashMap::new();
        for name in list.lines().map(str::trim) {
            if name.is_empty() || name.starts_with('#') {
                continue;
            }
            let lower = name.to_lowercase();
            forms.insert(lower.clone(), (lower.clone(), true));
            // the stem inflected forms are built on: consonant gradation (Matti → Mati-n,
            // Pekka → Peka-n), and an `i` after a final consonant (Niklas → Niklasi-n)
            let chars: Vec<char> = lower.chars().collect();
            let k = chars.len();
            if k >= 4 && chars[k - 2] == chars[k - 3] && "ktp".contains(chars[k - 2]) {
                let weak: String = chars[..k - 2].iter().chain(&chars[k - 1..]).collect();
                forms.entry(weak).or_insert((lower.clone(), false));
            }
            if chars.last().is_some_and(|c| !"aeiouyäö".contains(*c)) {
                forms
                    .entry(format!("{lower}i"))
                    .or_insert((lower.clone(), false));
            }
        }
        Names { forms }
    }

    /// The name a word is a form of, if any, and whether it is the bare name (not inflected).
    fn name_of(&self, word: &str) -> Option<(&str, bool)> {
        let lower = word.to_lowercase();
        if let Some((n, true)) = self.forms.get(&lower) {
            return Some((n, true));
        }
        ENDINGS.iter().find_map(|e| {
            let stem = lower.strip_suffix(e)?;
            self.forms.get(stem).map(|(n, _)| (n.as_str(), false))
        })
    }

    /// `text` with each first name (and a capitalised word right after it, a surname) replaced
    /// by `[name]`, or `None` when it names nobody.
    fn scrub(&self, text: &str, n: &mut u32) -> Option<String> {
        let words = words(text);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut i = 0;
        let before = *n;
        while i < words.len() {
            let (start, end, sentence_start) = words[i];
            let w = &text[start..end];
            // a bare name that is also a word ("Toivo on kova") is no name as a sentence's
            // first word
            let hit = capitalised(w)
                && self.name_of(w).is_some_and(|(name, bare)| {
                    !(bare && sentence_start && AMBIGUOUS.contains(&name))
                });
            if !hit {
                i += 1;
                continue;
            }
            let mut stop = end;
            // a surname right after: one space, capitalised, not a new sentence
            if let Some(&(s2, e2, false)) = words.get(i + 1)
                && s2 == end + 1
                && capitalised(&text[s2..e2])
            {
                stop = e2;
                i += 1;
            }
            out.push_str(&text[last..start]);
            out.push_str(PiiKind::Name.marker());
            last = stop;
            *n += 1;
            i += 1;
        }
        if *n == before {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

fn capitalised(w: &str) -> bool {
    let mut c = w.chars();
    c.next().is_some_and(char::is_uppercase) && c.all(|c| !c.is_uppercase())
}

/// The words of a text (letters, hyphens and apostrophes inside): (start, end, whether the word
/// begins a sentence).
fn words(text: &str) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut sentence_start = true;
    for (i, c) in text.char_indices() {
        let inside = c.is_alphabetic() || ((c == '-' || c == '\'') && start.is_some());
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i, sentence_start));
                sentence_start = false;
                start = None;
            }
            _ => {}
        }
        // after a closing bracket (or a marker) a new sentence may begin without a full stop
        if !inside && ".!?:\n)]".contains(c) {
            sentence_start = true;
        } else if !inside && !c.is_whitespace() && !"\"'(«»".contains(c) {
            sentence_start = false;
        }
    }
    if let Some(s) = start {
        out.push((s, text.len(), sentence_start));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> String {
        Scrubber::new(&PiiKind::ALL).scrub(t).text
    }

    #[test]
    fn each_kind_is_replaced() {
        assert_eq!(
            s("Ottakaa yhteyttä matti.virtanen@example.fi kiitos"),
            "Ottakaa yhteyttä [email] kiitos"
        );
        assert_eq!(s("soittakaa 040 1234567"), "soittakaa [phone]");
        assert_eq!(s("soittakaa 040-123 4567."), "soittakaa [phone].");
        assert_eq!(
            s("numero +358 40 123 4567 iltaisin"),
            "numero [phone] iltaisin"
        );
        assert_eq!(s("numero +35840 1234567"), "numero [phone]");
        assert_eq!(s("call +44 20 7946 0958"), "call [phone]");
        assert_eq!(s("hetu 131052-308T ok"), "hetu [hetu] ok");
        assert_eq!(
            s("tili FI21 1234 5600 0007 85 kiitos"),
            "tili [iban] kiitos"
        );
        assert_eq!(
            s("katso https://example.fi/lomake?id=123&user=5 tästä"),
            "katso [url] tästä"
        );
        assert_eq!(
            s("asun Mannerheimintie 12 B 5 Helsinki"),
            "asun [address] Helsinki"
        );
    }

    #[test]
    fn a_url_without_digits_is_scrubbed() {
        assert_eq!(
            s("Lomake oli täällä https://kysely.example.fi/lomake?nimi=mattimeikalainen"),
            "Lomake oli täällä [url]"
        );
        assert_eq!(s("www.example.fi/a?b=c kiitos"), "[url] kiitos");
    }

    #[test]
    fn fast_path_is_exact_for_every_pattern() {
        // every literal character class a pattern must match is one may_match looks for: strip
        // the bytes it looks for from a match of each kind, and no pattern matches any more
        let samples = [
            "https://kysely.example.fi/lomake?nimi=x",
            "matti@example.fi",
            "FI21 1234 5600 0007 85",
            "131052-308T",
            "040 1234567",
            "Hämeenkatu 12 A 3",
        ];
        let all = Scrubber::new(&PiiKind::ALL);
        for t in samples {
            assert!(may_match(t), "{t}");
            assert_ne!(all.scrub(t).redactions, 0, "{t}");
            let stripped: String = t
                .chars()
                .filter(|c| !(c.is_ascii_digit() || *c == '@' || *c == '?'))
                .collect();
            // (names are not found by the patterns)
            let re = all.re.as_ref().unwrap();
            assert!(!re.is_match(&stripped), "{stripped} still matches");
        }
    }

    #[test]
    fn first_names_in_their_case_forms_with_a_surname_only_when_asked() {
        let n = |t: &str| {
            Scrubber::new(&[PiiKind::Name, PiiKind::Email])
                .scrub(t)
                .text
        };
        assert_eq!(n("hoitaja Liisa oli ihana"), "hoitaja [name] oli ihana");
        assert_eq!(n("Kiitos Matille ja Pekalle!"), "Kiitos [name] ja [name]!");
        assert_eq!(n("Niklasin kanssa sovittiin"), "[name] kanssa sovittiin");
        assert_eq!(
            n("lääkäri Anna Virtanen kuunteli"),
            "lääkäri [name] kuunteli"
        );
        assert_eq!(n("Nurse Birgitta was kind"), "Nurse [name] was kind");
        // common words that are names, as a sentence's first word; places; lower case
        for t in [
            "Toivo on kova.",
            "Anna palautetta! Onni oli myötä.",
            "Asun Kaarinassa ja kävin Lahdessa.",
            "sain apua, kiitos liisa",
            "(a@b.fi) Tuuli oli kova",
        ] {
            assert_eq!(n(t), t.replace("a@b.fi", "[email]"), "{t}");
        }
        let r = Scrubber::new(&[PiiKind::Name, PiiKind::Email]).scrub("Liisa, a@b.fi");
        assert_eq!((r.redactions, r.kinds.as_str()), (2, "email,name"));
        // not in the default set
        assert_eq!(
            Scrubber::new(&PiiKind::DEFAULT).scrub("hoitaja Liisa").text,
            "hoitaja Liisa"
        );
    }

    #[test]
    fn a_phone_number_with_its_area_code_in_brackets() {
        assert_eq!(
            s("soita (040) 123 4567 tai (09) 1234 567"),
            "soita [phone] tai [phone]"
        );
    }

    #[test]
    fn ordinary_numbers_stay() {
        for t in [
            "3 kertaa viikossa",
            "klo 14.30 oli vastaanotto",
            "maksoi 1 200 euroa",
            "käynti 5.3.2024 klo 9",
            "odotin 45 minuuttia, 2 tuntia",
            "hinta 0,50 €",
            "https://example.fi/ohjeet ilman kyselyä",
            "vuonna 2024 kävin 12 kertaa",
        ] {
            assert_eq!(s(t), t, "{t}");
        }
    }

    #[test]
    fn checksums_decide() {
        assert!(valid_hetu("131052-308T"));
        assert!(!valid_hetu("131052-308U"));
        assert!(!valid_hetu("311352-308T"));
        assert_eq!(s("koodi 131052-308U"), "koodi 131052-308U");
        assert!(valid_iban("FI2112345600000785"));
        assert!(!valid_iban("FI2112345600000786"));
    }

    #[test]
    fn counts_and_kinds() {
        let r = Scrubber::new(&PiiKind::ALL).scrub("a@b.fi ja 0401234567 ja c@d.fi");
        assert_eq!(r.redactions, 3);
        assert_eq!(r.kinds, "email,phone");
        let only_email = Scrubber::new(&[PiiKind::Email]).scrub("a@b.fi 0401234567");
        assert_eq!(only_email.text, "[email] 0401234567");
    }
}
