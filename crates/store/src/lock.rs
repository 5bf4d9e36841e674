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
