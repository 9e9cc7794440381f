//! WARNING: raw C API. The extension reaches SQLite only through the `sqlite3_api_routines`
//! table that SQLite hands to the entry point (the SQLITE_EXTENSION_INIT2 pattern), so the same
//! binary works when loaded into any SQLite >= 3.35 and when linked statically (the host passes
//! its own table through sqlite3_auto_extension). Fields past 3.35 are never touched: the table
//! of an older host is shorter than the struct we were compiled with.

use super::sys;
use std::sync::atomic::{AtomicPtr, Ordering};

pub use sys::{
    sqlite3, sqlite3_api_routines, sqlite3_context, sqlite3_index_info, sqlite3_module, sqlite3_stmt,
    sqlite3_value, sqlite3_vtab, sqlite3_vtab_cursor,
};

/// Oldest SQLite the extension runs on (RETURNING, generalized UPSERT, txn_state).
pub const SQLITE_VERSION_MIN: i32 = 3_035_000;

static API: AtomicPtr<sys::sqlite3_api_routines> = AtomicPtr::new(std::ptr::null_mut());

/// Records the host's routine table. Called by every entry point before anything else.
///
/// # Safety
/// `p` must be the pointer SQLite passed to an extension entry point (valid for the process).
pub unsafe fn install(p: *const sys::sqlite3_api_routines) {
    if !p.is_null() {
        API.store(p as *mut _, Ordering::Release);
    }
}

/// The routine table installed last (null before any entry point ran).
pub fn current() -> *const sys::sqlite3_api_routines {
    API.load(Ordering::Acquire)
}

/// The host's routine table. Panics (caught by the callback guard) if no entry point ran.
pub fn api() -> &'static sys::sqlite3_api_routines {
    let p = API.load(Ordering::Acquire);
    assert!(!p.is_null(), "sqlite-crr: SQLite API table not installed");
    // SAFETY: `install` stored a pointer SQLite guarantees to outlive every connection.
    unsafe { &*p }
}

/// Calls a routine of the host's table by name.
macro_rules! sqlite {
    ($name:ident ( $($arg:expr),* $(,)? )) => {
        (crate::ffi::api::api().$name.expect(concat!("SQLite API lacks ", stringify!($name))))($($arg),*)
    };
}
pub(crate) use sqlite;

pub const SQLITE_OK: i32 = 0;
/// `sqlite3_stmt_status` op: the heap memory a prepared statement holds (SQLite 3.20+).
pub const SQLITE_STMTSTATUS_MEMUSED: i32 = 99;
pub const SQLITE_ERROR: i32 = 1;
pub const SQLITE_NOMEM: i32 = 7;
pub const SQLITE_READONLY: i32 = 8;
pub const SQLITE_TOOBIG: i32 = 18;
pub const SQLITE_CONSTRAINT: i32 = 19;
pub const SQLITE_AUTH: i32 = 23;
pub const SQLITE_ROW: i32 = 100;
pub const SQLITE_DONE: i32 = 101;
pub const SQLITE_INTEGER: i32 = 1;
pub const SQLITE_FLOAT: i32 = 2;
pub const SQLITE_TEXT: i32 = 3;
pub const SQLITE_BLOB: i32 = 4;
pub const SQLITE_NULL: i32 = 5;
pub const SQLITE_UTF8: i32 = 1;
pub const SQLITE_DETERMINISTIC: i32 = 0x800;
pub const SQLITE_DIRECTONLY: i32 = 0x80000;
pub const SQLITE_INNOCUOUS: i32 = 0x200000;
/// `sqlite3_vtab_config` op (3.31+): the virtual table is safe in views and triggers when
/// `PRAGMA trusted_schema` is off.
pub const SQLITE_VTAB_INNOCUOUS: i32 = 2;
pub const SQLITE_PREPARE_PERSISTENT: u32 = 1;
pub const SQLITE_TXN_NONE: i32 = 0;
pub const SQLITE_TXN_WRITE: i32 = 2;
pub const SQLITE_FCNTL_DATA_VERSION: i32 = 35;
pub const SQLITE_FCNTL_FILE_POINTER: i32 = 7;
pub const SQLITE_DBCONFIG_ENABLE_TRIGGER: i32 = 1003;
pub const SQLITE_LIMIT_COLUMN: i32 = 2;
pub const SQLITE_LIMIT_SQL_LENGTH: i32 = 1;
pub const SQLITE_LIMIT_EXPR_DEPTH: i32 = 3;
pub const SQLITE_LIMIT_COMPOUND_SELECT: i32 = 4;
pub const SQLITE_LIMIT_FUNCTION_ARG: i32 = 6;

/// `SQLITE_TRANSIENT`: SQLite copies the bytes before the call returns.
pub fn transient() -> sys::sqlite3_destructor_type {
    // SAFETY: SQLite defines SQLITE_TRANSIENT as the destructor pointer value -1; it is
    // compared, never called.
    Some(unsafe { std::mem::transmute::<isize, unsafe extern "C" fn(*mut std::ffi::c_void)>(-1) })
}

/// Copies `msg` into memory from sqlite3_malloc (for zErrMsg / pzErrMsg, which SQLite frees).
pub fn sqlite_string(msg: &str) -> *mut std::os::raw::c_char {
    // SAFETY: the installed table is valid for the process.
    unsafe { sqlite_string_of(api(), msg) }
}

/// `sqlite_string` allocated by the SQLite whose routine table is `api` (it frees it).
///
/// # Safety
/// `api` must be a routine table SQLite passed to an entry point.
pub unsafe fn sqlite_string_of(api: *const sys::sqlite3_api_routines, msg: &str) -> *mut std::os::raw::c_char {
    let bytes = msg.as_bytes();
    let Some(malloc64) = (*api).malloc64 else {
        return std::ptr::null_mut();
    };
    // SAFETY: malloc64 returns either null or a block of the requested size; we write within it.
    unsafe {
        let p = malloc64(bytes.len() as u64 + 1) as *mut u8;
        if p.is_null() {
            return std::ptr::null_mut();
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
        p as *mut std::os::raw::c_char
    }
}

/// Replaces a virtual table's error message (the one SQLite reports for the failed call) with
/// `msg`.
///
/// # Safety
/// `vtab` must point at a live sqlite3_vtab whose zErrMsg is null or from sqlite3_malloc.
pub unsafe fn set_vtab_error(vtab: *mut sqlite3_vtab, msg: &str) {
    if !(*vtab).zErrMsg.is_null() {
        sqlite!(free((*vtab).zErrMsg as *mut _));
    }
    (*vtab).zErrMsg = sqlite_string(msg);
}
