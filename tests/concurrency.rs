//! Many connections and processes on one WAL database; read-only connections; crash safety
//! (SIGKILL in the middle of a large local transaction and of a large merge).
//!
//! Worker processes are this test binary run again with `CRR_WORKER` set, so the binary has its
//! own `main` (harness = false in Cargo.toml): it runs the tests below, or acts as a worker.

mod common;
use common::*;
use rusqlite::{Connection, OpenFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY NOT NULL, who INTEGER, n INTEGER, pad TEXT);";

fn wal(path: &str) -> Connection {
    let c = open(path);
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").unwrap();
    c
}

fn setup(path: &str) {
    let c = wal(path);
    c.execute_batch(&format!("{SCHEMA} SELECT crsql_as_crr('t');")).unwrap();
}

/// Whether writer transaction `i` is rolled back: every 7th, and every 11th from the 5th, whose
/// INSERT is first stopped at some step (each of `How`'s ways in turn).
fn rolled_back(i: i64) -> bool {
    i % 7 == 6 || i % 11 == 5
}

/// Writer `who`: `n` transactions, some rolled back (`rolled_back`). Row id = who * 100000 + i.
fn write_load(path: &str, who: i64, n: i64) {
    let c = wal(path);
    for i in 0..n {
        let id = who * 100_000 + i;
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        if i % 11 == 5 {
            // Stopped (or, past its last step, not), then rolled back, by SQLite (an
            // interrupted write) or by the app: the next transactions must not notice.
            let how = How::ALL[(i / 11) as usize % 3];
            let _ = Stop::at(&c, (i * 37) % 60, how, || c.execute("INSERT INTO t(id, who, n) VALUES (?1, ?2, ?3)", [id, who, i]));
            if !c.is_autocommit() {
                c.execute_batch("ROLLBACK").unwrap();
            }
            continue;
        }
        c.execute("INSERT INTO t(id, who, n) VALUES (?1, ?2, ?3)", [id, who, i]).unwrap();
        if i > 0 {
            c.execute("UPDATE t SET n = n + 1000 WHERE id = ?1", [id - 1]).unwrap();
        }
        if i % 7 == 6 {
            c.execute_batch("ROLLBACK").unwrap();
        } else {
            c.execute_batch("COMMIT").unwrap();
        }
    }
}

/// A sync worker: merges `n` rows of a peer (ids from MERGED_FROM, `who` 90) in transactions
/// of 7 changes, every fifth first rolled back (its changes then merged again), while the
/// writers write.
fn merge_load(path: &str, n: i64) {
    let src = open(":memory:");
    src.execute_batch(&format!("{SCHEMA} SELECT crsql_as_crr('t');")).unwrap();
    for i in 0..n {
        src.execute("INSERT INTO t(id, who, n) VALUES (?1, 90, ?2)", [MERGED_FROM + i, i]).unwrap();
    }
    let batch = changes(&src);
    let c = wal(path);
    for (k, chunk) in batch.chunks(7).enumerate() {
        for rolled_back in [true, false] {
            if rolled_back && k % 5 != 4 {
                continue;
            }
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            for x in chunk {
                apply_one(&c, x).unwrap();
            }
            c.execute_batch(if rolled_back { "ROLLBACK" } else { "COMMIT" }).unwrap();
        }
    }
}

const MERGED_FROM: i64 = 9_000_000;

/// The peer's rows `merge_load` merged are all there, and their changes too.
fn check_merged(path: &str, n: i64) {
    let c = wal(path);
    assert_eq!(one::<i64>(&c, &format!("SELECT count(*) FROM t WHERE id >= {MERGED_FROM} AND who = 90")), n);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE cid = 'who' AND val = 90"), n);
}

/// Checks what the writers left: every committed change once, none of the rolled-back ones,
/// one db_version per transaction, increasing in each writer's commit order.
fn check_writers(path: &str, writers: i64, n: i64) {
    let c = wal(path);
    let all = changes(&c);
    let mut seen = BTreeSet::new();
    for x in &all {
        assert!(seen.insert((x.pk.clone(), x.cid.clone())), "change listed twice: {x:?}");
    }
    for who in 0..writers {
        let mut last = 0;
        for i in 0..n {
            let pk: Vec<u8> = one(&c, &format!("SELECT crsql_pack_columns({})", who * 100_000 + i));
            let rows: Vec<&Change> = all.iter().filter(|x| x.pk == pk).collect();
            if rolled_back(i) {
                assert!(rows.is_empty(), "rolled-back insert {who}/{i} left changes");
                continue;
            }
            let first = rows.iter().map(|x| x.db_version).min().expect("committed row has changes");
            assert!(first > last, "writer {who}: db_version {first} of txn {i} not after {last}");
            last = first;
        }
    }
    // Distinct transactions never share a db_version: count writer transactions per version.
    let mut per_version: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for x in all.iter().filter(|x| x.cid == "who") {
        let id: i64 = c.query_row("SELECT cell FROM crsql_unpack_columns(?1)", [&x.pk], |r| r.get(0)).unwrap();
        per_version.entry(x.db_version).or_default().insert(id / 100_000);
    }
    assert!(per_version.values().all(|w| w.len() == 1), "two writers' transactions share a db_version");
}

/// A reader that remembers the highest db_version it saw never misses a change. `paged`: it
/// reads in keyset pages of 5 (README's form), so other processes commit between the pages of
/// one pass. (A kept scan that outlived their commits would only delay what they appended;
/// tests/pages.rs checks each page exactly.)
fn poll_until(path: &str, stop: &std::sync::atomic::AtomicBool, paged: bool) -> BTreeSet<(Vec<u8>, String, i64)> {
    let c = wal(path);
    let (mut since, mut seq) = (0i64, -1i64);
    let mut got = BTreeSet::new();
    loop {
        let done = stop.load(std::sync::atomic::Ordering::SeqCst);
        loop {
            let page = if paged {
                let mut page = changes_where_with(&c, "WHERE db_version = ?1 AND seq > ?2 ORDER BY seq LIMIT 5", &[since, seq]);
                if page.len() < 5 {
                    page.extend(changes_where_with(&c, "WHERE db_version > ?1 ORDER BY db_version, seq LIMIT ?2", &[since, 5 - page.len() as i64]));
                }
                page
            } else {
                changes_where(&c, &format!("WHERE db_version > {since} ORDER BY db_version, seq"))
            };
            let full = paged && page.len() == 5;
            for x in page {
                (since, seq) = (x.db_version, x.seq);
                got.insert((x.pk, x.cid, x.db_version));
            }
            if !full {
                break;
            }
        }
        if done {
            return got;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn final_set(path: &str) -> BTreeSet<(Vec<u8>, String, i64)> {
    changes(&wal(path)).into_iter().map(|x| (x.pk, x.cid, x.db_version)).collect()
}

fn several_connections_in_one_process() {
    let dir = tmpdir("threads");
    let path = dir.join("w.db").to_str().unwrap().to_owned();
    setup(&path);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (p, s) = (path.clone(), stop.clone());
        std::thread::spawn(move || poll_until(&p, &s, false))
    };
    let writers: Vec<_> = (0..4).map(|who| {
        let p = path.clone();
        std::thread::spawn(move || write_load(&p, who, 60))
    }).collect();
    let merger = {
        let p = path.clone();
        std::thread::spawn(move || merge_load(&p, 60))
    };
    for w in writers {
        w.join().unwrap();
    }
    merger.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let polled = reader.join().unwrap();
    check_writers(&path, 4, 60);
    check_merged(&path, 60);
    // Entries superseded later (an update moves a cell to a newer db_version) were seen at
    // their old version; what matters is that the final state of every cell was seen.
    let final_ = final_set(&path);
    assert!(final_.is_subset(&polled), "the polling reader missed {} changes", final_.difference(&polled).count());
}

fn several_processes() {
    let dir = tmpdir("procs");
    let path = dir.join("p.db").to_str().unwrap().to_owned();
    setup(&path);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|who| {
            // (The fourth is a sync worker that merges a peer's rows meanwhile.)
            let spec = if who == 3 { format!("merge-load\t{path}\t0\t40") } else { format!("write\t{path}\t{who}\t40") };
            Command::new(&exe).env("CRR_WORKER", spec).spawn().unwrap()
        })
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let polled = std::thread::scope(|s| {
        let h = s.spawn(|| poll_until(&path, &stop, true));
        for mut ch in children {
            assert!(ch.wait().unwrap().success(), "a writer process failed");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        h.join().unwrap()
    });
    check_writers(&path, 3, 40);
    check_merged(&path, 40);
    assert!(final_set(&path).is_subset(&polled));
}

fn crr_created_and_written_in_one_transaction_and_seen_by_a_connection_that_only_read() {
    let dir = tmpdir("sametx");
    let path = dir.join("s.db").to_str().unwrap().to_owned();
    let reader = wal(&path);
    assert_eq!(one::<i64>(&reader, "SELECT count(*) FROM crsql_changes"), 0);
    let w = wal(&path);
    w.execute_batch(&format!("BEGIN; {SCHEMA} SELECT crsql_as_crr('t'); INSERT INTO t(id, who) VALUES (1, 1); COMMIT;")).unwrap();
    assert_eq!(changes(&w).len(), 3);
    assert_eq!(one::<i64>(&reader, "SELECT count(*) FROM crsql_changes"), 3);
    reader.execute("UPDATE t SET who = 2 WHERE id = 1", []).unwrap();
    assert_eq!(changes_where(&w, "WHERE db_version = 2").len(), 1);
}

fn a_read_only_connection_loads_and_reads() {
    let dir = tmpdir("ro");
    let path = dir.join("r.db").to_str().unwrap().to_owned();
    setup(&path);
    wal(&path).execute("INSERT INTO t(id, who) VALUES (1, 1)", []).unwrap();
    let ro = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&ro);
    assert_eq!(changes(&ro).len(), 3);
    assert_eq!(one::<i64>(&ro, "SELECT crsql_db_version()"), 1);
    assert!(err(&ro, "INSERT INTO t(id) VALUES (2)").contains("readonly"));
    // A read-only connection to a database that never met the extension: no CRRs, no error.
    let plain = dir.join("plain.db");
    Connection::open(&plain).unwrap().execute_batch("CREATE TABLE x(a)").unwrap();
    let ro = Connection::open_with_flags(&plain, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&ro);
    assert_eq!(changes(&ro).len(), 0);
}

/// Kills a worker (SIGKILL) once its transaction has spilled into the WAL, then checks the
/// database opens, passes integrity_check, and holds all or none of the transaction.
fn crash_mid_transaction(mode: &str, rows: i64) -> (String, bool) {
    let dir = tmpdir(mode);
    let path = dir.join("c.db").to_str().unwrap().to_owned();
    setup(&path);
    if mode == "merge" {
        // The batch to merge comes from another replica.
        let src = dir.join("src.db").to_str().unwrap().to_owned();
        setup(&src);
        let s = wal(&src);
        s.execute_batch("BEGIN").unwrap();
        for i in 0..rows {
            s.execute("INSERT INTO t(id, who, pad) VALUES (?1, 1, printf('%.100c', 'x'))", [i]).unwrap();
        }
        s.execute_batch("COMMIT").unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .env("CRR_WORKER", format!("{mode}\t{path}\t0\t{rows}"))
        .spawn()
        .unwrap();
    let wal_file = format!("{path}-wal");
    let start = Instant::now();
    let mut killed = false;
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::fs::metadata(&wal_file).map(|m| m.len() > 2 << 20).unwrap_or(false) {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.wait();
    let c = wal(&path);
    let check: String = one(&c, "PRAGMA integrity_check");
    assert_eq!(check, "ok");
    let n: i64 = one(&c, "SELECT count(*) FROM t");
    let ch: i64 = one(&c, "SELECT count(*) FROM crsql_changes");
    assert!((n == 0 && ch == 0) || (n == rows && ch == rows * 3), "{mode}: partial transaction survived: {n} rows, {ch} changes");
    (path, killed)
}

fn sigkill_during_a_large_local_transaction_leaves_all_or_nothing() {
    let (path, killed) = crash_mid_transaction("local", 150_000);
    assert!(killed, "the worker finished before it could be killed; make the transaction larger");
    // The database keeps working: the same transaction can be run again.
    let c = wal(&path);
    c.execute("INSERT INTO t(id, who) VALUES (-1, 0)", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE pk = crsql_pack_columns(-1)").len(), 3);
}

fn sigkill_during_a_large_merge_leaves_all_or_nothing_and_resync_converges() {
    let rows = 40_000;
    let (path, killed) = crash_mid_transaction("merge", rows);
    assert!(killed, "the worker finished before it could be killed; make the batch larger");
    let c = wal(&path);
    let src = wal(&path.replace("c.db", "src.db"));
    apply(&c, &changes(&src)).unwrap();
    assert_eq!(dump(&c, "t"), dump(&src, "t"));
}

/// A process's first moments on a database: it opens the file (busy_timeout set before the
/// load, as an app that opens its connections in one place does), loads the extension (which
/// installs the internal schema on a fresh file, or upgrades an earlier build's), makes its
/// tables CRRs and writes a row in each, starting the moment `at` (Unix ms) says, so that
/// several processes do it at once. Before 2026-12-06 all but one failed, one way or another:
/// "UNIQUE constraint failed: crr_sites.ordinal" from the load (two installs), or SQLITE_BUSY
/// from crsql_as_crr (work that read, then found another connection had committed before its
/// first write).
fn start_at(path: &str, who: i64, at: i64) {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    while now() < at {
        std::hint::spin_loop();
    }
    load_extension_checked(&c).unwrap_or_else(|e| panic!("worker {who}: load: {e}"));
    c.execute_batch(START_SCHEMA).unwrap_or_else(|e| panic!("worker {who}: create: {e}"));
    for t in ["w", "w2"] {
        c.query_row(&format!("SELECT crsql_as_crr('{t}')"), [], |_| Ok(())).unwrap_or_else(|e| panic!("worker {who}: crsql_as_crr('{t}'): {e}"));
    }
    c.execute("INSERT INTO w(id, who) VALUES (?1, ?1)", [who]).unwrap_or_else(|e| panic!("worker {who}: insert: {e}"));
    c.execute("INSERT INTO w2(k, v) VALUES ('k' || ?1, ?1)", [who]).unwrap_or_else(|e| panic!("worker {who}: insert: {e}"));
}

const START_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY NOT NULL, who INTEGER); \
                            CREATE TABLE IF NOT EXISTS w2(k TEXT PRIMARY KEY NOT NULL, v INTEGER);";

/// Several processes meet a database at the same moment, as the workers of a server that
/// starts at once: a fresh file (WAL, and a rollback journal), and files an earlier build
/// wrote (the upgrade at load). All of them get through, and the database has one site id,
/// both new CRRs, every row tracked, and the earlier build's tables still tracked.
fn processes_meet_a_database_at_once() {
    let exe = std::env::current_exe().unwrap();
    let dir = tmpdir("fresh");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let rounds = [("WAL", None), ("DELETE", None), ("WAL", None), ("DELETE", Some("v1-fcb3fae")), ("WAL", Some("v4-2dc5e40"))];
    for (round, (mode, fixture)) in rounds.into_iter().enumerate() {
        let path = dir.join(format!("f{round}.db")).to_str().unwrap().to_owned();
        if let Some(f) = fixture {
            std::fs::copy(fixtures.join(format!("{f}.sqlite3")), &path).unwrap();
        }
        // The journal mode is the file's before anyone loads (switching it is SQLite's own
        // race).
        Connection::open(&path).unwrap().query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(())).unwrap();
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 300;
        let n = 4;
        let children: Vec<_> = (0..n)
            .map(|who| Command::new(&exe).env("CRR_WORKER", format!("start\t{path}\t{who}\t{at}")).spawn().unwrap())
            .collect();
        let failed = children.into_iter().map(|mut ch| ch.wait().unwrap()).filter(|s| !s.success()).count();
        let what = format!("round {round} ({mode}, {})", fixture.unwrap_or("fresh"));
        assert_eq!(failed, 0, "{what}: {failed} of {n} processes failed");
        let c = open(&path);
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_sites WHERE ordinal = 0"), 1, "{what}");
        assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7, "{what}");
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables WHERE name IN ('w', 'w2')"), 2, "{what}");
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE \"table\" = 'w' AND cid = 'who'"), n, "{what}");
        assert_eq!(one::<i64>(&c, "SELECT count(DISTINCT db_version) FROM crsql_changes WHERE \"table\" IN ('w', 'w2')"), 2 * n, "{what}");
        assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok", "{what}");
        if fixture.is_some() {
            // The earlier build's table is tracked by this build's triggers.
            c.execute("INSERT INTO t(id, a) VALUES (9999, 'new')", []).unwrap();
            assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE \"table\" = 't' AND pk = crsql_pack_columns(9999)"), 2, "{what}");
        }
    }
}

/// Worker process: what `CRR_WORKER` (mode, path, who, n; tab-separated) asks for.
fn worker(spec: &str) {
    let parts: Vec<&str> = spec.split('\t').collect();
    let (mode, path, who, n) = (parts[0], parts[1], parts[2].parse::<i64>().unwrap(), parts[3].parse::<i64>().unwrap());
    match mode {
        "write" => write_load(path, who, n),
        "start" => start_at(path, who, n),
        "merge-load" => merge_load(path, n),
        "local" => {
            let c = wal(path);
            c.execute_batch("PRAGMA cache_size = 50; BEGIN").unwrap();
            for i in 0..n {
                c.execute("INSERT INTO t(id, who, pad) VALUES (?1, 1, printf('%.100c', 'x'))", [i]).unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
        }
        "merge" => {
            let c = wal(path);
            let src = wal(&path.replace("c.db", "src.db"));
            let batch = changes(&src);
            c.execute_batch("PRAGMA cache_size = 50").unwrap();
            apply(&c, &batch).unwrap();
        }
        other => panic!("unknown worker mode {other}"),
    }
}

fn main() {
    if let Ok(spec) = std::env::var("CRR_WORKER") {
        worker(&spec);
        return;
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests: &[(&str, fn())] = &[
        ("several_connections_in_one_process", several_connections_in_one_process),
        ("several_processes", several_processes),
        ("processes_meet_a_database_at_once", processes_meet_a_database_at_once),
        ("crr_created_and_written_in_one_transaction_and_seen_by_a_connection_that_only_read", crr_created_and_written_in_one_transaction_and_seen_by_a_connection_that_only_read),
        ("a_read_only_connection_loads_and_reads", a_read_only_connection_loads_and_reads),
        ("sigkill_during_a_large_local_transaction_leaves_all_or_nothing", sigkill_during_a_large_local_transaction_leaves_all_or_nothing),
        ("sigkill_during_a_large_merge_leaves_all_or_nothing_and_resync_converges", sigkill_during_a_large_merge_leaves_all_or_nothing_and_resync_converges),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        match std::panic::catch_unwind(f) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("concurrency: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
