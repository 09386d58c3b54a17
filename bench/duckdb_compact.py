#!/usr/bin/env python3
"""DuckDB baseline for the fineo-batch compaction benchmark.

Usage: duckdb_compact.py STAGED_DIR OUT_DIR [--catalog DIR] [--threads N]
                         [--memory-limit SIZE] [--overwrite]

Does with DuckDB the core of what `fineo-batch compact` does to a staged archive
of gzip JSON Lines objects (SPEC sections 3, 4, 6), as a fair baseline:

1. reads every `*.gz` object below STAGED_DIR (newline-delimited JSON, gzip);
2. computes arrival order: delivery time from the Firehose key
   `...-YYYY-MM-DD-HH-mm-ss-<uuid>.gz` (else the file's mtime), then the key,
   then the line position within the object;
3. resolves metric aliases per tenant from the catalog directory (`<tenant>.json`);
4. deduplicates by (tenant, canonical metric, timestamp ms), keeping the latest
   arrival;
5. writes Parquet partitioned by tenant, metric, date (UTC day), rows sorted by
   timestamp.

Unlike fineo-batch it does no typed/untyped field resolution: every field column
DuckDB inferred is kept as read. Records without a tenant, metric or parseable
timestamp (and lines that are not JSON) are dropped and counted as bad_records.

Prints one JSON line:
  {"records_in": N, "rows_out": N, "duplicates": N, "bad_records": N,
   "seconds": S, "peak_rss_mb": M}
with records_in = rows_out + duplicates + bad_records.
"""

import argparse
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

import duckdb

# Firehose key suffix: <stream>-<version>-YYYY-MM-DD-HH-mm-ss-<uuid>[.ext]
DELIVERY_RE = re.compile(
    r"-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?:\.[^/]*)?$")


def delivery_ms(path, key):
    """Delivery time of an object in epoch ms: from its key, else its mtime."""
    m = DELIVERY_RE.search(key)
    if m:
        dt = datetime.strptime(m.group(1), "%Y-%m-%d-%H-%M-%S").replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    return int(os.stat(path).st_mtime * 1000)


def list_objects(staged):
    """[(path, key, delivery ms)] for every *.gz file below staged."""
    objects = []
    for root, dirs, files in os.walk(staged):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".gz"):
                path = os.path.join(root, name)
                key = os.path.relpath(path, staged).replace(os.sep, "/")
                objects.append((path, key, delivery_ms(path, key)))
    return objects


def load_aliases(catalog_dir):
    """[(tenant, name as sent, canonical metric)] from the catalog's <tenant>.json files."""
    rows = []
    if not catalog_dir:
        return rows
    for name in sorted(os.listdir(catalog_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(catalog_dir, name), encoding="utf-8") as f:
            doc = json.load(f)
        tenant = doc.get("tenant") or name[: -len(".json")]
        metrics = doc.get("metrics") or {}
        mapping = {canonical: canonical for canonical in metrics}
        for canonical, spec in metrics.items():
            for alias in (spec or {}).get("aliases", []):
                mapping.setdefault(alias, canonical)  # a canonical name wins over an alias
        rows.extend((tenant, sent, canonical) for sent, canonical in mapping.items())
    return rows


def setup(con, args, spill_dir):
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")  # rowid == position in scan order
    con.execute(f"SET temp_directory = '{spill_dir}'")
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    if args.memory_limit:
        con.execute(f"SET memory_limit = '{args.memory_limit}'")


def load_tables(con, objects, aliases):
    """Create `objects`, `aliases` and the raw `records` table (rowid = read order)."""
    con.execute("CREATE TABLE objects (path VARCHAR, key VARCHAR, delivery BIGINT)")
    con.executemany("INSERT INTO objects VALUES (?, ?, ?)", objects)
    con.execute("CREATE TABLE aliases (tenant VARCHAR, name VARCHAR, canonical VARCHAR)")
    if aliases:
        con.executemany("INSERT INTO aliases VALUES (?, ?, ?)", aliases)
    # Each line is read as one JSON value (no schema inference across thousands of files,
    # which exhausts DuckDB's memory at 5M records); the key fields are extracted from it and
    # the whole record is kept as the `fields` column.
    con.execute(
        "CREATE TABLE records AS SELECT json->>'tenant' AS tenant, json->>'metric' AS metric,"
        " json->>'timestamp' AS timestamp, json AS fields, __file FROM read_json($files,"
        " format = 'newline_delimited', compression = 'gzip', filename = '__file',"
        " records = false, ignore_errors = true)",
        {"files": [path for path, _, _ in objects]},
    )


def field_columns(con):
    names = [row[0] for row in con.execute("DESCRIBE records").fetchall()]
    reserved = {"tenant", "metric", "timestamp", "__file", "date"}
    return [n for n in names if n.lower() not in reserved]


# timestamp as read may be BIGINT, VARCHAR or JSON (mixed): digits are epoch ms,
# anything else is tried as an RFC 3339 / ISO timestamp.
TS_TEXT = "trim(CAST(r.timestamp AS VARCHAR), '\"')"
TS_MS = (f"CASE WHEN regexp_full_match({TS_TEXT}, '-?[0-9]+') THEN TRY_CAST({TS_TEXT} AS BIGINT)"
         f" ELSE epoch_ms(TRY_CAST({TS_TEXT} AS TIMESTAMPTZ)) END")


def compact(con, out_dir):
    """Resolve, dedup and write; return (rows_out, duplicates, bad_records)."""
    con.execute(f"""
        CREATE TEMP VIEW resolved AS
        SELECT r.*, CAST(r.tenant AS VARCHAR) AS __tenant,
               coalesce(a.canonical, CAST(r.metric AS VARCHAR)) AS __metric,
               {TS_MS} AS __ts, o.delivery AS __delivery, o.key AS __key, r.rowid AS __pos
        FROM records r
        JOIN objects o ON o.path = r.__file
        LEFT JOIN aliases a ON a.tenant = r.tenant AND a.name = r.metric""")
    good = "__tenant IS NOT NULL AND __metric IS NOT NULL AND __ts IS NOT NULL"
    bad = con.execute(f"SELECT count(*) FROM resolved WHERE NOT ({good})").fetchone()[0]
    fields = "".join(f', "{c}"' for c in field_columns(con))
    query = f"""
        SELECT __tenant AS tenant, __metric AS metric,
               strftime(epoch_ms(__ts), '%Y-%m-%d') AS date,
               epoch_ms(__ts) AS timestamp{fields}
        FROM resolved
        WHERE {good}
        QUALIFY row_number() OVER (PARTITION BY __tenant, __metric, __ts
                                   ORDER BY __delivery DESC, __key DESC, __pos DESC) = 1
        ORDER BY tenant, metric, timestamp"""
    result = con.execute(
        f"COPY ({query}) TO '{out_dir}' (FORMAT parquet, PARTITION_BY (tenant, metric, date))")
    rows_out = result.fetchone()[0]
    records_in = con.execute("SELECT count(*) FROM records").fetchone()[0]
    return records_in, rows_out, records_in - rows_out - bad, bad


def prepare_out_dir(out_dir, overwrite):
    if os.path.exists(out_dir) and os.listdir(out_dir):
        if not overwrite:
            sys.exit(f"duckdb_compact: {out_dir} is not empty (use --overwrite)")
        shutil.rmtree(out_dir)


def main():
    parser = argparse.ArgumentParser(description="DuckDB compaction baseline.")
    parser.add_argument("staged", help="staged archive directory (gzip JSON Lines objects)")
    parser.add_argument("out", help="output directory for partitioned Parquet")
    parser.add_argument("--catalog", help="catalog directory of <tenant>.json files")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 4GB")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    args = parser.parse_args()

    start = time.monotonic()
    prepare_out_dir(args.out, args.overwrite)
    objects = list_objects(args.staged)
    if not objects:
        sys.exit(f"duckdb_compact: no *.gz objects below {args.staged}")
    with tempfile.TemporaryDirectory(prefix="duckdb_compact-") as spill_dir:
        # A database file, so tables larger than memory_limit spill to disk.
        con = duckdb.connect(os.path.join(spill_dir, "bench.duckdb"))
        setup(con, args, spill_dir)
        load_tables(con, objects, load_aliases(args.catalog))
        records_in, rows_out, duplicates, bad = compact(con, os.path.abspath(args.out))
        con.close()
    seconds = time.monotonic() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"records_in": records_in, "rows_out": rows_out, "duplicates": duplicates,
                      "bad_records": bad, "seconds": round(seconds, 3),
                      "peak_rss_mb": round(peak_mb, 1)}))


if __name__ == "__main__":
    main()
