//! Special functions the customer-base models need: log-gamma, the Gauss
//! hypergeometric function 2F1, the integral behind the Pareto/NBD likelihood, and
//! log-space sums.

use std::f64::consts::PI;

/// Lanczos coefficients (g = 7, n = 9); relative error below 1e-15 for x > 0.
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// ln Γ(x) for x > 0 (reflection below 0.5); NaN for non-positive integers.
pub fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        // Γ(x) Γ(1−x) = π / sin(πx)
        let s = (PI * x).sin();
        if s == 0.0 {
            return f64::NAN;
        }
        return (PI / s.abs()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut acc = LANCZOS[0];
    let t = x + 7.5;
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        acc += c / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + acc.ln()
}

/// The digamma function ψ(x) = d/dx ln Γ(x) for x > 0: the recurrence
/// ψ(x) = ψ(x+1) − 1/x lifts x to at least 10, where the asymptotic series
/// ln x − 1/(2x) − Σ B₂ₖ/(2k x²ᵏ) is accurate to about 1e-15.
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    let series = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2
                        * (1.0 / 252.0
                            - inv2
                                * (1.0 / 240.0
                                    - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0))))));
    acc + x.ln() - 0.5 / x - series
}

/// ln(e^a + e^b) without overflow.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// ln(e^a − e^b) for a ≥ b (−∞ when equal).
pub fn log_sub_exp(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if b >= a {
        return f64::NEG_INFINITY;
    }
    a + (-(b - a).exp_m1()).ln()
}

/// Most series terms summed before the remainder is estimated geometrically.
const MAX_TERMS: usize = 200_000;

/// Gauss hypergeometric function 2F1(a, b; c; z) for 0 ≤ z < 1 with b, c > 0 and
/// a > 0 or a small negative, by its power series.
///
/// Terms are formed by their ratio `(a+n)(b+n) / ((c+n)(n+1)) z`; once the ratio
/// settles below 1 the sum stops when a term no longer changes it, and if the
/// series is still running after `MAX_TERMS` terms (z very close to 1) the tail is
/// added as the geometric series of the last ratio.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if z == 0.0 {
        return 1.0;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..MAX_TERMS {
        let nf = n as f64;
        let ratio = (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * z;
        term *= ratio;
        sum += term;
        if term == 0.0 {
            return sum;
        }
        if ratio.abs() < 1.0 && (term / sum).abs() < 1e-17 {
            return sum;
        }
        if n + 1 == MAX_TERMS && ratio.abs() < 1.0 {
            sum += term * ratio / (1.0 - ratio);
        }
    }
    sum
}

/// Terms of 2F1(1, b; c; z) summed before the remainder is estimated.
const ONE_MAX_TERMS: usize = 1_000;

/// 2F1(1, b; c; z) for 0 ≤ z < 1 and 0 < b ≤ c: every term is positive and the
/// term ratio ρ_n = (b+n)/(c+n) z rises towards z, so after term t_n the remainder
/// lies between t_n ρ_n/(1−ρ_n) and t_n z/(1−z). The sum stops once the upper bound
/// is below 1e-16 of the sum; should that take more than 1,000 terms (z above about 0.96, which
/// in practice only far-off trial parameters produce) the midpoint
/// of the two bounds is added instead.
pub fn hyp2f1_one(b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    let upper = z / (1.0 - z);
    for n in 0..ONE_MAX_TERMS {
        let nf = n as f64;
        let ratio = (b + nf) / (c + nf) * z;
        term *= ratio;
        sum += term;
        if term * upper <= 1e-16 * sum {
            return sum;
        }
    }
    let nf = ONE_MAX_TERMS as f64;
    let ratio = (b + nf) / (c + nf) * z;
    sum + 0.5 * term * (ratio / (1.0 - ratio) + upper)
}

/// ln of ∫_y^∞ (A+τ)^(−p) (B+τ)^(−q) dτ for p + q > 1, A, B > 0, y ≥ 0.
///
/// With A ≥ B the substitution w = 1/(A+τ) gives
/// (A+y)^(1−p−q) / (p+q−1) · 2F1(p+q−1, q; p+q; z), z = (A−B)/(A+y), and
/// symmetrically with the roles of (A, p) and (B, q) swapped when A < B, so z always
/// lies in [0, 1) — the two branches of Fader & Hardie's Pareto/NBD note. Euler's
/// transformation rewrites that 2F1 as (1−z)^(1−q) 2F1(1, p; p+q; z), a series of
/// positive terms that shrink at least geometrically in z whatever the size of p
/// (the general series needs hundreds of terms once x is large).
pub fn ln_tail_integral(p: f64, q: f64, a: f64, b: f64, y: f64) -> f64 {
    // `other_pow` is the exponent of the factor with the smaller constant.
    let (big, other, big_pow, other_pow) = if a >= b { (a, b, p, q) } else { (b, a, q, p) };
    let k = p + q - 1.0;
    let z = (big - other) / (big + y);
    -k * (big + y).ln() - k.ln()
        + (1.0 - other_pow) * (-z).ln_1p()
        + hyp2f1_one(big_pow, k + 1.0, z).ln()
}

/// ln of ∫_lo^hi (A+τ)^(−p) (B+τ)^(−q) dτ (−∞ when lo ≥ hi).
///
/// The difference of two tails through 2F1 while its argument at `lo` is at most
/// 0.9; beyond (one constant many times the other, e.g. a nearly homogeneous
/// dropout rate with large s and β), where the series needs thousands of terms, the
/// integral is computed by quadrature instead (`ln_interval_quadrature`).
pub fn ln_interval_integral(p: f64, q: f64, a: f64, b: f64, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return f64::NEG_INFINITY;
    }
    let (big, other) = if a >= b { (a, b) } else { (b, a) };
    if (big - other) / (big + lo) > 0.9 {
        return ln_interval_quadrature(p, q, a, b, lo, hi);
    }
    log_sub_exp(
        ln_tail_integral(p, q, a, b, lo),
        ln_tail_integral(p, q, a, b, hi),
    )
}

/// 16-point Gauss–Legendre rule, computed once.
fn gl16() -> &'static [(f64, f64)] {
    static NODES: std::sync::OnceLock<Vec<(f64, f64)>> = std::sync::OnceLock::new();
    NODES.get_or_init(|| gauss_legendre(16))
}

/// ln ∫_lo^hi (A+τ)^(−p) (B+τ)^(−q) dτ by composite 16-point Gauss–Legendre in
/// u = ln(C+τ), C the smaller constant, summed in log space. In u the integrand is
/// exp((1−p')u − q' ln(D + e^u)) (p' the exponent of the C factor): the panels are
/// sized so neither exponent changes by more than 4 across one, where a 16-point
/// rule is exact to rounding for such smooth, exponential-like integrands.
pub fn ln_interval_quadrature(p: f64, q: f64, a: f64, b: f64, lo: f64, hi: f64) -> f64 {
    let (c, cp, d, dq) = if a <= b { (a, p, b, q) } else { (b, q, a, p) };
    let (u0, u1) = ((c + lo).ln(), (c + hi).ln());
    let change = ((1.0 - cp).abs() * (u1 - u0)).max(dq * ((d + hi) / (d + lo)).ln());
    let panels = ((change / 4.0).ceil() as usize).clamp(1, 256);
    let h = (u1 - u0) / panels as f64;
    let mut logs = Vec::with_capacity(panels * 16);
    for k in 0..panels {
        let start = u0 + k as f64 * h;
        for (x, w) in gl16() {
            let u = start + 0.5 * h * (x + 1.0);
            let tau = u.exp() - c;
            logs.push(w.ln() + (1.0 - cp) * u - dq * (d + tau).ln());
        }
    }
    let m = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + logs.iter().map(|l| (l - m).exp()).sum::<f64>().ln() + (0.5 * h).ln()
}

/// Gauss–Legendre nodes and weights on [−1, 1] (Newton on the Legendre recurrence).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        out.push((x, 2.0 / ((1.0 - x * x) * dp * dp)));
    }
    out
}

/// ∫_lo^hi f by composite Gauss–Legendre (`panels` panels of 20 nodes); for tests and
/// cross-checks of closed forms.
pub fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64, panels: usize) -> f64 {
    let nodes = gauss_legendre(20);
    let h = (hi - lo) / panels as f64;
    let mut sum = 0.0;
    for k in 0..panels {
        let a = lo + k as f64 * h;
        for (x, w) in &nodes {
            sum += w * f(a + 0.5 * h * (x + 1.0));
        }
    }
    sum * 0.5 * h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn digamma_matches_known_values_and_the_derivative_of_ln_gamma() {
        let euler = 0.577_215_664_901_532_9;
        assert!(close(digamma(1.0), -euler, 1e-13));
        assert!(close(digamma(0.5), -euler - 2.0 * 2f64.ln(), 1e-13));
        // ψ(n) = H(n−1) − γ.
        let h9: f64 = (1..10).map(|k| 1.0 / k as f64).sum();
        assert!(close(digamma(10.0), h9 - euler, 1e-13));
        for x in [0.01, 0.243, 1.7, 6.5, 42.0, 1e4] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(close(digamma(x), numeric, 1e-6), "x = {x}");
        }
        assert!(digamma(0.0).is_nan() && digamma(-1.0).is_nan());
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        let mut f = 1.0f64;
        for n in 1..30 {
            // ln Γ(1) = ln Γ(2) = 0: compare absolutely there
            assert!(
                (ln_gamma(n as f64) - f.ln()).abs() < 1e-13 * f.ln().max(1.0),
                "n={n}"
            );
            f *= n as f64;
        }
        assert!(close(ln_gamma(0.5), PI.sqrt().ln(), 1e-13));
        // Γ(0.1) = 9.513507698668731836...
        assert!(close(ln_gamma(0.1), 9.513_507_698_668_732_f64.ln(), 1e-13));
        // recurrence Γ(x+1) = x Γ(x) for awkward x
        for x in [1e-3, 0.243, 4.414, 37.5, 1234.5678] {
            assert!(close(ln_gamma(x + 1.0), ln_gamma(x) + x.ln(), 1e-12), "{x}");
        }
    }

    #[test]
    fn hyp2f1_matches_elementary_identities() {
        for z in [0.0f64, 0.1, 0.5, 0.9, 0.99, 0.999] {
            // 2F1(1,1;2;z) = −ln(1−z)/z
            let want = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z), want, 1e-12), "z={z}");
            // 2F1(a,b;b;z) = (1−z)^−a
            assert!(close(hyp2f1(2.5, 3.7, 3.7, z), (1.0 - z).powf(-2.5), 1e-11));
            // 2F1(1/2,1/2;3/2;x²) = asin(x)/x
            let x: f64 = z.sqrt();
            let want = if x == 0.0 { 1.0 } else { x.asin() / x };
            assert!(close(hyp2f1(0.5, 0.5, 1.5, z), want, 1e-12), "z={z}");
        }
        // Euler transformation 2F1(a,b;c;z) = (1−z)^(c−a−b) 2F1(c−a,c−b;c;z)
        let (a, b, c, z) = (3.3, 1.61, 4.3, 0.7);
        let rhs = (1.0f64 - z).powf(c - a - b) * hyp2f1(c - a, c - b, c, z);
        assert!(close(hyp2f1(a, b, c, z), rhs, 1e-12));
        for z in [0.0, 0.3, 0.8, 0.95] {
            assert!(close(
                hyp2f1_one(2.7, 5.1, z),
                hyp2f1(1.0, 2.7, 5.1, z),
                1e-13
            ));
        }
        // 2F1(1, b; b+1; z) = b z^−b B_z(b, 0)... with b = 1: −ln(1−z)/z, here at a z
        // so close to 1 that the remainder estimate takes over.
        let z = 0.99;
        assert!(close(hyp2f1_one(1.0, 2.0, z), -(1.0f64 - z).ln() / z, 1e-5));
    }

    #[test]
    fn tail_integral_matches_quadrature_on_both_branches() {
        for &(p, q, a, b, lo, hi) in &[
            (3.55, 1.61, 10.58, 11.67, 2.0, 30.0),
            (0.55, 1.61, 20.0, 1.5, 0.0, 38.0),
            (7.2, 2.2, 1.5, 40.0, 5.0, 70.0),
            // far apart constants: the quadrature branch
            (0.29, 11.6, 2.66, 214.8, 0.0, 78.0),
            (30.3, 1.6, 0.1, 500.0, 3.0, 78.0),
        ] {
            let f = |t: f64| (a + t).powf(-p) * (b + t).powf(-q);
            let want = integrate(f, lo, hi, 200);
            let got = ln_interval_integral(p, q, a, b, lo, hi).exp();
            assert!(close(got, want, 1e-10), "{got} vs {want}");
            let quad = ln_interval_quadrature(p, q, a, b, lo, hi).exp();
            assert!(close(quad, want, 1e-10), "{quad} vs {want}");
        }
    }
}
