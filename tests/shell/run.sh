#!/usr/bin/env bash
# The extension in the system sqlite3 shell (SQLite 3.40 on Debian 12): `.load ./dist/crr`
# and a short tour whose output must match tests/shell/tour.expected exactly.
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLITE=${SQLITE3:-/usr/bin/sqlite3}
if ! command -v "$SQLITE" >/dev/null; then
  echo "shell test: $SQLITE not found" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$SQLITE" -batch "$tmp/tour.db" < tests/shell/tour.sql > "$tmp/out.txt" 2>&1 || true
if ! diff -u tests/shell/tour.expected "$tmp/out.txt"; then
  echo "shell test: output differs from tests/shell/tour.expected (SQLite $("$SQLITE" --version | cut -d' ' -f1))" >&2
  echo "shell: 0 passed, 1 failed"
  exit 1
fi
echo "shell: 1 passed, 0 failed"
