-- The clock of one CRR ({tid} is replaced by the table's id). One row per primary key ever
-- seen: pk is the row's key, cl the causal length, dbv the highest db_version among the row's
-- entries ("changes since V" reads only rows with dbv > V), clock the row clock record
-- (src/core/row_clock.rs).
-- Key layout (storage/tables.rs KeyLayout): a table keyed by its rowid (one INTEGER PRIMARY KEY
-- column of a rowid table) gets {key} = `pk INTEGER PRIMARY KEY NOT NULL`, so pk is the clock
-- table's own rowid; every other table gets `id INTEGER PRIMARY KEY NOT NULL, pk BLOB NOT NULL
-- UNIQUE`, pk holding the packed key (SPEC 6 format), and id the clock row's rowid (declared,
-- so that neither VACUUM nor a .dump and its restore may number the rows anew). Either way the
-- rows written since V are found through crr_dirty's buckets of the clock's rowids
-- (src/storage/dirty.rs). Until internal schema 6 a packed-key clock was a WITHOUT ROWID table
-- keyed by pk, with an index on dbv (the upgrade moves them: triggers::move_packed_to_buckets).
CREATE TABLE "crr_clock_{tid}"(
  {key},
  cl INTEGER NOT NULL,
  dbv INTEGER NOT NULL,
  clock BLOB NOT NULL
);
