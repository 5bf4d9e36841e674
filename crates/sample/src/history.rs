//! A customer's master-data history: the version at signup plus dated changes, from which
//! the SCD2 rows of `customers` are materialised and the state at any moment is read.

use crate::records::{CustomerVersion, Segment};

/// A change to tracked customer attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// Moved to another city.
    Move(u16),
    /// Reclassified into another segment.
    Segment(Segment),
    /// E-mail marketing consent given or withdrawn.
    OptInEmail(bool),
    /// SMS marketing consent given or withdrawn.
    OptInSms(bool),
    /// New (or first) e-mail address variant.
    Email(u8),
}

#[derive(Clone, Copy, Debug)]
struct Change {
    ts: i64,
    kind: ChangeKind,
}

/// Base version plus time-ordered changes.
#[derive(Clone, Debug)]
pub(crate) struct History {
    base: CustomerVersion,
    changes: Vec<Change>,
}

impl History {
    /// A history that starts with `base` (its `updated_at` is the signup moment).
    pub(crate) fn new(base: CustomerVersion) -> Self {
        History {
            base,
            changes: Vec::new(),
        }
    }

    /// Records a change at `ts`, keeping changes ordered (stable for equal times).
    pub(crate) fn push(&mut self, ts: i64, kind: ChangeKind) {
        let pos = self.changes.partition_point(|c| c.ts <= ts);
        self.changes.insert(pos, Change { ts, kind });
    }

    /// The attributes in effect at `ts`.
    pub(crate) fn state_at(&self, ts: i64) -> CustomerVersion {
        let mut v = self.base;
        for c in &self.changes {
            if c.ts > ts {
                break;
            }
            apply(&mut v, c.kind);
        }
        v
    }

    /// The attributes at signup.
    pub(crate) fn base(&self) -> &CustomerVersion {
        &self.base
    }

    /// One version per effective change, with strictly increasing `updated_at` no later
    /// than `end_ts`. Changes that alter nothing are dropped.
    pub(crate) fn into_versions(self, end_ts: i64) -> Vec<CustomerVersion> {
        let mut out = Vec::with_capacity(1 + self.changes.len());
        let mut current = self.base;
        out.push(current);
        for c in self.changes {
            let mut next = current;
            apply(&mut next, c.kind);
            if same_tracked(&next, &current) {
                continue;
            }
            // Keep (customer_id, updated_at) unique: never two versions in the same second.
            let ts = c.ts.max(current.updated_at + 1);
            if ts > end_ts {
                break;
            }
            next.updated_at = ts;
            out.push(next);
            current = next;
        }
        out
    }
}

fn apply(v: &mut CustomerVersion, kind: ChangeKind) {
    match kind {
        ChangeKind::Move(city) => v.city = city,
        ChangeKind::Segment(s) => v.segment = s,
        ChangeKind::OptInEmail(b) => v.opt_in_email = b,
        ChangeKind::OptInSms(b) => v.opt_in_sms = b,
        ChangeKind::Email(e) => v.email = Some(e),
    }
}

fn same_tracked(a: &CustomerVersion, b: &CustomerVersion) -> bool {
    a.email == b.email
        && a.segment == b.segment
        && a.city == b.city
        && a.opt_in_email == b.opt_in_email
        && a.opt_in_sms == b.opt_in_sms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_and_ordered() {
        let base = CustomerVersion {
            updated_at: 100,
            email: Some(0),
            segment: Segment::Consumer,
            city: 1,
            opt_in_email: true,
            opt_in_sms: false,
        };
        let mut h = History::new(base);
        h.push(500, ChangeKind::Move(3));
        h.push(200, ChangeKind::OptInEmail(false));
        h.push(200, ChangeKind::Segment(Segment::Corporate));
        h.push(300, ChangeKind::OptInSms(false));
        assert!(!h.state_at(250).opt_in_email);
        assert_eq!(h.state_at(499).city, 1);
        assert_eq!(h.state_at(500).city, 3);
        let v = h.into_versions(10_000);
        let ts: Vec<i64> = v.iter().map(|v| v.updated_at).collect();
        assert_eq!(ts, vec![100, 200, 201, 500]);
    }
}
