//! BG/NBD (Fader, Hardie & Lee 2005) and its modified form MBG/NBD (Batislam,
//! Denizel & Filiztekin 2007).
//!
//! While active a customer buys at Poisson rate λ ~ Gamma(r, α) (shape r, rate α).
//! BG/NBD: after each purchase the customer becomes inactive with probability
//! p ~ Beta(a, b). MBG/NBD: the same, and also possibly at time 0, right after the
//! first purchase.

use crate::history::{GroupedHistories, History};
use crate::optim::minimize_smooth;
use crate::special::{digamma, ln_gamma, log_add_exp};
use serde::Serialize;

/// Which of the two dropout processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Dropout {
    /// Dropout only after a repeat purchase (BG/NBD).
    AfterRepeat,
    /// Dropout also right after the first purchase (MBG/NBD).
    AlsoAtStart,
}

/// Parameters of a BG/NBD or MBG/NBD model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BgNbdParams {
    /// Shape of the purchase-rate gamma.
    pub r: f64,
    /// Rate (inverse scale) of the purchase-rate gamma, in the time unit of the data.
    pub alpha: f64,
    /// First beta parameter of the dropout probability.
    pub a: f64,
    /// Second beta parameter of the dropout probability.
    pub b: f64,
    /// BG/NBD or MBG/NBD.
    #[serde(skip)]
    pub dropout: Dropout,
}

impl BgNbdParams {
    /// BG/NBD parameters.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        BgNbdParams {
            r,
            alpha,
            a,
            b,
            dropout: Dropout::AfterRepeat,
        }
    }

    /// MBG/NBD parameters.
    pub fn modified(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        BgNbdParams {
            dropout: Dropout::AlsoAtStart,
            ..Self::new(r, alpha, a, b)
        }
    }

    /// Terms of the log-likelihood that depend on x only: ln of
    /// Γ(r+x) α^r / Γ(r) · B(a, b+x+δ) / B(a, b) and the weight a/(b+x−1+δ) of the
    /// "dropped out after the last purchase" branch (δ = 1 for MBG/NBD; 0 for x = 0 in
    /// BG/NBD, where that branch does not exist).
    fn per_x(&self, x: f64) -> (f64, f64) {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let d = match self.dropout {
            Dropout::AfterRepeat => 0.0,
            Dropout::AlsoAtStart => 1.0,
        };
        let c =
            ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) + ln_gamma(b + x + d)
                - ln_gamma(b)
                - ln_gamma(a + b + x + d);
        let branch = if x > 0.0 || d > 0.0 {
            (a / (b + x - 1.0 + d)).ln()
        } else {
            f64::NEG_INFINITY
        };
        (c, branch)
    }

    /// Log-likelihood of one customer's history.
    pub fn log_likelihood(&self, h: &History) -> f64 {
        let (c, branch) = self.per_x(h.x);
        self.ll_with(c, branch, h)
    }

    fn ll_with(&self, c: f64, branch: f64, h: &History) -> f64 {
        let k = self.r + h.x;
        c + log_add_exp(
            -k * (self.alpha + h.t).ln(),
            branch - k * (self.alpha + h.t_x).ln(),
        )
    }

    /// Log-likelihood of all customers.
    pub fn total_log_likelihood(&self, data: &GroupedHistories) -> f64 {
        data.weighted_sum(|rows| {
            let mut sum = 0.0;
            let mut cur = (f64::NAN, 0.0, 0.0);
            for (h, w) in rows {
                if h.x != cur.0 {
                    let (c, b) = self.per_x(h.x);
                    cur = (h.x, c, b);
                }
                sum += w * self.ll_with(cur.1, cur.2, h);
            }
            sum
        })
    }

    /// Probability the customer is still active at the end of observation.
    pub fn p_alive(&self, h: &History) -> f64 {
        let (_, branch) = self.per_x(h.x);
        let k = self.r + h.x;
        let odds = branch + k * ((self.alpha + h.t).ln() - (self.alpha + h.t_x).ln());
        1.0 / (1.0 + odds.exp())
    }

    /// Expected purchases in the next `t` time units, E[Y(t) | x, t_x, T].
    ///
    /// FHL (2005) eq. 10: (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x)
    /// 2F1(r+x, b+x; a+b+x−1; t/(α+T+t))] · P(alive), with b+1 in place of b in the
    /// bracket for MBG/NBD. The bracket is evaluated after Euler's transformation,
    /// which makes the removable singularity at a = 1 harmless (see `bracket`).
    pub fn expected_purchases(&self, h: &History, t: f64) -> f64 {
        self.expected_purchases_if_alive(h.x, h.t, t) * self.p_alive(h)
    }

    /// E[Y(t)] of a customer still active at T with x repeat purchases: the
    /// bracket of `expected_purchases`, which depends on (x, T) only.
    pub fn expected_purchases_if_alive(&self, x: f64, big_t: f64, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let b = match self.dropout {
            Dropout::AfterRepeat => self.b,
            Dropout::AlsoAtStart => self.b + 1.0,
        };
        bracket(self.r, self.a, b, x, t / (self.alpha + big_t + t))
    }

    /// Probability of no purchase in the next `t` time units: inactive, or active
    /// and the Poisson clock does not ring, 1 − P(alive) + P(alive)
    /// ((α+T)/(α+T+t))^(r+x) (given activity, λ ~ Gamma(r+x, α+T) a posteriori and
    /// a dropout can only follow a purchase).
    pub fn p_no_purchase(&self, h: &History, t: f64) -> f64 {
        1.0 - self.p_alive(h) * self.p_purchase_if_alive(h.x, h.t, t)
    }

    /// Probability of a purchase in the next `t` units for a customer active at T:
    /// 1 − ((α+T)/(α+T+t))^(r+x).
    pub fn p_purchase_if_alive(&self, x: f64, big_t: f64, t: f64) -> f64 {
        1.0 - ((self.alpha + big_t) / (self.alpha + big_t + t)).powf(self.r + x)
    }

    /// Expected repeat purchases of a new customer in (0, t], E[X(t)].
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

    /// Log-likelihood of all customers and its gradient in (r, α, a, b):
    /// `[ll, ∂r, ∂α, ∂a, ∂b]`.
    ///
    /// Per customer, ll = c(x) + ln(e^A + e^B) with A = −(r+x) ln(α+T) and
    /// B = ln(a/(b+x−1+δ)) − (r+x) ln(α+t_x); with w = e^B/(e^A+e^B) the share of the
    /// "dropped out after the last purchase" branch,
    /// ∂r = ψ(r+x) − ψ(r) + ln α − (1−w) ln(α+T) − w ln(α+t_x),
    /// ∂α = r/α − (r+x) ((1−w)/(α+T) + w/(α+t_x)),
    /// ∂a = ψ(a+b) − ψ(a+b+x+δ) + w/a,
    /// ∂b = ψ(a+b) + ψ(b+x+δ) − ψ(b) − ψ(a+b+x+δ) − w/(b+x−1+δ).
    pub fn log_likelihood_gradient(&self, data: &GroupedHistories) -> [f64; 5] {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let d = match self.dropout {
            Dropout::AfterRepeat => 0.0,
            Dropout::AlsoAtStart => 1.0,
        };
        let (psi_r, psi_ab, psi_b, ln_alpha) = (digamma(r), digamma(a + b), digamma(b), alpha.ln());
        // ln(α+t) and 1/(α+t) once per distinct time.
        let ln_at: Vec<f64> = data.times.iter().map(|t| (alpha + t).ln()).collect();
        let inv_at: Vec<f64> = data.times.iter().map(|t| 1.0 / (alpha + t)).collect();
        data.weighted_sums(|rows, slots| {
            let mut acc = [0.0; 5];
            // Per-x terms: (x, c, branch, ∂c/∂r, ∂c/∂a, ∂c/∂b, 1/(b+x−1+δ)).
            let mut cur = (f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            for ((h, wt), &(sx, st)) in rows.iter().zip(slots) {
                if h.x != cur.0 {
                    let (c, branch) = self.per_x(h.x);
                    let psi_abx = digamma(a + b + h.x + d);
                    cur = (
                        h.x,
                        c,
                        branch,
                        digamma(r + h.x) - psi_r + ln_alpha,
                        psi_ab - psi_abx,
                        psi_ab + digamma(b + h.x + d) - psi_b - psi_abx,
                        1.0 / (b + h.x - 1.0 + d),
                    );
                }
                let (_, c, branch, dc_r, dc_a, dc_b, inv) = cur;
                let k = r + h.x;
                let (lt, ltx) = (ln_at[st as usize], ln_at[sx as usize]);
                let big_a = -k * lt;
                let big_b = branch - k * ltx;
                // ln(e^A + e^B) and w = e^B / (e^A + e^B) from one exp.
                let (lse, w) = if branch == f64::NEG_INFINITY {
                    (big_a, 0.0)
                } else {
                    let e = (-(big_a - big_b).abs()).exp();
                    let share = 1.0 / (1.0 + e);
                    (
                        big_a.max(big_b) + e.ln_1p(),
                        if big_b >= big_a { share } else { e * share },
                    )
                };
                acc[0] += wt * (c + lse);
                acc[1] += wt * (dc_r - (1.0 - w) * lt - w * ltx);
                acc[2] += wt
                    * (r / alpha - k * ((1.0 - w) * inv_at[st as usize] + w * inv_at[sx as usize]));
                acc[3] += wt * (dc_a + w / a);
                // w = 0 when the branch does not exist (x = 0 in BG/NBD, where
                // 1/(b+x−1) may be infinite).
                acc[4] += wt * (dc_b - if w > 0.0 { w * inv } else { 0.0 });
            }
            acc
        })
    }

    /// Maximum-likelihood fit: BFGS over log-parameters with the analytic gradient,
    /// from three starting points.
    pub fn fit(data: &GroupedHistories, dropout: Dropout) -> Fit<BgNbdParams> {
        let make = |p: &[f64]| BgNbdParams {
            r: p[0].exp(),
            alpha: p[1].exp(),
            a: p[2].exp(),
            b: p[3].exp(),
            dropout,
        };
        let fg = |p: &[f64], g: &mut [f64]| {
            let m = make(p);
            let v = m.log_likelihood_gradient(data);
            for (i, scale) in [m.r, m.alpha, m.a, m.b].into_iter().enumerate() {
                g[i] = -v[i + 1] * scale;
            }
            -v[0]
        };
        let mean_t = mean_age(data).max(1e-9).ln();
        let starts = vec![
            vec![0.0, mean_t, 0.0, 0.0],
            vec![-1.0, mean_t - 1.0, -0.5, 1.0],
            vec![0.5, mean_t + 1.0, 1.0, 2.0],
        ];
        let m = minimize_smooth(&fg, &starts);
        Fit {
            params: make(&m.x),
            log_likelihood: -m.value,
            evaluations: m.evaluations,
        }
    }
}

/// (a+b+x−1)/(a−1) · [1 − (1−z)^(r+x) 2F1(r+x, b+x; a+b+x−1; z)].
///
/// Euler's transformation turns (1−z)^(r+x) 2F1(r+x, b+x; c; z) into
/// (1−z)^(a−1) 2F1(u, a−1; c; z) with c = a+b+x−1, u = a+b−1−r. Writing that 2F1 as
/// 1 + (a−1) S, S = Σ_{n≥1} (u)_n (a)_{n−1} / ((c)_n n!) z^n, the bracket divided by
/// (a−1) is [1 − (1−z)^(a−1)]/(a−1) − (1−z)^(a−1) S, finite at a = 1.
fn bracket(r: f64, a: f64, b: f64, x: f64, z: f64) -> f64 {
    let c = a + b + x - 1.0;
    let u = a + b - 1.0 - r;
    let l = (-z).ln_1p();
    let e = a - 1.0;
    let g = if e.abs() < 1e-12 {
        -l
    } else {
        -(e * l).exp_m1() / e
    };
    let mut term = u / c * z;
    let mut s = term;
    for n in 1..200_000 {
        let nf = n as f64;
        let ratio = (u + nf) * (a + nf - 1.0) / ((c + nf) * (nf + 1.0)) * z;
        term *= ratio;
        s += term;
        if term == 0.0 || (ratio.abs() < 1.0 && term.abs() <= 1e-17 * s.abs()) {
            break;
        }
    }
    c * (g - (e * l).exp() * s)
}

/// Mean age T over all customers.
pub(crate) fn mean_age(data: &GroupedHistories) -> f64 {
    let (s, n) = data
        .rows
        .iter()
        .fold((0.0, 0.0), |(s, n), (h, w)| (s + w * h.t, n + w));
    if n > 0.0 {
        s / n
    } else {
        1.0
    }
}

/// Fitted parameters with their log-likelihood.
#[derive(Debug, Clone, Serialize)]
pub struct Fit<P> {
    /// Maximum-likelihood parameters.
    pub params: P,
    /// Log-likelihood at `params`.
    pub log_likelihood: f64,
    /// Likelihood evaluations the optimiser used.
    pub evaluations: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::{hyp2f1, integrate};

    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
        dropout: Dropout::AfterRepeat,
    };

    fn h(x: f64, t_x: f64, t: f64) -> History {
        History { x, t_x, t }
    }

    /// The paper's closed form with 2F1 directly (valid away from a = 1).
    fn expected_direct(p: &BgNbdParams, hh: &History, t: f64) -> f64 {
        let (r, al, a, b) = (p.r, p.alpha, p.a, p.b);
        let z = t / (al + hh.t + t);
        let f = hyp2f1(r + hh.x, b + hh.x, a + b + hh.x - 1.0, z);
        (a + b + hh.x - 1.0) / (a - 1.0)
            * (1.0 - ((al + hh.t) / (al + hh.t + t)).powf(r + hh.x) * f)
            * p.p_alive(hh)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = GroupedHistories::new(&[
            h(0.0, 0.0, 30.0),
            h(0.0, 0.0, 12.5),
            h(2.0, 30.43, 38.86),
            h(5.0, 10.0, 38.0),
            h(5.0, 36.0, 38.0),
            h(1.0, 0.5, 2.0),
        ]);
        for base in [CDNOW, BgNbdParams::modified(1.3, 12.0, 1.0, 0.4)] {
            let g = base.log_likelihood_gradient(&data);
            assert!((g[0] - base.total_log_likelihood(&data)).abs() < 1e-9 * g[0].abs());
            for i in 0..4 {
                let at = |e: f64| {
                    let mut v = [base.r, base.alpha, base.a, base.b];
                    v[i] *= 1.0 + e;
                    BgNbdParams {
                        r: v[0],
                        alpha: v[1],
                        a: v[2],
                        b: v[3],
                        ..base
                    }
                    .total_log_likelihood(&data)
                };
                let step = 1e-6 * [base.r, base.alpha, base.a, base.b][i];
                let numeric = (at(1e-6) - at(-1e-6)) / (2.0 * step);
                assert!(
                    (g[i + 1] - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
                    "parameter {i}: {} vs {numeric}",
                    g[i + 1]
                );
            }
        }
    }

    #[test]
    fn stable_bracket_equals_the_papers_formula() {
        for hh in [h(0.0, 0.0, 38.86), h(2.0, 30.43, 38.86), h(7.0, 35.0, 38.0)] {
            for t in [1.0, 39.0, 78.0, 300.0] {
                let got = CDNOW.expected_purchases(&hh, t);
                let want = expected_direct(&CDNOW, &hh, t);
                assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
            }
        }
        // continuity across a = 1
        let p = |a| BgNbdParams::new(0.5, 3.0, a, 2.0);
        let e = |a| p(a).expected_purchases(&h(3.0, 20.0, 30.0), 52.0);
        assert!((e(1.0) - 0.5 * (e(1.0 - 1e-7) + e(1.0 + 1e-7))).abs() < 1e-6);
    }

    /// P(alive) and E[Y(t)|history] by direct integration over the posterior of λ
    /// and p: given (λ, p) and activity at T, dropouts come at rate λp, so the
    /// expected purchases in t are ∫_0^t λ e^(−λpu) du = (1 − e^(−λpt))/p.
    #[test]
    fn expected_purchases_match_numerical_integration() {
        let p = CDNOW;
        for hh in [h(0.0, 0.0, 30.0), h(2.0, 30.43, 38.86), h(5.0, 10.0, 38.0)] {
            let t = 39.0;
            // Posterior over (λ, p) ∝ λ^(r+x−1) e^(−λα) p^(a−1) (1−p)^(b−1) ×
            //   [(1−p)^x λ^x e^(−λT) + δ p (1−p)^(x−1) λ^x e^(−λ t_x)] (λ^x folded).
            let joint = |lam: f64, q: f64, alive_only: bool| {
                let prior = lam.powf(p.r - 1.0)
                    * (-lam * p.alpha).exp()
                    * q.powf(p.a - 1.0)
                    * (1.0 - q).powf(p.b - 1.0);
                let alive = (1.0 - q).powf(hh.x) * lam.powf(hh.x) * (-lam * hh.t).exp();
                let dead = if hh.x > 0.0 && !alive_only {
                    q * (1.0 - q).powf(hh.x - 1.0) * lam.powf(hh.x) * (-lam * hh.t_x).exp()
                } else {
                    0.0
                };
                prior * (alive + dead)
            };
            // substitutions λ = (u/(1−u))^(1/r), p = v^(1/a) remove the prior's
            // singularities at 0, so the quadrature sees smooth integrands
            let (mr, ma) = (1.0 / p.r, 1.0 / p.a);
            let outer = |g: &dyn Fn(f64, f64) -> f64| {
                integrate(
                    |u| {
                        let s = u / (1.0 - u);
                        let lam = s.powf(mr);
                        let jac = mr * s.powf(mr - 1.0) / ((1.0 - u) * (1.0 - u));
                        let inner =
                            integrate(|v| g(lam, v.powf(ma)) * ma * v.powf(ma - 1.0), 0.0, 1.0, 10);
                        if jac.is_finite() && inner.is_finite() {
                            inner * jac
                        } else {
                            0.0
                        }
                    },
                    0.0,
                    1.0,
                    60,
                )
            };
            let z = outer(&|l, q| joint(l, q, false));
            let alive = outer(&|l, q| joint(l, q, true));
            let ey = outer(&|l, q| joint(l, q, true) * (1.0 - (-l * q * t).exp()) / q);
            let pa = alive / z;
            assert!(
                (p.p_alive(&hh) - pa).abs() < 2e-4,
                "{} vs {pa}",
                p.p_alive(&hh)
            );
            let want = ey / z;
            let got = p.expected_purchases(&hh, t);
            assert!((got - want).abs() < 2e-3 * want, "{got} vs {want}");
        }
    }
}
