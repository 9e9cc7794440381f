-- The dbv index of a packed-key clock (sql/clock_table.sql), and of rowid clocks made before
-- internal schema 4 that could not be moved to crr_dirty buckets: "changes since V" reads
-- only rows with dbv > V.
CREATE INDEX main."crr_clock_{tid}_dbv" ON "crr_clock_{tid}"(dbv);
