//! `mine migration`: RFM segment migration between two days.

use super::{batch, floats, ints, last_day, purchases, round, strings};
use crate::commands::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_mining::calendar::day_of_date;
use crmcube_mining::migration::migration_matrix;
use crmcube_mining::SegmentMap;
use crmcube_model::Error;
use std::path::PathBuf;

/// Flags of `mine migration`.
#[derive(clap::Args)]
pub struct MigrationArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// First as-of day.
    #[arg(long)]
    pub from: NaiveDate,
    /// Second as-of day (after --from).
    #[arg(long)]
    pub to: NaiveDate,
    /// Segment map YAML (default: the built-in schemas/rfm_segments.yaml).
    #[arg(long)]
    pub segments: Option<PathBuf>,
    /// One row per from-segment and one column of counts per to-segment.
    #[arg(long)]
    pub wide: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `mine migration`.
pub fn run_migration(_ctx: &Context, a: MigrationArgs) -> Result<()> {
    let map = match &a.segments {
        Some(p) => SegmentMap::parse(
            &std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            &p.display().to_string(),
        )?,
        None => SegmentMap::builtin()?,
    };
    let (from, to) = (day_of_date(a.from), day_of_date(a.to));
    if from >= to {
        return Err(Error::Usage(format!(
            "--from ({}) must be before --to ({})",
            a.from, a.to
        ))
        .into());
    }
    let rt = runtime()?;
    let rows = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        purchases(&wh).await
    })?;
    last_day(&rows)?;
    if !rows.iter().any(|t| t.day <= to) {
        return Err(Error::Data(format!(
            "no purchases on or before --to {}; nothing to segment",
            a.to
        ))
        .into());
    }
    let cells = migration_matrix(&rows, from, to, &map)?;
    let b = if a.wide {
        let mut to_segments: Vec<&str> = vec![];
        let mut from_segments: Vec<&str> = vec![];
        for c in &cells {
            if !from_segments.contains(&c.from.as_str()) {
                from_segments.push(&c.from);
            }
        }
        // Column order: segment-map order, as the rows.
        let order = |s: &str| {
            map.segments
                .iter()
                .position(|r| r.name == s)
                .unwrap_or(map.segments.len())
        };
        for c in &cells {
            if !to_segments.contains(&c.to.as_str()) {
                to_segments.push(&c.to);
            }
        }
        to_segments.sort_by_key(|s| (order(s), s.to_string()));
        let count = |f: &str, t: &str| {
            cells
                .iter()
                .find(|c| c.from == f && c.to == t)
                .map_or(0, |c| c.customers as i64)
        };
        let mut cols = vec![
            strings("from_segment", from_segments.iter().map(|s| s.to_string())),
            ints(
                "customers",
                from_segments
                    .iter()
                    .map(|f| to_segments.iter().map(|t| count(f, t)).sum()),
            ),
        ];
        for t in &to_segments {
            cols.push(ints(t, from_segments.iter().map(|f| count(f, t))));
        }
        batch(cols)?
    } else {
        batch(vec![
            strings("from_segment", cells.iter().map(|c| c.from.clone())),
            strings("to_segment", cells.iter().map(|c| c.to.clone())),
            ints("customers", cells.iter().map(|c| c.customers as i64)),
            floats("row_pct", cells.iter().map(|c| round(c.row_pct, 1))),
        ])?
    };
    emit(a.output.as_deref(), &b.schema(), &[b], a.format)
}
