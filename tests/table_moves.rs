//! Table-level schema changes on replicas that keep writing and syncing: 12-step rebuilds in a
//! bracket and outside one (with crsql_as_crr run then, or at the app's next start), a table
//! dropped and made again, crsql_as_table and crsql_as_crr again, a CRR dropped for another
//! renamed to its name, one renamed away for a new table of its name, two that swap names
//! (one in its bracket, the other outside any), one that takes the name of another dropped in
//! its bracket, columns added or renamed outside a bracket (mended at the app's next start by
//! the empty bracket the error advises), added and dropped in one, and any of those in a
//! transaction rolled back. Two to four
//! replicas run the same migrations in the same order, each at its own time among random
//! writes and syncs (a sync a replica's schema cannot take yet fails whole, as a transport
//! would see, and is tried again later); the app writes a table only once a crsql_as_crr has
//! given it its triggers (as it does at every start). At the end every replica runs
//! crsql_as_crr on its CRRs and a full sync must leave the same tables everywhere, and a feed
//! that says of each row what its table holds: a live row's cells with its values, a deleted
//! row gone, every row in it. On half the seeds each replica is a file with two connections,
//! used at random, so that each meets the moves the other made; a third run in lamport mode.
//! `CRR_MOVES_SEEDS` / `CRR_MOVES_FROM` / `CRR_MOVES_SEED` choose the seeds.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// The tables' columns and what follows them: keyed by the rowid (a rowid clock, found through
/// crr_dirty), or not (a clock keyed by the packed key, with a dbv index), by seed.
const SHAPES: [(&str, &str); 2] = [("id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER", ""), ("id INT NOT NULL PRIMARY KEY, a TEXT, b INTEGER", " WITHOUT ROWID")];
const WRITTEN: [&str; 2] = ["t", "u"];
/// The migration kinds, the last one a transaction rolled back.
const KINDS: u64 = 15;

/// A replica's tables: the columns each has beyond the shape's, by table, as declared.
#[derive(Clone, Default)]
struct Columns(BTreeMap<String, Vec<String>>);

impl Columns {
    /// The CREATE TABLE text of `t` after its name, with the columns it has now.
    fn shape(&self, t: &str, shape: (&str, &str)) -> String {
        let added: String = self.0.get(t).into_iter().flatten().map(|c| format!(", {c}")).collect();
        format!("({}{added}){}", shape.0, shape.1)
    }

    /// The name of the last column `t` has beyond the shape's.
    fn last(&self, t: &str) -> Option<String> {
        self.0.get(t)?.last().map(|c| c.split(' ').next().unwrap().to_string())
    }

    fn take(&mut self, t: &str) -> Vec<String> {
        self.0.remove(t).unwrap_or_default()
    }

    fn put(&mut self, t: &str, columns: Vec<String>) {
        self.0.insert(t.to_string(), columns);
    }
}

/// Migration `kind` of table `t` (`step`: its place in the list, for names it makes), whose
/// tables have `shape` and the columns `columns` records, which it updates. Kinds 10 and 11
/// change a column outside a bracket, which the app's next start mends with an empty bracket
/// (as README says), and kind 13 drops a column, in a bracket.
fn migration(kind: u64, t: &str, step: usize, shape: (&str, &str), columns: &mut Columns) -> String {
    let other = if t == "t" { "u" } else { "t" };
    let mine = columns.shape(t, shape);
    let new = columns.shape("", shape);
    match kind {
        0 => format!(
            "CREATE TABLE {t}_new{mine}; INSERT INTO {t}_new SELECT * FROM {t} WHERE id % 3 != 0;
             DROP TABLE {t}; ALTER TABLE {t}_new RENAME TO {t}; SELECT crsql_as_crr('{t}');"
        ),
        // The same, with crsql_as_crr left to the app's next start.
        1 => format!("CREATE TABLE {t}_new{mine}; INSERT INTO {t}_new SELECT * FROM {t} WHERE id % 4 != 1; DROP TABLE {t}; ALTER TABLE {t}_new RENAME TO {t};"),
        2 => format!("DROP TABLE {t}; CREATE TABLE {t}{mine}; SELECT crsql_as_crr('{t}');"),
        3 => format!("SELECT crsql_as_table('{t}'); SELECT crsql_as_crr('{t}');"),
        4 => format!(
            "SELECT crsql_begin_alter('{t}'); CREATE TABLE {t}_new{mine}; INSERT INTO {t}_new SELECT * FROM {t} WHERE id % 5 != 2;
             DROP TABLE {t}; ALTER TABLE {t}_new RENAME TO {t}; SELECT crsql_commit_alter('{t}');"
        ),
        5 => {
            let moved = columns.take(other);
            columns.put(t, moved);
            format!("DROP TABLE {t}; ALTER TABLE {other} RENAME TO {t}; CREATE TABLE {other}{new}; SELECT crsql_as_crr('{other}');")
        }
        6 => {
            let moved = columns.take(t);
            columns.put(&format!("{t}_{step}"), moved);
            format!("ALTER TABLE {t} RENAME TO {t}_{step}; CREATE TABLE {t}{new}; SELECT crsql_as_crr('{t}');")
        }
        // The two swap names, `t` in its bracket, the other outside any.
        8 => {
            let (mine, theirs) = (columns.take(t), columns.take(other));
            columns.put(t, theirs);
            columns.put(other, mine);
            format!(
                "SELECT crsql_begin_alter('{t}'); ALTER TABLE {other} RENAME TO swapping; ALTER TABLE {t} RENAME TO {other};
                 ALTER TABLE swapping RENAME TO {t}; SELECT crsql_commit_alter('{other}');"
            )
        }
        // The other takes `t`'s name in its bracket, `t` dropped there.
        9 => {
            let moved = columns.take(other);
            columns.put(t, moved);
            format!(
                "SELECT crsql_begin_alter('{other}'); DROP TABLE {t}; ALTER TABLE {other} RENAME TO {t}; SELECT crsql_commit_alter('{t}');
                 CREATE TABLE {other}{new}; SELECT crsql_as_crr('{other}');"
            )
        }
        // A column added outside a bracket.
        10 => {
            let column = format!("c{step} TEXT DEFAULT 'd{step}'");
            columns.0.entry(t.to_string()).or_default().push(column.clone());
            format!("ALTER TABLE {t} ADD COLUMN {column};")
        }
        // A column renamed outside a bracket (one added, where there is none).
        11 => match columns.last(t) {
            Some(c) => {
                let declared = columns.0.get_mut(t).unwrap().last_mut().unwrap();
                *declared = declared.replacen(&c, &format!("r{step}"), 1);
                format!("ALTER TABLE {t} RENAME COLUMN {c} TO r{step};")
            }
            None => migration(10, t, step, shape, columns),
        },
        // A column added in a bracket, and written there.
        12 => {
            let column = format!("n{step} INTEGER DEFAULT 7");
            columns.0.entry(t.to_string()).or_default().push(column.clone());
            format!(
                "SELECT crsql_begin_alter('{t}'); ALTER TABLE {t} ADD COLUMN {column}; UPDATE {t} SET n{step} = id WHERE id % 2 = 0;
                 SELECT crsql_commit_alter('{t}');"
            )
        }
        // A column dropped, in a bracket (one added, where there is none).
        13 => match columns.last(t) {
            Some(c) => {
                columns.0.get_mut(t).unwrap().pop();
                format!("SELECT crsql_begin_alter('{t}'); ALTER TABLE {t} DROP COLUMN {c}; SELECT crsql_commit_alter('{t}');")
            }
            None => migration(12, t, step, shape, columns),
        },
        // One of the others, with a write, in a transaction rolled back: nothing changes.
        _ => {
            let kinds: Vec<u64> = (0..KINDS - 1).filter(|k| *k != 7).collect();
            let undone = migration(kinds[step % kinds.len()], t, step, shape, &mut columns.clone());
            format!("BEGIN; INSERT OR REPLACE INTO {t}(id, a, b) VALUES (99, 'gone', 0); {undone} ROLLBACK;")
        }
    }
}

/// Whether `kind` leaves its table for the app's next start to mend: its triggers gone, or a
/// column changed outside a bracket.
fn left_for_start(kind: u64) -> bool {
    matches!(kind, 1 | 10 | 11)
}

/// The app's tables (not the extension's), by name.
fn user_tables(c: &Connection) -> Vec<String> {
    let mut s = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'crr\\_%' ESCAPE '\\' AND name NOT LIKE 'crsql\\_%' ESCAPE '\\' ORDER BY name")
        .unwrap();
    s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
}

fn crrs(c: &Connection) -> Vec<String> {
    let mut s = c.prepare("SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name GLOB 'crr_[0-9]*_insert' ORDER BY tbl_name").unwrap();
    s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
}

fn tracked(c: &Connection, table: &str) -> bool {
    one::<i64>(c, &format!("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '{table}' AND name GLOB 'crr_[0-9]*_insert'")) == 1
}

/// What an app does at every start: crsql_as_crr on each of its CRRs, and, where that says
/// a column changed outside a bracket, the empty bracket it advises first.
fn app_start(c: &Connection, seed: u64, i: usize) {
    for table in crrs(c).into_iter().chain(WRITTEN.iter().map(|t| t.to_string())) {
        let as_crr = format!("SELECT crsql_as_crr('{table}')");
        if let Err(e) = c.execute_batch(&as_crr) {
            assert!(e.to_string().contains("changed outside crsql_begin_alter / crsql_commit_alter"), "seed {seed}, replica {i}: {as_crr}: {e}");
            c.execute_batch(&format!("SELECT crsql_begin_alter('{table}'); SELECT crsql_commit_alter('{table}'); {as_crr}"))
                .unwrap_or_else(|e| panic!("seed {seed}, replica {i}: an empty bracket of {table}: {e}"));
        }
    }
}

/// Runs migration `step` of replica `i`'s plan on `c`; returns its kind.
fn migrate(c: &Connection, seed: u64, i: usize, (kind, table): (u64, &str), step: usize, shape: (&str, &str), columns: &mut Columns) -> u64 {
    // SQLite's RENAME COLUMN and DROP COLUMN look for the column in the schema the connection
    // last read, and fail with "no such column" where the other connection added it since (a
    // statement that reads the database reads the new schema first).
    c.execute_batch("SELECT count(*) FROM sqlite_schema").unwrap();
    c.execute_batch(&migration(kind, table, step, shape, columns)).unwrap_or_else(|e| panic!("seed {seed}, replica {i}, migration {kind} of {table}: {e}"));
    kind
}

fn run(seed: u64, verbose: bool) {
    let mut r = Rng(seed);
    let n = 2 + r.below(3) as usize;
    // On half the seeds each replica is a file with two connections, used at random: each
    // meets the moves the other made.
    let dir = tmpdir(&format!("moves-{seed}"));
    let files = seed % 4 >= 2;
    let replicas: Vec<[Connection; 2]> = (0..n)
        .map(|i| {
            if !files {
                let c = mem();
                return [c, mem()];
            }
            let path = dir.join(format!("r{i}.db"));
            let first = open(path.to_str().unwrap());
            first.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF").unwrap();
            [first, open(path.to_str().unwrap())]
        })
        .collect();
    let pick = |r: &mut Rng, i: usize| -> &Connection { &replicas[i][if files { r.below(2) as usize } else { 0 }] };
    let shape = SHAPES[(seed % 2) as usize];
    // A third of the seeds in lamport mode (versions count a cell's writes).
    let lamport = seed % 3 == 1;
    for [c, _] in &replicas {
        if lamport {
            c.execute_batch("SELECT crsql_config_set('clock', 'lamport')").unwrap();
        }
        let new = Columns::default().shape("", shape);
        c.execute_batch(&format!("CREATE TABLE t{new}; SELECT crsql_as_crr('t'); CREATE TABLE u{new}; SELECT crsql_as_crr('u');")).unwrap();
    }
    let plan: Vec<(u64, &str)> = (0..1 + r.below(4)).map(|_| (r.below(KINDS), *r.pick(&WRITTEN))).collect();
    if verbose {
        eprintln!("seed {seed}: {n} replicas, migrations {plan:?}");
    }
    let mut done = vec![0; n];
    let mut awaits_start = vec![false; n];
    let mut columns = vec![Columns::default(); n];
    for _ in 0..20 + r.below(60) {
        let i = r.below(n as u64) as usize;
        let c = pick(&mut r, i);
        match r.below(10) {
            0..=4 => {
                let table = *r.pick(&WRITTEN);
                if !tracked(c, table) {
                    continue;
                }
                let id = r.below(12);
                let added = columns[i].last(table);
                let sql = match r.below(10) {
                    0..=4 => format!("INSERT OR REPLACE INTO {table}(id, a, b) VALUES ({id}, 's{i}-{}', {})", r.below(100), r.below(6)),
                    5 if added.is_some() => format!("UPDATE {table} SET {} = 'x{i}-{}' WHERE id = {id}", added.unwrap(), r.below(100)),
                    5..=7 => format!("UPDATE {table} SET a = 'u{i}-{}' WHERE id = {id}", r.below(100)),
                    _ => format!("DELETE FROM {table} WHERE id = {id}"),
                };
                if verbose {
                    eprintln!("{i}: {sql}");
                }
                c.execute_batch(&sql).unwrap();
            }
            5..=7 => {
                let j = r.below(n as u64) as usize;
                // (A CRR changed outside a bracket fails the read until the app's next start.)
                let result = try_changes(c).and_then(|feed| apply(pick(&mut r, j), &feed));
                if verbose {
                    eprintln!("sync {i} -> {j}: {result:?}");
                }
            }
            // (A migration that leaves crsql_as_crr to the app's next start is the last one
            // before it: a table without its triggers cannot be followed through a rename.)
            8 if done[i] < plan.len() && !awaits_start[i] => {
                if verbose {
                    eprintln!("{i}: migration {:?}", plan[done[i]]);
                }
                awaits_start[i] = left_for_start(migrate(c, seed, i, plan[done[i]], done[i], shape, &mut columns[i]));
                done[i] += 1;
            }
            _ => {
                awaits_start[i] = false;
                app_start(c, seed, i);
            }
        }
    }
    for i in 0..n {
        let c = pick(&mut r, i);
        while done[i] < plan.len() {
            app_start(c, seed, i);
            migrate(c, seed, i, plan[done[i]], done[i], shape, &mut columns[i]);
            done[i] += 1;
        }
        app_start(c, seed, i);
    }
    for _ in 0..2 {
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let (from, to) = (pick(&mut r, i), pick(&mut r, j));
                    apply(to, &changes(from)).unwrap_or_else(|e| panic!("seed {seed}: final sync {i} -> {j}: {e}"));
                }
            }
        }
    }
    let tables = user_tables(&replicas[0][0]);
    let connections = replicas.iter().enumerate().flat_map(|(i, r)| r.iter().take(if files { 2 } else { 1 }).map(move |c| (i, c)));
    for (i, c) in connections {
        assert_eq!(user_tables(c), tables, "seed {seed}: replica {i}'s tables");
        assert_eq!(crrs(c), tables, "seed {seed}: replica {i}'s CRRs");
        for table in &tables {
            assert_eq!(dump(c, table), dump(&replicas[0][0], table), "seed {seed}: replica {i}, table {table}");
            // The feed says of each row what the table holds.
            let names: Vec<String> = {
                let mut s = c.prepare("SELECT name FROM pragma_table_info(?1) WHERE name != 'id' ORDER BY cid").unwrap();
                s.query_map([table], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
            };
            let rows: BTreeMap<Vec<u8>, BTreeMap<String, V>> = {
                let mut s = c.prepare(&format!("SELECT crsql_pack_columns(id), {} FROM {table}", names.join(", "))).unwrap();
                let row = |r: &rusqlite::Row| -> rusqlite::Result<_> {
                    let cells = names.iter().enumerate().map(|(k, name)| Ok((name.clone(), r.get(k + 1)?))).collect::<rusqlite::Result<_>>()?;
                    Ok((r.get(0)?, cells))
                };
                s.query_map([], row).unwrap().map(|r| r.unwrap()).collect()
            };
            let feed = changes_where(c, &format!("WHERE \"table\" = '{table}'"));
            for ch in &feed {
                let row = rows.get(&ch.pk);
                let ctx = format!("seed {seed}: replica {i}, {table}, change {ch:?}");
                if ch.cl % 2 == 0 {
                    assert!(row.is_none(), "{ctx}: a deleted row the table holds");
                } else if ch.cid != "-1" {
                    let cells = row.unwrap_or_else(|| panic!("{ctx}: a cell of a row the table lacks"));
                    let value = cells.get(&ch.cid).unwrap_or_else(|| panic!("{ctx}: a cell of a column the table lacks"));
                    assert_eq!(&ch.val, value, "{ctx}: a value the table does not hold");
                }
            }
            for key in rows.keys() {
                assert!(feed.iter().any(|ch| &ch.pk == key && ch.cl % 2 == 1), "seed {seed}: replica {i}, {table}: row {key:?} is not in the feed");
            }
        }
    }
}

#[test]
fn replicas_that_move_tables_about_converge_with_a_feed_true_to_their_tables() {
    run_seeds("CRR_MOVES", 150, "CRR_MOVES_SEED={seed} cargo test --release --test table_moves -- --nocapture", run);
}
