//! JSON Lines: one object per row with the contract's column names; numbers (including
//! decimals, always with two digits after the point) as JSON numbers, dates and timestamps
//! as strings, null as `null`.

use crate::contract::{Column, IdKind};
use crate::emit::RowSink;
use crate::render::{push_date, push_float, push_i64, push_id, push_money, push_ts};

/// Accumulates JSON Lines text in memory; the owner drains `buf` to the file.
pub(crate) struct JsonlSink {
    /// Rendered bytes not yet written to the file.
    pub buf: Vec<u8>,
    /// Pre-rendered `{"name":` / `,"name":` per column.
    keys: Vec<Vec<u8>>,
    col: usize,
}

impl JsonlSink {
    /// A sink for rows with these columns.
    pub(crate) fn new(columns: &[Column]) -> Self {
        let keys = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut k = Vec::with_capacity(c.name.len() + 4);
                k.push(if i == 0 { b'{' } else { b',' });
                push_json_string(&mut k, c.name);
                k.push(b':');
                k
            })
            .collect();
        JsonlSink {
            buf: Vec::with_capacity(1 << 20),
            keys,
            col: 0,
        }
    }

    #[inline]
    fn key(&mut self) {
        if let Some(k) = self.keys.get(self.col) {
            self.buf.extend_from_slice(k);
        }
        self.col += 1;
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(b >> 4)]);
                buf.push(HEX[usize::from(b & 0xf)]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

impl RowSink for JsonlSink {
    #[inline]
    fn id(&mut self, kind: IdKind, n: u64) {
        self.key();
        self.buf.push(b'"');
        push_id(&mut self.buf, kind, n);
        self.buf.push(b'"');
    }

    #[inline]
    fn sym(&mut self, s: &str) {
        self.key();
        self.buf.push(b'"');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }

    fn text(&mut self, s: &str) {
        self.key();
        push_json_string(&mut self.buf, s);
    }

    #[inline]
    fn int(&mut self, v: i64) {
        self.key();
        push_i64(&mut self.buf, v);
    }

    #[inline]
    fn money(&mut self, cents: i64) {
        self.key();
        push_money(&mut self.buf, cents);
    }

    fn float(&mut self, v: f64) {
        self.key();
        push_float(&mut self.buf, v);
    }

    #[inline]
    fn boolean(&mut self, v: bool) {
        self.key();
        self.buf
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
    }

    #[inline]
    fn date(&mut self, days: i32) {
        self.key();
        self.buf.push(b'"');
        push_date(&mut self.buf, days);
        self.buf.push(b'"');
    }

    #[inline]
    fn ts(&mut self, secs: i64) {
        self.key();
        self.buf.push(b'"');
        push_ts(&mut self.buf, secs);
        self.buf.push(b'"');
    }

    #[inline]
    fn null(&mut self) {
        self.key();
        self.buf.extend_from_slice(b"null");
    }

    #[inline]
    fn end_row(&mut self) {
        self.buf.extend_from_slice(b"}\n");
        self.col = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Entity;

    #[test]
    fn renders_objects() {
        let mut s = JsonlSink::new(Entity::EmailEvents.columns());
        s.sym("EE1");
        s.sym("C1");
        s.null();
        s.ts(0);
        s.text("say \"hi\"\n");
        s.end_row();
        let text = String::from_utf8_lossy(&s.buf).into_owned();
        assert_eq!(
            text,
            "{\"event_id\":\"EE1\",\"customer_id\":\"C1\",\"campaign_id\":null,\
             \"event_ts\":\"1970-01-01T00:00:00\",\"event_type\":\"say \\\"hi\\\"\\n\"}\n"
        );
    }
}
