//! Publishing a load: a writer lock, a staging directory, and the swap of finished
//! tables into place followed by the manifest.
//!
//! A load writes every table into `<warehouse>/.staging-<load id>/` first. Only when all
//! of them are complete are they moved into place, one directory rename per table, and
//! `_manifest.json` is replaced last (write to a temporary name, then rename). A crash
//! before the swap leaves the previous tables untouched; the staging directory is
//! removed by the next load.

use crmcube_model::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the warehouse.
pub const LOCK_FILE: &str = ".crmcube.lock";
/// Name of the manifest inside the warehouse.
pub const MANIFEST_FILE: &str = "_manifest.json";

/// Exclusive right to write a warehouse, released on drop.
pub struct WriterLock {
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock, or fails naming the holder. A lock left by a process that no
    /// longer runs on this machine is taken over.
    pub fn acquire(warehouse: &Path) -> Result<Self> {
        std::fs::create_dir_all(warehouse).map_err(|e| Error::io(warehouse, e))?;
        let path = warehouse.join(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let info = format!(
                        "pid={} host={} since={}\n",
                        std::process::id(),
                        hostname(),
                        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
                    );
                    f.write_all(info.as_bytes())
                        .map_err(|e| Error::io(&path, e))?;
                    return Ok(WriterLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    if is_stale(&holder) {
                        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                        continue;
                    }
                    return Err(Error::Usage(format!(
                        "{}: another load holds the warehouse ({}); wait for it to finish, or remove the lock file if that process is gone",
                        path.display(),
                        holder.trim()
                    )));
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Usage(format!(
            "{}: cannot take the writer lock",
            path.display()
        )))
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn is_stale(holder: &str) -> bool {
    let field = |k: &str| {
        holder
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).map(str::to_string))
    };
    let (Some(pid), Some(host)) = (field("pid="), field("host=")) else {
        return false;
    };
    host == hostname() && Path::new("/proc").is_dir() && !Path::new("/proc").join(pid).exists()
}

/// Removes staging directories left by loads that did not finish.
pub fn clean_stale_staging(warehouse: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(warehouse) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".staging-") || name.starts_with(".replaced-") {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// Moves finished tables from `staging` into the warehouse, then writes the manifest.
pub fn swap_in(
    warehouse: &Path,
    staging: &Path,
    load_id: &str,
    tables: &[String],
    manifest: &serde_json::Value,
) -> Result<()> {
    let replaced = warehouse.join(format!(".replaced-{load_id}"));
    for t in tables {
        let live = warehouse.join(t);
        if live.exists() {
            std::fs::create_dir_all(&replaced).map_err(|e| Error::io(&replaced, e))?;
            std::fs::rename(&live, replaced.join(t)).map_err(|e| Error::io(&live, e))?;
        }
        let new = staging.join(t);
        std::fs::rename(&new, &live).map_err(|e| Error::io(&new, e))?;
    }
    let tmp = warehouse.join(format!(".{MANIFEST_FILE}.{load_id}"));
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| Error::format(MANIFEST_FILE, e))?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    let dest = warehouse.join(MANIFEST_FILE);
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    let _ = std::fs::remove_dir_all(&replaced);
    let _ = std::fs::remove_dir_all(staging);
    Ok(())
}
