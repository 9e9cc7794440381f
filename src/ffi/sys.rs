//! WARNING: raw C declarations. Our own declarations of the parts of SQLite's C interface the
//! extension uses, written against sqlite3.h / sqlite3ext.h (SQLite 3.35+; the layouts below
//! are frozen by SQLite's ABI promise: structs only grow at the end).
//!
//! Why our own: a `-sys` crate that compiles and links its own copy of sqlite3.c gives a Rust
//! app that links this crate statically next to rusqlite's bundled SQLite two definitions of
//! every `sqlite3_*` symbol. The extension never calls a linked SQLite symbol: every call goes
//! through the routine table the host passes to the entry point (api.rs), so declarations are
//! all it needs, and it links against nothing.
//!
//! `sqlite3_api_routines` is declared up to `txn_state` (3.34), the newest routine we call;
//! a host's table is at least that long on every supported version (3.35+, checked at load). Routines we never call
//! are `Unused` slots of the same size, so every used field sits at its C offset. The layout
//! tests at the bottom pin the sizes and offsets that SQLite's header gives on 64-bit targets.
#![allow(non_camel_case_types, non_snake_case, dead_code)]

use std::os::raw::{c_char, c_int, c_uchar, c_uint, c_void};

pub type sqlite_int64 = i64;
pub type sqlite3_int64 = i64;
pub type sqlite3_uint64 = u64;

macro_rules! opaque {
    ($($name:ident),*) => {$(
        /// An opaque SQLite object, only ever used behind a pointer.
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}
opaque!(sqlite3, sqlite3_stmt, sqlite3_value, sqlite3_context);

/// `void (*)(void*)`: destructors, and SQLITE_TRANSIENT (-1) in their place.
pub type sqlite3_destructor_type = Option<unsafe extern "C" fn(*mut c_void)>;

/// A routine of the table this crate never calls: only its size matters.
pub type Unused = Option<unsafe extern "C" fn()>;

/// The table of routines SQLite hands to an extension's entry point (sqlite3ext.h), in its
/// order, truncated after the last routine we call.
#[repr(C)]
pub struct sqlite3_api_routines {
    pub aggregate_context: Unused,
    pub aggregate_count: Unused,
    pub bind_blob: Unused,
    pub bind_double: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int, _: f64) -> c_int>,
    pub bind_int: Unused,
    pub bind_int64:
        Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int, _: sqlite_int64) -> c_int>,
    pub bind_null: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> c_int>,
    pub bind_parameter_count: Unused,
    pub bind_parameter_index: Unused,
    pub bind_parameter_name: Unused,
    pub bind_text: Unused,
    pub bind_text16: Unused,
    pub bind_value: Unused,
    pub busy_handler: Unused,
    pub busy_timeout: Unused,
    pub changes: Option<unsafe extern "C" fn(_: *mut sqlite3) -> c_int>,
    pub close: Unused,
    pub collation_needed: Unused,
    pub collation_needed16: Unused,
    pub column_blob: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> *const c_void>,
    pub column_bytes: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> c_int>,
    pub column_bytes16: Unused,
    pub column_count: Unused,
    pub column_database_name: Unused,
    pub column_database_name16: Unused,
    pub column_decltype: Unused,
    pub column_decltype16: Unused,
    pub column_double: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> f64>,
    pub column_int: Unused,
    pub column_int64: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> sqlite_int64>,
    pub column_name: Unused,
    pub column_name16: Unused,
    pub column_origin_name: Unused,
    pub column_origin_name16: Unused,
    pub column_table_name: Unused,
    pub column_table_name16: Unused,
    pub column_text: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> *const c_uchar>,
    pub column_text16: Unused,
    pub column_type: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int) -> c_int>,
    pub column_value: Unused,
    pub commit_hook: Unused,
    pub complete: Unused,
    pub complete16: Unused,
    pub create_collation: Unused,
    pub create_collation16: Unused,
    pub create_function: Unused,
    pub create_function16: Unused,
    pub create_module: Unused,
    pub data_count: Unused,
    pub db_handle: Unused,
    pub declare_vtab: Option<unsafe extern "C" fn(_: *mut sqlite3, _: *const c_char) -> c_int>,
    pub enable_shared_cache: Unused,
    pub errcode: Unused,
    pub errmsg: Option<unsafe extern "C" fn(_: *mut sqlite3) -> *const c_char>,
    pub errmsg16: Unused,
    pub exec: Unused,
    pub expired: Unused,
    pub finalize: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt) -> c_int>,
    pub free: Option<unsafe extern "C" fn(_: *mut c_void)>,
    pub free_table: Unused,
    pub get_autocommit: Option<unsafe extern "C" fn(_: *mut sqlite3) -> c_int>,
    pub get_auxdata: Unused,
    pub get_table: Unused,
    pub global_recover: Unused,
    pub interruptx: Unused,
    pub last_insert_rowid: Unused,
    pub libversion: Unused,
    pub libversion_number: Option<unsafe extern "C" fn() -> c_int>,
    pub malloc: Unused,
    pub mprintf: Unused,
    pub open: Unused,
    pub open16: Unused,
    pub prepare: Unused,
    pub prepare16: Unused,
    pub profile: Unused,
    pub progress_handler: Unused,
    pub realloc: Unused,
    pub reset: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt) -> c_int>,
    pub result_blob: Unused,
    pub result_double: Option<unsafe extern "C" fn(_: *mut sqlite3_context, _: f64)>,
    pub result_error:
        Option<unsafe extern "C" fn(_: *mut sqlite3_context, _: *const c_char, _: c_int)>,
    pub result_error16: Unused,
    pub result_int: Unused,
    pub result_int64: Option<unsafe extern "C" fn(_: *mut sqlite3_context, _: sqlite_int64)>,
    pub result_null: Option<unsafe extern "C" fn(_: *mut sqlite3_context)>,
    pub result_text: Unused,
    pub result_text16: Unused,
    pub result_text16be: Unused,
    pub result_text16le: Unused,
    pub result_value: Unused,
    pub rollback_hook: Unused,
    pub set_authorizer: Unused,
    pub set_auxdata: Unused,
    pub xsnprintf: Unused,
    pub step: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt) -> c_int>,
    pub table_column_metadata: Unused,
    pub thread_cleanup: Unused,
    pub total_changes: Option<unsafe extern "C" fn(_: *mut sqlite3) -> c_int>,
    pub trace: Unused,
    pub transfer_bindings: Unused,
    pub update_hook: Unused,
    pub user_data: Option<unsafe extern "C" fn(_: *mut sqlite3_context) -> *mut c_void>,
    pub value_blob: Option<unsafe extern "C" fn(_: *mut sqlite3_value) -> *const c_void>,
    pub value_bytes: Option<unsafe extern "C" fn(_: *mut sqlite3_value) -> c_int>,
    pub value_bytes16: Unused,
    pub value_double: Option<unsafe extern "C" fn(_: *mut sqlite3_value) -> f64>,
    pub value_int: Unused,
    pub value_int64: Option<unsafe extern "C" fn(_: *mut sqlite3_value) -> sqlite_int64>,
    pub value_numeric_type: Unused,
    pub value_text: Option<unsafe extern "C" fn(_: *mut sqlite3_value) -> *const c_uchar>,
    pub value_text16: Unused,
    pub value_text16be: Unused,
    pub value_text16le: Unused,
    pub value_type: Option<unsafe extern "C" fn(_: *mut sqlite3_value) -> c_int>,
    pub vmprintf: Unused,
    pub overload_function: Unused,
    pub prepare_v2: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3,
            _: *const c_char,
            _: c_int,
            _: *mut *mut sqlite3_stmt,
            _: *mut *const c_char,
        ) -> c_int,
    >,
    pub prepare16_v2: Unused,
    pub clear_bindings: Unused,
    pub create_module_v2: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3,
            _: *const c_char,
            _: *const sqlite3_module,
            _: *mut c_void,
            _: Option<unsafe extern "C" fn(_: *mut c_void)>,
        ) -> c_int,
    >,
    pub bind_zeroblob: Unused,
    pub blob_bytes: Unused,
    pub blob_close: Unused,
    pub blob_open: Unused,
    pub blob_read: Unused,
    pub blob_write: Unused,
    pub create_collation_v2: Unused,
    pub file_control: Option<unsafe extern "C" fn(_: *mut sqlite3, _: *const c_char, _: c_int, _: *mut c_void) -> c_int>,
    pub memory_highwater: Unused,
    pub memory_used: Unused,
    pub mutex_alloc: Unused,
    pub mutex_enter: Unused,
    pub mutex_free: Unused,
    pub mutex_leave: Unused,
    pub mutex_try: Unused,
    pub open_v2: Unused,
    pub release_memory: Unused,
    pub result_error_nomem: Unused,
    pub result_error_toobig: Unused,
    pub sleep: Unused,
    pub soft_heap_limit: Unused,
    pub vfs_find: Unused,
    pub vfs_register: Unused,
    pub vfs_unregister: Unused,
    pub xthreadsafe: Unused,
    pub result_zeroblob: Unused,
    pub result_error_code: Option<unsafe extern "C" fn(_: *mut sqlite3_context, _: c_int)>,
    pub test_control: Unused,
    pub randomness: Option<unsafe extern "C" fn(_: c_int, _: *mut c_void)>,
    pub context_db_handle: Unused,
    pub extended_result_codes: Unused,
    pub limit: Option<unsafe extern "C" fn(_: *mut sqlite3, _: c_int, _: c_int) -> c_int>,
    pub next_stmt: Unused,
    pub sql: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt) -> *const c_char>,
    pub status: Unused,
    pub backup_finish: Unused,
    pub backup_init: Unused,
    pub backup_pagecount: Unused,
    pub backup_remaining: Unused,
    pub backup_step: Unused,
    pub compileoption_get: Unused,
    pub compileoption_used: Unused,
    pub create_function_v2: Option<CreateFunctionV2>,
    /// Variadic in C: `(db, op, ...)`; for the on/off options, `(int onoff, int *out)`.
    pub db_config: Option<unsafe extern "C" fn(_: *mut sqlite3, _: c_int, ...) -> c_int>,
    pub db_mutex: Unused,
    pub db_status: Unused,
    pub extended_errcode: Unused,
    pub log: Unused,
    pub soft_heap_limit64: Unused,
    pub sourceid: Unused,
    pub stmt_status: Option<unsafe extern "C" fn(_: *mut sqlite3_stmt, _: c_int, _: c_int) -> c_int>,
    pub strnicmp: Unused,
    pub unlock_notify: Unused,
    pub wal_autocheckpoint: Unused,
    pub wal_checkpoint: Unused,
    pub wal_hook: Unused,
    pub blob_reopen: Unused,
    /// `int sqlite3_vtab_config(sqlite3*, int op, ...)`: C-variadic (SQLITE_VTAB_INNOCUOUS takes
    /// no further argument).
    pub vtab_config: Option<unsafe extern "C" fn(_: *mut sqlite3, _: c_int, ...) -> c_int>,
    pub vtab_on_conflict: Unused,
    pub close_v2: Unused,
    pub db_filename: Unused,
    pub db_readonly: Option<unsafe extern "C" fn(_: *mut sqlite3, _: *const c_char) -> c_int>,
    pub db_release_memory: Unused,
    pub errstr: Unused,
    pub stmt_busy: Unused,
    pub stmt_readonly: Unused,
    pub stricmp: Unused,
    pub uri_boolean: Unused,
    pub uri_int64: Unused,
    pub uri_parameter: Unused,
    pub xvsnprintf: Unused,
    pub wal_checkpoint_v2: Unused,
    pub auto_extension: Unused,
    pub bind_blob64: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3_stmt,
            _: c_int,
            _: *const c_void,
            _: sqlite3_uint64,
            _: Option<unsafe extern "C" fn(_: *mut c_void)>,
        ) -> c_int,
    >,
    pub bind_text64: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3_stmt,
            _: c_int,
            _: *const c_char,
            _: sqlite3_uint64,
            _: Option<unsafe extern "C" fn(_: *mut c_void)>,
            _: c_uchar,
        ) -> c_int,
    >,
    pub cancel_auto_extension: Unused,
    pub load_extension: Unused,
    pub malloc64: Option<unsafe extern "C" fn(_: sqlite3_uint64) -> *mut c_void>,
    pub msize: Unused,
    pub realloc64: Unused,
    pub reset_auto_extension: Unused,
    pub result_blob64: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3_context,
            _: *const c_void,
            _: sqlite3_uint64,
            _: Option<unsafe extern "C" fn(_: *mut c_void)>,
        ),
    >,
    pub result_text64: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3_context,
            _: *const c_char,
            _: sqlite3_uint64,
            _: Option<unsafe extern "C" fn(_: *mut c_void)>,
            _: c_uchar,
        ),
    >,
    pub strglob: Unused,
    pub value_dup: Unused,
    pub value_free: Unused,
    pub result_zeroblob64: Unused,
    pub bind_zeroblob64: Unused,
    pub value_subtype: Unused,
    pub result_subtype: Unused,
    pub status64: Unused,
    pub strlike: Unused,
    pub db_cacheflush: Unused,
    pub system_errno: Unused,
    pub trace_v2: Unused,
    pub expanded_sql: Unused,
    pub set_last_insert_rowid: Unused,
    pub prepare_v3: Option<
        unsafe extern "C" fn(
            _: *mut sqlite3,
            _: *const c_char,
            _: c_int,
            _: c_uint,
            _: *mut *mut sqlite3_stmt,
            _: *mut *const c_char,
        ) -> c_int,
    >,
    pub prepare16_v3: Unused,
    pub bind_pointer: Unused,
    pub result_pointer: Unused,
    pub value_pointer: Unused,
    pub vtab_nochange: Unused,
    pub value_nochange: Unused,
    pub vtab_collation: Option<unsafe extern "C" fn(_: *mut sqlite3_index_info, _: c_int) -> *const c_char>,
    pub keyword_count: Unused,
    pub keyword_name: Unused,
    pub keyword_check: Unused,
    pub str_new: Unused,
    pub str_finish: Unused,
    pub str_appendf: Unused,
    pub str_vappendf: Unused,
    pub str_append: Unused,
    pub str_appendall: Unused,
    pub str_appendchar: Unused,
    pub str_reset: Unused,
    pub str_errcode: Unused,
    pub str_length: Unused,
    pub str_value: Unused,
    pub create_window_function: Unused,
    pub normalized_sql: Unused,
    pub stmt_isexplain: Unused,
    pub value_frombind: Unused,
    pub drop_modules: Unused,
    pub hard_heap_limit64: Unused,
    pub uri_key: Unused,
    pub filename_database: Unused,
    pub filename_journal: Unused,
    pub filename_wal: Unused,
    pub create_filename: Unused,
    pub free_filename: Unused,
    pub database_file_object: Unused,
    /// 3.34: the transaction state of one schema (or the highest of all for NULL).
    pub txn_state: Option<unsafe extern "C" fn(_: *mut sqlite3, _: *const c_char) -> c_int>,
}

#[repr(C)]
pub struct sqlite3_vtab {
    pub pModule: *const sqlite3_module,
    pub nRef: c_int,
    pub zErrMsg: *mut c_char,
}

#[repr(C)]
pub struct sqlite3_vtab_cursor {
    pub pVtab: *mut sqlite3_vtab,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sqlite3_index_constraint {
    pub iColumn: c_int,
    pub op: c_uchar,
    pub usable: c_uchar,
    pub iTermOffset: c_int,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sqlite3_index_orderby {
    pub iColumn: c_int,
    pub desc: c_uchar,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sqlite3_index_constraint_usage {
    pub argvIndex: c_int,
    pub omit: c_uchar,
}

#[repr(C)]
pub struct sqlite3_index_info {
    pub nConstraint: c_int,
    pub aConstraint: *mut sqlite3_index_constraint,
    pub nOrderBy: c_int,
    pub aOrderBy: *mut sqlite3_index_orderby,
    pub aConstraintUsage: *mut sqlite3_index_constraint_usage,
    pub idxNum: c_int,
    pub idxStr: *mut c_char,
    pub needToFreeIdxStr: c_int,
    pub orderByConsumed: c_int,
    pub estimatedCost: f64,
    pub estimatedRows: sqlite3_int64,
    pub idxFlags: c_int,
    pub colUsed: sqlite3_uint64,
}

type VtabFn = Option<unsafe extern "C" fn(*mut sqlite3_vtab) -> c_int>;
type VtabIntFn = Option<unsafe extern "C" fn(*mut sqlite3_vtab, c_int) -> c_int>;
type CursorFn = Option<unsafe extern "C" fn(*mut sqlite3_vtab_cursor) -> c_int>;
type ConnectFn = Option<
    unsafe extern "C" fn(
        *mut sqlite3,
        *mut c_void,
        c_int,
        *const *const c_char,
        *mut *mut sqlite3_vtab,
        *mut *mut c_char,
    ) -> c_int,
>;
type ScalarFn = Option<unsafe extern "C" fn(*mut sqlite3_context, c_int, *mut *mut sqlite3_value)>;
/// `sqlite3_create_function_v2(db, name, n_arg, flags, user_data, x_func, x_step, x_final,
/// x_destroy)`.
type CreateFunctionV2 = unsafe extern "C" fn(
    *mut sqlite3,
    *const c_char,
    c_int,
    c_int,
    *mut c_void,
    ScalarFn,
    ScalarFn,
    Option<unsafe extern "C" fn(*mut sqlite3_context)>,
    Option<unsafe extern "C" fn(*mut c_void)>,
) -> c_int;

/// A virtual table module, up to `xShadowName` (iVersion 3); our modules declare iVersion 1
/// (SQLite reads nothing past `xRename`) or 2 (and the savepoint callbacks).
#[repr(C)]
pub struct sqlite3_module {
    pub iVersion: c_int,
    pub xCreate: ConnectFn,
    pub xConnect: ConnectFn,
    pub xBestIndex:
        Option<unsafe extern "C" fn(*mut sqlite3_vtab, *mut sqlite3_index_info) -> c_int>,
    pub xDisconnect: VtabFn,
    pub xDestroy: VtabFn,
    pub xOpen:
        Option<unsafe extern "C" fn(*mut sqlite3_vtab, *mut *mut sqlite3_vtab_cursor) -> c_int>,
    pub xClose: CursorFn,
    pub xFilter: Option<
        unsafe extern "C" fn(
            *mut sqlite3_vtab_cursor,
            c_int,
            *const c_char,
            c_int,
            *mut *mut sqlite3_value,
        ) -> c_int,
    >,
    pub xNext: CursorFn,
    pub xEof: CursorFn,
    pub xColumn: Option<
        unsafe extern "C" fn(*mut sqlite3_vtab_cursor, *mut sqlite3_context, c_int) -> c_int,
    >,
    pub xRowid: Option<unsafe extern "C" fn(*mut sqlite3_vtab_cursor, *mut sqlite3_int64) -> c_int>,
    pub xUpdate: Option<
        unsafe extern "C" fn(
            *mut sqlite3_vtab,
            c_int,
            *mut *mut sqlite3_value,
            *mut sqlite3_int64,
        ) -> c_int,
    >,
    pub xBegin: VtabFn,
    pub xSync: VtabFn,
    pub xCommit: VtabFn,
    pub xRollback: VtabFn,
    pub xFindFunction: Option<
        unsafe extern "C" fn(
            *mut sqlite3_vtab,
            c_int,
            *const c_char,
            *mut ScalarFn,
            *mut *mut c_void,
        ) -> c_int,
    >,
    pub xRename: Option<unsafe extern "C" fn(*mut sqlite3_vtab, *const c_char) -> c_int>,
    pub xSavepoint: VtabIntFn,
    pub xRelease: VtabIntFn,
    pub xRollbackTo: VtabIntFn,
    pub xShadowName: Option<unsafe extern "C" fn(*const c_char) -> c_int>,
}

#[cfg(all(test, target_pointer_width = "64"))]
mod layout {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets as SQLite's headers give them on 64-bit targets.
    #[test]
    fn matches_sqlite_headers() {
        assert_eq!(size_of::<sqlite3_vtab>(), 24);
        assert_eq!(size_of::<sqlite3_index_constraint>(), 12);
        assert_eq!(size_of::<sqlite3_index_orderby>(), 8);
        assert_eq!(size_of::<sqlite3_index_constraint_usage>(), 8);
        assert_eq!(size_of::<sqlite3_index_info>(), 96);
        assert_eq!(offset_of!(sqlite3_index_info, estimatedCost), 64);
        assert_eq!(offset_of!(sqlite3_index_info, colUsed), 88);
        assert_eq!(size_of::<sqlite3_module>(), 192);
        assert_eq!(offset_of!(sqlite3_module, xUpdate), 13 * 8);
        // sqlite3ext.h: aggregate_context is routine 0, bind_blob64 routine 193,
        // file_control 127, create_function_v2 162, prepare_v3 217, txn_state 252 (the last we
        // declare).
        assert_eq!(offset_of!(sqlite3_api_routines, bind_double), 3 * 8);
        assert_eq!(offset_of!(sqlite3_api_routines, file_control), 127 * 8);
        assert_eq!(
            offset_of!(sqlite3_api_routines, create_function_v2),
            162 * 8
        );
        assert_eq!(offset_of!(sqlite3_api_routines, bind_blob64), 193 * 8);
        assert_eq!(offset_of!(sqlite3_api_routines, prepare_v3), 217 * 8);
        assert_eq!(offset_of!(sqlite3_api_routines, txn_state), 252 * 8);
        assert_eq!(size_of::<sqlite3_api_routines>(), 253 * 8);
    }
}

