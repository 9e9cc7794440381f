//! Table-level schema changes on replicas that keep writing and syncing: 12-step rebuilds in a
//! bracket and outside one (with crsql_as_crr run then, or at the app's next start), a table
//! dropped and made again, crsql_as_table and crsql_as_crr again, a CRR dropped for another
//! renamed to its name, one renamed away for a new table of its name, two that swap names
//! (one in its bracket, the other outside any), one that takes the name of another dropped in
//! its bracket, and any of those
//! in a transaction rolled back. Two to four
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

/// The tables' shape: keyed by the rowid (a rowid clock, found through crr_dirty), or not
/// (a clock keyed by the packed key, with a dbv index), by seed.
const SHAPES: [&str; 2] = ["(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER)", "(id INT NOT NULL PRIMARY KEY, a TEXT, b INTEGER) WITHOUT ROWID"];
const WRITTEN: [&str; 2] = ["t", "u"];

/// Migration `kind` of table `t` (`step`: its place in the list, for names it makes), whose
/// tables have `shape`.
fn migration(kind: u64, t: &str, step: usize, shape: &str) -> String {
    let other = if t == "t" { "u" } else { "t" };
    match kind {
        0 => format!(
            "CREATE TABLE {t}_new{shape}; INSERT INTO {t}_new SELECT * FROM {t} WHERE id % 3 != 0;
             DROP TABLE {t}; ALTER TABLE {t}_new RENAME TO {t}; SELECT crsql_as_crr('{t}');"
        ),
        // The same, with crsql_as_crr left to the app's next start.
        1 => format!("CREATE TABLE {t}_new{shape}; INSERT INTO {t}_new SELECT * FROM {t} WHERE id % 4 != 1; DROP TABLE {t}; ALTER TABLE {t}_new RENAME TO {t};"),
        2 => format!("DROP TABLE {t}; CREATE TABLE {t}{shape}; SELECT crsql_as_crr('{t}');"),
        3 => format!("SELECT crsql_as_table('{t}'); SELECT crsql_as_crr('{t}');"),
        4 => format!(
            "SELECT crsql_begin_alter('{t}'); CREATE TABLE {t}_new{shape}; INSERT INTO {t}_new SELECT * FROM {t} WHERE id % 5 != 2;
             DROP TABLE {t}; ALTER TABLE {t}_new RENAME TO {t}; SELECT crsql_commit_alter('{t}');"
        ),
        5 => format!("DROP TABLE {t}; ALTER TABLE {other} RENAME TO {t}; CREATE TABLE {other}{shape}; SELECT crsql_as_crr('{other}');"),
        6 => format!("ALTER TABLE {t} RENAME TO {t}_{step}; CREATE TABLE {t}{shape}; SELECT crsql_as_crr('{t}');"),
        // The two swap names, `t` in its bracket, the other outside any.
        8 => format!(
            "SELECT crsql_begin_alter('{t}'); ALTER TABLE {other} RENAME TO swapping; ALTER TABLE {t} RENAME TO {other};
             ALTER TABLE swapping RENAME TO {t}; SELECT crsql_commit_alter('{other}');"
        ),
        // The other takes `t`'s name in its bracket, `t` dropped there.
        9 => format!(
            "SELECT crsql_begin_alter('{other}'); DROP TABLE {t}; ALTER TABLE {other} RENAME TO {t}; SELECT crsql_commit_alter('{t}');
             CREATE TABLE {other}{shape}; SELECT crsql_as_crr('{other}');"
        ),
        // One of the others, with a write, in a transaction rolled back: nothing changes.
        _ => format!("BEGIN; INSERT OR REPLACE INTO {t} VALUES (99, 'gone', 0); {} ROLLBACK;", migration([0, 1, 2, 3, 4, 5, 6, 8, 9][step % 9], t, step, shape)),
    }
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

/// What an app does at every start: crsql_as_crr on each of its CRRs.
fn app_start(c: &Connection, seed: u64, i: usize) {
    for table in crrs(c).into_iter().chain(WRITTEN.iter().map(|t| t.to_string())) {
        c.execute_batch(&format!("SELECT crsql_as_crr('{table}')")).unwrap_or_else(|e| panic!("seed {seed}, replica {i}: crsql_as_crr('{table}'): {e}"));
    }
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
        c.execute_batch(&format!("CREATE TABLE t{shape}; SELECT crsql_as_crr('t'); CREATE TABLE u{shape}; SELECT crsql_as_crr('u');")).unwrap();
    }
    let plan: Vec<(u64, &str)> = (0..1 + r.below(4)).map(|_| (r.below(10), *r.pick(&WRITTEN))).collect();
    if verbose {
        eprintln!("seed {seed}: {n} replicas, migrations {plan:?}");
    }
    let mut done = vec![0; n];
    let mut awaits_start = vec![false; n];
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
                let sql = match r.below(10) {
                    0..=4 => format!("INSERT OR REPLACE INTO {table} VALUES ({id}, 's{i}-{}', {})", r.below(100), r.below(6)),
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
                let result = apply(pick(&mut r, j), &changes(c));
                if verbose {
                    eprintln!("sync {i} -> {j}: {result:?}");
                }
            }
            // (A migration that leaves crsql_as_crr to the app's next start is the last one
            // before it: a table without its triggers cannot be followed through a rename.)
            8 if done[i] < plan.len() && !awaits_start[i] => {
                let (kind, table) = plan[done[i]];
                if verbose {
                    eprintln!("{i}: migration {kind} of {table}");
                }
                c.execute_batch(&migration(kind, table, done[i], shape)).unwrap_or_else(|e| panic!("seed {seed}, replica {i}, migration {kind} of {table}: {e}"));
                awaits_start[i] = kind == 1;
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
            let (kind, table) = plan[done[i]];
            c.execute_batch(&migration(kind, table, done[i], shape)).unwrap_or_else(|e| panic!("seed {seed}, replica {i}, migration {kind} of {table}: {e}"));
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
            let rows: BTreeMap<Vec<u8>, (V, V)> = {
                let mut s = c.prepare(&format!("SELECT crsql_pack_columns(id), a, b FROM {table}")).unwrap();
                s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))).unwrap().map(|r| r.unwrap()).collect()
            };
            let feed = changes_where(c, &format!("WHERE \"table\" = '{table}'"));
            for ch in &feed {
                let row = rows.get(&ch.pk);
                let ctx = format!("seed {seed}: replica {i}, {table}, change {ch:?}");
                if ch.cl % 2 == 0 {
                    assert!(row.is_none(), "{ctx}: a deleted row the table holds");
                } else if ch.cid != "-1" {
                    let (a, b) = row.unwrap_or_else(|| panic!("{ctx}: a cell of a row the table lacks"));
                    assert_eq!(&ch.val, if ch.cid == "a" { a } else { b }, "{ctx}: a value the table does not hold");
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
