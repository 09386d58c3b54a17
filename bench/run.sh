#!/usr/bin/env bash
# Benchmark (not a test): fineo-batch compact vs DuckDB doing the same job on the same data.
# Usage: bench/run.sh [path/to/fineo-batch]   (make bench builds the release binary first)
# Prints records/s and peak RSS per dataset and the throughput ratio to DuckDB.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/fineo-batch/target}/release/fineo-batch}"
PY="${FINEO_PYTHON:-$REPO/.venv/bin/python}"
WORK="${BENCH_DIR:-${TMPDIR:-/tmp}/fineo-bench}"
SIZES="${BENCH_SETS:-1000000:jsonl-gz 5000000:jsonl-gz 1000000:avro}"
mkdir -p "$WORK"

# time_rss CMD...: runs CMD, prints "<seconds> <max RSS KiB>" on fd 3; stdout to $WORK/last.out
time_rss() {
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/last.out" 2> "$WORK/last.err" || {
    cat "$WORK/last.err" >&2; return 1; }
  cat "$WORK/time.txt"
}

# BENCH_ONLY=backup runs only the backup/restore part (on the first data set).
ONLY="${BENCH_ONLY:-all}"
bytes_of() { du -sb --exclude=_runs "$1" | cut -f1; }

printf '%-22s %10s %10s %12s %10s | %10s %12s %10s | %7s\n' dataset records seconds records/s rss_MiB duck_s duck_rec/s duck_MiB ratio
for set in $SIZES; do
  [ "$ONLY" = all ] || break
  n="${set%%:*}"; fmt="${set##*:}"
  data="$WORK/sample-$n-$fmt"
  if [ ! -f "$data/truth.json" ]; then
    rm -rf "$data"
    "$BIN" generate --out "$data" --records "$n" --format "$fmt" --seed 42 > /dev/null
  fi
  records=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['records'])" "$data/truth.json")
  rm -rf "$WORK/lake"
  read -r secs rss < <(time_rss "$BIN" compact --staged "$data/staged" --lake "$WORK/lake" --catalog "$data/catalog")
  grep -q "conservation ok" "$WORK/last.out" || { echo "conservation check missing" >&2; exit 1; }
  ours=$(awk -v r="$records" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
  if [ "$fmt" = "jsonl-gz" ]; then
    rm -rf "$WORK/duck"
    # DuckDB gets the memory it is said to need (4 GB, spilling past it); a failure is shown.
    if read -r dsecs drss < <(time_rss "$PY" "$REPO/bench/duckdb_compact.py" "$data/staged" "$WORK/duck" \
        --catalog "$data/catalog" --threads "$(nproc)" --memory-limit "${DUCK_MEMORY:-4GB}"); then
      duck=$(awk -v r="$records" -v s="$dsecs" 'BEGIN { printf "%.0f", r / s }')
      ratio=$(awk -v a="$ours" -v b="$duck" 'BEGIN { printf "%.2fx", a / b }')
      dmib=$((drss / 1024))
    else
      dsecs="failed"; duck="-"; dmib="-"; ratio="-"
      echo "DuckDB failed on $n-$fmt: $(tail -1 "$WORK/last.err")" >&2
    fi
  else
    # DuckDB reads Avro only through an extension that cannot be downloaded here.
    dsecs="n/a"; duck="n/a"; dmib="n/a"; ratio="n/a"
  fi
  printf '%-22s %10s %10s %12s %10s | %10s %12s %10s | %7s\n' "$n-$fmt" "$records" "$secs" "$ours" "$((rss / 1024))" "$dsecs" "$duck" "$dmib" "$ratio"
done

set_one="${SIZES%% *}"; n="${set_one%%:*}"; fmt="${set_one##*:}"; data="$WORK/sample-$n-$fmt"
if [ ! -f "$data/truth.json" ]; then
  "$BIN" generate --out "$data" --records "$n" --format "$fmt" --seed 42 > /dev/null
fi

# Backup and restore (SPEC 11) on the first data set: compact it (catalog in the lake's store),
# back it up, back it up again unchanged, verify, verify --deep, restore every tenant-day into
# an empty lake; the restore's speed against the compaction of the same archive.
rm -rf "$WORK/lake" "$WORK/bk" "$WORK/restored"
"$BIN" schema import --lake "$WORK/lake" "$data/catalog" > /dev/null
read -r csecs crss < <(time_rss "$BIN" compact --staged "$data/staged" --lake "$WORK/lake")
read -r bsecs brss < <(time_rss "$BIN" backup --lake "$WORK/lake" --to "$WORK/bk")
read -r b2secs _ < <(time_rss "$BIN" backup --lake "$WORK/lake" --to "$WORK/bk")
read -r vsecs vrss < <(time_rss "$BIN" backup verify --from "$WORK/bk")
read -r dsecs drss < <(time_rss "$BIN" backup verify --from "$WORK/bk" --deep)
read -r rsecs rrss < <(time_rss "$BIN" restore --from "$WORK/bk" --lake "$WORK/restored")
lake_b=$(bytes_of "$WORK/lake"); bk_b=$(bytes_of "$WORK/bk")
echo "backup/restore on $n-$fmt ($(grep -c . <(find "$WORK/bk" -name manifest.json)) bundles):"
echo "  compact ${csecs}s ($((crss / 1024)) MiB) | backup ${bsecs}s ($((brss / 1024)) MiB), unchanged again ${b2secs}s | verify ${vsecs}s ($((vrss / 1024)) MiB), --deep ${dsecs}s ($((drss / 1024)) MiB)"
echo "  restore into an empty lake ${rsecs}s ($((rrss / 1024)) MiB): $(awk -v c="$csecs" -v r="$rsecs" 'BEGIN { printf "%.1fx", c / r }') faster than compacting the archive"
echo "  bytes: lake ${lake_b}, bundles ${bk_b} ($(awk -v a="$bk_b" -v b="$lake_b" 'BEGIN { printf "%.2f", a / b }') of the lake)"
[ "$ONLY" = all ] || exit 0

# The cost of schema proposals and of re-typing, on the first data set: the same compaction
# without proposals (best of 3 each way), then a re-typing run after a catalog change that
# types one unknown field (`fw`) of every tenant's boiler.
set_one="${SIZES%% *}"; n="${set_one%%:*}"; fmt="${set_one##*:}"; data="$WORK/sample-$n-$fmt"
best() { sort -n | head -1; }
with=$(for i in 1 2 3; do rm -rf "$WORK/lake"; time_rss "$BIN" compact --staged "$data/staged" --lake "$WORK/lake" --catalog "$data/catalog" | cut -d' ' -f1; done | best)
without=$(for i in 1 2 3; do rm -rf "$WORK/lake"; time_rss "$BIN" compact --staged "$data/staged" --lake "$WORK/lake" --catalog "$data/catalog" --no-proposals | cut -d' ' -f1; done | best)
echo "proposals on $n-$fmt: ${with}s with, ${without}s without ($(awk -v a="$with" -v b="$without" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'))"
rm -rf "$WORK/lake" "$WORK/catalog2"
"$BIN" schema import --lake "$WORK/lake" "$data/catalog" > /dev/null
"$BIN" compact --staged "$data/staged" --lake "$WORK/lake" > /dev/null
for t in t01 t02 t03; do
  "$BIN" schema accept --lake "$WORK/lake" --tenant "$t" --metric boiler --field fw > /dev/null
done
read -r rsecs rrss < <(time_rss "$BIN" compact --staged "$data/staged" --lake "$WORK/lake")
echo "re-typing after accepting boiler.fw for 3 tenants: ${rsecs}s, peak $((rrss / 1024)) MiB; $(grep 're-typed' "$WORK/last.out" | sed 's/^ *//')"
