//! A small, fast, reproducible random number generator and the samplers the generator needs.
//!
//! We deliberately do not depend on the `rand` crate: the byte-exact output of the sample
//! must not change when a dependency changes its algorithms. xoshiro256** is seeded through
//! SplitMix64, and every customer gets its own stream derived from (seed, index, purpose),
//! so the result does not depend on how work is split across threads.

/// One step of SplitMix64: advances `state` and returns a well-mixed 64-bit value.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a random stream is used for; keeps streams independent so that changing how one
/// aspect is simulated does not shift the draws of another.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// Static world: regions, catalog, campaigns.
    World,
    /// A customer's profile, purchases, orders and tickets.
    Customer,
    /// A customer's campaign contacts and email events.
    Marketing,
    /// A customer's web sessions and cart events.
    Web,
    /// Anonymous web sessions generated alongside a customer slot.
    Anonymous,
}

impl Stream {
    fn tag(self) -> u64 {
        match self {
            Stream::World => 0x574F_524C_4400_0001,
            Stream::Customer => 0x4355_5354_0000_0002,
            Stream::Marketing => 0x4D41_524B_0000_0003,
            Stream::Web => 0x5745_4200_0000_0004,
            Stream::Anonymous => 0x414E_4F4E_0000_0005,
        }
    }
}

/// xoshiro256** pseudo-random generator (Blackman & Vigna), seeded with SplitMix64.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from a single 64-bit value.
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut sm);
        }
        // xoshiro must not start from the all-zero state; SplitMix64 never yields four zeros
        // in a row, but be explicit about it.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// The independent stream for (seed, index, purpose).
    pub(crate) fn stream(seed: u64, index: u64, purpose: Stream) -> Self {
        let mut sm = seed ^ purpose.tag();
        let a = splitmix64(&mut sm);
        let mut sm2 = a ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let b = splitmix64(&mut sm2);
        Rng::from_seed(b ^ index.rotate_left(29))
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform on [0, 1).
    #[inline]
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on (0, 1]: safe to take the logarithm of.
    #[inline]
    fn f64_open0(&mut self) -> f64 {
        1.0 - self.f64()
    }

    /// Uniform on [lo, hi).
    #[inline]
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [0, n); `n` must be positive (returns 0 for 0).
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (inclusive).
    #[inline]
    pub(crate) fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal via Box-Muller.
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.f64_open0();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-scale standard deviation.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Exponential with the given mean.
    #[inline]
    pub(crate) fn exp_mean(&mut self, mean: f64) -> f64 {
        -self.f64_open0().ln() * mean
    }

    /// Poisson with the given mean (Knuth for small means, PTRS for large ones).
    pub(crate) fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 || !mean.is_finite() {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0u64;
            let mut prod = self.f64_open0();
            while prod > limit {
                k += 1;
                prod *= self.f64_open0();
            }
            return k;
        }
        self.poisson_ptrs(mean)
    }

    /// Hörmann's transformed rejection with squeeze (PTRS), valid for mean >= 10.
    fn poisson_ptrs(&mut self, mean: f64) -> u64 {
        let slam = mean.sqrt();
        let loglam = mean.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let invalpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.f64() - 0.5;
            let v = self.f64_open0();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + mean + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k.max(0.0) as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + invalpha.ln() - (a / (us * us) + b).ln();
            let rhs = -mean + k * loglam - ln_factorial(k);
            if lhs <= rhs {
                return k as u64;
            }
        }
    }

    /// Gamma with the given shape and scale (Marsaglia-Tsang; shape < 1 by the u^(1/shape) boost).
    pub(crate) fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape <= 0.0 || scale <= 0.0 {
            return 0.0;
        }
        if shape < 1.0 {
            let boost = self.f64_open0().powf(1.0 / shape);
            return self.gamma(shape + 1.0, scale) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.f64_open0();
            if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v * scale;
            }
        }
    }

    /// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
    pub(crate) fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        let y = self.gamma(b, 1.0);
        if x + y <= 0.0 {
            return 0.5;
        }
        x / (x + y)
    }

    /// Index drawn with probability proportional to `weights` (non-negative, not all zero).
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        if weights.is_empty() || total <= 0.0 {
            return 0;
        }
        let mut target = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if target < *w {
                return i;
            }
            target -= w;
        }
        weights.len() - 1
    }

    /// A value drawn from `(value, weight)` pairs.
    pub(crate) fn pick<T: Copy>(&mut self, table: &[(T, f64)]) -> T {
        let total: f64 = table.iter().map(|(_, w)| w).sum();
        let mut target = self.f64() * total;
        for (value, w) in table {
            if target < *w {
                return *value;
            }
            target -= w;
        }
        table[table.len() - 1].0
    }

    /// A uniformly chosen element of a non-empty slice.
    pub(crate) fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// ln(k!) via Stirling's series (exact table for small k); used by the Poisson sampler.
fn ln_factorial(k: f64) -> f64 {
    if k < 10.0 {
        let mut acc = 1.0f64;
        let mut i = 2.0;
        while i <= k {
            acc *= i;
            i += 1.0;
        }
        return acc.ln();
    }
    let k1 = k + 1.0;
    (k1 - 0.5) * k1.ln() - k1 + 0.5 * std::f64::consts::TAU.ln() + 1.0 / (12.0 * k1)
        - 1.0 / (360.0 * k1 * k1 * k1)
}

/// A precomputed discrete distribution for repeated draws (binary search on the CDF).
#[derive(Clone, Debug)]
pub(crate) struct WeightedTable {
    cumulative: Vec<f64>,
}

impl WeightedTable {
    /// Builds the table; weights must be non-negative with a positive sum.
    pub(crate) fn new(weights: &[f64]) -> Self {
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w.max(0.0);
                acc
            })
            .collect();
        WeightedTable { cumulative }
    }

    /// Draws an index.
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.f64() * total;
        let i = self.cumulative.partition_point(|c| *c <= target);
        i.min(self.cumulative.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut a = Rng::stream(42, 7, Stream::Customer);
        let mut b = Rng::stream(42, 7, Stream::Customer);
        let mut c = Rng::stream(42, 8, Stream::Customer);
        let mut d = Rng::stream(42, 7, Stream::Web);
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        let xd: Vec<u64> = (0..4).map(|_| d.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(xa, xd);
    }

    #[test]
    fn xoshiro_matches_reference_sequence() {
        // Reference: xoshiro256** from state {1, 2, 3, 4}.
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1509978240);
        assert_eq!(r.next_u64(), 1215971899390074240);
    }

    #[test]
    fn samplers_have_the_right_moments() {
        let mut r = Rng::from_seed(1);
        let n = 20_000;
        let g: Vec<f64> = (0..n).map(|_| r.gamma(0.8, 75.0)).collect();
        let (m, v) = mean_var(&g);
        assert!((m - 60.0).abs() < 3.0, "gamma mean {m}");
        assert!((v - 0.8 * 75.0 * 75.0).abs() < 600.0, "gamma var {v}");
        let g: Vec<f64> = (0..n).map(|_| r.gamma(6.0, 2.0)).collect();
        let (m, _) = mean_var(&g);
        assert!((m - 12.0).abs() < 0.2, "gamma mean {m}");
        let b: Vec<f64> = (0..n).map(|_| r.beta(0.7, 3.0)).collect();
        let (m, _) = mean_var(&b);
        assert!((m - 0.7 / 3.7).abs() < 0.01, "beta mean {m}");
        let p: Vec<f64> = (0..n).map(|_| r.poisson(3.5) as f64).collect();
        let (m, v) = mean_var(&p);
        assert!(
            (m - 3.5).abs() < 0.08 && (v - 3.5).abs() < 0.25,
            "poisson {m} {v}"
        );
        let p: Vec<f64> = (0..n).map(|_| r.poisson(250.0) as f64).collect();
        let (m, v) = mean_var(&p);
        assert!(
            (m - 250.0).abs() < 0.7 && (v - 250.0).abs() < 15.0,
            "poisson {m} {v}"
        );
        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let (m, v) = mean_var(&z);
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.04, "normal {m} {v}");
        let e: Vec<f64> = (0..n).map(|_| r.exp_mean(5.0)).collect();
        let (m, _) = mean_var(&e);
        assert!((m - 5.0).abs() < 0.15, "exp {m}");
    }

    #[test]
    fn weighted_choices_follow_weights() {
        let mut r = Rng::from_seed(9);
        let table = WeightedTable::new(&[1.0, 0.0, 3.0]);
        let mut counts = [0usize; 3];
        for _ in 0..8000 {
            counts[table.sample(&mut r)] += 1;
            counts[r.weighted(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = counts[2] as f64 / 16000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
        for _ in 0..1000 {
            let x = r.range_i64(-2, 2);
            assert!((-2..=2).contains(&x));
        }
    }
}
