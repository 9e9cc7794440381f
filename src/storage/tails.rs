//! Tails of bucket clocks: the buckets of a clock from its tail's start up, whose rows need no
//! `crr_dirty` entry (dirty.rs states the invariant with tails).
//!
//! The tail is what spares a transaction that appends rows (new keys above the others, as
//! apps insert; a packed-key clock's new rows always are) an entry of its own: a commit of one
//! row wrote three pages (the table's, the clock's, crr_dirty's) where plain SQLite writes
//! one, and now writes two. `flush` moves the tail up to the bucket of the clock's highest row
//! (`fit`); the rows the move leaves behind get entries then, at their bucket's highest
//! `dbv` (the move scans them: `seal_tails`), and an addition in the tail is not written. So
//! a run of single-row appends writes an entry once per bucket, not once per transaction,
//! and the tail holds one bucket's rows (or more, a rollback undid a move). Every read since
//! V reads the tail whole: a seek and at most those rows per clock (a poll that finds nothing
//! new reads them too; with 400 CRRs that cost is in README's performance section). The
//! tail entry and the clock's highest bucket are read once per transaction and clock, or
//! taken from the last transaction's commit while no other connection committed since
//! (`TailsCarry`). Since each tail costs every read, a clock gets one only once two
//! transactions in a row have appended to it, and at most `TAILS_MAX` clocks keep one.
//!
//! The tail's state: `crr_tails(tid, bucket, at)` in the database; what this transaction's
//! flushes made of the tails in `Marks` (dirty.rs); what the last commit knew in
//! `Conn::tails_carry` (`TailsCarry`). `flush` (dirty.rs) fits its pending entries to the
//! tails (`fit`), writes the additions, then the entries of the buckets the moves leave
//! (`seal_tails`), the removals, and the moves (`move_tails`).

use super::conn::Conn;
use super::dirty::{bucket, bucket_keys_sql, has_tails, Pending, BUCKET_BITS, BUCKET_ROWS};
use super::stmt_cache::Key;
use super::txn;
use crate::error::Result;

/// SQL for the first rowid of clock `tid`'s tail (NULL: it has none).
fn tail_start_sql(tid: i64) -> String {
    format!("({} << {BUCKET_BITS})", tail_sql(tid))
}

/// SQL for the first bucket of clock `tid`'s tail (NULL: it has none).
pub(super) fn tail_sql(tid: i64) -> String {
    format!("(SELECT bucket FROM main.crr_tails WHERE tid = {tid})")
}

/// An expression for the highest `dbv` of clock `tid`'s tail (0: none).
pub(super) fn tail_max_sql(tid: i64) -> String {
    tail_max_from_sql(tid, &tail_start_sql(tid))
}

/// An expression for the highest `dbv` of clock `tid`'s rows from rowid `start` (an SQL
/// expression) up (0: none): its tail's, where `start` is the tail's first rowid.
pub(super) fn tail_max_from_sql(tid: i64, start: &str) -> String {
    format!("coalesce((SELECT max(dbv) FROM {} WHERE rowid >= {start}), 0)", super::tables::clock_table(tid))
}

/// What a connection knows of clock `tid`'s tail: the bucket of its tail entry (None: it has
/// none), and the bucket of its highest row as last seen (an estimate: `fit` moves the tail
/// up to it, and what a move leaves behind gets entries whatever it is).
#[derive(Debug, Clone, Copy)]
pub struct Tail {
    tid: i64,
    start: Option<i64>,
    top: i64,
    /// The db_version of the last transaction this connection saw add a row or an entry in
    /// bucket `top` (0: none): a clock gets a tail when two in a row do (see `fit`).
    at: i64,
}

/// What a committed transaction knew of the tails (`Conn::tails_carry`): the next one may use
/// it instead of reading them while the database's data version and schema cookie are still
/// these (no other connection committed, and no schema change since).
#[derive(Debug)]
pub struct TailsCarry {
    pub(super) data_version: u32,
    pub(super) cookie: i64,
    pub(super) tails: Vec<Tail>,
    /// Packed-key bucket clocks' highest rowids, (tid, rowid), as the commit left them: the
    /// next transaction's first write that may add a row starts its range there (`grow`)
    /// instead of reading it.
    pub(super) highest: Vec<(i64, i64)>,
}

/// A move of clock `tid`'s tail from bucket `from` (None: it has none) to `to` (None: the
/// clock is left without one), at db_version `dbv`.
pub(super) struct TailMove {
    tid: i64,
    from: Option<i64>,
    to: Option<i64>,
    dbv: i64,
}

/// How many clocks may have a tail at once. Every read since V reads each tail (a statement
/// and up to a bucket's rows): with 400 CRRs that each had one, `crsql_db_version()` took
/// 0.78 ms where it took 0.07 without. A clock that gets a tail beyond this many takes the
/// place of the one whose tail moved least recently (`fit`), which is left without.
pub const TAILS_MAX: usize = 8;

/// Fits the held-back entries of this transaction's db_version to the tails of their clocks
/// (see the module comment), before `flush` writes them: for each clock they add to, reads
/// its tail entry `t` and highest rowid (or takes them from what it knows, `known_tail`), and
/// moves the tail up to the highest rowid's bucket `top`. An addition in a bucket at or above
/// the tail's new start is not written (the tail covers it); the move (`seal_tails`) gives
/// every bucket it takes out of the tail that holds a row an entry at the highest `dbv` of its
/// rows (rows there may have none: this transaction's and earlier ones' left in the tail, also
/// above `t` where a rollback undid a move and kept the rows; at a db_version one of its rows
/// has, the entry is one that the row's next write removes, as any other). A clock without a
/// tail gets one at `top` when the last transaction also added to its top bucket (its entries
/// are written as before), and takes the place of the least recently moved one beyond
/// `TAILS_MAX`. Returns the moves, which `flush` makes after writing the entries, and what the
/// flush leaves known of the tails.
pub(super) fn fit(conn: &Conn, pending: &mut Vec<Pending>) -> Result<(Vec<TailMove>, Vec<Tail>)> {
    let (mut moves, mut known) = (Vec::new(), Vec::new());
    let Some(dbv) = txn::current_db_version(conn) else {
        return Ok((moves, known));
    };
    if !conn.txn_joined.get() || !has_tails(conn) {
        // While the extension is set up, entries are written at once (`mark`): no tails.
        return Ok((moves, known));
    }
    // The highest bucket this transaction adds to each clock, from one sort of the additions
    // (a pass over `pending` per clock cost clocks x entries: up to 400 x 4,096 for a merge
    // into 400 CRRs; a hash map cost a run of single-row inserts, one clock each, about 900
    // instructions a transaction in allocations).
    let mut tids: Vec<(i64, i64)> = pending.iter().filter(|e| e.add && e.dbv == dbv).map(|e| (e.tid, e.bucket)).collect();
    tids.sort_unstable();
    // (Sorted by bucket within a clock: the last of each clock's is its highest.)
    tids.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    // Where each clock's tail starts once moved (sorted by tid): its additions there are not
    // written.
    let mut starts: Vec<(i64, i64)> = Vec::new();
    for (tid, added_top) in tids {
        let k = known_tail(conn, tid);
        // `previous`: where nothing is known, the highest bucket with an entry of the last
        // db_version before this transaction's (whichever connection wrote it).
        let (tail, top, previous) = match k {
            // The rows added since are all marked: their buckets are among the additions.
            Some(k) => (k.start, added_top.max(k.top), None),
            None => {
                let (tail, last, previous) = conn.stmts.with(
                    conn.db,
                    Key::DirtyTail(tid),
                    || {
                        format!(
                            "SELECT {}, (SELECT max(rowid) FROM {}), (SELECT max(bucket) FROM main.crr_dirty WHERE tid = {tid} AND dbv = ?1)",
                            tail_sql(tid),
                            super::tables::clock_table(tid)
                        )
                    },
                    |s| {
                        s.bind_i64(1, dbv.saturating_sub(1))?;
                        s.step()?;
                        Ok((integer_or_null(s, 0, tid)?, integer_or_null(s, 1, tid)?, integer_or_null(s, 2, tid)?))
                    },
                )?;
                // (A flush inside a statement can come before its row is there.)
                (tail, last.map_or(added_top, |l| bucket(l).max(added_top)), previous)
            }
        };
        let at = if added_top == top { dbv } else { k.filter(|k| k.top == top).map_or(0, |k| k.at) };
        let Some(t) = tail else {
            // Only a clock appended to by two transactions in a row gets a tail (every read
            // since V reads each tail: a clock written now and then is better off without).
            // Where this connection knows nothing of the last one (another connection made
            // it, or this one has just opened), its entry at the clock's top bucket or the
            // one below says that it wrote there (an append, or an update of a row near the
            // top: then the tail is one that did not pay, which is all).
            let streak = match k {
                Some(k) => k.at == dbv.saturating_sub(1) && added_top >= k.top,
                None => previous.is_some_and(|p| p >= top.saturating_sub(1) && added_top >= p),
            };
            if streak {
                moves.push(TailMove { tid, from: None, to: Some(top), dbv });
            }
            known.push(Tail { tid, start: streak.then_some(top), top, at });
            continue;
        };
        let to = t.max(top);
        starts.push((tid, to));
        if to > t {
            moves.push(TailMove { tid, from: Some(t), to: Some(to), dbv });
        }
        known.push(Tail { tid, start: Some(to), top, at });
    }
    if !starts.is_empty() {
        for e in pending.iter_mut().filter(|e| e.add && e.dbv == dbv) {
            if starts.binary_search_by_key(&e.tid, |s| s.0).is_ok_and(|i| e.bucket >= starts[i].1) {
                e.add = false;
            }
        }
    }
    pending.retain(|e| e.add || e.old.is_some());
    let new = moves.iter().filter(|m| m.from.is_none()).count();
    if new > 0 {
        // Clocks beyond TAILS_MAX give up theirs, the least recently moved first (but those
        // this flush has a say in).
        let victims = conn.stmts.with(
            conn.db,
            Key::TailsOldest,
            || "SELECT tid, bucket, (SELECT count(*) FROM main.crr_tails) FROM main.crr_tails ORDER BY at, tid LIMIT ?1".into(),
            |s| {
                s.bind_i64(1, (new + known.len()) as i64)?;
                let mut oldest = Vec::new();
                let mut count = 0;
                while s.step()? {
                    count = s.i64(2);
                    let tid = s.i64(0);
                    if let Some(b) = integer_or_null(s, 1, tid)? {
                        oldest.push((tid, b));
                    }
                }
                Ok((oldest, count))
            },
        )?;
        let (oldest, count) = victims;
        let over = (count.max(0) as usize + new).saturating_sub(TAILS_MAX);
        let named: Vec<i64> = known.iter().map(|k| k.tid).collect();
        for (tid, b) in oldest.into_iter().filter(|(tid, _)| !named.contains(tid)).take(over) {
            moves.push(TailMove { tid, from: Some(b), to: None, dbv });
            known.push(Tail { tid, start: None, top: b, at: 0 });
        }
    }
    Ok((moves, known))
}

/// What this transaction (written since the last rollback) or the last committed one (at
/// the data version and schema cookie this transaction started from) knew of clock `tid`'s
/// tail, if anything.
fn known_tail(conn: &Conn, tid: i64) -> Option<Tail> {
    {
        let t = conn.txn.borrow();
        let m = &t.dirty;
        if !m.tails_trusted(|r| conn.still_written(r)) {
            return None;
        }
        if let Some(k) = m.tails.iter().find(|k| k.tid == tid) {
            return Some(*k);
        }
    }
    from_carry(conn, |c| c.tails.iter().find(|k| k.tid == tid).copied())
}

/// Packed-key clock `tid`'s highest rowid as the last commit left it (`from_carry`; clock
/// rows are added only through `grow`).
pub(super) fn known_highest(conn: &Conn, tid: i64) -> Option<i64> {
    from_carry(conn, |c| c.highest.iter().find(|h| h.0 == tid).map(|h| h.1))
}

/// `f` of the last commit's `TailsCarry`, if this transaction started from that commit (the
/// data version and schema cookie it left) and no rollback since may have undone a move of a
/// tail (`Marks::tails_unsure`).
fn from_carry<T>(conn: &Conn, f: impl FnOnce(&TailsCarry) -> Option<T>) -> Option<T> {
    let t = conn.txn.borrow();
    if t.dirty.tails_unsure {
        return None;
    }
    let (dv, cookie) = (conn.txn_data_version.get()?, t.cookie?);
    let carry = conn.tails_carry.borrow();
    carry.as_ref().filter(|c| c.data_version == dv && c.cookie == cookie).and_then(f)
}

/// Notes what a flush made of the clocks' tails (`fit`), once written.
pub(super) fn remember_tails(conn: &Conn, known: Vec<Tail>) {
    if known.is_empty() {
        return;
    }
    let mark = conn.rollback_mark();
    let mut t = conn.txn.borrow_mut();
    let m = &mut t.dirty;
    if m.tails_undone(|r| conn.still_written(r)) {
        // A rollback since may have undone moves of other clocks' tails too: neither what
        // this transaction noted nor the carry is trusted from now on.
        m.tails.clear();
        m.tails_unsure = true;
    }
    m.tails_mark = mark;
    for k in known {
        note_tail(&mut m.tails, k);
    }
}

/// Puts `k` in `tails`, in place of what it held of the same clock.
pub(super) fn note_tail(tails: &mut Vec<Tail>, k: Tail) {
    match tails.iter_mut().find(|e| e.tid == k.tid) {
        Some(e) => *e = k,
        None => tails.push(k),
    }
}

/// Column `i` of `s`, a bucket or rowid of clock `tid`'s: an integer, or NULL (None).
fn integer_or_null(s: &crate::ffi::db::Stmt, i: usize, tid: i64) -> Result<Option<i64>> {
    match s.column_type(i) {
        crate::ffi::api::SQLITE_NULL => Ok(None),
        crate::ffi::api::SQLITE_INTEGER => Ok(Some(s.i64(i))),
        _ => Err(crate::error::Error::new(format!(
            "table id {tid}: crr_tails or its clock table {} holds a bucket or rowid that is not an integer: the database is damaged",
            super::tables::clock_table(tid)
        ))),
    }
}

/// Gives the buckets the tail moves `fit` decided take out of tails their entries: each that
/// holds a row, at its rows' highest `dbv` (a scan of those rows).
pub(super) fn seal_tails(conn: &Conn, moves: &[TailMove]) -> Result<()> {
    for m in moves {
        let Some(from) = m.from else {
            continue;
        };
        // (The SQL, and the clock's name in it, are made only when a statement is prepared.)
        let clock = || super::tables::clock_table(m.tid);
        if m.to.is_some() && m.to == from.checked_add(1) {
            // A move by one bucket, as a run of appends makes every BUCKET_ROWS rows: an
            // aggregate over that bucket's rows, where the GROUP BY below sorts (about 38k
            // instructions a move more: 3,000 single-row inserts 90.6M -> 87.0M).
            let (lo, hi) = bucket_keys_sql("?1");
            conn.stmts.with(
                conn.db,
                Key::DirtyTailSealOne(m.tid),
                || {
                    format!(
                        "INSERT INTO main.crr_dirty(tid, dbv, bucket) SELECT {}, m, ?1 FROM (SELECT max(dbv) AS m FROM {} \
                         WHERE rowid BETWEEN {lo} AND {hi}) WHERE m IS NOT NULL ON CONFLICT DO NOTHING",
                        m.tid,
                        clock()
                    )
                },
                |s| {
                    s.bind_i64(1, from)?;
                    s.run()
                },
            )?;
            continue;
        }
        // (The last rowid below `to`'s bucket: `to` is at most the highest bucket, whose first
        // rowid is i64::MAX - 31, so no overflow.)
        let last = m.to.map_or(i64::MAX, |to| to.saturating_mul(BUCKET_ROWS) - 1);
        conn.stmts.with(
            conn.db,
            Key::DirtyTailSeal(m.tid),
            || {
                format!(
                    "INSERT INTO main.crr_dirty(tid, dbv, bucket) SELECT {}, max(dbv), rowid >> {BUCKET_BITS} FROM {} \
                     WHERE rowid BETWEEN ?1 AND ?2 GROUP BY rowid >> {BUCKET_BITS} ON CONFLICT DO NOTHING",
                    m.tid,
                    clock()
                )
            },
            |s| {
                s.bind_i64(1, from.saturating_mul(BUCKET_ROWS))?;
                s.bind_i64(2, last)?;
                s.run()
            },
        )?;
    }
    Ok(())
}

/// Makes the tail moves `fit` decided, in crr_tails (after `seal_tails`).
pub(super) fn move_tails(conn: &Conn, moves: &[TailMove]) -> Result<()> {
    for m in moves {
        match m.to {
            Some(to) => conn.stmts.with(
                conn.db,
                Key::TailMove,
                || "INSERT INTO main.crr_tails(tid, bucket, at) VALUES (?1, ?2, ?3) ON CONFLICT(tid) DO UPDATE SET bucket = excluded.bucket, at = excluded.at".into(),
                |s| {
                    s.bind_i64(1, m.tid)?;
                    s.bind_i64(2, to)?;
                    s.bind_i64(3, m.dbv)?;
                    s.run()
                },
            )?,
            None => conn.stmts.with(conn.db, Key::TailDrop, || "DELETE FROM main.crr_tails WHERE tid = ?1".into(), |s| {
                s.bind_i64(1, m.tid)?;
                s.run()
            })?,
        }
    }
    Ok(())
}

/// The tails of the CRRs of crr_tables: (tid, first bucket).
pub(super) fn tails_of_crrs(conn: &Conn) -> Result<Vec<(i64, i64)>> {
    if !has_tails(conn) {
        return Ok(Vec::new());
    }
    conn.stmts.with(
        conn.db,
        Key::Tails,
        || "SELECT l.tid, l.bucket FROM main.crr_tails AS l JOIN main.crr_tables AS t ON t.tid = l.tid".into(),
        |s| {
            let mut tails = Vec::new();
            while s.step()? {
                let tid = s.i64(0);
                match integer_or_null(s, 1, tid)? {
                    Some(b) => tails.push((tid, b)),
                    None => return Err(crate::error::Error::new(format!("table id {tid}: crr_tails holds no bucket for it: the database is damaged"))),
                }
            }
            Ok(tails)
        },
    )
}

