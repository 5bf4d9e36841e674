//! One module per subcommand.

pub mod check;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod cube;
pub mod demo;
pub mod etl;
pub mod export;
pub mod history;
pub mod ingest;
pub mod mine;
pub mod mine_more;
pub mod sample;
pub mod serve;
pub mod shell;
pub mod sql;

use anyhow::Result;
use crmcube_model::{ExportContract, WarehouseSchema};
use std::path::Path;

/// Settings every command sees.
pub struct Context {
    /// No progress or summaries on stderr.
    pub quiet: bool,
    /// Log each step of long operations on stderr.
    pub verbose: bool,
}

impl Context {
    /// Prints a line on stderr unless quiet.
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }
}

/// A runtime for the async query engine.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The contract and warehouse schema: from `dir/oltp.yaml` and `dir/warehouse.yaml`
/// when a directory is given, else the built-in copies.
pub fn load_schemas(dir: Option<&Path>) -> Result<(ExportContract, WarehouseSchema)> {
    Ok(match dir {
        Some(d) => (
            ExportContract::from_file(&d.join("oltp.yaml"))?,
            WarehouseSchema::from_file(&d.join("warehouse.yaml"))?,
        ),
        None => (ExportContract::builtin()?, WarehouseSchema::builtin()?),
    })
}

/// Parses a one-character CSV option.
pub fn single_byte(s: &str) -> std::result::Result<u8, String> {
    match s {
        "\\t" | "tab" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "expected a single ASCII character (or \\t), found `{s}`"
        )),
    }
}
