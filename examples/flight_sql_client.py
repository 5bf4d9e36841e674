#!/usr/bin/env python3
"""Queries a running `crmcube serve` through the ADBC Flight SQL driver, as a notebook or a
BI tool's Arrow connector would, and prints what it got as JSON.

    CRMCUBE_PASSWORD=... python3 examples/flight_sql_client.py --uri grpc://127.0.0.1:50051 \
        [--user crmcube] [--sql "SELECT ..."]

Without --sql it runs a fixed tour: a row count, a cube question through the wide view
`cube_sales`, the catalog (tables and views with their columns), and three requests the
server must refuse cleanly (a wrong password, a write, an unknown table).

Needs: pip install adbc-driver-flightsql adbc-driver-manager pyarrow
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def connect(uri: str, user: str, password: str):
    import adbc_driver_flightsql.dbapi as flight_sql

    return flight_sql.connect(uri, db_kwargs={"username": user, "password": password})


def rows(cur, sql: str) -> list[list]:
    cur.execute(sql)
    table = cur.fetch_arrow_table()
    return [list(r.values()) for r in table.to_pylist()]


def refused(fn) -> str | None:
    """The error text of a request that must fail, or None if it succeeded."""
    try:
        fn()
    except Exception as e:  # the driver raises DB-API errors
        return f"{type(e).__name__}: {e}"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", required=True)
    ap.add_argument("--user", default=os.environ.get("CRMCUBE_USER", "crmcube"))
    ap.add_argument("--sql", help="run this query and print its rows")
    a = ap.parse_args()
    password = os.environ.get("CRMCUBE_PASSWORD", "")
    conn = connect(a.uri, a.user, password)
    cur = conn.cursor()
    if a.sql:
        print(json.dumps(rows(cur, a.sql), default=str))
        return 0
    out: dict = {}
    out["fact_sales_rows"] = rows(cur, "SELECT COUNT(*) AS n FROM fact_sales")[0][0]
    out["revenue_by_region"] = rows(
        cur,
        "SELECT geography_region, CAST(SUM(revenue) AS DOUBLE) AS revenue "
        "FROM cube_sales GROUP BY geography_region ORDER BY geography_region",
    )
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = []
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for t in schema["db_schema_tables"] or []:
                tables.append([catalog["catalog_name"], schema["db_schema_name"],
                               t["table_name"], t["table_type"]])
    out["tables"] = tables
    out["cube_sales_columns"] = conn.adbc_get_table_schema("cube_sales").names
    out["refused"] = {
        "write": refused(lambda: rows(cur, "CREATE TABLE x AS SELECT 1 AS one")),
        "unknown_table": refused(lambda: rows(cur, "SELECT * FROM no_such_table")),
        "wrong_password": refused(
            lambda: rows(connect(a.uri, a.user, password + "x").cursor(), "SELECT 1")
        ),
    }
    # The connection still works after the refusals.
    out["after_errors"] = rows(cur, "SELECT COUNT(*) FROM dim_date")[0][0]
    cur.close()
    conn.close()
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
