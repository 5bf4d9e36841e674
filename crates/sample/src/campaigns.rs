//! Marketing campaigns: about 40 over three years, each with a channel, an objective, a
//! budget and its own (hidden) funnel rates and reach.

use std::collections::HashSet;

use crate::calendar::civil_from_days;
use crate::rng::Rng;

/// The channel a campaign reaches customers through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CampaignChannel {
    /// Marketing e-mail (needs e-mail opt-in; produces email_events).
    Email,
    /// Text message (needs SMS opt-in).
    Sms,
    /// Targeted social-media ads.
    Social,
    /// Search ads for known customers (remarketing lists).
    PaidSearch,
    /// Display remarketing.
    Display,
}

impl CampaignChannel {
    /// Contract value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CampaignChannel::Email => "email",
            CampaignChannel::Sms => "sms",
            CampaignChannel::Social => "social",
            CampaignChannel::PaidSearch => "paid_search",
            CampaignChannel::Display => "display",
        }
    }

    fn label(self) -> &'static str {
        match self {
            CampaignChannel::Email => "Email",
            CampaignChannel::Sms => "SMS",
            CampaignChannel::Social => "Social",
            CampaignChannel::PaidSearch => "Search",
            CampaignChannel::Display => "Display",
        }
    }
}

/// What a campaign is for; decides whom it targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Objective {
    /// Onboarding of customers who signed up recently.
    Acquisition,
    /// Customers who bought in the last months.
    Retention,
    /// Customers who have not bought for a while.
    Winback,
    /// Repeat buyers, offered more expensive items.
    Upsell,
}

impl Objective {
    /// Contract value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Objective::Acquisition => "acquisition",
            Objective::Retention => "retention",
            Objective::Winback => "winback",
            Objective::Upsell => "upsell",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Objective::Acquisition => "Welcome",
            Objective::Retention => "Loyalty",
            Objective::Winback => "Winback",
            Objective::Upsell => "Upgrade",
        }
    }
}

/// One campaign of the `campaigns` entity plus its simulation parameters.
#[derive(Clone, Debug)]
pub(crate) struct Campaign {
    /// Natural key, `CMP001`…
    pub id: String,
    /// Display name.
    pub name: String,
    /// Channel.
    pub channel: CampaignChannel,
    /// Objective.
    pub objective: Objective,
    /// First day (day number).
    pub start: i32,
    /// Last day (day number), >= start.
    pub end: i32,
    /// Budget in cents.
    pub budget_cents: i64,
    /// Share of eligible customers who are contacted.
    pub reach: f64,
    /// Expected share of contacts that open.
    pub open_rate: f64,
    /// Expected share of contacts that click.
    pub click_rate: f64,
    /// Expected share of contacts that convert.
    pub convert_rate: f64,
    /// When set, only customers living in this sales region (index) are targeted.
    pub target_region: Option<usize>,
}

const THEMES: [&str; 12] = [
    "New Year",
    "Winter Sale",
    "Spring Launch",
    "Easter",
    "Mother's Day",
    "Summer Kickoff",
    "Summer Sale",
    "Back to School",
    "Autumn Launch",
    "Halloween",
    "Black Friday",
    "Holiday Gifts",
];

/// About 40 campaigns per three years of the period [start, end] (day numbers).
pub(crate) fn build_campaigns(
    rng: &mut Rng,
    start: i32,
    end: i32,
    regions: usize,
) -> Vec<Campaign> {
    let days = f64::from(end - start + 1);
    let count = ((40.0 * days / 1096.0).round() as usize).max(1);
    let spacing = days / count as f64;
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let offset = (k as f64 + rng.uniform(0.0, 0.8)) * spacing;
        let first = start + (offset as i32).min(end - start);
        let (year, month, _) = civil_from_days(first);
        // Holiday-season campaigns run more often and through e-mail.
        let holiday = month >= 11;
        let channel = rng.pick(&[
            (CampaignChannel::Email, if holiday { 0.6 } else { 0.45 }),
            (CampaignChannel::Sms, 0.15),
            (CampaignChannel::Social, 0.15),
            (CampaignChannel::PaidSearch, 0.10),
            (CampaignChannel::Display, 0.15),
        ]);
        let objective = rng.pick(&[
            (Objective::Acquisition, 0.2),
            (Objective::Retention, if holiday { 0.5 } else { 0.35 }),
            (Objective::Winback, 0.25),
            (Objective::Upsell, 0.2),
        ]);
        let duration = rng.range_i64(7, 45) as i32;
        let last = (first + duration - 1).min(end);
        let (budget_lo, budget_hi, reach_lo, reach_hi) = match channel {
            CampaignChannel::Email => (5_000.0, 40_000.0, 0.75, 0.98),
            CampaignChannel::Sms => (5_000.0, 30_000.0, 0.40, 0.80),
            CampaignChannel::Social => (20_000.0, 150_000.0, 0.30, 0.60),
            CampaignChannel::PaidSearch => (30_000.0, 250_000.0, 0.25, 0.50),
            CampaignChannel::Display => (20_000.0, 200_000.0, 0.30, 0.60),
        };
        let budget = (rng.uniform(budget_lo, budget_hi) / 100.0).round() * 100.0;
        let open_rate = rng.uniform(0.25, 0.45);
        let click_rate = rng.uniform(0.02, 0.08);
        let convert_rate = rng.uniform(0.005, 0.03).min(click_rate * 0.5);
        let target_region = if rng.chance(0.15) {
            Some(rng.below(regions as u64) as usize)
        } else {
            None
        };
        let base = format!(
            "{} {} {} {}",
            THEMES[(month - 1) as usize],
            year,
            objective.label(),
            channel.label()
        );
        let mut name = base.clone();
        let mut wave = 2;
        while !names.insert(name.clone()) {
            name = format!("{base} (wave {wave})");
            wave += 1;
        }
        out.push(Campaign {
            id: format!("CMP{:03}", k + 1),
            name,
            channel,
            objective,
            start: first,
            end: last,
            budget_cents: budget as i64 * 100,
            reach: rng.uniform(reach_lo, reach_hi),
            open_rate,
            click_rate,
            convert_rate,
            target_region,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    #[test]
    fn campaigns_cover_the_period() {
        let mut rng = Rng::from_seed(5);
        let start = days_from_civil(2023, 1, 1);
        let end = days_from_civil(2025, 12, 31);
        let c = build_campaigns(&mut rng, start, end, 5);
        assert!((36..=44).contains(&c.len()));
        for x in &c {
            assert!(x.start >= start && x.start <= x.end && x.end <= end);
            assert!(x.convert_rate <= x.click_rate && x.click_rate <= x.open_rate);
        }
        let short = build_campaigns(&mut rng, start, start + 3, 5);
        assert_eq!(short.len(), 1);
        assert!(short[0].end <= start + 3);
    }
}
