//! Merges, crsql_as_crr and upgrades at load when SQLite runs out of memory part way (a hard heap limit just above
//! what is in use, raised step by step): SQLite rolls back the whole transaction, as it does
//! for an interrupt, and nothing of the stopped work may stay behind (until 2026-12-05 a merge's
//! held clock came back after that rollback: "corrupt clock data: unknown site ordinal"). The
//! limit is process-wide, so this file holds one test, alone in its process.

mod common;
use common::*;
use rusqlite::Connection;

/// Runs `f` with SQLite's heap limited to what is in use now plus `headroom` bytes.
fn with_heap_limit<T>(headroom: i64, f: impl FnOnce() -> T) -> T {
    // SAFETY: process-wide settings of the bundled SQLite, restored before returning.
    unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(rusqlite::ffi::sqlite3_memory_used() + headroom) };
    let r = f();
    unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(0) };
    r
}

/// A change without its value and the replica-local columns: (table, pk, cid, col_version,
/// site_id, cl).
type Entry = (String, Vec<u8>, String, i64, Vec<u8>, i64);

/// What a stopped piece of work must leave as it was: t's rows, the feed, the db_version, and
/// the schema's names.
fn state(c: &Connection) -> (Rows, Vec<Entry>, i64, String) {
    let mut feed: Vec<_> = changes(c).into_iter().map(|x| (x.table, x.pk, x.cid, x.col_version, x.site_id, x.cl)).collect();
    feed.sort();
    let crrs: String = one(c, "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema ORDER BY name)");
    (dump(c, "t"), feed, one(c, "SELECT crsql_db_version()"), crrs)
}

#[test]
fn merges_and_as_crr_that_run_out_of_memory_leave_nothing_behind() {
    let src = mem();
    src.execute_batch(FAULT_SCHEMA).unwrap();
    src.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO t SELECT i, printf('%.*c', 40, 'x'), i FROM n;
         UPDATE t SET a = 'changed' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0;",
    )
    .unwrap();
    let feed = changes(&src);
    let fresh = || {
        let c = mem();
        c.execute_batch(FAULT_SCHEMA).unwrap();
        c.execute_batch("INSERT INTO t VALUES (1, 'own', 0)").unwrap();
        c
    };
    let work: [Work; 2] = [
        ("merge", &|c: &Connection| apply(c, &feed)),
        ("crsql_as_crr", &|c: &Connection| c.execute_batch("SELECT crsql_as_crr('s')")),
    ];
    for (what, f) in work {
        let (mut failures, mut done) = (0, 0);
        let mut headroom = 0;
        while done < 3 {
            let c = fresh();
            let before = state(&c);
            match with_heap_limit(headroom, || f(&c)) {
                Ok(()) => done += 1,
                // (SQLite's own words vary: "out of memory", or for the TEMP database the probe
                // needs, "unable to open a temporary database file".)
                Err(_) => {
                    failures += 1;
                    if !c.is_autocommit() {
                        c.execute_batch("ROLLBACK").unwrap();
                    }
                    assert_eq!(state(&c), before, "{what} with {headroom} bytes to spare left something behind");
                    f(&c).unwrap_or_else(|e| panic!("{what} again, with memory: {e}"));
                }
            }
            if what == "merge" {
                assert_eq!(dump(&c, "t")[1..], dump(&src, "t")[1..], "{what} with {headroom} bytes to spare");
            }
            headroom += 2_000;
        }
        assert!(failures > 10, "{what} ran out of memory {failures} times only");
    }
    upgrades_that_run_out_of_memory_leave_the_old_database_or_the_new();
}

/// Loading the extension on a database of an earlier build (tests/fixtures, see old_versions.rs)
/// upgrades it in one savepoint; out of memory anywhere in it, the database stays as that
/// build wrote it or is upgraded whole, with no transaction open. (Part of the test above: the
/// heap limit is process-wide.)
fn upgrades_that_run_out_of_memory_leave_the_old_database_or_the_new() {
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-fcb3fae.sqlite3");
    let try_load = load_extension_checked;
    let look = |c: &Connection| -> (i64, Vec<Vec<rusqlite::types::Value>>, String) {
        let triggers: String = one(c, "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name)");
        (one(c, "SELECT value FROM crr_meta WHERE key = 'schema'"), dump(c, "t"), triggers)
    };
    let (mut failures, mut done) = (0, 0);
    let mut headroom = 0;
    let path = tmpdir("oom-upgrade").join("db.sqlite3");
    while done < 3 {
        std::fs::copy(&fixture, &path).unwrap();
        let c = Connection::open(&path).unwrap();
        let old = look(&c);
        if with_heap_limit(headroom, || try_load(&c)).is_err() {
            failures += 1;
            assert!(c.is_autocommit(), "an upgrade out of memory with {headroom} bytes to spare left a transaction open");
            let now = look(&c);
            assert!(now == old || (now.0 == 7 && now.1 == old.1), "an upgrade out of memory with {headroom} bytes to spare: half done");
        } else {
            done += 1;
        }
        drop(c);
        let c = open(path.to_str().unwrap());
        assert_eq!(look(&c).0, 7);
        assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
        headroom += 1_000;
    }
    assert!(failures > 10, "the upgrade ran out of memory {failures} times only");
}
