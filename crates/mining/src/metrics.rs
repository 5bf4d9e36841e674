//! Ranking quality of a binary score: ROC AUC and the decile lift table.

use std::cmp::Ordering;

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half. Computed from midranks (the Mann–Whitney U statistic).
/// `None` when either class is empty or a score is NaN.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n = scores.len();
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based) midranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let midrank = (i + 1 + j) as f64 / 2.0;
        let tied_positives = order[i..j].iter().filter(|&&k| labels[k]).count();
        rank_sum += midrank * tied_positives as f64;
        i = j;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// One row of the lift table.
#[derive(Debug, Clone, PartialEq)]
pub struct LiftRow {
    /// 1 = the tenth with the highest scores.
    pub decile: u32,
    /// Customers in the decile.
    pub customers: usize,
    /// Positives (churners) in the decile.
    pub positives: usize,
    /// Positives / customers.
    pub rate: f64,
    /// Rate / overall rate.
    pub lift: f64,
    /// Share of all positives found in deciles 1..=this one.
    pub cumulative_capture: f64,
}

/// The lift table: customers ordered by score, highest first (ties by input position, so
/// the table is deterministic), cut into ten groups as equal as possible (the first
/// `n mod 10` groups hold one more). Fewer than ten rows when there are fewer than ten
/// customers.
pub fn lift_table(scores: &[f64], labels: &[bool]) -> Vec<LiftRow> {
    let n = scores.len().min(labels.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(Ordering::Equal)
            .then(a.cmp(&b))
    });
    let total_pos = labels[..n].iter().filter(|&&l| l).count();
    let overall = if n == 0 {
        0.0
    } else {
        total_pos as f64 / n as f64
    };
    let groups = n.min(10);
    let mut rows = Vec::with_capacity(groups);
    let mut start = 0;
    let mut cum = 0;
    for d in 0..groups {
        let size = n / groups + usize::from(d < n % groups);
        let pos = order[start..start + size]
            .iter()
            .filter(|&&k| labels[k])
            .count();
        cum += pos;
        let rate = pos as f64 / size as f64;
        rows.push(LiftRow {
            decile: d as u32 + 1,
            customers: size,
            positives: pos,
            rate,
            lift: if overall > 0.0 { rate / overall } else { 0.0 },
            cumulative_capture: if total_pos > 0 {
                cum as f64 / total_pos as f64
            } else {
                0.0
            },
        });
        start += size;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    fn brute_force_auc(scores: &[f64], labels: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    pairs += 1.0;
                    wins += match scores[i].partial_cmp(&scores[j]).unwrap() {
                        Ordering::Greater => 1.0,
                        Ordering::Equal => 0.5,
                        Ordering::Less => 0.0,
                    };
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn auc_equals_the_pairwise_count_with_many_ties() {
        let mut rng = SplitMix(11);
        for round in 0..50 {
            let n = 5 + rng.below(300) as usize;
            // Few distinct score values, so ties are everywhere.
            let levels = 1 + rng.below(if round % 2 == 0 { 4 } else { 1000 });
            let scores: Vec<f64> = (0..n).map(|_| rng.below(levels) as f64 / 7.0).collect();
            let labels: Vec<bool> = scores
                .iter()
                .map(|s| rng.uniform() < 0.2 + 0.5 * s / (levels as f64 / 7.0))
                .collect();
            let Some(auc) = roc_auc(&scores, &labels) else {
                assert!(labels.iter().all(|&l| l) || labels.iter().all(|&l| !l));
                continue;
            };
            let bf = brute_force_auc(&scores, &labels);
            assert!((auc - bf).abs() < 1e-12, "round {round}: {auc} vs {bf}");
        }
    }

    #[test]
    fn auc_spot_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.3, 0.4], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.4, 0.3, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[f64::NAN, 0.2], &[true, false]), None);
    }

    #[test]
    fn lift_table_by_hand() {
        // 20 customers, scores 19..0; positives at score ranks 0, 1, 2 and 10.
        let scores: Vec<f64> = (0..20).rev().map(f64::from).collect();
        let labels: Vec<bool> = (0..20).map(|i| [0, 1, 2, 10].contains(&i)).collect();
        let t = lift_table(&scores, &labels);
        assert_eq!(t.len(), 10);
        assert!(t.iter().all(|r| r.customers == 2));
        assert_eq!(
            t.iter().map(|r| r.positives).collect::<Vec<_>>(),
            vec![2, 1, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        // Overall rate 4/20 = 0.2; first decile rate 1.0 → lift 5.
        assert!((t[0].lift - 5.0).abs() < 1e-12);
        assert!((t[1].cumulative_capture - 0.75).abs() < 1e-12);
        assert!((t[9].cumulative_capture - 1.0).abs() < 1e-12);
        // Uneven sizes: 23 customers → three groups of 3 then seven of 2.
        let t = lift_table(&[0.0; 23], &[false; 23]);
        assert_eq!(
            t.iter().map(|r| r.customers).collect::<Vec<_>>(),
            vec![3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
        );
        assert!(lift_table(&[], &[]).is_empty());
    }
}
