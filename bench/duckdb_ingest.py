#!/usr/bin/env python3
"""DuckDB baseline for the ingest benchmark: read a customer export (CSV, gzip or not, or
Parquet) and write it as gzip JSON Lines, which is what `fineo-batch ingest` does (without the
mapping to staged records and the checks).

Usage: duckdb_ingest.py INPUT OUT_FILE [--threads N]
Prints one JSON line: {"rows": N, "seconds": S}.
"""

import argparse
import json
import time

import duckdb


def main():
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    reader = "read_parquet" if a.input.endswith(".parquet") else "read_csv"
    started = time.time()
    con.execute(
        f"COPY (SELECT * FROM {reader}('{a.input}')) TO '{a.out}' (FORMAT json, COMPRESSION gzip)"
    )
    rows = con.execute(f"SELECT count(*) FROM {reader}('{a.input}')").fetchone()[0]
    print(json.dumps({"rows": rows, "seconds": round(time.time() - started, 3)}))


if __name__ == "__main__":
    main()
