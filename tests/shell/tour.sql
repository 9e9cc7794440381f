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
-- SQLite 3.40's ADD COLUMN gives the rows a table has an untyped DEFAULT 1.0 as the integer 1,
-- and a row inserted later the REAL 1.0 (3.46 on gives both the REAL): crsql_commit_alter gives
-- the old rows the REAL, which merges and rebuilds give, firing no trigger of the app in main (a
-- TEMP one fires), and sends nothing.
CREATE TABLE log(id);
CREATE TEMP TABLE temp_log(id);
CREATE TRIGGER stamp AFTER UPDATE ON todo BEGIN INSERT INTO log VALUES (NEW.id); END;
CREATE TEMP TRIGGER watch AFTER UPDATE ON main.todo BEGIN INSERT INTO temp_log VALUES (NEW.id); END;
SELECT crsql_begin_alter('todo');
ALTER TABLE todo ADD COLUMN weight DEFAULT 1.0;
SELECT id, weight, typeof(weight) AS type FROM todo;
SELECT crsql_commit_alter('todo');
SELECT id, weight, typeof(weight) AS type FROM todo;
SELECT (SELECT count(*) FROM log) AS app_main, (SELECT count(*) FROM temp_log) AS app_temp, (SELECT count(*) FROM crsql_changes WHERE cid = 'weight') AS sent;
