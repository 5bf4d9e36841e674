//! CSV exports, parsed in parallel chunks.
//!
//! The file is split at line ends that lie outside quoted fields (found by tracking
//! quote parity, which is exact for RFC 4180 quoting where `""` escapes a quote), so a
//! quoted field may span lines. Each chunk is parsed and checked on its own thread; line
//! numbers stay exact.

use super::{map_columns, reject_row, FileFormat, FileStage};
use crate::quarantine::QuarantineRow;
use crate::stage::{Cell, Rejection, RowStager};
use arrow::record_batch::RecordBatch;
use crmcube_model::{EntitySpec, Error, Result};
use rayon::prelude::*;
use std::path::Path;

/// How to parse CSV files.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Field separator.
    pub delimiter: u8,
    /// Quote character.
    pub quote: u8,
    /// Whether the first line names the columns (otherwise columns are in contract order).
    pub has_header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: b'"',
            has_header: true,
        }
    }
}

const CHUNK_BYTES: usize = 8 << 20;

pub(super) fn read(
    path: &Path,
    entity: &str,
    spec: &EntitySpec,
    opts: &CsvOptions,
) -> Result<FileStage> {
    let expected = if opts.has_header {
        format!("a header line naming the columns, then a row per {entity}")
    } else {
        format!("a row per {entity}")
    };
    let (data, bom) = super::read_text(path, &expected)?;
    let body = &data[bom..];

    let (names, header_end, header_lines) = if opts.has_header {
        read_header(path, body, opts)?
    } else {
        let names = spec.columns.iter().map(|c| c.name.clone()).collect();
        (names, 0, 0)
    };
    let (mapping, ignored_columns) = map_columns(path, entity, spec, &names)?;
    let field_count = names.len();

    let chunks = split_chunks(
        &body[header_end..],
        opts.quote,
        header_lines + 1,
        CHUNK_BYTES,
    );
    let results: Vec<Result<ChunkOut>> = chunks
        .par_iter()
        .map(|c| {
            parse_chunk(
                &body[header_end + c.start..header_end + c.end],
                c.first_line,
                c.lines as usize,
                path,
                entity,
                spec,
                opts,
                &mapping,
                field_count,
            )
        })
        .collect();

    let mut batches = Vec::with_capacity(results.len());
    let mut lines = Vec::new();
    let mut rejects = Vec::new();
    let mut read = 0;
    for r in results {
        let out = r?;
        read += out.read;
        batches.push(out.batch);
        lines.extend(out.lines);
        rejects.extend(out.rejects);
    }
    let batch = super::concat_columns(&spec.arrow_schema(), &batches)
        .map_err(|e| Error::format(path.display(), e))?;
    Ok(FileStage {
        path: path.to_path_buf(),
        format: FileFormat::Csv,
        read,
        batch,
        lines,
        rejects,
        ignored_columns,
    })
}

fn builder(opts: &CsvOptions) -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.has_headers(false)
        .delimiter(opts.delimiter)
        .quote(opts.quote)
        .flexible(true);
    b
}

/// Returns the header names, the byte offset after the header and its line count.
fn read_header(path: &Path, body: &[u8], opts: &CsvOptions) -> Result<(Vec<String>, usize, u64)> {
    let mut rdr = builder(opts).from_reader(body);
    let mut rec = csv::ByteRecord::new();
    match rdr.read_byte_record(&mut rec) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::Data(format!(
                "{}: no header line found",
                path.display()
            )))
        }
        Err(e) => {
            return Err(Error::Data(format!(
                "{}: header line cannot be read: {e}",
                path.display()
            )))
        }
    }
    let mut names = Vec::with_capacity(rec.len());
    for f in rec.iter() {
        let name = std::str::from_utf8(f).map_err(|_| {
            Error::Data(format!(
                "{}: header line is not valid UTF-8",
                path.display()
            ))
        })?;
        names.push(name.trim().to_string());
    }
    let end = rdr.position().byte() as usize;
    let header_lines = body[..end].iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((names, end, header_lines.max(1)))
}

struct Chunk {
    start: usize,
    end: usize,
    first_line: u64,
    /// Line ends in the chunk: the number of records, unless quoted fields span lines.
    lines: u64,
}

/// Splits `data` into chunks ending at unquoted line ends.
fn split_chunks(data: &[u8], quote: u8, first_line: u64, chunk_bytes: usize) -> Vec<Chunk> {
    if memchr::memchr(quote, data).is_none() {
        split_unquoted(data, first_line, chunk_bytes)
    } else {
        split_quoted(data, quote, first_line, chunk_bytes)
    }
}

/// Chunks of a file without quote characters, where every line end ends a record: each
/// chunk ends at the first line end from its target size on, and the line ends inside
/// the chunks are counted in parallel.
fn split_unquoted(data: &[u8], first_line: u64, chunk_bytes: usize) -> Vec<Chunk> {
    let mut bounds = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let target = (start + chunk_bytes.max(1)).min(data.len());
        let end = memchr::memchr(b'\n', &data[target - 1..]).map_or(data.len(), |p| target + p);
        bounds.push((start, end));
        start = end;
    }
    let counts: Vec<u64> = bounds
        .par_iter()
        .map(|&(s, e)| memchr::memchr_iter(b'\n', &data[s..e]).count() as u64)
        .collect();
    let mut line = first_line;
    bounds
        .into_iter()
        .zip(counts)
        .map(|((start, end), n)| {
            let chunk = Chunk {
                start,
                end,
                first_line: line,
                lines: n + u64::from(!data[..end].ends_with(b"\n")),
            };
            line += n;
            chunk
        })
        .collect()
}

/// Chunks ending at line ends outside quotes, found by tracking quote parity.
fn split_quoted(data: &[u8], quote: u8, first_line: u64, chunk_bytes: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut line = first_line;
    let mut chunk_first_line = first_line;
    let mut in_quote = false;
    let mut target = chunk_bytes.min(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == quote {
            in_quote = !in_quote;
        } else if b == b'\n' {
            line += 1;
            if !in_quote && i + 1 >= target {
                chunks.push(Chunk {
                    start,
                    end: i + 1,
                    first_line: chunk_first_line,
                    lines: line - chunk_first_line,
                });
                start = i + 1;
                chunk_first_line = line;
                target = start + chunk_bytes;
            }
        }
    }
    if start < data.len() {
        chunks.push(Chunk {
            start,
            end: data.len(),
            first_line: chunk_first_line,
            lines: line - chunk_first_line + 1,
        });
    }
    chunks
}

struct ChunkOut {
    read: u64,
    batch: RecordBatch,
    lines: Vec<u64>,
    rejects: Vec<QuarantineRow>,
}

#[allow(clippy::too_many_arguments)]
fn parse_chunk(
    bytes: &[u8],
    first_line: u64,
    records: usize,
    path: &Path,
    entity: &str,
    spec: &EntitySpec,
    opts: &CsvOptions,
    mapping: &[Option<usize>],
    field_count: usize,
) -> Result<ChunkOut> {
    let mut rdr = builder(opts).from_reader(bytes);
    // Sized so that no column grows while the chunk is parsed: a chunk's records are
    // about its line count, and no text column can hold more bytes than the chunk.
    let mut stager = RowStager::with_text_capacity(spec, records + 1, bytes.len());
    let mut rejects = Vec::new();
    let mut rec = csv::ByteRecord::new();
    let mut read = 0;
    let delimiter = [opts.delimiter];
    loop {
        let line_before = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                read += 1;
                let line = first_line + line_before.saturating_sub(1);
                rejects.push(reject_row(
                    entity,
                    path,
                    line,
                    Rejection::row(format!("malformed CSV record: {e}")),
                    None,
                ));
                continue;
            }
        }
        read += 1;
        let start_line = rec.position().map_or(line_before, |p| p.line());
        let line = first_line + start_line.saturating_sub(1);
        let end_line = first_line + rdr.position().line().saturating_sub(1);
        if rec.len() != field_count {
            let mut reason = format!("expected {field_count} fields, found {}", rec.len());
            if end_line > line + 1 {
                reason.push_str(&format!(
                    "; the record runs from line {line} to line {}, probably an unclosed quote",
                    end_line - 1
                ));
            }
            rejects.push(reject_row(
                entity,
                path,
                line,
                Rejection::row(reason),
                Some(raw_record(&rec, &delimiter)),
            ));
            continue;
        }
        let cells = mapping.iter().map(|m| match m {
            None => Cell::Null,
            Some(i) => {
                let f = &rec[*i];
                match std::str::from_utf8(f) {
                    Ok(s) => Cell::Text(s),
                    Err(_) => Cell::Invalid(f),
                }
            }
        });
        if let Err(r) = stager.push(line, cells) {
            rejects.push(reject_row(
                entity,
                path,
                line,
                r,
                Some(raw_record(&rec, &delimiter)),
            ));
        }
    }
    let (batch, lines) = stager.finish()?;
    Ok(ChunkOut {
        read,
        batch,
        lines,
        rejects,
    })
}

fn raw_record(rec: &csv::ByteRecord, delimiter: &[u8]) -> String {
    String::from_utf8_lossy(&rec.iter().collect::<Vec<_>>().join(delimiter)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_never_split_quoted_newlines() {
        let mut data = Vec::new();
        for i in 0..200_000 {
            data.extend_from_slice(format!("{i},\"a\nb\",x\n").as_bytes());
        }
        let chunks = split_chunks(&data, b'"', 2, 64 * 1024);
        assert!(chunks.len() > 1);
        for c in &chunks {
            let s = &data[c.start..c.end];
            assert!(s.ends_with(b"x\n"));
            // every chunk starts a record: "<n>,"
            assert!(s[0].is_ascii_digit());
            let n: usize = std::str::from_utf8(&s[..s.iter().position(|&b| b == b',').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(c.first_line, 2 + 2 * n as u64);
        }
        assert_eq!(chunks.last().unwrap().end, data.len());
    }

    #[test]
    fn unquoted_files_split_like_quoted_ones() {
        let mut data = Vec::new();
        for i in 0..50_000 {
            data.extend_from_slice(format!("{i},x{}\n", "y".repeat(i % 37)).as_bytes());
        }
        for tail in [&b""[..], b"last,row"] {
            let mut d = data.clone();
            d.extend_from_slice(tail);
            for size in [1, 100, 4096, 1 << 20, 1 << 30] {
                let fast = split_unquoted(&d, 2, size);
                let slow = split_quoted(&d, b'"', 2, size);
                let bounds = |c: &[Chunk]| {
                    c.iter()
                        .map(|c| (c.start, c.end, c.first_line))
                        .collect::<Vec<_>>()
                };
                assert_eq!(bounds(&fast), bounds(&slow), "size {size}");
            }
        }
    }
}
