#!/usr/bin/env bash
# The README's Run command as a new user meets it: a fresh virtualenv, the locked runtime
# packages (hash-checked, no test extras), `pip install --no-deps -e .`, `veritas serve` on the embedded database (DATABASE_URL unset), `veritas demo`,
# then a demo student and a demo teacher log in over HTTP. The server is stopped by its PID,
# and its embedded PostgreSQL must stop with it. Any failure fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$(mktemp -d "${TMPDIR:-/tmp}/veritas-smoke.XXXXXX")
venv="$root/venv"            # apart from the test suite's .venv
data="$root/data"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
password="Smoke-test-pass-2026!"
server_pid=""
# A new user's environment: none of the settings CI exports for the test suite.
as_new_user=(-u DATABASE_URL -u JWT_SECRET -u REDIS_URL -u DEBUG -u LOG_LEVEL
             VERITAS_DATA_DIR="$data")

fail() { echo "smoke: FAILED: $*" >&2; echo "--- server output" >&2; cat "$root/serve.log" >&2 || true; exit 1; }
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  # A PostgreSQL left behind by a failed run would outlive CI: stop it by its own PID file.
  if [ -f "$data/pg/postmaster.pid" ]; then
    kill -QUIT "$(head -1 "$data/pg/postmaster.pid")" 2>/dev/null || true
  fi
  rm -rf "$root"
}
trap cleanup EXIT

# GET or POST (JSON body) with the standard library only; prints the status code.
http() {
  python3 - "$@" <<'EOF'
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
body = json.dumps(json.loads(sys.argv[2])).encode() if len(sys.argv) > 2 else None
request = urllib.request.Request(url, data=body,
                                 headers={"Content-Type": "application/json"} if body else {})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
EOF
}

echo "== smoke: the README's Run command in a fresh virtualenv ($venv)"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --require-hashes -r requirements.lock
"$venv/bin/pip" install -q --no-deps -e .

echo "== smoke: veritas serve on the embedded database, port $port"
env "${as_new_user[@]}" "$venv/bin/veritas" serve --port "$port" >"$root/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 180); do
  kill -0 "$server_pid" 2>/dev/null || fail "veritas serve exited before /healthz answered"
  [ "$(http "$base/healthz")" = 200 ] && break
  sleep 1
done
[ "$(http "$base/healthz")" = 200 ] || fail "/healthz did not answer 200 within 180 s"
grep -q "serving on $base" "$root/serve.log" || fail "serve did not say where it serves"
grep -q "veritas demo" "$root/serve.log" || fail "serve did not name the next step on an empty database"

echo "== smoke: veritas demo"
env "${as_new_user[@]}" "$venv/bin/veritas" demo --students 4 --password "$password" >"$root/demo.log" 2>&1 \
  || { cat "$root/demo.log" >&2; fail "veritas demo failed"; }
student=$(sed -n 's/^a student: //p' "$root/demo.log")
teacher=$(sed -n 's/^teachers: \([^,]*\).*/\1/p' "$root/demo.log")
[ -n "$student" ] && [ -n "$teacher" ] || { cat "$root/demo.log" >&2; fail "demo named no accounts"; }

for who in "$student" "$teacher"; do
  status=$(http "$base/api/auth/login" "{\"email\": \"$who\", \"password\": \"$password\"}")
  [ "$status" = 200 ] || fail "login as $who answered $status"
  echo "smoke: login as $who: 200"
done

echo "== smoke: stop the server by its PID"
kill -TERM "$server_pid"
for _ in $(seq 1 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 1; done
kill -0 "$server_pid" 2>/dev/null && fail "veritas serve still runs 60 s after SIGTERM"
wait "$server_pid" || true
server_pid=""
for _ in $(seq 1 20); do [ -f "$data/pg/postmaster.pid" ] || break; sleep 0.5; done
[ -f "$data/pg/postmaster.pid" ] && fail "the embedded PostgreSQL still runs after the server stopped"
ps -eo args | grep -F -- "$data/pg" | grep -v grep && fail "a postgres process for $data/pg remains"
if grep -Eq "Traceback|Warning" "$root/serve.log" "$root/demo.log"; then
  fail "a traceback or warning was printed"
fi
echo "smoke: passed"
