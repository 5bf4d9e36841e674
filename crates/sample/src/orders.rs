//! Turning a purchase into an order: channel, ship-to / store city, and basket lines whose
//! value follows the customer's Gamma-Gamma spend process; then promotions and discounts.

use crate::calendar::{civil_from_days, day_of_ts, DAY};
use crate::campaigns::Campaign;
use crate::records::{Order, OrderChannel, OrderLine};
use crate::rng::Rng;
use crate::world::World;

/// Gamma-Gamma shape of a single order's value (the `p` of Fader & Hardie).
pub(crate) const SPEND_SHAPE: f64 = 6.0;

/// How a customer shops: fixed per customer.
#[derive(Clone, Debug)]
pub(crate) struct Shopper {
    /// Relative preference per category (index as in the catalog).
    pub category_weights: Vec<f64>,
    /// Personal channel mix, in `CHANNELS` order.
    pub channel_weights: [f64; 5],
    /// Expected gross order value in cents.
    pub mean_spend_cents: f64,
    /// Largest quantity on one line (business buyers buy in bulk).
    pub max_quantity: u32,
}

/// Order channels in the order of `Shopper::channel_weights`.
pub(crate) const CHANNELS: [OrderChannel; 5] = [
    OrderChannel::Web,
    OrderChannel::MobileApp,
    OrderChannel::Store,
    OrderChannel::Phone,
    OrderChannel::Marketplace,
];

/// Number of lines per order: 1..=4.
const LINE_COUNT_WEIGHTS: [f64; 4] = [0.50, 0.28, 0.14, 0.08];
const LINE_COUNT_WEIGHTS_BIG: [f64; 4] = [0.30, 0.30, 0.22, 0.18];

/// Builds one order at `ts` shipped to (or bought in the store of) `home_city`, appending its
/// lines to `lines` with order index `order_index`. Returns `None` if nothing could be sold.
pub(crate) fn build_order(
    world: &World,
    rng: &mut Rng,
    shopper: &Shopper,
    ts: i64,
    home_city: u16,
    order_index: u32,
    lines: &mut Vec<OrderLine>,
) -> Option<Order> {
    let channel = CHANNELS[rng.weighted(&shopper.channel_weights)];
    let city = if channel == OrderChannel::Store {
        world.store_of[home_city as usize] as u16
    } else {
        home_city
    };
    let day = day_of_ts(ts);
    let catalog = &world.catalog;
    // Gross value of this order, drawn from the customer's spend distribution.
    let target = rng.gamma(SPEND_SHAPE, shopper.mean_spend_cents / SPEND_SHAPE);
    let weights = if target > 30_000.0 {
        &LINE_COUNT_WEIGHTS_BIG
    } else {
        &LINE_COUNT_WEIGHTS
    };
    let n = 1 + rng.weighted(weights);
    let mut shares = [0.0f64; 4];
    for s in shares.iter_mut().take(n) {
        *s = rng.gamma(2.0, 1.0);
    }
    let total: f64 = shares.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let first = lines.len();
    let mut line_no = 0u8;
    for share in shares.iter().take(n) {
        let amount = target * share / total;
        let category = rng.weighted(&shopper.category_weights);
        let mut quantity = rng.pick(&[(1u32, 0.72), (2, 0.20), (3, 0.08)]);
        let max_price = catalog.max_price(category) as f64;
        if amount / f64::from(quantity) > max_price && max_price > 0.0 {
            quantity = ((amount / max_price).ceil() as u32).clamp(1, shopper.max_quantity);
        }
        let unit_target = (amount / f64::from(quantity)) as i64;
        let mut product = catalog.pick_near_price(rng, category, unit_target, day)?;
        if lines[first..].iter().any(|l| l.product as usize == product) {
            product = catalog.pick_near_price(rng, category, unit_target, day)?;
            if lines[first..].iter().any(|l| l.product as usize == product) {
                continue;
            }
        }
        let p = &catalog.products[product];
        let unit_cents = if rng.chance(0.08) {
            ((p.list_cents as f64) * rng.uniform(0.95, 1.05)).round() as i64
        } else {
            p.list_cents
        };
        let return_factor = if channel == OrderChannel::Store {
            0.6
        } else {
            1.0
        };
        let returned = rng.chance(catalog.categories[p.category].return_rate * return_factor);
        line_no += 1;
        lines.push(OrderLine {
            order: order_index,
            line_no,
            product: product as u16,
            quantity,
            unit_cents: unit_cents.max(0),
            discount_cents: 0,
            returned,
        });
    }
    if line_no == 0 {
        return None;
    }
    Some(Order {
        ts,
        channel,
        city,
        campaign: None,
        natural: true,
    })
}

/// Whether `ts` falls in the Black Friday / Cyber Monday promotion window (Nov 20 - Dec 2).
fn in_black_friday(ts: i64) -> bool {
    let (_, m, d) = civil_from_days(day_of_ts(ts));
    (m == 11 && d >= 20) || (m == 12 && d <= 2)
}

/// Applies promotions: campaign orders are discounted more often and more deeply; the
/// Black Friday window discounts most orders. `lines[i].order` indexes `orders`.
pub(crate) fn apply_discounts(
    rng: &mut Rng,
    campaigns: &[Campaign],
    orders: &[Order],
    lines: &mut [OrderLine],
) {
    let mut i = 0;
    while i < lines.len() {
        let order_index = lines[i].order as usize;
        let mut j = i;
        while j < lines.len() && lines[j].order as usize == order_index {
            j += 1;
        }
        let order = &orders[order_index];
        let (p, lo, hi) = match order.campaign {
            Some(c) if campaigns.get(c as usize).is_some() => (0.65, 0.10, 0.25),
            _ if in_black_friday(order.ts) => (0.55, 0.10, 0.30),
            _ => (0.10, 0.05, 0.15),
        };
        if rng.chance(p) {
            let pct = rng.uniform(lo, hi);
            for line in &mut lines[i..j] {
                if rng.chance(0.8) {
                    let gross = line.unit_cents * i64::from(line.quantity);
                    line.discount_cents = ((gross as f64) * pct).round() as i64;
                }
            }
        }
        i = j;
    }
}

/// Hour-of-day profile for online activity (index = hour, UTC for simplicity).
const HOURLY: [f64; 24] = [
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.2, 2.4, 2.6, 2.4, 2.3, 2.3, 2.4, 2.6, 3.0,
    3.3, 3.4, 3.0, 2.0, 1.0,
];

/// A realistic time of day on the day of `ts` (seconds since midnight).
pub(crate) fn time_of_day(rng: &mut Rng) -> i64 {
    let hour = rng.weighted(&HOURLY) as i64;
    hour * 3600 + rng.range_i64(0, 3599)
}

/// Re-times `ts` to a realistic time of day on the same date, if that stays after `after`.
pub(crate) fn retime(rng: &mut Rng, ts: i64, after: i64) -> i64 {
    let candidate = i64::from(day_of_ts(ts)) * DAY + time_of_day(rng);
    if candidate > after {
        candidate
    } else {
        ts
    }
}
