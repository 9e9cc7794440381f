//! Paged reads of crsql_changes (LIMIT pages on (db_version, seq), and windows of versions,
//! as a sync reads a large feed). A read left before the end of its scan keeps it for the
//! next page (storage::changes, `Cached`), and a window right after the last read's reads on
//! to the last version; these tests check that every page is what the query means, whatever
//! happens between pages: local writes, another connection's commits, open write
//! transactions, savepoints rolled back, transactions rolled back or committed, read
//! transactions that keep an older snapshot, and inside one write transaction: local writes,
//! merges, writes to other tables, savepoints released or rolled back, and DDL.
//!
//! The expected page comes from the same connection's full feed read with a table filter
//! (`"table" = 't'`), a filter the paging queries never use, so it is always scanned afresh,
//! and is cut in Rust by the page's own predicate.
//! `CRR_PAGES_SEEDS` / `CRR_PAGES_FROM` / `CRR_PAGES_SEED` choose the seeds.

mod common;
use common::*;
use rusqlite::Connection;

/// A page query and the predicate it means on (db_version, seq), given the last page's end.
struct Form {
    sql: &'static str,
    /// Run when `sql` returns less than a page, for the rest of the page (its ?2 is the number
    /// of rows still wanted).
    then: Option<&'static str>,
    /// Whether a change at (db_version, seq) is after the last page's end (v, s).
    after: fn(i64, i64, i64, i64) -> bool,
}

const FORMS: [Form; 6] = [
    Form {
        sql: "WHERE db_version > ?1 OR (db_version = ?1 AND seq > ?2) ORDER BY db_version, seq LIMIT ?3",
        then: None,
        after: |d, q, v, s| (d, q) > (v, s),
    },
    Form { sql: "WHERE (db_version, seq) > (?1, ?2) ORDER BY db_version, seq LIMIT ?3", then: None, after: |d, q, v, s| (d, q) > (v, s) },
    Form {
        sql: "WHERE db_version >= ?1 AND (db_version > ?1 OR seq > ?2) ORDER BY db_version, seq LIMIT ?3",
        then: None,
        after: |d, q, v, s| (d, q) > (v, s),
    },
    // The rest of the version, then the versions after it (the form README recommends).
    Form {
        sql: "WHERE db_version = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        then: Some("WHERE db_version > ?1 AND ?2 >= 0 ORDER BY db_version, seq LIMIT ?2"),
        after: |d, q, v, s| (d, q) > (v, s),
    },
    // Whole versions at a time (a page may repeat the last version's tail: ?2 is unused).
    Form { sql: "WHERE db_version >= ?1 AND ?2 IS NOT NULL ORDER BY db_version, seq LIMIT ?3", then: None, after: |d, _, v, _| d >= v },
    // Windows of ?3 versions after ?1 (?2 unused).
    Form { sql: "WHERE db_version > ?1 AND db_version <= ?1 + ?3 AND ?2 IS NOT NULL", then: None, after: |_, _, _, _| true },
];

/// FORMS' window form: it pages by versions, not by changes.
const WINDOWS: usize = 5;

fn setup(c: &Connection) {
    c.execute_batch("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');").unwrap();
}

/// One random write statement.
fn write(r: &mut Rng) -> String {
    let (k, v) = (r.below(40), r.below(5));
    match r.below(6) {
        0 | 1 => format!("INSERT OR REPLACE INTO t VALUES ({k}, 'a{v}', {v})"),
        2 => format!("UPDATE t SET b = {v} WHERE id = {k}"),
        3 => format!("UPDATE t SET a = 'all{v}' WHERE id % 4 = {}", v % 4),
        4 => format!("DELETE FROM t WHERE id = {k}"),
        _ => format!("INSERT OR IGNORE INTO t VALUES ({k}, NULL, {v})"),
    }
}

/// Where a paging session stands: the last page's end and its query form; and the scan cap
/// of the paging connection, if a test one is set (crr_set_scan_cap_for_testing).
struct Paging {
    v: i64,
    s: i64,
    form: usize,
    cap: Option<u64>,
}

/// Reads the next page on `c` and checks it against the fresh full feed; starts over when
/// the feed is done.
fn page(c: &Connection, p: &mut Paging, r: &mut Rng, verbose: bool) {
    let form = &FORMS[p.form];
    let size = 1 + r.below(6) as i64;
    let mut got = changes_where_with(c, form.sql, &[p.v, p.s, size]);
    if let Some(then) = form.then.filter(|_| (got.len() as i64) < size) {
        got.extend(changes_where_with(c, then, &[p.v, size - got.len() as i64]));
    }
    // (Read whole, as by default: under a test cap it would be read in parts as the pages are.)
    if p.cap.is_some() {
        c.execute_batch("SELECT crr_set_scan_cap_for_testing(NULL)").unwrap();
    }
    let all = changes_where(c, "WHERE \"table\" = 't'");
    if let Some(cap) = p.cap {
        c.execute_batch(&format!("SELECT crr_set_scan_cap_for_testing({cap})")).unwrap();
    }
    let top = all.iter().map(|x| x.db_version).max().unwrap_or(0);
    let mut want: Vec<Change> = all.into_iter().filter(|x| (form.after)(x.db_version, x.seq, p.v, p.s)).collect();
    want.sort_by_key(|x| (x.db_version, x.seq));
    if p.form == WINDOWS {
        want.retain(|x| x.db_version > p.v && x.db_version <= p.v + size);
        got.sort_by_key(|x| (x.db_version, x.seq));
    } else {
        want.truncate(size as usize);
    }
    if verbose {
        println!("page after ({}, {}) form {} size {size}: {} changes", p.v, p.s, p.form, got.len());
    }
    assert_eq!(got, want, "page after ({}, {}) with form {}, size {size}", p.v, p.s, p.form);
    match got.last() {
        _ if p.form == WINDOWS && p.v + size < top => p.v += size,
        Some(last) if p.form != WINDOWS && got.len() as i64 == size => (p.v, p.s) = (last.db_version, last.seq),
        _ => *p = Paging { v: 0, s: -1, form: r.below(FORMS.len() as u64) as usize, cap: p.cap },
    }
}

/// One thing done between two pages inside a write transaction; `peer` is another replica
/// whose changes may be merged.
fn between_pages(a: &Connection, peer: &Connection, r: &mut Rng) {
    match r.below(10) {
        0 | 1 => a.execute_batch(&write(r)).unwrap(),
        // A transport records how far it got: a write to another table.
        2 | 3 => a.execute_batch(&format!("INSERT INTO progress VALUES ({})", r.below(1000))).unwrap(),
        4 => {
            peer.execute_batch(&write(r)).unwrap();
            let since = r.below(4) as i64;
            for c in changes_where(peer, &format!("WHERE db_version > {since}")) {
                apply_one(a, &c).unwrap();
            }
        }
        5 => a.execute_batch(&format!("SAVEPOINT s; {}; ROLLBACK TO s; RELEASE s", write(r))).unwrap(),
        6 => a.execute_batch(&format!("SAVEPOINT s; {}; RELEASE s", write(r))).unwrap(),
        // DDL: a table of the app's, or crsql_as_crr again (its triggers are made anew).
        7 => a.execute_batch("CREATE TABLE IF NOT EXISTS other(x); DROP TABLE other").unwrap(),
        // A column dropped (its entries go, most without a new seq) and added back.
        8 => a
            .execute_batch(
                "SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b; SELECT crsql_commit_alter('t');
                 SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN b INTEGER; SELECT crsql_commit_alter('t');",
            )
            .unwrap(),
        _ => a.execute_batch("SELECT crsql_as_crr('t')").unwrap(),
    }
}

fn run(seed: u64, verbose: bool) {
    let mut r = Rng(seed);
    let dir = tmpdir(&format!("pages-{seed}"));
    let path = dir.join("db.sqlite");
    let a = open(path.to_str().unwrap());
    a.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    setup(&a);
    a.execute_batch("CREATE TABLE progress(n INTEGER)").unwrap();
    let peer = mem();
    setup(&peer);
    let b = open(path.to_str().unwrap());
    b.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    for _ in 0..1 + r.below(8) {
        a.execute_batch(&format!("BEGIN; {}; {}; COMMIT", write(&mut r), write(&mut r))).unwrap();
    }
    // On seeds 2 mod 3 the paging connection's scans hold 1 to 5 changes at a time, so every
    // page past the first few reads on through scans of the rest (storage::changes, `prune`).
    let cap = (seed % 3 == 2).then_some(1 + seed / 3 % 5);
    if let Some(cap) = cap {
        a.execute_batch(&format!("SELECT crr_set_scan_cap_for_testing({cap})")).unwrap();
    }
    let mut p = Paging { v: 0, s: -1, form: r.below(FORMS.len() as u64) as usize, cap };
    for step in 0..60 {
        let what = r.below(100);
        if verbose {
            println!("step {step}: {what}");
        }
        match what {
            0..=54 => page(&a, &mut p, &mut r, verbose),
            55..=62 => a.execute_batch(&write(&mut r)).unwrap(),
            63..=70 => b.execute_batch(&write(&mut r)).unwrap(),
            71..=78 => {
                // A write transaction: pages inside see its writes; after it, the committed state.
                a.execute_batch(&format!("BEGIN; {}", write(&mut r))).unwrap();
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch(&write(&mut r)).unwrap();
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch(if r.chance(50) { "ROLLBACK" } else { "COMMIT" }).unwrap();
                page(&a, &mut p, &mut r, verbose);
            }
            79..=86 => {
                // A page read before a write transaction that rolls back: the rollback must not
                // leave its writes in a later page, nor hide what was there before.
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch(&format!("BEGIN; {}; SAVEPOINT s; {}", write(&mut r), write(&mut r))).unwrap();
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch("ROLLBACK TO s").unwrap();
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch(if r.chance(50) { "ROLLBACK" } else { "COMMIT" }).unwrap();
                page(&a, &mut p, &mut r, verbose);
            }
            87..=90 => {
                // Pages inside one write transaction, with writes of all kinds between them.
                a.execute_batch(&format!("BEGIN; {}", write(&mut r))).unwrap();
                for _ in 0..1 + r.below(6) {
                    page(&a, &mut p, &mut r, verbose);
                    between_pages(&a, &peer, &mut r);
                }
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch(if r.chance(50) { "ROLLBACK" } else { "COMMIT" }).unwrap();
                page(&a, &mut p, &mut r, verbose);
            }
            91..=94 => {
                // A read transaction keeps its snapshot while the other connection commits.
                a.execute_batch("BEGIN").unwrap();
                page(&a, &mut p, &mut r, verbose);
                b.execute_batch(&write(&mut r)).unwrap();
                page(&a, &mut p, &mut r, verbose);
                a.execute_batch("COMMIT").unwrap();
                page(&a, &mut p, &mut r, verbose);
            }
            _ => {
                // A write statement that reads the feed while it writes (in the same statement).
                a.execute_batch(&format!(
                    "INSERT OR REPLACE INTO t SELECT 100 + seq, cid, db_version FROM crsql_changes \
                     WHERE db_version >= {} ORDER BY db_version, seq LIMIT 2",
                    p.v
                ))
                .unwrap();
                page(&a, &mut p, &mut r, verbose);
            }
        }
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pages_agree_with_the_feed_whatever_happens_between_them() {
    run_seeds("CRR_PAGES", 40, "CRR_PAGES_SEED={seed} cargo test --release --test pages -- --nocapture", run);
}

/// A CRR of 1,000 rows written by 50 transactions of 20 (2,000 changes).
fn feed_of_50_transactions() -> Connection {
    let c = mem();
    setup(&c);
    for txn in 0..50 {
        let rows: Vec<String> = (0..20).map(|i| format!("({}, 'x', {i})", txn * 20 + i)).collect();
        c.execute_batch(&format!("BEGIN; INSERT INTO t VALUES {}; COMMIT", rows.join(", "))).unwrap();
    }
    c
}

/// Clock rows this connection's crsql_changes scans have read so far.
fn clock_rows_read(c: &Connection) -> i64 {
    one(c, "SELECT crr_debug_clock_rows_read()")
}

/// Reads the whole feed in pages of 10 (FORMS[0]); after each full page, `between` gets the
/// page's end (db_version, seq) and the changes read so far. Returns how many were read.
fn read_in_pages_of_10(c: &Connection, mut between: impl FnMut(i64, i64, usize)) -> usize {
    let (mut v, mut s, mut n) = (0, -1, 0);
    loop {
        let got = changes_where_with(c, FORMS[0].sql, &[v, s, 10]);
        n += got.len();
        match got.last() {
            Some(last) if got.len() == 10 => (v, s) = (last.db_version, last.seq),
            _ => return n,
        }
        between(v, s, n);
    }
}

/// The cache makes paging one scan: reading a feed of many transactions in pages of 10 reads
/// each clock row about once, not once per page (crr_debug_clock_rows_read counts them).
#[test]
fn pages_read_the_clock_once() {
    let c = feed_of_50_transactions();
    let before = clock_rows_read(&c);
    let n = read_in_pages_of_10(&c, |_, _, _| {});
    assert_eq!(n, 2000, "every change read once");
    let read = clock_rows_read(&c) - before;
    // One scan of 1,000 rows, and a small one for the OR's second branch of the last page.
    assert!(read <= 1_100, "paging read {read} clock rows for 1,000 rows");
}

/// Inside a write transaction too: a transport that records its progress in another table
/// between pages still reads each clock row about once. A write to the CRR between pages
/// makes the next page scan again.
#[test]
fn pages_in_a_write_transaction_read_the_clock_once() {
    let c = feed_of_50_transactions();
    c.execute_batch("CREATE TABLE progress(v INTEGER, s INTEGER); BEGIN; INSERT INTO progress VALUES (0, -1)").unwrap();
    let rows_read = || clock_rows_read(&c);
    let before = rows_read();
    let n = read_in_pages_of_10(&c, |v, s, n| {
        c.execute("UPDATE progress SET v = ?1, s = ?2", [v, s]).unwrap();
        if n == 1000 {
            // Half way: one row of the CRR written, then the next page scans again.
            let at = rows_read();
            c.execute_batch("UPDATE t SET b = -1 WHERE id = 0").unwrap();
            assert_eq!(changes_where_with(&c, FORMS[0].sql, &[v, s, 10]).len(), 10);
            assert!(rows_read() - at >= 500, "a page after a write read only {} clock rows", rows_read() - at);
        }
    });
    assert_eq!(n, 2001, "every change read once, and the write's");
    let read = rows_read() - before;
    // Two scans (before and after the write) and a small one for the last page's OR branch.
    assert!(read <= 1_100 + 550, "paging read {read} clock rows for 1,000 rows");
    c.execute_batch("COMMIT").unwrap();
}

/// A read of more changes than one scan holds (storage::changes, SCAN_CAP: 2^20 changes;
/// here a test cap of 7) goes on through scans of the rest, each holding only its part: a
/// whole read (with `val`), a read since a version, a read of one column and pages of 10 give
/// what one scan gives, and the clocks are read again for each part.
#[test]
fn a_feed_larger_than_a_scan_holds_is_read_in_parts() {
    let c = feed_of_50_transactions();
    // Rows written again later, so that parts end inside the rows' histories.
    c.execute_batch("UPDATE t SET b = -b WHERE id % 7 = 0; DELETE FROM t WHERE id % 11 = 0;").unwrap();
    let reads = |c: &Connection| (changes(c), changes_where(c, "WHERE db_version > 20"), changes_where(c, "WHERE cid = 'b' AND db_version < 40"));
    let whole = reads(&c);
    let before = clock_rows_read(&c);
    let _ = changes(&c);
    let one_scan = clock_rows_read(&c) - before;
    c.execute_batch("SELECT crr_set_scan_cap_for_testing(7)").unwrap();
    let before = clock_rows_read(&c);
    assert_eq!(changes(&c), whole.0, "the whole feed");
    let parts = clock_rows_read(&c) - before;
    assert!(parts > 10 * one_scan, "read in parts: {parts} clock rows read, {one_scan} in one scan");
    assert_eq!(reads(&c), whole);
    assert_eq!(read_in_pages_of_10(&c, |_, _, _| {}), whole.0.len(), "pages of 10");
    c.execute_batch("SELECT crr_set_scan_cap_for_testing(NULL)").unwrap();
    let before = clock_rows_read(&c);
    assert_eq!(changes(&c), whole.0);
    assert_eq!(clock_rows_read(&c) - before, one_scan, "the default cap again");
}

/// Paging through a feed larger than a scan holds reads each part about once, as one read in
/// parts does, in the one-statement form and in the recommended two-query form: a part is cut
/// at the end of a version where it can be, and the scan of the next part, kept, serves the
/// next pages whatever their upper bounds. (Until they were, each part was scanned twice:
/// 16,680 clock rows read in pages of 10 against 7,340 for one read, in parts of 150.)
#[test]
fn paging_a_feed_larger_than_a_scan_reads_each_part_about_once() {
    let c = feed_of_50_transactions();
    c.execute_batch("SELECT crr_set_scan_cap_for_testing(200)").unwrap();
    let before = clock_rows_read(&c);
    let whole = changes(&c);
    let one_read = clock_rows_read(&c) - before;
    let before = clock_rows_read(&c);
    assert_eq!(read_in_pages_of_10(&c, |_, _, _| {}), whole.len());
    let paged = clock_rows_read(&c) - before;
    assert!(paged <= one_read * 11 / 10, "pages of 10 read {paged} clock rows, one read in parts {one_read}");
    let before = clock_rows_read(&c);
    let form = &FORMS[3];
    assert!(form.sql.contains("seq > ?2") && form.then.is_some(), "the recommended form");
    let (mut v, mut s, mut got) = (0i64, -1i64, Vec::new());
    loop {
        let mut page = changes_where_with(&c, form.sql, &[v, s, 10]);
        if page.len() < 10 {
            page.extend(changes_where_with(&c, form.then.unwrap(), &[v, 10 - page.len() as i64]));
        }
        got.extend(page.iter().cloned());
        match page.last() {
            Some(last) if page.len() == 10 => (v, s) = (last.db_version, last.seq),
            _ => break,
        }
    }
    assert_eq!(got, whole, "recommended pages");
    let paged = clock_rows_read(&c) - before;
    assert!(paged <= one_read * 12 / 10, "recommended pages of 10 read {paged} clock rows, one read in parts {one_read}");
}

/// A read in parts reads what one scan would have, not what was written while it went on: a
/// loop that writes a CRR for each change it reads ends (it read its own writes in the next
/// part, and more after them, without end), outside a transaction and inside one, and so
/// does an INSERT INTO a CRR ... SELECT FROM crsql_changes.
#[test]
fn a_read_in_parts_does_not_read_the_writes_made_while_it_goes_on() {
    for in_transaction in [false, true] {
        let c = mem();
        setup(&c);
        c.execute_batch("CREATE TABLE log(id INTEGER PRIMARY KEY NOT NULL, what TEXT); SELECT crsql_as_crr('log');").unwrap();
        if in_transaction {
            c.execute_batch("BEGIN").unwrap();
        }
        for i in 0..40 {
            c.execute("INSERT INTO t VALUES (?1, 'x', ?1)", [i]).unwrap();
        }
        let before = changes(&c);
        c.execute_batch("SELECT crr_set_scan_cap_for_testing(7)").unwrap();
        let mut s = c.prepare("SELECT db_version, seq FROM crsql_changes").unwrap();
        let mut rows = s.query([]).unwrap();
        let mut read = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            read.push((r.get::<_, i64>(0).unwrap(), r.get::<_, i64>(1).unwrap()));
            c.execute("INSERT INTO log VALUES (?1, 'read')", [read.len() as i64]).unwrap();
            assert!(read.len() <= 10 * before.len(), "the read does not end (in a transaction: {in_transaction})");
        }
        drop(rows);
        let want: Vec<(i64, i64)> = before.iter().map(|x| (x.db_version, x.seq)).collect();
        assert_eq!(read, want, "in a transaction: {in_transaction}");
        let n = changes(&c).len();
        c.execute_batch(&format!("INSERT INTO log SELECT 1000 + db_version * 1000 + seq, cid FROM crsql_changes LIMIT {}", 10 * n)).unwrap();
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM log WHERE id >= 1000"), n as i64, "in a transaction: {in_transaction}");
        if in_transaction {
            c.execute_batch("COMMIT").unwrap();
        }
    }
}

/// Windows of versions read one after another: the second reads on to the last version, and
/// the rest are cut from that scan (each clock row read about twice, not once per window).
#[test]
fn windows_read_the_clock_twice() {
    let c = feed_of_50_transactions();
    // Every row written again in one late version: each window scans every row since its start.
    c.execute_batch("UPDATE t SET b = b + 1").unwrap();
    let before = clock_rows_read(&c);
    let mut n = 0;
    for v in (0..=51).step_by(3) {
        n += changes_where_with(&c, "WHERE db_version > ?1 AND db_version <= ?1 + 3", &[v]).len();
    }
    assert_eq!(n, 2000, "every change read once");
    let read = clock_rows_read(&c) - before;
    assert!(read <= 2_000, "18 windows read {read} clock rows for 1,000 rows");
}

/// Under `db_version = V` the feed's order is seq order, so a page inside one large
/// transaction (`ORDER BY seq LIMIT n`) stops after n rows instead of sorting the version.
#[test]
fn one_version_comes_in_seq_order_without_a_sort() {
    let c = mem();
    setup(&c);
    let plan = |sql: &str| -> String {
        let mut s = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        s.query_map([], |r| r.get::<_, String>(3)).unwrap().map(|x| x.unwrap()).collect::<Vec<_>>().join("; ")
    };
    let within = plan("SELECT * FROM crsql_changes WHERE db_version = 3 AND seq > 2 ORDER BY seq LIMIT 5");
    assert!(!within.contains("TEMP B-TREE"), "{within}");
    let across = plan("SELECT * FROM crsql_changes WHERE db_version > 3 ORDER BY seq LIMIT 5");
    assert!(across.contains("TEMP B-TREE"), "{across}");
}
