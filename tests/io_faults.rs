//! SQLite's file I/O failing once, at each read, write or sync in turn (a VFS in front of the
//! default one that returns SQLITE_IOERR_READ, _WRITE or _FSYNC there): merges, local writes,
//! crsql_as_crr and crsql_commit_alter on a database file in WAL and in rollback-journal mode.
//! What succeeds must be exactly what it is without the failure; what fails must leave the
//! database as it was (or, where SQLite reports the failure after the work, done) and no
//! transaction open once the app rolled back, on the same connection, and the same work must
//! then go through; reopened without faults, the file passes integrity_check and holds that.
//! Then three replicas take random writes and merges, two in five with an I/O call failing,
//! and must converge (CRR_IO_SEEDS runs; make test: 10). CRR_IO_STRIDE=1 tries every I/O call
//! of the cases (make test about 30 a case).

mod common;
use common::*;
use rusqlite::ffi;
use rusqlite::{Connection, OpenFlags};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::OnceLock;

/// Where the failure is injected (see common::OnceFault).
static FAULT: OnceFault = OnceFault::new();

/// A file of the faulty VFS: SQLite's view of it, and the default VFS's file it wraps.
#[repr(C)]
struct Faulty {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// The allocation `real` lives in (u64s, for its alignment).
    words: usize,
}

/// The default VFS (as an address: the struct holds raw pointers).
static REAL_VFS: OnceLock<usize> = OnceLock::new();
static METHODS: OnceLock<ffi::sqlite3_io_methods> = OnceLock::new();

unsafe fn real(p: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let f = (*(p as *mut Faulty)).real;
    (f, &*(*f).pMethods)
}

unsafe extern "C" fn x_close(p: *mut ffi::sqlite3_file) -> c_int {
    let (f, m) = real(p);
    let rc = (m.xClose.unwrap())(f);
    let words = (*(p as *mut Faulty)).words;
    drop(Vec::from_raw_parts(f as *mut u64, words, words));
    rc
}
unsafe extern "C" fn x_read(p: *mut ffi::sqlite3_file, buf: *mut c_void, n: c_int, off: i64) -> c_int {
    if FAULT.fails_now() {
        return ffi::SQLITE_IOERR_READ;
    }
    let (f, m) = real(p);
    (m.xRead.unwrap())(f, buf, n, off)
}
unsafe extern "C" fn x_write(p: *mut ffi::sqlite3_file, buf: *const c_void, n: c_int, off: i64) -> c_int {
    if FAULT.fails_now() {
        return ffi::SQLITE_IOERR_WRITE;
    }
    let (f, m) = real(p);
    (m.xWrite.unwrap())(f, buf, n, off)
}
unsafe extern "C" fn x_sync(p: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    if FAULT.fails_now() {
        return ffi::SQLITE_IOERR_FSYNC;
    }
    let (f, m) = real(p);
    (m.xSync.unwrap())(f, flags)
}
unsafe extern "C" fn x_truncate(p: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let (f, m) = real(p);
    (m.xTruncate.unwrap())(f, size)
}
unsafe extern "C" fn x_file_size(p: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let (f, m) = real(p);
    (m.xFileSize.unwrap())(f, size)
}
unsafe extern "C" fn x_lock(p: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (f, m) = real(p);
    (m.xLock.unwrap())(f, level)
}
unsafe extern "C" fn x_unlock(p: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (f, m) = real(p);
    (m.xUnlock.unwrap())(f, level)
}
unsafe extern "C" fn x_check_reserved_lock(p: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (f, m) = real(p);
    (m.xCheckReservedLock.unwrap())(f, out)
}
unsafe extern "C" fn x_file_control(p: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    let (f, m) = real(p);
    (m.xFileControl.unwrap())(f, op, arg)
}
unsafe extern "C" fn x_sector_size(p: *mut ffi::sqlite3_file) -> c_int {
    let (f, m) = real(p);
    (m.xSectorSize.unwrap())(f)
}
unsafe extern "C" fn x_device_characteristics(p: *mut ffi::sqlite3_file) -> c_int {
    let (f, m) = real(p);
    (m.xDeviceCharacteristics.unwrap())(f)
}
unsafe extern "C" fn x_shm_map(p: *mut ffi::sqlite3_file, page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int {
    let (f, m) = real(p);
    (m.xShmMap.unwrap())(f, page, size, extend, out)
}
unsafe extern "C" fn x_shm_lock(p: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    let (f, m) = real(p);
    (m.xShmLock.unwrap())(f, offset, n, flags)
}
unsafe extern "C" fn x_shm_barrier(p: *mut ffi::sqlite3_file) {
    let (f, m) = real(p);
    (m.xShmBarrier.unwrap())(f)
}
unsafe extern "C" fn x_shm_unmap(p: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let (f, m) = real(p);
    (m.xShmUnmap.unwrap())(f, delete)
}
unsafe extern "C" fn x_fetch(p: *mut ffi::sqlite3_file, off: i64, n: c_int, out: *mut *mut c_void) -> c_int {
    let (f, m) = real(p);
    (m.xFetch.unwrap())(f, off, n, out)
}
unsafe extern "C" fn x_unfetch(p: *mut ffi::sqlite3_file, off: i64, page: *mut c_void) -> c_int {
    let (f, m) = real(p);
    (m.xUnfetch.unwrap())(f, off, page)
}

unsafe extern "C" fn x_open(_vfs: *mut ffi::sqlite3_vfs, name: *const c_char, p: *mut ffi::sqlite3_file, flags: c_int, out_flags: *mut c_int) -> c_int {
    let real_vfs = *REAL_VFS.get().unwrap() as *mut ffi::sqlite3_vfs;
    let words = ((*real_vfs).szOsFile as usize).div_ceil(8);
    let mut mem = std::mem::ManuallyDrop::new(vec![0u64; words]);
    let f = mem.as_mut_ptr() as *mut ffi::sqlite3_file;
    let rc = ((*real_vfs).xOpen.unwrap())(real_vfs, name, f, flags, out_flags);
    let faulty = p as *mut Faulty;
    if rc != ffi::SQLITE_OK || (*f).pMethods.is_null() {
        (*faulty).base.pMethods = std::ptr::null();
        drop(std::mem::ManuallyDrop::into_inner(mem));
        return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
    }
    (*faulty).real = f;
    (*faulty).words = words;
    (*faulty).base.pMethods = METHODS.get().unwrap();
    rc
}

/// Registers the VFS "faulty": the default one, its files wrapped.
fn install() {
    METHODS.get_or_init(|| ffi::sqlite3_io_methods {
        iVersion: 3,
        xClose: Some(x_close),
        xRead: Some(x_read),
        xWrite: Some(x_write),
        xTruncate: Some(x_truncate),
        xSync: Some(x_sync),
        xFileSize: Some(x_file_size),
        xLock: Some(x_lock),
        xUnlock: Some(x_unlock),
        xCheckReservedLock: Some(x_check_reserved_lock),
        xFileControl: Some(x_file_control),
        xSectorSize: Some(x_sector_size),
        xDeviceCharacteristics: Some(x_device_characteristics),
        xShmMap: Some(x_shm_map),
        xShmLock: Some(x_shm_lock),
        xShmBarrier: Some(x_shm_barrier),
        xShmUnmap: Some(x_shm_unmap),
        xFetch: Some(x_fetch),
        xUnfetch: Some(x_unfetch),
    });
    // SAFETY: the default VFS lives as long as the process; ours is leaked, and registered once.
    unsafe {
        ffi::sqlite3_initialize();
        let real_vfs = ffi::sqlite3_vfs_find(std::ptr::null());
        assert!(!real_vfs.is_null());
        REAL_VFS.set(real_vfs as usize).unwrap();
        let mut vfs: ffi::sqlite3_vfs = std::ptr::read(real_vfs);
        vfs.szOsFile = std::mem::size_of::<Faulty>() as c_int;
        vfs.zName = c"faulty".as_ptr();
        vfs.pNext = std::ptr::null_mut();
        vfs.xOpen = Some(x_open);
        assert_eq!(ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0), ffi::SQLITE_OK);
    }
}



/// Tables, feed (site ids and local db_versions aside), db_version, schema but trigger texts,
/// clock rows.
fn state(c: &Connection) -> (Rows, Rows, Rows, Rows, Rows) {
    (
        [dump(c, "t"), dump(c, "s")].concat(),
        rows(c, "SELECT \"table\", pk, cid, val, col_version, cl FROM crsql_changes ORDER BY 1, 2, 3"),
        rows(c, "SELECT crsql_db_version()"),
        rows(c, "SELECT type, name, CASE type WHEN 'trigger' THEN tbl_name ELSE sql END FROM sqlite_schema ORDER BY name"),
        rows(c, "SELECT pk, cl, dbv, clock FROM crr_clock_1 ORDER BY pk"),
    )
}

#[test]
fn work_whose_read_write_or_sync_fails_once_is_whole_or_undone() {
    install();
    let dir = tmpdir("io-faults");
    let src = mem();
    src.execute_batch(FAULT_SCHEMA).unwrap();
    src.execute_batch(
        "SELECT crr_set_wall_clock_for_testing(2000000);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, printf('%.*c', 50, 'x'), i FROM n;
         UPDATE t SET a = 'b2' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0;",
    )
    .unwrap();
    let feed = changes(&src);
    let stride = |total: i64| std::env::var("CRR_IO_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or((total / 30).max(1));
    type Work<'a> = (&'a str, &'a str, Box<dyn Fn(&Connection) -> rusqlite::Result<()> + 'a>);
    let cases: Vec<Work> = vec![
        ("a merge in one statement", "", Box::new(|c: &Connection| c.execute_batch("INSERT INTO crsql_changes SELECT * FROM temp.feed"))),
        ("a merge change by change", "", Box::new(|c: &Connection| merge_reading_before_commit(c, &feed))),
        (
            "local writes",
            "",
            Box::new(|c: &Connection| c.execute_batch("BEGIN; INSERT INTO t VALUES (1000, 'new', 7); UPDATE t SET a = 'upd' WHERE id < 40; DELETE FROM t WHERE id = 5; COMMIT;")),
        ),
        ("crsql_as_crr of a table with rows", "INSERT INTO s SELECT id, b FROM t;", Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('s')"))),
        (
            "crsql_commit_alter",
            "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT DEFAULT 'x'; UPDATE t SET d = 'y' WHERE id % 5 = 0;",
            Box::new(|c: &Connection| c.execute_batch("SELECT crsql_commit_alter('t')")),
        ),
        // The next start after a rebuild outside a bracket (lost rows become deletes).
        (
            "crsql_as_crr after a rebuild outside a bracket",
            "CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); INSERT INTO t_new SELECT * FROM t WHERE id % 4 != 0;
             DROP TABLE t; ALTER TABLE t_new RENAME TO t;",
            Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('t')")),
        ),
        // The registry tidied (a dropped CRR's clock dropped, a renamed one's name recorded),
        // then a new CRR of the renamed one's name.
        (
            "crsql_as_crr where a CRR was renamed and another dropped",
            "ALTER TABLE t RENAME TO t_old; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); INSERT INTO t SELECT id, a, b FROM t_old WHERE id < 60;
             CREATE TABLE v(id INTEGER PRIMARY KEY NOT NULL, x); SELECT crsql_as_crr('v'); INSERT INTO v SELECT id, b FROM t; DROP TABLE v;",
            Box::new(|c: &Connection| c.execute_batch("SELECT crsql_as_crr('t')")),
        ),
    ];
    let mut n = 0;
    for journal in ["WAL", "DELETE"] {
        for (what, setup, work) in &cases {
            let mut fresh = || {
                n += 1;
                let path = dir.join(format!("db{n}.sqlite3"));
                let c = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), "faulty").unwrap();
                // (No syncs while it is set up: they take most of the test's time.)
                c.execute_batch(&format!("PRAGMA journal_mode = {journal}; PRAGMA cache_size = 10; PRAGMA synchronous = OFF;")).unwrap();
                load(&c);
                c.execute_batch(FAULT_SCHEMA).unwrap();
                c.execute_batch(
                    "SELECT crr_set_wall_clock_for_testing(1000000);
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO t SELECT i * 3, 'own', i FROM n;",
                )
                .unwrap();
                stage_feed(&c, &feed);
                c.execute_batch(setup).unwrap();
                c.execute_batch("PRAGMA synchronous = FULL").unwrap();
                (c, path)
            };
            let (done, total) = {
                let (c, _) = fresh();
                let (r, total) = FAULT.count(|| work(&c));
                r.unwrap();
                (state(&c), total)
            };
            let mut failed = 0;
            for at in (0..total).step_by(stride(total) as usize) {
                let (c, path) = fresh();
                let before = state(&c);
                let (r, came) = FAULT.failing_at(at, || work(&c));
                let ctx = format!("{what} ({journal}), I/O call {at} of {total} failing (it came: {came})");
                let now = match r {
                    Ok(()) => {
                        assert!(state(&c) == done, "{ctx}: succeeded, but not as without the failure");
                        done.clone()
                    }
                    Err(e) => {
                        failed += 1;
                        if !c.is_autocommit() {
                            let _ = c.execute_batch("ROLLBACK");
                        }
                        assert!(c.is_autocommit(), "{ctx}: {e}: the transaction stays open after ROLLBACK");
                        let now = state(&c);
                        assert!(now == before || now == done, "{ctx}: {e}: half done");
                        if now == before {
                            work(&c).unwrap_or_else(|e| panic!("{ctx}: the same work again: {e}"));
                            assert!(state(&c) == done, "{ctx}: the same work again differs");
                        }
                        state(&c)
                    }
                };
                drop(c);
                let c = open(path.to_str().unwrap());
                assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok", "{ctx}");
                assert!(state(&c) == now, "{ctx}: reopened, the file holds something else");
                drop(c);
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.to_str().unwrap()));
                }
            }
            assert!(failed > 0, "{what} ({journal}): no I/O failure made it fail");
        }
    }
    // Random runs: three replicas, files of the faulty VFS, WAL on odd seeds.
    let seeds = std::env::var("CRR_IO_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    for seed in 0..seeds {
        let journal = if seed % 2 == 1 { "WAL" } else { "DELETE" };
        let open_replica = |i: usize| {
            let path = dir.join(format!("seed{seed}-replica{i}.sqlite3"));
            let c = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), "faulty").unwrap();
            c.execute_batch(&format!("PRAGMA journal_mode = {journal}; PRAGMA cache_size = 10;")).unwrap();
            load(&c);
            c
        };
        // (A write or a merge takes some to some tens of I/O calls.)
        replicas_converge_under_faults(seed, &FAULT, 20, &open_replica);
    }
}
