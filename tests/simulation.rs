//! Deterministic, seeded simulation of 2-5 replicas (the real built extension, one database
//! each) with simulated wall clocks that drift, jump back and stall; random local transactions
//! of every write kind on three tables, some with a savepoint rolled back, some rolled back
//! whole; random syncs that are partial (some read as a window of db_versions, as a transport
//! reading in batches does), duplicated, reordered and relayed, some first merged
//! in part inside a savepoint that is rolled back. Invariants are checked at every sync (the
//! changes since V are the full feed's after V; a merged change is kept or beaten); at the
//! end, a full sync must leave identical tables and identical crsql_changes (apart from
//! db_version and seq) everywhere. On a third of the seeds one replica's app installs its own
//! commit hook and rollback hook. On a fifth of them every replica's app has triggers of its
//! own (`APP_TRIGGERS`): some write another CRR on merges too (tracked as this replica's
//! writes, inside the merge's own statement), one derives a column of the same table on local
//! writes only (`crsql_internal_sync_bit() = 0`), one says RAISE(IGNORE) after updates (made
//! after the table became a CRR). At every sync, each cell of the source's feed must hold the
//! value its version wrote, as seen at any earlier read anywhere (`check_written`): a write
//! that went unrecorded shows there, even where the end's convergence check cannot see it.
//! About a third of the replicas run with
//! recursive triggers on (a REPLACE then fires the replaced row's delete triggers); a sixth
//! with the rows of unordered queries in reverse, and a sixth with strict SQL (no
//! double-quoted strings, defensive mode); a quarter read their feed in parts of 1 to 7
//! changes (crr_set_scan_cap_for_testing), and a third write merged cells through one
//! statement per table (crr_set_wide_writes_for_testing), as wide tables do (but for the
//! columns an index names, which keep their own); a fifth keep no cached statement but the
//! last used (crr_set_statement_budget_for_testing(0)). On seeds 5 mod 7, some syncs first try the merge in
//! a transaction stopped at a random step (sqlite3_interrupt, or a progress handler that gives
//! up) or rolled back, which must leave the replica exactly as it was. On seeds 3 mod 8,
//! replicas are now and then restored through the backup API, into their live connection,
//! from an earlier snapshot of their own or from another replica's database, then take a new
//! site id (`restore_step`); the stop-36 build failed the first such seed, 19 (its connection
//! named the replaced database's site id in the feed).
//!
//! `CRR_SIM_SEED=n` replays one seed (`make sim SEED=n`); `CRR_SIM_SEEDS=N` runs seeds 0..N.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;
use std::cmp::Ordering;
use std::collections::BTreeMap;

const SCHEMA: &str = "
  CREATE TABLE items(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, c REAL, d BLOB, e);
  CREATE TABLE pairs(k1 TEXT NOT NULL, k2 TEXT NOT NULL, v, PRIMARY KEY (k1, k2)) WITHOUT ROWID;
  CREATE TABLE tags(t TEXT PRIMARY KEY NOT NULL);
  CREATE INDEX items_b ON items(b);
  CREATE INDEX items_a ON items(lower(a)) WHERE c IS NOT NULL;
  SELECT crsql_as_crr('items'); SELECT crsql_as_crr('pairs'); SELECT crsql_as_crr('tags');";

/// The app's own triggers (seeds with `seed % 5 == 4`). The first three fire on merges too:
/// their writes to `tags` are recorded as this replica's, in the merge's transaction (and
/// undone with it). The fourth derives `e` from `a` on local writes only, as README advises for
/// a trigger that writes the table a merge is writing. The last, an AFTER trigger that says
/// RAISE(IGNORE) (which abandons the triggers that would fire after it), is made after the
/// table became a CRR; crsql_as_crr, called again as README advises, puts the extension's
/// triggers before it.
const APP_TRIGGERS: &str = "
  CREATE TRIGGER app_items_in AFTER INSERT ON items BEGIN INSERT OR IGNORE INTO tags VALUES ('i' || (NEW.id % 3)); END;
  CREATE TRIGGER app_items_out AFTER DELETE ON items BEGIN DELETE FROM tags WHERE t = 'i' || (OLD.id % 3); END;
  CREATE TRIGGER app_pairs_in AFTER INSERT ON pairs BEGIN INSERT OR REPLACE INTO tags VALUES (NEW.k1 || NEW.k2); END;
  CREATE TRIGGER app_items_derive AFTER UPDATE OF a ON items WHEN crsql_internal_sync_bit() = 0 BEGIN
    UPDATE items SET e = typeof(NEW.a) || length(NEW.a) WHERE id = NEW.id;
  END;
  CREATE TRIGGER app_items_quiet AFTER UPDATE OF b ON items WHEN NEW.b = 1 BEGIN SELECT RAISE(IGNORE); END;
  SELECT crsql_as_crr('items');";

fn value(r: &mut Rng) -> V {
    match r.below(8) {
        0 => V::Null,
        1 | 2 => V::Integer(r.below(3) as i64),
        3 => V::Integer(r.next() as i64),
        4 => V::Real(*r.pick(&[0.5, -1.25, 2.0])),
        5 | 6 => V::Text(r.pick(&["a", "b", "x y"]).to_string()),
        _ => V::Blob(r.pick(&[vec![0u8], vec![1, 2], vec![]]).clone()),
    }
}

struct Replica {
    conn: Connection,
    wall_ms: i64,
    /// Highest db_version of each peer whose changes up to it were all applied here.
    seen: BTreeMap<usize, i64>,
    last_db_version: i64,
}

fn sql_literal(v: &V) -> String {
    match v {
        V::Null => "NULL".into(),
        V::Integer(i) => i.to_string(),
        V::Real(f) => format!("{f:?}"),
        V::Text(t) => format!("'{}'", t.replace('\'', "''")),
        V::Blob(b) => format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
    }
}

/// The keys of `items`: a few per bucket of the clock's crr_dirty (32 keys each), negative ones
/// too, so that "changes since" reads several buckets.
const ITEM_IDS: [i64; 8] = [-33, -1, 0, 1, 31, 32, 70, 1000];

/// One random local write statement.
fn local_write(r: &mut Rng) -> String {
    let id = *r.pick(&ITEM_IDS);
    let k = |r: &mut Rng| r.pick(&["p", "q", "r"]).to_string();
    let col = *r.pick(&["a", "b", "c", "d", "e"]);
    let v = sql_literal(&value(r));
    match r.below(13) {
        0 | 1 => format!("INSERT OR IGNORE INTO items(id, a, b) VALUES ({id}, {v}, {})", sql_literal(&value(r))),
        2 | 3 => format!("UPDATE items SET {col} = {v} WHERE id = {id}"),
        4 => format!("DELETE FROM items WHERE id = {id}"),
        5 => format!("INSERT OR REPLACE INTO items(id, {col}) VALUES ({id}, {v})"),
        6 => format!("INSERT INTO items(id, {col}) VALUES ({id}, {v}) ON CONFLICT(id) DO UPDATE SET {col} = excluded.{col}"),
        7 => format!("UPDATE OR IGNORE items SET id = {} WHERE id = {id}", r.pick(&ITEM_IDS)),
        8 => format!("UPDATE OR REPLACE items SET id = {} WHERE id = {id}", r.pick(&ITEM_IDS)),
        9 => format!("INSERT OR REPLACE INTO pairs VALUES ('{}', '{}', {v})", k(r), k(r)),
        10 => format!("DELETE FROM pairs WHERE k1 = '{}'", k(r)),
        11 => format!("INSERT OR IGNORE INTO tags VALUES ('{}')", k(r)),
        _ => format!("DELETE FROM tags WHERE t = '{}'", k(r)),
    }
}


/// Invariant: after merging `c`, the replica holds `c` or something that beats it.
fn check_dominates(conn: &Connection, c: &Change, ctx: &str) {
    let row_cl: Option<i64> = conn
        .query_row(
            "SELECT max(cl) FROM crsql_changes WHERE \"table\" = ?1 AND pk = ?2",
            rusqlite::params![c.table, c.pk],
            |r| r.get(0),
        )
        .unwrap();
    let cl = row_cl.unwrap_or(0);
    assert!(cl >= c.cl, "{ctx}: row life went back: {cl} < {} for {c:?}", c.cl);
    if cl > c.cl || c.cid == "-1" || c.cl % 2 == 0 {
        return;
    }
    let here: Option<(i64, V, Vec<u8>)> = conn
        .query_row(
            "SELECT col_version, val, site_id FROM crsql_changes WHERE \"table\" = ?1 AND pk = ?2 AND cid = ?3",
            rusqlite::params![c.table, c.pk, c.cid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok();
    let (v, val, site) = here.unwrap_or_else(|| panic!("{ctx}: merged cell vanished: {c:?}"));
    let order = v.cmp(&c.col_version).then_with(|| cmp_sql_values(&val, &c.val)).then_with(|| site.cmp(&c.site_id));
    assert_ne!(order, Ordering::Less, "{ctx}: a merged change beat the stored cell but was not kept: {c:?} vs ({v}, {val:?})");
}

/// A merge of `shipped` into `dst` in a transaction, stopped at a random step (by
/// sqlite3_interrupt, or a progress handler that gives up, for good or once) or else rolled back at its end:
/// either way it must leave `dst` as it was, and the merge after it (`sync`) must go through.
fn stopped_merge(dst: &Connection, shipped: &[Change], r: &mut Rng, ctx: &str) {
    let state = |c: &Connection| (portable(c), dump(c, "items"), dump(c, "pairs"), dump(c, "tags"), one::<i64>(c, "SELECT crsql_db_version()"));
    let before = state(dst);
    let at = r.below(3000) as i64;
    let how = How::from_draws(r.chance(50), at);
    let result = Stop::at(dst, at, how, || -> rusqlite::Result<()> {
        dst.execute_batch("BEGIN")?;
        for c in shipped {
            apply_one(dst, c)?;
        }
        dst.execute_batch("ROLLBACK")
    });
    if let Err(e) = result {
        assert!(e.to_string().contains("interrupt"), "{ctx}: a merge stopped at step {at}: {e}");
    }
    if !dst.is_autocommit() {
        dst.execute_batch("ROLLBACK").unwrap();
    }
    assert!(state(dst) == before, "{ctx}: a merge stopped at step {at} ({how:?}) left something behind");
}

#[allow(clippy::too_many_arguments, reason = "the simulation's one sync step: its arguments are separate parts of the run's state")]
fn sync(reps: &mut [Replica], from: usize, to: usize, r: &mut Rng, full: bool, ctx: &str, written: &mut Written, interrupts: bool) -> i64 {
    let since = if full { 0 } else { *reps[to].seen.get(&from).unwrap_or(&0) };
    // Sometimes a window of db_versions, as a transport that reads in batches does.
    let window = if !full && r.chance(30) { Some(since + 1 + r.below(3) as i64) } else { None };
    let upto = window.map_or(String::new(), |end| format!(" AND db_version <= {end}"));
    let batch = changes_where(&reps[from].conn, &format!("WHERE db_version > {since}{upto} ORDER BY db_version, seq"));
    // Invariant: the changes since V (up to W) are exactly the full feed's changes after V.
    let whole = changes(&reps[from].conn);
    check_written(written, &whole, ctx);
    let full_since: Vec<Change> = whole.into_iter().filter(|c| c.db_version > since && window.is_none_or(|end| c.db_version <= end)).collect();
    assert_eq!(batch, full_since, "{ctx}: changes since {since}{upto} differ from the full feed's");
    let take = if full || batch.is_empty() { batch.len() } else { 1 + r.below(batch.len() as u64) as usize };
    let mut shipped: Vec<Change> = batch[..take].to_vec();
    // The peer has everything up to the last db_version it received whole: with a window,
    // its end, unless the source has not reached it (its next transaction takes the next one).
    let complete = if take == batch.len() {
        match window {
            Some(end) => end.min(one::<i64>(&reps[from].conn, "SELECT crsql_db_version()")).max(since),
            None => batch.last().map_or(since, |c| c.db_version),
        }
    } else {
        batch[take].db_version - 1
    };
    if !full && r.chance(30) {
        let dup = shipped[..shipped.len().min(1 + r.below(4) as usize)].to_vec();
        shipped.extend(dup);
    }
    if !full && r.chance(40) {
        for i in (1..shipped.len()).rev() {
            shipped.swap(i, r.below(i as u64 + 1) as usize);
        }
    }
    let dst = &mut reps[to];
    dst.conn.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({})", dst.wall_ms)).unwrap();
    if interrupts && !full && r.chance(30) {
        stopped_merge(&dst.conn, &shipped, r, ctx);
    }
    let before: i64 = one(&dst.conn, "SELECT crsql_db_version()");
    dst.conn.execute_batch("BEGIN").unwrap();
    // Sometimes part of the batch is merged first inside a savepoint that is rolled back: it
    // must leave nothing behind (not in the table, the clocks, the feed or the count).
    if !full && !shipped.is_empty() && r.chance(20) {
        dst.conn.execute_batch("SAVEPOINT undone").unwrap();
        for c in &shipped[..1 + r.below(shipped.len() as u64) as usize] {
            apply_one(&dst.conn, c).unwrap_or_else(|e| panic!("{ctx}: merging {c:?}: {e}"));
        }
        dst.conn.execute_batch("ROLLBACK TO undone; RELEASE undone").unwrap();
        assert_eq!(one::<i64>(&dst.conn, "SELECT crsql_rows_impacted()"), 0, "{ctx}: rolled-back merges counted");
    }
    for c in &shipped {
        apply_one(&dst.conn, c).unwrap_or_else(|e| panic!("{ctx}: merging {c:?}: {e}"));
    }
    let impacted: i64 = one(&dst.conn, "SELECT crsql_rows_impacted()");
    dst.conn.execute_batch("COMMIT").unwrap();
    let after: i64 = one(&dst.conn, "SELECT crsql_db_version()");
    assert!(after >= before && after >= dst.last_db_version, "{ctx}: db_version went back");
    if impacted > 0 {
        // (Not necessarily before + 1: a transaction whose writes a rollback to a savepoint
        // undid may have taken a db_version that no committed change holds.)
        let recorded: Vec<i64> = dst.conn.prepare(&format!("SELECT DISTINCT db_version FROM crsql_changes WHERE db_version > {before}")).unwrap().query_map([], |r| r.get(0)).unwrap().map(|v| v.unwrap()).collect();
        assert_eq!(recorded, vec![after], "{ctx}: one merge transaction must record exactly one db_version");
    }
    dst.last_db_version = after;
    for c in &shipped {
        check_dominates(&dst.conn, c, ctx);
    }
    let seen = dst.seen.entry(from).or_insert(0);
    *seen = (*seen).max(complete);
    impacted
}

type Portable = Vec<(String, Vec<u8>, String, String, i64, Vec<u8>, i64)>;

fn portable(conn: &Connection) -> Portable {
    let mut v: Portable = changes(conn)
        .into_iter()
        .map(|x| (x.table, x.pk, x.cid, format!("{:?}", x.val), x.col_version, x.site_id, x.cl))
        .collect();
    v.sort();
    v
}

fn run_seed(seed: u64, verbose: bool) {
    let mut r = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC0FFEE);
    let n = 2 + r.below(4) as usize;
    let lamport = seed % 4 == 3;
    // On seeds 5 mod 7, some syncs first try a merge that is stopped part way (or rolled
    // back), which must leave nothing behind.
    let interrupts = seed % 7 == 5;
    let base_ms = 1_700_000_000_000i64;
    let mut reps: Vec<Replica> = (0..n)
        .map(|i| {
            let conn = mem();
            // Connection settings of some apps, which the extension's own SQL must not trip
            // on (chosen from the seed, not drawn, so that each seed's run stays what it was):
            // rows of unordered queries in reverse, strict SQL, or pragmas that change how
            // SQLite works but not what a query answers (each on a sixth).
            match (seed + i as u64) % 6 {
                2 => reverse_unordered(&conn),
                3 => other_pragmas(&conn),
                5 => strict_sql(&conn),
                _ => {}
            }
            // A quarter read their feed in parts: a scan holds 1 to 7 changes at a time.
            if (seed + i as u64) % 4 == 1 {
                conn.execute_batch(&format!("SELECT crr_set_scan_cap_for_testing({})", 1 + (seed + i as u64) % 7)).unwrap();
            }
            // A third write merged cells through one statement per table, as wide tables'
            // merges do (on the seeds with APP_TRIGGERS, `items` has triggers on UPDATE OF
            // columns, and so keeps a statement per column).
            if (seed + i as u64).is_multiple_of(3) {
                conn.execute_batch("SELECT crr_set_wide_writes_for_testing(1)").unwrap();
            }
            // A fifth keep no statement but the last used: every other is prepared again.
            if (seed + i as u64) % 5 == 2 {
                conn.execute_batch("SELECT crr_set_statement_budget_for_testing(0)").unwrap();
            }
            if lamport {
                conn.execute_batch("SELECT crsql_config_set('clock', 'lamport')").unwrap();
            }
            conn.execute_batch(SCHEMA).unwrap();
            if seed % 5 == 4 {
                conn.execute_batch(APP_TRIGGERS).unwrap();
            }
            // Some apps turn recursive triggers on (apsw's best practice does): then a REPLACE
            // fires the delete triggers of the rows it replaces.
            if r.chance(30) {
                conn.execute_batch("PRAGMA recursive_triggers = ON").unwrap();
            }
            Replica { conn, wall_ms: base_ms + r.below(600_000) as i64, seen: BTreeMap::new(), last_db_version: 0 }
        })
        .collect();
    // On a third of the seeds, replica 0's app has a commit hook and a rollback hook of its
    // own (SQLite keeps one of each per connection; the extension installs none): its
    // transactions must stay apart.
    if seed % 3 == 1 {
        // SAFETY: hooks without a record point nowhere.
        unsafe {
            set_app_hook(&reps[0].conn, None);
            set_app_rollback_hook(&reps[0].conn, None);
        }
    }
    // On seeds 3 mod 8, replicas are now and then restored through the backup API, into the
    // live connection, from an earlier snapshot of their own database or from another
    // replica's, and then take a site id of their own, as README asks of a restored database;
    // their peers start over with them (the restored replica's versions are another
    // numbering), and they with their peers. The draws come from an Rng of their own, so that
    // the other seeds run as they did.
    let restores = seed % 8 == 3;
    let mut rr = Rng(seed ^ 0x0BAC_C0DE);
    let mut snapshots: Vec<Option<Connection>> = (0..n).map(|_| None).collect();
    let steps = 40 + r.below(60);
    let mut written = Written::new();
    for step in 0..steps {
        if restores && rr.chance(10) {
            restore_step(&mut reps, &mut snapshots, &mut rr, verbose, &format!("seed {seed} step {step}"));
        }
        let i = r.below(n as u64) as usize;
        // Simulated clock: mostly advances, sometimes stalls, sometimes jumps back.
        let rep = &mut reps[i];
        rep.wall_ms += match r.below(10) {
            0 => -(r.below(120_000) as i64),
            1 | 2 => 0,
            _ => r.below(2_000) as i64,
        };
        let ctx = format!("seed {seed} step {step}");
        if r.chance(55) {
            let mut stmts: Vec<String> = (0..1 + r.below(4)).map(|_| local_write(&mut r)).collect();
            // Sometimes a savepoint's writes are undone (and its later ones kept), or the
            // transaction rolls back: what a rollback undid must leave no trace in the feed.
            if r.chance(25) {
                let at = r.below(stmts.len() as u64 + 1) as usize;
                let undone: Vec<String> = (0..1 + r.below(3)).map(|_| local_write(&mut r)).collect();
                let kept_after = if r.chance(50) { format!("; {}", local_write(&mut r)) } else { String::new() };
                stmts.insert(at, format!("SAVEPOINT s; {}; ROLLBACK TO s{kept_after}; RELEASE s", undone.join("; ")));
            }
            let end = if r.chance(10) { "ROLLBACK" } else { "COMMIT" };
            let rep = &reps[i];
            rep.conn.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({})", rep.wall_ms)).unwrap();
            let sql = format!("BEGIN; {}; {end};", stmts.join("; "));
            if verbose {
                println!("{ctx}: replica {i} writes: {sql}");
            }
            rep.conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{ctx}: {sql}: {e}"));
        } else {
            let mut j = r.below(n as u64) as usize;
            if j == i {
                j = (j + 1) % n;
            }
            let impacted = sync(&mut reps, i, j, &mut r, false, &ctx, &mut written, interrupts);
            if verbose {
                println!("{ctx}: sync {i} -> {j}: {impacted} impacted");
            }
        }
    }
    // Full sync until quiet, then everything must agree. (The app's triggers write tags when
    // a merge changes items or pairs: those writes need a round more to reach the others.)
    for round in 0..6 {
        let mut total = 0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    total += sync(&mut reps, i, j, &mut r, true, &format!("seed {seed} final round {round}"), &mut written, false);
                }
            }
        }
        if total == 0 {
            break;
        }
    }
    for i in 1..n {
        for table in ["items", "pairs", "tags"] {
            assert_eq!(dump(&reps[0].conn, table), dump(&reps[i].conn, table), "seed {seed}: table {table} differs between replica 0 and {i}");
        }
        assert_eq!(portable(&reps[0].conn), portable(&reps[i].conn), "seed {seed}: crsql_changes differ between replica 0 and {i}");
    }
}

/// A copy of `from`'s database in a new in-memory connection (the backup API).
fn snapshot(from: &Connection) -> Connection {
    let mut to = Connection::open_in_memory().unwrap();
    restore(from, &mut to);
    to
}

/// Takes a snapshot of a random replica's database, or restores one: from its own snapshot
/// or from another replica's database, through the backup API into its live connection, then
/// gives it a new site id. Its peers start over with it, and it with them.
fn restore_step(reps: &mut [Replica], snapshots: &mut [Option<Connection>], rr: &mut Rng, verbose: bool, ctx: &str) {
    let n = reps.len();
    let k = rr.below(n as u64) as usize;
    if snapshots[k].is_none() || rr.chance(40) {
        snapshots[k] = Some(snapshot(&reps[k].conn));
        return;
    }
    let other = (k + 1 + rr.below(n as u64 - 1) as usize) % n;
    let from = if rr.chance(50) { snapshots[k].take().unwrap() } else { snapshot(&reps[other].conn) };
    if verbose {
        println!("{ctx}: replica {k} restored from {}", if snapshots[k].is_none() { "its own snapshot".to_string() } else { format!("replica {other}") });
    }
    let rep = &mut reps[k];
    restore(&from, &mut rep.conn);
    rep.conn.execute_batch("SELECT crr_new_site_id()").unwrap_or_else(|e| panic!("{ctx}: crr_new_site_id after a restore: {e}"));
    rep.seen.clear();
    rep.last_db_version = one(&rep.conn, "SELECT crsql_db_version()");
    for r in reps.iter_mut() {
        r.seen.remove(&k);
    }
}

#[test]
fn replicas_converge_under_random_writes_and_random_delivery() {
    let seeds = run_seeds("CRR_SIM", 30, "make sim SEED={seed}", run_seed);
    println!("simulation: {seeds} seeds converged");
}
