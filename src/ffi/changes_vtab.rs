//! The `crsql_changes` eponymous virtual table: SELECT reads changes (storage::changes),
//! INSERT merges them (storage::merge), UPDATE and DELETE are errors.
//!
//! Query plan encoding (xBestIndex -> xFilter): `idxNum` is a bit set of the constraints
//! pushed down, and the filter arguments arrive in bit order:
//! ```text
//! bit 0 "table" =      bit 1 pk =         bit 2 cid =
//! bit 3 db_version =   bit 4 db_version > bit 5 db_version >=
//! bit 6 db_version <   bit 7 db_version <=
//! bit 8 site_id = / IS                    bit 9 site_id != / IS NOT
//! bit 11 seq =         bit 12 seq >       bit 13 seq >=
//! ```
//! Pushed constraints only narrow the scan; `omit` stays 0 so SQLite re-checks every row.
//! Bit 10 (no argument) says the query reads `val` (from `colUsed`).

use super::api::{self, sqlite};
use super::guard::guard;
use super::values;
use crate::core::change_id;
use crate::core::value::{Value, ValueRef};
use crate::error::{Error, Result};
use crate::storage::changes::{self, Filter, Reader};
use crate::storage::sites;
use crate::storage::conn::Conn;
use crate::storage::merge::{self, Incoming};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// `val` has no declared type, so no affinity: declared ANY (as cr-sqlite declares it) it had
/// NUMERIC affinity outside a STRICT table, and a transport that staged the feed with
/// `CREATE TABLE outbox AS SELECT * FROM crsql_changes` stored '1' as 1, 7.0 as 7 and '1e5'
/// as 100000, which its peers then merged, and held for good where the origin held the text
/// (until 2026-12-06); a comparison with `val` converted text that looked like a number too.
const SCHEMA: &str = "CREATE TABLE x(\"table\" TEXT, pk BLOB, cid TEXT, val, col_version INTEGER, \
                      db_version INTEGER, site_id BLOB, cl INTEGER, seq INTEGER)";
const COL_TABLE: c_int = 0;
const COL_PK: c_int = 1;
const COL_CID: c_int = 2;
const COL_VAL: c_int = 3;
const COL_DB_VERSION: c_int = 5;
const COL_SITE_ID: c_int = 6;
const COL_SEQ: c_int = 8;

/// The plan bit that says the query reads `val` (it has no filter argument).
const VALUES_BIT: u32 = 10;

const OP_EQ: u8 = 2;
const OP_GT: u8 = 4;
const OP_LE: u8 = 8;
const OP_LT: u8 = 16;
const OP_GE: u8 = 32;
const OP_NE: u8 = 68;
const OP_ISNOT: u8 = 69;
const OP_IS: u8 = 72;

#[repr(C)]
pub(super) struct Vtab {
    pub(super) base: api::sqlite3_vtab,
    pub(super) conn: *const Conn,
}

#[repr(C)]
struct Cursor {
    base: api::sqlite3_vtab_cursor,
    conn: *const Conn,
    reader: Reader,
}

/// Stores `e` as the vtab's error message and returns its code.
unsafe fn fail(vtab: *mut api::sqlite3_vtab, e: &Error) -> c_int {
    api::set_vtab_error(vtab, &format!("crsql_changes: {}", e.message));
    if e.code == api::SQLITE_OK { api::SQLITE_ERROR } else { e.code }
}

unsafe extern "C" fn connect(
    db: *mut api::sqlite3,
    aux: *mut std::os::raw::c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp_vtab: *mut *mut api::sqlite3_vtab,
    _err: *mut *mut c_char,
) -> c_int {
    connect_with(db, aux, pp_vtab, SCHEMA)
}

/// Declares `schema` and makes a `Vtab` holding the module's Conn (also crr_internal_txn's).
pub(super) unsafe fn connect_with(
    db: *mut api::sqlite3,
    aux: *mut std::os::raw::c_void,
    pp_vtab: *mut *mut api::sqlite3_vtab,
    schema: &str,
) -> c_int {
    let schema = CString::new(schema).expect("no NUL");
    let rc = sqlite!(declare_vtab(db, schema.as_ptr()));
    if rc != api::SQLITE_OK {
        return rc;
    }
    let vtab = Box::new(Vtab { base: std::mem::zeroed(), conn: aux as *const Conn });
    *pp_vtab = Box::into_raw(vtab) as *mut api::sqlite3_vtab;
    api::SQLITE_OK
}

unsafe extern "C" fn disconnect(p: *mut api::sqlite3_vtab) -> c_int {
    // SAFETY: p was created by connect. SQLite disconnects the eponymous table at close,
    // before it checks for unfinalized statements: finalize our cache now.
    let vtab = Box::from_raw(p as *mut Vtab);
    let conn = &*vtab.conn;
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.stmts.clear()));
    if !vtab.base.zErrMsg.is_null() {
        sqlite!(free(vtab.base.zErrMsg as *mut _));
    }
    api::SQLITE_OK
}

fn bit_for(column: c_int, op: u8) -> Option<u32> {
    match (column, op) {
        (COL_TABLE, OP_EQ) => Some(0),
        (COL_PK, OP_EQ) => Some(1),
        (COL_CID, OP_EQ) => Some(2),
        (COL_DB_VERSION, OP_EQ) => Some(3),
        (COL_DB_VERSION, OP_GT) => Some(4),
        (COL_DB_VERSION, OP_GE) => Some(5),
        (COL_DB_VERSION, OP_LT) => Some(6),
        (COL_DB_VERSION, OP_LE) => Some(7),
        (COL_SITE_ID, OP_EQ | OP_IS) => Some(8),
        (COL_SITE_ID, OP_NE | OP_ISNOT) => Some(9),
        (COL_SEQ, OP_EQ) => Some(11),
        (COL_SEQ, OP_GT) => Some(12),
        (COL_SEQ, OP_GE) => Some(13),
        _ => None,
    }
}

/// Whether our match of a text constraint (the table or column name, ASCII case-insensitively)
/// keeps every row the constraint's collation would: SQLite checks the rows we return again
/// (omit is never set), so a pushed-down filter may keep too many rows, never too few. So
/// BINARY and NOCASE constraints are pushed down, others (`cid = 'a ' COLLATE RTRIM`) are
/// left to SQLite alone.
unsafe fn text_match_covers(info: *mut api::sqlite3_index_info, i: usize) -> bool {
    let Some(collation_of) = api::api().vtab_collation else { return false };
    let name = collation_of(info, i as c_int);
    if name.is_null() {
        return false;
    }
    let name = std::ffi::CStr::from_ptr(name).to_bytes();
    name.eq_ignore_ascii_case(b"BINARY") || name.eq_ignore_ascii_case(b"NOCASE")
}

unsafe extern "C" fn best_index(_vtab: *mut api::sqlite3_vtab, info: *mut api::sqlite3_index_info) -> c_int {
    let info = &mut *info;
    let n = info.nConstraint.max(0) as usize;
    let constraints = if n == 0 { &[][..] } else { std::slice::from_raw_parts(info.aConstraint, n) };
    let usage = if n == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(info.aConstraintUsage, n) };
    let mut chosen: [Option<usize>; 14] = [None; 14];
    for (i, c) in constraints.iter().enumerate() {
        if c.usable == 0 {
            continue;
        }
        if let Some(bit) = bit_for(c.iColumn, c.op) {
            if (c.iColumn == COL_TABLE || c.iColumn == COL_CID) && !text_match_covers(&mut *info, i) {
                continue;
            }
            chosen[bit as usize].get_or_insert(i);
        }
    }
    let mut idx_num = 0;
    let mut argv = 0;
    for (bit, c) in chosen.iter().enumerate() {
        if let Some(i) = c {
            argv += 1;
            usage[*i].argvIndex = argv;
            usage[*i].omit = 0;
            idx_num |= 1 << bit;
        }
    }
    let (cost, rows) = if idx_num & 0b10 != 0 {
        (10.0, 10)
    } else if idx_num & 0b1111_1000 != 0 {
        (1_000.0, 1_000)
    } else {
        (1_000_000.0, 1_000_000)
    };
    if info.colUsed & (1 << COL_VAL) != 0 {
        idx_num |= 1 << VALUES_BIT;
    }
    info.idxNum = idx_num;
    info.estimatedCost = cost;
    info.estimatedRows = rows;
    // Rows come out in (db_version, seq) order; under `db_version = V` (every row SQLite keeps
    // has one db_version, whatever V is) that is seq order.
    let order = if info.nOrderBy > 0 { std::slice::from_raw_parts(info.aOrderBy, info.nOrderBy as usize) } else { &[] };
    let ascending = |cols: &[c_int]| order.len() <= cols.len() && order.iter().zip(cols).all(|(o, c)| o.iColumn == *c && o.desc == 0);
    if !order.is_empty() && (ascending(&[COL_DB_VERSION, COL_SEQ]) || (chosen[3].is_some() && ascending(&[COL_SEQ]))) {
        info.orderByConsumed = 1;
    }
    api::SQLITE_OK
}

unsafe extern "C" fn open(p: *mut api::sqlite3_vtab, pp_cursor: *mut *mut api::sqlite3_vtab_cursor) -> c_int {
    let vtab = &*(p as *mut Vtab);
    let cursor = Box::new(Cursor { base: std::mem::zeroed(), conn: vtab.conn, reader: Reader::default() });
    *pp_cursor = Box::into_raw(cursor) as *mut api::sqlite3_vtab_cursor;
    api::SQLITE_OK
}

unsafe extern "C" fn close(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    let cursor = Box::from_raw(p as *mut Cursor);
    let conn = &*cursor.conn;
    let reader = cursor.reader;
    let _ = guard("crsql_changes", || {
        reader.finish(conn);
        Ok(())
    });
    api::SQLITE_OK
}

/// Builds the filter from the pushed-down arguments (see the plan encoding above).
fn filter_from(idx_num: c_int, args: &[Value]) -> Filter {
    let mut f = Filter::all();
    f.values = idx_num & (1 << VALUES_BIT) != 0;
    let mut it = args.iter();
    for bit in 0..14 {
        if bit == VALUES_BIT || idx_num & (1 << bit) == 0 {
            continue;
        }
        let Some(v) = it.next() else { break };
        match (bit, v) {
            (0, Value::Text(t)) => f.table = Some(t.clone()),
            (1, Value::Blob(b)) => f.pk = Some(b.clone()),
            (2, Value::Text(t)) => f.cid = Some(t.clone()),
            (3, v) => narrow(&mut f.dbv_min, &mut f.dbv_max, OP_EQ, v),
            (4, v) => narrow(&mut f.dbv_min, &mut f.dbv_max, OP_GT, v),
            (5, v) => narrow(&mut f.dbv_min, &mut f.dbv_max, OP_GE, v),
            (6, v) => narrow(&mut f.dbv_min, &mut f.dbv_max, OP_LT, v),
            (7, v) => narrow(&mut f.dbv_min, &mut f.dbv_max, OP_LE, v),
            (8, Value::Blob(b)) => f.site_eq = Some(b.clone()),
            (9, Value::Blob(b)) => f.site_ne = Some(b.clone()),
            (11, v) => narrow(&mut f.seq_min, &mut f.seq_max, OP_EQ, v),
            (12, v) => narrow(&mut f.seq_min, &mut f.seq_max, OP_GT, v),
            (13, v) => narrow(&mut f.seq_min, &mut f.seq_max, OP_GE, v),
            // Other types: no push-down; SQLite filters the rows.
            _ => {}
        }
    }
    f
}

/// Narrows the inclusive range `[min, max]` by `column op v`. Only an integer argument narrows
/// it (reals and text are not pushed down: SQLite filters the rows either way).
fn narrow(min: &mut i64, max: &mut i64, op: u8, v: &Value) {
    let Value::Integer(x) = *v else { return };
    match op {
        OP_EQ => {
            *min = (*min).max(x);
            *max = (*max).min(x);
        }
        OP_GT => *min = (*min).max(x.saturating_add(1)),
        OP_GE => *min = (*min).max(x),
        OP_LT => *max = (*max).min(x.saturating_sub(1)),
        OP_LE => *max = (*max).min(x),
        _ => {}
    }
}

unsafe extern "C" fn filter(
    p: *mut api::sqlite3_vtab_cursor,
    idx_num: c_int,
    _idx_str: *const c_char,
    argc: c_int,
    argv: *mut *mut api::sqlite3_value,
) -> c_int {
    let cursor = &mut *(p as *mut Cursor);
    let args = values::args(argc, argv);
    let conn = &*cursor.conn;
    let f = filter_from(idx_num, &args);
    // A cursor filtered again (the inner side of a join) ends its last read first.
    let last = std::mem::take(&mut cursor.reader);
    match guard("crsql_changes", || {
        last.finish(conn);
        conn.enter_call()?;
        changes::read(conn, &f)
    }) {
        Ok(reader) => {
            cursor.reader = reader;
            api::SQLITE_OK
        }
        Err(e) => fail(cursor.base.pVtab, &e),
    }
}

unsafe extern "C" fn next(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    let cursor = &mut *(p as *mut Cursor);
    if !cursor.reader.advance() {
        return api::SQLITE_OK;
    }
    // Past the range: a read in parts goes on with the next part (storage::changes).
    let conn = &*cursor.conn;
    match guard("crsql_changes", || cursor.reader.go_on(conn)) {
        Ok(()) => api::SQLITE_OK,
        Err(e) => fail(cursor.base.pVtab, &e),
    }
}

unsafe extern "C" fn eof(p: *mut api::sqlite3_vtab_cursor) -> c_int {
    let c = &*(p as *mut Cursor);
    c_int::from(c.reader.at_end())
}

unsafe extern "C" fn column(p: *mut api::sqlite3_vtab_cursor, ctx: *mut api::sqlite3_context, i: c_int) -> c_int {
    let cursor = &mut *(p as *mut Cursor);
    if i == COL_VAL {
        return column_val(cursor, ctx);
    }
    let scan = cursor.reader.scan();
    let Some(ch) = cursor.reader.current() else { return api::SQLITE_ERROR };
    // Text and blobs go straight from the scan to SQLite (which copies them).
    match i {
        0 => values::result_text(ctx, &scan.table(ch).name),
        1 => values::result_blob(ctx, scan.pk(ch)),
        2 => values::result_text(ctx, scan.cid_text(ch)),
        6 => match guard("crsql_changes", || sites::site_id(&*cursor.conn, ch.site)) {
            Ok(id) => values::result_blob(ctx, &id),
            Err(e) => return fail(cursor.base.pVtab, &e),
        },
        4 => values::result_i64(ctx, ch.col_version),
        5 => values::result_i64(ctx, ch.db_version),
        7 => values::result_i64(ctx, scan.cl(ch)),
        8 => values::result_i64(ctx, ch.seq()),
        _ => values::result(ctx, &Value::Null),
    }
    api::SQLITE_OK
}

/// `val`, apart from the other columns (not inlined: it made every column's call save more
/// registers, about 10 instructions each, 1% of reading every change).
#[inline(never)]
unsafe fn column_val(cursor: &mut Cursor, ctx: *mut api::sqlite3_context) -> c_int {
    let conn = &*cursor.conn;
    match guard("crsql_changes", || cursor.reader.value(conn)) {
        Ok(v) => {
            values::result_ref(ctx, &v);
            api::SQLITE_OK
        }
        Err(e) => fail(cursor.base.pVtab, &e),
    }
}

/// The change's own rowid (core::change_id), the same in every scan: SQLite drops the
/// duplicates of a MULTI-INDEX OR plan by it.
unsafe extern "C" fn rowid(p: *mut api::sqlite3_vtab_cursor, out: *mut i64) -> c_int {
    let cursor = &*(p as *mut Cursor);
    let Some(c) = cursor.reader.current() else {
        return fail(cursor.base.pVtab, &Error::new("rowid read past the last row"));
    };
    match change_id::rowid(c.db_version, c.seq()) {
        Some(id) => {
            *out = id;
            api::SQLITE_OK
        }
        None => fail(
            cursor.base.pVtab,
            &Error::new(format!(
                "the change at db_version {}, seq {} has no rowid (see core/change_id.rs); \
                 write an ORed filter as a UNION of queries instead",
                c.db_version, c.seq()
            )),
        ),
    }
}

unsafe extern "C" fn update(p: *mut api::sqlite3_vtab, argc: c_int, argv: *mut *mut api::sqlite3_value, _rowid: *mut i64) -> c_int {
    let conn = &*(*(p as *mut Vtab)).conn;
    let args = values::Args::new(argc, argv).raw_utf8_text(conn.utf8.get());
    if argc == 1 {
        return fail(p, &Error::new("DELETE is not supported (changes are read and merged, never removed)"));
    }
    if args.value_ref(0) != ValueRef::Null {
        return fail(p, &Error::new("UPDATE is not supported (INSERT a change to merge it)"));
    }
    if args.len() < 11 {
        return fail(p, &Error::new("INSERT needs all 9 columns"));
    }
    // Read in place, not copied (each value once); the merge copies only the value it writes.
    let at = |i: usize| args.value_ref(i);
    let change = Incoming {
        table: at(2),
        pk: at(3),
        cid: at(4),
        val: at(5),
        col_version: at(6),
        db_version: at(7),
        site_id: at(8),
        cl: at(9),
        seq: at(10),
    };
    match guard("crsql_changes", move || merge::apply(conn, change)) {
        Ok(_) => api::SQLITE_OK,
        Err(e) => fail(p, &e),
    }
}

// Transaction callbacks (crr_internal_txn uses them too). Once a write joins crsql_changes to
// a transaction (xBegin), SQLite reports every savepoint (statements' too) to it (xSavepoint,
// xRelease, xRollbackTo) and the transaction's end (xCommit, xRollback); caches of state
// written in the transaction are checked against that (Conn::rollback_mark / still_written),
// and the per-transaction state ends with it.
pub(super) unsafe fn vtab_conn<'a>(p: *mut api::sqlite3_vtab) -> &'a Conn {
    // SAFETY: p is a Vtab made by connect; its Conn outlives it.
    &*(*(p as *mut Vtab)).conn
}

pub(super) unsafe extern "C" fn begin(p: *mut api::sqlite3_vtab) -> c_int {
    let conn = vtab_conn(p);
    let _ = guard("sqlite-crr begin", || {
        conn.notice_commit();
        Ok(())
    });
    conn.joined();
    api::SQLITE_OK
}

/// crsql_changes' xBegin: as `begin`, and crr_internal_txn's savepoint callbacks may leave the
/// work to this table's from now on (txn_vtab). A transaction that merges on a connection whose
/// triggers are off is refused here, once (`Conn::check_triggers`; a merge loses nothing
/// there, but the connection's own writes do, and this is where the app hears of it; per
/// change it cost W6 0.5% more instructions).
unsafe extern "C" fn begin_changes(p: *mut api::sqlite3_vtab) -> c_int {
    if let Err(e) = guard("crsql_changes", || vtab_conn(p).check_triggers()) {
        // Not joined: SQLite reports nothing more of this transaction to the table.
        return fail(p, &e);
    }
    let rc = begin(p);
    vtab_conn(p).changes_joined.set(true);
    rc
}

/// The transaction rolled back: its state ends. This is how the extension hears of
/// rollbacks: it installs no rollback hook (Conn::enter_write).
pub(super) unsafe extern "C" fn rollback(p: *mut api::sqlite3_vtab) -> c_int {
    end(p, false)
}

/// The transaction committed: its state ends, leaving the carry for the next.
pub(super) unsafe extern "C" fn commit(p: *mut api::sqlite3_vtab) -> c_int {
    end(p, true)
}

/// Ends the transaction's state once, though both of our tables may be in it.
unsafe fn end(p: *mut api::sqlite3_vtab, committed: bool) -> c_int {
    let conn = vtab_conn(p);
    if conn.txn_joined.get() {
        let _ = guard("sqlite-crr transaction end", || {
            conn.end_transaction(committed);
            Ok(())
        });
    }
    api::SQLITE_OK
}

pub(super) unsafe extern "C" fn rollback_to(p: *mut api::sqlite3_vtab, savepoint: c_int) -> c_int {
    vtab_conn(p).rolled_back_to(savepoint);
    api::SQLITE_OK
}

pub(super) unsafe extern "C" fn release(p: *mut api::sqlite3_vtab, savepoint: c_int) -> c_int {
    vtab_conn(p).released(savepoint);
    api::SQLITE_OK
}

/// The transaction is about to commit: what is held back is written now (a merge's held
/// clock, crr_dirty entries). SQLite lets xSync write (its own nested statements do not
/// commit).
pub(super) unsafe extern "C" fn sync(p: *mut api::sqlite3_vtab) -> c_int {
    let conn = vtab_conn(p);
    match guard("sqlite-crr commit", || crate::storage::merge::write_held_back(conn)) {
        Ok(()) => api::SQLITE_OK,
        Err(e) => fail(p, &e),
    }
}

/// A savepoint (or a statement's savepoint) opens: a merge's held clock is written first, at
/// the level of the writes it covers, so that rolling back to the new savepoint cannot undo
/// it while keeping those writes (a merge's own user-table write holds its clock on, see
/// storage/merge.rs). crr_dirty entries stay held back: the ones written inside a savepoint
/// are held back again when a rollback undoes them (storage/dirty.rs, `Marks::written`).
///
/// The depth moves on only after that write: SQLite calls this before the savepoint exists
/// (OP_Savepoint before it creates the savepoint; OP_Transaction, for a statement's, before
/// sqlite3BtreeBeginStmt), so the clock row belongs to the level outside it, and its
/// crr_dirty entry must be marked there too (marked at the new depth, a rollback to the
/// savepoint dropped the entry and kept the row: a committed change that "changes since V"
/// and crsql_db_version() did not see).
pub(super) unsafe extern "C" fn savepoint(p: *mut api::sqlite3_vtab, savepoint: c_int) -> c_int {
    let conn = vtab_conn(p);
    let r = guard("sqlite-crr savepoint", || crate::storage::merge::flush_held(conn));
    conn.savepoint_opened(savepoint);
    match r {
        Ok(()) => api::SQLITE_OK,
        Err(e) => fail(p, &e),
    }
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
    xBegin: Some(begin_changes),
    xSync: Some(sync),
    xCommit: Some(commit),
    xRollback: Some(rollback),
    xFindFunction: None,
    xRename: None,
    xSavepoint: Some(savepoint),
    xRelease: Some(release),
    xRollbackTo: Some(rollback_to),
    xShadowName: None,
};

/// Registers the module on `db`.
///
/// # Safety
/// `db` is an open connection, and `conn` its live state, which outlives the module (the owner function frees it at close).
pub unsafe fn register(db: *mut api::sqlite3, conn: *const Conn) -> Result<()> {
    // SAFETY: MODULE is static; conn outlives the module (freed by the owner function).
    let rc = unsafe { sqlite!(create_module_v2(db, c"crsql_changes".as_ptr(), &MODULE, conn as *mut _, None)) };
    if rc != api::SQLITE_OK {
        return Err(Error::with_code(rc, "cannot register crsql_changes"));
    }
    Ok(())
}
