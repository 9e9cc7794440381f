-- sqlite-crr internal schema, version 7 (src/storage/schema.rs says what each version added).
-- Created once per database, in one savepoint.
-- Everything the extension stores besides the per-table clock tables lives here.

-- Settings and counters: 'schema' (internal schema version), 'hlc' (the clock's persisted
-- high-water mark), 'clock' ('hlc' | 'lamport'), 'next_tid', 'db_version_floor' (highest
-- db_version of tables whose clocks were removed), 'config.<name>' (crsql_config_set values).
CREATE TABLE IF NOT EXISTS crr_meta(key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;

-- 16-byte site ids and this database's small ordinals for them; ordinal 0 is this replica.
CREATE TABLE IF NOT EXISTS crr_sites(ordinal INTEGER PRIMARY KEY NOT NULL, site_id BLOB NOT NULL UNIQUE);

-- The CRRs: tid numbers the clock table crr_clock_<tid>; tids are never reused.
CREATE TABLE IF NOT EXISTS crr_tables(tid INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE);

-- Columns of each CRR: key columns have pk_index 1.. and no slot; tracked columns have a slot
-- (their index in the row clock record) and pk_index 0.
CREATE TABLE IF NOT EXISTS crr_columns(
  tid INTEGER NOT NULL,
  name TEXT NOT NULL,
  slot INTEGER,
  pk_index INTEGER NOT NULL,
  keeps_class INTEGER NOT NULL,
  PRIMARY KEY (tid, name)
) WITHOUT ROWID;

-- The HLC tick of each local transaction, by its db_version (added in version 2): row clock
-- records refer to it instead of repeating it (src/core/row_clock.rs, format 3).
CREATE TABLE IF NOT EXISTS crr_ticks(dbv INTEGER PRIMARY KEY NOT NULL, tick INTEGER NOT NULL);

-- Which rows of a rowid-keyed clock were written at which db_version, by bucket of 32
-- consecutive keys (bucket = key >> 5), added in version 4 (src/storage/dirty.rs): "changes
-- since V" reads the buckets with an entry at V or later instead of a per-row dbv index.
CREATE TABLE IF NOT EXISTS crr_dirty(
  tid INTEGER NOT NULL,
  dbv INTEGER NOT NULL,
  bucket INTEGER NOT NULL,
  PRIMARY KEY (tid, dbv, bucket)
) WITHOUT ROWID;

-- The tail of a bucket clock (added in version 7, src/storage/tails.rs): the rows of buckets
-- `bucket` and above are read whole by "changes since V", and need no crr_dirty entry (a
-- local append writes none); `at` is the db_version of its last move.
CREATE TABLE IF NOT EXISTS crr_tails(tid INTEGER PRIMARY KEY NOT NULL, bucket INTEGER NOT NULL, at INTEGER NOT NULL);

-- As cr-sqlite: where transports record how far they have synced with each peer.
CREATE TABLE IF NOT EXISTS crsql_tracked_peers(
  site_id BLOB NOT NULL,
  version INTEGER NOT NULL,
  seq INTEGER DEFAULT 0,
  tag INTEGER,
  event INTEGER,
  PRIMARY KEY (site_id, tag, event)
) STRICT;
