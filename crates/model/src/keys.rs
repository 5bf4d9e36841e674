//! Surrogate keys derived from natural keys.
//!
//! A surrogate key is a fixed 64-bit hash (FNV-1a followed by the SplitMix64 finaliser)
//! of the natural key, folded to a positive `i64`. The same natural key therefore gets
//! the same surrogate key in every load without a key-map table, and loads can assign
//! keys in parallel. Key 0 is reserved for the `Unknown` member of every dimension.

/// The surrogate key of every dimension's `Unknown` member.
pub const UNKNOWN_KEY: i64 = 0;

/// Separator between the parts of a composite natural key (cannot occur in UTF-8 text).
const PART_SEPARATOR: u8 = 0xff;

/// Surrogate key for a natural key made of one or more parts.
pub fn surrogate_key(parts: &[&[u8]]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= u64::from(PART_SEPARATOR);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // SplitMix64 finaliser spreads FNV's weak low bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let k = (h >> 1) as i64;
    if k == UNKNOWN_KEY {
        1
    } else {
        k
    }
}

/// Surrogate key of a single-part natural key.
pub fn key_of(natural: &str) -> i64 {
    surrogate_key(&[natural.as_bytes()])
}

/// A fast, non-cryptographic hasher for in-memory lookups keyed by natural keys
/// (the Fx hash of rustc): keys come from our own exports, so flooding resistance is not
/// needed and SipHash's cost is.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ (rest.len() as u64) << 56);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits (hashbrown's bucket index) depending only on
        // the low input bytes; ids that differ in their last characters would collide.
        // A final avalanche spreads every input bit over the whole word.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 29;
        h
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

/// `HashMap` with [`FxHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
/// `HashSet` with [`FxHasher`].
pub type FastSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_positive_and_distinct() {
        // Pinned values: changing the hash would re-key every existing warehouse.
        assert_eq!(key_of("C0000001"), key_of("C0000001"));
        assert!(key_of("C0000001") > 0);
        assert_ne!(key_of("C0000001"), key_of("C0000002"));
        assert_ne!(
            surrogate_key(&[b"ab", b"c"]),
            surrogate_key(&[b"a", b"bc"]),
            "composite parts must not run together"
        );
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            assert!(seen.insert(key_of(&format!("C{i:07}"))));
        }
    }
}
