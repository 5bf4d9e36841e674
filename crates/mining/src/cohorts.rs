//! Cohort retention: customers grouped by the month of their first purchase, followed
//! month by month.
//!
//! Month k of a cohort is the k-th calendar month after its acquisition month (month 0).
//! With the customers metric, a cell counts the cohort's customers who bought in that
//! month, and its percentage is of the cohort size; with the revenue metric, a cell is the
//! cohort's revenue in that month, and its percentage is of the cohort's month-0 revenue.
//! Purchases after the as-of day are ignored; months after the as-of month are not
//! observed yet and have no value (the as-of month itself counts up to the as-of day).

use crate::calendar::{month_index, month_string};
use crate::transactions::Transaction;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a cohort cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CohortMetric {
    /// Customers of the cohort who bought in the month.
    Customers,
    /// The cohort's revenue in the month.
    Revenue,
}

/// One cohort's row of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    /// Acquisition month, `YYYY-MM`.
    pub month: String,
    /// Customers whose first purchase fell in that month.
    pub size: usize,
    /// Value at months 0, 1, …; `None` for months after the as-of month.
    pub values: Vec<Option<f64>>,
    /// Each value as a percentage (of the size, or of month 0's revenue).
    pub percentages: Vec<Option<f64>>,
}

/// The retention matrix up to `max_months` months after acquisition, one row per
/// acquisition month, oldest first.
pub fn cohort_matrix(
    rows: &[Transaction],
    as_of: i32,
    max_months: usize,
    metric: CohortMetric,
) -> Vec<Cohort> {
    let mut first: HashMap<&str, i32> = HashMap::new();
    for t in rows.iter().filter(|t| t.day <= as_of) {
        let m = month_index(t.day);
        first
            .entry(&t.customer)
            .and_modify(|f| *f = (*f).min(m))
            .or_insert(m);
    }
    let last_month = month_index(as_of);
    // (cohort month, months since) → active customers and revenue.
    let mut active: BTreeMap<(i32, usize), BTreeSet<&str>> = BTreeMap::new();
    let mut revenue: BTreeMap<(i32, usize), f64> = BTreeMap::new();
    for t in rows.iter().filter(|t| t.day <= as_of) {
        let cohort = first[t.customer.as_str()];
        let since = (month_index(t.day) - cohort) as usize;
        if since <= max_months {
            active
                .entry((cohort, since))
                .or_default()
                .insert(&t.customer);
            *revenue.entry((cohort, since)).or_default() += t.amount;
        }
    }
    let mut sizes: BTreeMap<i32, usize> = BTreeMap::new();
    for &m in first.values() {
        *sizes.entry(m).or_default() += 1;
    }
    sizes
        .into_iter()
        .map(|(cohort, size)| {
            let observed = ((last_month - cohort) as usize).min(max_months);
            let values: Vec<Option<f64>> = (0..=max_months)
                .map(|k| {
                    (k <= observed).then(|| match metric {
                        CohortMetric::Customers => {
                            active.get(&(cohort, k)).map_or(0, |s| s.len()) as f64
                        }
                        CohortMetric::Revenue => revenue.get(&(cohort, k)).copied().unwrap_or(0.0),
                    })
                })
                .collect();
            let base = match metric {
                CohortMetric::Customers => size as f64,
                CohortMetric::Revenue => values[0].unwrap_or(0.0),
            };
            let percentages = values
                .iter()
                .map(|v| v.map(|v| if base != 0.0 { 100.0 * v / base } else { 0.0 }))
                .collect();
            Cohort {
                month: month_string(cohort),
                size,
                values,
                percentages,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::day_of_date;
    use chrono::NaiveDate;

    fn t(c: &str, date: &str, amount: f64) -> Transaction {
        Transaction {
            customer: c.into(),
            day: day_of_date(NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap()),
            amount,
        }
    }

    #[test]
    fn matrix_by_hand() {
        let rows = vec![
            t("a", "2025-01-05", 10.0),
            t("a", "2025-01-20", 5.0),
            t("a", "2025-03-01", 7.0),
            t("b", "2025-01-31", 20.0),
            t("b", "2025-02-01", 1.0),
            t("c", "2025-02-10", 4.0),
            t("c", "2025-04-02", 9.0), // after the as-of day
        ];
        let as_of = day_of_date(NaiveDate::from_ymd_opt(2025, 3, 15).unwrap());
        let m = cohort_matrix(&rows, as_of, 3, CohortMetric::Customers);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].month.as_str(), m[0].size), ("2025-01", 2));
        assert_eq!(m[0].values, vec![Some(2.0), Some(1.0), Some(1.0), None]);
        assert_eq!(m[0].percentages[1], Some(50.0));
        assert_eq!((m[1].month.as_str(), m[1].size), ("2025-02", 1));
        assert_eq!(m[1].values, vec![Some(1.0), Some(0.0), None, None]);
        let r = cohort_matrix(&rows, as_of, 3, CohortMetric::Revenue);
        assert_eq!(r[0].values, vec![Some(35.0), Some(1.0), Some(7.0), None]);
        assert_eq!(r[0].percentages[2], Some(20.0));
        // max_months cuts the columns, not the cohorts.
        let m = cohort_matrix(&rows, as_of, 0, CohortMetric::Customers);
        assert!(m.iter().all(|c| c.values.len() == 1));
        assert!(cohort_matrix(&[], as_of, 3, CohortMetric::Customers).is_empty());
    }
}
