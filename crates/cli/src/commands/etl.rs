//! `crmcube etl run --config etl.yaml`: the nightly job. Loads the new export files,
//! checks the loaded warehouse before publishing it, refreshes customer scores, records
//! the run in the `_runs` table and vacuums old files.

use super::{load_schemas, runtime, Context};
use crate::progress::Spinner;
use anyhow::Result;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use crmcube_ingest::{CsvOptions, IngestOptions, IngestReport};
use crmcube_model::Error;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the run-log table.
pub const RUNS_TABLE: &str = "_runs";

/// `etl` subcommands.
#[derive(clap::Subcommand)]
pub enum EtlCommand {
    /// Run the nightly job described by a config file.
    Run(EtlRunArgs),
}

/// Flags of `etl run`.
#[derive(clap::Args)]
pub struct EtlRunArgs {
    /// The job's config file (YAML; see docs/operations.md).
    #[arg(long)]
    pub config: PathBuf,
    /// Also write the run summary (JSON) to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// The config file. Relative paths are relative to the config file's folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtlConfig {
    /// Export folder to load from.
    pub source: PathBuf,
    /// Only files whose name matches this pattern (`*` and `?` wildcards).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Warehouse folder.
    pub warehouse: PathBuf,
    /// Folder with oltp.yaml and warehouse.yaml (default: the built-in ones).
    #[serde(default)]
    pub schemas: Option<PathBuf>,
    /// CSV settings.
    #[serde(default)]
    pub csv: CsvConfig,
    /// Refuse to publish when more than this fraction of rows is quarantined.
    #[serde(default)]
    pub max_reject_rate: Option<f64>,
    /// Data-quality checks run on the loaded data before it is published.
    #[serde(default)]
    pub checks: ChecksConfig,
    /// Mining jobs to refresh after a load that published new data: `rfm`.
    #[serde(default)]
    pub mining: Vec<String>,
    /// Vacuum files unused for this many hours after a successful run (none: no vacuum).
    #[serde(default)]
    pub retention_hours: Option<f64>,
}

/// CSV settings of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// Field delimiter.
    #[serde(default = "comma")]
    pub delimiter: char,
    /// Quote character.
    #[serde(default = "dquote")]
    pub quote: char,
    /// Whether files start with a header line.
    #[serde(default = "yes")]
    pub header: bool,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            delimiter: ',',
            quote: '"',
            header: true,
        }
    }
}

fn comma() -> char {
    ','
}
fn dquote() -> char {
    '"'
}
fn yes() -> bool {
    true
}

/// Checks settings of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// Run the checks at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Checks file (default: the built-in schemas/checks.yaml).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Do not publish a load on which an error-level check fails.
    #[serde(default = "yes")]
    pub block_on_error: bool,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            enabled: true,
            file: None,
            block_on_error: true,
        }
    }
}

/// What a run did (printed as JSON on stdout).
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Run id (the load id).
    pub run_id: String,
    /// `published`, `nothing_new`, `blocked_by_checks` or `failed`.
    pub status: String,
    /// Warehouse version published by the load, if any.
    pub version: Option<u64>,
    /// Start and end (RFC 3339).
    pub started_at: String,
    /// End of the run.
    pub finished_at: String,
    /// Files loaded and skipped.
    pub files_loaded: usize,
    /// Files skipped because they were loaded before.
    pub files_skipped: usize,
    /// Rows read, loaded and quarantined.
    pub rows_read: u64,
    /// Rows that reached the warehouse.
    pub rows_loaded: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// Error-level and warn-level check failures.
    pub checks_failed: usize,
    /// Warn-level check failures.
    pub checks_warned: usize,
    /// Names of failed checks.
    pub failed_checks: Vec<String>,
    /// Mining jobs refreshed.
    pub mining: Vec<String>,
    /// Files deleted by vacuum.
    pub vacuumed_files: usize,
    /// The error, for failed runs.
    pub error: Option<String>,
    /// The load report.
    pub load: Option<IngestReport>,
}

impl EtlConfig {
    /// Reads and checks a config file; relative paths become relative to its folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut c: EtlConfig = serde_yaml::from_str(&text).map_err(|e| Error::Schema {
            file: path.display().to_string(),
            key: e
                .location()
                .map(|l| format!("line {}", l.line()))
                .unwrap_or_else(|| "(document)".into()),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut c.source);
        fix(&mut c.warehouse);
        if let Some(s) = c.schemas.as_mut() {
            fix(s);
        }
        if let Some(f) = c.checks.file.as_mut() {
            fix(f);
        }
        let bad = |key: &str, message: String| Error::Schema {
            file: path.display().to_string(),
            key: key.into(),
            message,
        };
        if let Some(r) = c.max_reject_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(bad(
                    "max_reject_rate",
                    format!("expected a fraction between 0 and 1, found {r}"),
                )
                .into());
            }
        }
        if let Some(h) = c.retention_hours {
            if !(h >= 0.0 && h.is_finite()) {
                return Err(
                    bad("retention_hours", format!("expected hours >= 0, found {h}")).into(),
                );
            }
        }
        for m in &c.mining {
            if m != "rfm" {
                return Err(bad("mining", format!("unknown mining job `{m}`; known: rfm")).into());
            }
        }
        for (key, ch) in [
            ("csv.delimiter", c.csv.delimiter),
            ("csv.quote", c.csv.quote),
        ] {
            if !ch.is_ascii() {
                return Err(bad(key, format!("expected one ASCII character, found `{ch}`")).into());
            }
        }
        Ok(c)
    }
}

/// Runs `etl`.
pub fn run(ctx: &Context, cmd: EtlCommand) -> Result<()> {
    match cmd {
        EtlCommand::Run(a) => run_job(ctx, a),
    }
}

fn run_job(ctx: &Context, a: EtlRunArgs) -> Result<()> {
    let cfg = EtlConfig::from_file(&a.config)?;
    let (contract, schema) = load_schemas(cfg.schemas.as_deref())?;
    let started = chrono::Utc::now();
    let opts = IngestOptions {
        source: cfg.source.clone(),
        warehouse: cfg.warehouse.clone(),
        contract: &contract,
        schema: &schema,
        csv: CsvOptions {
            delimiter: cfg.csv.delimiter as u8,
            quote: cfg.csv.quote as u8,
            has_header: cfg.csv.header,
        },
        max_reject_rate: cfg.max_reject_rate,
        pattern: cfg.pattern.clone(),
    };
    let mut summary = RunSummary {
        run_id: String::new(),
        status: "failed".into(),
        version: None,
        started_at: started.to_rfc3339(),
        finished_at: String::new(),
        files_loaded: 0,
        files_skipped: 0,
        rows_read: 0,
        rows_loaded: 0,
        rows_quarantined: 0,
        checks_failed: 0,
        checks_warned: 0,
        failed_checks: vec![],
        mining: vec![],
        vacuumed_files: 0,
        error: None,
        load: None,
    };
    let spinner = Spinner::new(ctx);
    let outcome = load_and_check(&cfg, &opts, &schema, &spinner, &mut summary);
    spinner.finish();
    let failure = match outcome {
        Ok(()) => None,
        Err(e) => {
            summary.error = Some(format!("{e:#}"));
            // Record the failed run (unless the warehouse is busy or missing).
            summary.finished_at = chrono::Utc::now().to_rfc3339();
            if crmcube_store::is_warehouse(&cfg.warehouse) {
                if let Ok(batch) = runs_batch(&summary, started) {
                    let _ = crmcube_ingest::commit_table(
                        &cfg.warehouse,
                        "etl run",
                        RUNS_TABLE,
                        None,
                        &batch,
                        crmcube_store::Mode::Append,
                        serde_json::json!({"run": summary.status}),
                    );
                }
            }
            Some(e)
        }
    };
    if failure.is_none() && summary.status == "published" {
        for job in &cfg.mining {
            if job == "rfm" {
                let map = crmcube_mining::SegmentMap::builtin()?;
                let (scores, as_of) = runtime()?.block_on(async {
                    let wh = crmcube_cube::Warehouse::open(&cfg.warehouse).await?;
                    super::mine::rfm_scores(&wh, None, &map).await
                })?;
                super::mine::write_scores(
                    &cfg.warehouse,
                    &super::mine::CustomerScore::rfm_only(&scores),
                    as_of,
                )?;
                summary.mining.push(format!("rfm as of {as_of}"));
            }
        }
        if let Some(h) = cfg.retention_hours {
            let r = crmcube_store::vacuum(
                &cfg.warehouse,
                std::time::Duration::from_secs_f64(h * 3600.0),
                false,
            )?;
            summary.vacuumed_files = r.deleted.len();
        }
    }
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(p) = &a.summary {
        std::fs::write(p, &text).map_err(|e| Error::io(p, e))?;
    }
    ctx.note(format!(
        "etl run {}: {} (version {}), {} file(s) loaded, {} skipped, {} check failure(s)",
        summary.run_id,
        summary.status,
        summary.version.map_or("-".into(), |v| v.to_string()),
        summary.files_loaded,
        summary.files_skipped,
        summary.checks_failed
    ));
    if let Some(e) = failure {
        return Err(e);
    }
    if summary.status == "blocked_by_checks" {
        return Err(Error::Data(format!(
            "{} error-level check(s) failed ({}); the load was not published. Run `crmcube check --warehouse {}` after fixing the export, then run the job again",
            summary.checks_failed,
            summary.failed_checks.join(", "),
            cfg.warehouse.display()
        ))
        .into());
    }
    Ok(())
}

/// Prepares the load, checks it, and publishes it with its `_runs` row.
fn load_and_check(
    cfg: &EtlConfig,
    opts: &IngestOptions,
    schema: &crmcube_model::WarehouseSchema,
    spinner: &Spinner,
    summary: &mut RunSummary,
) -> Result<()> {
    let started = chrono::DateTime::parse_from_rfc3339(&summary.started_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let mut prepared = crmcube_ingest::prepare(opts, spinner)?;
    let r = prepared.report().clone();
    summary.load = Some(r.clone());
    summary.run_id = r.load_id.clone();
    summary.files_loaded = r.entities.iter().map(|e| e.files.len()).sum();
    summary.files_skipped = r.skipped_files.len();
    summary.rows_read = r.entities.iter().map(|e| e.read).sum();
    summary.rows_loaded = r.entities.iter().map(|e| e.loaded).sum();
    summary.rows_quarantined = r.quarantined;
    summary.status = if prepared.is_empty() {
        "nothing_new".into()
    } else {
        "published".into()
    };
    if !prepared.is_empty() && cfg.checks.enabled {
        let suite = match &cfg.checks.file {
            Some(f) => crmcube_cube::checks::CheckSuite::from_file(f, schema)?,
            None => crmcube_cube::checks::CheckSuite::builtin(schema)?,
        };
        let pending = prepared.pending()?;
        let results = runtime()?.block_on(async {
            let wh = crmcube_cube::Warehouse::from_snapshot(&pending).await?;
            crmcube_cube::checks::run_checks(&wh, &suite).await
        })?;
        use crmcube_cube::checks::Status;
        summary.failed_checks = results
            .iter()
            .filter(|c| c.status != Status::Pass)
            .map(|c| c.name.clone())
            .collect();
        summary.checks_failed = results.iter().filter(|c| c.status == Status::Fail).count();
        summary.checks_warned = results.iter().filter(|c| c.status == Status::Warn).count();
        if crmcube_cube::checks::has_errors(&results) && cfg.checks.block_on_error {
            summary.status = "blocked_by_checks".into();
            drop(prepared);
            summary.finished_at = chrono::Utc::now().to_rfc3339();
            crmcube_ingest::commit_table(
                &cfg.warehouse,
                "etl run",
                RUNS_TABLE,
                None,
                &runs_batch(summary, started)?,
                crmcube_store::Mode::Append,
                serde_json::json!({"run": summary.status}),
            )?;
            return Ok(());
        }
    }
    summary.finished_at = chrono::Utc::now().to_rfc3339();
    prepared.add_table(
        RUNS_TABLE,
        &runs_batch(summary, started)?,
        crmcube_store::Mode::Append,
    )?;
    let report = prepared.commit()?;
    summary.version = report.version;
    summary.load = Some(report);
    Ok(())
}

/// The `_runs` row of a run.
fn runs_batch(s: &RunSummary, started: chrono::DateTime<chrono::Utc>) -> Result<RecordBatch> {
    let finished = chrono::DateTime::parse_from_rfc3339(&s.finished_at)
        .map(|t| t.timestamp_micros())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp_micros());
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new(
            "started_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new(
            "finished_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new("files_loaded", DataType::Int64, false),
        Field::new("files_skipped", DataType::Int64, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_loaded", DataType::Int64, false),
        Field::new("rows_quarantined", DataType::Int64, false),
        Field::new("checks_failed", DataType::Int64, false),
        Field::new("failed_checks", DataType::Utf8, false),
        Field::new("entity_counts", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ]));
    let counts = s
        .load
        .as_ref()
        .map(|l| serde_json::to_string(&l.entities).unwrap_or_default())
        .unwrap_or_default();
    let i = |v: u64| -> ArrayRef { Arc::new(Int64Array::from(vec![v as i64])) };
    let t = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v.to_string()])) };
    Ok(RecordBatch::try_new(
        schema,
        vec![
            t(&s.run_id),
            Arc::new(TimestampMicrosecondArray::from(vec![
                started.timestamp_micros()
            ])),
            Arc::new(TimestampMicrosecondArray::from(vec![finished])),
            t(&s.status),
            i(s.files_loaded as u64),
            i(s.files_skipped as u64),
            i(s.rows_read),
            i(s.rows_loaded),
            i(s.rows_quarantined),
            i(s.checks_failed as u64),
            t(&s.failed_checks.join(" ")),
            t(&counts),
            Arc::new(StringArray::from(vec![s.error.clone()])),
        ],
    )?)
}
