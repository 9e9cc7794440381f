#!/usr/bin/env bash
# The extension under valgrind's memcheck: tests/memcheck/script.sql in the system sqlite3
# shell, then the benchmark workloads (a bundled SQLite) on a few hundred rows. Fails on an
# invalid read or write, a double free, or memory the extension leaked for good ("definitely
# lost": memory nothing points to any more, such as what is left when SQLite unloads the
# library). Uninitialised-value reports are off: in safe Rust code they are valgrind's false
# positives (a niche-optimised enum read whole, e.g. Option<Value>).
# Without valgrind (macOS, or a machine without it) it says so and skips; .ci/run installs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXT=${CRR_EXTENSION:-./dist/crr}
SQLITE=${SQLITE3:-/usr/bin/sqlite3}
if ! command -v valgrind >/dev/null; then
  echo "memcheck: SKIPPED, valgrind is not installed (apt-get install valgrind)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() {
  local name=$1
  shift
  local rc=0
  valgrind -q --undef-value-errors=no --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 "$@" \
    > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [ "$rc" = 99 ]; then
    grep -v '^Runtime error' "$tmp/err" >&2
    echo "memcheck: $name: valgrind found errors (above)" >&2
    failed=$((failed + 1))
  elif [ "$expect" != any ] && [ "$rc" != 0 ]; then
    cat "$tmp/err" >&2
    echo "memcheck: $name: exit code $rc" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
}
passed=0
failed=0
# The script's errors are part of it (the shell goes on, and exits 1).
expect=any
sed "s|^\.load \./dist/crr\$|.load $EXT|" tests/memcheck/script.sql > "$tmp/script.sql"
check script "$SQLITE" -batch "$tmp/memcheck.db" < "$tmp/script.sql"
expect=0
for w in w1 w2 w3 w4 w5 w6 w6u w7; do
  CRR_EXTENSION=${CRR_EXTENSION:-dist/crr.so} check "workload $w" target/release/examples/workload "$w" crr 300
done
CRR_EXTENSION=${CRR_EXTENSION:-dist/crr.so} check "workload since" target/release/examples/workload since crr 3000
echo "memcheck: $passed passed, $failed failed"
[ "$failed" = 0 ]
