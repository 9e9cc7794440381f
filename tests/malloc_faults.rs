//! SQLite's allocator made to fail once, at each of its allocations in turn (SQLite's own
//! statements, the extension's prepares, and the values the extension reads from its
//! statements: `sqlite3_column_text` answers NULL when it cannot allocate): merges, local
//! writes, crsql_as_crr, a schema-change bracket, reads of crsql_changes (whole and in parts) and the upgrade at
//! load. What succeeds must be right, whole and exactly what it is without the failure; what
//! fails must leave the database as it was (or, where SQLite reports the failure after the work
//! was done, done), no transaction open but the app's, and the same work must then go through.
//! Then three replicas take random writes and merges, two in five with an allocation failing,
//! and must converge. The allocator is process-wide, so this file holds one test, alone in its
//! process; lookaside is off, so that every allocation reaches it. CRR_MALLOC_STRIDE=1 tries
//! every allocation (make test tries about 150 a case); CRR_MALLOC_SEEDS sets the random runs.

mod common;
use common::*;
use rusqlite::ffi;
use rusqlite::types::Value as V;
use rusqlite::Connection;
use std::os::raw::{c_int, c_void};
use std::sync::OnceLock;

type Malloc = unsafe extern "C" fn(c_int) -> *mut c_void;
type Realloc = unsafe extern "C" fn(*mut c_void, c_int) -> *mut c_void;

/// SQLite's own allocator, which ours calls.
static REAL: OnceLock<(Malloc, Realloc)> = OnceLock::new();
/// Where the failure is injected (see common::OnceFault).
static FAULT: OnceFault = OnceFault::new();

unsafe extern "C" fn failing_malloc(n: c_int) -> *mut c_void {
    if FAULT.fails_now() {
        return std::ptr::null_mut();
    }
    (REAL.get().unwrap().0)(n)
}

unsafe extern "C" fn failing_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if FAULT.fails_now() {
        return std::ptr::null_mut();
    }
    (REAL.get().unwrap().1)(p, n)
}

/// Puts our allocator in front of SQLite's; before any connection is open.
fn install() {
    // SAFETY: no connection is open yet (one test in this process); sqlite3_config copies the
    // methods, whose functions stay valid for the life of the process.
    unsafe {
        ffi::sqlite3_shutdown();
        let mut methods: ffi::sqlite3_mem_methods = std::mem::zeroed();
        assert_eq!(ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETMALLOC, &mut methods as *mut ffi::sqlite3_mem_methods), ffi::SQLITE_OK);
        REAL.set((methods.xMalloc.unwrap(), methods.xRealloc.unwrap())).ok().unwrap();
        methods.xMalloc = Some(failing_malloc);
        methods.xRealloc = Some(failing_realloc);
        assert_eq!(ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const ffi::sqlite3_mem_methods), ffi::SQLITE_OK);
        // No lookaside: the small allocations a connection makes from it never reach the
        // allocator, and would never fail.
        assert_eq!(ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 0 as c_int, 0 as c_int), ffi::SQLITE_OK);
        assert_eq!(ffi::sqlite3_initialize(), ffi::SQLITE_OK);
    }
}



type State = (Rows, Rows, Rows, Rows, Rows);

/// Tables, feed (where it can be read: not while a table is in a bracket), db_version, schema
/// (trigger texts included: an upgrade that skipped a table's triggers shows there) and the
/// clock rows, read without any failing allocation.
fn state(c: &Connection) -> State {
    let tables = [dump(c, "t"), dump(c, "s")].concat();
    let feed = try_rows(c, "SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes ORDER BY 1, 2, 3")
        .unwrap_or_else(|e| vec![vec![V::Text(format!("unreadable: {e}"))]]);
    let version = rows(c, "SELECT crsql_db_version()");
    let schema = rows(c, "SELECT type, name, sql FROM sqlite_schema ORDER BY name");
    let clocks = try_rows(c, "SELECT pk, cl, dbv, clock FROM crr_clock_1 ORDER BY pk").unwrap_or_default();
    (tables, feed, version, schema, clocks)
}

#[test]
fn work_whose_allocation_fails_once_is_whole_or_undone() {
    install();
    let src = mem();
    src.execute_batch(FAULT_SCHEMA).unwrap();
    src.execute_batch("SELECT crr_set_wall_clock_for_testing(2000000)").unwrap();
    src.execute_batch(
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, 'a long text of the source', 4);
         UPDATE t SET a = 'b2' WHERE id = 2; DELETE FROM t WHERE id = 3;",
    )
    .unwrap();
    let feed = changes(&src);
    let fresh = |setup: &str| {
        let c = mem();
        c.execute_batch(FAULT_SCHEMA).unwrap();
        c.execute_batch("SELECT crr_set_wall_clock_for_testing(1000000); INSERT INTO t VALUES (1, 'own', 0), (5, 'own', 5);").unwrap();
        stage_feed(&c, &feed);
        c.execute_batch(setup).unwrap();
        c
    };
    let merged_per_change = |c: &Connection| merge_reading_before_commit(c, &feed);
    type Work<'a> = (&'a str, &'a str, Box<dyn Fn(&Connection) -> rusqlite::Result<()> + 'a>);
    let bracket = "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT DEFAULT 'x'; UPDATE t SET d = 'y' WHERE id = 5;";
    let rebuild = "SELECT crsql_begin_alter('t'); CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, e TEXT); \
                   INSERT INTO t_new(id, a, b) SELECT id, a, b FROM t; DROP TABLE t; ALTER TABLE t_new RENAME TO t;";
    let unbracketed = "CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); INSERT INTO t_new SELECT * FROM t WHERE id != 5; \
                       INSERT INTO t_new VALUES (9, 'new', 9); DROP TABLE t; ALTER TABLE t_new RENAME TO t;";
    let moved = "ALTER TABLE t RENAME TO t_old; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); INSERT INTO t VALUES (3, 'x', 3); \
                 CREATE TABLE v(id INTEGER PRIMARY KEY NOT NULL, x); SELECT crsql_as_crr('v'); INSERT INTO v VALUES (1, 1); DROP TABLE v;";
    let taken = "SELECT crsql_as_crr('s'); INSERT INTO s VALUES (1, 1); SELECT crsql_begin_alter('s'); DROP TABLE t; ALTER TABLE s RENAME TO t; \
                 CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT 0 CHECK (n >= 0)) STRICT;";
    let cases: Vec<Work> = vec![
        ("a merge in one statement", "", Box::new(|c: &Connection| c.execute_batch("INSERT INTO crsql_changes SELECT * FROM temp.feed"))),
        ("a merge change by change", "", Box::new(merged_per_change)),
        // Through the one statement a wide table's merges share (storage::merge::write_cell).
        ("a merge change by change, as into a wide table", "SELECT crr_set_wide_writes_for_testing(1);", Box::new(merged_per_change)),
        // Every statement prepared again at each use (the cache keeps the last used only).
        ("a merge change by change, preparing every statement again", "SELECT crr_set_statement_budget_for_testing(0);", Box::new(merged_per_change)),
        ("local writes, preparing every statement again", "SELECT crr_set_statement_budget_for_testing(0);", Box::new(|c: &Connection| {
            c.execute_batch("BEGIN; INSERT INTO t VALUES (7, 'new', 7); UPDATE t SET a = 'upd', b = 2 WHERE id = 1; DELETE FROM t WHERE id = 5; COMMIT;")
        })),
        (
            "local writes",
            "",
            Box::new(|c: &Connection| {
                c.execute_batch("BEGIN; INSERT INTO t VALUES (7, 'new', 7); UPDATE t SET a = 'upd', b = 2 WHERE id = 1; DELETE FROM t WHERE id = 5; COMMIT;")
            }),
        ),
        ("crsql_as_crr of a STRICT table with a CHECK", "", Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('s')"))),
        ("crsql_as_crr of a table with rows", "INSERT INTO s VALUES (1, 1), (2, 2);", Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('s')"))),
        ("crsql_begin_alter", "", Box::new(|c: &Connection| c.execute_batch("SELECT crsql_begin_alter('t')"))),
        ("crsql_commit_alter", bracket, Box::new(|c: &Connection| c.execute_batch("SELECT crsql_commit_alter('t')"))),
        ("crsql_commit_alter after a rebuild", rebuild, Box::new(|c: &Connection| c.execute_batch("SELECT crsql_commit_alter('t')"))),
        // The next start after a rebuild outside a bracket: the rows the table lost become
        // deletes, the ones it gained inserts (as_crr, alter::tombstone_missing).
        ("crsql_as_crr after a rebuild outside a bracket", unbracketed, Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('t')"))),
        // The registry tidied first: a dropped CRR's clock removed, a renamed one's name
        // recorded; then a table id past both for a new table of the old name.
        ("crsql_as_crr where a CRR was renamed and another dropped", moved, Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('t')"))),
        // A CRR renamed in its bracket to the name of one dropped there.
        ("crsql_commit_alter taking a dropped CRR's name", taken, Box::new(|c: &Connection| c.execute_batch("SELECT crsql_commit_alter('t')"))),
        ("crsql_as_table", "", Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_table('t')"))),
        ("crr_new_site_id", "", Box::new(|c: &Connection| c.execute_batch("SELECT crr_new_site_id()"))),
    ];
    let stride = |total: i64| std::env::var("CRR_MALLOC_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or((total / 150).max(1));
    for (what, setup, work) in &cases {
        let (done, total) = {
            let c = fresh(setup);
            let (r, total) = FAULT.count(|| work(&c));
            r.unwrap();
            (state(&c), total)
        };
        // (Site ids and the db_versions of local writes are the replica's own: compared by
        // what does not vary between fresh replicas.)
        let same = |a: &State, b: &State| {
            let stable = |f: &Rows| -> Rows { f.iter().map(|r| r.iter().take(5).cloned().collect()).collect() };
            let triggers = |s: &Rows| -> Rows { s.iter().filter(|r| r[0] != V::Text("trigger".into())).cloned().collect() };
            a.0 == b.0 && stable(&a.1) == stable(&b.1) && a.2 == b.2 && triggers(&a.3) == triggers(&b.3) && a.3.len() == b.3.len() && a.4 == b.4
        };
        let mut failed = 0;
        for at in (0..total).step_by(stride(total) as usize) {
            let c = fresh(setup);
            let before = state(&c);
            let (r, came) = FAULT.failing_at(at, || work(&c));
            // (The count varies a little from one fresh replica to the next: SQLite's page cache
            // recycles across connections.)
            let ctx = format!("{what}, allocation {at} of {total} failing (it came: {came})");
            match r {
                Ok(()) => assert!(same(&state(&c), &done), "{ctx}: succeeded, but not as without the failure"),
                Err(e) => {
                    failed += 1;
                    if !c.is_autocommit() {
                        c.execute_batch("ROLLBACK").unwrap();
                    }
                    let now = state(&c);
                    assert!(same(&now, &before) || same(&now, &done), "{ctx}: {e}: half done");
                    if same(&now, &before) {
                        work(&c).unwrap_or_else(|e| panic!("{ctx}: the same work again: {e}"));
                        assert!(same(&state(&c), &done), "{ctx}: the same work again differs");
                    }
                }
            }
        }
        assert!(failed > 0, "{what}: no allocation failure made it fail");
    }
    let merged = fresh("INSERT INTO crsql_changes SELECT * FROM temp.feed");
    reads(&merged, stride);
    // The same reads in parts: a scan holds 2 changes at a time, and each part's scan
    // allocates too (storage::changes, `prune`).
    merged.execute_batch("SELECT crr_set_scan_cap_for_testing(2)").unwrap();
    reads(&merged, stride);
    upgrades(stride);
    let seeds = std::env::var("CRR_MALLOC_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    for seed in 0..seeds {
        // (A write or a merge takes some hundreds of allocations.)
        // (The second replica merges as into wide tables.)
        replicas_converge_under_faults(seed, &FAULT, 400, &|i| {
            let c = mem();
            if i == 1 {
                c.execute_batch("SELECT crr_set_wide_writes_for_testing(1)").unwrap();
            }
            c
        });
    }
}

/// A read of crsql_changes whose allocation fails either fails or returns the whole feed.
fn reads(c: &Connection, stride: impl Fn(i64) -> i64) {
    for filter in ["", "WHERE db_version > 1", "WHERE site_id = crsql_site_id()", "WHERE \"table\" = 't' AND pk = crsql_pack_columns(2)"] {
        read_where(c, filter, &stride);
    }
}

fn read_where(c: &Connection, filter: &str, stride: &impl Fn(i64) -> i64) {
    let sql = format!("SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes {filter}");
    let read = |c: &Connection| try_rows(c, &sql);
    let (all, total) = FAULT.count(|| read(c).unwrap());
    assert!(!all.is_empty(), "{filter}");
    let mut failed = 0;
    for at in (0..total).step_by(stride(total) as usize) {
        match FAULT.failing_at(at, || read(c)).0 {
            Ok(got) => assert_eq!(got, all, "a read of crsql_changes {filter} with allocation {at} of {total} failing"),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0);
}

/// Loading the extension on a database of an earlier build (tests/fixtures, see
/// old_versions.rs) with an allocation of the upgrade failing: the database stays as that build
/// wrote it, or is upgraded whole; and the next load upgrades it whole.
fn upgrades(stride: impl Fn(i64) -> i64) {
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-fcb3fae.sqlite3");
    let path = tmpdir("malloc-upgrade").join("db.sqlite3");
    let try_load = load_extension_checked;
    // Trigger texts with the database's random token taken out.
    let look = |c: &Connection| -> (Rows, Rows) {
        let token: i64 = one(c, "SELECT coalesce((SELECT value FROM crr_meta WHERE key = 'token'), 0)");
        let schema = rows(c, "SELECT type, name, sql FROM sqlite_schema ORDER BY name")
            .into_iter()
            .map(|mut r| {
                if let (V::Text(sql), true) = (&r[2], token != 0) {
                    let tid: i64 = match &r[1] {
                        V::Text(n) => n.split('_').nth(1).and_then(|t| t.parse().ok()).unwrap_or(0),
                        _ => 0,
                    };
                    r[2] = V::Text(sql.replace(&((token << 32) | tid).to_string(), "TOKEN"));
                }
                r
            })
            .collect();
        (schema, rows(c, "SELECT * FROM t ORDER BY id"))
    };
    let (upgraded, total) = {
        std::fs::copy(&fixture, &path).unwrap();
        let c = Connection::open(&path).unwrap();
        let (r, total) = FAULT.count(|| try_load(&c));
        r.unwrap();
        (look(&c), total)
    };
    let mut failed = 0;
    for at in (0..total).step_by(stride(total) as usize) {
        std::fs::copy(&fixture, &path).unwrap();
        let c = Connection::open(&path).unwrap();
        let old = look(&c);
        let ctx = format!("the upgrade with allocation {at} of {total} failing");
        if FAULT.failing_at(at, || try_load(&c)).0.is_err() {
            failed += 1;
            assert!(c.is_autocommit(), "{ctx}: a transaction was left open");
            let now = look(&c);
            assert!(now == old || now == upgraded, "{ctx}: half done");
        } else {
            assert!(look(&c) == upgraded, "{ctx}: loaded, but not as without the failure");
        }
        drop(c);
        let c = open(path.to_str().unwrap());
        assert!(look(&c) == upgraded, "{ctx}: the next load");
    }
    assert!(failed > 0);
}
