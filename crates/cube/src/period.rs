//! Calendar arithmetic on time member names ("2025", "2025-Q1", "2025-01",
//! "2025-01-31", "2025-W01"): previous periods, same period a year or month before,
//! and the year / quarter / month a member lies in.

use crate::model::Period;
use chrono::{Datelike, Months, NaiveDate, Weekday};

/// How far back a comparison looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The period just before.
    Previous,
    /// The same period one year before.
    Year,
    /// The same period one month before.
    Month,
}

fn ym(label: &str) -> Option<(i32, u32)> {
    let y = label.get(0..4)?.parse().ok()?;
    let m = label.get(5..7)?.parse().ok()?;
    (1..=12).contains(&m).then_some((y, m))
}

fn quarter(label: &str) -> Option<(i32, u32)> {
    let y = label.get(0..4)?.parse().ok()?;
    let q = label.get(4..)?.strip_prefix("-Q")?.parse().ok()?;
    (1..=4).contains(&q).then_some((y, q))
}

fn iso_week(label: &str) -> Option<(i32, u32)> {
    let (y, w) = label.split_once("-W")?;
    Some((y.parse().ok()?, w.parse().ok()?))
}

fn fmt_iso_week(y: i32, w: u32) -> Option<String> {
    NaiveDate::from_isoywd_opt(y, w, Weekday::Mon)?;
    Some(format!("{y}-W{w:02}"))
}

/// The member `step` before `label` at `period`, if it exists.
pub fn shift(period: Period, label: &str, step: Step) -> Option<String> {
    match period {
        Period::Year => {
            let y: i32 = label.parse().ok()?;
            match step {
                Step::Previous | Step::Year => Some((y - 1).to_string()),
                Step::Month => None,
            }
        }
        Period::Quarter => {
            let (y, q) = quarter(label)?;
            match step {
                Step::Previous if q == 1 => Some(format!("{}-Q4", y - 1)),
                Step::Previous => Some(format!("{y}-Q{}", q - 1)),
                Step::Year => Some(format!("{}-Q{q}", y - 1)),
                Step::Month => None,
            }
        }
        Period::Month => {
            let (y, m) = ym(label)?;
            match step {
                Step::Previous | Step::Month if m == 1 => Some(format!("{}-12", y - 1)),
                Step::Previous | Step::Month => Some(format!("{y}-{:02}", m - 1)),
                Step::Year => Some(format!("{}-{m:02}", y - 1)),
            }
        }
        Period::Day => {
            let d = NaiveDate::parse_from_str(label, "%Y-%m-%d").ok()?;
            let prev = match step {
                Step::Previous => d.pred_opt()?,
                Step::Year => d.checked_sub_months(Months::new(12))?,
                Step::Month => d.checked_sub_months(Months::new(1))?,
            };
            Some(prev.format("%Y-%m-%d").to_string())
        }
        Period::IsoWeek => {
            let (y, w) = iso_week(label)?;
            match step {
                Step::Previous => {
                    let monday = NaiveDate::from_isoywd_opt(y, w, Weekday::Mon)?;
                    let prev = monday.checked_sub_days(chrono::Days::new(7))?;
                    let iw = prev.iso_week();
                    fmt_iso_week(iw.year(), iw.week())
                }
                Step::Year => fmt_iso_week(y - 1, w),
                Step::Month => None,
            }
        }
    }
}

/// The member of the coarser `to` period that `label` (at `period`) lies in.
pub fn container(period: Period, label: &str, to: Period) -> Option<String> {
    if period == to {
        return Some(label.to_string());
    }
    let year = || label.get(0..4).map(str::to_string);
    match (period, to) {
        (Period::Quarter | Period::Month | Period::Day, Period::Year) => year(),
        (Period::Month | Period::Day, Period::Quarter) => {
            let (y, m) = ym(label)?;
            Some(format!("{y}-Q{}", (m - 1) / 3 + 1))
        }
        (Period::Day, Period::Month) => label.get(0..7).map(str::to_string),
        (Period::IsoWeek, Period::Year) => iso_week(label).map(|(y, _)| y.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(shift(Period::Year, "2025", Step::Year).unwrap(), "2024");
        assert_eq!(
            shift(Period::Quarter, "2025-Q1", Step::Previous).unwrap(),
            "2024-Q4"
        );
        assert_eq!(
            shift(Period::Quarter, "2025-Q3", Step::Year).unwrap(),
            "2024-Q3"
        );
        assert_eq!(
            shift(Period::Month, "2025-01", Step::Month).unwrap(),
            "2024-12"
        );
        assert_eq!(
            shift(Period::Month, "2025-07", Step::Year).unwrap(),
            "2024-07"
        );
        assert_eq!(
            shift(Period::Day, "2024-03-01", Step::Previous).unwrap(),
            "2024-02-29"
        );
        assert_eq!(
            shift(Period::Day, "2024-02-29", Step::Year).unwrap(),
            "2023-02-28"
        );
        assert_eq!(
            shift(Period::Day, "2025-03-31", Step::Month).unwrap(),
            "2025-02-28"
        );
        assert_eq!(
            shift(Period::IsoWeek, "2021-W01", Step::Previous).unwrap(),
            "2020-W53"
        );
        assert_eq!(shift(Period::IsoWeek, "2026-W53", Step::Year), None);
        assert_eq!(shift(Period::Year, "2025", Step::Month), None);
    }

    #[test]
    fn containers() {
        assert_eq!(
            container(Period::Day, "2025-05-02", Period::Quarter).unwrap(),
            "2025-Q2"
        );
        assert_eq!(
            container(Period::Month, "2025-12", Period::Year).unwrap(),
            "2025"
        );
        assert_eq!(
            container(Period::Day, "2025-05-02", Period::Month).unwrap(),
            "2025-05"
        );
        assert_eq!(container(Period::Year, "2025", Period::Month), None);
    }
}
