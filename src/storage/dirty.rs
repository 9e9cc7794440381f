//! Which rows of a rowid-keyed clock were written since a db_version: `crr_dirty(tid, dbv,
//! bucket)`, by bucket of `BUCKET_ROWS` (32) consecutive keys (bucket = key >> `BUCKET_BITS`).
//!
//! A per-row index on the clock's `dbv` would cost every tracked write a second B-tree entry
//! (an insert, and for a rewrite a delete too): about a third of the instructions of a bulk
//! insert or update. A bucket entry is written once per bucket and transaction instead.
//!
//! **Invariant:** for every row of a bucket clock whose `dbv` is D there is an entry
//! (tid, D', bucket) with D' >= D, or the row is in the clock's *tail*: its bucket is at or
//! above `t`, where (tid, t) is the clock's row in `crr_tails`. So the rows with `dbv` >= V all
//! lie in the buckets that have an entry at V or later and in the tail, and "changes since V"
//! reads those (at most `BUCKET_ROWS` rows a bucket, filtered on the clock's `dbv`): work in
//! proportion to what was written since V, plus the tail.
//!
//! The tail is what spares a transaction that appends rows a `crr_dirty` entry of its own
//! (storage/tails.rs says how and when a clock has one).
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
use super::tails::{fit, known_highest, move_tails, note_tail, remember_tails, seal_tails, tail_max_from_sql, tail_max_sql, tail_sql, tails_of_crrs, Tail, TailsCarry};
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

/// Whether the database has tails: crr_tails, internal schema 7 (a connection that may not
/// write reads a database of an earlier build as it is, without).
pub fn has_tails(conn: &Conn) -> bool {
    conn.internal_version.get().is_some_and(|v| v >= 7)
}

/// A subquery of the rowid ranges (`lo`, `hi`) of clock `tid` that hold every row written at
/// `?{param}` or later: the buckets below the tail with an entry then, and the tail (if the
/// database has tails).
pub fn ranges_since_sql(tid: i64, param: usize, tails: bool) -> String {
    let (lo, hi) = bucket_keys_sql("bucket");
    let max = i64::MAX;
    if !tails {
        return format!("SELECT DISTINCT {lo} AS lo, {hi} AS hi FROM main.crr_dirty WHERE tid = {tid} AND dbv >= ?{param}");
    }
    format!(
        "SELECT DISTINCT {lo} AS lo, {hi} AS hi FROM main.crr_dirty WHERE tid = {tid} AND dbv >= ?{param} \
         AND bucket < coalesce({}, {max}) UNION ALL SELECT {lo}, {max} FROM main.crr_tails WHERE tid = {tid}",
        tail_sql(tid)
    )
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
    /// What this transaction's flushes made of the clocks' tails, trusted while `tails_mark`
    /// says they are still written (`tails::known_tail`); `tails_unsure` once a rollback may have
    /// undone some (then every tail is read, and none is carried to the next transaction).
    pub(super) tails: Vec<Tail>,
    pub(super) tails_mark: Option<u64>,
    pub(super) tails_unsure: bool,
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
        let Marks { mark, added, removed, pending, written, grown, tails, tails_mark, tails_unsure } = self;
        *mark = None;
        grown.clear();
        tails.clear();
        *tails_mark = None;
        *tails_unsure = false;
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

    /// Whether a rollback reported since may have undone a move of a tail that this
    /// transaction noted (`tails`, written under `tails_mark`).
    pub(super) fn tails_undone(&self, still_written: impl Fn(Option<u64>) -> bool) -> bool {
        !self.tails.is_empty() && !still_written(self.tails_mark)
    }

    /// Whether what this transaction noted of the tails is trusted: not `tails_unsure`, and
    /// not `tails_undone`.
    pub(super) fn tails_trusted(&self, still_written: impl Fn(Option<u64>) -> bool) -> bool {
        !self.tails_unsure && !self.tails_undone(still_written)
    }

    /// What the transaction leaves the next of the tails if it commits now, having run at data
    /// version `ran_at` under schema cookie `cookie`: what it knew (`tails`) over what it was
    /// left (`previous`, if it started from it). None where a rollback may have undone a move.
    pub fn carry_tails(&self, ran_at: Option<u32>, cookie: Option<i64>, still_written: impl Fn(Option<u64>) -> bool, previous: Option<TailsCarry>) -> Option<TailsCarry> {
        let (ran_at, cookie) = (ran_at?, cookie?);
        if !self.tails_trusted(&still_written) {
            return None;
        }
        let (mut tails, mut highest) =
            previous.filter(|p| p.data_version == ran_at && p.cookie == cookie).map(|p| (p.tails, p.highest)).unwrap_or_default();
        for k in &self.tails {
            note_tail(&mut tails, *k);
        }
        // A range's last mark read the clock's highest rowid at the commit's flush (xSync);
        // one a rollback may have undone since says nothing.
        for g in &self.grown {
            highest.retain(|h| h.0 != g.tid);
            if still_written(g.mark) {
                highest.push((g.tid, g.marked));
            }
        }
        Some(TailsCarry { data_version: ran_at.wrapping_add(1), cookie, tails, highest })
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
pub(super) struct Pending {
    pub(super) tid: i64,
    pub(super) dbv: i64,
    pub(super) bucket: i64,
    /// Whether the entry (tid, dbv, bucket) is to be added (false: only the removal of the
    /// one at `old`, the bucket being in the clock's tail, see `tails::fit`).
    pub(super) add: bool,
    pub(super) old: Option<i64>,
    /// The lowest `Conn::depth` the writes it covers were made at (lowered by releases), so
    /// a rollback below it undid them all. Along `Marks::pending` levels never fall: a mark
    /// is made at the current depth, which no held-back write is above (releases lower them,
    /// rollbacks drop them). An entry that later marks of its bucket skip (`Marks::added`)
    /// covers their writes too; they are made at its level or above, or after a release
    /// that lowered it, since a rollback in between makes them mark again.
    pub(super) level: i32,
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
    mark_at(conn, tid, key, dbv, old, conn.depth.get())
}

/// `mark` for writes made at savepoint depth `level` or above (`Pending::level`): the current
/// depth for a write being made, lower for the rows a packed-key clock's range covers
/// (`mark_grown`: they were added since the range was noted, at `Grown::level`).
fn mark_at(conn: &Conn, tid: i64, key: i64, dbv: i64, old: Option<i64>, level: i32) -> Result<()> {
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
        // (An entry of the bucket held back or written at a higher level does not cover
        // writes made below it: a rollback between the two levels would take it alone.)
        let below = level < conn.depth.get();
        let add = !(current && !below && m.added.contains(&(tid, b)));
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
    let p = Pending { tid, dbv, bucket: b, add: true, old, level };
    if !conn.txn_joined.get() {
        return write(conn, &[p]);
    }
    let full = {
        let mut t = conn.txn.borrow_mut();
        let pending = &mut t.dirty.pending;
        // Levels rise along `pending` (`Pending::level`): one below the current depth goes
        // in its place.
        let at = pending.partition_point(|e| e.level <= level);
        pending.insert(at, p);
        pending.len() >= PENDING_MAX
    };
    if full {
        flush(conn)?;
    }
    Ok(())
}

/// A write that may add a row to packed-key bucket clock `tid`, storing `dbv`, is about to be
/// made: the first of the transaction notes the clock's highest rowid (see the module
/// comment; `flush` marks the rows added since), as the last commit left it where this
/// transaction started from that commit (`known_highest`: 4% of the instructions of a
/// text-keyed single-row insert), else read.
pub fn grow(conn: &Conn, tid: i64, dbv: i64) -> Result<()> {
    {
        let mut t = conn.txn.borrow_mut();
        if let Some(g) = t.dirty.grown.iter_mut().find(|g| g.tid == tid) {
            g.tries = g.tries.saturating_add(1);
            g.dbv = g.dbv.max(dbv);
            return Ok(());
        }
    }
    let start = match known_highest(conn, tid) {
        Some(h) => h,
        None => highest_rowid(conn, tid)?,
    };
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
            // At the range's level: the rows were added at it or above, so only a rollback
            // below it undoes them all (until 2026-12-07 these marks took the flush's depth,
            // and a rollback between the two, as of a crsql_as_table in a savepoint, dropped
            // the entries of rows that stayed: their db_version was handed out again).
            for b in bucket(from + 1)..=bucket(now) {
                mark_at(conn, g.tid, b << BUCKET_BITS, g.dbv, None, g.level)?;
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
    // Additions first (the entries and those of the buckets moves take out of tails), so that
    // each removal's entry is covered by then, then the tails' moves. (A removal after the
    // moves' scans: a flush inside a statement can see a row at the dbv its write is about to
    // leave, and a scan would give its bucket the entry the removal takes away.)
    let r = fit(conn, &mut pending).and_then(|(moves, known)| {
        add_all(conn, &pending)?;
        seal_tails(conn, &moves)?;
        remove_all(conn, &pending)?;
        move_tails(conn, &moves)?;
        remember_tails(conn, known);
        Ok(())
    });
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
    let kept: Vec<Pending>;
    let entries = if entries.iter().all(|e| e.add) {
        entries
    } else {
        kept = entries.iter().filter(|e| e.add).copied().collect();
        &kept
    };
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

/// The highest db_version among clock `tid`'s entries and its tail's rows (0: none).
pub fn max_sql(tid: i64) -> String {
    format!("SELECT max(coalesce((SELECT max(dbv) FROM main.crr_dirty WHERE tid = {tid}), 0), {})", tail_max_sql(tid))
}

/// The highest db_version among the crr_dirty entries of the CRRs of crr_tables and the rows
/// of their clocks' tails (0: none): a statement for the entries (a seek per CRR), one for
/// the tails, and one per tail. Pending entries must have been written (`flush`).
pub fn max_written(conn: &Conn) -> Result<i64> {
    let mut max = conn.stmts.with(
        conn.db,
        Key::DirtyMax,
        || "SELECT coalesce(max((SELECT max(dbv) FROM main.crr_dirty AS d WHERE d.tid = t.tid)), 0) FROM main.crr_tables AS t".into(),
        |s| {
            s.step()?;
            Ok(s.i64(0))
        },
    )?;
    for (tid, t) in tails_of_crrs(conn)? {
        let v = conn.stmts.with(
            conn.db,
            Key::TailMax(tid),
            || format!("SELECT {}", tail_max_from_sql(tid, "?1")),
            |s| {
                s.bind_i64(1, t.saturating_mul(BUCKET_ROWS))?;
                s.step()?;
                Ok(s.i64(0))
            },
        )?;
        max = max.max(v);
    }
    Ok(max)
}

/// The table ids of crr_tables whose clock has a crr_dirty entry at db_version `dbv` or later
/// (a seek per CRR, in one statement), or a row in its tail written then (a statement per
/// tail of a clock without such an entry: a seek and at most about a bucket's rows). Pending entries must
/// have been written (`dirty::flush`).
pub fn tables_written_since(conn: &Conn, dbv: i64) -> Result<HashSet<i64, FastBuild>> {
    let mut written: HashSet<i64, FastBuild> = conn.stmts.with(
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
    )?;
    let tails: Vec<(i64, i64)> = tails_of_crrs(conn)?.into_iter().filter(|(tid, _)| !written.contains(tid)).collect();
    for (tid, t) in tails {
        let hit = conn.stmts.with(
            conn.db,
            Key::TailSince(tid),
            || format!("SELECT 1 FROM {} WHERE rowid >= ?2 AND dbv >= ?1 LIMIT 1", super::tables::clock_table(tid)),
            |s| {
                s.bind_i64(1, dbv)?;
                s.bind_i64(2, t.saturating_mul(BUCKET_ROWS))?;
                s.step()
            },
        )?;
        if hit {
            written.insert(tid);
        }
    }
    Ok(written)
}

/// Removes every entry of clock `tid` (its clock is being removed), held-back ones too.
pub fn forget(conn: &Conn, tid: i64) -> Result<()> {
    flush(conn)?;
    let mut t = conn.txn.borrow_mut();
    t.dirty.grown.retain(|g| g.tid != tid);
    // (Its tail entry goes too: what the carry says of it is stale.)
    t.dirty.tails_unsure = true;
    drop(t);
    conn.db.exec(&format!("DELETE FROM main.crr_dirty WHERE tid = {tid}"))?;
    if has_tails(conn) {
        conn.db.exec(&format!("DELETE FROM main.crr_tails WHERE tid = {tid}"))?;
    }
    Ok(())
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
