//! `make demo`: two replicas (two database files) take conflicting and non-conflicting writes
//! while offline, exchange changes through crsql_changes, and converge.

use rusqlite::types::Value;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open database");
    let ext = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist").join(if cfg!(target_os = "macos") { "crr.dylib" } else { "crr.so" });
    // SAFETY: loading our own freshly built extension.
    unsafe {
        let _g = rusqlite::LoadExtensionGuard::new(&conn).expect("enable extension loading");
        conn.load_extension(&ext, Some("sqlite3_crr_init")).unwrap_or_else(|e| panic!("loading {}: {e} (run `make`)", ext.display()));
    }
    conn
}

fn show(title: &str, conn: &Connection) {
    println!("  {title}:");
    let mut s = conn.prepare("SELECT id, title, done FROM todo ORDER BY id").unwrap();
    let rows = s.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))).unwrap();
    for r in rows {
        let (id, t, d) = r.unwrap();
        println!("    {id} | {t:<22} | done={d}");
    }
}

type Change = Vec<Value>;

/// Every change `from` has recorded since `since`.
fn changes_since(from: &Connection, since: i64) -> Vec<Change> {
    let mut s = from
        .prepare("SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes WHERE db_version > ?1")
        .unwrap();
    s.query_map([since], |r| (0..9).map(|i| r.get::<_, Value>(i)).collect()).unwrap().map(|r| r.unwrap()).collect()
}

/// Ships `from`'s changes since `since` to `to` in one transaction; returns rows impacted.
fn sync(from: &Connection, to: &Connection, since: i64) -> i64 {
    let batch = changes_since(from, since);
    let tx = to.unchecked_transaction().unwrap();
    for c in &batch {
        tx.execute("INSERT INTO crsql_changes VALUES (?,?,?,?,?,?,?,?,?)", rusqlite::params_from_iter(c.iter())).unwrap();
    }
    let n: i64 = tx.query_row("SELECT crsql_rows_impacted()", [], |r| r.get(0)).unwrap();
    tx.commit().unwrap();
    n
}

fn version_of(conn: &Connection, id: i64, col: &str) -> (i64, String) {
    conn.query_row(
        "SELECT col_version, hex(site_id) FROM crsql_changes WHERE pk = crsql_pack_columns(?1) AND cid = ?2",
        rusqlite::params![id, col],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("crr-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pa, pb) = (dir.join("alice.db"), dir.join("bob.db"));
    let (a, b) = (open(&pa), open(&pb));
    for c in [&a, &b] {
        c.execute_batch(
            "CREATE TABLE todo(id INTEGER PRIMARY KEY NOT NULL, title TEXT, done INTEGER NOT NULL DEFAULT 0);
             SELECT crsql_as_crr('todo');",
        )
        .unwrap();
    }
    println!("sqlite-crr demo: two replicas, {} and {}\n", pa.display(), pb.display());
    // Shared starting point: Alice creates three todos, Bob receives them.
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(1700000000000); INSERT INTO todo(id, title) VALUES (1, 'buy milk'), (2, 'write report'), (3, 'call mom');").unwrap();
    sync(&a, &b, 0);
    let (a_seen_b, b_seen_a) = (b.query_row("SELECT crsql_db_version()", [], |r| r.get::<_, i64>(0)).unwrap(), a.query_row("SELECT crsql_db_version()", [], |r| r.get::<_, i64>(0)).unwrap());
    println!("1. both start from the same three todos");
    show("alice", &a);

    println!("\n2. offline, both edit:");
    // Alice at t=+1s, Bob at t=+5s (their clocks). Conflict on todo 1's title.
    a.execute_batch(
        "SELECT crr_set_wall_clock_for_testing(1700000001000);
         UPDATE todo SET title = 'buy oat milk' WHERE id = 1;
         INSERT INTO todo(id, title) VALUES (4, 'book flights');",
    )
    .unwrap();
    b.execute_batch(
        "SELECT crr_set_wall_clock_for_testing(1700000005000);
         UPDATE todo SET title = 'buy milk and eggs' WHERE id = 1;
         UPDATE todo SET done = 1 WHERE id = 2;
         DELETE FROM todo WHERE id = 3;",
    )
    .unwrap();
    println!("   alice: renames todo 1, adds todo 4      bob: renames todo 1 later, completes 2, deletes 3");
    show("alice (offline)", &a);
    show("bob   (offline)", &b);

    println!("\n3. they exchange changes through crsql_changes (any order, any transport):");
    let to_b = sync(&a, &b, b_seen_a);
    let to_a = sync(&b, &a, a_seen_b);
    println!("   alice -> bob: {to_b} rows impacted; bob -> alice: {to_a} rows impacted");
    // Duplicate delivery changes nothing.
    let again = sync(&a, &b, 0) + sync(&b, &a, 0);
    println!("   re-sending everything both ways: {again} rows impacted (merging is idempotent)");
    show("alice", &a);
    show("bob  ", &b);

    let dump = |c: &Connection| -> Vec<(i64, String, i64)> {
        let mut s = c.prepare("SELECT id, title, done FROM todo ORDER BY id").unwrap();
        let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    let converged = dump(&a) == dump(&b);
    println!("\n4. converged: {}", if converged { "yes, identical tables" } else { "NO" });
    let (va, site) = version_of(&a, 1, "title");
    println!(
        "   todo 1 title: both wrote it; the winner has the greater (col_version, value, site_id).\n   \
         col_version is a hybrid logical clock, (wall ms << 16) | counter: bob wrote at {} ms vs alice at {} ms,\n   \
         so bob's 'buy milk and eggs' wins (winning version {va}, from site {}...).",
        1700000005000i64, 1700000001000i64, &site[..8]
    );
    println!("   todo 2 done, todo 3 deleted, todo 4 added: no conflict, every write kept.");
    std::fs::remove_dir_all(&dir).ok();
    if !converged {
        std::process::exit(1);
    }
}
