//! What one transaction shares: its db_version, its seq counter, its clock tick.
//!
//! db_version is derived, not counted: the next one is 1 + the highest db_version stored in any
//! clock table (or the floor left by removed tables). Writers are serialized by SQLite's write
//! lock, so this is unique per committed transaction and increases in commit order across
//! connections and processes; a savepoint rollback cannot make two transactions share one.
//! A transaction that holds this state has crr_internal_txn (or crsql_changes) in it
//! (`Conn::enter_write`), whose xCommit / xRollback reset it; `Conn::notice_commit` is the
//! safety net for a commit that was not reported.

use super::conn::Conn;
use super::meta;
use super::stmt_cache::Key;
use super::tables;
use crate::core::hlc;
use crate::core::row_clock::RowClock;
use crate::core::value::Value;
use crate::error::{Error, Result};
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    Hlc,
    Lamport,
}

#[derive(Default, Debug)]
pub struct Txn {
    pub db_version: Option<i64>,
    pub seq: i64,
    /// Clock mode, HLC high-water mark and tick, read at the transaction's first write.
    pub clock: Option<TxnClock>,
    /// Rows changed by merges (crsql_rows_impacted), by the savepoint level they were made at.
    pub rows_impacted: Impacted,
    /// This replica's own site ordinal, read at first use in the transaction.
    pub own_site: Option<u32>,
    /// The connection's `Carry` if it was still current at this transaction's first write
    /// (`Some(None)`: it was not); None until checked (see `carried`).
    pub carried: Option<Option<Carry>>,
    /// The schema cookie this transaction's db_version was derived under.
    pub cookie: Option<i64>,
    /// The last fresh record template (track::fresh_record), for this db_version.
    pub fresh: Option<super::track::FreshTemplate>,
    /// The crr_dirty entries this transaction wrote (storage/dirty.rs).
    pub dirty: super::dirty::Marks,
    /// This transaction changed a setting or this replica's site id (`settings_written`).
    pub settings_written: bool,
    /// A rollback was reported since: the settings in `clock` are re-read at its next use.
    pub settings_stale: bool,
}

/// A count of rows changed by merges, kept by the savepoint depth (`Conn::depth`) each was
/// changed at, so that a rollback to a savepoint takes back what it undid. Depths rise along
/// the list, one entry per depth.
#[derive(Default, Debug)]
pub struct Impacted(Vec<(i32, i64)>);

impl Impacted {
    pub fn add(&mut self, depth: i32) {
        if self.0.last().is_some_and(|(d, _)| *d > depth) {
            // The savepoints above `depth` ended without a report reaching us (a reported one
            // went through `released` or `rolled_back_to`): their rows count here, as a
            // release would have it.
            self.released(depth);
        }
        match self.0.last_mut() {
            Some((d, n)) if *d == depth => *n += 1,
            _ => self.0.push((depth, 1)),
        }
    }

    pub fn total(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// Savepoint `n` and those above it were released: their rows count at depth `n`.
    pub fn released(&mut self, n: i32) {
        let above: i64 = self.0.iter().filter(|(d, _)| *d > n).map(|(_, c)| c).sum();
        self.0.retain(|(d, _)| *d <= n);
        if above > 0 {
            match self.0.last_mut() {
                Some((d, c)) if *d == n => *c += above,
                _ => self.0.push((n, above)),
            }
        }
    }

    /// The writes made since savepoint `n` opened (at depth above `n`) were undone.
    pub fn rolled_back_to(&mut self, n: i32) {
        self.0.retain(|(d, _)| *d <= n);
    }
}

/// What a committed transaction of this connection leaves for its next one, so that a run of
/// small transactions does not re-read the same state each time. It is used only while the
/// database's data version is the one its commit left (no other connection's commit seen since,
/// and no commit of this connection that `Conn::end_transaction` did not pass it on through)
/// and the schema cookie is unchanged; the few writes of this connection that change what it
/// holds (settings, own site id, the db_version floor) drop it.
#[derive(Debug, Clone, Copy)]
pub struct Carry {
    /// The database's data version right after the commit that left this: SQLite moves it
    /// once at each commit of this connection, and again when this connection first reads
    /// after another's commit.
    pub data_version: u32,
    pub cookie: i64,
    /// The highest committed db_version.
    pub db_version: i64,
    /// Clock mode, mark and drift limit as committed (no tick).
    pub clock: Option<TxnClock>,
    pub own_site: Option<u32>,
}

/// How many transactions in a row may keep their tick in their one record instead of a
/// crr_ticks row (see `before_record`). It bounds what `recover` reads: each of them stored at
/// most one record since the last row.
pub const DEFER_MAX: i64 = 32;

#[derive(Debug, Clone, Copy)]
pub struct TxnClock {
    pub mode: ClockMode,
    pub hwm: i64,
    /// The tick local writes get now, and the first one this transaction handed out.
    pub tick: Option<i64>,
    pub first_tick: Option<i64>,
    pub drift_ms_max: i64,
    /// The db_version of the last crr_ticks row committed before this transaction (0: none).
    pub ticks_dbv: i64,
    /// Whether a record committed since that row may hold a tick that neither crr_ticks nor
    /// crr_meta covers (a transaction that kept its tick in its one record).
    pub pending: bool,
    /// This transaction stored a record while it had no row in crr_ticks.
    pub stored_rowless: bool,
    /// This transaction's first record holds its tick, and no crr_ticks row does.
    pub deferred: bool,
    /// A crr_ticks row this transaction wrote before it ticked (db_version, rollback mark): it
    /// holds the clock mark instead of a tick (see `settle`).
    pub mark_row: Option<(i64, Option<u64>)>,
    /// The value this transaction last raised the persisted clock mark to, and the rollback
    /// mark of that write (see `persist_at_least`).
    pub persisted: Option<(i64, Option<u64>)>,
    /// This transaction's row in crr_ticks (db_version, tick) and the rollback mark of its
    /// write: the first tick the transaction handed out (storage/ticks.rs).
    pub ticks_row: Option<(i64, i64, Option<u64>)>,
}

impl Txn {
    /// For the next transaction: as `Txn::default()`, in place, keeping small allocations.
    pub fn reset(&mut self) {
        // Every field is named, so that a new one cannot be forgotten here.
        let Txn { db_version, seq, clock, rows_impacted, own_site, carried, cookie, fresh, dirty, settings_written, settings_stale } =
            self;
        *db_version = None;
        *seq = 0;
        *clock = None;
        rows_impacted.0.clear();
        *own_site = None;
        *carried = None;
        *cookie = None;
        *fresh = None;
        dirty.empty();
        *settings_written = false;
        *settings_stale = false;
    }

    /// Drops what this transaction knows of the settings and the own site id: read again at
    /// their next use (the clock keeps what it knows of this transaction's ticks).
    pub fn forget_settings(&mut self) {
        self.own_site = None;
        self.carried = Some(None);
        self.settings_stale = true;
    }

    /// What this transaction leaves for the next, if it committed now, having run at data
    /// version `ran_at` (`Conn::txn_data_version`). None when it derived no db_version (then
    /// it changed nothing the carry holds), and when it wrote a setting or the site id.
    /// `still_written` tells whether a write made under a rollback mark is still in the
    /// database.
    pub fn carry(&self, ran_at: Option<u32>, still_written: impl Fn(Option<u64>) -> bool) -> Option<Carry> {
        if self.settings_written {
            // What it cached of them may have been read before a rollback undid them.
            return None;
        }
        let db_version = self.db_version?;
        let clock = self.clock.map(|c| {
            let (ticks_dbv, pending) = if c.has_row(&still_written) { (db_version, false) } else { (c.ticks_dbv, c.pending || c.deferred) };
            TxnClock { ticks_dbv, pending, ..TxnClock::new(c.mode, c.hwm, c.drift_ms_max) }
        });
        Some(Carry { data_version: ran_at?.wrapping_add(1), cookie: self.cookie?, db_version, clock, own_site: self.own_site })
    }
}

impl TxnClock {
    /// Whether this transaction's crr_ticks row (with its tick, or with the mark) is still
    /// written, as `still_written` tells of a rollback mark.
    fn has_row(&self, still_written: impl Fn(Option<u64>) -> bool) -> bool {
        self.ticks_row.is_some_and(|(_, _, m)| still_written(m)) || self.mark_row.is_some_and(|(_, m)| still_written(m))
    }

    fn new(mode: ClockMode, hwm: i64, drift_ms_max: i64) -> TxnClock {
        TxnClock {
            mode,
            hwm,
            tick: None,
            first_tick: None,
            drift_ms_max,
            ticks_dbv: 0,
            pending: false,
            stored_rowless: false,
            deferred: false,
            mark_row: None,
            persisted: None,
            ticks_row: None,
        }
    }
}

/// The connection's carry, if still current (checked once, at the transaction's first write).
/// Only for write transactions: their end is reported (xCommit / xRollback, see
/// `Conn::enter_write`), which resets what this records.
pub fn carried(conn: &Conn) -> Result<Option<Carry>> {
    if let Some(checked) = conn.txn.borrow().carried {
        return Ok(checked);
    }
    // The version `Conn::notice_commit` kept for this write transaction (read when none was).
    let dv = conn.txn_data_version.get().unwrap_or_else(|| conn.db.data_version());
    let carried = conn.carry.get().filter(|c| c.data_version == dv);
    conn.txn.borrow_mut().carried = Some(carried);
    Ok(carried)
}

/// Highest committed (or, inside our write transaction, recorded) db_version: of the clocks,
/// the floor, and crr_ticks. A transaction can commit a crr_ticks row and no clock row (a row
/// holding the mark, see `settle`); a later one given the same db_version could keep its tick
/// in a record at that db_version, which `recover` does not read (it reads the records after
/// the last row), and the clock would forget a version it handed out. (tests/alters.rs found
/// it, seed 57: crsql_begin_alter's transaction left such a row, the next one, on the other
/// connection, took its db_version.)
pub fn max_db_version(conn: &Conn) -> Result<i64> {
    super::dirty::flush(conn)?;
    let list = tables::all(conn)?;
    if list.is_empty() && !super::schema::is_installed(conn)? {
        return Ok(0);
    }
    // The bucket clocks' (their crr_dirty entries, a seek per CRR in one statement, and their
    // tails, one read of crr_tails and a statement per tail; with 400 CRRs a transaction's
    // first write after another connection's commit stepped 400 terms until 2026-12-06). Then
    // term i: the floor, the ticks, then each other clock's highest (SQL made only on a miss).
    let others: Vec<tables::Clock> = list.iter().map(|t| t.clock()).filter(|c| !c.buckets).collect();
    let term = |i: usize| match i {
        0 => "SELECT coalesce((SELECT value FROM main.crr_meta WHERE key = 'db_version_floor'), 0)".to_string(),
        1 => "SELECT max(dbv) FROM main.crr_ticks".to_string(),
        _ => others[i - 2].max_dbv_sql(),
    };
    let mut max = super::dirty::max_written(conn)?;
    let size = group_size(conn);
    let n = others.len() + 2;
    for (group, first) in (0..n).step_by(size).enumerate() {
        let terms = first..(first + size).min(n);
        let v = conn.stmts.with(
            conn.db,
            Key::MaxDbVersion(size, group),
            || format!("SELECT max(v) FROM ({})", terms.map(|i| format!("SELECT ({}) AS v", term(i))).collect::<Vec<_>>().join(" UNION ALL ")),
            |s| {
                s.step()?;
                Ok(s.i64(0))
            },
        )?;
        max = max.max(v);
    }
    Ok(max)
}

/// How many terms of a UNION ALL with a term per clock go in one statement: SQLite refuses a
/// compound SELECT of more terms than SQLITE_LIMIT_COMPOUND_SELECT (500 by default), and with
/// all in one, 499 CRRs made every local write and crsql_db_version() fail ("too many terms
/// in compound SELECT", until 2026-12-06). At most COMPOUND_TERMS, fewer if the connection's
/// limit is lower. The size is part of each group's statement key: a group's terms are the
/// same only for the same size.
fn group_size(conn: &Conn) -> usize {
    conn.db.limit(crate::ffi::api::SQLITE_LIMIT_COMPOUND_SELECT).min(COMPOUND_TERMS)
}

/// Most terms of one compound SELECT of ours (`group_size`).
pub const COMPOUND_TERMS: usize = 100;

/// The db_version after `last`. No database reaches 2^62 transactions (one a nanosecond for
/// 146 years): a higher one is a damaged crr_meta (`db_version_floor`) or clock, and adding to
/// it wrapped to versions that "changes since V" had passed (until 2026-12-06).
pub fn version_after(last: i64) -> Result<i64> {
    last.checked_add(1).filter(|&v| v <= crate::core::merge::VERSION_MAX).ok_or_else(|| {
        Error::new(format!(
            "the db_version is exhausted: the last one, {last}, is 2^62 or more, which no database reaches (crr_meta's db_version_floor or a clock table is damaged)"
        ))
    })
}

/// The db_version this transaction records at, allocating it on first use.
pub fn db_version(conn: &Conn) -> Result<i64> {
    if let Some(v) = conn.txn.borrow().db_version {
        return Ok(v);
    }
    // First write of the transaction: its end must be reported before it holds state.
    conn.enter_write()?;
    // Clear out the clocks of CRRs whose table was dropped.
    let (mut cookie, _) = tables::all_with_cookie(conn)?;
    super::schema::check_current(conn)?;
    if !conn.tables.borrow().dropped.is_empty() {
        super::dropped::reap_dropped(conn, false)?;
        cookie = tables::all_with_cookie(conn)?.0;
    }
    let last = match carried(conn)? {
        Some(c) if c.cookie == cookie => c.db_version,
        _ => max_db_version(conn)?,
    };
    let v = version_after(last)?;
    let mut t = conn.txn.borrow_mut();
    t.db_version = Some(v);
    t.cookie = Some(cookie);
    Ok(v)
}

/// The value crsql_db_version() reports: the highest committed db_version.
pub fn committed_db_version(conn: &Conn) -> Result<i64> {
    if let Some(v) = conn.txn.borrow().db_version {
        return Ok(v - 1);
    }
    max_db_version(conn)
}

/// The next seq of this transaction.
pub fn next_seq(conn: &Conn) -> i64 {
    take_seqs(conn, 1)
}

/// The next `n` seqs of this transaction; returns the first.
pub fn take_seqs(conn: &Conn, n: i64) -> i64 {
    let mut t = conn.txn.borrow_mut();
    let s = t.seq;
    t.seq += n;
    s
}

pub fn clock_mode_of(v: Option<Value>) -> Result<ClockMode> {
    match v {
        None => Ok(ClockMode::Hlc),
        Some(Value::Text(s)) if s == "hlc" => Ok(ClockMode::Hlc),
        Some(Value::Text(s)) if s == "lamport" => Ok(ClockMode::Lamport),
        Some(other) => Err(Error::new(format!("corrupt setting clock = {other:?}"))),
    }
}

/// The transaction's clock (a copy; `with_clock` reads it in place).
fn clock(conn: &Conn) -> Result<TxnClock> {
    with_clock(conn, |c| *c)
}

/// The clock `with_clock` found missing or stale: loaded at the transaction's first write (from
/// the carry, or read and recovered), or its settings read again.
fn load_clock(conn: &Conn) -> Result<TxnClock> {
    if conn.txn.borrow().clock.is_some() {
        // Stale: a rollback may have undone a setting this transaction wrote: read them again,
        // and keep what the clock knows of this transaction's ticks.
        let (mode, drift_ms_max) = settings(conn)?;
        let mut t = conn.txn.borrow_mut();
        t.settings_stale = false;
        let c = t.clock.as_mut().expect("the cached clock");
        c.mode = mode;
        c.drift_ms_max = drift_ms_max;
        return Ok(*c);
    }
    conn.enter_write()?;
    conn.txn.borrow_mut().settings_stale = false;
    if let Some(c) = carried(conn)?.and_then(|c| c.clock) {
        conn.txn.borrow_mut().clock = Some(c);
        return Ok(c);
    }
    let (mode, drift_ms_max) = settings(conn)?;
    let (hwm, ticks_dbv, pending) = recover(conn, mode)?;
    let c = TxnClock { ticks_dbv, pending, ..TxnClock::new(mode, hwm, drift_ms_max) };
    conn.txn.borrow_mut().clock = Some(c);
    Ok(c)
}

/// The clock settings as stored: mode and drift limit.
fn settings(conn: &Conn) -> Result<(ClockMode, i64)> {
    let mode = clock_mode_of(meta::get(conn, "config.clock")?)?;
    Ok((mode, meta::get_i64(conn, "config.hlc-max-drift-ms", hlc::DRIFT_MS_MAX_DEFAULT)?))
}

/// This transaction is about to change a setting or the site id: what the connection knows of
/// them is dropped now (`Txn::forget_settings`, the carry) and read again at its next use;
/// from now on its rollbacks are reported, and each one drops it again (`Conn::rolled_back`);
/// and it leaves no carry (`Txn::carry`). Nothing is set to the new values: outside a
/// transaction each write commits (SQLite commits a nested write in autocommit mode, or the
/// caller's savepoint releases), so the state would belong to the next transaction, where
/// another connection may have changed them first.
pub fn writing_settings(conn: &Conn) -> Result<()> {
    join_transaction(conn)?;
    conn.carry.set(None);
    let mut t = conn.txn.borrow_mut();
    t.settings_written = true;
    t.forget_settings();
    Ok(())
}

fn update_clock(conn: &Conn, f: impl FnOnce(&mut TxnClock)) {
    if let Some(c) = conn.txn.borrow_mut().clock.as_mut() {
        f(c);
    }
}

pub fn mode(conn: &Conn) -> Result<ClockMode> {
    with_clock(conn, |c| c.mode)
}

/// `f` of the transaction's clock, borrowed in place where it is loaded and current (a merge
/// asks three times a change: a copy each cost W6 1% of its instructions), else loaded first
/// (`load_clock`).
fn with_clock<T>(conn: &Conn, f: impl FnOnce(&TxnClock) -> T) -> Result<T> {
    {
        let t = conn.txn.borrow();
        if let (Some(c), false) = (t.clock.as_ref(), t.settings_stale) {
            return Ok(f(c));
        }
    }
    Ok(f(&load_clock(conn)?))
}

/// The persisted clock mark, the db_version of the last crr_ticks row, and whether a record
/// stored since holds a tick above what the rows and crr_meta say (`pending`).
///
/// The mark is the highest of: crr_meta's `hlc` (merged versions, re-ticks, marks secured
/// before clock rows were removed); the last crr_ticks row (a local transaction's first tick,
/// or the mark a transaction stored before it ticked: each is at least the mark its
/// transaction started from, so the last row holds the highest); and every version in the
/// records stored since that row (the transactions that kept their tick in their one record,
/// at most DEFER_MAX of them, see `before_record`). Lamport mode keeps no mark.
fn recover(conn: &Conn, mode: ClockMode) -> Result<(i64, i64, bool)> {
    let (meta_hlc, ticks_dbv, last_tick) = conn.stmts.with(
        conn.db,
        Key::ClockMark,
        || {
            "SELECT coalesce((SELECT value FROM main.crr_meta WHERE key = 'hlc'), 0), coalesce(last.dbv, 0), coalesce(last.tick, 0) \
             FROM (SELECT 1) LEFT JOIN (SELECT dbv, tick FROM main.crr_ticks ORDER BY dbv DESC LIMIT 1) AS last"
                .into()
        },
        |s| {
            s.step()?;
            Ok((s.i64(0), s.i64(1), s.i64(2)))
        },
    )?;
    let rows = meta_hlc.max(last_tick);
    if mode == ClockMode::Lamport {
        return Ok((rows, ticks_dbv, false));
    }
    // This connection's last commit (its carry, stale: another connection committed since)
    // knew the mark over every record up to its db_version. While the last crr_ticks row is
    // still the one it knew, the records stored after that row are those it covered and those
    // of the commits since, which are all after its db_version (a write stores its record at
    // a newer db_version than the one it replaces), and at most DEFER_MAX. So only those are
    // read: with connections taking turns, one record where it read up to DEFER_MAX
    // (`before_record`). A record it covered that a commit since replaced is still counted in
    // its mark, which only makes the mark higher: every version it counts was handed out.
    // (The registry's check first: a reload of the registry, as after any schema change or a
    // restore through the backup API, which moves the schema cookie, and a database with
    // another token in place of this one drop the carry, `Conn::forget_database`: a copy of
    // this database that went on elsewhere, restored in place, is recovered whole,
    // tests/lifecycle.rs.)
    let list = tables::all(conn)?;
    let known = conn.carry.get().and_then(|c| c.clock.map(|k| (c.db_version, k))).filter(|(dbv, k)| k.ticks_dbv == ticks_dbv && k.mode == mode && *dbv >= ticks_dbv);
    let (since, known_hwm, known_pending) = known.map_or((ticks_dbv, 0, false), |(dbv, k)| (dbv, k.hwm, k.pending));
    let in_records = records_since(conn, &list, since)?;
    Ok((rows.max(known_hwm).max(in_records), ticks_dbv, known_pending || in_records > rows))
}

/// The highest version in the clock records stored after db_version `dbv`, in every clock
/// table: those of `list` (the registry, as `recover` checked it) and of dropped CRRs not yet
/// removed.
fn records_since(conn: &Conn, list: &[Rc<tables::TableInfo>], dbv: i64) -> Result<i64> {
    super::dirty::flush(conn)?;
    let mut clocks: Vec<tables::Clock> = list.iter().map(|t| t.clock()).collect();
    clocks.extend(conn.tables.borrow().dropped.iter().copied());
    if clocks.is_empty() {
        return Ok(0);
    }
    let mut records = Vec::new();
    // A bucket clock with no crr_dirty entry after `dbv` holds no row written after it
    // (storage/dirty.rs): only those with one are read, a statement each; the other clocks
    // in groups of one statement.
    let (buckets, others): (Vec<tables::Clock>, Vec<tables::Clock>) = clocks.into_iter().partition(|c| c.buckets);
    // A clock's rows after `dbv`: (tid, cl, record).
    let tails = super::dirty::has_tails(conn);
    let term = |c: &tables::Clock| format!("SELECT {}, c.cl, c.clock FROM {} WHERE c.dbv > ?1", c.tid, c.rows_since(1, tails));
    let mut read = |key: Key, sql: &dyn Fn() -> String| {
        conn.stmts.with(conn.db, key, sql, |s| {
            s.bind_i64(1, dbv)?;
            while s.step()? {
                records.push((s.i64(0), s.i64(1), s.bytes(2).to_vec()));
            }
            Ok(())
        })
    };
    if !buckets.is_empty() {
        // (Saturating: a damaged crr_ticks may hold i64::MAX, after which nothing was written.)
        let written = super::dirty::tables_written_since(conn, dbv.saturating_add(1))?;
        for c in buckets.iter().filter(|c| written.contains(&c.tid)) {
            read(Key::RecordsSinceOne(c.tid), &|| term(c))?;
        }
    }
    let size = group_size(conn);
    for (group, clocks) in others.chunks(size).enumerate() {
        read(Key::RecordsSince(size, group), &|| clocks.iter().map(term).collect::<Vec<_>>().join(" UNION ALL "))?;
    }
    let mut max = 0;
    conn.records_recovered.set(conn.records_recovered.get() + records.len() as u64);
    for (tid, cl, bytes) in records {
        let rc = super::track::decode(conn, tid, cl, &bytes)?;
        max = max.max(rc.max_version().unwrap_or(0));
    }
    Ok(max)
}

/// Raises the persisted high-water mark to `hwm` (never lowers it).
fn persist_hwm(conn: &Conn, hwm: i64) -> Result<()> {
    conn.stmts.with(conn.db, Key::MetaRaiseHlc, || "INSERT INTO main.crr_meta(key, value) VALUES ('hlc', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE value < excluded.value".into(), |s| {
        s.bind_i64(1, hwm)?;
        s.run()
    })
}

/// Makes the crr_internal_txn virtual table take part in the open transaction (`JOIN_SQL`
/// makes SQLite call its xBegin), so that from now on every savepoint, statement and savepoint
/// rollback (`Conn::rollback_epoch`) and the transaction's end are reported. (`db_version`
/// and `clock`, through `Conn::enter_write`, join before a transaction holds state: what
/// writes after them needs no call of its own.) While the extension is still
/// being set up (the internal schema's install or upgrade at load) the table does not exist
/// yet, and nothing joins: what is written then gets no rollback mark (`Conn::rollback_mark`).
pub fn join_transaction(conn: &Conn) -> Result<()> {
    if conn.txn_joined.get() || !conn.txn_vtab.get() {
        return Ok(());
    }
    conn.stmts.with(conn.db, Key::JoinTransaction, || JOIN_SQL.into(), |s| s.run())
}

/// A statement that makes crr_internal_txn take part in the transaction: it writes the table,
/// so SQLite calls xBegin when the statement starts, and the table accepts a row of NULLs
/// and stores nothing (txn_vtab). A single-row INSERT needs no statement journal, where a
/// statement that may write several rows (a DELETE, an INSERT ... SELECT) would open one
/// each time: 1.6k instructions per transaction against 2.8k.
pub const JOIN_SQL: &str = "INSERT INTO main.crr_internal_txn VALUES (NULL)";

/// Makes sure crr_meta's clock mark is at least `v` in what this transaction has written (for
/// merged versions and re-ticks; a first tick is covered by the transaction's crr_ticks row,
/// see `tick`). Once raised, the write is trusted until a rollback is reported (one may have
/// undone it). A statement or savepoint rollback that undoes the mark's write undoes every
/// write made after it too, and later writes raise the mark again before they are made.
fn persist_at_least(conn: &Conn, v: i64) -> Result<()> {
    if with_clock(conn, |c| c.persisted)?.is_some_and(|(p, mark)| v <= p && conn.still_written(mark)) {
        return Ok(());
    }
    persist_hwm(conn, v)?;
    let mark = conn.rollback_mark();
    if let Some(c) = conn.txn.borrow_mut().clock.as_mut() {
        c.persisted = Some((v, mark));
    }
    Ok(())
}

/// Whether `version` is past every version this replica made or merged: HLC mode, with the
/// transaction's clock loaded (`check_drift` loads it); false in lamport mode, where versions
/// count the writes of each cell.
pub fn beyond_mark(conn: &Conn, version: i64) -> bool {
    matches!(conn.txn.borrow().clock, Some(c) if c.mode == ClockMode::Hlc && version > c.hwm)
}

/// The clock high-water mark this transaction holds in memory (0 before its first write, and
/// in Lamport mode, where nothing needs persisting).
pub fn hwm(conn: &Conn) -> i64 {
    match conn.txn.borrow().clock {
        Some(c) if c.mode == ClockMode::Hlc => c.hwm,
        _ => 0,
    }
}

/// This transaction's db_version, if it has one yet.
pub fn current_db_version(conn: &Conn) -> Option<i64> {
    conn.txn.borrow().db_version
}

/// This transaction's row in crr_ticks: (db_version, tick, certainly still written).
pub fn own_tick(conn: &Conn) -> Option<(i64, i64, bool)> {
    let row = conn.txn.borrow().clock.as_ref().and_then(|c| c.ticks_row);
    row.map(|(d, t, mark)| (d, t, conn.still_written(mark)))
}

/// Writes this transaction's row in crr_ticks with its first tick, unless it is certainly
/// still there (it replaces a row holding the mark). The row keeps the first tick, so records
/// that refer to it never change meaning.
fn record_tick(conn: &Conn, first: i64) -> Result<()> {
    if let Some((_, _, true)) = own_tick(conn) {
        return Ok(());
    }
    let dbv = db_version(conn)?;
    super::ticks::write(conn, dbv, first)?;
    let mark = conn.rollback_mark();
    update_clock(conn, |c| c.ticks_row = Some((dbv, first, mark)));
    Ok(())
}

/// Makes the persisted clock mark cover this transaction's ticks (`first`, and `t` now): its
/// crr_ticks row holds the first tick, crr_meta a re-tick above it.
fn cover_ticks(conn: &Conn, first: i64, t: i64) -> Result<()> {
    record_tick(conn, first)?;
    if t > first {
        persist_at_least(conn, t)?;
    }
    Ok(())
}

/// Gives this transaction a crr_ticks row that covers the clock mark: its ticks if it has
/// any, else a row holding the mark itself (which covers any tick a record since the last row
/// holds, and moves `ticks_dbv` on).
fn settle(conn: &Conn) -> Result<()> {
    let c = clock(conn)?;
    if let (Some(first), Some(t)) = (c.first_tick, c.tick) {
        return cover_ticks(conn, first, t);
    }
    let dbv = db_version(conn)?;
    super::ticks::write(conn, dbv, c.hwm)?;
    let mark = conn.rollback_mark();
    update_clock(conn, |c| c.mark_row = Some((dbv, mark)));
    Ok(())
}

/// Called for every clock record about to be stored (track::encode_into). A transaction may keep
/// its tick in its first record instead of a crr_ticks row: the record itself then carries the
/// mark (`recover` reads the records stored since the last row). Its row is written before its
/// second record, and before its first when that record does not hold its tick while an
/// earlier transaction's tick may be held only by a record (which this one could overwrite or
/// remove), or when DEFER_MAX transactions since the last row left none. So every transaction
/// since the last row stored at most one record, and the mark never rests on a record that a
/// later write replaced without covering it.
pub fn before_record(conn: &Conn, rc: &RowClock) -> Result<()> {
    // Most records come after the row (or in Lamport mode): decided in one borrow, no copy.
    let done = conn.txn.borrow().clock.as_ref().map(|c| c.mode == ClockMode::Lamport || c.has_row(|m| conn.still_written(m)));
    if done == Some(true) {
        return Ok(());
    }
    // Loaded only now, the clock has no row yet.
    let c = clock(conn)?;
    if c.mode == ClockMode::Lamport {
        return Ok(());
    }
    let dbv = db_version(conn)?;
    update_clock(conn, |c| c.stored_rowless = true);
    if !c.stored_rowless && dbv - c.ticks_dbv <= DEFER_MAX {
        // The record holds a version at least this transaction's tick, which is above every
        // tick handed out before it.
        let carries_tick = c.tick.is_some_and(|t| rc.max_version().is_some_and(|v| v >= t));
        if carries_tick && c.tick == c.first_tick {
            update_clock(conn, |c| c.deferred = true);
            return Ok(());
        }
        if !carries_tick && !c.pending {
            return Ok(());
        }
    }
    settle(conn)
}

/// Before clock rows are removed (a dropped CRR's clock, crsql_as_table): if a record may be
/// all that holds a tick, crr_meta takes the mark over.
pub fn secure_mark(conn: &Conn) -> Result<()> {
    let c = clock(conn)?;
    if c.mode == ClockMode::Hlc && (c.pending || c.deferred) {
        persist_at_least(conn, c.hwm)?;
    }
    Ok(())
}

/// The HLC version of this transaction's local writes (one tick per transaction, re-ticked only
/// if a merge in the same transaction moved the clock past it). Once the transaction has a
/// crr_ticks row, every tick it hands out is covered by the persisted mark before it is used
/// (`cover_ticks`); before that, `before_record` decides whether the record itself or a row
/// covers it.
pub fn tick(conn: &Conn) -> Result<i64> {
    let c = clock(conn)?;
    let t = match c.tick.filter(|t| *t >= c.hwm) {
        Some(t) => t,
        None => {
            let t = hlc::tick(c.hwm, conn.wall_ms()).map_err(|e| Error::new(e.to_string()))?;
            update_clock(conn, |c| {
                c.hwm = t;
                c.tick = Some(t);
                c.first_tick.get_or_insert(t);
            });
            t
        }
    };
    if c.has_row(|m| conn.still_written(m)) {
        cover_ticks(conn, c.first_tick.unwrap_or(t), t)?;
    }
    Ok(t)
}

/// This transaction's tick when handing it out again does no clock work and storing a record
/// that refers to it needs none: HLC mode, the clock has not moved past it, and this
/// transaction's crr_ticks row holds it and is certainly still written (so `tick` returns it
/// and covers nothing, `before_record` returns at once, encoding refers to the row).
pub fn steady_tick(conn: &Conn) -> Option<i64> {
    let t = conn.txn.borrow();
    let c = t.clock.as_ref()?;
    let (dbv, first, mark) = c.ticks_row?;
    let steady = c.mode == ClockMode::Hlc && t.db_version == Some(dbv) && c.tick == Some(first) && first >= c.hwm && conn.still_written(mark);
    steady.then_some(first)
}

/// Checks a merged version against the drift limit (HLC mode only).
pub fn check_drift(conn: &Conn, version: i64) -> Result<()> {
    let (mode, hwm, drift_ms_max) = with_clock(conn, |c| (c.mode, c.hwm, c.drift_ms_max))?;
    if mode == ClockMode::Hlc {
        hlc::check_drift(version, hwm, || conn.wall_ms(), drift_ms_max).map_err(|e| Error::new(e.to_string()))?;
    }
    Ok(())
}

/// Advances the clock past a merged version (HLC mode only). The persisted mark is raised to
/// every merged version, even one below the cached mark (a statement rollback may have undone
/// the write that persisted the cached mark, and this merge's own write must not outlive it),
/// unless this transaction persisted a mark at least as high and no rollback was reported
/// since.
pub fn observe(conn: &Conn, version: i64) -> Result<()> {
    if with_clock(conn, |c| c.mode)? != ClockMode::Hlc {
        return Ok(());
    }
    persist_at_least(conn, version)?;
    let mut txn = conn.txn.borrow_mut();
    if let Some(c) = txn.clock.as_mut() {
        c.hwm = hlc::observe(c.hwm, version);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Impacted;

    #[test]
    fn impacted_rows_follow_savepoint_releases_and_rollbacks() {
        let mut i = Impacted::default();
        i.add(0);
        i.add(1);
        i.add(2);
        i.add(2);
        assert_eq!(i.total(), 4);
        i.released(1); // savepoint 1 (depth 2) released: its rows now count at depth 1
        assert_eq!(i.total(), 4);
        i.rolled_back_to(1); // nothing above depth 1 any more
        assert_eq!(i.total(), 4);
        i.rolled_back_to(0); // undoes depth 1: three rows
        assert_eq!(i.total(), 1);
        i.add(3);
        i.add(1); // depth 3 was released without a report: kept, at depth 1
        assert_eq!(i.total(), 3);
        i.rolled_back_to(0);
        assert_eq!(i.total(), 1);
    }
}
