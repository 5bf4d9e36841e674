# %% [markdown]
# # crmcube in a notebook: revenue by month and segment, cohort retention
#
# Reads a `crmcube export` snapshot (Hive-partitioned Parquet with `_manifest.json` and
# `_SUCCESS`) twice, once with **polars** and once with **DuckDB**, and checks that both
# give the same revenue by month and customer segment to the cent (and the manifest's
# total). Draws that as a stacked bar chart, builds a monthly acquisition-cohort retention
# matrix and draws it as a heatmap. With `--flight` it asks a running `crmcube serve` the
# same question through Arrow Flight SQL (ADBC) and checks the server's answer against
# DuckDB's, cell by cell.
#
# Runs top to bottom as a plain script, or cell by cell (`# %%`) in Jupyter / VS Code:
#
#     crmcube mine score --warehouse wh            # RFM segments (optional)
#     crmcube export --warehouse wh --out snapshot --views
#     python3 examples/notebook.py --export snapshot [--out charts] [--json]
#     CRMCUBE_PASSWORD=... python3 examples/notebook.py --export snapshot \
#         --flight grpc://127.0.0.1:50051 --user analyst
#     CRMCUBE_PASSWORD=... python3 examples/notebook.py --flight grpc://127.0.0.1:50051
#
# Without `--export` the tables are fetched through Flight SQL instead of read from files
# (polars and DuckDB then work on those Arrow tables).
#
# Segments are the RFM segments of `crmcube mine score` / `mine rfm` (table
# `customer_scores`, newest `as_of`, matched on `customer_id`, as the cube's
# `customer.rfm_segment` level does) when the data has them, else the `segment` of the
# customer's `dim_customer` row (the cube's `customer.segment`). Customers without a
# score (every order of theirs was returned) are "Unknown", as in the cube.
#
# In a notebook kernel the command line is the kernel's: set CRMCUBE_EXPORT,
# CRMCUBE_FLIGHT, CRMCUBE_OUT (and CRMCUBE_PASSWORD, CRMCUBE_USER) in the environment.
#
# Exit codes: 0 all agree; 1 two readers (or Flight SQL) disagree; 2 unusable input (no
# `_SUCCESS`, a table or column missing, not a Parquet export, no connection).
#
# Needs: pip install -r examples/requirements.txt

# %%
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from decimal import Decimal
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # headless: the charts go to PNG files
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

ap = argparse.ArgumentParser(
    description="revenue by month and segment (polars vs DuckDB vs Flight SQL), cohort retention"
)
ap.add_argument("--export", type=Path, help="a crmcube export directory (Parquet)")
ap.add_argument(
    "--flight",
    help="a crmcube serve Flight SQL URI, e.g. grpc://127.0.0.1:50051 "
    "(password from the environment variable CRMCUBE_PASSWORD)",
)
ap.add_argument("--user", default=os.environ.get("CRMCUBE_USER", "crmcube"),
                help="Flight SQL user (default: $CRMCUBE_USER or crmcube)")
ap.add_argument("--out", type=Path, default=Path("notebook_out"),
                help="where the charts go (default: ./notebook_out)")
ap.add_argument("--json", action="store_true",
                help="print a JSON summary on stdout (the prose goes to stderr)")
# In a notebook kernel sys.argv holds the kernel's own flags: take the settings from the
# environment there.
in_kernel = "ipykernel" in sys.modules
if in_kernel:
    argv = []
    for flag, var in [("--export", "CRMCUBE_EXPORT"), ("--flight", "CRMCUBE_FLIGHT"),
                      ("--out", "CRMCUBE_OUT")]:
        if os.environ.get(var):
            argv += [flag, os.environ[var]]
    if not argv:
        argv = ["--export", "snapshot"]
    args = ap.parse_args(argv)
else:
    args = ap.parse_args()
if args.export is None and args.flight is None:
    ap.error("give --export DIR, or --flight URI to fetch the tables from crmcube serve")

EXPORT: Path | None = args.export
OUT: Path = args.out
OUT.mkdir(parents=True, exist_ok=True)


def say(*parts) -> None:
    """Prose for people; with --json it goes to stderr so that stdout is only JSON."""
    print(*parts, file=sys.stderr if args.json else sys.stdout)


def fail(message: str, code: int = 1) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


# %% [markdown]
# ## Where the tables come from
#
# From an export: `_SUCCESS` is written last, so without it the export is incomplete; the
# manifest lists every table with its schema, partition columns, row count and column
# totals. The column names used below are checked against it before anything is read.
#
# Facts are partitioned `year=YYYY/month=MM`; the notebook takes the month from
# `dim_date.year_month` over `date_key` instead of the folder names (DuckDB reads
# `month=03` as the string `'03'`, polars and pyarrow as the number 3).

# %%
NEEDED = {
    "fact_sales": ["date_key", "customer_key", "revenue"],
    "dim_customer": ["customer_key", "customer_id", "segment"],
    "dim_date": ["date_key", "year_month"],
}
SCORE_COLUMNS = ["customer_id", "as_of", "rfm_segment"]

con = duckdb.connect()
manifest = None
fetched: dict = {}  # Flight-only mode: table name -> Arrow table
if EXPORT is not None:
    if not (EXPORT / "_SUCCESS").exists():
        fail(f"{EXPORT}: no _SUCCESS marker (not a finished crmcube export)", 2)
    manifest = json.loads((EXPORT / "_manifest.json").read_text())
    if manifest.get("format") != "parquet":
        fail(f"{EXPORT}: a {manifest.get('format')} export; export with --format parquet", 2)
    tables = {t["name"]: t for t in manifest["tables"]}
    columns = {name: [c["name"] for c in t["schema"]] + t["partitioning"]
               for name, t in tables.items()}
    say(f"export {EXPORT} of warehouse version {manifest['source_version']} "
        f"({manifest['warehouse']}), {len(tables)} tables")
else:
    import adbc_driver_flightsql.dbapi as flight_sql

    warnings.filterwarnings("ignore", message="Cannot disable autocommit")
    try:
        fconn = flight_sql.connect(args.flight, db_kwargs={
            "username": args.user, "password": os.environ.get("CRMCUBE_PASSWORD", "")})
        objects = fconn.adbc_get_objects(depth="columns").read_all().to_pylist()
    except Exception as e:  # the driver raises DB-API errors
        fail(f"cannot reach {args.flight} as {args.user}: {e}", 2)
    columns = {
        t["table_name"]: [c["column_name"] for c in (t["table_columns"] or [])]
        for catalog in objects for schema in catalog["catalog_db_schemas"] or []
        for t in schema["db_schema_tables"] or []
    }
    say(f"Flight SQL {args.flight}: {len(columns)} tables and views")

for table, cols in NEEDED.items():
    if table not in columns:
        fail(f"table {table} is not in {EXPORT or args.flight}", 2)
    missing = [c for c in cols if c not in columns[table]]
    if missing:
        fail(f"{table} has no column {', '.join(missing)} (it has {', '.join(columns[table])})", 2)
has_scores = "customer_scores" in columns and all(
    c in columns["customer_scores"] for c in SCORE_COLUMNS)
segment_kind = "RFM segment" if has_scores else "customer segment"
wanted = dict(NEEDED, **({"customer_scores": SCORE_COLUMNS} if has_scores else {}))

if EXPORT is None:
    # Fetch just the columns the notebook needs, as Arrow tables.
    with fconn.cursor() as cur:
        for table, cols in wanted.items():
            cur.execute(f"SELECT {', '.join(cols)} FROM {table}")
            fetched[table] = cur.fetch_arrow_table()
            con.register(table, fetched[table])
    fconn.close()
    say("fetched " + ", ".join(f"{t} ({a.num_rows:,} rows)" for t, a in fetched.items()))


def files(table: str) -> str:
    """The glob of a table's Parquet files, partitioned or not."""
    return str(EXPORT / table / "**" / "*.parquet")


def scan(table: str) -> pl.LazyFrame:
    """A table for polars."""
    if EXPORT is None:
        return pl.from_arrow(fetched[table]).lazy()
    return pl.scan_parquet(files(table), hive_partitioning=True)


def source(table: str) -> str:
    """A table for DuckDB SQL."""
    if EXPORT is None:
        return table  # registered Arrow table
    path = files(table).replace("'", "''")
    return f"read_parquet('{path}', hive_partitioning = true)"


# %% [markdown]
# ## Revenue by month and segment, with polars
# `revenue` is `decimal(18,2)`: both engines sum exact decimals, so "agree" means equal.

# %%
sales = scan("fact_sales").select(NEEDED["fact_sales"])
customers = scan("dim_customer").select(NEEDED["dim_customer"])
dates = scan("dim_date").select("date_key", pl.col("year_month").alias("month"))
if has_scores:
    scores = scan("customer_scores").select(SCORE_COLUMNS)
    newest = scores.select(pl.col("as_of").max()).collect().item()
    segment_of = scores.filter(pl.col("as_of") == newest).select(
        "customer_id", pl.col("rfm_segment").alias("seg"))
    labelled = (
        sales.join(customers.select("customer_key", "customer_id"), on="customer_key",
                   how="left")
        .join(segment_of, on="customer_id", how="left")
    )
    say(f"segments: RFM segments of customer_scores as of {newest}")
else:
    newest = None
    labelled = sales.join(customers.select("customer_key", pl.col("segment").alias("seg")),
                          on="customer_key", how="left")
    say("segments: dim_customer.segment (no customer_scores: run crmcube mine score)")

by_polars = (
    labelled.join(dates, on="date_key", how="left")
    .with_columns(pl.col("seg").fill_null("Unknown"), pl.col("month").fill_null("(no date)"))
    .group_by("month", "seg")
    .agg(pl.col("revenue").sum())
    .sort("month", "seg")
    .collect()
)
say(f"polars: {by_polars.height} (month, {segment_kind}) cells")

# %% [markdown]
# ## The same with DuckDB, straight from the Parquet files

# %%
if has_scores:
    seg_sql = f"""
        SELECT customer_id, rfm_segment AS seg FROM {source("customer_scores")}
        WHERE as_of = (SELECT MAX(as_of) FROM {source("customer_scores")})"""
    join_sql = f"""
        LEFT JOIN {source("dim_customer")} c ON c.customer_key = s.customer_key
        LEFT JOIN ({seg_sql}) seg ON seg.customer_id = c.customer_id"""
else:
    join_sql = f"""
        LEFT JOIN (SELECT customer_key, segment AS seg FROM {source("dim_customer")}) seg
          ON seg.customer_key = s.customer_key"""
by_duckdb = con.sql(f"""
    SELECT COALESCE(d.year_month, '(no date)') AS month,
           COALESCE(seg.seg, 'Unknown') AS seg,
           SUM(s.revenue) AS revenue
    FROM {source("fact_sales")} s
    {join_sql}
    LEFT JOIN {source("dim_date")} d ON d.date_key = s.date_key
    GROUP BY 1, 2 ORDER BY 1, 2
""").pl()
say(f"duckdb: {by_duckdb.height} (month, {segment_kind}) cells")

# %% [markdown]
# ## Do they agree, to the cent?

# %%


def cells(df: pl.DataFrame) -> dict[tuple[str, str], Decimal]:
    """(month, segment) -> revenue as an exact Decimal rounded to the cent."""
    return {(m, s): Decimal(str(r)).quantize(Decimal("0.01"))
            for m, s, r in df.select("month", "seg", "revenue").iter_rows()}


polars_cells, duckdb_cells = cells(by_polars), cells(by_duckdb)
differences = sorted(
    (k, polars_cells.get(k), duckdb_cells.get(k))
    for k in polars_cells.keys() | duckdb_cells.keys()
    if polars_cells.get(k) != duckdb_cells.get(k)
)
agree = not differences
if not agree:
    fail(f"polars and duckdb disagree on {len(differences)} (month, segment) cells, e.g. "
         + "; ".join(f"{k}: polars {p}, duckdb {d}" for k, p, d in differences[:5]))
total = sum(polars_cells.values(), Decimal(0))
if manifest is not None:
    manifest_total = Decimal(tables["fact_sales"]["totals"]["revenue"])
    if total != manifest_total:
        fail(f"revenue {total} differs from the manifest's SUM(revenue) {manifest_total}")
revenue_total = float(total)
months = sorted({m for m, _ in polars_cells})
seg_totals: dict[str, Decimal] = {}
for (_, s), r in polars_cells.items():
    seg_totals[s] = seg_totals.get(s, Decimal(0)) + r
segments = sorted(seg_totals, key=lambda s: (-seg_totals[s], s))  # biggest first
say(f"agree: polars = duckdb on all {len(polars_cells)} cells, {len(months)} months "
    f"x {len(segments)} segments, revenue {total:,.2f}"
    + (" = the manifest's total" if manifest is not None else ""))
for s in segments:
    say(f"  {s:<20} {seg_totals[s]:>14,.2f}")

# %% [markdown]
# ## Chart: revenue by month, stacked by segment

# %%
pivot = (
    by_polars.with_columns(pl.col("revenue").cast(pl.Float64))
    .pivot(on="seg", index="month", values="revenue")
    .sort("month")
    .fill_null(0)
)
colors = plt.get_cmap("tab20").colors
fig, ax = plt.subplots(figsize=(12, 5.5))
bottom = [0.0] * pivot.height
for i, seg in enumerate(segments):  # biggest segment at the bottom
    values = pivot[seg].to_list()
    ax.bar(pivot["month"].to_list(), values, bottom=bottom, label=seg,
           color=colors[i % len(colors)], width=0.85)
    bottom = [b + v for b, v in zip(bottom, values)]
ax.set_title(f"Revenue by month and {segment_kind}"
             + (f" (scores as of {newest})" if newest else ""))
ax.set_ylabel("revenue")
ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
ax.tick_params(axis="x", labelrotation=90, labelsize=7)
ax.margins(x=0.01)
ax.legend(fontsize=8, title=segment_kind, bbox_to_anchor=(1.01, 1), loc="upper left")
fig.tight_layout()
chart_revenue = OUT / "revenue_by_month_segment.png"
fig.savefig(chart_revenue, dpi=110)
plt.close(fig)
say(f"wrote {chart_revenue}")

# %% [markdown]
# ## Cohort retention
# A customer's cohort is the month of their first order; the cell (cohort, k) is the
# share of the cohort that ordered again k months later (k = 0 is the cohort's own month,
# always 100 %). Months after the last month with orders are not observed yet and stay
# empty. Customers are `customer_id`s (one customer may have several `customer_key`s:
# `dim_customer` keeps history); the unknown customer (key 0) is left out. The same
# definition as `crmcube mine cohorts`.

# %%
orders = (
    sales.filter(pl.col("customer_key") != 0)
    .join(customers.select("customer_key", "customer_id"), on="customer_key", how="inner")
    .select(
        "customer_id",
        ((pl.col("date_key") // 10000) * 12 + (pl.col("date_key") // 100) % 100 - 1)
        .cast(pl.Int32)
        .alias("month_index"),
    )
    .unique()
    .collect()
)
first = orders.group_by("customer_id").agg(pl.col("month_index").min().alias("cohort"))
sizes = dict(first.group_by("cohort").agg(pl.len()).iter_rows())
active = (
    orders.join(first, on="customer_id")
    .with_columns((pl.col("month_index") - pl.col("cohort")).alias("k"))
    .group_by("cohort", "k")
    .agg(pl.col("customer_id").n_unique().alias("active"))
)
active_cells = {(c, k): n for c, k, n in active.iter_rows()}

# The same counts with DuckDB, as a check.
duck_cells = {
    (c, k): n
    for c, k, n in con.sql(f"""
        WITH o AS (
          SELECT DISTINCT c.customer_id,
                 (s.date_key // 10000) * 12 + (s.date_key // 100) % 100 - 1 AS month_index
          FROM {source("fact_sales")} s
          JOIN {source("dim_customer")} c ON c.customer_key = s.customer_key
          WHERE s.customer_key <> 0),
        f AS (SELECT customer_id, MIN(month_index) AS cohort FROM o GROUP BY 1)
        SELECT f.cohort, o.month_index - f.cohort AS k, COUNT(DISTINCT o.customer_id)
        FROM o JOIN f USING (customer_id) GROUP BY 1, 2""").fetchall()
}
if duck_cells != active_cells:
    fail("polars and duckdb disagree on the cohort matrix")

cohorts = sorted(sizes)
last = max(orders["month_index"])
horizon = last - cohorts[0]
matrix = [
    [active_cells.get((c, k), 0) / sizes[c] if k <= last - c else math.nan
     for k in range(horizon + 1)]
    for c in cohorts
]
if any(row[0] != 1.0 for row in matrix):
    fail("every cohort must be fully active in its own month")


def label(month_index: int) -> str:
    return f"{month_index // 12:04d}-{month_index % 12 + 1:02d}"


say(f"cohorts: {len(cohorts)} ({label(cohorts[0])} to {label(cohorts[-1])}), "
    f"{len(first):,} customers")
for k in (1, 3, 6, 12):
    observed = [row[k] for row in matrix if k < len(row) and not math.isnan(row[k])]
    if observed:
        say(f"  month {k:>2}: {100 * sum(observed) / len(observed):5.1f} % of a cohort "
            f"buys again (mean of {len(observed)} cohorts)")

# %% [markdown]
# ## Chart: the retention matrix as a heatmap
# Month 0 (100 % by definition) is left out so that the colour scale shows the months after.

# %%
fig, ax = plt.subplots(figsize=(12, 8))
shown = [[v * 100 for v in row[1:]] for row in matrix]
vmax = max((v for row in shown for v in row if not math.isnan(v)), default=100.0)
cmap = plt.get_cmap("viridis").copy()
cmap.set_bad("white")
im = ax.imshow(shown, aspect="auto", cmap=cmap, vmin=0, vmax=vmax,
               extent=(0.5, horizon + 0.5, len(cohorts) - 0.5, -0.5))
ax.set_yticks(range(len(cohorts)), [f"{label(c)} ({sizes[c]})" for c in cohorts], fontsize=6)
ax.set_xlabel("months since the first order")
ax.set_ylabel("cohort: month of the first order (customers)")
ax.set_title("Cohort retention: % of each cohort ordering again k months later")
fig.colorbar(im, ax=ax, label="% of the cohort")
fig.tight_layout()
chart_cohorts = OUT / "cohort_retention.png"
fig.savefig(chart_cohorts, dpi=110)
plt.close(fig)
say(f"wrote {chart_cohorts}")

# %% [markdown]
# ## The same question through `crmcube serve` (Arrow Flight SQL)
# The cube's wide view `cube_sales` carries every dimension level as a column
# (`time_month`, `customer_rfm_segment`, `customer_segment`, …), so revenue by month and
# segment is one GROUP BY, computed by the server. It must agree with DuckDB cell by cell;
# with an export, the server must serve the exported warehouse version.

# %%
flight_agree = None
if args.flight:
    import adbc_driver_flightsql.dbapi as flight_sql

    warnings.filterwarnings("ignore", message="Cannot disable autocommit")
    column = "customer_rfm_segment" if has_scores else "customer_segment"
    sql = (f"SELECT time_month AS month, {column} AS seg, SUM(revenue) AS revenue "
           f"FROM cube_sales GROUP BY 1, 2")
    try:
        with flight_sql.connect(args.flight, db_kwargs={
            "username": args.user, "password": os.environ.get("CRMCUBE_PASSWORD", "")},
        ) as conn, conn.cursor() as cur:
            cur.execute(sql)
            served = pl.from_arrow(cur.fetch_arrow_table())
    except Exception as e:
        fail(f"Flight SQL {args.flight}: {e}", 2)
    served_cells = cells(served)
    differences = sorted(
        (k, served_cells.get(k), duckdb_cells.get(k))
        for k in served_cells.keys() | duckdb_cells.keys()
        if served_cells.get(k) != duckdb_cells.get(k)
    )
    flight_agree = not differences
    if not flight_agree:
        version = f" (the export is of version {manifest['source_version']})" if manifest else ""
        fail(f"Flight SQL and duckdb disagree on {len(differences)} cells{version}, e.g. "
             + "; ".join(f"{k}: flight {f}, duckdb {d}" for k, f, d in differences[:5]))
    say(f"Flight SQL agrees with duckdb on all {len(served_cells)} (month, {segment_kind}) "
        f"cells, revenue {sum(served_cells.values(), Decimal(0)):,.2f}")

# %% [markdown]
# ## Summary

# %%
summary = {
    "revenue_total": revenue_total,
    "months": len(months),
    "segments": segments,
    "segment_kind": segment_kind,
    "agree": agree,
    "charts": [str(chart_revenue), str(chart_cohorts)],
    "cohorts": len(cohorts),
    "flight_agree": flight_agree,
    "source_version": manifest["source_version"] if manifest else None,
}
if args.json:
    print(json.dumps(summary, indent=1))
else:
    say(f"done: revenue {revenue_total:,.2f} over {len(months)} months, "
        f"{len(segments)} segments, {len(cohorts)} cohorts; polars = duckdb"
        + ("" if flight_agree is None else " = Flight SQL"))
