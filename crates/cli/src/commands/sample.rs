//! `crmcube sample generate`.

use super::Context;
use anyhow::Result;
use chrono::NaiveDate;
use crmcube_sample::{generate, ExportFormat, SampleConfig};
use std::path::PathBuf;

/// Sample data commands.
#[derive(clap::Subcommand)]
pub enum SampleCommand {
    /// Write a deterministic, realistic CRM export (same seed, same bytes).
    Generate(GenerateArgs),
}

/// Export file formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    /// CSV with header.
    Csv,
    /// JSON Lines.
    Jsonl,
    /// Parquet (zstd).
    Parquet,
}

/// Flags of `sample generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 2000)]
    pub customers: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FormatArg,
    /// First day of the simulated history.
    #[arg(long, default_value = "2023-01-01")]
    pub start: NaiveDate,
    /// Last day of the simulated history (the export date).
    #[arg(long, default_value = "2025-12-31")]
    pub end: NaiveDate,
}

/// Runs a sample command.
pub fn run(ctx: &Context, cmd: SampleCommand) -> Result<()> {
    let SampleCommand::Generate(a) = cmd;
    let cfg = SampleConfig {
        customers: a.customers,
        seed: a.seed,
        start: a.start,
        end: a.end,
    };
    let format = match a.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Jsonl => ExportFormat::Jsonl,
        FormatArg::Parquet => ExportFormat::Parquet,
    };
    let summary =
        generate(&cfg, format, &a.out).map_err(|e| crmcube_model::Error::Usage(e.to_string()))?;
    let mut total = 0;
    for f in &summary.files {
        total += f.bytes;
        println!(
            "{:<20} {:>12} rows {:>14} bytes  {}",
            f.entity,
            f.rows,
            f.bytes,
            f.path.display()
        );
    }
    ctx.note(format!(
        "generated {} customers into {} ({:.1} MB) in {:.2}s",
        a.customers,
        a.out.display(),
        total as f64 / 1e6,
        summary.elapsed.as_secs_f64()
    ));
    Ok(())
}
