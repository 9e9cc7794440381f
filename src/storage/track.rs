//! Recording local writes (SPEC 4). The AFTER triggers that crsql_as_crr installs call these
//! through the internal SQL functions crr_internal_{insert,update,delete}; they are handed the
//! table id, packed key(s), and for updates which tracked columns changed.

use super::conn::Conn;
use super::sites;
use super::stmt_cache::Key;
use super::tables::clock_table;
use super::txn::{self, ClockMode};
use crate::core::merge::{is_alive, sentinel_site_wins, sentinel_visible};
use crate::core::row_clock::{Entry, RowClock};
use crate::error::{Error, Result};

/// Reads a row's clock record.
pub fn load(conn: &Conn, tid: i64, pk: &[u8]) -> Result<Option<RowClock>> {
    conn.stmts.with(
        conn.db,
        Key::ClockGet(tid),
        || format!("SELECT cl, clock FROM {} WHERE pk = ?1", clock_table(tid)),
        |s| {
            s.bind_blob(1, pk)?;
            if !s.step()? {
                return Ok(None);
            }
            RowClock::decode(s.i64(0), s.bytes(1)).map(Some).map_err(|e| Error::new(format!("{e} (table id {tid})")))
        },
    )
}

/// Writes a row's clock record.
pub fn save(conn: &Conn, tid: i64, pk: &[u8], rc: &RowClock) -> Result<()> {
    conn.stmts.with(
        conn.db,
        Key::ClockPut(tid),
        || {
            format!(
                "INSERT INTO {} (pk, cl, dbv, clock) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(pk) DO UPDATE SET cl = excluded.cl, dbv = excluded.dbv, clock = excluded.clock",
                clock_table(tid)
            )
        },
        |s| {
            s.bind_blob(1, pk)?;
            s.bind_i64(2, rc.cl)?;
            s.bind_i64(3, rc.max_db_version())?;
            s.bind_blob(4, &rc.encode())?;
            s.run()
        },
    )
}

/// A fresh local entry at this transaction's db_version and next seq.
fn local_entry(conn: &Conn, dbv: i64, col_version: i64) -> Result<Entry> {
    Ok(Entry { col_version, db_version: dbv, seq: txn::next_seq(conn), site: sites::own_ordinal(conn)? })
}

/// The version a local write of a cell gets: the transaction's tick (HLC) or the cell's
/// previous version + 1 (Lamport, as cr-sqlite).
fn cell_version(conn: &Conn, previous: Option<Entry>) -> Result<i64> {
    match txn::mode(conn)? {
        ClockMode::Hlc => txn::tick(conn),
        ClockMode::Lamport => Ok(previous.map_or(1, |e| e.col_version + 1)),
    }
}

fn silenced(conn: &Conn, tid: i64) -> bool {
    conn.merging_tid.get() == Some(tid)
}

/// Starts a new life of the row at causal length `cl` with a local sentinel.
fn new_life(conn: &Conn, dbv: i64, cl: i64) -> Result<RowClock> {
    Ok(RowClock { cl, sentinel: local_entry(conn, dbv, cl)?, cells: Vec::new() })
}

/// In the same life, a local write raises the visible sentinel's site like any other change
/// (see core::merge::sentinel_site_wins), so replicas agree on it.
fn touch_sentinel(conn: &Conn, rc: &mut RowClock, dbv: i64, tracked: usize) -> Result<()> {
    if !sentinel_visible(rc.cl, tracked) || rc.sentinel.site == sites::own_ordinal(conn)? {
        return Ok(());
    }
    let own = sites::own(conn)?;
    let current = sites::site_id(conn, rc.sentinel.site)?;
    if sentinel_site_wins(&own, &current) {
        rc.sentinel = local_entry(conn, dbv, rc.cl)?;
    }
    Ok(())
}

/// AFTER INSERT: a new row, a re-insert of a deleted key (resurrection), or an INSERT OR
/// REPLACE over a live row (every column written). `slots` are the table's tracked slots.
pub fn on_insert(conn: &Conn, tid: i64, pk: &[u8], slots: &[usize]) -> Result<()> {
    if silenced(conn, tid) {
        return Ok(());
    }
    let dbv = txn::db_version(conn)?;
    let mut rc = match load(conn, tid, pk)? {
        None => new_life(conn, dbv, 1)?,
        Some(old) if !is_alive(old.cl) => new_life(conn, dbv, old.cl + 1)?,
        Some(mut old) => {
            touch_sentinel(conn, &mut old, dbv, slots.len())?;
            old
        }
    };
    for &slot in slots {
        let v = cell_version(conn, rc.cell(slot))?;
        let e = local_entry(conn, dbv, v)?;
        rc.set_cell(slot, e);
    }
    save(conn, tid, pk, &rc)
}

/// AFTER UPDATE: records the changed tracked columns (`changed` holds every tracked slot and
/// whether it changed); a changed key is a delete of the old key and an insert of the new one.
pub fn on_update(conn: &Conn, tid: i64, old_pk: &[u8], new_pk: &[u8], changed: &[(usize, bool)]) -> Result<()> {
    if silenced(conn, tid) {
        return Ok(());
    }
    let slots: Vec<usize> = changed.iter().map(|(s, _)| *s).collect();
    if old_pk != new_pk {
        on_delete(conn, tid, old_pk)?;
        return on_insert(conn, tid, new_pk, &slots);
    }
    if !changed.iter().any(|(_, c)| *c) {
        return Ok(());
    }
    let mut rc = match load(conn, tid, new_pk)? {
        Some(rc) if is_alive(rc.cl) => rc,
        // A live row without a live clock (written while tracking was off): record it whole.
        _ => return on_insert(conn, tid, new_pk, &slots),
    };
    let dbv = txn::db_version(conn)?;
    touch_sentinel(conn, &mut rc, dbv, slots.len())?;
    for &(slot, _) in changed.iter().filter(|(_, c)| *c) {
        let v = cell_version(conn, rc.cell(slot))?;
        let e = local_entry(conn, dbv, v)?;
        rc.set_cell(slot, e);
    }
    save(conn, tid, new_pk, &rc)
}

/// AFTER DELETE: the causal length becomes even, cells go, the sentinel stays as tombstone.
pub fn on_delete(conn: &Conn, tid: i64, pk: &[u8]) -> Result<()> {
    if silenced(conn, tid) {
        return Ok(());
    }
    let dbv = txn::db_version(conn)?;
    let cl = match load(conn, tid, pk)? {
        None => 2,
        Some(rc) if is_alive(rc.cl) => rc.cl + 1,
        Some(_) => return Ok(()),
    };
    save(conn, tid, pk, &new_life(conn, dbv, cl)?)
}

/// A local write of one cell outside the triggers (crsql_commit_alter records added columns
/// whose values differ from the default).
pub fn record_cell(conn: &Conn, tid: i64, pk: &[u8], slot: usize, tracked: usize) -> Result<()> {
    let dbv = txn::db_version(conn)?;
    let mut rc = match load(conn, tid, pk)? {
        Some(rc) if is_alive(rc.cl) => rc,
        _ => return Ok(()),
    };
    touch_sentinel(conn, &mut rc, dbv, tracked)?;
    let v = cell_version(conn, rc.cell(slot))?;
    let e = local_entry(conn, dbv, v)?;
    rc.set_cell(slot, e);
    save(conn, tid, pk, &rc)
}

/// Encodes a slot list for a trigger's constant argument: 2 bytes big-endian per slot.
pub fn encode_slots(slots: &[usize]) -> Vec<u8> {
    slots.iter().flat_map(|s| (*s as u16).to_be_bytes()).collect()
}

pub fn decode_slots(bytes: &[u8]) -> Result<Vec<usize>> {
    if bytes.len() % 2 != 0 {
        return Err(Error::new("corrupt slot list in a tracking trigger"));
    }
    Ok(bytes.chunks_exact(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]]))).collect())
}
