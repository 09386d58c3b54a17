#!/usr/bin/env bash
# Benchmark (not a test): fineo-batch compact vs DuckDB doing the same job on the same data.
# Usage: bench/run.sh [path/to/fineo-batch]   (make bench builds the dist binary first)
# Prints records/s and peak RSS per dataset and the throughput ratio to DuckDB.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/fineo-batch/target}/dist/fineo-batch}"
PY="${FINEO_PYTHON:-$REPO/.venv/bin/python}"
WORK="${BENCH_DIR:-${TMPDIR:-/tmp}/fineo-bench}"
# A set is <records>:<format>; an "mt-" prefix makes it production-shaped: 20 tenants x 5
# metrics of 8 declared fields (plus unknown ones), over 2 days (generate --tenants 20).
SIZES="${BENCH_SETS:-1000000:jsonl-gz 5000000:jsonl-gz 1000000:avro mt-1000000:jsonl-gz mt-5000000:jsonl-gz mt-1000000:avro}"
mkdir -p "$WORK"

# time_rss CMD...: runs CMD, prints "<seconds> <max RSS KiB>" on fd 3; stdout to $WORK/last.out
time_rss() {
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/last.out" 2> "$WORK/last.err" || {
    cat "$WORK/last.err" >&2; return 1; }
  cat "$WORK/time.txt"
}

# one_run LABEL I CMD...: run I of CMD (after `rm -rf` of $WORK/$LABEL), prints "<seconds> <max
# RSS KiB> I"; its stdout is kept in $WORK/$LABEL-I.out and, when CMD wrote a lake there, its run
# report in $WORK/$LABEL-I.report.json.
one_run() {
  local label="$1" i="$2" t report; shift 2
  rm -rf "${WORK:?}/$label"
  t=$(time_rss "$@") || return 1
  echo "$t $i"
  cp "$WORK/last.out" "$WORK/$label-$i.out"
  report=$(ls -t "$WORK/$label"/_runs/*.json 2>/dev/null | head -1 || true)
  [ -z "$report" ] || cp "$report" "$WORK/$label-$i.report.json"
}

# median_of FILE: the median line (by seconds) of FILE's "<seconds> <max RSS KiB> <run>" lines.
median_of() { sort -n "$1" | sed -n "$(( ($(wc -l < "$1") + 1) / 2 ))p"; }

# One run on this shared machine varies by 10-30%, and its speed drifts over minutes: each set
# runs $RUNS times and the median run is reported; against DuckDB the runs alternate in pairs
# (ABBA: fineo-batch first in odd pairs, DuckDB first in even ones), so each pair's ratio is
# taken at one moment of the machine, and the median of those ratios is the figure.
RUNS="${BENCH_RUNS:-3}"

# median_run LABEL CMD...: CMD $RUNS times (one_run), prints the median run's line.
median_run() {
  local label="$1" i; shift
  : > "$WORK/$label.runs"
  for i in $(seq "$RUNS"); do one_run "$label" "$i" "$@" >> "$WORK/$label.runs" || return 1; done
  median_of "$WORK/$label.runs"
}

# paired_runs: $RUNS pairs of the commands in the arrays OURS (fineo-batch, label lake) and DUCK
# (label duck) in ABBA order, into $WORK/lake.runs and $WORK/duck.runs; fails when fineo-batch
# fails. A DuckDB failure is kept in $WORK/duck.failed and DuckDB left out of the later pairs.
paired_runs() {
  local i
  : > "$WORK/lake.runs"; : > "$WORK/duck.runs"; rm -f "$WORK/duck.failed"
  for i in $(seq "$RUNS"); do
    (( i % 2 )) || duck_run "$i"
    one_run lake "$i" "${OURS[@]}" >> "$WORK/lake.runs" || return 1
    (( i % 2 == 0 )) || duck_run "$i"
  done
}
duck_run() {
  [ ! -e "$WORK/duck.failed" ] || return 0
  one_run duck "$1" "${DUCK[@]}" >> "$WORK/duck.runs" || cp "$WORK/last.err" "$WORK/duck.failed"
}

# pair_ratios: "<median ratio> <lowest> <highest>" of DuckDB's time over ours, pair by pair.
pair_ratios() {
  join -1 3 -2 3 <(sort -k3,3 "$WORK/lake.runs") <(sort -k3,3 "$WORK/duck.runs") |
    awk '{ print $4 / $2 }' | sort -g |
    awk '{ r[NR] = $1 } END { if (NR) printf "%.2fx %.2fx %.2fx\n", r[int((NR + 1) / 2)], r[1], r[NR] }'
}

# BENCH_ONLY=table runs only the table of data sets against DuckDB, BENCH_ONLY=backup or replay
# only the backup/restore and replay/diff parts (on the first data set), BENCH_ONLY=ingest only
# the ingest part, BENCH_ONLY=hourly only the hourly run into the production-shaped 1M lake,
# BENCH_ONLY=listing only the listing run over 10,000 and 100,000 small objects,
# BENCH_ONLY=fanout only the fan-out runs, BENCH_ONLY=bigpart only the one partition larger
# than memory.
ONLY="${BENCH_ONLY:-all}"
bytes_of() { du -sb --exclude=_runs "$1" | cut -f1; }
# files_bytes DIR NAME-PATTERN: bytes of the files below DIR matching the pattern (0 if none).
files_bytes() { [ -d "$1" ] && find "$1" -type f -name "$2" -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }' || echo 0; }

# gen_set NAME FORMAT DIR: generates data set NAME (`[mt-]<records>`) once.
gen_set() {
  local name="$1" fmt="$2" data="$3" n="${1#mt-}" shape=()
  [ "$name" = "$n" ] || shape=(--tenants 20 --metrics 5 --fields 8 --days 2)
  [ -f "$data/truth.json" ] && return 0
  rm -rf "$data"
  "$BIN" generate --out "$data" --records "$n" --format "$fmt" --seed 42 "${shape[@]}" > /dev/null
}

# phases REPORT: the run report's seconds per phase.
phases() {
  "$PY" -c 'import json,sys; p=json.load(open(sys.argv[1]))["phases"]; print("  phases:", ", ".join(f"{k} {v:.2f}s" for k, v in p.items()))' "$1"
}

# lake_bytes LAKE ARCHIVE: bytes per kind of file, and the data's ratio to the archive.
lake_bytes() {
  local typed untyped index archive
  typed=$(files_bytes "$1/typed" '*.parquet'); untyped=$(files_bytes "$1/untyped" '*')
  index=$(files_bytes "$1/_fineo/index" '*.parquet'); archive=$(bytes_of "$2")
  echo "  bytes: archive ${archive}, typed ${typed}, untyped ${untyped}, index ${index}, delta log $(files_bytes "$1/typed" '*.json'): data $(awk -v a="$((typed + untyped + index))" -v b="$archive" 'BEGIN { printf "%.2fx", a / b }') the archive"
}

printf '%-22s %10s %10s %12s %10s | %10s %12s %10s | %7s\n' dataset records seconds records/s rss_MiB duck_s duck_rec/s duck_MiB ratio
declare -A took
for set in $SIZES; do
  [ "$ONLY" = all ] || [ "$ONLY" = table ] || break
  n="${set%%:*}"; fmt="${set##*:}"
  data="$WORK/sample-$n-$fmt"
  gen_set "$n" "$fmt" "$data"
  records=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['records'])" "$data/truth.json")
  OURS=("$BIN" compact --staged "$data/staged" --lake "$WORK/lake" --catalog "$data/catalog")
  # DuckDB gets the memory it is said to need (4 GB, spilling past it); a failure is shown.
  DUCK=("$PY" "$REPO/bench/duckdb_compact.py" "$data/staged" "$WORK/duck" --catalog "$data/catalog"
    --threads "$(nproc)" --memory-limit "${DUCK_MEMORY:-4GB}")
  if [ "$fmt" = "jsonl-gz" ]; then
    paired_runs || exit 1
  else
    # DuckDB reads Avro only through an extension that cannot be downloaded here.
    median_run lake "${OURS[@]}" > /dev/null || exit 1
    : > "$WORK/duck.runs"; rm -f "$WORK/duck.failed"
  fi
  read -r secs rss run < <(median_of "$WORK/lake.runs")
  [ -n "$secs" ] || exit 1
  for i in $(seq "$RUNS"); do
    grep -q "conservation ok" "$WORK/lake-$i.out" || { echo "conservation check missing" >&2; exit 1; }
  done
  ours=$(awk -v r="$records" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
  [ "$fmt" = jsonl-gz ] && took["$n"]="$secs"
  pairs=""
  if [ -s "$WORK/duck.runs" ]; then
    read -r dsecs drss _ < <(median_of "$WORK/duck.runs")
    duck=$(awk -v r="$records" -v s="$dsecs" 'BEGIN { printf "%.0f", r / s }')
    read -r ratio lo hi < <(pair_ratios)
    pairs="  DuckDB / fineo-batch time, pair by pair: median $ratio, lowest $lo, highest $hi ($(wc -l < "$WORK/duck.runs") pairs; ratio of the medians $(awk -v a="$dsecs" -v b="$secs" 'BEGIN { printf "%.2fx", a / b }'))"
    dmib=$((drss / 1024))
  elif [ "$fmt" = "jsonl-gz" ]; then
    dsecs="failed"; duck="-"; dmib="-"; ratio="-"
  else
    dsecs="n/a"; duck="n/a"; dmib="n/a"; ratio="n/a"
  fi
  [ ! -e "$WORK/duck.failed" ] || echo "DuckDB failed on $n-$fmt: $(tail -1 "$WORK/duck.failed")" >&2
  printf '%-22s %10s %10s %12s %10s | %10s %12s %10s | %7s\n' "$n-$fmt" "$records" "$secs" "$ours" "$((rss / 1024))" "$dsecs" "$duck" "$dmib" "$ratio"
  [ -z "$pairs" ] || echo "$pairs"
  phases "$WORK/lake-$run.report.json"
  lake_bytes "$WORK/lake" "$data/staged"
done
if [ -n "${took[mt-1000000]:-}" ] && [ -n "${took[mt-5000000]:-}" ]; then
  echo "scaling: mt-5000000 took $(awk -v a="${took[mt-5000000]}" -v b="${took[mt-1000000]}" 'BEGIN { printf "%.2fx", a / b }') the mt-1000000 time (medians of $RUNS runs)"
fi

# Incremental hourly run (production-shaped 1M set): the lake holds every object delivered
# before the set's last full hour (1/48 of the set; the few stragglers delivered after it are
# left out); the run then finds that hour's objects, listing from the watermark. Its time
# against the partitions it touches and the records it brings: for the hour as generated (a
# few late records in every partition, reaching back into its last 6-hour window, which is then
# rewritten) and for the same hour in order (every partition appended to).
if [ "$ONLY" = all ] || [ "$ONLY" = hourly ]; then
  data="$WORK/sample-mt-1000000-jsonl-gz"; inc="$WORK/hourly"
  gen_set mt-1000000 jsonl-gz "$data"
  hour="2026/01/02/23"
  rm -rf "$inc" && mkdir -p "$inc" && cp -al "$data/staged" "$inc/staged" && mv "$inc/staged/$hour" "$inc/hour"
  rm -rf "$inc/staged/2026/01/03"
  "$BIN" compact --staged "$inc/staged" --lake "$inc/base" --catalog "$data/catalog" > /dev/null
  # The same hour in order: without its late records (re-deliveries, corrections, any record not
  # later than what the lake holds for its tenant and day), so every partition can append.
  mkdir -p "$inc/in-order"
  "$PY" - "$inc/base" "$inc/hour" "$inc/in-order" <<'PYEOF'
import datetime, glob, gzip, json, os, sys
import pyarrow.parquet as pq
base, hour, out = sys.argv[1:]
latest = {}
for f in glob.glob(f"{base}/_fineo/index/tenant=*/metric=*/date=*.parquet"):
    t, d = f.split("/")[-3][7:], f.split("/")[-1][5:15]
    md = pq.ParquetFile(f).metadata
    hi = max(md.row_group(i).column(0).statistics.max for i in range(md.num_row_groups))
    latest[(t, d)] = max(latest.get((t, d), hi), hi)
def ms(v):
    if isinstance(v, str) and not v.isdigit():
        return int(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
    return int(v)
for f in sorted(glob.glob(f"{hour}/*")):
    keep = []
    for line in gzip.open(f):
        try:
            r = json.loads(line); ts = ms(r["timestamp"])
            day = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
            if ts <= latest.get((r["tenant"], day), -1):
                continue
        except Exception:
            pass
        keep.append(line)
    with gzip.open(f"{out}/{os.path.basename(f)}", "wb") as g:
        g.write(b"".join(keep))
PYEOF
  # Three runs of each (a local lake's file creation varies with the file system's state): the
  # median run's report, and every run's time.
  for variant in hour in-order; do
    runs=()
    for i in 1 2 3; do
      rm -rf "$inc/lake" "$inc/staged/$hour" && cp -a "$inc/base" "$inc/lake" && cp -al "$inc/$variant" "$inc/staged/$hour"
      read -r hsecs hrss < <(time_rss "$BIN" compact --staged "$inc/staged" --lake "$inc/lake" --catalog "$data/catalog" --json)
      cp "$WORK/last.out" "$inc/report-$i.json"
      runs+=("$hsecs:$hrss:$inc/report-$i.json")
    done
    "$PY" - "$variant" "${runs[@]}" <<'PYEOF'
import json, sys
runs = sorted((float(s), int(k), f) for s, k, f in (a.split(":", 2) for a in sys.argv[2:]))
secs, rss, path = runs[len(runs) // 2]
r = json.load(open(path))
all_runs = ", ".join(f"{s:.2f}" for s, _, _ in runs)
parts = r["output"]["partitions_touched"]; recs = r["records"]["records_in"]
what = {"hour": "hourly run", "in-order": "the same hour in order"}[sys.argv[1]]
print(f"{what} into the 1M production-shaped lake: {r['objects']['read']} objects, {recs} records, "
      f"{parts} partitions touched ({r['output']['partitions_appended']} appended, "
      f"{r['output'].get('partitions_tail_rewritten', 0)} with their last window rewritten, "
      f"{r['records']['lake_records_replaced']} lake records replaced): {secs:.2f}s "
      f"({rss // 1024} MiB), {secs * 1000 / max(parts, 1):.1f} ms per touched partition "
      f"all included, {r['output']['bytes_written'] / 1e6:.1f} MB written; "
      f"phases {json.dumps({k: round(v, 2) for k, v in r.get('phases', {}).items()})}; "
      f"runs {all_runs}s (median shown)")
PYEOF
  done
fi

# Fan-out (SPEC 14) on the production-shaped 1M set: one process, then the same run fanned
# out into 2 and 4 units (read units, then merge units, each phase's units at once as separate
# processes, then the commit) on this machine's cores. Times per phase, the intermediate
# bucket files' bytes, each unit's peak RSS.
if [ "$ONLY" = all ] || [ "$ONLY" = fanout ]; then
  data="$WORK/sample-mt-1000000-jsonl-gz"; fo="$WORK/fanout"
  gen_set mt-1000000 jsonl-gz "$data"
  rm -rf "$fo" && mkdir -p "$fo"
  read -r secs rss < <(time_rss "$BIN" compact --staged "$data/staged" --lake "$fo/one" --catalog "$data/catalog")
  echo "fan-out: one process $secs s, peak $((rss / 1024)) MiB"
  for k in 2 4; do
    lake="$fo/lake-$k"; args=(--run bench --staged "$data/staged" --lake "$lake" --catalog "$data/catalog")
    t0=$(date +%s.%N)
    "$BIN" fanout plan "${args[@]}" --read-units "$k" --merge-units "$k" > /dev/null 2>&1
    t1=$(date +%s.%N)
    for step in read merge; do
      for u in $(seq 0 $((k - 1))); do
        /usr/bin/time -f "%M" -o "$fo/rss-$step-$u" "$BIN" fanout "$step" "${args[@]}" --unit "$u" > /dev/null 2> "$fo/err-$step-$u" &
      done
      wait
      declare "t_$step=$(date +%s.%N)"
    done
    inter=$(du -sb "$lake/_fineo/fanout/bench" | cut -f1)
    "$BIN" fanout commit "${args[@]}" > /dev/null 2>&1
    t4=$(date +%s.%N)
    # Data files, index and quarantine byte for byte (Delta logs hold commit times).
    files() { (cd "$1" && find typed untyped errors _fineo/index -type f ! -path '*/_delta_log/*' | sort | xargs md5sum); }
    same=$(diff <(files "$fo/one") <(files "$lake") > /dev/null && echo "same files as one process" || echo "FILES DIFFER")
    maxrss=$(cat "$fo"/rss-* | sort -n | tail -1)
    awk -v k="$k" -v a="$t0" -v b="$t1" -v c="$t_read" -v d="$t_merge" -v e="$t4" -v i="$inter" -v m="$maxrss" -v s="$same" 'BEGIN {
      printf "fan-out: %d units: %.2f s (plan %.2f, read %.2f, merge %.2f, commit %.2f), intermediate files %.1f MB, unit peak %d MiB; %s\n",
        k, e - a, b - a, c - b, d - c, e - d, i / 1e6, m / 1024, s }'
    rm -f "$fo"/rss-*
  done
fi

# One partition larger than memory (1 tenant, 1 metric, 1 day: 4M records in one partition),
# merged whole in memory (a budget so large it never spills) and through sorted runs on disk at
# the default budget and at 64 MiB; peak RSS, time, and whether the files are the same.
if [ "$ONLY" = all ] || [ "$ONLY" = bigpart ]; then
  data="$WORK/sample-onepart-4m"; bp="$WORK/bigpart"
  [ -f "$data/truth.json" ] || "$BIN" generate --out "$data" --records 4000000 --tenants 1 --metrics 1 --days 1 --seed 7 > /dev/null
  rm -rf "$bp" && mkdir -p "$bp"
  files() { (cd "$1" && find typed untyped errors _fineo/index -type f ! -path '*/_delta_log/*' | sort | xargs md5sum); }
  for mb in 65536 256 64; do
    read -r secs rss < <(time_rss "$BIN" compact --staged "$data/staged" --lake "$bp/lake-$mb" --catalog "$data/catalog" --memory-budget-mb "$mb" --report "$bp/report-$mb.json")
    disk=$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["output"]["partitions_merged_on_disk"], r["records"]["written"], r["spilled_bytes"] >> 20)' "$bp/report-$mb.json")
    same=$([ "$mb" = 65536 ] || { diff <(files "$bp/lake-65536") <(files "$bp/lake-$mb") > /dev/null && echo "; same files as in memory" || echo "; FILES DIFFER"; })
    read -r on_disk written spilled <<< "$disk"
    echo "one 4M-record partition, budget $mb MiB: ${secs}s, peak $((rss / 1024)) MiB, ${written} rows, merged on disk: ${on_disk}, spilled ${spilled} MiB${same}"
    phases "$bp/report-$mb.json"
  done
  rm -rf "$bp"
fi

# Cost that follows new input (SPEC 14): an archive of 10,000 or 100,000 small objects, already
# compacted, plus 50 new ones. The hourly run lists from the watermark and reads the ledger
# shards of the directories it listed; `--reconcile` lists and reads everything (what every
# run did before). BASE_BIN=<older fineo-batch> also times that binary on its own lake.
if [ "$ONLY" = all ] || [ "$ONLY" = listing ]; then
  tiny="$WORK/sample-tiny"
  [ -f "$tiny/truth.json" ] || "$BIN" generate --out "$tiny" --records 2000 --seed 3 --days 1 > /dev/null
  for count in 10000 100000; do
    for bin in "$BIN" ${BASE_BIN:-}; do
      arc="$WORK/many-$count"; rm -rf "$arc"
      "$PY" "$REPO/bench/many_objects.py" "$tiny" "$arc/staged" "$count" 20
      "$bin" compact --staged "$arc/staged" --lake "$arc/lake" --catalog "$tiny/catalog" > /dev/null
      "$PY" "$REPO/bench/many_objects.py" "$tiny" "$arc/staged" 0 20 --after 50
      label=$([ "$bin" = "$BIN" ] && echo "this build" || echo "BASE_BIN")
      read -r isecs irss < <(time_rss "$bin" compact --staged "$arc/staged" --lake "$arc/lake" --catalog "$tiny/catalog" --json)
      "$PY" - "$WORK/last.out" "$isecs" "$count" "$label" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); q = r.get("requests", {})
print(f"listing: {sys.argv[3]} compacted objects + 50 new, {sys.argv[4]}: {float(sys.argv[2]):.2f}s, "
      f"{r['objects']['listed']} listed, {r['objects']['read']} read, "
      f"requests {q.get('list', '?')} LIST / {q.get('get', '?')} GET / {q.get('put', '?')} PUT")
PYEOF
      if [ "$bin" = "$BIN" ]; then
        rm -f "$arc/staged/2026/03/22/00/"*; "$PY" "$REPO/bench/many_objects.py" "$tiny" "$arc/staged" 0 20 --after 50
        # The same 50 under new names, so the reconcile has the same work to do.
        for f in "$arc/staged/2026/03/22/00/"*; do mv "$f" "${f%.gz}-r.gz"; done
        read -r rsecs rrss < <(time_rss "$bin" compact --staged "$arc/staged" --lake "$arc/lake" --catalog "$tiny/catalog" --json --reconcile)
        "$PY" - "$WORK/last.out" "$rsecs" "$count" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); q = r["requests"]
print(f"listing: {sys.argv[3]} compacted objects + 50 new, --reconcile: {float(sys.argv[2]):.2f}s, "
      f"{r['objects']['listed']} listed, {r['objects']['read']} read, "
      f"requests {q['list']} LIST / {q['get']} GET / {q['put']} PUT")
PYEOF
      fi
    done
  done
fi

set_one="${SIZES%% *}"; n="${set_one%%:*}"; fmt="${set_one##*:}"; data="$WORK/sample-$n-$fmt"
gen_set "$n" "$fmt" "$data"

# Backup and restore (SPEC 11) on the first data set: compact it (catalog in the lake's store),
# back it up, back it up again unchanged, verify, verify --deep, restore every tenant-day into
# an empty lake; the restore's speed against the compaction of the same archive.
if [ "$ONLY" = all ] || [ "$ONLY" = backup ] || [ "$ONLY" = replay ]; then
# compact and restore each run three times into an empty lake, the ratio taken of the medians
# (single runs of these sub-4-second jobs vary by up to 40% on a shared machine).
median3() { sort -n | sed -n 2p; }
runs_c=(); runs_r=()
for _ in 1 2 3; do
  rm -rf "$WORK/lake"
  "$BIN" schema import --lake "$WORK/lake" "$data/catalog" > /dev/null
  runs_c+=("$(time_rss "$BIN" compact --staged "$data/staged" --lake "$WORK/lake")")
done
read -r csecs crss < <(printf '%s\n' "${runs_c[@]}" | median3)
rm -rf "$WORK/bk" "$WORK/restored"
read -r bsecs brss < <(time_rss "$BIN" backup --lake "$WORK/lake" --to "$WORK/bk")
read -r b2secs _ < <(time_rss "$BIN" backup --lake "$WORK/lake" --to "$WORK/bk")
read -r vsecs vrss < <(time_rss "$BIN" backup verify --from "$WORK/bk")
read -r dsecs drss < <(time_rss "$BIN" backup verify --from "$WORK/bk" --deep)
for _ in 1 2 3; do
  rm -rf "$WORK/restored"
  runs_r+=("$(time_rss "$BIN" restore --from "$WORK/bk" --lake "$WORK/restored")")
done
read -r rsecs rrss < <(printf '%s\n' "${runs_r[@]}" | median3)
lake_b=$(bytes_of "$WORK/lake"); bk_b=$(bytes_of "$WORK/bk")
echo "backup/restore on $n-$fmt ($(grep -c . <(find "$WORK/bk" -name manifest.json)) bundles):"
echo "  compact runs (s KiB): $(printf '%s; ' "${runs_c[@]}")restore runs: $(printf '%s; ' "${runs_r[@]}")"
echo "  compact ${csecs}s ($((crss / 1024)) MiB) | backup ${bsecs}s ($((brss / 1024)) MiB), unchanged again ${b2secs}s | verify ${vsecs}s ($((vrss / 1024)) MiB), --deep ${dsecs}s ($((drss / 1024)) MiB)"
echo "  restore into an empty lake ${rsecs}s ($((rrss / 1024)) MiB): $(awk -v c="$csecs" -v r="$rsecs" 'BEGIN { printf "%.1fx", c / r }') faster than compacting the archive (medians of 3)"
echo "  bytes: lake ${lake_b}, bundles ${bk_b} ($(awk -v a="$bk_b" -v b="$lake_b" 'BEGIN { printf "%.2f", a / b }') of the lake)"
fi

# Replay and diff (SPEC 12) on the same lake: one day's deliveries replayed vs the compaction of
# that day's objects from scratch; diff of two equal lakes (the lake and its restore); the whole
# archive replayed into a side lake with a catalog that types t01's boiler.fw, and its diff.
if [ "$ONLY" = all ] || [ "$ONLY" = backup ] || [ "$ONLY" = replay ]; then
  day_staged="$data/staged/2026/01/01"
  rm -rf "$WORK/day1" "$WORK/next" "$WORK/catalog-next"
  read -r dsecs drss < <(time_rss "$BIN" compact --staged "$day_staged" --lake "$WORK/day1" --catalog "$data/catalog")
  read -r rpsecs rprss < <(time_rss "$BIN" replay --staged "$data/staged" --lake "$WORK/lake" --since 2026-01-01 --until 2026-01-02)
  read -r deqsecs deqrss < <(time_rss "$BIN" diff --lake "$WORK/lake" --lake "$WORK/restored")
  cp -r "$data/catalog" "$WORK/catalog-next"
  "$PY" - "$WORK/catalog-next/t01.json" <<'PYEOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["metrics"]["boiler"]["fields"]["fw"] = {"type": "string", "aliases": []}
json.dump(doc, open(sys.argv[1], "w"))
PYEOF
  read -r nsecs nrss < <(time_rss "$BIN" replay --staged "$data/staged" --lake "$WORK/lake" --to "$WORK/next" --catalog "$WORK/catalog-next" --since 2026-01-01 --until 2026-02-01)
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" diff --lake "$WORK/lake" --lake "$WORK/next" > "$WORK/last.out" 2>&1 || true
  # (time(1) puts "Command exited with non-zero status 3" first: diff exits 3 on a difference)
  read -r dnsecs dnrss < <(tail -1 "$WORK/time.txt")
  echo "replay/diff on $n-$fmt:"
  echo "  replay of 2026-01-01's deliveries ${rpsecs}s ($((rprss / 1024)) MiB) vs compacting that day's objects from scratch ${dsecs}s ($((drss / 1024)) MiB)"
  echo "  diff of two equal lakes ${deqsecs}s ($((deqrss / 1024)) MiB); whole archive replayed into a side lake ${nsecs}s ($((nrss / 1024)) MiB), its diff (t01 boiler.fw typed) ${dnsecs}s ($((dnrss / 1024)) MiB): $(grep -c 'changed' "$WORK/last.out") differing partitions"
fi

# Ingest (SPEC 13): a 1M-row CSV (plain and gzip) and a 1M-row Parquet file (pyarrow) turned
# into staged objects, against DuckDB reading the same file and writing gzip JSON Lines.
if [ "$ONLY" = all ] || [ "$ONLY" = ingest ]; then
  exp="$WORK/exports-1m"
  [ -f "$exp/export.parquet" ] || "$PY" "$REPO/scripts/write_exports.py" "$exp" 1000000 --only csv,parquet --quiet
  echo "ingest of 1M-row exports:"
  for f in export.csv export.csv.gz export.parquet; do
    rm -rf "$WORK/ingest-staged" "$WORK/duck-ingest.json.gz"
    read -r isecs irss < <(time_rss "$BIN" ingest "$exp/$f" --tenant t07 --staged "$WORK/ingest-staged" --metric reading --timestamp-column ts)
    read -r dsecs _ < <(time_rss "$PY" "$REPO/bench/duckdb_ingest.py" "$exp/$f" "$WORK/duck-ingest.json.gz" --threads "$(nproc)")
    echo "  $f: ${isecs}s ($(awk -v s="$isecs" 'BEGIN { printf "%.0f", 1000000 / s }') rows/s, $((irss / 1024)) MiB) vs DuckDB ${dsecs}s: $(awk -v a="$dsecs" -v b="$isecs" 'BEGIN { printf "%.2fx", a / b }')"
  done
  # Memory stays bounded by settings, not by the file: a ~2 GB CSV (the 1M-row body 25 times).
  big="$WORK/export-2g.csv"
  if [ ! -f "$big" ]; then
    head -1 "$exp/export.csv" > "$big"
    for _ in $(seq 25); do tail -n +2 "$exp/export.csv" >> "$big"; done
  fi
  rm -rf "$WORK/ingest-staged"
  read -r bsecs brss < <(time_rss "$BIN" ingest "$big" --tenant t07 --staged "$WORK/ingest-staged" --metric reading --timestamp-column ts)
  echo "  export-2g.csv ($(($(stat -c %s "$big") >> 20)) MiB, 25M rows): ${bsecs}s, peak RSS $((brss / 1024)) MiB, staged $(($(bytes_of "$WORK/ingest-staged") >> 20)) MiB"
  rm -rf "$WORK/ingest-staged"
fi
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
