//! `crmcube export`: one warehouse version as plain Hive-partitioned files, with a
//! manifest and a `_SUCCESS` marker, for BI tools and notebooks.

use super::cube::thousands;
use super::ingest::ReportFormat;
use super::sql::AsOfArgs;
use super::{runtime, Context};
use anyhow::Result;
use crmcube_cube::export::{export, ExportFormat, ExportOptions, Manifest};
use std::path::PathBuf;
use std::time::Instant;

/// File formats of `export`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    /// Apache Parquet (the warehouse's zstd files, copied as they are).
    Parquet,
    /// CSV with a header line.
    Csv,
    /// Arrow IPC files (Feather v2).
    Arrow,
}

/// Flags of `export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// The export folder: created, or replaced if it holds an earlier export.
    #[arg(long)]
    pub out: PathBuf,
    /// Tables to export, comma-separated (default: every table not starting with `_`).
    /// Views of the cube model may be named too: `cube_<fact>` (e.g. cube_sales) and the
    /// saved queries of the model (`crmcube cube describe` lists them).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Export every view of the cube model as well (the wide `cube_<fact>` views and the
    /// saved queries).
    #[arg(long)]
    pub views: bool,
    #[command(flatten)]
    pub model: super::cube::ModelArgs,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: FormatArg,
    #[command(flatten)]
    pub as_of: AsOfArgs,
    /// Report format (the manifest is always written as _manifest.json).
    #[arg(long, value_enum, default_value = "table")]
    pub report: ReportFormat,
}

/// Runs `export`.
pub fn run(ctx: &Context, a: ExportArgs) -> Result<()> {
    let started = Instant::now();
    let opts = ExportOptions {
        tables: a
            .tables
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        format: match a.format {
            FormatArg::Parquet => ExportFormat::Parquet,
            FormatArg::Csv => ExportFormat::Csv,
            FormatArg::Arrow => ExportFormat::Arrow,
        },
        as_of: a.as_of.as_of(),
        model: Some(a.model.load()?),
        all_views: a.views,
    };
    let rt = runtime()?;
    let manifest = rt.block_on(export(&a.warehouse, &a.out, &opts))?;
    match a.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&manifest)?),
        ReportFormat::Table => print!("{}", render(&manifest)),
    }
    for v in &manifest.views_left_out {
        ctx.note(format!("view left out: {v}"));
    }
    ctx.note(format!(
        "exported warehouse version {} to {} in {:.2} s",
        manifest.source_version,
        a.out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn render(m: &Manifest) -> String {
    let w = m
        .tables
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max("table".len());
    let mut s = format!(
        "{:<w$}  {:>12}  {:>6}  {:>10}  partitioned by\n",
        "table", "rows", "files", "MB"
    );
    for t in &m.tables {
        let bytes: u64 = t.files.iter().map(|f| f.bytes).sum();
        s.push_str(&format!(
            "{:<w$}  {:>12}  {:>6}  {:>10.2}  {}\n",
            t.name,
            thousands(t.rows as usize),
            t.files.len(),
            bytes as f64 / 1e6,
            if t.view {
                "- (view)".to_string()
            } else if t.partitioning.is_empty() {
                "-".to_string()
            } else {
                t.partitioning.join("/")
            }
        ));
    }
    s
}
