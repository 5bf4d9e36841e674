//! Generates a sample export and prints what was written and how long it took.
//!
//! Usage: `cargo run --release -p crmcube-sample --example generate -- <customers> <seed> <out> <csv|jsonl|parquet>`

use std::path::PathBuf;
use std::process::ExitCode;

use crmcube_sample::{generate, ExportFormat, SampleConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: generate <customers> <seed> <out-dir> <csv|jsonl|parquet>");
        return ExitCode::from(2);
    }
    let customers = match args[0].parse::<usize>() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("customers must be a whole number ({e})");
            return ExitCode::from(2);
        }
    };
    let seed = match args[1].parse::<u64>() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("seed must be a whole number ({e})");
            return ExitCode::from(2);
        }
    };
    let out = PathBuf::from(&args[2]);
    let format = match args[3].parse::<ExportFormat>() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let cfg = SampleConfig {
        customers,
        seed,
        ..SampleConfig::default()
    };
    match generate(&cfg, format, &out) {
        Ok(summary) => {
            let mut rows = 0;
            let mut bytes = 0;
            for f in &summary.files {
                println!("{:<20} {:>12} rows {:>15} bytes", f.entity, f.rows, f.bytes);
                rows += f.rows;
                bytes += f.bytes;
            }
            println!("{:<20} {:>12} rows {:>15} bytes", "total", rows, bytes);
            println!("elapsed {:.2?}", summary.elapsed);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
