//! `vacuum`: deletes data files no retained version uses.
//!
//! A file is kept when the newest warehouse version uses it, when any version committed
//! within the retention period uses it (so time travel inside that window keeps
//! working), or when it is younger than the retention period (it may belong to a load
//! running right now). Everything else under a table folder — files replaced by later
//! versions, files of crashed loads — is deleted.

use crate::log::{self, LOG_DIR};
use crate::{delta, io_err, WriterLock};
use crmcube_model::Result;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What vacuum found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VacuumReport {
    /// Data files looked at.
    pub files_seen: u64,
    /// Files deleted (or, on a dry run, that would be).
    pub deleted: Vec<String>,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// Files kept because a retained version uses them.
    pub kept_in_use: u64,
    /// Unused files kept because they are younger than the retention period.
    pub kept_recent: u64,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
}

/// Deletes unused data files older than `retention`. Takes the writer lock so no load
/// runs meanwhile.
pub fn vacuum(dir: &Path, retention: std::time::Duration, dry_run: bool) -> Result<VacuumReport> {
    let _lock = WriterLock::acquire(dir)?;
    log::recover(dir)?;
    let commits = log::history(dir)?;
    let now = chrono::Utc::now();
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut protected: BTreeSet<PathBuf> = BTreeSet::new();
    for (i, c) in commits.iter().enumerate() {
        let last = i + 1 == commits.len();
        // A version stays readable while it, or the version that superseded it, is
        // younger than the cutoff.
        let superseded_at = commits
            .get(i + 1)
            .and_then(|n| chrono::DateTime::parse_from_rfc3339(&n.committed_at).ok());
        let retained = last || superseded_at.is_some_and(|t| t >= cutoff);
        if !retained {
            continue;
        }
        for (name, tv) in &c.tables {
            let snap = delta::snapshot(&dir.join(name), tv.version)?;
            for p in snap.files.keys() {
                protected.insert(dir.join(name).join(p));
            }
        }
    }
    let mut report = VacuumReport {
        dry_run,
        ..Default::default()
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(report);
    };
    let mut tables: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(delta::DELTA_LOG).is_dir())
        .collect();
    tables.sort();
    for t in tables {
        let mut files = Vec::new();
        walk(&t, &mut files)?;
        for f in files {
            report.files_seen += 1;
            if protected.contains(&f) {
                report.kept_in_use += 1;
                continue;
            }
            let meta = std::fs::metadata(&f).map_err(|e| io_err(&f, e))?;
            let modified: chrono::DateTime<chrono::Utc> =
                meta.modified().map(Into::into).unwrap_or(now);
            if modified > cutoff {
                report.kept_recent += 1;
                continue;
            }
            report.bytes_deleted += meta.len();
            report
                .deleted
                .push(f.strip_prefix(dir).unwrap_or(&f).display().to_string());
            if !dry_run {
                std::fs::remove_file(&f).map_err(|e| io_err(&f, e))?;
                remove_empty_parents(&f, &t);
            }
        }
    }
    Ok(report)
}

/// Data files under a table folder (not its log).
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == delta::DELTA_LOG || name == LOG_DIR {
            continue;
        }
        let ft = e.file_type().map_err(|err| io_err(&p, err))?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if ft.is_file() && name.ends_with(".parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// Removes the folders above `file` that are empty, up to (not including) `table_dir`.
pub(crate) fn remove_empty_parents(file: &Path, table_dir: &Path) {
    let mut d = file.parent();
    while let Some(dir) = d {
        if dir == table_dir || std::fs::remove_dir(dir).is_err() {
            break;
        }
        d = dir.parent();
    }
}
