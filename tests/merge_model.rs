//! Merges of arbitrary change sequences against a model of SPEC section 7, written here from
//! the spec (not from src/core/merge.rs). Real replicas only send changes that one history
//! produced; a transport, a bug elsewhere or a hostile peer can send any mix: lives that skip
//! ahead, cells of dead or older lives, equal versions with other values, equal everything
//! from other sites. For random such sequences (three tables: a rowid key with a DEFAULT, a
//! compound WITHOUT ROWID key, a key-only table with untyped keys, one of them a REAL twin of
//! another that only ever arrives deleted), one replica's tables and crsql_changes must
//! be what the model says, and a second replica that got the same changes shuffled, duplicated
//! and batched differently must hold exactly the same (a third of the seeds in lamport mode;
//! on odd seeds the second writes merged cells as wide tables do, one statement per table;
//! on half the seeds it keeps no cached statement but the last used).
//!
//! `CRR_MODEL_SEED=n cargo test --release --test merge_model -- --nocapture` replays seed n;
//! `CRR_MODEL_SEEDS` / `CRR_MODEL_FROM` run other seeds.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;
use std::cmp::Ordering;
use std::collections::BTreeMap;

const SCHEMA: &str = "
  CREATE TABLE m(id INTEGER PRIMARY KEY NOT NULL, a, b DEFAULT 7, c);
  CREATE TABLE w(k TEXT NOT NULL, j NOT NULL, v, PRIMARY KEY (k, j)) WITHOUT ROWID;
  CREATE TABLE kk(x NOT NULL, y NOT NULL, PRIMARY KEY (x, y));
  SELECT crsql_as_crr('m'); SELECT crsql_as_crr('w'); SELECT crsql_as_crr('kk');";

/// Each table's key SQL (for crsql_pack_columns), its tracked columns and their defaults.
struct Table {
    name: &'static str,
    keys: &'static [&'static str],
    columns: &'static [(&'static str, V)],
}

fn tables() -> Vec<Table> {
    vec![
        Table { name: "m", keys: &["1", "2", "40"], columns: &[("a", V::Null), ("b", V::Integer(7)), ("c", V::Null)] },
        Table { name: "w", keys: &["'p', 1", "'p', 'q'", "'', X'00'"], columns: &[("v", V::Null)] },
        // The third key is the first's twin (a REAL equal to an INTEGER, table_shape::key_twin):
        // `incoming` sends it only deleted.
        Table { name: "kk", keys: &["1, 'y'", "'x', 2", "1.0, 'y'"], columns: &[] },
    ]
}

const SITES: [[u8; 16]; 3] = [[0x10; 16], [0x80; 16], [0xF0; 16]];

/// Values whose SQL order is a total order without ties between different values (no 1 and
/// 1.0: equal in SQL, different in storage, and a sequence that sends both at one version
/// from one site has no single answer).
fn value(r: &mut Rng) -> V {
    match r.below(7) {
        0 => V::Null,
        1 | 2 => V::Integer(r.below(3) as i64),
        3 => V::Real(0.5),
        4 => V::Text(r.pick(&["x", "y"]).to_string()),
        _ => V::Blob(vec![r.below(2) as u8]),
    }
}

#[derive(Debug, Clone)]
struct Incoming {
    table: usize,
    key: usize,
    /// None: the sentinel.
    column: Option<usize>,
    val: V,
    col_version: i64,
    site: usize,
    cl: i64,
    db_version: i64,
    seq: i64,
}

fn incoming(r: &mut Rng, ts: &[Table]) -> Incoming {
    let table = r.below(ts.len() as u64) as usize;
    let t = &ts[table];
    let column = if t.columns.is_empty() || r.chance(20) { None } else { Some(r.below(t.columns.len() as u64) as usize) };
    let key = r.below(t.keys.len() as u64) as usize;
    let cl = *r.pick(&[0, 1, 1, 1, 2, 3, 3, 4, 5]);
    // No replica makes a key with a twin live, and merges refuse it live; one an earlier build
    // made can still be deleted, and that must delete no row but one keyed by the REAL.
    let cl = if t.name == "kk" && key == 2 { cl + cl % 2 } else { cl };
    let (val, col_version) = match column {
        None => (V::Null, cl),
        // Few versions and, half the time, two values: many ties for the value and the site
        // to break.
        Some(_) if r.chance(50) => (if r.chance(50) { V::Integer(0) } else { V::Text("x".into()) }, 1 + r.below(2) as i64),
        Some(_) => (value(r), 1 + r.below(3) as i64),
    };
    Incoming {
        table,
        key,
        column,
        val,
        col_version,
        site: r.below(3) as usize,
        cl,
        db_version: 1 + r.below(5) as i64,
        seq: r.below(4) as i64,
    }
}


/// One row as SPEC 7 says a replica holds it.
#[derive(Debug, Clone, Default)]
struct Row {
    cl: i64,
    /// The greatest site among the changes seen at this causal length (while it is visible,
    /// and among sentinel changes always).
    sentinel_site: usize,
    cells: BTreeMap<usize, (i64, V, usize)>,
}

/// SPEC 7, rules 1-3.
fn model_apply(rows: &mut BTreeMap<(usize, usize), Row>, c: &Incoming) {
    let row = rows.entry((c.table, c.key)).or_default();
    match c.cl.cmp(&row.cl) {
        Ordering::Less => return,
        Ordering::Greater => *row = Row { cl: c.cl, sentinel_site: c.site, cells: BTreeMap::new() },
        Ordering::Equal => {
            // The sentinel of a visible life (deleted, resurrected, or without cells) records the
            // greatest site seen at it; a sentinel change raises a hidden one too (an alter that
            // drops the row's cells would show it).
            if (c.column.is_none() || row.cl != 1 || row.cells.is_empty()) && SITES[c.site] > SITES[row.sentinel_site] {
                row.sentinel_site = c.site;
            }
        }
    }
    let (Some(col), true) = (c.column, row.cl % 2 == 1) else { return };
    let wins = match row.cells.get(&col) {
        None => true,
        Some((v, val, s)) => {
            c.col_version.cmp(v).then_with(|| cmp_sql_values(&c.val, val)).then_with(|| SITES[c.site].cmp(&SITES[*s])) == Ordering::Greater
        }
    };
    if wins {
        row.cells.insert(col, (c.col_version, c.val.clone(), c.site));
    }
}

fn pack(conn: &Connection, keys: &str) -> Vec<u8> {
    one(conn, &format!("SELECT crsql_pack_columns({keys})"))
}

fn to_change(conn: &Connection, ts: &[Table], c: &Incoming) -> Change {
    let t = &ts[c.table];
    Change {
        table: t.name.into(),
        pk: pack(conn, t.keys[c.key]),
        cid: c.column.map_or("-1".into(), |i| t.columns[i].0.into()),
        val: c.val.clone(),
        col_version: c.col_version,
        db_version: c.db_version,
        site_id: SITES[c.site].to_vec(),
        cl: c.cl,
        seq: c.seq,
    }
}

/// Applies the changes in batches of random size, each in its own transaction.
fn deliver(conn: &Connection, cs: &[Change], r: &mut Rng) {
    let mut at = 0;
    while at < cs.len() {
        let n = (1 + r.below(5) as usize).min(cs.len() - at);
        apply(conn, &cs[at..at + n]).unwrap_or_else(|e| panic!("merging {:?}: {e}", &cs[at..at + n]));
        at += n;
    }
}

/// The feed without this replica's own numbering (db_version, seq), sorted.
fn portable(conn: &Connection) -> Vec<String> {
    let mut v: Vec<String> = changes(conn).into_iter().map(|x| format!("{} {:?} {} {:?} {} {:?} {}", x.table, x.pk, x.cid, x.val, x.col_version, x.site_id, x.cl)).collect();
    v.sort();
    v
}

fn run_seed(seed: u64, verbose: bool) -> usize {
    let mut r = Rng(seed ^ 0x005E_ED0F_0DE1);
    let ts = tables();
    let (a, b) = (mem(), mem());
    // A third of the seeds in lamport mode: the merge rules are the same.
    for c in [&a, &b] {
        if seed % 3 == 2 {
            c.execute_batch("SELECT crsql_config_set('clock', 'lamport')").unwrap();
        }
        c.execute_batch(SCHEMA).unwrap();
    }
    // On odd seeds the second replica writes merged cells through one statement per table,
    // as wide tables' merges do (tables::WIDE_WRITES).
    if seed % 2 == 1 {
        b.execute_batch("SELECT crr_set_wide_writes_for_testing(1)").unwrap();
    }
    // On seeds 2 and 3 mod 4 it keeps no cached statement but the last used: every other is
    // prepared again at its next use.
    if seed % 4 >= 2 {
        b.execute_batch("SELECT crr_set_statement_budget_for_testing(0)").unwrap();
    }
    let sent: Vec<Incoming> = (0..1 + r.below(40)).map(|_| incoming(&mut r, &ts)).collect();
    let mut model = BTreeMap::new();
    for c in &sent {
        model_apply(&mut model, c);
    }
    let cs: Vec<Change> = sent.iter().map(|c| to_change(&a, &ts, c)).collect();
    if verbose {
        for c in &cs {
            println!("seed {seed}: {c:?}");
        }
    }
    deliver(&a, &cs, &mut r);
    // The other replica: shuffled, some duplicated.
    let mut shuffled = cs.clone();
    for _ in 0..r.below(5) {
        let i = r.below(cs.len() as u64) as usize;
        shuffled.push(cs[i].clone());
    }
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, r.below(i as u64 + 1) as usize);
    }
    deliver(&b, &shuffled, &mut r);

    // The tables hold the live rows, with each cell's winning value or the column's default.
    for (ti, t) in ts.iter().enumerate() {
        for (ki, keys) in t.keys.iter().enumerate() {
            let pk = pack(&a, keys);
            let row = model.get(&(ti, ki)).cloned().unwrap_or_default();
            let cols: Vec<String> = t.columns.iter().map(|(c, _)| c.to_string()).collect();
            let select = if cols.is_empty() { "1".to_string() } else { cols.join(", ") };
            let key_cols: Vec<&str> = match t.name {
                "m" => vec!["id"],
                "w" => vec!["k", "j"],
                _ => vec!["x", "y"],
            };
            let held: Option<Vec<V>> = a
                .query_row(&format!("SELECT {select} FROM {} WHERE crsql_pack_columns({}) = ?1", t.name, key_cols.join(", ")), [&pk], |q| {
                    (0..t.columns.len().max(1)).map(|i| q.get::<_, V>(i)).collect()
                })
                .ok();
            let ctx = format!("seed {seed}: {} key ({keys})", t.name);
            if row.cl % 2 == 0 {
                assert_eq!(held, None, "{ctx}: the model has no live row (cl {})", row.cl);
            } else {
                let want: Vec<V> = if t.columns.is_empty() {
                    vec![V::Integer(1)]
                } else {
                    t.columns.iter().enumerate().map(|(i, (_, default))| row.cells.get(&i).map_or(default.clone(), |c| c.1.clone())).collect()
                };
                assert_eq!(held, Some(want), "{ctx}: the row (model {row:?})");
            }
            // Its feed: the winning cell clocks, and the sentinel where it carries information.
            let mut want: Vec<(String, V, i64, Vec<u8>, i64)> = Vec::new();
            if row.cl > 0 && (row.cl != 1 || row.cells.is_empty()) {
                want.push(("-1".into(), V::Null, row.cl, SITES[row.sentinel_site].to_vec(), row.cl));
            }
            for (i, (v, val, s)) in &row.cells {
                want.push((t.columns[*i].0.into(), val.clone(), *v, SITES[*s].to_vec(), row.cl));
            }
            want.sort_by(|x, y| x.0.cmp(&y.0));
            let mut got: Vec<(String, V, i64, Vec<u8>, i64)> = changes_where(&a, &format!("WHERE \"table\" = '{}' AND pk = X'{}'", t.name, pk.iter().map(|x| format!("{x:02X}")).collect::<String>()))
                .into_iter()
                .map(|x| (x.cid, x.val, x.col_version, x.site_id, x.cl))
                .collect();
            got.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(got, want, "{ctx}: the feed (model {row:?})");
        }
    }
    // The other replica holds exactly the same.
    assert_eq!(portable(&b), portable(&a), "seed {seed}: the shuffled replica's feed");
    for t in &ts {
        assert_eq!(dump(&b, t.name), dump(&a, t.name), "seed {seed}: the shuffled replica's table {}", t.name);
    }
    sent.len()
}

#[test]
fn arbitrary_change_sequences_merge_as_the_spec_says() {
    let seeds = run_seeds("CRR_MODEL", 150, "CRR_MODEL_SEED={seed} cargo test --release --test merge_model -- --nocapture", |seed, verbose| {
        run_seed(seed, verbose);
    });
    assert!(seeds > 0);
}
