//! Which rows of a rowid-keyed clock were written since a db_version: `crr_dirty(tid, dbv,
//! bucket)`, by bucket of `BUCKET_ROWS` (32) consecutive keys (bucket = key >> `BUCKET_BITS`).
//!
//! A per-row index on the clock's `dbv` would cost every tracked write a second B-tree entry
//! (an insert, and for a rewrite a delete too): about a third of the instructions of a bulk
//! insert or update. A bucket entry is written once per bucket and transaction instead.
//!
//! **Invariant:** for every row of a bucket clock whose `dbv` is D there is an entry
//! (tid, D', bucket) with D' >= D. So the rows with `dbv` >= V all lie in the buckets that have
//! an entry at V or later, and "changes since V" reads those buckets (at most `BUCKET_ROWS`
//! rows each, filtered on the clock's `dbv`): work in proportion to what was written since V.
//!
//! Writes (`mark`): writing a row of bucket b at D adds (tid, D, b); an older entry of the
//! same bucket may then go at any time, because the new one covers every row it covered. The
//! entry at the row's previous `dbv` goes, so a bucket keeps at most one entry per distinct
//! `dbv` of its rows: crr_dirty holds no more entries than the clock has rows, but for entries
//! that outlive their rows' writes (a write that marked its bucket and then matched no clock
//! row, or one rolled back while other writes its entry covers stayed), which only widen
//! reads; `max_db_version` counts such entries too, so a db_version the feed reported never
//! comes back.
//!
//! A transaction remembers the entries it wrote (`Marks`), trusted only while no rollback was
//! reported since (`Conn::still_written`): a statement or savepoint rollback may have undone
//! them, and then they are written again (the writes are idempotent).
//!
//! The key of a bucket is the clock row's rowid. For a rowid clock that is the row's key, known
//! before the row is written. A packed-key bucket clock (made since internal schema 6: an
//! `id INTEGER PRIMARY KEY` and a UNIQUE `pk` BLOB) has rowids of its own, which SQLite gives a
//! new row as it inserts it: one more than the clock's highest. So its new rows are marked by
//! range (`grow`, `mark_grown`): a write that may add a row first notes the clock's highest
//! rowid (once a transaction), and `flush` marks every bucket from there to the highest rowid
//! then, at the highest db_version those writes stored (the transaction's). Rows are never deleted from a clock but with the whole
//! clock (`forget`), so the rows above the noted rowid are exactly those this transaction added.
//! (A write that finds its row there, an upsert's DO UPDATE, marks that row's rowid itself.)

use super::conn::Conn;
use super::stmt_cache::Key;
use super::txn;
use crate::core::fast_hash::FastBuild;
use crate::error::Result;
use std::collections::HashSet;

/// Keys per bucket: 2^BUCKET_BITS (the SQL above and crr_dirty's entries depend on it: a
/// change needs a schema version and a rebuild of the entries).
///
/// The bucket size trades reads against writes. A bucket is read whole when any of its rows was
/// written since V, and a rewrite of rows moves one entry per bucket. Measured (callgrind) with
/// 16 / 32 / 64 keys a bucket: reading 100 scattered changes of 100,000 rows (the read alone;
/// `workload since`, 3.36M at 32, also counts its statements' first preparation and the
/// harness's conversions) costs 1.40M / 2.11M
/// / 3.44M instructions (a per-row dbv index: 0.55M), W7 (10% of the rows, every tenth)
/// 275.1M / 254.0M / 245.2M, deleting 10% 34.5M / 28.1M / 25.1M, inserting 20,000 rows
/// 282.7M / 279.2M / 277.6M.
pub const BUCKET_BITS: u32 = 5;
pub const BUCKET_ROWS: i64 = 1 << BUCKET_BITS;

/// The bucket of a rowid key (an arithmetic shift, as SQLite's `>>`: negative keys have
/// negative buckets).
pub fn bucket(key: i64) -> i64 {
    key >> BUCKET_BITS
}

/// The SQL for the first and last key of the bucket that SQL expression `b` names.
pub fn bucket_keys_sql(b: &str) -> (String, String) {
    (format!("({b} << {BUCKET_BITS})"), format!("(({b} << {BUCKET_BITS}) + {})", BUCKET_ROWS - 1))
}

/// A subquery for the distinct buckets of clock `tid` with an entry at `?{param}` or later.
pub fn buckets_since_sql(tid: i64, param: usize) -> String {
    format!("SELECT DISTINCT bucket FROM main.crr_dirty WHERE tid = {tid} AND dbv >= ?{param}")
}

/// The entries this transaction wrote or will write (see the module comment).
#[derive(Default, Debug)]
pub struct Marks {
    /// The rollback mark the sets were started under.
    mark: Option<u64>,
    /// (tid, bucket) whose entry at this transaction's db_version is written or pending.
    added: HashSet<(i64, i64), FastBuild>,
    /// (tid, bucket, dbv) entries deleted or pending deletion.
    removed: HashSet<(i64, i64, i64), FastBuild>,
    /// Entry writes not made yet: each adds (tid, dbv, bucket) and then, if `old` is set,
    /// removes (tid, old, bucket). Written by `flush`: before anything reads crr_dirty, before
    /// the transaction commits (xSync), and at PENDING_MAX.
    pending: Vec<Pending>,
    /// Entry writes `flush` made inside savepoints, by `Conn::depth` at the time (index
    /// depth - 1): a rollback to a savepoint below that depth undoes them, and perhaps not the
    /// writes they cover (made earlier, at a lower depth), so they are held back again
    /// (`rolled_back_to`). A release moves them down (`released`); at depth 0 only the end of
    /// the transaction can undo them, so they are not kept.
    written: Vec<Vec<Pending>>,
    /// Packed-key bucket clocks this transaction may have added rows to (see the module
    /// comment).
    grown: Vec<Grown>,
}

/// A packed-key bucket clock that this transaction may have added rows to (`grow`).
#[derive(Debug, Clone, Copy)]
struct Grown {
    tid: i64,
    /// The clock's highest rowid before the transaction's first write that could add one.
    start: i64,
    /// How many writes could have added a row: the new rows are at most this many, so a
    /// range wider than that holds rows other code wrote (a damaged clock).
    tries: i64,
    /// The highest db_version those writes stored.
    dbv: i64,
    /// The highest rowid whose bucket `mark_grown` marked, trusted while `mark` says it is
    /// still written (`Conn::still_written`).
    marked: i64,
    mark: Option<u64>,
    /// The `Conn::depth` the start was noted at, lowered by releases, as `Pending::level`:
    /// the rows it covers were all added at this depth or above, so a rollback below it undid
    /// them (and perhaps the clock itself: a crsql_as_crr rolled back), and it goes.
    level: i32,
}

impl Marks {
    /// No marks, for the next transaction, as `Marks::default()` but keeping small
    /// allocations (a run of single-row transactions would otherwise make them each time).
    pub fn empty(&mut self) {
        const KEEP: usize = 256;
        let Marks { mark, added, removed, pending, written, grown } = self;
        *mark = None;
        grown.clear();
        if added.capacity() > KEEP {
            *added = HashSet::default();
        } else if !added.is_empty() {
            added.clear();
        }
        if removed.capacity() > KEEP {
            *removed = HashSet::default();
        } else if !removed.is_empty() {
            removed.clear();
        }
        if pending.capacity() > KEEP {
            *pending = Vec::new();
        } else {
            pending.clear();
        }
        written.clear();
    }

    /// Savepoint `n` and those above it were released (xRelease): the writes made above depth
    /// `n`, and the entry writes flushed there, now belong to depth `n`.
    pub fn released(&mut self, n: i32) {
        for g in &mut self.grown {
            g.level = g.level.min(n);
        }
        // Levels rise along `pending` (see `Pending::level`): only its tail is above n.
        for e in self.pending.iter_mut().rev() {
            if e.level <= n {
                break;
            }
            e.level = n;
        }
        let n = n.max(0) as usize;
        if self.written.len() <= n {
            return;
        }
        // (Their levels need no lowering: one that stays above n only says that all their
        // rows are undone by a rollback that undoes the entry writes themselves.)
        // Moved, not collected into a new list first: a bulk write inside savepoints can
        // leave many entries here.
        let above = self.written.split_off(n);
        if let Some(level) = n.checked_sub(1).and_then(|i| self.written.get_mut(i)) {
            for mut entries in above {
                if level.is_empty() {
                    *level = entries;
                } else {
                    level.append(&mut entries);
                }
            }
        }
    }

    /// The writes made since savepoint `n` opened were undone (xRollbackTo). An entry write
    /// whose rows were all written above depth `n` is not needed any more: held back, it goes;
    /// flushed above depth `n`, it was undone with them. Any other entry write flushed above
    /// depth `n` was undone while some of its rows were not: it is held back again (written
    /// twice at worst: the writes are idempotent).
    pub fn rolled_back_to(&mut self, n: i32) {
        self.grown.retain(|g| g.level <= n);
        while self.pending.last().is_some_and(|e| e.level > n) {
            self.pending.pop();
        }
        let depth = n.max(0) as usize;
        if self.written.len() > depth {
            let undone: Vec<Pending> = self.written.drain(depth..).flatten().filter(|e| e.level <= n).collect();
            if !undone.is_empty() {
                self.pending.extend(undone);
                self.pending.sort_by_key(|e| e.level);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    tid: i64,
    dbv: i64,
    bucket: i64,
    old: Option<i64>,
    /// The lowest `Conn::depth` the writes it covers were made at (lowered by releases), so
    /// a rollback below it undid them all. Along `Marks::pending` levels never fall: a mark
    /// is made at the current depth, which no held-back write is above (releases lower them,
    /// rollbacks drop them). An entry that later marks of its bucket skip (`Marks::added`)
    /// covers their writes too; they are made at its level or above, or after a release
    /// that lowered it, since a rollback in between makes them mark again.
    level: i32,
}

/// Entry writes held back before `flush` writes them (a bound on memory; a bulk write of
/// millions of rows flushes as it goes).
const PENDING_MAX: usize = 4096;

/// Rows per multi-row INSERT of `flush`.
const CHUNK_ROWS: usize = 32;

/// Records that row `key` of clock `tid` was written with `dbv` as its `dbv`, `old` being the
/// `dbv` it had before (None: a new row, or not known).
///
/// crr_internal_txn is in the transaction (the mark's db_version made it join,
/// `Conn::enter_write`), so its xSync runs before the commit: the entry writes are held back
/// and made together (`flush`). Only while the extension is being set up on a connection
/// (before crr_internal_txn exists) are they written at once.
pub fn mark(conn: &Conn, tid: i64, key: i64, dbv: i64, old: Option<i64>) -> Result<()> {
    // A row whose dbv did not rise (written again in this transaction, or an alter that
    // removed its newest entries) is covered by its bucket's entry at its old dbv or later
    // (the invariant): there is nothing to write. (Until 2026-12-05 a DROP COLUMN marked every
    // row of a rowid table again at its old dbv, and held a million marks in memory.)
    if old.is_some_and(|o| dbv <= o) {
        return Ok(());
    }
    let b = bucket(key);
    // Only this transaction's own db_version is remembered (alter may store an older one).
    let current = txn::current_db_version(conn) == Some(dbv);
    let old = {
        let mut t = conn.txn.borrow_mut();
        let m = &mut t.dirty;
        if !conn.still_written(m.mark) {
            // A rollback may have undone written entries: mark again. (Held-back ones whose
            // writes it undid went with it, `Marks::rolled_back_to`; the others stay, and a
            // removal always comes with its entry's addition.)
            m.added.clear();
            m.removed.clear();
            m.mark = conn.rollback_mark();
        }
        let add = !(current && m.added.contains(&(tid, b)));
        let old = old.filter(|o| *o < dbv && !(current && m.removed.contains(&(tid, b, *o))));
        if !add && old.is_none() {
            return Ok(());
        }
        if current && m.mark.is_some() {
            m.added.insert((tid, b));
            if let Some(o) = old {
                m.removed.insert((tid, b, o));
            }
        }
        old
    };
    // The level is known once crr_internal_txn is in the transaction (SQLite reports the
    // savepoints open when it joins).
    let p = Pending { tid, dbv, bucket: b, old, level: conn.depth.get() };
    if !conn.txn_joined.get() {
        return write(conn, &[p]);
    }
    let full = {
        let mut t = conn.txn.borrow_mut();
        t.dirty.pending.push(p);
        t.dirty.pending.len() >= PENDING_MAX
    };
    if full {
        flush(conn)?;
    }
    Ok(())
}

/// A write that may add a row to packed-key bucket clock `tid`, storing `dbv`, is about to be
/// made: the first of the transaction notes the clock's highest rowid (see the module
/// comment; `flush` marks the rows added since).
pub fn grow(conn: &Conn, tid: i64, dbv: i64) -> Result<()> {
    {
        let mut t = conn.txn.borrow_mut();
        if let Some(g) = t.dirty.grown.iter_mut().find(|g| g.tid == tid) {
            g.tries = g.tries.saturating_add(1);
            g.dbv = g.dbv.max(dbv);
            return Ok(());
        }
    }
    let start = highest_rowid(conn, tid)?;
    conn.txn.borrow_mut().dirty.grown.push(Grown { tid, start, tries: 1, dbv, marked: start, mark: None, level: conn.depth.get() });
    Ok(())
}

/// The highest rowid of clock `tid` (0: none).
fn highest_rowid(conn: &Conn, tid: i64) -> Result<i64> {
    conn.stmts.with(
        conn.db,
        Key::ClockHighestRowid(tid),
        || format!("SELECT coalesce(max(rowid), 0) FROM {}", super::tables::clock_table(tid)),
        |s| Ok(if s.step()? { s.i64(0) } else { 0 }),
    )
}

/// Marks the buckets of the rows the transaction added to packed-key bucket clocks (`grow`),
/// those not marked since the last rollback; outside a joined transaction (while the extension
/// is set up, when `mark` writes at once) it forgets them then.
fn mark_grown(conn: &Conn) -> Result<()> {
    let grown = conn.txn.borrow().dirty.grown.clone();
    for g in &grown {
        let now = highest_rowid(conn, g.tid)?;
        if now == i64::MAX || now.saturating_sub(g.start) > g.tries {
            return Err(crate::error::Error::new(format!(
                "table id {}: its clock table {} holds rows that sqlite-crr did not write (rowids up to {now}: {} above \
                 {}, where this transaction added at most {}): the database is damaged",
                g.tid,
                super::tables::clock_table(g.tid),
                now.saturating_sub(g.start),
                g.start,
                g.tries
            )));
        }
        let from = if conn.still_written(g.mark) { g.marked } else { g.start };
        if now > from {
            for b in bucket(from + 1)..=bucket(now) {
                mark(conn, g.tid, b << BUCKET_BITS, g.dbv, None)?;
            }
        }
        let mut t = conn.txn.borrow_mut();
        if let Some(e) = t.dirty.grown.iter_mut().find(|e| e.tid == g.tid) {
            e.marked = now.max(g.start);
            e.mark = conn.rollback_mark();
        }
    }
    if !conn.txn_joined.get() {
        conn.txn.borrow_mut().dirty.grown.clear();
    }
    Ok(())
}

/// Writes the held-back entries (see `mark`), after marking the rows added to packed-key
/// bucket clocks (`mark_grown`). Idempotent; cheap when there are none.
pub fn flush(conn: &Conn) -> Result<()> {
    if !conn.txn.borrow().dirty.grown.is_empty() {
        mark_grown(conn)?;
    }
    if conn.txn.borrow().dirty.pending.is_empty() {
        return Ok(());
    }
    let mut pending = std::mem::take(&mut conn.txn.borrow_mut().dirty.pending);
    let ends = conn.txn_ends.get();
    let r = write(conn, &pending);
    if conn.txn_ends.get() != ends {
        // The failure ended the transaction (SQLite rolled everything back, see
        // `Conn::txn_ends`): the writes these entries cover are gone.
        return r;
    }
    let mut t = conn.txn.borrow_mut();
    let depth = conn.depth.get().max(0) as usize;
    if r.is_err() {
        // Not known to be written (the transaction may go on, e.g. after a failed COMMIT):
        // held back again, with any entry marked since, in order of level.
        pending.append(&mut t.dirty.pending);
        pending.sort_by_key(|e| e.level);
        t.dirty.pending = pending;
    } else {
        if depth > 0 {
            // Inside a savepoint: kept, in case a rollback undoes them (`Marks::rolled_back_to`).
            let written = &mut t.dirty.written;
            if written.len() < depth {
                written.resize_with(depth, Vec::new);
            }
            written[depth - 1].append(&mut pending);
        }
        if t.dirty.pending.is_empty() {
            // Keep the buffer's allocation for the next marks.
            pending.clear();
            t.dirty.pending = pending;
        }
    }
    r
}

/// Writes entries: every addition first, so that each removal's entry is covered by then.
fn write(conn: &Conn, entries: &[Pending]) -> Result<()> {
    add_all(conn, entries)?;
    remove_all(conn, entries)
}

/// The additions of `entries`, by multi-row INSERTs of CHUNK_ROWS.
fn add_all(conn: &Conn, entries: &[Pending]) -> Result<()> {
    let mut chunks = entries.chunks_exact(CHUNK_ROWS);
    for chunk in &mut chunks {
        conn.stmts.with(
            conn.db,
            Key::DirtyAddMany,
            || {
                let rows = vec!["(?, ?, ?)"; CHUNK_ROWS].join(", ");
                format!("INSERT INTO main.crr_dirty(tid, dbv, bucket) VALUES {rows} ON CONFLICT DO NOTHING")
            },
            |s| {
                for (i, e) in chunk.iter().enumerate() {
                    s.bind_i64(3 * i + 1, e.tid)?;
                    s.bind_i64(3 * i + 2, e.dbv)?;
                    s.bind_i64(3 * i + 3, e.bucket)?;
                }
                s.run()
            },
        )?;
    }
    for e in chunks.remainder() {
        one(conn, Key::DirtyAdd, "INSERT INTO main.crr_dirty(tid, dbv, bucket) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING", e.tid, e.dbv, e.bucket)?;
    }
    Ok(())
}

/// The removals of `entries`, grouped by (tid, old dbv): a bulk rewrite's rows mostly share
/// their old dbv, so one DELETE takes up to CHUNK_ROWS buckets.
fn remove_all(conn: &Conn, entries: &[Pending]) -> Result<()> {
    let mut removals: Vec<(i64, i64, i64)> = entries.iter().filter_map(|e| e.old.map(|o| (e.tid, o, e.bucket))).collect();
    removals.sort_unstable();
    removals.dedup();
    for group in removals.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (tid, old) = (group[0].0, group[0].1);
        for chunk in group.chunks(CHUNK_ROWS) {
            if chunk.len() < 4 {
                for r in chunk {
                    one(conn, Key::DirtyRemove, "DELETE FROM main.crr_dirty WHERE tid = ?1 AND dbv = ?2 AND bucket = ?3", tid, old, r.2)?;
                }
                continue;
            }
            conn.stmts.with(
                conn.db,
                Key::DirtyRemoveMany,
                || {
                    let list: Vec<String> = (0..CHUNK_ROWS).map(|i| format!("?{}", i + 3)).collect();
                    format!("DELETE FROM main.crr_dirty WHERE tid = ?1 AND dbv = ?2 AND bucket IN ({})", list.join(", "))
                },
                |s| {
                    s.bind_i64(1, tid)?;
                    s.bind_i64(2, old)?;
                    // A short chunk repeats its last bucket (IN ignores the repeats).
                    for i in 0..CHUNK_ROWS {
                        s.bind_i64(i + 3, chunk[i.min(chunk.len() - 1)].2)?;
                    }
                    s.run()
                },
            )?;
        }
    }
    Ok(())
}

/// Runs one single-entry statement (`?1` tid, `?2` dbv, `?3` bucket).
fn one(conn: &Conn, key: Key, sql: &str, tid: i64, dbv: i64, b: i64) -> Result<()> {
    conn.stmts.with(conn.db, key, || sql.into(), |s| {
        s.bind_i64(1, tid)?;
        s.bind_i64(2, dbv)?;
        s.bind_i64(3, b)?;
        s.run()
    })
}

/// The highest db_version among clock `tid`'s entries (0: none).
pub fn max_sql(tid: i64) -> String {
    format!("SELECT coalesce(max(dbv), 0) FROM main.crr_dirty WHERE tid = {tid}")
}

/// The table ids of crr_tables with a crr_dirty entry at db_version `dbv` or later, in one
/// statement (a seek per CRR). Pending entries must have been written (`dirty::flush`).
pub fn tables_written_since(conn: &Conn, dbv: i64) -> Result<HashSet<i64, FastBuild>> {
    conn.stmts.with(
        conn.db,
        Key::DirtySince,
        || "SELECT t.tid FROM main.crr_tables AS t WHERE EXISTS (SELECT 1 FROM main.crr_dirty AS d WHERE d.tid = t.tid AND d.dbv >= ?1)".into(),
        |s| {
            s.bind_i64(1, dbv)?;
            let mut written = HashSet::default();
            while s.step()? {
                written.insert(s.i64(0));
            }
            Ok(written)
        },
    )
}

/// Removes every entry of clock `tid` (its clock is being removed), held-back ones too.
pub fn forget(conn: &Conn, tid: i64) -> Result<()> {
    flush(conn)?;
    conn.txn.borrow_mut().dirty.grown.retain(|g| g.tid != tid);
    conn.db.exec(&format!("DELETE FROM main.crr_dirty WHERE tid = {tid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_keys_into_runs_of_bucket_rows() {
        let n = BUCKET_ROWS;
        assert_eq!((bucket(0), bucket(n - 1), bucket(n)), (0, 0, 1));
        assert_eq!((bucket(-1), bucket(-n), bucket(-n - 1)), (-1, -1, -2));
        assert_eq!((bucket(i64::MAX), bucket(i64::MIN)), (i64::MAX >> BUCKET_BITS, i64::MIN >> BUCKET_BITS));
    }

    /// The SQL bounds of a bucket hold exactly its keys (checked on the arithmetic SQLite
    /// does: shifts of 64-bit integers, no overflow at either end).
    #[test]
    fn bucket_bounds_hold_exactly_the_buckets_keys() {
        let n = BUCKET_ROWS;
        for key in [0, 1, n - 1, n, n + 1, -1, -n, -n - 1, i64::MAX, i64::MIN, i64::MAX - n + 1, i64::MIN + n] {
            let b = bucket(key);
            let (lo, hi) = (b << BUCKET_BITS, (b << BUCKET_BITS) + (BUCKET_ROWS - 1));
            assert!(lo <= key && key <= hi, "{key} in [{lo}, {hi}]");
            assert_eq!((bucket(lo), bucket(hi)), (b, b));
        }
        assert_eq!(bucket_keys_sql("d.bucket"), ("(d.bucket << 5)".to_string(), "((d.bucket << 5) + 31)".to_string()));
    }
}
