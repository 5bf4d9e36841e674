//! Writing warehouse tables as Parquet: dimensions as one file, facts partitioned by
//! month (`year=YYYY/month=MM`) and sorted inside each file so row-group statistics
//! prune well. All files are zstd-compressed; each file's sha256 is computed while it
//! is written.

use arrow::array::{Array, AsArray, Int32Array, RecordBatch, UInt32Array};
use arrow::compute::{
    concat_batches, interleave_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use crmcube_model::keys::FastSet;
use crmcube_model::{Error, Result};
use crmcube_store::{DataFile, HashingWriter};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Writer settings for a table: each column's encoding chosen from a sample of its
/// values (see [`Encoding::of`]).
fn properties(batch: &RecordBatch) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("crmcube {}", env!("CARGO_PKG_VERSION")));
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let path = ColumnPath::from(field.name().as_str());
        if scattered(col.as_ref()) {
            b = b.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
        }
        match Encoding::of(col.as_ref()) {
            Encoding::Dictionary => {}
            Encoding::Plain => b = b.set_column_dictionary_enabled(path, false),
            Encoding::Delta => {
                b = b
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, parquet::basic::Encoding::DELTA_BINARY_PACKED)
            }
            Encoding::DeltaBytes => {
                b = b
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, parquet::basic::Encoding::DELTA_BYTE_ARRAY)
            }
        }
    }
    b.build()
}

/// Whether min/max statistics of a string column could not skip anything: in each of
/// eight consecutive windows of a sample spread over the column (see
/// [`Encoding::SAMPLE`]), the values span at least nine tenths of the sample's
/// distinct values. That is the case of ids in no particular order and of labels that
/// every part of a file holds (an event type in a fact sorted by date), and computing
/// those statistics is a third of the cost of writing such a column. Columns whose
/// values come in runs or follow the sort order keep their statistics, and so does
/// any column too short or too uniform to judge.
fn scattered(a: &dyn Array) -> bool {
    let Some(s) = a.as_string_opt::<i32>() else {
        return false;
    };
    let values: Vec<&str> = Encoding::sample(a).map(|i| s.value(i)).collect();
    if values.len() < 64 {
        return false;
    }
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return false;
    }
    let rank = |v: &str| distinct.partition_point(|d| *d < v);
    values
        .chunks(values.len().div_ceil(8))
        .all(|w| match (w.iter().min(), w.iter().max()) {
            (Some(lo), Some(hi)) => (rank(hi) - rank(lo) + 1) * 10 >= distinct.len() * 9,
            _ => false,
        })
}

/// How a column is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// A dictionary page and the values' indices (the writer falls back to plain when
    /// the dictionary grows too large).
    Dictionary,
    /// The values as they are.
    Plain,
    /// Differences between consecutive values, bit-packed (`DELTA_BINARY_PACKED`).
    Delta,
    /// Each string as the length of the prefix it shares with the string before it
    /// and the rest of its bytes (`DELTA_BYTE_ARRAY`).
    DeltaBytes,
}

impl Encoding {
    /// Values sampled to choose an encoding.
    const SAMPLE: usize = 4096;

    /// The encoding of a column, from up to [`Self::SAMPLE`] non-null values taken at
    /// even steps over it (the head of a sorted column can be one long run that says
    /// nothing about the rest).
    ///
    /// A dictionary pays only when values repeat: a column whose sample is more than
    /// half distinct is written without one, since building a dictionary only to
    /// abandon it costs time and gains nothing. Such timestamps are delta-encoded:
    /// events of one partition lie close together in time, so their differences take
    /// fewer bits than the values, and encoding them is cheaper than compressing the
    /// plain values. (Distinct integers stay plain: surrogate keys are hashes spread
    /// over 63 bits, whose differences save little and cost more to encode.) Such
    /// strings whose neighbours share most of their bytes from the start (numbered
    /// ids listed about in order) are written as the rest of each after the prefix it
    /// shares with the one before: fewer bytes to compress, and faster to write.
    ///
    /// Numbers that come in long runs (a date key in a file sorted by date, a key
    /// that is Unknown on most rows, a channel per source) are written plain: zstd
    /// folds a run into a few bytes, as a dictionary would, at half the cost of
    /// looking every value up in one.
    fn of(a: &dyn Array) -> Encoding {
        if !Self::mostly_distinct(a) {
            if a.data_type().is_primitive() && Self::in_runs(a) {
                return Encoding::Plain;
            }
            return Encoding::Dictionary;
        }
        match a.data_type() {
            DataType::Timestamp(..) => Encoding::Delta,
            DataType::Utf8 if Self::shared_prefixes(a) => Encoding::DeltaBytes,
            _ => Encoding::Plain,
        }
    }

    /// The sampled rows (see [`Self::sample`]) paired with the row after each, where
    /// both are non-null.
    fn neighbours(a: &dyn Array) -> impl Iterator<Item = (usize, usize)> + '_ {
        Self::sample(a)
            .map(|i| (i, i + 1))
            .filter(|&(_, j)| j < a.len() && a.is_valid(j))
    }

    /// Whether at least 15 of 16 sampled values equal the value of the row after
    /// them (and there are enough to judge).
    fn in_runs(a: &dyn Array) -> bool {
        let Some(width) = a.data_type().primitive_width() else {
            return false;
        };
        let data = a.to_data();
        let bytes = data.buffers()[0].as_slice();
        let at = |i: usize| &bytes[(data.offset() + i) * width..][..width];
        let (mut pairs, mut equal) = (0usize, 0usize);
        for (i, j) in Self::neighbours(a) {
            pairs += 1;
            equal += usize::from(at(i) == at(j));
        }
        pairs >= 64 && equal * 16 >= pairs * 15
    }

    /// Whether sampled strings share, on average, at least half of their bytes from
    /// the start with the string of the row after them (and there are enough to
    /// judge).
    fn shared_prefixes(a: &dyn Array) -> bool {
        let s = a.as_string::<i32>();
        let (mut pairs, mut shared, mut len) = (0usize, 0usize, 0usize);
        for (i, j) in Self::neighbours(a) {
            let (x, y) = (s.value(i).as_bytes(), s.value(j).as_bytes());
            pairs += 1;
            shared += x.iter().zip(y).take_while(|(p, q)| p == q).count();
            len += x.len();
        }
        pairs >= 64 && shared * 2 >= len
    }

    /// Rows of up to [`Self::SAMPLE`] non-null values taken at even steps over `a`.
    fn sample(a: &dyn Array) -> impl Iterator<Item = usize> + '_ {
        let step = a.len().div_ceil(Self::SAMPLE).max(1);
        (0..a.len()).step_by(step).filter(|&i| a.is_valid(i))
    }

    /// Whether more than half of the sampled values are distinct.
    fn mostly_distinct(a: &dyn Array) -> bool {
        let rows = Self::sample(a);
        let (distinct, n) = match a.data_type() {
            DataType::Utf8 => {
                let s = a.as_string::<i32>();
                let values: Vec<&[u8]> = rows.map(|i| s.value(i).as_bytes()).collect();
                (values.iter().collect::<FastSet<_>>().len(), values.len())
            }
            t => match t.primitive_width() {
                Some(width) => {
                    let data = a.to_data();
                    let bytes = data.buffers()[0].as_slice();
                    let at = |i: usize| &bytes[(data.offset() + i) * width..][..width];
                    let values: Vec<&[u8]> = rows.map(at).collect();
                    (values.iter().collect::<FastSet<_>>().len(), values.len())
                }
                None => return false,
            },
        };
        n >= 64 && distinct * 2 > n
    }
}

/// Writes one Parquet file; returns its size and sha256.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<(u64, String)> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(Error::format(path.display(), "nothing to write")),
    };
    let props = properties(&batches[0]);
    write_parquet_chunks(path, schema, props, batches.iter().cloned().map(Ok))
}

/// Writes one Parquet file from batches made on demand (so a large table never needs a
/// second, sorted copy in memory); returns its size and sha256. The file is synced.
fn write_parquet_chunks(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    props: WriterProperties,
    chunks: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<(u64, String)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let out = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let mut w = ArrowWriter::try_new(out, schema, Some(props))
        .map_err(|e| Error::format(path.display(), e))?;
    for b in chunks {
        w.write(&b?).map_err(|e| Error::format(path.display(), e))?;
    }
    let out = w
        .into_inner()
        .map_err(|e| Error::format(path.display(), e))?;
    let (buf, sha, len) = out.finish();
    let f = buf
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    drop_cached(&f);
    Ok((len, sha))
}

/// Lets the kernel drop a synced file's pages from its page cache (Linux; elsewhere
/// nothing). A load writes gigabytes that are not read again soon: cached, they would
/// push out what the machine's other work keeps in memory, and each file would take
/// pages no file had before. Dropped once written, they serve the next file.
fn drop_cached(f: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor stays open while `f` lives; the call is advice about
        // the file's cached pages and touches none of this process's memory. A refusal
        // changes nothing that was written, so its result is not needed.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Writes a table's rows, given as parts with one schema, into `table_dir` as files
/// named `file_name`: one per month of `partition_by` (under `year=YYYY/month=MM/`) when
/// given, else one; rows sorted by `sort_by` inside each file. Returns the files
/// written, paths relative to `table_dir`.
///
/// A partitioned table is first split by month, part by part (each part is read in row
/// order and dropped once split, so memory stays at about one copy of the table). Each
/// month is then sorted and gathered one row group at a time from its own slices: the
/// random access of the sort stays inside one month's rows, which mostly fit in cache,
/// instead of jumping across the whole table.
pub fn write_table(
    table_dir: &Path,
    file_name: &str,
    partition_by: Option<&str>,
    sort_by: &[String],
    parts: Vec<RecordBatch>,
) -> Result<Vec<DataFile>> {
    let table = table_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(first) = parts.first() else {
        return Err(Error::format(&table, "nothing to write"));
    };
    let schema = first.schema();
    let parts: Vec<RecordBatch> = parts.into_iter().filter(|p| p.num_rows() > 0).collect();
    let rows: usize = parts.iter().map(|p| p.num_rows()).sum();
    if rows > u32::MAX as usize {
        return Err(Error::format(
            &table,
            format!("{rows} rows in one load; at most {} fit", u32::MAX),
        ));
    }
    let Some(part_col) = partition_by.filter(|_| rows > 0) else {
        return Ok(vec![write_file(
            table_dir,
            file_name.to_string(),
            sort_by,
            &schema,
            &parts,
        )?]);
    };
    // Split every part by month; slices keep the parts' row order.
    let split: Vec<Vec<(i32, RecordBatch)>> = parts
        .into_par_iter()
        .map(|p| split_by_month(&table, part_col, p))
        .collect::<Result<_>>()?;
    let mut months: std::collections::BTreeMap<i32, Vec<RecordBatch>> = Default::default();
    for (ym, slice) in split.into_iter().flatten() {
        months.entry(ym).or_default().push(slice);
    }
    let months: Vec<(i32, Vec<RecordBatch>)> = months.into_iter().collect();
    let rows: Vec<usize> = months
        .iter()
        .map(|(_, slices)| slices.iter().map(|b| b.num_rows()).sum())
        .collect();
    largest_first(&rows, |k| {
        let (ym, slices) = &months[k];
        let rel = format!("{}/{file_name}", partition_folder(*ym));
        write_file(table_dir, rel, sort_by, &schema, slices)
    })
}

/// Writes a partitioned table whose rows come one month at a time: `build(k)` makes
/// the rows of `months[k]` (a `YYYYMM` month, of about `rows[k]` rows), which are
/// written to that month's file under `table_dir` and dropped, so only the months
/// being written are in memory. Returns the files in month order.
pub fn write_months<'a>(
    table_dir: &Path,
    file_name: &str,
    sort_by: &[String],
    months: &[i32],
    rows: &[usize],
    build: impl Fn(usize) -> Result<MonthRows<'a>> + Sync,
) -> Result<Vec<DataFile>> {
    if rows.len() != months.len() {
        return Err(Error::format(
            table_dir.display(),
            format!("{} months but {} row counts", months.len(), rows.len()),
        ));
    }
    largest_first(rows, |k| {
        let rel = format!("{}/{file_name}", partition_folder(months[k]));
        match build(k)? {
            MonthRows::Batch(batch) => {
                write_file(table_dir, rel, sort_by, &batch.schema(), &[batch])
            }
            MonthRows::Sorted { schema, chunks } => write_chunks(table_dir, rel, &schema, chunks),
        }
    })
}

/// One month's rows for [`write_months`].
pub enum MonthRows<'a> {
    /// In any order: sorted by the table's sort order as they are written.
    Batch(RecordBatch),
    /// Already in the table's sort order, made a row group ([`ROW_GROUP_ROWS`] rows) at
    /// a time as they are written, so that the month's columns are never in memory
    /// whole.
    Sorted {
        schema: arrow::datatypes::SchemaRef,
        chunks: Box<dyn Iterator<Item = Result<RecordBatch>> + 'a>,
    },
}

impl<'a> MonthRows<'a> {
    /// A month of `n` rows already in the table's order, made a row group at a time by
    /// `chunk` (given the rows' range) as they are written.
    pub fn in_row_groups(
        schema: arrow::datatypes::SchemaRef,
        n: usize,
        chunk: impl Fn(std::ops::Range<usize>) -> Result<RecordBatch> + 'a,
    ) -> Self {
        let chunks = (0..n)
            .step_by(ROW_GROUP_ROWS)
            .map(move |s| chunk(s..(s + ROW_GROUP_ROWS).min(n)));
        MonthRows::Sorted {
            schema,
            chunks: Box::new(chunks),
        }
    }
}

/// Rows per row group: small enough for useful min/max pruning, big enough to compress.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// `work(k)` for every `k` of `sizes`, in parallel; the results in the order of `k`.
///
/// Each worker thread takes the largest item not yet taken, so the items done last
/// are the small ones and no thread is left with a large one alone at the end. After
/// an error no further item is started.
fn largest_first<T: Send>(
    sizes: &[usize],
    work: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut queue: Vec<usize> = (0..sizes.len()).collect();
    queue.sort_by_key(|&k| (std::cmp::Reverse(sizes[k]), k));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let workers = rayon::current_num_threads().clamp(1, sizes.len().max(1));
    let done: Vec<Vec<(usize, Result<T>)>> = (0..workers)
        .into_par_iter()
        .map(|_| {
            let mut out = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let Some(&k) = queue.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let result = work(k);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                out.push((k, result));
            }
            out
        })
        .collect();
    let mut results: Vec<(usize, Result<T>)> = done.into_iter().flatten().collect();
    results.sort_by_key(|(k, _)| *k);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Writes one file `rel` (relative to `table_dir`) from `parts`, sorted by `sort_by` and
/// gathered a row group at a time.
fn write_file(
    table_dir: &Path,
    rel: String,
    sort_by: &[String],
    schema: &arrow::datatypes::SchemaRef,
    parts: &[RecordBatch],
) -> Result<DataFile> {
    let table = table_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts: Vec<&RecordBatch> = parts.iter().collect();
    let order = sort_order(&table, sort_by, &parts)?;
    let offsets: Vec<usize> = parts
        .iter()
        .scan(0, |acc, p| {
            let o = *acc;
            *acc += p.num_rows();
            Some(o)
        })
        .collect();
    let chunks = order
        .chunks(ROW_GROUP_ROWS)
        .map(|c| gather(&table, &parts, &offsets, c));
    write_chunks(table_dir, rel, schema, chunks)
}

/// Writes one file `rel` (relative to `table_dir`) from `chunks`, a row group each,
/// made as they are written.
fn write_chunks(
    table_dir: &Path,
    rel: String,
    schema: &arrow::datatypes::SchemaRef,
    mut chunks: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<DataFile> {
    // The first chunk decides the file's encodings (see `properties`).
    let head = match chunks.next() {
        Some(c) => c?,
        // An empty table: one empty file keeps its schema readable.
        None => RecordBatch::new_empty(schema.clone()),
    };
    let props = properties(&head);
    let mut rows = 0u64;
    let chunks = std::iter::once(Ok(head)).chain(chunks).inspect(|c| {
        if let Ok(c) = c {
            rows += c.num_rows() as u64;
        }
    });
    let (size, sha256) =
        write_parquet_chunks(&table_dir.join(&rel), schema.clone(), props, chunks)?;
    Ok(DataFile {
        path: rel,
        size,
        rows,
        sha256,
        modified_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// The rows of `part` by `YYYYMM` month of `part_col`, months ascending, each slice in
/// the part's row order. A part of one month is returned as it is.
fn split_by_month(
    table: &str,
    part_col: &str,
    part: RecordBatch,
) -> Result<Vec<(i32, RecordBatch)>> {
    let month = sorted_partition(&part, part_col)?;
    if month.null_count() > 0 {
        return Err(Error::format(
            table,
            format!("{part_col} is empty in some rows; a partition column must have a value"),
        ));
    }
    let ym = month.values();
    let Some(&first) = ym.first() else {
        return Ok(Vec::new());
    };
    if ym.iter().all(|&v| v == first) {
        return Ok(vec![(first, part)]);
    }
    let (rows, present) = crate::value::group_by_month(ym);
    let grouped =
        take_record_batch(&part, &UInt32Array::from(rows)).map_err(|e| Error::format(table, e))?;
    let mut offset = 0;
    Ok(present
        .into_iter()
        .map(|(ym, len)| {
            let slice = grouped.slice(offset, len);
            offset += len;
            (ym, slice)
        })
        .collect())
}

/// The rows `order` (global row numbers over `parts`) as one batch.
fn gather(
    table: &str,
    parts: &[&RecordBatch],
    offsets: &[usize],
    order: &[u32],
) -> Result<RecordBatch> {
    if let [only] = parts {
        if let Some(&first) = order.first() {
            let run = order
                .iter()
                .enumerate()
                .all(|(k, &g)| g as usize == first as usize + k);
            if run {
                // Rows already in order (e.g. built sorted): no copy.
                return Ok(only.slice(first as usize, order.len()));
            }
        }
        return take_record_batch(only, &UInt32Array::from(order.to_vec()))
            .map_err(|e| Error::format(table, e));
    }
    let pairs: Vec<(usize, usize)> = order
        .iter()
        .map(|&g| {
            let g = g as usize;
            let p = offsets.partition_point(|&o| o <= g) - 1;
            (p, g - offsets[p])
        })
        .collect();
    interleave_record_batch(parts, &pairs).map_err(|e| Error::format(table, e))
}

/// The partition folder of a `YYYYMM` month.
pub fn partition_folder(ym: i32) -> String {
    format!("year={:04}/month={:02}", ym / 100, ym % 100)
}

/// The partition folder of every row (by the month of `part_col`).
pub fn row_partitions(batch: &RecordBatch, part_col: &str) -> Result<Vec<Option<i32>>> {
    Ok(sorted_partition(batch, part_col)?.iter().collect())
}

/// Sums files into a table's line of the report.
pub fn summarize(table: &str, files: &[DataFile]) -> WrittenTable {
    WrittenTable {
        table: table.to_string(),
        rows: files.iter().map(|f| f.rows).sum(),
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.size).sum(),
    }
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

/// The order in which to write the rows of `parts` (global row numbers): by `sort_by`;
/// ties keep their input order.
fn sort_order(table: &str, sort_by: &[String], parts: &[&RecordBatch]) -> Result<Vec<u32>> {
    let n: usize = parts.iter().map(|p| p.num_rows()).sum();
    if n < 2 || sort_by.is_empty() {
        return Ok((0..n as u32).collect());
    }
    // Integer sort keys (the usual case: date_key, surrogate keys) are sorted with a
    // parallel sort on plain vectors; anything else goes through Arrow's lexsort.
    let mut keys: Vec<Vec<i64>> = Vec::new();
    for s in sort_by {
        let mut key: Vec<i64> = Vec::with_capacity(n);
        for p in parts {
            let Some(a) = p.column_by_name(s) else {
                break;
            };
            match a.data_type() {
                DataType::Int64 => key.extend_from_slice(a.as_primitive::<Int64Type>().values()),
                DataType::Int32 => key.extend(
                    a.as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .map(|v| i64::from(*v)),
                ),
                DataType::Timestamp(TimeUnit::Microsecond, None) => {
                    key.extend_from_slice(a.as_primitive::<TimestampMicrosecondType>().values())
                }
                _ => return lexsort(table, sort_by, parts),
            }
        }
        if key.len() == n {
            keys.push(key);
        }
    }
    if keys.is_empty() || is_sorted(&keys) {
        return Ok((0..n as u32).collect());
    }
    if let Some(idx) = packed_order(&keys) {
        return Ok(idx);
    }
    let mut idx: Vec<u32> = (0..n as u32).collect();
    idx.par_sort_unstable_by(|&a, &b| {
        for k in &keys {
            match k[a as usize].cmp(&k[b as usize]) {
                std::cmp::Ordering::Equal => continue,
                o => return o,
            }
        }
        a.cmp(&b)
    });
    Ok(idx)
}

/// Whether rows are already in order by `keys` (a stable sort would keep them as they
/// are): one pass instead of a sort, for rows that were built sorted.
fn is_sorted(keys: &[Vec<i64>]) -> bool {
    let n = keys.first().map_or(0, Vec::len);
    (1..n).all(|row| {
        for k in keys {
            match k[row - 1].cmp(&k[row]) {
                std::cmp::Ordering::Equal => continue,
                o => return o == std::cmp::Ordering::Less,
            }
        }
        true
    })
}

/// Sort order of rows by several integer keys packed into one `u128` per row, when the
/// keys' value ranges fit in 128 bits together (month, date key and a surrogate key do).
fn packed_order(keys: &[Vec<i64>]) -> Option<Vec<u32>> {
    let mut shifts = Vec::with_capacity(keys.len());
    let mut bits_total = 0u32;
    for k in keys {
        let lo = *k.iter().min()?;
        let hi = *k.iter().max()?;
        let span = (i128::from(hi) - i128::from(lo)) as u128;
        let bits = 128 - span.leading_zeros();
        bits_total += bits;
        shifts.push((lo, bits));
    }
    if bits_total > 128 {
        return None;
    }
    let n = keys[0].len();
    let pack = |row: usize| {
        let mut v: u128 = 0;
        for (k, &(lo, bits)) in keys.iter().zip(&shifts) {
            let part = (i128::from(k[row]) - i128::from(lo)) as u128;
            v = if bits == 128 {
                part
            } else {
                (v << bits) | part
            };
        }
        v
    };
    if bits_total <= 96 {
        // The row number in the low 32 bits: 16 bytes a row to sort instead of 32, and
        // equal keys stay in row order.
        let mut packed: Vec<u128> = (0..n)
            .into_par_iter()
            .map(|row| (pack(row) << 32) | row as u128)
            .collect();
        packed.par_sort_unstable();
        return Some(packed.into_iter().map(|v| v as u32).collect());
    }
    let mut packed: Vec<(u128, u32)> = (0..n)
        .into_par_iter()
        .map(|row| (pack(row), row as u32))
        .collect();
    packed.par_sort_unstable();
    Some(packed.into_iter().map(|(_, r)| r).collect())
}

fn lexsort(table: &str, sort_by: &[String], parts: &[&RecordBatch]) -> Result<Vec<u32>> {
    let schema = match parts.first() {
        Some(p) => p.schema(),
        None => return Ok(Vec::new()),
    };
    let all =
        concat_batches(&schema, parts.iter().copied()).map_err(|e| Error::format(table, e))?;
    let mut cols: Vec<SortColumn> = Vec::new();
    for s in sort_by {
        if let Some(a) = all.column_by_name(s) {
            cols.push(SortColumn {
                values: a.clone(),
                options: None,
            });
        }
    }
    // A stable tie-break on the row number keeps equal rows in input order.
    cols.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..all.num_rows() as u32)),
        options: None,
    });
    let idx = lexsort_to_indices(&cols, None).map_err(|e| Error::format(table, e))?;
    Ok(idx.values().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const JAN: i64 = 1_735_689_600_000_000; // 2025-01-01 00:00 UTC, in µs
    const FEB: i64 = 1_738_368_000_000_000; // 2025-02-01
    const MAR: i64 = 1_740_787_200_000_000; // 2025-03-01

    fn part(rows: &[(&str, i64, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("k", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn read(path: &Path) -> Vec<(String, i64)> {
        let f = std::fs::File::open(path).unwrap();
        let mut out = Vec::new();
        for b in ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let ids = b.column(0).as_string::<i32>();
            let ks = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.push((ids.value(i).to_string(), ks.value(i)));
            }
        }
        out
    }

    #[test]
    fn parts_are_sorted_together_and_split_by_month() {
        let parts = [
            part(&[("a", FEB, 5), ("b", JAN + 7, 9), ("c", JAN, 2)]),
            part(&[]),
            part(&[("d", FEB + 1, 1), ("e", JAN + 3, 2), ("f", FEB, 5)]),
            part(&[("g", JAN + 9, -4)]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("fact_x");
        let files = write_table(
            &table,
            "p.parquet",
            Some("ts"),
            &["k".into()],
            parts.to_vec(),
        )
        .unwrap();
        let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "year=2025/month=01/p.parquet",
                "year=2025/month=02/p.parquet"
            ]
        );
        let jan = read(&table.join("year=2025/month=01/p.parquet"));
        let feb = read(&table.join("year=2025/month=02/p.parquet"));
        // Sorted by k; equal keys keep their input order (c before e, a before f).
        let ids = |rows: &[(String, i64)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&jan), ["g", "c", "e", "b"]);
        assert_eq!(ids(&feb), ["d", "a", "f"]);
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        assert_eq!(rows, 7);
    }

    #[test]
    fn an_unpartitioned_table_of_empty_parts_is_one_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("dim_x");
        let files = write_table(&table, "d.parquet", None, &["k".into()], vec![part(&[])]).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 0);
        assert!(read(&table.join("d.parquet")).is_empty());
    }

    #[test]
    fn string_sort_keys_sort_across_parts() {
        let parts = [
            part(&[("m", JAN, 0), ("b", JAN, 0)]),
            part(&[("a", JAN, 0)]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t");
        write_table(&table, "s.parquet", None, &["id".into()], parts.to_vec()).unwrap();
        let got: Vec<String> = read(&table.join("s.parquet"))
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(got, ["a", "b", "m"]);
    }

    #[test]
    fn rows_in_key_order_are_recognised_as_sorted() {
        assert!(is_sorted(&[vec![1, 1, 2], vec![5, 6, 0]]));
        assert!(is_sorted(&[vec![1, 1], vec![5, 5]]));
        assert!(!is_sorted(&[vec![1, 1, 2], vec![6, 5, 0]]));
        assert!(!is_sorted(&[vec![2, 1]]));
        assert!(is_sorted(&[vec![]]));
    }

    #[test]
    fn months_are_written_one_file_each_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("fact_m");
        let months = [
            part(&[("b", JAN + 1, 2), ("a", JAN, 1)]),
            part(&[("c", FEB, 7)]),
            part(&[("d", MAR, 3)]),
        ];
        let yms = [202501, 202502, 202503];
        // The row counts only order the work (largest first); files come in month order.
        for rows in [[2, 1, 1], [1, 1, 2], [0, 5, 0]] {
            let files = write_months(&table, "m.parquet", &["k".into()], &yms, &rows, |k| {
                Ok(MonthRows::Batch(months[k].clone()))
            })
            .unwrap();
            let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "year=2025/month=01/m.parquet",
                    "year=2025/month=02/m.parquet",
                    "year=2025/month=03/m.parquet"
                ]
            );
            let jan: Vec<String> = read(&table.join(paths[0]))
                .into_iter()
                .map(|r| r.0)
                .collect();
            assert_eq!(jan, ["a", "b"]);
            assert_eq!(files.iter().map(|f| f.rows).collect::<Vec<_>>(), [2, 1, 1]);
        }
        // A month that cannot be built fails the whole write.
        let err = write_months(&table, "m.parquet", &["k".into()], &yms, &[1, 1, 1], |k| {
            if k == 1 {
                Err(Error::format("fact_m", "no rows for February"))
            } else {
                Ok(MonthRows::Batch(months[k].clone()))
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("no rows for February"), "{err}");
    }

    #[test]
    fn a_month_built_in_order_is_written_as_its_chunks_come() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("fact_m");
        let chunks = [
            part(&[("a", JAN, 1), ("b", JAN, 2)]),
            part(&[("c", JAN + 1, 1)]),
        ];
        let schema = chunks[0].schema();
        let files = write_months(&table, "m.parquet", &["k".into()], &[202501], &[3], |_| {
            Ok(MonthRows::Sorted {
                schema: schema.clone(),
                chunks: Box::new(chunks.clone().into_iter().map(Ok)),
            })
        })
        .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 3);
        let got: Vec<String> = read(&table.join(&files[0].path))
            .into_iter()
            .map(|r| r.0)
            .collect();
        // Taken as they come: not sorted again.
        assert_eq!(got, ["a", "b", "c"]);
        // A month with no chunks is one empty, readable file.
        let empty = write_months(&table, "e.parquet", &["k".into()], &[202502], &[0], |_| {
            Ok(MonthRows::Sorted {
                schema: schema.clone(),
                chunks: Box::new(std::iter::empty()),
            })
        })
        .unwrap();
        assert_eq!(empty[0].rows, 0);
        assert!(read(&table.join(&empty[0].path)).is_empty());
    }

    #[test]
    fn statistics_are_kept_where_they_can_skip_row_groups() {
        let n = 20_000;
        let text = |f: &dyn Fn(usize) -> String| StringArray::from_iter_values((0..n).map(f));
        // Scattered: ids in no order, labels that every window holds.
        let shuffled = |i: usize| format!("S{:08}", (i * 7_919) % n);
        assert!(scattered(&text(&shuffled)));
        assert!(scattered(&text(
            &|i| ["web", "cart", "email"][i % 3].to_string()
        )));
        // Kept: ids in order, labels in runs, one value, too few values, not text.
        assert!(!scattered(&text(&|i| format!("S{i:08}"))));
        assert!(!scattered(&text(&|i| format!("L{}", i * 5 / n))));
        assert!(!scattered(&text(&|_| "web".to_string())));
        assert!(!scattered(&text(&shuffled).slice(0, 50)));
        assert!(!scattered(&Int64Array::from_iter_values(
            (0..n).map(|i| ((i * 7_919) % n) as i64)
        )));

        // The written file has no statistics for the scattered column only.
        let ids = text(&shuffled);
        let ordered = text(&|i| format!("S{i:08}"));
        let batch = RecordBatch::try_from_iter([
            ("shuffled", Arc::new(ids) as ArrayRef),
            ("ordered", Arc::new(ordered) as ArrayRef),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        write_parquet(&path, std::slice::from_ref(&batch)).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(f).unwrap();
        let meta = parquet::file::reader::FileReader::metadata(&reader);
        let rg = meta.row_group(0);
        assert!(rg
            .column(0)
            .statistics()
            .is_none_or(|s| s.min_bytes_opt().is_none()));
        let kept = rg.column(1).statistics().unwrap();
        assert_eq!(kept.min_bytes_opt(), Some("S00000000".as_bytes()));
    }

    #[test]
    fn encodings_follow_the_values_not_the_head_of_a_sorted_column() {
        // Sorted by k: a long run of k = 0 first, then distinct keys; ids distinct,
        // numbered in order; timestamps distinct; a low-cardinality label. Distinct
        // timestamps are delta-encoded, distinct integers plain, ids as the bytes
        // after the prefix they share with the one before.
        let n = 20_000;
        let rows: Vec<(String, i64, i64)> = (0..n)
            .map(|i| {
                let k = if i < 6_000 { 0 } else { i as i64 };
                (format!("S{i:08}"), JAN + 7_919 * i as i64, k)
            })
            .collect();
        let refs: Vec<(&str, i64, i64)> = rows.iter().map(|r| (r.0.as_str(), r.1, r.2)).collect();
        let batch = part(&refs);
        let of = |c: usize| Encoding::of(batch.column(c).as_ref());
        assert_eq!(of(0), Encoding::DeltaBytes);
        assert_eq!(of(1), Encoding::Delta);
        assert_eq!(of(2), Encoding::Plain);
        let labels = StringArray::from_iter_values((0..n).map(|i| ["web", "cart"][i % 2]));
        assert_eq!(Encoding::of(&labels), Encoding::Dictionary);
        let few = Int64Array::from_iter_values((0..n).map(|i| (i % 31) as i64));
        assert_eq!(Encoding::of(&few), Encoding::Dictionary);
        // Distinct strings that share little with their neighbours stay plain.
        let scattered_ids =
            StringArray::from_iter_values((0..n).map(|i| format!("{:08}", (i * 7_919) % n)));
        assert_eq!(Encoding::of(&scattered_ids), Encoding::Plain);
        // Few values in long runs (a sorted day, a mostly-Unknown key): plain. The
        // same values shuffled: a dictionary.
        let days = Int64Array::from_iter_values((0..n).map(|i| 20_240_101 + (i / 700) as i64));
        assert_eq!(Encoding::of(&days), Encoding::Plain);
        let mostly_unknown =
            Int64Array::from_iter_values((0..n).map(|i| if i % 97 == 0 { 42 } else { 0 }));
        assert_eq!(Encoding::of(&mostly_unknown), Encoding::Plain);
        let shuffled_days =
            Int64Array::from_iter_values((0..n).map(|i| 20_240_101 + ((i * 7_919) % 29) as i64));
        assert_eq!(Encoding::of(&shuffled_days), Encoding::Dictionary);
        // Too few values to judge: a dictionary.
        assert_eq!(
            Encoding::of(&batch.column(0).slice(0, 10)),
            Encoding::Dictionary
        );

        // The written file uses them and reads back the same rows.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        write_parquet(&path, std::slice::from_ref(&batch)).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let meta = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(f).unwrap(),
        )
        .clone();
        let encodings = |c: usize| meta.row_group(0).column(c).encodings().collect::<Vec<_>>();
        use parquet::basic::Encoding as E;
        assert!(encodings(1).contains(&E::DELTA_BINARY_PACKED));
        assert!(encodings(0).contains(&E::DELTA_BYTE_ARRAY));
        assert!(!encodings(2).contains(&E::RLE_DICTIONARY));
        let back = read(&path);
        assert_eq!(back.len(), n);
        assert_eq!(back[n - 1], (format!("S{:08}", n - 1), (n - 1) as i64));
    }
}
