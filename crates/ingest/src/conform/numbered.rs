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
    /// Whether no number has a leading zero.
    canonical: bool,
}

impl IdPattern {
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
            Self::value(d)?;
            if d.len() > usize::from(u8::MAX) {
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
            canonical,
        })
    }

    /// The pattern of ids of this pattern followed by ids of `next`, if one pattern
    /// writes both: the same prefix, and the same count of digits or no leading zeros.
    fn joined(&self, next: &IdPattern) -> Option<IdPattern> {
        if self.prefix != next.prefix {
            return None;
        }
        let canonical = self.canonical && next.canonical;
        let width = if self.width == next.width {
            self.width
        } else if canonical {
            None
        } else {
            return None;
        };
        Some(IdPattern {
            prefix: self.prefix.clone(),
            width,
            canonical,
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

    /// The number ASCII digits `d` write, if they are digits (at least one) and the
    /// number is at most `u32::MAX` (leading zeros are allowed).
    fn value(d: &[u8]) -> Option<u32> {
        if d.is_empty() {
            return None;
        }
        d.iter().try_fold(0u32, |n, &b| {
            if !b.is_ascii_digit() {
                return None;
            }
            n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        })
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
    ///
    /// Two digits a step from a table, and the padding is filled once `n` is spent: an
    /// id is written for every fact row, and a padded id (`S0000012345`) has more
    /// zeros than digits, so this halves the chain of divisions or better.
    #[inline]
    pub(super) fn write_digits(mut n: u32, out: &mut [u8]) {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let mut end = out.len();
        while end >= 2 && n > 0 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            out[end - 2..end].copy_from_slice(&PAIRS[pair..pair + 2]);
            end -= 2;
        }
        if end == 1 && n > 0 {
            // One digit left: `n` fits in the slice, so it is below 10 here.
            out[0] = b'0' + (n % 10) as u8;
            end = 0;
        }
        out[..end].fill(b'0');
    }
}

/// Ids numbered one after another: `count` ids of one pattern, numbered from `first`.
/// Such a column is its own index: an id's row is its number less `first`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NumberRun {
    pattern: IdPattern,
    first: u32,
    count: u32,
}

impl NumberRun {
    /// The run `ids` make, if they (which follow `pattern`) are numbered one after
    /// another.
    pub(super) fn of(ids: &StringArray, pattern: &IdPattern) -> Option<NumberRun> {
        let pattern = pattern.clone();
        let first = IdPattern::digits_number(&ids.value(0).as_bytes()[pattern.prefix.len()..]);
        let mut run = NumberRun {
            pattern,
            first,
            count: 0,
        };
        if !run.numbered_from(ids, first) {
            return None;
        }
        run.count = u32::try_from(ids.len()).ok()?;
        Some(run)
    }

    /// Adds `ids` (which follow `pattern`) to the run if one pattern writes the run's
    /// ids and theirs and they go on numbering where it stops; returns whether they did.
    pub(super) fn extend(&mut self, ids: &StringArray, pattern: &IdPattern) -> bool {
        let Some(next) = self.first.checked_add(self.count) else {
            return false;
        };
        let count = u32::try_from(ids.len())
            .ok()
            .and_then(|n| self.count.checked_add(n));
        let joined = self.pattern.joined(pattern);
        match (count, joined) {
            (Some(count), Some(pattern)) if self.numbered_from(ids, next) => {
                (self.pattern, self.count) = (pattern, count);
                true
            }
            _ => false,
        }
    }

    /// Whether the ids of `ids` (which follow the run's pattern) are numbered `from`,
    /// `from + 1`, … without overflowing.
    fn numbered_from(&self, ids: &StringArray, from: u32) -> bool {
        let skip = self.pattern.prefix.len();
        let offsets = ids.value_offsets();
        let values = ids.values().as_slice();
        (0u32..).zip(offsets.windows(2)).all(|(i, w)| {
            from.checked_add(i)
                == Some(IdPattern::digits_number(
                    &values[w[0] as usize + skip..w[1] as usize],
                ))
        })
    }

    /// The row of `id` in the run, if it has it.
    #[inline]
    pub(super) fn row(&self, id: &str) -> Option<usize> {
        let d = id.as_bytes().strip_prefix(self.pattern.prefix.as_bytes())?;
        let fits = match self.pattern.width {
            Some(w) => d.len() == usize::from(w),
            None => d.len() == 1 || d.first() != Some(&b'0'),
        };
        if !fits {
            return None;
        }
        let row = IdPattern::value(d)?.checked_sub(self.first)?;
        (row < self.count).then_some(row as usize)
    }

    /// The run's ids, written out.
    pub(super) fn to_array(&self) -> StringArray {
        let p = &self.pattern;
        (0..self.count)
            .map(|i| {
                let n = self.first + i;
                let mut id = p.prefix.clone().into_bytes();
                let at = id.len();
                id.resize(at + p.digits(n) as usize, 0);
                IdPattern::write_digits(n, &mut id[at..]);
                String::from_utf8(id).unwrap_or_default()
            })
            .map(Some)
            .collect()
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
            &["CE00000000001", "CE00000000002"],
            &["N000000000000000000000004294967295"],
        ] {
            let p = pattern(ids).unwrap_or_else(|| panic!("{ids:?} follow a pattern"));
            assert_eq!(rewritten(&p, ids), ids, "{p:?}");
        }
        let p = pattern(&["S0000000001", "S0000000002"]).unwrap();
        assert_eq!((p.prefix(), p.width, p.canonical), ("S", Some(10), false));
        let p = pattern(&["CE1", "CE10"]).unwrap();
        assert_eq!((p.prefix(), p.width, p.canonical), ("CE", None, true));
    }

    #[test]
    fn digits_are_written_as_format_pads_them() {
        let mut values = vec![0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12345, 4294967295];
        values.extend((0..32).map(|k| 1u32 << k));
        values.extend((1..10).map(|k| 10u32.pow(k) - 1));
        values.extend((1..10).map(|k| 10u32.pow(k) + 1));
        for n in values {
            let significant = n.checked_ilog10().unwrap_or(0) as usize + 1;
            for width in significant..=significant + 4 {
                let mut out = vec![b'x'; width];
                IdPattern::write_digits(n, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), format!("{n:0width$}"));
            }
        }
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
            &["N99999999999"],    // above u32::MAX too
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

    /// The run `ids` make, as streamed web sessions are judged.
    fn run_of(ids: &[&str]) -> Option<NumberRun> {
        let ids = StringArray::from(ids.to_vec());
        NumberRun::of(&ids, &IdPattern::of(&ids)?)
    }

    /// Whether `run` takes `ids`, as streamed web sessions are judged.
    fn extends(run: &mut NumberRun, ids: &[&str]) -> bool {
        let ids = StringArray::from(ids.to_vec());
        IdPattern::of(&ids).is_some_and(|p| run.extend(&ids, &p))
    }

    #[test]
    fn a_run_finds_each_id_and_nothing_else() {
        let mut run = run_of(&["S0098", "S0099"]).unwrap();
        assert!(extends(&mut run, &["S0100", "S0101"]));
        // Not next in line, or another pattern: the run stays as it was.
        assert!(!extends(&mut run, &["S0103"]));
        assert!(!extends(&mut run, &["S102"]));
        assert!(!extends(&mut run, &["T0102"]));
        assert_eq!(run.count, 4);
        let written = run.to_array();
        let written: Vec<&str> = written.iter().flatten().collect();
        assert_eq!(written, ["S0098", "S0099", "S0100", "S0101"]);
        for (row, id) in written.iter().enumerate() {
            assert_eq!(run.row(id), Some(row));
        }
        let padded = run_of(&["E00000000007", "E00000000008"]).unwrap();
        assert_eq!(padded.row("E00000000008"), Some(1));
        assert_eq!(padded.row("E0000000008"), None);
        for id in [
            "S0097", "S0102", "S098", "S00098", "X0098", "S0O98", "S", "",
        ] {
            assert_eq!(run.row(id), None, "{id}");
        }
        let free = run_of(&["9", "10", "11"]).unwrap();
        assert_eq!(
            (free.row("10"), free.row("010"), free.row("12")),
            (Some(1), None, None)
        );
        // Unpadded numbers go on across a change in their count of digits.
        let mut run = run_of(&["8", "9"]).unwrap();
        assert!(extends(&mut run, &["10", "11"]));
        assert!(extends(&mut run, &["12"]));
        assert_eq!(
            (run.row("8"), run.row("12"), run.row("08")),
            (Some(0), Some(4), None)
        );
        // Padded ones keep their count of digits.
        let mut run = run_of(&["08", "09"]).unwrap();
        assert!(extends(&mut run, &["10", "11"]));
        assert_eq!(
            (run.row("08"), run.row("10"), run.row("8")),
            (Some(0), Some(2), None)
        );
        assert_eq!(run_of(&["S1", "S3"]), None);
        assert_eq!(run_of(&["S4294967295", "S4294967296"]), None);
    }
}
