//! Fuzz target: arbitrary rows inserted into crsql_changes on a real database (the extension
//! linked statically into rusqlite's bundled SQLite). See fuzz/checks/changes.rs.
#![no_main]
#[path = "../checks/changes.rs"]
mod changes;

use std::sync::Once;

static REGISTER: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    REGISTER.call_once(|| {
        // SAFETY: registering the statically linked entry point with this binary's SQLite.
        let rc = unsafe { crr::register_auto_extension(rusqlite::ffi::sqlite3_auto_extension as *const ()) };
        assert_eq!(rc, 0, "register_auto_extension");
    });
    // A fresh database per input, so every input replays exactly.
    let conn = rusqlite::Connection::open_in_memory().expect("open");
    changes::changes_db(&conn);
    changes::changes_insert(&conn, data);
});
