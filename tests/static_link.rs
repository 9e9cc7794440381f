//! The crate linked statically into a Rust app (rusqlite's bundled SQLite) and registered for
//! every new connection with one call.

mod common;

#[test]
fn auto_extension_registers_on_every_connection() {
    // SAFETY (test): registering our entry point with the process's SQLite.
    let rc = unsafe { crr::register_auto_extension(rusqlite::ffi::sqlite3_auto_extension as *const ()) };
    assert_eq!(rc, 0);
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let site: Vec<u8> = conn.query_row("SELECT crsql_site_id()", [], |r| r.get(0)).unwrap();
    assert_eq!(site.len(), 16);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    conn.close().unwrap();
    // The library loaded as well, on a connection the linked copy serves already (a plugin
    // of the app that loads it itself): it leaves the connection to the linked copy (until
    // 2026-12-06 the process crashed).
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    common::load_extension_checked(&conn).unwrap();
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    conn.close().unwrap();
}
