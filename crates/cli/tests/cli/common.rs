//! Running the real `crmcube` binary in tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `crmcube` with `args` in `cwd`.
pub fn crmcube_in(cwd: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the crmcube binary runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked") && run.code != 101,
        "crmcube {args:?} panicked:\n{}",
        run.stderr
    );
    run
}

/// Runs `crmcube` with `args` from the repository root.
pub fn crmcube(args: &[&str]) -> Run {
    crmcube_in(&repo_root(), args)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    // Run-time CARGO_MANIFEST_DIR first: a binary built from another checkout of the
    // same sources still uses this checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Runs a query and returns its rows as JSON objects.
pub fn query(warehouse: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let w = warehouse.to_str().expect("utf-8 path");
    let r = crmcube(&["sql", "--warehouse", w, "--format", "json", sql]);
    assert_eq!(r.code, 0, "query failed: {sql}\n{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("json output");
    v.as_array()
        .expect("array")
        .iter()
        .map(|o| o.as_object().expect("object").clone())
        .collect()
}

/// A JSON value as f64 (numbers or numeric strings, e.g. decimals).
pub fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().expect("f64"),
        serde_json::Value::String(s) => s.parse().expect("numeric string"),
        other => panic!("not a number: {other}"),
    }
}

/// Runs `crmcube ingest` and requires it to succeed.
pub fn ingest_ok(source: &Path, warehouse: &Path) -> Run {
    let r = crmcube(&[
        "ingest",
        "--source",
        source.to_str().expect("utf-8 path"),
        "--warehouse",
        warehouse.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(r.code, 0, "ingest failed: {}", r.stderr);
    r
}
