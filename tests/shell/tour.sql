.load ./dist/crr
.headers on
.mode list
CREATE TABLE todo(id INTEGER PRIMARY KEY NOT NULL, title TEXT, done INTEGER DEFAULT 0);
INSERT INTO todo(id, title) VALUES (1, 'buy milk');
SELECT crsql_as_crr('todo');
INSERT INTO todo(id, title) VALUES (2, 'write docs');
UPDATE todo SET done = 1 WHERE id = 1;
DELETE FROM todo WHERE id = 2;
SELECT "table", hex(pk) AS pk, cid, val, db_version, cl, seq, length(site_id) AS site_len FROM crsql_changes;
SELECT crsql_db_version() AS v, crsql_next_db_version() AS next;
SELECT hex(crsql_pack_columns(1, 'a')) AS packed;
SELECT cell FROM crsql_unpack_columns(crsql_pack_columns(1, 'a'));
SELECT count(*) AS since_3 FROM crsql_changes WHERE db_version > 3;
SELECT crsql_as_crr('nope');
