//! Two SQLite libraries in one process (rusqlite's bundled one, and the system's
//! libsqlite3.so.0 opened with dlopen), as a Python process that uses apsw and the stdlib
//! sqlite3 module: the extension has one routine table per process, so while connections of
//! one library use it, another library's load is refused with an error (until 2026-12-06 it
//! took over the table, and the first library's connections crashed the process); once they
//! are closed, the other library may load it.

mod common;
use common::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}
const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;

/// The few routines of the system's SQLite the test calls.
struct System {
    open: unsafe extern "C" fn(*const c_char, *mut *mut c_void) -> c_int,
    close: unsafe extern "C" fn(*mut c_void) -> c_int,
    enable_load_extension: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    load_extension: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *mut *mut c_char) -> c_int,
    exec: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_void, *mut c_void, *mut *mut c_char) -> c_int,
    prepare_v2: unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *mut *mut c_void, *mut *const c_char) -> c_int,
    step: unsafe extern "C" fn(*mut c_void) -> c_int,
    column_int64: unsafe extern "C" fn(*mut c_void, c_int) -> i64,
    finalize: unsafe extern "C" fn(*mut c_void) -> c_int,
    free: unsafe extern "C" fn(*mut c_void),
}

impl System {
    fn load() -> Option<System> {
        // SAFETY (test): opening a shared library and reading the addresses of its functions,
        // whose C signatures are the ones declared above.
        unsafe {
            let lib = dlopen(c"libsqlite3.so.0".as_ptr(), RTLD_NOW | RTLD_LOCAL);
            if lib.is_null() {
                return None;
            }
            /// The address of routine `name` as the function pointer type `T` of its field.
            ///
            /// # Safety
            /// `T` must be a function pointer type of that routine's C signature.
            unsafe fn f<T: Copy>(lib: *mut c_void, name: &str) -> T {
                assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>(), "{name}");
                // SAFETY (test): dlsym on a library handle; the routine's C signature is `T`.
                let p = unsafe { dlsym(lib, CString::new(name).unwrap().as_ptr()) };
                assert!(!p.is_null(), "{name}");
                // SAFETY (test): a function pointer is a data pointer's size here (checked above).
                unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) }
            }
            Some(System {
                open: f(lib, "sqlite3_open"),
                close: f(lib, "sqlite3_close"),
                enable_load_extension: f(lib, "sqlite3_enable_load_extension"),
                load_extension: f(lib, "sqlite3_load_extension"),
                exec: f(lib, "sqlite3_exec"),
                prepare_v2: f(lib, "sqlite3_prepare_v2"),
                step: f(lib, "sqlite3_step"),
                column_int64: f(lib, "sqlite3_column_int64"),
                finalize: f(lib, "sqlite3_finalize"),
                free: f(lib, "sqlite3_free"),
            })
        }
    }

    fn open(&self) -> *mut c_void {
        let mut db = std::ptr::null_mut();
        // SAFETY (test): the system library's own calls on its own connection.
        unsafe {
            assert_eq!((self.open)(c":memory:".as_ptr(), &mut db), 0);
            (self.enable_load_extension)(db, 1);
        }
        db
    }

    /// Loads the extension on `db`: Ok, or SQLite's message.
    fn load_extension(&self, db: *mut c_void) -> Result<(), String> {
        let path = CString::new(extension_path().to_str().unwrap()).unwrap();
        let mut message: *mut c_char = std::ptr::null_mut();
        // SAFETY (test): as `open`; the message is the system library's to free.
        unsafe {
            if (self.load_extension)(db, path.as_ptr(), c"sqlite3_crr_init".as_ptr(), &mut message) == 0 {
                return Ok(());
            }
            let text = if message.is_null() { String::new() } else { CStr::from_ptr(message).to_string_lossy().into_owned() };
            (self.free)(message as *mut c_void);
            Err(text)
        }
    }

    fn exec(&self, db: *mut c_void, sql: &str) {
        let sql = CString::new(sql).unwrap();
        // SAFETY (test): as `open`.
        unsafe { assert_eq!((self.exec)(db, sql.as_ptr(), std::ptr::null(), std::ptr::null_mut(), std::ptr::null_mut()), 0, "{sql:?}") };
    }

    fn one(&self, db: *mut c_void, sql: &str) -> i64 {
        let sql = CString::new(sql).unwrap();
        let mut s = std::ptr::null_mut();
        // SAFETY (test): as `open`; the statement is finalized before it returns.
        unsafe {
            assert_eq!((self.prepare_v2)(db, sql.as_ptr(), -1, &mut s, std::ptr::null_mut()), 0);
            assert_eq!((self.step)(s), 100);
            let v = (self.column_int64)(s, 0);
            (self.finalize)(s);
            v
        }
    }
}

#[test]
fn a_second_sqlite_library_waits_until_the_first_is_done_with_the_extension() {
    let Some(system) = System::load() else {
        eprintln!("no libsqlite3.so.0 on this machine: nothing to test against");
        return;
    };
    const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');";
    let a = open(":memory:");
    a.execute_batch(T).unwrap();
    let other = system.open();
    let e = system.load_extension(other).unwrap_err();
    assert!(e.contains("sqlite-crr is in use by another SQLite library in this process"), "{e}");
    // The first library's connection goes on as before (it crashed here).
    a.execute_batch("INSERT INTO t VALUES (2, 'y'); UPDATE t SET a = 'z' WHERE id = 1;").unwrap();
    assert_eq!(changes(&a).len(), 2);
    a.close().unwrap();
    // Its connections closed, the other library may load it.
    system.load_extension(other).unwrap();
    system.exec(other, T);
    assert_eq!(system.one(other, "SELECT count(*) FROM crsql_changes"), 1);
    let b = rusqlite::Connection::open_in_memory().unwrap();
    let e = load_extension_checked(&b).unwrap_err();
    assert!(e.contains("sqlite-crr is in use by another SQLite library in this process"), "{e}");
    // SAFETY (test): closing the system library's connection.
    assert_eq!(unsafe { (system.close)(other) }, 0);
    load_extension_checked(&b).unwrap();
    b.execute_batch(T).unwrap();
    assert_eq!(changes(&b).len(), 1);
}
