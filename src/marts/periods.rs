//! Reporting periods. Every period is a run of whole calendar months aligned at January, so a
//! period of one type nests in a period of another exactly when the longer length is a multiple
//! of the shorter: months nest in everything, two-month periods in half-years and years (not in
//! quarters: March–April straddles Q1 and Q2), quarters in half-years, half-years in years.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum PeriodType {
    Month,
    Bimonth,
    Quarter,
    Half,
    Year,
}

pub const ALL_PERIOD_TYPES: [PeriodType; 5] = [
    PeriodType::Month,
    PeriodType::Bimonth,
    PeriodType::Quarter,
    PeriodType::Half,
    PeriodType::Year,
];

impl PeriodType {
    pub fn months(self) -> u32 {
        match self {
            PeriodType::Month => 1,
            PeriodType::Bimonth => 2,
            PeriodType::Quarter => 3,
            PeriodType::Half => 6,
            PeriodType::Year => 12,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodType::Month => "month",
            PeriodType::Bimonth => "bimonth",
            PeriodType::Quarter => "quarter",
            PeriodType::Half => "half",
            PeriodType::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<PeriodType> {
        ALL_PERIOD_TYPES.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether every period of type `child` lies inside one period of this type.
    pub fn contains(self, child: PeriodType) -> bool {
        self.months() > child.months() && self.months().is_multiple_of(child.months())
    }

    /// The label of the period of this type holding `month` (1–12) of `year`:
    /// `2024-03`, `2024-B2` (March–April), `2024-Q1`, `2024-H1`, `2024`.
    pub fn label(self, year: i32, month: u32) -> String {
        let i = (month - 1) / self.months() + 1;
        match self {
            PeriodType::Month => format!("{year}-{month:02}"),
            PeriodType::Bimonth => format!("{year}-B{i}"),
            PeriodType::Quarter => format!("{year}-Q{i}"),
            PeriodType::Half => format!("{year}-H{i}"),
            PeriodType::Year => format!("{year}"),
        }
    }

    /// First and last month (1–12) of the period of this type holding `month`.
    pub fn bounds(self, month: u32) -> (u32, u32) {
        let first = (month - 1) / self.months() * self.months() + 1;
        (first, first + self.months() - 1)
    }
}

impl fmt::Display for PeriodType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A month `YYYY-MM` as (year, month).
pub fn parse_month(s: &str) -> Option<(i32, u32)> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: i32 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    (1..=12).contains(&m).then_some((y, m))
}

/// One row of the month → period map the aggregate SQL joins on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodRow {
    pub month: String,
    pub period_type: PeriodType,
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub year: i32,
}

/// The map for every month of `years` and every type in `types`.
pub fn period_rows(years: &[i32], types: &[PeriodType]) -> Vec<PeriodRow> {
    let mut out = Vec::new();
    for &y in years {
        for m in 1..=12 {
            for &t in types {
                let (a, b) = t.bounds(m);
                out.push(PeriodRow {
                    month: format!("{y}-{m:02}"),
                    period_type: t,
                    period: t.label(y, m),
                    period_start: format!("{y}-{a:02}"),
                    period_end: format!("{y}-{b:02}"),
                    year: y,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_bounds_and_nesting() {
        assert_eq!(PeriodType::Bimonth.label(2025, 4), "2025-B2");
        assert_eq!(PeriodType::Bimonth.bounds(4), (3, 4));
        assert_eq!(PeriodType::Bimonth.label(2025, 12), "2025-B6");
        assert_eq!(PeriodType::Quarter.label(2025, 4), "2025-Q2");
        assert_eq!(PeriodType::Half.bounds(7), (7, 12));
        assert!(PeriodType::Half.contains(PeriodType::Bimonth));
        assert!(!PeriodType::Quarter.contains(PeriodType::Bimonth));
        assert!(PeriodType::Year.contains(PeriodType::Quarter));
        assert!(!PeriodType::Month.contains(PeriodType::Month));
        assert_eq!(parse_month("2024-13"), None);
        assert_eq!(period_rows(&[2024], &ALL_PERIOD_TYPES).len(), 60);
    }
}
