#!/usr/bin/env python3
"""Reads every table of a `crmcube export` folder with pyarrow, polars and DuckDB and checks
that each reader gets the row count and column totals the manifest reports.

    python3 examples/check_export.py EXPORT_DIR [--json]

Exit code 0 when every reader agrees with the manifest for every table, 1 otherwise (each
difference is printed), 2 when the folder is not a finished export (no _SUCCESS).

A saved-query view with subtotals lists them under "subtotals" in the manifest (its level
columns and the `All` member marking subtotal rows); its totals are over the detail rows
only, so each reader sums the rows where no level column is `All`.

Readers (each with Hive partitioning, so `year` and `month` become columns of the facts):
  pyarrow  pyarrow.dataset.dataset(DIR/TABLE, format=..., partitioning="hive")
  polars   polars.scan_parquet / scan_ipc(DIR/TABLE/**/*.EXT, hive_partitioning=True);
           scan_csv per file, the partition columns taken from the folder names
  duckdb   read_parquet / read_csv(DIR/TABLE/**/*.EXT, hive_partitioning=true)  (not for arrow)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from decimal import Decimal
from pathlib import Path


def close(a, b) -> bool:
    """Totals agree: exactly for integers and decimals, to 1e-9 relative for floats."""
    if a is None or b is None:
        return a is None and b is None
    a, b = Decimal(str(a)), Decimal(str(b))
    if a == b:
        return True
    return abs(a - b) <= Decimal("1e-9") * max(abs(a), abs(b), Decimal(1))


def numeric_columns(table: dict) -> list[str]:
    return list(table["totals"].keys())


def detail_levels(table: dict) -> tuple[list[str], str]:
    """The level columns marking subtotal rows, and the member that marks them."""
    sub = table.get("subtotals")
    return (sub["levels"], sub["all_member"]) if sub else ([], "")


def arrow_type(name: str):
    """The pyarrow type of a manifest type name (as Arrow prints types)."""
    import re

    import pyarrow as pa

    simple = {
        "Int64": pa.int64(), "Int32": pa.int32(), "Float64": pa.float64(),
        "Utf8": pa.string(), "Boolean": pa.bool_(), "Date32": pa.date32(),
    }
    if name in simple:
        return simple[name]
    m = re.fullmatch(r"Decimal128\((\d+), (\d+)\)", name)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"Timestamp\((\w+)(?:, .*)?\)", name)
    if m:
        unit = {"µs": "us", "Microsecond": "us", "Millisecond": "ms", "Nanosecond": "ns",
                "Second": "s", "ms": "ms", "ns": "ns", "s": "s"}[m.group(1)]
        return pa.timestamp(unit)
    raise ValueError(f"no pyarrow type for manifest type {name}")


def polars_type(name: str):
    """The polars type of a manifest type name."""
    import polars as pl

    t = arrow_type(name)
    import pyarrow as pa

    if pa.types.is_decimal(t):
        return pl.Decimal(t.precision, t.scale)
    if pa.types.is_timestamp(t):
        return pl.Datetime(t.unit)
    return {
        pa.int64(): pl.Int64, pa.int32(): pl.Int32, pa.float64(): pl.Float64,
        pa.string(): pl.String, pa.bool_(): pl.Boolean, pa.date32(): pl.Date,
    }[t]


def read_pyarrow(root: Path, table: dict, fmt: str):
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if fmt == "csv":
        # CSV carries no types: take them from the manifest.
        import pyarrow.csv as pcsv

        types = {c["name"]: arrow_type(c["type"]) for c in table["schema"]}
        file_format = ds.CsvFileFormat(convert_options=pcsv.ConvertOptions(column_types=types))
    else:
        file_format = {"parquet": "parquet", "arrow": "ipc"}[fmt]
    d = ds.dataset(
        str(root / table["name"]),
        format=file_format,
        partitioning="hive" if table["partitioning"] else None,
    )
    t = d.to_table()
    detail = t
    levels, all_member = detail_levels(table)
    for lv in levels:
        text = pc.cast(detail.column(lv), "string")
        detail = detail.filter(pc.fill_null(pc.not_equal(text, all_member), True))
    totals = {}
    for c in numeric_columns(table):
        s = pc.sum(detail.column(c)).as_py()
        totals[c] = None if s is None else s
    return t.num_rows, totals, t.column_names


def read_polars(root: Path, table: dict, fmt: str):
    import polars as pl

    pattern = str(root / table["name"] / "**" / f"*.{fmt}")
    hive = bool(table["partitioning"])
    if fmt == "parquet":
        lf = pl.scan_parquet(pattern, hive_partitioning=hive)
    elif fmt == "arrow":
        lf = pl.scan_ipc(pattern, hive_partitioning=hive)
    else:
        # scan_csv has no Hive partitioning: the partition columns come from the paths.
        schema = {c["name"]: polars_type(c["type"]) for c in table["schema"]}
        parts = []
        for f in sorted((root / table["name"]).glob(f"**/*.{fmt}")):
            part = pl.scan_csv(f, schema=schema)
            for seg in f.relative_to(root / table["name"]).parent.parts:
                key, value = seg.split("=", 1)
                part = part.with_columns(pl.lit(int(value)).alias(key))
            parts.append(part)
        lf = pl.concat(parts, how="diagonal_relaxed")
    cols = numeric_columns(table)
    levels, all_member = detail_levels(table)
    detail = pl.all_horizontal(
        [pl.col(lv).cast(pl.String).ne_missing(all_member) for lv in levels] or [pl.lit(True)]
    )
    # polars sums no values to 0 where SQL (and the manifest) says NULL: count them too.
    df = lf.select(
        [pl.len().alias("__rows")]
        + [pl.col(c).filter(detail).sum().alias(c) for c in cols]
        + [pl.col(c).filter(detail).count().alias(f"__n_{c}") for c in cols]
    ).collect()
    row = df.row(0, named=True)
    names = lf.collect_schema().names()
    sums = {c: (row[c] if row[f"__n_{c}"] else None) for c in cols}
    return row["__rows"], sums, names


def read_duckdb(root: Path, table: dict, fmt: str):
    import duckdb

    if fmt == "arrow":
        return None
    pattern = str(root / table["name"] / "**" / f"*.{fmt}")
    hive = "true" if table["partitioning"] else "false"
    reader = (
        f"read_parquet('{pattern}', hive_partitioning={hive})"
        if fmt == "parquet"
        else f"read_csv('{pattern}', hive_partitioning={hive}, header=true)"
    )
    cols = numeric_columns(table)
    levels, all_member = detail_levels(table)
    detail = " AND ".join(
        f"CAST(\"{lv}\" AS VARCHAR) IS DISTINCT FROM '{all_member}'" for lv in levels
    ) or "TRUE"
    sums = "".join(f', SUM("{c}") FILTER (WHERE {detail})' for c in cols)
    con = duckdb.connect()
    row = con.execute(f"SELECT COUNT(*){sums} FROM {reader}").fetchone()
    names = [d[0] for d in con.execute(f"SELECT * FROM {reader} LIMIT 0").description]
    return row[0], dict(zip(cols, row[1:])), names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--json", action="store_true", help="print the readings as JSON")
    args = ap.parse_args()
    root = Path(args.export_dir)
    if not (root / "_SUCCESS").is_file():
        print(f"{root}: no _SUCCESS marker; not a finished crmcube export", file=sys.stderr)
        return 2
    manifest = json.loads((root / "_manifest.json").read_text())
    fmt = manifest["format"]
    readers = {"pyarrow": read_pyarrow, "polars": read_polars, "duckdb": read_duckdb}
    problems, readings = [], {}
    for table in manifest["tables"]:
        expected_columns = [c["name"] for c in table["schema"]] + table["partitioning"]
        for name, read in readers.items():
            got = read(root, table, fmt)
            if got is None:
                continue
            rows, totals, columns = got
            readings.setdefault(table["name"], {})[name] = {"rows": rows, "totals": totals}
            where = f"{table['name']} ({name})"
            if rows != table["rows"]:
                problems.append(f"{where}: {rows} rows, manifest says {table['rows']}")
            for c, want in table["totals"].items():
                if not close(totals.get(c), want):
                    problems.append(f"{where}: SUM({c}) = {totals.get(c)}, manifest says {want}")
            missing = [c for c in expected_columns if c not in columns]
            if missing:
                problems.append(f"{where}: columns {missing} missing (has {columns})")
    if args.json:
        print(json.dumps(readings, indent=1, default=str))
    else:
        for t, by in readings.items():
            line = ", ".join(f"{r} {v['rows']:,}" for r, v in by.items())
            print(f"{t:<24} rows: {line}")
    for p in problems:
        print(f"MISMATCH {p}", file=sys.stderr)
    print(
        f"{len(readings)} tables, format {fmt}, source version {manifest['source_version']}: "
        + ("all readers agree with the manifest" if not problems else f"{len(problems)} mismatches"),
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
