//! Entry points and per-connection setup: `sqlite3_crr_init` (`.load ./dist/crr`) and the
//! drop-in alias `sqlite3_crsqlite_init`. Static users register the same function with
//! `sqlite3_auto_extension`, which hands it the routine table as a loadable extension gets it.
//!
//! Sets up one `storage::conn::Conn` per connection, unless another copy of the library
//! (another file, or one linked in) serves the connection already (`loaded_before`, through
//! `crr_internal_build()`): two would replace each other's registrations and free the state the
//! other's tables use; another build, and cr-sqlite (same function names), are refused
//! (`crr_internal_instance()` tells this copy's own half-done earlier load, out of memory, from
//! another copy's). The library holds one routine table (`api.rs`), so a second SQLite library
//! in the process is refused while connections of the first carry the extension
//! (`OTHER_SQLITE`): checked, installed and the connection reserved in `LIVE` under one lock
//! that no SQLite call runs under (a callback of a load may load the extension on another
//! connection). Its one process-wide allocation, the list of connections that carry the
//! extension, is freed when the last one closes (SQLite then unloads the library, and what is
//! left is lost).

use super::api::{self, sqlite};
use super::db::Db;
use super::{changes_vtab, functions, txn_vtab, unpack_vtab};
use crate::error::{Error, Result};
use crate::storage::conn::Conn;
use crate::storage::schema;
use std::os::raw::{c_char, c_int};
use std::sync::Mutex;

/// Connections that carry the extension, or are being set up with it (loading twice is a
/// no-op).
static LIVE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Why a second SQLite library in the process may not load the extension while the first's
/// connections use it: the library has one routine table, and the first's connections would
/// call the second's routines with their handles (the process crashed, until 2026-12-06).
const OTHER_SQLITE: &str = "sqlite-crr is in use by another SQLite library in this process (its connections that \
                            loaded the extension are open): one SQLite library per process at a time can use it (not \
                            supported yet)";

fn live() -> std::sync::MutexGuard<'static, Vec<usize>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn forget_connection(conn: *const Conn) {
    // SAFETY: called from the owner's destructor while the Conn is still allocated.
    let db = unsafe { (*conn).db.raw() } as usize;
    forget(&mut live(), db);
}

/// Takes connection `db` off the list, which gives its memory back once empty: SQLite unloads
/// the library when the last connection that loaded it closes, and a buffer left then is lost
/// for good (32 bytes each time an app opened, loaded and closed its connections, found by
/// valgrind).
fn forget(live: &mut Vec<usize>, db: usize) {
    live.retain(|d| *d != db);
    if live.is_empty() {
        *live = Vec::new();
    }
}

/// This build, as `crr_internal_build()` gives it to another copy of the library.
pub(crate) fn build() -> String {
    format!("sqlite-crr {} (internal schema {})", env!("CARGO_PKG_VERSION"), schema::INTERNAL_SCHEMA_VERSION)
}

/// This copy of the library (the address of one of its statics): a load that finds this
/// build's functions registered by this very copy (an earlier load that failed half way, out
/// of memory) sets the connection up again instead of leaving it to them.
pub(crate) fn instance() -> i64 {
    &LIVE as *const _ as usize as i64
}

/// What is loaded on a connection before this copy sets it up (`loaded_before`).
enum Before {
    /// Nothing (or this very copy's half-done earlier load, out of memory: set up again).
    Nothing,
    /// Another copy of this build, which serves the connection already.
    SameBuild,
    /// Something this copy cannot load beside, described.
    Other(String),
}

/// What another copy of this library (another file, or one linked into the app and
/// registered with sqlite3_auto_extension) already loaded on connection `db`. Two copies on
/// one connection would each register the functions and tables, the second replacing the
/// first's, whose destructors then free the state the first's tables still use: the process
/// crashed (until 2026-12-06). cr-sqlite registers the same names.
fn loaded_before(db: Db) -> Result<Before> {
    if let Some(mut s) = db.prepare_if_resolves("SELECT crr_internal_build()")? {
        s.step()?;
        let other = s.text(0);
        let mine = match db.prepare_if_resolves("SELECT crr_internal_instance()")? {
            Some(mut s) => s.step()? && s.i64(0) == instance(),
            None => false,
        };
        return Ok(match () {
            _ if mine => Before::Nothing,
            _ if other == build() => Before::SameBuild,
            _ => Before::Other(format!("{other} (another copy of the library)")),
        });
    }
    // Builds before 2026-12-06 have no crr_internal_build, but all have this; cr-sqlite has
    // the public names only.
    for (probe, what) in [
        ("SELECT crr_internal_tracking(0)", "an earlier build of sqlite-crr (another copy of the library)"),
        ("SELECT crsql_site_id()", "cr-sqlite (or another extension with a crsql_site_id function)"),
    ] {
        if db.prepare_if_resolves(probe)?.is_some() {
            return Ok(Before::Other(what.into()));
        }
    }
    Ok(Before::Nothing)
}

/// Sets connection `db` up: Ok(true), or Ok(false) when another copy of the same build serves
/// it already.
fn setup(db: *mut api::sqlite3) -> Result<bool> {
    // SAFETY: libversion_number takes no arguments.
    let version = unsafe { sqlite!(libversion_number()) };
    if version < api::SQLITE_VERSION_MIN {
        return Err(Error::new(format!("sqlite-crr needs SQLite 3.35.0 or newer, this is {version}")));
    }
    // SAFETY: db is the open connection SQLite passed to the entry point.
    match loaded_before(unsafe { Db::from_raw(db) })? {
        Before::Nothing => {}
        Before::SameBuild => return Ok(false),
        Before::Other(other) => {
            return Err(Error::new(format!(
                "{other} is already loaded on this connection; {} cannot be loaded beside it: load one per connection",
                build()
            )))
        }
    }
    // SAFETY: db is the open connection SQLite passed to the entry point.
    if !unsafe { Db::from_raw(db) }.triggers_enabled() {
        return Err(Error::new(format!("sqlite-crr: {} before loading the extension", crate::storage::conn::TRIGGERS_OFF)));
    }
    // SAFETY: db is the open connection SQLite passed to the entry point.
    let conn = Box::into_raw(Box::new(Conn::new(unsafe { Db::from_raw(db) })));
    // SAFETY: conn is live (noted before anything asks `check_main_file`).
    unsafe { &*conn }.main_file.set(unsafe { &*conn }.db.main_file());
    // SAFETY: conn is a live, uniquely owned allocation.
    if let Err(e) = schema::install_at_load(unsafe { &*conn }) {
        // SAFETY: nothing else references conn yet.
        drop(unsafe { Box::from_raw(conn) });
        return Err(e);
    }
    // SAFETY: conn is live.
    crate::storage::triggers::put_tracking_first_at_load(unsafe { &*conn });
    // From here the owner function's destructor frees conn at close. (Should a registration
    // fail, which only happens when memory runs out, conn is leaked rather than risked.)
    functions::register_all(conn)?;
    // SAFETY: db is the connection being set up; conn is its state, freed only by the owner
    // function at close.
    unsafe { changes_vtab::register(db, conn)? };
    // SAFETY: as above.
    unsafe { txn_vtab::register(db, conn)? };
    // SAFETY: conn is live.
    unsafe { &*conn }.txn_vtab.set(true);
    // SAFETY: db is the connection being set up.
    unsafe { unpack_vtab::register(db)? };
    // Connect the eponymous crsql_changes now: SQLite disconnects it at close before checking
    // for unfinalized statements, which is when we finalize the statement cache. Named in
    // main, where the module is: unqualified, an ATTACHed database's table of that name would
    // be found instead, and the cache left to fail the close ("database is locked").
    // SAFETY: conn is live.
    unsafe { &*conn }.db.prepare("SELECT 1 FROM main.crsql_changes", false)?;
    Ok(true)
}

unsafe fn init(db: *mut api::sqlite3, pz_err_msg: *mut *mut c_char, p_api: *const api::sqlite3_api_routines) -> c_int {
    if p_api.is_null() {
        return api::SQLITE_ERROR;
    }
    // Checked, installed and reserved under one lock, which no call of SQLite's runs under: a
    // callback of this load (a progress handler) may load the extension on another
    // connection, and must not wait for it.
    let refused = {
        let mut live = live();
        if live.contains(&(db as usize)) {
            return api::SQLITE_OK;
        }
        let current = api::current();
        let refused = !current.is_null() && current != p_api && !live.is_empty();
        if !refused {
            api::install(p_api);
            live.push(db as usize);
        }
        refused
    };
    if refused {
        if !pz_err_msg.is_null() {
            *pz_err_msg = api::sqlite_string_of(p_api, OTHER_SQLITE);
        }
        return api::SQLITE_ERROR;
    }
    let r = super::guard::guard("sqlite-crr init", || setup(db));
    if !matches!(r, Ok(true)) {
        forget(&mut live(), db as usize);
    }
    match r {
        Ok(_) => api::SQLITE_OK,
        Err(e) => {
            if !pz_err_msg.is_null() {
                *pz_err_msg = api::sqlite_string(&e.message);
            }
            if e.code == api::SQLITE_OK { api::SQLITE_ERROR } else { e.code }
        }
    }
}

/// Entry point for `.load ./dist/crr` and `sqlite3_load_extension`.
///
/// # Safety
/// Called by SQLite with an open connection and its routine table.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_crr_init(db: *mut api::sqlite3, pz_err_msg: *mut *mut c_char, p_api: *const api::sqlite3_api_routines) -> c_int {
    init(db, pz_err_msg, p_api)
}

/// Drop-in alias for cr-sqlite's entry point.
///
/// # Safety
/// As `sqlite3_crr_init`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_crsqlite_init(db: *mut api::sqlite3, pz_err_msg: *mut *mut c_char, p_api: *const api::sqlite3_api_routines) -> c_int {
    init(db, pz_err_msg, p_api)
}

/// Registers the extension for every connection opened afterwards, for apps that link the
/// crate statically. Pass your SQLite's `sqlite3_auto_extension` as a plain pointer, e.g.
/// `crr::register_auto_extension(rusqlite::ffi::sqlite3_auto_extension as *const ())`.
/// Returns SQLite's result code.
///
/// # Safety
/// `auto_extension` must point to the `sqlite3_auto_extension` of the SQLite the app uses.
pub unsafe fn register_auto_extension(auto_extension: *const ()) -> c_int {
    type AutoExtension = unsafe extern "C" fn(Option<unsafe extern "C" fn()>) -> c_int;
    if auto_extension.is_null() {
        return api::SQLITE_ERROR;
    }
    // SAFETY: sqlite3_auto_extension takes the entry point type-erased as void(*)(void) and
    // calls it back as (db, pzErrMsg, pApi), the signature sqlite3_crr_init has. Bindings
    // differ only in how they spell these pointer types.
    let register = std::mem::transmute::<*const (), AutoExtension>(auto_extension);
    let entry = std::mem::transmute::<
        unsafe extern "C" fn(*mut api::sqlite3, *mut *mut c_char, *const api::sqlite3_api_routines) -> c_int,
        unsafe extern "C" fn(),
    >(sqlite3_crr_init);
    register(Some(entry))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_of_connections_holds_no_memory_once_the_last_is_gone() {
        let mut live = Vec::new();
        live.push(1);
        live.push(2);
        super::forget(&mut live, 1);
        assert_eq!(live, [2]);
        super::forget(&mut live, 2);
        assert_eq!((live.len(), live.capacity()), (0, 0));
    }
}
