//! CSV exports, parsed in parallel chunks.
//!
//! The file is split at line ends that lie outside quoted fields (found by tracking
//! quote parity, which is exact for RFC 4180 quoting where `""` escapes a quote), so a
//! quoted field may span lines. Each chunk is parsed and checked on its own thread; line
//! numbers stay exact.

use super::{map_columns, reject_row, FileFormat, FileStage, Piece};
use crate::quarantine::QuarantineRow;
use crate::stage::{Cell, FieldBlock, Rejection, RowStager};
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
    let mut columns = super::ColumnsBuilder::new(&spec.arrow_schema());
    let mut lines = Vec::new();
    let mut rejects = Vec::new();
    let mut read = 0;
    // Room for every row is made once the first wave shows the bytes per row.
    let mut reserved = false;
    let ignored_columns = read_waves(path, entity, spec, opts, &mut |wave, row_bound| {
        for out in wave {
            read += out.read;
            columns
                .push(&out.batch)
                .map_err(|e| Error::format(path.display(), e))?;
            if lines.is_empty() {
                lines.reserve_exact(row_bound);
            }
            lines.extend(out.lines);
            rejects.extend(out.rejects);
        }
        if !reserved {
            columns.reserve_for(row_bound);
            reserved = true;
        }
        Ok(true)
    })?
    .unwrap_or_default();
    let batch = columns
        .finish()
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

/// Parses a CSV file a wave of chunks at a time and hands each wave, in file order, to
/// `sink` with a bound on the file's rows, while the next wave is parsed: at most two
/// waves of parsed chunks are ever in memory, and the sink (often one thread) overlaps
/// the parsing (all of them). Returns the file's columns that the contract does not
/// know, or `None` when the sink asked to stop (by returning `false`).
pub(super) fn read_waves(
    path: &Path,
    entity: &str,
    spec: &EntitySpec,
    opts: &CsvOptions,
    sink: &mut (dyn FnMut(Vec<Piece>, usize) -> Result<bool> + Send),
) -> Result<Option<Vec<String>>> {
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
    let wave = 2 * rayon::current_num_threads().max(1);
    let row_bound: usize = chunks.iter().map(|c| c.lines as usize).sum();
    let mut absorb = |results: Vec<Result<Piece>>| -> Result<bool> {
        let wave = results.into_iter().collect::<Result<Vec<Piece>>>()?;
        sink(wave, row_bound)
    };
    let parse = |group: &[Chunk]| -> Vec<Result<Piece>> {
        group
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
            .collect()
    };
    let mut parsed: Option<Vec<Result<Piece>>> = None;
    for group in chunks.chunks(wave) {
        let (results, go_on) = rayon::join(
            || parse(group),
            || parsed.take().map_or(Ok(true), &mut absorb),
        );
        if !go_on? {
            return Ok(None);
        }
        parsed = Some(results);
    }
    if let Some(last) = parsed {
        if !absorb(last)? {
            return Ok(None);
        }
    }
    Ok(Some(ignored_columns))
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
    let mut end = rdr.position().byte() as usize;
    // After a CRLF header the reader stops between `\r` and `\n`; the line feed belongs
    // to the header line, not to the first record.
    if end > 0 && body[end - 1] == b'\r' && body.get(end) == Some(&b'\n') {
        end += 1;
    }
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

/// What a chunk's records are checked against, and where refused rows go.
struct ChunkCtx<'a> {
    path: &'a Path,
    entity: &'a str,
    mapping: &'a [Option<usize>],
    field_count: usize,
    delimiter: u8,
    /// The chunk is valid UTF-8 and the delimiter and quote are ASCII, so every field is
    /// valid UTF-8 too (a field ends at an ASCII byte, never inside a character).
    utf8: bool,
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
) -> Result<Piece> {
    // Sized so that no column grows while the chunk is parsed: a chunk's records are
    // about its line count, and no text column can hold more bytes than the chunk.
    let mut stager = RowStager::with_text_capacity(spec, records + 1, bytes.len());
    let mut rejects = Vec::new();
    let scan = scan_chunk(bytes, opts.quote);
    if !scan.nul {
        stager.assume_no_nul();
    }
    let ctx = ChunkCtx {
        path,
        entity,
        mapping,
        field_count,
        delimiter: opts.delimiter,
        utf8: opts.delimiter.is_ascii()
            && opts.quote.is_ascii()
            && (!scan.non_ascii || std::str::from_utf8(bytes).is_ok()),
    };
    let read = if field_count > 0
        && opts.delimiter != b'\n'
        && opts.delimiter != b'\r'
        && !scan.quote
        && !scan.lone_cr
    {
        parse_plain(bytes, first_line, &ctx, &mut stager, &mut rejects)
    } else {
        parse_csv(bytes, first_line, opts, &ctx, &mut stager, &mut rejects)
    };
    let (batch, lines) = stager.finish()?;
    Ok(Piece {
        read,
        batch,
        lines,
        rejects,
    })
}

/// What one pass over a chunk finds out about its bytes.
#[derive(Debug, Default, PartialEq)]
struct ChunkScan {
    /// Some byte is not ASCII.
    non_ascii: bool,
    /// Some byte is NUL.
    nul: bool,
    /// Some byte is the quote character.
    quote: bool,
    /// Some carriage return is not right before a line feed.
    lone_cr: bool,
}

/// Scans a chunk once (sixteen bytes at a time) for what decides how it is parsed.
fn scan_chunk(bytes: &[u8], quote: u8) -> ChunkScan {
    let mut scan = ChunkScan::default();
    let mut note = |p: usize| match bytes[p] {
        b'\r' if bytes.get(p + 1) == Some(&b'\n') => {}
        b'\r' if quote != b'\r' => scan.lone_cr = true,
        0 if quote != 0 => scan.nul = true,
        _ => scan.quote = true,
    };
    let mut high = false;
    let mut base = 0;
    while base + 16 <= bytes.len() {
        let (mut mask, h) = special_mask(&bytes[base..base + 16], quote);
        high |= h;
        while mask != 0 {
            note(base + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
        base += 16;
    }
    for (p, &b) in bytes.iter().enumerate().skip(base) {
        high |= !b.is_ascii();
        if matches!(b, b'\r' | 0) || b == quote {
            note(p);
        }
    }
    scan.non_ascii = high;
    scan
}

/// Bit `k` set where byte `k` of the 16 is NUL, a carriage return or `quote`, and
/// whether any of them is not ASCII.
#[cfg(target_arch = "x86_64")]
#[inline]
fn special_mask(block: &[u8], quote: u8) -> (u32, bool) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    debug_assert_eq!(block.len(), 16);
    // SAFETY: SSE2 is part of every x86_64 target; the load reads the 16 bytes of
    // `block` (unaligned loads are allowed).
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let z = _mm_cmpeq_epi8(v, _mm_setzero_si128());
        let r = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8));
        let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(quote as i8));
        let mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(z, r), q)) as u32;
        (mask, _mm_movemask_epi8(v) != 0)
    }
}

/// Bit `k` set where byte `k` of the 16 is NUL, a carriage return or `quote`, and
/// whether any of them is not ASCII.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn special_mask(block: &[u8], quote: u8) -> (u32, bool) {
    let mask = block
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 0 || b == b'\r' || b == quote)
        .fold(0, |m, (k, _)| m | 1 << k);
    (mask, !block.is_ascii())
}

/// Whether every line of `bytes` is one record of plain fields: no quote character, and
/// no carriage return except right before a line feed. Such a chunk is split on line
/// feeds and delimiters directly, with the same records as the CSV reader.
#[cfg(test)]
fn plain_lines(bytes: &[u8], quote: u8) -> bool {
    let scan = scan_chunk(bytes, quote);
    !scan.quote && !scan.lone_cr
}

/// Records of a plain chunk waiting to be staged: where each field starts and where the
/// record ends (see [`FieldBlock`]), and each record's line.
struct PlainBlock {
    at: Vec<usize>,
    lines: Vec<u64>,
    /// Rows refused for their field count, waiting to be merged in line order.
    refused: Vec<QuarantineRow>,
}

/// Rows staged together from a plain chunk: enough that each column's checks run long
/// enough to be cheap, few enough that the field positions stay in the cache.
const PLAIN_BLOCK_ROWS: usize = 2048;

/// Parses a chunk of plain lines (see [`plain_lines`]); returns the records read. Empty
/// lines are skipped, as the CSV reader does.
///
/// Delimiters and line feeds are found in one vectorised pass over the chunk; the
/// records are then checked and staged a block at a time, column by column
/// ([`RowStager::push_fields`]).
fn parse_plain(
    bytes: &[u8],
    first_line: u64,
    ctx: &ChunkCtx,
    stager: &mut RowStager,
    rejects: &mut Vec<QuarantineRow>,
) -> u64 {
    let f = ctx.field_count;
    let mut block = PlainBlock {
        at: Vec::with_capacity(PLAIN_BLOCK_ROWS * (f + 1) + 1),
        lines: Vec::with_capacity(PLAIN_BLOCK_ROWS),
        refused: Vec::new(),
    };
    let mut read = 0;
    let mut line = first_line;
    // The record being read: where it starts and how many fields have ended. `at`
    // holds the starts of its fields so far.
    let mut start = 0;
    let mut ended = 0;
    let mut end_record = |block: &mut PlainBlock, start: usize, end: usize, ended: usize| {
        // A carriage return right before the line feed ends the line, not the field.
        let end = if end > start && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let this_line = line;
        line += 1;
        let rows = block.lines.len();
        if end == start {
            block.at.truncate(rows * (f + 1));
            return;
        }
        read += 1;
        if ended + 1 != f {
            block.at.truncate(rows * (f + 1));
            block.refused.push(reject_row(
                ctx.entity,
                ctx.path,
                this_line,
                Rejection::row(field_count_reason(f, ended + 1, this_line, this_line)),
                Some(String::from_utf8_lossy(&bytes[start..end]).into_owned()),
            ));
        } else {
            block.at.push(end + 1);
            block.lines.push(this_line);
            if rows + 1 == PLAIN_BLOCK_ROWS {
                stage_block(bytes, ctx, stager, &mut *block, rejects);
            }
        }
    };
    block.at.push(0);
    for_each_separator(bytes, ctx.delimiter, |p| {
        if bytes[p] == b'\n' {
            end_record(&mut block, start, p, ended);
            start = p + 1;
            ended = 0;
            block.at.push(start);
        } else {
            if ended + 1 < f {
                block.at.push(p + 1);
            }
            ended += 1;
        }
    });
    if start < bytes.len() {
        end_record(&mut block, start, bytes.len(), ended);
    }
    let rows = block.lines.len();
    block.at.truncate(rows * (f + 1));
    stage_block(bytes, ctx, stager, &mut block, rejects);
    read
}

/// Calls `f` with the position of every `delimiter` and line feed in `bytes`, in order.
///
/// Sixteen bytes are compared at a time and the matches read off a bit mask: a plain
/// CSV line has a separator every few bytes, too often for a search that starts over
/// after each one.
fn for_each_separator(bytes: &[u8], delimiter: u8, mut f: impl FnMut(usize)) {
    let mut base = 0;
    while base + 16 <= bytes.len() {
        let mut mask = separator_mask(&bytes[base..base + 16], delimiter);
        while mask != 0 {
            f(base + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
        base += 16;
    }
    for (k, &b) in bytes[base..].iter().enumerate() {
        if b == delimiter || b == b'\n' {
            f(base + k);
        }
    }
}

/// Bit `k` is set where byte `k` of the 16 is `delimiter` or a line feed.
#[cfg(target_arch = "x86_64")]
#[inline]
fn separator_mask(block: &[u8], delimiter: u8) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    debug_assert_eq!(block.len(), 16);
    // SAFETY: SSE2 is part of every x86_64 target; the load reads the 16 bytes of
    // `block` (unaligned loads are allowed).
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let d = _mm_cmpeq_epi8(v, _mm_set1_epi8(delimiter as i8));
        let n = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
        _mm_movemask_epi8(_mm_or_si128(d, n)) as u32
    }
}

/// Bit `k` is set where byte `k` of the 16 is `delimiter` or a line feed.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn separator_mask(block: &[u8], delimiter: u8) -> u32 {
    block
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == delimiter || b == b'\n')
        .fold(0, |m, (k, _)| m | 1 << k)
}

/// Stages the rows of `block` and moves its refused rows to `rejects` in line order.
fn stage_block(
    bytes: &[u8],
    ctx: &ChunkCtx,
    stager: &mut RowStager,
    block: &mut PlainBlock,
    rejects: &mut Vec<QuarantineRow>,
) {
    let PlainBlock { at, lines, refused } = block;
    let fields = FieldBlock {
        bytes,
        at,
        fields: ctx.field_count,
        utf8: ctx.utf8,
    };
    let cells = stager.push_fields(lines, &fields, ctx.mapping);
    let merge = !refused.is_empty() && !cells.is_empty();
    for (r, why) in cells {
        let record = String::from_utf8_lossy(fields.record(r)).into_owned();
        refused.push(reject_row(
            ctx.entity,
            ctx.path,
            lines[r],
            why,
            Some(record),
        ));
    }
    if merge {
        refused.sort_by_key(|q| q.line);
    }
    rejects.append(refused);
    at.clear();
    lines.clear();
}

/// Why a record with `found` fields instead of `expected` is refused.
fn field_count_reason(expected: usize, found: usize, line: u64, last_line: u64) -> String {
    let mut reason = format!("expected {expected} fields, found {found}");
    if last_line > line {
        reason.push_str(&format!(
            "; the record runs from line {line} to line {last_line}, probably an unclosed quote"
        ));
    }
    reason
}

/// Parses a chunk with the CSV reader (quoted fields); returns the records read.
fn parse_csv(
    bytes: &[u8],
    first_line: u64,
    opts: &CsvOptions,
    ctx: &ChunkCtx,
    stager: &mut RowStager,
    rejects: &mut Vec<QuarantineRow>,
) -> u64 {
    let mut rdr = builder(opts).from_reader(bytes);
    let mut rec = csv::ByteRecord::new();
    let mut read = 0;
    let delimiter = [ctx.delimiter];
    loop {
        let line_before = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                read += 1;
                let line = first_line + line_before.saturating_sub(1);
                rejects.push(reject_row(
                    ctx.entity,
                    ctx.path,
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
        let last_line = (first_line + rdr.position().line()).saturating_sub(2);
        let rec = &rec;
        stage_record(
            ctx,
            stager,
            rejects,
            line,
            last_line,
            rec.len(),
            |i| &rec[i],
            || raw_record(rec, &delimiter),
        );
    }
    read
}

/// Checks one record (`len` fields in file order, `field(i)` the i-th, on lines
/// `line..=last_line`) and stages it, or quarantines it with the reason.
#[allow(clippy::too_many_arguments)]
fn stage_record<'f>(
    ctx: &ChunkCtx,
    stager: &mut RowStager,
    rejects: &mut Vec<QuarantineRow>,
    line: u64,
    last_line: u64,
    len: usize,
    field: impl Fn(usize) -> &'f [u8],
    raw: impl FnOnce() -> String,
) {
    if len != ctx.field_count {
        let reason = field_count_reason(ctx.field_count, len, line, last_line);
        rejects.push(reject_row(
            ctx.entity,
            ctx.path,
            line,
            Rejection::row(reason),
            Some(raw()),
        ));
        return;
    }
    let cells = ctx.mapping.iter().map(|m| match m {
        None => Cell::Null,
        // SAFETY: `ctx.utf8` only when every field is valid UTF-8 (see `ChunkCtx::utf8`).
        Some(i) => unsafe { Cell::of_field(field(*i), ctx.utf8) },
    });
    if let Err(r) = stager.push(line, cells) {
        rejects.push(reject_row(ctx.entity, ctx.path, line, r, Some(raw())));
    }
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

    /// Staged rows (line, values) and quarantined rows (line, reason, raw record) of a
    /// chunk, parsed by the plain-line path or by the CSV reader.
    type Staged = (u64, Vec<(u64, Vec<Option<String>>)>, Vec<(u64, String)>);

    fn staged(bytes: &[u8], plain: bool) -> Staged {
        use arrow::array::{Array, AsArray};
        let contract = crmcube_model::ExportContract::parse(
            "entities:\n  t:\n    primary_key: [a]\n    columns:\n      - { name: a, type: string, nullable: true }\n      - { name: n, type: int, nullable: true }\n      - { name: b, type: string, nullable: true }\n",
            "t.yaml",
        )
        .unwrap();
        let spec = contract.entity("t").unwrap();
        let mut stager = RowStager::with_text_capacity(spec, 64, bytes.len());
        let mut rejects = Vec::new();
        let ctx = ChunkCtx {
            path: Path::new("t.csv"),
            entity: "t",
            mapping: &[Some(0), Some(1), Some(2)],
            field_count: 3,
            delimiter: b',',
            utf8: std::str::from_utf8(bytes).is_ok(),
        };
        let read = if plain {
            assert!(plain_lines(bytes, b'"'));
            parse_plain(bytes, 7, &ctx, &mut stager, &mut rejects)
        } else {
            parse_csv(
                bytes,
                7,
                &CsvOptions::default(),
                &ctx,
                &mut stager,
                &mut rejects,
            )
        };
        let (batch, lines) = stager.finish().unwrap();
        let text =
            arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let ints =
            arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Utf8).unwrap();
        let rows = lines
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let v = |a: &arrow::array::ArrayRef| {
                    let a = a.as_string::<i32>();
                    a.is_valid(i).then(|| a.value(i).to_string())
                };
                (l, vec![v(&text), v(&ints)])
            })
            .collect();
        let rejects = rejects
            .iter()
            .map(|r| {
                (
                    r.line,
                    format!("{} {:?} {:?} {:?}", r.reason, r.column, r.value, r.record),
                )
            })
            .collect();
        (read, rows, rejects)
    }

    #[test]
    fn plain_lines_parse_like_the_csv_reader() {
        // The same records, values and refusals as the CSV reader.
        let cases: [&[u8]; 10] = [
            b"x,1,y\nz,2,w\n",
            b"x,1,y\r\nz,2,w\r\n",
            b"x,1,y\n\nz,2,w\n\n\n",
            b"x,1,y\r\n\r\nz,2,w",
            b"x,1\nx,1,y,z\n,,\n",
            b"x,oops,y\n \n a ,3, b \n",
            b",,\n\xff\xfe,4,y\n",
            b"caf\xc3\xa9,5,\xe2\x82\xac\n",
            b"x,1,y",
            b"\n\n",
        ];
        let without_lines = |(read, rows, rejects): Staged| {
            let rows: Vec<_> = rows.into_iter().map(|(_, v)| v).collect();
            let reasons: Vec<_> = rejects.into_iter().map(|(_, r)| r).collect();
            (read, rows, reasons)
        };
        for bytes in cases {
            assert_eq!(
                without_lines(staged(bytes, true)),
                without_lines(staged(bytes, false)),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Line numbers count every line feed, blank lines and CRLF ends included (the
        // CSV reader's own positions drift on both).
        let lines = |bytes: &[u8]| {
            let (_, rows, rejects) = staged(bytes, true);
            let mut l: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
            l.extend(rejects.iter().map(|(l, _)| *l));
            l
        };
        assert_eq!(lines(b"x,1,y\r\n\r\nz,2,w\r\n"), [7, 9]);
        assert_eq!(lines(b"\nx,1,y\n\n\nz,2\n"), [8, 11]);
        assert!(!plain_lines(b"a\rb,1,c\n", b'"'));
        assert!(!plain_lines(b"\"a\",1,c\n", b'"'));
        assert!(plain_lines(b"a,1,c\r\n", b'"'));
    }

    /// A chunk parsed by one path: records read, the staged batch and its lines, and the
    /// refused rows as (line, column, value, reason, record).
    type Parsed = (
        u64,
        arrow::record_batch::RecordBatch,
        Vec<u64>,
        Vec<Refused>,
    );

    /// A refused row: line, column, value, reason, record.
    type Refused = (u64, Option<String>, Option<String>, String, Option<String>);

    fn parse_with(spec: &EntitySpec, bytes: &[u8], plain: bool) -> Parsed {
        let mut stager = RowStager::with_text_capacity(spec, 64, bytes.len());
        if !bytes.contains(&0) {
            stager.assume_no_nul();
        }
        let mut rejects = Vec::new();
        let mapping: Vec<Option<usize>> = (0..spec.columns.len()).map(Some).collect();
        let ctx = ChunkCtx {
            path: Path::new("t.csv"),
            entity: "t",
            mapping: &mapping,
            field_count: spec.columns.len(),
            delimiter: b',',
            utf8: std::str::from_utf8(bytes).is_ok(),
        };
        let read = if plain {
            assert!(plain_lines(bytes, b'"'));
            parse_plain(bytes, 2, &ctx, &mut stager, &mut rejects)
        } else {
            let opts = CsvOptions::default();
            parse_csv(bytes, 2, &opts, &ctx, &mut stager, &mut rejects)
        };
        let (batch, lines) = stager.finish().unwrap();
        let rejects = rejects
            .into_iter()
            .map(|r| (r.line, r.column, r.value, r.reason, r.record))
            .collect();
        (read, batch, lines, rejects)
    }

    #[test]
    fn blocks_of_plain_lines_stage_and_refuse_like_single_rows() {
        // Every type, accepted values (short, 4-byte, long), lengths, bounds; good values
        // in their common and rarer spellings and bad ones, over several blocks.
        let contract = crmcube_model::ExportContract::parse(
            "entities:\n  t:\n    primary_key: [id]\n    columns:\n      - { name: id, type: string, max_length: 6 }\n      - { name: kind, type: string, accepted: [a, dddd, mobile, tablet, a-rather-long-accepted-value], nullable: true }\n      - { name: n, type: int, min: 0, nullable: true }\n      - { name: amt, type: decimal, scale: 2, nullable: true }\n      - { name: ok, type: bool, nullable: true }\n      - { name: day, type: date, nullable: true }\n      - { name: ts, type: timestamp, nullable: true }\n      - { name: x, type: float, nullable: true }\n",
            "t.yaml",
        )
        .unwrap();
        let spec = contract.entity("t").unwrap();
        let pools: [&[&str]; 8] = [
            &["r1", "r22", "abcdef", "abcdefg", "é", "ééééééé"],
            &[
                "a",
                "dddd",
                "mobile",
                "tablet",
                "a-rather-long-accepted-value",
                "",
                "b",
                "ddd",
                "mobil",
                "A",
                "a-rather-long-accepted-valuE",
            ],
            &[
                "0",
                "7",
                "-1",
                "+5",
                " 8",
                "3.0",
                "3.5",
                "x",
                "",
                "999999999999999999",
                "9999999999999999999",
            ],
            &[
                "1",
                "1.5",
                "-0.01",
                "1.",
                ".5",
                "1.234",
                "1.230",
                "",
                "1e3",
                "-",
                "12345678901234567",
            ],
            &["true", "false", "TRUE", "yes", "n", "0", "", "maybe"],
            &[
                "2024-02-29",
                "2023-02-29",
                "2024-13-01",
                "1999-12-31",
                "",
                " 2024-01-01",
                "2024-01-01T00:00:00",
                "0000-01-01",
            ],
            &[
                "2024-01-01T10:00:00",
                "2024-01-01 23:59:59",
                "2024-01-01T23:59:60",
                "2024-01-01T24:00:00",
                "2024-01-01T10:00:00Z",
                "2024-01-01T10:00:00.5+02:00",
                "2024-01-01",
                "2024-02-30T00:00:00",
                "",
            ],
            &["1.5", "-2", "", "inf", "nope"],
        ];
        let mut seed: u64 = 42;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let mut text = String::new();
        for row in 0..6000 {
            match next(40) {
                0 => text.push_str("short,row\n"),
                1 => text.push('\n'),
                2 => text.push_str("r1,a,1,1,t,2024-01-01,2024-01-01T00:00:00,1,extra\n"),
                _ => {
                    // Mostly good rows, so that blocks have both.
                    let cells: Vec<&str> = pools
                        .iter()
                        .map(|pool| {
                            if next(8) == 0 {
                                pool[next(pool.len())]
                            } else {
                                pool[0]
                            }
                        })
                        .collect();
                    text.push_str(&cells.join(","));
                    text.push_str(if row % 7 == 0 { "\r\n" } else { "\n" });
                }
            }
        }
        let bytes = text.as_bytes();
        let plain = parse_with(spec, bytes, true);
        let rows = parse_with(spec, bytes, false);
        assert!(
            plain.1.num_rows() > 2 * PLAIN_BLOCK_ROWS,
            "{}",
            plain.1.num_rows()
        );
        assert!(plain.3.len() > 1000, "{}", plain.3.len());
        assert_eq!(plain.0, rows.0);
        assert_eq!(plain.1, rows.1);
        // The CSV reader's line positions drift on blank lines and CRLF ends (and with
        // them its note on records spanning lines); compare the rest.
        let strip = |r: &Vec<Refused>| {
            r.iter()
                .map(|(_, c, v, why, rec)| {
                    let why = why.split("; the record runs").next().unwrap_or_default();
                    (c.clone(), v.clone(), why.to_string(), rec.clone())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&plain.3), strip(&rows.3));
        // Lines are those of the text, in order, refused or staged.
        let mut all: Vec<u64> = plain.2.clone();
        all.extend(plain.3.iter().map(|r| r.0));
        all.sort_unstable();
        let expected: Vec<u64> = text
            .split('\n')
            .enumerate()
            .filter(|(_, l)| !l.is_empty() && *l != "\r")
            .map(|(i, _)| 2 + i as u64)
            .collect();
        assert_eq!(all, expected);
        assert!(plain.3.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_chunk_scan_finds_what_decides_the_parse() {
        let scan = |b: &[u8]| scan_chunk(b, b'"');
        let pad = |b: &[u8], at: usize| {
            let mut v = vec![b'a'; 48];
            v.splice(at..at + b.len(), b.iter().copied());
            v
        };
        for at in [0, 5, 15, 16, 31, 37] {
            assert_eq!(scan(&pad(b"x\r\ny", at)), ChunkScan::default(), "{at}");
            assert!(scan(&pad(b"\ry", at)).lone_cr, "{at}");
            assert!(scan(&pad(b"\"", at)).quote, "{at}");
            assert!(scan(&pad(b"\0", at)).nul, "{at}");
            assert!(scan(&pad("é".as_bytes(), at)).non_ascii, "{at}");
        }
        assert!(scan(b"ab\r").lone_cr);
        assert_eq!(scan(b""), ChunkScan::default());
        assert!(scan_chunk(b"a'b", b'\'').quote);
    }

    #[test]
    fn separators_are_found_in_every_position() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| [b'a', b',', b'\n', b';'][(i * 7 + i / 3) % 4])
                .collect();
            for delimiter in [b',', b';', b'\t'] {
                let mut found = Vec::new();
                for_each_separator(&bytes, delimiter, |p| found.push(p));
                let expected: Vec<usize> = (0..len)
                    .filter(|&i| bytes[i] == delimiter || bytes[i] == b'\n')
                    .collect();
                assert_eq!(found, expected);
            }
        }
    }

    #[test]
    fn the_header_line_ends_after_its_line_feed() {
        for (body, end) in [
            (&b"a,b\nx,y\n"[..], 4),
            (b"a,b\r\nx,y\r\n", 5),
            (b"\"a\",b\r\nx,y", 7),
        ] {
            let (names, e, lines) =
                read_header(Path::new("t.csv"), body, &CsvOptions::default()).unwrap();
            assert_eq!(names, ["a", "b"]);
            assert_eq!((e, lines), (end, 1), "{:?}", String::from_utf8_lossy(body));
        }
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
