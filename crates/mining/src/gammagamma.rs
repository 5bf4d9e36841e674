//! Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, "The Gamma-Gamma
//! Model of Monetary Value").
//!
//! A customer's transaction values are Gamma(p, ν) with rate ν ~ Gamma(q, γ) across
//! customers, independent of the purchase process. Only the x ≥ 1 repeat
//! transactions' mean value m enters (the first purchase is excluded, as in the
//! `lifetimes` package).

use crate::bgnbd::Fit;
use crate::optim::minimize;
use crate::special::ln_gamma;
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

    /// Maximum-likelihood fit on customers with x ≥ 1 and a positive mean.
    pub fn fit(data: &[Spend]) -> Fit<GammaGammaParams> {
        let mut rows: Vec<Spend> = data
            .iter()
            .filter(|s| s.x >= 1.0 && s.mean > 0.0 && s.mean.is_finite())
            .copied()
            .collect();
        rows.sort_by(|a, b| a.x.total_cmp(&b.x));
        let make = |v: &[f64]| GammaGammaParams {
            p: v[0].exp(),
            q: v[1].exp(),
            gamma: v[2].exp(),
        };
        let f = |v: &[f64]| -make(v).total_log_likelihood(&rows);
        let mean = rows.iter().map(|s| s.mean).sum::<f64>() / rows.len().max(1) as f64;
        let lm = mean.max(1e-9).ln();
        let starts = vec![
            vec![1.0f64.ln(), 2.0f64.ln(), lm],
            vec![5.0f64.ln(), 5.0f64.ln(), lm],
            vec![0.5f64.ln(), 10.0f64.ln(), lm + 2.0],
        ];
        let m = minimize(&f, &starts);
        Fit {
            params: make(&m.x),
            log_likelihood: -m.value,
            evaluations: m.evaluations,
        }
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
}
