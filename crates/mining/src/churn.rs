//! Supervised churn model: customer features at a cutoff day, a churn label from the
//! following horizon, a logistic regression and its evaluation on a later, disjoint window.
//!
//! Time split, for an as-of day T0 and a horizon H (days):
//! - training rows: features from data up to T0 − H, label = no purchase in (T0 − H, T0];
//! - test rows: features from data up to T0, label = no purchase in (T0, T0 + H].
//!
//! The label windows do not overlap, and nothing after a cutoff feeds that cutoff's
//! features. A customer enters a cutoff's rows once they have bought on or before it.
//! The churn probabilities handed back are the test rows' predictions: the risk, as of T0,
//! of not buying in the next H days. When the data end before T0 + H the test labels are
//! incomplete and no evaluation is made; the scores are still produced.

use crate::logistic::{fit, LogisticModel, LogisticOptions};
use crate::metrics::{lift_table, roc_auc, LiftRow};
use crate::transactions::Transaction;
use crmcube_model::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;

/// Window for the "recent interactions" features, in days before the cutoff.
pub const RECENT_DAYS: i32 = 90;

/// Names of the model's features, in column order.
pub const FEATURE_NAMES: [&str; 12] = [
    "recency_days",
    "log_frequency",
    "log_monetary",
    "tenure_days",
    "tickets",
    "complaints",
    "mean_satisfaction",
    "web_visits_90d",
    "cart_abandons_90d",
    "email_opens_90d",
    "email_clicks_90d",
    "campaign_responses",
];

/// A service ticket of a customer.
#[derive(Debug, Clone)]
pub struct TicketEvent {
    /// Customer identifier.
    pub customer: String,
    /// Day the ticket was opened (days since 1970-01-01).
    pub day: i32,
    /// Whether it was a complaint.
    pub complaint: bool,
    /// Satisfaction score 1..5 when the customer answered.
    pub satisfaction: Option<f64>,
}

/// Kinds of interactions the model counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteractionKind {
    /// A web session.
    WebVisit,
    /// An abandoned cart.
    CartAbandon,
    /// An opened email.
    EmailOpen,
    /// A clicked email.
    EmailClick,
}

impl InteractionKind {
    /// The kind of a `fact_interaction.interaction_type` value, if the model counts it.
    pub fn of_type(t: &str) -> Option<Self> {
        match t {
            "web_visit" => Some(Self::WebVisit),
            "cart_abandon" => Some(Self::CartAbandon),
            "email_open" => Some(Self::EmailOpen),
            "email_click" => Some(Self::EmailClick),
            _ => None,
        }
    }
}

/// Interactions of one kind by one customer on one day.
#[derive(Debug, Clone)]
pub struct InteractionEvent {
    /// Customer identifier.
    pub customer: String,
    /// Day (days since 1970-01-01).
    pub day: i32,
    /// What happened.
    pub kind: InteractionKind,
    /// How many times.
    pub count: u32,
}

/// Campaign contacts of one customer on one day that got a response (click or conversion).
#[derive(Debug, Clone)]
pub struct CampaignEvent {
    /// Customer identifier.
    pub customer: String,
    /// Day the contacts were sent.
    pub day: i32,
    /// Contacts answered with a click or a conversion.
    pub responses: u32,
}

/// Everything the churn model reads, as day-level rows.
#[derive(Debug, Clone, Default)]
pub struct ChurnEvents {
    /// Purchases (one row per customer and day is enough; more are summed).
    pub purchases: Vec<Transaction>,
    /// Service tickets.
    pub tickets: Vec<TicketEvent>,
    /// Interactions.
    pub interactions: Vec<InteractionEvent>,
    /// Campaign responses.
    pub campaigns: Vec<CampaignEvent>,
}

/// The feature rows and labels of one cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    /// Cutoff day.
    pub cutoff: i32,
    /// Customer of each row, sorted.
    pub customers: Vec<String>,
    /// One row per customer, columns as in [`FEATURE_NAMES`]; a missing mean satisfaction
    /// is NaN until [`FeatureSet::fill_satisfaction`].
    pub rows: Vec<Vec<f64>>,
    /// True when the customer made no purchase in (cutoff, cutoff + horizon].
    pub churned: Vec<bool>,
}

const SATISFACTION: usize = 6;

impl FeatureSet {
    /// Mean of the known satisfaction scores (3, the scale's middle, when there are none).
    pub fn mean_satisfaction(&self) -> f64 {
        let known: Vec<f64> = self
            .rows
            .iter()
            .map(|r| r[SATISFACTION])
            .filter(|v| !v.is_nan())
            .collect();
        if known.is_empty() {
            3.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        }
    }

    /// Replaces missing mean satisfaction by `value`.
    pub fn fill_satisfaction(&mut self, value: f64) {
        for r in &mut self.rows {
            if r[SATISFACTION].is_nan() {
                r[SATISFACTION] = value;
            }
        }
    }
}

/// One customer's rows, each list sorted by day.
#[derive(Default)]
struct History<'a> {
    purchases: Vec<(i32, f64)>,
    tickets: Vec<&'a TicketEvent>,
    interactions: Vec<&'a InteractionEvent>,
    campaigns: Vec<&'a CampaignEvent>,
}

/// Per-customer histories, built once and reused for both cutoffs.
pub struct Histories<'a> {
    by_customer: Vec<(&'a str, History<'a>)>,
}

impl<'a> Histories<'a> {
    /// Groups the events by customer.
    pub fn new(events: &'a ChurnEvents) -> Self {
        let mut map: HashMap<&str, History> = HashMap::new();
        for t in &events.purchases {
            map.entry(&t.customer)
                .or_default()
                .purchases
                .push((t.day, t.amount));
        }
        for t in &events.tickets {
            map.entry(&t.customer).or_default().tickets.push(t);
        }
        for t in &events.interactions {
            map.entry(&t.customer).or_default().interactions.push(t);
        }
        for t in &events.campaigns {
            map.entry(&t.customer).or_default().campaigns.push(t);
        }
        let mut by_customer: Vec<_> = map.into_iter().collect();
        by_customer.sort_by(|a, b| a.0.cmp(b.0));
        for (_, h) in &mut by_customer {
            h.purchases.sort_by_key(|p| p.0);
        }
        Histories { by_customer }
    }

    /// Features at `cutoff` and labels over (cutoff, cutoff + horizon] for every customer
    /// who bought on or before the cutoff.
    pub fn features(&self, cutoff: i32, horizon: i32) -> FeatureSet {
        let rows: Vec<(String, Vec<f64>, bool)> = self
            .by_customer
            .par_iter()
            .filter_map(|(c, h)| {
                customer_features(h, cutoff, horizon).map(|(r, l)| (c.to_string(), r, l))
            })
            .collect();
        let mut set = FeatureSet {
            cutoff,
            customers: Vec::with_capacity(rows.len()),
            rows: Vec::with_capacity(rows.len()),
            churned: Vec::with_capacity(rows.len()),
        };
        for (c, r, l) in rows {
            set.customers.push(c);
            set.rows.push(r);
            set.churned.push(l);
        }
        set
    }
}

fn customer_features(h: &History, cutoff: i32, horizon: i32) -> Option<(Vec<f64>, bool)> {
    let past: Vec<&(i32, f64)> = h.purchases.iter().filter(|p| p.0 <= cutoff).collect();
    let first = past.first()?.0;
    let last = past.last()?.0;
    let mut days: Vec<i32> = past.iter().map(|p| p.0).collect();
    days.dedup();
    let monetary: f64 = past.iter().map(|p| p.1).sum();
    let bought_later = h
        .purchases
        .iter()
        .any(|p| p.0 > cutoff && p.0 <= cutoff + horizon);
    let tickets: Vec<_> = h.tickets.iter().filter(|t| t.day <= cutoff).collect();
    let scores: Vec<f64> = tickets.iter().filter_map(|t| t.satisfaction).collect();
    let recent = |kind: InteractionKind| -> f64 {
        h.interactions
            .iter()
            .filter(|e| e.kind == kind && e.day <= cutoff && e.day > cutoff - RECENT_DAYS)
            .map(|e| f64::from(e.count))
            .sum()
    };
    let row = vec![
        f64::from(cutoff - last),
        (days.len() as f64).ln_1p(),
        monetary.max(0.0).ln_1p(),
        f64::from(cutoff - first),
        tickets.len() as f64,
        tickets.iter().filter(|t| t.complaint).count() as f64,
        if scores.is_empty() {
            f64::NAN
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        },
        recent(InteractionKind::WebVisit),
        recent(InteractionKind::CartAbandon),
        recent(InteractionKind::EmailOpen),
        recent(InteractionKind::EmailClick),
        h.campaigns
            .iter()
            .filter(|c| c.day <= cutoff)
            .map(|c| f64::from(c.responses))
            .sum(),
    ];
    Some((row, !bought_later))
}

/// Evaluation on the test window.
#[derive(Debug, Clone)]
pub struct ChurnEvaluation {
    /// ROC AUC of the churn probability against the test labels.
    pub auc: f64,
    /// Share of churners among the test customers.
    pub churn_rate: f64,
    /// The decile lift table.
    pub lift: Vec<LiftRow>,
}

/// Result of [`train_and_score`].
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// The as-of (test cutoff) day.
    pub as_of: i32,
    /// Horizon in days.
    pub horizon: i32,
    /// The fitted model (feature order as in [`FEATURE_NAMES`]).
    pub model: LogisticModel,
    /// Training customers.
    pub train_size: usize,
    /// Share of churners among the training customers.
    pub train_churn_rate: f64,
    /// Test (scored) customers.
    pub test_size: usize,
    /// Evaluation; `None` when the data end before as_of + horizon.
    pub evaluation: Option<ChurnEvaluation>,
    /// Churn probability per test customer, sorted by customer.
    pub scores: Vec<(String, f64)>,
}

/// Trains on cutoff `as_of − horizon`, scores cutoff `as_of`, and evaluates the scores when
/// the data (which end on `data_end`) cover the whole test window.
pub fn train_and_score(
    events: &ChurnEvents,
    as_of: i32,
    horizon: i32,
    data_end: i32,
    opts: &LogisticOptions,
) -> Result<ChurnReport> {
    if horizon < 1 {
        return Err(Error::Usage(format!(
            "the horizon must be at least 1 day, found {horizon}"
        )));
    }
    let histories = Histories::new(events);
    let mut train = histories.features(as_of - horizon, horizon);
    let mut test = histories.features(as_of, horizon);
    if train.rows.is_empty() {
        return Err(Error::Data(format!(
            "no customer bought on or before the training cutoff {} (as-of minus {horizon} days); \
             choose a later --as-of or a shorter --horizon-days",
            crate::calendar::day_string(as_of - horizon)
        )));
    }
    let fill = train.mean_satisfaction();
    train.fill_satisfaction(fill);
    test.fill_satisfaction(fill);
    let model = fit(&train.rows, &train.churned, opts)?;
    let probabilities: Vec<f64> = test.rows.par_iter().map(|r| model.predict(r)).collect();
    let evaluation = if as_of + horizon <= data_end {
        let churners = test.churned.iter().filter(|&&c| c).count();
        roc_auc(&probabilities, &test.churned).map(|auc| ChurnEvaluation {
            auc,
            churn_rate: churners as f64 / test.churned.len() as f64,
            lift: lift_table(&probabilities, &test.churned),
        })
    } else {
        None
    };
    let train_churners = train.churned.iter().filter(|&&c| c).count();
    Ok(ChurnReport {
        as_of,
        horizon,
        train_size: train.rows.len(),
        train_churn_rate: train_churners as f64 / train.rows.len() as f64,
        test_size: test.rows.len(),
        model,
        evaluation,
        scores: test.customers.into_iter().zip(probabilities).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    fn buy(c: &str, day: i32, amount: f64) -> Transaction {
        Transaction {
            customer: c.into(),
            day,
            amount,
        }
    }

    #[test]
    fn features_and_labels_by_hand() {
        let events = ChurnEvents {
            purchases: vec![
                buy("a", 10, 5.0),
                buy("a", 10, 5.0),
                buy("a", 40, 20.0),
                buy("a", 120, 1.0),
                buy("b", 95, 3.0),
                buy("c", 101, 9.0),
            ],
            tickets: vec![
                TicketEvent {
                    customer: "a".into(),
                    day: 30,
                    complaint: true,
                    satisfaction: Some(2.0),
                },
                TicketEvent {
                    customer: "a".into(),
                    day: 101,
                    complaint: false,
                    satisfaction: Some(5.0),
                },
            ],
            interactions: vec![
                InteractionEvent {
                    customer: "a".into(),
                    day: 10,
                    kind: InteractionKind::WebVisit,
                    count: 4,
                },
                InteractionEvent {
                    customer: "a".into(),
                    day: 11,
                    kind: InteractionKind::WebVisit,
                    count: 2,
                },
                InteractionEvent {
                    customer: "a".into(),
                    day: 50,
                    kind: InteractionKind::EmailClick,
                    count: 1,
                },
            ],
            campaigns: vec![CampaignEvent {
                customer: "a".into(),
                day: 20,
                responses: 2,
            }],
        };
        let h = Histories::new(&events);
        let s = h.features(100, 30);
        // c bought only after the cutoff: not a row.
        assert_eq!(s.customers, vec!["a", "b"]);
        let a = &s.rows[0];
        assert_eq!(a[0], 60.0); // recency: 100 - 40
        assert_eq!(a[1], 2f64.ln_1p()); // two purchase days
        assert_eq!(a[2], 30f64.ln_1p());
        assert_eq!(a[3], 90.0); // tenure: 100 - 10
        assert_eq!((a[4], a[5], a[6]), (1.0, 1.0, 2.0)); // the day-101 ticket is later
                                                         // Web visits on day 10 and 11 are more than 90 days before 100 except day 11.
        assert_eq!(a[7], 2.0);
        assert_eq!((a[8], a[9], a[10], a[11]), (0.0, 0.0, 1.0, 2.0));
        assert_eq!(s.churned, vec![false, true]); // a buys on day 120, b never again
        assert!(s.rows[1][6].is_nan());
        let mut s2 = s.clone();
        s2.fill_satisfaction(s.mean_satisfaction());
        assert_eq!(s2.rows[1][6], 2.0);
        // Day 130 is just inside (100, 130]; at horizon 19 it is outside.
        assert_eq!(h.features(100, 19).churned, vec![true, true]);
    }

    #[test]
    fn the_model_ranks_simulated_churners_and_windows_are_disjoint() {
        // Customers buy as a Poisson process until they drop out at a random day; later
        // drop-out and higher rate mean less churn, which recency and frequency reveal.
        let mut rng = SplitMix(5);
        let mut purchases = vec![];
        for c in 0..3000 {
            let id = format!("c{c:04}");
            let rate = 0.01 + 0.05 * rng.uniform();
            let start = rng.below(300) as i32;
            let stop = start + (-(rng.uniform().max(1e-9)).ln() * 1500.0) as i32;
            let mut day = start;
            while day <= stop.min(900) {
                purchases.push(buy(&id, day, 10.0 + 50.0 * rng.uniform()));
                day += 1 + (-(rng.uniform().max(1e-9)).ln() / rate) as i32;
            }
        }
        let events = ChurnEvents {
            purchases,
            ..Default::default()
        };
        let r = train_and_score(&events, 700, 90, 900, &LogisticOptions::default()).unwrap();
        let e = r.evaluation.as_ref().unwrap();
        assert!(e.auc > 0.75, "auc {}", e.auc);
        assert!(r.model.coefficients[0] > 0.0, "longer recency, more churn");
        assert_eq!(r.test_size, r.scores.len());
        assert!(r.train_size <= r.test_size);
        assert!(e.lift[0].lift > 1.5 && e.lift[9].lift < 1.0, "{:?}", e.lift);
        // Test window past the data end: no evaluation, still scores.
        let r = train_and_score(&events, 850, 90, 900, &LogisticOptions::default()).unwrap();
        assert!(r.evaluation.is_none() && !r.scores.is_empty());
        // Nothing before the training cutoff.
        let e = train_and_score(&events, 50, 90, 900, &LogisticOptions::default()).unwrap_err();
        assert!(e.to_string().contains("training cutoff"), "{e}");
    }
}
