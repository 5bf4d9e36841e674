//! Writing warehouse tables as Parquet: dimensions as one file, facts partitioned by
//! month (`year=YYYY/month=MM`) and sorted inside each file so row-group statistics
//! prune well. All files are zstd-compressed.

use arrow::array::{AsArray, Int32Array, RecordBatch};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::TimestampMicrosecondType;
use crmcube_model::{Error, Result};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per row group: small enough for useful min/max pruning, big enough to compress.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// What was written for one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenTable {
    /// Table name.
    pub table: String,
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("crmcube {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Writes one Parquet file.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(Error::format(path.display(), "nothing to write")),
    };
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = ArrowWriter::try_new(file, schema, Some(properties()))
        .map_err(|e| Error::format(path.display(), e))?;
    for b in batches {
        w.write(b).map_err(|e| Error::format(path.display(), e))?;
    }
    let f = w.into_inner().map_err(|e| Error::format(path.display(), e))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok(len)
}

/// Writes a table into `dir/<table>/`: partitioned by the month of `partition_by` when
/// given, sorted by `sort_by` inside each file.
pub fn write_table(
    dir: &Path,
    table: &str,
    partition_by: Option<&str>,
    sort_by: &[String],
    batch: &RecordBatch,
) -> Result<WrittenTable> {
    let root = dir.join(table);
    let rows = batch.num_rows() as u64;
    let Some(part_col) = partition_by else {
        let sorted = sort(table, sort_by, batch, None)?;
        let bytes = write_parquet(&root.join("part-00000.parquet"), &[sorted])?;
        return Ok(WrittenTable { table: table.into(), rows, files: 1, bytes });
    };
    if batch.num_rows() == 0 {
        // An empty table is still a table: one empty file keeps its schema readable.
        let bytes = write_parquet(&root.join("part-00000.parquet"), std::slice::from_ref(batch))?;
        return Ok(WrittenTable { table: table.into(), rows, files: 1, bytes });
    }
    let month = sorted_partition(batch, part_col)?;
    let sorted = sort(table, sort_by, batch, Some(&month))?;
    let sorted_month = sorted_partition(&sorted, part_col)?;
    // Contiguous runs of one month become one file each.
    let mut runs: Vec<(i32, usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=sorted_month.len() {
        if i == sorted_month.len() || sorted_month.value(i) != sorted_month.value(start) {
            runs.push((sorted_month.value(start), start, i - start));
            start = i;
        }
    }
    let written: Vec<Result<u64>> = runs
        .par_iter()
        .map(|&(ym, off, len)| {
            let path: PathBuf = root
                .join(format!("year={:04}", ym / 100))
                .join(format!("month={:02}", ym % 100))
                .join("part-00000.parquet");
            write_parquet(&path, &[sorted.slice(off, len)])
        })
        .collect();
    let mut bytes = 0;
    for w in written {
        bytes += w?;
    }
    Ok(WrittenTable { table: table.into(), rows, files: runs.len() as u64, bytes })
}

/// The `YYYYMM` month of each row's partition timestamp.
fn sorted_partition(batch: &RecordBatch, part_col: &str) -> Result<Int32Array> {
    let ts = batch
        .column_by_name(part_col)
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| Error::format(part_col, "partition column is not a timestamp"))?;
    Ok(ts
        .iter()
        .map(|v| v.map(|t| crate::value::date_key_of_micros(t) / 100))
        .collect())
}

fn sort(table: &str, sort_by: &[String], batch: &RecordBatch, month: Option<&Int32Array>) -> Result<RecordBatch> {
    let mut cols: Vec<SortColumn> = Vec::new();
    if let Some(m) = month {
        cols.push(SortColumn { values: Arc::new(m.clone()), options: None });
    }
    for s in sort_by {
        if let Some(a) = batch.column_by_name(s) {
            cols.push(SortColumn { values: a.clone(), options: None });
        }
    }
    if cols.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let idx = lexsort_to_indices(&cols, None).map_err(|e| Error::format(table, e))?;
    take_record_batch(batch, &idx).map_err(|e| Error::format(table, e))
}
