//! One workload in one process, for instruction counts: `valgrind --tool=callgrind
//! target/release/examples/workload <w1|w2|w3|w4|w5|w6> <plain|crr> <rows>` (built by
//! `make test`; CRR_EXTENSION=path loads another build). Wall-clock ratios are noisy on shared
//! machines; callgrind's counts repeat.
//! w1 inserts `rows` rows in one transaction; w2 inserts them one transaction each; w3 and w4
//! insert, then update one column of every row / delete 10%; w5 inserts, then reads every
//! change; w6 does w5 and applies the changes to an empty replica (w5 and w6: crr only).
//! Subtract w1 from w3/w4/w5 and w5 from w6 for the cost of the step alone.

use rusqlite::types::Value;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, c REAL);";

fn fresh(path: &Path, crr: bool) -> Connection {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let c = Connection::open(path).unwrap();
    if crr {
        // CRR_EXTENSION picks another build (to compare two versions of the extension).
        let ext = std::env::var_os("CRR_EXTENSION").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist").join(if cfg!(target_os = "macos") { "crr.dylib" } else { "crr.so" })
        });
        // SAFETY: loading our own freshly built extension.
        unsafe {
            let _g = rusqlite::LoadExtensionGuard::new(&c).unwrap();
            c.load_extension(ext, Some("sqlite3_crr_init")).expect("load dist/crr.so (run make)");
        }
    }
    c.execute_batch(SCHEMA).unwrap();
    if crr {
        c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    }
    c
}

fn insert(c: &Connection, rows: i64) {
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut s = tx.prepare_cached("INSERT INTO t VALUES (?1, ?2, ?3, ?4)").unwrap();
        for i in 0..rows {
            s.execute(rusqlite::params![i, format!("name-{i}"), i * 7, i as f64 * 0.5]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn read_changes(c: &Connection) -> Vec<Vec<Value>> {
    let mut s = c.prepare("SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes").unwrap();
    s.query_map([], |r| (0..9).map(|i| r.get::<_, Value>(i)).collect()).unwrap().map(|r| r.unwrap()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: workload <w1|w2|w3|w4|w5|w6> <plain|crr> <rows>";
    let (w, crr, rows) = match args.as_slice() {
        [_, w, mode, rows] => (w.as_str(), mode == "crr", rows.parse::<i64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    assert!(crr || !matches!(w, "w5" | "w6"), "w5 and w6 read crsql_changes: crr only");
    let dir = std::env::temp_dir().join(format!("crr-workload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = fresh(&dir.join("src.db"), crr);
    match w {
        "w1" => insert(&c, rows),
        "w2" => {
            let mut s = c.prepare_cached("INSERT INTO t VALUES (?1, 'single', 1, 1.0)").unwrap();
            for i in 0..rows {
                s.execute([i]).unwrap();
            }
        }
        "w3" => {
            insert(&c, rows);
            c.execute_batch("UPDATE t SET b = b + 1").unwrap();
        }
        "w4" => {
            insert(&c, rows);
            c.execute_batch("DELETE FROM t WHERE id % 10 = 0").unwrap();
        }
        "w5" | "w6" => {
            insert(&c, rows);
            let changes = read_changes(&c);
            if w == "w6" {
                let d = fresh(&dir.join("dst.db"), true);
                let tx = d.unchecked_transaction().unwrap();
                {
                    let mut s = tx.prepare_cached("INSERT INTO crsql_changes VALUES (?,?,?,?,?,?,?,?,?)").unwrap();
                    for ch in &changes {
                        s.execute(rusqlite::params_from_iter(ch.iter())).unwrap();
                    }
                }
                tx.commit().unwrap();
            }
        }
        _ => panic!("{usage}"),
    }
    drop(c);
    std::fs::remove_dir_all(&dir).ok();
}
