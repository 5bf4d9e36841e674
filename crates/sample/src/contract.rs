//! The files the generator writes and their columns, mirroring `schemas/oltp.yaml` (a unit
//! test checks the two agree column for column), plus the ground-truth file.

/// Column types of the export contract (plus `Float` for the ground-truth file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnType {
    /// UTF-8 text.
    Str,
    /// 64-bit integer.
    Int,
    /// Decimal with scale 2 (money).
    Decimal,
    /// Boolean.
    Bool,
    /// Calendar date.
    Date,
    /// Timestamp without zone, second precision.
    Timestamp,
    /// Floating point (ground truth only).
    Float,
}

/// One column of an output file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    /// Column name.
    pub name: &'static str,
    /// Column type.
    pub ty: ColumnType,
    /// Whether the column may be null.
    pub nullable: bool,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn null(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

use ColumnType::*;

/// An output file of the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entity {
    /// `regions`
    Regions,
    /// `customers`
    Customers,
    /// `products`
    Products,
    /// `campaigns`
    Campaigns,
    /// `orders`
    Orders,
    /// `order_lines`
    OrderLines,
    /// `campaign_contacts`
    CampaignContacts,
    /// `web_sessions`
    WebSessions,
    /// `cart_events`
    CartEvents,
    /// `email_events`
    EmailEvents,
    /// `tickets`
    Tickets,
    /// `_truth` (always CSV; ignored by ingest because of the leading underscore)
    Truth,
}

impl Entity {
    /// The eleven contract entities, in the order their files are written and reported.
    pub(crate) const CONTRACT: [Entity; 11] = [
        Entity::Regions,
        Entity::Customers,
        Entity::Products,
        Entity::Campaigns,
        Entity::Orders,
        Entity::OrderLines,
        Entity::CampaignContacts,
        Entity::WebSessions,
        Entity::CartEvents,
        Entity::EmailEvents,
        Entity::Tickets,
    ];

    /// File stem.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Entity::Regions => "regions",
            Entity::Customers => "customers",
            Entity::Products => "products",
            Entity::Campaigns => "campaigns",
            Entity::Orders => "orders",
            Entity::OrderLines => "order_lines",
            Entity::CampaignContacts => "campaign_contacts",
            Entity::WebSessions => "web_sessions",
            Entity::CartEvents => "cart_events",
            Entity::EmailEvents => "email_events",
            Entity::Tickets => "tickets",
            Entity::Truth => "_truth",
        }
    }

    /// Whether the rows come from the static world rather than from customers.
    pub(crate) fn is_static(self) -> bool {
        matches!(self, Entity::Regions | Entity::Products | Entity::Campaigns)
    }

    /// Columns in file order.
    pub(crate) fn columns(self) -> &'static [Column] {
        match self {
            Entity::Regions => {
                const COLUMNS: &[Column] = &[
                    col("region_id", Str),
                    col("city", Str),
                    col("country", Str),
                    col("country_code", Str),
                    col("region", Str),
                ];
                COLUMNS
            }
            Entity::Customers => {
                const COLUMNS: &[Column] = &[
                    col("customer_id", Str),
                    col("updated_at", Timestamp),
                    null("email", Str),
                    null("first_name", Str),
                    null("last_name", Str),
                    null("birth_date", Date),
                    null("gender", Str),
                    col("signup_date", Date),
                    col("acquisition_channel", Str),
                    col("segment", Str),
                    col("region_id", Str),
                    col("opt_in_email", Bool),
                    col("opt_in_sms", Bool),
                ];
                COLUMNS
            }
            Entity::Products => {
                const COLUMNS: &[Column] = &[
                    col("product_id", Str),
                    col("name", Str),
                    col("category", Str),
                    col("subcategory", Str),
                    col("brand", Str),
                    col("list_price", Decimal),
                    col("unit_cost", Decimal),
                    null("launched_on", Date),
                    col("active", Bool),
                ];
                COLUMNS
            }
            Entity::Campaigns => {
                const COLUMNS: &[Column] = &[
                    col("campaign_id", Str),
                    col("name", Str),
                    col("channel", Str),
                    col("objective", Str),
                    col("start_date", Date),
                    col("end_date", Date),
                    col("budget", Decimal),
                ];
                COLUMNS
            }
            Entity::Orders => {
                const COLUMNS: &[Column] = &[
                    col("order_id", Str),
                    col("customer_id", Str),
                    col("order_ts", Timestamp),
                    col("channel", Str),
                    col("region_id", Str),
                    null("campaign_id", Str),
                ];
                COLUMNS
            }
            Entity::OrderLines => {
                const COLUMNS: &[Column] = &[
                    col("order_id", Str),
                    col("line_no", Int),
                    col("product_id", Str),
                    col("quantity", Int),
                    col("unit_price", Decimal),
                    col("discount", Decimal),
                    col("returned", Bool),
                ];
                COLUMNS
            }
            Entity::CampaignContacts => {
                const COLUMNS: &[Column] = &[
                    col("contact_id", Str),
                    col("campaign_id", Str),
                    col("customer_id", Str),
                    col("sent_ts", Timestamp),
                    col("opened", Bool),
                    col("clicked", Bool),
                    col("converted", Bool),
                ];
                COLUMNS
            }
            Entity::WebSessions => {
                const COLUMNS: &[Column] = &[
                    col("session_id", Str),
                    null("customer_id", Str),
                    col("started_at", Timestamp),
                    col("device", Str),
                    col("traffic_source", Str),
                    col("pages_viewed", Int),
                    col("duration_s", Int),
                ];
                COLUMNS
            }
            Entity::CartEvents => {
                const COLUMNS: &[Column] = &[
                    col("event_id", Str),
                    col("session_id", Str),
                    null("customer_id", Str),
                    col("event_ts", Timestamp),
                    col("event_type", Str),
                    null("product_id", Str),
                    col("quantity", Int),
                ];
                COLUMNS
            }
            Entity::EmailEvents => {
                const COLUMNS: &[Column] = &[
                    col("event_id", Str),
                    col("customer_id", Str),
                    null("campaign_id", Str),
                    col("event_ts", Timestamp),
                    col("event_type", Str),
                ];
                COLUMNS
            }
            Entity::Tickets => {
                const COLUMNS: &[Column] = &[
                    col("ticket_id", Str),
                    col("customer_id", Str),
                    null("order_id", Str),
                    col("opened_at", Timestamp),
                    null("closed_at", Timestamp),
                    col("channel", Str),
                    col("category", Str),
                    col("priority", Str),
                    col("is_complaint", Bool),
                    null("satisfaction_score", Int),
                ];
                COLUMNS
            }
            Entity::Truth => {
                const COLUMNS: &[Column] = &[
                    col("customer_id", Str),
                    col("lambda", Float),
                    col("dropout_p", Float),
                    col("mean_spend", Float),
                    null("dropped_out_on", Date),
                    col("alive_at_end", Bool),
                    col("purchases", Int),
                ];
                COLUMNS
            }
        }
    }
}

/// How generated keys look: a prefix and a zero-padded counter, so that sorting the keys as
/// strings gives generation order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdKind {
    /// Leading letters.
    pub prefix: &'static str,
    /// Digits after the prefix (wider numbers still print in full).
    pub width: usize,
}

/// `C0000001`
pub(crate) const CUSTOMER_ID: IdKind = IdKind {
    prefix: "C",
    width: 7,
};
/// `O000000001`
pub(crate) const ORDER_ID: IdKind = IdKind {
    prefix: "O",
    width: 9,
};
/// `CC0000000001`
pub(crate) const CONTACT_ID: IdKind = IdKind {
    prefix: "CC",
    width: 10,
};
/// `S0000000001`
pub(crate) const SESSION_ID: IdKind = IdKind {
    prefix: "S",
    width: 10,
};
/// `CE00000000001`
pub(crate) const CART_EVENT_ID: IdKind = IdKind {
    prefix: "CE",
    width: 11,
};
/// `EE00000000001`
pub(crate) const EMAIL_EVENT_ID: IdKind = IdKind {
    prefix: "EE",
    width: 11,
};
/// `T00000001`
pub(crate) const TICKET_ID: IdKind = IdKind {
    prefix: "T",
    width: 8,
};

/// Largest customer count whose keys keep their fixed width.
pub(crate) const MAX_CUSTOMERS: usize = 9_999_999;
