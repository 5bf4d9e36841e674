//! `crmcube sql` and `crmcube tables`.

use super::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use crmcube_cube::Warehouse;
use crmcube_model::Error;
use std::path::{Path, PathBuf};

/// Where the tables come from.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct SourceArgs {
    /// A crmcube warehouse directory.
    #[arg(long)]
    pub warehouse: Option<PathBuf>,
    /// Any folder of Parquet data: each NAME.parquet file or NAME/ folder becomes table NAME.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

impl SourceArgs {
    /// Opens the session.
    pub async fn open(&self) -> Result<Warehouse> {
        Ok(match (&self.warehouse, &self.data) {
            (Some(w), _) => Warehouse::open(w).await?,
            (None, Some(d)) => Warehouse::open_data(d).await?,
            (None, None) => {
                return Err(Error::Usage("give --warehouse DIR or --data DIR".into()).into())
            }
        })
    }
}

/// Flags of `sql`.
#[derive(clap::Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The SQL statement (or use --file).
    pub query: Option<String>,
    /// Read the SQL statement from a file.
    #[arg(long, conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Flags of `tables`.
#[derive(clap::Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs `sql`.
pub fn run_sql(ctx: &Context, a: SqlArgs) -> Result<()> {
    let query = match (&a.query, &a.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?,
        (None, None) => {
            return Err(Error::Usage(
                "give the SQL statement as an argument or with --file FILE".into(),
            )
            .into())
        }
    };
    let rt = runtime()?;
    let result = rt.block_on(async {
        let wh = a.source.open().await?;
        anyhow::Ok(wh.sql(&query).await?)
    })?;
    emit(
        a.output.as_deref(),
        &result.schema,
        &result.batches,
        a.format,
    )?;
    ctx.note(format!("({} rows)", result.num_rows()));
    Ok(())
}

/// Runs `tables`.
pub fn run_tables(_ctx: &Context, a: TablesArgs) -> Result<()> {
    let rt = runtime()?;
    let result = rt.block_on(async {
        let wh = a.source.open().await?;
        anyhow::Ok(wh.sql(&table_listing_sql(&wh)).await?)
    })?;
    emit(None::<&Path>, &result.schema, &result.batches, a.format)?;
    Ok(())
}

/// SQL listing every table with its row and column counts.
pub fn table_listing_sql(wh: &Warehouse) -> String {
    if wh.tables().is_empty() {
        return "SELECT CAST(NULL AS VARCHAR) AS table_name, CAST(NULL AS BIGINT) AS row_count, CAST(NULL AS BIGINT) AS columns, CAST(NULL AS BIGINT) AS files WHERE false".into();
    }
    wh.tables()
        .iter()
        .map(|t| {
            format!(
                "SELECT '{name}' AS table_name, (SELECT COUNT(*) FROM \"{name}\") AS row_count, \
                 (SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{name}') AS columns, \
                 CAST({files} AS BIGINT) AS files",
                name = t.name.replace('\'', "''").replace('"', "\"\""),
                files = t.files
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
        + " ORDER BY table_name"
}
