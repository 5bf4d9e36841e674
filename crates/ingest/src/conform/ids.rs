//! Ids and labels compared as integers.
//!
//! Fact builds look up tens of millions of ids (customer, product, campaign, session)
//! and few-valued labels (event type, device). Most are at most 16 bytes long: such a
//! string is held as a [`ShortStr`], a few integers loaded straight from its bytes, so
//! comparing two is an integer comparison and hashing one is a few multiplications,
//! where a `&str` costs a call to `memcmp` and a byte loop.

use crmcube_model::keys::FastMap as HashMap;

/// A string of at most 16 bytes, as its length and two overlapping 8-byte (or 4-byte)
/// windows that together cover every byte. Equal strings give equal values and, since
/// the windows cover the whole string, different strings of one length differ in a
/// window.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct ShortStr {
    head: u64,
    tail: u64,
    len: u8,
}

impl ShortStr {
    /// The longest string held.
    pub(crate) const MAX: usize = 16;

    /// `s` as a `ShortStr`, or `None` if it is longer than [`ShortStr::MAX`] bytes.
    #[inline]
    pub(crate) fn of(s: &str) -> Option<ShortStr> {
        let b = s.as_bytes();
        let n = b.len();
        let (head, tail) = if n >= 8 {
            if n > Self::MAX {
                return None;
            }
            (
                u64::from_le_bytes(*b.first_chunk::<8>()?),
                u64::from_le_bytes(*b.last_chunk::<8>()?),
            )
        } else if n >= 4 {
            (
                u64::from(u32::from_le_bytes(*b.first_chunk::<4>()?)),
                u64::from(u32::from_le_bytes(*b.last_chunk::<4>()?)),
            )
        } else if n > 0 {
            // One to three bytes: the first, the middle and the last cover them.
            let head = u64::from(b[0]) | (u64::from(b[n / 2]) << 8) | (u64::from(b[n - 1]) << 16);
            (head, 0)
        } else {
            (0, 0)
        };
        Some(ShortStr {
            head,
            tail,
            len: n as u8,
        })
    }
}

/// Whether two strings are equal, without a call to `memcmp` when they are short.
#[inline]
pub(crate) fn same_str(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match (ShortStr::of(a), ShortStr::of(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A map from ids to values: ids of at most [`ShortStr::MAX`] bytes are keyed as
/// [`ShortStr`]s, longer ones as strings.
#[derive(Debug)]
pub struct IdMap<V> {
    short: HashMap<ShortStr, V>,
    long: HashMap<String, V>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            short: HashMap::default(),
            long: HashMap::default(),
        }
    }
}

impl<V> IdMap<V> {
    /// An empty map with room for `n` short ids.
    pub fn with_capacity(n: usize) -> Self {
        IdMap {
            short: HashMap::with_capacity_and_hasher(n, Default::default()),
            long: HashMap::default(),
        }
    }

    /// Sets the value of `id`; returns its previous value.
    pub fn insert(&mut self, id: &str, v: V) -> Option<V> {
        match ShortStr::of(id) {
            Some(k) => self.short.insert(k, v),
            None => self.long.insert(id.to_string(), v),
        }
    }

    /// The value of `id`.
    #[inline]
    pub fn get(&self, id: &str) -> Option<&V> {
        match ShortStr::of(id) {
            Some(k) => self.short.get(&k),
            None => self.long.get(id),
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The members of a dimension by id, each with a code: its place in insertion order
/// plus one (0 stands for no member). A fact row that keeps a member's code needs four
/// bytes for it, where the member's key takes eight.
///
/// While every id is one prefix and a number of one count of digits (`C0000123`), as
/// sequence-numbered exports write them, and the numbers are not too sparse, an id is
/// found by reading its digits ([`ByNumber`]) instead of hashing it.
#[derive(Debug)]
pub struct Members<V> {
    /// The code of each id, while `by_number` does not hold them.
    codes: IdMap<u32>,
    /// The member of each code, from code 1.
    values: Vec<V>,
    by_number: Option<ByNumber>,
}

/// The codes of ids that are one prefix and a number of one count of digits, by
/// number.
#[derive(Debug)]
struct ByNumber {
    prefix: String,
    digits: usize,
    /// The code of each number (0 for none).
    codes: Vec<u32>,
}

impl ByNumber {
    /// At most this many digits (so that every number fits in a `u32`).
    const MAX_DIGITS: usize = 9;

    /// The index of ids written as `id` is, holding nothing yet; `None` if `id` does
    /// not end in one to [`ByNumber::MAX_DIGITS`] digits.
    fn like(id: &str) -> Option<ByNumber> {
        let b = id.as_bytes();
        let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
        (1..=Self::MAX_DIGITS).contains(&digits).then(|| ByNumber {
            // The prefix ends before an ASCII digit, so on a character boundary.
            prefix: id[..id.len() - digits].to_string(),
            digits,
            codes: Vec::new(),
        })
    }

    /// The number of `id` if it is written as the index's ids are.
    #[inline]
    fn number(&self, id: &[u8]) -> Option<usize> {
        let d = id.strip_prefix(self.prefix.as_bytes())?;
        if d.len() != self.digits {
            return None;
        }
        d.iter().try_fold(0usize, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
        })
    }

    /// Adds `id` with `code`; false if `id` is not written as the index's ids are, or
    /// its number is far beyond the `members` there are (the index would be mostly
    /// empty).
    fn add(&mut self, id: &str, code: u32, members: usize) -> bool {
        let Some(n) = self.number(id.as_bytes()) else {
            return false;
        };
        if n >= self.codes.len() {
            if n > 4 * members + 4096 {
                return false;
            }
            self.codes.resize(n + 1, 0);
        }
        self.codes[n] = code;
        true
    }

    #[inline]
    fn code(&self, id: &str) -> Option<u32> {
        let n = self.number(id.as_bytes())?;
        self.codes.get(n).copied().filter(|&c| c != 0)
    }

    /// Writes every id the index holds, with its code, into `map`.
    fn fill(&self, map: &mut IdMap<u32>) {
        for (n, &code) in self.codes.iter().enumerate() {
            if code != 0 {
                let id = format!("{}{n:0width$}", self.prefix, width = self.digits);
                map.insert(&id, code);
            }
        }
    }
}

impl<V> Default for Members<V> {
    fn default() -> Self {
        Members::with_capacity(0)
    }
}

impl<V> Members<V> {
    /// No members yet, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Members {
            codes: IdMap::with_capacity(n),
            values: Vec::with_capacity(n),
            by_number: None,
        }
    }

    /// Adds member `id` (or replaces it: its code stays).
    pub fn insert(&mut self, id: &str, v: V) -> crmcube_model::Result<()> {
        if let Some(c) = self.code(id) {
            self.values[c as usize - 1] = v;
            return Ok(());
        }
        let code = u32::try_from(self.values.len() + 1)
            .ok()
            .filter(|&c| c < u32::MAX)
            .ok_or_else(|| {
                crmcube_model::Error::format("dimension", "more than 4,294,967,294 members")
            })?;
        if self.values.is_empty() {
            self.by_number = ByNumber::like(id);
        }
        let members = self.values.len() + 1;
        let indexed = match &mut self.by_number {
            Some(index) => index.add(id, code, members),
            None => false,
        };
        if !indexed {
            // From the first id the index cannot hold on, ids are hashed: the ones it
            // held go into the map first.
            if let Some(index) = self.by_number.take() {
                index.fill(&mut self.codes);
            }
            self.codes.insert(id, code);
        }
        self.values.push(v);
        Ok(())
    }

    /// The code of member `id`.
    #[inline]
    pub fn code(&self, id: &str) -> Option<u32> {
        match &self.by_number {
            // Every member's id is written as the index's are: an id that is not is no
            // member's.
            Some(index) => index.code(id),
            None => self.codes.get(id).copied(),
        }
    }

    /// Member `id`.
    #[inline]
    pub fn get(&self, id: &str) -> Option<&V> {
        self.code(id).and_then(|c| self.by_code(c))
    }

    /// The member of `code` (`None` for 0).
    #[inline]
    pub fn by_code(&self, code: u32) -> Option<&V> {
        code.checked_sub(1)
            .and_then(|c| self.values.get(c as usize))
    }

    /// The members in code order (code 1 first).
    pub fn values(&self) -> &[V] {
        &self.values
    }
}

/// Small codes (1, 2, …; 0 for null) for the values of a few-valued string column, in
/// the order first seen.
#[derive(Default)]
pub(crate) struct StrCodes<'s> {
    /// The first [`StrCodes::FEW`] short values, searched in order.
    few: Vec<(ShortStr, u32)>,
    /// Further short values.
    many: HashMap<ShortStr, u32>,
    long: HashMap<&'s str, u32>,
    /// The value of each code, from code 1.
    values: Vec<&'s str>,
}

impl<'s> StrCodes<'s> {
    const FEW: usize = 16;

    /// The code of `s` (0 for `None`).
    #[inline]
    pub(crate) fn code(&mut self, s: Option<&'s str>) -> u32 {
        let Some(s) = s else {
            return 0;
        };
        let next = self.values.len() as u32 + 1;
        let code = match ShortStr::of(s) {
            Some(k) => {
                if let Some(&(_, c)) = self.few.iter().find(|(x, _)| *x == k) {
                    return c;
                }
                if self.few.len() < Self::FEW {
                    self.few.push((k, next));
                    next
                } else {
                    *self.many.entry(k).or_insert(next)
                }
            }
            None => *self.long.entry(s).or_insert(next),
        };
        if code == next {
            self.values.push(s);
        }
        code
    }

    /// The value of `code` (`None` for 0).
    pub(crate) fn value(&self, code: u32) -> Option<&'s str> {
        code.checked_sub(1)
            .and_then(|c| self.values.get(c as usize))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members with `ids` (valued by their position), and whether they are found by
    /// number.
    fn members(ids: &[&str]) -> (Members<usize>, bool) {
        let mut m = Members::default();
        for (i, id) in ids.iter().enumerate() {
            m.insert(id, i).unwrap();
        }
        let by_number = m.by_number.is_some();
        (m, by_number)
    }

    #[test]
    fn members_are_found_by_number_or_by_hash_alike() {
        let numbered: Vec<String> = (1..200).step_by(3).map(|n| format!("C{n:07}")).collect();
        let numbered: Vec<&str> = numbered.iter().map(String::as_str).collect();
        let probes = [
            "C0000001",
            "C0000004",
            "C0000002",
            "C0000199",
            "C0000000",
            "C9999999",
            "C000001",
            "C00000001",
            "D0000001",
            "c0000001",
            "C000000x",
            "C0000001 ",
            "",
            "C",
            "0000001",
            "C０000001",
        ];
        let mut sparse = numbered.clone();
        sparse.push("C9000000");
        let mut mixed = numbered.clone();
        mixed.push("X12");
        let cases: [(&[&str], bool); 5] = [
            (&numbered, true),
            (&["7", "3", "12"], false),
            (&["7", "3", "5"], true),
            (&sparse, false),
            (&mixed, false),
        ];
        for (ids, by_number) in cases {
            let (m, indexed) = members(ids);
            assert_eq!(indexed, by_number, "{ids:?}");
            let mut all: Vec<&str> = ids.to_vec();
            all.extend(probes);
            for id in all {
                let expected = ids.iter().position(|x| *x == id);
                assert_eq!(m.get(id).copied(), expected, "{id:?} in {ids:?}");
            }
        }
        // A replaced member keeps its code.
        let (mut m, _) = members(&numbered);
        let code = m.code("C0000004");
        m.insert("C0000004", 1000).unwrap();
        assert_eq!((m.code("C0000004"), m.get("C0000004")), (code, Some(&1000)));
    }

    /// Strings of every length up to 20 that differ in one byte, at every position.
    fn variants() -> Vec<String> {
        let mut out = vec![String::new()];
        for n in 1..=20 {
            let base: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            out.push(base.clone());
            for p in 0..n {
                let mut b = base.clone().into_bytes();
                b[p] = b'Z';
                out.push(String::from_utf8(b).unwrap());
            }
        }
        out
    }

    #[test]
    fn short_strings_are_equal_exactly_when_their_bytes_are() {
        let all = variants();
        for a in &all {
            for b in &all {
                assert_eq!(same_str(a, b), a == b, "{a:?} {b:?}");
                match (ShortStr::of(a), ShortStr::of(b)) {
                    (Some(x), Some(y)) => assert_eq!(x == y, a == b, "{a:?} {b:?}"),
                    (x, y) => {
                        assert!(a.len() > ShortStr::MAX || b.len() > ShortStr::MAX);
                        assert_eq!(x.is_none(), a.len() > ShortStr::MAX);
                        assert_eq!(y.is_none(), b.len() > ShortStr::MAX);
                    }
                }
            }
        }
        // Multi-byte characters are bytes like any other.
        assert!(!same_str("café", "cafe\u{301}"));
        assert!(same_str("über", "über"));
    }

    #[test]
    fn id_maps_find_short_and_long_ids() {
        let all = variants();
        let mut m = IdMap::with_capacity(all.len());
        for (i, s) in all.iter().enumerate() {
            assert_eq!(m.insert(s, i), None);
        }
        assert_eq!(m.len(), all.len());
        for (i, s) in all.iter().enumerate() {
            assert_eq!(m.get(s), Some(&i), "{s:?}");
        }
        assert_eq!(m.get("not there"), None);
        assert_eq!(m.get("a much longer id that is not there"), None);
        assert_eq!(m.insert("a", 7), Some(1));
    }

    #[test]
    fn string_codes_number_values_in_first_seen_order() {
        let all = variants();
        let mut codes = StrCodes::default();
        assert_eq!(codes.code(None), 0);
        // Twice over, so the second pass finds every value (short ones beyond the first
        // sixteen, and long ones, included).
        for _ in 0..2 {
            for (i, s) in all.iter().enumerate() {
                assert_eq!(codes.code(Some(s)), i as u32 + 1, "{s:?}");
            }
        }
        for (i, s) in all.iter().enumerate() {
            assert_eq!(codes.value(i as u32 + 1), Some(s.as_str()));
        }
        assert_eq!(codes.value(0), None);
        assert_eq!(codes.value(all.len() as u32 + 1), None);
    }
}
