//! `crmcube ingest`.

use super::{load_schemas, single_byte, Context};
use crate::progress::Spinner;
use anyhow::Result;
use crmcube_ingest::{ingest, CsvOptions, IngestOptions, IngestReport};
use std::path::PathBuf;

/// How to print the run report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document.
    Json,
}

/// Flags of `ingest`.
#[derive(clap::Args)]
pub struct IngestArgs {
    /// Export directory: one <entity>.csv|jsonl|parquet file (or <entity>/ folder) per entity.
    #[arg(long)]
    pub source: PathBuf,
    /// Warehouse directory (created if needed).
    #[arg(long)]
    pub warehouse: PathBuf,
    /// CSV field delimiter (`\t` for tab).
    #[arg(long, default_value = ",", value_parser = single_byte)]
    pub delimiter: u8,
    /// CSV quote character.
    #[arg(long, default_value = "\"", value_parser = single_byte)]
    pub quote: u8,
    /// CSV files have no header line; columns are in contract order.
    #[arg(long)]
    pub no_header: bool,
    /// Publish nothing and exit 1 when more than this fraction (0..1) of rows is quarantined.
    #[arg(long)]
    pub max_reject_rate: Option<f64>,
    /// Only load files whose name matches this pattern (`*` and `?` wildcards),
    /// e.g. "*_2025-11-23.csv".
    #[arg(long)]
    pub pattern: Option<String>,
    /// Directory holding oltp.yaml and warehouse.yaml (default: the built-in schemas).
    #[arg(long)]
    pub schemas: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

/// Runs `ingest`.
pub fn run(ctx: &Context, a: IngestArgs) -> Result<()> {
    if let Some(r) = a.max_reject_rate {
        if !(0.0..=1.0).contains(&r) {
            return Err(crmcube_model::Error::Usage(format!(
                "--max-reject-rate must be between 0 and 1, found {r}"
            ))
            .into());
        }
    }
    let (contract, schema) = load_schemas(a.schemas.as_deref())?;
    let opts = IngestOptions {
        source: a.source,
        warehouse: a.warehouse,
        contract: &contract,
        schema: &schema,
        csv: CsvOptions {
            delimiter: a.delimiter,
            quote: a.quote,
            has_header: !a.no_header,
        },
        max_reject_rate: a.max_reject_rate,
        pattern: a.pattern.clone(),
    };
    let spinner = Spinner::new(ctx);
    let report = ingest(&opts, &spinner)?;
    spinner.finish();
    match a.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Table => print!("{}", render_report(&report)),
    }
    Ok(())
}

/// The run report as aligned text.
pub fn render_report(r: &IngestReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<18} {:>10} {:>10} {:>11} {:>9} {:>8} {:>12}\n",
        "entity", "read", "loaded", "quarantined", "orphaned", "seconds", "rows/s"
    ));
    for e in &r.entities {
        s.push_str(&format!(
            "{:<18} {:>10} {:>10} {:>11} {:>9} {:>8.3} {:>12.0}\n",
            e.entity, e.read, e.loaded, e.quarantined, e.orphaned, e.seconds, e.rows_per_second
        ));
    }
    let read: u64 = r.entities.iter().map(|e| e.read).sum();
    let published = match r.version {
        Some(v) => format!("published as version {v} of {}", r.warehouse),
        None if r.entities.is_empty() => format!("nothing new for {}", r.warehouse),
        None => format!("no table of {} changed", r.warehouse),
    };
    s.push_str(&format!(
        "{} rows read, {} quarantined, load {}: {} in {:.2}s ({:.0} rows/s)\n",
        read,
        r.quarantined,
        r.load_id,
        published,
        r.seconds,
        if r.seconds > 0.0 {
            read as f64 / r.seconds
        } else {
            0.0
        }
    ));
    if !r.skipped_files.is_empty() {
        s.push_str(&format!(
            "skipped {} file(s) loaded before (same content): {}\n",
            r.skipped_files.len(),
            r.skipped_files.join(", ")
        ));
    }
    if r.quarantined > 0 {
        s.push_str(&format!(
            "inspect refused rows with: crmcube sql --warehouse {} \"SELECT * FROM _quarantine\"\n",
            r.warehouse
        ));
    }
    if !r.missing_entities.is_empty() {
        s.push_str(&format!("no file for: {}\n", r.missing_entities.join(", ")));
    }
    for e in &r.entities {
        if !e.ignored_columns.is_empty() {
            s.push_str(&format!(
                "{}: ignored columns not in the contract: {}\n",
                e.entity,
                e.ignored_columns.join(", ")
            ));
        }
    }
    if !r.unmatched_files.is_empty() {
        s.push_str(&format!(
            "ignored files: {}\n",
            r.unmatched_files.join(", ")
        ));
    }
    s
}
