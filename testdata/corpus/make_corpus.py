#!/usr/bin/env python3
"""Rebuild the bad-input corpus: one directory per case, deterministic bytes.

Usage: make_corpus.py [OUT_DIR]      (default: the directory of this script)

Run with the test Python (fastavro): `.venv/bin/python testdata/corpus/make_corpus.py`.
Every case directory holds ONE staged object (`input.*`; the pipeline detects the
encoding from the bytes, never from the name) and `expect.json`:

    {"why": [...],                       decisions a reviewer should check
     "tenants": ["t1"],                  tenants whose data may appear in the lake
     "records_in", "written",            counts from the `compact --json` report
     "errors_by_reason": {code: n},      bad records (exact, all codes)
     "damaged": {code: n},               damaged objects / regions (objects.damaged, exact)
     "typed_rows", "untyped_lines",      output counts from the report
     "type_mismatches": {...},           exact
     "quarantine": [{"reason", "position": {...}, "raw"?, "raw_base64"?}, ...]
                                         every quarantine line, sorted by (reason, position
                                         record, line, block); position is a subset match
     "typed": {"<tenant>/<metric>": [rows]},          exact rows as lake_dump.py reads them
     "untyped": {"<tenant>/<metric>/<date>": [lines]}} exact lines (any order)

A long string is written {"$text": ["prefix", ["y", 65000], ...]} (pieces, a [char, count]
piece repeats char) and expanded by the test before comparing.

The shared catalog is `_catalog/t1.json`. Nothing here is random at run time: every byte
comes from fixed data or a seeded generator, so rerunning the script reproduces the
committed files exactly (CI can diff them).
"""

import base64
import gzip
import io
import json
import os
import random
import shutil
import sys
import zlib

import fastavro

T = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch ms
DAY = "2026-01-01"
SYNC = b"fineo-corpus-syn"  # a fixed Avro sync marker (16 bytes) so output is stable
MIB = 1 << 20

CATALOG = {
    "tenant": "t1",
    "metrics": {
        "boiler": {
            "aliases": ["machine1"],
            "fields": {
                "temperature": {"type": "double", "aliases": ["temp"]},
                "pressure": {"type": "long"},
            },
        }
    },
}

STAGED_SCHEMA = {
    "type": "record",
    "name": "StagedRecord",
    "fields": [
        {"name": "tenant", "type": "string"},
        {"name": "metric", "type": "string"},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "fields",
            "type": {
                "type": "map",
                "values": ["null", "boolean", "int", "long", "float", "double", "string"],
            },
        },
    ],
}


def text(*parts):
    """A long string in expect.json: {"$text": [str | [char, count], ...]}, expanded by the test."""
    return {"$text": [list(p) if isinstance(p, tuple) else p for p in parts]}


def jline(obj):
    """One JSON Lines record, compact, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def good(k, **extra):
    """A good boiler record at T+k (typed temperature and pressure)."""
    rec = {"tenant": "t1", "metric": "boiler", "timestamp": T + k,
           "temperature": 20.5 + k, "pressure": k}
    rec.update(extra)
    return rec


def row(k, temperature="default", pressure="default"):
    """The typed row lake_dump.py reads back for good(k)."""
    return {"date": DAY, "timestamp": T + k,
            "temperature": 20.5 + k if temperature == "default" else temperature,
            "pressure": k if pressure == "default" else pressure}


class Case:
    """Expected outcome of one case, built record by record."""

    def __init__(self, name, why, tenants=("t1",)):
        self.name = name
        self.why = why if isinstance(why, list) else [why]
        self.tenants = list(tenants)
        self.records_in = 0
        self.written = 0
        self.errors = {}
        self.damaged = {}
        self.quarantine = []
        self.typed = {}
        self.untyped = {}
        self.mismatches = {}
        self.typed_rows = 0
        self.untyped_lines = 0

    def keep(self, ts, typed=None, untyped=None, metric="boiler", tenant="t1", mismatches=()):
        """A record that must be written: its typed row (known metric) and untyped line."""
        self.records_in += 1
        self.written += 1
        if typed is not None:
            self.typed.setdefault(f"{tenant}/{metric}", []).append(typed)
            self.typed_rows += 1
        if untyped:
            line = {"timestamp": ts}
            line.update(untyped)
            self.untyped.setdefault(f"{tenant}/{metric}/{DAY}", []).append(line)
            self.untyped_lines += 1
        for f in mismatches:
            key = f"{tenant}/{metric}/{f}"
            self.mismatches[key] = self.mismatches.get(key, 0) + 1

    def bad(self, reason, position, **raw):
        """A bad record: counted in records_in and errors, one quarantine line."""
        self.records_in += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self.quarantine.append(dict(reason=reason, position=position, **raw))

    def damage(self, reason, position):
        """Damage to the object (no record): objects.damaged and one quarantine line."""
        self.damaged[reason] = self.damaged.get(reason, 0) + 1
        self.quarantine.append({"reason": reason, "position": position})

    def write(self, out_dir, filename, data):
        d = os.path.join(out_dir, self.name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, filename), "wb") as f:
            f.write(data)

        def order(q):
            p = q["position"]
            return (q["reason"], p.get("record", -1), p.get("line", -1), p.get("block", -1),
                    p.get("byte_offset", -1))

        for rows in self.typed.values():
            rows.sort(key=lambda r: r["timestamp"])
        doc = {
            "why": self.why,
            "tenants": self.tenants,
            "records_in": self.records_in,
            "written": self.written,
            "errors_by_reason": dict(sorted(self.errors.items())),
            "damaged": dict(sorted(self.damaged.items())),
            "typed_rows": self.typed_rows,
            "untyped_lines": self.untyped_lines,
            "type_mismatches": dict(sorted(self.mismatches.items())),
            "quarantine": sorted(self.quarantine, key=order),
            "typed": self.typed,
            "untyped": self.untyped,
        }
        with open(os.path.join(d, "expect.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")


# ---------------------------------------------------------------- JSON Lines helpers


class Lines:
    """Builds a JSON Lines payload and tracks positions the way the decoder reports them."""

    def __init__(self, case):
        self.case = case
        self.data = bytearray()
        self.line_no = 0
        self.ordinal = 0

    def _add(self, raw, newline=b"\n"):
        pos = {"record": self.ordinal, "line": self.line_no + 1, "byte_offset": len(self.data)}
        self.data += raw + newline
        self.line_no += 1
        return pos

    def blank(self, raw=b""):
        self._add(raw)

    def good(self, k, newline=b"\n", **extra):
        rec = good(k, **extra)
        self._add(jline(rec), newline)
        self.ordinal += 1
        untyped = {n: v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
                   for n, v in extra.items()}
        self.case.keep(T + k, typed=row(k), untyped=untyped)

    def keep(self, raw, ts, typed=None, untyped=None, metric="boiler", mismatches=()):
        self._add(raw)
        self.ordinal += 1
        self.case.keep(ts, typed=typed, untyped=untyped, metric=metric, mismatches=mismatches)

    def bad(self, raw, reason, text_raw=True):
        pos = self._add(raw)
        self.ordinal += 1
        try:
            extra = {"raw": raw.decode("utf-8")} if text_raw else {}
        except UnicodeDecodeError:
            extra = {"raw_base64": base64.b64encode(raw).decode()}
        self.case.bad(reason, pos, **extra)

    def bytes(self):
        return bytes(self.data)


def gz(data):
    """One gzip member, fixed header (mtime 0), like Firehose GZIP."""
    return gzip.compress(data, compresslevel=9, mtime=0)


# ---------------------------------------------------------------- Avro helpers


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_long(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def avro_file(records, codec="deflate", per_block=None, schema=STAGED_SCHEMA):
    """An Avro container written by fastavro; returns (bytes, [(start, end) of each block])."""
    buf = io.BytesIO()
    w = fastavro.write.Writer(buf, fastavro.parse_schema(schema), codec=codec,
                              sync_marker=SYNC, sync_interval=1 << 30)
    w.flush()
    header_end = buf.tell()
    blocks = []
    for i, rec in enumerate(records):
        w.write(rec)
        if per_block and (i + 1) % per_block == 0:
            start = buf.tell()
            w.flush()
            blocks.append((start, buf.tell()))
    start = buf.tell()
    w.flush()
    if buf.tell() > start:
        blocks.append((start, buf.tell()))
    data = buf.getvalue()
    assert data[header_end - 16:header_end] == SYNC
    return data, blocks, header_end


def avro_rec(k, **fields):
    """A staged Avro record at T+k with typed temperature/pressure and extra map fields."""
    f = {"temperature": ("double", 20.5 + k), "pressure": ("long", k)}
    f.update(fields)
    return {"tenant": "t1", "metric": "boiler", "timestamp": T + k, "fields": f}


def set_header_meta(data, key, value):
    """Rewrites one metadata entry of an Avro header (keeps the rest byte for byte)."""
    assert data[:4] == b"Obj\x01"
    pos = 4
    meta = []
    while True:
        count, pos = read_long(data, pos)
        if count == 0:
            break
        for _ in range(count):
            n, pos = read_long(data, pos)
            k = data[pos:pos + n].decode()
            pos += n
            n, pos = read_long(data, pos)
            meta.append((k, data[pos:pos + n]))
            pos += n
    rest = data[pos:]
    meta = [(k, value if k == key else v) for k, v in meta]
    out = bytearray(b"Obj\x01") + zigzag(len(meta))
    for k, v in meta:
        out += zigzag(len(k.encode())) + k.encode() + zigzag(len(v)) + v
    out += zigzag(0)
    return bytes(out) + rest


# ---------------------------------------------------------------- the cases


def case_gzip_truncated(out):
    c = Case("gzip_truncated", [
        "A gzip object cut off in the middle of its deflate stream (a partial upload).",
        "Every line that decompressed completely before the cut is kept (SPEC 8: records "
        "decoded before the damage); the partial last line is a truncated_object record "
        "with its raw text; the object is reported damaged (truncated_object) once.",
    ])
    rnd = random.Random(41)
    lines = Lines(c)
    payload = bytearray()
    notes = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40))
             for _ in range(8)]
    for k in range(8):
        payload += jline(good(k, note=notes[k])) + b"\n"
    comp = gz(bytes(payload))
    cut = comp[: len(comp) * 2 // 3]
    # What a deflate decoder can produce from the cut stream (zlib, independent of Rust).
    d = zlib.decompressobj(wbits=31)
    got = d.decompress(cut)
    assert not d.eof
    complete = got.count(b"\n")
    assert 2 <= complete < 7, complete
    for k in range(complete):
        lines.good(k, note=notes[k])
    partial = got[got.rfind(b"\n") + 1:]
    assert partial, "the cut must land inside a line"
    pos = {"record": complete, "line": complete + 1, "byte_offset": len(lines.data)}
    c.bad("truncated_object", pos, raw=partial.decode())
    c.damage("truncated_object", {"byte_offset": 0})
    c.write(out, "input.jsonl.gz", cut)


def members(*payloads):
    return [gz(p) for p in payloads]


def case_gzip_corrupt_member(out):
    c = Case("gzip_corrupt_member", [
        "Three concatenated gzip members; the middle one's first deflate block has the "
        "reserved block type 3, so it yields no data at all.",
        "Members before and after the damage are decoded (the decoder resynchronises at "
        "the next member header); the damaged member is one corrupt_object object line "
        "at its byte offset. Its records cannot be decoded, so they are not records_in.",
    ])
    a = b"".join(jline(good(k)) + b"\n" for k in range(3))
    b = b"".join(jline(good(k)) + b"\n" for k in range(3, 5))
    cc = b"".join(jline(good(k)) + b"\n" for k in range(5, 8))
    ma, mb, mc = members(a, b, cc)
    mb = bytearray(mb)
    assert b"\x1f\x8b\x08" not in bytes(mb[1:])
    mb[10] |= 0b110  # BTYPE = 11: reserved, "invalid block type"
    lines = Lines(c)
    for k in list(range(3)) + list(range(5, 8)):
        lines.good(k)
    c.damage("corrupt_object", {"byte_offset": len(ma)})
    c.write(out, "input.jsonl.gz", ma + bytes(mb) + mc)


def case_gzip_bad_crc_member(out):
    c = Case("gzip_bad_crc_member", [
        "Three concatenated gzip members; the middle one decompresses but its CRC-32 "
        "trailer does not match, so its content is not what was written.",
        "Decision: data from a member that failed its integrity check never reaches the "
        "lake (a flipped bit in a digit still parses). Each of its lines is quarantined as "
        "a corrupt_object record with its raw text (inspect and replay by hand); the member "
        "is one corrupt_object object line. Members before and after are kept.",
    ])
    a = b"".join(jline(good(k)) + b"\n" for k in range(3))
    b_lines = [jline(good(k)) for k in range(3, 5)]
    b = b"".join(x + b"\n" for x in b_lines)
    cc = b"".join(jline(good(k)) + b"\n" for k in range(5, 8))
    ma, mb, mc = members(a, b, cc)
    mb = bytearray(mb)
    mb[-8] ^= 0xFF  # first byte of the CRC-32 trailer
    lines = Lines(c)
    for k in range(3):
        lines.good(k)
    for x in b_lines:
        lines.bad(x, "corrupt_object")
    for k in range(5, 8):
        lines.good(k)
    c.damage("corrupt_object", {"byte_offset": len(ma)})
    c.write(out, "input.jsonl.gz", ma + bytes(mb) + mc)


def case_gzip_trailing_garbage(out):
    c = Case("gzip_trailing_garbage", [
        "A complete gzip member followed by bytes that are not a gzip member.",
        "The member's records are kept; the trailing bytes are one corrupt_object object "
        "line at their offset (trailing zero padding, by contrast, is ignored).",
    ])
    payload = b"".join(jline(good(k)) + b"\n" for k in range(3))
    m = gz(payload)
    lines = Lines(c)
    for k in range(3):
        lines.good(k)
    c.damage("corrupt_object", {"byte_offset": len(m)})
    c.write(out, "input.jsonl.gz", m + b"this is not gzip\n")


def case_avro_truncated(out):
    c = Case("avro_truncated", [
        "A deflate Avro container (4 blocks of 3 records) cut off inside block 2.",
        "Blocks 0 and 1 are kept; the truncated block is one truncated_object object line "
        "naming block 2; its records are not decodable, so not records_in.",
    ])
    data, blocks, _ = avro_file([avro_rec(k) for k in range(12)], per_block=3)
    assert len(blocks) == 4
    s, e = blocks[2]
    cut = data[: (s + e) // 2]
    for k in range(6):
        c.keep(T + k, typed=row(k))
    c.damage("truncated_object", {"block": 2, "record": 6})
    c.write(out, "input.avro", cut)


def case_avro_bad_sync(out):
    c = Case("avro_bad_sync", [
        "A deflate Avro container (4 blocks of 2 records) whose sync marker after block 1 "
        "is overwritten.",
        "Block 0 is kept. Block 1 cannot be verified (its framing check failed), so like a "
        "gzip member with a bad CRC its records are quarantined one by one as corrupt_object "
        "records with their content, never written. The decoder then resynchronises and "
        "keeps blocks 2 and 3 (Java's DataFileReader would stop at 'Invalid sync!').",
    ])
    data, blocks, _ = avro_file([avro_rec(k) for k in range(8)], per_block=2)
    assert len(blocks) == 4
    data = bytearray(data)
    e = blocks[1][1]
    assert data[e - 16:e] == SYNC
    data[e - 16:e] = b"\x00" * 16
    for k in range(2):
        c.keep(T + k, typed=row(k))
    for k in range(2, 4):
        raw = json.dumps({"tenant": "t1", "metric": "boiler", "timestamp": T + k,
                          "pressure": k, "temperature": 20.5 + k}, separators=(",", ":"))
        c.bad("corrupt_object", {"record": k, "block": 1}, raw=raw)
    c.damage("corrupt_object", {"block": 1, "record": 2})
    for k in range(4, 8):
        c.keep(T + k, typed=row(k))
    c.write(out, "input.avro", bytes(data))


def case_avro_block_length_lie(out):
    c = Case("avro_block_length_lie", [
        "Block 2 of 4 claims to be 2^40 bytes long (a damaged length field, or a hostile "
        "object trying to make the reader allocate a terabyte).",
        "Nothing that large is allocated: the claim is checked against the bytes present. "
        "Because the file's sync marker occurs again later, this is corruption, not "
        "truncation: block 2 is one corrupt_object object line and decoding resumes at the "
        "next sync marker, keeping blocks 0, 1 and 3.",
    ])
    data, blocks, _ = avro_file([avro_rec(k) for k in range(8)], per_block=2)
    s, e = blocks[2]
    count, p = read_long(data, s)
    size, p = read_long(data, p)
    assert count == 2 and p + size + 16 == e
    data = data[:s] + zigzag(2) + zigzag(1 << 40) + data[p:]
    for k in (0, 1, 2, 3, 6, 7):
        c.keep(T + k, typed=row(k))
    c.damage("corrupt_object", {"block": 2, "record": 4})
    c.write(out, "input.avro", data)


def case_avro_header_huge_length(out):
    c = Case("avro_header_huge_length", [
        "An Avro header whose first metadata value claims 2^60 bytes.",
        "The reader must not try to allocate it (apache-avro would allocate up to 512 MiB "
        "per claimed length, and abort the process on a huge map count). The object ends "
        "before its header says it should: one truncated_object object line, no records.",
    ])
    key = b"avro.schema"
    data = b"Obj\x01" + zigzag(1) + zigzag(len(key)) + key + zigzag(1 << 60) + b'{"type":'
    c.damage("truncated_object", {"byte_offset": 0})
    c.write(out, "input.avro", data)


def case_avro_unsupported_codec(out):
    c = Case("avro_unsupported_codec", [
        "An Avro container whose avro.codec is lz4 (not one of SPEC 3's codecs).",
        "The whole object is one corrupt_object object line naming the codec; no record "
        "can be decoded, so records_in is 0.",
    ])
    data, _, _ = avro_file([avro_rec(k) for k in range(3)], codec="null")
    data = set_header_meta(data, "avro.codec", b"lz4")
    c.damage("corrupt_object", {"byte_offset": 0})
    c.write(out, "input.avro", data)


def case_avro_invalid_utf8(out):
    c = Case("avro_invalid_utf8", [
        "A null-codec Avro container; the middle record's string field holds invalid UTF-8 "
        "(0xFF bytes).",
        "Only that record is bad: it is quarantined as a corrupt_object record (raw bytes in "
        "base64) and the records after it in the same block are still decoded.",
    ])
    recs = [avro_rec(0, note="ok-0"), avro_rec(1, note="XXXX"), avro_rec(2, note="ok-2")]
    data, blocks, _ = avro_file(recs, codec="null")
    assert data.count(b"XXXX") == 1
    data = data.replace(b"XXXX", b"\xff\xfeXX")
    c.keep(T, typed=row(0), untyped={"note": "ok-0"})
    c.bad("corrupt_object", {"record": 1, "block": 0})
    c.keep(T + 2, typed=row(2), untyped={"note": "ok-2"})
    c.write(out, "input.avro", data)


def case_avro_record_over_16mib(out):
    c = Case("avro_record_over_16mib", [
        "A deflate Avro container whose middle record carries a 17 MiB string.",
        "Same limit as a JSON line (16 MiB per record): that record is quarantined as "
        "record_too_large (raw cut to 64 KiB), its neighbours in the same block are kept.",
    ])
    big = "x" * (17 * MIB)
    recs = [avro_rec(0), avro_rec(1, blob=big), avro_rec(2)]
    data, _, _ = avro_file(recs, codec="deflate")
    c.keep(T, typed=row(0))
    c.bad("record_too_large", {"record": 1, "block": 0})
    c.keep(T + 2, typed=row(2))
    c.write(out, "input.avro.deflate", data)


def case_nan_infinity_avro(out):
    c = Case("nan_infinity_avro", [
        "Avro doubles that are NaN, +inf and -inf, in a declared double field and in an "
        "undeclared field.",
        "Decision: non-finite values are valid Avro but have no JSON form and break Delta "
        "min/max statistics, so they are never typed: the declared column is null, the "
        "value is kept as text (NaN, inf, -inf) in the untyped line under the name sent, and "
        "the report counts a type mismatch. No record is lost.",
    ])
    nan, inf = float("nan"), float("inf")
    recs = [avro_rec(0, ratio=("double", nan)),
            avro_rec(1, temperature=("double", nan)),
            avro_rec(2, temperature=("double", inf)),
            avro_rec(3, temperature=("double", -inf)),
            avro_rec(4)]
    data, _, _ = avro_file(recs, codec="snappy")
    c.keep(T, typed=row(0), untyped={"ratio": "NaN"})
    c.keep(T + 1, typed=row(1, temperature=None), untyped={"temperature": "NaN"},
           mismatches=["temperature"])
    c.keep(T + 2, typed=row(2, temperature=None), untyped={"temperature": "inf"},
           mismatches=["temperature"])
    c.keep(T + 3, typed=row(3, temperature=None), untyped={"temperature": "-inf"},
           mismatches=["temperature"])
    c.keep(T + 4, typed=row(4))
    c.write(out, "input.avro", data)


def case_wrong_magic(out):
    c = Case("wrong_magic", [
        "An Avro container whose magic says version 2 ('Obj' 0x02).",
        "Not gzip, not Avro version 1 and not text: one corrupt_object object line, no "
        "records.",
    ])
    data, _, _ = avro_file([avro_rec(k) for k in range(3)], codec="null")
    data = b"Obj\x02" + data[4:]
    c.damage("corrupt_object", {"byte_offset": 0})
    c.write(out, "input.avro", data)


def case_binary_garbage(out):
    c = Case("binary_garbage", [
        "768 bytes of seeded random binary.",
        "One corrupt_object object line with the bytes (base64), no records.",
    ])
    rnd = random.Random(7)
    data = bytes(rnd.randrange(256) for _ in range(768))
    assert data[0] not in b"{[\x1f" and 0 in data[:4096]
    c.damage("corrupt_object", {"byte_offset": 0})
    c.write(out, "input.bin", data)


def case_empty_zero_bytes(out):
    c = Case("empty_zero_bytes", "A 0-byte object: nothing to read, nothing quarantined, the "
             "run completes and the object is in the ledger.")
    c.write(out, "input", b"")


def case_empty_gzip(out):
    c = Case("empty_gzip", "A valid gzip member of an empty payload: no records, no damage.")
    c.write(out, "input.gz", gz(b""))


def case_empty_avro(out):
    c = Case("empty_avro", "An Avro container with a header and no blocks: no records, no "
             "damage.")
    data, blocks, _ = avro_file([], codec="deflate")
    assert not blocks
    c.write(out, "input.avro", data)


def case_blank_lines(out):
    c = Case("blank_lines", "A text object of blank lines (LF, CRLF, spaces, tabs) and a BOM: "
             "no records, nothing quarantined.")
    c.write(out, "input.jsonl", b"\xef\xbb\xbf\n\r\n   \n\t\t\n\n")


def case_line_over_16mib(out):
    c = Case("line_over_16mib", [
        "A gzip JSON Lines object whose second line is 16 MiB + 1 byte (stored compressed: "
        "the case file is small).",
        "That line is record_too_large (raw kept up to 64 KiB); the lines around it are "
        "kept. The limit is inclusive: a line of exactly 16 MiB is a normal record (the "
        "third line, whose 'blob' lands in the untyped output).",
    ])
    lines = Lines(c)
    lines.good(0)
    head = jline(good(1))[:-1] + b',"blob":"'
    over = head + b"y" * (16 * MIB + 1 - len(head) - 2) + b'"}'
    assert len(over) == 16 * MIB + 1
    pos = lines._add(over)
    lines.ordinal += 1
    c.bad("record_too_large", pos, raw=text(head.decode(), ("y", 64 * 1024 - len(head))))
    head = jline(good(2))[:-1] + b',"blob":"'
    n = 16 * MIB - len(head) - 2
    exact = head + b"z" * n + b'"}'
    assert len(exact) == 16 * MIB
    lines.keep(exact, T + 2, typed=row(2), untyped={"blob": text(("z", n))})
    lines.good(3)
    c.write(out, "input.jsonl.gz", gz(lines.bytes()))


def case_json_deep_nesting(out):
    c = Case("json_deep_nesting", [
        "Nested JSON values: 64 levels (kept), 200 levels and 100000 levels inside a field, "
        "and a top-level array nested 100000 deep.",
        "A nested value is kept as its compact JSON text in the untyped output (SPEC 3) as "
        "long as it parses within serde_json's depth limit of 128; deeper values are "
        "bad_json. Nothing recurses without bound (no stack overflow), the run completes.",
    ])
    lines = Lines(c)
    lines.good(0)
    deep64 = "[" * 63 + "{\"a\":1}" + "]" * 63
    rec = good(1)
    raw = jline(rec)[:-1] + b',"deep":' + deep64.encode() + b"}"
    lines.keep(raw, T + 1, typed=row(1), untyped={"deep": deep64})
    for depth in (200, 100_000):
        raw = jline(good(2))[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
        lines.bad(raw, "bad_json", text_raw=False)
    lines.bad(b"[" * 100_000 + b"]" * 100_000, "bad_json", text_raw=False)
    lines.good(5)
    c.write(out, "input.jsonl.gz", gz(lines.bytes()))


def case_invalid_utf8(out):
    c = Case("invalid_utf8", [
        "JSON Lines with a BOM, valid multi-byte text, and lines with invalid UTF-8: a "
        "Latin-1 byte, an overlong encoding of '/', an encoded surrogate, and an escaped "
        "lone surrogate (\\ud800).",
        "Each invalid line is bad_json with its raw bytes in base64 (raw_base64), the "
        "escaped surrogate's line as text; the valid lines, multi-byte text included, are "
        "kept. The BOM is not part of the first record.",
    ])
    lines = Lines(c)
    lines.data += b"\xef\xbb\xbf"
    rec = jline(good(0, note="café ✓ 😀"))
    lines.data += rec + b"\n"
    lines.line_no += 1
    lines.ordinal += 1
    c.keep(T, typed=row(0), untyped={"note": "café ✓ 😀"})
    base = jline(good(1))[:-1]
    lines.bad(base + b',"note":"caf\xe9"}', "bad_json")
    lines.bad(base + b',"a\xc0\xafb":"x"}', "bad_json")
    lines.bad(base + b',"note":"\xed\xa0\x80"}', "bad_json")
    lines.bad(base + b',"note":"\\ud800"}', "bad_json")
    lines.good(5, note="naïve")
    c.write(out, "input.jsonl", lines.bytes())


def case_json_malformed_lines(out):
    c = Case("json_malformed_lines", [
        "Lines that are not one JSON object: cut off, trailing garbage, two objects on a "
        "line, a raw NUL and a raw control character inside strings, top-level array / "
        "string / number / null, and {} (no tenant); CRLF line ends are fine.",
        "Each bad line is its own quarantine line (bad_json, or missing_field for {}); the "
        "good lines around them are kept. Decision: a NUL byte in a later line does not "
        "make the whole object 'binary' (only the first significant byte decides).",
    ])
    lines = Lines(c)
    lines.good(0, newline=b"\r\n")
    g = jline(good(1))
    lines.bad(g[:-10], "bad_json")
    lines.bad(g + b" x", "bad_json")
    lines.bad(g + g, "bad_json")
    lines.bad(g[:-1] + b',"note":"a\x00b"}', "bad_json")
    lines.bad(g[:-1] + b',"note":"a\x01b"}', "bad_json")
    lines.bad(b"[1,2]", "bad_json")
    lines.bad(b'"just a string"', "bad_json")
    lines.bad(b"42", "bad_json")
    lines.bad(b"null", "bad_json")
    lines.bad(b"{}", "missing_field", text_raw=False)
    lines.good(2, newline=b"\r\n")
    c.write(out, "input.jsonl", lines.bytes())


def case_nan_infinity_json(out):
    c = Case("nan_infinity_json", [
        "NaN, Infinity and -Infinity as JSON literals; \"NaN\" as a string and 1e999 (a "
        "number that overflows a double) in the declared double field.",
        "Decision: the literals are not JSON (RFC 8259), so those lines are bad_json with "
        "their raw text (Spark's allowNonNumericNumbers is a lenient extension we do not "
        "copy). A string or an overflowing number is valid JSON: the record is kept, the "
        "typed column is null, the value stays as sent in the untyped line, and a type "
        "mismatch is counted.",
    ])
    lines = Lines(c)
    lines.good(0)
    base = jline(good(1))
    for lit in (b"NaN", b"Infinity", b"-Infinity"):
        lines.bad(base.replace(b'"temperature":21.5', b'"temperature":' + lit), "bad_json")
    raw = base.replace(b'"temperature":21.5', b'"temperature":"NaN"')
    lines.keep(raw, T + 1, typed=row(1, temperature=None), untyped={"temperature": "NaN"},
               mismatches=["temperature"])
    raw = jline(good(2)).replace(b'"temperature":22.5', b'"temperature":1e999')
    lines.keep(raw, T + 2, typed=row(2, temperature=None), untyped={"temperature": "1e999"},
               mismatches=["temperature"])
    lines.good(3)
    c.write(out, "input.jsonl", lines.bytes())


def case_duplicate_keys(out):
    c = Case("duplicate_keys", [
        "One JSON object with the same key twice: a field, the tenant, and a key spelled "
        "with a \\u escape the second time.",
        "Which value is meant is ambiguous (parsers differ: first wins, last wins, error), "
        "so the record is duplicate_key, never guessed. Keys that differ only in case are "
        "different fields and are kept.",
    ])
    lines = Lines(c)
    lines.good(0)
    lines.bad(b'{"tenant":"t1","metric":"boiler","timestamp":%d,"temperature":1,'
              b'"temperature":2}' % (T + 1), "duplicate_key")
    lines.bad(b'{"tenant":"t1","metric":"boiler","tenant":"t2","timestamp":%d}' % (T + 2),
              "duplicate_key")
    lines.bad(b'{"tenant":"t1","metric":"boiler","timestamp":%d,"note":"a",'
              b'"no\\u0074e":"b"}' % (T + 3), "duplicate_key")
    lines.good(4, Note="A", note="a")
    c.write(out, "input.jsonl", lines.bytes())


def case_timestamps(out):
    c = Case("timestamps", [
        "Timestamps out of range, negative, before 1970 as RFC 3339, fractional, too big "
        "for i64, non-numeric, boolean, object, empty, null and absent; and the accepted "
        "edges.",
        "Decision (SPEC 3: ms since the Unix epoch; the code's range 1970-01-01 .. "
        "9999-12-31T23:59:59.999Z): negative or pre-1970 times are bad_timestamp, not "
        "silently clamped: for IoT devices they are clock faults, and Delta date "
        "partitions before 1970 would hide them. 0 and 253402300799999 are kept, as are a "
        "digit string and an RFC 3339 time with an offset. Null or absent is missing_field.",
    ])
    lines = Lines(c)

    def ts_line(ts_json, k):
        return (b'{"tenant":"t1","metric":"boiler","timestamp":' + ts_json +
                b',"temperature":%s}' % str(20.5 + k).encode())

    lines.keep(ts_line(b"0", 0), 0, typed=dict(row(0), date="1970-01-01", timestamp=0,
                                                 pressure=None))
    lines.keep(ts_line(b"253402300799999", 1), 253402300799999,
               typed=dict(row(1), date="9999-12-31", timestamp=253402300799999,
                          pressure=None))
    lines.keep(ts_line(b'"%d"' % (T + 2), 2), T + 2, typed=dict(row(2), pressure=None))
    lines.keep(ts_line(b'"2026-01-01T01:00:00.003+01:00"', 3), T + 3,
               typed=dict(row(3), pressure=None))
    for k, raw in enumerate([b"-1", b'"1969-12-31T23:59:59Z"', b"253402300800000",
                             b'"99999999999999999999"', b"99999999999999999999", b"1.5e12",
                             b"%d.5" % T, b'"yesterday"', b'""', b"true", b'{"ms":1}',
                             b'"2026-13-01T00:00:00Z"', b'"-5"'], start=4):
        lines.bad(ts_line(raw, k), "bad_timestamp")
    lines.bad(ts_line(b"null", 17), "missing_field")
    lines.bad(b'{"tenant":"t1","metric":"boiler","temperature":1.5}', "missing_field")
    lines.good(19)
    # The boundary rows live in other date partitions; the expected table is sorted.
    c.write(out, "input.jsonl", lines.bytes())


def case_tenant_ids(out):
    c = Case("tenant_ids", [
        "Tenant ids that are not [A-Za-z0-9][A-Za-z0-9_.-]{0,127} without '..' (SPEC 3): "
        "path tricks (../x, a/b, ., .., t1/../t2, %2e), look-alikes (Cyrillic а in tаnant, "
        "fullwidth ｔ１, a trailing space or newline, NUL), empty, 129 characters, "
        "leading '-', a number; and a missing tenant.",
        "Each is bad_tenant (missing: missing_field) and its quarantine line goes to "
        "errors/tenant=_unknown: a tenant id that failed validation never becomes part of "
        "a path. Good t1 records are kept.",
    ], tenants=["t1"])
    lines = Lines(c)
    lines.good(0)
    bad = ["../x", "a/b", ".", "..", "t1/../t2", "t1%2e", "tаnant", "ｔ１", "t1 ", "t1\n",
           "t1\u0000", "", "a" * 129, "-t1", "t1..x"]
    for k, t in enumerate(bad, start=1):
        rec = good(k)
        rec["tenant"] = t
        lines.bad(jline(rec), "bad_tenant")
    rec = good(20)
    rec["tenant"] = 17
    lines.bad(jline(rec), "bad_tenant")
    rec = good(21)
    del rec["tenant"]
    lines.bad(jline(rec), "missing_field")
    lines.good(22)
    c.write(out, "input.jsonl", lines.bytes())


def case_metric_names(out):
    c = Case("metric_names", [
        "Metric names with '/', '=', '%', a newline, a tab, '.', '..', '../../etc', an "
        "already-escaped-looking 'a%2Fb', non-ASCII, and lengths 256 (ASCII and 2-byte "
        "UTF-8: 768 bytes once escaped) and 257 bytes; an empty and a numeric metric.",
        "Every name of 1..256 bytes is valid (SPEC 3) and kept under the name sent (unknown "
        "metrics: untyped output only); in paths it is Hive-escaped, so no segment is '.' "
        "or '..' or holds a raw '/', and 'a/b' and 'a%2Fb' stay distinct tables. A name "
        "whose escaped form is too long for one path segment (a file name is at most 255 "
        "bytes on most filesystems; before the fix the whole run failed with 'File name too "
        "long') gets a shortened segment: the escaped prefix of whole characters, '!', and "
        "a 128-bit hash of the name (escaping never produces '!', so it stays unique); the "
        "full name stays in the partition index. Readers of the directory names see the "
        "shortened form (the test maps expected names through names::metric_segment). Over "
        "256 bytes is name_too_long; empty or not a string is missing_field.",
    ])
    lines = Lines(c)
    lines.good(0)
    names = ["a/b", "a%2Fb", "x=y", "50%", "line\nbreak", "tab\there", ".", "..",
             "../../etc", "ünïcödé", "m" * 256, "é" * 128]
    for k, m in enumerate(names, start=1):
        rec = {"tenant": "t1", "metric": m, "timestamp": T + k, "v": str(k)}
        lines.keep(jline(rec), T + k, metric=m, untyped={"v": str(k)})
    rec = {"tenant": "t1", "metric": "m" * 257, "timestamp": T + 30, "v": "x"}
    lines.bad(jline(rec), "name_too_long")
    rec = {"tenant": "t1", "metric": "é" * 128 + "x", "timestamp": T + 31, "v": "x"}
    lines.bad(jline(rec), "name_too_long")
    rec = {"tenant": "t1", "metric": "", "timestamp": T + 32, "v": "x"}
    lines.bad(jline(rec), "missing_field")
    rec = {"tenant": "t1", "metric": 7, "timestamp": T + 33, "v": "x"}
    lines.bad(jline(rec), "missing_field")
    lines.good(40)
    c.write(out, "input.jsonl", lines.bytes())


def case_field_names(out):
    c = Case("field_names", [
        "Field names with '/', '=', '%', a newline, '.', '..', a space, a quote, a "
        "backslash, non-ASCII, 256 and 257 bytes, and an empty name, on a declared metric.",
        "Field names never become paths; undeclared ones are kept as keys of the untyped "
        "line exactly as sent (JSON-escaped there). A name over 256 bytes or empty makes "
        "the record name_too_long (SPEC 3: names are 1..256 bytes), the rest are kept.",
    ])
    lines = Lines(c)
    lines.good(0)
    odd = {"a/b": "1", "x=y": "2", "50%": "3", "new\nline": "4", ".": "5", "..": "6",
           "sp ace": "7", 'quo"te': "8", "back\\slash": "9", "ünï": "10", "f" * 256: "11"}
    lines.good(1, **odd)
    rec = good(2)
    rec["g" * 257] = "x"
    lines.bad(jline(rec), "name_too_long")
    rec = good(3)
    rec[""] = "x"
    lines.bad(jline(rec), "name_too_long")
    lines.good(4)
    c.write(out, "input.jsonl", lines.bytes())


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(out, "_catalog"), exist_ok=True)
    with open(os.path.join(out, "_catalog", "t1.json"), "w") as f:
        json.dump(CATALOG, f, indent=1)
        f.write("\n")
    for name in os.listdir(out):
        if not name.startswith("_") and os.path.isdir(os.path.join(out, name)):
            shutil.rmtree(os.path.join(out, name))
    for case in CASES:
        case(out)
    print(f"{len(CASES)} cases in {out}")


if __name__ == "__main__":
    main()
