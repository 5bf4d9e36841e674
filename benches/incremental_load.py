#!/usr/bin/env python3
"""crmcube: an incremental one-day load into warehouses of growing size.

For each warehouse size N (customers), this

  1. generates an export with `crmcube sample generate --customers N` (history
     2023-01-01 .. 2025-12-31),
  2. splits it the way a nightly job receives it: every row whose timestamp falls
     on the last day (>= --day, default 2025-12-31) goes to the "day" export, order
     lines with their order, cart events with their session; everything else, and
     all reference data (regions, products, campaigns), to the "history" export,
  3. loads the history into a fresh warehouse (`crmcube ingest`), then
  4. times the load of the day's export into it (`crmcube ingest --format json`),
     and, to show the load is idempotent, loads the same day again (every file is
     skipped).

It prints, per size, the day's rows, the wall time of the day's load, its conform
and write seconds, and what the warehouse held; the question is whether the day's
load time depends on the day's data or on the whole warehouse.
"""

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

PRIMARY = [
    # entity, timestamp column, key column (children follow the key)
    ("customers", "updated_at", None),
    ("orders", "order_ts", "order_id"),
    ("web_sessions", "started_at", "session_id"),
    ("campaign_contacts", "sent_ts", None),
    ("email_events", "event_ts", None),
    ("tickets", "opened_at", None),
]
REFERENCE = ["regions", "products", "campaigns"]
CHILDREN = [("order_lines", "orders", "order_id"), ("cart_events", "web_sessions", "session_id")]


def split(src: Path, out: Path, day: str):
    """Writes out/history and out/day; returns the rows in each."""
    hist, dayd = out / "history", out / "day"
    for d in (hist, dayd):
        d.mkdir(parents=True, exist_ok=True)
    counts = {"history": 0, "day": 0}
    day_keys = {}
    csv.field_size_limit(sys.maxsize)

    def route(entity, pick):
        with open(src / f"{entity}.csv", newline="", encoding="utf-8") as f:
            r = csv.reader(f)
            header = next(r)
            with open(hist / f"{entity}.csv", "w", newline="", encoding="utf-8") as fh, \
                    open(dayd / f"{entity}.csv", "w", newline="", encoding="utf-8") as fd:
                wh, wd = csv.writer(fh, lineterminator="\n"), csv.writer(fd, lineterminator="\n")
                wh.writerow(header)
                wd.writerow(header)
                test = pick(header)
                for row in r:
                    if test(row):
                        wd.writerow(row)
                        counts["day"] += 1
                    else:
                        wh.writerow(row)
                        counts["history"] += 1

    for entity in REFERENCE:
        shutil.copy(src / f"{entity}.csv", hist / f"{entity}.csv")
        with open(src / f"{entity}.csv", encoding="utf-8") as f:
            counts["history"] += sum(1 for _ in f) - 1
    for entity, ts, key in PRIMARY:
        keys = day_keys.setdefault(entity, set())

        def pick(header, ts=ts, key=key, keys=keys):
            ti = header.index(ts)
            ki = header.index(key) if key else None

            def test(row):
                on_day = row[ti] >= day
                if on_day and ki is not None:
                    keys.add(row[ki])
                return on_day
            return test
        route(entity, pick)
    for entity, parent, key in CHILDREN:
        keys = day_keys[parent]

        def pick(header, key=key, keys=keys):
            ki = header.index(key)
            return lambda row: row[ki] in keys
        route(entity, pick)
    # An entity with no rows on the day is left out of the day's export.
    for p in dayd.glob("*.csv"):
        with open(p, encoding="utf-8") as f:
            if sum(1 for _ in f) <= 1:
                p.unlink()
    return counts


def run(cmd):
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stderr}")
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return p.stdout, wall, cpu, ru1.ru_maxrss / 1024


def du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,300000,1000000",
                    help="comma-separated warehouse sizes in customers")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--day", default="2025-12-31", help="first timestamp of the day's export")
    ap.add_argument("--workdir", default="/tmp/crmcube-incremental-bench")
    ap.add_argument("--binary", default=os.environ.get(
        "CRMCUBE_BIN", str(Path.home() / ".cache/crmcube-target/release/crmcube")))
    ap.add_argument("--json", help="also write the measurements as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    args = ap.parse_args()

    work = Path(args.workdir)
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        base = work / f"n{n}"
        shutil.rmtree(base, ignore_errors=True)
        export, wh = base / "export", base / "warehouse"
        run([args.binary, "--quiet", "sample", "generate", "--customers", str(n),
             "--seed", str(args.seed), "--out", str(export)])
        t0 = time.perf_counter()
        counts = split(export, base / "split", args.day)
        t_split = time.perf_counter() - t0
        shutil.rmtree(export)
        out, t_hist, _, _ = run([args.binary, "--quiet", "ingest", "--source",
                                 str(base / "split/history"), "--warehouse", str(wh),
                                 "--format", "json"])
        hist = json.loads(out)
        wh_mb = du(wh)
        load_before = os.getloadavg()
        out, t_day, cpu_day, _ = run([args.binary, "--quiet", "ingest", "--source",
                                      str(base / "split/day"), "--warehouse", str(wh),
                                      "--format", "json"])
        day = json.loads(out)
        out, t_again, _, _ = run([args.binary, "--quiet", "ingest", "--source",
                                  str(base / "split/day"), "--warehouse", str(wh),
                                  "--format", "json"])
        again = json.loads(out)
        tables = {t["table"]: t for t in day.get("tables", []) if isinstance(t, dict)}
        r = {
            "customers": n,
            "history_rows": counts["history"],
            "day_rows": counts["day"],
            "split_seconds": t_split,
            "history_load_seconds": t_hist,
            "warehouse_mb_before_day": wh_mb,
            "day_load_seconds": t_day,
            "day_load_cpu_seconds": cpu_day,
            "day_conform_seconds": day.get("conform_seconds"),
            "day_write_seconds": day.get("write_seconds"),
            "day_version": day.get("version"),
            "day_quarantined": day.get("quarantined"),
            "day_tables": tables,
            "reload_seconds": t_again,
            "reload_skipped_files": len(again.get("skipped_files", [])),
            "reload_version": again.get("version"),
            "loadavg_before_day": load_before,
            "history_entities": {e["entity"]: e["loaded"] for e in hist["entities"]},
        }
        results.append(r)
        print(f"{n:>9,} customers: history {counts['history']:,} rows loaded in "
              f"{t_hist:.1f} s ({wh_mb:,.0f} MB); day {counts['day']:,} rows loaded in "
              f"{t_day:.2f} s (conform {r['day_conform_seconds']:.2f}, write "
              f"{r['day_write_seconds']:.2f}, CPU {cpu_day:.2f}); reload {t_again:.2f} s, "
              f"{r['reload_skipped_files']} files skipped; load avg {load_before[0]:.2f}",
              flush=True)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    print()
    print(f"{'customers':>10} {'day rows':>9} {'day load s':>11} {'conform s':>10} "
          f"{'write s':>8} {'warehouse MB':>13} {'s per 1k day rows':>18}")
    for r in results:
        print(f"{r['customers']:>10,} {r['day_rows']:>9,} {r['day_load_seconds']:>11.2f} "
              f"{r['day_conform_seconds']:>10.2f} {r['day_write_seconds']:>8.2f} "
              f"{r['warehouse_mb_before_day']:>13,.0f} "
              f"{1000 * r['day_load_seconds'] / max(1, r['day_rows']):>18.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"binary": args.binary, "results": results},
                                              indent=2, default=str))


if __name__ == "__main__":
    main()
