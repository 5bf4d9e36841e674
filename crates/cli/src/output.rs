//! Writing query results as a table, CSV, JSON or NDJSON.

use anyhow::{Context as _, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::io::Write;
use std::path::Path;

/// Result formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (zstd); best with --output FILE.
    Parquet,
}

/// Writes batches in `format` to `out`.
pub fn write_batches(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    match format {
        Format::Table => {
            let text = if batches.iter().all(|b| b.num_rows() == 0) {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    schema.clone(),
                )])?
            } else {
                arrow::util::pretty::pretty_format_batches(batches)?
            };
            writeln!(out, "{text}")?;
        }
        Format::Csv => write_csv(out, schema, batches)?,
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            drop(w);
            writeln!(out)?;
        }
        Format::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut buf = Vec::new();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut buf, schema.clone(), Some(props))?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
            out.write_all(&buf)?;
        }
    }
    Ok(())
}

/// Rows formatted per CSV chunk; chunks are formatted in parallel and written in order.
const CSV_CHUNK_ROWS: usize = 32_768;

/// CSV with one header line; large results are formatted on all cores.
fn write_csv(out: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    use rayon::prelude::*;
    let mut slices: Vec<RecordBatch> = Vec::new();
    for b in batches {
        let mut offset = 0;
        while offset < b.num_rows() {
            let len = CSV_CHUNK_ROWS.min(b.num_rows() - offset);
            slices.push(b.slice(offset, len));
            offset += len;
        }
    }
    if slices.is_empty() {
        slices.push(RecordBatch::new_empty(schema.clone()));
    }
    let parts: Vec<Vec<u8>> = slices
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let mut buf = Vec::new();
            arrow::csv::WriterBuilder::new()
                .with_header(i == 0)
                .build(&mut buf)
                .write(b)?;
            Ok(buf)
        })
        .collect::<Result<_, arrow::error::ArrowError>>()?;
    for p in parts {
        out.write_all(&p)?;
    }
    Ok(())
}

/// Writes batches to a file, or to stdout when `path` is `None`.
pub fn emit(
    path: Option<&Path>,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    match path {
        Some(p) => {
            let f = std::fs::File::create(p)
                .map_err(|e| crmcube_model::Error::io(p, e))
                .with_context(|| "cannot write the output file")?;
            let mut w = std::io::BufWriter::new(f);
            write_batches(&mut w, schema, batches, format)?;
            w.flush().map_err(|e| crmcube_model::Error::io(p, e))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            write_batches(&mut w, schema, batches, format)?;
            w.flush()?;
        }
    }
    Ok(())
}
