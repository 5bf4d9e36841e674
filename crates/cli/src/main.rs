//! `crmcube`: the command-line entry point. Parses flags, calls the library crates,
//! prints results to stdout and everything else to stderr.
//!
//! Exit codes: 0 success, 1 data problem, 2 usage or I/O error.

mod commands;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc, which can keep freed pages for reuse (see [`keep_freed_memory`]).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A batch command (ingest, etl, demo, …) allocates and frees column buffers of hundreds
/// of megabytes, phase after phase. Returning freed pages to the kernel means it must
/// zero them again on the next allocation, which was a sixth of a large load's CPU
/// time; a short-lived process keeps them instead. `serve` and `cube shell` may run for
/// days and keep mimalloc's defaults (pages are returned shortly after they are freed).
///
/// The C libraries (zstd above all: Parquet's codec makes a new compression context of
/// about a megabyte for every page it writes) allocate through the C library's malloc
/// instead. glibc gives blocks that large their own mapping, or trims them off its heap
/// when they are freed, so every context was zeroed anew on fresh pages: a third of the
/// page faults of a large load. Batch commands set glibc to keep them on its heap.
///
/// Batch commands also turn transparent huge pages off for the process (see
/// [`huge_pages`]).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc malloc's parameters; it is called before any
    // other thread is started.
    unsafe {
        // The largest threshold glibc takes on 64-bit machines (32 MiB), and no
        // trimming below 1 GiB of free heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    /// `mi_option_purge_delay` in mimalloc's `mi_option_t`.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide allocator option; valid at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
    huge_pages(std::env::var_os("CRMCUBE_HUGE_PAGES").is_some_and(|v| v == "1"));
}

/// mimalloc asks the kernel for 2 MiB transparent huge pages on its arenas
/// (`madvise(MADV_HUGEPAGE)`, with its default options too). On the virtual machines
/// crmcube is measured on, a fresh huge page costs several times the kernel time of the
/// 512 small pages it replaces (touching 3 GB from two threads: 5.5–6.5 s of system
/// time in huge pages, 1.6–3.1 s in small ones; the hypervisor takes free memory back in
/// large blocks, and a huge page always comes from one). A 1,000,000-customer load
/// spent 7.1 s of system time with them and 4.1 s without, and the same user time. So
/// batch commands turn them off for the process (`PR_SET_THP_DISABLE`), unless
/// `CRMCUBE_HUGE_PAGES=1` keeps them (for machines where fewer TLB misses are worth more).
fn huge_pages(keep: bool) {
    #[cfg(target_os = "linux")]
    if !keep {
        // SAFETY: PR_SET_THP_DISABLE only sets a flag of the calling process; it takes
        // no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = keep;
}

/// An analytical CRM data warehouse and OLAP engine.
#[derive(Parser)]
#[command(name = "crmcube", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print no progress or summary lines on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Log each step of a long operation (ingest, etl, demo) on stderr with the seconds
    /// since the start, e.g. for cron logs and for finding where time goes.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Build a warehouse from the built-in sample data, run example queries, score customers.
    Demo(commands::demo::DemoArgs),
    /// Generate sample CRM exports.
    #[command(subcommand)]
    Sample(commands::sample::SampleCommand),
    /// Load an export directory (CSV / JSON Lines / Parquet) into a warehouse.
    Ingest(commands::ingest::IngestArgs),
    /// List the tables of a warehouse (or a folder of Parquet files) with row counts.
    Tables(commands::sql::TablesArgs),
    /// Run SQL over a warehouse (or a folder of Parquet files).
    Sql(commands::sql::SqlArgs),
    /// Nightly ETL: load new exports, check, publish, refresh scores, vacuum.
    #[command(subcommand)]
    Etl(commands::etl::EtlCommand),
    /// Write one warehouse version as Hive-partitioned Parquet (or CSV, Arrow) with a
    /// manifest and a _SUCCESS marker, for BI tools and notebooks.
    Export(commands::export::ExportArgs),
    /// Serve the warehouse and the cube's views over Arrow Flight SQL and the PostgreSQL
    /// wire protocol (read-only).
    Serve(commands::serve::ServeArgs),
    /// Run an Apache Ballista scheduler and executor on loopback, for `sql --engine`
    /// (built with `--features ballista`).
    #[cfg(feature = "ballista")]
    Cluster(commands::cluster::ClusterArgs),
    /// List the versions of a warehouse: loads, their inputs and row counts.
    History(commands::history::HistoryArgs),
    /// Delete data files that no retained warehouse version uses.
    Vacuum(commands::history::VacuumArgs),
    /// Run the data quality checks (schemas/checks.yaml) over a warehouse; exit 1 on an error-level failure.
    Check(commands::check::CheckArgs),
    /// The OLAP cube: describe the model, query it with drill, slice, dice and pivot.
    #[command(subcommand)]
    Cube(commands::cube::CubeCommand),
    /// Customer mining: RFM scores and segments.
    #[command(subcommand)]
    Mine(commands::mine::MineCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = commands::Context {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let long_running = matches!(
        cli.command,
        Command::Serve(_) | Command::Cube(commands::cube::CubeCommand::Shell(_))
    );
    if !long_running {
        keep_freed_memory();
    }
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(&ctx, a),
        Command::Sample(c) => commands::sample::run(&ctx, c),
        Command::Ingest(a) => commands::ingest::run(&ctx, a),
        Command::Tables(a) => commands::sql::run_tables(&ctx, a),
        Command::Sql(a) => commands::sql::run_sql(&ctx, a),
        Command::Etl(c) => commands::etl::run(&ctx, c),
        Command::Export(a) => commands::export::run(&ctx, a),
        Command::Serve(a) => commands::serve::run(&ctx, a),
        #[cfg(feature = "ballista")]
        Command::Cluster(a) => commands::cluster::run(&ctx, a),
        Command::History(a) => commands::history::run_history(&ctx, a),
        Command::Vacuum(a) => commands::history::run_vacuum(&ctx, a),
        Command::Check(a) => commands::check::run(&ctx, a),
        Command::Cube(c) => commands::cube::run(&ctx, c),
        Command::Mine(c) => commands::mine::run(&ctx, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 1 for data problems, 2 for everything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(err) = cause.downcast_ref::<crmcube_model::Error>() {
            return err.exit_code() as u8;
        }
    }
    2
}
