//! Shared helpers for integration tests: open a bundled-SQLite connection with the real built
//! extension (dist/crr.so, made by `make`) loaded.
#![allow(dead_code)]

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use std::cmp::Ordering;
use std::path::PathBuf;

pub fn extension_path() -> PathBuf {
    if let Ok(p) = std::env::var("CRR_EXTENSION") {
        return PathBuf::from(p);
    }
    let ext = if cfg!(target_os = "macos") { "dylib" } else { "so" };
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist").join(format!("crr.{ext}"));
    assert!(p.exists(), "{} is missing: run `make` first (make test does)", p.display());
    p
}

/// Opens `path` (":memory:" allowed) and loads the extension.
pub fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open");
    load(&conn);
    conn
}

pub fn load(conn: &Connection) {
    // CRR_REVERSE=1: every test connection returns the rows of a query without ORDER BY in
    // reverse (SQLite's own way to find code that depends on an order nothing promises).
    if std::env::var("CRR_REVERSE").is_ok_and(|v| v != "0") {
        reverse_unordered(conn);
    }
    if std::env::var("CRR_STRICT").is_ok_and(|v| v != "0") {
        strict_sql(conn);
    }
    if std::env::var("CRR_PRAGMAS").is_ok_and(|v| v != "0") {
        other_pragmas(conn);
    }
    // SAFETY (test): loading our own extension into our own connection.
    unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(conn).expect("enable load_extension");
        conn.load_extension(extension_path(), Some("sqlite3_crr_init")).expect("load extension");
    }
}

/// Rows of a query without ORDER BY come in reverse (SQLite's way to find code that depends on
/// an order nothing promises), the extension's own queries on `conn` included.
pub fn reverse_unordered(conn: &Connection) {
    conn.execute_batch("PRAGMA reverse_unordered_selects = ON").unwrap();
}

/// Settings some apps and builds use: no double-quoted string literals (SQLite's recommended
/// build, and macOS's), defensive mode (no writes to sqlite_schema and the like), an
/// untrusted schema (views and triggers call only innocuous functions: SQLite's advice) and
/// no comments in SQL (SQLite 3.49+).
pub fn strict_sql(conn: &Connection) {
    use rusqlite::config::DbConfig;
    conn.execute_batch("PRAGMA trusted_schema = OFF").unwrap();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_COMMENTS, false).unwrap();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false).unwrap();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false).unwrap();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).unwrap();
}

/// Pragmas some apps set that change how SQLite works but not what a query answers: a cache
/// of one page (a transaction's pages spill), legacy ALTER TABLE (a rename rewrites no
/// trigger), case-sensitive LIKE, no automatic indexes, temporary tables in memory.
pub fn other_pragmas(conn: &Connection) {
    conn.execute_batch(
        "PRAGMA cache_size = 1; PRAGMA legacy_alter_table = ON; PRAGMA case_sensitive_like = ON; \
         PRAGMA automatic_index = OFF; PRAGMA temp_store = MEMORY;",
    )
    .unwrap();
}

/// Runs `sql`, which holds comments, on `c` even where CRR_STRICT turned them off (an app's
/// other connection made the schema, say); the setting is as it was after.
pub fn execute_with_comments(c: &Connection, sql: &str) {
    use rusqlite::config::DbConfig;
    let was = c.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_COMMENTS).unwrap();
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_COMMENTS, true).unwrap();
    c.execute_batch(sql).unwrap();
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_COMMENTS, was).unwrap();
}

/// Restores `from`'s main database into `to`'s through the backup API (into a live
/// connection, as an app restores a backup).
pub fn restore(from: &Connection, to: &mut Connection) {
    rusqlite::backup::Backup::new(from, to).unwrap().run_to_completion(100, std::time::Duration::ZERO, None).unwrap();
}

pub fn mem() -> Connection {
    open(":memory:")
}

/// A fresh temporary directory for database files.
/// The path of database file `name` in `dir`, with no file (nor -wal, -shm or -journal) left
/// from a previous use.
pub fn fresh_file(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name).to_str().unwrap().to_owned();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    path
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crr-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An app's own commit hook (SQLite keeps one per connection), for the tests that check the
/// extension lives beside one: it counts the commits it sees and vetoes (turns into a
/// rollback) the first `vetoes` of them.
#[derive(Default)]
pub struct AppHook {
    pub calls: u32,
    pub vetoes: u32,
}

unsafe extern "C" fn app_hook(p: *mut std::ffi::c_void) -> std::ffi::c_int {
    let Some(h) = (p as *mut AppHook).as_mut() else { return 0 };
    h.calls += 1;
    if h.vetoes > 0 {
        h.vetoes -= 1;
        return 1;
    }
    0
}

/// Installs an app commit hook on `c` that records into `hook` (none: it only lets commits go
/// on).
///
/// # Safety
/// `hook` must stay where it is until `clear_app_hook(c)` or until `c` closes.
pub unsafe fn set_app_hook(c: &Connection, hook: Option<&mut AppHook>) {
    let arg = hook.map_or(std::ptr::null_mut(), |h| h as *mut AppHook as *mut std::ffi::c_void);
    rusqlite::ffi::sqlite3_commit_hook(c.handle(), Some(app_hook), arg);
}

/// How `Stop` stops a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// A progress handler that gives up: that statement, and each step after, fails with
    /// SQLITE_INTERRUPT.
    GivesUp,
    /// sqlite3_interrupt called from another thread: every statement fails until the one
    /// running ends, new ones at their prepare.
    Interrupt,
    /// A progress handler that gives up once (a time slice spent, say): the statements after
    /// the one stopped run.
    GivesUpOnce,
}

impl How {
    pub const ALL: [How; 3] = [How::GivesUp, How::Interrupt, How::GivesUpOnce];

    /// A random stop's way, from the draws the random tests made before `GivesUpOnce` (so a
    /// seed draws what it did): a third of the progress handlers give up once.
    pub fn from_draws(calls_interrupt: bool, at_step: i64) -> How {
        match (calls_interrupt, at_step % 3) {
            (true, _) => How::Interrupt,
            (false, 1) => How::GivesUpOnce,
            _ => How::GivesUp,
        }
    }
}

/// Stops a connection's statements once a number of virtual-machine steps have run, as `How`
/// says.
pub struct Stop {
    steps: i64,
    left: i64,
    how: How,
    db: *mut rusqlite::ffi::sqlite3,
}

unsafe extern "C" fn stop_when_spent(p: *mut std::ffi::c_void) -> std::ffi::c_int {
    let stop = &mut *(p as *mut Stop);
    stop.left -= 1;
    if stop.left >= 0 {
        return 0;
    }
    if stop.how == How::Interrupt {
        if stop.left == -1 {
            rusqlite::ffi::sqlite3_interrupt(stop.db);
        }
        return 0;
    }
    if stop.how == How::GivesUpOnce && stop.left < -1 {
        return 0;
    }
    1
}

impl Stop {
    fn after(c: &Connection, steps: i64, how: How) -> Stop {
        // SAFETY: the handle is only passed back to SQLite while `c` is open.
        Stop { steps, left: steps, how, db: unsafe { c.handle() } }
    }

    /// The steps run since `install`.
    fn taken(&self) -> i64 {
        self.steps - self.left
    }

    /// Installs the handler on the connection `after` was given.
    ///
    /// # Safety
    /// `self` must stay where it is until `Stop::remove`.
    unsafe fn install(&mut self) {
        rusqlite::ffi::sqlite3_progress_handler(self.db, 1, Some(stop_when_spent), self as *mut Stop as *mut std::ffi::c_void);
    }

    fn remove(&self) {
        // SAFETY: removing a handler takes no pointer; the connection is still open.
        unsafe { rusqlite::ffi::sqlite3_progress_handler(self.db, 0, None, std::ptr::null_mut()) };
    }

    /// Runs `f` (on `c`) and counts its steps; nothing is stopped.
    pub fn count<T>(c: &Connection, f: impl FnOnce() -> T) -> (T, i64) {
        let mut count = Stop::after(c, i64::MAX, How::GivesUp);
        // SAFETY: `count` outlives the handler, removed before it goes.
        unsafe { count.install() };
        let r = f();
        count.remove();
        (r, count.taken())
    }

    /// Runs `f` (on `c`), stopped once `at_step` steps have run.
    pub fn at<T>(c: &Connection, at_step: i64, how: How, f: impl FnOnce() -> T) -> T {
        let mut stop = Stop::after(c, at_step, how);
        // SAFETY: `stop` outlives the handler, removed before it goes.
        unsafe { stop.install() };
        let r = f();
        stop.remove();
        r
    }
}

/// Another connection's work run from inside a call on this one (`meddle_at`).
struct Meddle<'a> {
    left: i64,
    meddle: &'a mut dyn FnMut(),
}

unsafe extern "C" fn meddle_when_due(p: *mut std::ffi::c_void) -> std::ffi::c_int {
    let m = &mut *(p as *mut Meddle);
    m.left -= 1;
    if m.left == 0 {
        (m.meddle)();
    }
    0
}

/// Runs `f` (on `c`) and, once `at_step` of its steps have run, `meddle` (which must not
/// panic), from a progress handler: what another connection does at that moment of `f`. The
/// other connection must have no busy timeout (`c`'s statement waits for it). Whether
/// `meddle` ran (no: `f` took fewer steps).
pub fn meddle_at<T>(c: &Connection, at_step: i64, meddle: &mut dyn FnMut(), f: impl FnOnce() -> T) -> (T, bool) {
    let mut m = Meddle { left: at_step, meddle };
    // SAFETY (test): `m` outlives the handler, removed before it goes; the handle is `c`'s.
    unsafe { rusqlite::ffi::sqlite3_progress_handler(c.handle(), 1, Some(meddle_when_due), &mut m as *mut Meddle as *mut std::ffi::c_void) };
    let r = f();
    // SAFETY: removing a handler takes no pointer.
    unsafe { rusqlite::ffi::sqlite3_progress_handler(c.handle(), 0, None, std::ptr::null_mut()) };
    (r, m.left <= 0)
}

unsafe extern "C" fn app_rollback_hook(p: *mut std::ffi::c_void) {
    if let Some(calls) = (p as *mut u32).as_mut() {
        *calls += 1;
    }
}

/// Installs an app rollback hook on `c` that counts its calls into `calls` (none: it only
/// runs).
///
/// # Safety
/// `calls` must outlive every rollback of `c` until the hook is replaced.
pub unsafe fn set_app_rollback_hook(c: &Connection, calls: Option<&mut u32>) {
    let arg = calls.map_or(std::ptr::null_mut(), |n| n as *mut u32 as *mut std::ffi::c_void);
    rusqlite::ffi::sqlite3_rollback_hook(c.handle(), Some(app_rollback_hook), arg);
}

pub fn clear_app_rollback_hook(c: &Connection) {
    // SAFETY: removing the hook leaves nothing that points anywhere.
    unsafe { rusqlite::ffi::sqlite3_rollback_hook(c.handle(), None, std::ptr::null_mut()) };
}

/// With an app rollback hook on `a` (`b`: another connection to the same file), writes rows
/// `from..from + 9` of CRR `table` (an integer key `id`, a column `a`): `a` commits one, rolls
/// back two, `b` commits two, `a` commits one, rolls back two and commits one. Checks that the
/// hook ran at both rollbacks and that no rolled-back row is left, and returns, for the five
/// committed rows, their db_version (counted from the one before the first) and their first
/// seq. A rollback the extension did not hear of would leave the next transaction on the
/// rolled-back one's db_version and seqs (and a db_version another connection takes too).
pub fn around_rollbacks(a: &Connection, b: &Connection, table: &str, from: i64) -> Vec<(i64, i64)> {
    let mut calls = 0u32;
    // SAFETY: `calls` outlives every rollback of `a`; the hook is removed before it goes.
    unsafe { set_app_rollback_hook(a, Some(&mut calls)) };
    let base: i64 = a.query_row("SELECT crsql_db_version()", [], |r| r.get(0)).unwrap();
    let insert = |c: &Connection, id: i64| c.execute(&format!("INSERT INTO {table}(id, a) VALUES (?1, 'x')"), [from + id]).unwrap();
    let rolled_back = |ids: [i64; 2]| {
        let [x, y] = ids.map(|i| from + i);
        a.execute_batch(&format!("BEGIN; INSERT INTO {table}(id, a) VALUES ({x}, 'gone'); INSERT INTO {table}(id, a) VALUES ({y}, 'gone'); ROLLBACK;")).unwrap()
    };
    insert(a, 0);
    rolled_back([1, 2]);
    insert(b, 3);
    insert(b, 4);
    insert(a, 5);
    rolled_back([6, 7]);
    insert(a, 8);
    clear_app_rollback_hook(a);
    assert_eq!(calls, 2, "the app's rollback hook ran at both rollbacks");
    let gone: i64 = a.query_row(&format!("SELECT count(*) FROM {table} WHERE a = 'gone'"), [], |r| r.get(0)).unwrap();
    assert_eq!(gone, 0);
    [0, 3, 4, 5, 8]
        .into_iter()
        .map(|id| {
            let sql = "SELECT count(DISTINCT db_version), min(db_version), min(seq) FROM crsql_changes WHERE pk = crsql_pack_columns(?1)";
            let (n, dbv, seq): (i64, i64, i64) = a.query_row(sql, [from + id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
            assert_eq!(n, 1, "row {} has one db_version", from + id);
            (dbv - base, seq)
        })
        .collect()
}

pub fn clear_app_hook(c: &Connection) {
    // SAFETY: removing the hook leaves nothing that points anywhere.
    unsafe { rusqlite::ffi::sqlite3_commit_hook(c.handle(), None, std::ptr::null_mut()) };
}

/// One row of crsql_changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: String,
    pub pk: Vec<u8>,
    pub cid: String,
    pub val: SqlValue,
    pub col_version: i64,
    pub db_version: i64,
    pub site_id: Vec<u8>,
    pub cl: i64,
    pub seq: i64,
}

pub fn changes_where(conn: &Connection, clause: &str) -> Vec<Change> {
    changes_where_with(conn, clause, &[])
}

/// The changes `clause` selects, with `args` bound to its parameters.
pub fn changes_where_with(conn: &Connection, clause: &str, args: &[i64]) -> Vec<Change> {
    try_changes_where_with(conn, clause, args).unwrap()
}

/// Every change, or the error that stopped the read (a CRR changed outside a bracket).
pub fn try_changes(conn: &Connection) -> rusqlite::Result<Vec<Change>> {
    try_changes_where_with(conn, "", &[])
}

fn try_changes_where_with(conn: &Connection, clause: &str, args: &[i64]) -> rusqlite::Result<Vec<Change>> {
    try_changes_from(conn, &format!("SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes {clause}"), args)
}

/// The changes a query of crsql_changes' nine columns, in its order, returns (from a table a
/// transport staged them in, say).
pub fn changes_from(conn: &Connection, sql: &str) -> Vec<Change> {
    try_changes_from(conn, sql, &[]).unwrap()
}

fn try_changes_from(conn: &Connection, sql: &str, args: &[i64]) -> rusqlite::Result<Vec<Change>> {
    let mut s = conn.prepare(sql)?;
    let changes = s.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(Change {
            table: r.get(0)?,
            pk: r.get(1)?,
            cid: r.get(2)?,
            val: r.get(3)?,
            col_version: r.get(4)?,
            db_version: r.get(5)?,
            site_id: r.get(6)?,
            cl: r.get(7)?,
            seq: r.get(8)?,
        })
    })?
    .collect();
    changes
}

pub fn changes(conn: &Connection) -> Vec<Change> {
    changes_where(conn, "")
}

/// Applies one change through INSERT INTO crsql_changes (in whatever transaction is open).
pub fn apply_one(conn: &Connection, c: &Change) -> rusqlite::Result<usize> {
    let mut s = conn.prepare_cached(
        "INSERT INTO crsql_changes (\"table\", pk, cid, val, col_version, db_version, site_id, cl, seq) VALUES (?,?,?,?,?,?,?,?,?)",
    )?;
    s.execute(rusqlite::params![c.table, c.pk, c.cid, c.val, c.col_version, c.db_version, c.site_id, c.cl, c.seq])
}

/// Loads the extension into `c` through sqlite3_load_extension itself: rusqlite's
/// load_extension reads the error message without checking for NULL, which SQLite leaves when
/// it cannot allocate the message (out of memory: tests/out_of_memory.rs, malloc_faults.rs).
pub fn load_extension_checked(c: &Connection) -> Result<(), String> {
    load_extension_from(c, &extension_path())
}

/// `load_extension_checked` of the library at `path` (a copy of it, say).
pub fn load_extension_from(c: &Connection, path: &std::path::Path) -> Result<(), String> {
    let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut message: *mut std::os::raw::c_char = std::ptr::null_mut();
    // SAFETY (test): loading our own extension into our own open connection; the message, if
    // any, is SQLite's to free.
    unsafe {
        let db = c.handle();
        rusqlite::ffi::sqlite3_enable_load_extension(db, 1);
        let rc = rusqlite::ffi::sqlite3_load_extension(db, path.as_ptr(), c"sqlite3_crr_init".as_ptr(), &mut message);
        rusqlite::ffi::sqlite3_enable_load_extension(db, 0);
        if rc == rusqlite::ffi::SQLITE_OK {
            return Ok(());
        }
        let text = if message.is_null() { "(no message)".into() } else { std::ffi::CStr::from_ptr(message).to_string_lossy().into_owned() };
        rusqlite::ffi::sqlite3_free(message.cast());
        Err(text)
    }
}

/// The tables the fault tests (out_of_memory.rs, malloc_faults.rs, io_faults.rs) work on: t a
/// CRR keyed by rowid, s a plain STRICT table with a CHECK on a default, for crsql_as_crr.
pub const FAULT_SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
                                CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT 0 CHECK (n >= 0)) STRICT;
                                SELECT crsql_as_crr('t');";

/// A failure injected once, at the n-th of some calls a test counts (SQLite's allocations in
/// malloc_faults.rs, its file reads, writes and syncs in io_faults.rs): the hook asks
/// `fails_now` at each call.
pub struct OnceFault {
    made: std::sync::atomic::AtomicI64,
    /// The call, counted from `made`, that fails; none while negative.
    fail_at: std::sync::atomic::AtomicI64,
    failed: std::sync::atomic::AtomicBool,
}

impl OnceFault {
    pub const fn new() -> OnceFault {
        OnceFault {
            made: std::sync::atomic::AtomicI64::new(0),
            fail_at: std::sync::atomic::AtomicI64::new(-1),
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Counts a call; true for the one that must fail.
    pub fn fails_now(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.made.fetch_add(1, SeqCst);
        if n == self.fail_at.load(SeqCst) {
            self.fail_at.store(-1, SeqCst);
            self.failed.store(true, SeqCst);
            return true;
        }
        false
    }

    /// Runs `f` and counts the calls in it.
    pub fn count<T>(&self, f: impl FnOnce() -> T) -> (T, i64) {
        use std::sync::atomic::Ordering::SeqCst;
        let start = self.made.load(SeqCst);
        let r = f();
        (r, self.made.load(SeqCst) - start)
    }

    /// Runs `f` with its call number `at` failing; and whether it came to that.
    pub fn failing_at<T>(&self, at: i64, f: impl FnOnce() -> T) -> (T, bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.failed.store(false, SeqCst);
        self.fail_at.store(self.made.load(SeqCst) + at, SeqCst);
        let r = f();
        self.fail_at.store(-1, SeqCst);
        (r, self.failed.load(SeqCst))
    }
}

/// Three replicas (`open_replica(i)`, with the extension loaded) take random local writes and
/// merge each other's changes, two steps in five with `fault` injected at a random call below
/// `calls` (the work then fails, is rolled back, and is not tried again, or it fails after it
/// was done, or it does not come to it): after every failure the replica's feed reads, and once
/// every replica has merged every other's changes without failures, tables and feeds are the
/// same everywhere (malloc_faults.rs, io_faults.rs).
pub fn replicas_converge_under_faults(seed: u64, fault: &OnceFault, calls: u64, open_replica: &dyn Fn(usize) -> Connection) {
    let mut r = Rng(seed);
    let reps: Vec<Connection> = (0..3)
        .map(|i| {
            let c = open_replica(i);
            c.execute_batch(FAULT_SCHEMA).unwrap();
            c.execute_batch(&format!("SELECT crsql_as_crr('s'); SELECT crr_set_wall_clock_for_testing({});", 1_000_000 + i as i64 * 1000)).unwrap();
            c
        })
        .collect();
    let feed_of = |c: &Connection| changes(c);
    for step in 0..60 {
        let i = r.below(3) as usize;
        let c = &reps[i];
        let ctx = format!("seed {seed}, step {step}, replica {i}");
        // Two steps in five fail, so that the replicas have changes to merge.
        let at = if r.chance(60) { i64::MAX / 2 } else { r.below(calls) as i64 };
        let result = if r.chance(50) {
            let id = r.below(8);
            let sql = match r.below(6) {
                0 => format!("DELETE FROM t WHERE id = {id}"),
                1 => format!("UPDATE t SET b = b + 1 WHERE id >= {id}"),
                2 => format!("INSERT OR REPLACE INTO s VALUES ({id}, {})", r.below(5)),
                3 => format!("DELETE FROM s WHERE id = {id}"),
                4 => format!("BEGIN; INSERT OR REPLACE INTO t VALUES ({id}, 'r{i}s{step}', {step}); UPDATE s SET n = n + 1 WHERE id = {id}; COMMIT;"),
                _ => format!("INSERT INTO t VALUES ({id}, 'r{i}s{step}', {step}) ON CONFLICT(id) DO UPDATE SET a = excluded.a"),
            };
            fault.failing_at(at, || c.execute_batch(&sql)).0
        } else {
            let from = feed_of(&reps[(i + 1 + r.below(2) as usize) % 3]);
            fault.failing_at(at, || if r.chance(50) { apply(c, &from) } else { merge_reading_before_commit(c, &from) }).0
        };
        if result.is_err() && !c.is_autocommit() {
            c.execute_batch("ROLLBACK").unwrap();
        }
        // The feed reads (no clock left naming what a rollback removed).
        c.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get::<_, i64>(0)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    }
    for _ in 0..2 {
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    apply(&reps[i], &feed_of(&reps[j])).unwrap();
                }
            }
        }
    }
    let portable = |c: &Connection| -> Rows {
        rows(c, "SELECT \"table\", pk, cid, val, col_version, site_id, cl FROM crsql_changes ORDER BY 1, 2, 3")
    };
    for c in &reps[1..] {
        assert_eq!([dump(c, "t"), dump(c, "s")], [dump(&reps[0], "t"), dump(&reps[0], "s")], "seed {seed}: tables differ");
        assert_eq!(portable(c), portable(&reps[0]), "seed {seed}: feeds differ");
    }
}

/// Rows of values, as `rows` reads them.
pub type Rows = Vec<Vec<SqlValue>>;

/// A named piece of work on a connection, for tests that run several the same way.
pub type Work<'a> = (&'a str, &'a dyn Fn(&rusqlite::Connection) -> rusqlite::Result<()>);

/// A named predicate, for tests that check a filter against a model of it.
pub type Check<N, T> = (N, Box<dyn Fn(T) -> bool>);

/// Every row of a query, as values.
pub fn rows(c: &Connection, sql: &str) -> Rows {
    try_rows(c, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `rows`, or the error that stopped the query.
pub fn try_rows(c: &Connection, sql: &str) -> rusqlite::Result<Rows> {
    let mut s = c.prepare(sql)?;
    let n = s.column_count();
    let r = s.query_map([], |r| (0..n).map(|i| r.get(i)).collect())?.collect();
    r
}

/// Copies `feed` into a new TEMP table `feed` of crsql_changes' columns, for a merge by
/// `INSERT INTO crsql_changes SELECT * FROM temp.feed`.
pub fn stage_feed(conn: &Connection, feed: &[Change]) {
    conn.execute_batch("CREATE TEMP TABLE feed AS SELECT * FROM crsql_changes WHERE 0").unwrap();
    for c in feed {
        conn.execute(
            "INSERT INTO temp.feed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rusqlite::params![c.table, c.pk, c.cid, c.val, c.col_version, c.db_version, c.site_id, c.cl, c.seq],
        )
        .unwrap();
    }
}

/// Merges `feed` change by change in one transaction that reads crsql_changes before its
/// COMMIT (a read writes what merges hold back first).
pub fn merge_reading_before_commit(conn: &Connection, feed: &[Change]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    for c in feed {
        apply_one(conn, c)?;
    }
    conn.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get::<_, i64>(0))?;
    conn.execute_batch("COMMIT")
}

/// A connection to `path` that refuses writes: opened read-only, or (`query_only`) with
/// `PRAGMA query_only = 1`, as reader pools open theirs; the extension not loaded yet.
pub fn refusing_writes(path: &std::path::Path, query_only: bool) -> Connection {
    if !query_only {
        return Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    }
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA query_only = 1").unwrap();
    c
}

/// Applies changes through INSERT INTO crsql_changes, in one transaction.
pub fn apply(conn: &Connection, cs: &[Change]) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    for c in cs {
        apply_one(&tx, c)?;
    }
    tx.commit()
}

/// Every row of a table as text, ordered, for comparing replicas.
pub fn dump(conn: &Connection, table: &str) -> Vec<Vec<SqlValue>> {
    let quoted = table.replace('"', "\"\"");
    // Counted by a statement that runs: a prepared statement's column count can come from a
    // schema another connection has changed since (SQLite re-prepares at the first step).
    let n = conn.query_row("SELECT count(*) FROM pragma_table_xinfo(?1) WHERE hidden != 1", [table], |r| r.get::<_, i64>(0)).unwrap() as usize;
    let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut s = conn.prepare(&format!("SELECT * FROM \"{quoted}\" ORDER BY {}", order.join(", "))).unwrap();
    s.query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect::<rusqlite::Result<Vec<_>>>())
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

pub fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn err(conn: &Connection, sql: &str) -> String {
    match conn.execute_batch(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => e.to_string(),
    }
}

/// Runs a seeded randomized test: `{var}_SEED=n` replays seed n verbosely, else
/// `{var}_SEEDS` seeds (default `default`) from `{var}_FROM` (default 0) run quietly and the
/// first failure names its seed and how to replay it (`replay`, with `{seed}` in it).
pub fn run_seeds(var: &str, default: u64, replay: &str, run_seed: impl Fn(u64, bool) + std::panic::RefUnwindSafe) -> u64 {
    if let Ok(seed) = std::env::var(format!("{var}_SEED")) {
        run_seed(seed.parse().unwrap_or_else(|_| panic!("{var}_SEED must be a number")), true);
        return 1;
    }
    let number = |name: &str| std::env::var(format!("{var}_{name}")).ok().and_then(|s| s.parse::<u64>().ok());
    let seeds = number("SEEDS").unwrap_or(default);
    // {var}_FROM moves the run to seeds not tried before (long runs of the same seeds find nothing new).
    let from = number("FROM").unwrap_or(0);
    for seed in from..from + seeds {
        if let Err(e) = std::panic::catch_unwind(|| run_seed(seed, false)) {
            eprintln!("failed at seed {seed}; replay with: {}", replay.replace("{seed}", &seed.to_string()));
            std::panic::resume_unwind(e);
        }
    }
    seeds
}

/// splitmix64: a tiny deterministic generator, so a seed replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// SQLite's ORDER BY order of two values (BINARY collation; no NaN).
pub fn cmp_sql_values(a: &SqlValue, b: &SqlValue) -> Ordering {
    fn rank(v: &SqlValue) -> u8 {
        match v {
            SqlValue::Null => 0,
            SqlValue::Integer(_) | SqlValue::Real(_) => 1,
            SqlValue::Text(_) => 2,
            SqlValue::Blob(_) => 3,
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (SqlValue::Integer(x), SqlValue::Integer(y)) => x.cmp(y),
        (SqlValue::Integer(x), SqlValue::Real(y)) => (*x as f64).partial_cmp(y).unwrap(),
        (SqlValue::Real(x), SqlValue::Integer(y)) => x.partial_cmp(&(*y as f64)).unwrap(),
        (SqlValue::Real(x), SqlValue::Real(y)) => x.partial_cmp(y).unwrap(),
        (SqlValue::Text(x), SqlValue::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (SqlValue::Blob(x), SqlValue::Blob(y)) => x.cmp(y),
        _ => Ordering::Equal,
    })
}

/// What one write of a cell stored: (table, pk, cid, cl, col_version, site_id) -> val.
pub type Written = std::collections::BTreeMap<(String, Vec<u8>, String, i64, i64, Vec<u8>), SqlValue>;

/// Invariant: a cell holds one value under one version, on every replica and at every read (a
/// write gets a version of its own: HLC ticks never repeat on a replica, lamport versions count
/// each write). A value that changed under a version it did not write is a write the triggers
/// missed, which the convergence check at the end cannot see when the value tie-break then
/// settles the replicas on one value. Feeds read outside transactions only: inside one, a
/// transaction's writes share its tick, so a cell written twice shows two values under one.
pub fn check_written(written: &mut Written, feed: &[Change], ctx: &str) {
    for c in feed {
        let key = (c.table.clone(), c.pk.clone(), c.cid.clone(), c.cl, c.col_version, c.site_id.clone());
        match written.get(&key) {
            Some(v) => assert_eq!(v, &c.val, "{ctx}: {c:?} holds another value than its version wrote: a write went unrecorded"),
            None => {
                written.insert(key, c.val.clone());
            }
        }
    }
}
