#!/usr/bin/env bash
# The extension in the system sqlite3 shell (SQLite 3.40 on Debian 12): `.load ./dist/crr`
# and a short tour whose output must match tests/shell/tour.expected exactly; and a replica's
# .dump restored through a shell that loads the extension first.
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLITE=${SQLITE3:-/usr/bin/sqlite3}
if ! command -v "$SQLITE" >/dev/null; then
  echo "shell test: $SQLITE not found" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
"$SQLITE" -batch "$tmp/tour.db" < tests/shell/tour.sql > "$tmp/out.txt" 2>&1 || true
if diff -u tests/shell/tour.expected "$tmp/out.txt"; then
  passed=$((passed + 1))
else
  echo "shell test: output differs from tests/shell/tour.expected (SQLite $("$SQLITE" --version | cut -d' ' -f1))" >&2
  failed=$((failed + 1))
fi

# A replica's .dump restored through a shell that loads the extension first (as an app that
# registers it for every connection does) is that replica: same site id, same feed, same
# rows, and its writes are recorded as its own. (Until 2026-12-06 the load had made the
# internal tables of the new file, the dump's CREATE TABLE crr_meta failed, and the copy kept
# the load's site id and token: its writes were refused as another database's.)
"$SQLITE" -batch -bail "$tmp/a.db" <<'SQL' > /dev/null
.load ./dist/crr
CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
SELECT crsql_as_crr('t');
INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2);
UPDATE t SET a = 'z' WHERE id = 2;
DELETE FROM t WHERE id = 1;
INSERT INTO crsql_changes VALUES ('t', crsql_pack_columns(3), 'a', 'peer', 1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
CREATE TABLE u(k TEXT PRIMARY KEY NOT NULL, v);
SELECT crsql_as_crr('u');
INSERT INTO u VALUES ('b', 1), ('a', 2), ('c', 3);
UPDATE u SET v = 20 WHERE k = 'a';
DELETE FROM u WHERE k = 'c';
SQL
"$SQLITE" -batch "$tmp/a.db" .dump > "$tmp/a.sql"
# (The read since a db_version goes through crr_dirty's buckets of the clocks' row ids, which
# the dump must keep: a text-keyed CRR's clock declares them.)
state='SELECT hex(crsql_site_id()); SELECT "table", hex(pk), cid, quote(val), col_version, db_version, hex(site_id), cl, seq FROM crsql_changes; SELECT * FROM t; SELECT * FROM u; SELECT "table", hex(pk), cid, db_version FROM crsql_changes WHERE db_version > 4;'
write="INSERT INTO t VALUES (4, 'w', 4); SELECT count(*) FROM crsql_changes WHERE pk = crsql_pack_columns(4) AND site_id = crsql_site_id();"
if "$SQLITE" -batch -bail -cmd ".load ./dist/crr" "$tmp/b.db" < "$tmp/a.sql" > "$tmp/restore.txt" 2>&1 \
  && "$SQLITE" -batch -cmd ".load ./dist/crr" "$tmp/a.db" "$state" > "$tmp/a.txt" 2>&1 \
  && "$SQLITE" -batch -cmd ".load ./dist/crr" "$tmp/b.db" "$state" > "$tmp/b.txt" 2>&1 \
  && diff -u "$tmp/a.txt" "$tmp/b.txt" \
  && [ "$("$SQLITE" -batch -cmd ".load ./dist/crr" "$tmp/b.db" "$write" 2>&1)" = 2 ]; then
  passed=$((passed + 1))
else
  echo "shell test: a .dump restored through a loaded shell is not the dumped replica:" >&2
  cat "$tmp/restore.txt" >&2
  failed=$((failed + 1))
fi
echo "shell: $passed passed, $failed failed"
[ "$failed" = 0 ]
