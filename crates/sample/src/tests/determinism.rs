//! Same configuration, same bytes (whatever the thread count); different seed, different data.

use std::collections::BTreeMap;
use std::path::Path;

use super::support::{sample, small};
use crate::{generate, ExportFormat, SampleConfig};

fn file_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        out.insert(name, std::fs::read(entry.path()).expect("read file"));
    }
    out
}

fn generate_with_threads(
    cfg: &SampleConfig,
    format: ExportFormat,
    threads: usize,
) -> tempfile::TempDir {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let dir = tempfile::tempdir().expect("temp dir");
    pool.install(|| generate(cfg, format, dir.path()))
        .expect("generation succeeds");
    dir
}

#[test]
fn same_config_gives_identical_bytes_whatever_the_thread_count() {
    // More than one chunk, so that chunk boundaries are exercised too.
    let cfg = small(9000, 7);
    let a = generate_with_threads(&cfg, ExportFormat::Csv, 1);
    let b = generate_with_threads(&cfg, ExportFormat::Csv, 3);
    let fa = file_bytes(a.path());
    let fb = file_bytes(b.path());
    assert_eq!(fa.len(), 13, "{:?}", fa.keys().collect::<Vec<_>>());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between runs");
    }
}

#[test]
fn parquet_and_jsonl_are_deterministic_too() {
    let cfg = small(200, 11);
    for format in [ExportFormat::Jsonl, ExportFormat::Parquet] {
        let a = generate_with_threads(&cfg, format, 1);
        let b = generate_with_threads(&cfg, format, 2);
        assert_eq!(file_bytes(a.path()), file_bytes(b.path()), "{format}");
    }
}

#[test]
fn different_seeds_give_different_data() {
    let a = sample(&small(200, 1), ExportFormat::Csv);
    let b = sample(&small(200, 2), ExportFormat::Csv);
    let fa = file_bytes(a.path());
    let fb = file_bytes(b.path());
    for name in [
        "customers.csv",
        "orders.csv",
        "products.csv",
        "campaigns.csv",
        "_truth.csv",
    ] {
        assert_ne!(fa[name], fb[name], "{name} should depend on the seed");
    }
    // Regions are fixed reference data.
    assert_eq!(fa["regions.csv"], fb["regions.csv"]);
}

#[test]
fn more_customers_extend_rather_than_reshuffle() {
    // Customer i is simulated from its own streams: the first 100 customers of a
    // 300-customer sample are those of a 100-customer sample.
    let a = sample(&small(100, 5), ExportFormat::Csv);
    let b = sample(&small(300, 5), ExportFormat::Csv);
    let ta = std::fs::read_to_string(a.path().join("_truth.csv")).expect("truth");
    let tb = std::fs::read_to_string(b.path().join("_truth.csv")).expect("truth");
    assert!(tb.starts_with(&ta));
}
