# %% [markdown]
# # crmcube in a notebook: revenue by segment and cohort retention
#
# Reads a `crmcube export` snapshot (Hive-partitioned Parquet with `_manifest.json`) with
# **polars** and with **duckdb**, checks that both give the same revenue by month and
# segment to the cent, draws it, builds a monthly cohort-retention matrix and draws it as
# a heatmap; with `--flight`, asks a running `crmcube serve` the same question through
# Arrow Flight SQL (ADBC) and checks the answer against the export.
#
# Runs top to bottom as a plain script, or cell by cell (`# %%`) in Jupyter / VS Code:
#
#     crmcube export --warehouse wh --out snapshot --views
#     python3 examples/notebook.py --export snapshot [--out charts] [--json]
#     CRMCUBE_PASSWORD=... python3 examples/notebook.py --export snapshot \
#         --flight grpc://127.0.0.1:50051 --user analyst
#
# Segments are the RFM segments of `crmcube mine score` (table `customer_scores`, newest
# `as_of`) when the export has them, else the customer segment of `dim_customer`.
# Needs: pip install -r examples/requirements.txt

# %%
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # headless: charts go to PNG files
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

ap = argparse.ArgumentParser(description="revenue by month and segment, cohort retention")
ap.add_argument("--export", required=True, type=Path, help="a crmcube export directory")
ap.add_argument("--flight", help="a crmcube serve Flight SQL URI, e.g. grpc://127.0.0.1:50051")
ap.add_argument("--user", default=os.environ.get("CRMCUBE_USER", "crmcube"))
ap.add_argument("--out", type=Path, default=Path("notebook_out"), help="where the charts go")
ap.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
# In a notebook kernel sys.argv holds the kernel's own flags: take the defaults from the
# environment there (CRMCUBE_EXPORT, CRMCUBE_FLIGHT).
in_kernel = "ipykernel" in sys.modules
args = ap.parse_args(
    ["--export", os.environ.get("CRMCUBE_EXPORT", "snapshot")]
    + (["--flight", os.environ["CRMCUBE_FLIGHT"]] if os.environ.get("CRMCUBE_FLIGHT") else [])
    if in_kernel
    else None
)
EXPORT: Path = args.export
OUT: Path = args.out
OUT.mkdir(parents=True, exist_ok=True)


def say(*parts) -> None:
    """Prose for people; with --json it goes to stderr so stdout stays JSON."""
    print(*parts, file=sys.stderr if args.json else sys.stdout)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


# %% [markdown]
# ## The snapshot: manifest first
# `_SUCCESS` is written last: without it the export is incomplete.

# %%
if not (EXPORT / "_SUCCESS").exists():
    print(f"error: {EXPORT}: no _SUCCESS marker (not a finished crmcube export)", file=sys.stderr)
    sys.exit(2)
manifest = json.loads((EXPORT / "_manifest.json").read_text())
tables = {t["name"]: t for t in manifest["tables"]}
say(f"export of warehouse version {manifest['source_version']}, {len(tables)} tables")
for need in ["fact_sales", "dim_customer"]:
    if need not in tables:
        print(f"error: {EXPORT}: table {need} is not in the export", file=sys.stderr)
        sys.exit(2)
has_scores = "customer_scores" in tables


def files(name: str) -> str:
    """The glob of a table's Parquet files (partitioned or not)."""
    return str(EXPORT / name / "**" / "*.parquet")


# %% [markdown]
# ## Revenue by month and segment, with polars

# %%
sales = pl.scan_parquet(files("fact_sales"), hive_partitioning=True)
customers = pl.scan_parquet(files("dim_customer")).select("customer_key", "customer_id", "segment")
if has_scores:
    scores = pl.scan_parquet(files("customer_scores"), hive_partitioning=True)
    newest = scores.select(pl.col("as_of").max()).collect().item()
    segment_of = (
        scores.filter(pl.col("as_of") == newest)
        .select("customer_id", pl.col("rfm_segment").alias("seg"))
    )
    segment_label = "RFM segment"
else:
    segment_of = customers.select("customer_id", pl.col("segment").alias("seg")).unique("customer_id")
    segment_label = "customer segment"

by_polars = (
    sales.join(customers.select("customer_key", "customer_id"), on="customer_key", how="left")
    .join(segment_of, on="customer_id", how="left")
    .with_columns(
        (pl.col("date_key") // 10000).cast(pl.Int32).alias("y"),
        ((pl.col("date_key") // 100) % 100).cast(pl.Int32).alias("m"),
        pl.col("seg").fill_null("(no segment)"),
    )
    .with_columns(pl.format("{}-{}", pl.col("y"), pl.col("m").cast(pl.Utf8).str.zfill(2)).alias("month"))
    .group_by("month", "seg")
    .agg(pl.col("revenue").cast(pl.Float64).sum().alias("revenue"))
    .sort("month", "seg")
    .collect()
)
say(f"polars: {by_polars.height} (month, {segment_label}) cells")

# %% [markdown]
# ## The same with duckdb, straight from the Parquet files

# %%
con = duckdb.connect()
seg_sql = (
    f"""SELECT customer_id, rfm_segment AS seg FROM read_parquet('{files("customer_scores")}',
         hive_partitioning = true)
       WHERE as_of = (SELECT MAX(as_of) FROM read_parquet('{files("customer_scores")}',
         hive_partitioning = true))"""
    if has_scores
    else f"""SELECT customer_id, ANY_VALUE(segment) AS seg
             FROM read_parquet('{files("dim_customer")}') GROUP BY customer_id"""
)
by_duckdb = con.sql(
    f"""
    WITH seg AS ({seg_sql})
    SELECT printf('%04d-%02d', (s.date_key // 10000)::INT, ((s.date_key // 100) % 100)::INT)
             AS month,
           COALESCE(seg.seg, '(no segment)') AS seg,
           SUM(s.revenue)::DOUBLE AS revenue
    FROM read_parquet('{files("fact_sales")}', hive_partitioning = true) s
    LEFT JOIN read_parquet('{files("dim_customer")}') c ON c.customer_key = s.customer_key
    LEFT JOIN seg ON seg.customer_id = c.customer_id
    GROUP BY 1, 2 ORDER BY 1, 2
    """
).pl()

# %% [markdown]
# ## Do they agree, to the cent?

# %%
both = by_polars.join(by_duckdb, on=["month", "seg"], how="full", suffix="_duckdb", coalesce=True)
diff = both.filter(
    (pl.col("revenue").fill_null(0) - pl.col("revenue_duckdb").fill_null(0)).abs() >= 0.005
)
agree = diff.height == 0 and by_polars.height == by_duckdb.height
if not agree:
    fail(f"polars and duckdb disagree on {diff.height} cells:\n{diff.head(10)}")
revenue_total = round(float(by_polars["revenue"].sum()), 2)
manifest_total = float(tables["fact_sales"]["totals"]["revenue"])
if abs(revenue_total - manifest_total) >= 0.01:
    fail(f"revenue {revenue_total} differs from the manifest's total {manifest_total}")
months = by_polars["month"].unique().sort().to_list()
segments = by_polars["seg"].unique().sort().to_list()
say(f"agree: {len(months)} months x {len(segments)} segments, revenue {revenue_total:,.2f}")

# %% [markdown]
# ## Chart: revenue by month, stacked by segment

# %%
pivot = by_polars.pivot(on="seg", index="month", values="revenue").sort("month").fill_null(0)
fig, ax = plt.subplots(figsize=(11, 5))
bottom = [0.0] * pivot.height
for seg in segments:
    values = pivot[seg].to_list()
    ax.bar(pivot["month"].to_list(), values, bottom=bottom, label=seg)
    bottom = [b + v for b, v in zip(bottom, values)]
ax.set_title(f"Revenue by month and {segment_label}")
ax.set_ylabel("revenue")
ax.tick_params(axis="x", labelrotation=90, labelsize=7)
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
chart_revenue = OUT / "revenue_by_month_segment.png"
fig.savefig(chart_revenue, dpi=110)
plt.close(fig)
say(f"wrote {chart_revenue}")

# %% [markdown]
# ## Cohort retention
# A customer's cohort is the month of their first order; retention in month k is the
# share of the cohort that ordered again k months later.

# %%
orders = (
    sales.join(customers.select("customer_key", "customer_id"), on="customer_key", how="left")
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
activity = orders.join(first, on="customer_id").with_columns(
    (pl.col("month_index") - pl.col("cohort")).alias("k")
)
sizes = first.group_by("cohort").agg(pl.len().alias("size"))
retention = (
    activity.group_by("cohort", "k")
    .agg(pl.col("customer_id").n_unique().alias("active"))
    .join(sizes, on="cohort")
    .with_columns((pl.col("active") / pl.col("size")).alias("share"))
    .sort("cohort", "k")
)
cohorts = sorted(sizes["cohort"].to_list())
max_k = int(retention["k"].max())
matrix = [[float("nan")] * (max_k + 1) for _ in cohorts]
row_of = {c: i for i, c in enumerate(cohorts)}
for c, k, share in retention.select("cohort", "k", "share").iter_rows():
    matrix[row_of[c]][k] = share
if any(abs(matrix[i][0] - 1.0) > 1e-9 for i in range(len(cohorts))):
    fail("every cohort must be fully active in its own month")


def label(month_index: int) -> str:
    return f"{month_index // 12:04d}-{month_index % 12 + 1:02d}"


fig, ax = plt.subplots(figsize=(11, 7))
im = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=max(
    (v for row in matrix for v in row[1:] if v == v), default=1.0))
ax.set_yticks(range(len(cohorts)), [label(c) for c in cohorts], fontsize=6)
ax.set_xlabel("months since first order")
ax.set_ylabel("cohort (month of first order)")
ax.set_title("Cohort retention: share of each cohort ordering again")
fig.colorbar(im, ax=ax, label="share of cohort")
fig.tight_layout()
chart_cohorts = OUT / "cohort_retention.png"
fig.savefig(chart_cohorts, dpi=110)
plt.close(fig)
say(f"wrote {chart_cohorts} ({len(cohorts)} cohorts)")

# %% [markdown]
# ## The same question through `crmcube serve` (Arrow Flight SQL)
# The cube's wide view `cube_sales` carries every dimension level as a column, so
# "revenue by segment" is one GROUP BY. The served warehouse must be the exported version
# for the answers to match.

# %%
flight_agree = None
if args.flight:
    import adbc_driver_flightsql.dbapi as flight_sql

    warnings.filterwarnings("ignore", message="Cannot disable autocommit")
    column = "customer_rfm_segment" if has_scores else "customer_segment"
    sql = (
        f"SELECT {column} AS seg, CAST(SUM(revenue) AS DOUBLE) AS revenue "
        f"FROM cube_sales GROUP BY 1 ORDER BY 1"
    )
    with flight_sql.connect(
        args.flight,
        db_kwargs={"username": args.user, "password": os.environ.get("CRMCUBE_PASSWORD", "")},
    ) as conn, conn.cursor() as cur:
        cur.execute(sql)
        served = {r["seg"]: r["revenue"] for r in cur.fetch_arrow_table().to_pylist()}
    exported = dict(
        con.sql(
            f"SELECT {column}, SUM(revenue)::DOUBLE FROM read_parquet('{files('cube_sales')}') "
            "GROUP BY 1"
        ).fetchall()
    ) if "cube_sales" in tables else None
    if exported is None:
        fail("--flight needs the cube's views in the export (crmcube export --views)")
    flight_agree = served.keys() == exported.keys() and all(
        abs(served[k] - exported[k]) < 0.005 for k in served
    )
    if not flight_agree:
        fail(f"Flight SQL and the export disagree:\n served {served}\n export {exported}")
    say(f"Flight SQL agrees with the export on {len(served)} segments")

# %%
summary = {
    "revenue_total": revenue_total,
    "months": len(months),
    "segments": segments,
    "segment_kind": segment_label,
    "agree": agree,
    "charts": [str(chart_revenue), str(chart_cohorts)],
    "cohorts": len(cohorts),
    "flight_agree": flight_agree,
}
if args.json:
    print(json.dumps(summary, indent=1))
