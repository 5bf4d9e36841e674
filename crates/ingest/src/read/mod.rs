//! Reading export files (CSV, JSON Lines, Parquet) into staged, contract-checked rows.

mod csv_file;
mod jsonl_file;
mod parquet_file;

use crate::quarantine::QuarantineRow;
use crate::stage::Rejection;
use arrow::record_batch::RecordBatch;
use crmcube_model::{EntitySpec, Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use csv_file::CsvOptions;

/// File formats crmcube reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma- (or otherwise) separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The format a file name implies, if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".txt") {
            Some(FileFormat::Csv)
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
            Some(FileFormat::Jsonl)
        } else if name.ends_with(".parquet") || name.ends_with(".pq") {
            Some(FileFormat::Parquet)
        } else {
            None
        }
    }
}

/// The accepted rows and the refusals of one file.
pub struct FileStage {
    /// The file read.
    pub path: PathBuf,
    /// Its format.
    pub format: FileFormat,
    /// Rows read (records, not counting the header or blank lines).
    pub read: u64,
    /// Accepted rows, typed as the contract says.
    pub batch: RecordBatch,
    /// Source line (row number for Parquet) of each accepted row.
    pub lines: Vec<u64>,
    /// Refused rows.
    pub rejects: Vec<QuarantineRow>,
    /// Columns present in the file but not in the contract.
    pub ignored_columns: Vec<String>,
}

/// Rows of one file read and checked together: a chunk of a CSV file, or a whole file
/// of another format.
pub struct Piece {
    /// Rows read.
    pub read: u64,
    /// Accepted rows, typed as the contract says.
    pub batch: RecordBatch,
    /// Source line (row number for Parquet) of each accepted row.
    pub lines: Vec<u64>,
    /// Refused rows.
    pub rejects: Vec<QuarantineRow>,
}

/// Reads one export file of `entity` and hands its rows to `sink` in file order, a few
/// pieces at a time (a CSV file's chunks as they are parsed, other formats whole) with
/// a bound on the file's rows. Returns the file's columns that the contract does not
/// know, or `None` when the sink asked to stop (by returning `false`).
pub fn stream_file(
    path: &Path,
    format: FileFormat,
    entity: &str,
    spec: &EntitySpec,
    csv: &CsvOptions,
    sink: &mut (dyn FnMut(Vec<Piece>, usize) -> Result<bool> + Send),
) -> Result<Option<Vec<String>>> {
    if format == FileFormat::Csv {
        return csv_file::read_waves(path, entity, spec, csv, sink);
    }
    let fs = read_file(path, format, entity, spec, csv)?;
    let rows = fs.batch.num_rows();
    let piece = Piece {
        read: fs.read,
        batch: fs.batch,
        lines: fs.lines,
        rejects: fs.rejects,
    };
    Ok(sink(vec![piece], rows)?.then_some(fs.ignored_columns))
}

/// Reads one export file of `entity`.
pub fn read_file(
    path: &Path,
    format: FileFormat,
    entity: &str,
    spec: &EntitySpec,
    csv: &CsvOptions,
) -> Result<FileStage> {
    match format {
        FileFormat::Csv => csv_file::read(path, entity, spec, csv),
        FileFormat::Jsonl => jsonl_file::read(path, entity, spec),
        FileFormat::Parquet => parquet_file::read(path, entity, spec),
    }
}

/// The bytes of an export file: mapped from the page cache when it is a regular file,
/// read into memory otherwise.
pub(crate) enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }
}

/// Reads a text export file. Returns its bytes and the length of a UTF-8 byte order mark;
/// refuses UTF-16 and empty files (`expected` says what the file should hold).
pub(crate) fn read_text(path: &Path, expected: &str) -> Result<(FileBytes, usize)> {
    let data = read_all(path).map_err(|e| Error::io(path, e))?;
    if data.starts_with(&[0xff, 0xfe]) || data.starts_with(&[0xfe, 0xff]) {
        return Err(Error::Data(format!(
            "{}: file is UTF-16 encoded; export it as UTF-8",
            path.display()
        )));
    }
    let bom = if data.starts_with(&[0xef, 0xbb, 0xbf]) {
        3
    } else {
        0
    };
    if data[bom..].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Data(format!(
            "{}: file is empty; expected {expected}",
            path.display()
        )));
    }
    Ok((data, bom))
}

/// A file's bytes. A large regular file is mapped rather than copied: reading it would
/// first fault in (and zero) fresh memory as large as the file, then copy the page cache
/// into it, and that was most of the time spent reading an export. Export files must
/// not change while a load reads them (the load has hashed them before).
pub(crate) fn read_all(path: &Path) -> std::io::Result<FileBytes> {
    const MAP_FROM: u64 = 1 << 20;
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if meta.is_file() && meta.len() >= MAP_FROM {
        // SAFETY: the mapping is read-only and lives as long as the bytes are used; the
        // file is an input that nothing writes while it is loaded (see above).
        if let Ok(m) = unsafe { memmap2::Mmap::map(&f) } {
            return Ok(FileBytes::Mapped(m));
        }
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::io::Read::read_to_end(&mut &f, &mut buf)?;
    Ok(FileBytes::Read(buf))
}

/// Column buffers that batches of one schema are appended to, so that each batch can be
/// freed as soon as it is copied: a concatenation needs all of them in memory at once,
/// next to its output. Columns of a type it does not know are concatenated at the end.
pub(crate) struct ColumnsBuilder {
    schema: arrow::datatypes::SchemaRef,
    columns: Vec<ColumnBuffer>,
    rows: usize,
}

enum ColumnValues {
    /// Utf8: offsets (starting with 0) and value bytes.
    Text {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    /// Fixed-width values, `width` bytes each (an Arrow buffer keeps them aligned).
    Fixed {
        width: usize,
        data: arrow::buffer::MutableBuffer,
    },
    Bool(arrow::array::BooleanBufferBuilder),
    /// Any other type: its parts, concatenated by `finish`.
    Other(Vec<arrow::array::ArrayRef>),
}

struct ColumnBuffer {
    values: ColumnValues,
    /// Validity; `None` while every value so far is valid.
    nulls: Option<arrow::array::BooleanBufferBuilder>,
}

impl ColumnBuffer {
    fn new(data_type: &arrow::datatypes::DataType) -> Self {
        use arrow::datatypes::DataType as T;
        let values = match data_type {
            T::Utf8 => ColumnValues::Text {
                offsets: vec![0],
                data: Vec::new(),
            },
            T::Boolean => ColumnValues::Bool(arrow::array::BooleanBufferBuilder::new(0)),
            t => match t.primitive_width() {
                Some(width) => ColumnValues::Fixed {
                    width,
                    data: arrow::buffer::MutableBuffer::new(0),
                },
                None => ColumnValues::Other(Vec::new()),
            },
        };
        ColumnBuffer {
            values,
            nulls: None,
        }
    }

    /// Appends `a`; `rows` is the number of values before it.
    fn push(
        &mut self,
        a: &arrow::array::ArrayRef,
        rows: usize,
    ) -> std::result::Result<(), arrow::error::ArrowError> {
        use arrow::array::{Array, AsArray};
        match &mut self.values {
            ColumnValues::Text { offsets, data } => {
                let s = a.as_string_opt::<i32>().ok_or_else(|| {
                    arrow::error::ArrowError::SchemaError("expected a text column".into())
                })?;
                let o = s.value_offsets();
                let (first, last) = (o[0] as usize, o[o.len() - 1] as usize);
                let base = data.len();
                if i32::try_from(base + (last - first)).is_err() {
                    return Err(arrow::error::ArrowError::ComputeError(
                        "a text column of over 2 GiB in one file; split the export".into(),
                    ));
                }
                data.extend_from_slice(&s.value_data()[first..last]);
                let shift = base as i64 - first as i64;
                offsets.extend(o[1..].iter().map(|&v| (i64::from(v) + shift) as i32));
            }
            ColumnValues::Fixed { width, data } => {
                let d = a.to_data();
                let buf = &d.buffers()[0];
                let (from, len) = (d.offset() * *width, d.len() * *width);
                data.extend_from_slice(&buf.as_slice()[from..from + len]);
            }
            ColumnValues::Bool(b) => b.append_buffer(a.as_boolean().values()),
            ColumnValues::Other(parts) => parts.push(a.clone()),
        }
        match (a.logical_nulls(), &mut self.nulls) {
            (Some(n), Some(mine)) => mine.append_buffer(n.inner()),
            (Some(n), None) => {
                let mut mine = arrow::array::BooleanBufferBuilder::new(rows + a.len());
                mine.append_n(rows, true);
                mine.append_buffer(n.inner());
                self.nulls = Some(mine);
            }
            (None, Some(mine)) => mine.append_n(a.len(), true),
            (None, None) => {}
        }
        Ok(())
    }

    /// Makes room for `rows` more values, of `bytes_per_row` text bytes each.
    fn reserve(&mut self, rows: usize, bytes_per_row: f64) {
        match &mut self.values {
            ColumnValues::Text { offsets, data } => {
                offsets.reserve_exact(rows);
                let want = (rows as f64 * bytes_per_row * 1.1) as usize;
                if data.capacity() - data.len() < want {
                    data.reserve_exact(want);
                }
            }
            ColumnValues::Fixed { width, data } => data.reserve(rows * *width),
            ColumnValues::Bool(_) | ColumnValues::Other(_) => {}
        }
    }

    fn finish(
        self,
        data_type: &arrow::datatypes::DataType,
        rows: usize,
    ) -> std::result::Result<arrow::array::ArrayRef, arrow::error::ArrowError> {
        use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
        let nulls = self.nulls.map(|mut b| NullBuffer::new(b.finish()));
        Ok(match self.values {
            // SAFETY: `push` appends whole values of string arrays (valid UTF-8 each)
            // and their offsets shifted by where they land, so the offsets start at 0,
            // never decrease, end at `data.len()` and fall between characters.
            ColumnValues::Text { offsets, data } => Arc::new(unsafe {
                arrow::array::StringArray::new_unchecked(
                    OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                    Buffer::from_vec(data),
                    nulls,
                )
            }),
            ColumnValues::Fixed { data, .. } => {
                arrow::array::make_array(arrow::array::ArrayData::try_new(
                    data_type.clone(),
                    rows,
                    nulls.map(|n| n.into_inner().into_inner()),
                    0,
                    vec![data.into()],
                    vec![],
                )?)
            }
            ColumnValues::Bool(mut b) => {
                Arc::new(arrow::array::BooleanArray::new(b.finish(), nulls))
            }
            ColumnValues::Other(parts) => {
                let parts: Vec<&dyn arrow::array::Array> =
                    parts.iter().map(|p| p.as_ref()).collect();
                if parts.is_empty() {
                    arrow::array::new_empty_array(data_type)
                } else {
                    arrow::compute::concat(&parts)?
                }
            }
        })
    }

    /// Text bytes so far.
    fn text_bytes(&self) -> usize {
        match &self.values {
            ColumnValues::Text { data, .. } => data.len(),
            _ => 0,
        }
    }
}

impl ColumnsBuilder {
    pub(crate) fn new(schema: &arrow::datatypes::SchemaRef) -> Self {
        ColumnsBuilder {
            schema: schema.clone(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnBuffer::new(f.data_type()))
                .collect(),
            rows: 0,
        }
    }

    /// Appends a batch of the builder's schema (its columns are copied in parallel).
    pub(crate) fn push(
        &mut self,
        batch: &RecordBatch,
    ) -> std::result::Result<(), arrow::error::ArrowError> {
        use rayon::prelude::*;
        let rows = self.rows;
        self.columns
            .par_iter_mut()
            .zip(batch.columns().par_iter())
            .try_for_each(|(c, a)| c.push(a, rows))?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Makes room for about `total_rows` rows in all, assuming the text columns keep
    /// their average length so far.
    pub(crate) fn reserve_for(&mut self, total_rows: usize) {
        let more = total_rows.saturating_sub(self.rows);
        let rows = self.rows.max(1) as f64;
        for c in &mut self.columns {
            let per_row = c.text_bytes() as f64 / rows;
            c.reserve(more, per_row);
        }
    }

    pub(crate) fn finish(self) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        let rows = self.rows;
        let columns = self
            .columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(c, f)| c.finish(f.data_type(), rows))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(
            self.schema,
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

/// Concatenates batches of one schema (a single batch is returned as it is).
pub(crate) fn concat_columns(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    if let [one] = batches {
        return Ok(one.clone());
    }
    let mut columns = ColumnsBuilder::new(schema);
    for b in batches {
        columns.push(b)?;
    }
    columns.finish()
}

/// Builds a quarantine row from a rejection.
pub(crate) fn reject_row(
    entity: &str,
    path: &Path,
    line: u64,
    r: Rejection,
    record: Option<String>,
) -> QuarantineRow {
    QuarantineRow {
        entity: entity.to_string(),
        source_file: path.display().to_string(),
        line,
        column: r.column,
        value: r.value,
        reason: r.reason,
        record,
    }
}

/// Maps a file's column names onto the contract's columns.
///
/// Returns, for every contract column, the file column holding it (`None` when the file
/// lacks a nullable column), plus the file's extra columns. Names match exactly first,
/// then ignoring case and surrounding spaces. A missing required column is an error.
pub(crate) fn map_columns(
    path: &Path,
    entity: &str,
    spec: &EntitySpec,
    names: &[String],
) -> Result<(Vec<Option<usize>>, Vec<String>)> {
    let norm = |s: &str| s.trim().to_ascii_lowercase();
    for (i, n) in names.iter().enumerate() {
        if names[..i].iter().any(|o| norm(o) == norm(n)) {
            return Err(Error::Data(format!(
                "{}: column `{}` appears twice in the header",
                path.display(),
                n.trim()
            )));
        }
    }
    let mut mapping = Vec::with_capacity(spec.columns.len());
    let mut missing = Vec::new();
    for c in &spec.columns {
        let found = names.iter().position(|n| n == &c.name).or_else(|| {
            names
                .iter()
                .position(|n| norm(n) == c.name.to_ascii_lowercase())
        });
        if found.is_none() && !c.nullable {
            missing.push(c.name.clone());
        }
        mapping.push(found);
    }
    if !missing.is_empty() {
        // A header read as one column that holds another separator: say which flag fixes it.
        let hint = match names {
            [only] if only.contains('\t') => "; the file looks tab-separated: use --delimiter tab",
            [only] if only.contains(';') => {
                "; the file looks semicolon-separated: use --delimiter ';'"
            }
            [only] if only.contains('|') => "; the file looks pipe-separated: use --delimiter '|'",
            _ => "",
        };
        return Err(Error::Data(format!(
            "{}: {entity} is missing required column(s) {}; found columns: {}{hint}",
            path.display(),
            missing.join(", "),
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    let ignored = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !mapping.contains(&Some(*i)))
        .map(|(_, n)| n.clone())
        .collect();
    Ok((mapping, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
        StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch(schema: &arrow::datatypes::SchemaRef, k: i64, n: usize) -> RecordBatch {
        let opt = |i: usize| (i % 3 != (k as usize % 3)).then_some(i as i64 * k);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| opt(i).map(|v| format!("v{v}é").repeat(i % 4))),
            )),
            Arc::new(Int64Array::from_iter((0..n).map(opt))),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 / 3.0),
            )),
            Arc::new(
                Decimal128Array::from_iter((0..n).map(|i| opt(i).map(i128::from)))
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
            Arc::new(BooleanArray::from_iter(
                (0..n).map(|i| opt(i).map(|v| v % 2 == 0)),
            )),
            Arc::new(Date32Array::from_iter_values(
                (0..n).map(|i| i as i32 + 19000),
            )),
            Arc::new(TimestampMicrosecondArray::from_iter(
                (0..n).map(|i| opt(i).map(|v| v * 1_000_000)),
            )),
        ];
        RecordBatch::try_new(schema.clone(), cols).unwrap()
    }

    #[test]
    fn columns_builder_matches_concatenation() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, false),
            Field::new("d", DataType::Decimal128(18, 2), true),
            Field::new("b", DataType::Boolean, true),
            Field::new("day", DataType::Date32, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        // Parts with and without nulls, empty ones, and slices that start past zero.
        let parts = vec![
            batch(&schema, 1, 10).slice(0, 10),
            batch(&schema, 2, 0),
            batch(&schema, 3, 50).slice(7, 30),
            batch(&schema, 4, 20),
            batch(&schema, 5, 9).slice(4, 5),
        ];
        let mut b = ColumnsBuilder::new(&schema);
        b.push(&parts[0]).unwrap();
        b.reserve_for(1000);
        for p in &parts[1..] {
            b.push(p).unwrap();
        }
        let built = b.finish().unwrap();
        let expected = arrow::compute::concat_batches(&schema, &parts).unwrap();
        assert_eq!(built, expected);
        assert_eq!(built.num_rows(), 10 + 30 + 20 + 5);
        // No parts: an empty batch of the schema.
        let empty = ColumnsBuilder::new(&schema).finish().unwrap();
        assert_eq!(empty.num_rows(), 0);
        assert_eq!(empty.schema(), schema);
    }
}
