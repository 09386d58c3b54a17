#!/usr/bin/env python3
"""Dump a fineo-batch lake (local directory) as one canonical JSON document.

Usage: lake_dump.py LAKE_DIR [--totals-only] [--s3-lake s3://bucket/prefix]

The lake is read with engines other than fineo-batch, so the Rust tests can
compare it with what the tool reports (SPEC sections 5, 7, 8):

* typed Delta tables  LAKE/typed/tenant=<t>/metric=<m>/   (partitioned by `date`)
  are read three ways and must agree row for row (as multisets):
    1. deltalake: DeltaTable(path).to_pyarrow_table()
    2. DuckDB read_parquet() over exactly the active files of the Delta log
       (DeltaTable.file_uris()), hive_partitioning=true for `date`
    3. DuckDB over the deltalake pyarrow dataset (duckdb.from_arrow)
  If they disagree the script exits 1 naming the table.
* untyped JSON Lines  LAKE/untyped/tenant=<t>/metric=<m>/date=<d>/*.jsonl
* quarantine          LAKE/errors/tenant=<t>/date=<d>/*.jsonl

Directory values are Hive-style percent-encoded; they are decoded here.

Output (json.dumps(..., sort_keys=True), one document on stdout):
  {"typed":   [{"tenant", "metric", "version", "files",
                "columns": [[name, arrow type], ...]   (Delta schema, no `date`),
                "rows": [{"date": "YYYY-MM-DD", "timestamp": <epoch ms>, <field>: value|null}, ...]
               }, ...]                                  sorted by (tenant, metric);
                                                        rows by (timestamp, date)
   "untyped": [{"tenant", "metric", "date", "count", "lines": [{...}, ...]}, ...]
                                                        lines by (timestamp, json text)
   "errors":  {"by_reason": {reason: n}, "by_tenant": {tenant dir value: n},
               "lines": [{...}, ...]}                   lines by (object, position json)
   "totals":  {"typed_rows": n, "untyped_lines": n, "error_lines": n}}
With --totals-only only the "totals" object is printed.

Normalization: timestamps -> integer epoch milliseconds (floor), dates ->
'YYYY-MM-DD', float32 values -> the Python float of the stored value.

With --s3-lake, LAKE_DIR is a local mirror of that S3 lake, and every typed
table is also read straight from S3 by deltalake (endpoint and credentials from
the AWS_* environment): its rows must equal the mirror's, and the output gains
"s3_tables_checked": n.

Note: deltalake (delta-rs) percent-decodes local table paths, so a table whose
path contains '%' (e.g. metric=a%25b) cannot be opened in place; such a table is
read from a hard-linked mirror under a temporary directory instead.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
from collections import Counter

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

SAFE_PATH = re.compile(r"[A-Za-z0-9._=/-]+")


def fail(msg):
    print(f"lake_dump: {msg}", file=sys.stderr)
    sys.exit(1)


def canon(obj):
    return json.dumps(obj, sort_keys=True)


def hive_dirs(parent, key):
    """Yield (decoded value, path) for the `key=value` subdirectories of parent."""
    if not os.path.isdir(parent):
        return
    prefix = key + "="
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        if name.startswith(prefix) and os.path.isdir(path):
            yield urllib.parse.unquote(name[len(prefix):]), path


def jsonl_lines(directory):
    """Yield (file path, line number, parsed object) of every *.jsonl file in directory."""
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not (name.endswith(".jsonl") and os.path.isfile(path)):
            continue
        with open(path, encoding="utf-8") as f:
            for number, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    fail(f"{path}:{number}: not valid JSON: {e}")
                if not isinstance(obj, dict):
                    fail(f"{path}:{number}: not a JSON object")
                yield path, number, obj


# ---------------------------------------------------------------- typed tables


def mirror_if_needed(path, scratch):
    """Return a path delta-rs can open: path itself, or a hard-linked copy of it."""
    if SAFE_PATH.fullmatch(path):
        return path
    dest = os.path.join(scratch, f"t{len(os.listdir(scratch))}")

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(path, dest, copy_function=link_or_copy)
    return dest


def normalize(table, columns):
    """Arrow table -> list of row dicts over `columns` (+ date), canonical values."""
    out = {}
    for name in columns + ["date"]:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            micros = pc.cast(col, pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
            out[name] = [None if v is None else v // 1000 for v in micros.to_pylist()]
            continue
        if pa.types.is_date(col.type):
            col = pc.cast(col, pa.string())
        out[name] = col.to_pylist()
    return [dict(zip(out, values)) for values in zip(*out.values())]


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def read_duckdb_files(con, files, columns):
    """DuckDB over exactly the given parquet files, `date` from the hive path."""
    if not files:
        return None
    select = ", ".join(quote_ident(c) for c in columns + ["date"])
    rel = con.sql(
        f"SELECT {select} FROM read_parquet($files, hive_partitioning=true,"
        " union_by_name=true, hive_types={'date': 'DATE'})",
        params={"files": files},
    )
    return rel.to_arrow_table()


def read_duckdb_dataset(con, dataset, columns):
    """DuckDB over the deltalake pyarrow dataset."""
    exprs = [duckdb.ColumnExpression(c) for c in columns + ["date"]]
    return con.from_arrow(dataset).select(*exprs).to_arrow_table()


def multiset(rows):
    return Counter(canon(r) for r in rows)


def dump_typed_table(tenant, metric, path, scratch):
    label = f"typed table tenant={tenant!r} metric={metric!r} ({path})"
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        print(f"lake_dump: warning: {label} has no Delta log; skipped", file=sys.stderr)
        return None
    readable = mirror_if_needed(path, scratch)
    dt = DeltaTable(readable)
    schema = pa.schema(dt.schema().to_arrow())
    if "date" not in schema.names or "timestamp" not in schema.names:
        fail(f"{label}: schema lacks `date` or `timestamp`: {schema}")
    columns = [f.name for f in schema if f.name != "date"]

    via_delta = normalize(dt.to_pyarrow_table(), columns)
    con = duckdb.connect()
    files = dt.file_uris()
    duck_files = read_duckdb_files(con, files, columns)
    via_files = normalize(duck_files, columns) if duck_files is not None else []
    via_dataset = normalize(read_duckdb_dataset(con, dt.to_pyarrow_dataset(), columns), columns)
    con.close()

    reference = multiset(via_delta)
    for engine, rows in (("duckdb read_parquet(file_uris)", via_files),
                         ("duckdb from_arrow(dataset)", via_dataset)):
        other = multiset(rows)
        if other != reference:
            only_delta = list((reference - other).elements())[:3]
            only_other = list((other - reference).elements())[:3]
            fail(f"{label}: deltalake and {engine} disagree "
                 f"({len(via_delta)} vs {len(rows)} rows); "
                 f"only in deltalake: {only_delta}; only in {engine}: {only_other}")

    via_delta.sort(key=lambda r: (r["timestamp"], r["date"], canon(r)))
    return {
        "tenant": tenant,
        "metric": metric,
        "version": dt.version(),
        "files": len(files),
        "columns": [[f.name, str(f.type)] for f in schema if f.name != "date"],
        "rows": via_delta,
    }


def dump_typed(lake):
    tables = []
    with tempfile.TemporaryDirectory(prefix="lake_dump-") as scratch:
        for tenant, tenant_dir in hive_dirs(os.path.join(lake, "typed"), "tenant"):
            for metric, table_dir in hive_dirs(tenant_dir, "metric"):
                table = dump_typed_table(tenant, metric, os.path.abspath(table_dir), scratch)
                if table is not None:
                    tables.append(table)
    tables.sort(key=lambda t: (t["tenant"], t["metric"]))
    return tables


# ---------------------------------------------------------------- untyped / errors


def untyped_order(line):
    ts = line.get("timestamp")
    return (ts if isinstance(ts, int) else float("inf"), canon(line))


def dump_untyped(lake):
    groups = []
    for tenant, tenant_dir in hive_dirs(os.path.join(lake, "untyped"), "tenant"):
        for metric, metric_dir in hive_dirs(tenant_dir, "metric"):
            for date, date_dir in hive_dirs(metric_dir, "date"):
                lines = [obj for _, _, obj in jsonl_lines(date_dir)]
                lines.sort(key=untyped_order)
                groups.append({"tenant": tenant, "metric": metric, "date": date,
                               "count": len(lines), "lines": lines})
    groups.sort(key=lambda g: (g["tenant"], g["metric"], g["date"]))
    return groups


def dump_errors(lake):
    lines, by_tenant = [], Counter()
    for tenant, tenant_dir in hive_dirs(os.path.join(lake, "errors"), "tenant"):
        for _date, date_dir in hive_dirs(tenant_dir, "date"):
            for _, _, obj in jsonl_lines(date_dir):
                lines.append(obj)
                by_tenant[tenant] += 1
    lines.sort(key=lambda o: (str(o.get("object")), canon(o.get("position")), canon(o)))
    by_reason = Counter(str(o.get("reason")) for o in lines)
    return {"by_reason": dict(by_reason), "by_tenant": dict(by_tenant), "lines": lines}


def s3_storage_options():
    opts = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                        "AWS_SECRET_ACCESS_KEY", "AWS_REGION") if k in os.environ}
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def check_typed_on_s3(s3_lake, typed):
    """Reads every table of the mirror's dump straight from S3; returns how many."""
    opts = s3_storage_options()
    for t in typed:
        segs = ["typed", "tenant=" + t["tenant"], "metric=" + t["metric"]]
        url = s3_lake.rstrip("/") + "/" + "/".join(urllib.parse.quote(x, safe="=") for x in segs)
        dt = DeltaTable(url, storage_options=opts)
        columns = [c for c, _ in t["columns"]]
        rows = normalize(dt.to_pyarrow_table(), columns)
        if multiset(rows) != multiset(t["rows"]) or dt.version() != t["version"]:
            fail(f"{url}: deltalake over S3 reads {len(rows)} rows at version {dt.version()}, "
                 f"the mirror {len(t['rows'])} at version {t['version']}")
    return len(typed)


def main():
    parser = argparse.ArgumentParser(description="Dump a fineo-batch lake as canonical JSON.")
    parser.add_argument("lake", help="local lake directory")
    parser.add_argument("--totals-only", action="store_true", help="print only the totals")
    parser.add_argument("--s3-lake", help="the S3 lake LAKE mirrors: read its tables there too")
    args = parser.parse_args()
    if not os.path.isdir(args.lake):
        fail(f"not a directory: {args.lake}")

    typed, untyped, errors = dump_typed(args.lake), dump_untyped(args.lake), dump_errors(args.lake)
    totals = {
        "typed_rows": sum(len(t["rows"]) for t in typed),
        "untyped_lines": sum(g["count"] for g in untyped),
        "error_lines": len(errors["lines"]),
    }
    doc = totals if args.totals_only else {
        "typed": typed, "untyped": untyped, "errors": errors, "totals": totals}
    if args.s3_lake:
        doc["s3_tables_checked"] = check_typed_on_s3(args.s3_lake, typed)
    print(json.dumps(doc, sort_keys=True))
    # The dump is complete: leave without the interpreter's teardown, where the native thread
    # pools of deltalake/pyarrow (S3 clients) now and then abort with "terminate called without
    # an active exception" after everything was read and printed.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
