//! The writer lock `.crmcube.lock`: one writer per warehouse. The file names the holder
//! (pid, host, start time); a lock whose process no longer runs on this host is stale
//! and taken over.

use crmcube_model::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the warehouse.
pub const LOCK_FILE: &str = ".crmcube.lock";

/// Exclusive right to write a warehouse, released on drop.
pub struct WriterLock {
    path: PathBuf,
    /// The folders taking the lock created (the warehouse and any missing parents,
    /// deepest first): removed on release while they are empty, so a first load that
    /// failed leaves no folder behind.
    created: Vec<PathBuf>,
}

impl WriterLock {
    /// Takes the lock, or fails naming the holder. A lock left by a process that no
    /// longer runs on this machine is taken over.
    pub fn acquire(warehouse: &Path) -> Result<Self> {
        let created: Vec<PathBuf> = warehouse
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
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
                    return Ok(WriterLock { path, created });
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
        for dir in &self.created {
            // Fails, as it should, unless nothing was ever written there.
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_the_lock_created_goes_with_it_when_nothing_was_written() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        drop(WriterLock::acquire(&new).unwrap());
        assert!(!new.exists(), "an empty folder the lock created is removed");
        let nested = tmp.path().join("a/b/new");
        drop(WriterLock::acquire(&nested).unwrap());
        assert!(!tmp.path().join("a").exists(), "and so are its new parents");

        let used = tmp.path().join("used");
        let lock = WriterLock::acquire(&used).unwrap();
        std::fs::write(used.join("data"), b"x").unwrap();
        drop(lock);
        assert!(used.join("data").exists());
        assert!(!used.join(LOCK_FILE).exists());

        let existing = tmp.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        drop(WriterLock::acquire(&existing).unwrap());
        assert!(existing.is_dir(), "a folder that was there before stays");
    }
}
