-- The clock of one CRR ({tid} is replaced by the table's id). One row per primary key ever
-- seen: pk is the row's key, cl the causal length, dbv the highest db_version among the row's
-- entries ("changes since V" reads only rows with dbv > V), clock the row clock record
-- (src/core/row_clock.rs).
-- Key layout (storage/tables.rs KeyLayout): a table keyed by its rowid (one INTEGER PRIMARY KEY
-- column of a rowid table) gets {key_type} = INTEGER, so pk is the clock table's own rowid;
-- every other table gets BLOB, pk holding the packed key (SPEC 6 format), and the clock table
-- has rowids of its own. Either way the rows written since V are found through crr_dirty's
-- buckets of the clock's rowids (src/storage/dirty.rs). Until internal schema 6 a packed-key
-- clock was a WITHOUT ROWID table with an index on dbv, and such clocks stay so.
CREATE TABLE "crr_clock_{tid}"(
  pk {key_type} PRIMARY KEY NOT NULL,
  cl INTEGER NOT NULL,
  dbv INTEGER NOT NULL,
  clock BLOB NOT NULL
);
