//! A customer's purchase history as the customer-base models see it, and its
//! sufficient statistics.

use std::collections::HashMap;

/// Repeat purchases `x`, recency `t_x` (time of the last purchase since the first)
/// and age `t` (time since the first purchase), in one time unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct History {
    /// Number of repeat purchases.
    pub x: f64,
    /// Time of the last purchase, measured from the first (0 when `x` = 0).
    pub t_x: f64,
    /// Time from the first purchase to the end of observation.
    pub t: f64,
}

/// Distinct histories with how many customers share each; a likelihood summed over
/// this equals the likelihood over all customers, at the cost of one term per
/// distinct history. Sorted by `x`, so per-`x` constants can be reused.
#[derive(Debug, Clone, Default)]
pub struct GroupedHistories {
    /// Distinct histories and their counts.
    pub rows: Vec<(History, f64)>,
    /// Number of customers.
    pub customers: usize,
    /// The distinct values of `t_x` and `t` over all rows, ascending: per-time terms
    /// such as ln(α + t) are computed once per value, not once per row.
    pub times: Vec<f64>,
    /// Per row, the positions of its `t_x` and `t` in `times`.
    pub time_slots: Vec<(u32, u32)>,
}

impl GroupedHistories {
    /// Groups identical histories.
    pub fn new(histories: &[History]) -> Self {
        let mut counts: HashMap<(u64, u64, u64), (History, f64)> = HashMap::new();
        for h in histories {
            counts
                .entry((h.x.to_bits(), h.t_x.to_bits(), h.t.to_bits()))
                .or_insert((*h, 0.0))
                .1 += 1.0;
        }
        let mut rows: Vec<(History, f64)> = counts.into_values().collect();
        rows.sort_by(|a, b| {
            a.0.x
                .total_cmp(&b.0.x)
                .then(a.0.t_x.total_cmp(&b.0.t_x))
                .then(a.0.t.total_cmp(&b.0.t))
        });
        let mut times: Vec<f64> = rows.iter().flat_map(|(h, _)| [h.t_x, h.t]).collect();
        times.sort_by(f64::total_cmp);
        times.dedup_by(|a, b| a.to_bits() == b.to_bits());
        let slot = |v: f64| times.partition_point(|t| t.total_cmp(&v).is_lt()) as u32;
        let time_slots = rows.iter().map(|(h, _)| (slot(h.t_x), slot(h.t))).collect();
        GroupedHistories {
            rows,
            customers: histories.len(),
            times,
            time_slots,
        }
    }

    /// Sum over groups of `weight × f(history)`, in parallel for large inputs.
    pub fn weighted_sum(&self, f: impl Fn(&[(History, f64)]) -> f64 + Sync + Send) -> f64 {
        use rayon::prelude::*;
        const CHUNK: usize = 2048;
        if self.rows.len() <= CHUNK {
            f(&self.rows)
        } else {
            self.rows.par_chunks(CHUNK).map(&f).sum()
        }
    }

    /// Like `weighted_sum` for `N` sums at once (a value and its gradient); `f` also
    /// gets each row's `time_slots`.
    pub fn weighted_sums<const N: usize>(
        &self,
        f: impl Fn(&[(History, f64)], &[(u32, u32)]) -> [f64; N] + Sync + Send,
    ) -> [f64; N] {
        use rayon::prelude::*;
        const CHUNK: usize = 2048;
        if self.rows.len() <= CHUNK {
            f(&self.rows, &self.time_slots)
        } else {
            self.rows
                .par_chunks(CHUNK)
                .zip(self.time_slots.par_chunks(CHUNK))
                .map(|(r, t)| f(r, t))
                .reduce(|| [0.0; N], add_arrays)
        }
    }
}

/// Element-wise sum of two arrays.
pub(crate) fn add_arrays<const N: usize>(mut a: [f64; N], b: [f64; N]) -> [f64; N] {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_histories_share_one_row() {
        let h = |x, t_x, t| History { x, t_x, t };
        let g = GroupedHistories::new(&[h(1.0, 2.0, 5.0), h(0.0, 0.0, 5.0), h(1.0, 2.0, 5.0)]);
        assert_eq!(g.customers, 3);
        assert_eq!(g.rows.len(), 2);
        assert_eq!(g.rows[0], (h(0.0, 0.0, 5.0), 1.0));
        assert_eq!(g.rows[1], (h(1.0, 2.0, 5.0), 2.0));
        assert_eq!(g.times, vec![0.0, 2.0, 5.0]);
        assert_eq!(g.time_slots, vec![(0, 2), (1, 2)]);
    }
}
