//! Customer lifetime value: a purchase model (BG/NBD, MBG/NBD or Pareto/NBD) times a
//! spend model (Gamma-Gamma), discounted month by month; per-customer scoring and the
//! calibration/holdout comparison.

use crate::bgnbd::{BgNbdParams, Dropout, Fit};
use crate::gammagamma::{GammaGammaParams, Spend};
use crate::history::{GroupedHistories, History};
use crate::paretonbd::ParetoNbdParams;
use crate::transactions::{CalibrationHistory, TimeUnit};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// The purchase models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// BG/NBD.
    BgNbd,
    /// MBG/NBD.
    MbgNbd,
    /// Pareto/NBD.
    ParetoNbd,
}

/// A fitted purchase model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PurchaseModel {
    /// BG/NBD or MBG/NBD.
    BgNbd(BgNbdParams),
    /// Pareto/NBD.
    ParetoNbd(ParetoNbdParams),
}

impl PurchaseModel {
    /// Maximum-likelihood fit of the chosen model.
    pub fn fit(kind: ModelKind, data: &GroupedHistories) -> Fit<PurchaseModel> {
        match kind {
            ModelKind::BgNbd | ModelKind::MbgNbd => {
                let d = if kind == ModelKind::BgNbd {
                    Dropout::AfterRepeat
                } else {
                    Dropout::AlsoAtStart
                };
                let f = BgNbdParams::fit(data, d);
                Fit {
                    params: PurchaseModel::BgNbd(f.params),
                    log_likelihood: f.log_likelihood,
                    evaluations: f.evaluations,
                }
            }
            ModelKind::ParetoNbd => {
                let f = ParetoNbdParams::fit(data);
                Fit {
                    params: PurchaseModel::ParetoNbd(f.params),
                    log_likelihood: f.log_likelihood,
                    evaluations: f.evaluations,
                }
            }
        }
    }

    /// Probability the customer is still active.
    pub fn p_alive(&self, h: &History) -> f64 {
        match self {
            PurchaseModel::BgNbd(p) => p.p_alive(h),
            PurchaseModel::ParetoNbd(p) => p.p_alive(h),
        }
    }

    /// Expected purchases in the next `t` units.
    pub fn expected_purchases(&self, h: &History, t: f64) -> f64 {
        match self {
            PurchaseModel::BgNbd(p) => p.expected_purchases(h, t),
            PurchaseModel::ParetoNbd(p) => p.expected_purchases(h, t),
        }
    }

    /// Probability of no purchase in the next `t` units.
    pub fn p_no_purchase(&self, h: &History, t: f64) -> f64 {
        match self {
            PurchaseModel::BgNbd(p) => p.p_no_purchase(h, t),
            PurchaseModel::ParetoNbd(p) => p.p_no_purchase(h, t),
        }
    }

    /// For a customer active at T with x repeat purchases: expected purchases and the
    /// probability of at least one purchase in the next `t` units. Both models factor
    /// as E[Y(t)] = P(alive) × the first, P(no purchase) = 1 − P(alive) × the second.
    pub fn if_alive(&self, x: f64, big_t: f64, t: f64) -> (f64, f64) {
        match self {
            PurchaseModel::BgNbd(p) => (
                p.expected_purchases_if_alive(x, big_t, t),
                p.p_purchase_if_alive(x, big_t, t),
            ),
            PurchaseModel::ParetoNbd(p) => (
                p.expected_purchases_if_alive(x, big_t, t),
                p.p_purchase_if_alive(x, big_t, t),
            ),
        }
    }

    /// Log-likelihood over all customers.
    pub fn total_log_likelihood(&self, data: &GroupedHistories) -> f64 {
        match self {
            PurchaseModel::BgNbd(p) => p.total_log_likelihood(data),
            PurchaseModel::ParetoNbd(p) => p.total_log_likelihood(data),
        }
    }
}

/// Horizon and discounting of CLV.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClvSettings {
    /// Months ahead.
    pub horizon_months: u32,
    /// Discount rate per month (0.01 = 1%).
    pub monthly_discount: f64,
    /// Time unit the histories are in.
    pub unit: TimeUnit,
}

impl ClvSettings {
    /// The horizon in time units.
    pub fn horizon(&self) -> f64 {
        f64::from(self.horizon_months) * self.unit.per_month()
    }
}

/// Discounted CLV over the horizon:
/// Σ_{m=1..H} (E[Y(m·f)] − E[Y((m−1)·f)]) · spend / (1+d)^m, with f the units per
/// month (30 days or 4.345 weeks) — the formula of `lifetimes`'
/// `customer_lifetime_value`.
pub fn discounted_clv(model: &PurchaseModel, h: &History, spend: f64, s: &ClvSettings) -> f64 {
    model.p_alive(h) * discounted_purchases_if_alive(model, h.x, h.t, s) * spend
}

/// Σ_{m=1..H} (E[Y(m·f)] − E[Y((m−1)·f)]) / (1+d)^m for a customer active at T with
/// x repeat purchases; `discounted_clv` is this × P(alive) × spend.
pub fn discounted_purchases_if_alive(
    model: &PurchaseModel,
    x: f64,
    big_t: f64,
    s: &ClvSettings,
) -> f64 {
    let f = s.unit.per_month();
    let mut prev = 0.0;
    let mut sum = 0.0;
    for m in 1..=s.horizon_months {
        let e = model.if_alive(x, big_t, f64::from(m) * f).0;
        sum += (e - prev) / (1.0 + s.monthly_discount).powi(m as i32);
        prev = e;
    }
    sum
}

/// Model outputs for one customer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Probability of being active.
    pub p_alive: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Probability of no purchase over the horizon.
    pub p_no_purchase: f64,
    /// Expected mean spend per transaction.
    pub expected_spend: f64,
    /// Discounted CLV over the horizon.
    pub clv: f64,
}

/// Scores every customer, in parallel. Expected purchases, P(no purchase) and CLV
/// are P(alive) times factors that depend on (x, T) only; those factors are
/// computed once per distinct (x, T) and shared.
pub fn predict(
    model: &PurchaseModel,
    spend: &GammaGammaParams,
    customers: &[(History, Spend)],
    s: &ClvSettings,
) -> Vec<Prediction> {
    let horizon = s.horizon();
    // The factors given activity depend on (x, T) only: computed once per pair.
    let mut pair_index: HashMap<(u64, u64), usize> = HashMap::new();
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    let slots: Vec<usize> = customers
        .iter()
        .map(|(h, _)| {
            *pair_index
                .entry((h.x.to_bits(), h.t.to_bits()))
                .or_insert_with(|| {
                    pairs.push((h.x, h.t));
                    pairs.len() - 1
                })
        })
        .collect();
    // (E[purchases | alive], P(purchase | alive), discounted purchases | alive)
    let per_pair: Vec<(f64, f64, f64)> = pairs
        .par_iter()
        .map(|&(x, big_t)| {
            let (expected, p_purchase) = model.if_alive(x, big_t, horizon);
            (
                expected,
                p_purchase,
                discounted_purchases_if_alive(model, x, big_t, s),
            )
        })
        .collect();
    customers
        .par_iter()
        .zip(slots.par_iter())
        .map(|((h, sp), &slot)| {
            let (expected, p_purchase, discounted) = per_pair[slot];
            let p_alive = model.p_alive(h);
            let expected_spend = spend.expected_spend(sp);
            Prediction {
                p_alive,
                expected_purchases: p_alive * expected,
                p_no_purchase: 1.0 - p_alive * p_purchase,
                expected_spend,
                clv: p_alive * discounted * expected_spend,
            }
        })
        .collect()
}

/// One line of the calibration/holdout comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldoutRow {
    /// Calibration repeat purchases ("0" … "6", "7+").
    pub frequency: String,
    /// Customers in the group.
    pub customers: usize,
    /// Mean actual holdout purchases.
    pub actual: f64,
    /// Mean expected holdout purchases.
    pub expected: f64,
}

/// Expected against actual mean holdout purchases by calibration frequency
/// (0, 1, …, 6, 7+), plus an "all" line; `holdout` is the holdout length in units.
pub fn holdout_table(
    model: &PurchaseModel,
    customers: &[CalibrationHistory],
    holdout: f64,
) -> Vec<HoldoutRow> {
    let expected: Vec<f64> = customers
        .par_iter()
        .map(|c| model.expected_purchases(&c.history, holdout))
        .collect();
    let mut acc = [(0usize, 0.0f64, 0.0f64); 8];
    for (c, e) in customers.iter().zip(&expected) {
        let g = (c.history.x as usize).min(7);
        acc[g].0 += 1;
        acc[g].1 += f64::from(c.holdout_purchases);
        acc[g].2 += e;
    }
    let mut rows: Vec<HoldoutRow> = acc
        .iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(i, a)| HoldoutRow {
            frequency: if i == 7 { "7+".into() } else { i.to_string() },
            customers: a.0,
            actual: a.1 / a.0 as f64,
            expected: a.2 / a.0 as f64,
        })
        .collect();
    let n: usize = acc.iter().map(|a| a.0).sum();
    if n > 0 {
        rows.push(HoldoutRow {
            frequency: "all".into(),
            customers: n,
            actual: acc.iter().map(|a| a.1).sum::<f64>() / n as f64,
            expected: acc.iter().map(|a| a.2).sum::<f64>() / n as f64,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clv_discounts_monthly_increments() {
        let model = PurchaseModel::BgNbd(BgNbdParams::new(0.243, 4.414, 0.793, 2.426));
        let h = History {
            x: 2.0,
            t_x: 30.43,
            t: 38.86,
        };
        let s = ClvSettings {
            horizon_months: 12,
            monthly_discount: 0.01,
            unit: TimeUnit::Weeks,
        };
        // Undiscounted, the increments telescope to E[Y(12 months)] × spend.
        let flat = ClvSettings {
            monthly_discount: 0.0,
            ..s
        };
        let e = model.expected_purchases(&h, 12.0 * 4.345);
        assert!((discounted_clv(&model, &h, 50.0, &flat) - 50.0 * e).abs() < 1e-9);
        // Discounting at 1% a month: between the value of all purchases at month 12
        // and at month 1.
        let d = discounted_clv(&model, &h, 50.0, &s);
        assert!(d < 50.0 * e / 1.01 && d > 50.0 * e / 1.01f64.powi(12));
        // A naive recomputation of the sum.
        let naive: f64 = (1..=12)
            .map(|m| {
                let a = model.expected_purchases(&h, m as f64 * 4.345);
                let b = model.expected_purchases(&h, (m - 1) as f64 * 4.345);
                (a - b) * 50.0 / 1.01f64.powi(m)
            })
            .sum();
        assert!((d - naive).abs() < 1e-12);
    }

    #[test]
    fn shared_factors_give_the_direct_per_customer_values() {
        let h = |x, t_x, t| History { x, t_x, t };
        let customers: Vec<(History, Spend)> = [
            (h(0.0, 0.0, 40.0), 0.0),
            (h(2.0, 30.0, 40.0), 20.0),
            (h(2.0, 10.0, 40.0), 35.0),
            (h(2.0, 30.0, 40.0), 5.0),
            (h(6.0, 12.0, 13.0), 80.0),
        ]
        .iter()
        .map(|&(hh, mean)| (hh, Spend { x: hh.x, mean }))
        .collect();
        let spend = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let s = ClvSettings {
            horizon_months: 6,
            monthly_discount: 0.02,
            unit: TimeUnit::Weeks,
        };
        for model in [
            PurchaseModel::BgNbd(BgNbdParams::new(0.243, 4.414, 0.793, 2.426)),
            PurchaseModel::ParetoNbd(ParetoNbdParams {
                r: 0.55,
                alpha: 10.58,
                s: 0.61,
                beta: 11.67,
            }),
        ] {
            let got = predict(&model, &spend, &customers, &s);
            for ((hh, sp), p) in customers.iter().zip(&got) {
                let es = spend.expected_spend(sp);
                let naive_clv: f64 = (1..=6)
                    .map(|m| {
                        let a = model.expected_purchases(hh, m as f64 * 4.345);
                        let b = model.expected_purchases(hh, (m - 1) as f64 * 4.345);
                        (a - b) * es / 1.02f64.powi(m)
                    })
                    .sum();
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
                assert!(close(p.p_alive, model.p_alive(hh)));
                assert!(close(
                    p.expected_purchases,
                    model.expected_purchases(hh, s.horizon())
                ));
                assert!(close(p.p_no_purchase, model.p_no_purchase(hh, s.horizon())));
                assert!(close(p.clv, naive_clv), "{} vs {naive_clv}", p.clv);
            }
        }
    }
}
