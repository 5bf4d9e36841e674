//! The rows one simulated customer contributes to each entity, in compact form. IDs are
//! local (per customer) here; the writers turn them into global, zero-padded keys.

/// Defines a closed set of contract values with its text form.
macro_rules! contract_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant
            ),+
        }

        impl $name {
            /// The value as written in the export.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

contract_enum!(
    /// customers.gender
    Gender { F => "F", M => "M", X => "X" }
);
contract_enum!(
    /// customers.acquisition_channel
    Acquisition {
        Web => "web", Email => "email", Social => "social", PaidSearch => "paid_search",
        Referral => "referral", Store => "store", Affiliate => "affiliate",
    }
);
contract_enum!(
    /// customers.segment
    Segment { Consumer => "consumer", SmallBusiness => "small_business", Corporate => "corporate" }
);
contract_enum!(
    /// orders.channel
    OrderChannel {
        Web => "web", MobileApp => "mobile_app", Store => "store", Phone => "phone",
        Marketplace => "marketplace",
    }
);
contract_enum!(
    /// web_sessions.device
    Device { Desktop => "desktop", Mobile => "mobile", Tablet => "tablet" }
);
contract_enum!(
    /// web_sessions.traffic_source
    TrafficSource {
        Direct => "direct", Organic => "organic", Paid => "paid", Email => "email",
        Social => "social", Referral => "referral",
    }
);
contract_enum!(
    /// cart_events.event_type
    CartEventType { Add => "add", Remove => "remove", Abandon => "abandon", Checkout => "checkout" }
);
contract_enum!(
    /// email_events.event_type
    EmailEventType {
        Delivered => "delivered", Open => "open", Click => "click", Bounce => "bounce",
        Unsubscribe => "unsubscribe",
    }
);
contract_enum!(
    /// tickets.channel
    TicketChannel { Phone => "phone", Email => "email", Chat => "chat", Store => "store" }
);
contract_enum!(
    /// tickets.category
    TicketCategory {
        Delivery => "delivery", Billing => "billing", ProductQuality => "product_quality",
        Returns => "returns", Account => "account", Other => "other",
    }
);
contract_enum!(
    /// tickets.priority
    Priority { Low => "low", Medium => "medium", High => "high" }
);

/// Attributes of a customer that never change.
#[derive(Clone, Debug)]
pub(crate) struct Profile {
    /// First name (rarely unknown).
    pub first_name: Option<&'static str>,
    /// Last name (rarely unknown).
    pub last_name: Option<&'static str>,
    /// Birth date (day number), unknown for some.
    pub birth_date: Option<i32>,
    /// Gender, unknown for some.
    pub gender: Option<Gender>,
    /// Moment the account was created.
    pub signup_ts: i64,
    /// How the customer was acquired.
    pub acquisition: Acquisition,
}

/// One row of `customers` (an SCD2 version).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CustomerVersion {
    /// When this version became effective.
    pub updated_at: i64,
    /// E-mail address variant (see `email_address`), `None` when unknown.
    pub email: Option<u8>,
    /// Segment.
    pub segment: Segment,
    /// City index.
    pub city: u16,
    /// E-mail marketing consent.
    pub opt_in_email: bool,
    /// SMS marketing consent.
    pub opt_in_sms: bool,
}

/// One row of `orders`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    /// Order timestamp.
    pub ts: i64,
    /// Sales channel.
    pub channel: OrderChannel,
    /// Ship-to or store city index.
    pub city: u16,
    /// Attributed campaign index.
    pub campaign: Option<u16>,
    /// True for orders of the BG/NBD purchase process, false for campaign-induced ones.
    pub natural: bool,
}

/// One row of `order_lines`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OrderLine {
    /// Local index of the order (position in the customer's sorted orders).
    pub order: u32,
    /// 1-based line number.
    pub line_no: u8,
    /// Product index.
    pub product: u16,
    /// Units.
    pub quantity: u32,
    /// Unit price in cents.
    pub unit_cents: i64,
    /// Discount on the whole line in cents.
    pub discount_cents: i64,
    /// Whether the line was returned.
    pub returned: bool,
}

/// One row of `campaign_contacts`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Contact {
    /// Campaign index.
    pub campaign: u16,
    /// When the message / impression was sent.
    pub sent: i64,
    /// Opened (or viewed).
    pub opened: bool,
    /// Clicked.
    pub clicked: bool,
    /// Led to an order attributed to the campaign.
    pub converted: bool,
}

/// One row of `web_sessions`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Session {
    /// Session start.
    pub start: i64,
    /// No logged-in customer.
    pub anonymous: bool,
    /// Device.
    pub device: Device,
    /// Traffic source.
    pub source: TrafficSource,
    /// Pages viewed.
    pub pages: u32,
    /// Duration in seconds.
    pub duration: u32,
}

/// One row of `cart_events`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CartEvent {
    /// Local index of the session.
    pub session: u32,
    /// Event timestamp.
    pub ts: i64,
    /// Kind of event.
    pub kind: CartEventType,
    /// Product index; `None` only for whole-cart abandons.
    pub product: Option<u16>,
    /// Units (0 allowed).
    pub quantity: u32,
}

/// One row of `email_events`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EmailEvent {
    /// Event timestamp.
    pub ts: i64,
    /// Campaign index; `None` for newsletter / preference-centre events.
    pub campaign: Option<u16>,
    /// Kind of event.
    pub kind: EmailEventType,
}

/// One row of `tickets`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    /// Local index of the referenced order.
    pub order: Option<u32>,
    /// Opened at.
    pub opened: i64,
    /// Closed at; `None` while open or never resolved.
    pub closed: Option<i64>,
    /// Contact channel.
    pub channel: TicketChannel,
    /// Category.
    pub category: TicketCategory,
    /// Priority.
    pub priority: Priority,
    /// Complaint flag.
    pub complaint: bool,
    /// Satisfaction 1..5 when answered.
    pub satisfaction: Option<u8>,
}

/// The latent parameters and true outcome of a customer (`_truth.csv`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Truth {
    /// Purchase rate while alive, per day.
    pub lambda: f64,
    /// Dropout probability after each repeat purchase.
    pub dropout_p: f64,
    /// Expected order value (gross, before discounts) in currency units.
    pub mean_spend: f64,
    /// Day the customer became inactive, if it did before the end.
    pub dropped_out_on: Option<i32>,
    /// Number of orders exported for the customer.
    pub purchases: u32,
}

/// Everything one customer slot contributes to the export.
#[derive(Clone, Debug)]
pub(crate) struct CustomerRecords {
    /// Static attributes.
    pub profile: Profile,
    /// SCD2 versions, by `updated_at`.
    pub versions: Vec<CustomerVersion>,
    /// Orders by time.
    pub orders: Vec<Order>,
    /// Order lines by (order, line_no).
    pub lines: Vec<OrderLine>,
    /// Campaign contacts by sent time.
    pub contacts: Vec<Contact>,
    /// Web sessions (the customer's and anonymous ones of this slot) by start.
    pub sessions: Vec<Session>,
    /// Cart events by (session, time).
    pub cart_events: Vec<CartEvent>,
    /// E-mail events by time.
    pub email_events: Vec<EmailEvent>,
    /// Tickets by opening time.
    pub tickets: Vec<Ticket>,
    /// Ground truth.
    pub truth: Truth,
}
