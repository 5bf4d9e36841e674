//! The static world every customer lives in: cities and stores, the product catalog, the
//! campaign calendar, and the period boundaries.

use crate::calendar::{day_of, DAY};
use crate::campaigns::{build_campaigns, Campaign};
use crate::catalog::{build_catalog, Catalog};
use crate::geography::{cities, nearest_stores, City, REGIONS};
use crate::rng::{Rng, Stream, WeightedTable};
use crate::SampleConfig;

/// Everything shared (read-only) by all customer simulations.
#[derive(Clone, Debug)]
pub(crate) struct World {
    /// Cities in `region_id` order.
    pub cities: Vec<City>,
    /// For each city, the city of the store its customers visit.
    pub store_of: Vec<usize>,
    /// Where new customers live.
    pub city_table: WeightedTable,
    /// Products and categories.
    pub catalog: Catalog,
    /// Campaigns in `campaign_id` (= start date) order.
    pub campaigns: Vec<Campaign>,
    /// First day of the period (day number).
    pub start_day: i32,
    /// Last day of the period (day number, inclusive).
    pub end_day: i32,
    /// Last second of the period (23:59:59 of the end day).
    pub end_ts: i64,
}

impl World {
    /// Builds the world for a configuration; deterministic in `cfg.seed`.
    pub(crate) fn new(cfg: &SampleConfig) -> Self {
        let mut rng = Rng::stream(cfg.seed, 0, Stream::World);
        let start_day = day_of(cfg.start);
        let end_day = day_of(cfg.end);
        let cities = cities();
        let store_of = nearest_stores(&cities);
        let weights: Vec<f64> = cities.iter().map(|c| c.weight).collect();
        let catalog = build_catalog(&mut rng, start_day, end_day);
        let campaigns = build_campaigns(&mut rng, start_day, end_day, REGIONS.len());
        World {
            city_table: WeightedTable::new(&weights),
            cities,
            store_of,
            catalog,
            campaigns,
            start_day,
            end_day,
            end_ts: i64::from(end_day) * DAY + DAY - 1,
        }
    }

    /// Length of the period in days.
    pub(crate) fn period_days(&self) -> f64 {
        f64::from(self.end_day - self.start_day + 1)
    }
}
