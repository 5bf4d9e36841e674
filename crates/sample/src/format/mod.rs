//! The three export formats, each a [`RowSink`](crate::emit::RowSink).

pub(crate) mod csv;
pub(crate) mod jsonl;
pub(crate) mod parquet;
