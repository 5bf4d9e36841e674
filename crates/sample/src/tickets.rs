//! Service tickets: category, complaint flag, priority, resolution time and satisfaction,
//! and whether a complaint went unresolved (which raises the customer's dropout risk).

use crate::calendar::{DAY, HOUR};
use crate::records::{Priority, Ticket, TicketCategory, TicketChannel};
use crate::rng::Rng;

/// Probability that an unresolved complaint makes the customer leave.
pub(crate) const UNRESOLVED_COMPLAINT_DROPOUT: f64 = 0.5;

/// Resolution slower than this (hours) counts as unresolved for a complaint.
const UNRESOLVED_AFTER_HOURS: f64 = 120.0;

/// A drawn ticket and whether it is an unresolved complaint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TicketDraw {
    /// The ticket row (order reference is local and may be remapped later).
    pub ticket: Ticket,
    /// Complaint that was never closed, or only after more than five days.
    pub unresolved_complaint: bool,
}

/// Category of a ticket that is not triggered by a specific order event.
pub(crate) fn background_category(rng: &mut Rng) -> TicketCategory {
    rng.pick(&[
        (TicketCategory::Billing, 0.25),
        (TicketCategory::Account, 0.25),
        (TicketCategory::Other, 0.20),
        (TicketCategory::Delivery, 0.15),
        (TicketCategory::ProductQuality, 0.15),
    ])
}

/// Draws the outcome of a ticket opened at `opened`.
pub(crate) fn draw_ticket(
    rng: &mut Rng,
    opened: i64,
    category: TicketCategory,
    order: Option<u32>,
    end_ts: i64,
    near_store: bool,
) -> TicketDraw {
    let complaint_p = match category {
        TicketCategory::Delivery => 0.40,
        TicketCategory::Billing => 0.25,
        TicketCategory::ProductQuality => 0.45,
        TicketCategory::Returns => 0.25,
        TicketCategory::Account => 0.08,
        TicketCategory::Other => 0.12,
    };
    let complaint = rng.chance(complaint_p);
    let priority = if complaint {
        rng.pick(&[
            (Priority::Low, 0.15),
            (Priority::Medium, 0.45),
            (Priority::High, 0.40),
        ])
    } else {
        rng.pick(&[
            (Priority::Low, 0.45),
            (Priority::Medium, 0.45),
            (Priority::High, 0.10),
        ])
    };
    let channel = rng.pick(&[
        (TicketChannel::Phone, 0.35),
        (TicketChannel::Email, 0.30),
        (TicketChannel::Chat, 0.27),
        (TicketChannel::Store, if near_store { 0.08 } else { 0.01 }),
    ]);
    let median_hours = match priority {
        Priority::High => 8.0,
        Priority::Medium => 24.0,
        Priority::Low => 60.0,
    } * if complaint { 1.5 } else { 1.0 };
    let hours = rng.lognormal(median_hours, 0.8).max(0.05);
    let never_closed = rng.chance(if complaint { 0.10 } else { 0.03 });
    let close_ts = opened + (hours * HOUR as f64) as i64;
    let closed = (!never_closed && close_ts <= end_ts).then_some(close_ts.max(opened + 60));
    let unresolved_complaint = complaint && (never_closed || hours > UNRESOLVED_AFTER_HOURS);
    // Surveys go out on closing; about 40% of customers never answer.
    let satisfaction = if closed.is_some() && rng.chance(0.6) {
        let s = if unresolved_complaint {
            rng.pick(&[(1u8, 0.6), (2, 0.4)])
        } else if complaint {
            rng.pick(&[(1u8, 0.12), (2, 0.28), (3, 0.35), (4, 0.18), (5, 0.07)])
        } else {
            rng.pick(&[(1u8, 0.03), (2, 0.07), (3, 0.20), (4, 0.40), (5, 0.30)])
        };
        Some(s)
    } else {
        None
    };
    TicketDraw {
        ticket: Ticket {
            order,
            opened,
            closed,
            channel,
            category,
            priority,
            complaint,
            satisfaction,
        },
        unresolved_complaint,
    }
}

/// When an unresolved complaint makes the customer leave: a few days after opening.
pub(crate) fn dropout_after_complaint(rng: &mut Rng, opened: i64) -> i64 {
    opened + rng.range_i64(DAY, 10 * DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_consistent() {
        let mut rng = Rng::from_seed(11);
        let mut complaints = 0;
        let mut answered = 0;
        let n = 5000;
        for _ in 0..n {
            let cat = background_category(&mut rng);
            let d = draw_ticket(&mut rng, 1_000_000, cat, None, 2_000_000_000, true);
            let t = d.ticket;
            if let Some(c) = t.closed {
                assert!(c > t.opened);
            } else {
                assert!(t.satisfaction.is_none());
            }
            if let Some(s) = t.satisfaction {
                assert!((1..=5).contains(&s));
                answered += 1;
            }
            if t.complaint {
                complaints += 1;
            }
            assert!(!d.unresolved_complaint || t.complaint);
        }
        let share = f64::from(complaints) / f64::from(n);
        assert!(share > 0.2 && share < 0.4, "{share}");
        assert!(answered > n / 2 && answered < n * 7 / 10, "{answered}");
    }
}
