//! Random schema changes on replicas that keep writing and syncing: every replica runs the
//! same migrations in the same order, some at once and some later. A migration alters a table
//! (ADD COLUMN with or without a default, DROP COLUMN, RENAME COLUMN of a column or a key
//! column, RENAME TO, the twelve-step rebuild, through crsql_begin_alter /
//! crsql_commit_alter; sometimes two tables in one transaction), makes a new CRR, or drops
//! one; tables are keyed by the rowid, by TEXT WITHOUT ROWID, or by two columns. Each replica
//! writes things not yet sent to the others (key changes among them) between migrations and
//! in an alter's bracket, before and after its ALTER (after a rebuild, only inserts and
//! deletes: the rebuilt table has no triggers until commit); sometimes an ADD COLUMN runs
//! outside its bracket, with writes after it, the feed refuses the table, and a bracket opened
//! afterwards records it; syncs are partial and in random order. Each
//! replica is a file with two connections, used at random (on a third of the replicas one
//! of them writes merged cells as wide tables do, one statement per table; on a fifth the
//! first keeps no cached statement but the last used). A sync between replicas of
//! different schemas may be refused ("schema mismatch") and must then leave the receiver as it
//! was. Each replica starts with rows of its own written before its first table became a CRR.
//! A third of the seeds run in lamport mode. At each sync, each cell of the source's feed must
//! hold the value its version wrote when first read anywhere (`check_written`). At the end a full sync must leave identical
//! tables and feeds (apart from db_version and seq) everywhere, and a new replica built from
//! one feed must hold the same rows. Some crsql_begin_alter and crsql_commit_alter calls are
//! first stopped once at a random step (a progress handler that gives up once): they must
//! report the interrupt, leave no transaction open, and go through when called again.
//! `CRR_ALTERS_SEEDS` / `CRR_ALTERS_FROM` / `CRR_ALTERS_SEED` choose the seeds.

mod common;
use common::*;
use rusqlite::Connection;

/// How the table is keyed.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// `INTEGER PRIMARY KEY`: the rowid clock.
    Rowid,
    /// One TEXT key, WITHOUT ROWID.
    Text,
    /// Two key columns (TEXT, INTEGER) on a rowid table: a packed clock key.
    Pair,
}

/// The table's shape as the test knows it: the key and the tracked columns now, with their
/// declarations.
#[derive(Clone)]
struct Shape {
    /// The table's name and its key columns' (migrations may rename them).
    name: String,
    keys: Vec<String>,
    layout: Layout,
    columns: Vec<(String, String)>,
    next: usize,
}

impl Shape {
    fn create(&self, name: &str) -> String {
        let cols: String = self.columns.iter().map(|(n, d)| format!(", \"{n}\" {d}")).collect();
        let k = &self.keys;
        match self.layout {
            Layout::Rowid => format!("CREATE TABLE {name}(\"{}\" INTEGER PRIMARY KEY NOT NULL{cols})", k[0]),
            Layout::Text => format!("CREATE TABLE {name}(\"{}\" TEXT NOT NULL PRIMARY KEY{cols}) WITHOUT ROWID", k[0]),
            Layout::Pair => {
                format!("CREATE TABLE {name}(\"{}\" TEXT NOT NULL, \"{}\" INTEGER NOT NULL{cols}, PRIMARY KEY (\"{}\", \"{}\"))", k[0], k[1], k[0], k[1])
            }
        }
    }

    /// Random key values, one SQL literal per key column.
    fn key(&self, r: &mut Rng) -> Vec<String> {
        let k = r.below(12);
        match self.layout {
            Layout::Rowid => vec![k.to_string()],
            Layout::Text => vec![format!("'k{k}'")],
            Layout::Pair => vec![format!("'k{}'", k % 4), (k / 4).to_string()],
        }
    }

    /// The key columns, quoted and joined with commas.
    fn key_list(&self) -> String {
        self.keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
    }

    /// `k1 = v1 AND ...` for key values `values`.
    fn key_match(&self, values: &[String]) -> String {
        self.keys.iter().zip(values).map(|(k, v)| format!("\"{k}\" = {v}")).collect::<Vec<_>>().join(" AND ")
    }

    fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// A new column's name and declaration.
    fn new_column(&mut self, r: &mut Rng) -> (String, String) {
        let name = format!("c{}", self.next);
        self.next += 1;
        // (A value equal to the default under NOCASE, or in value but not storage class in a
        // column without affinity, 'A' or 7.0, must still travel; a default written as a
        // name is a string. SQLite gives the rows a table has when ADD COLUMN adds `TEXT
        // DEFAULT true` the integer 1, and an inserted row '1'; an untyped `DEFAULT 1.0` the
        // integer 1, then the REAL: rows made by merge, or copied by a rebuild, hold the
        // second. A REAL default in a TEXT column is refused: SQLite versions write it as text
        // differently.)
        let decl = match r.below(9) {
            7 => "TEXT DEFAULT true".into(),
            8 => "DEFAULT 1.0".into(),
            0 => "TEXT".to_string(),
            1 => format!("INTEGER DEFAULT {}", r.below(3)),
            2 => "DEFAULT 'd'".into(),
            3 => "TEXT COLLATE NOCASE DEFAULT 'a'".into(),
            4 => "DEFAULT 7".into(),
            5 => "TEXT DEFAULT b".into(),
            _ => "INTEGER NOT NULL DEFAULT 5".into(),
        };
        (name, decl)
    }
}

fn literal(r: &mut Rng) -> String {
    (*r.pick(&["NULL", "0", "1", "7", "'a'", "'b'", "2.5", "X'00'", "'A'", "7.0"])).to_string()
}

/// One random write statement on the table as it is now, and the key it writes;
/// `tracked_only`: only the writes a bracket sees after a 12-step rebuild (inserts of new rows
/// and deletes, which commit finds by comparing rows and clocks; updates are not seen there).
fn write(r: &mut Rng, s: &Shape, tracked_only: bool) -> (String, String) {
    let values = s.key(r);
    let cols = s.names();
    let (t, id, k, at) = (&s.name, s.key_list(), values.join(", "), s.key_match(&values));
    let sql = match (r.below(7), cols.is_empty()) {
        (0 | 1, false) if !tracked_only => {
            let c = r.pick(&cols);
            format!("INSERT INTO {t}({id}, \"{c}\") VALUES ({k}, {}) ON CONFLICT({id}) DO UPDATE SET \"{c}\" = excluded.\"{c}\"", literal(r))
        }
        (2 | 3, false) if !tracked_only => format!("UPDATE {t} SET \"{}\" = {} WHERE {at}", r.pick(&cols), literal(r)),
        (4, _) if r.chance(25) && !tracked_only => {
            // A key change (of the first key column).
            format!("UPDATE OR REPLACE {t} SET \"{}\" = {} WHERE {at}", s.keys[0], s.key(r)[0])
        }
        (4, _) => format!("DELETE FROM {t} WHERE {at}"),
        (5, false) => format!("INSERT OR IGNORE INTO {t}({id}, \"{}\") VALUES ({k}, {})", r.pick(&cols), literal(r)),
        _ => format!("INSERT OR IGNORE INTO {t}({id}) VALUES ({k})"),
    };
    (k, sql)
}

/// One random alter of the table, between crsql_begin_alter and crsql_commit_alter; updates
/// the shape.
fn alter(r: &mut Rng, s: &mut Shape) -> String {
    let t = s.name.clone();
    match r.below(7) {
        0 | 1 => {
            let (name, decl) = s.new_column(r);
            s.columns.push((name.clone(), decl.clone()));
            format!("ALTER TABLE {t} ADD COLUMN \"{name}\" {decl}")
        }
        2 if !s.columns.is_empty() => {
            let i = r.below(s.columns.len() as u64) as usize;
            format!("ALTER TABLE {t} DROP COLUMN \"{}\"", s.columns.remove(i).0)
        }
        3 => {
            // SQLite's twelve-step rebuild: a new table, the rows copied, the old one dropped
            // (with its triggers), the new one renamed; here it adds a column or drops one.
            let kept: Vec<String> = s.names().iter().map(|n| format!("\"{n}\"")).collect();
            if r.chance(50) || s.columns.is_empty() {
                let mut c = s.new_column(r);
                // (A default that is an expression: only a rebuild can add one. Its cells are
                // recorded at version 0.)
                if r.chance(20) {
                    c.1 = "INTEGER DEFAULT (2 + 3)".into();
                }
                s.columns.push(c);
            } else {
                s.columns.remove(r.below(s.columns.len() as u64) as usize);
            }
            // A rebuild may also change a kept column's default: cells no write gave a value
            // hold the old one, which a replica that makes the row by merge must be sent.
            if let Some(i) = s.columns.iter().position(|(n, d)| d.starts_with("INTEGER DEFAULT") && kept.contains(&format!("\"{n}\""))) {
                if r.chance(50) {
                    s.columns[i].1 = format!("INTEGER DEFAULT {}", r.below(6));
                }
            }
            let copied: Vec<String> = std::iter::once(s.key_list())
                .chain(kept.into_iter().filter(|k| s.names().iter().any(|n| format!("\"{n}\"") == *k)))
                .collect();
            let copied = copied.join(", ");
            format!("{}; INSERT INTO rebuilt({copied}) SELECT {copied} FROM {t}; DROP TABLE {t}; ALTER TABLE rebuilt RENAME TO {t}", s.create("rebuilt"))
        }
        _ if !s.columns.is_empty() => {
            let i = r.below(s.columns.len() as u64) as usize;
            let name = format!("c{}", s.next);
            s.next += 1;
            let old = std::mem::replace(&mut s.columns[i].0, name.clone());
            format!("ALTER TABLE {t} RENAME COLUMN \"{old}\" TO \"{name}\"")
        }
        6 => {
            // A key column renamed: its values, and so the rows' keys, stay.
            let i = r.below(s.keys.len() as u64) as usize;
            let old = std::mem::replace(&mut s.keys[i], format!("k{}", s.next));
            s.next += 1;
            format!("ALTER TABLE {t} RENAME COLUMN \"{old}\" TO \"{}\"", s.keys[i])
        }
        5 => {
            // The table itself renamed: the feed names a table by its current name.
            s.name = format!("{}_{}", s.name.split('_').next().unwrap_or("t"), s.next);
            s.next += 1;
            format!("ALTER TABLE {t} RENAME TO {}", s.name)
        }
        _ => alter(r, s),
    }
}

/// What a replica has taken from each other replica: the other's db_version it read up to.
type Seen = Vec<Vec<i64>>;

/// Sends `from`'s changes since what `to` has seen of it (at most `window` versions). Between
/// replicas of one schema it must work; between replicas at different points of the
/// migrations it may be refused, with "schema mismatch", and then must leave `to` as it was.
/// `ends`: the connections it reads `from` and writes `to` through; `tables`: the receiver's
/// tables.
#[allow(clippy::too_many_arguments)]
fn sync(ends: (&Connection, &Connection), seen: &mut Seen, from: usize, to: usize, window: Option<i64>, same_schema: bool, tables: &[Shape], written: &mut Written) -> bool {
    let (source, target) = ends;
    check_written(written, &changes(source), &format!("sync {from} -> {to}"));
    let since = seen[to][from];
    let top: i64 = one(source, "SELECT crsql_db_version()");
    let upto = window.map_or(top, |w| (since + w).min(top));
    let batch = changes_where(source, &format!("WHERE db_version > {since} AND db_version <= {upto}"));
    let state = |c: &Connection| (tables.iter().map(|t| dump(c, &t.name)).collect::<Vec<_>>(), portable(c));
    let before = (!same_schema).then(|| state(target));
    match apply(target, &batch) {
        Ok(()) => {
            seen[to][from] = upto;
            true
        }
        Err(e) => {
            assert!(!same_schema, "sync {from} -> {to} after {since}: {e}");
            assert!(e.to_string().contains("schema mismatch"), "sync {from} -> {to} across schemas: {e}");
            let after = state(target);
            assert!(before == Some(after), "a refused batch changed replica {to}");
            false
        }
    }
}

/// The feed without the replica's own numbering (db_version, seq), sorted.
fn portable(c: &Connection) -> Vec<String> {
    let mut v: Vec<String> =
        changes(c).into_iter().map(|x| format!("{} {:?} {} {:?} {} {:?} {}", x.table, x.pk, x.cid, x.val, x.col_version, x.site_id, x.cl)).collect();
    v.sort();
    v
}

/// Runs `count` random writes on replica `i` (a NULL for a NOT NULL column fails that
/// statement alone). `once`: each key is written at most once (after a rebuild in the bracket
/// nothing is tracked until crsql_commit_alter, which sees only which rows exist: a delete
/// and an insert of one key are an update, and updates there are not seen).
fn writes(r: &mut Rng, c: &Connection, shape: &Shape, count: u64, tracked_only: bool, mut once: Option<&mut Vec<String>>, what: &str) {
    for _ in 0..count {
        let (key, sql) = write(r, shape, tracked_only);
        if let Some(used) = once.as_deref_mut() {
            if used.contains(&key) {
                continue;
            }
            used.push(key);
        }
        if !what.is_empty() {
            println!("{what}: {sql}");
        }
        if let Err(e) = c.execute_batch(&sql) {
            assert!(e.to_string().contains("NOT NULL constraint failed"), "{sql}: {e}");
        }
    }
}

/// One schema change: its steps (two alters of two tables make one transaction).
struct Migration {
    steps: Vec<Step>,
}

/// A step's SQL, and for an alter the index of the table it alters (in the schema the
/// migration leads to), whose bracket it opens, and the crsql_begin_alter that opens it with
/// the table's shape before the alter.
struct Step {
    sql: String,
    altered: Option<usize>,
    begin: Option<(String, Shape)>,
}

/// Runs migration `k` (which leads to `schemas[k + 1]`) on a replica through `c`; inside an
/// alter's bracket, a few writes before the ALTER and a few after it (only inserts and
/// deletes after a rebuild).
fn migrate(r: &mut Rng, c: &Connection, migrations: &[Migration], schemas: &[Vec<Shape>], k: usize, what: &str) {
    let steps = &migrations[k].steps;
    let one_transaction = steps.len() > 1;
    if one_transaction {
        c.execute_batch("BEGIN").unwrap();
    }
    for Step { sql, altered, begin } in steps {
        // Sometimes an ADD COLUMN runs outside its bracket, as an app that forgot it would:
        // the feed then refuses the table until a bracket, opened afterwards, records it.
        let forgotten = begin.is_some() && sql.contains(" ADD COLUMN ") && r.chance(25);
        if forgotten {
            if !what.is_empty() {
                println!("{what}: migration {k}: {sql} (outside its bracket)");
            }
            c.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let j = altered.expect("an alter step");
            writes(r, c, &schemas[k + 1][j], 2, false, None, what);
            let e = c.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get::<_, i64>(0)).unwrap_err().to_string();
            assert!(e.contains("changed outside crsql_begin_alter / crsql_commit_alter"), "{e}");
        }
        if let Some((begin, before)) = begin {
            if !what.is_empty() {
                println!("{what}: migration {k}: {begin}");
            }
            // Sometimes first stopped once, as the commit below.
            let mut side = Rng(r.0 ^ 0xb091_0ace);
            if !one_transaction && side.chance(30) {
                let at = side.below(1500) as i64;
                if let Err(e) = Stop::at(c, at, How::GivesUpOnce, || c.execute_batch(begin)) {
                    assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::OperationInterrupted), "{begin} stopped at step {at}: {e}");
                    assert!(c.is_autocommit(), "{begin} stopped at step {at}: a transaction was left open");
                }
            }
            // (Again, if the stop left it undone; a second begin changes nothing.)
            c.execute_batch(begin).unwrap_or_else(|e| panic!("{begin}: {e}"));
            if !forgotten {
                let count = r.below(3);
                writes(r, c, before, count, false, None, what);
            }
        }
        if !forgotten {
            if !what.is_empty() {
                println!("{what}: migration {k}: {sql}");
            }
            c.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let Some(j) = *altered else { continue };
        let shape = &schemas[k + 1][j];
        let count = r.below(3);
        let mut used = Vec::new();
        let rebuilt = sql.contains("DROP TABLE");
        let once = rebuilt.then_some(&mut used);
        writes(r, c, shape, count, rebuilt, once, what);
        let commit = format!("SELECT crsql_commit_alter('{}')", shape.name);
        // Sometimes (outside a transaction of the app's) the commit is first stopped once at a
        // random step, as a progress handler that gives up once would: it must then leave the
        // bracket as it was, or be done (SQLite can report the stop after the work), and go
        // through when called again. (Drawn from a copy of the stream: seeds replay as before.)
        let mut side = Rng(r.0 ^ 0x5709_0ace);
        if !one_transaction && side.chance(30) {
            let at = side.below(2500) as i64;
            if let Err(e) = Stop::at(c, at, How::GivesUpOnce, || c.execute_batch(&commit)) {
                if !what.is_empty() {
                    println!("{what}: migration {k}: {commit} stopped at step {at}: {e}");
                }
                assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::OperationInterrupted), "{commit} stopped at step {at}: {e}");
                assert!(c.is_autocommit(), "{commit} stopped at step {at}: a transaction was left open");
                match c.execute_batch(&commit) {
                    Ok(()) => {}
                    Err(e) if e.to_string().contains("crsql_commit_alter without crsql_begin_alter") => {}
                    Err(e) => panic!("{sql}: commit after one stopped at step {at}: {e}"),
                }
            }
            continue;
        }
        c.execute_batch(&commit).unwrap_or_else(|e| panic!("{sql}: commit: {e}"));
    }
    if one_transaction {
        c.execute_batch("COMMIT").unwrap();
    }
}

/// A new table's shape: a random layout, two columns; named `u{id}`.
fn new_table(r: &mut Rng, id: usize) -> Shape {
    let layout = *r.pick(&[Layout::Rowid, Layout::Text, Layout::Pair]);
    let keys = if layout == Layout::Pair { vec!["id".into(), "n".into()] } else { vec!["id".into()] };
    let name = if id == 0 { "t".to_string() } else { format!("u{id}") };
    Shape { name, keys, layout, columns: vec![("c0".into(), "TEXT".into()), ("c1".into(), "INTEGER".into())], next: 2 }
}

/// A new migration on the latest schema: mostly an alter of one table (or of two, in one
/// transaction); sometimes a new CRR, or a DROP TABLE of one (at least one table stays).
fn new_migration(r: &mut Rng, latest: &[Shape], tables_made: &mut usize) -> (Migration, Vec<Shape>) {
    let mut next = latest.to_vec();
    let alter_step = |r: &mut Rng, next: &mut Vec<Shape>, j: usize| {
        let begin = format!("SELECT crsql_begin_alter('{}')", next[j].name);
        let before = next[j].clone();
        Step { sql: alter(r, &mut next[j]), altered: Some(j), begin: Some((begin, before)) }
    };
    let steps = match r.below(8) {
        0 => {
            *tables_made += 1;
            let t = new_table(r, *tables_made);
            let sql = format!("{}; SELECT crsql_as_crr('{}')", t.create(&t.name), t.name);
            next.push(t);
            vec![Step { sql, altered: None, begin: None }]
        }
        1 if next.len() > 1 => {
            let gone = next.remove(r.below(next.len() as u64) as usize);
            vec![Step { sql: format!("DROP TABLE {}", gone.name), altered: None, begin: None }]
        }
        2 if next.len() > 1 => {
            let j = r.below(next.len() as u64) as usize;
            let other = (j + 1 + r.below(next.len() as u64 - 1) as usize) % next.len();
            vec![alter_step(r, &mut next, j), alter_step(r, &mut next, other)]
        }
        _ => {
            let j = r.below(next.len() as u64) as usize;
            vec![alter_step(r, &mut next, j)]
        }
    };
    (Migration { steps }, next)
}

fn run(seed: u64, verbose: bool) {
    let mut r = Rng(seed);
    let first = new_table(&mut r, 0);
    let mut tables_made = 0;
    let n = 2 + r.below(2) as usize;
    // Each replica is a file with two connections: writes, migrations and merges go through
    // either, so each connection also meets schema changes the other made.
    let dir = tmpdir(&format!("alters-{seed}"));
    let replicas: Vec<[Connection; 2]> = (0..n)
        .map(|i| {
            let path = dir.join(format!("r{i}.db"));
            let first = open(path.to_str().unwrap());
            first.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF").unwrap();
            let second = open(path.to_str().unwrap());
            // On a third of the replicas one connection merges every table's cells through
            // one statement for the table, as wide tables' merges do.
            if (seed + i as u64).is_multiple_of(3) {
                second.execute_batch("SELECT crr_set_wide_writes_for_testing(1)").unwrap();
            }
            // On a fifth the first keeps no cached statement but the last used, so every
            // other is prepared again against whatever schema is there then.
            if (seed + i as u64) % 5 == 1 {
                first.execute_batch("SELECT crr_set_statement_budget_for_testing(0)").unwrap();
            }
            [first, second]
        })
        .collect();
    let conn = |r: &mut Rng, i: usize| -> &Connection { &replicas[i][r.below(2) as usize] };
    let say = |what: String| if verbose { what } else { String::new() };
    // A third of the seeds in lamport mode (a column's versions count its writes there).
    let lamport = seed % 3 == 2;
    for (i, [c, _]) in replicas.iter().enumerate() {
        if lamport {
            c.execute_batch("SELECT crsql_config_set('clock', 'lamport')").unwrap();
        }
        // Rows written before the table is a CRR: each replica backfills its own.
        c.execute_batch(&first.create("t")).unwrap();
        let count = r.below(4);
        writes(&mut r, c, &first, count, true, None, &say(format!("replica {i}, before crsql_as_crr")));
        c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    }
    // The migrations so far and the shape after each; each replica runs them in order, some
    // at once, others later (`at[i]`: how many replica i has run).
    let (mut migrations, mut schemas) = (Vec::<Migration>::new(), vec![vec![first]]);
    let mut at = vec![0usize; n];
    let mut seen: Seen = vec![vec![0; n]; n];
    let mut written = Written::new();
    let (mut refused, mut across) = (0, 0);
    for step in 0..40 {
        match r.below(12) {
            0..=4 => {
                let i = r.below(n as u64) as usize;
                let c = conn(&mut r, i);
                c.execute_batch("BEGIN").unwrap();
                let count = 1 + r.below(3);
                let tables = &schemas[at[i]];
                let shape = &tables[r.below(tables.len() as u64) as usize];
                writes(&mut r, c, shape, count, false, None, &say(format!("step {step}: replica {i}")));
                c.execute_batch("COMMIT").unwrap();
            }
            5..=7 => {
                let (from, to) = (r.below(n as u64) as usize, r.below(n as u64) as usize);
                if from != to {
                    let window = r.chance(40).then(|| 1 + r.below(3) as i64);
                    if verbose {
                        println!("step {step}: sync {from} -> {to}, window {window:?}, schemas {} -> {}", at[from], at[to]);
                    }
                    let same = at[from] == at[to];
                    let ends = (conn(&mut r, from), conn(&mut r, to));
                    let done = sync(ends, &mut seen, from, to, window, same, &schemas[at[to]], &mut written);
                    across += usize::from(!same);
                    refused += usize::from(!done);
                    if verbose {
                        println!("  seen {seen:?}, db_versions {:?}", replicas.iter().map(|[c, _]| one::<i64>(c, "SELECT crsql_db_version()")).collect::<Vec<_>>());
                    }
                }
            }
            8 | 9 => {
                // A new migration, run at once by some replicas (those that ran all before it).
                let (m, next) = new_migration(&mut r, &schemas[schemas.len() - 1], &mut tables_made);
                migrations.push(m);
                schemas.push(next);
                for (i, at) in at.iter_mut().enumerate() {
                    if *at == migrations.len() - 1 && r.chance(60) {
                        let c = conn(&mut r, i);
                        migrate(&mut r, c, &migrations, &schemas, *at, &say(format!("step {step}: replica {i}")));
                        *at += 1;
                    }
                }
            }
            _ => {
                // A replica behind runs its next migration.
                let i = r.below(n as u64) as usize;
                if at[i] < migrations.len() {
                    let c = conn(&mut r, i);
                    migrate(&mut r, c, &migrations, &schemas, at[i], &say(format!("step {step}: replica {i}")));
                    at[i] += 1;
                }
            }
        }
    }
    // Every replica runs the migrations it has not, then a full sync must work.
    for (i, at) in at.iter_mut().enumerate() {
        while *at < migrations.len() {
            let c = conn(&mut r, i);
            migrate(&mut r, c, &migrations, &schemas, *at, &say(format!("end: replica {i}")));
            *at += 1;
        }
    }
    if verbose {
        println!("{across} syncs across schemas, {refused} refused");
    }
    for _ in 0..2 {
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    let ends = (conn(&mut r, from), conn(&mut r, to));
                    sync(ends, &mut seen, from, to, None, true, &schemas[schemas.len() - 1], &mut written);
                }
            }
        }
    }
    // Each replica read through either of its connections.
    let readers: Vec<&Connection> = (0..n).map(|i| conn(&mut r, i)).collect();
    if verbose {
        for (i, c) in readers.iter().enumerate() {
            println!("replica {i} feed:");
            for x in changes(c) {
                println!("  {:?} {} {:?} cv {} dbv {} cl {} seq {} site {:?}", x.pk, x.cid, x.val, x.col_version, x.db_version, x.cl, x.seq, &x.site_id[..2]);
            }
        }
    }
    let tables = &schemas[schemas.len() - 1];
    let rows = |c: &Connection| tables.iter().map(|t| dump(c, &t.name)).collect::<Vec<_>>();
    let (expected, feed) = (rows(readers[0]), portable(readers[0]));
    for (i, c) in readers.iter().enumerate().skip(1) {
        assert_eq!(rows(c), expected, "replica {i}'s rows differ from replica 0's");
        let other = portable(c);
        let only = |a: &[String], b: &[String]| a.iter().filter(|x| !b.contains(x)).cloned().collect::<Vec<_>>();
        assert!(other == feed, "replica {i}'s feed differs from replica 0's: only in {i}: {:?}; only in 0: {:?}", only(&other, &feed), only(&feed, &other));
    }
    // A new replica of the final schema, built from replica 0's feed alone.
    let fresh = mem();
    for t in tables {
        let create: String = one(readers[0], &format!("SELECT sql FROM sqlite_schema WHERE name = '{}'", t.name));
        fresh.execute_batch(&format!("{create}; SELECT crsql_as_crr('{}');", t.name)).unwrap();
    }
    apply(&fresh, &changes(readers[0])).unwrap();
    assert_eq!(rows(&fresh), expected, "a new replica from replica 0's feed");
    drop(readers);
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replicas_that_alter_between_writes_and_syncs_converge() {
    run_seeds("CRR_ALTERS", 150, "CRR_ALTERS_SEED={seed} cargo test --release --test alters -- --nocapture", run);
}
