//! CSV: header row, comma separator, RFC 4180 quoting only where needed, `\n` line ends,
//! empty field for null.

use crate::contract::{Column, IdKind};
use crate::emit::RowSink;
use crate::render::{push_date, push_float, push_i64, push_id, push_money, push_ts};

/// Accumulates CSV text in memory; the owner drains `buf` to the file.
pub(crate) struct CsvSink {
    /// Rendered bytes not yet written to the file.
    pub buf: Vec<u8>,
    first: bool,
}

impl CsvSink {
    /// A sink whose buffer already holds the header line.
    pub(crate) fn new(columns: &[Column]) -> Self {
        let mut sink = CsvSink {
            buf: Vec::with_capacity(1 << 20),
            first: true,
        };
        for c in columns {
            sink.text(c.name);
        }
        sink.end_row();
        sink
    }

    #[inline]
    fn sep(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.buf.push(b',');
        }
    }
}

/// Whether a field must be quoted (RFC 4180).
#[inline]
fn needs_quotes(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

impl RowSink for CsvSink {
    #[inline]
    fn id(&mut self, kind: IdKind, n: u64) {
        self.sep();
        push_id(&mut self.buf, kind, n);
    }

    #[inline]
    fn sym(&mut self, s: &str) {
        self.sep();
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn text(&mut self, s: &str) {
        self.sep();
        if needs_quotes(s) {
            self.buf.push(b'"');
            for b in s.bytes() {
                if b == b'"' {
                    self.buf.push(b'"');
                }
                self.buf.push(b);
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(s.as_bytes());
        }
    }

    #[inline]
    fn int(&mut self, v: i64) {
        self.sep();
        push_i64(&mut self.buf, v);
    }

    #[inline]
    fn money(&mut self, cents: i64) {
        self.sep();
        push_money(&mut self.buf, cents);
    }

    fn float(&mut self, v: f64) {
        self.sep();
        push_float(&mut self.buf, v);
    }

    #[inline]
    fn boolean(&mut self, v: bool) {
        self.sep();
        self.buf
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
    }

    #[inline]
    fn date(&mut self, days: i32) {
        self.sep();
        push_date(&mut self.buf, days);
    }

    #[inline]
    fn ts(&mut self, secs: i64) {
        self.sep();
        push_ts(&mut self.buf, secs);
    }

    #[inline]
    fn null(&mut self) {
        self.sep();
    }

    #[inline]
    fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.first = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Entity;

    #[test]
    fn quotes_only_when_needed() {
        let mut s = CsvSink::new(Entity::Regions.columns());
        s.text("plain");
        s.text("Monitor 27\", 4K");
        s.null();
        s.money(1230);
        s.boolean(false);
        s.end_row();
        let text = String::from_utf8_lossy(&s.buf).into_owned();
        assert_eq!(
            text,
            "region_id,city,country,country_code,region\nplain,\"Monitor 27\"\", 4K\",,12.30,false\n"
        );
    }
}
