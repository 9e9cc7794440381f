-- The clock of one CRR ({tid} is replaced by the table's id). One row per primary key ever
-- seen: pk is the packed key (SPEC 6 format), cl the causal length, dbv the highest db_version
-- among the row's entries (indexed: "changes since V" reads only rows with dbv > V), clock the
-- row clock record (src/core/row_clock.rs).
CREATE TABLE "crr_clock_{tid}"(
  pk BLOB PRIMARY KEY NOT NULL,
  cl INTEGER NOT NULL,
  dbv INTEGER NOT NULL,
  clock BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX "crr_clock_{tid}_dbv" ON "crr_clock_{tid}"(dbv);
