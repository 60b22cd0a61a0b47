//! Times as survey tools write them.
//!
//! `auto` accepts ISO 8601 (`2024-03-05T14:22:01+02:00`, `2024-03-05 14:22`, `…Z`, a date alone),
//! Finnish (`5.3.2024 14.22`, `5.3.2024 14:22:05`, `5.3.2024`) and US slash dates as Google Forms
//! writes them (`4/27/2021 11:02:10`), and Excel serial numbers (`45383.5`: days since
//! 1899-12-30 in the 1900 date system, as a spreadsheet cell holds a date that lost its format).
//! Times without an offset are local time in the pipeline's
//! time zone; in the autumn's repeated hour the earlier instant is taken, and a time in the
//! spring's skipped hour is moved an hour on.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How a time column is written.
#[derive(Debug, Clone)]
pub enum TimeFormat {
    Auto,
    /// an Excel serial number only
    Excel,
    /// a chrono format string (`%d/%m/%Y %H:%M`)
    Custom(String),
}

/// An Excel serial date-time (1900 date system, as Excel and LibreOffice write it for dates after
/// 1 March 1900): days since 1899-12-30, the fraction being the time of day. Plausible survey dates
/// only (1990–2100), so that an ordinary number is not read as a date.
fn parse_excel_serial(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return None;
    }
    let v: f64 = s.replace(',', ".").parse().ok()?;
    // 1990-01-01 = 32874, 2100-01-01 = 73051
    if !(32874.0..73051.0).contains(&v) {
        return None;
    }
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_time(NaiveTime::MIN);
    let ms = (v * 86_400_000.0).round() as i64;
    local(tz, epoch + chrono::Duration::milliseconds(ms))
}

/// The period of an instant: `YYYY-MM` in Finnish time.
pub fn period_of(t: DateTime<Utc>) -> (String, i32) {
    let local = t.with_timezone(&chrono_tz::Europe::Helsinki);
    (
        format!("{:04}-{:02}", local.year(), local.month()),
        local.year(),
    )
}

fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 4 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u32;
    }
    Some(v)
}

/// `H.mm[.ss]` or `H:mm[:ss[.fff]]`
fn parse_clock(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    if s.is_empty() {
        return Some(NaiveTime::MIN);
    }
    let (main, frac) = match s.split_once(',').or_else(|| {
        // a fraction after seconds written with ':'
        if s.contains(':') {
            s.split_once('.')
        } else {
            None
        }
    }) {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    let parts: Vec<&str> = main.split([':', '.']).collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let h = num(parts[0].as_bytes())?;
    let m = num(parts[1].as_bytes())?;
    let sec = if parts.len() == 3 {
        num(parts[2].as_bytes())?
    } else {
        0
    };
    let micro = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits = f.to_string();
            digits.truncate(6);
            while digits.len() < 6 {
                digits.push('0');
            }
            digits.parse().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    NaiveTime::from_hms_micro_opt(h, m, sec, micro)
}

fn local(tz: Tz, dt: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&dt) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(dt + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

fn parse_iso(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)?;
    if b.len() == 10 {
        return local(tz, date.and_time(NaiveTime::MIN));
    }
    if b[10] != b'T' && b[10] != b' ' && b[10] != b't' {
        return None;
    }
    let (clock, offset) = split_offset(s[11..].trim());
    let time = parse_clock(clock)?;
    let dt = date.and_time(time);
    match offset {
        Some(secs) => {
            let off = chrono::FixedOffset::east_opt(secs)?;
            off.from_local_datetime(&dt)
                .single()
                .map(|t| t.with_timezone(&Utc))
        }
        None => local(tz, dt),
    }
}

/// Offset suffix `Z`, `+02:00`, `+0200`, `+02` → (the rest, seconds east).
fn split_offset(rest: &str) -> (&str, Option<i32>) {
    if let Some(r) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        return (r, Some(0));
    }
    let b = rest.as_bytes();
    for i in (1..b.len()).rev() {
        if b[i] == b'+' || b[i] == b'-' {
            let digits: Vec<u8> = rest[i + 1..].bytes().filter(|c| *c != b':').collect();
            let (h, m) = match digits.len() {
                2 => (num(&digits), Some(0)),
                4 => (num(&digits[..2]), num(&digits[2..])),
                _ => return (rest, None),
            };
            return match (h, m) {
                (Some(h), Some(m)) => {
                    let sign = if b[i] == b'-' { -1 } else { 1 };
                    (
                        rest[..i].trim_end(),
                        Some(sign * (h as i32 * 3600 + m as i32 * 60)),
                    )
                }
                _ => (rest, None),
            };
        }
    }
    (rest, None)
}

/// `d.m.yyyy[ H.mm[.ss]]` (Finnish) or `M/D/YYYY[ H:MM[:SS]]` (US, as Google Forms writes).
fn parse_dotted_or_slashed(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let (date, clock) = match s.split_once(' ') {
        Some((d, c)) => (d, c.trim_start_matches("klo ").trim()),
        None => (s, ""),
    };
    let (sep, us) = if date.contains('.') {
        ('.', false)
    } else if date.contains('/') {
        ('/', true)
    } else {
        return None;
    };
    let p: Vec<&str> = date.trim_end_matches(sep).split(sep).collect();
    if p.len() != 3 {
        return None;
    }
    let (a, b, y) = (
        num(p[0].as_bytes())?,
        num(p[1].as_bytes())?,
        num(p[2].as_bytes())?,
    );
    if p[2].len() != 4 {
        return None;
    }
    let (d, m) = if us { (b, a) } else { (a, b) };
    let date = NaiveDate::from_ymd_opt(y as i32, m, d)?;
    let time = parse_clock(clock)?;
    local(tz, date.and_time(time))
}

/// Parse a source time; None when it is not a valid time in any accepted form.
pub fn parse_time(s: &str, fmt: &TimeFormat, tz: Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match fmt {
        TimeFormat::Auto => parse_iso(s, tz)
            .or_else(|| parse_dotted_or_slashed(s, tz))
            .or_else(|| parse_excel_serial(s, tz)),
        TimeFormat::Excel => parse_excel_serial(s, tz),
        TimeFormat::Custom(f) => {
            if let Ok(t) = DateTime::parse_from_str(s, f) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                return local(tz, t);
            }
            NaiveDate::parse_from_str(s, f)
                .ok()
                .and_then(|d| local(tz, d.and_time(NaiveTime::MIN)))
        }
    }
}

/// Which of a numeric date's first two numbers is the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    DayFirst,
    MonthFirst,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::DayFirst => "day-first",
            Order::MonthFirst => "month-first",
        }
    }
}

/// The order a time format reads `a/b/yyyy`-like dates in, and their separator: `auto` reads
/// slash dates month-first (dotted ones are Finnish, day-first, and not ambiguous); a chrono
/// format by whether `%d` or `%m` comes first, when the two lead the date with one separator.
pub fn order_of(fmt: &TimeFormat) -> Option<(Order, char)> {
    match fmt {
        TimeFormat::Auto => Some((Order::MonthFirst, '/')),
        TimeFormat::Excel => None,
        TimeFormat::Custom(f) => {
            let f = f.replace("%e", "%d");
            let b = f.as_bytes();
            if b.len() < 5 || b[0] != b'%' || b[3] != b'%' {
                return None;
            }
            let sep = b[2] as char;
            if sep.is_ascii_alphanumeric() || sep == '%' {
                return None;
            }
            match (&f[..2], &f[3..5]) {
                ("%d", "%m") => Some((Order::DayFirst, sep)),
                ("%m", "%d") => Some((Order::MonthFirst, sep)),
                _ => None,
            }
        }
    }
}

/// The first two numbers of a date written `a<sep>b<sep>year…`.
pub fn leading_pair(s: &str, sep: char) -> Option<(u32, u32)> {
    let mut parts = s.trim().splitn(3, sep);
    let a = parts.next()?;
    let b = parts.next()?;
    let rest = parts.next()?;
    if a.is_empty() || a.len() > 2 || b.is_empty() || b.len() > 2 {
        return None;
    }
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((num(a.as_bytes())?, num(b.as_bytes())?))
}

/// Whether a pair of leading numbers reads as a different date day-first and month-first.
pub fn is_ambiguous((a, b): (u32, u32)) -> bool {
    (1..=12).contains(&a) && (1..=12).contains(&b) && a != b
}

/// What one column's dates say about their order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderEvidence {
    /// the first number is above 12: only day-first reads it
    pub day_first: u64,
    /// the second number is above 12: only month-first reads it
    pub month_first: u64,
    /// both are 12 or less and differ: either order reads it, as another date
    pub either: u64,
}

impl OrderEvidence {
    pub fn add(&mut self, (a, b): (u32, u32)) {
        if a > 12 && (1..=12).contains(&b) {
            self.day_first += 1;
        } else if b > 12 && (1..=12).contains(&a) {
            self.month_first += 1;
        } else if is_ambiguous((a, b)) {
            self.either += 1;
        }
    }

    /// Rows that only the order other than `used` reads: the column's dates are not all in the
    /// order the format reads them.
    pub fn against(&self, used: Order) -> u64 {
        match used {
            Order::DayFirst => self.month_first,
            Order::MonthFirst => self.day_first,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} day-first (first number above 12), {} month-first (second above 12), {} either way",
            self.day_first, self.month_first, self.either
        )
    }
}

/// The date an object's name carries in `fmt` (a chrono format with `%Y`, and optionally a month
/// and a day: `%Y-%m`, `%Y%m%d`, `%Y`): the leftmost, longest match that does
/// not cut a number. A month without a day is its
/// first day. `Err` when `fmt` has no year.
pub fn date_in_name(name: &str, fmt: &str) -> Result<Option<NaiveDate>, String> {
    if !fmt.contains("%Y") {
        return Err(format!("'{fmt}' has no %Y"));
    }
    let has = |codes: &[&str]| codes.iter().any(|c| fmt.contains(c));
    let (full, suffix) = if has(&["%d", "%e", "%j"]) {
        (fmt.to_string(), "")
    } else if has(&["%m", "%b", "%B"]) {
        (format!("{fmt}\u{1}%d"), "\u{1}01")
    } else {
        (format!("{fmt}\u{1}%m\u{1}%d"), "\u{1}01\u{1}01")
    };
    let bounds: Vec<usize> = name
        .char_indices()
        .map(|(i, _)| i)
        .chain([name.len()])
        .collect();
    // a match neither begins nor ends inside a number
    let digit_at = |k: usize| name.as_bytes().get(k).is_some_and(u8::is_ascii_digit);
    for (a, &i) in bounds.iter().enumerate() {
        if i > 0 && digit_at(i - 1) {
            continue;
        }
        for &j in bounds[a + 1..].iter().rev() {
            if digit_at(j) {
                continue;
            }
            if let Ok(d) = NaiveDate::parse_from_str(&format!("{}{suffix}", &name[i..j]), &full) {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Helsinki;

    fn p(s: &str) -> Option<String> {
        parse_time(s, &TimeFormat::Auto, Helsinki).map(|t| t.to_rfc3339())
    }

    #[test]
    fn date_orders_and_their_evidence() {
        assert_eq!(order_of(&TimeFormat::Auto), Some((Order::MonthFirst, '/')));
        let c = |f: &str| order_of(&TimeFormat::Custom(f.into()));
        assert_eq!(c("%d/%m/%Y"), Some((Order::DayFirst, '/')));
        assert_eq!(c("%m-%d-%Y %H:%M"), Some((Order::MonthFirst, '-')));
        assert_eq!(c("%e.%m.%Y"), Some((Order::DayFirst, '.')));
        assert_eq!(c("%Y-%m-%d"), None);
        assert_eq!(order_of(&TimeFormat::Excel), None);
        assert_eq!(leading_pair("30/09/2021", '/'), Some((30, 9)));
        assert_eq!(leading_pair("9/24/2022 10:00", '/'), Some((9, 24)));
        assert_eq!(leading_pair("2022/09/24", '/'), None);
        assert_eq!(leading_pair("2022-09-24", '/'), None);
        let mut e = OrderEvidence::default();
        for d in [
            "30/09/2021",
            "9/24/2022",
            "3/4/2022",
            "5/5/2022",
            "10/17/2021",
        ] {
            e.add(leading_pair(d, '/').unwrap());
        }
        assert_eq!((e.day_first, e.month_first, e.either), (1, 2, 1));
        assert_eq!(e.against(Order::DayFirst), 2);
        assert_eq!(e.against(Order::MonthFirst), 1);
        assert!(!is_ambiguous((5, 5)) && is_ambiguous((3, 4)) && !is_ambiguous((13, 4)));
    }

    #[test]
    fn dates_in_object_names() {
        let d = |n: &str, f: &str| date_in_name(n, f).unwrap().map(|d| d.to_string());
        assert_eq!(
            d("palaute_2025-03.csv", "%Y-%m").as_deref(),
            Some("2025-03-01")
        );
        assert_eq!(
            d("export-202411.xlsx", "%Y%m").as_deref(),
            Some("2024-11-01")
        );
        assert_eq!(
            d("fft 20240229 final.csv", "%Y%m%d").as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(d("vuosi 2023.csv", "%Y").as_deref(), Some("2023-01-01"));
        assert_eq!(d("palaute_2025-13.csv", "%Y-%m"), None);
        assert_eq!(d("palaute.csv", "%Y-%m"), None);
        assert!(date_in_name("x", "%m-%d").is_err());
    }

    #[test]
    fn excel_serial_numbers() {
        // 45292 is 2024-01-01 (Excel counts from 1899-12-30); + 31 + 29 + 31 days = 1 April,
        // noon in Helsinki (UTC+3 in summer time)
        assert_eq!(p("45383.5").unwrap(), "2024-04-01T09:00:00+00:00");
        assert_eq!(p("45383,5").unwrap(), "2024-04-01T09:00:00+00:00");
        // an ordinary number is not a date
        assert_eq!(p("4"), None);
        assert_eq!(p("123456"), None);
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            p("2024-03-05T14:22:01+02:00").unwrap(),
            "2024-03-05T12:22:01+00:00"
        );
        assert_eq!(
            p("2024-07-05 14:22:01+03:00").unwrap(),
            "2024-07-05T11:22:01+00:00"
        );
        assert_eq!(
            p("2024-03-05T12:22:01Z").unwrap(),
            "2024-03-05T12:22:01+00:00"
        );
        assert_eq!(p("2024-03-05 14:22").unwrap(), "2024-03-05T12:22:00+00:00");
        assert_eq!(p("2024-03-05").unwrap(), "2024-03-04T22:00:00+00:00");
        assert_eq!(p("5.3.2024 14.22").unwrap(), "2024-03-05T12:22:00+00:00");
        assert_eq!(
            p("5.3.2024 klo 14.22").unwrap(),
            "2024-03-05T12:22:00+00:00"
        );
        assert_eq!(
            p("05.07.2024 9:05:30").unwrap(),
            "2024-07-05T06:05:30+00:00"
        );
        assert_eq!(p("5.3.2024").unwrap(), "2024-03-04T22:00:00+00:00");
        assert_eq!(
            p("4/27/2021 11:02:10").unwrap(),
            "2021-04-27T08:02:10+00:00"
        );
        assert_eq!(
            p("2024-03-05T14:22:01.250+02:00").unwrap(),
            "2024-03-05T12:22:01.250+00:00"
        );
    }

    #[test]
    fn rejected_forms() {
        for s in [
            "31.2.2024",
            "2024-13-01",
            "yesterday",
            "5.3.24",
            "14.22",
            "",
        ] {
            assert!(p(s).is_none(), "{s}");
        }
    }

    #[test]
    fn periods_are_finnish_months() {
        let t = parse_time("2024-01-31T23:30:00Z", &TimeFormat::Auto, Helsinki).unwrap();
        assert_eq!(period_of(t).0, "2024-02");
    }

    #[test]
    fn dst_edges() {
        // 27.10.2024 03:30 happens twice in Helsinki: the first (EEST) is taken
        assert_eq!(p("27.10.2024 3.30").unwrap(), "2024-10-27T00:30:00+00:00");
        // 31.3.2024 03:30 does not exist: moved an hour on
        assert_eq!(p("31.3.2024 3.30").unwrap(), "2024-03-31T01:30:00+00:00");
    }
}
