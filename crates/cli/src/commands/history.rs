//! `crmcube history` and `crmcube vacuum`.

use super::Context;
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flags of `history`.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Show the row count of every table at each version (one line per version and table).
    #[arg(long)]
    pub tables: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Flags of `vacuum`.
#[derive(clap::Args)]
pub struct VacuumArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Keep files that versions committed within this many hours still use, so time
    /// travel inside that window keeps working. Unused files younger than this are kept
    /// too.
    #[arg(long, default_value_t = 168.0, value_name = "HOURS")]
    pub retention_hours: f64,
    /// List what would be deleted without deleting it.
    #[arg(long)]
    pub dry_run: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs `history`.
pub fn run_history(_ctx: &Context, a: HistoryArgs) -> Result<()> {
    let commits = crmcube_store::history(&a.warehouse)?;
    let batch = if a.tables {
        per_table(&commits)?
    } else {
        per_version(&commits)?
    };
    emit(None::<&Path>, &batch.schema(), &[batch], a.format)?;
    Ok(())
}

fn per_version(commits: &[crmcube_store::Commit]) -> Result<RecordBatch> {
    let inputs = |c: &crmcube_store::Commit, key: &str| -> Vec<String> {
        c.info
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.get("file").and_then(|f| f.as_str()))
                    .map(|f| {
                        Path::new(f)
                            .file_name()
                            .map_or(f.to_string(), |n| n.to_string_lossy().into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let col = |f: &dyn Fn(&crmcube_store::Commit) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(commits.iter().map(f)))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::UInt64, false),
        Field::new("committed_at", DataType::Utf8, false),
        Field::new("operation", DataType::Utf8, false),
        Field::new("load_id", DataType::Utf8, false),
        Field::new("tables_changed", DataType::Utf8, false),
        Field::new("input_files", DataType::Utf8, false),
        Field::new("skipped_files", DataType::Utf8, false),
        Field::new("fact_rows", DataType::UInt64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from_iter_values(
                commits.iter().map(|c| c.version),
            )),
            col(&|c| c.committed_at.clone()),
            col(&|c| c.operation.clone()),
            col(&|c| c.load_id.clone()),
            col(&|c| c.changed.join(" ")),
            col(&|c| inputs(c, "inputs").join(" ")),
            col(&|c| inputs(c, "skipped").join(" ")),
            Arc::new(UInt64Array::from_iter_values(commits.iter().map(|c| {
                c.tables
                    .iter()
                    .filter(|(n, _)| n.starts_with("fact_"))
                    .map(|(_, t)| t.rows)
                    .sum::<u64>()
            }))),
        ],
    )?;
    Ok(batch)
}

fn per_table(commits: &[crmcube_store::Commit]) -> Result<RecordBatch> {
    let mut version = Vec::new();
    let mut table = Vec::new();
    let mut tv = Vec::new();
    let mut rows = Vec::new();
    let mut files = Vec::new();
    let mut changed = Vec::new();
    for c in commits {
        for (name, t) in &c.tables {
            version.push(c.version);
            table.push(name.clone());
            tv.push(t.version);
            rows.push(t.rows);
            files.push(t.files);
            changed.push(if c.changed.contains(name) { "yes" } else { "" });
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::UInt64, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("table_version", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("files", DataType::UInt64, false),
        Field::new("changed", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from(version)),
            Arc::new(StringArray::from(table)),
            Arc::new(UInt64Array::from(tv)),
            Arc::new(UInt64Array::from(rows)),
            Arc::new(UInt64Array::from(files)),
            Arc::new(StringArray::from(changed)),
        ],
    )?)
}

/// Runs `vacuum`.
pub fn run_vacuum(ctx: &Context, a: VacuumArgs) -> Result<()> {
    if !(a.retention_hours >= 0.0 && a.retention_hours.is_finite()) {
        return Err(crmcube_model::Error::Usage(format!(
            "--retention-hours must be a number of hours >= 0, found {}",
            a.retention_hours
        ))
        .into());
    }
    let retention = std::time::Duration::from_secs_f64(a.retention_hours * 3600.0);
    let r = crmcube_store::vacuum(&a.warehouse, retention, a.dry_run)?;
    let n = r.deleted.len();
    let schema = Arc::new(Schema::new(vec![Field::new(
        if a.dry_run { "would_delete" } else { "deleted" },
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(r.deleted.clone()))],
    )?;
    emit(None::<&Path>, &schema, &[batch], a.format)?;
    ctx.note(format!(
        "{} {n} unused file(s), {} bytes; kept {} in use and {} younger than {} h ({} files seen)",
        if a.dry_run { "would delete" } else { "deleted" },
        r.bytes_deleted,
        r.kept_in_use,
        r.kept_recent,
        a.retention_hours,
        r.files_seen
    ));
    Ok(())
}
