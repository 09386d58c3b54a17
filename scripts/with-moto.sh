#!/usr/bin/env bash
# Runs a command with a real S3 server beside it: moto in server mode on 127.0.0.1, from the
# project's venv (installed here if missing, pinned in scripts/pyenv.sh), on a free port,
# with one bucket for the tests. The command sees FINEO_S3_ENDPOINT and FINEO_S3_BUCKET; the
# server is stopped by its PID when the command ends, whatever its exit status.
#
# Usage: scripts/with-moto.sh COMMAND [ARGS...]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FINEO_VENV:-$REPO/.venv}"
"$REPO/scripts/pyenv.sh" moto
PY="$VENV/bin/python"

port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="${TMPDIR:-/tmp}/fineo-moto-$port.log"
"$PY" -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap stop EXIT

endpoint="http://127.0.0.1:$port"
bucket="fineo-test"
# Ready-wait: up to 30 s for the server to answer, then create the bucket.
"$PY" - "$endpoint" "$bucket" "$pid" <<'PYEOF'
import os, sys, time, urllib.request
endpoint, bucket, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
        break
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("with-moto.sh: moto exited before it was ready")
        if time.time() > deadline:
            sys.exit("with-moto.sh: moto did not answer within 30 s")
        time.sleep(0.1)
req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
urllib.request.urlopen(req, timeout=5).read()
PYEOF

export FINEO_S3_ENDPOINT="$endpoint" FINEO_S3_BUCKET="$bucket"
echo "with-moto.sh: moto S3 at $endpoint (pid $pid), bucket $bucket" >&2
set +e
"$@"
status=$?
set -e
if [[ $status -ne 0 && -s "$log" ]]; then
  echo "with-moto.sh: last lines of the moto log:" >&2
  tail -n 20 "$log" >&2
fi
exit "$status"
