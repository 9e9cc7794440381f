#!/usr/bin/env bash
# The extension loaded from other languages, each with the SQLite its package carries:
# Python through apsw (replicas.py), Node.js through better-sqlite3 (replicas.js); and replicas
# on two versions of SQLite, apsw's and the system shell's, that must converge (versions.py).
# The packages are installed here on first use, pinned, from PyPI and the npm registry
# (better-sqlite3 compiles its SQLite then: about 70 s once); later runs reuse them.
# CRR_LANG_TESTS=0 skips both (e.g. offline on a machine that never installed them).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${CRR_LANG_TESTS:-1}" = 0 ]; then
  echo "lang: skipped (CRR_LANG_TESTS=0)"
  exit 0
fi
APSW=apsw==3.54.1.0
dir=tests/lang
for tool in python3 node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "lang: $tool not found: install it, or skip these tests with CRR_LANG_TESTS=0" >&2
    exit 1
  fi
done

if [ "$(cat "$dir/python/.installed" 2>/dev/null)" != "$APSW" ]; then
  rm -rf "$dir/python"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dir/python" "$APSW" 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
  python3 -c "import sys; sys.path.insert(0, '$dir/python'); import apsw" || { echo "lang: could not install $APSW" >&2; exit 1; }
  echo "$APSW" > "$dir/python/.installed"
fi
if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.crr-lock" 2>/dev/null; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$dir/node_modules/.crr-lock"
fi

passed=0 failed=0
run() {
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
run env PYTHONPATH="$dir/python" python3 "$dir/replicas.py"
run env PYTHONPATH="$dir/python" python3 "$dir/versions.py"
run node "$dir/replicas.js"
echo "lang: $passed passed, $failed failed"
[ "$failed" = 0 ]
