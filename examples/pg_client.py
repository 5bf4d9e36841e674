#!/usr/bin/env python3
"""Queries a running `crmcube serve` over the PostgreSQL wire protocol with psycopg, as a BI
tool would (catalog queries first, then SQL), and prints what it got as JSON.

    CRMCUBE_PASSWORD=... python3 examples/pg_client.py --host 127.0.0.1 --port 5433 [--user crmcube]

Needs: pip install "psycopg[binary]"
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import psycopg


def refused(conninfo: dict, sql: str) -> str | None:
    """The error of a statement that must fail, or None if it succeeded."""
    try:
        with psycopg.connect(**conninfo, autocommit=True) as c:
            c.execute(sql)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5433)
    ap.add_argument("--user", default=os.environ.get("CRMCUBE_USER", "crmcube"))
    a = ap.parse_args()
    conninfo = dict(host=a.host, port=a.port, user=a.user, dbname="crmcube",
                    password=os.environ.get("CRMCUBE_PASSWORD", ""))
    out: dict = {}
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        cur = conn.cursor()
        # What BI tools ask on connect.
        cur.execute("SELECT version()")
        out["version"] = cur.fetchone()[0]
        cur.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = 'public' ORDER BY table_name")
        out["tables"] = [list(r) for r in cur.fetchall()]
        cur.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname LIKE 'fact_%' ORDER BY 1")
        out["pg_class_facts"] = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT COUNT(*) FROM fact_sales")
        out["fact_sales_rows"] = cur.fetchone()[0]
        # A parameterised query (extended protocol), as drivers send them.
        cur.execute(
            "SELECT geography_region, CAST(SUM(revenue) AS DOUBLE PRECISION) FROM cube_sales "
            "WHERE time_year >= %s GROUP BY geography_region ORDER BY geography_region", ("0",))
        out["revenue_by_region"] = [[r[0], float(r[1])] for r in cur.fetchall()]
    out["refused"] = {
        "write": refused(conninfo, "CREATE TABLE x AS SELECT 1 AS one"),
        "insert": refused(conninfo, "INSERT INTO dim_channel SELECT * FROM dim_channel"),
        "wrong_password": refused({**conninfo, "password": conninfo["password"] + "x"}, "SELECT 1"),
    }
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
