//! Causality: a write made after its replica has merged an earlier write of the same cell must
//! beat it everywhere, whatever the wall clocks do. Two to four replicas pass every cell's
//! latest value along in causal chains: a replica writes a cell only once it holds that
//! cell's latest write (it wrote it or merged it), and deletes or re-inserts a row only once
//! it holds the latest of all its cells and of its life, with its wall clock moved back and
//! forth by up to 20 minutes (inside the default drift limit) between writes; a third of the
//! seeds run in lamport mode. After a full sync every replica must hold every cell's last
//! write, and every row's last delete or insert.
//! `CRR_CAUSAL_SEEDS` / `CRR_CAUSAL_FROM` / `CRR_CAUSAL_SEED` choose the seeds.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;
use std::collections::BTreeMap;

const ROWS: i64 = 4;
const COLUMNS: [&str; 2] = ["a", "b"];
const WALL_MS: i64 = 1_700_000_000_000;
/// The pseudo-cell of a row's life ("alive" or "deleted"), and a deleted row's cells.
const LIFE: &str = "life";
const GONE: &str = "gone";

/// Sends every change of `from` to `to`.
fn sync(replicas: &[Connection], from: usize, to: usize) {
    apply(&replicas[to], &changes(&replicas[from])).unwrap_or_else(|e| panic!("sync {from} -> {to}: {e}"));
}

fn run(seed: u64, verbose: bool) {
    let mut r = Rng(seed);
    let n = 2 + r.below(3) as usize;
    let lamport = seed % 3 == 2;
    let replicas: Vec<Connection> = (0..n).map(|_| mem()).collect();
    for c in &replicas {
        if lamport {
            c.execute_batch("SELECT crsql_config_set('clock', 'lamport')").unwrap();
        }
        c.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({WALL_MS}); CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a, b); SELECT crsql_as_crr('t');")).unwrap();
    }
    // The rows are made once, by replica 0, and reach every replica before any update.
    let rows: Vec<String> = (0..ROWS).map(|k| format!("({k}, 'init', 'init')")).collect();
    replicas[0].execute_batch(&format!("INSERT INTO t VALUES {}", rows.join(", "))).unwrap();
    for j in 1..n {
        sync(&replicas, 0, j);
    }
    // Per cell: its latest value and the replicas that hold it.
    let mut latest: BTreeMap<(i64, &str), (String, Vec<bool>)> = BTreeMap::new();
    for k in 0..ROWS {
        for col in COLUMNS {
            latest.insert((k, col), ("init".into(), vec![true; n]));
        }
        latest.insert((k, LIFE), ("alive".into(), vec![true; n]));
    }
    for step in 0..60 {
        let i = r.below(n as u64) as usize;
        if r.chance(55) {
            // A write of a cell replica i holds the latest of, at a wall clock moved at random;
            // a delete or re-insert of a row whose every cell (and life) it holds the latest of.
            let k = r.below(ROWS as u64) as i64;
            let holds = |col: &str| latest[&(k, col)].1[i];
            let alive = latest[&(k, LIFE)].0 == "alive";
            let ms = WALL_MS + r.below(40 * 60_000) as i64 - 20 * 60_000;
            let value = format!("s{step}");
            let whole_row = [LIFE, COLUMNS[0], COLUMNS[1]].iter().all(|c| holds(c));
            let (sql, written): (String, Vec<(&str, String)>) = if whole_row && r.chance(15) {
                if alive {
                    (format!("DELETE FROM t WHERE id = {k}"), vec![(LIFE, "deleted".into()), (COLUMNS[0], GONE.into()), (COLUMNS[1], GONE.into())])
                } else {
                    let cells = vec![(LIFE, "alive".into()), (COLUMNS[0], value.clone()), (COLUMNS[1], value.clone())];
                    (format!("INSERT INTO t VALUES ({k}, '{value}', '{value}')"), cells)
                }
            } else {
                let col = *r.pick(&COLUMNS);
                if !alive || !holds(LIFE) || !holds(col) {
                    continue;
                }
                (format!("UPDATE t SET {col} = '{value}' WHERE id = {k}"), vec![(col, value.clone())])
            };
            if verbose {
                println!("step {step}: replica {i} at {ms}: {sql}");
            }
            replicas[i].execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({ms}); {sql}")).unwrap();
            for (col, v) in written {
                let mut holders = vec![false; n];
                holders[i] = true;
                latest.insert((k, col), (v, holders));
            }
        } else {
            let j = r.below(n as u64) as usize;
            if i == j {
                continue;
            }
            if verbose {
                println!("step {step}: sync {i} -> {j}");
            }
            sync(&replicas, i, j);
            for (_, holders) in latest.values_mut() {
                if holders[i] {
                    holders[j] = true;
                }
            }
        }
    }
    for _ in 0..2 {
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    sync(&replicas, i, j);
                }
            }
        }
    }
    for (i, c) in replicas.iter().enumerate() {
        for ((k, col), (value, _)) in &latest {
            let exists: i64 = one(c, &format!("SELECT count(*) FROM t WHERE id = {k}"));
            if *col == LIFE {
                assert_eq!(exists == 1, value == "alive", "replica {i}, row {k}: the last delete or insert in causal order must win");
            } else if value != GONE {
                let got: V = one(c, &format!("SELECT {col} FROM t WHERE id = {k}"));
                assert_eq!(got, V::Text(value.clone()), "replica {i}, {col} of row {k}: the last write in causal order must win");
            }
        }
    }
}

#[test]
fn a_write_after_a_merge_beats_what_was_merged() {
    run_seeds("CRR_CAUSAL", 150, "CRR_CAUSAL_SEED={seed} cargo test --release --test causality -- --nocapture", run);
}
