//! The extension's own tables corrupted, then every path run on them: loads, reads of
//! crsql_changes (whole and filtered), local writes, merges, crsql_as_crr, an alter,
//! crsql_as_table and the other functions. Whatever the damage, each call either works or
//! fails with an error: none panics (the guard would report it as an internal error), none
//! runs away (a progress handler stops a statement past a bound), and the process never
//! aborts, as SPEC 8 promises of any input ("the extension never crashes the host process"),
//! here including a file damaged by hand, a buggy tool or another program.
//!
//! Each seed copies a replica (a rowid-keyed CRR, a CRR with a packed compound key, a few
//! transactions, a merge from a peer, a delete and a resurrection), damages one to four
//! cells or rows of the internal tables (`crr_meta`, `crr_sites`, `crr_tables`,
//! `crr_columns`, `crr_ticks`, `crr_dirty`, the clock tables) with hostile values (extreme
//! integers, wrong types, random or bit-flipped blobs, deleted or extra rows) through a
//! connection without the extension, then loads the extension and runs everything; then a
//! fresh connection loads the damage and reads and writes (on a third of the seeds two
//! connections of a WAL file, one writing while the other reads).
//! `CRR_CORRUPT_SEEDS` / `CRR_CORRUPT_FROM` pick the seeds; `CRR_CORRUPT_SEED=n` replays one and
//! prints what it damaged and what each call said.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;
use std::cell::Cell;

/// VDBE progress callbacks (of 1,000 ops each) one statement may take: far above what any call
/// here needs on these few rows; a statement past it has run away.
const PROGRESS_MAX: u64 = 200_000;

const SCHEMA: &str = "
    CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER DEFAULT 0);
    CREATE TABLE p(k TEXT NOT NULL, n INTEGER NOT NULL, v, PRIMARY KEY (k, n)) WITHOUT ROWID;
    SELECT crsql_as_crr('t'); SELECT crsql_as_crr('p');";

/// A replica with some history, and a peer that has seen it and made writes of its own since.
fn replica_and_peer() -> (Connection, Connection) {
    let (a, b) = (mem(), mem());
    for c in [&a, &b] {
        c.execute_batch(SCHEMA).unwrap();
    }
    a.execute_batch(
        "INSERT INTO t VALUES (1, 'one', 1), (2, 'two', 2), (40, 'forty', 40), (-3, 'minus', -3);
         INSERT INTO p VALUES ('x', 1, 1.5), ('y', 2, X'00ff'), ('z', 3, NULL);",
    )
    .unwrap();
    a.execute_batch("UPDATE t SET a = 'uno' WHERE id = 1; DELETE FROM p WHERE k = 'z';").unwrap();
    b.execute_batch("INSERT INTO t VALUES (7, 'seven', 7); INSERT INTO p VALUES ('w', 9, 'nine');").unwrap();
    apply(&a, &changes(&b)).unwrap();
    a.execute_batch("DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (2, 'back', 22); UPDATE t SET b = b + 100;").unwrap();
    apply(&b, &changes(&a)).unwrap();
    b.execute_batch("UPDATE t SET a = 'peer' WHERE id IN (1, 7); INSERT INTO t VALUES (100, 'new', 1); DELETE FROM p WHERE k = 'x';").unwrap();
    (a, b)
}

/// A hostile value for a cell of the internal tables.
fn hostile(r: &mut Rng, original: &V) -> V {
    match r.below(14) {
        0 => V::Null,
        1 => V::Integer(0),
        2 => V::Integer(-1),
        3 => V::Integer(*r.pick(&[1, 2, 3, 255, 256, 65_535, 1 << 31, 1 << 32])),
        4 => V::Integer(*r.pick(&[i64::MAX, i64::MIN, i64::MAX - 1, 1 << 62, (1 << 62) + 1, -(1 << 62)])),
        5 => V::Integer(r.next() as i64),
        6 => V::Real(*r.pick(&[0.5, -1.0, 1e300, -0.0, 9.2e18])),
        7 => V::Text(r.pick(&["", "t", "p", "-1", "a", "crr_clock_1", "é", "9223372036854775807"]).to_string()),
        8 => V::Blob(Vec::new()),
        9 => V::Blob((0..r.below(40)).map(|_| r.next() as u8).collect()),
        // The original with one bit flipped, one byte cut, or a byte more: the damage a disk
        // or a buggy tool does to a record.
        _ => match original {
            V::Blob(b) if !b.is_empty() => {
                let mut b = b.clone();
                match r.below(3) {
                    0 => {
                        let i = r.below(b.len() as u64) as usize;
                        b[i] ^= 1 << r.below(8);
                    }
                    1 => {
                        b.truncate(r.below(b.len() as u64) as usize);
                    }
                    _ => b.push(r.next() as u8),
                }
                V::Blob(b)
            }
            V::Integer(i) => V::Integer(i.wrapping_add(*r.pick(&[1, -1, 1 << 16, -(1 << 16), 1 << 40]))),
            V::Text(t) => V::Text(format!("{t}x")),
            _ => V::Integer(r.next() as i64 >> r.below(64)),
        },
    }
}

/// Damages one cell, row or table of the internal tables of `c` (a connection without the
/// extension); returns what it did, or None when the damage did not apply (a constraint of
/// the table refused it).
fn damage(r: &mut Rng, c: &Connection) -> Option<String> {
    let tables: Vec<String> = rows(c, "SELECT name FROM sqlite_schema WHERE type = 'table' AND (name LIKE 'crr\\_%' ESCAPE '\\') ORDER BY name")
        .into_iter()
        .map(|row| match &row[0] {
            V::Text(t) => t.clone(),
            _ => unreachable!(),
        })
        .collect();
    let table = r.pick(&tables).clone();
    let columns: Vec<String> = rows(c, &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))
        .into_iter()
        .map(|row| match &row[0] {
            V::Text(t) => t.clone(),
            _ => unreachable!(),
        })
        .collect();
    let count: i64 = one(c, &format!("SELECT count(*) FROM \"{table}\""));
    let offset = r.below(count.max(1) as u64);
    // A row is told by all of its columns (WITHOUT ROWID tables have no rowid).
    let row = rows(c, &format!("SELECT * FROM \"{table}\" ORDER BY 1, 2 LIMIT 1 OFFSET {offset}")).pop();
    let matching = |row: &[V]| {
        let conds: Vec<String> = columns.iter().map(|col| format!("\"{col}\" IS ?")).collect();
        (conds.join(" AND "), row.to_vec())
    };
    match (r.below(10), row) {
        (0, Some(row)) => {
            let (cond, args) = matching(&row);
            let n = c.execute(&format!("DELETE FROM \"{table}\" WHERE {cond}"), rusqlite::params_from_iter(args)).ok()?;
            Some(format!("deleted {n} row(s) {row:?} of {table}"))
        }
        (1, _) => {
            let values: Vec<V> = (0..columns.len()).map(|_| hostile(r, &V::Null)).collect();
            let marks = vec!["?"; columns.len()].join(", ");
            c.execute(&format!("INSERT INTO \"{table}\" VALUES ({marks})"), rusqlite::params_from_iter(values.clone())).ok()?;
            Some(format!("inserted {values:?} into {table}"))
        }
        (2, _) if r.chance(30) => {
            c.execute_batch(&format!("DELETE FROM \"{table}\"")).ok()?;
            Some(format!("emptied {table}"))
        }
        (3, Some(row)) => {
            // A well-formed value in the wrong place: another cell's, of any internal table
            // (a record of another row or table, a slot of another column, a site's ordinal).
            let i = r.below(columns.len() as u64) as usize;
            let value = some_cell(r, c, &tables)?;
            let (cond, mut args) = matching(&row);
            args.insert(0, value.clone());
            let n = c.execute(&format!("UPDATE \"{table}\" SET \"{}\" = ? WHERE {cond}", columns[i]), rusqlite::params_from_iter(args)).ok()?;
            (n > 0).then(|| format!("moved {value:?} into {table}.{} of {row:?}", columns[i]))
        }
        (_, Some(row)) => {
            let i = r.below(columns.len() as u64) as usize;
            let value = hostile(r, &row[i]);
            let (cond, mut args) = matching(&row);
            args.insert(0, value.clone());
            let n = c.execute(&format!("UPDATE \"{table}\" SET \"{}\" = ? WHERE {cond}", columns[i]), rusqlite::params_from_iter(args)).ok()?;
            (n > 0).then(|| format!("set {table}.{} of {row:?} to {value:?}", columns[i]))
        }
        _ => None,
    }
}

/// A cell of a random row and column of one of `tables`, as it is stored.
fn some_cell(r: &mut Rng, c: &Connection, tables: &[String]) -> Option<V> {
    let table = r.pick(tables);
    let count: i64 = one(c, &format!("SELECT count(*) FROM \"{table}\""));
    let row = rows(c, &format!("SELECT * FROM \"{table}\" ORDER BY 1, 2 LIMIT 1 OFFSET {}", r.below(count.max(1) as u64))).pop()?;
    Some(r.pick(&row).clone())
}

/// Writes and schema changes made to a CRR behind the extension's back, through `c` (a
/// connection without it): as a tool or an app that does not load the extension would, with
/// the table's triggers dropped first (they call the extension's functions) and made again
/// after, where their SQL still applies. Returns what it did.
fn damage_user_table(r: &mut Rng, c: &Connection) -> Option<String> {
    let table = *r.pick(&["t", "p"]);
    let triggers: Vec<String> = rows(c, &format!("SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '{table}' ORDER BY name"))
        .into_iter()
        .filter_map(|row| match &row[0] {
            V::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    for name in rows(c, &format!("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '{table}'")) {
        if let V::Text(n) = &name[0] {
            c.execute_batch(&format!("DROP TRIGGER \"{n}\"")).ok()?;
        }
    }
    let writes: &[&str] = if table == "t" {
        &[
            "INSERT INTO t VALUES (9000, 'hidden', 9)",
            "UPDATE t SET a = 'hidden' WHERE id = 1",
            "UPDATE t SET b = NULL",
            "DELETE FROM t WHERE id = 40",
            "DELETE FROM t",
            "UPDATE t SET id = -id WHERE id = 2",
            "ALTER TABLE t ADD COLUMN w TEXT DEFAULT 'w'",
            "ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 1",
            "ALTER TABLE t RENAME COLUMN a TO aa",
            "ALTER TABLE t DROP COLUMN b",
            "ALTER TABLE t RENAME TO t_old",
            "DROP TABLE t",
            "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER DEFAULT 0)",
            "DROP TABLE t; CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, b BLOB)",
            "DROP TABLE t; CREATE TABLE t(x, y)",
        ]
    } else {
        &[
            "INSERT INTO p VALUES ('hidden', 1, 2)",
            "UPDATE p SET v = 'hidden'",
            "DELETE FROM p WHERE k = 'y'",
            "UPDATE p SET n = n + 1",
            "ALTER TABLE p ADD COLUMN w",
            "ALTER TABLE p RENAME COLUMN k TO kk",
            "ALTER TABLE p RENAME COLUMN v TO vv",
            "ALTER TABLE p DROP COLUMN v",
            "DROP TABLE p; CREATE TABLE p(k TEXT NOT NULL, n INTEGER NOT NULL, v, PRIMARY KEY (n, k)) WITHOUT ROWID",
            "DROP TABLE p; CREATE TABLE p(k TEXT PRIMARY KEY NOT NULL, v)",
        ]
    };
    let mut done = Vec::new();
    for _ in 0..=r.below(2) {
        let sql = *r.pick(writes);
        if c.execute_batch(sql).is_ok() {
            done.push(sql);
        }
    }
    // The triggers again, each where its SQL still applies to the table as it now is.
    let remade = triggers.iter().filter(|sql| r.chance(90) && c.execute_batch(sql).is_ok()).count();
    Some(format!("behind the extension's back: dropped {table}'s {} triggers, ran {done:?}, made {remade} again", triggers.len()))
}

/// Damages the extension's objects in the schema of `c` (a connection without the extension):
/// drops one of its tables, triggers or indexes, or rewrites the slot list a tracking trigger
/// passes to the record functions (a constant blob in its SQL). Returns what it did.
fn damage_schema(r: &mut Rng, c: &Connection) -> Option<String> {
    let objects: Vec<(String, String, String)> = rows(c, "SELECT type, name, coalesce(sql, '') FROM sqlite_schema WHERE name LIKE 'crr%' AND name NOT LIKE 'sqlite%' ORDER BY name")
        .into_iter()
        .map(|row| match &row[..] {
            [V::Text(a), V::Text(b), V::Text(c)] => (a.clone(), b.clone(), c.clone()),
            _ => unreachable!(),
        })
        .collect();
    let (kind, name, sql) = r.pick(&objects).clone();
    if kind == "trigger" && r.chance(50) {
        // Each X'...' of the trigger's SQL (the slot lists) replaced by random hex of an even
        // length: u16 slots, possibly far past the table's, or an odd byte count.
        let mut out = String::new();
        let mut rest = sql.as_str();
        while let Some(i) = rest.find("X'") {
            let end = rest[i + 2..].find('\'').map(|j| i + 2 + j)?;
            let bytes = r.below(8);
            let hex: String = (0..bytes).map(|_| format!("{:02X}", r.next() as u8)).collect();
            out.push_str(&rest[..i]);
            out.push_str(&format!("X'{hex}'"));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        c.execute_batch("PRAGMA writable_schema = ON").ok()?;
        let n = c.execute("UPDATE sqlite_schema SET sql = ?1 WHERE name = ?2", [&out, &name]).ok();
        c.execute_batch("PRAGMA writable_schema = RESET").ok()?;
        return n.filter(|&n| n > 0).map(|_| format!("rewrote trigger {name} as {out}"));
    }
    let verb = match kind.as_str() {
        "table" => "TABLE",
        "trigger" => "TRIGGER",
        "index" => "INDEX",
        _ => return None,
    };
    c.execute_batch(&format!("DROP {verb} \"{name}\"")).ok()?;
    Some(format!("dropped {kind} {name}"))
}

/// The calls run on the damaged replica, each a batch of SQL.
const CALLS: &[&str] = &[
    "SELECT crsql_db_version()",
    "SELECT crsql_site_id()",
    "SELECT crsql_next_db_version()",
    "SELECT crsql_config_get('clock')",
    "SELECT count(*) FROM crsql_changes",
    "SELECT * FROM crsql_changes",
    "SELECT * FROM crsql_changes WHERE db_version > 2",
    "SELECT * FROM crsql_changes WHERE db_version = 1 AND seq > 0",
    "SELECT * FROM crsql_changes WHERE \"table\" = 'p'",
    "SELECT * FROM crsql_changes WHERE pk = crsql_pack_columns(1)",
    "SELECT * FROM crsql_changes WHERE cid = 'a'",
    "SELECT * FROM crsql_changes WHERE site_id = crsql_site_id()",
    "SELECT * FROM crsql_changes WHERE site_id IS NOT crsql_site_id() AND db_version >= 1",
    "SELECT c.*, u.* FROM crsql_changes c, crsql_unpack_columns(c.pk) u",
    "SELECT * FROM crsql_changes ORDER BY rowid DESC LIMIT 3",
    "INSERT INTO t VALUES (500, 'ins', 5)",
    "INSERT INTO t VALUES (1, 'over', 1) ON CONFLICT(id) DO UPDATE SET a = excluded.a",
    "UPDATE t SET a = 'upd', b = b + 1",
    "UPDATE t SET id = id + 1000 WHERE id = 40",
    "DELETE FROM t WHERE id = -3",
    "INSERT OR REPLACE INTO t VALUES (7, 'replaced', 0)",
    "INSERT INTO p VALUES ('q', 1, 'ins')",
    "UPDATE p SET v = 'upd'",
    "DELETE FROM p WHERE k = 'y'",
    "BEGIN; INSERT INTO t VALUES (600, 'a', 1); SAVEPOINT s; UPDATE t SET a = 'b' WHERE id = 600; ROLLBACK TO s; COMMIT",
    "SELECT crsql_rows_impacted()",
    "SELECT crsql_as_crr('t')",
    "SELECT crsql_as_crr('p')",
    "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN z TEXT DEFAULT 'zz'; SELECT crsql_commit_alter('t')",
    "SELECT crsql_as_table('p')",
    "SELECT crsql_as_crr('p')",
    "SELECT * FROM crsql_changes",
    "SELECT crsql_config_set('merge-equal-values', 1)",
    "SELECT crr_new_site_id()",
    "INSERT INTO t VALUES (800, 'after a new site id', 8)",
    "SELECT crsql_finalize()",
];

thread_local! {
    /// Progress callbacks since the running call began.
    static TICKS: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn progress(_: *mut std::ffi::c_void) -> std::ffi::c_int {
    TICKS.with(|t| {
        t.set(t.get() + 1);
        (t.get() > PROGRESS_MAX) as std::ffi::c_int
    })
}

/// Stops (interrupts) any statement of `c` that runs past PROGRESS_MAX callbacks counted from
/// the last reset; returns the reset.
fn bound_statements(c: &Connection) -> impl Fn() {
    // SAFETY (test): a progress handler with no argument on our own open connection; the
    // callback touches only a thread-local counter.
    unsafe { rusqlite::ffi::sqlite3_progress_handler(c.handle(), 1000, Some(progress), std::ptr::null_mut()) };
    || TICKS.with(|t| t.set(0))
}

fn run_seed(seed: u64, verbose: bool) {
    let mut r = Rng(seed ^ 0xC022_0975_7A6E);
    let (base, peer) = replica_and_peer();
    // The peer's feed, merged into the damaged replica in the middle of the calls.
    let feed = changes(&peer);
    // A plain connection holds the copy while it is damaged: no extension, no triggers' functions.
    let mut damaged = Connection::open_in_memory().unwrap();
    restore(&base, &mut damaged);
    let mut done = Vec::new();
    if r.chance(20) {
        if let Some(what) = damage_schema(&mut r, &damaged) {
            done.push(what);
        }
    }
    if r.chance(20) {
        if let Some(what) = damage_user_table(&mut r, &damaged) {
            done.push(what);
        }
    }
    let wanted = done.len() as u64 + r.below(4);
    for _ in 0..20 {
        if done.len() as u64 == wanted {
            break;
        }
        if let Some(what) = damage(&mut r, &damaged) {
            done.push(what);
        }
    }
    if verbose {
        eprintln!("seed {seed}: {done:#?}");
    }
    let ctx = format!("seed {seed} (replay: CRR_CORRUPT_SEED={seed} cargo test --release --test corrupt_storage), after {done:?}");

    let ticks = bound_statements(&damaged);
    let check = |what: &str, r: Result<(), String>| {
        if verbose {
            eprintln!("  {what}: {r:?}");
        }
        if let Err(e) = r {
            assert!(!e.contains("internal error (panic"), "{ctx}: `{what}` panicked: {e}");
            assert!(!e.contains("interrupted"), "{ctx}: `{what}` ran past {PROGRESS_MAX}k VDBE ops: {e}");
        }
    };
    ticks();
    check("load", load_extension_checked(&damaged));
    for (i, sql) in CALLS.iter().enumerate() {
        if i == CALLS.len() / 2 {
            ticks();
            check("merge the peer's feed", apply(&damaged, &feed).map_err(|e| e.to_string()));
            // Out of any transaction the failed merge left open.
            let _ = damaged.execute_batch("ROLLBACK");
        }
        ticks();
        let result = if sql.contains(';') {
            damaged.execute_batch(sql)
        } else {
            // Every row of a read, every column of each.
            damaged.prepare(sql).and_then(|mut s| {
                let n = s.column_count();
                let mut rows = s.query([])?;
                while let Some(row) = rows.next()? {
                    for i in 0..n {
                        row.get::<_, V>(i)?;
                    }
                }
                Ok(())
            })
        };
        check(sql, result.map_err(|e| e.to_string()));
        let _ = damaged.execute_batch("ROLLBACK");
    }
    // A second connection's load on the same damage (the damaged tables and the extension's
    // state reread from nothing): on a third of the seeds a WAL file that two connections
    // share, the second writing while the first reads, else a memory copy.
    let dir = seed.is_multiple_of(3).then(|| tmpdir(&format!("corrupt-{seed}")));
    let again = match &dir {
        Some(d) => {
            let path = fresh_file(d, "damaged.db");
            let mut file = Connection::open(&path).unwrap();
            file.execute_batch("PRAGMA journal_mode = WAL").unwrap();
            restore(&damaged, &mut file);
            check("the file's load", load_extension_checked(&file));
            let other = Connection::open(&path).unwrap();
            check("another connection's load", load_extension_checked(&other));
            check("its write", other.execute_batch("INSERT INTO t VALUES (700, 'other', 7)").map_err(|e| e.to_string()));
            check("the first one's read after it", try_changes(&file).map(|_| ()).map_err(|e| e.to_string()));
            file
        }
        None => {
            let mut again = Connection::open_in_memory().unwrap();
            restore(&damaged, &mut again);
            check("a fresh connection's load", load_extension_checked(&again));
            again
        }
    };
    check("its read", try_changes(&again).map(|_| ()).map_err(|e| e.to_string()));
    check("its write", again.execute_batch("UPDATE t SET b = -b").map_err(|e| e.to_string()));
    drop(again);
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn damaged_internal_tables_give_errors_never_panics_hangs_or_aborts() {
    let n = run_seeds("CRR_CORRUPT", 300, "CRR_CORRUPT_SEED={seed} cargo test --release --test corrupt_storage", run_seed);
    eprintln!("{n} seeds of damage, every call answered");
}
