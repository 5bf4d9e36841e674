//! One customer's life, simulated end to end from its own random streams: profile and
//! latent parameters, master-data changes, the BG/NBD purchase process with complaint-driven
//! churn, campaign responses, web traffic and tickets.

use crate::calendar::{day_of_ts, seasonality, seasonality_max, DAY, HOUR, MINUTE};
use crate::history::{ChangeKind, History};
use crate::marketing::{run_campaigns, Audience};
use crate::names::{names, EMAIL_DOMAINS};
use crate::orders::{apply_discounts, build_order, retime, time_of_day, Shopper, SPEND_SHAPE};
use crate::records::{
    Acquisition, CustomerRecords, CustomerVersion, EmailEvent, EmailEventType, Gender, Order,
    OrderChannel, OrderLine, Profile, Segment, Ticket, TicketCategory, Truth,
};
use crate::rng::{Rng, Stream};
use crate::tickets::{
    background_category, draw_ticket, dropout_after_complaint, TicketDraw,
    UNRESOLVED_COMPLAINT_DROPOUT,
};
use crate::web::{anonymous_sessions, customer_sessions, growth_fraction, Traffic, Visitor};
use crate::world::World;

/// Population parameters of the generative model (documented in docs/sample-data.md).
pub(crate) mod params {
    /// BG/NBD: purchase rate lambda ~ Gamma(shape R, rate ALPHA) per day.
    pub const R: f64 = 0.8;
    /// BG/NBD rate parameter (days): mean lambda = R / ALPHA = 1/75 per day.
    pub const ALPHA: f64 = 60.0;
    /// BG/NBD: dropout probability p ~ Beta(A, B).
    pub const A: f64 = 0.7;
    /// See [`A`].
    pub const B: f64 = 3.0;
    /// Gamma-Gamma: per-customer nu ~ Gamma(shape Q, rate GAMMA); spend per order ~ Gamma(6, nu).
    pub const Q: f64 = 4.0;
    /// See [`Q`]; mean spend = 6 * GAMMA / (Q - 1) = 110 for consumers.
    pub const GAMMA: f64 = 55.0;
    /// Share of customers with one or two master-data changes planned.
    pub const CHANGE_SHARE: f64 = 0.13;
    /// Background (not order-triggered) tickets per customer-year: Gamma(2, mean 0.08).
    pub const BACKGROUND_TICKETS_PER_YEAR: f64 = 0.08;
}

/// Spend multiplier by segment: business buyers order more per order.
fn segment_spend(segment: Segment) -> f64 {
    match segment {
        Segment::Consumer => 1.0,
        Segment::SmallBusiness => 1.8,
        Segment::Corporate => 3.2,
    }
}

/// Purchase-rate multiplier by acquisition channel (referred customers buy more often).
fn acquisition_rate(channel: Acquisition) -> f64 {
    match channel {
        Acquisition::Web => 1.0,
        Acquisition::Email => 1.05,
        Acquisition::Social => 0.9,
        Acquisition::PaidSearch => 0.9,
        Acquisition::Referral => 1.25,
        Acquisition::Store => 1.1,
        Acquisition::Affiliate => 0.8,
    }
}

/// The e-mail address for an address variant of customer number `n` (1-based).
/// Unique across customers (the number is in it) and across a customer's variants (the
/// domain rotates).
pub(crate) fn email_address(profile: &Profile, n: u64, variant: u8) -> String {
    let slug = |s: Option<&str>, fallback: &str| -> String {
        let s = s.unwrap_or(fallback);
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let first = slug(profile.first_name, "customer");
    let last = slug(profile.last_name, "x");
    let domain = EMAIL_DOMAINS[((n + u64::from(variant)) % EMAIL_DOMAINS.len() as u64) as usize];
    if variant.is_multiple_of(2) {
        format!("{first}.{last}.{n}@{domain}")
    } else {
        format!("{first}{last}{n}@{domain}")
    }
}

/// Simulates customer number `index + 1` (and the anonymous traffic of its slot).
pub(crate) fn simulate(world: &World, seed: u64, index: u64) -> CustomerRecords {
    let mut rng = Rng::stream(seed, index, Stream::Customer);
    let period = world.period_days();

    // Profile.
    let x = growth_fraction(&mut rng);
    let signup_day = world.start_day + ((x * period) as i32).min(world.end_day - world.start_day);
    let signup_ts = i64::from(signup_day) * DAY + time_of_day(&mut rng);
    let city = world.city_table.sample(&mut rng);
    let home = &world.cities[city];
    let store_city = &world.cities[world.store_of[city]];
    let store_access = if home.has_store {
        1.0
    } else if store_city.country_code == home.country_code {
        0.3
    } else {
        0.04
    };
    let acquisition = rng.pick(&[
        (Acquisition::Web, 0.25),
        (Acquisition::Email, 0.06),
        (Acquisition::Social, 0.08 + 0.12 * x),
        (Acquisition::PaidSearch, 0.24 - 0.08 * x),
        (Acquisition::Referral, 0.10),
        (Acquisition::Store, 0.20 * store_access),
        (Acquisition::Affiliate, 0.12),
    ]);
    let segment = rng.pick(&[
        (Segment::Consumer, 0.85),
        (Segment::SmallBusiness, 0.11),
        (Segment::Corporate, 0.04),
    ]);
    let gender = rng.pick(&[
        (Some(Gender::F), 0.49),
        (Some(Gender::M), 0.47),
        (Some(Gender::X), 0.01),
        (None, 0.03),
    ]);
    let list = names(home.culture);
    let female = match gender {
        Some(Gender::F) => true,
        Some(Gender::M) => false,
        _ => rng.chance(0.5),
    };
    let first = *rng.choose(if female { list.female } else { list.male });
    let last = *rng.choose(list.last);
    let birth_date = if rng.chance(0.12) {
        None
    } else {
        let age = (40.0 + 13.0 * rng.normal()).clamp(18.0, 85.0);
        Some(signup_day - (age * 365.25) as i32 - rng.range_i64(0, 364) as i32)
    };
    let profile = Profile {
        first_name: (!rng.chance(0.005)).then_some(first),
        last_name: (!rng.chance(0.01)).then_some(last),
        birth_date,
        gender,
        signup_ts,
        acquisition,
    };
    let no_email_p = if acquisition == Acquisition::Store {
        0.25
    } else {
        0.01
    };
    let email = (!rng.chance(no_email_p)).then_some(0u8);
    let bad_email = email.is_some() && rng.chance(0.02);
    let base = CustomerVersion {
        updated_at: signup_ts,
        email,
        segment,
        city: city as u16,
        opt_in_email: email.is_some()
            && rng.chance(if acquisition == Acquisition::Email {
                0.9
            } else {
                0.65
            }),
        opt_in_sms: rng.chance(0.4),
    };

    // Latent behaviour.
    let lambda = rng.gamma(params::R, 1.0 / params::ALPHA) * acquisition_rate(acquisition);
    let dropout_p = rng.beta(params::A, params::B);
    let nu = rng.gamma(params::Q, 1.0 / params::GAMMA).max(1e-3);
    let mean_spend = (SPEND_SHAPE / nu).min(5_000.0) * segment_spend(segment);
    let engagement = rng.gamma(2.0, 0.5);
    let mut category_weights: Vec<f64> = world
        .catalog
        .categories
        .iter()
        .map(|c| {
            let affinity = match (c.name, gender) {
                ("Beauty", Some(Gender::F)) => 2.5,
                ("Apparel", Some(Gender::F)) => 1.3,
                ("Electronics", Some(Gender::M)) => 1.4,
                ("Sports", Some(Gender::M)) => 1.3,
                _ => 1.0,
            };
            c.weight * affinity * rng.gamma(0.6, 1.0) + 1e-4
        })
        .collect();
    if segment != Segment::Consumer {
        // Business buyers lean to electronics and home (office) supplies.
        category_weights[0] *= 2.0;
        category_weights[1] *= 1.5;
    }
    let mut channel_weights = [0.45, 0.25, 0.25 * store_access, 0.05, 0.13];
    if segment == Segment::Corporate {
        channel_weights[3] = 0.20;
    }
    for w in &mut channel_weights {
        *w *= rng.gamma(1.5, 1.0 / 1.5);
    }
    let shopper = Shopper {
        category_weights: category_weights.clone(),
        channel_weights,
        mean_spend_cents: mean_spend * 100.0,
        max_quantity: match segment {
            Segment::Consumer => 10,
            Segment::SmallBusiness => 25,
            Segment::Corporate => 50,
        },
    };
    let young = birth_date.is_some_and(|b| signup_day - b < 35 * 365);
    let mobile_share = rng.beta(2.0, 2.0) * if young { 1.3 } else { 0.9 };

    // Master-data changes and the preference-centre opt-outs they imply.
    let mut history = History::new(base);
    let mut email_events = Vec::new();
    plan_changes(world, &mut rng, &mut history, &mut email_events);

    // Background tickets (may end the relationship if a complaint goes unresolved).
    let near_store = store_access >= 1.0;
    let mut ticket_draws: Vec<TicketDraw> = Vec::new();
    let mut kill_at = i64::MAX;
    let yearly = rng.gamma(2.0, params::BACKGROUND_TICKETS_PER_YEAR / 2.0);
    if yearly > 0.0 {
        let mut t = signup_ts;
        loop {
            let gap = (rng.exp_mean(365.0 / yearly) * DAY as f64).min(1e12) as i64;
            t = t.saturating_add(gap.max(1));
            if t > world.end_ts {
                break;
            }
            let opened = retime(&mut rng, t, signup_ts);
            let category = background_category(&mut rng);
            let draw = draw_ticket(&mut rng, opened, category, None, world.end_ts, near_store);
            if draw.unresolved_complaint && rng.chance(UNRESOLVED_COMPLAINT_DROPOUT) {
                kill_at = kill_at.min(dropout_after_complaint(&mut rng, opened));
            }
            ticket_draws.push(draw);
        }
    }
    let background_tickets = ticket_draws.len();

    // The BG/NBD purchase process: first purchase at signup, then Poisson(lambda) thinned
    // by seasonality; after every repeat purchase the customer leaves with probability p.
    let mut orders: Vec<Order> = Vec::new();
    let mut lines: Vec<OrderLine> = Vec::new();
    let mut death: Option<i64> = None;
    let first_ts =
        signup_ts + 60 + (rng.lognormal(20.0, 1.0) * MINUTE as f64).min(2.0 * DAY as f64) as i64;
    if first_ts <= world.end_ts {
        let mut t = first_ts;
        let smax = seasonality_max();
        let mut first = true;
        loop {
            if !first {
                let next = loop {
                    let gap = (rng.exp_mean(1.0 / (lambda * smax)) * DAY as f64).min(1e12) as i64;
                    t = t.saturating_add(gap.max(1));
                    if t > world.end_ts {
                        break None;
                    }
                    if rng.chance(seasonality(t) / smax) {
                        break Some(t);
                    }
                };
                let Some(next) = next else { break };
                if next >= kill_at {
                    death = Some(kill_at);
                    break;
                }
                t = retime(&mut rng, next, orders.last().map_or(signup_ts, |o| o.ts));
            }
            let home_city = history.state_at(t).city;
            let order_index = orders.len() as u32;
            let line_start = lines.len();
            if let Some(order) = build_order(
                world,
                &mut rng,
                &shopper,
                t,
                home_city,
                order_index,
                &mut lines,
            ) {
                let returned = lines[line_start..].iter().any(|l| l.returned);
                if let Some(draw) =
                    order_ticket(world, &mut rng, &order, order_index, returned, near_store)
                {
                    if draw.unresolved_complaint && rng.chance(UNRESOLVED_COMPLAINT_DROPOUT) {
                        kill_at =
                            kill_at.min(dropout_after_complaint(&mut rng, draw.ticket.opened));
                    }
                    ticket_draws.push(draw);
                }
                orders.push(order);
            }
            if !first && rng.chance(dropout_p) {
                death = Some(t);
                break;
            }
            first = false;
        }
    }
    if death.is_none() && kill_at <= world.end_ts {
        death = Some(kill_at);
    }
    if bad_email {
        if let Some(o) = orders.first() {
            // The order confirmation bounced.
            email_events.push(EmailEvent {
                ts: (o.ts + rng.range_i64(5, 120)).min(world.end_ts),
                campaign: None,
                kind: EmailEventType::Bounce,
            });
        }
    }

    // Campaigns: contacts, funnel, attribution and campaign-induced orders.
    let natural_times: Vec<i64> = orders.iter().map(|o| o.ts).collect();
    let mut mrng = Rng::stream(seed, index, Stream::Marketing);
    let audience = Audience {
        signup_ts,
        natural_orders: &natural_times,
        death,
        engagement,
        bad_email,
    };
    let marketing = run_campaigns(world, &mut mrng, &audience, &mut history);
    for (order, campaign) in orders.iter_mut().zip(&marketing.attributed) {
        order.campaign = *campaign;
    }
    for &(ts, campaign) in &marketing.induced_orders {
        let home_city = history.state_at(ts).city;
        let order_index = orders.len() as u32;
        if let Some(mut order) = build_order(
            world,
            &mut mrng,
            &shopper,
            ts,
            home_city,
            order_index,
            &mut lines,
        ) {
            order.campaign = Some(campaign);
            order.natural = false;
            orders.push(order);
        }
    }
    apply_discounts(&mut mrng, &world.campaigns, &orders, &mut lines);
    let order_map = sort_orders(&mut orders, &mut lines);
    email_events.extend(marketing.email_events);
    email_events.sort_by_key(|e| e.ts);
    let mut contacts = marketing.contacts;
    contacts.sort_by_key(|c| c.sent);

    // Web traffic.
    let mut sessions = Vec::new();
    let mut cart_events = Vec::new();
    {
        let mut traffic = Traffic {
            sessions: &mut sessions,
            events: &mut cart_events,
        };
        let mut wrng = Rng::stream(seed, index, Stream::Web);
        let visitor = Visitor {
            signup_ts,
            death,
            lambda,
            mobile_share: mobile_share.min(0.95),
            category_weights: &category_weights,
        };
        customer_sessions(
            world,
            &mut wrng,
            &mut traffic,
            &visitor,
            &orders,
            &lines,
            &marketing.clicks,
        );
        let mut arng = Rng::stream(seed, index, Stream::Anonymous);
        anonymous_sessions(world, &mut arng, &mut traffic);
        traffic.sort();
    }

    let tickets = finish_tickets(
        &mut rng,
        ticket_draws,
        background_tickets,
        &orders,
        &order_map,
        death,
    );
    let truth = Truth {
        lambda,
        dropout_p,
        mean_spend,
        dropped_out_on: death.map(day_of_ts),
        purchases: orders.len() as u32,
    };
    CustomerRecords {
        profile,
        versions: history.into_versions(world.end_ts),
        orders,
        lines,
        contacts,
        sessions,
        cart_events,
        email_events,
        tickets,
        truth,
    }
}

/// Plans 0-2 master-data changes: moves, segment changes, consent changes, new addresses.
fn plan_changes(
    world: &World,
    rng: &mut Rng,
    history: &mut History,
    email_events: &mut Vec<EmailEvent>,
) {
    let signup_ts = history.base().updated_at;
    if world.end_ts - signup_ts < 2 * DAY || !rng.chance(params::CHANGE_SHARE) {
        return;
    }
    let n = if rng.chance(0.7) { 1 } else { 2 };
    let mut times: Vec<i64> = (0..n)
        .map(|_| signup_ts + DAY + rng.range_i64(0, world.end_ts - signup_ts - DAY))
        .collect();
    times.sort_unstable();
    for ts in times {
        let state = history.state_at(ts);
        let kind = match rng.weighted(&[0.40, 0.25, 0.20, 0.15]) {
            0 => {
                let here = &world.cities[state.city as usize];
                let same_country: Vec<usize> = (0..world.cities.len())
                    .filter(|&c| {
                        c != state.city as usize
                            && world.cities[c].country_code == here.country_code
                    })
                    .collect();
                let to = if !same_country.is_empty() && rng.chance(0.6) {
                    *rng.choose(&same_country)
                } else {
                    world.city_table.sample(rng)
                };
                ChangeKind::Move(to as u16)
            }
            1 => ChangeKind::Segment(match state.segment {
                Segment::Consumer => Segment::SmallBusiness,
                Segment::SmallBusiness if rng.chance(0.6) => Segment::Corporate,
                Segment::SmallBusiness => Segment::Consumer,
                Segment::Corporate => Segment::SmallBusiness,
            }),
            2 if rng.chance(0.5) && state.email.is_some() => {
                ChangeKind::OptInEmail(!state.opt_in_email)
            }
            2 => ChangeKind::OptInSms(!state.opt_in_sms),
            _ => ChangeKind::Email(state.email.map_or(1, |e| e + 1).min(5)),
        };
        if kind == ChangeKind::OptInEmail(false) {
            email_events.push(EmailEvent {
                ts,
                campaign: None,
                kind: EmailEventType::Unsubscribe,
            });
        }
        history.push(ts, kind);
    }
}

/// A ticket triggered by an order: a return, a late delivery or a quality problem.
fn order_ticket(
    world: &World,
    rng: &mut Rng,
    order: &Order,
    order_index: u32,
    returned: bool,
    near_store: bool,
) -> Option<TicketDraw> {
    let (category, delay) = if returned && rng.chance(0.25) {
        (TicketCategory::Returns, rng.range_i64(3 * DAY, 20 * DAY))
    } else if order.channel != OrderChannel::Store && rng.chance(0.015) {
        (TicketCategory::Delivery, rng.range_i64(2 * DAY, 10 * DAY))
    } else if rng.chance(0.01) {
        (
            TicketCategory::ProductQuality,
            rng.range_i64(5 * DAY, 60 * DAY),
        )
    } else {
        return None;
    };
    let opened = order.ts + delay + rng.range_i64(0, HOUR);
    if opened > world.end_ts {
        return None;
    }
    Some(draw_ticket(
        rng,
        opened,
        category,
        Some(order_index),
        world.end_ts,
        near_store,
    ))
}

/// Sorts orders by time and renumbers their lines; returns old index -> new index.
fn sort_orders(orders: &mut Vec<Order>, lines: &mut [OrderLine]) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..orders.len() as u32).collect();
    perm.sort_by_key(|&i| (orders[i as usize].ts, i));
    let mut map = vec![0u32; orders.len()];
    for (new, &old) in perm.iter().enumerate() {
        map[old as usize] = new as u32;
    }
    let sorted: Vec<Order> = perm.iter().map(|&i| orders[i as usize]).collect();
    *orders = sorted;
    for l in lines.iter_mut() {
        l.order = map[l.order as usize];
    }
    lines.sort_by_key(|l| (l.order, l.line_no));
    map
}

/// Final ticket rows: background tickets stop a month after the customer left and refer to
/// a recent order when their category calls for one; order references are renumbered.
fn finish_tickets(
    rng: &mut Rng,
    draws: Vec<TicketDraw>,
    background: usize,
    orders: &[Order],
    order_map: &[u32],
    death: Option<i64>,
) -> Vec<Ticket> {
    let mut out: Vec<Ticket> = Vec::with_capacity(draws.len());
    for (i, draw) in draws.into_iter().enumerate() {
        let mut t = draw.ticket;
        if i < background {
            if death.is_some_and(|d| t.opened > d + 30 * DAY) {
                continue;
            }
            let wants_order = matches!(
                t.category,
                TicketCategory::Delivery
                    | TicketCategory::ProductQuality
                    | TicketCategory::Returns
                    | TicketCategory::Billing
            );
            let recent = orders
                .partition_point(|o| o.ts < t.opened)
                .checked_sub(1)
                .filter(|&k| t.opened - orders[k].ts <= 60 * DAY);
            match recent {
                Some(k) if wants_order && rng.chance(0.7) => t.order = Some(k as u32),
                None if t.category != TicketCategory::Billing && wants_order => {
                    t.category = TicketCategory::Other;
                }
                _ => {}
            }
        } else {
            t.order = t.order.map(|o| order_map[o as usize]);
        }
        out.push(t);
    }
    out.sort_by_key(|t| t.opened);
    out
}
