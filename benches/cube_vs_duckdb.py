#!/usr/bin/env python3
"""Cube query benchmark: `crmcube cube query` vs DuckDB on the same Parquet files.

One run builds (or reuses) a warehouse with only the sales star (fact_sales and the
dimensions it references) from a generated export, then, for each of 14 cube questions:

  1. runs `crmcube cube query ... --format csv --timing` once and the equivalent DuckDB SQL
     once (both "cold": the first execution of that question), and checks that the two
     answers are equal: the same rows, every value equal within crmcube's display rounding
     (values are printed with 2 decimals, so |crmcube - duckdb| <= 0.005 + 1e-6 |duckdb|),
     counts exactly equal. A question whose answers differ is reported and not timed;
  2. times both again `--repeat` times, alternating the two tools.

crmcube is timed as a whole process (start, model, warehouse open, query, CSV output,
exit); its `--timing` line gives the in-process part. DuckDB runs in this Python process:
one in-memory connection (default threads), one view per table over `read_parquet` of
exactly the files the tables' newest Delta versions list, created once; each query is
timed around `execute(...).fetchall()`.

With `--preagg auto` (the default) the run then checks whether the binary has
`crmcube cube materialize`; if so it materializes the pre-aggregations of the warehouse
(timed), checks the answers again and times crmcube once more: the "with
pre-aggregations" column. Raw runs pass `--no-preagg` when the binary knows that flag.

Ratios are duckdb seconds / crmcube seconds: above 1 means crmcube was faster.

Run:  pip install -r benches/requirements.txt && python3 benches/cube_vs_duckdb.py
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_BIN = os.environ.get(
    "CRMCUBE_BIN", str(Path.home() / ".cache/crmcube-target/release/crmcube")
)
# The export entities the sales star is built from; the other files are not loaded.
SALES_ENTITIES = ["regions", "customers", "products", "campaigns", "orders", "order_lines"]
TABLES = ["fact_sales", "dim_date", "dim_region", "dim_product", "dim_customer",
          "dim_channel", "dim_campaign"]


# --------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _oom_first() -> None:
    """In the child: if memory runs out, the kernel kills the benchmarked process first."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().strip()
    except OSError:
        return "?"


def load1() -> float | None:
    try:
        return float(loadavg().split()[0])
    except (ValueError, IndexError):
        return None


def busy_processes(limit: int = 5) -> list[str]:
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
                             capture_output=True, text=True, timeout=10).stdout
        return [l.strip() for l in out.splitlines()[:limit]]
    except Exception:
        return []


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
    return {"nproc": os.cpu_count(), "cpu_model": cpu,
            "mem_total_gib": round(mem_gb, 1) if mem_gb else None,
            "kernel": platform.release(), "python": platform.python_version()}


def run_timed(cmd: list[str]) -> dict:
    """Runs cmd; wall seconds, exit code, stdout, stderr, CPU seconds and peak RSS."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, preexec_fn=_oom_first)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    # communicate() reaped the child; its resource use is in RUSAGE_CHILDREN deltas,
    # which are not per child, so peak RSS is not reported per query.
    return {"wall_seconds": wall, "exit_code": p.returncode,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


def rmtree(d: Path) -> None:
    if d.exists():
        shutil.rmtree(d)


def dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def fmt_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --------------------------------------------------------------------------- warehouse

def delta_files(table_dir: Path) -> list[Path]:
    """The data files of a Delta table's newest version (JSON commits replayed in order)."""
    log_dir = table_dir / "_delta_log"
    if (log_dir / "_last_checkpoint").exists():
        raise SystemExit(f"{table_dir}: Delta checkpoints are not read by this script; "
                         "use a freshly ingested warehouse")
    live: dict[str, bool] = {}
    for commit in sorted(log_dir.glob("*.json")):
        for line in commit.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = True
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return [table_dir / p for p in sorted(live)]


def build_warehouse(binary: str, a, work: Path) -> dict:
    """Generates the export (unless present) and ingests the sales entities only."""
    export = work / f"export-c{a.customers}-s{a.seed}"
    info: dict = {"export": str(export)}
    if not (export / "_settings.json").is_file():
        rmtree(export)
        cmd = [binary, "sample", "generate", "--customers", str(a.customers), "--seed",
               str(a.seed), "--out", str(export), "--format", "csv"]
        log(f"$ {' '.join(cmd)}")
        r = run_timed(cmd)
        if r["exit_code"] != 0:
            raise SystemExit(f"generation failed: {r['stderr'][-2000:]}")
        info["generate_seconds"] = r["wall_seconds"]
    src = work / "source-sales"
    rmtree(src)
    src.mkdir(parents=True)
    for e in SALES_ENTITIES:
        (src / f"{e}.csv").symlink_to((export / f"{e}.csv").resolve())
    wh = work / "warehouse"
    rmtree(wh)
    cmd = [binary, "--quiet", "ingest", "--source", str(src), "--warehouse", str(wh),
           "--format", "json"]
    log(f"$ {' '.join(cmd)}")
    r = run_timed(cmd)
    if r["exit_code"] != 0:
        raise SystemExit(f"ingest failed (exit {r['exit_code']}): {r['stderr'][-2000:]}")
    rep = json.loads(r["stdout"])
    info["ingest_seconds"] = r["wall_seconds"]
    info["ingest_load"] = loadavg()
    info["tables"] = {t["table"]: {"rows": t["rows"], "files": t["files"], "bytes": t["bytes"]}
                      for t in rep["tables"]}
    return info


# --------------------------------------------------------------------------- the questions
# DuckDB SQL is written the way the star schema is queried by hand: the fact joined to the
# dimensions it needs (LEFT JOIN, as the cube does, so no fact row is lost), labels as
# text with 'Unknown' for a missing member and 'All' for a subtotal, filters on the
# dimension columns.

DIMS = {
    "time": ("dim_date", "date_key"),
    "geography": ("dim_region", "region_key"),
    "product": ("dim_product", "product_key"),
    "customer": ("dim_customer", "customer_key"),
    "channel": ("dim_channel", "channel_key"),
}
LEVELS = {
    "time.year": ("time", "year"), "time.quarter": ("time", "year_quarter"),
    "time.month": ("time", "year_month"),
    "geography.region": ("geography", "region"), "geography.country": ("geography", "country"),
    "product.category": ("product", "category"), "product.subcategory": ("product", "subcategory"),
    "product.product": ("product", "product_name"), "product.brand": ("product", "brand"),
    "customer.segment": ("customer", "segment"), "customer.customer": ("customer", "customer_id"),
    "channel.channel_group": ("channel", "channel_group"), "channel.channel": ("channel", "channel_name"),
}


def col(level: str) -> str:
    d, c = LEVELS[level]
    return f'd_{d}."{c}"'


def lab(level: str) -> str:
    return f"COALESCE(CAST({col(level)} AS VARCHAR), 'Unknown')"


def star(*dims: str) -> str:
    s = "fact_sales AS f"
    for d in dims:
        t, k = DIMS[d]
        s += f"\n  LEFT JOIN {t} AS d_{d} ON d_{d}.{k} = f.{k}"
    return s


def q(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def labels_out(levels: list[str]) -> str:
    return ", ".join(f"COALESCE(l{i}, 'All') AS {q(l)}" for i, l in enumerate(levels))


def labels_in(levels: list[str]) -> str:
    return ", ".join(f"{lab(l)} AS l{i}" for i, l in enumerate(levels))


def margin(gp: str = "gp", rev: str = "rev") -> str:
    return f"CAST({gp} AS DOUBLE) / NULLIF(CAST({rev} AS DOUBLE), 0) * 100"


def yoy_cols(cur: str, prev: str, m: str) -> str:
    return (f"{cur}.{m} AS {q(m)}, {prev}.{m} AS {q(m + ' last year')}, "
            f"{cur}.{m} - {prev}.{m} AS {q(m + ' change')}, "
            f"CASE WHEN {prev}.{m} <> 0 THEN CAST({cur}.{m} - {prev}.{m} AS DOUBLE) "
            f"/ abs(CAST({prev}.{m} AS DOUBLE)) * 100 END AS {q(m + ' change %')}")


def prev_year(label: str) -> str:
    """'2025-03' -> '2024-03' (also for '2025-Q1' and '2025')."""
    return f"CAST(CAST(substr({label}, 1, 4) AS INTEGER) - 1 AS VARCHAR) || substr({label}, 5)"


def questions() -> list[dict]:
    Q: list[dict] = []

    def add(name, what, args, sql, labels, **kw):
        Q.append({"name": name, "what": what, "args": args, "sql": sql.strip(),
                  "labels": labels, **kw})

    lv = ["geography.region", "product.category", "time.year"]
    add("rollup_3_hierarchies",
        "roll-up over geography, product and time (ROLLUP: 3 levels of subtotals)",
        ["--measures", "revenue,quantity,order_lines,margin_pct", "--rows", ",".join(lv), "--totals"],
        f"""
SELECT {labels_out(lv)}, SUM(revenue) AS revenue, SUM(quantity) AS quantity,
       COUNT(*) AS order_lines, {margin('SUM(gross_profit)', 'SUM(revenue)')} AS margin_pct
FROM (SELECT {labels_in(lv)}, f.revenue, f.quantity, f.gross_profit
      FROM {star('geography', 'product', 'time')}) AS base
GROUP BY ROLLUP (l0, l1, l2)""", 3)

    lv = ["geography.country", "time.quarter"]
    add("rollup_country_quarter",
        "roll-up country x quarter with distinct orders",
        ["--measures", "revenue,orders", "--rows", ",".join(lv), "--totals"],
        f"""
SELECT {labels_out(lv)}, SUM(revenue) AS revenue, COUNT(DISTINCT order_id) AS orders
FROM (SELECT {labels_in(lv)}, f.revenue, f.order_id
      FROM {star('geography', 'time')}) AS base
GROUP BY ROLLUP (l0, l1)""", 2)

    lv = ["channel.channel_group", "customer.segment", "time.year"]
    add("cube_channel_segment_year",
        "CUBE: every subtotal of channel group x customer segment x year",
        ["--measures", "revenue,order_lines", "--rows", ",".join(lv), "--totals", "cube"],
        f"""
SELECT {labels_out(lv)}, SUM(revenue) AS revenue, COUNT(*) AS order_lines
FROM (SELECT {labels_in(lv)}, f.revenue
      FROM {star('channel', 'customer', 'time')}) AS base
GROUP BY CUBE (l0, l1, l2)""", 3)

    lv = ["channel.channel", "product.category", "time.year"]
    add("grouping_sets",
        "GROUPING SETS (channel, year), (category, year), (year)",
        ["--measures", "revenue,quantity", "--rows", ",".join(lv), "--grouping-sets",
         "channel.channel,time.year;product.category,time.year;time.year"],
        f"""
SELECT {labels_out(lv)}, SUM(revenue) AS revenue, SUM(quantity) AS quantity
FROM (SELECT {labels_in(lv)}, f.revenue, f.quantity
      FROM {star('channel', 'product', 'time')}) AS base
GROUP BY GROUPING SETS ((l0, l2), (l1, l2), (l2))""", 3)

    add("slice_year_region",
        "slice: year 2025, region Europe, by subcategory",
        ["--measures", "revenue,order_lines,avg_order_value", "--rows", "product.subcategory",
         "--slice", "time.year=2025", "--slice", "geography.region=Europe"],
        f"""
SELECT {lab('product.subcategory')} AS "product.subcategory", SUM(f.revenue) AS revenue,
       COUNT(*) AS order_lines,
       CAST(SUM(f.revenue) AS DOUBLE) / NULLIF(COUNT(DISTINCT f.order_id), 0) AS avg_order_value
FROM {star('product', 'time', 'geography')}
WHERE d_time.year = 2025 AND d_geography.region = 'Europe'
GROUP BY 1""", 1)

    add("dice_countries_months",
        "dice: 4 countries x first half of 2025 x categories other than Books and Toys",
        ["--measures", "revenue,quantity,margin_pct", "--rows", "geography.country,time.month",
         "--dice", "geography.country in (DE,FR,GB,US)",
         "--dice", "time.month between 2025-01 and 2025-06",
         "--dice", "product.category not in (Books,Toys)"],
        f"""
SELECT {lab('geography.country')} AS "geography.country", {lab('time.month')} AS "time.month",
       SUM(f.revenue) AS revenue, SUM(f.quantity) AS quantity,
       {margin('SUM(f.gross_profit)', 'SUM(f.revenue)')} AS margin_pct
FROM {star('geography', 'time', 'product')}
WHERE d_geography.country_code IN ('DE', 'FR', 'GB', 'US')
  AND d_time.year_month BETWEEN '2025-01' AND '2025-06'
  AND d_product.category NOT IN ('Books', 'Toys')
GROUP BY 1, 2""", 2)

    add("top3_products_per_group",
        "top-N per group: the 3 best-selling products of each subcategory in each region",
        ["--measures", "revenue", "--rows", "geography.region,product.product",
         "--rank-within-parent"],
        f"""
SELECT "geography.region", "product.product", revenue,
       RANK() OVER (PARTITION BY "geography.region", parent ORDER BY revenue DESC) AS "revenue rank"
FROM (SELECT {lab('geography.region')} AS "geography.region",
             {lab('product.product')} AS "product.product",
             {lab('product.subcategory')} AS parent, SUM(f.revenue) AS revenue
      FROM {star('geography', 'product')}
      GROUP BY 1, 2, 3) AS cells
QUALIFY "revenue rank" <= 3""", 2,
        # crmcube ranks every member; the rows ranked 1-3 are kept (not timed).
        keep=lambda row, cols: row[cols.index("revenue rank")] is not None
        and row[cols.index("revenue rank")] <= 3)

    add("distinct_customers_per_month",
        "distinct buying customers and orders per month (36 months)",
        ["--measures", "customers,orders,revenue_per_customer", "--rows", "time.month"],
        f"""
SELECT {lab('time.month')} AS "time.month", COUNT(DISTINCT d_customer.customer_id) AS customers,
       COUNT(DISTINCT f.order_id) AS orders,
       CAST(SUM(f.revenue) AS DOUBLE) / NULLIF(COUNT(DISTINCT d_customer.customer_id), 0)
         AS revenue_per_customer
FROM {star('time', 'customer')}
GROUP BY 1""", 1)

    add("pivot_category_by_quarter",
        "pivot: categories on rows, quarters on columns (revenue and order lines)",
        ["--measures", "revenue,order_lines", "--rows", "product.category",
         "--columns", "time.quarter"],
        f"""
PIVOT (SELECT {lab('product.category')} AS "product.category", {lab('time.quarter')} AS q,
              f.revenue
       FROM {star('product', 'time')})
ON q USING SUM(revenue) AS revenue, COUNT(*) AS order_lines
GROUP BY "product.category"
ORDER BY "product.category" """, 1,
        # DuckDB names pivot columns 2025-Q1_revenue; crmcube 2025-Q1 | revenue.
        rename=lambda c: c.replace("_", " | ", 1) if re.match(r"^\d{4}-Q\d_", c) else c)

    add("yoy_month",
        "YoY: 2025 by month against the same month of 2024 (revenue, distinct orders)",
        ["--measures", "revenue,orders", "--rows", "time.month", "--slice", "time.year=2025",
         "--compare", "yoy"],
        f"""
WITH m AS (
  SELECT {lab('time.month')} AS label, SUM(f.revenue) AS revenue,
         COUNT(DISTINCT f.order_id) AS orders
  FROM {star('time')}
  GROUP BY 1)
SELECT cur.label AS "time.month", {yoy_cols('cur', 'prev', 'revenue')},
       {yoy_cols('cur', 'prev', 'orders')}
FROM m AS cur LEFT JOIN m AS prev ON prev.label = {prev_year('cur.label')}
WHERE cur.label LIKE '2025-%'""", 1)

    add("yoy_region_quarter",
        "YoY: 2025 by region and quarter against 2024 (revenue, gross profit)",
        ["--measures", "revenue,gross_profit", "--rows", "geography.region,time.quarter",
         "--slice", "time.year=2025", "--compare", "yoy"],
        f"""
WITH m AS (
  SELECT {lab('geography.region')} AS region, {lab('time.quarter')} AS label,
         SUM(f.revenue) AS revenue, SUM(f.gross_profit) AS gross_profit
  FROM {star('geography', 'time')}
  GROUP BY 1, 2)
SELECT cur.region AS "geography.region", cur.label AS "time.quarter",
       {yoy_cols('cur', 'prev', 'revenue')}, {yoy_cols('cur', 'prev', 'gross_profit')}
FROM m AS cur LEFT JOIN m AS prev
  ON prev.region = cur.region AND prev.label = {prev_year('cur.label')}
WHERE cur.label LIKE '2025-%'""", 2)

    add("share_of_region",
        "each country's revenue and gross profit in % of its region",
        ["--measures", "revenue,gross_profit", "--rows", "geography.country", "--share-of-parent"],
        f"""
SELECT country AS "geography.country",
       revenue, CAST(revenue AS DOUBLE) / NULLIF(SUM(revenue) OVER (PARTITION BY region), 0) * 100
         AS "revenue % of parent",
       gross_profit, CAST(gross_profit AS DOUBLE)
         / NULLIF(SUM(gross_profit) OVER (PARTITION BY region), 0) * 100
         AS "gross_profit % of parent"
FROM (SELECT {lab('geography.country')} AS country, {lab('geography.region')} AS region,
             SUM(f.revenue) AS revenue, SUM(f.gross_profit) AS gross_profit
      FROM {star('geography')}
      GROUP BY 1, 2) AS cells""", 1)

    add("repeat_purchase_rate",
        "customers with 2+ orders in % of buying customers, by segment and year",
        ["--measures", "repeat_customers,customers,repeat_purchase_rate",
         "--rows", "customer.segment,time.year"],
        f"""
WITH per AS (
  SELECT {lab('customer.segment')} AS l0, {lab('time.year')} AS l1, d_customer.customer_id AS c,
         COUNT(DISTINCT f.order_id) AS n
  FROM {star('customer', 'time')}
  WHERE d_customer.customer_id IS NOT NULL
  GROUP BY 1, 2, 3)
SELECT l0 AS "customer.segment", l1 AS "time.year",
       SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS repeat_customers, COUNT(*) AS customers,
       CAST(SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) * 100
         AS repeat_purchase_rate
FROM per
GROUP BY 1, 2""", 2)

    add("top10_brand_channel",
        "top 10 brand x channel cells by revenue, with margin",
        ["--measures", "revenue,margin_pct", "--rows", "product.brand,channel.channel",
         "--order", "revenue:desc", "--limit", "10"],
        f"""
SELECT {lab('product.brand')} AS "product.brand", {lab('channel.channel')} AS "channel.channel",
       SUM(f.revenue) AS revenue, {margin('SUM(f.gross_profit)', 'SUM(f.revenue)')} AS margin_pct
FROM {star('product', 'channel')}
GROUP BY 1, 2
ORDER BY revenue DESC
LIMIT 10""", 2, ordered=True)
    return Q


# --------------------------------------------------------------------------- answers

def num(v):
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        pass
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def parse_csv(text: str) -> tuple[list[str], list[list]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [], []
    return rows[0], [r for r in rows[1:]]


def crm_answer(spec: dict, stdout: str) -> tuple[list[str], list[list]]:
    cols, rows = parse_csv(stdout)
    n = spec["labels"]
    out = [[*r[:n], *(num(v) for v in r[n:])] for r in rows]
    if "keep" in spec:
        out = [r for r in out if spec["keep"](r, cols)]
    return cols, out


def duck_answer(spec: dict, cur) -> tuple[list[str], list[list]]:
    cols = [d[0] for d in cur.description]
    if "rename" in spec:
        cols = [spec["rename"](c) for c in cols]
    rows = cur.fetchall()
    n = spec["labels"]
    out = []
    for r in rows:
        vals = []
        for v in r[n:]:
            if v is None:
                vals.append(None)
            elif isinstance(v, int):
                vals.append(v)
            else:
                vals.append(float(v))
        out.append([*(str(x) for x in r[:n]), *vals])
    return cols, out


def compare(spec: dict, crm: tuple, duck: tuple) -> list[str]:
    """Differences between the two answers (empty: equal)."""
    (ccols, crows), (dcols, drows) = crm, duck
    problems: list[str] = []
    if ccols != dcols:
        return [f"columns differ: crmcube {ccols} vs duckdb {dcols}"]
    n = spec["labels"]
    if spec.get("ordered"):
        ck = [tuple(r[:n]) for r in crows]
        dk = [tuple(r[:n]) for r in drows]
        if ck != dk:
            return [f"row order differs: crmcube {ck[:5]}... vs duckdb {dk[:5]}..."]
    cmap = {tuple(r[:n]): r[n:] for r in crows}
    dmap = {tuple(r[:n]): r[n:] for r in drows}
    if len(cmap) != len(crows) or len(dmap) != len(drows):
        problems.append(f"duplicate label rows (crmcube {len(crows) - len(cmap)}, "
                        f"duckdb {len(drows) - len(dmap)})")
    only_c = sorted(set(cmap) - set(dmap))
    only_d = sorted(set(dmap) - set(cmap))
    if only_c:
        problems.append(f"{len(only_c)} rows only in crmcube, e.g. {only_c[:3]}")
    if only_d:
        problems.append(f"{len(only_d)} rows only in duckdb, e.g. {only_d[:3]}")
    bad = 0
    for k in sorted(set(cmap) & set(dmap)):
        for c, a, b in zip(ccols[n:], cmap[k], dmap[k]):
            if a is None or b is None:
                ok = a is None and b is None
            elif isinstance(b, int) and isinstance(a, int):
                ok = a == b
            else:
                ok = abs(float(a) - float(b)) <= 0.005 + 1e-6 * abs(float(b))
            if not ok:
                bad += 1
                if bad <= 5:
                    problems.append(f"{k} {c}: crmcube {a!r}, duckdb {b!r}")
    if bad > 5:
        problems.append(f"... {bad} differing values in all")
    return problems


# --------------------------------------------------------------------------- timing

TIMING_RE = re.compile(r"timing: model ([0-9.]+) s, open ([0-9.]+) s, query ([0-9.]+) s, "
                       r"output ([0-9.]+) s, total ([0-9.]+) s")


def run_crm(binary: str, wh: Path, spec: dict, extra: list[str]) -> dict:
    cmd = [binary, "--quiet", "cube", "query", "--warehouse", str(wh), *spec["args"], *extra,
           "--format", "csv", "--timing"]
    la = load1()
    r = run_timed(cmd)
    r["load1"] = la
    r["command"] = " ".join(cmd)
    m = TIMING_RE.search(r["stderr"])
    if m:
        r["timing"] = dict(zip(["model", "open", "query", "output", "total"],
                               map(float, m.groups())))
    return r


def run_duck(con, spec: dict) -> tuple[float, tuple, float | None]:
    la = load1()
    t0 = time.perf_counter()
    cur = con.execute(spec["sql"])
    ans = duck_answer(spec, cur)
    return time.perf_counter() - t0, ans, la


def stats(xs: list[float]) -> dict:
    return {"first": xs[0], "best": min(xs), "median": statistics.median(xs), "all": xs}


def time_queries(binary, wh, con, specs, repeat, extra, with_duck, label) -> dict:
    """Checks then times every question; returns per-question results."""
    out = {}
    for spec in specs:
        name = spec["name"]
        log(f"[{label}] {name} (load {loadavg()})")
        res: dict = {"what": spec["what"], "crmcube_args": " ".join(spec["args"] + extra)}
        crm_runs, crm_inproc, duck_runs = [], [], []
        # First ("cold") runs, checked.
        r = run_crm(binary, wh, spec, extra)
        if r["exit_code"] != 0:
            res["error"] = f"crmcube exit {r['exit_code']}: {r['stderr'][-1500:]}"
            out[name] = res
            log("  ERROR " + res["error"])
            continue
        crm = crm_answer(spec, r["stdout"])
        crm_runs.append((r["wall_seconds"], r["load1"]))
        crm_inproc.append(r.get("timing", {}).get("query"))
        res["rows"] = len(crm[1])
        if with_duck:
            dt, duck, la = run_duck(con, spec)
            duck_runs.append((dt, la))
            diff = compare(spec, crm, duck)
            res["equal"] = not diff
            res["differences"] = diff
            if diff:
                log("  RESULTS DIFFER: " + "; ".join(diff[:4]))
                out[name] = res
                continue
        for i in range(repeat - 1):
            order = ["crm", "duck"] if i % 2 == 0 else ["duck", "crm"]
            for t in order:
                if t == "crm":
                    r = run_crm(binary, wh, spec, extra)
                    if r["exit_code"] != 0:
                        res["error"] = f"crmcube exit {r['exit_code']}: {r['stderr'][-1500:]}"
                        break
                    crm_runs.append((r["wall_seconds"], r["load1"]))
                    crm_inproc.append(r.get("timing", {}).get("query"))
                elif with_duck:
                    dt, _, la = run_duck(con, spec)
                    duck_runs.append((dt, la))
        res["crmcube"] = stats([x[0] for x in crm_runs])
        res["crmcube"]["load1"] = [x[1] for x in crm_runs]
        if all(x is not None for x in crm_inproc):
            res["crmcube_query"] = stats(crm_inproc)
        if with_duck:
            res["duckdb"] = stats([x[0] for x in duck_runs])
            res["duckdb"]["load1"] = [x[1] for x in duck_runs]
        res["timing_last"] = r.get("timing")
        out[name] = res
        msg = f"  crmcube best {res['crmcube']['best']:.3f}s"
        if "crmcube_query" in res:
            msg += f" (query {res['crmcube_query']['best']:.3f}s)"
        if with_duck:
            msg += f", duckdb best {res['duckdb']['best']:.3f}s"
        log(msg)
    return out


def has_subcommand(binary: str, args: list[str], needle: str | None = None) -> bool:
    p = subprocess.run([binary, *args, "--help"], capture_output=True, text=True)
    if p.returncode != 0:
        return False
    return needle is None or needle in p.stdout


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_400_000,
                    help="customers to generate (about 7.4 order lines each)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", default="/tmp/crmcube-cubebench")
    ap.add_argument("--binary", default=DEFAULT_BIN)
    ap.add_argument("--repeat", type=int, default=5,
                    help="runs per question and tool, the first being the checked cold run")
    ap.add_argument("--reuse-warehouse", action="store_true",
                    help="use WORKDIR/warehouse as it is (no generation, no ingest)")
    ap.add_argument("--queries", help="comma list of question names (default: all)")
    ap.add_argument("--preagg", choices=["auto", "skip"], default="auto",
                    help="auto: also time with pre-aggregations if `cube materialize` exists")
    ap.add_argument("--json", help="write the machine-readable results to this file")
    a = ap.parse_args()

    binary = a.binary
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"crmcube binary not found: {binary} (set --binary or CRMCUBE_BIN)")
    try:
        import duckdb
    except ImportError:
        raise SystemExit("duckdb is not installed: pip install -r benches/requirements.txt")

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    specs = questions()
    if a.queries:
        want = [x.strip() for x in a.queries.split(",") if x.strip()]
        unknown = [w for w in want if w not in {s["name"] for s in specs}]
        if unknown:
            raise SystemExit(f"unknown questions {unknown}; questions are "
                             + ", ".join(s["name"] for s in specs))
        specs = [s for s in specs if s["name"] in want]

    h = hashlib.sha256()
    with open(binary, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    versions = {
        "crmcube": subprocess.run([binary, "--version"], capture_output=True,
                                  text=True).stdout.strip(),
        "crmcube_sha256": h.hexdigest(),
        "crmcube_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                       time.gmtime(os.path.getmtime(binary))),
        "duckdb": duckdb.__version__,
    }
    result: dict = {
        "machine": machine_info(), "versions": versions,
        "params": {"customers": a.customers, "seed": a.seed, "repeat": a.repeat,
                   "binary": binary, "workdir": str(work), "queries": [s["name"] for s in specs]},
        "load_before": {"loadavg": loadavg(), "top": busy_processes()},
        "command": " ".join(["python3", "benches/cube_vs_duckdb.py"] + sys.argv[1:]),
    }
    log(f"machine: {result['machine']}\nversions: {versions}\nload: {loadavg()}")

    wh = work / "warehouse"
    if a.reuse_warehouse:
        if not (wh / "fact_sales").is_dir():
            raise SystemExit(f"no warehouse at {wh}")
        result["warehouse"] = {"reused": str(wh)}
    else:
        result["warehouse"] = build_warehouse(binary, a, work)

    # The Parquet files both tools read.
    files = {t: delta_files(wh / t) for t in TABLES}
    rows_sql = {}
    con = duckdb.connect()
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    for t, fs in files.items():
        lst = ", ".join("'" + str(f).replace("'", "''") + "'" for f in fs)
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet([{lst}])")
        rows_sql[t] = con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
    result["data"] = {
        t: {"files": len(fs), "bytes": sum(f.stat().st_size for f in fs), "rows": rows_sql[t]}
        for t, fs in files.items()}
    result["duckdb_threads"] = threads
    fact_rows = rows_sql["fact_sales"]
    log(f"fact_sales: {fact_rows:,} rows in {len(files['fact_sales'])} files; "
        f"duckdb threads {threads}")

    raw_extra = ["--no-preagg"] if has_subcommand(binary, ["cube", "query"], "--no-preagg") else []
    result["raw"] = time_queries(binary, wh, con, specs, a.repeat, raw_extra, True, "raw")

    # With pre-aggregations, when the binary can build them.
    if a.preagg == "auto" and has_subcommand(binary, ["cube", "materialize"]):
        cmd = [binary, "--quiet", "cube", "materialize", "--warehouse", str(wh)]
        log(f"$ {' '.join(cmd)}")
        r = run_timed(cmd)
        result["materialize"] = {"seconds": r["wall_seconds"], "exit_code": r["exit_code"],
                                 "stderr": r["stderr"][-2000:], "load": loadavg()}
        if r["exit_code"] == 0:
            pre = time_queries(binary, wh, con, specs, a.repeat, [], True, "preagg")
            result["preagg"] = pre
    else:
        result["materialize"] = None

    result["load_after"] = {"loadavg": loadavg(), "top": busy_processes()}

    # Summary.
    problems = []
    for phase in ("raw", "preagg"):
        for name, r in (result.get(phase) or {}).items():
            if "error" in r:
                problems.append(f"{phase} {name}: {r['error'][:500]}")
            elif not r.get("equal", True):
                problems.append(f"{phase} {name}: answers differ: {'; '.join(r['differences'][:3])}")
    timed = [n for n, r in result["raw"].items() if "crmcube" in r and "duckdb" in r]

    def total(phase, tool, key):
        return sum(result[phase][n][tool][key] for n in timed if tool in result[phase].get(n, {}))

    summary = {"questions_timed": len(timed), "questions": len(specs)}
    if timed:
        for key in ("first", "best", "median"):
            c, d = total("raw", "crmcube", key), total("raw", "duckdb", key)
            summary[f"raw_crmcube_{key}"] = c
            summary[f"duckdb_{key}"] = d
            summary[f"raw_ratio_{key}"] = d / c if c else None
        if all("crmcube_query" in result["raw"][n] for n in timed):
            c = sum(result["raw"][n]["crmcube_query"]["best"] for n in timed)
            summary["raw_crmcube_query_best"] = c
            summary["raw_ratio_query_best"] = summary["duckdb_best"] / c if c else None
        if result.get("preagg") and all("crmcube" in result["preagg"].get(n, {}) for n in timed):
            for key in ("first", "best", "median"):
                c = total("preagg", "crmcube", key)
                summary[f"preagg_crmcube_{key}"] = c
                summary[f"preagg_ratio_{key}"] = summary[f"duckdb_{key}"] / c if c else None
    result["summary"] = summary
    result["problems"] = problems

    # Print.
    p = print
    m = result["machine"]
    p(f"\nmachine: {m['nproc']} cores, {m['cpu_model']}, {m['mem_total_gib']} GiB; "
      f"{versions['crmcube']}, duckdb {versions['duckdb']} (threads {threads})")
    wi = result["warehouse"]
    if "ingest_seconds" in wi:
        p(f"warehouse: {a.customers:,} customers (seed {a.seed}), sales entities ingested in "
          f"{wi['ingest_seconds']:.1f}s")
    p(f"fact_sales: {fact_rows:,} order lines in {len(files['fact_sales'])} Parquet files, "
      f"{result['data']['fact_sales']['bytes'] / 1e6:,.1f} MB")
    p(f"\nper question, seconds (first run / best of {a.repeat}; crmcube = whole process, "
      "query = its in-process query time; ratio = duckdb best / crmcube best):")
    hdr = ["question", "rows", "crm first", "crm best", "crm query", "duck first", "duck best",
           "ratio", "load"]
    has_pre = bool(result.get("preagg"))
    if has_pre:
        hdr[-1:-1] = ["preagg best", "ratio pre"]
    rows = []
    for s in specs:
        r = result["raw"].get(s["name"], {})
        if "crmcube" not in r or "duckdb" not in r:
            rows.append([s["name"], "-", *(["-"] * (len(hdr) - 3)),
                         "ERROR" if "error" in r else "DIFFERS"])
            continue
        row = [s["name"], str(r["rows"]), f"{r['crmcube']['first']:.3f}",
               f"{r['crmcube']['best']:.3f}",
               f"{r['crmcube_query']['best']:.3f}" if "crmcube_query" in r else "-",
               f"{r['duckdb']['first']:.3f}", f"{r['duckdb']['best']:.3f}",
               f"{r['duckdb']['best'] / r['crmcube']['best']:.2f}"]
        if has_pre:
            pr = result["preagg"].get(s["name"], {})
            if "crmcube" in pr:
                row += [f"{pr['crmcube']['best']:.3f}",
                        f"{r['duckdb']['best'] / pr['crmcube']['best']:.2f}"]
            else:
                row += ["-", "-"]
        lds = [x for x in r["crmcube"]["load1"] + r["duckdb"]["load1"] if x is not None]
        row.append(f"{min(lds):.1f}-{max(lds):.1f}" if lds else "?")
        rows.append(row)
    if timed:
        row = ["TOTAL", "", f"{summary['raw_crmcube_first']:.3f}", f"{summary['raw_crmcube_best']:.3f}",
               f"{summary.get('raw_crmcube_query_best', float('nan')):.3f}",
               f"{summary['duckdb_first']:.3f}", f"{summary['duckdb_best']:.3f}",
               f"{summary['raw_ratio_best']:.2f}"]
        if has_pre:
            row += [f"{summary.get('preagg_crmcube_best', float('nan')):.3f}",
                    f"{summary.get('preagg_ratio_best', float('nan')):.2f}"]
        row.append("")
        rows.append(row)
    p(fmt_table(hdr, rows))
    if timed:
        p(f"\nraw total, best of {a.repeat}: crmcube {summary['raw_crmcube_best']:.2f}s vs duckdb "
          f"{summary['duckdb_best']:.2f}s: ratio {summary['raw_ratio_best']:.2f} "
          f"(goal >= 1); first runs: {summary['raw_ratio_first']:.2f}; medians: "
          f"{summary['raw_ratio_median']:.2f}")
        if "raw_ratio_query_best" in summary:
            p(f"crmcube in-process query time only: {summary['raw_crmcube_query_best']:.2f}s, "
              f"ratio {summary['raw_ratio_query_best']:.2f}")
        if "preagg_ratio_best" in summary:
            p(f"with pre-aggregations: crmcube {summary['preagg_crmcube_best']:.2f}s, ratio "
              f"{summary['preagg_ratio_best']:.2f} (goal >= 5); materialize took "
              f"{result['materialize']['seconds']:.1f}s")
    if result.get("materialize") is None:
        p("pre-aggregations: not timed (`crmcube cube materialize` is not in this binary"
          + (", or --preagg skip)" if a.preagg == "skip" else ")"))
    p(f"load before: {result['load_before']['loadavg']}; after: {result['load_after']['loadavg']}")
    if problems:
        p("\nPROBLEMS:")
        for x in problems:
            p(f"  - {x}")
    else:
        p(f"\nall {len(specs)} answers equal between crmcube and DuckDB")

    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2, default=str))
        log(f"wrote {a.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
