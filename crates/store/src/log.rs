//! The warehouse log `_crmcube_log/NNNNNNNNNNNNNNNNNNNN.json`: one JSON document per
//! warehouse version naming the Delta version of every table.

use crate::{delta, io_err, put_if_absent};
use crmcube_model::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Folder of the warehouse log.
pub const LOG_DIR: &str = "_crmcube_log";

/// A table's place in a warehouse version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableVersion {
    /// Delta version of the table.
    pub version: u64,
    /// Rows in the table at that version.
    pub rows: u64,
    /// Data files at that version.
    pub files: u64,
}

/// One warehouse version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Commit {
    /// Warehouse version (0, 1, 2, …).
    pub version: u64,
    /// Id of the load or job that wrote it.
    pub load_id: String,
    /// What wrote it (`ingest`, `mine score`, …).
    pub operation: String,
    /// When the writer started (RFC 3339).
    pub started_at: String,
    /// When the version was committed (RFC 3339).
    pub committed_at: String,
    /// Tables this version changed.
    pub changed: Vec<String>,
    /// Every table of the warehouse at this version.
    pub tables: BTreeMap<String, TableVersion>,
    /// Job details: input files with their content hash, per-entity counts, …
    #[serde(default)]
    pub info: serde_json::Value,
}

/// Which version to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AsOf {
    /// The newest version.
    Latest,
    /// A version number.
    Version(u64),
    /// The newest version committed at or before this time.
    Time(chrono::DateTime<chrono::Utc>),
}

fn path_of(dir: &Path, version: u64) -> PathBuf {
    dir.join(LOG_DIR).join(format!("{version:020}.json"))
}

/// Versions in the warehouse log, ascending.
pub fn versions(dir: &Path) -> Result<Vec<u64>> {
    crate::numbered_json_files(&dir.join(LOG_DIR))
}

/// The newest version, if any.
pub fn latest_version(dir: &Path) -> Result<Option<u64>> {
    Ok(versions(dir)?.last().copied())
}

/// Reads one version.
pub fn read(dir: &Path, version: u64) -> Result<Commit> {
    let p = path_of(dir, version);
    let text = std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(p.display(), e))
}

/// Writes a new version; fails if it exists already.
pub fn write(dir: &Path, commit: &Commit) -> Result<()> {
    let text = serde_json::to_vec_pretty(commit).map_err(|e| Error::format(LOG_DIR, e))?;
    put_if_absent(&path_of(dir, commit.version), &text)
}

/// Every version, oldest first.
pub fn history(dir: &Path) -> Result<Vec<Commit>> {
    not_a_warehouse_check(dir)?;
    versions(dir)?.into_iter().map(|v| read(dir, v)).collect()
}

fn not_a_warehouse_check(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: no such warehouse folder",
            dir.display()
        )));
    }
    if !dir.join(LOG_DIR).is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a crmcube warehouse (no {LOG_DIR}/); build one with `crmcube ingest`, or use --data to query any folder of Parquet files",
            dir.display()
        )));
    }
    Ok(())
}

/// The commit a reader asking for `as_of` gets.
pub fn resolve(dir: &Path, as_of: AsOf) -> Result<Commit> {
    not_a_warehouse_check(dir)?;
    let all = versions(dir)?;
    let Some(&latest) = all.last() else {
        return Err(Error::Usage(format!(
            "{}: the warehouse has no committed version yet",
            dir.display()
        )));
    };
    match as_of {
        AsOf::Latest => read(dir, latest),
        AsOf::Version(v) => {
            if all.binary_search(&v).is_err() {
                return Err(Error::Usage(format!(
                    "{}: no version {v}; versions are {} to {latest} (see `crmcube history`)",
                    dir.display(),
                    all[0]
                )));
            }
            read(dir, v)
        }
        AsOf::Time(t) => {
            let mut found = None;
            for &v in &all {
                let c = read(dir, v)?;
                let at = chrono::DateTime::parse_from_rfc3339(&c.committed_at)
                    .map_err(|e| Error::format(path_of(dir, v).display(), e))?;
                if at <= t {
                    found = Some(c);
                } else {
                    break;
                }
            }
            found.ok_or_else(|| {
                Error::Usage(format!(
                    "{}: no version was committed at or before {}; the first is version {} (see `crmcube history`)",
                    dir.display(),
                    t.to_rfc3339(),
                    all[0]
                ))
            })
        }
    }
}

/// Removes what a writer that crashed left in the logs: Delta commits newer than the
/// version the newest warehouse commit names (they were never published), and
/// temporary files. Data files are left to `vacuum`.
pub fn recover(dir: &Path) -> Result<Vec<PathBuf>> {
    let pinned: BTreeMap<String, u64> = match latest_version(dir)? {
        Some(v) => read(dir, v)?
            .tables
            .into_iter()
            .map(|(k, t)| (k, t.version))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(removed);
    };
    for e in rd.flatten() {
        let table_dir = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !table_dir.join(delta::DELTA_LOG).is_dir() {
            continue;
        }
        let keep = pinned.get(&name).copied();
        for v in delta::versions(&table_dir)? {
            if keep.is_none_or(|k| v > k) {
                let p = delta::commit_path(&table_dir, v);
                std::fs::remove_file(&p).map_err(|err| io_err(&p, err))?;
                removed.push(p);
            }
        }
        remove_tmp(&table_dir.join(delta::DELTA_LOG))?;
    }
    remove_tmp(&dir.join(LOG_DIR))?;
    Ok(removed)
}

fn remove_tmp(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') && n.ends_with(".tmp") {
            let p = e.path();
            std::fs::remove_file(&p).map_err(|err| io_err(&p, err))?;
        }
    }
    Ok(())
}
