//! Test support: a tiny reader for the parts of `schemas/oltp.yaml` the tests need, a CSV
//! reader, and sample generation into temporary directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{generate, ExportFormat, SampleConfig};

/// One column of the contract as written in `oltp.yaml`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpecColumn {
    pub name: String,
    pub ty: String,
    pub nullable: bool,
    pub accepted: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_length: Option<usize>,
}

/// One entity of the contract.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpecEntity {
    pub name: String,
    pub primary_key: Vec<String>,
    /// (column, referenced entity, referenced column)
    pub foreign_keys: Vec<(String, String, String)>,
    pub columns: Vec<SpecColumn>,
}

fn contract_path() -> PathBuf {
    // The directory cargo runs the tests for (set at run time), so a test binary built
    // from another checkout of the same sources still reads this checkout's file.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../../schemas/oltp.yaml")
}

/// Splits `a: 1, b: [x, y], c: z` (the inside of a flow map) into key/value pairs.
fn flow_pairs(inner: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for ch in inner.chars() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    parts.push(current);
    parts
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn flow_list(v: &str) -> Vec<String> {
    v.trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn flow_map(line: &str) -> Option<Vec<(String, String)>> {
    let start = line.find('{')?;
    let end = line.rfind('}')?;
    Some(flow_pairs(&line[start + 1..end]))
}

/// The entities of `schemas/oltp.yaml`, in file order.
pub(crate) fn contract() -> Vec<SpecEntity> {
    let text = std::fs::read_to_string(contract_path()).expect("schemas/oltp.yaml is readable");
    let mut out: Vec<SpecEntity> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if indent == 2 && t.ends_with(':') {
            out.push(SpecEntity {
                name: t.trim_end_matches(':').to_string(),
                ..SpecEntity::default()
            });
            continue;
        }
        let Some(entity) = out.last_mut() else {
            continue;
        };
        if indent == 4 {
            if let Some(v) = t.strip_prefix("primary_key:") {
                entity.primary_key = flow_list(v.trim());
            }
            section = if t.starts_with("foreign_keys:") {
                "fk"
            } else if t.starts_with("columns:") {
                "columns"
            } else {
                ""
            };
            continue;
        }
        if !t.starts_with("- {") {
            continue;
        }
        let Some(pairs) = flow_map(t) else { continue };
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match section {
            "fk" => {
                let column = get("column").expect("fk column");
                let target = get("references").expect("fk target");
                let (e, c) = target.split_once('.').expect("entity.column");
                entity
                    .foreign_keys
                    .push((column, e.to_string(), c.to_string()));
            }
            "columns" => entity.columns.push(SpecColumn {
                name: get("name").expect("column name"),
                ty: get("type").expect("column type"),
                nullable: get("nullable").is_some_and(|v| v == "true"),
                accepted: get("accepted").map(|v| flow_list(&v)),
                min: get("min").and_then(|v| v.parse().ok()),
                max: get("max").and_then(|v| v.parse().ok()),
                max_length: get("max_length").and_then(|v| v.parse().ok()),
            }),
            _ => {}
        }
    }
    out
}

/// A parsed CSV file: header and rows (empty string = null).
pub(crate) struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Index of a column.
    pub(crate) fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// The values of one column.
    pub(crate) fn values(&self, name: &str) -> Vec<&str> {
        let i = self.col(name);
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }
}

/// Parses RFC 4180 CSV with `\n` line ends.
pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                '\r' => panic!("CRLF line ending"),
                _ => field.push(c),
            }
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "file does not end with a newline"
    );
    rows
}

/// Reads `<dir>/<name>.csv`.
pub(crate) fn read_table(dir: &Path, name: &str) -> Table {
    let text = std::fs::read_to_string(dir.join(format!("{name}.csv"))).expect("csv readable");
    let mut rows = parse_csv(&text);
    let header = rows.remove(0);
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{name}: ragged row {r:?}");
    }
    Table { header, rows }
}

/// Reads every file of a CSV export.
pub(crate) fn read_export(dir: &Path) -> HashMap<String, Table> {
    contract()
        .iter()
        .map(|e| (e.name.clone(), read_table(dir, &e.name)))
        .chain(std::iter::once((
            "_truth".to_string(),
            read_table(dir, "_truth"),
        )))
        .collect()
}

/// A small configuration for tests.
pub(crate) fn small(customers: usize, seed: u64) -> SampleConfig {
    SampleConfig {
        customers,
        seed,
        ..SampleConfig::default()
    }
}

/// Generates into a fresh temporary directory.
pub(crate) fn sample(cfg: &SampleConfig, format: ExportFormat) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(cfg, format, dir.path()).expect("generation succeeds");
    dir
}
