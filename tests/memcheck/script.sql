-- Run by tests/memcheck/run.sh in the sqlite3 shell under valgrind's memcheck: most of the
-- SQL surface, errors included (the shell goes on after each), on two connections one after
-- the other, so that every FFI path allocates, frees and unloads. Output is not compared.
.load ./dist/crr
-- The first connection keeps no cached statement but the last used: every other is finalized
-- after its use and prepared again (storage::stmt_cache::shed).
SELECT crr_set_statement_budget_for_testing(0);
PRAGMA journal_mode = WAL;
CREATE TABLE items(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, c REAL, d BLOB);
CREATE TABLE pairs(k1 TEXT NOT NULL, k2 INTEGER NOT NULL, v, PRIMARY KEY (k1, k2)) WITHOUT ROWID;
CREATE TABLE strict_t(id INTEGER PRIMARY KEY NOT NULL, n INTEGER) STRICT;
CREATE TABLE log(id INTEGER PRIMARY KEY, what TEXT);
SELECT crsql_as_crr('items'), crsql_as_crr('pairs'), crsql_as_crr('strict_t');
SELECT crsql_as_crr('log_missing');
CREATE TRIGGER items_log AFTER INSERT ON items WHEN crsql_internal_sync_bit() = 0 BEGIN
  INSERT INTO log(what) VALUES ('insert ' || NEW.id);
END;
SELECT crsql_as_crr('items');
INSERT INTO items VALUES (1, 'one', 1, 1.5, X'01'), (2, 'two', 2, 2.5, NULL), (3, 'three', 3, NULL, X'0203');
INSERT INTO pairs VALUES ('a', 1, 'x'), ('b', 2, 3.25), ('c', 3, NULL);
INSERT INTO strict_t VALUES (1, 10), (2, 20);
UPDATE items SET a = 'uno' WHERE id = 1;
UPDATE items SET id = 10 WHERE id = 2;
DELETE FROM items WHERE id = 3;
INSERT INTO items(id, a) VALUES (1, 'upserted') ON CONFLICT(id) DO UPDATE SET a = excluded.a;
REPLACE INTO pairs VALUES ('a', 1, 'replaced');
BEGIN;
INSERT INTO items(id, a) VALUES (20, 'kept');
SAVEPOINT s1;
INSERT INTO items(id, a) VALUES (21, 'undone');
UPDATE pairs SET v = 'undone' WHERE k1 = 'b';
ROLLBACK TO s1;
RELEASE s1;
COMMIT;
BEGIN;
INSERT INTO items(id, a) VALUES (30, 'rolled back');
ROLLBACK;
SELECT "table", hex(pk), cid, val, col_version > 0, db_version, length(site_id), cl, seq FROM crsql_changes;
SELECT count(*) FROM crsql_changes WHERE db_version > 2 AND "table" = 'items';
SELECT count(*) FROM crsql_changes WHERE site_id = crsql_site_id() AND cid = 'a';
SELECT count(*) FROM crsql_changes WHERE pk = crsql_pack_columns(1) ORDER BY db_version, seq LIMIT 2;
SELECT crsql_db_version(), crsql_next_db_version(), hex(crsql_site_id()) IS NOT NULL;
SELECT hex(crsql_pack_columns(1, -1, 'a', X'00ff', NULL, 2.5));
SELECT cell FROM crsql_unpack_columns(crsql_pack_columns(1, 'two', X'03', NULL, 4.5));
SELECT cell FROM crsql_unpack_columns(X'02');
-- Merges: the feed again under another site id, newer versions (applied), then older (stale).
CREATE TEMP TABLE feed AS SELECT * FROM crsql_changes;
BEGIN;
INSERT INTO crsql_changes SELECT "table", pk, cid, CASE WHEN typeof(val) = 'text' THEN val || '!' ELSE val END,
  col_version + 1000000, db_version, X'0102030405060708090A0B0C0D0E0F10', cl, seq FROM temp.feed;
SELECT crsql_rows_impacted();
COMMIT;
INSERT INTO crsql_changes SELECT "table", pk, cid, val, 1, db_version, X'0102030405060708090A0B0C0D0E0F11', cl, seq FROM temp.feed;
SELECT * FROM items ORDER BY id;
-- Bad changes: each refused with an error, nothing applied.
INSERT INTO crsql_changes VALUES ('nope', X'010901', 'a', 1, 1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
INSERT INTO crsql_changes VALUES ('items', X'010901', 'zz', 1, 1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
INSERT INTO crsql_changes VALUES ('items', X'01', 'a', 1, 1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
INSERT INTO crsql_changes VALUES ('items', X'0109', 'a', 1, 1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
INSERT INTO crsql_changes VALUES ('items', X'010901', 'a', 1, 1, 1, X'0102', 1, 0);
INSERT INTO crsql_changes VALUES ('items', X'010901', 'a', 1, -1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
INSERT INTO crsql_changes SELECT 'strict_t', X'010901', 'n', 'text', max(col_version) + 1, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0 FROM crsql_changes;
INSERT INTO crsql_changes VALUES ('items', X'010901', 'a', 1, 9223372036854775807, 1, X'0102030405060708090A0B0C0D0E0F10', 1, 0);
UPDATE crsql_changes SET val = 1;
DELETE FROM crsql_changes;
-- Settings and peers.
SELECT crsql_config_set('merge-equal-values', 1), crsql_config_get('merge-equal-values');
SELECT crsql_config_set('no-such-setting', 1);
SELECT crsql_config_set('hlc-max-drift-ms', 60000), crsql_config_get('hlc-max-drift-ms');
INSERT INTO crsql_tracked_peers VALUES (X'0102030405060708090A0B0C0D0E0F10', 5, 0, 0, 0);
-- Schema changes: a bracket with ADD, RENAME and DROP COLUMN; one outside a bracket.
SELECT crsql_begin_alter('items');
ALTER TABLE items ADD COLUMN e TEXT DEFAULT 'e0';
UPDATE items SET e = 'e1' WHERE id = 1;
UPDATE items SET b = 99 WHERE id = 1;
ALTER TABLE items RENAME COLUMN c TO cc;
ALTER TABLE items DROP COLUMN d;
SELECT crsql_commit_alter('items');
SELECT cid, val FROM crsql_changes WHERE "table" = 'items' AND pk = crsql_pack_columns(1);
ALTER TABLE pairs ADD COLUMN w;
SELECT count(*) FROM crsql_changes;
INSERT INTO pairs VALUES ('d', 4, 'after', 'w');
SELECT crsql_begin_alter('pairs');
SELECT crsql_commit_alter('pairs');
SELECT crsql_as_crr('pairs');
-- A 12-step rebuild inside a bracket.
SELECT crsql_begin_alter('strict_t');
CREATE TABLE strict_new(id INTEGER PRIMARY KEY NOT NULL, n INTEGER, m TEXT) STRICT;
INSERT INTO strict_new(id, n) SELECT id, n FROM strict_t;
DROP TABLE strict_t;
ALTER TABLE strict_new RENAME TO strict_t;
INSERT INTO strict_t VALUES (3, 30, 'new');
SELECT crsql_commit_alter('strict_t');
-- Removal of tracking, a dropped CRR, a new site id, finalize.
SELECT crsql_as_table('pairs');
DROP TABLE strict_t;
INSERT INTO items(id, a) VALUES (40, 'after drop');
SELECT crr_new_site_id() IS NOT NULL;
SELECT count(*) FROM crsql_changes;
SELECT crsql_finalize();
SELECT count(*) FROM crsql_changes;
-- A second connection: the library is unloaded with the first and loaded again.
.open :memory:
.load ./dist/crr
CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, v TEXT);
SELECT crsql_as_crr('t');
INSERT INTO t VALUES (1, 'x');
SELECT count(*) FROM crsql_changes;
