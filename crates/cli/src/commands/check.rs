//! `crmcube check`: runs the data quality checks of `schemas/checks.yaml` (or `--checks
//! FILE`) over a warehouse. Exit code 1 when an error-level check fails.

use super::{load_schemas, runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use crmcube_cube::checks::{has_errors, parse_as_of, run_checks, CheckResult, CheckSuite, Status};
use crmcube_cube::Warehouse;
use crmcube_model::Error;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The warehouse directory to check.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Checks file (default: the built-in schemas/checks.yaml).
    #[arg(long)]
    pub checks: Option<PathBuf>,
    /// Directory holding warehouse.yaml that the checks file is validated against
    /// (default: the built-in schema).
    #[arg(long)]
    pub schemas: Option<PathBuf>,
    /// Reference time for freshness checks, e.g. 2026-01-31 or 2026-01-31T06:00:00Z
    /// (default: now, UTC).
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// Result format; csv, json and ndjson also carry the SQL of each check.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the results to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `check`.
pub fn run(ctx: &Context, a: CheckArgs) -> Result<()> {
    let (_, schema) = load_schemas(a.schemas.as_deref())?;
    let as_of = a.as_of.as_deref().map(parse_as_of).transpose()?;
    let suite = match &a.checks {
        Some(f) => CheckSuite::from_file(f, &schema)?,
        None => CheckSuite::builtin(&schema)?,
    }
    .with_as_of(as_of);
    let rt = runtime()?;
    let results = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        anyhow::Ok(run_checks(&wh, &suite).await?)
    })?;
    let batch = results_batch(&results, a.format != Format::Table)?;
    emit(a.output.as_deref(), &batch.schema(), &[batch], a.format)?;

    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    for r in results.iter().filter(|r| r.status != Status::Pass) {
        ctx.note(format!(
            "{} {}: {} failing row(s); see them with: crmcube sql --warehouse {} \"{}\"",
            if r.status == Status::Fail {
                "FAIL"
            } else {
                "WARN"
            },
            r.name,
            r.failing_rows,
            a.warehouse.display(),
            r.sql.replace('"', "\\\"")
        ));
    }
    ctx.note(format!(
        "{} checks from {}: {} passed, {} failed, {} warnings",
        results.len(),
        suite.origin,
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn)
    ));
    if has_errors(&results) {
        return Err(Error::Data(format!(
            "{} error-level check(s) failed: {}",
            count(Status::Fail),
            results
                .iter()
                .filter(|r| r.status == Status::Fail)
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    Ok(())
}

/// The results as one batch; `with_sql` adds the query of each check.
fn results_batch(results: &[CheckResult], with_sql: bool) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&CheckResult) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(results.iter().map(f).collect::<Vec<_>>()))
    };
    let mut fields = vec![
        Field::new("check", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("failing_rows", DataType::UInt64, false),
        Field::new("examples", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.name.clone())),
        text(&|r| Some(r.table.clone())),
        text(&|r| r.column.clone()),
        text(&|r| Some(r.kind.to_string())),
        text(&|r| Some(r.severity.name().to_string())),
        text(&|r| Some(r.status.name().to_string())),
        Arc::new(UInt64Array::from(
            results.iter().map(|r| r.failing_rows).collect::<Vec<_>>(),
        )),
        text(&|r| Some(r.examples.join("; "))),
    ];
    if with_sql {
        fields.push(Field::new("sql", DataType::Utf8, false));
        columns.push(text(&|r| Some(r.sql.clone())));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
