#!/usr/bin/env python3
"""Whole-command benchmark: crmcube CSV -> warehouse ingest vs DuckDB and Polars CSV -> Parquet.

One run generates a sample export once, then, per repetition, times in turn:

  crmcube   `crmcube ingest --source EXPORT --warehouse FRESH_DIR --format json`, the wall
            time of the whole process (start, schema load, read + validate, conform,
            sort + partition + write zstd Parquet, publish, exit).
  duckdb    one connection with default threads; for each of the 11 entity CSVs
            COPY (SELECT * FROM read_csv_auto(file)) TO out/entity.parquet
            (FORMAT parquet, COMPRESSION zstd); the wall time of all 11 statements.
  polars    pl.scan_csv(file).sink_parquet(out, compression='zstd') per file; the wall
            time of all 11.

Each peer runs in its own Python worker process (so its peak memory can be measured and
it cannot share caches with the others); its timing is taken inside the worker around the
11 conversions, so the peers' time excludes interpreter start and `import`, which
crmcube's whole-process time cannot exclude. The ratio reported is
peer_seconds / crmcube_seconds: above 1 means crmcube was faster.

Before every timed run all CSV files are read once (to /dev/null) so every tool reads
from the page cache, and `sync` is run (not timed) after every run so that one tool's
dirty pages are not written back during the next tool's run.

Run:  pip install -r benches/requirements.txt && python3 benches/ingest_vs_duckdb.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENTITIES = [
    "regions", "customers", "products", "campaigns", "orders", "order_lines",
    "campaign_contacts", "web_sessions", "cart_events", "email_events", "tickets",
]
DEFAULT_BIN = os.environ.get(
    "CRMCUBE_BIN", str(Path.home() / ".cache/crmcube-target/release/crmcube")
)
TOOLS = ["crmcube", "duckdb", "polars"]


# --------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _oom_first() -> None:
    """In the child: if memory runs out, the kernel kills the benchmarked process first,
    not whatever else runs on the machine."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def run_timed(cmd: list[str], stdout_path: Path, stderr_path: Path, env=None) -> dict:
    """Runs cmd as a child process; returns wall seconds, exit code and peak RSS (MB).
    A child killed by a signal has a negative exit code (-9: killed, e.g. out of memory)."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                             preexec_fn=_oom_first)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_seconds": wall,
        "exit_code": p.returncode,
        "max_rss_mb": ru.ru_maxrss / 1024.0,  # Linux: KiB
        "user_seconds": ru.ru_utime,
        "sys_seconds": ru.ru_stime,
    }


def warm_cache(files: list[Path]) -> float:
    """Reads every file once so the timed runs read from the page cache."""
    t0 = time.perf_counter()
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(view):
                pass
    return time.perf_counter() - t0


def sync_disk() -> float:
    t0 = time.perf_counter()
    os.sync()
    return time.perf_counter() - t0


def dir_bytes(d: Path) -> int:
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def rmtree(d: Path) -> None:
    if d.exists():
        shutil.rmtree(d)


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "mem_total_gib": round(mem_gb, 1) if mem_gb else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().strip()
    except OSError:
        return "?"


def busy_processes(limit: int = 5) -> list[str]:
    """The processes using the most CPU right now (to note competing load)."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True, text=True, timeout=10,
        ).stdout
        return [l.strip() for l in out.splitlines()[:limit]]
    except Exception:
        return []


# --------------------------------------------------------------------------- workers
# A worker converts the 11 CSVs with one peer and prints one JSON line.

def worker_duckdb(files: list[Path], out: Path) -> dict:
    import duckdb

    con = duckdb.connect()  # in-memory, default threads
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    per_file, rows = {}, {}
    t_all = time.perf_counter()
    for f in files:
        ent = f.stem
        target = out / f"{ent}.parquet"
        t0 = time.perf_counter()
        n = con.execute(
            f"COPY (SELECT * FROM read_csv_auto('{f}')) TO '{target}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()[0]
        per_file[ent] = time.perf_counter() - t0
        rows[ent] = int(n)
    seconds = time.perf_counter() - t_all
    con.close()
    return {"seconds": seconds, "per_file_seconds": per_file, "rows": rows,
            "threads": threads, "version": duckdb.__version__}


def worker_polars(files: list[Path], out: Path) -> dict:
    import polars as pl

    per_file = {}
    t_all = time.perf_counter()
    for f in files:
        ent = f.stem
        t0 = time.perf_counter()
        pl.scan_csv(f).sink_parquet(out / f"{ent}.parquet", compression="zstd")
        per_file[ent] = time.perf_counter() - t0
    seconds = time.perf_counter() - t_all
    # Row counts from the written files (not timed).
    rows = {
        f.stem: int(pl.scan_parquet(out / f"{f.stem}.parquet").select(pl.len()).collect().item())
        for f in files
    }
    return {"seconds": seconds, "per_file_seconds": per_file, "rows": rows,
            "threads": pl.thread_pool_size(), "version": pl.__version__}


def worker_main(tool: str, files: list[str], out: str) -> int:
    paths = [Path(f) for f in files]
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    fn = {"duckdb": worker_duckdb, "polars": worker_polars}[tool]
    res = fn(paths, o)
    print(json.dumps(res))
    return 0


# --------------------------------------------------------------------------- steps

def generate(binary: str, customers: int, seed: int, export: Path, logs: Path) -> dict:
    rmtree(export)
    cmd = [binary, "sample", "generate", "--customers", str(customers), "--seed", str(seed),
           "--out", str(export), "--format", "csv"]
    log(f"$ {' '.join(cmd)}")
    r = run_timed(cmd, logs / "generate.stdout", logs / "generate.stderr")
    stderr = (logs / "generate.stderr").read_text(errors="replace")
    if r["exit_code"] != 0:
        raise SystemExit(f"generation failed (exit {r['exit_code']}): {stderr}")
    m = re.search(r"in ([0-9.]+)s", stderr)
    r["reported_seconds"] = float(m.group(1)) if m else None
    rows = {}
    for line in (logs / "generate.stdout").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[2] == "rows":
            rows[parts[0]] = int(parts[1])
    r["rows"] = rows
    r["command"] = " ".join(cmd)
    return r


def export_files(export: Path) -> list[Path]:
    files = []
    for e in ENTITIES:
        f = export / f"{e}.csv"
        if not f.is_file():
            raise SystemExit(f"missing export file {f}")
        files.append(f)
    return files


def run_crmcube(binary: str, export: Path, wh: Path, logs: Path, tag: str) -> dict:
    rmtree(wh)
    cmd = [binary, "--quiet", "ingest", "--source", str(export), "--warehouse", str(wh),
           "--format", "json"]
    r = run_timed(cmd, logs / f"crmcube-{tag}.json", logs / f"crmcube-{tag}.stderr")
    r["command"] = " ".join(cmd)
    if r["exit_code"] != 0:
        r["error"] = (logs / f"crmcube-{tag}.stderr").read_text(errors="replace")[-4000:]
        return r
    rep = json.loads((logs / f"crmcube-{tag}.json").read_text())
    r["seconds"] = r["wall_seconds"]
    r["report"] = {
        "seconds": rep["seconds"],
        "conform_seconds": rep["conform_seconds"],
        "write_seconds": rep["write_seconds"],
        "quarantined": rep["quarantined"],
        "entities": {
            e["entity"]: {k: e[k] for k in ("read", "loaded", "quarantined", "orphaned", "seconds")}
            for e in rep["entities"]
        },
        "tables": {t["table"]: {"rows": t["rows"], "files": t["files"], "bytes": t["bytes"]}
                   for t in rep["tables"]},
        "missing_entities": rep.get("missing_entities", []),
        "unmatched_files": rep.get("unmatched_files", []),
    }
    r["rows"] = {e: v["read"] for e, v in r["report"]["entities"].items()}
    r["output_bytes"] = sum(t["bytes"] for t in rep["tables"])
    return r


def run_peer(tool: str, files: list[Path], out: Path, logs: Path, tag: str) -> dict:
    rmtree(out)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, "--worker-out", str(out),
           "--"] + [str(f) for f in files]
    r = run_timed(cmd, logs / f"{tool}-{tag}.json", logs / f"{tool}-{tag}.stderr")
    if r["exit_code"] != 0:
        r["error"] = (logs / f"{tool}-{tag}.stderr").read_text(errors="replace")[-4000:]
        return r
    res = json.loads((logs / f"{tool}-{tag}.json").read_text().strip().splitlines()[-1])
    r.update(res)
    r["output_bytes"] = dir_bytes(out)
    return r


def sql_check(binary: str, wh: Path, tables: dict) -> dict:
    """Counts every written table with `crmcube sql` and compares with the report."""
    names = sorted(tables)
    sel = ", ".join(f'(SELECT COUNT(*) FROM "{t}") AS "{t}"' for t in names)
    cmd = [binary, "--quiet", "sql", "--warehouse", str(wh), "--format", "json", f"SELECT {sel}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"ok": False, "command": " ".join(cmd), "exit_code": p.returncode,
                "stderr": p.stderr[-4000:]}
    got = json.loads(p.stdout)[0]
    diffs = {t: {"report": tables[t]["rows"], "sql": got.get(t)}
             for t in names if int(got.get(t, -1)) != tables[t]["rows"]}
    return {"ok": not diffs, "counts": got, "mismatches": diffs}


# --------------------------------------------------------------------------- report

def fmt_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", default="/tmp/crmcube-bench")
    ap.add_argument("--binary", default=DEFAULT_BIN)
    ap.add_argument("--repeat", type=int, default=3, help="repetitions; the median is reported")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma list of crmcube,duckdb,polars")
    ap.add_argument("--reuse-export", action="store_true",
                    help="reuse an existing export of the same size and seed (no generation timing)")
    ap.add_argument("--json", help="write the machine-readable results to this file")
    ap.add_argument("--worker", choices=["duckdb", "polars"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        return worker_main(a.worker, a.files, a.worker_out)

    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"unknown tool {t}")
    if "crmcube" not in tools:
        raise SystemExit("crmcube must be among --tools (ratios are relative to it)")
    binary = a.binary
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"crmcube binary not found or not executable: {binary} (set --binary or CRMCUBE_BIN)")

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    export = work / f"export-c{a.customers}-s{a.seed}"

    versions = {
        "crmcube": subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    h = hashlib.sha256()
    with open(binary, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    versions["crmcube_sha256"] = h.hexdigest()
    versions["crmcube_mtime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(binary)))
    try:
        import duckdb
        versions["duckdb"] = duckdb.__version__
    except ImportError:
        versions["duckdb"] = None
    try:
        import polars
        versions["polars"] = polars.__version__
    except ImportError:
        versions["polars"] = None
    for t in ("duckdb", "polars"):
        if t in tools and versions[t] is None:
            raise SystemExit(f"{t} is not installed: pip install -r benches/requirements.txt")

    result: dict = {
        "machine": machine_info(),
        "versions": versions,
        "params": {"customers": a.customers, "seed": a.seed, "repeat": a.repeat, "tools": tools,
                   "binary": binary, "workdir": str(work)},
        "load_before": {"loadavg": loadavg(), "top": busy_processes()},
        "command": " ".join([os.path.basename(sys.executable), "benches/ingest_vs_duckdb.py"] + sys.argv[1:]),
    }
    log(f"machine: {result['machine']}")
    log(f"versions: {versions}")
    log(f"load: {result['load_before']['loadavg']}")

    # 1. Generate the export once.
    if a.reuse_export and (export / "_settings.json").is_file():
        log(f"reusing export {export}")
        result["generation"] = None
    else:
        gen = generate(binary, a.customers, a.seed, export, logs)
        result["generation"] = gen
        log(f"generated in {gen['wall_seconds']:.2f}s wall (reported {gen['reported_seconds']}s), "
            f"peak RSS {gen['max_rss_mb']:.0f} MB")
    sync_disk()
    files = export_files(export)
    sizes = {f.stem: f.stat().st_size for f in files}
    total_bytes = sum(sizes.values())
    result["data"] = {"files": {f.stem: {"bytes": sizes[f.stem]} for f in files},
                      "total_bytes": total_bytes}
    log(f"export: {len(files)} files, {total_bytes / 1e6:.1f} MB")

    # 2. Timed repetitions, rotating the order of the tools.
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    problems: list[str] = []
    for i in range(a.repeat):
        order = tools[i % len(tools):] + tools[: i % len(tools)]
        for t in order:
            warm = warm_cache(files)
            tag = f"r{i + 1}"
            log(f"[rep {i + 1}/{a.repeat}] {t} (warm-up read {warm:.2f}s, load {loadavg()})")
            if t == "crmcube":
                r = run_crmcube(binary, export, work / "warehouse", logs, tag)
            else:
                r = run_peer(t, files, work / f"{t}_out", logs, tag)
            r["warmup_read_seconds"] = warm
            r["sync_seconds_after"] = sync_disk()
            r["repetition"] = i + 1
            runs[t].append(r)
            if r["exit_code"] != 0:
                msg = f"{t} rep {i + 1}: exit code {r['exit_code']}: {r.get('error', '').strip()}"
                problems.append(msg)
                log("ERROR " + msg)
            else:
                log(f"    {r['seconds']:.2f}s (process {r['wall_seconds']:.2f}s, "
                    f"peak RSS {r['max_rss_mb']:.0f} MB, +sync {r['sync_seconds_after']:.2f}s)")
    result["runs"] = runs

    # 3. Row count agreement.
    gen_rows = (result.get("generation") or {}).get("rows", {})
    counts: dict[str, dict] = {}
    for f in files:
        e = f.stem
        c = {"generator": gen_rows.get(e)}
        for t in tools:
            ok = [r for r in runs[t] if r["exit_code"] == 0]
            vals = {r["rows"].get(e) for r in ok}
            c[t] = vals.pop() if len(vals) == 1 else (sorted(vals, key=str) if vals else None)
        ok = [r for r in runs["crmcube"] if r["exit_code"] == 0]
        if ok:
            ent = ok[-1]["report"]["entities"].get(e, {})
            c["crmcube_loaded"] = ent.get("loaded")
            c["crmcube_quarantined"] = ent.get("quarantined")
            c["crmcube_orphaned"] = ent.get("orphaned")
            if ent and ent["loaded"] + ent["quarantined"] != ent["read"]:
                problems.append(f"{e}: crmcube loaded {ent['loaded']} + quarantined "
                                f"{ent['quarantined']} != read {ent['read']}")
        distinct = {v for k, v in c.items()
                    if k in ("generator", *tools) and v is not None}
        c["agree"] = len(distinct) == 1 and all(isinstance(v, int) for v in distinct)
        if not c["agree"]:
            problems.append(f"{e}: row counts disagree: "
                            + ", ".join(f"{k}={c[k]}" for k in ("generator", *tools)))
        counts[e] = c
    result["row_counts"] = counts
    total_rows = None
    for src in ("duckdb", "crmcube", "generator", "polars"):
        vals = [counts[e].get(src) for e in counts]
        if all(isinstance(v, int) for v in vals):
            total_rows = sum(vals)
            break
    result["data"]["total_rows"] = total_rows
    for e in counts:
        result["data"]["files"][e]["rows"] = next(
            (counts[e][s] for s in ("duckdb", "crmcube", "generator", "polars")
             if isinstance(counts[e].get(s), int)), None)

    # 4. The warehouse answers SQL with the row counts the report gives.
    ok_cc = [r for r in runs["crmcube"] if r["exit_code"] == 0]
    if ok_cc:
        chk = sql_check(binary, work / "warehouse", ok_cc[-1]["report"]["tables"])
        result["sql_check"] = chk
        if not chk["ok"]:
            problems.append(f"sql check failed: {json.dumps(chk)[:2000]}")
        if ok_cc[-1]["report"]["quarantined"]:
            problems.append(f"crmcube quarantined {ok_cc[-1]['report']['quarantined']} rows "
                            "of a clean sample export")

    # 5. Summary.
    summary: dict[str, dict] = {}
    for t in tools:
        ok = [r for r in runs[t] if r["exit_code"] == 0]
        if not ok:
            continue
        secs = [r["seconds"] for r in ok]
        med = statistics.median(secs)
        summary[t] = {
            "median_seconds": med,
            "min_seconds": min(secs),
            "max_seconds": max(secs),
            "all_seconds": secs,
            "median_process_seconds": statistics.median(r["wall_seconds"] for r in ok),
            "median_with_sync_seconds": statistics.median(
                r["seconds"] + r["sync_seconds_after"] for r in ok),
            "median_cpu_seconds": statistics.median(r["user_seconds"] + r["sys_seconds"] for r in ok),
            "max_rss_mb": max(r["max_rss_mb"] for r in ok),
            "rows_per_second": total_rows / med if total_rows else None,
            "mb_per_second": total_bytes / 1e6 / med,
            "output_bytes": ok[-1]["output_bytes"],
            "runs_ok": len(ok),
        }
    cc = summary.get("crmcube")
    for t, s in summary.items():
        s["ratio"] = s["median_seconds"] / cc["median_seconds"] if cc else None
        s["ratio_with_sync"] = s["median_with_sync_seconds"] / cc["median_with_sync_seconds"] if cc else None
    result["summary"] = summary

    if ok_cc:
        reps = [r["report"] for r in ok_cc]
        med_rep = sorted(reps, key=lambda r: r["seconds"])[len(reps) // 2]
        read_s = sum(v["seconds"] for v in med_rep["entities"].values())
        result["crmcube_breakdown"] = {
            "repetition_report_seconds": med_rep["seconds"],
            "per_entity_seconds": {e: v["seconds"] for e, v in med_rep["entities"].items()},
            "read_validate_seconds": read_s,
            "conform_seconds": med_rep["conform_seconds"],
            "write_seconds": med_rep["write_seconds"],
            "other_seconds": med_rep["seconds"] - read_s - med_rep["conform_seconds"] - med_rep["write_seconds"],
            "tables": med_rep["tables"],
        }
        # Per entity: crmcube read+validate vs the peers' per-file conversion (medians).
        per_e = {}
        for e in ENTITIES:
            row = {"crmcube_read_validate": statistics.median(
                r["report"]["entities"][e]["seconds"] for r in ok_cc)}
            for t in ("duckdb", "polars"):
                ok = [r for r in runs.get(t, []) if r["exit_code"] == 0]
                if ok:
                    row[t] = statistics.median(r["per_file_seconds"][e] for r in ok)
            per_e[e] = row
        result["per_entity_median_seconds"] = per_e
    result["load_after"] = {"loadavg": loadavg(), "top": busy_processes()}
    result["problems"] = problems

    # 6. Print.
    p = print
    m = result["machine"]
    p(f"\nmachine: {m['nproc']} cores, {m['cpu_model']}, {m['mem_total_gib']} GiB; "
      f"crmcube {versions['crmcube']}, duckdb {versions['duckdb']}, polars {versions['polars']}")
    g = result.get("generation")
    if g:
        p(f"generation of {a.customers:,} customers (seed {a.seed}): {g['wall_seconds']:.2f}s wall "
          f"(generator's own count {g['reported_seconds']}s), peak RSS {g['max_rss_mb']:.0f} MB")
    p(f"export: {total_rows:,} data rows in {len(files)} CSV files, {total_bytes / 1e6:,.1f} MB"
      if total_rows else f"export: {total_bytes / 1e6:,.1f} MB")
    p("\nrow counts per file:")
    hdr = ["file", "MB", "generator", *tools, "crmcube quarantined", "agree"]
    rows = [[e, f"{sizes[e] / 1e6:,.1f}", str(c.get("generator")), *(str(c.get(t)) for t in tools),
             str(c.get("crmcube_quarantined")), "yes" if c["agree"] else "NO"]
            for e, c in counts.items()]
    p(fmt_table(hdr, rows))
    p(f"\nresults (median of {a.repeat}; ratio = peer seconds / crmcube seconds, >1 = crmcube faster):")
    hdr = ["tool", "median s", "min s", "max s", "rows/s", "MB/s", "ratio",
           "process s", "+sync s", "ratio+sync", "CPU s", "peak RSS MB", "output MB"]
    rows = []
    for t, s in summary.items():
        rows.append([t, f"{s['median_seconds']:.2f}", f"{s['min_seconds']:.2f}", f"{s['max_seconds']:.2f}",
                     f"{s['rows_per_second']:,.0f}" if s["rows_per_second"] else "?",
                     f"{s['mb_per_second']:.1f}", f"{s['ratio']:.2f}",
                     f"{s['median_process_seconds']:.2f}", f"{s['median_with_sync_seconds']:.2f}",
                     f"{s['ratio_with_sync']:.2f}", f"{s['median_cpu_seconds']:.1f}",
                     f"{s['max_rss_mb']:,.0f}", f"{s['output_bytes'] / 1e6:,.1f}"])
    p(fmt_table(hdr, rows))
    bd = result.get("crmcube_breakdown")
    if bd:
        p(f"\ncrmcube breakdown (its JSON report, median repetition: {bd['repetition_report_seconds']:.2f}s "
          f"inside the process):")
        tot = bd["repetition_report_seconds"]
        rows = [[f"read+validate {e}", f"{s:.2f}", f"{100 * s / tot:.1f}%"]
                for e, s in bd["per_entity_seconds"].items()]
        rows += [["read+validate (all)", f"{bd['read_validate_seconds']:.2f}",
                  f"{100 * bd['read_validate_seconds'] / tot:.1f}%"],
                 ["conform", f"{bd['conform_seconds']:.2f}", f"{100 * bd['conform_seconds'] / tot:.1f}%"],
                 ["write", f"{bd['write_seconds']:.2f}", f"{100 * bd['write_seconds'] / tot:.1f}%"],
                 ["other (quarantine, publish)", f"{bd['other_seconds']:.2f}",
                  f"{100 * bd['other_seconds'] / tot:.1f}%"]]
        p(fmt_table(["stage", "seconds", "share"], rows))
        pe = result["per_entity_median_seconds"]
        cols = [c for c in ("crmcube_read_validate", "duckdb", "polars") if any(c in v for v in pe.values())]
        p("\nper file, median seconds (crmcube: read+validate only; peers: whole CSV->Parquet):")
        p(fmt_table(["entity", *cols], [[e, *(f"{v[c]:.2f}" if c in v else "-" for c in cols)]
                                          for e, v in pe.items()]))
    if "sql_check" in result:
        p(f"\nsql check of the warehouse: {'ok' if result['sql_check']['ok'] else 'FAILED'}")
    p(f"load before: {result['load_before']['loadavg']}; after: {result['load_after']['loadavg']}")
    if problems:
        p("\nPROBLEMS:")
        for x in problems:
            p(f"  - {x}")
    else:
        p("\nno problems: every tool exited 0 and all row counts agree")

    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2, default=str))
        log(f"wrote {a.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
