//! From transaction rows to one summary per customer.
//!
//! Conventions: rows of the same customer on the same day are one transaction (their
//! amounts add up); rows after the as-of date are ignored; frequency counts repeat
//! transactions (all transactions but the first), as in the BTYD literature.
//! For the customer-base models, recency `t_x` is the time from the first to the
//! last transaction and age `T` the time from the first transaction to the end of
//! the calibration period, in days or weeks (= days / 7); the monetary value is the
//! mean of the repeat transactions (the first purchase excluded, as in `lifetimes`).
//! Amounts must be positive: a non-positive amount is an error naming its row, or,
//! when asked, the row is dropped and counted.

use crate::gammagamma::Spend;
use crate::history::History;
use crmcube_model::{Error, Result};
use std::collections::HashMap;

/// One purchase row.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Customer identifier.
    pub customer: String,
    /// Day number (days since 1970-01-01).
    pub day: i32,
    /// Amount spent.
    pub amount: f64,
}

/// A customer's purchase history summarised at an as-of day.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSummary {
    /// Customer identifier.
    pub customer: String,
    /// Day of the first transaction.
    pub first_day: i32,
    /// Day of the last transaction.
    pub last_day: i32,
    /// Number of transactions (distinct purchase days).
    pub transactions: u32,
    /// Total amount.
    pub monetary_total: f64,
}

impl CustomerSummary {
    /// Repeat transactions (transactions − 1).
    pub fn frequency(&self) -> u32 {
        self.transactions.saturating_sub(1)
    }
    /// Days since the last transaction at `as_of`.
    pub fn recency_days(&self, as_of: i32) -> i32 {
        as_of - self.last_day
    }
    /// Average amount per transaction.
    pub fn monetary_mean(&self) -> f64 {
        self.monetary_total / f64::from(self.transactions.max(1))
    }
}

/// Summarises transactions up to and including `as_of`; result sorted by customer.
pub fn summarize(rows: &[Transaction], as_of: i32) -> Vec<CustomerSummary> {
    let mut by_customer: HashMap<&str, Vec<(i32, f64)>> = HashMap::new();
    for t in rows.iter().filter(|t| t.day <= as_of) {
        by_customer
            .entry(&t.customer)
            .or_default()
            .push((t.day, t.amount));
    }
    let mut out: Vec<CustomerSummary> = by_customer
        .into_iter()
        .map(|(customer, mut days)| {
            days.sort_by_key(|d| d.0);
            let mut transactions = 0;
            let mut prev = None;
            for (d, _) in &days {
                if prev != Some(*d) {
                    transactions += 1;
                    prev = Some(*d);
                }
            }
            CustomerSummary {
                customer: customer.to_string(),
                first_day: days[0].0,
                last_day: days[days.len() - 1].0,
                transactions,
                monetary_total: days.iter().map(|d| d.1).sum(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.customer.cmp(&b.customer));
    out
}

/// Time unit of recency, age and horizons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Days.
    Days,
    /// Weeks of 7 days.
    Weeks,
}

impl TimeUnit {
    /// Days per unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }
    /// Units per month in CLV discounting: 30 days or 4.345 weeks (the `lifetimes`
    /// package's factors, so results compare).
    pub fn per_month(self) -> f64 {
        match self {
            TimeUnit::Days => 30.0,
            TimeUnit::Weeks => 4.345,
        }
    }
}

/// What to do with amounts ≤ 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPositiveAmounts {
    /// Stop with an error naming the first such row.
    Reject,
    /// Drop such rows and count them.
    Exclude,
}

/// The error for a non-positive amount in data row `row` (1-based) of `origin`.
pub fn non_positive_amount(
    origin: &str,
    row: usize,
    amount_column: &str,
    amount: f64,
    customer: &str,
) -> Error {
    Error::Data(format!(
        "{origin}: data row {row}, column `{amount_column}`: amount {amount} is not positive \
         (customer `{customer}`); amounts must be > 0 — fix the row or pass \
         --exclude-nonpositive to drop such rows"
    ))
}

/// Applies the amount policy to `rows`, whose `i`-th element is data row `i + 1` of
/// `origin`; returns the kept rows and how many were dropped.
pub fn check_amounts(
    rows: Vec<Transaction>,
    policy: NonPositiveAmounts,
    origin: &str,
    amount_column: &str,
) -> Result<(Vec<Transaction>, usize)> {
    let bad = |t: &Transaction| !(t.amount > 0.0 && t.amount.is_finite());
    if policy == NonPositiveAmounts::Reject {
        if let Some((i, t)) = rows.iter().enumerate().find(|(_, t)| bad(t)) {
            return Err(non_positive_amount(
                origin,
                i + 1,
                amount_column,
                t.amount,
                &t.customer,
            ));
        }
        return Ok((rows, 0));
    }
    let before = rows.len();
    let kept: Vec<Transaction> = rows.into_iter().filter(|t| !bad(t)).collect();
    let dropped = before - kept.len();
    Ok((kept, dropped))
}

/// A customer's calibration-period history for the customer-base models, with the
/// holdout purchases that followed.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationHistory {
    /// Customer identifier.
    pub customer: String,
    /// Repeat purchases, recency and age in the chosen unit.
    pub history: History,
    /// Repeat purchases and their mean amount (0 without repeat purchases).
    pub spend: Spend,
    /// Transactions (distinct purchase days) in the holdout period.
    pub holdout_purchases: u32,
    /// Day of the purchase before the last one in the calibration period.
    pub previous_day: Option<i32>,
    /// Summary of the calibration period.
    pub summary: CustomerSummary,
}

/// Histories of every customer whose first purchase is on or before
/// `calibration_end`, with purchases in (`calibration_end`, `holdout_end`] counted as
/// holdout purchases; sorted by customer.
pub fn calibration_histories(
    rows: &[Transaction],
    calibration_end: i32,
    holdout_end: Option<i32>,
    unit: TimeUnit,
) -> Vec<CalibrationHistory> {
    // Rows ordered by customer and day (a stable sort keeps same-day rows in file
    // order, so merged amounts add up in the same order every run); the sort is
    // skipped when the rows already come in that order.
    fn key(t: &Transaction) -> (&str, i32) {
        (t.customer.as_str(), t.day)
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    if !rows.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        use rayon::slice::ParallelSliceMut;
        order.par_sort_by(|&a, &b| key(&rows[a]).cmp(&key(&rows[b])));
    }
    let u = unit.days();
    let mut out = Vec::new();
    let mut merged: Vec<(i32, f64)> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let customer = rows[order[start]].customer.as_str();
        let mut end = start;
        merged.clear();
        while end < order.len() && rows[order[end]].customer == customer {
            let t = &rows[order[end]];
            match merged.last_mut() {
                Some(last) if last.0 == t.day => last.1 += t.amount,
                _ => merged.push((t.day, t.amount)),
            }
            end += 1;
        }
        start = end;
        let cal = merged.partition_point(|d| d.0 <= calibration_end);
        if cal == 0 {
            continue;
        }
        let (first, last) = (merged[0], merged[cal - 1]);
        let holdout = match holdout_end {
            Some(h) => merged[cal..].iter().filter(|d| d.0 <= h).count() as u32,
            None => 0,
        };
        let total: f64 = merged[..cal].iter().map(|d| d.1).sum();
        let x = (cal - 1) as f64;
        out.push(CalibrationHistory {
            customer: customer.to_string(),
            history: History {
                x,
                t_x: f64::from(last.0 - first.0) / u,
                t: f64::from(calibration_end - first.0) / u,
            },
            spend: Spend {
                x,
                mean: if x > 0.0 { (total - first.1) / x } else { 0.0 },
            },
            holdout_purchases: holdout,
            previous_day: cal.checked_sub(2).map(|i| merged[i].0),
            summary: CustomerSummary {
                customer: customer.to_string(),
                first_day: first.0,
                last_day: last.0,
                transactions: cal as u32,
                monetary_total: total,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(c: &str, day: i32, amount: f64) -> Transaction {
        Transaction {
            customer: c.into(),
            day,
            amount,
        }
    }

    #[test]
    fn same_day_rows_merge_and_future_rows_are_ignored() {
        let rows = vec![
            t("a", 10, 5.0),
            t("a", 10, 7.0),
            t("a", 20, 1.0),
            t("a", 99, 100.0),
            t("b", 3, 2.0),
        ];
        let s = summarize(&rows, 50);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].transactions, 2);
        assert_eq!(s[0].frequency(), 1);
        assert_eq!(s[0].monetary_total, 13.0);
        assert_eq!(s[0].recency_days(50), 30);
        assert_eq!(s[1].frequency(), 0);
    }
}

#[cfg(test)]
mod calibration_tests {
    use super::*;

    fn t(c: &str, day: i32, amount: f64) -> Transaction {
        Transaction {
            customer: c.into(),
            day,
            amount,
        }
    }

    #[test]
    fn calibration_histories_follow_the_conventions() {
        let rows = vec![
            t("a", 0, 10.0),
            t("a", 0, 5.0),
            t("a", 7, 20.0),
            t("a", 14, 40.0),
            t("a", 30, 1.0),
            t("a", 31, 1.0),
            t("a", 99, 1.0),
            t("b", 21, 3.0),
            t("c", 25, 3.0),
        ];
        let h = calibration_histories(&rows, 21, Some(31), TimeUnit::Weeks);
        assert_eq!(h.len(), 2, "c starts after the calibration end");
        let a = &h[0];
        assert_eq!(
            a.history,
            History {
                x: 2.0,
                t_x: 2.0,
                t: 3.0
            }
        );
        assert_eq!(a.spend.mean, 30.0, "repeat purchases only");
        assert_eq!(a.summary.monetary_total, 75.0);
        assert_eq!(a.holdout_purchases, 2);
        assert_eq!(a.previous_day, Some(7));
        assert_eq!(
            h[1].history,
            History {
                x: 0.0,
                t_x: 0.0,
                t: 0.0
            }
        );
        let d = calibration_histories(&rows, 21, None, TimeUnit::Days);
        assert_eq!(d[0].history.t, 21.0);
    }

    #[test]
    fn non_positive_amounts_are_rejected_or_counted() {
        let rows = vec![t("a", 0, 1.0), t("b", 0, 0.0), t("c", 1, -2.0)];
        let err = check_amounts(rows.clone(), NonPositiveAmounts::Reject, "tx.csv", "amt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tx.csv") && err.contains("row 2") && err.contains("`amt`"),
            "{err}"
        );
        let (kept, dropped) =
            check_amounts(rows, NonPositiveAmounts::Exclude, "tx.csv", "amt").unwrap();
        assert_eq!((kept.len(), dropped), (1, 2));
    }
}
