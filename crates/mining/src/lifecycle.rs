//! Value tiers by CLV and lifecycle stages.
//!
//! Value tier: customers ranked by CLV, highest first (ties in input order); the
//! first ceil(1%·n) are "Top 1%", up to ceil(5%·n) "Top 5%", up to ceil(20%·n)
//! "Top 20%", the others "Rest".
//!
//! Lifecycle stage, the first rule that matches (days counted to the as-of day):
//! 1. "new": first purchase at most 90 days ago;
//! 2. "reactivated": last purchase at most 90 days ago, after a gap of at least 365
//!    days since the purchase before it;
//! 3. "churned": P(alive) < 0.1, or no purchase for more than 365 days;
//! 4. "at risk": P(alive) < 0.5, or no purchase for more than 180 days;
//! 5. "active": everyone else.

/// Value tier of each CLV, in input order.
pub fn value_tiers(clv: &[f64]) -> Vec<&'static str> {
    let n = clv.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| clv[b].total_cmp(&clv[a]).then(a.cmp(&b)));
    let cut = |share: f64| (share * n as f64).ceil() as usize;
    let (c1, c5, c20) = (cut(0.01), cut(0.05), cut(0.20));
    let mut out = vec!["Rest"; n];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = if rank < c1 {
            "Top 1%"
        } else if rank < c5 {
            "Top 5%"
        } else if rank < c20 {
            "Top 20%"
        } else {
            "Rest"
        };
    }
    out
}

/// Lifecycle stage from days since the first and last purchase, the gap before
/// the last purchase (None with a single purchase day) and P(alive).
pub fn lifecycle_stage(
    days_since_first: i32,
    days_since_last: i32,
    gap_before_last: Option<i32>,
    p_alive: f64,
) -> &'static str {
    if days_since_first <= 90 {
        "new"
    } else if days_since_last <= 90 && gap_before_last.is_some_and(|g| g >= 365) {
        "reactivated"
    } else if p_alive < 0.1 || days_since_last > 365 {
        "churned"
    } else if p_alive < 0.5 || days_since_last > 180 {
        "at risk"
    } else {
        "active"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_shares() {
        let clv: Vec<f64> = (0..200).map(f64::from).collect();
        let t = value_tiers(&clv);
        assert_eq!(t[199], "Top 1%");
        assert_eq!(t[198], "Top 1%");
        assert_eq!(t[197], "Top 5%");
        assert_eq!(t[190], "Top 5%");
        assert_eq!(t[189], "Top 20%");
        assert_eq!(t[160], "Top 20%");
        assert_eq!(t[159], "Rest");
        assert_eq!(t.iter().filter(|s| **s == "Top 20%").count(), 30);
    }

    #[test]
    fn stages_apply_in_order() {
        assert_eq!(lifecycle_stage(30, 30, None, 0.05), "new");
        assert_eq!(lifecycle_stage(800, 10, Some(400), 0.9), "reactivated");
        assert_eq!(lifecycle_stage(800, 10, Some(100), 0.05), "churned");
        assert_eq!(lifecycle_stage(800, 400, Some(100), 0.9), "churned");
        assert_eq!(lifecycle_stage(800, 200, Some(100), 0.9), "at risk");
        assert_eq!(lifecycle_stage(800, 20, Some(100), 0.3), "at risk");
        assert_eq!(lifecycle_stage(800, 20, Some(100), 0.8), "active");
    }
}
