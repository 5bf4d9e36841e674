//! Day numbers (days since 1970-01-01, as in Arrow's Date32) and calendar months.

use chrono::{Datelike, NaiveDate};

const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// The date of a day number.
pub fn date_of_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + UNIX_EPOCH_CE_DAYS).unwrap_or(NaiveDate::MIN)
}

/// The day number of a date.
pub fn day_of_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// A day number as `YYYY-MM-DD`.
pub fn day_string(day: i32) -> String {
    date_of_day(day).to_string()
}

/// Months since January of year 0 of the day's month (so consecutive months differ by 1).
pub fn month_index(day: i32) -> i32 {
    let d = date_of_day(day);
    d.year() * 12 + d.month0() as i32
}

/// A month index as `YYYY-MM`.
pub fn month_string(index: i32) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_round_trip() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
        assert_eq!(date_of_day(day_of_date(d)), d);
        assert_eq!(day_of_date(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
        let m = month_index(day_of_date(d));
        assert_eq!(month_string(m), "2025-03");
        assert_eq!(
            month_index(day_of_date(NaiveDate::from_ymd_opt(2025, 4, 1).unwrap())),
            m + 1
        );
        assert_eq!(day_string(0), "1970-01-01");
    }
}
