//! What the benchmark programs share (`#[path]`-included by runner.rs and workload.rs): the
//! workload table, opening a database with or without the built extension, inserting rows,
//! reading the change feed.
#![allow(dead_code)] // each program uses part of it

use rusqlite::types::Value;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// The workload table, its key of type `key`: INTEGER (the rowid), or for instance TEXT (the
/// same integers, stored as text: a key that is not the rowid, as an app's UUIDs are, so a
/// CRR's clock holds packed keys).
fn schema(key: &str) -> String {
    assert!(key.chars().all(|c| c.is_ascii_alphabetic()), "a key type: a type name");
    format!("CREATE TABLE t(id {key} PRIMARY KEY NOT NULL, a TEXT, b INTEGER, c REAL)")
}

/// The extension to load: dist/crr.so, or the build CRR_EXTENSION names (to compare two).
fn ext() -> PathBuf {
    std::env::var_os("CRR_EXTENSION").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist").join(if cfg!(target_os = "macos") { "crr.dylib" } else { "crr.so" })
    })
}

pub fn open(path: &Path, crr: bool, tuned: bool) -> Connection {
    let c = Connection::open(path).unwrap();
    if crr {
        // SAFETY: loading our own freshly built extension.
        unsafe {
            let _g = rusqlite::LoadExtensionGuard::new(&c).unwrap();
            c.load_extension(ext(), Some("sqlite3_crr_init")).expect("load dist/crr.so (run make)");
        }
    }
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").unwrap();
    if tuned {
        c.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -64000;").unwrap();
    }
    c
}

/// A fresh database of the workload table, its key as `CRR_BENCH_KEY` says (INTEGER unless
/// set: see `schema`).
pub fn fresh(dir: &Path, name: &str, crr: bool, tuned: bool) -> Connection {
    fresh_keyed(dir, name, crr, tuned, &std::env::var("CRR_BENCH_KEY").unwrap_or_else(|_| "INTEGER".into()))
}

pub fn fresh_keyed(dir: &Path, name: &str, crr: bool, tuned: bool, key: &str) -> Connection {
    let p = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
    let c = open(&p, crr, tuned);
    c.execute_batch(&schema(key)).unwrap();
    if crr {
        c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    }
    c
}

/// The clock floor: the least any trigger-based tracking with a per-row clock writes, added to
/// a plain table `t`: one row per user row keyed by its rowid, with a version and a 10-byte
/// blob, written by AFTER triggers in plain SQL. A reference, not a working feed: nothing finds
/// the rows written since a version (a feed needs that too: a `dbv` index, as this floor had
/// until 2026-12-04, or crr_dirty's buckets).
pub fn add_clock_floor(c: &Connection) {
    c.execute_batch(
        "CREATE TABLE side(pk INTEGER PRIMARY KEY NOT NULL, dbv INTEGER NOT NULL, v BLOB NOT NULL);
         CREATE TRIGGER side_insert AFTER INSERT ON t BEGIN INSERT INTO side VALUES (NEW.id, 1, X'0102030405060708090A'); END;
         CREATE TRIGGER side_update AFTER UPDATE ON t BEGIN UPDATE side SET dbv = dbv + 1, v = X'0A090807060504030201' WHERE pk = NEW.id; END;
         CREATE TRIGGER side_delete AFTER DELETE ON t BEGIN UPDATE side SET dbv = dbv + 1, v = X'01' WHERE pk = OLD.id; END;",
    )
    .unwrap();
}

/// The trigger floor of a merge: do-nothing AFTER triggers on a plain table `t` whose WHEN
/// calls a function, as a CRR's triggers do while a merge writes its table (they are silenced
/// by `crr_internal_tracking`). What SQLite charges any trigger-tracked table for each write a
/// merge makes (trigger frames, and the statement journal a function call in a trigger gives
/// every write), before the merge does any work of its own.
pub fn add_trigger_floor(c: &Connection) {
    for event in ["INSERT", "UPDATE", "DELETE"] {
        c.execute_batch(&format!("CREATE TRIGGER silenced_{event} AFTER {event} ON t WHEN abs(0) BEGIN SELECT 1; END")).unwrap();
    }
}

/// W6's plain upserts (`plain_apply`), each run from inside a call of a function of the
/// outer statement (`with_nested_upserts`): the least any merge pays that writes the user
/// table from inside the statement that hands it the change, as INSERT INTO crsql_changes
/// does. `to` should have the trigger floor (`add_trigger_floor`), as a CRR merged into has
/// its triggers, silenced. A reference, not a merge: no clock is read or written, nothing is
/// validated or decided.
pub fn nested_apply(from: &Connection, to: &Connection) {
    let mut src = from.prepare("SELECT id, a, b, c FROM t").unwrap();
    let rows: Vec<[Value; 4]> = src.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])).unwrap().map(|r| r.unwrap()).collect();
    with_nested_upserts(to, |upsert| {
        for [id, a, b, c] in &rows {
            for (col, v) in [a, b, c].into_iter().enumerate() {
                upsert(col, id, v);
            }
        }
    });
}

/// W7's floor (a reference, as `nested_apply`): `plain_exchange` on two plain replicas that
/// have the clock floor (`add_clock_floor`: a clock row written per write) and the trigger
/// floor, with each upsert run from inside a function call. The least W7 costs a design that
/// tracks writes with triggers and merges through a statement nested in the INSERT of each
/// change.
pub fn nested_exchange(p: &Connection, q: &Connection) {
    plain_updates_exchanged(p, q, |to, rows| {
        with_nested_upserts(to, |upsert| {
            for (id, a) in rows {
                upsert(0, id, a);
            }
        })
    });
}

/// Runs `f` in a transaction on `to` with `upsert(col, id, value)`, which upserts `value` into
/// column a, b or c (0, 1, 2) of row `id` of `t` from inside a call of a function of an outer
/// statement (`SELECT nested_upsert(?1, ?2, ?3)`), one such statement per call. A write
/// made so is a statement nested in another, and inside a transaction SQLite gives a nested
/// write on a table whose triggers call a function a statement journal of its own (a
/// savepoint, and a copy of each page it changes, opened and released per write), as it
/// gives a merge's write.
fn with_nested_upserts(to: &Connection, f: impl FnOnce(&mut dyn FnMut(usize, &Value, &Value))) {
    use rusqlite::functions::FunctionFlags;
    // SAFETY: a second handle on `to`'s connection, which does not close it; the function that
    // owns it (and the statements it caches) is removed below, before `to` can be closed.
    let inner = unsafe { Connection::from_handle(to.handle()) }.unwrap();
    let ups: Vec<String> = ["a", "b", "c"].iter().map(|col| format!("INSERT INTO t(id, {col}) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET {col} = excluded.{col}")).collect();
    to.create_scalar_function("nested_upsert", 3, FunctionFlags::SQLITE_UTF8, move |ctx| {
        let col: i64 = ctx.get(0)?;
        inner.prepare_cached(&ups[col as usize])?.execute(rusqlite::params![ctx.get::<Value>(1)?, ctx.get::<Value>(2)?]).map(|n| n as i64)
    })
    .unwrap();
    let tx = to.unchecked_transaction().unwrap();
    {
        let mut s = tx.prepare("SELECT nested_upsert(?1, ?2, ?3)").unwrap();
        f(&mut |col, id, v| assert_eq!(s.query_row(rusqlite::params![col as i64, id, v], |r| r.get::<_, i64>(0)).unwrap(), 1));
    }
    tx.commit().unwrap();
    to.remove_function("nested_upsert", 3).unwrap();
}

pub fn insert_rows(c: &Connection, from: i64, n: i64) {
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut s = tx.prepare_cached("INSERT INTO t VALUES (?1, ?2, ?3, ?4)").unwrap();
        for i in from..from + n {
            s.execute(rusqlite::params![i, format!("name-{i}"), i * 7, i as f64 * 0.5]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Every change, all nine columns.
pub const READ_ALL: &str = "SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes";

pub fn read_changes(c: &Connection) -> Vec<Vec<Value>> {
    let mut s = c.prepare(READ_ALL).unwrap();
    s.query_map([], |r| (0..9).map(|i| r.get::<_, Value>(i)).collect()).unwrap().map(|r| r.unwrap()).collect()
}

/// Applies changes to `c` in one transaction, one INSERT INTO crsql_changes each.
pub fn apply_changes(c: &Connection, cs: &[Vec<Value>]) {
    insert_changes(c, "crsql_changes", cs);
}

/// Inserts changes (nine columns each) into `table` in one transaction, one INSERT each.
pub fn insert_changes(c: &Connection, table: &str, cs: &[Vec<Value>]) {
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut s = tx.prepare_cached(&format!("INSERT INTO {table} VALUES (?,?,?,?,?,?,?,?,?)")).unwrap();
        for ch in cs {
            s.execute(rusqlite::params_from_iter(ch.iter())).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// W6 on plain tables: copies every row of `from` into the empty `to` in one transaction, one
/// upsert per non-key cell (what a transport without a change feed would do).
pub fn plain_apply(from: &Connection, to: &Connection) {
    let tx = to.unchecked_transaction().unwrap();
    {
        let mut ups: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|col| tx.prepare(&format!("INSERT INTO t(id, {col}) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET {col} = excluded.{col}")).unwrap())
            .collect();
        let mut src = from.prepare("SELECT id, a, b, c FROM t").unwrap();
        let rows: Vec<(Value, Value, Value, Value)> = src.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect();
        for (id, a, b, c) in &rows {
            ups[0].execute(rusqlite::params![id, a]).unwrap();
            ups[1].execute(rusqlite::params![id, b]).unwrap();
            ups[2].execute(rusqlite::params![id, c]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// W7 on two plain replicas: both update the same 10% of rows differently, then each upserts
/// the other's updated cells.
pub fn plain_exchange(p: &Connection, q: &Connection) {
    plain_updates_exchanged(p, q, |to, rows| {
        let tx = to.unchecked_transaction().unwrap();
        {
            // Prepared once, as the CRR side's INSERT INTO crsql_changes is (an upsert
            // prepared per row would charge the plain side a parse per row).
            let mut up = tx.prepare("INSERT INTO t(id, a) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET a = excluded.a").unwrap();
            for (id, a) in rows {
                up.execute(rusqlite::params![id, a]).unwrap();
            }
        }
        tx.commit().unwrap();
    });
}

/// W7's updates on two plain tables (`plain_exchange`, `nested_exchange`): both update the
/// same 10% of rows differently, then `apply(to, rows)` gives each the other's (id, a) of
/// those rows.
fn plain_updates_exchanged(p: &Connection, q: &Connection, apply: impl Fn(&Connection, &[(Value, Value)])) {
    p.execute_batch("UPDATE t SET a = 'left' WHERE id % 10 = 1").unwrap();
    q.execute_batch("UPDATE t SET a = 'right' WHERE id % 10 = 1").unwrap();
    for (from, to) in [(p, q), (q, p)] {
        let mut s = from.prepare("SELECT id, a FROM t WHERE id % 10 = 1").unwrap();
        let rows: Vec<(Value, Value)> = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
        apply(to, &rows);
    }
}

/// W7 on two CRR replicas: both update the same 10% of rows differently, then each applies
/// the other's changes since its db_version `vc` / `vd` (taken before the updates).
pub fn w7_exchange(c: &Connection, d: &Connection, vc: i64, vd: i64) {
    c.execute_batch("UPDATE t SET a = 'left' WHERE id % 10 = 1").unwrap();
    d.execute_batch("UPDATE t SET a = 'right' WHERE id % 10 = 1").unwrap();
    for (from, to, since) in [(c, d, vc), (d, c, vd)] {
        let mut s = from.prepare("SELECT * FROM crsql_changes WHERE db_version > ?1").unwrap();
        let batch: Vec<Vec<Value>> = s.query_map([since], |r| (0..9).map(|i| r.get::<_, Value>(i)).collect()).unwrap().map(|r| r.unwrap()).collect();
        apply_changes(to, &batch);
    }
}
