//! JSON Lines exports: one JSON object per line, parsed in parallel chunks.

use super::{reject_row, FileFormat, FileStage};
use crate::stage::{Cell, Rejection, RowStager};
use crmcube_model::{EntitySpec, Error, Result};
use rayon::prelude::*;
use serde_json::Value;
use std::path::Path;

const CHUNK_BYTES: usize = 8 << 20;

pub(super) fn read(path: &Path, entity: &str, spec: &EntitySpec) -> Result<FileStage> {
    let (data, bom) = super::read_text(path, &format!("one JSON object per {entity} per line"))?;
    let body = &data[bom..];
    // Split at line ends: JSON text cannot hold a raw newline inside a string.
    let mut bounds = vec![(0usize, 1u64)];
    let mut line = 1u64;
    let mut next = CHUNK_BYTES;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            line += 1;
            if i + 1 >= next && i + 1 < body.len() {
                bounds.push((i + 1, line));
                next = i + 1 + CHUNK_BYTES;
            }
        }
    }
    let ends: Vec<usize> = bounds
        .iter()
        .skip(1)
        .map(|b| b.0)
        .chain([body.len()])
        .collect();
    let outs: Vec<Result<_>> = bounds
        .par_iter()
        .zip(ends.par_iter())
        .map(|(&(start, first_line), &end)| {
            parse_chunk(&body[start..end], first_line, path, entity, spec)
        })
        .collect();
    let mut batches = Vec::new();
    let mut lines = Vec::new();
    let mut rejects = Vec::new();
    let mut read = 0;
    let mut extra: Vec<String> = Vec::new();
    for o in outs {
        let (r, b, l, q, x) = o?;
        read += r;
        batches.push(b);
        lines.extend(l);
        rejects.extend(q);
        for k in x {
            if !extra.contains(&k) {
                extra.push(k);
            }
        }
    }
    let batch = arrow::compute::concat_batches(&spec.arrow_schema(), &batches)
        .map_err(|e| Error::format(path.display(), e))?;
    Ok(FileStage {
        path: path.to_path_buf(),
        format: FileFormat::Jsonl,
        read,
        batch,
        lines,
        rejects,
        ignored_columns: extra,
    })
}

type ChunkOut = (
    u64,
    arrow::record_batch::RecordBatch,
    Vec<u64>,
    Vec<crate::quarantine::QuarantineRow>,
    Vec<String>,
);

fn parse_chunk(
    bytes: &[u8],
    first_line: u64,
    path: &Path,
    entity: &str,
    spec: &EntitySpec,
) -> Result<ChunkOut> {
    let mut stager = RowStager::new(spec, bytes.len() / 128 + 16);
    let mut rejects = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut read = 0;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = first_line + i as u64;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        read += 1;
        let text = String::from_utf8_lossy(raw);
        let obj = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                let kind = match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                };
                rejects.push(reject_row(
                    entity,
                    path,
                    line,
                    Rejection::row(format!("expected a JSON object, found {kind}")),
                    Some(text.into_owned()),
                ));
                continue;
            }
            Err(e) => {
                rejects.push(reject_row(
                    entity,
                    path,
                    line,
                    Rejection::row(format!("invalid JSON: {e}")),
                    Some(text.into_owned()),
                ));
                continue;
            }
        };
        if extra.len() < 64 {
            for k in obj.keys() {
                if spec.column(k).is_none() && !extra.contains(k) {
                    extra.push(k.clone());
                }
            }
        }
        let mut nested = None;
        let cells: Vec<Cell> = spec
            .columns
            .iter()
            .map(|c| match obj.get(&c.name) {
                None | Some(Value::Null) => Cell::Null,
                Some(Value::String(s)) => Cell::Text(s),
                Some(Value::Bool(b)) => Cell::Bool(*b),
                Some(Value::Number(n)) => match n.as_i64() {
                    Some(i) => Cell::Int(i),
                    None => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                Some(_) => {
                    nested.get_or_insert(c.name.clone());
                    Cell::Null
                }
            })
            .collect();
        if let Some(col) = nested {
            rejects.push(reject_row(
                entity,
                path,
                line,
                Rejection {
                    column: Some(col),
                    value: None,
                    reason: "expected a scalar value, found an object or array".into(),
                },
                Some(text.into_owned()),
            ));
            continue;
        }
        if let Err(r) = stager.push(line, cells.into_iter()) {
            rejects.push(reject_row(entity, path, line, r, Some(text.into_owned())));
        }
    }
    let (batch, lines) = stager.finish()?;
    Ok((read, batch, lines, rejects, extra))
}
