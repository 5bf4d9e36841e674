//! From transaction rows to one summary per customer.
//!
//! Conventions: rows of the same customer on the same day are one transaction (their
//! amounts add up); rows after the as-of date are ignored; frequency counts repeat
//! transactions (all transactions but the first), as in the BTYD literature.

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
