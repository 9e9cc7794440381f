//! Random schema changes on replicas that keep writing and syncing: every replica runs the
//! same alter (ADD COLUMN with or without a default, DROP COLUMN, RENAME COLUMN, through
//! crsql_begin_alter / crsql_commit_alter; on a WITHOUT ROWID table too) at the same point of
//! the schema's history, but each with its own writes not yet sent to the others, before and
//! after it; syncs are partial and in random order. At the end a full sync must leave
//! identical tables and feeds (apart from db_version and seq) everywhere, and a new replica
//! built from one feed must hold the same rows.
//! `CRR_ALTERS_SEEDS` / `CRR_ALTERS_FROM` / `CRR_ALTERS_SEED` choose the seeds.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;

/// The table's shape as the test knows it: the key and the tracked columns now.
struct Shape {
    rowid: bool,
    columns: Vec<String>,
    next: usize,
}

impl Shape {
    fn create(&self) -> String {
        if self.rowid {
            "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, c0 TEXT, c1 INTEGER)".into()
        } else {
            "CREATE TABLE t(id TEXT NOT NULL PRIMARY KEY, c0 TEXT, c1 INTEGER) WITHOUT ROWID".into()
        }
    }

    fn key(&self, r: &mut Rng) -> String {
        let k = r.below(12);
        if self.rowid {
            k.to_string()
        } else {
            format!("'k{k}'")
        }
    }
}

fn literal(r: &mut Rng) -> String {
    (*r.pick(&["NULL", "0", "1", "7", "'a'", "'b'", "2.5", "X'00'"])).to_string()
}

/// One random write statement on the table as it is now.
fn write(r: &mut Rng, s: &Shape) -> String {
    let k = s.key(r);
    let cols = &s.columns;
    match (r.below(6), cols.is_empty()) {
        (0 | 1, false) => {
            let c = r.pick(cols);
            format!("INSERT INTO t(id, \"{c}\") VALUES ({k}, {}) ON CONFLICT(id) DO UPDATE SET \"{c}\" = excluded.\"{c}\"", literal(r))
        }
        (2 | 3, false) => format!("UPDATE t SET \"{}\" = {} WHERE id = {k}", r.pick(cols), literal(r)),
        (4, _) => format!("DELETE FROM t WHERE id = {k}"),
        _ => format!("INSERT OR IGNORE INTO t(id) VALUES ({k})"),
    }
}

/// One random alter of the table; updates the shape.
fn alter(r: &mut Rng, s: &mut Shape) -> String {
    let sql = match r.below(4) {
        0 | 1 => {
            let name = format!("c{}", s.next);
            s.next += 1;
            let decl = match r.below(4) {
                0 => "TEXT".to_string(),
                1 => format!("INTEGER DEFAULT {}", r.below(3)),
                2 => "DEFAULT 'd'".into(),
                _ => "INTEGER NOT NULL DEFAULT 5".into(),
            };
            s.columns.push(name.clone());
            format!("ALTER TABLE t ADD COLUMN \"{name}\" {decl}")
        }
        2 if !s.columns.is_empty() => {
            let i = r.below(s.columns.len() as u64) as usize;
            format!("ALTER TABLE t DROP COLUMN \"{}\"", s.columns.remove(i))
        }
        _ if !s.columns.is_empty() => {
            let i = r.below(s.columns.len() as u64) as usize;
            let name = format!("c{}", s.next);
            s.next += 1;
            let old = std::mem::replace(&mut s.columns[i], name.clone());
            format!("ALTER TABLE t RENAME COLUMN \"{old}\" TO \"{name}\"")
        }
        _ => return alter(r, s),
    };
    format!("SELECT crsql_begin_alter('t'); {sql}; SELECT crsql_commit_alter('t');")
}

/// What a replica has taken from each other replica: the other's db_version it read up to.
type Seen = Vec<Vec<i64>>;

fn sync(replicas: &[Connection], seen: &mut Seen, from: usize, to: usize, window: Option<i64>) {
    let since = seen[to][from];
    let top: i64 = one(&replicas[from], "SELECT crsql_db_version()");
    let upto = window.map_or(top, |w| (since + w).min(top));
    let batch = changes_where(&replicas[from], &format!("WHERE db_version > {since} AND db_version <= {upto}"));
    apply(&replicas[to], &batch).unwrap_or_else(|e| panic!("sync {from} -> {to} after {since}: {e}"));
    seen[to][from] = upto;
}

/// The feed without the replica's own numbering (db_version, seq), sorted.
fn portable(c: &Connection) -> Vec<String> {
    let mut v: Vec<String> =
        changes(c).into_iter().map(|x| format!("{} {:?} {} {:?} {} {:?} {}", x.table, x.pk, x.cid, x.val, x.col_version, x.site_id, x.cl)).collect();
    v.sort();
    v
}

fn run(seed: u64, verbose: bool) {
    let mut r = Rng(seed);
    let mut shape = Shape { rowid: r.chance(50), columns: vec!["c0".into(), "c1".into()], next: 2 };
    let n = 2 + r.below(2) as usize;
    let replicas: Vec<Connection> = (0..n).map(|_| mem()).collect();
    for c in &replicas {
        c.execute_batch(&format!("{}; SELECT crsql_as_crr('t');", shape.create())).unwrap();
    }
    let mut seen: Seen = vec![vec![0; n]; n];
    for step in 0..40 {
        match r.below(10) {
            0..=4 => {
                let i = r.below(n as u64) as usize;
                let c = &replicas[i];
                c.execute_batch("BEGIN").unwrap();
                for _ in 0..1 + r.below(3) {
                    let sql = write(&mut r, &shape);
                    if verbose {
                        println!("step {step}: replica {i}: {sql}");
                    }
                    // A NULL for a NOT NULL column fails that statement alone.
                    if let Err(e) = c.execute_batch(&sql) {
                        assert!(e.to_string().contains("NOT NULL constraint failed"), "{sql}: {e}");
                    }
                }
                c.execute_batch("COMMIT").unwrap();
            }
            5..=7 => {
                let (from, to) = (r.below(n as u64) as usize, r.below(n as u64) as usize);
                if from != to {
                    let window = r.chance(40).then(|| 1 + r.below(3) as i64);
                    if verbose {
                        println!("step {step}: sync {from} -> {to}, window {window:?}");
                    }
                    sync(&replicas, &mut seen, from, to, window);
                    if verbose {
                        println!("  seen {seen:?}, db_versions {:?}", replicas.iter().map(|c| one::<i64>(c, "SELECT crsql_db_version()")).collect::<Vec<_>>());
                    }
                }
            }
            _ => {
                // Every replica alters now, each with its own unsent writes; a replica that
                // has not altered yet cannot take changes of the new shape, so none are sent
                // until all have.
                let sql = alter(&mut r, &mut shape);
                if verbose {
                    println!("step {step}: every replica: {sql}");
                }
                for c in &replicas {
                    c.execute_batch(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            }
        }
    }
    for _ in 0..2 {
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    sync(&replicas, &mut seen, from, to, None);
                }
            }
        }
    }
    if verbose {
        for (i, c) in replicas.iter().enumerate() {
            println!("replica {i} feed:");
            for x in changes(c) {
                println!("  {:?} {} {:?} cv {} dbv {} cl {} seq {} site {:?}", x.pk, x.cid, x.val, x.col_version, x.db_version, x.cl, x.seq, &x.site_id[..2]);
            }
        }
    }
    let (rows, feed) = (dump(&replicas[0], "t"), portable(&replicas[0]));
    for (i, c) in replicas.iter().enumerate().skip(1) {
        assert_eq!(dump(c, "t"), rows, "replica {i}'s rows differ from replica 0's");
        let other = portable(c);
        let only = |a: &[String], b: &[String]| a.iter().filter(|x| !b.contains(x)).cloned().collect::<Vec<_>>();
        assert!(other == feed, "replica {i}'s feed differs from replica 0's: only in {i}: {:?}; only in 0: {:?}", only(&other, &feed), only(&feed, &other));
    }
    // A new replica of the final shape, built from replica 0's feed alone.
    let fresh = mem();
    let cols: Vec<String> = replicas[0]
        .prepare("SELECT name FROM pragma_table_info('t') WHERE pk = 0")
        .unwrap()
        .query_map([], |x| x.get::<_, String>(0))
        .unwrap()
        .map(|x| x.unwrap())
        .collect();
    let create: String = one(&replicas[0], "SELECT sql FROM sqlite_schema WHERE name = 't'");
    fresh.execute_batch(&format!("{create}; SELECT crsql_as_crr('t');")).unwrap();
    apply(&fresh, &changes(&replicas[0])).unwrap();
    assert_eq!(dump(&fresh, "t"), rows, "a new replica from the feed of {cols:?}");
    let values: Vec<V> = rows.iter().flatten().cloned().collect();
    assert!(values.len() <= 12 * (cols.len() + 1));
}

#[test]
fn replicas_that_alter_between_writes_and_syncs_converge() {
    run_seeds("CRR_ALTERS", 150, "CRR_ALTERS_SEED={seed} cargo test --release --test alters -- --nocapture", run);
}
