//! Dates and timestamps as plain integers, their fast text rendering, and the seasonal
//! demand curve.
//!
//! Inside the generator a date is a day number (days since 1970-01-01) and a timestamp is
//! seconds since 1970-01-01T00:00:00 UTC. Converting with integer arithmetic (Hinnant's
//! civil-date algorithms) keeps the hot formatting path free of allocation.

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;
/// Seconds in an hour.
pub(crate) const HOUR: i64 = 3_600;
/// Seconds in a minute.
pub(crate) const MINUTE: i64 = 60;

/// Day number of a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

/// Civil date (year, month 1-12, day 1-31) of a day number.
pub(crate) fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    ((y + i64::from(m <= 2)) as i32, m as u32, d as u32)
}

/// Day number of a `chrono` date.
pub(crate) fn day_of(date: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    days_from_civil(date.year(), date.month(), date.day())
}

/// The day number a timestamp falls on.
#[inline]
pub(crate) fn day_of_ts(ts: i64) -> i32 {
    ts.div_euclid(DAY) as i32
}

/// Month (1-12) a timestamp falls in.
#[inline]
pub(crate) fn month_of_ts(ts: i64) -> u32 {
    civil_from_days(day_of_ts(ts)).1
}

#[inline]
fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// `YYYY-MM-DD` for a day number (years 0000-9999).
#[inline]
pub(crate) fn format_date(days: i32) -> [u8; 10] {
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    let mut out = *b"0000-00-00";
    put2(&mut out[0..2], y / 100);
    put2(&mut out[2..4], y % 100);
    put2(&mut out[5..7], m);
    put2(&mut out[8..10], d);
    out
}

/// `YYYY-MM-DDTHH:MM:SS` for a timestamp (UTC, no zone suffix).
#[inline]
pub(crate) fn format_ts(ts: i64) -> [u8; 19] {
    let date = format_date(day_of_ts(ts));
    let secs = ts.rem_euclid(DAY) as u32;
    let mut out = *b"0000-00-00T00:00:00";
    out[..10].copy_from_slice(&date);
    put2(&mut out[11..13], secs / 3600);
    put2(&mut out[14..16], secs / 60 % 60);
    put2(&mut out[17..19], secs % 60);
    out
}

/// Relative demand by calendar month: holiday peak in November/December, summer dip.
/// Normalised so that the average over a year is 1, which keeps a customer's long-run
/// purchase rate equal to its `lambda`.
const MONTH_DEMAND: [f64; 12] = [
    0.85, 0.80, 0.95, 0.95, 1.00, 0.85, 0.78, 0.85, 0.95, 1.00, 1.35, 1.60,
];

fn demand_mean() -> f64 {
    MONTH_DEMAND.iter().sum::<f64>() / 12.0
}

/// Seasonal demand factor at a timestamp (mean 1 over a year).
#[inline]
pub(crate) fn seasonality(ts: i64) -> f64 {
    MONTH_DEMAND[(month_of_ts(ts) - 1) as usize] / demand_mean()
}

/// The largest value `seasonality` takes; the envelope for thinning.
pub(crate) fn seasonality_max() -> f64 {
    MONTH_DEMAND.iter().copied().fold(0.0, f64::max) / demand_mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_formatting() {
        for days in -30_000..30_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(&format_date(0), b"1970-01-01");
        assert_eq!(&format_date(days_from_civil(2024, 2, 29)), b"2024-02-29");
        assert_eq!(&format_date(days_from_civil(1951, 12, 31)), b"1951-12-31");
        let ts = i64::from(days_from_civil(2025, 12, 31)) * DAY + 23 * HOUR + 59 * MINUTE + 58;
        assert_eq!(&format_ts(ts), b"2025-12-31T23:59:58");
        let d = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).map(day_of);
        assert_eq!(d, Some(days_from_civil(2023, 1, 1)));
    }

    #[test]
    fn seasonality_averages_to_one() {
        let start = i64::from(days_from_civil(2023, 1, 1));
        let mean: f64 = (0..365)
            .map(|d| seasonality((start + d) * DAY))
            .sum::<f64>()
            / 365.0;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert!(seasonality_max() > 1.5);
    }
}
