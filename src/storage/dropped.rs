//! The clock data of CRRs that are gone: a CRR whose table was dropped (`reap_dropped`, which
//! crsql_as_crr, crsql_begin_alter and crsql_commit_alter run first, `tidy_registry`) and one
//! that crsql_as_table ended (`forget_registration`). `raise_floor` keeps db_versions from
//! going back when a clock's highest version goes with it.

use super::conn::Conn;
use super::tables::{self, clock_table};
use super::{dirty, meta};
use crate::core::ident::quote;
use crate::core::value::Value;
use crate::error::{Result, SQLITE_LOCKED};

/// Raises the db_version floor to cover clock tables (or entries) about to disappear.
pub(super) fn raise_floor(conn: &Conn, max: i64) -> Result<()> {
    conn.carry.set(None);
    let floor = meta::get_i64(conn, "db_version_floor", 0)?;
    if max > floor {
        meta::set(conn, "db_version_floor", &Value::Integer(max))?;
    }
    Ok(())
}

/// Removes the clock data of CRRs whose table was dropped. `hard` also drops the clock tables
/// (only possible from a top-level function call: SQLite refuses DROP TABLE while another
/// statement of the connection reads); otherwise they are emptied and dropped later.
pub fn reap_dropped(conn: &Conn, hard: bool) -> Result<()> {
    conn.forget_merged_row();
    dirty::flush(conn)?;
    tables::all(conn)?;
    let dropped = conn.tables.borrow().dropped.clone();
    // A connection that may not write leaves them to one that may (the registry lists no
    // dropped CRR anyway): until 2026-12-06 the crsql_as_crr apps call at every start failed
    // on a read-only connection while a dropped CRR's clock was left.
    let pending = !dropped.is_empty() || (hard && !conn.tables.borrow().orphans.is_empty());
    if pending && conn.db.is_readonly() {
        return Ok(());
    }
    if !dropped.is_empty() {
        super::txn::secure_mark(conn)?;
    }
    for c in &dropped {
        let tid = c.tid;
        // For a bucket clock, the highest of its crr_dirty entries, which is at least its rows'
        // (and may be above them, see dirty.rs): the floor covers every version reported.
        let mut s = conn.db.prepare(&c.max_dbv_sql(), false)?;
        s.step()?;
        let max = s.i64(0);
        drop(s);
        raise_floor(conn, max)?;
        conn.stmts.clear();
        forget_registration(conn, tid)?;
    }
    if hard {
        // Those the last load of the registry found (no query of the schema per call: this
        // runs in every crsql_as_crr, which apps call for each CRR at every start), and those
        // of the CRRs removed just now.
        let found = std::mem::take(&mut conn.tables.borrow_mut().orphans);
        let mut orphans = Vec::new();
        for name in found {
            if is_emptied_clock(conn, &name)? {
                orphans.push(name);
            }
        }
        orphans.extend(dropped.iter().map(|c| format!("crr_clock_{}", c.tid)));
        if !orphans.is_empty() {
            conn.stmts.clear();
        }
        for name in orphans {
            match conn.db.exec(&format!("DROP TABLE IF EXISTS main.{}", quote(&name))) {
                // Another statement of the connection runs (`SELECT crsql_as_crr(name) FROM
                // sqlite_schema ...`): SQLite refuses DROP TABLE then, and the emptied clock
                // table waits for a later call (until 2026-12-06 the call failed with
                // `database table is locked` while a dropped CRR's clock was left).
                Err(e) if e.code & 0xff == SQLITE_LOCKED => {}
                r => r?,
            }
        }
    }
    if !dropped.is_empty() {
        conn.tables.borrow_mut().invalidate();
    }
    Ok(())
}

/// Removes CRR `tid` from the registry and empties its clock table, which `reap_dropped`
/// (with `hard`) then drops as a clock of no CRR, or leaves for a later call while another
/// statement of the connection runs (SQLite refuses DROP TABLE then). What crsql_as_table
/// and the removal of a dropped CRR share.
pub(super) fn forget_registration(conn: &Conn, tid: i64) -> Result<()> {
    conn.db.exec(&format!(
        "DELETE FROM {}; DELETE FROM main.crr_columns WHERE tid = {tid}; DELETE FROM main.crr_tables WHERE tid = {tid}; \
         DELETE FROM main.crr_meta WHERE key = 'alter.{tid}';",
        clock_table(tid)
    ))?;
    dirty::forget(conn, tid)
}

/// What crsql_as_crr, crsql_begin_alter and crsql_commit_alter do first: remove the CRRs
/// whose table was dropped (`reap_dropped`; `hard` also drops their clock tables), then give
/// crr_tables the names renames outside a bracket left behind
/// (`tables::register_current_names`), so that neither a dropped CRR nor a stale name holds
/// a name the call is about to record.
pub fn tidy_registry(conn: &Conn, hard: bool) -> Result<()> {
    reap_dropped(conn, hard)?;
    tables::register_current_names(conn)
}

/// Whether `name`, a table named as the clock of a table id no CRR has, is a clock this
/// extension emptied when it removed the CRR (`reap_dropped` without `hard`): a clock's four
/// columns and no row. Any other table of that name is an app's, and keeps its rows: until
/// 2026-12-06 an app's table named `crr_clock_2` was dropped by the next crsql_as_crr. A
/// virtual table is never one (its columns are not read: with its module missing on the
/// connection, that failed every crsql_as_crr with `no such module`, until 2026-12-06).
fn is_emptied_clock(conn: &Conn, name: &str) -> Result<bool> {
    let mut s = conn.db.prepare("SELECT sql LIKE 'CREATE VIRTUAL TABLE%' FROM main.sqlite_schema WHERE type = 'table' AND name = ?1", false)?;
    s.bind_text(1, name)?;
    if !s.step()? || s.i64(0) != 0 {
        return Ok(false);
    }
    drop(s);
    let sql = format!(
        "SELECT (SELECT count(*) FROM pragma_table_info(?1, 'main')) = 4 \
           AND (SELECT count(*) FROM pragma_table_info(?1, 'main') WHERE name IN ('pk', 'cl', 'dbv', 'clock')) = 4 \
           AND NOT EXISTS (SELECT 1 FROM main.{})",
        quote(name)
    );
    let mut s = conn.db.prepare(&sql, false)?;
    s.bind_text(1, name)?;
    s.step()?;
    Ok(s.i64(0) != 0)
}
