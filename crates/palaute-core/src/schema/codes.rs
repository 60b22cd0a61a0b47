//! Code lists: the small national lists of `schemas/codes/lists.yaml` and the regional
//! classification (municipality → county → cooperation area) per classification year.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::Labels;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeEntry {
    pub code: String,
    pub labels: Labels,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// lower bound of an age band, in completed years
    #[serde(default)]
    pub from: Option<u16>,
    #[serde(default)]
    pub to: Option<u16>,
}

/// One code list with a case-insensitive index of codes, labels and aliases.
#[derive(Debug, Clone)]
pub struct CodeList {
    pub entries: Vec<CodeEntry>,
    index: HashMap<String, String>,
}

pub fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

impl CodeList {
    pub fn new(entries: Vec<CodeEntry>) -> Self {
        let mut index = HashMap::new();
        // codes win over labels, labels over aliases: insert in reverse priority
        for e in &entries {
            for a in &e.aliases {
                index.insert(fold(a), e.code.clone());
            }
        }
        for e in &entries {
            for l in e.labels.all() {
                index.insert(fold(l), e.code.clone());
            }
        }
        for e in &entries {
            index.insert(fold(&e.code), e.code.clone());
        }
        CodeList { entries, index }
    }

    /// The code for a source value (a code, a label in fi/sv/en, or an alias).
    pub fn lookup(&self, value: &str) -> Option<&str> {
        self.index.get(&fold(value)).map(String::as_str)
    }

    pub fn contains_code(&self, code: &str) -> bool {
        self.entries.iter().any(|e| e.code == code)
    }

    pub fn codes(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.code.as_str()).collect()
    }

    /// The band that holds every age of `from..=to` (for the `age_group` list).
    pub fn band_holding(&self, (from, to): (u16, u16)) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| matches!((e.from, e.to), (Some(f), Some(t)) if f <= from && to <= t))
            .map(|e| e.code.as_str())
    }

    /// Whether the list's entries are age bands.
    pub fn has_bands(&self) -> bool {
        self.entries.iter().any(|e| e.from.is_some())
    }

    /// The band whose [from, to] holds `age` (for the `age_group` list).
    pub fn band_for(&self, age: u16) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| matches!((e.from, e.to), (Some(f), Some(t)) if f <= age && age <= t))
            .map(|e| e.code.as_str())
    }
}

/// An age band as exports write it (`18-24`, `25–34 v`, `75+`, `65 or over`, `alle 18`), as
/// the ages it spans; `None` when the text is no band.
pub fn parse_age_band(s: &str) -> Option<(u16, u16)> {
    let t = s.trim().to_lowercase();
    let mut nums = Vec::new();
    let mut between = vec![String::new()];
    let mut cur = String::new();
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            cur.push(ch);
        } else {
            if !cur.is_empty() {
                nums.push(cur.parse::<u16>().ok()?);
                cur.clear();
                between.push(String::new());
            }
            between.last_mut().expect("one").push(ch);
        }
    }
    if !cur.is_empty() {
        nums.push(cur.parse::<u16>().ok()?);
        between.push(String::new());
    }
    let words: Vec<&str> = between.iter().map(|w| w.trim()).collect();
    let unit = |w: &str| {
        matches!(
            w,
            "" | "v" | "v." | "vuotta" | "years" | "year" | "yrs" | "y" | "år" | "a"
        )
    };
    match (nums.as_slice(), words.as_slice()) {
        ([a, b], [pre, mid, post])
            if pre.is_empty()
                && matches!(*mid, "-" | "–" | "—" | "to" | ".." | "…")
                && unit(post) =>
        {
            (a <= b).then_some((*a, *b))
        }
        ([a], ["", post]) => {
            let post = post.trim_start_matches(['v', '.']).trim();
            matches!(
                post,
                "+" | "-"
                    | "–"
                    | "tai yli"
                    | "tai vanhempi"
                    | "or over"
                    | "and over"
                    | "years or over"
                    | "years and over"
                    | "or older"
                    | "år eller äldre"
                    | "eller äldre"
                    | "år och äldre"
            )
            .then_some((*a, 130))
        }
        ([a], [pre, post]) if unit(post) => match *pre {
            "alle" | "under" | "<" | "under than" => a.checked_sub(1).map(|b| (0, b)),
            "yli" | "over" | ">" | "över" => Some((a + 1, 130)),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn parse_lists(text: &str) -> Result<BTreeMap<String, CodeList>, serde_yaml::Error> {
    let raw: BTreeMap<String, Vec<CodeEntry>> = serde_yaml::from_str(text)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, CodeList::new(v)))
        .collect())
}

/// A municipality in one classification year.
#[derive(Debug, Clone)]
pub struct Municipality {
    pub code: String,
    pub name_fi: String,
    pub name_sv: String,
    pub county: String,
    pub cooperation_area: String,
}

/// Where a response belongs, resolved through the list of its classification year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geography {
    pub municipality: String,
    pub classification_year: i16,
    pub county: String,
    pub cooperation_area: String,
}

#[derive(Debug)]
struct YearList {
    by_code: HashMap<String, Municipality>,
    by_name: HashMap<String, String>,
}

/// The regional classification for every year in `schemas/codes/`.
#[derive(Debug)]
pub struct MunicipalityLists {
    years: BTreeMap<i16, YearList>,
    /// county code → cooperation area (for a county given as a constant)
    counties: HashMap<String, (String, String)>,
}

const MUNICIPALITY_FILES: &[(i16, &str)] = &[
    (
        2023,
        include_str!("../../../../schemas/codes/municipalities_2023.csv"),
    ),
    (
        2024,
        include_str!("../../../../schemas/codes/municipalities_2024.csv"),
    ),
    (
        2025,
        include_str!("../../../../schemas/codes/municipalities_2025.csv"),
    ),
    (
        2026,
        include_str!("../../../../schemas/codes/municipalities_2026.csv"),
    ),
];
const COUNTIES: &str = include_str!("../../../../schemas/codes/counties.csv");

fn column(headers: &csv::StringRecord, name: &str) -> Result<usize, String> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| format!("missing column {name}"))
}

impl MunicipalityLists {
    pub(crate) fn embedded() -> Result<Self, String> {
        let mut years = BTreeMap::new();
        for (year, text) in MUNICIPALITY_FILES {
            let mut rd = csv::Reader::from_reader(text.as_bytes());
            let h = rd.headers().map_err(|e| e.to_string())?.clone();
            let (c, fi, sv, county, coop) = (
                column(&h, "municipality_code")?,
                column(&h, "name_fi")?,
                column(&h, "name_sv")?,
                column(&h, "county_code")?,
                column(&h, "cooperation_area_code")?,
            );
            let mut by_code = HashMap::new();
            let mut by_name = HashMap::new();
            for r in rd.records() {
                let r = r.map_err(|e| format!("municipalities_{year}.csv: {e}"))?;
                let m = Municipality {
                    code: r[c].to_string(),
                    name_fi: r[fi].to_string(),
                    name_sv: r[sv].to_string(),
                    county: r[county].to_string(),
                    cooperation_area: r[coop].to_string(),
                };
                // "Maarianhamina - Mariehamn": both halves are names too
                for name in [&m.name_fi, &m.name_sv] {
                    by_name.insert(fold(name), m.code.clone());
                    for part in name.split(" - ") {
                        by_name.insert(fold(part), m.code.clone());
                    }
                }
                by_code.insert(m.code.clone(), m);
            }
            years.insert(*year, YearList { by_code, by_name });
        }
        let mut counties = HashMap::new();
        let mut rd = csv::Reader::from_reader(COUNTIES.as_bytes());
        let h = rd.headers().map_err(|e| e.to_string())?.clone();
        let (c, name, coop) = (
            column(&h, "county_code")?,
            column(&h, "name_fi")?,
            column(&h, "cooperation_area_code")?,
        );
        for r in rd.records() {
            let r = r.map_err(|e| format!("counties.csv: {e}"))?;
            counties.insert(r[c].to_string(), (r[name].to_string(), r[coop].to_string()));
        }
        Ok(MunicipalityLists { years, counties })
    }

    /// The classification year used for a response submitted in `year`: the year itself, clamped
    /// to the years that have a list.
    pub fn classification_year(&self, year: i32) -> i16 {
        let first = *self.years.keys().next().expect("at least one year");
        let last = *self.years.keys().next_back().expect("at least one year");
        (year.clamp(first as i32, last as i32)) as i16
    }

    pub fn years(&self) -> Vec<i16> {
        self.years.keys().copied().collect()
    }

    /// Resolve a municipality code or a Finnish/Swedish name in the list of `year`.
    pub fn resolve(&self, value: &str, year: i16) -> Option<Geography> {
        let list = self.years.get(&year)?;
        let v = value.trim();
        let code = if !v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()) {
            format!("{v:0>3}")
        } else {
            list.by_name.get(&fold(v))?.clone()
        };
        let m = list.by_code.get(&code)?;
        Some(Geography {
            municipality: m.code.clone(),
            classification_year: year,
            county: m.county.clone(),
            cooperation_area: m.cooperation_area.clone(),
        })
    }

    pub fn is_county(&self, code: &str) -> bool {
        self.counties.contains_key(code)
    }

    pub fn county_cooperation_area(&self, county: &str) -> Option<&str> {
        self.counties.get(county).map(|(_, c)| c.as_str())
    }

    pub fn county_name(&self, county: &str) -> Option<&str> {
        self.counties.get(county).map(|(n, _)| n.as_str())
    }

    /// County codes in code order.
    pub fn county_codes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.counties.keys().cloned().collect();
        v.sort();
        v
    }

    /// Municipality codes of one year, in code order.
    pub fn municipality_codes(&self, year: i16) -> Vec<&Municipality> {
        let mut v: Vec<&Municipality> = self
            .years
            .get(&year)
            .map(|l| l.by_code.values().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, the ages it spans) — a band exports write, or None for text that is no band
    const BANDS: &[(&str, Option<(u16, u16)>)] = &[
        ("18-24", Some((18, 24))),
        ("25 – 34", Some((25, 34))),
        ("35–44 v", Some((35, 44))),
        ("45 to 54 years", Some((45, 54))),
        ("75+", Some((75, 130))),
        ("65 or over", Some((65, 130))),
        ("75 v tai yli", Some((75, 130))),
        ("alle 18", Some((0, 17))),
        ("under 13", Some((0, 12))),
        ("yli 64", Some((65, 130))),
        ("24-18", None),
        ("18", None),
        ("about 40", None),
        ("18-24-30", None),
    ];

    #[test]
    fn age_bands_parse_and_nest_in_the_national_ones() {
        for (text, want) in BANDS {
            assert_eq!(parse_age_band(text), *want, "{text}");
        }
        let cat = crate::schema::Catalog::embedded();
        let l = cat.list("age_group");
        let nest = |t: &str| parse_age_band(t).and_then(|r| l.band_holding(r));
        assert_eq!(nest("18-24"), Some("18-29"));
        assert_eq!(nest("30-39"), Some("30-49"));
        assert_eq!(nest("80+"), Some("75+"));
        assert_eq!(nest("25-34"), None);
        assert_eq!(nest("alle 18"), None);
        assert!(l.has_bands() && !cat.list("gender").has_bands());
    }

    #[test]
    fn resolves_codes_and_names_per_year() {
        let l = MunicipalityLists::embedded().unwrap();
        assert_eq!(l.resolve("91", 2024).unwrap().county, "90");
        assert_eq!(l.resolve("Vantaa", 2024).unwrap().municipality, "092");
        assert_eq!(l.resolve("vanda", 2025).unwrap().county, "04");
        assert_eq!(l.resolve("Mariehamn", 2026).unwrap().county, "91");
        // Pertunmaa merged into Mäntyharju on 1.1.2025
        assert_eq!(l.resolve("588", 2024).unwrap().county, "12");
        assert!(l.resolve("588", 2025).is_none());
        assert!(l.resolve("999", 2024).is_none());
        assert_eq!(l.classification_year(2019), 2023);
        assert_eq!(l.classification_year(2031), 2026);
        assert_eq!(l.county_codes().len(), 23);
    }
}
