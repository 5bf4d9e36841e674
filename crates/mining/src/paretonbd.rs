//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987), with the likelihood as derived
//! in Fader & Hardie, "A Note on Deriving the Pareto/NBD Model and Related
//! Expressions" (2005).
//!
//! While active a customer buys at Poisson rate λ ~ Gamma(r, α); the active lifetime
//! is exponential with rate μ ~ Gamma(s, β), independent of λ.

use crate::bgnbd::{mean_age, Fit};
use crate::history::{GroupedHistories, History};
use crate::optim::minimize;
use crate::special::{ln_gamma, ln_interval_integral, ln_tail_integral, log_add_exp, log_sub_exp};
use serde::Serialize;

/// Parameters of a Pareto/NBD model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParetoNbdParams {
    /// Shape of the purchase-rate gamma.
    pub r: f64,
    /// Rate of the purchase-rate gamma.
    pub alpha: f64,
    /// Shape of the dropout-rate gamma.
    pub s: f64,
    /// Rate of the dropout-rate gamma.
    pub beta: f64,
}

impl ParetoNbdParams {
    /// ln of the "alive throughout" term (α+T)^−(r+x) (β+T)^−s and of the "died in
    /// (t_x, T]" term s ∫_{t_x}^T (α+τ)^−(r+x) (β+τ)^−(s+1) dτ. The integral is
    /// FH's A0/(r+s+x), evaluated through 2F1 with the α ≥ β / α < β branches.
    fn ln_terms(&self, h: &History) -> (f64, f64) {
        let k = self.r + h.x;
        let alive = -k * (self.alpha + h.t).ln() - self.s * (self.beta + h.t).ln();
        let died =
            self.s.ln() + ln_interval_integral(k, self.s + 1.0, self.alpha, self.beta, h.t_x, h.t);
        (alive, died)
    }

    fn ln_const(&self, x: f64) -> f64 {
        ln_gamma(self.r + x) - ln_gamma(self.r) + self.r * self.alpha.ln() + self.s * self.beta.ln()
    }

    /// Log-likelihood of one customer's history:
    /// ln Γ(r+x) α^r β^s / Γ(r) + ln[(α+T)^−(r+x) (β+T)^−s + s/(r+s+x) A0].
    pub fn log_likelihood(&self, h: &History) -> f64 {
        let (alive, died) = self.ln_terms(h);
        self.ln_const(h.x) + log_add_exp(alive, died)
    }

    /// Log-likelihood of all customers. Rows come sorted by x; the tail integral
    /// from 0, shared by every customer without repeat purchases, is computed once.
    pub fn total_log_likelihood(&self, data: &GroupedHistories) -> f64 {
        data.weighted_sum(|rows| {
            let mut sum = 0.0;
            let mut cur = (f64::NAN, 0.0);
            let mut tail_at_zero = None;
            for (h, w) in rows {
                if h.x != cur.0 {
                    cur = (h.x, self.ln_const(h.x));
                }
                let (alive, died) = if h.x == 0.0 && h.t_x == 0.0 && h.t > 0.0 {
                    let k = self.r;
                    let z = (self.alpha.max(self.beta) - self.alpha.min(self.beta))
                        / self.alpha.max(self.beta);
                    let alive = -k * (self.alpha + h.t).ln() - self.s * (self.beta + h.t).ln();
                    if z > 0.9 {
                        self.ln_terms(h)
                    } else {
                        let t0 = *tail_at_zero.get_or_insert_with(|| {
                            ln_tail_integral(k, self.s + 1.0, self.alpha, self.beta, 0.0)
                        });
                        let t1 = ln_tail_integral(k, self.s + 1.0, self.alpha, self.beta, h.t);
                        (alive, self.s.ln() + log_sub_exp(t0, t1))
                    }
                } else {
                    self.ln_terms(h)
                };
                sum += w * (cur.1 + log_add_exp(alive, died));
            }
            sum
        })
    }

    /// Probability the customer is still active at the end of observation.
    pub fn p_alive(&self, h: &History) -> f64 {
        let (alive, died) = self.ln_terms(h);
        1.0 / (1.0 + (died - alive).exp())
    }

    /// Expected purchases in the next `t` time units:
    /// (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)] · P(alive)
    /// (FH 2005 note eq. 20 / Schmittlein et al. 1987), with the s → 1 limit
    /// (r+x)(β+T)/(α+T) · ln((β+T+t)/(β+T)) taken smoothly.
    pub fn expected_purchases(&self, h: &History, t: f64) -> f64 {
        self.expected_purchases_if_alive(h.x, h.t, t) * self.p_alive(h)
    }

    /// Expected purchases in the next `t` units of a customer active at T with x
    /// repeat purchases (the factor of `expected_purchases` before P(alive)).
    pub fn expected_purchases_if_alive(&self, x: f64, big_t: f64, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let l = ((self.beta + big_t) / (self.beta + big_t + t)).ln();
        let e = self.s - 1.0;
        let g = if e.abs() < 1e-12 {
            -l
        } else {
            -(e * l).exp_m1() / e
        };
        (self.r + x) * (self.beta + big_t) / (self.alpha + big_t) * g
    }

    /// Probability of no purchase in the next `t` time units:
    /// 1 − P(alive) · P(a purchase in t | active at T). Given activity, λ ~ Gamma(r+x,
    /// α+T) and μ ~ Gamma(s, β+T) independently, and a first purchase at time u
    /// before dropout has density E[λ e^(−λu)] E[e^(−μu)], so
    /// P(purchase) = (r+x)(α+T)^(r+x)(β+T)^s ∫_0^t (α+T+u)^−(r+x+1) (β+T+u)^−s du.
    pub fn p_no_purchase(&self, h: &History, t: f64) -> f64 {
        1.0 - self.p_alive(h) * self.p_purchase_if_alive(h.x, h.t, t)
    }

    /// P(a purchase in the next `t` units | active at T), the integral above.
    pub fn p_purchase_if_alive(&self, x: f64, big_t: f64, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let k = self.r + x;
        let (a, b) = (self.alpha + big_t, self.beta + big_t);
        let ln_p = k.ln()
            + k * a.ln()
            + self.s * b.ln()
            + ln_interval_integral(k + 1.0, self.s, a, b, 0.0, t);
        ln_p.exp().min(1.0)
    }

    /// Expected repeat purchases of a new customer in (0, t]:
    /// rβ/(α(s−1)) [1 − (β/(β+t))^(s−1)].
    pub fn expected_purchases_new(&self, t: f64) -> f64 {
        self.expected_purchases(
            &History {
                x: 0.0,
                t_x: 0.0,
                t: 0.0,
            },
            t,
        )
    }

    /// Maximum-likelihood fit.
    pub fn fit(data: &GroupedHistories) -> Fit<ParetoNbdParams> {
        let make = |p: &[f64]| ParetoNbdParams {
            r: p[0].exp(),
            alpha: p[1].exp(),
            s: p[2].exp(),
            beta: p[3].exp(),
        };
        let f = |p: &[f64]| -make(p).total_log_likelihood(data);
        let mt = mean_age(data).max(1e-9).ln();
        let starts = vec![
            vec![0.0, mt, 0.0, mt],
            vec![-1.0, mt - 1.0, -1.0, mt + 1.0],
            vec![0.5, mt + 1.0, 0.5, mt - 1.0],
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

    /// Published Pareto/NBD CDNOW estimates (Fader, Hardie & Lee 2005).
    const CDNOW: ParetoNbdParams = ParetoNbdParams {
        r: 0.553,
        alpha: 10.578,
        s: 0.606,
        beta: 11.669,
    };

    fn h(x: f64, t_x: f64, t: f64) -> History {
        History { x, t_x, t }
    }

    /// The likelihood integrated directly over λ and μ, without 2F1: for given
    /// (λ, μ), L = λ^x e^(−(λ+μ)T) + λ^x μ ∫_{t_x}^T e^(−(λ+μ)τ) dτ; integrating λ
    /// and μ against their gammas first leaves a one-dimensional integral over τ.
    fn ll_by_quadrature(p: &ParetoNbdParams, hh: &History) -> f64 {
        let k = p.r + hh.x;
        let c = (ln_gamma(k) - ln_gamma(p.r)).exp() * p.alpha.powf(p.r) * p.beta.powf(p.s);
        let alive = (p.alpha + hh.t).powf(-k) * (p.beta + hh.t).powf(-p.s);
        let died = integrate(
            |tau| p.s * (p.alpha + tau).powf(-k) * (p.beta + tau).powf(-p.s - 1.0),
            hh.t_x,
            hh.t,
            100,
        );
        (c * (alive + died)).ln()
    }

    #[test]
    fn likelihood_matches_quadrature_on_both_branches() {
        let other = ParetoNbdParams {
            r: 2.0,
            alpha: 3.0,
            s: 1.7,
            beta: 25.0,
        };
        let flipped = ParetoNbdParams {
            alpha: 30.0,
            beta: 2.0,
            ..other
        };
        for p in [CDNOW, other, flipped] {
            for hh in [h(0.0, 0.0, 38.86), h(2.0, 30.43, 38.86), h(9.0, 12.0, 70.0)] {
                let got = p.log_likelihood(&hh);
                let want = ll_by_quadrature(&p, &hh);
                assert!((got - want).abs() < 1e-9, "{p:?} {hh:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn p_no_purchase_and_expectation_match_quadrature() {
        // P(no purchase) by integrating the purchase density over u directly.
        let p = CDNOW;
        for hh in [h(0.0, 0.0, 38.86), h(2.0, 30.43, 38.86), h(9.0, 12.0, 70.0)] {
            let t = 52.0;
            let k = p.r + hh.x;
            let (a, b) = (p.alpha + hh.t, p.beta + hh.t);
            let dens = integrate(
                |u| k / a * (a / (a + u)).powf(k + 1.0) * (b / (b + u)).powf(p.s),
                0.0,
                t,
                100,
            );
            let want = 1.0 - p.p_alive(&hh) * dens;
            assert!((p.p_no_purchase(&hh, t) - want).abs() < 1e-10);
            // E[Y(t)] = P(alive) E[λ] ∫_0^t E[e^(−μu)] du
            let ey = p.p_alive(&hh) * k / a * integrate(|u| (b / (b + u)).powf(p.s), 0.0, t, 100);
            let got = p.expected_purchases(&hh, t);
            assert!((got - ey).abs() < 1e-10 * ey, "{got} vs {ey}");
        }
        // With α = β the 2F1 argument is 0 and, for x = 0,
        // P(alive) = 1 / (1 + s/(r+s) [((α+T)/α)^(r+s) − 1]).
        let eq = ParetoNbdParams {
            r: 0.8,
            alpha: 5.0,
            s: 0.9,
            beta: 5.0,
        };
        let hh = h(0.0, 0.0, 20.0);
        let want = 1.0 / (1.0 + eq.s / (eq.r + eq.s) * ((25.0f64 / 5.0).powf(eq.r + eq.s) - 1.0));
        assert!((eq.p_alive(&hh) - want).abs() < 1e-12);
    }
}
