"""Builds a staged archive of many small Firehose objects for the listing benchmark.

Usage: many_objects.py SAMPLE STAGED COUNT PER_HOUR [--after N]

SAMPLE is a `generate` output (jsonl-gz); each object written holds one record taken from
its objects in turn. COUNT objects go into consecutive hours ending 2026-03-21 23:00
(PER_HOUR each), hard-linked to a few distinct files so 100,000 objects cost seconds.
With --after N, N new objects go into 2026-03-22 00:00 instead (the next hourly run's input).
"""

import datetime
import gzip
import os
import sys


def records(sample):
    """The first line of every staged object of the sample."""
    out = []
    for root, _, files in os.walk(os.path.join(sample, "staged")):
        for f in sorted(files):
            if f.endswith(".gz"):
                with gzip.open(os.path.join(root, f), "rt") as fh:
                    out.append(fh.readline())
    return out[:50]


def key(t, n):
    """A Firehose object key delivered at time `t`, unique by `n`."""
    return (f"{t:%Y/%m/%d/%H}/fineo-staged-1-{t:%Y-%m-%d-%H-%M-%S}-"
            f"{n:08x}-0000-4000-8000-{n:012x}.gz")


def main():
    sample, staged, count, per_hour = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    after = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--after" else None
    templates = os.path.join(staged, "..", "templates")
    os.makedirs(templates, exist_ok=True)
    paths = []
    for i, line in enumerate(records(sample)):
        p = os.path.join(templates, f"{i}.gz")
        with open(p, "wb") as fh:
            fh.write(gzip.compress(line.encode(), mtime=0))
        paths.append(p)
    end = datetime.datetime(2026, 3, 21, 23)
    if after is not None:
        hours, count, start, base = 1, after, end + datetime.timedelta(hours=1), 10_000_000
    else:
        hours = (count + per_hour - 1) // per_hour
        start, base = end - datetime.timedelta(hours=hours - 1), 0
    for n in range(count):
        t = start + datetime.timedelta(hours=n // per_hour if after is None else 0,
                                       seconds=n % per_hour if after is None else n)
        dest = os.path.join(staged, key(t, base + n))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.link(paths[n % len(paths)], dest)


if __name__ == "__main__":
    main()
