#!/usr/bin/env bash
# Rewrite requirements.lock (runtime) and requirements-test.lock (runtime + the test extra)
# from pyproject.toml's exact pins: every package, dependencies of dependencies too, pinned
# with the hashes of all its files, for every platform and Python 3.11+. Run it after
# changing a pin in pyproject.toml; tests/test_lock.py fails while the two disagree.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8  # the lock tool itself is pinned, in a throwaway environment
tool=$(mktemp -d "${TMPDIR:-/tmp}/veritas-lock.XXXXXX")
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool"
"$tool/bin/pip" install -q "uv==$UV_VERSION"

compile() {
  "$tool/bin/uv" pip compile pyproject.toml --quiet --universal --python-version 3.11 \
    --generate-hashes --no-header --annotation-style line "$@"
}
{ echo "# Made by scripts/lock.sh from pyproject.toml; do not edit."; compile; } > requirements.lock
{ echo "# Made by scripts/lock.sh from pyproject.toml; do not edit."; compile --extra test; } \
  > requirements-test.lock
echo "lock: requirements.lock and requirements-test.lock rewritten"
