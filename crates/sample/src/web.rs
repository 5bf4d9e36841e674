//! Web and app sessions with their cart activity: browsing sessions of logged-in customers
//! (rate tied to their purchase rate, fading after they drop out), the sessions in which
//! web/app orders were placed, sessions started by e-mail clicks, and anonymous traffic.

use crate::calendar::{day_of_ts, seasonality, seasonality_max, DAY};
use crate::campaigns::CampaignChannel;
use crate::orders::retime;
use crate::records::{
    CartEvent, CartEventType, Device, Order, OrderChannel, OrderLine, Session, TrafficSource,
};
use crate::rng::Rng;
use crate::world::World;

/// Anonymous sessions per customer slot and day of the period: calibrated so that about
/// 30% of all sessions are anonymous.
pub(crate) const ANONYMOUS_SESSIONS_PER_SLOT_DAY: f64 = 0.0058;

/// How fast browsing fades after a customer drops out (mean lifetime, days).
const FADE_DAYS: f64 = 40.0;

/// A logged-in visitor.
pub(crate) struct Visitor<'a> {
    /// Account creation.
    pub signup_ts: i64,
    /// When the customer became inactive, if ever.
    pub death: Option<i64>,
    /// Purchase rate per day.
    pub lambda: f64,
    /// Share of the customer's browsing on a phone.
    pub mobile_share: f64,
    /// Category preferences (for cart adds).
    pub category_weights: &'a [f64],
}

/// Sessions and cart events under construction; session indices are local.
pub(crate) struct Traffic<'a> {
    /// Sessions (unsorted until `sort`).
    pub sessions: &'a mut Vec<Session>,
    /// Cart events referencing `sessions` by index.
    pub events: &'a mut Vec<CartEvent>,
}

impl Traffic<'_> {
    fn push_session(&mut self, s: Session) -> u32 {
        self.sessions.push(s);
        (self.sessions.len() - 1) as u32
    }

    /// Orders sessions by start time and cart events by (session, time).
    pub(crate) fn sort(&mut self) {
        let mut order: Vec<u32> = (0..self.sessions.len() as u32).collect();
        order.sort_by_key(|&i| (self.sessions[i as usize].start, i));
        let mut new_index = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old as usize] = new as u32;
        }
        let sorted: Vec<Session> = order.iter().map(|&i| self.sessions[i as usize]).collect();
        *self.sessions = sorted;
        for e in self.events.iter_mut() {
            e.session = new_index[e.session as usize];
        }
        self.events.sort_by_key(|e| (e.session, e.ts));
    }
}

fn device_for(rng: &mut Rng, mobile_share: f64) -> Device {
    if rng.chance(mobile_share) {
        Device::Mobile
    } else if rng.chance(0.15) {
        Device::Tablet
    } else {
        Device::Desktop
    }
}

fn organic_source(rng: &mut Rng) -> TrafficSource {
    rng.pick(&[
        (TrafficSource::Direct, 0.32),
        (TrafficSource::Organic, 0.28),
        (TrafficSource::Paid, 0.14),
        (TrafficSource::Email, 0.06),
        (TrafficSource::Social, 0.12),
        (TrafficSource::Referral, 0.08),
    ])
}

fn campaign_source(channel: CampaignChannel) -> TrafficSource {
    match channel {
        CampaignChannel::Email => TrafficSource::Email,
        CampaignChannel::Social => TrafficSource::Social,
        CampaignChannel::PaidSearch | CampaignChannel::Display => TrafficSource::Paid,
        CampaignChannel::Sms => TrafficSource::Direct,
    }
}

/// A product a browsing visitor puts in the cart.
fn browse_product(world: &World, rng: &mut Rng, weights: &[f64], day: i32) -> Option<u16> {
    let catalog = &world.catalog;
    let category = rng.weighted(weights);
    let list = &catalog.categories[category].by_price;
    if list.is_empty() {
        return None;
    }
    let probe = catalog.products[*rng.choose(list)].list_cents;
    catalog
        .pick_near_price(rng, category, probe, day)
        .map(|p| p as u16)
}

/// How a browsing session starts.
struct Visit {
    start: i64,
    anonymous: bool,
    device: Device,
    source: TrafficSource,
    /// At least this many pages (sessions from a click never bounce).
    min_pages: u32,
}

/// A browsing session (no order) with occasional cart adds, removes and an abandon.
fn browse_session(
    world: &World,
    rng: &mut Rng,
    traffic: &mut Traffic<'_>,
    visit: Visit,
    weights: &[f64],
) {
    let Visit {
        start,
        anonymous,
        device,
        source,
        min_pages,
    } = visit;
    let bounce = min_pages <= 1 && rng.chance(0.25);
    let pages = if bounce {
        1
    } else {
        let depth = rng.lognormal(3.0, 0.6);
        (2 + rng.poisson(depth) as u32).max(min_pages)
    };
    let mut duration = if pages == 1 {
        rng.range_i64(0, 30)
    } else {
        (f64::from(pages) * rng.lognormal(45.0, 0.5)) as i64
    };
    duration = duration.min(world.end_ts - start).max(0);
    let session = traffic.push_session(Session {
        start,
        anonymous,
        device,
        source,
        pages,
        duration: duration as u32,
    });
    if pages < 3 || !rng.chance(0.22) || duration < 4 {
        return;
    }
    let day = day_of_ts(start);
    let adds = 1 + rng.below(2) as usize;
    let mut cart: Vec<(u16, u32)> = Vec::with_capacity(2);
    for k in 0..adds {
        let Some(product) = browse_product(world, rng, weights, day) else {
            continue;
        };
        let quantity = rng.pick(&[(1u32, 0.85), (2, 0.12), (3, 0.03)]);
        let ts = start + duration * (k as i64 + 1) / (adds as i64 + 2);
        traffic.events.push(CartEvent {
            session,
            ts,
            kind: CartEventType::Add,
            product: Some(product),
            quantity,
        });
        cart.push((product, quantity));
    }
    if cart.len() > 1 && rng.chance(0.2) {
        if let Some((product, quantity)) = cart.pop() {
            traffic.events.push(CartEvent {
                session,
                ts: start + duration * (adds as i64 + 1) / (adds as i64 + 2),
                kind: CartEventType::Remove,
                product: Some(product),
                quantity,
            });
        }
    }
    if let Some(&(last, _)) = cart.last() {
        let units: u32 = cart.iter().map(|(_, q)| q).sum();
        // Half of the abandons are recorded for the whole cart, without a product.
        let (product, quantity) = if rng.chance(0.5) {
            (None, units)
        } else {
            (Some(last), cart.last().map_or(0, |c| c.1))
        };
        traffic.events.push(CartEvent {
            session,
            ts: start + duration,
            kind: CartEventType::Abandon,
            product,
            quantity,
        });
    }
}

/// The session in which a web or app order was placed: adds for every line, sometimes a
/// removed extra item, and the checkout at the order time.
fn order_session(
    world: &World,
    rng: &mut Rng,
    traffic: &mut Traffic<'_>,
    visitor: &Visitor<'_>,
    order: &Order,
    lines: &[OrderLine],
) {
    let device = if order.channel == OrderChannel::MobileApp {
        if rng.chance(0.88) {
            Device::Mobile
        } else {
            Device::Tablet
        }
    } else if rng.chance(visitor.mobile_share * 0.5) {
        Device::Mobile
    } else if rng.chance(0.12) {
        Device::Tablet
    } else {
        Device::Desktop
    };
    let source = match order.campaign {
        Some(c) => campaign_source(world.campaigns[c as usize].channel),
        None => organic_source(rng),
    };
    let wanted = (rng.lognormal(420.0, 0.5) as i64) + 40 * lines.len() as i64;
    let start = (order.ts - wanted).max(visitor.signup_ts).min(order.ts);
    let duration = order.ts - start;
    let pages = 3 + 2 * lines.len() as u32 + rng.poisson(3.0) as u32;
    let session = traffic.push_session(Session {
        start,
        anonymous: false,
        device,
        source,
        pages,
        duration: duration as u32,
    });
    let steps = lines.len() as i64 + 3;
    for (k, line) in lines.iter().enumerate() {
        traffic.events.push(CartEvent {
            session,
            ts: start + duration * (k as i64 + 1) / steps,
            kind: CartEventType::Add,
            product: Some(line.product),
            quantity: line.quantity,
        });
    }
    if rng.chance(0.1) {
        let day = day_of_ts(order.ts);
        if let Some(extra) = browse_product(world, rng, visitor.category_weights, day) {
            let ts = start + duration * (steps - 2) / steps;
            for kind in [CartEventType::Add, CartEventType::Remove] {
                traffic.events.push(CartEvent {
                    session,
                    ts,
                    kind,
                    product: Some(extra),
                    quantity: 1,
                });
            }
        }
    }
    if let Some(first) = lines.first() {
        traffic.events.push(CartEvent {
            session,
            ts: order.ts,
            kind: CartEventType::Checkout,
            product: Some(first.product),
            quantity: lines.iter().map(|l| l.quantity).sum(),
        });
    }
}

/// All sessions of a logged-in customer. `lines` are grouped by order index.
pub(crate) fn customer_sessions(
    world: &World,
    rng: &mut Rng,
    traffic: &mut Traffic<'_>,
    visitor: &Visitor<'_>,
    orders: &[Order],
    lines: &[OrderLine],
    clicks: &[(i64, CampaignChannel)],
) {
    let mut cursor = 0;
    for (i, order) in orders.iter().enumerate() {
        let from = cursor;
        while cursor < lines.len() && lines[cursor].order as usize == i {
            cursor += 1;
        }
        if matches!(order.channel, OrderChannel::Web | OrderChannel::MobileApp) {
            order_session(world, rng, traffic, visitor, order, &lines[from..cursor]);
        }
    }
    for &(ts, channel) in clicks {
        let start = ts + rng.range_i64(3, 40);
        if start <= world.end_ts {
            let device = device_for(rng, visitor.mobile_share);
            let source = campaign_source(channel);
            let visit = Visit {
                start,
                anonymous: false,
                device,
                source,
                min_pages: 2,
            };
            browse_session(world, rng, traffic, visit, visitor.category_weights);
        }
    }
    // Browsing: a Poisson process tied to the purchase rate, seasonal, fading after dropout.
    let rate = rng.gamma(2.0, 1.25) * (visitor.lambda + 0.004);
    if rate <= 0.0 {
        return;
    }
    let smax = seasonality_max();
    let horizon = visitor.death.map_or(world.end_ts, |d| {
        world.end_ts.min(d + (6.0 * FADE_DAYS) as i64 * DAY)
    });
    let mut t = visitor.signup_ts;
    loop {
        let gap = (rng.exp_mean(1.0 / (rate * smax)) * DAY as f64).min(1e12) as i64;
        t = t.saturating_add(gap.max(1));
        if t > horizon {
            break;
        }
        let fade = visitor.death.map_or(1.0, |d| {
            if t <= d {
                1.0
            } else {
                (-((t - d) as f64) / (FADE_DAYS * DAY as f64)).exp()
            }
        });
        if !rng.chance(seasonality(t) / smax * fade) {
            continue;
        }
        let start = retime(rng, t, visitor.signup_ts);
        let device = device_for(rng, visitor.mobile_share);
        let source = organic_source(rng);
        let visit = Visit {
            start,
            anonymous: false,
            device,
            source,
            min_pages: 1,
        };
        browse_session(world, rng, traffic, visit, visitor.category_weights);
    }
}

/// Anonymous sessions of one customer slot: spread over the period with growing traffic.
pub(crate) fn anonymous_sessions(world: &World, rng: &mut Rng, traffic: &mut Traffic<'_>) {
    let count = rng.poisson(ANONYMOUS_SESSIONS_PER_SLOT_DAY * world.period_days());
    let category_weights: Vec<f64> = world.catalog.categories.iter().map(|c| c.weight).collect();
    let smax = seasonality_max();
    for _ in 0..count {
        let day = loop {
            let x = growth_fraction(rng);
            let day = world.start_day
                + ((x * world.period_days()) as i32).min(world.end_day - world.start_day);
            if rng.chance(seasonality(i64::from(day) * DAY) / smax) {
                break day;
            }
        };
        let start = retime(rng, i64::from(day) * DAY, i64::MIN);
        let device = rng.pick(&[
            (Device::Desktop, 0.40),
            (Device::Mobile, 0.50),
            (Device::Tablet, 0.10),
        ]);
        let source = rng.pick(&[
            (TrafficSource::Direct, 0.20),
            (TrafficSource::Organic, 0.35),
            (TrafficSource::Paid, 0.20),
            (TrafficSource::Social, 0.15),
            (TrafficSource::Referral, 0.10),
        ]);
        let visit = Visit {
            start,
            anonymous: true,
            device,
            source,
            min_pages: 1,
        };
        browse_session(world, rng, traffic, visit, &category_weights);
    }
}

/// Growth of the business over the period: signups (and traffic) are three times as
/// frequent at the end as at the start. Returns the position in [0, 1) of a draw.
pub(crate) fn growth_fraction(rng: &mut Rng) -> f64 {
    const GROWTH: f64 = 3.0;
    let u = rng.f64();
    ((1.0 + u * (GROWTH - 1.0)).ln() / GROWTH.ln()).min(0.999_999)
}
