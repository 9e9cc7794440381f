//! Databases written by earlier builds still open, read, take writes and sync.
//!
//! `tests/fixtures/v1-fcb3fae.sqlite3` was written by the build at commit fcb3fae (row clock
//! record format 1; triggers that call crr_internal_insert / _update / _delete), through
//! /usr/bin/sqlite3: three CRRs (integer key, compound text key WITHOUT ROWID, key-only),
//! inserts, an update, deletes, a resurrection and one merged change from another site.
//! `v1-fcb3fae.changes` is what that build's crsql_changes showed for it.

mod common;
use common::*;
use std::path::PathBuf;

const FIXTURE: &str = "v1-fcb3fae";
const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
    CREATE TABLE u(k TEXT NOT NULL, n INTEGER NOT NULL, v, PRIMARY KEY (k, n)) WITHOUT ROWID;
    CREATE TABLE k(x NOT NULL, y NOT NULL, PRIMARY KEY (x, y));
    SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('k');";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// A private copy of the fixture (tests write to it).
fn copy(test: &str) -> String {
    let to = tmpdir(test).join(format!("{FIXTURE}.sqlite3"));
    std::fs::copy(fixtures().join(format!("{FIXTURE}.sqlite3")), &to).expect("copy fixture");
    to.to_str().unwrap().to_string()
}

/// crsql_changes in the fixture's text form.
fn feed(c: &rusqlite::Connection) -> Vec<String> {
    let mut s = c
        .prepare("SELECT \"table\", hex(pk), cid, quote(val), col_version, db_version, hex(site_id), cl, seq FROM crsql_changes")
        .unwrap();
    s.query_map([], |r| Ok((0..9).map(|i| r.get_ref(i).unwrap().as_str().map(str::to_string).unwrap_or_else(|_| r.get::<_, i64>(i).unwrap().to_string())).collect::<Vec<_>>().join("|")))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_format_1_database_reads_as_its_own_build_read_it() {
    let c = open(&copy("old-read"));
    let expected: Vec<String> = std::fs::read_to_string(fixtures().join(format!("{FIXTURE}.changes"))).unwrap().lines().map(String::from).collect();
    assert_eq!(feed(&c), expected);
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}

#[test]
fn a_format_1_database_takes_writes_upgrades_its_triggers_and_syncs() {
    let c = open(&copy("old-write"));
    let before: i64 = one(&c, "SELECT crsql_db_version()");
    // The old triggers still record writes.
    c.execute("UPDATE t SET b = 10 WHERE id = 1", []).unwrap();
    let b = changes_where(&c, "WHERE cid = 'b' AND pk = crsql_pack_columns(1)");
    assert_eq!((b[0].val.clone(), b[0].db_version), (rusqlite::types::Value::Integer(10), before + 1));
    // crsql_as_crr again gives them this build's triggers; writes go on being recorded.
    c.execute_batch("SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('k');").unwrap();
    let sql: String = one(&c, "SELECT sql FROM sqlite_schema WHERE name = 'crr_1_insert'");
    assert!(sql.contains("crr_internal_fresh_record"), "{sql}");
    c.execute_batch("INSERT INTO t VALUES (5, 'five', 5); DELETE FROM u WHERE k = 'x'; UPDATE t SET a = 'again' WHERE id = 3;").unwrap();
    // A fresh replica that receives everything holds the same tables and the same feed.
    let r = mem();
    r.execute_batch(SCHEMA).unwrap();
    apply(&r, &changes(&c)).unwrap();
    for table in ["t", "u", "k"] {
        assert_eq!(dump(&r, table), dump(&c, table), "table {table}");
    }
    let portable = |x: &rusqlite::Connection| {
        let mut v: Vec<_> = changes(x).into_iter().map(|ch| format!("{} {:?} {} {:?} {} {:?} {}", ch.table, ch.pk, ch.cid, ch.val, ch.col_version, ch.site_id, ch.cl)).collect();
        v.sort();
        v
    };
    assert_eq!(portable(&r), portable(&c));
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}
