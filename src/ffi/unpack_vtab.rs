//! `crsql_unpack_columns(blob)`: a table-valued function yielding one row (`cell`) per key
//! column of a packed primary key.

use super::api::{self, sqlite};
use super::values;
use crate::core::pk_codec;
use crate::core::value::Value;
use crate::error::{Error, Result};
use std::hash::BuildHasher;
use std::collections::hash_map::RandomState;
use std::ffi::CString;
use std::sync::OnceLock;
use std::os::raw::{c_char, c_int};

#[repr(C)]
struct Cursor {
    base: api::sqlite3_vtab_cursor,
    cells: Vec<Value>,
    pos: usize,
    /// The packed key (the hidden `package` column: SQLite reads it back where a WHERE
    /// clause names it in an OR).
    package: Vec<u8>,
    /// The rowid's high bits for the current key (see `rowid`).
    key_hash: u64,
}

/// The hash of keys for rowids, one per process: SQLite may answer the terms of an OR with
/// cursors of their own, and their rowids must agree.
fn key_hasher() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

unsafe extern "C" fn connect(
    db: *mut api::sqlite3,
    _aux: *mut std::os::raw::c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp_vtab: *mut *mut api::sqlite3_vtab,
    _err: *mut *mut c_char,
) -> c_int {
    // `cell` has no declared type (no affinity): declared ANY, NUMERIC affinity outside a
    // STRICT table, a comparison with it or a table made from it turned '007' into 7 (until
    // 2026-12-06), as crsql_changes' `val` did.
    let schema = CString::new("CREATE TABLE x(cell, package BLOB HIDDEN)").expect("no NUL");
    let rc = sqlite!(declare_vtab(db, schema.as_ptr()));
    if rc != api::SQLITE_OK {
        return rc;
    }
    // A pure function of its argument: usable in views and triggers where `PRAGMA
    // trusted_schema` is off (until 2026-12-07 "unsafe use of virtual table").
    let rc = sqlite!(vtab_config(db, api::SQLITE_VTAB_INNOCUOUS));
    if rc != api::SQLITE_OK {
        return rc;
    }
    *pp_vtab = Box::into_raw(Box::new(std::mem::zeroed::<api::sqlite3_vtab>()));
    api::SQLITE_OK
}

unsafe extern "C" fn disconnect(p: *mut api::sqlite3_vtab) -> c_int {
    let vtab = Box::from_raw(p);
    if !vtab.zErrMsg.is_null() {
        sqlite!(free(vtab.zErrMsg as *mut _));
    }
    api::SQLITE_OK
}

unsafe extern "C" fn best_index(_p: *mut api::sqlite3_vtab, info: *mut api::sqlite3_index_info) -> c_int {
    let info = &mut *info;
    let n = info.nConstraint.max(0) as usize;
    if n > 0 {
        let cs = std::slice::from_raw_parts(info.aConstraint, n);
        let usage = std::slice::from_raw_parts_mut(info.aConstraintUsage, n);
        for (i, c) in cs.iter().enumerate() {
            if c.iColumn == 1 && c.op == 2 && c.usable != 0 {
                usage[i].argvIndex = 1;
                usage[i].omit = 1;
                info.idxNum = 1;
                info.estimatedCost = 1.0;
                info.estimatedRows = 4;
                return api::SQLITE_OK;
            }
        }
    }
    // Without its argument the function cannot run: tell SQLite this plan is unusable.
    api::SQLITE_CONSTRAINT
}

unsafe extern "C" fn open(_p: *mut api::sqlite3_vtab, pp: *mut *mut api::sqlite3_vtab_cursor) -> c_int {
    *pp = Box::into_raw(Box::new(Cursor { base: std::mem::zeroed(), cells: Vec::new(), pos: 0, package: Vec::new(), key_hash: 0 })) as *mut _;
    api::SQLITE_OK
}

unsafe extern "C" fn close(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    drop(Box::from_raw(p as *mut Cursor));
    api::SQLITE_OK
}

fn unpack(arg: Option<&Value>) -> Result<Vec<Value>> {
    match arg {
        Some(Value::Blob(b)) => pk_codec::decode(b).map_err(|e| Error::new(format!("crsql_unpack_columns: {e}"))),
        Some(v) => Err(Error::new(format!("crsql_unpack_columns: argument must be a blob, got {}", v.type_name()))),
        None => Err(Error::new("crsql_unpack_columns: missing argument")),
    }
}

unsafe extern "C" fn filter(p: *mut api::sqlite3_vtab_cursor, _n: c_int, _s: *const c_char, argc: c_int, argv: *mut *mut api::sqlite3_value) -> c_int {
    let cursor = &mut *(p as *mut Cursor);
    let args = values::args(argc, argv);
    match super::guard::guard("crsql_unpack_columns", || unpack(args.first())) {
        Ok(cells) => {
            cursor.cells = cells;
            cursor.pos = 0;
            if let Some(Value::Blob(b)) = args.first() {
                cursor.key_hash = key_hasher().hash_one(b);
                cursor.package.clone_from(b);
            }
            api::SQLITE_OK
        }
        Err(e) => {
            api::set_vtab_error(cursor.base.pVtab, &e.message);
            api::SQLITE_ERROR
        }
    }
}

unsafe extern "C" fn next(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    (*(p as *mut Cursor)).pos += 1;
    api::SQLITE_OK
}

unsafe extern "C" fn eof(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    let c = &*(p as *mut Cursor);
    c_int::from(c.pos >= c.cells.len())
}

unsafe extern "C" fn column(p: *mut api::sqlite3_vtab_cursor, ctx: *mut api::sqlite3_context, i: c_int) -> c_int {
    let c = &*(p as *mut Cursor);
    if i == 0 {
        if let Some(v) = c.cells.get(c.pos) {
            values::result(ctx, v);
        }
    } else if i == 1 {
        values::result_blob(ctx, &c.package);
    }
    api::SQLITE_OK
}

/// A row is a key column of one packed key: its rowid is the column's index (below 256) under
/// 55 bits of a hash of the key (`key_hasher`). SQLite drops the duplicates of a MULTI-INDEX
/// OR plan (`WHERE (package = ?1 AND ...) OR package = ?2`, one scan per term on this cursor)
/// by rowid, so rows of two keys must not share one (with the column's index alone the second
/// key's rows were dropped), and one key's rows must get the same rowids in every scan. Two
/// different keys share a rowid with probability 2^-55, and a peer cannot choose keys that do
/// (the hash is keyed at random).
unsafe extern "C" fn rowid(p: *mut api::sqlite3_vtab_cursor, out: *mut i64) -> c_int {
    let c = &*(p as *mut Cursor);
    *out = ((c.key_hash >> 9) << 8 | c.pos as u64) as i64;
    api::SQLITE_OK
}

static MODULE: api::sqlite3_module = api::sqlite3_module {
    iVersion: 1,
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
    xUpdate: None,
    xBegin: None,
    xSync: None,
    xCommit: None,
    xRollback: None,
    xFindFunction: None,
    xRename: None,
    xSavepoint: None,
    xRelease: None,
    xRollbackTo: None,
    xShadowName: None,
};

/// Registers the module on `db`.
///
/// # Safety
/// `db` is an open connection.
pub unsafe fn register(db: *mut api::sqlite3) -> Result<()> {
    // SAFETY: MODULE is static and takes no client data.
    let rc = unsafe { sqlite!(create_module_v2(db, c"crsql_unpack_columns".as_ptr(), &MODULE, std::ptr::null_mut(), None)) };
    if rc != api::SQLITE_OK {
        return Err(Error::with_code(rc, "cannot register crsql_unpack_columns"));
    }
    Ok(())
}
