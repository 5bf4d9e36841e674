//! Text → typed value conversion with the contract's rules.
//!
//! Conventions (also in docs/data-model.md): an empty field is null; dates are
//! `YYYY-MM-DD`; timestamps are `YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]]` with an optional
//! `Z` or `±HH[:MM]` offset and are stored in UTC (a timestamp without offset is taken
//! to be UTC already); a date alone is accepted as a timestamp at midnight; decimals are
//! plain `-123.45` without exponent or thousands separators and with at most the
//! column's scale of digits after the point (more digits are rejected, never rounded);
//! booleans are true/false, t/f, yes/no, y/n, 1/0 in any case.

use chrono::{Datelike, NaiveDate};

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;
const MICROS_PER_SECOND: i64 = 1_000_000;
pub(crate) const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Parses `YYYY-MM-DD` into days since 1970-01-01. A trailing midnight time is allowed.
pub fn parse_date(s: &str) -> Result<i32, String> {
    let b = s.as_bytes();
    if b.len() > 10 {
        let rest = &s[10..];
        let midnight = matches!(
            rest,
            "T00:00:00" | " 00:00:00" | "T00:00:00Z" | " 00:00:00Z" | "T00:00" | " 00:00"
        ) || rest.starts_with("T00:00:00.000")
            || rest.starts_with(" 00:00:00.000");
        if !midnight {
            return Err("expected a date YYYY-MM-DD".into());
        }
    }
    let date = ymd(b).ok_or_else(|| "expected a date YYYY-MM-DD".to_string())?;
    Ok(date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn ymd(b: &[u8]) -> Option<NaiveDate> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&b[0..4])? as i32;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    NaiveDate::from_ymd_opt(y, m, d)
}

/// Parses a timestamp into microseconds since the Unix epoch, UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    const EXPECTED: &str = "expected a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]";
    let b = s.as_bytes();
    let date = ymd(b).ok_or_else(|| EXPECTED.to_string())?;
    let days = i64::from(date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS);
    if b.len() == 10 {
        return Ok(days * MICROS_PER_DAY);
    }
    if b.len() < 16 || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' {
        return Err(EXPECTED.into());
    }
    let hh = digits(&b[11..13]).ok_or(EXPECTED)?;
    let mm = digits(&b[14..16]).ok_or(EXPECTED)?;
    let mut i = 16;
    let mut ss = 0;
    let mut micros: i64 = 0;
    if i < b.len() && b[i] == b':' {
        if b.len() < i + 3 {
            return Err(EXPECTED.into());
        }
        ss = digits(&b[i + 1..i + 3]).ok_or(EXPECTED)?;
        i += 3;
        if i < b.len() && (b[i] == b'.' || b[i] == b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &b[start..i];
            if frac.is_empty() || frac.len() > 9 {
                return Err(EXPECTED.into());
            }
            // Keep microseconds; nanosecond digits beyond them are truncated.
            let mut v: i64 = 0;
            for k in 0..6 {
                v = v * 10 + frac.get(k).map_or(0, |c| i64::from(c - b'0'));
            }
            micros = v;
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return Err(format!("time of day out of range; {EXPECTED}"));
    }
    let mut offset_s: i64 = 0;
    let rest = &b[i..];
    match rest {
        [] | [b'Z'] | [b'z'] => {}
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (oh, om) = match tail {
                [h1, h2] => (digits(&[*h1, *h2]), Some(0)),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2]), digits(&[*m1, *m2]))
                }
                _ => (None, None),
            };
            let (Some(oh), Some(om)) = (oh, om) else {
                return Err(EXPECTED.into());
            };
            if oh > 18 || om > 59 {
                return Err(format!("offset out of range; {EXPECTED}"));
            }
            offset_s = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                offset_s = -offset_s;
            }
        }
        _ => return Err(EXPECTED.into()),
    }
    let secs = i64::from(hh * 3600 + mm * 60 + ss.min(59)) - offset_s;
    Ok(days * MICROS_PER_DAY + secs * MICROS_PER_SECOND + micros)
}

/// Parses a plain decimal into an integer scaled by 10^scale.
pub fn parse_decimal(s: &str, scale: i8) -> Result<i128, String> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|c| c.is_ascii_digit())
        || !frac_part.bytes().all(|c| c.is_ascii_digit())
    {
        return Err("expected a decimal number like 1234.56".into());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(format!(
            "more than {scale} digits after the decimal point (values are never rounded)"
        ));
    }
    if int_part.len() > 16 {
        return Err("decimal number too large".into());
    }
    let mut v: i128 = 0;
    for c in int_part.bytes() {
        v = v * 10 + i128::from(c - b'0');
    }
    let fb = frac_trimmed.as_bytes();
    for k in 0..scale as usize {
        v = v * 10 + fb.get(k).map_or(0, |c| i128::from(c - b'0'));
    }
    Ok(if neg { -v } else { v })
}

/// Parses a boolean.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err("expected a boolean (true/false, yes/no, 1/0)".into()),
    }
}

/// Parses a 64-bit integer (an integral float such as `3.0` is accepted).
pub fn parse_int(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Ok(v);
    }
    if let Some(whole) = t.strip_suffix(".0").or_else(|| t.strip_suffix(".00")) {
        if let Ok(v) = whole.parse::<i64>() {
            return Ok(v);
        }
    }
    Err("expected a whole number".into())
}

/// Parses a finite float.
pub fn parse_float(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err("expected a finite number".into()),
    }
}

/// Fast paths for the common spellings of each type, used for every cell of a load.
///
/// Each returns `Some` only for text its slow counterpart (`parse_*`, after trimming)
/// accepts with the same value, and `None` for anything else, which then goes the slow
/// way: the fast path can never change what a value means or whether it is refused.
pub mod fast {
    use super::{MICROS_PER_DAY, MICROS_PER_SECOND};

    /// The value of 1 to 18 ASCII digits (no sign, no overflow possible).
    #[inline]
    fn digits(b: &[u8]) -> Option<i64> {
        if b.is_empty() || b.len() > 18 {
            return None;
        }
        let mut v: i64 = 0;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + i64::from(d);
        }
        Some(v)
    }

    /// `-?[0-9]{1,18}`.
    #[inline]
    pub fn int(b: &[u8]) -> Option<i64> {
        match b {
            [b'-', rest @ ..] => digits(rest).map(|v| -v),
            _ => digits(b),
        }
    }

    /// Two ASCII digits.
    #[inline]
    fn two(b: &[u8], at: usize) -> Option<u32> {
        let (h, l) = (b[at].wrapping_sub(b'0'), b[at + 1].wrapping_sub(b'0'));
        (h <= 9 && l <= 9).then(|| u32::from(h) * 10 + u32::from(l))
    }

    /// Days since 1970-01-01 of a valid `YYYY-MM-DD` at the start of `b` (H. Hinnant's
    /// `days_from_civil`).
    #[inline]
    fn ymd(b: &[u8]) -> Option<i32> {
        if b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let y = (two(b, 0)? * 100 + two(b, 2)?) as i32;
        let (m, d) = (two(b, 5)?, two(b, 8)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if d == 0 || d > month_days {
            return None;
        }
        let (m, d) = (m as i32, d as i32);
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(era * 146_097 + doe - 719_468)
    }

    /// `YYYY-MM-DD`.
    #[inline]
    pub fn date(b: &[u8]) -> Option<i32> {
        if b.len() != 10 {
            return None;
        }
        ymd(b)
    }

    /// `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD HH:MM:SS`, seconds below 60.
    #[inline]
    pub fn timestamp(b: &[u8]) -> Option<i64> {
        if b.len() != 19 || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let days = ymd(b)?;
        let (hh, mm, ss) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
        if hh > 23 || mm > 59 || ss > 59 {
            return None;
        }
        let secs = i64::from(hh * 3600 + mm * 60 + ss);
        Some(i64::from(days) * MICROS_PER_DAY + secs * MICROS_PER_SECOND)
    }

    /// `-?[0-9]{1,16}(\.[0-9]{1,scale})?` scaled by 10^scale.
    #[inline]
    pub fn decimal(b: &[u8], scale: i8) -> Option<i128> {
        let (neg, body) = match b {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, b),
        };
        let scale = usize::try_from(scale).ok()?;
        let (int_part, frac) = match memchr::memchr(b'.', body) {
            Some(p) => (&body[..p], &body[p + 1..]),
            None => (body, &[][..]),
        };
        if int_part.len() > 16
            || frac.len() > scale
            || (frac.is_empty() && int_part.len() < body.len())
        {
            return None;
        }
        let mut v = i128::from(digits(int_part)?);
        for k in 0..scale {
            let d = match frac.get(k) {
                Some(c) if c.is_ascii_digit() => c - b'0',
                Some(_) => return None,
                None => 0,
            };
            v = v * 10 + i128::from(d);
        }
        Some(if neg { -v } else { v })
    }

    /// The lower-case spellings `true`/`false`, `t`/`f`, `yes`/`no`, `y`/`n`, `1`/`0`.
    #[inline]
    pub fn bool(b: &[u8]) -> Option<bool> {
        match b {
            b"true" | b"t" | b"yes" | b"y" | b"1" => Some(true),
            b"false" | b"f" | b"no" | b"n" | b"0" => Some(false),
            _ => None,
        }
    }
}

/// Months counted from year 0 (`year * 12 + month - 1`) of a `YYYYMM` month, so that
/// consecutive months are consecutive numbers.
pub fn month_ordinal(ym: i32) -> i32 {
    ym / 100 * 12 + ym % 100 - 1
}

/// The `YYYYMM` month of a [`month_ordinal`].
pub fn month_of_ordinal(o: i32) -> i32 {
    o / 12 * 100 + o % 12 + 1
}

/// Positions `0..months.len()` grouped by their `YYYYMM` month (months ascending,
/// positions ascending inside a month), and each month present with its number of
/// positions: a counting sort over [`month_ordinal`]s.
pub fn group_by_month(months: &[i32]) -> (Vec<u32>, Vec<(i32, usize)>) {
    let ord: Vec<i32> = months.iter().map(|&m| month_ordinal(m)).collect();
    let (Some(&lo), Some(&hi)) = (ord.iter().min(), ord.iter().max()) else {
        return (Vec::new(), Vec::new());
    };
    let mut counts = vec![0usize; (hi - lo + 1) as usize];
    for &o in &ord {
        counts[(o - lo) as usize] += 1;
    }
    let mut next: Vec<usize> = counts
        .iter()
        .scan(0, |acc, &c| {
            let start = *acc;
            *acc += c;
            Some(start)
        })
        .collect();
    let mut positions = vec![0u32; ord.len()];
    for (k, &o) in ord.iter().enumerate() {
        let slot = &mut next[(o - lo) as usize];
        positions[*slot] = k as u32;
        *slot += 1;
    }
    let present = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(k, &c)| (month_of_ordinal(lo + k as i32), c))
        .collect();
    (positions, present)
}

/// The `YYYYMMDD` date key of a timestamp in microseconds.
pub fn date_key_of_micros(ts: i64) -> i32 {
    date_key_of_days(ts.div_euclid(MICROS_PER_DAY) as i32)
}

/// The `YYYYMMDD` date key of a day number (days since 1970-01-01).
///
/// Fact builds call this for every row. Days of 1900 to 2099 are looked up in a table
/// (292 KB, of which a load touches the few KB of its own years): the calendar
/// arithmetic is a chain of nine dependent divisions, several times slower than the
/// read. Other days are computed (see `civil_date_key`).
#[inline]
pub fn date_key_of_days(days: i32) -> i32 {
    // 1900-01-01 and 2100-01-01.
    const FIRST: i32 = -25_567;
    const END: i32 = 47_482;
    static TABLE: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (FIRST..END).map(civil_date_key).collect());
    match usize::try_from(days.wrapping_sub(FIRST))
        .ok()
        .and_then(|i| table.get(i))
    {
        Some(&key) => key,
        None => civil_date_key(days),
    }
}

/// [`date_key_of_days`] computed: years 0 to 9999 with integer arithmetic only
/// (H. Hinnant's `civil_from_days`), other days through chrono.
fn civil_date_key(days: i32) -> i32 {
    // 0000-03-01 and 9999-12-31.
    if !(-719_468..=2_932_896).contains(&days) {
        let d = date_of_days(days);
        return d.year() * 10_000 + d.month() as i32 * 100 + d.day() as i32;
    }
    let z = days + 719_468; // days since 0000-03-01, ≥ 0
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of the 400-year era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of a year starting in March
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i32::from(month <= 2);
    year * 10_000 + month * 100 + day
}

/// The calendar date of a day number (days since 1970-01-01).
pub fn date_of_days(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_CE_DAYS).unwrap_or(NaiveDate::MIN)
}

/// Day number (days since 1970-01-01) of a date.
pub fn days_of_date(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// Day number of a timestamp in microseconds.
pub fn days_of_micros(ts: i64) -> i32 {
    ts.div_euclid(MICROS_PER_DAY) as i32
}

/// Microseconds since the epoch of midnight UTC on a day number.
pub fn micros_of_days(days: i32) -> i64 {
    i64::from(days) * MICROS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_read_every_value_as_the_full_parsers_do() {
        // Every day of years 0 to 9999 and some impossible ones.
        for y in 0..10_000 {
            for m in [0, 1, 2, 3, 6, 9, 12, 13] {
                for d in [0, 1, 15, 28, 29, 30, 31, 32] {
                    let s = format!("{y:04}-{m:02}-{d:02}");
                    let full = parse_date(&s).ok();
                    assert_eq!(fast::date(s.as_bytes()), full, "{s}");
                    for (hh, mm, ss) in
                        [(0, 0, 0), (23, 59, 59), (24, 0, 0), (12, 60, 0), (1, 2, 60)]
                    {
                        let t = format!("{s}T{hh:02}:{mm:02}:{ss:02}");
                        if let Some(v) = fast::timestamp(t.as_bytes()) {
                            assert_eq!(Ok(v), parse_timestamp(&t), "{t}");
                        } else if full.is_some() && hh < 24 && mm < 60 && ss < 60 {
                            panic!("{t} should take the fast path");
                        }
                    }
                }
            }
        }
        for s in [
            "2024-02-29 10:11:12",
            "2024-1-01",
            "2024-01-01T10:00",
            "2024-01-01T10:00:00Z",
            "20240-01-01",
            "2024/01/01",
        ] {
            if let Some(v) = fast::timestamp(s.as_bytes()) {
                assert_eq!(Ok(v), parse_timestamp(s), "{s}");
            }
        }
        let ints = [
            "0",
            "-0",
            "7",
            "-12",
            "+5",
            " 8",
            "3.0",
            "",
            "-",
            "999999999999999999",
            "9999999999999999999",
            "1_000",
            "١",
        ];
        for s in ints {
            if let Some(v) = fast::int(s.as_bytes()) {
                assert_eq!(Ok(v), parse_int(s), "{s}");
            }
        }
        assert_eq!(fast::int(b"-12"), Some(-12));
        let decimals = [
            "1",
            "-1",
            "1.5",
            "-0.01",
            "1.",
            ".5",
            "1.234",
            "1.230",
            "1e3",
            "-",
            "1234567890123456",
            "12345678901234567",
            "0.00",
            "+1",
            "1.-5",
            "1..2",
            "--1",
        ];
        for scale in [0, 2, 4] {
            for s in decimals {
                if let Some(v) = fast::decimal(s.as_bytes(), scale) {
                    assert_eq!(Ok(v), parse_decimal(s, scale), "{s} {scale}");
                }
            }
        }
        assert_eq!(fast::decimal(b"-0.01", 2), Some(-1));
        for s in [
            "true", "t", "yes", "y", "1", "false", "f", "no", "n", "0", "TRUE", "", "2",
        ] {
            if let Some(v) = fast::bool(s.as_bytes()) {
                assert_eq!(Ok(v), parse_bool(s), "{s}");
            }
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2024-02-29"), Ok(19782));
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("2023-13-01").is_err());
        assert!(parse_date("01/02/2023").is_err());
        assert_eq!(parse_date("2024-02-29T00:00:00"), Ok(19782));
        assert!(parse_date("2024-02-29T10:00:00").is_err());
        assert_eq!(date_key_of_days(19782), 20240229);
    }

    #[test]
    fn date_keys_agree_with_the_calendar() {
        for days in -800_000..3_000_000 {
            let d = date_of_days(days);
            let expected = d.year() * 10_000 + d.month() as i32 * 100 + d.day() as i32;
            assert_eq!(date_key_of_days(days), expected, "day {days}");
        }
        assert_eq!(date_key_of_days(0), 19700101);
        assert_eq!(date_key_of_days(-1), 19691231);
        assert_eq!(date_key_of_days(-719_468), 301);
        assert_eq!(date_key_of_days(-25_568), 18991231);
        assert_eq!(date_key_of_days(-25_567), 19000101);
        assert_eq!(date_key_of_days(47_481), 20991231);
        assert_eq!(date_key_of_days(47_482), 21000101);
        assert_eq!(date_key_of_days(i32::MIN), civil_date_key(i32::MIN));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01"), Ok(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00-0130"),
            Ok(5_400_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_timestamp("1970-01-02"), Ok(86_400_000_000));
        assert_eq!(parse_timestamp("1970-01-01T00:01"), Ok(60_000_000));
        assert!(parse_timestamp("1970-01-01T24:00:00").is_err());
        assert!(parse_timestamp("1970-01-01T00:00:00 UTC").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert_eq!(date_key_of_micros(-1), 19691231);
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("12.34", 2), Ok(1234));
        assert_eq!(parse_decimal("-0.5", 2), Ok(-50));
        assert_eq!(parse_decimal("7", 2), Ok(700));
        assert_eq!(parse_decimal("7.100", 2), Ok(710));
        assert_eq!(parse_decimal(".5", 2), Ok(50));
        assert!(parse_decimal("1.234", 2).is_err());
        assert!(parse_decimal("1e3", 2).is_err());
        assert!(parse_decimal("1,000.00", 2).is_err());
        assert!(parse_decimal("", 2).is_err());
        assert!(parse_decimal("-", 2).is_err());
    }

    #[test]
    fn bools_and_ints() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("n"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_int("42"), Ok(42));
        assert_eq!(parse_int("3.0"), Ok(3));
        assert!(parse_int("3.5").is_err());
        assert!(parse_int("99999999999999999999").is_err());
        assert!(parse_float("NaN").is_err());
    }
}
