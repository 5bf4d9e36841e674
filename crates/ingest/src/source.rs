//! Finding each entity's files in an export directory.
//!
//! An entity is found as `<entity>.<ext>` or as a folder `<entity>/` of such files
//! (exports split in parts), with ext one of csv, tsv, txt, jsonl, ndjson, json, parquet,
//! pq. Names starting with `_` or `.` are ignored (ground truth, markers, hidden files).

use crate::read::FileFormat;
use crmcube_model::{Error, ExportContract, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files of every entity present, and the files that belong to no entity.
#[derive(Debug, Default)]
pub struct ExportFiles {
    /// Entity → its files (sorted by name) and their format.
    pub entities: BTreeMap<String, Vec<(PathBuf, FileFormat)>>,
    /// Files that matched no entity.
    pub unmatched: Vec<PathBuf>,
}

/// Lists the export directory.
pub fn discover(dir: &Path, contract: &ExportContract) -> Result<ExportFiles> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: is not a directory; --source expects the export directory",
            dir.display()
        )));
    }
    let mut out = ExportFiles::default();
    for entry in list(dir)? {
        let name = match entry.file_name().and_then(|n| n.to_str()) {
            Some(n) => n.to_string(),
            None => continue,
        };
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            if contract.entity(&name).is_some() {
                for f in list(&entry)? {
                    if let Some(fmt) = FileFormat::from_path(&f) {
                        out.entities.entry(name.clone()).or_default().push((f, fmt));
                    }
                }
            } else if FileFormat::from_path(&entry).is_some() {
                let stem = name.split('.').next().unwrap_or_default();
                if contract.entity(stem).is_some() {
                    // Skipping it would silently load the export without this entity.
                    return Err(Error::Usage(format!(
                        "{}: is a directory, expected an export file; a folder of parts is named `{stem}/`",
                        entry.display()
                    )));
                }
            }
            continue;
        }
        let Some(fmt) = FileFormat::from_path(&entry) else {
            out.unmatched.push(entry);
            continue;
        };
        let stem = name.split('.').next().unwrap_or_default();
        if contract.entity(stem).is_some() {
            out.entities
                .entry(stem.to_string())
                .or_default()
                .push((entry, fmt));
        } else {
            out.unmatched.push(entry);
        }
    }
    for files in out.entities.values_mut() {
        files.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(out)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        v.push(e.path());
    }
    v.sort();
    Ok(v)
}

/// Whether `name` matches a pattern with `*` (any run of characters) and `?` (one).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod pattern_tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*.csv", "orders.csv"));
        assert!(!matches("*.csv", "orders.jsonl"));
        assert!(matches("orders_2025-??-*.csv", "orders_2025-01-31.csv"));
        assert!(!matches("orders_2025-??-*.csv", "orders_2025-1-31.csv"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
    }
}
