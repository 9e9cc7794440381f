//! What one transaction shares: its db_version, its seq counter, its clock tick.
//!
//! db_version is derived, not counted: the next one is 1 + the highest db_version stored in any
//! clock table (or the floor left by removed tables). Writers are serialized by SQLite's write
//! lock, so this is unique per committed transaction and increases in commit order across
//! connections and processes; a savepoint rollback cannot make two transactions share one.
//! The commit and rollback hooks (ffi/entry.rs) reset this state.

use super::conn::Conn;
use super::meta;
use super::stmt_cache::Key;
use super::tables;
use crate::core::hlc;
use crate::core::value::Value;
use crate::error::{Error, Result};

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
    pub rows_impacted: i64,
    /// This replica's own site ordinal, read at first use in the transaction.
    pub own_site: Option<u32>,
    /// PRAGMA data_version at this transaction's first write, and whether the connection's
    /// `Carry` was still current then (see `carried`).
    pub data_version: Option<i64>,
    pub carried: Option<Carry>,
    /// The schema cookie this transaction's db_version was derived under.
    pub cookie: Option<i64>,
}

/// What a committed transaction of this connection leaves for its next one, so that a run of
/// small transactions does not re-read the same state each time. It is used only while
/// PRAGMA data_version is unchanged (no other connection committed since: that pragma does not
/// move for the connection's own commits) and the schema cookie too; the few writes of this
/// connection that change what it holds (settings, own site id, the db_version floor) drop it.
#[derive(Debug, Clone, Copy)]
pub struct Carry {
    pub data_version: i64,
    pub cookie: i64,
    /// The highest committed db_version.
    pub db_version: i64,
    /// Clock mode, mark and drift limit as committed (no tick).
    pub clock: Option<TxnClock>,
    pub own_site: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct TxnClock {
    pub mode: ClockMode,
    pub hwm: i64,
    pub tick: Option<i64>,
    pub drift_ms_max: i64,
    /// The value this transaction last raised the persisted clock mark to, and the rollback
    /// mark of that write (see `persist_at_least`).
    pub persisted: Option<(i64, Option<u64>)>,
    /// This transaction's row in crr_ticks (db_version, tick) and the rollback mark of its
    /// write: the first tick the transaction handed out (storage/ticks.rs).
    pub ticks_row: Option<(i64, i64, Option<u64>)>,
}

impl Txn {
    pub fn reset(&mut self) {
        *self = Txn::default();
    }

    /// What this transaction leaves for the next, if it committed now (None when it derived no
    /// db_version: then it changed nothing the carry holds).
    pub fn carry(&self) -> Option<Carry> {
        Some(Carry {
            data_version: self.data_version?,
            cookie: self.cookie?,
            db_version: self.db_version?,
            clock: self.clock.map(|c| TxnClock { tick: None, persisted: None, ticks_row: None, ..c }),
            own_site: self.own_site,
        })
    }
}

fn data_version(conn: &Conn) -> Result<i64> {
    conn.stmts.with(conn.db, Key::DataVersion, || "PRAGMA data_version".into(), |s| {
        s.step()?;
        Ok(s.i64(0))
    })
}

/// The connection's carry, if still current (checked once, at the transaction's first write).
/// Only for write transactions: their end fires the hooks that reset what this records.
pub fn carried(conn: &Conn) -> Result<Option<Carry>> {
    if conn.txn.borrow().data_version.is_some() {
        return Ok(conn.txn.borrow().carried);
    }
    let dv = data_version(conn)?;
    let carried = conn.carry.get().filter(|c| c.data_version == dv);
    let mut t = conn.txn.borrow_mut();
    t.data_version = Some(dv);
    t.carried = carried;
    Ok(carried)
}

/// Highest committed (or, inside our write transaction, recorded) db_version.
pub fn max_db_version(conn: &Conn) -> Result<i64> {
    let (cookie, list) = tables::all_with_cookie(conn)?;
    if list.is_empty() && !super::schema::is_installed(conn)? {
        return Ok(0);
    }
    conn.stmts.with(
        conn.db,
        Key::MaxDbVersion(cookie),
        || {
            let mut parts = vec!["SELECT coalesce((SELECT value FROM crr_meta WHERE key = 'db_version_floor'), 0)".to_string()];
            for t in list.iter() {
                parts.push(format!("SELECT coalesce(max(dbv), 0) FROM {}", t.clock_table()));
            }
            format!("SELECT max(v) FROM ({})", parts.iter().map(|p| format!("SELECT ({p}) AS v")).collect::<Vec<_>>().join(" UNION ALL "))
        },
        |s| {
            s.step()?;
            Ok(s.i64(0))
        },
    )
}

/// The db_version this transaction records at, allocating it on first use.
pub fn db_version(conn: &Conn) -> Result<i64> {
    if let Some(v) = conn.txn.borrow().db_version {
        return Ok(v);
    }
    // First write of the transaction: clear out the clocks of CRRs whose table was dropped.
    let (mut cookie, _) = tables::all_with_cookie(conn)?;
    if !conn.tables.borrow().dropped.is_empty() {
        super::as_crr::reap_dropped(conn, false)?;
        cookie = tables::all_with_cookie(conn)?.0;
    }
    let v = match carried(conn)? {
        Some(c) if c.cookie == cookie => c.db_version,
        _ => max_db_version(conn)?,
    } + 1;
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
    let mut t = conn.txn.borrow_mut();
    let s = t.seq;
    t.seq += 1;
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

fn clock(conn: &Conn) -> Result<TxnClock> {
    if let Some(c) = conn.txn.borrow().clock {
        return Ok(c);
    }
    if let Some(c) = carried(conn)?.and_then(|c| c.clock) {
        conn.txn.borrow_mut().clock = Some(c);
        return Ok(c);
    }
    let mode = clock_mode_of(meta::get(conn, "config.clock")?)?;
    let hwm = persisted_hwm(conn)?;
    let drift_ms_max = meta::get_i64(conn, "config.hlc-max-drift-ms", hlc::DRIFT_MS_MAX_DEFAULT)?;
    let c = TxnClock { mode, hwm, tick: None, drift_ms_max, persisted: None, ticks_row: None };
    conn.txn.borrow_mut().clock = Some(c);
    Ok(c)
}

pub fn mode(conn: &Conn) -> Result<ClockMode> {
    Ok(clock(conn)?.mode)
}

/// The persisted clock mark: the highest of crr_meta's `hlc` (merged versions, re-ticks) and
/// the tick of the last crr_ticks row (every local transaction's first tick; each is above
/// the mark its transaction started from, so the last row holds the highest).
fn persisted_hwm(conn: &Conn) -> Result<i64> {
    conn.stmts.with(
        conn.db,
        Key::PersistedHwm,
        || {
            "SELECT max(coalesce((SELECT value FROM crr_meta WHERE key = 'hlc'), 0), \
                        coalesce((SELECT tick FROM crr_ticks ORDER BY dbv DESC LIMIT 1), 0))"
                .into()
        },
        |s| {
            s.step()?;
            Ok(s.i64(0))
        },
    )
}

/// Raises the persisted high-water mark to `hwm` (never lowers it).
fn persist_hwm(conn: &Conn, hwm: i64) -> Result<()> {
    conn.stmts.with(conn.db, Key::MetaRaiseHlc, || "INSERT INTO crr_meta(key, value) VALUES ('hlc', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE value < excluded.value".into(), |s| {
        s.bind_i64(1, hwm)?;
        s.run()
    })
}

/// Makes the crr_internal_txn virtual table take part in the open transaction (a no-op
/// statement that writes it makes SQLite call its xBegin), so that from now on every statement
/// and savepoint rollback is reported (`Conn::rollback_epoch`).
fn join_changes(conn: &Conn) -> Result<()> {
    if conn.changes_in_txn.get() {
        return Ok(());
    }
    conn.stmts.with(
        conn.db,
        Key::JoinChanges,
        || "INSERT INTO crr_internal_txn SELECT NULL WHERE 0".into(),
        |s| s.run(),
    )
}

/// Makes sure crr_meta's clock mark is at least `v` in what this transaction has written (for
/// merged versions and re-ticks; a first tick is covered by the transaction's crr_ticks row,
/// see `tick`). Once raised, the write is trusted until a rollback is reported (one may have
/// undone it). A statement or savepoint rollback that undoes the mark's write undoes every
/// write made after it too, and later writes raise the mark again before they are made.
fn persist_at_least(conn: &Conn, v: i64) -> Result<()> {
    let c = clock(conn)?;
    if c.persisted.is_some_and(|(p, mark)| v <= p && conn.still_written(mark)) {
        return Ok(());
    }
    join_changes(conn)?;
    persist_hwm(conn, v)?;
    let mark = conn.rollback_mark();
    if let Some(c) = conn.txn.borrow_mut().clock.as_mut() {
        c.persisted = Some((v, mark));
    }
    Ok(())
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
    let row = conn.txn.borrow().clock.and_then(|c| c.ticks_row);
    row.map(|(d, t, mark)| (d, t, conn.still_written(mark)))
}

/// Writes this transaction's row in crr_ticks unless it is certainly still there. The row
/// keeps the first tick, so records that refer to it never change meaning.
fn record_tick(conn: &Conn, tick: i64) -> Result<()> {
    if let Some((_, _, true)) = own_tick(conn) {
        return Ok(());
    }
    let dbv = db_version(conn)?;
    let tick = own_tick(conn).map_or(tick, |(_, first, _)| first);
    join_changes(conn)?;
    super::ticks::write(conn, dbv, tick)?;
    let mark = conn.rollback_mark();
    if let Some(c) = conn.txn.borrow_mut().clock.as_mut() {
        c.ticks_row = Some((dbv, tick, mark));
    }
    Ok(())
}

/// The HLC version of this transaction's local writes (one tick per transaction, re-ticked only
/// if a merge in the same transaction moved the clock past it). Before it is handed out, the
/// transaction's crr_ticks row exists, and the persisted clock mark covers it: the row itself
/// does for the first tick (the mark is read as the highest of crr_meta's and the last row's,
/// see `persisted_hwm`), crr_meta for a re-tick.
pub fn tick(conn: &Conn) -> Result<i64> {
    let c = clock(conn)?;
    let t = match c.tick.filter(|t| *t >= c.hwm) {
        Some(t) => t,
        None => {
            let t = hlc::tick(c.hwm, conn.wall_ms()).map_err(|e| Error::new(e.to_string()))?;
            if let Some(c) = conn.txn.borrow_mut().clock.as_mut() {
                c.hwm = t;
                c.tick = Some(t);
            }
            t
        }
    };
    record_tick(conn, t)?;
    if !matches!(own_tick(conn), Some((_, first, true)) if first >= t) {
        persist_at_least(conn, t)?;
    }
    Ok(t)
}

/// Checks a merged version against the drift limit (HLC mode only).
pub fn check_drift(conn: &Conn, version: i64) -> Result<()> {
    let c = clock(conn)?;
    if c.mode == ClockMode::Hlc {
        hlc::check_drift(version, conn.wall_ms(), c.drift_ms_max).map_err(|e| Error::new(e.to_string()))?;
    }
    Ok(())
}

/// Advances the clock past a merged version (HLC mode only). The persisted mark is raised to
/// every merged version, even one below the cached mark (a statement rollback may have undone
/// the write that persisted the cached mark, and this merge's own write must not outlive it),
/// unless this transaction persisted a mark at least as high and no rollback was reported
/// since.
pub fn observe(conn: &Conn, version: i64) -> Result<()> {
    let c = clock(conn)?;
    if c.mode != ClockMode::Hlc {
        return Ok(());
    }
    persist_at_least(conn, version)?;
    let mut txn = conn.txn.borrow_mut();
    if let Some(c) = txn.clock.as_mut() {
        c.hwm = hlc::observe(c.hwm, version);
    }
    Ok(())
}
