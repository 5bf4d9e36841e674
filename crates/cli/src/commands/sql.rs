//! `crmcube sql` and `crmcube tables`.

use super::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use crmcube_cube::{Engine, Warehouse};
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

/// Which warehouse version to read (time travel); the newest when neither is given.
#[derive(clap::Args, Default, Clone)]
pub struct AsOfArgs {
    /// Read warehouse version N (see `crmcube history`).
    #[arg(long, value_name = "N", conflicts_with = "as_of_time")]
    pub as_of_version: Option<u64>,
    /// Read the newest version committed at or before this time
    /// (RFC 3339, e.g. 2026-11-23T18:00:00Z, or a date meaning its end, 2026-11-23).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl AsOfArgs {
    /// The version selector.
    pub fn as_of(&self) -> crmcube_cube::AsOf {
        match (self.as_of_version, self.as_of_time) {
            (Some(v), _) => crmcube_cube::AsOf::Version(v),
            (None, Some(t)) => crmcube_cube::AsOf::Time(t),
            (None, None) => crmcube_cube::AsOf::Latest,
        }
    }
}

/// Parses an RFC 3339 time, a `YYYY-MM-DDTHH:MM:SS` UTC time or a date (its last instant).
pub fn parse_time(s: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_micro_opt(23, 59, 59, 999_999) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "expected a time like 2026-11-23T18:00:00Z or a date like 2026-11-23, found `{s}`"
    ))
}

impl SourceArgs {
    /// Opens the session at the version `as_of` selects.
    pub async fn open_at(&self, as_of: &AsOfArgs) -> Result<Warehouse> {
        if self.data.is_some() && (as_of.as_of_version.is_some() || as_of.as_of_time.is_some()) {
            return Err(Error::Usage(
                "--as-of-version / --as-of-time need --warehouse (a plain data folder has no versions)".into(),
            )
            .into());
        }
        Ok(match (&self.warehouse, &self.data) {
            (Some(w), _) => Warehouse::open_at(w, as_of.as_of()).await?,
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
    #[command(flatten)]
    pub as_of: AsOfArgs,
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
    /// Where the query runs: `local` (this process) or `ballista://HOST:PORT`, an Apache
    /// Ballista scheduler whose executors see the warehouse at the same path (needs a
    /// build with `--features ballista`; docs/scale-out.md).
    #[arg(long, value_name = "ENGINE", default_value = "local", value_parser = parse_engine)]
    pub engine: Engine,
}

fn parse_engine(s: &str) -> std::result::Result<Engine, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// Flags of `tables`.
#[derive(clap::Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub as_of: AsOfArgs,
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
    let engine = a.engine.clone();
    let result = rt.block_on(async {
        let wh = a.source.open_at(&a.as_of).await?.with_engine(&engine)?;
        let result = wh.sql(&query).await.map_err(|e| match (&engine, e) {
            (Engine::Local, e) => e,
            (_, Error::Query(m)) => Error::Query(format!("on {engine}: {m}")),
            (_, e) => e,
        });
        anyhow::Ok(result?)
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
        let wh = a.source.open_at(&a.as_of).await?;
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
