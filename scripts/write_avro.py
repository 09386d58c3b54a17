#!/usr/bin/env python3
"""Write Avro object container files described by a JSON spec (test fixtures).

Usage: write_avro.py SPEC.json OUT_DIR

SPEC.json:
    {"files": [{"name": "a.avro",
                "codec": "null|deflate|snappy|zstandard|bzip2|xz",   (default null; "zstd" = zstandard)
                "schema": <Avro schema JSON>,
                "records": [ {...}, ... ],
                "sync_interval": <int, optional: approx. bytes per block>,
                "metadata": {<str>: <str>, optional extra header metadata},
                "gzip": <bool, optional: gzip the finished file, like Firehose GZIP>,
                "truncate_bytes": <int, optional: cut this many bytes off the end>}]}

Records are plain JSON. `timestamp-millis` / `timestamp-micros` fields take plain
integers. Two escapes cover what JSON cannot say:
    {"$branch": "double", "value": 0.1}   -> pick that branch of a union
                                            (otherwise fastavro picks the first
                                            branch that fits, e.g. float for 0.1)
    {"$bytes": "<base64>"}                -> a bytes value
`name` may contain "/" to create subdirectories (e.g. a Firehose key layout).
Prints the path of every file written, one per line.
"""

import base64
import gzip
import json
import os
import sys

import fastavro

CODEC_ALIASES = {"zstd": "zstandard", "none": "null", None: "null"}


def convert(value):
    """Turn the JSON escapes above into the Python values fastavro expects."""
    if isinstance(value, dict):
        if set(value) == {"$branch", "value"}:
            return (value["$branch"], convert(value["value"]))
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert(v) for v in value]
    return value


def write_one(entry, out_dir):
    """Write one file of the spec; return its path."""
    path = os.path.join(out_dir, entry["name"])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    codec = CODEC_ALIASES.get(entry.get("codec"), entry.get("codec"))
    schema = fastavro.parse_schema(entry["schema"])
    records = [convert(r) for r in entry.get("records", [])]
    kwargs = {"codec": codec}
    if entry.get("sync_interval") is not None:
        kwargs["sync_interval"] = int(entry["sync_interval"])
    if entry.get("metadata"):
        kwargs["metadata"] = {str(k): str(v) for k, v in entry["metadata"].items()}
    with open(path, "wb") as fo:
        fastavro.writer(fo, schema, records, **kwargs)
    if entry.get("gzip"):
        with open(path, "rb") as fi:
            data = gzip.compress(fi.read())
        with open(path, "wb") as fo:
            fo.write(data)
    truncate_end(path, int(entry.get("truncate_bytes") or 0))
    return path


def truncate_end(path, n):
    """Cut n bytes off the end of the file (fabricates a truncated object)."""
    if n <= 0:
        return
    size = os.path.getsize(path)
    if n > size:
        sys.exit(f"write_avro: truncate_bytes={n} exceeds size {size} of {path}")
    os.truncate(path, size - n)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: write_avro.py SPEC.json OUT_DIR")
    with open(argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    os.makedirs(argv[2], exist_ok=True)
    for entry in spec["files"]:
        print(write_one(entry, argv[2]))


if __name__ == "__main__":
    main(sys.argv)
