//! Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, "The Gamma-Gamma
//! Model of Monetary Value").
//!
//! A customer's transaction values are Gamma(p, ν) with rate ν ~ Gamma(q, γ) across
//! customers, independent of the purchase process. Only the x ≥ 1 repeat
//! transactions' mean value m enters (the first purchase is excluded, as in the
//! `lifetimes` package).

use crate::bgnbd::Fit;
use crate::history::add_arrays;
use crate::optim::minimize_smooth;
use crate::special::{digamma, ln_gamma};
use rayon::prelude::*;
use serde::Serialize;

/// Parameters of the Gamma-Gamma spend model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GammaGammaParams {
    /// Shape of each transaction value.
    pub p: f64,
    /// Shape of the customers' rate ν.
    pub q: f64,
    /// Rate of the customers' rate ν.
    pub gamma: f64,
}

/// A customer's repeat transactions: count and mean value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    /// Number of repeat transactions (≥ 1 to enter the fit).
    pub x: f64,
    /// Mean value of those transactions (> 0).
    pub mean: f64,
}

impl GammaGammaParams {
    /// Log-likelihood of one customer's mean value m over x transactions:
    /// ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x
    /// − (px+q) ln(γ + m x).
    pub fn log_likelihood(&self, s: &Spend) -> f64 {
        let px = self.p * s.x;
        ln_gamma(px + self.q) - ln_gamma(px) - ln_gamma(self.q)
            + self.q * self.gamma.ln()
            + (px - 1.0) * s.mean.ln()
            + px * s.x.ln()
            - (px + self.q) * (self.gamma + s.mean * s.x).ln()
    }

    /// Log-likelihood of all customers (sorted by x for reuse of the gamma terms).
    pub fn total_log_likelihood(&self, data: &[Spend]) -> f64 {
        let chunk = |rows: &[Spend]| {
            let mut sum = 0.0;
            let mut cur = (f64::NAN, 0.0);
            for s in rows {
                let px = self.p * s.x;
                if s.x != cur.0 {
                    cur = (s.x, ln_gamma(px + self.q) - ln_gamma(px) + px * s.x.ln());
                }
                sum += cur.1 + (px - 1.0) * s.mean.ln()
                    - (px + self.q) * (self.gamma + s.mean * s.x).ln();
            }
            sum
        };
        let n = data.len() as f64;
        let fixed = n * (self.q * self.gamma.ln() - ln_gamma(self.q));
        let var = if data.len() <= 8192 {
            chunk(data)
        } else {
            data.par_chunks(8192).map(chunk).sum()
        };
        fixed + var
    }

    /// Expected mean transaction value of a customer with x repeat transactions of
    /// mean m: p(γ + m x)/(px + q − 1); for x = 0 the population mean pγ/(q−1).
    pub fn expected_spend(&self, s: &Spend) -> f64 {
        if s.x <= 0.0 {
            return self.p * self.gamma / (self.q - 1.0);
        }
        self.p * (self.gamma + s.mean * s.x) / (self.p * s.x + self.q - 1.0)
    }

    /// Maximum-likelihood fit on customers with x ≥ 1 and a positive mean: BFGS over
    /// log-parameters with the analytic gradient, from three starting points.
    pub fn fit(data: &[Spend]) -> Fit<GammaGammaParams> {
        let mut rows: Vec<Spend> = data
            .iter()
            .filter(|s| s.x >= 1.0 && s.mean > 0.0 && s.mean.is_finite())
            .copied()
            .collect();
        rows.sort_by(|a, b| a.x.total_cmp(&b.x));
        let prepared = PreparedSpend::new(&rows);
        let make = |v: &[f64]| GammaGammaParams {
            p: v[0].exp(),
            q: v[1].exp(),
            gamma: v[2].exp(),
        };
        let fg = |v: &[f64], g: &mut [f64]| {
            let m = make(v);
            let r = prepared.log_likelihood_gradient(&m);
            for (i, scale) in [m.p, m.q, m.gamma].into_iter().enumerate() {
                g[i] = -r[i + 1] * scale;
            }
            -r[0]
        };
        let mean = rows.iter().map(|s| s.mean).sum::<f64>() / rows.len().max(1) as f64;
        let lm = mean.max(1e-9).ln();
        let starts = vec![
            vec![1.0f64.ln(), 2.0f64.ln(), lm],
            vec![5.0f64.ln(), 5.0f64.ln(), lm],
            vec![0.5f64.ln(), 10.0f64.ln(), lm + 2.0],
        ];
        let m = minimize_smooth(&fg, &starts);
        Fit {
            params: make(&m.x),
            log_likelihood: -m.value,
            evaluations: m.evaluations,
        }
    }
}

/// Customers' spend prepared for repeated likelihood evaluations: sorted by x, with
/// the parameter-free sums Σ ln m, Σ x ln m and Σ x ln x taken once.
struct PreparedSpend {
    /// (x, m·x) per customer, sorted by x.
    rows: Vec<(f64, f64)>,
    n: f64,
    sum_ln_m: f64,
    sum_x_ln_m: f64,
    sum_x_ln_x: f64,
}

impl PreparedSpend {
    fn new(sorted: &[Spend]) -> Self {
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for s in sorted {
            let lm = s.mean.ln();
            a += lm;
            b += s.x * lm;
            c += s.x * s.x.ln();
        }
        PreparedSpend {
            rows: sorted.iter().map(|s| (s.x, s.mean * s.x)).collect(),
            n: sorted.len() as f64,
            sum_ln_m: a,
            sum_x_ln_m: b,
            sum_x_ln_x: c,
        }
    }

    /// `[ll, ∂p, ∂q, ∂γ]` of the total log-likelihood. Per customer,
    /// ∂p = x (ψ(px+q) − ψ(px) + ln m + ln x − ln(γ+mx)),
    /// ∂q = ψ(px+q) − ψ(q) + ln γ − ln(γ+mx), ∂γ = q/γ − (px+q)/(γ+mx).
    fn log_likelihood_gradient(&self, g: &GammaGammaParams) -> [f64; 4] {
        let (p, q, gamma) = (g.p, g.q, g.gamma);
        let chunk = |rows: &[(f64, f64)]| {
            let mut acc = [0.0; 4];
            // Per-x terms: (x, ln Γ(px+q) − ln Γ(px), ψ(px+q), ψ(px)).
            let mut cur = (f64::NAN, 0.0, 0.0, 0.0);
            for &(x, mx) in rows {
                let px = p * x;
                if x != cur.0 {
                    cur = (
                        x,
                        ln_gamma(px + q) - ln_gamma(px),
                        digamma(px + q),
                        digamma(px),
                    );
                }
                let l = (gamma + mx).ln();
                acc[0] += cur.1 - (px + q) * l;
                acc[1] += x * (cur.2 - cur.3 - l);
                acc[2] += cur.2 - l;
                acc[3] -= (px + q) / (gamma + mx);
            }
            acc
        };
        let mut acc = if self.rows.len() <= 8192 {
            chunk(&self.rows)
        } else {
            self.rows
                .par_chunks(8192)
                .map(chunk)
                .reduce(|| [0.0; 4], add_arrays)
        };
        let n = self.n;
        acc[0] += n * (q * gamma.ln() - ln_gamma(q)) + p * self.sum_x_ln_m - self.sum_ln_m
            + p * self.sum_x_ln_x;
        acc[1] += self.sum_x_ln_m + self.sum_x_ln_x;
        acc[2] += n * (gamma.ln() - digamma(q));
        acc[3] += n * q / gamma;
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::integrate;

    #[test]
    fn likelihood_matches_integration_over_nu() {
        // m̄ of x Gamma(p, ν) draws is Gamma(px, xν); integrate ν against Gamma(q, γ).
        let g = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        for s in [Spend { x: 1.0, mean: 30.0 }, Spend { x: 4.0, mean: 12.5 }] {
            let px = g.p * s.x;
            let dens = |nu: f64| {
                let rate = s.x * nu;
                let lf = px * rate.ln() + (px - 1.0) * s.mean.ln() - rate * s.mean - ln_gamma(px);
                let lp = g.q * g.gamma.ln() + (g.q - 1.0) * nu.ln() - g.gamma * nu - ln_gamma(g.q);
                (lf + lp).exp()
            };
            let want = integrate(dens, 0.0, 5.0, 400).ln();
            assert!((g.log_likelihood(&s) - want).abs() < 1e-8);
        }
    }

    #[test]
    fn prepared_likelihood_and_gradient_match_the_direct_sum() {
        let rows = [
            Spend { x: 1.0, mean: 30.0 },
            Spend { x: 1.0, mean: 7.5 },
            Spend { x: 4.0, mean: 12.5 },
            Spend { x: 9.0, mean: 55.0 },
        ];
        let prepared = PreparedSpend::new(&rows);
        let base = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let r = prepared.log_likelihood_gradient(&base);
        let direct = base.total_log_likelihood(&rows);
        assert!((r[0] - direct).abs() < 1e-10 * direct.abs());
        for i in 0..3 {
            let at = |e: f64| {
                let mut v = [base.p, base.q, base.gamma];
                v[i] *= 1.0 + e;
                GammaGammaParams {
                    p: v[0],
                    q: v[1],
                    gamma: v[2],
                }
                .total_log_likelihood(&rows)
            };
            let step = 1e-6 * [base.p, base.q, base.gamma][i];
            let numeric = (at(1e-6) - at(-1e-6)) / (2.0 * step);
            assert!(
                (r[i + 1] - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
                "parameter {i}: {} vs {numeric}",
                r[i + 1]
            );
        }
    }
}
