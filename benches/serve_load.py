#!/usr/bin/env python3
"""Load test of `crmcube serve` on loopback: queries per second and latency percentiles for
small cube queries with 1, 8 and 32 concurrent clients, over Arrow Flight SQL (ADBC) and
the PostgreSQL wire protocol (psycopg).

Each client is its own process with its own connection; all start together and run the
query mix round-robin until the time window (--seconds) or the per-client query cap
(--max-queries) ends. Bounded in time and count, so it always finishes. The server and the
clients share the machine (2 cores here), so the numbers are what one box can do with the
clients' own CPU use included.

    pip install -r examples/requirements.txt
    python3 benches/serve_load.py [--binary target/release/crmcube] [--warehouse WH]
        [--clients 1,8,32] [--seconds 10] [--json out.json]

Without --warehouse it loads sample_data/ into a temporary warehouse first.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = os.environ.get(
    "CRMCUBE_BIN", str(Path.home() / ".cache/crmcube-target/release/crmcube"))
PASSWORD = "load-test-password"

# Small cube questions, as a dashboard sends them (through the wide view cube_sales).
QUERIES = [
    "SELECT geography_region, SUM(revenue) AS revenue FROM cube_sales GROUP BY 1 ORDER BY 1",
    "SELECT time_year, channel_channel_group, SUM(revenue) AS revenue, SUM(quantity) AS qty "
    "FROM cube_sales GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT product_category, SUM(gross_profit) AS gp FROM cube_sales "
    "WHERE time_year = '2025' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    "SELECT time_month, COUNT(DISTINCT order_id) AS orders FROM cube_sales "
    "WHERE time_year = '2025' GROUP BY 1 ORDER BY 1",
]


def client(protocol: str, address: str, seconds: float, max_queries: int, barrier, out):
    try:
        if protocol == "flight":
            import warnings

            import adbc_driver_flightsql.dbapi as flight_sql
            # The driver warns that Flight SQL has no transactions (autocommit only).
            warnings.filterwarnings("ignore", message="Cannot disable autocommit")
            conn = flight_sql.connect(
                address, db_kwargs={"username": "load", "password": PASSWORD})

            def run(sql):
                cur = conn.cursor()
                cur.execute(sql)
                cur.fetch_arrow_table()
                cur.close()
        else:
            import psycopg
            host, port = address.rsplit(":", 1)
            conn = psycopg.connect(host=host, port=int(port), user="load", dbname="crmcube",
                                   password=PASSWORD, autocommit=True)

            def run(sql):
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetchall()
        run(QUERIES[0])  # warm the connection
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        barrier.wait()
        out.put({"latencies": [], "errors": [f"connect: {e}"]})
        return
    barrier.wait()
    lat, errors = [], []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end and i < max_queries:
        sql = QUERIES[i % len(QUERIES)]
        t0 = time.perf_counter()
        try:
            run(sql)
            lat.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001
            errors.append(str(e)[:200])
        i += 1
    conn.close()
    out.put({"latencies": lat, "errors": errors})


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def level(protocol, address, n, seconds, max_queries):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=client, args=(protocol, address, seconds, max_queries, barrier, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    lat = [x for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    return {
        "clients": n, "queries": len(lat), "errors": len(errors), "error_samples": errors[:3],
        "seconds": wall, "qps": len(lat) / wall if wall else 0.0,
        "p50_ms": pct(lat, 50) * 1000, "p95_ms": pct(lat, 95) * 1000,
        "p99_ms": pct(lat, 99) * 1000, "max_ms": (max(lat) * 1000) if lat else float("nan"),
        "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=DEFAULT_BIN)
    ap.add_argument("--warehouse")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-queries", type=int, default=100_000)
    ap.add_argument("--max-concurrent-queries", type=int, default=8)
    ap.add_argument("--protocols", default="flight,pg")
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="crmcube-load-")
    try:
        wh = a.warehouse
        if not wh:
            wh = os.path.join(tmp, "wh")
            subprocess.run([a.binary, "--quiet", "ingest", "--source", str(ROOT / "sample_data"),
                            "--warehouse", wh], check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, CRMCUBE_SERVE_USER="load", CRMCUBE_SERVE_PASSWORD=PASSWORD)
        server = subprocess.Popen(
            [a.binary, "serve", "--warehouse", wh, "--port", "0", "--pg-port", "0",
             "--max-concurrent-queries", str(a.max_concurrent_queries), "--max-connections", "64"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        flight = pg = None
        while flight is None or pg is None:
            line = server.stderr.readline()
            if not line:
                raise SystemExit("crmcube serve ended before listening")
            if m := re.search(r"Flight SQL on (\S+)", line):
                flight = m.group(1)
            if m := re.search(r"PostgreSQL on (\S+)", line):
                pg = m.group(1)
        results = {"machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
                   "params": vars(a), "levels": []}
        print(f"{'protocol':8} {'clients':>7} {'queries':>8} {'errors':>6} {'q/s':>8} "
              f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for proto in a.protocols.split(","):
            address = flight if proto == "flight" else pg
            for n in [int(x) for x in a.clients.split(",")]:
                r = level(proto, address, n, a.seconds, a.max_queries)
                r["protocol"] = proto
                results["levels"].append(r)
                print(f"{proto:8} {n:>7} {r['queries']:>8} {r['errors']:>6} {r['qps']:>8.1f} "
                      f"{r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                      f"{r['max_ms']:>8.1f}", flush=True)
                for e in r["error_samples"]:
                    print(f"  error: {e}", flush=True)
        server.terminate()
        server.wait(timeout=10)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
