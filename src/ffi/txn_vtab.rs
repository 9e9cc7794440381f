//! `crr_internal_txn`: an empty eponymous virtual table whose only job is to take part in
//! write transactions. A transaction's first tracked row or first write of ours makes it join
//! (`Conn::enter_write` runs `txn::JOIN_SQL`, an INSERT of a row of NULLs, which it accepts
//! and stores nowhere) before the transaction holds any state of ours. From then on SQLite
//! reports the transaction's end to it (xCommit, xRollback: the per-transaction state ends
//! there; the extension has no hooks) and every savepoint (xSavepoint, xRelease,
//! xRollbackTo), as it does to crsql_changes once a merge joined. Caches of state written in
//! the transaction are checked against those reports (Conn::rollback_mark / still_written).
//!
//! It is a table of its own, not crsql_changes, because the statement that joins it is kept
//! prepared: a statement naming crsql_changes would keep that table connected at close, and its
//! disconnect is what finalizes the statement cache.

use super::api::{self, sqlite};
use super::changes_vtab::{begin, commit, connect_with, release, rollback, rollback_to, savepoint, sync, vtab_conn, Vtab};
use crate::error::{Error, Result};
use crate::storage::conn::Conn;
use std::os::raw::{c_char, c_int};

unsafe extern "C" fn connect(
    db: *mut api::sqlite3,
    aux: *mut std::os::raw::c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp_vtab: *mut *mut api::sqlite3_vtab,
    _err: *mut *mut c_char,
) -> c_int {
    connect_with(db, aux, pp_vtab, "CREATE TABLE x(x)")
}

unsafe extern "C" fn disconnect(p: *mut api::sqlite3_vtab) -> c_int {
    // SAFETY: p was created by connect. The Conn is not touched: at close this may run after
    // the Conn is gone.
    let vtab = Box::from_raw(p as *mut Vtab);
    if !vtab.base.zErrMsg.is_null() {
        sqlite!(free(vtab.base.zErrMsg as *mut _));
    }
    api::SQLITE_OK
}

unsafe extern "C" fn best_index(_p: *mut api::sqlite3_vtab, info: *mut api::sqlite3_index_info) -> c_int {
    (*info).estimatedCost = 1.0;
    (*info).estimatedRows = 0;
    api::SQLITE_OK
}

/// A cursor over no rows.
unsafe extern "C" fn open(_p: *mut api::sqlite3_vtab, pp_cursor: *mut *mut api::sqlite3_vtab_cursor) -> c_int {
    *pp_cursor = Box::into_raw(Box::new(std::mem::zeroed::<api::sqlite3_vtab_cursor>()));
    api::SQLITE_OK
}

unsafe extern "C" fn close(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    drop(Box::from_raw(p));
    api::SQLITE_OK
}

unsafe extern "C" fn filter(
    _p: *mut api::sqlite3_vtab_cursor,
    _idx_num: c_int,
    _idx_str: *const c_char,
    _argc: c_int,
    _argv: *mut *mut api::sqlite3_value,
) -> c_int {
    api::SQLITE_OK
}

unsafe extern "C" fn next(_p: *mut api::sqlite3_vtab_cursor) -> c_int {
    api::SQLITE_OK
}

unsafe extern "C" fn eof(_p: *mut api::sqlite3_vtab_cursor) -> c_int {
    1
}

unsafe extern "C" fn column(_p: *mut api::sqlite3_vtab_cursor, _ctx: *mut api::sqlite3_context, _i: c_int) -> c_int {
    api::SQLITE_OK
}

unsafe extern "C" fn rowid(_p: *mut api::sqlite3_vtab_cursor, out: *mut i64) -> c_int {
    *out = 0;
    api::SQLITE_OK
}

unsafe extern "C" fn update(p: *mut api::sqlite3_vtab, argc: c_int, argv: *mut *mut api::sqlite3_value, _rowid: *mut i64) -> c_int {
    // txn::JOIN_SQL: an INSERT of a row of NULLs, accepted and stored nowhere. Anything else
    // is refused.
    if argc == 3 && (0..3).all(|i| sqlite!(value_type(*argv.add(i))) == api::SQLITE_NULL) {
        return api::SQLITE_OK;
    }
    api::set_vtab_error(p, "crr_internal_txn is internal to sqlite-crr and holds no rows");
    api::SQLITE_ERROR
}

// Savepoint callbacks: the shared ones (changes_vtab), unless crsql_changes is in the
// transaction too, whose own calls for the same savepoints do the same work.
unsafe fn changes_joined(p: *mut api::sqlite3_vtab) -> bool {
    vtab_conn(p).changes_joined.get()
}

unsafe extern "C" fn savepoint_txn(p: *mut api::sqlite3_vtab, n: c_int) -> c_int {
    if changes_joined(p) { api::SQLITE_OK } else { savepoint(p, n) }
}

unsafe extern "C" fn release_txn(p: *mut api::sqlite3_vtab, n: c_int) -> c_int {
    if changes_joined(p) { api::SQLITE_OK } else { release(p, n) }
}

unsafe extern "C" fn rollback_to_txn(p: *mut api::sqlite3_vtab, n: c_int) -> c_int {
    if changes_joined(p) { api::SQLITE_OK } else { rollback_to(p, n) }
}

static MODULE: api::sqlite3_module = api::sqlite3_module {
    // 2: the savepoint callbacks are read.
    iVersion: 2,
    xCreate: None,
    xConnect: Some(connect),
    xBestIndex: Some(best_index),
    xDisconnect: Some(disconnect),
    xDestroy: Some(disconnect),
    xOpen: Some(open),
    xClose: Some(close),
    xFilter: Some(filter),
    xNext: Some(next),
    xEof: Some(eof),
    xColumn: Some(column),
    xRowid: Some(rowid),
    xUpdate: Some(update),
    xBegin: Some(begin),
    xSync: Some(sync),
    xCommit: Some(commit),
    xRollback: Some(rollback),
    xFindFunction: None,
    xRename: None,
    xSavepoint: Some(savepoint_txn),
    xRelease: Some(release_txn),
    xRollbackTo: Some(rollback_to_txn),
    xShadowName: None,
};

/// Registers the module on `db`.
///
/// # Safety
/// `db` is an open connection, and `conn` its live state, which outlives the module (the owner function frees it at close).
pub unsafe fn register(db: *mut api::sqlite3, conn: *const Conn) -> Result<()> {
    // SAFETY: MODULE is static; conn outlives every use by the callbacks (see disconnect).
    let rc = unsafe { sqlite!(create_module_v2(db, c"crr_internal_txn".as_ptr(), &MODULE, conn as *mut _, None)) };
    if rc != api::SQLITE_OK {
        return Err(Error::with_code(rc, "cannot register crr_internal_txn"));
    }
    Ok(())
}
