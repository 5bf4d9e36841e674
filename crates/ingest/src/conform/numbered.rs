//! Source ids that are one prefix followed by a decimal number (`S0000000123`, `CE17`,
//! `42`), as sequence-numbered exports write them.
//!
//! A fact row whose source id follows such a pattern keeps the number (4 bytes)
//! instead of a place in a copy of the source's id column (the id's bytes plus a
//! 4-byte offset), and the id is written again from the number, byte for byte. Ids
//! that follow no pattern are kept as they are.

use arrow::array::{Array, StringArray};

/// How every id of a batch is written: `prefix`, then a number of at most
/// `u32::MAX`, either zero-padded to a fixed count of digits or without leading zeros.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct IdPattern {
    prefix: String,
    /// The count of digits when every id has that many (numbers zero-padded to it);
    /// `None` when counts vary, which is allowed only if no number has a leading zero.
    width: Option<u8>,
}

impl IdPattern {
    /// The most digits a number of at most `u32::MAX` has.
    const MAX_DIGITS: usize = 10;

    /// The pattern every id of `ids` follows, if there is one: none when an id is null,
    /// has no trailing digits, differs from the first id before its digits, has a
    /// number above `u32::MAX`, or when digit counts vary and a number has a leading
    /// zero (its padding could not be told from the number).
    pub(super) fn of(ids: &StringArray) -> Option<IdPattern> {
        if ids.is_empty() || ids.null_count() > 0 {
            return None;
        }
        let first = ids.value(0).as_bytes();
        let digits = first
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let prefix = &first[..first.len() - digits];
        let mut width = Some(digits);
        let mut canonical = true;
        let offsets = ids.value_offsets();
        let values = ids.values().as_slice();
        for w in offsets.windows(2) {
            let id = &values[w[0] as usize..w[1] as usize];
            let d = id.strip_prefix(prefix)?;
            if d.is_empty() || d.len() > Self::MAX_DIGITS || !d.iter().all(u8::is_ascii_digit) {
                return None;
            }
            if d.len() == Self::MAX_DIGITS && u64::from(Self::digits_number(d)) != Self::wide(d) {
                return None;
            }
            if width != Some(d.len()) {
                width = None;
            }
            canonical &= d.len() == 1 || d[0] != b'0';
        }
        if width.is_none() && !canonical {
            return None;
        }
        Some(IdPattern {
            // The prefix ends before an ASCII digit (or is the whole id), so on a
            // character boundary of the id.
            prefix: std::str::from_utf8(prefix).ok()?.to_string(),
            width: width.map(|w| w as u8),
        })
    }

    /// The prefix every id starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number written by the digits `d` of an id that follows a pattern (the bytes
    /// after its prefix; wrapping above `u32::MAX`, which [`IdPattern::of`] admits for
    /// no id).
    #[inline]
    pub(super) fn digits_number(d: &[u8]) -> u32 {
        d.iter().fold(0u32, |n, &b| {
            n.wrapping_mul(10)
                .wrapping_add(u32::from(b.wrapping_sub(b'0')))
        })
    }

    /// The value of at most [`Self::MAX_DIGITS`] ASCII digits, without wrapping.
    fn wide(d: &[u8]) -> u64 {
        d.iter()
            .fold(0u64, |n, &b| n * 10 + u64::from(b.wrapping_sub(b'0')))
    }

    /// How many digits number `n` is written with.
    #[inline]
    pub(super) fn digits(&self, n: u32) -> u32 {
        match self.width {
            Some(w) => u32::from(w),
            None => n.checked_ilog10().unwrap_or(0) + 1,
        }
    }

    /// Writes `n` as the last `out.len()` digits of its decimal form, zero-padded (the
    /// slice is [`IdPattern::digits`] long).
    #[inline]
    pub(super) fn write_digits(mut n: u32, out: &mut [u8]) {
        for b in out.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(ids: &[&str]) -> Option<IdPattern> {
        IdPattern::of(&StringArray::from(ids.to_vec()))
    }

    /// Each id written again from its number.
    fn rewritten(p: &IdPattern, ids: &[&str]) -> Vec<String> {
        ids.iter()
            .map(|id| {
                let n = IdPattern::digits_number(&id.as_bytes()[p.prefix().len()..]);
                let mut digits = vec![0u8; p.digits(n) as usize];
                IdPattern::write_digits(n, &mut digits);
                format!("{}{}", p.prefix(), String::from_utf8(digits).unwrap())
            })
            .collect()
    }

    #[test]
    fn numbered_ids_are_written_again_byte_for_byte() {
        for ids in [
            &["S0000000001", "S0000000002", "S0000012345"][..],
            &["CE1", "CE2", "CE10", "CE4294967295"],
            &["7", "8", "10", "0"],
            &["00", "01", "99"],
            &["é-0001", "é-0002"],
            &["ORD-2024-0001", "ORD-2024-0002"],
        ] {
            let p = pattern(ids).unwrap_or_else(|| panic!("{ids:?} follow a pattern"));
            assert_eq!(rewritten(&p, ids), ids, "{p:?}");
        }
        let p = pattern(&["S0000000001", "S0000000002"]).unwrap();
        assert_eq!((p.prefix(), p.width), ("S", Some(10)));
        let p = pattern(&["CE1", "CE10"]).unwrap();
        assert_eq!((p.prefix(), p.width), ("CE", None));
    }

    #[test]
    fn ids_without_one_pattern_are_kept_as_they_are() {
        for ids in [
            &["CE01", "CE1"][..], // padding cannot be told from the number
            &["CE1", "CX2"],      // two prefixes
            &["CE1", "CE"],       // no digits
            &["abc"],             // no digits
            &["CE1", "CE1a"],     // not only digits after the prefix
            &["N4294967296"],     // above u32::MAX
            &["N99999999999"],    // more than ten digits
            &["N1", "N٣"],        // a non-ASCII digit
            &[],                  // nothing to see
        ] {
            assert_eq!(pattern(ids), None, "{ids:?}");
        }
        let with_null = StringArray::from(vec![Some("S1"), None]);
        assert_eq!(IdPattern::of(&with_null), None);
        // A slice is judged on its own values.
        let all = StringArray::from(vec!["x", "S1", "S2"]);
        assert!(IdPattern::of(&all.slice(1, 2)).is_some());
    }
}
