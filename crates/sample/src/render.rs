//! Allocation-free text rendering of the values the text formats (CSV, JSON Lines) write.

use crate::calendar::{format_date, format_ts};
use crate::contract::IdKind;

/// Appends the decimal digits of `v`.
#[inline]
pub(crate) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends a signed integer.
#[inline]
pub(crate) fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// Appends a key: prefix plus the number zero-padded to the kind's width.
#[inline]
pub(crate) fn push_id(buf: &mut Vec<u8>, kind: IdKind, n: u64) {
    buf.extend_from_slice(kind.prefix.as_bytes());
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut v = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = tmp.len() - i;
    for _ in digits..kind.width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends hundredths as a decimal with exactly two digits after the point (`12.30`).
#[inline]
pub(crate) fn push_money(buf: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        buf.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_u64(buf, c / 100);
    let frac = (c % 100) as u8;
    buf.push(b'.');
    buf.push(b'0' + frac / 10);
    buf.push(b'0' + frac % 10);
}

/// Appends a float with six decimals.
pub(crate) fn push_float(buf: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "{v:.6}");
}

/// Appends `YYYY-MM-DD`.
#[inline]
pub(crate) fn push_date(buf: &mut Vec<u8>, days: i32) {
    buf.extend_from_slice(&format_date(days));
}

/// Appends `YYYY-MM-DDTHH:MM:SS`.
#[inline]
pub(crate) fn push_ts(buf: &mut Vec<u8>, secs: i64) {
    buf.extend_from_slice(&format_ts(secs));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ORDER_ID;

    #[test]
    fn renders_numbers_and_keys() {
        let mut b = Vec::new();
        push_money(&mut b, 1230);
        b.push(b' ');
        push_money(&mut b, 5);
        b.push(b' ');
        push_money(&mut b, -199);
        b.push(b' ');
        push_id(&mut b, ORDER_ID, 42);
        b.push(b' ');
        push_i64(&mut b, -7);
        b.push(b' ');
        push_u64(&mut b, 0);
        assert_eq!(
            String::from_utf8_lossy(&b),
            "12.30 0.05 -1.99 O000000042 -7 0"
        );
    }
}
