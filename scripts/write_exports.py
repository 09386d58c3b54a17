#!/usr/bin/env python3
"""Write customer export files for the ingest tests, with other implementations than
fineo-batch's: CSV with Python's csv module, Parquet with pyarrow, Avro with fastavro.

Usage: write_exports.py OUT_DIR ROWS [--only csv,parquet] [--quiet]

Writes, from the same ROWS rows (deterministic):
  export.csv            comma CSV with a UTF-8 BOM, quoted fields holding commas, quotes and
                        newlines; ids with leading zeros and over 18 digits
  export-semicolon.csv.gz   the same with ';' delimiters, gzip
  export.jsonl          JSON Lines, with a nested object and array per row
  export.parquet        pyarrow, timestamp[ms, tz=UTC], a struct and a list column (nested)
  export-<codec>.avro   fastavro, one per codec: null deflate snappy zstandard bzip2 xz
and prints the rows as JSON (what every file holds) on stdout.
Columns: ts (epoch ms, or a timestamp type), device (text id, leading zeros), serial (19
digits), temp (double), count (long), ok (boolean), note (text), site (text, sometimes empty).
"""

import csv
import gzip
import io
import json
import os
import sys

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def rows(n):
    out = []
    for i in range(n):
        out.append({
            "ts": BASE + i * 60_000 + (i % 7),
            "device": f"{i % 13:03d}",
            "serial": str(1_000_000_000_000_000_000 + i),
            "temp": round(20.0 + (i % 50) * 0.25 - 3.5, 2),
            "count": i * 3 - 40,
            "ok": i % 3 != 0,
            "note": ['plain', 'with, comma', 'with "quotes"', 'two\nlines'][i % 4],
            "site": "" if i % 5 == 0 else f"site-{i % 4}",
        })
    return out


def write_csv(path, data, delimiter=",", bom=True, gz=False):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    cols = list(data[0])
    w.writerow(cols)
    for r in data:
        w.writerow(["true" if v is True else "false" if v is False else v for v in (r[c] for c in cols)])
    text = ("\ufeff" if bom else "") + buf.getvalue()
    raw = text.encode("utf-8")
    if gz:
        raw = gzip.compress(raw)
    with open(path, "wb") as f:
        f.write(raw)


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    only = None
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    want = lambda kind: only is None or kind in only
    os.makedirs(out, exist_ok=True)
    data = rows(n)
    if want("csv"):
        write_csv(os.path.join(out, "export.csv"), data)
        write_csv(os.path.join(out, "export.csv.gz"), data, gz=True)
    if want("csv-semicolon"):
        write_csv(os.path.join(out, "export-semicolon.csv.gz"), data, delimiter=";", bom=False, gz=True)
    if want("parquet"):
        write_parquet(out, data)
    if want("jsonl"):
        write_jsonl(out, data)
    if want("avro"):
        write_avro(out, data)
    if "--quiet" not in sys.argv:
        json.dump(data, sys.stdout)


def write_jsonl(out, data):
    with open(os.path.join(out, "export.jsonl"), "w") as f:
        for r in data:
            f.write(json.dumps({**r, "nested": {"a": r["count"], "b": [1, 2]}}) + "\n")


def write_parquet(out, data):
    table = pa.table({
        "ts": pa.array(data and [r["ts"] for r in data], type=pa.timestamp("ms", tz="UTC")),
        "device": [r["device"] for r in data],
        "serial": [r["serial"] for r in data],
        "temp": pa.array([r["temp"] for r in data], type=pa.float64()),
        "count": pa.array([r["count"] for r in data], type=pa.int64()),
        "ok": [r["ok"] for r in data],
        "note": [r["note"] for r in data],
        "site": [r["site"] or None for r in data],
        "nested": [{"a": r["count"], "b": [1, 2]} for r in data],
    })
    pq.write_table(table, os.path.join(out, "export.parquet"))


def write_avro(out, data):
    schema = {
        "type": "record", "name": "Export",
        "fields": [
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "device", "type": "string"},
            {"name": "serial", "type": "string"},
            {"name": "temp", "type": "double"},
            {"name": "count", "type": "long"},
            {"name": "ok", "type": "boolean"},
            {"name": "note", "type": "string"},
            {"name": "site", "type": ["null", "string"]},
        ],
    }
    for codec in ["null", "deflate", "snappy", "zstandard", "bzip2", "xz"]:
        recs = [{**r, "site": r["site"] or None} for r in data]
        with open(os.path.join(out, f"export-{codec}.avro"), "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), recs, codec=codec)


if __name__ == "__main__":
    main()
