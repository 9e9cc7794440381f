//! `make bench`: the workload table of the performance issue. Each workload runs on a plain
//! table and on a CRR **in the same run**, and the ratio is what counts (these machines are
//! shared and noisy; absolute times drift). `--quick` runs a small size to keep it working in
//! CI; `--rows N` sets the table size (default 100,000); `--runs N` repeats the whole suite
//! (default 5, quick 1) and prints the ratio of each side's best time, and the median and
//! range of the per-run ratios, because one run on a shared machine can be off by a factor of
//! two.

#[path = "shared.rs"]
mod shared;

use rusqlite::types::Value;
use rusqlite::Connection;
use shared::{add_clock_floor, add_trigger_floor, apply_changes, fresh, fresh_keyed, insert_changes, insert_rows, nested_apply, nested_exchange, plain_apply, plain_exchange, read_changes, w7_exchange, READ_ALL};
use std::path::Path;
use std::time::{Duration, Instant};

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn file_size(c: &Connection) -> i64 {
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    c.query_row("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size", [], |r| r.get(0)).unwrap()
}

/// Reads every row of `sql` on `c`, each of its `cols` columns into an owned value (nothing
/// kept); returns the time and the number of values read.
fn read_all(c: &Connection, sql: &str, cols: usize) -> (Duration, i64) {
    let mut n = 0i64;
    let d = timed(|| {
        let mut s = c.prepare(sql).unwrap();
        let mut r = s.query([]).unwrap();
        while let Some(row) = r.next().unwrap() {
            for i in 0..cols {
                let _v: Value = row.get(i).unwrap();
                n += 1;
            }
        }
    });
    (d, n)
}

/// Reads a table in keyset pages of `page` rows, each of `cols` columns into an owned value
/// (nothing kept). `first` takes the last row's columns `keys` as ?1.. and the page size after
/// them (the first page starts after `start`); when it returns less than a page, `rest` (if any)
/// takes the last row's first key and the number of rows still wanted. Returns the time and
/// the number of rows read.
fn read_pages(c: &Connection, first: &str, rest: Option<&str>, cols: usize, keys: &[usize], start: &[i64], page: i64) -> (Duration, i64) {
    let mut n = 0i64;
    let d = timed(|| {
        let mut s = c.prepare(first).unwrap();
        let mut t = rest.map(|sql| c.prepare(sql).unwrap());
        let mut after: Vec<Value> = start.iter().map(|&k| Value::Integer(k)).collect();
        // Reads the rows of one query; returns how many, and leaves the last one's keys in `after`.
        let read = |mut r: rusqlite::Rows, after: &mut Vec<Value>| {
            let mut got = 0;
            while let Some(row) = r.next().unwrap() {
                let vals: Vec<Value> = (0..cols).map(|i| row.get(i).unwrap()).collect();
                *after = keys.iter().map(|&k| vals[k].clone()).collect();
                got += 1;
            }
            got
        };
        loop {
            let mut args = after.clone();
            args.push(Value::Integer(page));
            let mut got = read(s.query(rusqlite::params_from_iter(args.iter())).unwrap(), &mut after);
            if let Some(t) = t.as_mut().filter(|_| got < page) {
                let args = [after[0].clone(), Value::Integer(page - got)];
                got += read(t.query(rusqlite::params_from_iter(args.iter())).unwrap(), &mut after);
            }
            n += got;
            if got < page {
                break;
            }
        }
    });
    (d, n)
}

struct Row {
    name: &'static str,
    work: i64,
    plain: Duration,
    crr: Duration,
    bar: &'static str,
}

fn rate(work: i64, d: Duration) -> f64 {
    work as f64 / d.as_secs_f64()
}

/// One run of the suite: the table rows, the file sizes after W1 (plain, CRR), and the times of
/// crsql_commit_alter and of W1 on the CRR.
type Run = (Vec<Row>, (i64, i64), (Duration, Duration));

/// Runs every workload once with the given pragmas.
fn run(dir: &Path, rows: i64, tuned: bool) -> Run {
    let mut out = Vec::new();
    let (p, c) = (fresh(dir, "plain.db", false, tuned), fresh(dir, "crr.db", true, tuned));
    let (w1p, w1c) = (timed(|| insert_rows(&p, 0, rows)), timed(|| insert_rows(&c, 0, rows)));
    out.push(Row { name: "W1 insert rows, one transaction", work: rows, plain: w1p, crr: w1c, bar: ">= 0.25" });
    let sizes = (file_size(&p), file_size(&c));
    let single = (rows / 20).clamp(100, 5_000);
    let w2 = |conn: &Connection| {
        timed(|| {
            let mut s = conn.prepare_cached("INSERT INTO t VALUES (?1, 'single', 1, 1.0)").unwrap();
            for i in 0..single {
                s.execute([rows + i]).unwrap();
            }
        })
    };
    let w2p = w2(&p);
    out.push(Row { name: "W2 single-row transactions", work: single, plain: w2p, crr: w2(&c), bar: ">= 0.60" });
    let all = rows + single;
    let w3 = |conn: &Connection| timed(|| conn.execute_batch("UPDATE t SET b = b + 1").unwrap());
    let w3p = w3(&p);
    out.push(Row { name: "W3 update one column of every row", work: all, plain: w3p, crr: w3(&c), bar: ">= 0.20" });
    let w4 = |conn: &Connection| timed(|| conn.execute_batch("DELETE FROM t WHERE id % 10 = 0").unwrap());
    let w4p = w4(&p);
    out.push(Row { name: "W4 delete 10% of rows", work: all / 10, plain: w4p, crr: w4(&c), bar: ">= 0.30" });
    // W5: read every change (plain: read every non-key cell). Both sides read every column
    // into an owned value and keep nothing; W6 gets its copy of the changes from a second,
    // untimed read.
    let (w5p, cells) = read_all(&p, "SELECT a, b, c FROM t", 3);
    let (w5c, read) = read_all(&c, READ_ALL, 9);
    let changes = read_changes(&c);
    assert_eq!(read as usize, changes.len() * 9);
    // Plain: the time of as many cells as there are changes.
    let w5p_scaled = w5p.mul_f64(changes.len() as f64 / cells.max(1) as f64);
    out.push(Row { name: "W5 read all changes (plain: every cell)", work: changes.len() as i64, plain: w5p_scaled, crr: w5c, bar: ">= 0.50" });
    // W5 as a sync reads a large feed: keyset pages of 1,000 changes on (db_version, seq), in
    // README's form (plain: pages of 334 rows on id, about 1,000 cells, the key read too;
    // scaled as W5).
    let (pp, prows) = read_pages(&p, "SELECT a, b, c, id FROM t WHERE id > ?1 ORDER BY id LIMIT ?2", None, 4, &[3], &[i64::MIN], 334);
    let (pc, pread) = read_pages(
        &c,
        &format!("{READ_ALL} WHERE db_version = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
        Some(&format!("{READ_ALL} WHERE db_version > ?1 ORDER BY db_version, seq LIMIT ?2")),
        9,
        &[5, 8],
        &[0, -1],
        1_000,
    );
    assert_eq!((pread as usize, prows * 3), (changes.len(), cells));
    let pp_scaled = pp.mul_f64(changes.len() as f64 / cells.max(1) as f64);
    out.push(Row { name: "  W5 in keyset pages of 1,000 (plain: of 334 rows)", work: changes.len() as i64, plain: pp_scaled, crr: pc, bar: "(no bar)" });
    // W6: apply all changes to an empty replica (plain: one upsert per cell).
    let (p2, c2) = (fresh(dir, "plain2.db", false, tuned), fresh(dir, "crr2.db", true, tuned));
    let w6p = timed(|| plain_apply(&p, &p2));
    let w6c = timed(|| apply_changes(&c2, &changes));
    out.push(Row { name: "W6 apply all changes to an empty replica", work: changes.len() as i64, plain: w6p, crr: w6c, bar: ">= 0.35" });
    // W7: both replicas update the same 10% of rows differently, then exchange both ways.
    let w7p = timed(|| plain_exchange(&p, &p2));
    let (vc, vc2): (i64, i64) = (c.query_row("SELECT crsql_db_version()", [], |r| r.get(0)).unwrap(), c2.query_row("SELECT crsql_db_version()", [], |r| r.get(0)).unwrap());
    let w7c = timed(|| w7_exchange(&c, &c2, vc, vc2));
    out.push(Row { name: "W7 concurrent updates of 10%, exchanged", work: all / 10, plain: w7p, crr: w7c, bar: "<= 2.5x time" });
    // Point reads by id.
    let reads = rows.min(50_000);
    let point = |conn: &Connection| {
        timed(|| {
            let mut s = conn.prepare_cached("SELECT a, b, c FROM t WHERE id = ?1").unwrap();
            let mut k = 12345u64;
            for _ in 0..reads {
                k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let id = (k >> 33) as i64 % rows;
                let _ = s.query_row([id], |r| r.get::<_, Value>(0));
            }
        })
    };
    out.push(Row { name: "point reads by id", work: reads, plain: point(&p), crr: point(&c), bar: ">= 0.95" });
    // An UPDATE whose SQL text is new each time, so each is prepared: SQLite compiles the
    // table's update trigger into it (README, "Preparing statements"). One transaction.
    let texts = (rows / 50).clamp(100, 2_000);
    let prepared = |conn: &Connection| {
        timed(|| {
            conn.execute_batch("BEGIN").unwrap();
            for i in 0..texts {
                conn.execute(&format!("UPDATE t SET b = {i} WHERE id = {}", i * 7 + 1), []).unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        })
    };
    out.push(Row { name: "UPDATE prepared for each row (new SQL text)", work: texts, plain: prepared(&p), crr: prepared(&c), bar: "(no bar)" });
    // commit_alter after adding a column with a default, vs inserting the rows (W1 CRR time).
    let alter = timed(|| c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d INTEGER DEFAULT 0; SELECT crsql_commit_alter('t');").unwrap());
    // The reference rows, after the rest so that their work does not disturb it; each goes
    // under its workload's row. First the changes stored in a plain table and read the same
    // way as W5: what reading nine columns per change costs SQLite itself, whatever produces
    // them.
    // W6's plain upserts into a table with silenced triggers (shared::add_trigger_floor).
    let silenced = fresh(dir, "silenced.db", false, tuned);
    add_trigger_floor(&silenced);
    let w6f = timed(|| plain_apply(&p, &silenced));
    out.insert(7, Row { name: "  the same upserts on a table with silenced triggers", work: changes.len() as i64, plain: w6p, crr: w6f, bar: "(reference)" });
    // And each run from inside a function call of the outer statement, as a merge's write is
    // (shared::nested_apply).
    let nested = fresh(dir, "nested.db", false, tuned);
    add_trigger_floor(&nested);
    let w6n = timed(|| nested_apply(&p, &nested));
    out.insert(8, Row { name: "  the same, each upsert nested in a statement", work: changes.len() as i64, plain: w6p, crr: w6n, bar: "(reference)" });
    // W7 on two replicas of the rows it starts from that have the clock floor and the
    // trigger floor, each merged write nested (shared::nested_exchange).
    let replica = |name: &str| {
        let f = fresh(dir, name, false, tuned);
        add_clock_floor(&f);
        add_trigger_floor(&f);
        insert_rows(&f, 0, all);
        f.execute_batch("DELETE FROM t WHERE id % 10 = 0").unwrap();
        f
    };
    let (f7, g7) = (replica("floor7a.db"), replica("floor7b.db"));
    let w7f = timed(|| nested_exchange(&f7, &g7));
    out.insert(10, Row { name: "  the same on the clock floor, each merged write nested", work: all / 10, plain: w7p, crr: w7f, bar: "(reference, x time)" });
    let feed = fresh(dir, "feed.db", false, tuned);
    feed.execute_batch("CREATE TABLE feed(\"table\", pk, cid, val, col_version, db_version, site_id, cl, seq)").unwrap();
    insert_changes(&feed, "feed", &changes);
    let (w5f, _) = read_all(&feed, "SELECT * FROM feed", 9);
    out.insert(5, Row { name: "  the same changes read from a plain table", work: changes.len() as i64, plain: w5p_scaled, crr: w5f, bar: "(reference)" });
    // Then W1-W4 on the clock floor (shared::add_clock_floor).
    let floor = fresh(dir, "floor.db", false, tuned);
    add_clock_floor(&floor);
    const FLOOR: &str = "  the same on the clock floor";
    let f1 = timed(|| insert_rows(&floor, 0, rows));
    let (f2, f3, f4) = (w2(&floor), w3(&floor), w4(&floor));
    for (at, work, plain, t) in [(4, all / 10, w4p, f4), (3, all, w3p, f3), (2, single, w2p, f2), (1, rows, w1p, f1)] {
        out.insert(at, Row { name: FLOOR, work, plain, crr: t, bar: "(reference)" });
    }
    // W1, W2, W3 and W6 on the table keyed by TEXT, as apps that key rows by UUIDs have them (the
    // same integers as text): its clock holds packed keys.
    let (tp, tc) = (fresh_keyed(dir, "text-plain.db", false, tuned, "TEXT"), fresh_keyed(dir, "text-crr.db", true, tuned, "TEXT"));
    let (t1p, t1c) = (timed(|| insert_rows(&tp, 0, rows)), timed(|| insert_rows(&tc, 0, rows)));
    out.push(Row { name: "text keys: W1 insert rows", work: rows, plain: t1p, crr: t1c, bar: "(no bar)" });
    let (t3p, t3c) = (w3(&tp), w3(&tc));
    out.push(Row { name: "text keys: W3 update one column of every row", work: rows, plain: t3p, crr: t3c, bar: "(no bar)" });
    let text_changes = read_changes(&tc);
    let (tp2, tc2) = (fresh_keyed(dir, "text-plain2.db", false, tuned, "TEXT"), fresh_keyed(dir, "text-crr2.db", true, tuned, "TEXT"));
    let (t6p, t6c) = (timed(|| plain_apply(&tp, &tp2)), timed(|| apply_changes(&tc2, &text_changes)));
    out.push(Row { name: "text keys: W6 apply all changes", work: text_changes.len() as i64, plain: t6p, crr: t6c, bar: "(no bar)" });
    // (Last, so that the rows before it are measured on the same rows as before it was added.)
    out.push(Row { name: "text keys: W2 single-row transactions", work: single, plain: w2(&tp), crr: w2(&tc), bar: "(no bar)" });
    (out, sizes, (alter, w1c))
}

/// The ratio a workload is judged by (CRR/plain throughput, or time for "x time" rows).
fn ratio(r: &Row) -> f64 {
    if r.bar.contains("time") {
        r.crr.as_secs_f64() / r.plain.as_secs_f64()
    } else {
        r.plain.as_secs_f64() / r.crr.as_secs_f64()
    }
}

/// Prints one table from several runs of the suite: per workload, the ratio of each side's
/// best time over the runs (the estimate least moved by a busy spell of a shared machine: it
/// can only slow a run down), then the median and the range of the per-run ratios.
fn print(title: &str, runs: &[Run]) {
    println!("\n{title} ({} run{})", runs.len(), if runs.len() == 1 { "" } else { "s" });
    println!("| workload | work | plain rows/s (best) | CRR rows/s (best) | CRR/plain (best times) | median | range | bar |");
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for i in 0..runs[0].0.len() {
        let mut rows: Vec<&Row> = runs.iter().map(|r| &r.0[i]).collect();
        rows.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let (lo, median, hi) = (ratio(rows[0]), ratio(rows[rows.len() / 2]), ratio(rows[rows.len() - 1]));
        let r = rows[0];
        let best = Row {
            name: r.name,
            work: r.work,
            plain: rows.iter().map(|x| x.plain).min().unwrap_or_default(),
            crr: rows.iter().map(|x| x.crr).min().unwrap_or_default(),
            bar: r.bar,
        };
        let unit = if r.bar.contains("time") { "x time" } else { "" };
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2}{unit} | {median:.2} | {lo:.2}-{hi:.2} | {} |",
            r.name,
            r.work,
            rate(r.work, best.plain),
            rate(r.work, best.crr),
            ratio(&best),
            r.bar
        );
    }
    let sizes = runs[0].1;
    println!("| W8 file size after W1 | | {} KiB | {} KiB | {:.2}x size | | <= 2.2x |", sizes.0 / 1024, sizes.1 / 1024, sizes.1 as f64 / sizes.0 as f64);
    let mut alters: Vec<(Duration, Duration)> = runs.iter().map(|r| r.2).collect();
    alters.sort_by(|a, b| (a.0.as_secs_f64() / a.1.as_secs_f64()).total_cmp(&(b.0.as_secs_f64() / b.1.as_secs_f64())));
    let alter = alters[alters.len() / 2];
    println!(
        "| commit_alter (ADD COLUMN DEFAULT) vs W1 CRR insert | | | {:.1} ms vs {:.1} ms | {:.2} of insert time | | <= 0.5 |",
        alter.0.as_secs_f64() * 1e3,
        alter.1.as_secs_f64() * 1e3,
        alter.0.as_secs_f64() / alter.1.as_secs_f64()
    );
}

/// Kernel counters of this process, in KiB: (current RSS, peak RSS).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The streaming-memory measurement, run in a fresh child process (`--memory-child N DIR`):
/// a source replica with N changes, then every change read from its crsql_changes and applied
/// to an empty replica in one streaming loop (commits every 50,000 changes, nothing
/// collected). Prints the peak RSS growth over the loop in KiB.
fn memory_child(changes: i64, dir: &Path) {
    let src = fresh(dir, "mem-src.db", true, false);
    insert_rows(&src, 0, (changes + 2) / 3);
    let dst = fresh(dir, "mem-dst.db", true, false);
    // Reset the peak counter to the current RSS, so VmHWM afterwards is the loop's own peak.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (start, _) = rss_kib();
    let mut read = src.prepare(READ_ALL).unwrap();
    let mut write = dst.prepare("INSERT INTO crsql_changes VALUES (?,?,?,?,?,?,?,?,?)").unwrap();
    let mut rows = read.query([]).unwrap();
    let mut n = 0i64;
    dst.execute_batch("BEGIN").unwrap();
    while let Some(r) = rows.next().unwrap() {
        let vals: [Value; 9] = std::array::from_fn(|i| r.get(i).unwrap());
        write.execute(rusqlite::params_from_iter(vals.iter())).unwrap();
        n += 1;
        if n % 50_000 == 0 {
            dst.execute_batch("COMMIT; BEGIN").unwrap();
        }
    }
    dst.execute_batch("COMMIT").unwrap();
    let (_, peak) = rss_kib();
    let applied: i64 = dst.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get(0)).unwrap();
    assert_eq!(applied, n, "every streamed change must be applied");
    let growth = if reset { peak.saturating_sub(start) } else { peak };
    println!("{n} {growth}");
}

/// crsql_as_crr on a table of N rows written before it was a CRR, then crsql_commit_alter
/// after a DROP COLUMN, in a fresh child process (`--as-crr-memory-child N DIR`): prints the
/// peak RSS growth of each in KiB; then the best time of three crsql_as_crr calls on the CRR
/// (as apps make at every start: it records rows written while tracking was off) and of three
/// full scans of the table in plain SQL (`count(a)`), in microseconds.
fn as_crr_memory_child(rows: i64, dir: &Path) {
    let c = fresh(dir, "mem-plain.db", true, false);
    c.execute_batch("DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, c REAL)").unwrap();
    insert_rows(&c, 0, rows);
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (start, _) = rss_kib();
    c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    let (_, peak) = rss_kib();
    let as_crr = if reset { peak.saturating_sub(start) } else { peak };
    let best = |sql: &str| (0..3).map(|_| timed(|| c.execute_batch(sql).unwrap())).min().unwrap().as_micros();
    let (again, scan) = (best("SELECT crsql_as_crr('t')"), best("SELECT count(a) FROM t"));
    // Then a column dropped: crsql_commit_alter rewrites every clock record.
    c.execute_batch("BEGIN; SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN c;").unwrap();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (start, _) = rss_kib();
    c.execute_batch("SELECT crsql_commit_alter('t'); COMMIT").unwrap();
    let (_, peak) = rss_kib();
    println!("{as_crr} {} {again} {scan}", if reset { peak.saturating_sub(start) } else { peak });
}

/// Runs a memory child (`--memory-child` or `--as-crr-memory-child`) in a fresh process and
/// returns the numbers it printed.
fn child(mode: &str, n: i64, dir: &Path) -> Vec<i64> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([mode, &n.to_string(), &dir.display().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{mode} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse::<i64>().unwrap()).collect()
}

/// The streaming-memory measurement, and crsql_as_crr's on a table of as many rows as the
/// workloads use.
fn memory(changes: i64, rows: i64, dir: &Path) {
    let streamed = child("--memory-child", changes, dir);
    println!("\nstreaming memory: read and applied {} changes; peak RSS growth {:.1} MiB (bar < 64 MB)", streamed[0], streamed[1] as f64 / 1024.0);
    // Three times as many: a scan holds at most 2^20 changes (storage::changes::SCAN_CAP), so
    // the growth should stay where it is, not triple.
    let more = child("--memory-child", changes * 3, dir);
    println!("streaming memory: read and applied {} changes; peak RSS growth {:.1} MiB (a scan holds at most 2^20 changes, so this stops growing with the feed past a few million)", more[0], more[1] as f64 / 1024.0);
    let alter = child("--as-crr-memory-child", rows, dir);
    println!("crsql_as_crr on a table of {rows} rows: peak RSS growth {:.1} MiB", alter[0] as f64 / 1024.0);
    println!("crsql_commit_alter after DROP COLUMN on those rows: peak RSS growth {:.1} MiB", alter[1] as f64 / 1024.0);
    println!(
        "crsql_as_crr again on those rows (apps call it at every start): {:.1} ms, {:.2}x a plain full scan of the table ({:.1} ms)",
        alter[2] as f64 / 1000.0,
        alter[2] as f64 / alter[3].max(1) as f64,
        alter[3] as f64 / 1000.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        memory_child(args[i + 1].parse().unwrap(), Path::new(&args[i + 2]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--as-crr-memory-child") {
        as_crr_memory_child(args[i + 1].parse().unwrap(), Path::new(&args[i + 2]));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rows: i64 = args.iter().position(|a| a == "--rows").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(if quick { 2_000 } else { 100_000 });
    let dir = std::env::temp_dir().join(format!("crr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let v: String = Connection::open_in_memory().unwrap().query_row("SELECT sqlite_version()", [], |r| r.get(0)).unwrap();
    println!("sqlite-crr benchmark: {rows} rows, SQLite {v} (bundled), WAL, synchronous=NORMAL");
    let runs: usize = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(if quick { 1 } else { 5 }).max(1);
    // Runs alternate between the two settings, so a slow spell of the machine hits both.
    let (mut default, mut tuned) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        default.push(run(&dir, rows, false));
        tuned.push(run(&dir, rows, true));
    }
    print("default pragmas", &default);
    print("tuned pragmas (temp_store=MEMORY, cache_size=-64000)", &tuned);
    memory(if quick { 30_000 } else { 1_000_000 }, if quick { rows } else { 1_000_000 }, &dir);
    std::fs::remove_dir_all(&dir).ok();
}
