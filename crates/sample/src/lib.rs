//! crmcube sample data: a deterministic generator of realistic OLTP CRM exports.
//!
//! [`generate`] writes one file per entity of the export contract (`schemas/oltp.yaml`) in
//! CSV, JSON Lines or Parquet, plus `_truth.csv` (the latent parameters and true outcome of
//! every customer, for checking mining models) and `_settings.json` (the configuration used).
//! The same configuration always produces byte-identical files, whatever the number of
//! threads: every customer is simulated from its own random streams derived from
//! (seed, customer index), customers are generated in parallel and written in order.
//!
//! The generative process is described in `docs/sample-data.md`.

mod calendar;
mod campaigns;
mod catalog;
mod contract;
mod customers;
mod emit;
mod error;
mod format;
mod geography;
mod history;
mod marketing;
mod names;
mod orders;
mod records;
mod render;
mod rng;
mod tickets;
mod web;
mod world;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::Serialize;

pub use error::{SampleError, SampleResult};

use contract::{Entity, MAX_CUSTOMERS};
use emit::Chunk;
use error::io_at;
use world::World;
use writer::EntityFile;

/// Customers simulated (and written) per batch. Fixed, so output does not depend on it
/// varying; large enough to keep all cores busy, small enough to bound memory.
const CHUNK_CUSTOMERS: u64 = 8192;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleConfig {
    /// Number of customers (1 ..= 9,999,999).
    pub customers: usize,
    /// Seed of every random stream.
    pub seed: u64,
    /// First day of the simulated period.
    pub start: NaiveDate,
    /// Last day of the simulated period (inclusive); nothing happens after it.
    pub end: NaiveDate,
}

impl Default for SampleConfig {
    /// 2,000 customers, seed 42, 2023-01-01 to 2025-12-31.
    fn default() -> Self {
        SampleConfig {
            customers: 2000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or(NaiveDate::MIN),
            end: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or(NaiveDate::MIN),
        }
    }
}

impl SampleConfig {
    /// Checks that the configuration can be generated.
    pub fn validate(&self) -> SampleResult<()> {
        if self.customers == 0 {
            return Err(SampleError::Invalid(
                "customers must be at least 1".to_string(),
            ));
        }
        if self.customers > MAX_CUSTOMERS {
            return Err(SampleError::Invalid(format!(
                "customers must be at most {MAX_CUSTOMERS} (got {}); customer keys have 7 digits",
                self.customers
            )));
        }
        if self.start > self.end {
            return Err(SampleError::Invalid(format!(
                "start {} is after end {}; swap them",
                self.start, self.end
            )));
        }
        let lo = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or(NaiveDate::MIN);
        let hi = NaiveDate::from_ymd_opt(2999, 12, 31).unwrap_or(NaiveDate::MAX);
        if self.start < lo || self.end > hi {
            return Err(SampleError::Invalid(format!(
                "the period {} .. {} must lie between {lo} and {hi}",
                self.start, self.end
            )));
        }
        Ok(())
    }
}

/// File format of the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one object per row.
    Jsonl,
    /// Apache Parquet, zstd-compressed.
    Parquet,
}

impl ExportFormat {
    /// All formats.
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Csv,
        ExportFormat::Jsonl,
        ExportFormat::Parquet,
    ];

    /// File extension without the dot: `csv`, `jsonl`, `parquet`.
    pub fn extension(&self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Parquet => "parquet",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for ExportFormat {
    type Err = SampleError;

    /// Parses `csv`, `jsonl` (or `json`) and `parquet`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" | "json" => Ok(ExportFormat::Jsonl),
            "parquet" => Ok(ExportFormat::Parquet),
            other => Err(SampleError::Invalid(format!(
                "unknown format {other:?}; use csv, jsonl or parquet"
            ))),
        }
    }
}

/// A file written by [`generate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Entity name (`orders`, …; `_truth` and `_settings` for the side files).
    pub entity: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Data rows (header excluded).
    pub rows: u64,
    /// Size on disk.
    pub bytes: u64,
}

/// What [`generate`] did.
#[derive(Clone, Debug)]
pub struct SampleSummary {
    /// The eleven entity files in contract order, then `_truth.csv` and `_settings.json`.
    pub files: Vec<GeneratedFile>,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

/// The configuration as recorded in `_settings.json`.
#[derive(Serialize)]
struct Settings<'a> {
    generator: &'a str,
    customers: usize,
    seed: u64,
    start: String,
    end: String,
    format: &'a str,
}

/// Generates a sample export into `out` (created if needed).
///
/// Writes `<entity>.<ext>` for the eleven contract entities, `_truth.csv` and
/// `_settings.json`. Existing files of the same names are replaced; files of the same
/// entities in another format are removed so that the directory holds one export.
pub fn generate(
    cfg: &SampleConfig,
    format: ExportFormat,
    out: &Path,
) -> SampleResult<SampleSummary> {
    let started = Instant::now();
    cfg.validate()?;
    fs::create_dir_all(out).map_err(io_at(out))?;
    let world = World::new(cfg);

    let mut files = Entity::CONTRACT
        .iter()
        .map(|&e| EntityFile::create(out, e, format))
        .collect::<SampleResult<Vec<_>>>()?;
    files.push(EntityFile::create(out, Entity::Truth, ExportFormat::Csv)?);
    for f in files.iter_mut().filter(|f| f.entity.is_static()) {
        f.write_static(&world)?;
    }

    let total = cfg.customers as u64;
    let simulate = |first: u64| -> Vec<records::CustomerRecords> {
        let last = (first + CHUNK_CUSTOMERS).min(total);
        (first..last)
            .into_par_iter()
            .map(|i| customers::simulate(&world, cfg.seed, i))
            .collect()
    };
    let mut orders = 0u64;
    let mut sessions = 0u64;
    let mut first = 0u64;
    let mut pending = simulate(0);
    while first < total {
        let chunk = Chunk::new(first, pending, &mut orders, &mut sessions);
        let next = first + CHUNK_CUSTOMERS;
        // Write this chunk while the next one is simulated.
        let (written, upcoming) = rayon::join(
            || {
                files
                    .par_iter_mut()
                    .filter(|f| !f.entity.is_static())
                    .try_for_each(|f| f.write_chunk(&world, &chunk))
            },
            || {
                if next < total {
                    simulate(next)
                } else {
                    Vec::new()
                }
            },
        );
        written?;
        pending = upcoming;
        first = next;
    }

    let mut generated = files
        .into_iter()
        .map(EntityFile::finish)
        .collect::<SampleResult<Vec<_>>>()?;
    remove_other_formats(out, format)?;
    generated.push(write_settings(cfg, format, out)?);
    Ok(SampleSummary {
        files: generated,
        elapsed: started.elapsed(),
    })
}

/// Deletes `<entity>.<other ext>` left from an earlier export in another format.
fn remove_other_formats(out: &Path, format: ExportFormat) -> SampleResult<()> {
    for other in ExportFormat::ALL.iter().filter(|f| **f != format) {
        for entity in Entity::CONTRACT {
            let stale = out.join(format!("{}.{}", entity.name(), other.extension()));
            match fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(stale)(e)),
            }
        }
    }
    Ok(())
}

fn write_settings(
    cfg: &SampleConfig,
    format: ExportFormat,
    out: &Path,
) -> SampleResult<GeneratedFile> {
    let path = out.join("_settings.json");
    let settings = Settings {
        generator: concat!("crmcube-sample ", env!("CARGO_PKG_VERSION")),
        customers: cfg.customers,
        seed: cfg.seed,
        start: cfg.start.format("%Y-%m-%d").to_string(),
        end: cfg.end.format("%Y-%m-%d").to_string(),
        format: format.extension(),
    };
    let mut text =
        serde_json::to_string_pretty(&settings).map_err(|source| SampleError::Settings {
            path: path.clone(),
            source,
        })?;
    text.push('\n');
    fs::write(&path, text.as_bytes()).map_err(io_at(&path))?;
    Ok(GeneratedFile {
        entity: "_settings".to_string(),
        path,
        rows: 1,
        bytes: text.len() as u64,
    })
}
