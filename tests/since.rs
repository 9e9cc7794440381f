//! "Changes since V" on bucket clocks, which find the rows written since V through crr_dirty
//! buckets of the clock's rowids instead of a per-row index (src/storage/dirty.rs): every
//! bounded read must equal the full scan filtered by db_version, whatever wrote the rows
//! (inserts, updates, deletes, resurrections, key changes, merges), whichever buckets the keys
//! fall in (negative keys, the ends of the integer range, bucket edges), and across statement
//! and savepoint rollbacks; and crr_dirty must stay no larger than the clock. Both layouts: a
//! rowid clock (the key is the clock's rowid) and a packed-key one (the clock gives its rows
//! rowids of its own as they are written, and marks them by range).

mod common;
use common::*;
use rusqlite::Connection;

/// Keys over many buckets of 32: both edges of some, negative keys, the integer range's ends.
const KEYS: [i64; 14] = [0, 1, 31, 32, 63, 64, 100, -1, -32, -33, 4096, i64::MAX, i64::MIN, i64::MAX - 31];

fn setup(c: &Connection) {
    setup_as(c, ROWID);
}

/// The two clock layouts, for the same statements: an `INTEGER PRIMARY KEY` is the rowid, an
/// `INT PRIMARY KEY` is not.
const ROWID: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER)";
const PACKED: &str = "CREATE TABLE t(id INT PRIMARY KEY NOT NULL, a TEXT, b INTEGER)";

fn setup_as(c: &Connection, create: &str) {
    c.execute_batch(&format!("{create}; SELECT crsql_as_crr('t');")).unwrap();
}

/// One random write statement.
fn write(r: &mut Rng) -> String {
    let (k, v) = (*r.pick(&KEYS), r.below(5));
    match r.below(10) {
        // A run of appends, in a region of its own: keys above the others there (and, while
        // the integer range's top keys are not there, above all: the clock's tail).
        9 => format!("INSERT INTO t SELECT coalesce(max(id), 4999) + 1, 'n', {v} FROM t WHERE id BETWEEN 5000 AND 1000000"),
        0 | 1 => format!("INSERT OR IGNORE INTO t VALUES ({k}, 'a{v}', {v})"),
        2 | 3 => format!("UPDATE t SET b = {v} WHERE id = {k}"),
        4 => format!("UPDATE t SET a = 'all{v}' WHERE id % 3 = {}", v % 3),
        5 => format!("DELETE FROM t WHERE id = {k}"),
        6 => format!("INSERT OR REPLACE INTO t VALUES ({k}, 'r{v}', {v})"),
        7 => format!("UPDATE OR REPLACE t SET id = {} WHERE id = {k}", r.pick(&KEYS)),
        _ => format!("DELETE FROM t WHERE b = {v}"),
    }
}

/// The checks: every bucket clock row is covered by an entry of its bucket at its dbv or
/// later; crr_dirty is no larger than the clock; and for every V, the changes since V are the
/// full scan's changes with db_version > V.
fn check(c: &Connection, ctx: &str) {
    if std::env::var_os("CRR_SINCE_VERBOSE").is_some() {
        let mut s = c.prepare("SELECT rowid, cl, dbv FROM crr_clock_1 ORDER BY rowid").unwrap();
        let rows: Vec<(i64, i64, i64)> = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(|r| r.unwrap()).collect();
        let mut s = c.prepare("SELECT dbv, bucket FROM crr_dirty ORDER BY bucket, dbv").unwrap();
        let dirty: Vec<(i64, i64)> = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
        println!("{ctx}: clock (pk, cl, dbv) {rows:?}\n  crr_dirty (dbv, bucket) {dirty:?}");
    }
    // (Rows in the tail, the buckets from the one crr_tails names, need none.)
    let uncovered: i64 = one(
        c,
        "SELECT count(*) FROM crr_clock_1 AS k WHERE NOT EXISTS \
         (SELECT 1 FROM crr_dirty AS d WHERE d.tid = 1 AND d.bucket = k.rowid >> 5 AND d.dbv >= k.dbv) \
         AND NOT EXISTS (SELECT 1 FROM crr_tails AS l WHERE l.tid = 1 AND k.rowid >> 5 >= l.bucket)",
    );
    assert_eq!(uncovered, 0, "{ctx}: clock rows without a covering crr_dirty entry");
    let (entries, rows): (i64, i64) = (one(c, "SELECT count(*) FROM crr_dirty "), one(c, "SELECT count(*) FROM crr_clock_1"));
    assert!(entries <= rows, "{ctx}: crr_dirty has {entries} entries for {rows} clock rows");
    let all = changes(c);
    let top = all.iter().map(|x| x.db_version).max().unwrap_or(0);
    for v in 0..=top {
        // Since V, and the windows a transport may read in batches: a row's clock dbv is
        // its highest db_version, so a window must still find the entries of rows written
        // again after it.
        let windows: [Check<String, i64>; 4] = [
            (format!("db_version > {v}"), Box::new(move |d| d > v)),
            (format!("db_version > {v} AND db_version <= {}", v + 2), Box::new(move |d| d > v && d <= v + 2)),
            (format!("db_version = {v}"), Box::new(move |d| d == v)),
            (format!("db_version <= {v}"), Box::new(move |d| d <= v)),
        ];
        for (clause, keep) in &windows {
            let mut want: Vec<_> = all.iter().filter(|x| keep(x.db_version)).cloned().collect();
            let mut got = changes_where(c, &format!("WHERE {clause}"));
            let key = |x: &Change| (x.db_version, x.seq);
            want.sort_by_key(key);
            got.sort_by_key(key);
            assert_eq!(got, want, "{ctx}: changes where {clause}");
        }
    }
}

#[test]
fn since_reads_agree_with_a_full_scan_for_every_version() {
    run_seeds("CRR_SINCE", 12, "CRR_SINCE_SEED={seed} cargo test --release --test since -- since_reads", |seed, _| {
        for create in [ROWID, PACKED] {
            since_reads_at(seed, create);
        }
    });
}

fn since_reads_at(seed: u64, create: &str) {
    {
        let mut r = Rng(seed);
        let c = mem();
        setup_as(&c, create);
        let other = mem();
        setup_as(&other, create);
        for step in 0..30 {
            let ctx = format!("{create}: seed {seed} step {step}");
            let stmts: Vec<String> = (0..1 + r.below(4)).map(|_| write(&mut r)).collect();
            // A read of crsql_changes writes the entries held back so far, so that a rollback
            // after it undoes written entries, which must then be written again.
            let read = "SELECT count(*) FROM crsql_changes WHERE db_version > 0";
            let run = |conn: &Connection, sql: &str| {
                if std::env::var_os("CRR_SINCE_VERBOSE").is_some() {
                    println!("{ctx}: {sql}");
                }
                conn.execute_batch(sql)
            };
            match r.below(7) {
                // Nested savepoints with reads (which write the entries held back so far) at
                // two depths, a release, then a rollback to the outer one or a release of it.
                6 => {
                    let w: Vec<String> = (0..3).map(|_| write(&mut r)).collect();
                    let end = if r.below(2) == 0 { "ROLLBACK TO a; RELEASE a" } else { "RELEASE a" };
                    run(
                        &c,
                        &format!(
                            "BEGIN; {}; SAVEPOINT a; {}; SAVEPOINT b; {}; {read}; RELEASE b; {}; {read}; {end}; {}; COMMIT;",
                            stmts[0],
                            w[0],
                            w[1],
                            w[2],
                            stmts.join("; ")
                        ),
                    )
                    .unwrap()
                }
                // A transaction whose middle part rolls back, then writes the same rows again.
                0 => {
                    let again = write(&mut r);
                    run(&c, &format!("BEGIN; {}; SAVEPOINT s; {again}; {read}; ROLLBACK TO s; {again}; {}; COMMIT;", stmts[0], stmts.join("; "))).unwrap()
                }
                // A statement that fails after writing two rows, inside a transaction; then the
                // same rows are written.
                1 => {
                    run(&c, &format!("BEGIN; INSERT OR REPLACE INTO t VALUES (7777, 'anchor', 99); {}; {read};", stmts.join("; "))).unwrap();
                    let e = run(&c, "INSERT INTO t(id, a) VALUES (1000, 'x'), (1001, 'y'), (7777, 'taken')").unwrap_err();
                    assert!(e.to_string().contains("UNIQUE"), "{e}");
                    run(&c, "INSERT OR REPLACE INTO t VALUES (1001, 'z', 1); COMMIT;").unwrap();
                }
                // Merges from another replica's writes.
                2 => {
                    run(&other, &format!("BEGIN; {}; COMMIT;", stmts.join("; "))).unwrap();
                    apply(&c, &changes(&other)).unwrap();
                }
                // Autocommit statements (transactions that mark one bucket).
                3 => {
                    for s in &stmts {
                        run(&c, s).unwrap();
                    }
                }
                _ => run(&c, &format!("BEGIN; {}; COMMIT;", stmts.join("; "))).unwrap(),
            }
            check(&c, &ctx);
        }
    }
}

/// Rows rewritten in many transactions leave one entry per bucket and dbv of the rows, not one
/// per transaction: the entry at a row's previous dbv goes when the row is written again.
#[test]
fn crr_dirty_stays_no_larger_than_the_clock() {
    let c = mem();
    setup(&c);
    c.execute_batch("BEGIN").unwrap();
    for i in 0..64 {
        c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [i]).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_dirty "), 2, "64 rows in one transaction: 2 buckets");
    for round in 1..200 {
        c.execute("UPDATE t SET b = ?1", [round]).unwrap();
    }
    // (Bucket 1 is the tail, the buckets from the highest row's: its rows need no entry.)
    assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), 1);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_dirty "), 1, "every row rewritten: still one entry for bucket 0");
    for round in 0..100 {
        c.execute("UPDATE t SET b = -1 WHERE id = ?1", [round % 64]).unwrap();
    }
    let entries: i64 = one(&c, "SELECT count(*) FROM crr_dirty ");
    assert!(entries <= 64, "{entries} entries for 64 rows");
    check(&c, "after single-row updates");
}

/// Rows appended one transaction each (as an app inserts, with new keys above the others)
/// write no entry while they land in the tail, the buckets from the highest row's: one entry
/// per bucket the tail leaves behind, not one per transaction (each was a page more per
/// commit). Both layouts.
#[test]
fn appended_rows_are_found_through_the_tail_without_an_entry_each() {
    for create in [ROWID, PACKED] {
        let c = mem();
        setup_as(&c, create);
        for i in 0..100 {
            c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [i]).unwrap();
            if i % 10 == 0 {
                check(&c, &format!("{create}: after row {i}"));
            }
        }
        // One entry per bucket below the tail, at its rows' highest db_version, besides those
        // of the first transactions (before the clock had a tail, they wrote entries each: it
        // gets one once two transactions in a row have appended to it).
        let entries: i64 = one(&c, "SELECT count(*) FROM crr_dirty WHERE dbv > 3");
        assert_eq!(entries, 3, "{create}: entries for 100 rows in 4 buckets");
        assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), one::<i64>(&c, "SELECT max(rowid) >> 5 FROM crr_clock_1"), "{create}");
        // Updates of rows in the tail and below it, one transaction each.
        for i in 0..20 {
            c.execute("UPDATE t SET b = ?1 WHERE id = ?2", [i, (i * 37) % 100]).unwrap();
        }
        check(&c, &format!("{create}: after updates"));
        // The tail goes with the clock.
        c.execute_batch("SELECT crsql_as_table('t')").unwrap();
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tails") + one::<i64>(&c, "SELECT count(*) FROM crr_dirty"), 0, "{create}");
    }
}

/// A clock gets a tail only once two transactions in a row append to it: clocks written in
/// turn get none (every read since V reads each tail, a seek and a bucket's rows).
#[test]
fn clocks_written_in_turn_get_no_tail() {
    let c = mem();
    c.execute_batch(&format!("{ROWID}; CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u');")).unwrap();
    for i in 0..50 {
        c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [i]).unwrap();
        c.execute("INSERT INTO u VALUES (?1, 'x')", [i]).unwrap();
    }
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tails"), 0);
    c.execute_batch("INSERT INTO u VALUES (100, 'y'); INSERT INTO u VALUES (101, 'y'); INSERT INTO u VALUES (102, 'y');").unwrap();
    assert_eq!(one::<String>(&c, "SELECT group_concat(tid) FROM crr_tails"), "2");
    let all = changes(&c);
    assert_eq!(changes_where(&c, "WHERE db_version > 99"), all.iter().filter(|x| x.db_version > 99).cloned().collect::<Vec<_>>());
}

/// At most `TAILS_MAX` (8) clocks have a tail: a ninth clock appended to in a row takes the
/// place of the one whose tail moved least recently, whose rows get their entries; every
/// read since V stays the full scan's.
#[test]
fn no_more_than_eight_clocks_keep_a_tail() {
    let c = mem();
    for i in 0..12 {
        c.execute_batch(&format!("CREATE TABLE t{i}(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t{i}');")).unwrap();
    }
    for round in 0..2 {
        for i in 0..12 {
            for k in 0..40 {
                c.execute(&format!("INSERT INTO t{i} VALUES (?1, 'x')"), [round * 100 + k]).unwrap();
            }
            let tails: i64 = one(&c, "SELECT count(*) FROM crr_tails");
            assert!(tails <= 8, "{tails} tails");
        }
    }
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tails"), 8);
    // Every clock row has a covering entry or lies in its clock's tail.
    for tid in 1..=12 {
        let uncovered: i64 = one(
            &c,
            &format!(
                "SELECT count(*) FROM crr_clock_{tid} AS k WHERE NOT EXISTS \
                 (SELECT 1 FROM crr_dirty AS d WHERE d.tid = {tid} AND d.bucket = k.rowid >> 5 AND d.dbv >= k.dbv) \
                 AND NOT EXISTS (SELECT 1 FROM crr_tails AS l WHERE l.tid = {tid} AND k.rowid >> 5 >= l.bucket)"
            ),
        );
        assert_eq!(uncovered, 0, "clock {tid}");
    }
    let all = changes(&c);
    let top = all.iter().map(|x| x.db_version).max().unwrap();
    for v in (0..=top).step_by(37) {
        let want: Vec<_> = all.iter().filter(|x| x.db_version > v).cloned().collect();
        let mut got = changes_where(&c, &format!("WHERE db_version > {v}"));
        got.sort_by_key(|x| (x.db_version, x.seq));
        assert_eq!(got.len(), want.len(), "since {v}");
        assert_eq!(got, want, "since {v}");
    }
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), top);
}

/// Two connections that append and update rows in turn, on one file: each keeps what it knew
/// of the tail for its next transaction only while the other has not committed since (the
/// data version says), and either layout stays covered.
/// (Seeds: `CRR_TURNS_SEEDS`/`FROM`/`SEED`, as `run_seeds` says; seed 0 is the one this test
/// ran alone until stop 44, when connections taking turns started tails too.)
#[test]
fn connections_taking_turns_keep_every_row_covered() {
    run_seeds("CRR_TURNS", 3, "CRR_TURNS_SEED={seed} cargo test --release --test since -- connections_taking_turns", |seed, _| {
        for (i, create) in [ROWID, PACKED].into_iter().enumerate() {
            turns_at(seed, i as u64, create);
        }
    });
}

fn turns_at(seed: u64, i: u64, create: &str) {
    {
        let path = tmpdir(&format!("since-turns-{seed}-{i}")).join("db.sqlite3");
        let a = open(path.to_str().unwrap());
        a.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        setup_as(&a, create);
        let b = open(path.to_str().unwrap());
        let mut r = Rng(7 + i + 2 * seed);
        let mut next = 0;
        for step in 0..200 {
            let c = if r.below(3) == 0 { &b } else { &a };
            if r.below(4) == 0 && next > 0 {
                c.execute("UPDATE t SET b = b + 1 WHERE id = ?1", [r.below(next as u64) as i64]).unwrap();
            } else {
                // Now and then several rows in one transaction, or one rolled back.
                let n = if r.below(8) == 0 { 1 + r.below(70) as i64 } else { 1 };
                let end = if r.below(10) == 0 { "ROLLBACK" } else { "COMMIT" };
                c.execute_batch(&format!(
                    "BEGIN; WITH RECURSIVE k(v) AS (SELECT {next} UNION ALL SELECT v + 1 FROM k WHERE v < {}) INSERT INTO t SELECT v, 'x', 0 FROM k; {end};",
                    next + n - 1
                ))
                .unwrap();
                if end == "COMMIT" {
                    next += n;
                }
            }
            if step % 40 == 0 {
                check(&a, &format!("{create}: seed {seed} step {step}"));
            }
        }
        check(&b, &format!("{create}: seed {seed} at the end"));
    }
}

/// Connections that take turns at appending start a tail too: where a connection knows
/// nothing of the last transaction (the other made it), the last one's entry at the clock's
/// top bucket says that it appended (each commit wrote a crr_dirty page until stop 44, 3.11
/// WAL frames per single-row commit where one connection writes 2.12). Both layouts.
#[test]
fn connections_appending_in_turn_start_a_tail() {
    for (i, create) in [ROWID, PACKED].into_iter().enumerate() {
        let path = tmpdir(&format!("since-append-turns-{i}")).join("db.sqlite3");
        let a = open(path.to_str().unwrap());
        a.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        setup_as(&a, create);
        let b = open(path.to_str().unwrap());
        for k in 0..100 {
            let c = if k % 2 == 0 { &a } else { &b };
            c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [k]).unwrap();
        }
        assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crr_tails"), 1, "{create}");
        // The first two transactions' entries, then one per bucket the tail left behind.
        let entries: i64 = one(&a, "SELECT count(*) FROM crr_dirty");
        assert!(entries <= 5, "{create}: {entries} entries for 100 rows in 4 buckets");
        check(&a, &format!("{create}: appended in turn"));
        check(&b, &format!("{create}: appended in turn, read by the other"));
    }
}

/// A flush inside a statement (here the first read of the clock mark after a commit the
/// extension took no part in, inside an UPDATE's trigger) sees the row at the db_version its
/// write is about to leave. A move of the tail then (its start below the highest row's bucket,
/// as a rollback can leave it: set by hand here) scans that row; its bucket must not get back
/// the entry the write removes (found by the random reads above, seed 2381: crr_dirty
/// outgrew the clock), so removals come after the moves' scans.
#[test]
fn a_flush_inside_a_statement_gives_back_no_entry_a_write_removes() {
    let path = tmpdir("since-flush-inside").join("db.sqlite3");
    let c = open(path.to_str().unwrap());
    setup(&c);
    for i in [1, 2, 3, 100] {
        c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [i]).unwrap();
    }
    assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), 3);
    c.execute_batch("UPDATE crr_tails SET bucket = 0").unwrap();
    c.execute_batch("UPDATE t SET b = 9 WHERE id = 3").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), 3);
    let stale: i64 = one(
        &c,
        "SELECT count(*) FROM crr_dirty AS d WHERE NOT EXISTS (SELECT 1 FROM crr_clock_1 AS k WHERE k.rowid >> 5 = d.bucket AND k.dbv = d.dbv)",
    );
    assert_eq!(stale, 0, "entries at a db_version no row of their bucket has");
    check(&c, "after the update");
}

/// A connection's first transaction reads its clock mark inside its first statement, before
/// that statement's row is there: the flush then sees the clock's highest row as it was, and
/// must still take the row's bucket for the top (found by seed 2381 too: the clock got a tail
/// below its highest row's bucket).
#[test]
fn a_tail_starts_at_the_highest_row_even_when_the_flush_comes_first() {
    let path = tmpdir("since-first-flush").join("db.sqlite3");
    let c = open(path.to_str().unwrap());
    setup(&c);
    c.execute_batch("INSERT INTO t VALUES (31, 'x', 0)").unwrap();
    drop(c);
    let c = open(path.to_str().unwrap());
    for i in [5000, 0, 4096] {
        c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [i]).unwrap();
    }
    let below: i64 = one(&c, "SELECT count(*) FROM crr_tails WHERE bucket < (SELECT max(rowid) >> 5 FROM crr_clock_1)");
    assert_eq!(below, 0, "a tail below the highest row's bucket");
    check(&c, "after the inserts");
}

/// A rollback can undo a move of the tail and keep the rows written before it: a row the
/// move took out of the tail, without an entry, is then above the tail's start and no longer
/// in its lowest bucket. The next move gives every bucket it takes out of the tail an entry
/// (found by tests/pages.rs, seed 18: a first version entered only the old tail's bucket).
#[test]
fn a_tail_move_undone_by_a_rollback_leaves_no_row_uncovered() {
    let c = mem();
    setup(&c);
    // (A clock gets a tail once two transactions in a row have appended to it: the
    // connection's first transaction reads the clock's rows for its clock mark before its
    // first row is there, so the second and third.)
    c.execute_batch("INSERT INTO t VALUES (1, 'a', 1); INSERT INTO t VALUES (2, 'a', 1); INSERT INTO t VALUES (3, 'a', 1);").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), 0);
    // The read flushes inside s: the tail moves to bucket 1 (row 40's), and the rollback
    // undoes the move; row 40 stays, in bucket 1, without an entry.
    c.execute_batch(
        "BEGIN; INSERT INTO t VALUES (40, 'b', 2); SAVEPOINT s; SELECT count(*) FROM crsql_changes; ROLLBACK TO s; RELEASE s; COMMIT;",
    )
    .unwrap();
    assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), 0);
    check(&c, "after the rollback of the move");
    c.execute_batch("INSERT INTO t VALUES (100, 'c', 3)").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT bucket FROM crr_tails"), 3);
    check(&c, "after the next move");
}

/// A packed-key clock marks the rows it adds by range (dirty::grow): a write that finds its
/// clock row there (an INSERT OR REPLACE over a row, a resurrection) adds none and marks that
/// row's bucket alone, so rewriting a few rows in many transactions leaves no entries of
/// buckets that hold no row; rows added in one transaction get an entry per bucket of 32.
#[test]
fn a_packed_clock_marks_the_rows_it_adds_and_no_others() {
    let c = mem();
    setup_as(&c, PACKED);
    c.execute_batch("BEGIN").unwrap();
    for i in 0..100 {
        c.execute("INSERT INTO t VALUES (?1, 'x', 0)", [i * 7]).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT max(rowid) FROM crr_clock_1"), 100);
    assert_eq!(one::<String>(&c, "SELECT group_concat(bucket) FROM (SELECT bucket FROM crr_dirty ORDER BY bucket)"), "0,1,2,3");
    for round in 0..50 {
        c.execute("INSERT OR REPLACE INTO t VALUES (?1, 'r', ?2)", [(round % 3) * 7, round]).unwrap();
        c.execute_batch(&format!("DELETE FROM t WHERE id = 14; INSERT INTO t VALUES (14, 'back', {round})")).unwrap();
    }
    assert_eq!(one::<i64>(&c, "SELECT max(rowid) FROM crr_clock_1"), 100, "no clock row added");
    let buckets: i64 = one(&c, "SELECT count(DISTINCT bucket) FROM crr_dirty ");
    assert_eq!(buckets, 4, "only the buckets of the 100 rows");
    assert!(one::<i64>(&c, "SELECT count(*) FROM crr_dirty ") <= 100);
    check(&c, "after rewrites of a few rows");
    // Rows added in a transaction that a savepoint rollback partly undid, then more: their
    // rowids are given out again, and all are marked.
    c.execute_batch("BEGIN; INSERT INTO t VALUES (1000, 'a', 1); SAVEPOINT s; INSERT INTO t VALUES (1001, 'b', 1);").unwrap();
    one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE db_version > 0");
    c.execute_batch("ROLLBACK TO s; RELEASE s; INSERT INTO t VALUES (1002, 'c', 1); COMMIT;").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT max(rowid) FROM crr_clock_1"), 102);
    check(&c, "after a rollback of added rows");
}

/// A crsql_as_crr of a packed-key table rolled back to a savepoint takes the clock and its
/// backfill's rows with it; the transaction's later writes mark only what is there. (A first
/// version of the range marks kept the range of the clock rolled back, and the next read
/// failed with `no such table: main.crr_clock_2`; found by tests/rollbacks.rs.)
#[test]
fn a_packed_clock_rolled_back_with_its_crsql_as_crr_is_forgotten() {
    let c = mem();
    setup_as(&c, ROWID);
    c.execute_batch(
        "CREATE TABLE p(k TEXT PRIMARY KEY NOT NULL, v); INSERT INTO p VALUES ('a', 1);
         BEGIN; INSERT INTO t VALUES (1, 'x', 1); SAVEPOINT s; SELECT crsql_as_crr('p'); INSERT INTO p VALUES ('b', 2);
         ROLLBACK TO s; RELEASE s; INSERT INTO t VALUES (2, 'y', 2); COMMIT;",
    )
    .unwrap();
    assert_eq!(changes(&c).len(), 4);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables"), 1);
    check(&c, "after the rollback");
}

/// A packed-key clock's row added in a savepoint, then a crsql_as_table of the table inside a
/// deeper one (its flush marks the row's bucket there) that rolls back: the row stays, and so
/// must its entry. (Until 2026-12-07 the range's marks took the flush's depth, the rollback
/// dropped them, and crsql_db_version() reported the version before the row's, which the
/// next transaction then took again: tests/rollbacks.rs, seed 102180.)
#[test]
fn a_packed_clocks_rows_keep_their_entries_when_a_deeper_savepoint_rolls_back() {
    let c = mem();
    setup_as(&c, PACKED);
    c.execute_batch("INSERT INTO t VALUES (1, 'x', 0)").unwrap();
    c.execute_batch(
        "SAVEPOINT s0; SAVEPOINT s1; INSERT OR REPLACE INTO t VALUES (5, 'p', 0); SAVEPOINT s2; SAVEPOINT off;
         SELECT crsql_as_table('t'); INSERT OR REPLACE INTO t VALUES (6, 'u', 9); ROLLBACK TO off; RELEASE off; RELEASE s0;",
    )
    .unwrap();
    let top = changes(&c).iter().map(|x| x.db_version).max().unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), top);
    check(&c, "after the rollback");
}

/// A packed-key clock whose table holds rows that the extension did not add (another program
/// wrote the clock table) is refused at the flush of the transaction that notices it, rather
/// than marked wrongly or marked bucket by bucket up to an arbitrary rowid.
#[test]
fn a_packed_clock_with_rows_written_by_others_is_an_error() {
    let c = mem();
    setup_as(&c, PACKED);
    c.execute_batch("INSERT INTO t VALUES (1, 'x', 1)").unwrap();
    c.execute_batch("BEGIN; INSERT INTO t VALUES (2, 'y', 2); INSERT INTO crr_clock_1(rowid, pk, cl, dbv, clock) VALUES (1000000, x'01', 1, 1, x'');").unwrap();
    let e = c.execute_batch("COMMIT").unwrap_err().to_string();
    assert!(e.contains("clock table main.\"crr_clock_1\" holds rows that sqlite-crr did not write") && e.contains("damaged"), "{e}");
    // (SQLite rolls back a transaction whose commit fails there.)
    assert!(c.is_autocommit());
    assert_eq!(changes(&c).len(), 2);
}

/// A reader that saw crsql_db_version() = V finds later changes with db_version > V even when
/// the table whose entry set V goes away (the floor covers crr_dirty's entries too).
#[test]
fn db_versions_stay_above_every_entry_when_a_clock_goes() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT);
         SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u');
         INSERT INTO u VALUES (1, 'u'); INSERT INTO t VALUES (1, 't'); INSERT INTO t VALUES (2, 't');",
    )
    .unwrap();
    let seen: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute_batch("SELECT crsql_as_table('t')").unwrap();
    c.execute_batch("INSERT INTO u VALUES (2, 'after')").unwrap();
    let after = changes_where(&c, &format!("WHERE db_version > {seen}"));
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_dirty WHERE tid = 1"), 0, "t's entries went with its clock");
}

/// The same when a DROP COLUMN takes the entries that held the highest db_version (found by
/// tests/alters.rs): the next transaction reused it, and a peer that had synced up to it never
/// got that transaction's changes. Both clock layouts.
#[test]
fn db_versions_stay_above_every_entry_when_a_column_goes() {
    for create in ["CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a, b)", "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a, b) WITHOUT ROWID"] {
        let c = mem();
        c.execute_batch(&format!("{create}; SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 1, 1); UPDATE t SET b = 2;")).unwrap();
        let seen: i64 = one(&c, "SELECT crsql_db_version()");
        c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b; SELECT crsql_commit_alter('t');").unwrap();
        c.execute_batch("INSERT INTO t VALUES (2, 'after')").unwrap();
        assert!(one::<i64>(&c, "SELECT crsql_db_version()") > seen, "{create}");
        let after = changes_where(&c, &format!("WHERE db_version > {seen}"));
        assert_eq!(after.len(), 1, "{create}: {after:?}");
    }
}

/// Entries held back that fail to be written (here a trigger of the app refuses them when a
/// read of crsql_changes flushes them) are held back again, and written by the next flush.
#[test]
fn entries_that_fail_to_be_written_are_kept_for_the_next_try() {
    let c = mem();
    setup(&c);
    c.execute_batch("BEGIN; INSERT INTO t VALUES (1, 'a', 1); INSERT INTO t VALUES (100, 'b', 2); INSERT INTO t VALUES (200, 'c', 3);").unwrap();
    c.execute_batch("CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.crr_dirty BEGIN SELECT RAISE(ABORT, 'refused'); END;").unwrap();
    let e = c.prepare("SELECT count(*) FROM crsql_changes").unwrap().query_row([], |r| r.get::<_, i64>(0)).unwrap_err().to_string();
    assert!(e.contains("refused"), "{e}");
    c.execute_batch("DROP TRIGGER temp.refuse; COMMIT;").unwrap();
    check(&c, "after a refused flush");
}

/// Runs `before` (which ends inside savepoints), reads crsql_changes there (expecting `seen`
/// changes; the read writes the entries held back so far at that depth, `entries` of them in
/// all), runs `after` (rollbacks, releases, the commit), then checks that the `kept` changes
/// since the start are found and every clock row is covered.
fn flush_inside_then(before: &str, seen: i64, entries: i64, after: &str, kept: usize, ctx: &str) {
    let c = mem();
    setup(&c);
    let v: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute_batch(before).unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), seen, "{ctx}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_dirty "), entries, "{ctx}: flushed by the read");
    c.execute_batch(after).unwrap();
    assert_eq!(changes_where(&c, &format!("WHERE db_version > {v}")).len(), kept, "{ctx}");
    check(&c, ctx);
}

/// Entries a read flushed inside a savepoint are undone by a rollback to it, while the rows
/// they cover were written before it and stay: they are held back again, and the commit
/// writes them (a read since V finds the rows).
#[test]
fn entries_undone_by_a_rollback_are_written_again() {
    let before = "BEGIN; INSERT INTO t VALUES (1, 'a', 1); INSERT INTO t VALUES (100, 'b', 2); SAVEPOINT s;";
    flush_inside_then(before, 4, 2, "ROLLBACK TO s; RELEASE s; COMMIT;", 4, "after a rollback of flushed entries");
}

/// Entries flushed inside a savepoint that is then released belong to the level below: a
/// rollback to an enclosing savepoint holds them back again too.
#[test]
fn released_entries_move_down_a_level() {
    let before = "BEGIN; INSERT INTO t VALUES (1, 'a', 1); INSERT INTO t VALUES (100, 'b', 2); \
                  SAVEPOINT outer_s; SAVEPOINT inner_s; INSERT INTO t VALUES (101, 'c', 3);";
    let after = "RELEASE inner_s; INSERT INTO t VALUES (2, 'd', 4); ROLLBACK TO outer_s; \
                 INSERT INTO t VALUES (300, 'e', 5); RELEASE outer_s; COMMIT;";
    // Rows 1, 100 and 300 stay.
    flush_inside_then(before, 6, 2, after, 6, "after a release and a rollback below it");
}

/// Writes that a rollback undoes leave no crr_dirty entry behind: held back, their entry
/// writes go; flushed inside the savepoint, they were undone with them. Entries of writes
/// that stay are written (whatever the depth they were flushed at).
#[test]
fn rolled_back_writes_leave_no_entries() {
    let c = mem();
    setup(&c);
    let entries = |c: &Connection| -> Vec<(i64, i64)> {
        let mut s = c.prepare("SELECT dbv, bucket FROM crr_dirty ORDER BY dbv, bucket").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    c.execute_batch("BEGIN; INSERT INTO t VALUES (1, 'a', 1); INSERT INTO t VALUES (100, 'b', 2); SAVEPOINT s; INSERT INTO t VALUES (200, 'c', 3);").unwrap();
    c.execute_batch("ROLLBACK TO s; SAVEPOINT s2; INSERT INTO t VALUES (300, 'd', 4);").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 6, "the read writes buckets 3 and 9 inside s2");
    assert_eq!(entries(&c), vec![(1, 0), (1, 3), (1, 9)]);
    c.execute_batch("ROLLBACK TO s2; RELEASE s2; RELEASE s;").unwrap();
    // A statement that writes row 400 and then fails.
    let e = c.execute_batch("INSERT INTO t VALUES (400, 'e', 5), (1, 'dup', 6)").unwrap_err();
    assert!(e.to_string().contains("UNIQUE"), "{e}");
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(entries(&c), vec![(1, 0), (1, 3)], "rows 1 and 100 only");
    check(&c, "after rolled-back writes");
}

/// A window of db_versions (what a transport reads in batches) finds the entries of rows that
/// were written again after the window, in both clock layouts: a clock row's dbv is its
/// highest db_version, so it cannot bound a window from above. Until 2026-12-05 these reads
/// bounded the rows by dbv and missed such entries: a batched sync lost them for good.
#[test]
fn a_window_of_versions_finds_rows_written_again_after_it() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');
         CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, a TEXT, b INTEGER) WITHOUT ROWID; SELECT crsql_as_crr('w');
         INSERT INTO t VALUES (1, 'x', 1); INSERT INTO w VALUES ('k', 'x', 1);
         UPDATE t SET b = 2; UPDATE w SET b = 2;",
    )
    .unwrap();
    for table in ["t", "w"] {
        let cells = |clause: &str| -> Vec<(String, i64)> {
            changes_where(&c, &format!("WHERE \"table\" = '{table}' AND {clause}")).into_iter().map(|x| (x.cid, x.db_version)).collect()
        };
        let first: i64 = if table == "t" { 1 } else { 2 };
        let a = vec![("a".to_string(), first)];
        assert_eq!(cells(&format!("db_version = {first}")), a, "{table}");
        assert_eq!(cells(&format!("db_version <= {first}")), a, "{table}");
        assert_eq!(cells(&format!("db_version > {} AND db_version <= {first}", first - 1)), a, "{table}");
        assert_eq!(cells(&format!("db_version BETWEEN {first} AND {first}")), a, "{table}");
    }
}
