//! Parquet exports. Columns whose type already matches the contract are taken as they
//! are; any other type is cast to text and checked like a CSV field.

use super::{map_columns, reject_row, FileFormat, FileStage};
use crate::stage::{Cell, RowStager};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use crmcube_model::{EntitySpec, Error, Result};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use std::path::Path;

pub(super) fn read(path: &Path, entity: &str, spec: &EntitySpec) -> Result<FileStage> {
    // Some corrupt pages make the parquet decoder panic (an assertion in its bit
    // reader) instead of returning an error; that is a data problem of this file.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_file(path, entity, spec)
    }))
    .unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder failed".into());
        Err(Error::Data(format!(
            "{}: Parquet data cannot be read: {why}",
            path.display()
        )))
    })
}

fn read_file(path: &Path, entity: &str, spec: &EntitySpec) -> Result<FileStage> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // The Arrow schema some writers embed is not read: the contract decides the types
    // anyway, and a corrupt one makes arrow-ipc panic instead of returning an error.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).map_err(|e| {
            Error::Data(format!(
                "{}: not a readable Parquet file: {e}",
                path.display()
            ))
        })?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (mapping, ignored_columns) = map_columns(path, entity, spec, &names)?;
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| Error::format(path.display(), e))?;
    let mut stager = RowStager::new(spec, 1024);
    let mut rejects = Vec::new();
    let mut row_no: u64 = 0;
    for batch in reader {
        let batch = batch.map_err(|e| {
            Error::Data(format!(
                "{}: Parquet data cannot be read: {e}",
                path.display()
            ))
        })?;
        // Per contract column: the source as text, or as typed ints/bools when they match.
        let mut cols: Vec<Option<Source>> = Vec::with_capacity(mapping.len());
        for m in &mapping {
            cols.push(match m {
                None => None,
                Some(i) => Some(Source::of(batch.column(*i)).map_err(|e| {
                    Error::Data(format!(
                        "{}: column `{}` cannot be read as text: {e}",
                        path.display(),
                        names[*i]
                    ))
                })?),
            });
        }
        for r in 0..batch.num_rows() {
            row_no += 1;
            let cells = cols.iter().map(|c| match c {
                None => Cell::Null,
                Some(s) => s.cell(r),
            });
            if let Err(rej) = stager.push(row_no, cells) {
                rejects.push(reject_row(entity, path, row_no, rej, None));
            }
        }
    }
    let (batch, lines) = stager.finish()?;
    Ok(FileStage {
        path: path.to_path_buf(),
        format: FileFormat::Parquet,
        read: row_no,
        batch,
        lines,
        rejects,
        ignored_columns,
    })
}

enum Source {
    Text(arrow::array::StringArray),
    Int(arrow::array::Int64Array),
    Bool(arrow::array::BooleanArray),
}

impl Source {
    fn of(array: &dyn Array) -> Result<Self, arrow::error::ArrowError> {
        Ok(match array.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                let a = arrow::compute::cast(array, &DataType::Int64)?;
                Source::Int(a.as_primitive::<Int64Type>().clone())
            }
            DataType::Boolean => Source::Bool(array.as_boolean().clone()),
            DataType::Timestamp(_, Some(_)) => {
                // Zoned timestamps are rendered with their offset, then read back as UTC.
                let a = arrow::compute::cast(array, &DataType::Utf8)?;
                Source::Text(a.as_string::<i32>().clone())
            }
            _ => {
                let a = arrow::compute::cast(array, &DataType::Utf8)?;
                Source::Text(a.as_string::<i32>().clone())
            }
        })
    }

    fn cell(&self, row: usize) -> Cell<'_> {
        match self {
            Source::Text(a) if a.is_valid(row) => Cell::Text(a.value(row)),
            Source::Int(a) if a.is_valid(row) => Cell::Int(a.value(row)),
            Source::Bool(a) if a.is_valid(row) => Cell::Bool(a.value(row)),
            _ => Cell::Null,
        }
    }
}
