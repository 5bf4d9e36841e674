//! Segment migration: each customer's RFM segment at one as-of day against their segment
//! at a later one. Customers without a purchase by the first day appear as `(new)`.
//! Scores are ranked among the customers present at each day, as `score_rfm` does.

use crate::rfm::{score_rfm, SegmentMap};
use crate::transactions::{summarize, Transaction};
use crmcube_model::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// The from-segment of customers who had not bought by the first day.
pub const NEW: &str = "(new)";

/// One cell of the migration matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationCell {
    /// Segment at the first day (or `(new)`).
    pub from: String,
    /// Segment at the second day.
    pub to: String,
    /// Customers moving from `from` to `to`.
    pub customers: usize,
    /// Share of the `from` row, in percent.
    pub row_pct: f64,
}

/// A segment name with its display position.
type RankedSegment = (usize, String);

/// The non-empty cells, rows in segment-map order (then `Others`, then `(new)`), columns
/// likewise.
pub fn migration_matrix(
    rows: &[Transaction],
    from: i32,
    to: i32,
    map: &SegmentMap,
) -> Result<Vec<MigrationCell>> {
    if from >= to {
        return Err(Error::Usage(format!(
            "--from ({}) must be before --to ({})",
            crate::calendar::day_string(from),
            crate::calendar::day_string(to)
        )));
    }
    let before: HashMap<String, String> = score_rfm(&summarize(rows, from), from, map)
        .into_iter()
        .map(|s| (s.customer, s.segment))
        .collect();
    let after = score_rfm(&summarize(rows, to), to, map);
    let rank = |s: &str| -> usize {
        map.segments
            .iter()
            .position(|r| r.name == s)
            .unwrap_or(if s == NEW {
                map.segments.len() + 1
            } else {
                map.segments.len()
            })
    };
    // Keys carry the display rank first so the map iterates in display order.
    let mut cells: BTreeMap<(RankedSegment, RankedSegment), usize> = BTreeMap::new();
    for s in &after {
        let f = before.get(&s.customer).map_or(NEW, |x| x.as_str());
        *cells
            .entry((
                (rank(f), f.to_string()),
                (rank(&s.segment), s.segment.clone()),
            ))
            .or_default() += 1;
    }
    let mut totals: HashMap<String, usize> = HashMap::new();
    for (((_, f), _), n) in &cells {
        *totals.entry(f.clone()).or_default() += n;
    }
    Ok(cells
        .into_iter()
        .map(|(((_, f), (_, t)), n)| MigrationCell {
            row_pct: 100.0 * n as f64 / totals[&f] as f64,
            from: f,
            to: t,
            customers: n,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_add_up_to_each_from_segment_and_newcomers_are_new() {
        let map = SegmentMap::builtin().unwrap();
        // 40 customers buying on a staggered schedule; 10 of them only after day 100.
        let mut rows = vec![];
        for c in 0..40 {
            let start = if c < 30 { c } else { 100 + c };
            for k in 0..(c % 6 + 1) {
                rows.push(Transaction {
                    customer: format!("c{c:02}"),
                    day: start + 7 * k,
                    amount: 10.0 + f64::from(c),
                });
            }
        }
        let cells = migration_matrix(&rows, 100, 200, &map).unwrap();
        let at_from = score_rfm(&summarize(&rows, 100), 100, &map);
        let mut per_segment: HashMap<&str, usize> = HashMap::new();
        for s in &at_from {
            *per_segment.entry(&s.segment).or_default() += 1;
        }
        let mut row_sums: HashMap<&str, usize> = HashMap::new();
        let mut pct_sums: HashMap<&str, f64> = HashMap::new();
        for c in &cells {
            *row_sums.entry(&c.from).or_default() += c.customers;
            *pct_sums.entry(&c.from).or_default() += c.row_pct;
        }
        assert_eq!(row_sums.remove(NEW), Some(10));
        assert_eq!(row_sums, per_segment);
        assert!(pct_sums.values().all(|p| (p - 100.0).abs() < 1e-9));
        assert_eq!(cells.iter().map(|c| c.customers).sum::<usize>(), 40);
        assert!(migration_matrix(&rows, 200, 100, &map).is_err());
    }
}
