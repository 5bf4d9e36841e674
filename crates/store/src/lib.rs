//! Versioned warehouse storage.
//!
//! Every table is a Delta Lake table (a folder of Parquet files and a `_delta_log/`), so
//! any Delta reader can read it. A load usually changes several tables; to publish them
//! together crmcube keeps one more log, the warehouse log `_crmcube_log/`, whose version
//! N names the Delta version of every table that makes up warehouse version N, the load
//! that produced it, its input files (with their content hash) and row counts.
//!
//! Commit protocol of a writer (one at a time, under `.crmcube.lock`):
//! 1. write new data files under fresh names (nothing refers to them yet);
//! 2. write the next Delta commit of each changed table;
//! 3. write warehouse commit N+1 — this single file creation is the commit point.
//!
//! crmcube readers resolve a warehouse version first and read each table at the Delta
//! version it names, so they see version N or N+1 whole, never a mix. A crash between
//! steps 2 and 3 leaves Delta commits no warehouse version names; the next writer
//! removes them before it starts (`recover`), and `vacuum` deletes the orphaned files.

pub mod delta;
mod lock;
pub mod log;
mod vacuum;

pub use lock::WriterLock;
pub use log::{history, resolve, AsOf, Commit, TableVersion};
pub use vacuum::{vacuum, VacuumReport};

use arrow::datatypes::Schema;
use crmcube_model::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One data file of a table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataFile {
    /// Path relative to the table folder, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
    /// sha256 of the file's bytes (used to keep unchanged files across versions).
    pub sha256: String,
    /// Creation time, milliseconds since the epoch.
    pub modified_ms: i64,
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

/// Numbers of the `NNNNNNNNNNNNNNNNNNNN.json` files of a log folder, ascending (none if
/// the folder does not exist).
pub(crate) fn numbered_json_files(dir: &Path) -> Result<Vec<u64>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut v: Vec<u64> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json")?;
            (stem.len() == 20).then(|| stem.parse().ok())?
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Creates `path` with `bytes` only if it does not exist yet (atomically: readers see
/// the whole file or none). Fails with a clear message if it exists.
pub fn put_if_absent(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Usage(format!("{}: no parent folder", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Usage(format!(
            "{}: exists already; another writer committed this version",
            path.display()
        ))),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Stops here when the environment variable `CRMCUBE_FAILPOINT` names this point: prints
/// `failpoint NAME reached` on stderr and waits to be killed. Crash tests use it to kill
/// the process at a known step of a commit.
pub fn failpoint(name: &str) {
    if std::env::var("CRMCUBE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name} reached");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Whether `dir` holds a crmcube warehouse (a warehouse log with at least one version).
pub fn is_warehouse(dir: &Path) -> bool {
    log::latest_version(dir).is_ok_and(|v| v.is_some())
}

/// A warehouse version with every table's live files.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Warehouse folder.
    pub dir: PathBuf,
    /// The warehouse commit.
    pub commit: Commit,
    /// Tables by name.
    pub tables: BTreeMap<String, delta::TableSnapshot>,
}

impl Snapshot {
    /// Reads the warehouse at `as_of`.
    pub fn open(dir: &Path, as_of: AsOf) -> Result<Self> {
        let commit = resolve(dir, as_of)?;
        let mut tables = BTreeMap::new();
        for (name, tv) in &commit.tables {
            tables.insert(name.clone(), delta::snapshot(&dir.join(name), tv.version)?);
        }
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            commit,
            tables,
        })
    }

    /// Absolute paths of a table's live files.
    pub fn file_paths(&self, table: &str) -> Vec<PathBuf> {
        self.tables
            .get(table)
            .map(|t| {
                t.files
                    .keys()
                    .map(|p| self.dir.join(table).join(p))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How a table changes in a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The new files are the whole table.
    Replace,
    /// The new files are added to the live ones.
    Append,
    /// The new files replace the live files under the same partition folders
    /// (the folder part of their paths); other partitions stay.
    ReplacePartitions,
    /// The new files are added and the live files named to
    /// [`Writer::stage_replacing`] are removed; other files stay (copy-on-write of
    /// the files a merge touches).
    ReplaceFiles,
}

struct Staged {
    schema: Arc<Schema>,
    files: Vec<DataFile>,
    mode: Mode,
    /// Live files to remove (`Mode::ReplaceFiles`), relative to the table folder.
    remove: Vec<String>,
}

/// A writer holding the warehouse lock and collecting table changes for one commit.
pub struct Writer {
    dir: PathBuf,
    _lock: WriterLock,
    base: Option<Snapshot>,
    load_id: String,
    operation: String,
    started_at: chrono::DateTime<chrono::Utc>,
    staged: BTreeMap<String, Staged>,
    /// Set once [`Writer::commit`] has published (or found nothing to publish).
    done: bool,
}

impl Writer {
    /// Takes the writer lock, removes what a crashed writer left behind, and reads the
    /// current version.
    pub fn begin(dir: &Path, operation: &str) -> Result<Self> {
        let lock = WriterLock::acquire(dir)?;
        log::recover(dir)?;
        let base = if is_warehouse(dir) {
            Some(Snapshot::open(dir, AsOf::Latest)?)
        } else {
            None
        };
        let started_at = chrono::Utc::now();
        Ok(Writer {
            dir: dir.to_path_buf(),
            _lock: lock,
            base,
            load_id: format!(
                "{}-{}",
                started_at.format("%Y%m%dT%H%M%S%.6fZ"),
                std::process::id()
            ),
            operation: operation.to_string(),
            started_at,
            staged: BTreeMap::new(),
            done: false,
        })
    }

    /// The version this writer builds on, if the warehouse has one.
    pub fn base(&self) -> Option<&Snapshot> {
        self.base.as_ref()
    }

    /// Id of this load (part of every new file name).
    pub fn load_id(&self) -> &str {
        &self.load_id
    }

    /// When the writer started.
    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.started_at
    }

    /// Warehouse folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh file name for new data of `table` under `partition` (e.g.
    /// `year=2025/month=03`): `<partition>/part-<load id>-<n>.parquet`.
    pub fn new_file_path(&self, partition: Option<&str>, n: usize) -> String {
        let name = format!("part-{}-{n:05}.parquet", self.load_id);
        match partition {
            Some(p) if !p.is_empty() => format!("{p}/{name}"),
            _ => name,
        }
    }

    /// Whether any table change is staged.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Records the new files of a table (already written under the table folder).
    pub fn stage(&mut self, table: &str, schema: Arc<Schema>, files: Vec<DataFile>, mode: Mode) {
        self.stage_replacing(table, schema, files, mode, Vec::new());
    }

    /// Like [`Writer::stage`], also naming live files (relative to the table folder)
    /// that this commit removes under `Mode::ReplaceFiles`.
    pub fn stage_replacing(
        &mut self,
        table: &str,
        schema: Arc<Schema>,
        files: Vec<DataFile>,
        mode: Mode,
        remove: Vec<String>,
    ) {
        match self.staged.get_mut(table) {
            Some(s) if mode != Mode::Replace => {
                s.files.extend(files);
                s.remove.extend(remove);
            }
            _ => {
                self.staged.insert(
                    table.to_string(),
                    Staged {
                        schema,
                        files,
                        mode,
                        remove,
                    },
                );
            }
        }
    }

    /// The warehouse as it will be once this writer commits: the base version with the
    /// staged files applied. Lets checks run on a load before it is published.
    pub fn pending(&self) -> Result<Snapshot> {
        let mut tables = self
            .base
            .as_ref()
            .map(|b| b.tables.clone())
            .unwrap_or_default();
        for (name, st) in &self.staged {
            let old = self.base.as_ref().and_then(|b| b.tables.get(name));
            let (add, remove) = plan_files(old, st);
            let mut files = old.map(|o| o.files.clone()).unwrap_or_default();
            for f in remove {
                files.remove(&f.path);
            }
            for f in add {
                files.insert(f.path.clone(), f);
            }
            tables.insert(
                name.clone(),
                delta::TableSnapshot {
                    version: old.map_or(0, |o| o.version + 1),
                    schema: st.schema.clone(),
                    files,
                },
            );
        }
        let mut commit = self
            .base
            .as_ref()
            .map(|b| b.commit.clone())
            .unwrap_or(Commit {
                version: 0,
                load_id: String::new(),
                operation: String::new(),
                started_at: String::new(),
                committed_at: String::new(),
                changed: vec![],
                tables: BTreeMap::new(),
                info: serde_json::Value::Null,
            });
        commit.load_id = self.load_id.clone();
        Ok(Snapshot {
            dir: self.dir.clone(),
            commit,
            tables,
        })
    }

    /// Publishes every staged table as one new warehouse version. Files identical to a
    /// live file of the same table and folder are dropped and the live file kept, so an
    /// unchanged table gets no new Delta version. `info` goes into the warehouse commit
    /// (inputs, counts). Returns the commit, or `None` when nothing changed.
    pub fn commit(mut self, info: serde_json::Value) -> Result<Option<Commit>> {
        failpoint("after-data");
        let base_tables: BTreeMap<String, TableVersion> = self
            .base
            .as_ref()
            .map(|b| b.commit.tables.clone())
            .unwrap_or_default();
        let mut tables = base_tables.clone();
        let mut changed = Vec::new();
        let staged = std::mem::take(&mut self.staged);
        let mut first = true;
        for (name, st) in &staged {
            let table_dir = self.dir.join(name);
            let old = self.base.as_ref().and_then(|b| b.tables.get(name));
            let (add, remove) = plan(old, st, &table_dir)?;
            let new_schema = old.is_none_or(|o| o.schema.as_ref() != st.schema.as_ref());
            if add.is_empty() && remove.is_empty() && !new_schema {
                continue;
            }
            if !first {
                failpoint("mid-commit");
            }
            first = false;
            let version = old.map_or(0, |o| o.version + 1);
            delta::write_commit(
                &table_dir,
                version,
                &delta::TableCommit {
                    schema: &st.schema,
                    new_schema,
                    add: add.iter().collect(),
                    remove: remove.iter().collect(),
                    operation: &self.operation,
                    load_id: &self.load_id,
                },
            )?;
            let mut live: BTreeMap<String, u64> = old
                .map(|o| o.files.iter().map(|(k, f)| (k.clone(), f.rows)).collect())
                .unwrap_or_default();
            for f in &remove {
                live.remove(&f.path);
            }
            for f in &add {
                live.insert(f.path.clone(), f.rows);
            }
            tables.insert(
                name.clone(),
                TableVersion {
                    version,
                    rows: live.values().sum(),
                    files: live.len() as u64,
                },
            );
            changed.push(name.clone());
        }
        if changed.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let version = self.base.as_ref().map_or(0, |b| b.commit.version + 1);
        let commit = Commit {
            version,
            load_id: self.load_id.clone(),
            operation: self.operation.clone(),
            started_at: self.started_at.to_rfc3339(),
            committed_at: chrono::Utc::now().to_rfc3339(),
            changed,
            tables,
            info,
        };
        log::write(&self.dir, &commit)?;
        self.done = true;
        failpoint("after-commit");
        Ok(Some(commit))
    }
}

impl Drop for Writer {
    /// A writer dropped without publishing (its load failed, or a check refused it)
    /// takes back what it wrote while it still holds the lock: the Delta commits a
    /// failed commit may have begun, and every data file of its load (named
    /// `part-<load id>-…`), with the folders that leaves empty. Nothing of it was ever
    /// published, so no reader can need it. A process that is killed cannot do this;
    /// `vacuum` removes its files later.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = log::recover(&self.dir) {
            eprintln!("warning: could not clean up after an unpublished load: {e}");
        }
        let prefix = format!("part-{}-", self.load_id);
        let Ok(tables) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files = Vec::new();
        for t in tables.flatten() {
            if t.file_name() != log::LOG_DIR && t.path().is_dir() {
                // Best effort: what cannot be listed or removed is left for `vacuum`.
                let _ = vacuum::walk(&t.path(), &mut files);
            }
        }
        let ours = files.iter().filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        });
        for f in ours {
            match std::fs::remove_file(f) {
                Ok(()) => vacuum::remove_empty_parents(f, &self.dir),
                Err(err) => eprintln!("warning: could not remove {}: {err}", f.display()),
            }
        }
    }
}

/// Files to add and remove for one staged table; new files identical to a replaced
/// live file are deleted and the live file kept.
fn plan(
    old: Option<&delta::TableSnapshot>,
    st: &Staged,
    table_dir: &Path,
) -> Result<(Vec<DataFile>, Vec<DataFile>)> {
    let (add, remove) = plan_files(old, st);
    let added: std::collections::BTreeSet<&str> = add.iter().map(|f| f.path.as_str()).collect();
    for f in &st.files {
        if !added.contains(f.path.as_str()) {
            let p = table_dir.join(&f.path);
            std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
        }
    }
    Ok((add, remove))
}

/// Files to add and remove for one staged table (no side effects).
fn plan_files(old: Option<&delta::TableSnapshot>, st: &Staged) -> (Vec<DataFile>, Vec<DataFile>) {
    let folder = |p: &str| {
        p.rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default()
    };
    let old_files: Vec<&DataFile> = old.map(|o| o.files.values().collect()).unwrap_or_default();
    let replaced: Vec<&DataFile> = match st.mode {
        Mode::Append => vec![],
        Mode::Replace => old_files.clone(),
        Mode::ReplaceFiles => old_files
            .iter()
            .copied()
            .filter(|f| st.remove.contains(&f.path))
            .collect(),
        Mode::ReplacePartitions => {
            let parts: std::collections::BTreeSet<String> =
                st.files.iter().map(|f| folder(&f.path)).collect();
            old_files
                .iter()
                .copied()
                .filter(|f| parts.contains(&folder(&f.path)))
                .collect()
        }
    };
    let mut keep: std::collections::BTreeSet<&str> = Default::default();
    let mut add = Vec::new();
    for f in &st.files {
        let same = replaced.iter().find(|o| {
            !keep.contains(o.path.as_str())
                && o.sha256 == f.sha256
                && o.size == f.size
                && folder(&o.path) == folder(&f.path)
        });
        match same {
            Some(o) => {
                keep.insert(o.path.as_str());
            }
            None => add.push(f.clone()),
        }
    }
    let remove = replaced
        .into_iter()
        .filter(|o| !keep.contains(o.path.as_str()))
        .cloned()
        .collect();
    (add, remove)
}

/// A `Write` that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hash: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: <sha2::Sha256 as sha2::Digest>::new(),
            bytes: 0,
        }
    }
    /// The inner writer, the hex sha256 and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        {
            let d = sha2::Digest::finalize(self.hash);
            let hex = d.iter().map(|b| format!("{b:02x}")).collect();
            (self.inner, hex, self.bytes)
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]))
    }

    /// Writes a file of `w`'s load under `table/partition` and returns its path
    /// relative to the table folder.
    fn write_file(w: &Writer, table: &str, partition: Option<&str>) -> String {
        let rel = w.new_file_path(partition, 0);
        let path = w.dir().join(table).join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"data").unwrap();
        rel
    }

    fn data_file(rel: &str) -> DataFile {
        DataFile {
            path: rel.to_string(),
            size: 4,
            rows: 1,
            sha256: "x".into(),
            modified_ms: 0,
        }
    }

    #[test]
    fn an_unpublished_writer_removes_its_files_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // A published version with one file.
        let mut w = Writer::begin(dir, "test").unwrap();
        let kept = write_file(&w, "fact", Some("year=2024/month=01"));
        w.stage("fact", schema(), vec![data_file(&kept)], Mode::Append);
        w.commit(serde_json::json!({})).unwrap().unwrap();
        let foreign = dir.join("fact/year=2024/month=01/notes.txt");
        std::fs::write(&foreign, b"someone else's").unwrap();

        // A load that writes into the same folder, a new folder and a new table, then
        // fails before its commit.
        let w = Writer::begin(dir, "test").unwrap();
        let own = [
            ("fact", write_file(&w, "fact", Some("year=2024/month=01"))),
            ("fact", write_file(&w, "fact", Some("year=2024/month=02"))),
            ("other", write_file(&w, "other", None)),
        ];
        for (table, rel) in &own {
            assert!(dir.join(table).join(rel).is_file());
        }
        drop(w);

        for (table, rel) in &own {
            assert!(!dir.join(table).join(rel).exists(), "{table}/{rel} left");
        }
        assert!(dir.join("fact").join(&kept).is_file());
        assert!(foreign.is_file());
        assert!(!dir.join("fact/year=2024/month=02").exists());
        assert!(!dir.join("other").exists());
        let now = Snapshot::open(dir, AsOf::Latest).unwrap();
        assert_eq!(now.commit.version, 0);
        assert_eq!(now.file_paths("fact"), vec![dir.join("fact").join(&kept)]);
    }
}
