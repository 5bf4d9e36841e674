//! Opening a warehouse (or a folder of Parquet files) as a DataFusion session.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use crmcube_model::{Error, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the manifest a crmcube warehouse carries.
pub const MANIFEST_FILE: &str = "_manifest.json";

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

fn session() -> SessionContext {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    SessionContext::new_with_config(config)
}

impl Warehouse {
    /// Opens a crmcube warehouse: every table folder in it becomes a SQL table.
    pub async fn open(dir: &Path) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() || !dir.join(MANIFEST_FILE).is_file() {
            return Err(Error::Usage(format!(
                "{}: not a crmcube warehouse (no {MANIFEST_FILE}); build one with `crmcube ingest`, or use --data to query any folder of Parquet files",
                dir.display()
            )));
        }
        Self::open_data(dir).await
    }

    /// Registers a folder of Parquet data: each `NAME.parquet` file or `NAME/` folder of
    /// Parquet files (searched recursively, e.g. Hive partitions) becomes table NAME.
    pub async fn open_data(dir: &Path) -> Result<Self> {
        let ctx = session();
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
            register(&ctx, &name, &path).await?;
            tables.push(TableInfo { name, path, files });
        }
        Ok(Warehouse { ctx, tables })
    }

    /// The registered tables, by name.
    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// The underlying DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one SQL statement and collects its result.
    pub async fn sql(&self, query: &str) -> Result<QueryResult> {
        let df = self.ctx.sql(query).await.map_err(query_error)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(query_error)?;
        Ok(QueryResult { schema, batches })
    }
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
