//! Campaign targeting and the response funnel for one customer: who is contacted, who
//! opens, clicks and converts, the e-mail events that go with it, opt-outs, and which
//! orders are attributed to which campaign.

use crate::calendar::{DAY, HOUR, MINUTE};
use crate::campaigns::{CampaignChannel, Objective};
use crate::history::{ChangeKind, History};
use crate::records::{Contact, EmailEvent, EmailEventType};
use crate::rng::Rng;
use crate::world::World;

/// What the customer's purchase history and latent state look like to marketing.
pub(crate) struct Audience<'a> {
    /// Account creation.
    pub signup_ts: i64,
    /// Times of the natural (BG/NBD) orders, ascending.
    pub natural_orders: &'a [i64],
    /// When the customer became inactive, if ever.
    pub death: Option<i64>,
    /// Responsiveness to marketing (mean 1).
    pub engagement: f64,
    /// The address on file bounces.
    pub bad_email: bool,
}

/// Funnel outcome for one customer.
#[derive(Default, Debug)]
pub(crate) struct MarketingOutcome {
    /// Contacts, in campaign order.
    pub contacts: Vec<Contact>,
    /// E-mail events of e-mail campaigns.
    pub email_events: Vec<EmailEvent>,
    /// Campaign attributed to each natural order (same indices as `natural_orders`).
    pub attributed: Vec<Option<u16>>,
    /// Extra orders caused by a conversion: (time, campaign).
    pub induced_orders: Vec<(i64, u16)>,
    /// Times of e-mail clicks (they start web sessions).
    pub clicks: Vec<(i64, CampaignChannel)>,
}

/// How long after a contact an order can still be attributed to it.
const ATTRIBUTION_WINDOW: i64 = 45 * DAY;
/// How long after a click a converting customer has to buy.
const CONVERSION_WINDOW: i64 = 14 * DAY;

/// Runs every campaign against the customer, in campaign order, updating the opt-in history
/// with unsubscribes as they happen.
pub(crate) fn run_campaigns(
    world: &World,
    rng: &mut Rng,
    audience: &Audience<'_>,
    history: &mut History,
) -> MarketingOutcome {
    let mut out = MarketingOutcome {
        attributed: vec![None; audience.natural_orders.len()],
        ..MarketingOutcome::default()
    };
    for (ci, campaign) in world.campaigns.iter().enumerate() {
        let first_ts = i64::from(campaign.start) * DAY;
        let last_ts = i64::from(campaign.end) * DAY + DAY - 1;
        if audience.signup_ts > last_ts {
            continue;
        }
        let send_days = i64::from((campaign.end - campaign.start).min(5));
        let mut sent = first_ts
            + rng.range_i64(0, send_days) * DAY
            + rng.range_i64(7, 20) * HOUR
            + rng.range_i64(0, 59) * MINUTE;
        if campaign.objective == Objective::Acquisition && audience.signup_ts >= sent {
            // Welcome journeys start shortly after signing up during the campaign.
            sent = audience.signup_ts + rng.range_i64(HOUR, 2 * DAY);
        }
        if sent <= audience.signup_ts || sent > last_ts || sent > world.end_ts {
            continue;
        }
        let state = history.state_at(sent);
        let consent = match campaign.channel {
            CampaignChannel::Email => state.opt_in_email && state.email.is_some(),
            CampaignChannel::Sms => state.opt_in_sms,
            _ => true,
        };
        if !consent {
            continue;
        }
        if let Some(r) = campaign.target_region {
            if world.cities[state.city as usize].region_index != r {
                continue;
            }
        }
        let before = audience.natural_orders.partition_point(|&t| t < sent);
        let last_order = before.checked_sub(1).map(|i| audience.natural_orders[i]);
        let eligible = match campaign.objective {
            Objective::Acquisition => sent - audience.signup_ts <= 120 * DAY,
            Objective::Retention => last_order.is_some_and(|t| sent - t <= 365 * DAY),
            Objective::Winback => last_order.is_some_and(|t| sent - t >= 75 * DAY),
            Objective::Upsell => before >= 2,
        };
        if !eligible || !rng.chance(campaign.reach) {
            continue;
        }
        let alive = audience.death.is_none_or(|d| sent < d);
        let mut contact = Contact {
            campaign: ci as u16,
            sent,
            opened: false,
            clicked: false,
            converted: false,
        };
        let is_email = campaign.channel == CampaignChannel::Email;
        if is_email && (audience.bad_email || rng.chance(0.01)) {
            out.email_events.push(EmailEvent {
                ts: (sent + rng.range_i64(5, 120)).min(world.end_ts),
                campaign: Some(ci as u16),
                kind: EmailEventType::Bounce,
            });
            out.contacts.push(contact);
            continue;
        }
        if is_email {
            out.email_events.push(EmailEvent {
                ts: (sent + rng.range_i64(5, 300)).min(world.end_ts),
                campaign: Some(ci as u16),
                kind: EmailEventType::Delivered,
            });
        }
        let liveliness = if alive { 1.0 } else { 0.35 };
        let p_open = (campaign.open_rate * audience.engagement * liveliness).min(0.95);
        let open_ts = sent + 600 + (rng.exp_mean(5.0 * HOUR as f64) as i64);
        if rng.chance(p_open) && open_ts <= world.end_ts {
            contact.opened = true;
            if is_email {
                out.email_events.push(EmailEvent {
                    ts: open_ts,
                    campaign: Some(ci as u16),
                    kind: EmailEventType::Open,
                });
            }
            let p_click = (campaign.click_rate / campaign.open_rate * liveliness).min(0.9);
            let click_ts = open_ts + 10 + rng.exp_mean(180.0) as i64;
            if rng.chance(p_click) && click_ts <= world.end_ts {
                contact.clicked = true;
                out.clicks.push((click_ts, campaign.channel));
                if is_email {
                    out.email_events.push(EmailEvent {
                        ts: click_ts,
                        campaign: Some(ci as u16),
                        kind: EmailEventType::Click,
                    });
                }
                let p_convert = campaign.convert_rate / campaign.click_rate;
                if alive && rng.chance(p_convert) {
                    contact.converted =
                        convert(rng, audience, &mut out, ci as u16, click_ts, world.end_ts);
                }
            }
        }
        // Opt-outs: mostly from people who looked at the mail and did not want it.
        if is_email && rng.chance(if contact.opened { 0.006 } else { 0.002 }) {
            let ts = if contact.opened {
                open_ts + 30
            } else {
                sent + rng.range_i64(HOUR, 3 * DAY)
            };
            if ts <= world.end_ts {
                out.email_events.push(EmailEvent {
                    ts,
                    campaign: Some(ci as u16),
                    kind: EmailEventType::Unsubscribe,
                });
                history.push(ts, ChangeKind::OptInEmail(false));
            }
        }
        out.contacts.push(contact);
    }
    attribute_natural_orders(world, rng, audience, &mut out);
    out
}

/// A converting click buys: the next natural order in the window is credited to the
/// campaign, or the campaign causes an extra order. False if the customer cannot buy.
fn convert(
    rng: &mut Rng,
    audience: &Audience<'_>,
    out: &mut MarketingOutcome,
    campaign: u16,
    click_ts: i64,
    end_ts: i64,
) -> bool {
    let from = audience.natural_orders.partition_point(|&t| t < click_ts);
    if let Some(i) = (from..audience.natural_orders.len())
        .take_while(|&i| audience.natural_orders[i] <= click_ts + CONVERSION_WINDOW)
        .find(|&i| out.attributed[i].is_none())
    {
        out.attributed[i] = Some(campaign);
        return true;
    }
    let ts = click_ts + 120 + rng.exp_mean(0.8 * DAY as f64) as i64;
    if ts > end_ts || audience.death.is_some_and(|d| ts >= d) {
        return false;
    }
    out.induced_orders.push((ts, campaign));
    true
}

/// Last-touch attribution of the remaining natural orders: an order placed within the
/// window after a contact is credited to it with a probability that grows with engagement.
fn attribute_natural_orders(
    world: &World,
    rng: &mut Rng,
    audience: &Audience<'_>,
    out: &mut MarketingOutcome,
) {
    if out.contacts.is_empty() {
        return;
    }
    let mut by_time: Vec<&Contact> = out.contacts.iter().collect();
    by_time.sort_by_key(|c| c.sent);
    for (i, &ts) in audience.natural_orders.iter().enumerate() {
        if out.attributed[i].is_some() {
            continue;
        }
        let pos = by_time.partition_point(|c| c.sent <= ts);
        let Some(contact) = pos.checked_sub(1).map(|k| by_time[k]) else {
            continue;
        };
        let campaign = &world.campaigns[contact.campaign as usize];
        let campaign_over = i64::from(campaign.end) * DAY + 8 * DAY;
        if ts - contact.sent > ATTRIBUTION_WINDOW || ts > campaign_over {
            continue;
        }
        let p = if contact.clicked {
            0.95
        } else if contact.opened {
            0.8
        } else {
            0.55
        };
        if rng.chance(p) {
            out.attributed[i] = Some(contact.campaign);
        }
    }
}
