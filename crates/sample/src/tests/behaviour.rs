//! The simulated behaviour hangs together: funnels, e-mail events, attribution, ground
//! truth, master-data versions and cart events agree with each other.

use std::collections::{HashMap, HashSet};

use super::support::{read_export, sample, small, Table};
use crate::ExportFormat;

fn by<'a>(t: &'a Table, row: &'a [String], col: &str) -> &'a str {
    row[t.col(col)].as_str()
}

#[test]
fn campaign_funnels_and_email_events_are_consistent() {
    let dir = sample(&small(500, 21), ExportFormat::Csv);
    let tables = read_export(dir.path());
    let (contacts, campaigns, emails, orders) = (
        &tables["campaign_contacts"],
        &tables["campaigns"],
        &tables["email_events"],
        &tables["orders"],
    );
    let channel: HashMap<&str, &str> = campaigns
        .rows
        .iter()
        .map(|r| (by(campaigns, r, "campaign_id"), by(campaigns, r, "channel")))
        .collect();
    let mut events: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    for r in &emails.rows {
        let campaign = by(emails, r, "campaign_id");
        if !campaign.is_empty() {
            assert_eq!(
                channel[campaign], "email",
                "email event for a non-email campaign"
            );
            events
                .entry((by(emails, r, "customer_id"), campaign))
                .or_default()
                .insert(by(emails, r, "event_type"));
        }
    }
    let mut campaign_orders: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for r in &orders.rows {
        let campaign = by(orders, r, "campaign_id");
        if !campaign.is_empty() {
            campaign_orders
                .entry((by(orders, r, "customer_id"), campaign))
                .or_default()
                .push(by(orders, r, "order_ts"));
        }
    }
    let mut contacted: HashMap<(&str, &str), &str> = HashMap::new();
    let (mut opened, mut clicked, mut converted) = (0usize, 0usize, 0usize);
    for r in &contacts.rows {
        let (o, c, v) = (
            by(contacts, r, "opened") == "true",
            by(contacts, r, "clicked") == "true",
            by(contacts, r, "converted") == "true",
        );
        assert!(!c || o, "clicked without opening: {r:?}");
        assert!(!v || c, "converted without clicking: {r:?}");
        opened += usize::from(o);
        clicked += usize::from(c);
        converted += usize::from(v);
        let key = (
            by(contacts, r, "customer_id"),
            by(contacts, r, "campaign_id"),
        );
        assert!(
            contacted.insert(key, by(contacts, r, "sent_ts")).is_none(),
            "contacted twice: {key:?}"
        );
        if v {
            let sent = by(contacts, r, "sent_ts");
            let later = campaign_orders
                .get(&key)
                .is_some_and(|ts| ts.iter().any(|t| *t >= sent));
            assert!(
                later,
                "converted contact without an attributed order: {r:?}"
            );
        }
        if channel[key.1] == "email" {
            let ev = events.get(&key).cloned().unwrap_or_default();
            assert_eq!(ev.contains("open"), o, "open event vs opened flag: {r:?}");
            assert_eq!(
                ev.contains("click"),
                c,
                "click event vs clicked flag: {r:?}"
            );
            assert!(
                ev.contains("delivered") != ev.contains("bounce"),
                "delivered xor bounce: {r:?}"
            );
        }
    }
    // Every email event of a campaign belongs to a contact.
    for key in events.keys() {
        assert!(
            contacted.contains_key(key),
            "email event without contact: {key:?}"
        );
    }
    // Attributed orders come after a contact by that campaign.
    for (key, ts) in &campaign_orders {
        let sent = contacted
            .get(key)
            .unwrap_or_else(|| panic!("attributed without contact: {key:?}"));
        assert!(
            ts.iter().all(|t| t >= sent),
            "order before contact: {key:?}"
        );
    }
    let n = contacts.rows.len() as f64;
    let (open, click, conv) = (opened as f64 / n, clicked as f64 / n, converted as f64 / n);
    assert!((0.15..0.45).contains(&open), "open rate {open}");
    assert!((0.01..0.10).contains(&click), "click rate {click}");
    assert!((0.002..0.04).contains(&conv), "convert rate {conv}");
    let attributed =
        campaign_orders.values().map(Vec::len).sum::<usize>() as f64 / orders.rows.len() as f64;
    assert!(
        (0.07..0.25).contains(&attributed),
        "attributed share {attributed}"
    );
}

#[test]
fn ground_truth_matches_the_data() {
    let dir = sample(&small(500, 22), ExportFormat::Csv);
    let tables = read_export(dir.path());
    let (truth, orders) = (&tables["_truth"], &tables["orders"]);
    let mut per_customer: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in &orders.rows {
        per_customer
            .entry(by(orders, r, "customer_id"))
            .or_default()
            .push(by(orders, r, "order_ts"));
    }
    let mut alive = 0;
    for r in &truth.rows {
        let id = by(truth, r, "customer_id");
        let ts = per_customer.get(id).cloned().unwrap_or_default();
        assert_eq!(
            by(truth, r, "purchases").parse::<usize>().ok(),
            Some(ts.len()),
            "{id}"
        );
        let dropped = by(truth, r, "dropped_out_on");
        assert_eq!(by(truth, r, "alive_at_end") == "true", dropped.is_empty());
        if dropped.is_empty() {
            alive += 1;
        } else {
            assert!(
                ts.iter().all(|t| &t[..10] <= dropped),
                "{id} bought after dropping out"
            );
        }
        let lambda: f64 = by(truth, r, "lambda").parse().expect("lambda");
        let p: f64 = by(truth, r, "dropout_p").parse().expect("p");
        assert!(lambda > 0.0 && (0.0..=1.0).contains(&p));
    }
    let share = f64::from(alive) / truth.rows.len() as f64;
    assert!((0.4..0.9).contains(&share), "alive share {share}");
}

#[test]
fn customer_versions_and_cart_events_are_plausible() {
    let dir = sample(&small(600, 23), ExportFormat::Csv);
    let tables = read_export(dir.path());
    let customers = &tables["customers"];
    let mut versions: HashMap<&str, usize> = HashMap::new();
    let mut email_owner: HashMap<&str, &str> = HashMap::new();
    for r in &customers.rows {
        let id = by(customers, r, "customer_id");
        *versions.entry(id).or_default() += 1;
        let email = by(customers, r, "email");
        if !email.is_empty() {
            let owner = email_owner.entry(email).or_insert(id);
            assert_eq!(*owner, id, "e-mail {email} shared by two customers");
        }
    }
    let changed = versions.values().filter(|&&v| v > 1).count() as f64 / versions.len() as f64;
    assert!(
        (0.08..0.25).contains(&changed),
        "share with SCD2 changes {changed}"
    );
    assert!(versions.values().all(|&v| v <= 4));

    let (sessions, events, orders) = (
        &tables["web_sessions"],
        &tables["cart_events"],
        &tables["orders"],
    );
    let owner: HashMap<&str, &str> = sessions
        .rows
        .iter()
        .map(|r| {
            (
                by(sessions, r, "session_id"),
                by(sessions, r, "customer_id"),
            )
        })
        .collect();
    let anonymous = owner.values().filter(|c| c.is_empty()).count() as f64 / owner.len() as f64;
    assert!(
        (0.2..0.4).contains(&anonymous),
        "anonymous share {anonymous}"
    );
    let order_times: HashSet<(&str, &str)> = orders
        .rows
        .iter()
        .map(|r| (by(orders, r, "customer_id"), by(orders, r, "order_ts")))
        .collect();
    for r in &events.rows {
        let kind = by(events, r, "event_type");
        let customer = by(events, r, "customer_id");
        assert_eq!(
            owner[by(events, r, "session_id")],
            customer,
            "event customer != session customer"
        );
        if by(events, r, "product_id").is_empty() {
            assert_eq!(kind, "abandon", "only abandons may lack a product");
        }
        if kind == "checkout" {
            assert!(
                order_times.contains(&(customer, by(events, r, "event_ts"))),
                "checkout without order: {r:?}"
            );
        }
    }
    let lines = &tables["order_lines"];
    for r in &lines.rows {
        let gross = by(lines, r, "unit_price").parse::<f64>().expect("price")
            * by(lines, r, "quantity").parse::<f64>().expect("qty");
        let discount: f64 = by(lines, r, "discount").parse().expect("discount");
        assert!(discount <= gross + 1e-9, "discount above line value: {r:?}");
    }
}
