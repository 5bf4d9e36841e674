//! RFM scoring and segmentation.
//!
//! Recency is days since the last transaction (fewer is better), frequency the number
//! of transactions, monetary the total amount. Each is scored 1–5 by quintile of rank:
//! customers are ordered from worst to best and a customer at 0-based position `i` of
//! `n` scores `1 + floor(5 i / n)`. Tie rule: customers with equal values share the
//! score of the first position their value takes, so equal behaviour never gets
//! different scores (a large tie can leave a score unused).

use crate::transactions::CustomerSummary;
use serde::Deserialize;

/// Scores and segment of one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmScore {
    /// Customer identifier.
    pub customer: String,
    /// Days since the last transaction.
    pub recency_days: i32,
    /// Number of transactions.
    pub transactions: u32,
    /// Total amount.
    pub monetary: f64,
    /// Recency score 1–5 (5 = most recent).
    pub r: u8,
    /// Frequency score 1–5.
    pub f: u8,
    /// Monetary score 1–5.
    pub m: u8,
    /// Segment name from the segment map.
    pub segment: String,
}

/// One rule of the segment map.
#[derive(Debug, Clone, Deserialize)]
pub struct SegmentRule {
    /// Segment name.
    pub name: String,
    /// Inclusive recency score range.
    pub r: [u8; 2],
    /// Inclusive frequency score range.
    pub f: [u8; 2],
    /// Inclusive monetary score range.
    pub m: [u8; 2],
}

/// Ordered segment rules; the first match wins.
#[derive(Debug, Clone, Deserialize)]
pub struct SegmentMap {
    /// The rules in priority order.
    pub segments: Vec<SegmentRule>,
}

impl SegmentMap {
    /// Parses a segment map; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> crmcube_model::Result<Self> {
        let map: SegmentMap =
            serde_yaml::from_str(text).map_err(|e| crmcube_model::Error::Schema {
                file: origin.into(),
                key: "segments".into(),
                message: e.to_string(),
            })?;
        for (i, s) in map.segments.iter().enumerate() {
            for (k, [lo, hi]) in [("r", s.r), ("f", s.f), ("m", s.m)] {
                if !(1..=5).contains(&lo) || !(1..=5).contains(&hi) || lo > hi {
                    return Err(crmcube_model::Error::Schema {
                        file: origin.into(),
                        key: format!("segments[{i}].{k}"),
                        message: format!(
                            "expected a range [low, high] within 1..5, found [{lo}, {hi}]"
                        ),
                    });
                }
            }
        }
        Ok(map)
    }

    /// The map shipped with crmcube.
    pub fn builtin() -> crmcube_model::Result<Self> {
        Self::parse(
            crate::BUILTIN_SEGMENTS_YAML,
            "<built-in schemas/rfm_segments.yaml>",
        )
    }

    /// The segment of a score triple.
    pub fn segment(&self, r: u8, f: u8, m: u8) -> &str {
        let inside = |v: u8, [lo, hi]: [u8; 2]| lo <= v && v <= hi;
        self.segments
            .iter()
            .find(|s| inside(r, s.r) && inside(f, s.f) && inside(m, s.m))
            .map_or("Others", |s| s.name.as_str())
    }
}

/// Quintile scores of `values` where larger is better, with the tie rule above.
pub fn quintile_scores(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut scores = vec![0u8; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && values[order[j]] == values[order[i]] {
            j += 1;
        }
        let score = 1 + (5 * i / n) as u8;
        for &k in &order[i..j] {
            scores[k] = score;
        }
        i = j;
    }
    scores
}

/// RFM scores and segments of every summarised customer at `as_of`.
pub fn score_rfm(customers: &[CustomerSummary], as_of: i32, map: &SegmentMap) -> Vec<RfmScore> {
    let recency: Vec<f64> = customers
        .iter()
        .map(|c| -f64::from(c.recency_days(as_of)))
        .collect();
    let frequency: Vec<f64> = customers
        .iter()
        .map(|c| f64::from(c.transactions))
        .collect();
    let monetary: Vec<f64> = customers.iter().map(|c| c.monetary_total).collect();
    let (r, f, m) = (
        quintile_scores(&recency),
        quintile_scores(&frequency),
        quintile_scores(&monetary),
    );
    customers
        .iter()
        .enumerate()
        .map(|(i, c)| RfmScore {
            customer: c.customer.clone(),
            recency_days: c.recency_days(as_of),
            transactions: c.transactions,
            monetary: c.monetary_total,
            r: r[i],
            f: f[i],
            m: m[i],
            segment: map.segment(r[i], f[i], m[i]).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintiles_split_evenly_and_ties_share_a_score() {
        let v: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(quintile_scores(&v), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let tied = vec![1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(quintile_scores(&tied), vec![1, 1, 1, 1, 1, 3, 4, 4, 5, 5]);
        assert_eq!(quintile_scores(&[7.0]), vec![1]);
        assert!(quintile_scores(&[]).is_empty());
    }

    #[test]
    fn segment_map_first_match_wins() {
        let m = SegmentMap::builtin().unwrap();
        assert_eq!(m.segment(5, 5, 5), "Champions");
        assert_eq!(m.segment(5, 1, 1), "New Customers");
        assert_eq!(m.segment(5, 2, 2), "Potential Loyalist");
        assert_eq!(m.segment(1, 5, 5), "Can't Lose Them");
        assert_eq!(m.segment(2, 5, 5), "Loyal Customers");
        assert_eq!(m.segment(1, 3, 3), "At Risk");
        assert_eq!(m.segment(1, 1, 1), "Lost");
        assert_eq!(m.segment(2, 1, 1), "About To Sleep");
        assert_eq!(m.segment(1, 2, 1), "Hibernating");
        assert_eq!(m.segment(3, 5, 1), "Others");
        assert!(SegmentMap::parse(
            "segments:\n  - { name: x, r: [0, 9], f: [1, 5], m: [1, 5] }\n",
            "s.yaml"
        )
        .unwrap_err()
        .to_string()
        .contains("segments[0].r"));
    }

    #[test]
    fn recent_frequent_big_spenders_are_champions() {
        let mk = |c: &str, last: i32, tx: u32, total: f64| CustomerSummary {
            customer: c.into(),
            first_day: 0,
            last_day: last,
            transactions: tx,
            monetary_total: total,
        };
        let cs: Vec<_> = (0..50)
            .map(|i| {
                mk(
                    &format!("c{i:02}"),
                    i,
                    1 + (i as u32) / 5,
                    f64::from(i) * 10.0,
                )
            })
            .collect();
        let s = score_rfm(&cs, 100, &SegmentMap::builtin().unwrap());
        assert_eq!(s[49].segment, "Champions");
        assert_eq!((s[0].r, s[0].f, s[0].m), (1, 1, 1));
    }
}
