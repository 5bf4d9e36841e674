//! Opening a warehouse (or a folder of Parquet files) as a DataFusion session.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crmcube_model::{Error, Result};
use crmcube_store::{delta, AsOf, Snapshot, TableVersion};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One registered table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    /// SQL name.
    pub name: String,
    /// Folder or file it reads.
    pub path: PathBuf,
    /// Parquet files behind it.
    pub files: usize,
}

/// A query session over a warehouse or a data folder.
pub struct Warehouse {
    ctx: SessionContext,
    tables: Vec<TableInfo>,
    version: Option<u64>,
    table_versions: Option<BTreeMap<String, TableVersion>>,
}

/// A query's answer.
pub struct QueryResult {
    /// Result schema (also for empty results).
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Number of result rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

fn session() -> Result<SessionContext> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    // Skip the partial (per-thread) stage of an aggregation whose groups hardly reduce
    // the rows (grouping by order or customer for distinct counts): building a hash table
    // of nearly every row twice cost more than sending the rows on. DataFusion's
    // default gives up on it only above 0.8 groups per row.
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_ratio_threshold = 0.5;
    // Any DataFusion setting can be overridden from the environment, named as DataFusion
    // names it: datafusion.execution.batch_size is DATAFUSION_EXECUTION_BATCH_SIZE.
    let options = config.options_mut();
    for entry in options.entries() {
        let var = entry.key.to_uppercase().replace('.', "_");
        if let Some(value) = std::env::var_os(&var) {
            let value = value.to_string_lossy();
            options
                .set(&entry.key, &value)
                .map_err(|e| Error::Usage(format!("{var}={value}: {e}")))?;
        }
    }
    Ok(SessionContext::new_with_config(config))
}

impl Warehouse {
    /// Opens the newest version of a crmcube warehouse: every table becomes a SQL table.
    pub async fn open(dir: &Path) -> Result<Self> {
        Self::open_at(dir, AsOf::Latest).await
    }

    /// Opens a crmcube warehouse as of a version or a time. Every table is read at the
    /// Delta version that warehouse version names, so a query sees one consistent
    /// version even while a load commits.
    pub async fn open_at(dir: &Path, as_of: AsOf) -> Result<Self> {
        Self::from_snapshot(&Snapshot::open(dir, as_of)?).await
    }

    /// Opens the tables of a snapshot (also one not yet committed, to check a load
    /// before publishing it).
    pub async fn from_snapshot(snap: &Snapshot) -> Result<Self> {
        let dir = &snap.dir;
        let ctx = session()?;
        let mut tables = Vec::new();
        for (name, t) in &snap.tables {
            let files = snap.file_paths(name);
            register_files(&ctx, name, &files, t.schema.clone()).await?;
            tables.push(TableInfo {
                name: name.clone(),
                path: dir.join(name),
                files: files.len(),
            });
        }
        let table_versions = snap
            .tables
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    TableVersion {
                        version: t.version,
                        rows: t.rows(),
                        files: t.files.len() as u64,
                    },
                )
            })
            .collect();
        Ok(Warehouse {
            ctx,
            tables,
            version: Some(snap.commit.version),
            table_versions: Some(table_versions),
        })
    }

    /// The warehouse version being read (none for a plain data folder).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The Delta version (and rows, files) of every table of the warehouse version being
    /// read; none for a plain data folder.
    pub fn table_versions(&self) -> Option<&BTreeMap<String, TableVersion>> {
        self.table_versions.as_ref()
    }

    /// Registers a folder of Parquet data: each `NAME.parquet` file or `NAME/` folder of
    /// Parquet files (searched recursively, e.g. Hive partitions) becomes table NAME.
    pub async fn open_data(dir: &Path) -> Result<Self> {
        let ctx = session()?;
        let mut tables = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if file_name.starts_with('.') {
                continue;
            }
            let (name, files) = if path.is_dir() {
                let n = count_parquet(&path);
                if n == 0 {
                    continue;
                }
                (file_name.to_string(), n)
            } else if let Some(stem) = file_name.strip_suffix(".parquet") {
                (stem.to_string(), 1)
            } else {
                continue;
            };
            if path.join(delta::DELTA_LOG).is_dir() {
                // A Delta table: read its newest version, not every file in the folder.
                let versions = delta::versions(&path)?;
                let Some(&v) = versions.last() else { continue };
                let t = delta::snapshot(&path, v)?;
                let paths: Vec<PathBuf> = t.files.keys().map(|p| path.join(p)).collect();
                register_files(&ctx, &name, &paths, t.schema.clone()).await?;
                tables.push(TableInfo {
                    name,
                    path,
                    files: paths.len(),
                });
                continue;
            }
            register(&ctx, &name, &path).await?;
            tables.push(TableInfo { name, path, files });
        }
        Ok(Warehouse {
            ctx,
            tables,
            version: None,
            table_versions: None,
        })
    }

    /// The registered tables, by name.
    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// The underlying DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The same tables in another session (one that runs plans elsewhere).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn replace_context(self, ctx: SessionContext) -> Warehouse {
        Warehouse { ctx, ..self }
    }

    /// Runs one SQL statement and collects its result.
    pub async fn sql(&self, query: &str) -> Result<QueryResult> {
        let df = self.ctx.sql(query).await.map_err(query_error)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(query_error)?;
        Ok(QueryResult { schema, batches })
    }
}

/// Registers a table made of exactly these Parquet files.
pub(crate) async fn register_files(
    ctx: &SessionContext,
    name: &str,
    files: &[PathBuf],
    schema: SchemaRef,
) -> Result<()> {
    if files.is_empty() {
        let empty = MemTable::try_new(schema, vec![vec![]]).map_err(|e| Error::format(name, e))?;
        ctx.register_table(name, Arc::new(empty))
            .map_err(|e| Error::format(name, e))?;
        return Ok(());
    }
    let mut urls = Vec::with_capacity(files.len());
    for f in files {
        let abs = std::fs::canonicalize(f).map_err(|e| Error::io(f, e))?;
        urls.push(
            ListingTableUrl::parse(abs.display().to_string())
                .map_err(|e| Error::format(f.display(), e))?,
        );
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| Error::format(name, e))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| Error::format(name, e))?;
    Ok(())
}

async fn register(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let mut url = abs.display().to_string();
    if abs.is_dir() && !url.ends_with('/') {
        url.push('/');
    }
    let table_url = ListingTableUrl::parse(&url).map_err(|e| Error::format(path.display(), e))?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await
        .map_err(|e| Error::format(path.display(), e))?;
    let table = ListingTable::try_new(config).map_err(|e| Error::format(path.display(), e))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| Error::format(path.display(), e))?;
    Ok(())
}

fn count_parquet(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_parquet(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

/// Turns a DataFusion error into one clear line.
fn query_error(e: datafusion::error::DataFusionError) -> Error {
    let text = e.to_string();
    let text = text
        .replace("Error during planning: ", "")
        .replace("SQL error: ", "")
        .replace("Schema error: ", "");
    Error::Query(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
