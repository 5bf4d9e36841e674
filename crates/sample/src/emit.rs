//! Turning simulated records into rows, independent of the file format: every format
//! implements [`RowSink`], and the functions here call it field by field in contract order.

use crate::contract::{
    Entity, IdKind, CART_EVENT_ID, CONTACT_ID, CUSTOMER_ID, EMAIL_EVENT_ID, ORDER_ID, SESSION_ID,
    TICKET_ID,
};
use crate::customers::email_address;
use crate::records::CustomerRecords;
use crate::world::World;

/// Receives the fields of one row after another, in column order.
pub(crate) trait RowSink {
    /// A generated key.
    fn id(&mut self, kind: IdKind, n: u64);
    /// A generated key or null.
    fn opt_id(&mut self, kind: IdKind, n: Option<u64>) {
        match n {
            Some(n) => self.id(kind, n),
            None => self.null(),
        }
    }
    /// A string known to need no quoting or escaping (keys, codes, contract values).
    fn sym(&mut self, s: &str);
    /// Free text (may need quoting / escaping).
    fn text(&mut self, s: &str);
    /// Free text or null.
    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }
    /// A contract value or null.
    fn opt_sym(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.sym(s),
            None => self.null(),
        }
    }
    /// An integer.
    fn int(&mut self, v: i64);
    /// An integer or null.
    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    /// A decimal with scale 2, given in hundredths.
    fn money(&mut self, cents: i64);
    /// A float (ground truth only), rendered with 6 decimals.
    fn float(&mut self, v: f64);
    /// A boolean.
    fn boolean(&mut self, v: bool);
    /// A date (day number).
    fn date(&mut self, days: i32);
    /// A date or null.
    fn opt_date(&mut self, days: Option<i32>) {
        match days {
            Some(d) => self.date(d),
            None => self.null(),
        }
    }
    /// A timestamp (seconds since the epoch, UTC).
    fn ts(&mut self, secs: i64);
    /// A timestamp or null.
    fn opt_ts(&mut self, secs: Option<i64>) {
        match secs {
            Some(s) => self.ts(s),
            None => self.null(),
        }
    }
    /// A null value.
    fn null(&mut self);
    /// Ends the current row.
    fn end_row(&mut self);
}

/// Writes the rows of a static entity; returns the number of rows.
pub(crate) fn emit_static<S: RowSink>(entity: Entity, world: &World, sink: &mut S) -> u64 {
    match entity {
        Entity::Regions => {
            for c in &world.cities {
                sink.sym(&c.id);
                sink.text(c.city);
                sink.text(c.country);
                sink.sym(c.country_code);
                sink.text(c.region);
                sink.end_row();
            }
            world.cities.len() as u64
        }
        Entity::Products => {
            for p in &world.catalog.products {
                sink.sym(&p.id);
                sink.text(&p.name);
                sink.text(world.catalog.categories[p.category].name);
                sink.text(p.subcategory);
                sink.text(p.brand);
                sink.money(p.list_cents);
                sink.money(p.cost_cents);
                sink.opt_date(p.launched_on);
                sink.boolean(p.active());
                sink.end_row();
            }
            world.catalog.products.len() as u64
        }
        Entity::Campaigns => {
            for c in &world.campaigns {
                sink.sym(&c.id);
                sink.text(&c.name);
                sink.sym(c.channel.as_str());
                sink.sym(c.objective.as_str());
                sink.date(c.start);
                sink.date(c.end);
                sink.money(c.budget_cents);
                sink.end_row();
            }
            world.campaigns.len() as u64
        }
        _ => 0,
    }
}

/// A batch of consecutive customers with the global numbering they start from.
pub(crate) struct Chunk {
    /// 0-based index of the first customer.
    pub first: u64,
    /// The customers' records.
    pub customers: Vec<CustomerRecords>,
    /// For each customer, how many orders all earlier customers have.
    pub order_base: Vec<u64>,
    /// For each customer, how many sessions all earlier customer slots have.
    pub session_base: Vec<u64>,
}

impl Chunk {
    /// Builds a chunk, numbering its orders and sessions after `orders` / `sessions`
    /// earlier ones, and advances both counters.
    pub(crate) fn new(
        first: u64,
        customers: Vec<CustomerRecords>,
        orders: &mut u64,
        sessions: &mut u64,
    ) -> Self {
        let mut order_base = Vec::with_capacity(customers.len());
        let mut session_base = Vec::with_capacity(customers.len());
        for c in &customers {
            order_base.push(*orders);
            session_base.push(*sessions);
            *orders += c.orders.len() as u64;
            *sessions += c.sessions.len() as u64;
        }
        Chunk {
            first,
            customers,
            order_base,
            session_base,
        }
    }
}

/// Writes a chunk's rows of a customer-driven entity. `next_id` is the number of rows of
/// this entity written before (its keys continue from there); returns rows written.
pub(crate) fn emit_chunk<S: RowSink>(
    entity: Entity,
    world: &World,
    chunk: &Chunk,
    next_id: u64,
    sink: &mut S,
) -> u64 {
    let mut id = next_id;
    for (i, c) in chunk.customers.iter().enumerate() {
        let customer = chunk.first + i as u64 + 1;
        match entity {
            Entity::Customers => {
                let p = &c.profile;
                for v in &c.versions {
                    sink.id(CUSTOMER_ID, customer);
                    sink.ts(v.updated_at);
                    match v.email {
                        Some(variant) => sink.text(&email_address(p, customer, variant)),
                        None => sink.null(),
                    }
                    sink.opt_text(p.first_name);
                    sink.opt_text(p.last_name);
                    sink.opt_date(p.birth_date);
                    sink.opt_sym(p.gender.map(|g| g.as_str()));
                    sink.date(p.signup_ts.div_euclid(86_400) as i32);
                    sink.sym(p.acquisition.as_str());
                    sink.sym(v.segment.as_str());
                    sink.sym(&world.cities[v.city as usize].id);
                    sink.boolean(v.opt_in_email);
                    sink.boolean(v.opt_in_sms);
                    sink.end_row();
                    id += 1;
                }
            }
            Entity::Orders => {
                for o in &c.orders {
                    id += 1;
                    sink.id(ORDER_ID, id);
                    sink.id(CUSTOMER_ID, customer);
                    sink.ts(o.ts);
                    sink.sym(o.channel.as_str());
                    sink.sym(&world.cities[o.city as usize].id);
                    sink.opt_sym(o.campaign.map(|k| world.campaigns[k as usize].id.as_str()));
                    sink.end_row();
                }
            }
            Entity::OrderLines => {
                for l in &c.lines {
                    sink.id(ORDER_ID, chunk.order_base[i] + u64::from(l.order) + 1);
                    sink.int(i64::from(l.line_no));
                    sink.sym(&world.catalog.products[l.product as usize].id);
                    sink.int(i64::from(l.quantity));
                    sink.money(l.unit_cents);
                    sink.money(l.discount_cents);
                    sink.boolean(l.returned);
                    sink.end_row();
                    id += 1;
                }
            }
            Entity::CampaignContacts => {
                for k in &c.contacts {
                    id += 1;
                    sink.id(CONTACT_ID, id);
                    sink.sym(&world.campaigns[k.campaign as usize].id);
                    sink.id(CUSTOMER_ID, customer);
                    sink.ts(k.sent);
                    sink.boolean(k.opened);
                    sink.boolean(k.clicked);
                    sink.boolean(k.converted);
                    sink.end_row();
                }
            }
            Entity::WebSessions => {
                for s in &c.sessions {
                    id += 1;
                    sink.id(SESSION_ID, id);
                    sink.opt_id(CUSTOMER_ID, (!s.anonymous).then_some(customer));
                    sink.ts(s.start);
                    sink.sym(s.device.as_str());
                    sink.sym(s.source.as_str());
                    sink.int(i64::from(s.pages));
                    sink.int(i64::from(s.duration));
                    sink.end_row();
                }
            }
            Entity::CartEvents => {
                for e in &c.cart_events {
                    id += 1;
                    let anonymous = c.sessions[e.session as usize].anonymous;
                    sink.id(CART_EVENT_ID, id);
                    sink.id(SESSION_ID, chunk.session_base[i] + u64::from(e.session) + 1);
                    sink.opt_id(CUSTOMER_ID, (!anonymous).then_some(customer));
                    sink.ts(e.ts);
                    sink.sym(e.kind.as_str());
                    sink.opt_sym(
                        e.product
                            .map(|p| world.catalog.products[p as usize].id.as_str()),
                    );
                    sink.int(i64::from(e.quantity));
                    sink.end_row();
                }
            }
            Entity::EmailEvents => {
                for e in &c.email_events {
                    id += 1;
                    sink.id(EMAIL_EVENT_ID, id);
                    sink.id(CUSTOMER_ID, customer);
                    sink.opt_sym(e.campaign.map(|k| world.campaigns[k as usize].id.as_str()));
                    sink.ts(e.ts);
                    sink.sym(e.kind.as_str());
                    sink.end_row();
                }
            }
            Entity::Tickets => {
                for t in &c.tickets {
                    id += 1;
                    sink.id(TICKET_ID, id);
                    sink.id(CUSTOMER_ID, customer);
                    sink.opt_id(
                        ORDER_ID,
                        t.order.map(|o| chunk.order_base[i] + u64::from(o) + 1),
                    );
                    sink.ts(t.opened);
                    sink.opt_ts(t.closed);
                    sink.sym(t.channel.as_str());
                    sink.sym(t.category.as_str());
                    sink.sym(t.priority.as_str());
                    sink.boolean(t.complaint);
                    sink.opt_int(t.satisfaction.map(i64::from));
                    sink.end_row();
                }
            }
            Entity::Truth => {
                let t = &c.truth;
                sink.id(CUSTOMER_ID, customer);
                sink.float(t.lambda);
                sink.float(t.dropout_p);
                sink.float(t.mean_spend);
                sink.opt_date(t.dropped_out_on);
                sink.boolean(t.dropped_out_on.is_none());
                sink.int(i64::from(t.purchases));
                sink.end_row();
                id += 1;
            }
            Entity::Regions | Entity::Products | Entity::Campaigns => {}
        }
    }
    id - next_id
}
