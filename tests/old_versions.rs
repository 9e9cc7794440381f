//! Databases written by earlier builds still open, read, take writes and sync; one that
//! cr-sqlite wrote is refused by name (its CRRs' writes and crsql_as_crr) until its triggers go.
//!
//! `tests/fixtures/v1-fcb3fae.sqlite3` was written by the build at commit fcb3fae (row clock
//! record format 1; triggers that call crr_internal_insert / _update / _delete), through
//! /usr/bin/sqlite3: three CRRs (integer key, compound text key WITHOUT ROWID, key-only),
//! inserts, an update, deletes, a resurrection and one merged change from another site.
//! `v1-fcb3fae.changes` is what that build's crsql_changes showed for it.
//!
//! `tests/fixtures/v3-6b3b832.sqlite3` was written by the build at commit 6b3b832 (internal
//! schema 3: rowid clocks with a dbv index), through /usr/bin/sqlite3: two rowid-keyed CRRs
//! (`t`: inserts, an update, a delete and resurrection, a transaction over two tables; `m`:
//! left between crsql_begin_alter and crsql_commit_alter) and a text-keyed one (`u`).
//! `v3-6b3b832.changes` is what that build's crsql_changes showed for it.
//!
//! `tests/fixtures/v4-2dc5e40.sqlite3` was written by the build at commit 2dc5e40 (internal
//! schema 4, the last build with a rollback hook), through /usr/bin/sqlite3:
//! `t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER)`, two inserts in one statement, an
//! update and a delete.
//!
//! `tests/fixtures/v5-4b8261e.sqlite3` was written by the build at commit 4b8261e (internal
//! schema 5, the last whose packed-key clocks are WITHOUT ROWID tables with a dbv index),
//! through /usr/bin/sqlite3: `t` (rowid key), `u(k TEXT PRIMARY KEY NOT NULL, v, w)` and
//! `p` (compound key, WITHOUT ROWID), with inserts, a transaction over two tables, an update,
//! a delete and a resurrection. `v5-4b8261e.changes` is what that build's crsql_changes showed.
//! `v5-4b8261e-bracket.sqlite3` is the same database after that build's
//! `crsql_begin_alter('u')`, left open.
//!
//! `tests/fixtures/v6-534abdc.sqlite3` was written by the build at commit 534abdc (internal
//! schema 6, the last without crr_tails), through /usr/bin/sqlite3: `t` (rowid key) and
//! `u(k TEXT PRIMARY KEY NOT NULL, v, w)`, inserts one a transaction, a transaction over both,
//! an update, deletes and a resurrection. `v6-534abdc.changes` is what that build's
//! crsql_changes showed.

mod common;
use common::*;
use std::path::PathBuf;

const FIXTURE: &str = "v1-fcb3fae";
const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
    CREATE TABLE u(k TEXT NOT NULL, n INTEGER NOT NULL, v, PRIMARY KEY (k, n)) WITHOUT ROWID;
    CREATE TABLE k(x NOT NULL, y NOT NULL, PRIMARY KEY (x, y));
    SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('k');";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// A private copy of the fixture (tests write to it).
fn copy(test: &str) -> String {
    copy_of(FIXTURE, test)
}

fn copy_of(fixture: &str, test: &str) -> String {
    let to = tmpdir(test).join(format!("{fixture}.sqlite3"));
    std::fs::copy(fixtures().join(format!("{fixture}.sqlite3")), &to).expect("copy fixture");
    to.to_str().unwrap().to_string()
}

fn expected(fixture: &str) -> Vec<String> {
    std::fs::read_to_string(fixtures().join(format!("{fixture}.changes"))).unwrap().lines().map(String::from).collect()
}

/// crsql_changes in the fixture's text form.
fn feed(c: &rusqlite::Connection) -> Vec<String> {
    let mut s = c
        .prepare("SELECT \"table\", hex(pk), cid, quote(val), col_version, db_version, hex(site_id), cl, seq FROM crsql_changes")
        .unwrap();
    s.query_map([], |r| Ok((0..9).map(|i| r.get_ref(i).unwrap().as_str().map(str::to_string).unwrap_or_else(|_| r.get::<_, i64>(i).unwrap().to_string())).collect::<Vec<_>>().join("|")))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_format_1_database_reads_as_its_own_build_read_it() {
    let c = open(&copy("old-read"));
    assert_eq!(feed(&c), expected(FIXTURE));
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}

#[test]
fn a_format_1_database_takes_writes_upgrades_its_triggers_and_syncs() {
    let c = open(&copy("old-write"));
    // The upgrade to internal schema 5 at load made this build's triggers (the fixture's call
    // crr_internal_insert), and they record writes.
    let sql: String = one(&c, "SELECT sql FROM sqlite_schema WHERE name = 'crr_1_insert'");
    assert!(sql.contains("crr_internal_fresh_record") && !sql.contains("crr_internal_insert("), "{sql}");
    let before: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute("UPDATE t SET b = 10 WHERE id = 1", []).unwrap();
    let b = changes_where(&c, "WHERE cid = 'b' AND pk = crsql_pack_columns(1)");
    assert_eq!((b[0].val.clone(), b[0].db_version), (rusqlite::types::Value::Integer(10), before + 1));
    // crsql_as_crr, which apps call at every start, changes nothing then.
    c.execute_batch("SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('k');").unwrap();
    assert_eq!(one::<String>(&c, "SELECT sql FROM sqlite_schema WHERE name = 'crr_1_insert'"), sql);
    c.execute_batch("INSERT INTO t VALUES (5, 'five', 5); DELETE FROM u WHERE k = 'x'; UPDATE t SET a = 'again' WHERE id = 3;").unwrap();
    // A fresh replica that receives everything holds the same tables and the same feed.
    let r = mem();
    r.execute_batch(SCHEMA).unwrap();
    apply(&r, &changes(&c)).unwrap();
    for table in ["t", "u", "k"] {
        assert_eq!(dump(&r, table), dump(&c, table), "table {table}");
    }
    let portable = |x: &rusqlite::Connection| {
        let mut v: Vec<_> = changes(x).into_iter().map(|ch| format!("{} {:?} {} {:?} {} {:?} {}", ch.table, ch.pk, ch.cid, ch.val, ch.col_version, ch.site_id, ch.cl)).collect();
        v.sort();
        v
    };
    assert_eq!(portable(&r), portable(&c));
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}

/// Every read of changes since V equals the full feed filtered by db_version.
fn check_since(c: &rusqlite::Connection) {
    let all = changes(c);
    for v in 0..=all.iter().map(|x| x.db_version).max().unwrap_or(0) {
        let want: Vec<_> = all.iter().filter(|x| x.db_version > v).cloned().collect();
        assert_eq!(changes_where(c, &format!("WHERE db_version > {v} ORDER BY db_version, seq")), want, "since {v}");
    }
}

#[test]
fn a_version_3_database_moves_its_rowid_clocks_to_buckets_at_load() {
    const V3: &str = "v3-6b3b832";
    let c = open(&copy_of(V3, "v3-upgrade"));
    assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7);
    let indexes = |c: &rusqlite::Connection| -> Vec<String> {
        let mut s = c.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND name GLOB 'crr_clock_*' ORDER BY name").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    // t moved to buckets, and so did u (text key) with internal schema 6; m keeps its index,
    // its triggers down for an alter.
    assert_eq!(indexes(&c), vec!["crr_clock_3_dbv"]);
    let buckets: Vec<(i64, i64)> = {
        let mut s = c.prepare("SELECT dbv, bucket FROM crr_dirty WHERE tid = 1 ORDER BY dbv, bucket").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    // Rows 1 (dbv 3), 2 (5), 17 and 100 (6), -5 (2), by bucket of 32.
    assert_eq!(buckets, vec![(2, -1), (3, 0), (5, 0), (6, 0), (6, 3)]);
    let sql: String = one(&c, "SELECT sql FROM sqlite_schema WHERE name = 'crr_1_update'");
    assert!(sql.contains("crr_internal_mark(1, pk, dbv)"), "{sql}");
    assert_eq!(feed(&c), expected(V3));
    check_since(&c);
    // Writes go on being recorded, on both kinds of clock, and m's alter completes.
    let x_at = "SELECT col_version FROM crsql_changes WHERE \"table\" = 'm' AND pk = crsql_pack_columns(1) AND cid = 'x'";
    let x_before: i64 = one(&c, x_at);
    c.execute_batch(
        "UPDATE t SET a = 'later' WHERE id IN (-5, 100); INSERT INTO t VALUES (-40, 'new', 0); DELETE FROM t WHERE id = 17;
         INSERT INTO u VALUES ('z', 3); INSERT INTO m VALUES (41, 'x');
         SELECT crsql_begin_alter('m'); UPDATE m SET x = 'in the bracket' WHERE id = 1;
         ALTER TABLE m ADD COLUMN y TEXT; SELECT crsql_commit_alter('m'); UPDATE m SET y = 'why' WHERE id = 1;",
    )
    .unwrap();
    // The earlier build's bracket had no update trigger; crsql_begin_alter called again gave
    // it this build's, so the update inside it is a write of its own (a peer that had row 1
    // at the old version gets it), not a new value under the old version.
    assert_eq!(one::<String>(&c, "SELECT x FROM m WHERE id = 1"), "in the bracket");
    assert!(one::<i64>(&c, x_at) > x_before, "the update in the bracket got a new version");
    assert_eq!(indexes(&c), vec!["crr_clock_3_dbv"]);
    check_since(&c);
    let r = mem();
    r.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); CREATE TABLE u(k TEXT PRIMARY KEY NOT NULL, v);
         CREATE TABLE m(id INTEGER PRIMARY KEY NOT NULL, x TEXT, y TEXT);
         SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('m');",
    )
    .unwrap();
    apply(&r, &changes(&c)).unwrap();
    for table in ["t", "u", "m"] {
        assert_eq!(dump(&r, table), dump(&c, table), "table {table}");
    }
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}

/// Opened read-only, or by a connection with `PRAGMA query_only = 1` (as reader pools are), a
/// version-3 database cannot be upgraded: it is read through its indexes. (Until 2026-12-06 the
/// query_only connection tried the upgrade, and its load failed: "attempt to write a readonly
/// database".) So is a version-5 one, whose bucket clocks have no tails (crr_tails came with
/// version 7: a first version of it read the missing table and failed).
#[test]
fn databases_of_earlier_versions_opened_read_only_read_as_before() {
    for (fixture, version) in [("v3-6b3b832", 3), ("v5-4b8261e", 5), ("v6-534abdc", 6)] {
        for query_only in [false, true] {
            let path = copy_of(fixture, "v3-read-only");
            let c = refusing_writes(std::path::Path::new(&path), query_only);
            load(&c);
            assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), version);
            assert_eq!(feed(&c), expected(fixture));
            check_since(&c);
            // A connection that may write upgrades it.
            c.execute_batch("PRAGMA query_only = 0").unwrap();
            drop(c);
            let c = open(&path);
            assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7);
        }
    }
}

/// A database of the last build with a rollback hook hears of every transaction's end
/// without one (Conn::enter_write joins crr_internal_txn at a transaction's first tracked
/// row), so an app's rollback hook hides no rollback there either. Its upgrade to internal
/// schema 5 at load gives its triggers this build's text, with the database's token (the
/// fixture's are an earlier build's: `cl + (cl % 2 = 0)` in the insert trigger), and a
/// crsql_as_crr then changes no schema.
#[test]
fn a_version_4_database_hears_of_rollbacks_without_a_hook() {
    let path = copy_of("v4-2dc5e40", "v4-rollbacks");
    let a = open(&path);
    let b = open(&path);
    let trigger = |c: &rusqlite::Connection| one::<String>(c, "SELECT sql FROM sqlite_schema WHERE name = 'crr_1_insert'");
    let token: i64 = one(&a, "SELECT value FROM crr_meta WHERE key = 'token'");
    let upgraded = trigger(&a);
    assert!(!upgraded.contains("cl + (cl % 2 = 0)") && upgraded.contains(&format!("crr_internal_tracking({})", (token << 32) | 1)), "{upgraded}");
    assert_eq!(one::<i64>(&a, "SELECT crsql_db_version()"), 3);
    assert_eq!(around_rollbacks(&a, &b, "t", 10), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)], "(db_version, first seq) of the committed rows");
    a.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    assert_eq!(trigger(&a), upgraded, "the upgrade made this build's triggers");
    assert_eq!(around_rollbacks(&a, &b, "t", 20), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
    assert_eq!(one::<String>(&a, "PRAGMA integrity_check"), "ok");
}

/// A database that no build of internal schema 5 has opened, ATTACHed to a replica and written
/// through the attachment: its triggers carry no token (`check_token` cannot tell them from
/// the main database's), and those of format 1 call crr_internal_insert / _delete, which
/// recorded into the main database's clock of the same table id (a phantom row of another
/// table, in its feed). A call that only an earlier build's trigger makes is now refused
/// unless a trigger of the main database makes it. Both databases are left as they were; the
/// remedy (opening the file once on a connection of its own) upgrades it, and its writes
/// through ATTACH are then refused as any other database's.
#[test]
fn an_attached_database_of_an_earlier_build_is_not_written_through_the_attachment() {
    for (fixture, writes) in [
        ("v4-2dc5e40", &["INSERT INTO x.t(id, a, b) VALUES (77, 'via attach', 1)", "UPDATE x.t SET a = 'via attach'", "DELETE FROM x.t"][..]),
        ("v1-fcb3fae", &["INSERT INTO x.t(id, a, b) VALUES (77, 'via attach', 1)", "DELETE FROM x.t"][..]),
    ] {
        let x_path = copy_of(fixture, &format!("attached-{fixture}"));
        let raw = rusqlite::Connection::open(&x_path).unwrap();
        let x_before: Vec<String> = raw.prepare("SELECT quote(id) || quote(a) || quote(b) FROM t ORDER BY id").unwrap().query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        drop(raw);
        let m = mem();
        m.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('u'); INSERT INTO u VALUES (1, 'one');").unwrap();
        m.execute("ATTACH ?1 AS x", [&x_path]).unwrap();
        let m_before = changes(&m);
        for sql in writes {
            let e = err(&m, sql);
            assert!(e.contains("this write is to a CRR of another database than this connection's main one"), "{fixture}: {sql}: {e}");
            assert_eq!(changes(&m), m_before, "{fixture}: {sql}: the main database's feed changed");
        }
        m.execute_batch("DETACH x").unwrap();
        let raw = rusqlite::Connection::open(&x_path).unwrap();
        let x_after: Vec<String> = raw.prepare("SELECT quote(id) || quote(a) || quote(b) FROM t ORDER BY id").unwrap().query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(x_after, x_before, "{fixture}: the attached table changed");
    }
}

/// Loading the extension on a database of an earlier build upgrades it in one savepoint; an
/// upgrade stopped at any step (a progress handler the app set before loading that gives up;
/// tests/out_of_memory.rs runs it out of memory) leaves the database as that build wrote it
/// (or, when the load's work after the upgrade was stopped, upgraded whole), no transaction
/// open, and the next load upgrades it and reads it as its own build did. Until 2026-12-05 a
/// stopped upgrade left its savepoint open (stopped at step 27, say). Every step is tried with
/// CRR_UPGRADE_STRIDE=1 (about 4 minutes for the three fixtures); make test tries about 250 a fixture.
#[test]
fn an_upgrade_stopped_at_any_step_leaves_the_old_database_or_the_new() {
    for fixture in ["v1-fcb3fae", "v3-6b3b832", "v5-4b8261e", "v6-534abdc"] {
        let try_load = |c: &rusqlite::Connection| -> rusqlite::Result<()> {
            // SAFETY (test): loading our own extension into our own connection.
            unsafe {
                let _guard = rusqlite::LoadExtensionGuard::new(c)?;
                c.load_extension(extension_path(), Some("sqlite3_crr_init"))
            }
        };
        let schema_version = |c: &rusqlite::Connection| -> i64 { one(c, "SELECT value FROM crr_meta WHERE key = 'schema'") };
        // Our triggers that do not carry the database's token: none but those the upgrade
        // leaves as they are by design (a table between crsql_begin_alter and commit).
        let without_token = |c: &rusqlite::Connection| -> Vec<String> {
            let mut s = c
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'crr_%' AND instr(sql, 'crr_internal_tracking(' || \
                     (((SELECT value FROM crr_meta WHERE key = 'token') << 32) | CAST(substr(name, 5) AS INTEGER)) || ')') = 0 ORDER BY name",
                )
                .unwrap();
            s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
        };
        let (steps, left_as_they_were) = {
            let c = rusqlite::Connection::open(copy_of(fixture, "upgrade-count")).unwrap();
            let (r, steps) = Stop::count(&c, || try_load(&c));
            r.unwrap();
            (steps, without_token(&c))
        };
        let mut stopped = 0;
        let stride = std::env::var("CRR_UPGRADE_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or((steps as usize / 250).max(1));
        for (how, at_step) in [How::GivesUp, How::GivesUpOnce].into_iter().flat_map(|h| (0..steps).step_by(stride).map(move |s| (h, s))) {
            let path = copy_of(fixture, "upgrade-stopped");
            let c = rusqlite::Connection::open(&path).unwrap();
            let old = (schema_version(&c), dump(&c, "t"));
            if Stop::at(&c, at_step, how, || try_load(&c)).is_err() {
                stopped += 1;
                assert!(c.is_autocommit(), "{fixture}, stopped at step {at_step} ({how:?}): a transaction was left open");
                // As that build wrote it, or upgraded whole (the load's later work was stopped).
                let now = (schema_version(&c), dump(&c, "t"));
                assert!(now == old || (now.0 == 7 && now.1 == old.1), "{fixture}, stopped at step {at_step} ({how:?}): half upgraded: {now:?}");
            }
            drop(c);
            let c = open(&path);
            assert!(schema_version(&c) > old.0);
            assert_eq!(feed(&c), expected(fixture), "{fixture}, after a load stopped at step {at_step} ({how:?})");
            assert_eq!(without_token(&c), left_as_they_were, "{fixture}, after a load stopped at step {at_step} ({how:?})");
        }
        assert!(stopped > 200, "{fixture}: stopped {stopped} times only");
    }
}

/// A CRR rebuilt outside a bracket (its triggers dropped with the table) in a database of an
/// earlier build, before this build first opens it: the upgrade leaves such a table's
/// triggers to crsql_as_crr, which records the rows the table lost as deletes and the ones it
/// gained as inserts, so a replica made from the feed holds the table. (Had the upgrade made
/// the triggers, crsql_as_crr would have found them in place, and the lost rows' clocks live:
/// the feed would send their cells with NULL values.)
#[test]
fn a_table_rebuilt_outside_a_bracket_before_the_upgrade_loses_its_rows_on_every_replica() {
    for fixture in ["v1-fcb3fae", "v3-6b3b832", "v4-2dc5e40"] {
        let path = copy_of(fixture, &format!("old-rebuilt-{fixture}"));
        let lost: i64 = {
            let plain = rusqlite::Connection::open(&path).unwrap();
            let lost = one(&plain, "SELECT min(id) FROM t");
            plain
                .execute_batch(
                    "CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
                     INSERT INTO t_new SELECT * FROM t WHERE id != (SELECT min(id) FROM t); INSERT INTO t_new VALUES (90, 'gained', 9);
                     DROP TABLE t; ALTER TABLE t_new RENAME TO t;",
                )
                .unwrap();
            lost
        };
        let c = open(&path);
        c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
        let r = mem();
        r.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');").unwrap();
        apply(&r, &changes_where(&c, "WHERE \"table\" = 't'")).unwrap();
        assert_eq!(dump(&r, "t"), dump(&c, "t"), "{fixture}: lost row {lost}");
        assert_eq!(one::<i64>(&r, &format!("SELECT count(*) FROM t WHERE id = {lost}")), 0, "{fixture}");
        assert_eq!(one::<i64>(&r, "SELECT count(*) FROM t WHERE id = 90"), 1, "{fixture}");
    }
}

/// An earlier build's database restored (through the backup API) into a connection that has
/// this build loaded: the load, which upgrades such a database, has run on the one it replaced.
/// It reads as its own build read it; a write is refused, saying what upgrades it, and
/// crr_new_site_id (which a restored database needs anyway) does; then writes are recorded.
/// Until 2026-12-06 the write failed with `no such table: main.crr_dirty` (formats before 4),
/// or went on with triggers and tables of the earlier build (4).
#[test]
fn an_earlier_builds_database_restored_into_a_live_connection_is_upgraded_before_it_is_written() {
    for fixture in [FIXTURE, "v3-6b3b832", "v4-2dc5e40", "v5-4b8261e", "v6-534abdc"] {
        let old = rusqlite::Connection::open(copy_of(fixture, &format!("restored-{fixture}"))).unwrap();
        let mut c = mem();
        c.execute_batch("CREATE TABLE z(id INTEGER PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('z'); INSERT INTO z VALUES (1, 1);").unwrap();
        changes(&c);
        restore(&old, &mut c);
        if fixture != "v4-2dc5e40" {
            assert_eq!(feed(&c), expected(fixture), "{fixture}");
        }
        let id: i64 = one(&c, "SELECT min(id) FROM t");
        let write = format!("UPDATE t SET b = 10 WHERE id = {id}");
        let e = err(&c, &write);
        assert!(e.contains("written by an earlier sqlite-crr build") && e.contains("crr_new_site_id"), "{fixture}: {e}");
        assert_ne!(one::<Option<i64>>(&c, &format!("SELECT b FROM t WHERE id = {id}")), Some(10), "{fixture}: the refused write was undone");
        c.execute_batch("SELECT crr_new_site_id()").unwrap();
        assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7, "{fixture}");
        let before: i64 = one(&c, "SELECT crsql_db_version()");
        c.execute(&write, []).unwrap();
        let b = changes_where(&c, &format!("WHERE \"table\" = 't' AND cid = 'b' AND pk = crsql_pack_columns({id})"));
        assert_eq!((b[0].val.clone(), b[0].db_version), (rusqlite::types::Value::Integer(10), before + 1), "{fixture}");
        assert_eq!(b[0].site_id, one::<Vec<u8>>(&c, "SELECT crsql_site_id()"), "{fixture}");
        assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
    }
}

/// A database of internal schema 5: the upgrade at load moves its packed-key clocks (WITHOUT
/// ROWID, found through a dbv index) onto crr_dirty buckets, as a CRR made now gets them (a
/// rowid table of its own ids, no dbv index), and they read as their build read them, take
/// writes, and a read since V finds exactly the changes after V; a new replica synced from it
/// holds the same tables. A clock whose table is between crsql_begin_alter and
/// crsql_commit_alter is left as it was, and works as before.
/// A database of internal schema 6 gets crr_tails at its load, reads as before, and its CRRs
/// take runs of single-row inserts through a tail from then on (both clock layouts), every
/// read since V agreeing with the full feed.
#[test]
fn a_schema_6_database_gets_tails() {
    let fixture = "v6-534abdc";
    let c = open(&copy_of(fixture, "v6"));
    assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7);
    assert_eq!(feed(&c), expected(fixture));
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tails"), 0);
    check_since(&c);
    for i in 0..40 {
        c.execute("INSERT INTO t VALUES (?1, 'run', 0)", [100 + i]).unwrap();
    }
    for i in 0..40 {
        c.execute("INSERT INTO u VALUES (?1, 'run', 0)", [format!("run{i:02}")]).unwrap();
    }
    assert_eq!(one::<String>(&c, "SELECT group_concat(tid) FROM crr_tails"), "1,2");
    check_since(&c);
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}

#[test]
fn a_schema_5_databases_packed_clocks_move_onto_buckets() {
    let fixture = "v5-4b8261e";
    let path = copy_of(fixture, "v5");
    let c = open(&path);
    assert_eq!(feed(&c), expected(fixture));
    assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7);
    for tid in [2, 3] {
        let sql: String = one(&c, &format!("SELECT sql FROM sqlite_schema WHERE name = 'crr_clock_{tid}'"));
        assert!(sql.contains("id INTEGER PRIMARY KEY") && !sql.contains("WITHOUT ROWID"), "{sql}");
    }
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'crr_clock%dbv' OR name = 'crr_moving_clock'"), 0);
    // Ids in key order, and an entry per bucket and dbv: u's three rows at dbv 2, 3 and 6.
    assert_eq!(one::<String>(&c, "SELECT group_concat(hex(pk), ' ') FROM (SELECT pk FROM crr_clock_2 ORDER BY id)"), "010B0161 010B0162 010B0163");
    assert_eq!(one::<String>(&c, "SELECT group_concat(dbv) FROM (SELECT dbv FROM crr_dirty WHERE tid = 2 ORDER BY dbv)"), "2,3,6");
    let v: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute_batch(
        "UPDATE u SET w = 9 WHERE k = 'a'; INSERT INTO p VALUES ('y', 1, 'new'); DELETE FROM u WHERE k = 'b';
         CREATE TABLE n(k TEXT PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('n');
         INSERT INTO n VALUES ('q', 1), ('r', 2); UPDATE n SET v = 3 WHERE k = 'q'; INSERT INTO u VALUES ('d', 'vd', 5);",
    )
    .unwrap();
    assert!(!one::<String>(&c, "SELECT sql FROM sqlite_schema WHERE name = 'crr_clock_4'").contains("WITHOUT ROWID"));
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_dirty WHERE tid = 4"), 1, "n's two rows: one bucket");
    let all = changes(&c);
    for since in 0..=one::<i64>(&c, "SELECT crsql_db_version()") {
        let want: Vec<_> = all.iter().filter(|x| x.db_version > since).cloned().collect();
        assert_eq!(changes_where(&c, &format!("WHERE db_version > {since}")), want, "since {since}");
    }
    assert_eq!(all.iter().filter(|x| x.db_version > v).count(), 7, "u: w of a, the tombstone of b, v and w of d; p: z; n: v of q and r");
    let r = mem();
    r.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
         CREATE TABLE u(k TEXT PRIMARY KEY NOT NULL, v, w INTEGER DEFAULT 0);
         CREATE TABLE p(x TEXT NOT NULL, y INTEGER NOT NULL, z, PRIMARY KEY (x, y)) WITHOUT ROWID;
         CREATE TABLE n(k TEXT PRIMARY KEY NOT NULL, v);
         SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('p'); SELECT crsql_as_crr('n');",
    )
    .unwrap();
    apply(&r, &all).unwrap();
    for table in ["t", "u", "p", "n"] {
        assert_eq!(dump(&r, table), dump(&c, table), "{table}");
    }
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
    // The same database with `u` inside a bracket when the upgrade runs: its clock stays as
    // it was (its triggers are the bracket's), the others move; the bracket's commit and the
    // writes after it work, and the feed is as before.
    let c = open(&copy_of("v5-4b8261e-bracket", "v5-bracket"));
    assert_eq!(feed(&c), expected(fixture));
    let sql = |tid: i64| one::<String>(&c, &format!("SELECT sql FROM sqlite_schema WHERE name = 'crr_clock_{tid}'"));
    assert!(sql(2).contains("WITHOUT ROWID") && !sql(3).contains("WITHOUT ROWID"));
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name = 'crr_clock_2_dbv'"), 1);
    let v: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute_batch("ALTER TABLE u ADD COLUMN x TEXT; SELECT crsql_commit_alter('u'); UPDATE u SET x = 'new' WHERE k = 'a'; INSERT INTO p VALUES ('z', 9, 'nine');").unwrap();
    let all = changes(&c);
    let after: Vec<_> = all.iter().filter(|x| x.db_version > v).cloned().collect();
    assert_eq!(changes_where(&c, &format!("WHERE db_version > {v}")), after);
    assert_eq!(after.iter().map(|x| (x.table.as_str(), x.cid.as_str())).collect::<Vec<_>>(), vec![("u", "x"), ("p", "z")]);
    assert!(sql(2).contains("WITHOUT ROWID"), "a clock left in a bracket at the upgrade keeps its layout");
    assert_eq!(one::<String>(&c, "PRAGMA integrity_check"), "ok");
}

/// A later build's database restored into a live connection is refused, as the load refuses it.
#[test]
fn a_later_builds_database_restored_into_a_live_connection_is_refused() {
    let dir = tmpdir("restored-later");
    let later = open(dir.join("later.db").to_str().unwrap());
    later.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x'); UPDATE crr_meta SET value = 99 WHERE key = 'schema';").unwrap();
    let mut c = mem();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'y');").unwrap();
    changes(&c);
    restore(&later, &mut c);
    for sql in ["SELECT count(*) FROM crsql_changes", "INSERT INTO t VALUES (2, 'z')", "SELECT crsql_db_version()"] {
        let e = err(&c, sql);
        assert!(e.contains("written by a newer sqlite-crr (internal schema 99"), "{sql}: {e}");
    }
}

/// A database cr-sqlite 0.16 wrote, as it makes one (its tables and its triggers on a CRR, which
/// call its functions): sqlite-crr loads on it, says what the matter is at a write to the
/// CRR (until 2026-12-07 SQLite's `no such function: crsql_after_insert`, as if this extension
/// lacked one) and at `crsql_as_crr`, changes nothing, and tracks the table from the moment the
/// triggers are dropped as it says. (cr-sqlite's clocks are not read: not supported yet.)
#[test]
fn a_database_cr_sqlite_wrote_is_refused_by_name_until_its_triggers_go() {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    c.execute_batch(
        "CREATE TABLE crsql_master(key TEXT PRIMARY KEY, value ANY);
         CREATE TABLE crsql_site_id(site_id BLOB NOT NULL, ordinal INTEGER PRIMARY KEY AUTOINCREMENT);
         CREATE TABLE crsql_tracked_peers(site_id BLOB NOT NULL, version INTEGER NOT NULL, seq INTEGER DEFAULT 0, tag INTEGER, event INTEGER, PRIMARY KEY (site_id, tag, event)) STRICT;
         CREATE TABLE todo(id INTEGER PRIMARY KEY NOT NULL, title TEXT, done INTEGER DEFAULT 0);
         CREATE TABLE todo__crsql_pks(__crsql_key INTEGER PRIMARY KEY, id);
         CREATE TABLE todo__crsql_clock(key INTEGER NOT NULL, col_name TEXT NOT NULL, col_version INTEGER NOT NULL, db_version INTEGER NOT NULL, site_id INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, PRIMARY KEY (key, col_name)) WITHOUT ROWID, STRICT;
         CREATE TRIGGER \"todo__crsql_itrig\" AFTER INSERT ON \"todo\" WHEN crsql_internal_sync_bit() = 0 BEGIN VALUES (crsql_after_insert('todo', NEW.\"id\")); END;
         CREATE TRIGGER \"todo__crsql_utrig\" AFTER UPDATE ON \"todo\" WHEN crsql_internal_sync_bit() = 0 BEGIN VALUES (crsql_after_update('todo', NEW.\"id\", OLD.\"id\", NEW.\"title\", NEW.\"done\", OLD.\"title\", OLD.\"done\")); END;
         CREATE TRIGGER \"todo__crsql_dtrig\" AFTER DELETE ON \"todo\" WHEN crsql_internal_sync_bit() = 0 BEGIN VALUES (crsql_after_delete('todo', OLD.\"id\")); END;
         INSERT INTO crsql_site_id VALUES (randomblob(16), 0);
         INSERT INTO todo__crsql_pks VALUES (1, 1);
         INSERT INTO todo__crsql_clock VALUES (1, 'title', 1, 1, 0, 0), (1, 'done', 1, 1, 0, 1);",
    )
    .unwrap();
    // (The row is written with the triggers off: there is no cr-sqlite here to record it.)
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false).unwrap();
    c.execute_batch("INSERT INTO todo(id, title) VALUES (1, 'one')").unwrap();
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true).unwrap();
    let dump = |c: &rusqlite::Connection| rows(c, "SELECT type, name, sql FROM sqlite_schema ORDER BY name");
    load(&c);
    let schema = dump(&c);
    for write in ["INSERT INTO todo(id, title) VALUES (2, 'two')", "UPDATE todo SET done = 1", "DELETE FROM todo"] {
        let e = err(&c, write);
        assert!(
            e.contains("table \"todo\" has cr-sqlite's triggers, which call cr-sqlite's functions: sqlite-crr does not run them")
                && e.contains("DROP TRIGGER \"todo__crsql_itrig\"; DROP TRIGGER \"todo__crsql_utrig\"; DROP TRIGGER \"todo__crsql_dtrig\"), then SELECT crsql_as_crr('todo')"),
            "{write}: {e}"
        );
    }
    assert_eq!(one::<String>(&c, "SELECT group_concat(id || ':' || title || ':' || done) FROM todo"), "1:one:0", "a refused write changed the table");
    let e = err(&c, "SELECT crsql_as_crr('todo')");
    assert!(e.contains("table \"todo\" cannot be a CRR: it is a CRR of cr-sqlite (its triggers"), "{e}");
    assert_eq!(dump(&c), schema, "a refusal changed the schema");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 0);
    // As the message says: the triggers dropped, the table is a CRR of sqlite-crr from now on.
    c.execute_batch("DROP TRIGGER \"todo__crsql_itrig\"; DROP TRIGGER \"todo__crsql_utrig\"; DROP TRIGGER \"todo__crsql_dtrig\"; SELECT crsql_as_crr('todo');").unwrap();
    c.execute_batch("INSERT INTO todo(id, title) VALUES (2, 'two'); UPDATE todo SET done = 1 WHERE id = 2;").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE pk = crsql_pack_columns(2)"), 2);
    // The row cr-sqlite had, recorded as a new CRR's row.
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE pk = crsql_pack_columns(1)"), 2);
}
