//! crmcube customer mining: per-customer transaction summaries, RFM scores and
//! segments, and the customer-base models behind predictive customer lifetime value
//! (BG/NBD, MBG/NBD, Pareto/NBD, Gamma-Gamma).

pub mod bgnbd;
pub mod clv;
pub mod gammagamma;
pub mod history;
pub mod lifecycle;
pub mod optim;
pub mod paretonbd;
pub mod rfm;
pub mod simulate;
pub mod special;
pub mod transaction_log;
pub mod transactions;

pub use bgnbd::{BgNbdParams, Dropout, Fit};
pub use clv::{ClvSettings, ModelKind, Prediction, PurchaseModel};
pub use gammagamma::{GammaGammaParams, Spend};
pub use history::{GroupedHistories, History};
pub use paretonbd::ParetoNbdParams;
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
pub use transactions::{summarize, CustomerSummary, TimeUnit, Transaction};

/// The segment map shipped with crmcube (`schemas/rfm_segments.yaml`).
pub const BUILTIN_SEGMENTS_YAML: &str = include_str!("../../../schemas/rfm_segments.yaml");
