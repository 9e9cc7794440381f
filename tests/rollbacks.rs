//! One replica under random transaction structure: BEGIN / COMMIT / ROLLBACK, nested
//! savepoints released or rolled back, statements that fail part way (undone, kept by OR FAIL,
//! or ending the transaction by OR ROLLBACK), and, in between, the
//! things whose effects the extension caches across statements: writes to two CRRs (one keyed
//! by rowid, one by a packed key), merges from a peer (some in a statement that fails), reads
//! of crsql_changes, DDL of plain tables (which moves the schema cookie), columns added through
//! crsql_begin_alter / crsql_commit_alter (with updates before and after the ALTER), a DROP TABLE of a CRR and an added or a dropped
//! column that a rollback undoes, tracking turned off and on (crsql_as_table, crsql_as_crr),
//! crr_new_site_id(), a changed drift limit, and reopening the file; between its transactions,
//! a second connection to the same file does some of the same. On odd seeds, each local write
//! must be recorded under the site id the database names at that moment; on seeds 2 mod 3,
//! the app has a commit hook and a rollback hook of its own (the extension installs none); on
//! seeds 3 mod 4, its connections run with recursive triggers on (a REPLACE then fires the
//! delete triggers of the rows it replaces); on seeds 2 mod 5, one statement or merge in
//! fourteen is stopped at a random step (sqlite3_interrupt, or a progress handler that gives
//! up, for good or for that statement only), and the app rolls back what is left of its
//! transaction.
//! Between transactions, the clock mark the second connection recovers must be at least every
//! version in the feed (`check_mark`). Now and then the replica's own feed is merged back into it through the second connection
//! (a relay): every change must be taken as stale, none past the clock mark that connection
//! recovers. Between transactions, each cell of the feed must hold the value its version wrote when
//! first read (`check_written`: a write the triggers missed changes a value under an old
//! version, which a rebuild from the feed, which reads current values, cannot see). After each
//! run, reopened, the replica's feed must name only sites it knows and rebuild it exactly,
//! metadata included, on an empty replica.
//!
//! `CRR_ROLLBACK_SEED=n` replays one seed verbosely (`make rollbacks SEED=n`);
//! `CRR_ROLLBACK_SEEDS=N` runs seeds 0..N.

mod common;
use common::*;
use rusqlite::Connection;

const SCHEMA: &str = "
  CREATE TABLE items(id INTEGER PRIMARY KEY NOT NULL, a, b);
  CREATE TABLE pairs(k TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID;
  SELECT crsql_as_crr('items'); SELECT crsql_as_crr('pairs');";

const WALL_MS: i64 = 1_700_000_000_000;

fn write(r: &mut Rng) -> String {
    let id = r.below(6);
    let k = *r.pick(&["p", "q", "r"]);
    let v = r.below(4);
    match r.below(11) {
        0 => format!("INSERT OR REPLACE INTO items(id, a, b) VALUES ({id}, 'a{v}', {v})"),
        1 => format!("INSERT INTO items(id, a) VALUES ({id}, 'x{v}') ON CONFLICT(id) DO UPDATE SET a = excluded.a"),
        2 => format!("UPDATE items SET b = {v} WHERE id = {id}"),
        3 => format!("UPDATE OR REPLACE items SET id = {} WHERE id = {id}", r.below(6)),
        4 => format!("DELETE FROM items WHERE id = {id}"),
        5 => format!("INSERT OR REPLACE INTO pairs VALUES ('{k}', {v})"),
        6 => format!("UPDATE pairs SET v = {v} WHERE k = '{k}'"),
        7 => format!("DELETE FROM pairs WHERE k = '{k}'"),
        // Fails on its second row when the first exists: SQLite undoes the statement's first
        // row, and so must everything the extension cached while writing it.
        8 => format!("INSERT INTO items(id, a) VALUES ({}, 'fresh'), ({id}, 'dup')", 100 + r.below(1000)),
        // The same under FAIL, which keeps the statement's first row (committed at once
        // outside a transaction), and under ROLLBACK, which ends the whole transaction from
        // inside the statement (`Run::step` follows).
        9 => format!("INSERT OR FAIL INTO items(id, a) VALUES ({}, 'kept'), ({id}, 'dup')", 100 + r.below(1000)),
        _ => format!("INSERT OR ROLLBACK INTO items(id, a) VALUES ({}, 'gone'), ({id}, 'dup')", 100 + r.below(1000)),
    }
}

fn literal(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value as V;
    match v {
        V::Null => "NULL".into(),
        V::Integer(i) => i.to_string(),
        V::Real(f) => format!("{f:?}"),
        V::Text(t) => format!("'{}'", t.replace('\'', "''")),
        V::Blob(b) => blob(b),
    }
}

fn blob(b: &[u8]) -> String {
    format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>())
}

/// A change as the values of a row of crsql_changes, in its column order.
fn change_values(c: &Change) -> String {
    format!(
        "'{}', {}, '{}', {}, {}, {}, {}, {}, {}",
        c.table,
        blob(&c.pk),
        c.cid,
        literal(&c.val),
        c.col_version,
        c.db_version,
        blob(&c.site_id),
        c.cl,
        c.seq
    )
}

struct Run {
    /// On seeds 3 mod 4, both connections run with `PRAGMA recursive_triggers = ON` (set
    /// again at every reopen).
    recursive: bool,
    /// On seeds 2 mod 5, now and then a statement of `conn` (or a merge) is stopped at a
    /// random step, by sqlite3_interrupt or a progress handler that gives up, as an app's
    /// timeout would; the app then rolls back what is left of its transaction.
    interrupts: bool,
    /// The last `maybe_stopped` call was stopped.
    was_stopped: bool,
    conn: Connection,
    /// A second connection to the same file, used only while `conn` holds no transaction.
    other: Connection,
    path: String,
    verbose: bool,
    r: Rng,
    /// Savepoints open, by name.
    savepoints: Vec<String>,
    in_txn: bool,
    /// The peer's site id; `Some` on the seeds that check each local write's site (an oracle
    /// read straight from the internal tables: the id `own_site_ordinal` names).
    check_sites: Option<Vec<u8>>,
    /// On seeds 2 mod 3, the app has a commit hook and a rollback hook of its own
    /// (re-installed at every reopen), which must not disturb the extension (it installs
    /// none).
    app_hook: bool,
}

/// The error of a statement stopped by an interrupt: SQLITE_INTERRUPT, or SQLITE_SCHEMA where
/// the interrupt stopped SQLite preparing it again after a schema change (SQLite's own report
/// then, found at seed 51497).
fn stop_error(e: &rusqlite::Error) -> bool {
    let s = e.to_string();
    s.contains("interrupt") || s.contains("database schema has changed")
}

fn install_app_hook(c: &Connection) {
    // SAFETY: hooks without a record point nowhere.
    unsafe {
        set_app_hook(c, None);
        set_app_rollback_hook(c, None);
    }
}

/// This replica's site id as the database says it now, read without the extension.
const OWN_SITE: &str = "SELECT site_id FROM crr_sites WHERE ordinal = \
    coalesce((SELECT value FROM crr_meta WHERE key = 'own_site_ordinal'), 0)";

/// The newest change not from `peer`: (db_version, seq, site_id).
fn newest_local(c: &Connection, peer: &[u8]) -> Option<(i64, i64, Vec<u8>)> {
    c.query_row(
        "SELECT db_version, seq, site_id FROM crsql_changes WHERE site_id != ?1 ORDER BY db_version DESC, seq DESC LIMIT 1",
        [peer],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

impl Run {
    fn exec(&mut self, sql: &str) -> rusqlite::Result<()> {
        if self.verbose {
            println!("{sql}");
        }
        // A stopped statement opens no transaction, unless the SQL itself opens one.
        let opens = self.conn.is_autocommit() && !sql.contains("SAVEPOINT") && !sql.contains("BEGIN");
        self.maybe_stopped_then(|c| c.execute_batch(sql), |c| {
            assert!(!opens || c.is_autocommit(), "{sql}: stopped, it left a transaction open");
        })
    }

    fn ok(&mut self, sql: &str) {
        if let Err(e) = self.exec(sql) {
            assert!(self.stopped(&e), "{sql}: {e}");
        }
    }

    /// Whether `e` is the error of a statement `maybe_stopped` stopped just now.
    fn stopped(&self, e: &rusqlite::Error) -> bool {
        self.was_stopped && stop_error(e)
    }

    /// Runs `f` on `conn`, on the seeds with `interrupts` stopped at a random step one time in
    /// seven; after a stop, what the transaction still holds is rolled back (an interrupt may
    /// have rolled it back already), and the bookkeeping follows.
    fn maybe_stopped<T>(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        self.maybe_stopped_then(f, |_| {})
    }

    /// As `maybe_stopped`, with `check` run on the connection right after a stop.
    fn maybe_stopped_then<T>(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>, check: impl FnOnce(&Connection)) -> rusqlite::Result<T> {
        self.was_stopped = false;
        if !self.interrupts || !self.r.chance(14) {
            return f(&self.conn);
        }
        let at = self.r.below(300) as i64;
        let how = How::from_draws(self.r.chance(50), at);
        let r = Stop::at(&self.conn, at, how, || f(&self.conn));
        if let Err(e) = &r {
            self.was_stopped = stop_error(e);
            if self.was_stopped {
                check(&self.conn);
                if self.verbose {
                    println!("-- stopped at step {at} ({how:?}): {e}");
                }
                if !self.conn.is_autocommit() {
                    self.conn.execute_batch("ROLLBACK").unwrap();
                }
                self.in_txn = false;
                self.savepoints.clear();
            }
        }
        r
    }

    /// One step of random work, and the transaction structure around it.
    fn step(&mut self, feed: &[Change]) {
        match self.r.below(20) {
            0 | 1 if !self.in_txn && self.savepoints.is_empty() => {
                self.in_txn = true;
                self.ok("BEGIN");
            }
            2 if self.in_txn && self.savepoints.is_empty() => {
                self.in_txn = false;
                let end = if self.r.chance(70) { "COMMIT" } else { "ROLLBACK" };
                self.ok(end);
            }
            3 | 4 => {
                let name = format!("s{}", self.savepoints.len());
                self.savepoints.push(name.clone());
                self.ok(&format!("SAVEPOINT {name}"));
            }
            5 | 6 if !self.savepoints.is_empty() => {
                let at = self.r.below(self.savepoints.len() as u64) as usize;
                let name = self.savepoints[at].clone();
                let sql = if self.r.chance(60) {
                    self.savepoints.truncate(at);
                    format!("ROLLBACK TO {name}; RELEASE {name}")
                } else if self.r.chance(50) {
                    self.savepoints.truncate(at + 1);
                    format!("ROLLBACK TO {name}")
                } else {
                    self.savepoints.truncate(at);
                    format!("RELEASE {name}")
                };
                self.ok(&sql);
            }
            7 => {
                let n = self.r.below(3);
                let sql = if self.r.chance(50) { format!("CREATE TABLE IF NOT EXISTS plain{n}(x)") } else { format!("DROP TABLE IF EXISTS plain{n}") };
                self.ok(&sql);
            }
            8 => {
                // Dropped, seen dropped, then brought back by a rollback.
                let sql = "SAVEPOINT gone; DROP TABLE pairs; SELECT count(*) FROM crsql_changes; ROLLBACK TO gone; RELEASE gone";
                self.ok(sql);
            }
            9 => {
                let sql = if self.r.chance(50) { "SELECT crr_new_site_id()" } else { "SELECT crsql_site_id()" };
                self.ok(sql);
            }
            10 => {
                let ms = *self.r.pick(&[1_000i64, 3_600_000]);
                self.ok(&format!("SELECT crsql_config_set('hlc-max-drift-ms', {ms})"));
            }
            11 | 12 if !feed.is_empty() => {
                let from = self.r.below(feed.len() as u64) as usize;
                let n = 1 + self.r.below(4) as usize;
                for c in &feed[from..(from + n).min(feed.len())] {
                    if self.verbose {
                        println!("merge {c:?}");
                    }
                    // A change from a clock 5 s ahead is refused under the 1 s limit; the
                    // refusal must leave the transaction as it was.
                    if let Err(e) = self.maybe_stopped(|conn| apply_one(conn, c)) {
                        assert!(e.to_string().contains("hlc-max-drift-ms = 1000") || self.stopped(&e), "merging {c:?}: {e}");
                    }
                }
            }
            19 if !feed.is_empty() => {
                if self.r.chance(50) {
                    // A read in the middle of the transaction (it writes out what merges and
                    // local writes held back).
                    let since = self.r.below(6);
                    self.ok(&format!("SELECT count(*) FROM crsql_changes WHERE db_version > {since}"));
                    return;
                }
                // Several changes in one statement whose last row is refused: SQLite undoes
                // the statement's earlier rows, and nothing of them may stay.
                let from = self.r.below(feed.len() as u64) as usize;
                let rows: Vec<&Change> = feed[from..(from + 3).min(feed.len())].iter().collect();
                let mut sql = String::from("INSERT INTO crsql_changes VALUES ");
                for c in &rows {
                    sql.push_str(&format!("({}), ", change_values(c)));
                }
                sql.push_str(&format!("('nope', {})", change_values(rows[0]).split_once(", ").unwrap().1));
                let e = self.exec(&sql).expect_err("a change for an unknown table");
                // (Or an earlier row is refused: one from a clock 5 s ahead, under the 1 s limit.)
                assert!(e.to_string().contains("nope") || e.to_string().contains("hlc-max-drift-ms = 1000") || self.stopped(&e), "{e}");
            }
            14 => {
                // Tracking off and on again: a fresh history for the table's current rows,
                // kept or rolled back.
                let sql = if self.r.chance(50) {
                    "SELECT crsql_as_table('pairs'); SELECT crsql_as_crr('pairs')"
                } else {
                    "SAVEPOINT off; SELECT crsql_as_table('pairs'); INSERT OR REPLACE INTO pairs VALUES ('u', 9); ROLLBACK TO off; RELEASE off"
                };
                self.ok(sql);
            }
            15 if self.r.chance(50) => {
                // A column added through an alter, seen, written, then rolled back.
                self.ok(
                    "SAVEPOINT al; SELECT crsql_begin_alter('items'); ALTER TABLE items ADD COLUMN c; \
                     SELECT crsql_commit_alter('items'); UPDATE items SET c = 1; SELECT count(*) FROM crsql_changes; \
                     ROLLBACK TO al; RELEASE al",
                );
            }
            15 => {
                // A column dropped through an alter (its entries go, the db_version floor
                // rises, rows left without cells show their sentinel), seen, written after,
                // then rolled back.
                self.ok(
                    "SAVEPOINT al; SELECT crsql_begin_alter('items'); UPDATE items SET b = 7 WHERE id % 3 = 1; \
                     ALTER TABLE items DROP COLUMN b; UPDATE items SET a = 'y' WHERE id % 3 = 2; \
                     SELECT crsql_commit_alter('items'); UPDATE items SET a = 'x' WHERE id % 3 = 0; \
                     SELECT count(*) FROM crsql_changes; ROLLBACK TO al; RELEASE al",
                );
            }
            16 | 17 if self.conn.is_autocommit() && self.r.chance(25) => {
                // Its own feed relayed back to it, through the other connection: every change
                // is stale there, and none may be past the clock mark that connection
                // recovers (a change of its own site past it would be refused as another
                // database's).
                // (Not the peer's changes it holds: their clock is 5 s ahead, past a 1 s
                // drift limit a step may have set.)
                let peer = feed.first().map(|c| c.site_id.clone());
                let own: Vec<Change> = changes(&self.conn).into_iter().filter(|c| Some(&c.site_id) != peer.as_ref()).collect();
                if self.verbose {
                    println!("other: merges the replica's own feed back ({} changes)", own.len());
                }
                apply(&self.other, &own).unwrap_or_else(|e| panic!("relaying its own feed back: {e}"));
            }
            16 | 17 if self.conn.is_autocommit() => {
                let sql = match self.r.below(4) {
                    0 => "SELECT crr_new_site_id()".to_string(),
                    1 => format!("CREATE TABLE IF NOT EXISTS plain{}(x)", self.r.below(3)),
                    _ => write(&mut self.r),
                };
                if self.verbose {
                    println!("other: {sql}");
                }
                if let Err(e) = self.other.execute_batch(&sql) {
                    assert!(e.to_string().contains("UNIQUE constraint failed"), "other: {sql}: {e}");
                }
            }
            18 if self.r.chance(40) => {
                // A column added by an earlier step dropped for good, between single-row
                // updates, each statement a transaction of its own outside BEGIN: the commit
                // rewrites records and may commit a crr_ticks row and no change, and an
                // update keeps its tick in its one record (the clock lost such a tick until
                // 2026-12-05; `check_mark`).
                let n: i64 = one(&self.conn, "SELECT count(*) FROM pragma_table_info('items')");
                let (id, v) = (self.r.below(6), self.r.below(4));
                let drop = if n > 3 { format!("ALTER TABLE items DROP COLUMN c{}; ", n - 1) } else { String::new() };
                self.ok(&format!(
                    "UPDATE items SET b = {v} WHERE id = {id}; SELECT crsql_begin_alter('items'); {drop}SELECT crsql_commit_alter('items'); \
                     SELECT crsql_begin_alter('items'); UPDATE items SET a = 'v{v}' WHERE id = {id}; SELECT crsql_commit_alter('items')"
                ));
            }
            18 => {
                // A column added for good (unless a rollback around it undoes it).
                let n: i64 = one(&self.conn, "SELECT count(*) FROM pragma_table_info('items')");
                if n < 8 {
                    self.ok(&format!(
                        "SELECT crsql_begin_alter('items'); UPDATE items SET a = a || 'u' WHERE id % 3 = 1; ALTER TABLE items ADD COLUMN c{n}; \
                         UPDATE items SET c{n} = -id, b = coalesce(b, 0) + 1 WHERE id % 4 = 1; SELECT crsql_commit_alter('items'); \
                         UPDATE items SET c{n} = id WHERE id % 2 = 0"
                    ));
                }
            }
            13 if !self.in_txn && self.savepoints.is_empty() => {
                if self.verbose {
                    println!("-- reopen");
                }
                self.conn = open(&self.path);
                // (Set up as the run began, never stopped: a wall clock left unset would
                // write real-time versions, years ahead of the run's, seed 54047.)
                if self.recursive {
                    self.conn.execute_batch("PRAGMA recursive_triggers = ON").unwrap();
                }
                if self.app_hook {
                    install_app_hook(&self.conn);
                }
                self.conn.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({WALL_MS})")).unwrap();
            }
            _ => {
                let sql = write(&mut self.r);
                let before = self.check_sites.as_ref().map(|peer| newest_local(&self.conn, peer));
                let mut rolled_back = false;
                if let Err(e) = self.exec(&sql) {
                    assert!(e.to_string().contains("UNIQUE constraint failed") || self.stopped(&e), "{sql}: {e}");
                    if sql.contains("OR ROLLBACK") && !self.stopped(&e) {
                        assert!(self.conn.is_autocommit(), "{sql}: the transaction is still open");
                        self.in_txn = false;
                        self.savepoints.clear();
                        rolled_back = true;
                    }
                }
                // A local write is recorded under the site id the database names now. (Not
                // checked after a stop or an OR ROLLBACK: the rollback may bring back older
                // changes, under the site id the database named then.)
                if let (Some(peer), Some(before), false) = (&self.check_sites, before, self.was_stopped || rolled_back) {
                    let after = newest_local(&self.conn, peer);
                    if let Some((dbv, seq, site)) = after.filter(|a| before.as_ref().is_none_or(|b| (a.0, a.1) > (b.0, b.1))) {
                        let own: Vec<u8> = one(&self.conn, OWN_SITE);
                        assert_eq!(site, own, "{sql}: recorded at ({dbv}, {seq}) under another site than this replica's");
                    }
                }
            }
        }
        // A savepoint outside BEGIN starts a transaction that its release ends.
        if !self.in_txn && self.savepoints.is_empty() {
            assert!(self.conn.is_autocommit(), "the transaction structure went out of step");
        }
    }
}

/// Invariant: the clock mark that a connection recovers (here the second one, in a
/// transaction of its own) is at least every version the feed holds, made here or merged
/// (HLC: a tick is above all of them). Loaded by merging the feed's newest cell change again,
/// which is stale; rolled back.
fn check_mark(other: &Connection, all: &[Change], ctx: &str) {
    let Some(newest) = all.iter().filter(|c| c.cid != "-1").max_by_key(|c| c.col_version) else { return };
    other.execute_batch("BEGIN").unwrap();
    apply_one(other, newest).unwrap_or_else(|e| panic!("{ctx}: merging the newest change again: {e}"));
    let mark: i64 = one(other, "SELECT crr_internal_hwm()");
    other.execute_batch("ROLLBACK").unwrap();
    assert!(mark >= newest.col_version, "{ctx}: the recovered clock mark {mark} is below a version the feed holds: {newest:?}");
}

fn run_seed(seed: u64, verbose: bool) {
    let dir = tmpdir(&format!("rollbacks-{seed}"));
    let path = dir.join("a.db").to_str().unwrap().to_string();
    let conn = open(&path);
    conn.execute_batch(&format!("PRAGMA journal_mode = WAL; {SCHEMA} SELECT crr_set_wall_clock_for_testing({WALL_MS});")).unwrap();
    // A peer whose changes are merged at random points, some from a clock 5 s ahead.
    let peer = mem();
    peer.execute_batch(&format!("{SCHEMA} SELECT crr_set_wall_clock_for_testing({});", WALL_MS + 5_000)).unwrap();
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    for _ in 0..12 {
        peer.execute_batch(&write(&mut r)).ok();
    }
    let feed = changes(&peer);
    let other = open(&path);
    other.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({WALL_MS})")).unwrap();
    let check_sites = (seed % 2 == 1).then(|| one::<Vec<u8>>(&peer, "SELECT crsql_site_id()"));
    let app_hook = seed % 3 == 2;
    if app_hook {
        install_app_hook(&conn);
    }
    let recursive = seed % 4 == 3;
    if recursive {
        conn.execute_batch("PRAGMA recursive_triggers = ON").unwrap();
        other.execute_batch("PRAGMA recursive_triggers = ON").unwrap();
    }
    let mut run = Run { recursive, interrupts: seed % 5 == 2, was_stopped: false, conn, other, path: path.clone(), verbose, r, savepoints: Vec::new(), in_txn: false, check_sites, app_hook };
    let mut written = Written::new();
    for step in 0..60 {
        run.step(&feed);
        if run.conn.is_autocommit() {
            let all = changes(&run.conn);
            check_written(&mut written, &all, &format!("seed {seed} step {step}"));
            check_mark(&run.other, &all, &format!("seed {seed} step {step}"));
        }
    }
    if !run.conn.is_autocommit() {
        run.savepoints.clear();
        run.ok("COMMIT");
    }
    drop(run);

    let a = open(&path);
    let own: Vec<u8> = one(&a, "SELECT crsql_site_id()");
    let known: Vec<Vec<u8>> = a.prepare("SELECT site_id FROM crr_sites").unwrap().query_map([], |r| r.get(0)).unwrap().map(|x| x.unwrap()).collect();
    let all = changes(&a);
    for c in &all {
        assert!(known.contains(&c.site_id), "seed {seed}: a change names a site crr_sites lacks: {c:?}");
    }
    assert!(known.contains(&own), "seed {seed}: own site missing");
    // The feed rebuilds the replica (its tables as they are now, columns added included).
    let b = mem();
    let tables: Vec<String> = a.prepare("SELECT sql FROM sqlite_schema WHERE name IN ('items', 'pairs')").unwrap().query_map([], |r| r.get(0)).unwrap().map(|x| x.unwrap()).collect();
    b.execute_batch(&format!(
        "{}; SELECT crsql_as_crr('items'); SELECT crsql_as_crr('pairs'); SELECT crr_set_wall_clock_for_testing({});",
        tables.join("; "),
        WALL_MS + 10_000
    ))
    .unwrap();
    apply(&b, &all).unwrap_or_else(|e| panic!("seed {seed}: applying the feed: {e}"));
    for table in ["items", "pairs"] {
        assert_eq!(dump(&a, table), dump(&b, table), "seed {seed}: {table} is not what its feed rebuilds");
    }
    let portable = |c: &Connection| {
        let mut v: Vec<_> = changes(c).into_iter().map(|x| (x.table, x.pk, x.cid, format!("{:?}", x.val), x.col_version, x.site_id, x.cl)).collect();
        v.sort();
        v
    };
    assert_eq!(portable(&a), portable(&b), "seed {seed}: the rebuilt replica's metadata differs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replica_under_random_rollbacks_is_what_its_feed_rebuilds() {
    run_seeds("CRR_ROLLBACK", 150, "make rollbacks SEED={seed}", run_seed);
}
