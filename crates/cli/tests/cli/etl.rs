//! `crmcube etl run`: the nightly job publishes, skips what it loaded before, and refuses
//! to publish a load that fails an error-level check.

use crate::common::{crmcube, num, query, repo_root};
use std::path::Path;

fn run(config: &Path) -> (i32, serde_json::Value, String) {
    let r = crmcube(&["etl", "run", "--config", config.to_str().expect("utf-8")]);
    let v = serde_json::from_str(r.stdout.trim()).unwrap_or(serde_json::Value::Null);
    (r.code, v, r.stderr)
}

#[test]
fn the_nightly_job_publishes_once_and_checks_block_bad_loads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    let config = tmp.path().join("etl.yaml");
    let sample = repo_root().join("sample_data");
    std::fs::write(
        &config,
        format!(
            "source: {}\nwarehouse: wh\nmax_reject_rate: 0.01\nmining: [rfm]\nretention_hours: 0\n",
            sample.display()
        ),
    )
    .expect("config");
    let (code, v, err) = run(&config);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["status"], "published", "{v}");
    assert_eq!(v["version"], 0);
    assert_eq!(v["files_loaded"], 11);
    assert_eq!(v["mining"].as_array().map(Vec::len), Some(1), "{v}");
    let runs = query(&wh, "SELECT status, files_loaded FROM _runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "published");
    assert!(num(&query(&wh, "SELECT COUNT(*) AS n FROM customer_scores")[0]["n"]) > 0.0);

    // The same night again: nothing new, logged as such.
    let (code, v, err) = run(&config);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["status"], "nothing_new", "{v}");
    assert_eq!(v["files_skipped"], 11);
    let facts_before = num(&query(&wh, "SELECT COUNT(*) AS n FROM fact_sales")[0]["n"]);

    // A new file and a check it fails: not published, exit 1, the run logged.
    let next = tmp.path().join("next");
    std::fs::create_dir_all(&next).expect("mkdir");
    std::fs::write(
        next.join("regions.csv"),
        "region_id,city,country,country_code,region\nR999,Atlantis,Nowhere,NW,Europe\n",
    )
    .expect("regions");
    let checks = tmp.path().join("strict.yaml");
    std::fs::write(
        &checks,
        "tables:\n  dim_region:\n    checks:\n      - row_count: { max: 10 }\n",
    )
    .expect("checks");
    std::fs::write(
        &config,
        "source: next\nwarehouse: wh\nchecks: { file: strict.yaml, block_on_error: true }\n",
    )
    .expect("config");
    let (code, v, err) = run(&config);
    assert_eq!(code, 1, "{err}");
    assert_eq!(v["status"], "blocked_by_checks", "{v}");
    assert!(err.contains("not published"), "{err}");
    assert_eq!(
        num(&query(
            &wh,
            "SELECT COUNT(*) AS n FROM dim_region WHERE region_id = 'R999'"
        )[0]["n"]),
        0.0,
        "a blocked load must not be visible"
    );
    assert_eq!(
        num(&query(&wh, "SELECT COUNT(*) AS n FROM fact_sales")[0]["n"]),
        facts_before
    );
    let runs = query(&wh, "SELECT status FROM _runs ORDER BY started_at");
    let statuses: Vec<&str> = runs.iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(statuses, ["published", "nothing_new", "blocked_by_checks"]);

    // A config with an unknown key is a usage error naming the file.
    std::fs::write(&config, "source: next\nwarehouse: wh\nretension_hours: 5\n").expect("config");
    let r = crmcube(&["etl", "run", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("etl.yaml") && r.stderr.contains("retension_hours"),
        "{}",
        r.stderr
    );
}
