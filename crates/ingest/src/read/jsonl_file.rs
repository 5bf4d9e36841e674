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
    let batch = super::concat_columns(&spec.arrow_schema(), &batches)
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
        let obj = match serde_json::from_slice::<Line>(raw) {
            Ok(Line::Object(m, None)) => m,
            Ok(Line::Object(_, Some(key))) => {
                rejects.push(reject_row(
                    entity,
                    path,
                    line,
                    Rejection {
                        column: Some(key),
                        value: None,
                        reason:
                            "key appears twice in the JSON object; which value is meant is unclear"
                                .into(),
                    },
                    Some(text.into_owned()),
                ));
                continue;
            }
            Ok(Line::Other(kind)) => {
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

/// One parsed JSON line: an object (with the first key that appears twice, if any) or the
/// kind of value found instead. Parsed in one pass; duplicate keys are kept apart because
/// serde_json's own map silently keeps the last value.
enum Line {
    Object(serde_json::Map<String, Value>, Option<String>),
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Line {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LineVisitor)
    }
}

struct LineVisitor;

impl<'de> serde::de::Visitor<'de> for LineVisitor {
    type Value = Line;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
        let mut out = serde_json::Map::new();
        let mut duplicate = None;
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            if out.contains_key(&k) {
                duplicate.get_or_insert_with(|| k.clone());
            }
            out.insert(k, v);
        }
        Ok(Line::Object(out, duplicate))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Line, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Line::Other("an array"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Line, E> {
        Ok(Line::Other("a string"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Line, E> {
        Ok(Line::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Line, E> {
        Ok(Line::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Line, E> {
        Ok(Line::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Line, E> {
        Ok(Line::Other("a number"))
    }

    fn visit_unit<E>(self) -> Result<Line, E> {
        Ok(Line::Other("null"))
    }
}
