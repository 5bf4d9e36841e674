//! crmcube customer mining: per-customer transaction summaries and RFM scores and
//! segments.

pub mod rfm;
pub mod transactions;

pub mod basket;
pub mod calendar;
pub mod churn;
pub mod cohorts;
pub mod logistic;
pub mod metrics;
pub mod migration;
#[cfg(test)]
mod rng;

pub use rfm::{score_rfm, RfmScore, SegmentMap};
pub use transactions::{summarize, CustomerSummary, Transaction};

/// The segment map shipped with crmcube (`schemas/rfm_segments.yaml`).
pub const BUILTIN_SEGMENTS_YAML: &str = include_str!("../../../schemas/rfm_segments.yaml");
