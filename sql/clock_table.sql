-- The clock of one CRR ({tid} is replaced by the table's id). One row per primary key ever
-- seen: pk is the row's key, cl the causal length, dbv the highest db_version among the row's
-- entries ("changes since V" reads only rows with dbv > V), clock the row clock record
-- (src/core/row_clock.rs).
-- Key layout (storage/tables.rs KeyLayout): a table keyed by its rowid (one INTEGER PRIMARY KEY
-- column of a rowid table) gets {key_type} = INTEGER and {options} empty, so pk is the clock
-- table's own rowid, and its rows written since V are found through crr_dirty's buckets
-- (src/storage/dirty.rs); every other table gets BLOB and WITHOUT ROWID, pk holding the packed
-- key (SPEC 6 format), and a dbv index (sql/clock_dbv_index.sql).
CREATE TABLE "crr_clock_{tid}"(
  pk {key_type} PRIMARY KEY NOT NULL,
  cl INTEGER NOT NULL,
  dbv INTEGER NOT NULL,
  clock BLOB NOT NULL
){options};
