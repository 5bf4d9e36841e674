//! Reading export files (CSV, JSON Lines, Parquet) into staged, contract-checked rows.

mod csv_file;
mod jsonl_file;
mod parquet_file;

use crate::quarantine::QuarantineRow;
use crate::stage::Rejection;
use arrow::record_batch::RecordBatch;
use crmcube_model::{EntitySpec, Error, Result};
use std::path::{Path, PathBuf};

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

/// Reads a text export file. Returns its bytes and the length of a UTF-8 byte order mark;
/// refuses UTF-16 and empty files (`expected` says what the file should hold).
pub(crate) fn read_text(path: &Path, expected: &str) -> Result<(Vec<u8>, usize)> {
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

/// A file's bytes; large files are read in parallel slices (copying from the page cache
/// and faulting in fresh memory are the cost, and both spread over cores).
fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        const SLICE: usize = 16 << 20;
        let f = std::fs::File::open(path)?;
        let meta = f.metadata()?;
        let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        if len >= 4 * SLICE && meta.is_file() {
            let mut buf = vec![0u8; len];
            buf.par_chunks_mut(SLICE)
                .enumerate()
                .try_for_each(|(k, slice)| f.read_exact_at(slice, (k * SLICE) as u64))?;
            return Ok(buf);
        }
    }
    std::fs::read(path)
}

/// Concatenates batches of one schema, a column per task.
pub(crate) fn concat_columns(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    use rayon::prelude::*;
    match batches {
        [] => return Ok(RecordBatch::new_empty(schema.clone())),
        [one] => return Ok(one.clone()),
        _ => {}
    }
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    let columns = (0..schema.fields().len())
        .into_par_iter()
        .map(|i| {
            let arrays: Vec<&dyn arrow::array::Array> =
                batches.iter().map(|b| b.column(i).as_ref()).collect();
            arrow::compute::concat(&arrays)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
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
