//! One workload in one process, for instruction counts: `valgrind --tool=callgrind
//! target/release/examples/workload <w1..w7|w6u|since|prep|wide> <plain|floor|nested|clock-floor|crr> <rows>` (built by
//! `make test`; CRR_EXTENSION=path loads another build). Wall-clock ratios are noisy on shared
//! machines; callgrind's counts repeat.
//! w1 inserts `rows` rows in one transaction; w2 inserts them one transaction each; w3 and w4
//! insert, then update one column of every row / delete 10%; w5 inserts, then reads every
//! change (plain: every non-key cell); w6 does w5 and applies the changes to an empty replica
//! (plain: one upsert per cell, as the runner's W6); w7 does w6, then both replicas update the
//! same 10% of rows differently and exchange their changes since (plain: the runner's W7;
//! `--toggle-collect=workload::w7` counts that step alone).
//! w6u updates one column of every row before reading and applying, as the runner's W6 does
//! after W3: each row's cells then arrive in two runs far apart (the columns of the insert,
//! later the updated one), so the merge writes each row's clock twice (count the apply step
//! alone with `--toggle-collect=workload::shared::apply_changes`, or
//! `workload::shared::plain_apply`).
//! CRR_BENCH_TUNED=1 opens every database with the runner's tuned pragmas (temp_store=MEMORY,
//! cache_size=-64000).
//! Subtract w1 from w3/w4/w5 for the cost of the step alone; for w6 count the apply step
//! inside `workload::shared::apply_changes` (plain: `workload::shared::plain_apply`; w6
//! nested, the same upserts each from inside a function call on a table with the trigger
//! floor: `workload::shared::nested_apply`).
//! `since` (crr only) inserts, updates 100 scattered rows in one transaction and reads the
//! changes since before that update (`--toggle-collect=workload::since_read`): a sync of a
//! small delta of a large table.
//! `prep` inserts, then runs an UPDATE of new SQL text for a tenth of the rows in one
//! transaction: each is prepared, so (prep - w1) / (rows / 10) is what preparing and running
//! one costs, most of it compiling the table's triggers into it on a CRR.
//! `wide` (crr only) makes a CRR of 500 columns on two replicas, inserts `rows` rows on one
//! and merges them into the other (`--toggle-collect=workload::shared::apply_changes`): its
//! first row prepares the merge's statements, which for a wide table cost O(columns) each
//! (storage::merge::write_cell).
//! Mode `floor` is a plain table with do-nothing AFTER INSERT/UPDATE/DELETE triggers (for w6:
//! the replica the upserts go to, with triggers whose WHEN calls a function, as a CRR's
//! silenced triggers during a merge, `shared::add_trigger_floor`): what
//! SQLite itself charges any trigger-based tracking (trigger frames, the two-pass
//! UPDATE/DELETE a trigger forces, and a statement journal where the statement may fail a
//! constraint, as an INSERT with a key does) before a trigger does any work. A trigger that
//! calls a function, as ours do, gives every statement a statement journal. Mode
//! `clock-floor` adds the least any per-row clock writes (`shared::add_clock_floor`).

#[path = "shared.rs"]
mod shared;

use shared::{apply_changes, fresh, insert_rows, read_changes};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: workload <w1|w2|w3|w4|w5|w6|w6u|w7|since|prep|wide> <plain|floor|nested|clock-floor|crr> <rows>";
    let (w, mode, rows) = match args.as_slice() {
        [_, w, mode, rows] if matches!(mode.as_str(), "plain" | "floor" | "nested" | "clock-floor" | "crr") => (w.as_str(), mode.as_str(), rows.parse::<i64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    let crr = mode == "crr";
    // CRR_BENCH_TUNED=1: the runner's tuned pragmas (temp_store=MEMORY, cache_size=-64000).
    let tuned = std::env::var("CRR_BENCH_TUNED").is_ok_and(|v| v == "1");
    assert!(crr || mode == "plain" || !matches!(w, "w5" | "w7"), "w5 and w7: plain or crr");
    assert!(crr || !matches!(mode, "clock-floor") || !matches!(w, "w6" | "w6u"), "w6: plain, floor or crr");
    assert!(crr || !matches!(w, "since" | "wide"), "since and wide: crr only");
    assert!(mode != "nested" || w == "w6", "nested: w6 only");
    let dir = std::env::temp_dir().join(format!("crr-workload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = fresh(&dir, "src.db", crr, tuned);
    if mode == "floor" && !matches!(w, "w6" | "w6u") {
        for event in ["INSERT", "UPDATE", "DELETE"] {
            c.execute_batch(&format!("CREATE TRIGGER floor_{event} AFTER {event} ON t WHEN 0 BEGIN SELECT 1; END")).unwrap();
        }
    }
    if mode == "clock-floor" {
        shared::add_clock_floor(&c);
    }
    match w {
        "w1" => insert_rows(&c, 0, rows),
        "w2" => {
            let mut s = c.prepare_cached("INSERT INTO t VALUES (?1, 'single', 1, 1.0)").unwrap();
            for i in 0..rows {
                s.execute([i]).unwrap();
            }
        }
        "w3" => {
            insert_rows(&c, 0, rows);
            c.execute_batch("UPDATE t SET b = b + 1").unwrap();
        }
        "w4" => {
            insert_rows(&c, 0, rows);
            c.execute_batch("DELETE FROM t WHERE id % 10 = 0").unwrap();
        }
        "prep" => {
            // An UPDATE of new SQL text per row for a tenth of the rows: each is prepared, and
            // SQLite compiles the table's update trigger into it.
            insert_rows(&c, 0, rows);
            c.execute_batch("BEGIN").unwrap();
            for i in 0..rows / 10 {
                c.execute(&format!("UPDATE t SET b = {i} WHERE id = {}", i * 7 % rows), []).unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
        }
        "since" => {
            insert_rows(&c, 0, rows);
            let v: i64 = c.query_row("SELECT crsql_db_version()", [], |r| r.get(0)).unwrap();
            c.execute("UPDATE t SET b = -b WHERE id % ?1 = 7", [(rows / 100).max(1)]).unwrap();
            let n = since_read(&c, v);
            assert_eq!(n as i64, 100.min(rows));
        }
        "wide" => {
            const COLUMNS: i64 = 500;
            let cols: Vec<String> = (0..COLUMNS).map(|i| format!("c{i} INTEGER")).collect();
            let schema = format!("CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, {}); SELECT crsql_as_crr('w');", cols.join(", "));
            let d = fresh(&dir, "dst.db", true, tuned);
            for x in [&c, &d] {
                x.execute_batch(&schema).unwrap();
            }
            c.execute_batch("BEGIN").unwrap();
            for r in 0..rows {
                let vals: Vec<String> = (0..COLUMNS).map(|i| (r * i).to_string()).collect();
                c.execute(&format!("INSERT INTO w VALUES ({r}, {})", vals.join(", ")), []).unwrap();
            }
            c.execute_batch("COMMIT").unwrap();
            apply_changes(&d, &read_changes(&c));
        }
        "w6u" if crr => {
            insert_rows(&c, 0, rows);
            c.execute_batch("UPDATE t SET b = b + 1").unwrap();
            let changes = read_changes(&c);
            apply_changes(&fresh(&dir, "dst.db", true, tuned), &changes);
        }
        "w6u" => {
            insert_rows(&c, 0, rows);
            c.execute_batch("UPDATE t SET b = b + 1").unwrap();
            let d = fresh(&dir, "dst.db", false, tuned);
            if mode == "floor" {
                shared::add_trigger_floor(&d);
            }
            shared::plain_apply(&c, &d);
        }
        "w5" | "w6" | "w7" if crr => {
            insert_rows(&c, 0, rows);
            let changes = read_changes(&c);
            if w != "w5" {
                let d = fresh(&dir, "dst.db", true, tuned);
                apply_changes(&d, &changes);
                if w == "w7" {
                    w7(&c, &d);
                }
            }
        }
        "w5" | "w6" | "w7" => {
            insert_rows(&c, 0, rows);
            let mut s = c.prepare("SELECT a, b, c FROM t").unwrap();
            let cells: Vec<[rusqlite::types::Value; 3]> = s.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?])).unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(cells.len() as i64, rows);
            if w != "w5" {
                let d = fresh(&dir, "dst.db", false, tuned);
                if mode != "plain" {
                    shared::add_trigger_floor(&d);
                }
                if mode == "nested" {
                    shared::nested_apply(&c, &d);
                } else {
                    shared::plain_apply(&c, &d);
                }
                if w == "w7" {
                    w7_plain(&c, &d);
                }
            }
        }
        _ => panic!("{usage}"),
    }
    drop(c);
    std::fs::remove_dir_all(&dir).ok();
}

/// Every change since `v` (its own symbol, for --toggle-collect).
#[inline(never)]
fn since_read(c: &rusqlite::Connection, v: i64) -> usize {
    let mut s = c.prepare_cached("SELECT * FROM crsql_changes WHERE db_version > ?1").unwrap();
    let rows = s.query_map([v], |r| (0..9).map(|i| r.get::<_, rusqlite::types::Value>(i)).collect::<Result<Vec<_>, _>>()).unwrap();
    rows.inspect(|r| assert!(r.is_ok(), "{r:?}")).count()
}

/// The runner's plain W7 (its own symbol, for --toggle-collect).
#[inline(never)]
fn w7_plain(c: &rusqlite::Connection, d: &rusqlite::Connection) {
    shared::plain_exchange(c, d);
}

/// The runner's W7 on two converged replicas (its own symbol, for --toggle-collect).
#[inline(never)]
fn w7(c: &rusqlite::Connection, d: &rusqlite::Connection) {
    let version = |x: &rusqlite::Connection| x.query_row("SELECT crsql_db_version()", [], |r| r.get::<_, i64>(0)).unwrap();
    let (vc, vd) = (version(c), version(d));
    shared::w7_exchange(c, d, vc, vd);
}
