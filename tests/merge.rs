//! Merging (SPEC 7) and bad input (SPEC 8) through INSERT INTO crsql_changes, on the real
//! built extension.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
                      CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, n INTEGER) STRICT;
                      SELECT crsql_as_crr('t'); SELECT crsql_as_crr('s');";

fn replica() -> Connection {
    let c = mem();
    c.execute_batch(SCHEMA).unwrap();
    c
}

fn at(c: &Connection, ms: i64) {
    c.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({ms})")).unwrap();
}

/// A change without the replica-local columns: (table, pk, cid, val, col_version, site_id, cl).
type Portable = (String, Vec<u8>, String, V, i64, Vec<u8>, i64);

/// Changes without the replica-local columns (db_version, seq), sorted.
fn portable(c: &Connection) -> Vec<Portable> {
    let mut v: Vec<_> = changes(c).into_iter().map(|x| (x.table, x.pk, x.cid, x.val, x.col_version, x.site_id, x.cl)).collect();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

/// Merges a change of cell `cid` of table t's row `pk` from site 7 (16 bytes of 7), at
/// col_version 70000 and causal length `cl`.
fn merge_from_site_7(c: &Connection, pk: i64, cid: &str, val: Option<&str>, cl: i64) -> rusqlite::Result<usize> {
    c.execute("INSERT INTO crsql_changes VALUES ('t', crsql_pack_columns(?1), ?2, ?3, 70000, 1, ?4, ?5, 0)", rusqlite::params![pk, cid, val, vec![7u8; 16], cl])
}

/// Two fresh replicas, each with `schema` run on it.
fn pair(schema: &str) -> (Connection, Connection) {
    let (a, b) = (mem(), mem());
    for c in [&a, &b] {
        c.execute_batch(schema).unwrap();
    }
    (a, b)
}

fn sync(from: &Connection, to: &Connection) {
    apply(to, &changes(from)).unwrap();
}

/// Syncs `a` and `b` both ways and checks that they converged, table and metadata; returns
/// the table's rows.
fn converge(a: &Connection, b: &Connection, table: &str) -> Vec<Vec<V>> {
    sync(a, b);
    sync(b, a);
    let rows = dump(a, table);
    assert_eq!(rows, dump(b, table));
    assert_eq!(portable(a), portable(b));
    rows
}

fn impacted(c: &Connection) -> i64 {
    one(c, "SELECT crsql_rows_impacted()")
}

#[test]
fn two_replicas_converge_tables_and_metadata() {
    let (a, b) = (replica(), replica());
    at(&a, 1_000_000);
    at(&b, 2_000_000);
    a.execute_batch("INSERT INTO t VALUES (1,'a1',1),(2,'a2',2); UPDATE t SET a = 'a1b' WHERE id = 1;").unwrap();
    b.execute_batch("INSERT INTO t VALUES (1,'b1',10),(3,'b3',3); DELETE FROM t WHERE id = 3;").unwrap();
    // b's later clock wins row 1 entirely.
    assert_eq!(converge(&a, &b, "t")[0], vec![V::Integer(1), V::Text("b1".into()), V::Integer(10)]);
}

/// A UTF-16 database and a UTF-8 one sync text both ways, table and column names included:
/// the merge reads text arguments as they are only where the database's text is UTF-8.
#[test]
fn utf16_and_utf8_replicas_sync_text() {
    let wide = Connection::open_in_memory().unwrap();
    wide.execute_batch("PRAGMA encoding = 'UTF-16le'").unwrap();
    load(&wide);
    assert_eq!(one::<String>(&wide, "PRAGMA encoding"), "UTF-16le");
    let schema = "CREATE TABLE \"tä\"(id INTEGER PRIMARY KEY NOT NULL, \"nämé\" TEXT, b); SELECT crsql_as_crr('tä');";
    wide.execute_batch(schema).unwrap();
    let narrow = mem();
    narrow.execute_batch(schema).unwrap();
    at(&wide, 1_000_000);
    at(&narrow, 2_000_000);
    wide.execute_batch("INSERT INTO \"tä\" VALUES (1, 'grüße ✓', 'x'), (2, 'ascii', X'00ff')").unwrap();
    narrow.execute_batch("INSERT INTO \"tä\" VALUES (3, '日本語', 3.5)").unwrap();
    let rows = converge(&wide, &narrow, "tä");
    assert_eq!(rows[0], vec![V::Integer(1), V::Text("grüße ✓".into()), V::Text("x".into())]);
    assert_eq!(rows[2], vec![V::Integer(3), V::Text("日本語".into()), V::Real(3.5)]);
    let cids: Vec<String> = changes(&wide).into_iter().map(|c| c.cid).collect();
    assert!(cids.iter().all(|c| c == "nämé" || c == "b"), "{cids:?}");
}

/// A merge holds its row's clock back and writes it when a savepoint opens, before the
/// savepoint exists (SQLite calls xSavepoint first): the clock row then belongs to the level
/// outside it, and so must its crr_dirty entry, or a rollback to the new savepoint drops the
/// entry while the row stays. Without the entry the committed change was invisible to
/// "changes since V" and to crsql_db_version(), and the next transaction of a new connection
/// took its db_version again (found by the rollbacks test, seed 117003).
#[test]
fn a_merge_held_across_a_rolled_back_savepoint_stays_visible() {
    let src = replica();
    src.execute("INSERT INTO t(id, a) VALUES (3, 'x0')", []).unwrap();
    let feed = changes(&src);
    let (c, path) = {
        let path = tmpdir("merge-held-savepoint").join("a.db").to_str().unwrap().to_string();
        let c = open(&path);
        c.execute_batch(SCHEMA).unwrap();
        (c, path)
    };
    c.execute_batch("BEGIN").unwrap();
    for ch in &feed {
        apply_one(&c, ch).unwrap();
    }
    c.execute_batch("SAVEPOINT s; ROLLBACK TO s; RELEASE s; COMMIT").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 1);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE db_version > 0"), feed.len() as i64);
    let fresh = open(&path);
    fresh.execute("INSERT INTO t(id, a) VALUES (7, 'local')", []).unwrap();
    assert_eq!(one::<i64>(&fresh, "SELECT db_version FROM crsql_changes WHERE pk = crsql_pack_columns(7) AND cid = 'a'"), 2);
}

#[test]
fn stale_changes_are_ignored_not_errors() {
    let (a, b) = (replica(), replica());
    a.execute("INSERT INTO t VALUES (1,'old',1)", []).unwrap();
    let old = changes(&a);
    a.execute("UPDATE t SET a = 'new' WHERE id = 1", []).unwrap();
    sync(&a, &b);
    b.execute_batch("BEGIN").unwrap();
    apply_in_open_tx(&b, &old);
    assert_eq!(impacted(&b), 0);
    b.execute_batch("COMMIT").unwrap();
    assert_eq!(one::<String>(&b, "SELECT a FROM t"), "new");
}

#[test]
fn deletes_resurrections_and_rows_created_by_a_cell_get_defaults() {
    let (a, b) = (replica(), replica());
    a.execute_batch("INSERT INTO t VALUES (1,'x',5); DELETE FROM t WHERE id = 1;").unwrap();
    b.execute_batch("INSERT INTO t VALUES (1,'y',6);").unwrap();
    sync(&a, &b); // cl 2 beats cl 1
    assert!(dump(&b, "t").is_empty());
    a.execute("INSERT INTO t(id, a) VALUES (1, 'back')", []).unwrap(); // cl 3
    let only_a: Vec<Change> = changes(&a).into_iter().filter(|x| x.cid == "a").collect();
    apply(&b, &only_a).unwrap();
    assert_eq!(dump(&b, "t"), vec![vec![V::Integer(1), V::Text("back".into()), V::Null]]);
    assert_eq!(one::<i64>(&b, "SELECT cl FROM crsql_changes WHERE cid = '-1'"), 3);
}

#[test]
fn ties_break_by_value_then_site_and_metadata_converges() {
    let (a, b, c) = (replica(), replica(), replica());
    for r in [&a, &b] {
        at(r, 5_000);
    }
    a.execute("INSERT INTO t VALUES (1,'same',1)", []).unwrap();
    b.execute("INSERT INTO t VALUES (1,'same',2)", []).unwrap();
    assert_eq!(changes(&a)[0].col_version, changes(&b)[0].col_version);
    sync(&a, &b);
    sync(&b, &a);
    assert_eq!(one::<i64>(&a, "SELECT b FROM t"), 2, "equal versions: the greater value wins");
    // Equal version and value for 'a': the greater site id owns the cell on both.
    let site_a: Vec<u8> = one(&a, "SELECT crsql_site_id()");
    let site_b: Vec<u8> = one(&b, "SELECT crsql_site_id()");
    let winner = site_a.clone().max(site_b.clone());
    let owner: Vec<u8> = one(&a, "SELECT site_id FROM crsql_changes WHERE cid = 'a'");
    assert_eq!(owner, winner);
    assert_eq!(portable(&a), portable(&b));
    // A third replica syncing from both ends with the same metadata (cr-sqlite diverged here).
    sync(&a, &c);
    sync(&b, &c);
    assert_eq!(portable(&c), portable(&a));
}

#[test]
fn applied_changes_flow_on_through_a_relay_with_origin_kept() {
    let (a, b, c) = (replica(), replica(), replica());
    a.execute("INSERT INTO t VALUES (1,'from a',1)", []).unwrap();
    sync(&a, &b);
    let site_a: Vec<u8> = one(&a, "SELECT crsql_site_id()");
    let at_b = changes(&b);
    assert!(at_b.iter().all(|x| x.site_id == site_a), "merged changes keep their origin, not recorded as b's writes");
    assert!(at_b.iter().all(|x| x.db_version == 1));
    sync(&b, &c);
    assert_eq!(dump(&c, "t"), dump(&a, "t"));
    assert_eq!(portable(&c), portable(&a));
}

#[test]
fn merging_advances_the_clock() {
    let (a, b) = (replica(), replica());
    at(&a, 9_000_000);
    a.execute("INSERT INTO t VALUES (1,'future',1)", []).unwrap();
    at(&b, 9_000_000 - 60_000);
    sync(&a, &b);
    b.execute("UPDATE t SET a = 'after' WHERE id = 1", []).unwrap();
    let merged = changes(&a)[0].col_version;
    let local = changes_where(&b, "WHERE cid = 'a'")[0].col_version;
    assert!(local > merged, "local write after a merge outranks it: {local} > {merged}");
}

/// Merged versions raise the persisted clock mark even when a ROLLBACK TO undid the merge
/// that had raised the cached mark past them.
#[test]
fn merged_versions_stay_below_the_persisted_mark_after_a_rollback_to() {
    let (a, b, c) = (replica(), replica(), replica());
    at(&a, 9_000_000);
    a.execute("INSERT INTO t VALUES (1,'newer',1)", []).unwrap();
    at(&b, 8_000_000);
    b.execute("INSERT INTO t VALUES (2,'older',2)", []).unwrap();
    at(&c, 7_000_000);
    c.execute_batch("BEGIN; SAVEPOINT s;").unwrap();
    apply_in_open_tx(&c, &changes(&a));
    c.execute_batch("ROLLBACK TO s; RELEASE s;").unwrap();
    apply_in_open_tx(&c, &changes(&b));
    c.execute_batch("COMMIT").unwrap();
    let merged: i64 = one(&c, "SELECT max(col_version) FROM crsql_changes");
    let persisted: i64 = one(&c, "SELECT value FROM crr_meta WHERE key = 'hlc'");
    assert!(persisted >= merged, "persisted mark {persisted} is below merged version {merged}");
}

#[test]
fn rows_impacted_counts_and_resets_on_commit_and_rollback() {
    let (a, b) = (replica(), replica());
    a.execute("INSERT INTO t VALUES (1,'x',1),(2,'y',2)", []).unwrap();
    let cs = changes(&a);
    b.execute_batch("BEGIN").unwrap();
    apply_in_open_tx(&b, &cs);
    assert_eq!(impacted(&b), 4);
    b.execute_batch("ROLLBACK").unwrap();
    assert_eq!(impacted(&b), 0, "a rollback resets it");
    assert!(dump(&b, "t").is_empty());
    b.execute_batch("BEGIN").unwrap();
    apply_in_open_tx(&b, &cs);
    b.execute_batch("COMMIT").unwrap();
    assert_eq!(impacted(&b), 0, "a commit resets it");
    assert_eq!(dump(&b, "t").len(), 2);
}

/// Rows a rollback undid are not counted: a ROLLBACK TO a savepoint, and a multi-row INSERT
/// into crsql_changes that fails part way (SQLite undoes its earlier rows).
#[test]
fn rows_impacted_takes_back_what_a_rollback_to_undid() {
    let (a, b) = (replica(), replica());
    a.execute("INSERT INTO t VALUES (1,'x',1),(2,'y',2)", []).unwrap();
    let cs = changes(&a);
    b.execute_batch("BEGIN; SAVEPOINT s;").unwrap();
    apply_in_open_tx(&b, &cs[..2]);
    assert_eq!(impacted(&b), 2);
    b.execute_batch("ROLLBACK TO s;").unwrap();
    assert_eq!(impacted(&b), 0, "the rolled-back merges changed nothing");
    b.execute_batch("SAVEPOINT inner;").unwrap();
    apply_in_open_tx(&b, &cs[..1]);
    b.execute_batch("RELEASE inner; RELEASE s;").unwrap();
    assert_eq!(impacted(&b), 1, "released, they count");
    let x = &cs[2];
    let e = b
        .execute(
            "INSERT INTO crsql_changes (\"table\", pk, cid, val, col_version, db_version, site_id, cl, seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9), ('nope', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![x.table, x.pk, x.cid, x.val, x.col_version, x.db_version, x.site_id, x.cl, x.seq],
        )
        .expect_err("unknown table");
    assert!(e.to_string().contains("nope"), "{e}");
    assert_eq!(impacted(&b), 1, "the failed statement's first row was undone");
    b.execute_batch("COMMIT").unwrap();
    assert_eq!(dump(&b, "t").len(), 1);
}

fn apply_in_open_tx(c: &Connection, cs: &[Change]) {
    for x in cs {
        apply_one(c, x).unwrap();
    }
}

/// A new site's crr_sites row, added by a merge, can be undone by a failed statement or a
/// ROLLBACK TO while the transaction goes on; later merges from that site in the same
/// transaction must add it again, not trust the cached ordinal (the clock would name a site
/// that does not exist).
#[test]
fn a_site_added_by_a_rolled_back_merge_is_added_again() {
    let (a, b) = (replica(), replica());
    a.execute_batch("INSERT INTO t VALUES (1,'x',1); INSERT INTO t VALUES (2,'y',2);").unwrap();
    let cs = changes(&a);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let row = |x: &Change| {
        let val = match &x.val {
            V::Integer(i) => i.to_string(),
            V::Text(t) => format!("'{t}'"),
            _ => "NULL".into(),
        };
        format!("('t', x'{}', '{}', {val}, {}, {}, x'{}', {}, {})", hex(&x.pk), x.cid, x.col_version, x.db_version, hex(&x.site_id), x.cl, x.seq)
    };
    b.execute_batch("BEGIN").unwrap();
    // One statement: a valid change from a's (new) site, then a change for an unknown table.
    let bad = format!("INSERT INTO crsql_changes VALUES {}, ('nope', x'010901', 'a', 1, 1, 1, x'{}', 1, 0)", row(&cs[0]),
        "00".repeat(16));
    assert!(b.execute_batch(&bad).is_err());
    apply_in_open_tx(&b, &cs[..2]);
    // And a ROLLBACK TO that undoes the site's row once more.
    b.execute_batch("SAVEPOINT s").unwrap();
    b.execute_batch("ROLLBACK TO s; RELEASE s;").unwrap();
    b.execute_batch("SAVEPOINT s2").unwrap();
    apply_in_open_tx(&b, &cs[2..3]);
    b.execute_batch("ROLLBACK TO s2; RELEASE s2;").unwrap();
    apply_in_open_tx(&b, &cs[2..]);
    b.execute_batch("COMMIT").unwrap();
    let known: i64 = one(&b, &format!("SELECT count(*) FROM crr_sites WHERE site_id = x'{}'", hex(&cs[0].site_id)));
    assert_eq!(known, 1, "a's site id is recorded");
    assert_eq!(portable(&b), portable(&a), "b holds a's changes with a's site id");
}

/// An ordinal freed by a rollback can go to another site in the same transaction (here this
/// replica's new id); the site that lost it must then be added again, under a new ordinal, not
/// found in the cache under the one it lost.
#[test]
fn an_ordinal_freed_by_a_rollback_and_taken_by_another_site_is_not_shared() {
    let (a, b) = (replica(), replica());
    a.execute_batch("INSERT INTO t VALUES (1,'x',1); INSERT INTO t VALUES (2,'y',2);").unwrap();
    let cs = changes(&a);
    b.execute_batch("BEGIN; SAVEPOINT s;").unwrap();
    apply_in_open_tx(&b, &cs[..1]);
    b.execute_batch("ROLLBACK TO s; RELEASE s;").unwrap();
    let new_id: Vec<u8> = one(&b, "SELECT crr_new_site_id()");
    apply_in_open_tx(&b, &cs);
    b.execute_batch("INSERT INTO t VALUES (3,'z',3); COMMIT;").unwrap();
    let sites: i64 = one(&b, "SELECT count(DISTINCT site_id) FROM crr_sites");
    assert_eq!(sites, 3, "the original id, the new one and a's");
    let own_rows: Vec<Vec<u8>> = changes_where(&b, "WHERE pk = crsql_pack_columns(3)").into_iter().map(|x| x.site_id).collect();
    assert!(!own_rows.is_empty() && own_rows.iter().all(|s| *s == new_id));
    let merged: Vec<Change> = changes_where(&b, "WHERE pk != crsql_pack_columns(3)");
    assert!(merged.iter().all(|x| x.site_id == cs[0].site_id), "{merged:?}");
}

/// The same across transactions: a new site added by a transaction that rolls back is added
/// again by the next one (its cached ordinal goes with the rollback, however it is cached).
#[test]
fn a_site_added_by_a_rolled_back_transaction_is_added_again() {
    let (a, b, c) = (replica(), replica(), replica());
    a.execute_batch("INSERT INTO t VALUES (1,'x',1)").unwrap();
    c.execute_batch("INSERT INTO t VALUES (2,'z',2)").unwrap();
    b.execute_batch("BEGIN").unwrap();
    apply_in_open_tx(&b, &changes(&a));
    b.execute_batch("ROLLBACK").unwrap();
    sync(&a, &b);
    // Another new site, which must not take the ordinal a's site was given again.
    sync(&c, &b);
    assert_eq!(one::<i64>(&b, "SELECT count(*) FROM crr_sites"), 3, "b's own site, c's and a's");
    let mut want = portable(&a);
    want.extend(portable(&c));
    want.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    assert_eq!(portable(&b), want, "b holds a's and c's changes with their site ids");
}

/// A row deleted while tracking was off (its clock still says alive) is created again by a
/// merged cell that wins, instead of the write going nowhere. Once crsql_as_crr puts the
/// missing trigger back, it records such a row as deleted (since 2026-12-06, as for a table
/// dropped and made again), and the delete reaches the peer.
#[test]
fn a_winning_cell_recreates_a_row_the_table_lost() {
    let (a, b) = (replica(), replica());
    a.execute("INSERT INTO t VALUES (1,'x',1), (2,'y',2)", []).unwrap();
    sync(&a, &b);
    let tid: i64 = one(&b, "SELECT tid FROM crr_tables WHERE name = 't'");
    b.execute_batch(&format!("DROP TRIGGER \"crr_{tid}_delete\"; DELETE FROM t WHERE id = 1;")).unwrap();
    a.execute("UPDATE t SET a = 'newer' WHERE id = 1", []).unwrap();
    apply(&b, &changes_where(&a, "WHERE cid = 'a'")).unwrap();
    assert_eq!(one::<String>(&b, "SELECT a FROM t WHERE id = 1"), "newer");
    b.execute_batch("DELETE FROM t WHERE id = 2; SELECT crsql_as_crr('t');").unwrap();
    sync(&b, &a);
    for r in [&a, &b] {
        assert_eq!(one::<String>(r, "SELECT group_concat(id || a) FROM t"), "1newer");
    }
}

#[test]
fn one_receiving_transaction_records_one_db_version() {
    let (a, b) = (replica(), replica());
    for i in 0..5 {
        a.execute("INSERT INTO t(id, a) VALUES (?1, 'x')", [i]).unwrap();
    }
    b.execute("INSERT INTO t(id, a) VALUES (100, 'local')", []).unwrap();
    b.execute_batch("BEGIN").unwrap();
    apply_in_open_tx(&b, &changes(&a));
    b.execute("INSERT INTO t(id, a) VALUES (101, 'local too')", []).unwrap();
    b.execute_batch("COMMIT").unwrap();
    let versions: std::collections::BTreeSet<i64> = changes_where(&b, "WHERE db_version > 1").iter().map(|x| x.db_version).collect();
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), vec![2]);
}

#[test]
fn primary_key_update_then_delta_sync_moves_every_cell() {
    let (a, b) = (replica(), replica());
    a.execute("INSERT INTO t VALUES (1,'x',7)", []).unwrap();
    sync(&a, &b);
    let seen: i64 = one(&a, "SELECT crsql_db_version()");
    a.execute("UPDATE t SET id = 2 WHERE id = 1", []).unwrap();
    apply(&b, &changes_where(&a, &format!("WHERE db_version > {seen}"))).unwrap();
    assert_eq!(dump(&b, "t"), vec![vec![V::Integer(2), V::Text("x".into()), V::Integer(7)]]);
}

#[test]
fn table_names_with_quotes_merge() {
    let schema = r#"CREATE TABLE "it's ""q""" (id INTEGER PRIMARY KEY NOT NULL, "v a" TEXT); SELECT crsql_as_crr('it''s "q"');"#;
    let (a, b) = pair(schema);
    a.execute(r#"INSERT INTO "it's ""q""" VALUES (1, 'ok')"#, []).unwrap();
    sync(&a, &b);
    assert_eq!(dump(&b, "it's \"q\""), dump(&a, "it's \"q\""));
}

/// Everything a bad change must leave untouched.
fn snapshot(c: &Connection) -> (Rows, Rows, Vec<Change>, i64) {
    (dump(c, "t"), dump(c, "s"), changes(c), one(c, "SELECT count(*) FROM crr_sites"))
}

#[test]
fn bad_changes_are_refused_with_a_clear_error_and_change_nothing() {
    let a = replica();
    at(&a, 1_000_000);
    a.execute_batch("INSERT INTO t VALUES (1,'x',1); INSERT INTO s VALUES (1, 5);").unwrap();
    let good = changes_where(&a, "WHERE \"table\" = 't' AND cid = 'a'")[0].clone();
    let s_good = changes_where(&a, "WHERE \"table\" = 's'")[0].clone();
    let mut far = good.clone();
    far.col_version = (1_000_000 + 3_600_001 + 10) << 16;
    let cases: Vec<(&str, Change, &str)> = vec![
        ("unknown table", Change { table: "nope".into(), ..good.clone() }, "no such CRR table: \"nope\""),
        ("unknown column", Change { cid: "zz".into(), ..good.clone() }, "table \"t\" has no column \"zz\" (schema mismatch)"),
        // Merged, they made an HLC replica unable to write ("clock exhausted"), a lamport
        // replica's next write wrap to version 0, and a local delete overflow the causal length.
        ("col_version past 2^62", Change { col_version: (1 << 62) + 1, ..good.clone() }, "col_version 4611686018427387905 is beyond 2^62"),
        ("cl past 2^62", Change { cl: i64::MAX, ..good.clone() }, "cl 9223372036854775807 is beyond 2^62"),
        ("key column as cid", Change { cid: "ID".into(), ..good.clone() }, "\"ID\" is a key column of table \"t\": key values travel in pk, not as cells"),
        ("empty pk", Change { pk: vec![], ..good.clone() }, "pk blob is empty"),
        ("truncated pk", Change { pk: vec![1, 0x11, 1], ..good.clone() }, "truncated"),
        ("trailing bytes", Change { pk: vec![1, 9, 1, 0], ..good.clone() }, "trailing bytes"),
        ("wrong column count", Change { pk: vec![2, 9, 1, 9, 2], ..good.clone() }, "it has 1 key columns, the pk blob has 2"),
        ("unknown type code", Change { pk: vec![1, 0x0F], ..good.clone() }, "unknown type code"),
        // t's key is its rowid, and its clock is keyed by that integer.
        ("text key of a rowid table", Change { pk: vec![1, 0x0B, 1, b'1'], ..good.clone() }, "its key \"id\" is an INTEGER PRIMARY KEY, the pk blob holds text"),
        ("real key of a rowid table", Change { pk: [&[1u8, 2][..], &1.0f64.to_bits().to_be_bytes()].concat(), ..good.clone() }, "the pk blob holds real"),
        ("15-byte site id", Change { site_id: vec![7; 15], ..good.clone() }, "site_id must be 16 bytes, got 15"),
        ("negative col_version", Change { col_version: -1, ..good.clone() }, "col_version must not be negative"),
        ("negative cl", Change { cl: -3, ..good.clone() }, "cl must not be negative"),
        ("negative db_version", Change { db_version: -1, ..good.clone() }, "db_version must not be negative"),
        // (From a peer: a change of this replica's own site past its clock is refused first.)
        ("STRICT type", Change { val: V::Text("not a number".into()), col_version: s_good.col_version + 1, site_id: vec![9; 16], ..s_good.clone() }, "cannot apply change to \"s\""),
        ("own site past its clock", Change { col_version: s_good.col_version + 1, ..good.clone() }, "change from this replica's own site id"),
        ("beyond drift limit", Change { site_id: vec![9; 16], ..far }, "ahead of this replica's clock (limit hlc-max-drift-ms = 3600000)"),
    ];
    let mut null_site = good.clone();
    null_site.site_id = vec![];
    for (what, bad, want) in &cases {
        // Alone.
        let before = snapshot(&a);
        let e = apply(&a, std::slice::from_ref(bad)).expect_err(what).to_string();
        assert!(e.contains("crsql_changes: ") && e.contains(want), "{what}: {e}");
        assert_eq!(snapshot(&a), before, "{what}: a refused change left traces");
        // In the middle of a multi-row statement inside a transaction.
        let mut fresh = good.clone();
        fresh.pk = vec![1, 9, 50];
        fresh.site_id = vec![3; 16];
        a.execute_batch("BEGIN").unwrap();
        a.execute_batch("CREATE TEMP TABLE IF NOT EXISTS staged(\"table\", pk, cid, val, col_version, db_version, site_id, cl, seq); DELETE FROM staged;").unwrap();
        for x in [&fresh, bad, &fresh] {
            a.execute("INSERT INTO staged VALUES (?,?,?,?,?,?,?,?,?)", rusqlite::params![x.table, x.pk, x.cid, x.val, x.col_version, x.db_version, x.site_id, x.cl, x.seq]).unwrap();
        }
        let e = a.execute("INSERT INTO crsql_changes SELECT * FROM staged ORDER BY rowid", []).expect_err(what).to_string();
        assert!(e.contains(want), "{what} in a batch: {e}");
        assert_eq!(snapshot(&a), before, "{what}: the failing statement applied part of its rows");
        a.execute_batch("ROLLBACK").unwrap();
        assert_eq!(snapshot(&a), before);
    }
    let e = a.execute("INSERT INTO crsql_changes VALUES ('t', X'010901', 'a', 'v', 1, 1, NULL, 1, 0)", []).unwrap_err().to_string();
    assert!(e.contains("site_id must be a 16-byte blob, got null"), "{e}");
}

/// The drift limit measures versions the clock has not reached yet: a replica that merged a
/// change from a clock 5 s ahead writes at versions 5 s ahead too, and its own writes, relayed
/// back to it under a 1 s limit, are merged (they move its clock nowhere; until 2026-12-05
/// they were refused). A peer's change past its clock is still measured against the wall.
#[test]
fn versions_the_clock_has_reached_pass_the_drift_limit() {
    let a = replica();
    at(&a, 1_000_000);
    a.execute("INSERT INTO crsql_changes VALUES ('t', X'010901', 'a', 'ahead', ?1, 1, ?2, 1, 0)", rusqlite::params![1_005_000i64 << 16, vec![5u8; 16]]).unwrap();
    a.execute_batch("UPDATE t SET a = 'mine' WHERE id = 1; INSERT INTO t VALUES (2, 'two', 2);").unwrap();
    a.execute_batch("SELECT crsql_config_set('hlc-max-drift-ms', 1000)").unwrap();
    let own = changes_where(&a, "WHERE site_id = crsql_site_id()");
    assert!(own.iter().all(|c| c.col_version >> 16 >= 1_005_000), "{own:?}");
    apply(&a, &own).unwrap();
    let e = a
        .execute("INSERT INTO crsql_changes VALUES ('t', X'010903', 'a', 'later', ?1, 1, ?2, 1, 0)", rusqlite::params![1_006_000i64 << 16, vec![5u8; 16]])
        .unwrap_err();
    assert!(e.to_string().contains("ahead of this replica's clock (limit hlc-max-drift-ms = 1000)"), "{e}");
    // It says what to do.
    assert!(e.to_string().contains("if this device's clock is behind, set it right; else the sender's is ahead"), "{e}");
}

#[test]
fn drift_limit_can_be_disabled() {
    let a = replica();
    at(&a, 1_000);
    a.execute_batch("SELECT crsql_config_set('hlc-max-drift-ms', 0)").unwrap();
    a.execute("INSERT INTO crsql_changes VALUES ('t', X'010901', 'a', 'v', ?1, 1, ?2, 1, 0)", rusqlite::params![i64::MAX >> 1, vec![5u8; 16]]).unwrap();
    assert_eq!(one::<String>(&a, "SELECT a FROM t"), "v");
    // The clock, moved so far, ticks up to 2^62, the most a peer merges, and no further: a
    // write past it fails, where until 2026-12-07 it was recorded at a version every peer
    // refused ("col_version ... is beyond 2^62"), so the replicas parted for good.
    a.execute("UPDATE t SET a = 'last'", []).unwrap();
    let last = changes_where(&a, "WHERE site_id = crsql_site_id()");
    assert_eq!(last.iter().map(|c| c.col_version).max(), Some(1 << 62));
    let peer = replica();
    peer.execute_batch("SELECT crsql_config_set('hlc-max-drift-ms', 0)").unwrap();
    apply(&peer, &changes(&a)).unwrap();
    assert_eq!(dump(&peer, "t"), dump(&a, "t"));
    let e = err(&a, "UPDATE t SET a = 'past'");
    assert!(e.contains("the hybrid logical clock is exhausted: its next version would pass 2^62, which peers refuse to merge"), "{e}");
    assert_eq!(one::<String>(&a, "SELECT a FROM t"), "last");
    // The same for a lamport version, one more than the cell's.
    let l = mem();
    l.execute_batch(&format!("SELECT crsql_config_set('clock', 'lamport'); {SCHEMA}")).unwrap();
    l.execute("INSERT INTO crsql_changes VALUES ('t', X'010901', 'a', 'v', ?1, 1, ?2, 1, 0)", rusqlite::params![1i64 << 62, vec![5u8; 16]]).unwrap();
    let e = err(&l, "UPDATE t SET a = 'past'");
    assert!(e.contains("a cell's version is exhausted: its next would pass 2^62, which peers refuse to merge"), "{e}");
    assert_eq!(one::<String>(&l, "SELECT a FROM t"), "v");
}

/// A transaction's tick is stored once (crr_ticks) and its records refer to it. When a merge in
/// the same transaction moves the clock past it, later local writes get a new tick; their
/// versions are stored in full and every version reads back as written, on this connection
/// and on a fresh one.
#[test]
fn a_transaction_re_ticked_by_a_merge_keeps_every_version() {
    let dir = tmpdir("re-tick");
    let path = dir.join("a.db");
    let path = path.to_str().unwrap();
    let a = open(path);
    a.execute_batch(SCHEMA).unwrap();
    let b = replica();
    at(&a, 1_000);
    at(&b, 2_000);
    b.execute("INSERT INTO t VALUES (2, 'remote', 2)", []).unwrap();
    let remote = changes(&b);
    a.execute_batch("BEGIN; INSERT INTO t VALUES (1, 'x', 1);").unwrap();
    apply_in_open_tx(&a, &remote);
    a.execute_batch("UPDATE t SET a = 'y' WHERE id = 1; COMMIT;").unwrap();
    let first = 1_000i64 << 16;
    let version = |c: &Connection, id: i64, cid: &str| -> i64 {
        one(c, &format!("SELECT col_version FROM crsql_changes WHERE pk = crsql_pack_columns({id}) AND cid = '{cid}'"))
    };
    for c in [&a, &open(path)] {
        assert_eq!(version(c, 1, "b"), first, "the transaction's first tick");
        assert_eq!(version(c, 2, "a"), 2_000 << 16, "the merged version");
        assert_eq!(version(c, 1, "a"), (2_000 << 16) + 1, "re-ticked past the merged version");
    }
    let ticks: Vec<(i64, i64)> = {
        let mut s = a.prepare("SELECT dbv, tick FROM crr_ticks").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(ticks, vec![(1, first)], "one row per local transaction, holding its first tick");
}

/// A merge remembers the clock it just stored for the row's next change; a local write of the
/// row in between (same transaction, no rollback) must not be lost by that.
#[test]
fn a_local_write_between_two_merged_changes_of_a_row_is_kept() {
    for local in ["UPDATE t SET a = 'local' WHERE id = 1", "DELETE FROM t WHERE id = 1"] {
        let (a, b) = (replica(), replica());
        at(&a, 2_000_000);
        at(&b, 1_000_000);
        b.execute("INSERT INTO t VALUES (1, 'b1', 1)", []).unwrap();
        let remote = changes(&b);
        let (first, second): (Vec<_>, Vec<_>) = remote.iter().cloned().partition(|c| c.cid == "a");
        a.execute_batch("BEGIN").unwrap();
        apply_in_open_tx(&a, &first);
        a.execute_batch(local).unwrap();
        apply_in_open_tx(&a, &second);
        a.execute_batch("COMMIT").unwrap();
        let own: Vec<u8> = one(&a, "SELECT crsql_site_id()");
        let feed = changes(&a);
        if local.starts_with("UPDATE") {
            let cell = feed.iter().find(|c| c.cid == "a").expect("cell a");
            assert_eq!((cell.val.clone(), cell.site_id.clone()), (V::Text("local".into()), own), "{local}: {feed:?}");
            assert!(cell.col_version > first[0].col_version, "{local}");
        } else {
            assert_eq!(one::<i64>(&a, "SELECT count(*) FROM t"), 0, "{local}");
            let sentinel = feed.iter().find(|c| c.cid == "-1").expect("tombstone");
            assert_eq!(sentinel.cl, 2, "{local}: {feed:?}");
        }
        // The replicas converge after exchanging everything.
        sync(&a, &b);
        sync(&b, &a);
        assert_eq!(dump(&a, "t"), dump(&b, "t"), "{local}");
    }
}

// A merged row's clock is held back and written once for the row's run of changes
// (src/storage/merge.rs, "held clock"). Whatever happens in between, the clock must end up
// describing exactly the writes that stayed in the table: checked by rebuilding the table on
// a fresh replica from the merging replica's own change feed.

const HELD_SCHEMA: &str = "CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER CHECK (b < 100), c TEXT);
                           SELECT crsql_as_crr('u');";

fn held_replica() -> Connection {
    let c = mem();
    c.execute_batch(HELD_SCHEMA).unwrap();
    c
}

/// The changes of row 1 from a source replica: a = 'x', b = 5, c = 'z' (one per cell).
fn row_changes() -> Vec<Change> {
    let src = held_replica();
    src.execute("INSERT INTO u VALUES (1, 'x', 5, 'z')", []).unwrap();
    let mut cs = changes(&src);
    cs.sort_by_key(|c| c.cid.clone());
    assert_eq!(cs.iter().map(|c| c.cid.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    cs
}

/// `c`'s table, and the table a fresh replica builds from `c`'s change feed, agree, and the
/// feed has exactly the cells `cids` (values come from the table, so a clock entry for a
/// rolled-back write would show only here).
fn assert_feed_matches_table(c: &Connection, cids: &[&str], ctx: &str) {
    let fresh = held_replica();
    apply(&fresh, &changes(c)).unwrap();
    assert_eq!(dump(&fresh, "u"), dump(c, "u"), "{ctx}: feed {:?}", changes(c));
    let mut got: Vec<String> = changes(c).into_iter().map(|x| x.cid).collect();
    got.sort();
    assert_eq!(got, cids, "{ctx}");
}

/// One step of a held-clock test: SQL, a change that must merge, or one the table refuses.
enum Step<'a> {
    Sql(&'a str),
    Merge(&'a Change),
    Refused(&'a Change),
}

/// Runs `steps` on a fresh held replica; returns it with the refused changes' errors.
fn script(steps: &[Step]) -> (Connection, Vec<String>) {
    let c = held_replica();
    let mut refused = Vec::new();
    for step in steps {
        match step {
            Step::Sql(sql) => c.execute_batch(sql).unwrap(),
            Step::Merge(x) => {
                apply_one(&c, x).unwrap();
            }
            Step::Refused(x) => refused.push(apply_one(&c, x).unwrap_err().to_string()),
        }
    }
    (c, refused)
}

/// A change the table refuses (CHECK) rolls back its own statement only: the row's earlier
/// changes stay, in the table and in its clock.
#[test]
fn a_refused_change_keeps_the_rows_earlier_merged_changes() {
    use Step::*;
    let cs = row_changes();
    let mut bad = cs[1].clone();
    bad.val = V::Integer(500);
    let (c, refused) = script(&[Sql("BEGIN"), Merge(&cs[0]), Refused(&bad), Merge(&cs[2]), Sql("COMMIT")]);
    assert!(refused[0].contains("CHECK"), "{}", refused[0]);
    assert_eq!(dump(&c, "u"), vec![vec![V::Integer(1), V::Text("x".into()), V::Null, V::Text("z".into())]]);
    assert_feed_matches_table(&c, &["a", "c"], "refused b");
    // The same with the refused change last: the commit writes the held clock.
    let (c, _) = script(&[Sql("BEGIN"), Merge(&cs[0]), Refused(&bad), Sql("COMMIT")]);
    assert_feed_matches_table(&c, &["a"], "refused b last");
}

/// ROLLBACK TO undoes the merged writes made since the savepoint, and their held clock with
/// them; writes made before it stay, and so does theirs.
#[test]
fn rollbacks_to_a_savepoint_take_exactly_their_merged_writes() {
    use Step::*;
    let cs = row_changes();
    // Merged inside the savepoint, rolled back, then the row's next change.
    let (c, _) = script(&[Sql("BEGIN; SAVEPOINT s;"), Merge(&cs[0]), Sql("ROLLBACK TO s;"), Merge(&cs[1]), Sql("RELEASE s; COMMIT;")]);
    assert_eq!(dump(&c, "u"), vec![vec![V::Integer(1), V::Null, V::Integer(5), V::Null]]);
    assert_feed_matches_table(&c, &["b"], "a rolled back");
    // Merged before a savepoint, more merged inside it, rolled back.
    let (c, _) = script(&[
        Sql("BEGIN"),
        Merge(&cs[0]),
        Sql("SAVEPOINT s"),
        Merge(&cs[1]),
        Sql("ROLLBACK TO s; RELEASE s;"),
        Merge(&cs[2]),
        Sql("COMMIT"),
    ]);
    assert_eq!(dump(&c, "u"), vec![vec![V::Integer(1), V::Text("x".into()), V::Null, V::Text("z".into())]]);
    assert_feed_matches_table(&c, &["a", "c"], "b rolled back");
    // Merged inside a savepoint that is released, then a refused change at the outer level.
    let mut bad = cs[1].clone();
    bad.val = V::Integer(500);
    let (c, _) = script(&[Sql("BEGIN; SAVEPOINT s;"), Merge(&cs[0]), Sql("RELEASE s"), Refused(&bad), Sql("COMMIT")]);
    assert_feed_matches_table(&c, &["a"], "released, then refused");
    // Merged by one multi-row statement (which has a savepoint of its own), then a refused
    // change in a statement of its own.
    let c = held_replica();
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut s = tx.prepare("INSERT INTO crsql_changes SELECT * FROM (SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 UNION ALL SELECT ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)").unwrap();
        let (x, y) = (&cs[0], &cs[2]);
        s.execute(rusqlite::params![x.table, x.pk, x.cid, x.val, x.col_version, x.db_version, x.site_id, x.cl, x.seq,
            y.table, y.pk, y.cid, y.val, y.col_version, y.db_version, y.site_id, y.cl, y.seq]).unwrap();
    }
    apply_one(&c, &bad).unwrap_err();
    tx.commit().unwrap();
    assert_feed_matches_table(&c, &["a", "c"], "one statement, then refused");
}

/// Reads of crsql_changes and local writes in the merging transaction see the held clock.
#[test]
fn reads_and_local_writes_after_a_merge_see_its_clock() {
    use Step::*;
    let cs = row_changes();
    let (c, _) = script(&[Sql("BEGIN"), Merge(&cs[0]), Merge(&cs[1])]);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 2);
    apply_one(&c, &cs[2]).unwrap();
    c.execute_batch("UPDATE u SET b = 7 WHERE id = 1").unwrap();
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(dump(&c, "u"), vec![vec![V::Integer(1), V::Text("x".into()), V::Integer(7), V::Text("z".into())]]);
    assert_feed_matches_table(&c, &["a", "b", "c"], "local write after merges");
}

/// The functions that rewrite or remove clocks, run after a merge, find the merge's held
/// clock written (they work inside a savepoint, whose opening writes it).
#[test]
fn functions_after_a_merge_find_its_clock_written() {
    use Step::*;
    let cs = row_changes();
    let alter = "SELECT crsql_begin_alter('u'); ALTER TABLE u ADD COLUMN d TEXT; SELECT crsql_commit_alter('u');";
    let (c, _) = script(&[Sql("BEGIN"), Merge(&cs[0]), Sql(alter), Merge(&cs[1]), Sql("SELECT crsql_as_table('u'); COMMIT;")]);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM u"), 1);
    let (c, _) = script(&[Sql("BEGIN"), Merge(&cs[0]), Sql(alter), Sql("COMMIT")]);
    let feed: Vec<(String, V)> = changes(&c).into_iter().map(|x| (x.cid, x.val)).collect();
    assert_eq!(feed, [("a".to_string(), V::Text("x".into()))]);
}

/// SQLite keeps TEXT bytes as it is given them, valid UTF-8 or not; a change carries a value's
/// bytes as they are, so replicas hold the same bytes (until 2026-12-05 they were replaced by
/// U+FFFD on the way, and the replicas differed). The feed moves through SQL only: no driver
/// conversion on the way. A key's text must be UTF-8; other bytes are refused.
/// Moves `from`'s whole feed into `to` through SQL only (a file both attach), so that text
/// that is not UTF-8 arrives as the bytes it is (a driver would convert it on the way).
fn sync_in_sql(from: &Connection, to: &Connection, feed: &std::path::Path) {
    let _ = std::fs::remove_file(feed);
    from.execute(&format!("ATTACH '{}' AS f", feed.display()), []).unwrap();
    from.execute_batch("CREATE TABLE f.feed AS SELECT * FROM crsql_changes; DETACH f;").unwrap();
    to.execute(&format!("ATTACH '{}' AS f", feed.display()), []).unwrap();
    to.execute_batch("INSERT INTO crsql_changes SELECT * FROM f.feed; DETACH f;").unwrap();
}

#[test]
fn text_that_is_not_utf8_syncs_byte_for_byte() {
    let feed = tmpdir("not-utf8").join("feed.db");
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
                  CREATE TABLE k(name TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID;
                  SELECT crsql_as_crr('t'); SELECT crsql_as_crr('k');";
    let (a, b) = pair(schema);
    a.execute_batch(
        "INSERT INTO t VALUES (1, CAST(X'61FF62' AS TEXT), 1), (2, 'plain', 2);
         UPDATE t SET a = CAST(X'C328' AS TEXT) WHERE id = 2;
         INSERT INTO k VALUES ('x', CAST(X'80' AS TEXT));",
    )
    .unwrap();
    sync_in_sql(&a, &b, &feed);
    let cells = |c: &Connection, sql: &str| -> Vec<(String, String)> {
        c.prepare(sql).unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|x| x.unwrap()).collect()
    };
    let rows = "SELECT * FROM (SELECT hex(a), typeof(a) FROM t ORDER BY id) UNION ALL SELECT * FROM (SELECT hex(v), typeof(v) FROM k ORDER BY name)";
    assert_eq!(cells(&a, rows), vec![("61FF62".into(), "text".into()), ("C328".into(), "text".into()), ("80".into(), "text".into())]);
    assert_eq!(cells(&b, rows), cells(&a, rows), "the replica holds other bytes");
    let feed_of = "SELECT hex(val), typeof(val) FROM crsql_changes WHERE cid IN ('a', 'v') ORDER BY pk, cid";
    assert_eq!(cells(&b, feed_of), cells(&a, feed_of));
    assert!(cells(&a, feed_of).iter().any(|(h, _)| h == "61FF62"), "{:?}", cells(&a, feed_of));
    // A key's text must be UTF-8 (SPEC 6): such a key is refused, not packed as another.
    let e = err(&a, "INSERT INTO k VALUES (CAST(X'FF' AS TEXT), 1)");
    assert!(e.contains("not valid UTF-8"), "{e}");
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM k"), 1, "the refused write left the table as it was");
}

/// Equal versions, TEXT values that are not UTF-8: the greater value wins in SQLite's ORDER BY
/// order (BINARY compares bytes), whichever site wrote it. Before, both values were compared
/// after a lossy conversion (both became U+FFFD), called equal, and the greater site won.
#[test]
fn ties_on_text_that_is_not_utf8_break_by_its_bytes() {
    let feed = tmpdir("tie-not-utf8").join("feed.db");
    let (a, b) = (replica(), replica());
    for r in [&a, &b] {
        at(r, 5_000);
    }
    let site = |c: &Connection| one::<Vec<u8>>(c, "SELECT crsql_site_id()");
    // The greater site writes the lesser bytes, so the site cannot be what decides.
    let (big, small) = if site(&a) > site(&b) { (&a, &b) } else { (&b, &a) };
    big.execute("INSERT INTO t VALUES (1, CAST(X'C3' AS TEXT), 1)", []).unwrap();
    small.execute("INSERT INTO t VALUES (1, CAST(X'FF' AS TEXT), 1)", []).unwrap();
    let greater: String = one(&a, "SELECT hex(v) FROM (SELECT CAST(X'C3' AS TEXT) AS v UNION ALL SELECT CAST(X'FF' AS TEXT)) ORDER BY v DESC LIMIT 1");
    assert_eq!(greater, "FF", "SQLite's own order");
    sync_in_sql(&a, &b, &feed);
    sync_in_sql(&b, &a, &feed);
    for r in [&a, &b] {
        assert_eq!(one::<String>(r, "SELECT hex(a) FROM t"), greater);
        assert_eq!(one::<Vec<u8>>(r, "SELECT site_id FROM crsql_changes WHERE cid = 'a'"), site(small));
    }
}

/// Table and column names in a change match as SQL matches identifiers, ASCII case aside (a
/// peer whose DDL spelled `A` for `a`): until 2026-12-05 the table matched so and the column
/// did not ("has no column").
#[test]
fn a_change_names_its_table_and_column_in_any_ascii_case() {
    let a = replica();
    a.execute("INSERT INTO crsql_changes VALUES ('T', X'010901', 'A', 'v', 1, 1, ?1, 1, 0)", [vec![7u8; 16]]).unwrap();
    assert_eq!(one::<String>(&a, "SELECT a FROM t WHERE id = 1"), "v");
    assert_eq!(changes_where(&a, "WHERE cid = 'a'").len(), 1);
    assert_eq!(changes_where(&a, "WHERE cid = 'A' COLLATE NOCASE").len(), 1);
    assert_eq!(changes_where(&a, "WHERE cid = 'A'").len(), 0);
}

/// core::table_shape::stored_as_is agrees with SQLite on every value below for every affinity
/// (non-STRICT columns, and a STRICT table's ANY): it decides which key values a merge refuses.
#[test]
fn the_stored_as_is_rule_agrees_with_sqlite() {
    use crr::core::table_shape::{column_affinity, stored_as_is};
    use crr::core::value::Value as CV;
    let c = Connection::open_in_memory().unwrap();
    let types = ["TEXT", "INTEGER", "REAL", "NUMERIC", "", "BLOB", "ANY", "VARCHAR(9)", "DOUBLE", "DECIMAL"];
    let cols: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("c{i} {t}")).collect();
    c.execute_batch(&format!("CREATE TABLE x({}); CREATE TABLE s(a ANY) STRICT;", cols.join(", "))).unwrap();
    let mut values: Vec<V> = vec![V::Null, V::Integer(0), V::Integer(-7), V::Integer(i64::MAX), V::Integer(i64::MIN), V::Blob(vec![]), V::Blob(vec![0x31])];
    for f in [0.0, -0.0, 1.0, 2.5, -3.0, 1e15, 1e300, i64::MAX as f64, i64::MIN as f64, f64::INFINITY] {
        values.push(V::Real(f));
    }
    for t in [
        "", " ", "1", " 1 ", "+1", "-1.", ".5", "1e5", "1E-5", "\u{b}7\r", "1e", "e5", "0x10", "1 2", "inf", "NaN", "1.2.3", "--1", "\u{a0}1", "abc",
        "00", "-0", "1e400", "9223372036854775808", "١", ".", "+", "1.e3", "\t-2.5e+3\n",
    ] {
        values.push(V::Text(t.into()));
    }
    let to_core = |v: &V| match v {
        V::Null => CV::Null,
        V::Integer(i) => CV::Integer(*i),
        V::Real(f) => CV::Real(*f),
        V::Text(t) => CV::Text(t.clone()),
        V::Blob(b) => CV::Blob(b.clone()),
    };
    let same = |a: &V, b: &V| match (a, b) {
        (V::Real(x), V::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    };
    for v in &values {
        for (i, ty) in types.iter().enumerate() {
            c.execute("DELETE FROM x", []).unwrap();
            c.execute(&format!("INSERT INTO x(c{i}) VALUES (?1)"), [v]).unwrap();
            let stored: V = c.query_row(&format!("SELECT c{i} FROM x"), [], |r| r.get(0)).unwrap();
            assert_eq!(stored_as_is(column_affinity(ty, false), &to_core(v)), same(&stored, v), "{v:?} in a {ty:?} column is stored as {stored:?}");
        }
        c.execute("DELETE FROM s", []).unwrap();
        c.execute("INSERT INTO s VALUES (?1)", [v]).unwrap();
        let stored: V = c.query_row("SELECT a FROM s", [], |r| r.get(0)).unwrap();
        assert_eq!(stored_as_is(column_affinity("ANY", true), &to_core(v)), same(&stored, v), "{v:?} in a STRICT ANY column is stored as {stored:?}");
    }
}

/// core::table_shape::affinity gives every declared type the affinity SQLite gives it (the
/// rules of https://sqlite.org/datatype3.html 3.1, first match wins), over random type names
/// made of the rule's substrings in any case, order and company ("FLOATING POINT" is INTEGER,
/// "CHARINT" too, "BLOBTEXT" TEXT, "DOUB LE" NUMERIC). SQLite's answer: what a column of the
/// type stores for the text '5' (REAL: 5.0; TEXT or BLOB: the text; else the integer 5) and
/// for the integer 5 (BLOB keeps it, TEXT makes it '5'). INTEGER and NUMERIC store alike.
#[test]
fn the_affinity_of_a_declared_type_agrees_with_sqlite() {
    use crr::core::table_shape::{affinity, Affinity};
    let parts = ["INT", "int", "CHAR", "clob", "Text", "BLOB", "REAL", "floa", "DOUB", "LE", "POINT", "VAR", "(10)", "(5, 2)", " ", "X", "NUM", "ERIC", "_", "ANY", "date"];
    let mut r = Rng(37);
    let c = Connection::open_in_memory().unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..600 {
        let ty: String = (0..r.below(4)).map(|_| *r.pick(&parts)).collect::<Vec<_>>().concat();
        if c.execute_batch(&format!("DROP TABLE IF EXISTS x; CREATE TABLE x(c {ty})")).is_err() {
            continue; // (a name SQLite's grammar does not take as a type: "(10)" alone)
        }
        let declared: String = c.query_row("SELECT type FROM pragma_table_info('x')", [], |row| row.get(0)).unwrap();
        c.execute_batch("INSERT INTO x VALUES ('5'), (5)").unwrap();
        let stored: Vec<String> = c.prepare("SELECT typeof(c) FROM x ORDER BY rowid").unwrap().query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        let sqlite = match (stored[0].as_str(), stored[1].as_str()) {
            ("real", _) => "real",
            ("text", "text") => "text",
            ("text", "integer") => "blob",
            ("integer", _) => "integer or numeric",
            other => panic!("{ty}: {other:?}"),
        };
        let ours = match affinity(&declared) {
            Affinity::Real => "real",
            Affinity::Text => "text",
            Affinity::Blob => "blob",
            Affinity::Integer | Affinity::Numeric => "integer or numeric",
        };
        assert_eq!(ours, sqlite, "declared type {declared:?}");
        seen.insert(sqlite);
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

/// core::schema_sql::default_expr turns the DEFAULT text `pragma_table_xinfo` reports (which
/// drops a parenthesized expression's parentheses) into an expression whose value, stored in
/// the column, is what SQLite stores for a row inserted without it: for random DEFAULT
/// clauses of every form (signed numbers at the limits, strings, blobs, a name in each
/// quoting, TRUE/FALSE/NULL, unary operators on strings, parenthesized arithmetic, CASE, CAST,
/// COLLATE, functions) in every affinity. A merge that makes a row of a wide CRR writes every
/// column through it (storage::merge::recreate_row), and crsql_commit_alter compares with it.
#[test]
fn a_default_expression_gives_the_value_sqlite_gives_a_row_without_the_column() {
    use crr::core::schema_sql::default_expr;
    let forms = [
        "NULL", "0", "-0", "+7", "-7", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e308", "-1e309", ".5", "5.",
        "-1.50", "0x7FFFFFFFFFFFFFFF", "-0x10", "'x'", "'it''s'", "''", "' 5'", "'5.0'", "x''", "X'00ff'", "abc", "\"q\"\"d\"", "[b r]", "`b``t`",
        "true", "FALSE", "\"true\"", "- 'abc'", "-'5'", "+'5x'", "(1 + 2)", "(-(-9223372036854775807))", "(1/0)", "(5 / 2.0)",
        "(CASE WHEN 1 THEN 'a' ELSE 'b' END)", "(CAST('12' AS INTEGER))", "(CAST(3 AS TEXT))", "('A' COLLATE NOCASE)", "(lower('AbC'))",
        "(abs(-3) || 'x')", "(typeof(1.0))", "(x'41' || '')", "(NULL IS NULL)", "(length('héllo'))", "('a' > 'B')",
    ];
    let types = ["INTEGER", "REAL", "TEXT", "NUMERIC", "BLOB", "", "VARCHAR(3)"];
    let c = Connection::open_in_memory().unwrap();
    let mut r = Rng(38);
    let mut judged = 0;
    for _ in 0..400 {
        let (form, ty) = (*r.pick(&forms), *r.pick(&types));
        if c.execute_batch(&format!("DROP TABLE IF EXISTS x; CREATE TABLE x(id INTEGER PRIMARY KEY, c {ty} DEFAULT {form})")).is_err() {
            continue;
        }
        let reported: Option<String> = c.query_row("SELECT dflt_value FROM pragma_table_xinfo('x') WHERE name = 'c'", [], |row| row.get(0)).unwrap();
        let expr = default_expr(reported.as_deref());
        c.execute_batch(&format!("INSERT INTO x(id) VALUES (1); INSERT INTO x(id, c) VALUES (2, {expr});"))
            .unwrap_or_else(|e| panic!("{ty} DEFAULT {form}: {expr}: {e}"));
        let got: Vec<String> = c.prepare("SELECT quote(c) || ' ' || typeof(c) FROM x ORDER BY id").unwrap().query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        assert_eq!(got[1], got[0], "{ty} DEFAULT {form}, reported as {reported:?}, written as {expr}");
        judged += 1;
    }
    assert!(judged > 350, "{judged}");
}

/// A change whose key value the key column would store as another value is refused (it would
/// have named the row by a key its clock does not hold: the row's next local write gave it a
/// second clock row, and a peer with an untyped key column then held two rows for one). Until
/// 2026-12-05 it was applied.
#[test]
fn a_key_value_the_key_column_would_convert_is_refused() {
    let a = mem();
    a.execute_batch(
        "CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, v TEXT) WITHOUT ROWID; SELECT crsql_as_crr('w');
         CREATE TABLE n(k NUMERIC NOT NULL, j NOT NULL, v TEXT, PRIMARY KEY (k, j)); SELECT crsql_as_crr('n');",
    )
    .unwrap();
    let site = vec![7u8; 16];
    let merge = |table: &str, pk: &str| a.execute(&format!("INSERT INTO crsql_changes VALUES ('{table}', crsql_pack_columns({pk}), 'v', 'x', 1, 1, ?1, 1, 0)"), [&site]);
    let e = merge("w", "1").unwrap_err().to_string();
    assert!(e.contains("bad pk for table \"w\": its key column \"k\" (Text affinity) would store the pk's integer 1 as another value"), "{e}");
    let e = merge("n", "'12', 'x'").unwrap_err().to_string();
    assert!(e.contains("key column \"k\" (Numeric affinity) would store the pk's text '12'"), "{e}");
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crsql_changes"), 0);
    // What the columns keep as they are is merged, and a local write then names the same row.
    merge("w", "'1'").unwrap();
    merge("n", "12, X'00'").unwrap();
    a.execute_batch("UPDATE w SET v = 'y'; UPDATE n SET v = 'y';").unwrap();
    let pks: Vec<Vec<u8>> = changes(&a).into_iter().map(|x| x.pk).collect();
    assert_eq!(pks.len(), 2, "one clock row per row: {pks:?}");
}

/// core::table_shape::key_twin agrees with SQLite: a REAL key it gives an INTEGER twin makes
/// that INTEGER a duplicate key in a BLOB-affinity (and a STRICT ANY) key column, and a REAL
/// it gives none leaves the integers around it free.
#[test]
fn the_key_twin_rule_agrees_with_sqlite() {
    use crr::core::table_shape::{column_affinity, key_twin};
    use crr::core::value::Value as CV;
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch("CREATE TABLE b(k PRIMARY KEY NOT NULL); CREATE TABLE s(k ANY PRIMARY KEY NOT NULL) STRICT;").unwrap();
    let reals = [0.0, -0.0, 1.0, -3.0, 2.5, -0.5, 1e15, 1e18 + 0.5, 1e300, -1e300, i64::MAX as f64, i64::MIN as f64, f64::INFINITY];
    for (table, ty, strict) in [("b", "", false), ("s", "ANY", true)] {
        for f in reals {
            c.execute(&format!("DELETE FROM {table}"), []).unwrap();
            c.execute(&format!("INSERT INTO {table} VALUES (?1)"), [f]).unwrap();
            let twin = key_twin(column_affinity(ty, strict), &CV::Real(f));
            let taken = |i: i64| c.execute(&format!("INSERT INTO {table} VALUES (?1)"), [i]).is_err();
            match twin {
                Some(i) => assert!(taken(i), "{f:?} in {table}: SQLite took {i} as another key"),
                None if f.is_finite() && f.abs() < 9e18 => {
                    assert!(!taken(f.floor() as i64) && !taken(f.ceil() as i64), "{f:?} in {table}: SQLite found an INTEGER equal")
                }
                None => assert!(!taken(i64::MAX) && !taken(i64::MIN), "{f:?} in {table}"),
            }
        }
    }
}

/// A STRICT table's ANY key column stores a text key as it is, whatever the table's text
/// holds after its options: SQLite keeps a comment before the statement's end, and until
/// 2026-12-06 a `)` in it hid STRICT, the key column was taken for NUMERIC, and the merge of
/// a row keyed '5' was refused as a schema mismatch.
#[test]
fn a_strict_table_with_a_comment_after_its_options_merges_text_keys() {
    let (a, b) = (mem(), mem());
    for c in [&a, &b] {
        execute_with_comments(c, "CREATE TABLE s(k ANY PRIMARY KEY NOT NULL, v ANY) STRICT /* options ) */");
        c.execute_batch("SELECT crsql_as_crr('s')").unwrap();
    }
    a.execute_batch("INSERT INTO s VALUES ('5', 1), (5, 2), ('x', 3.0)").unwrap();
    sync(&a, &b);
    let typed = "SELECT k, typeof(k), v, typeof(v) FROM s ORDER BY typeof(k), k";
    assert_eq!(rows(&b, typed), rows(&a, typed));
    assert_eq!(one::<i64>(&b, "SELECT count(*) FROM s"), 3);
}

/// A REAL key equal to an INTEGER (1.0, -0.0) in a key column of BLOB affinity would be one
/// row under two keys: a replica holding 1 and one holding 1.0 each replaced the other's row
/// when they merged, and held different tables for good. Until 2026-12-05 nothing refused
/// it. Now every way of recording such a key is refused with the reason, and leaves things
/// as they were: a local insert, a key change, crsql_as_crr's backfill, a merge. Columns that
/// store only one of the two (REAL affinity here) and REALs with no INTEGER twin are kept.
#[test]
fn a_real_key_equal_to_an_integer_is_refused_where_it_would_be_recorded() {
    let a = mem();
    a.execute_batch(
        "CREATE TABLE b(id PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('b');
         CREATE TABLE s(k ANY NOT NULL, j INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, j)) STRICT; SELECT crsql_as_crr('s');
         CREATE TABLE r(id REAL PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('r');
         INSERT INTO b VALUES (1, 'int'), (1.5, 'half'), (1e300, 'big');
         INSERT INTO r VALUES (1.0, 'one'), (2, 'two');",
    )
    .unwrap();
    let before = (dump(&a, "b"), changes(&a));
    for (sql, said) in [
        ("INSERT INTO b VALUES (2.0, 'x')", "table \"b\": key column \"id\" cannot hold a REAL equal to an INTEGER"),
        ("INSERT INTO b VALUES (0.0 * -1, 'x')", "table \"b\": key column \"id\" cannot hold a REAL equal to an INTEGER"),
        ("INSERT INTO s VALUES (7.0, 1, 'x')", "table \"s\": key column \"k\" cannot hold a REAL equal to an INTEGER"),
        // Raised by an internal function the trigger calls, whose name would tell the user
        // nothing: the error says whose it is instead.
        ("UPDATE b SET id = 3.0 WHERE id = 1", "sqlite-crr: table \"b\": key column \"id\" cannot hold the REAL 3.0: SQLite finds it equal to the INTEGER 3"),
    ] {
        let e = err(&a, sql);
        assert!(e.contains(said), "{sql}: {e}");
    }
    let site = vec![7u8; 16];
    let e = a
        .execute("INSERT INTO crsql_changes VALUES ('b', crsql_pack_columns(1.0), 'v', 'x', 9, 1, ?1, 1, 0)", [&site])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad pk for table \"b\": key column \"id\" cannot hold the REAL 1.0") && e.contains("store the INTEGER 1"), "{e}");
    assert_eq!((dump(&a, "b"), changes(&a)), before, "a refusal changed something");
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM s"), 0);
    // A REAL column stores 2 as 2.0: its REAL keys have no twin.
    assert_eq!(one::<String>(&a, "SELECT group_concat(typeof(id)) FROM r"), "real,real");
    // A table that holds such a key cannot become a CRR until the key is an INTEGER.
    a.execute_batch("CREATE TABLE p(id PRIMARY KEY NOT NULL, v); INSERT INTO p VALUES (4.0, 'x');").unwrap();
    let e = err(&a, "SELECT crsql_as_crr('p')");
    assert!(e.contains("table \"p\": key column \"id\" cannot hold the REAL 4.0"), "{e}");
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'crr_%' AND sql LIKE '%\"p\"%'"), 0, "no trigger left");
    a.execute_batch("UPDATE p SET id = 4; SELECT crsql_as_crr('p');").unwrap();
    assert_eq!(changes_where(&a, "WHERE \"table\" = 'p'").len(), 1);
}

/// A pk that packs a REAL NaN (no replica packs one: SQLite stores a NaN as NULL) is refused
/// with that reason, in a key column of each affinity that keeps REALs, and nothing changes.
/// Until 2026-12-06 the error was the key's `NOT NULL constraint failed`, which did not say
/// why. An infinity is a REAL like another, and is taken.
#[test]
fn a_pk_that_packs_a_nan_is_refused_with_the_reason() {
    let a = mem();
    a.execute_batch(
        "CREATE TABLE u(k NOT NULL PRIMARY KEY, v) WITHOUT ROWID; SELECT crsql_as_crr('u');
         CREATE TABLE w(k REAL NOT NULL, j INTEGER NOT NULL, v, PRIMARY KEY (k, j)); SELECT crsql_as_crr('w');",
    )
    .unwrap();
    let site = vec![7u8; 16];
    let real = |bits: u64| [&[2u8][..], &bits.to_be_bytes()].concat();
    for (table, nan) in [("u", [&[1u8][..], &real(0x7FF8_0000_0000_0000)].concat()), ("w", [&[2u8][..], &real(0xFFF0_0000_0000_0001), &[9, 1]].concat())] {
        let e = a
            .execute("INSERT INTO crsql_changes VALUES (?1, ?2, 'v', 'x', 9, 1, ?3, 1, 0)", rusqlite::params![table, nan, site])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("bad pk for table \"{table}\": its key column \"k\" holds a REAL NaN, which SQLite stores as NULL")), "{e}");
        assert_eq!(one::<i64>(&a, &format!("SELECT count(*) FROM {table}")), 0);
    }
    assert!(changes(&a).is_empty());
    let inf = [&[1u8][..], &real(0x7FF0_0000_0000_0000)].concat();
    a.execute("INSERT INTO crsql_changes VALUES ('u', ?1, 'v', 'x', 9, 1, ?2, 1, 0)", rusqlite::params![inf, site]).unwrap();
    assert_eq!(one::<f64>(&a, "SELECT k FROM u"), f64::INFINITY);
}

/// A REAL key with an INTEGER twin that an earlier build recorded (its insert trigger did not
/// check) can be fixed where it lives: the key change's tombstone of the REAL key merges (and
/// deletes only a row keyed by that REAL, not a peer's row keyed by the INTEGER), so replicas
/// converge; crsql_as_crr gives the table the checking trigger back.
#[test]
fn a_key_twin_an_earlier_build_recorded_can_be_fixed_and_the_fix_syncs() {
    let schema = "CREATE TABLE b(id PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('b');";
    let (old, peer) = pair(schema);
    for r in [&old, &peer] {
        at(r, 1_000);
    }
    // The insert trigger as earlier builds made it: the key packed unchecked.
    let trigger: String = one(&old, "SELECT sql FROM sqlite_schema WHERE name = 'crr_1_insert'");
    let unchecked = without_key_check(&trigger);
    old.execute_batch(&format!("DROP TRIGGER crr_1_insert; {unchecked};")).unwrap();
    old.execute_batch("INSERT INTO b VALUES (1.0, 'old')").unwrap();
    peer.execute_batch("INSERT INTO b VALUES (1, 'peer')").unwrap();
    let e = apply(&peer, &changes(&old)).unwrap_err().to_string();
    assert!(e.contains("cannot hold the REAL 1.0"), "{e}");
    // The fix: the key becomes the INTEGER (a tombstone for 1.0, a new row 1).
    old.execute_batch("UPDATE b SET id = 1 WHERE id = 1.0; SELECT crsql_as_crr('b');").unwrap();
    assert!(err(&old, "INSERT INTO b VALUES (5.0, 'x')").contains("cannot hold a REAL equal to an INTEGER"));
    // The peer's row 1 is written last, so its value wins: the tombstone of 1.0 must not
    // have deleted it (a delete by `id = 1.0` did, and the peer lost the row for good).
    at(&peer, 2_000);
    peer.execute_batch("UPDATE b SET v = 'peer, later' WHERE id = 1").unwrap();
    let rows = converge(&old, &peer, "b");
    assert_eq!(rows, vec![vec![V::Integer(1), V::Text("peer, later".into())]]);
    assert_eq!(changes_where(&peer, "WHERE cid = '-1'").len(), 1, "the tombstone of 1.0 is on the peer too");
}

fn without_key_check(trigger: &str) -> String {
    let start = trigger.find("CASE WHEN").expect("the checking trigger");
    let end = trigger[start..].find(" END").expect("its CASE's end") + start + " END".len();
    format!("{}NEW.\"id\"{}", &trigger[..start], &trigger[end..])
}

/// A merge whose user-table write an app's BEFORE trigger skips (RAISE(IGNORE)) is refused:
/// until 2026-12-05 it recorded the change's clock anyway, so the replica said it held a
/// value its row did not (a cell whose row was never created read NULL at the origin's
/// version, and was passed on so). Each kind of write is checked: a row's first cell (INSERT
/// OR REPLACE), a cell of a live row (UPDATE, then the upsert), a delete. The same triggers
/// guarded with crsql_internal_sync_bit() let every merge through.
#[test]
fn a_merge_that_an_app_trigger_skips_is_refused() {
    let a = mem();
    // Local versions at wall ms 1 (1 << 16 and up); the merged ones are later.
    at(&a, 1);
    a.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'one', 'x');").unwrap();
    let merge = |pk: i64, cid: &str, val: Option<&str>, cl: i64| merge_from_site_7(&a, pk, cid, val, cl);
    let cases = [("INSERT", "NEW.a IS NULL", 2, "b", Some("bee"), 1), ("UPDATE", "1", 1, "b", Some("later"), 1), ("DELETE", "1", 1, "-1", None, 2)];
    let skip = |event: &str, when: &str| format!("CREATE TRIGGER skip BEFORE {event} ON t WHEN {when} BEGIN SELECT RAISE(IGNORE); END");
    for (event, when, pk, cid, val, cl) in cases {
        a.execute_batch(&skip(event, when)).unwrap();
        let before = (dump(&a, "t"), changes(&a));
        let e = merge(pk, cid, val, cl).expect_err(event).to_string();
        assert!(e.contains("cannot apply change to \"t\": a trigger of the app skipped the merge's write (RAISE(IGNORE))"), "{event}: {e}");
        assert_eq!((dump(&a, "t"), changes(&a)), before, "{event}: the refused change left something");
        a.execute_batch(&format!("DROP TRIGGER skip; {}", skip(event, &format!("{when} AND crsql_internal_sync_bit() = 0")))).unwrap();
        merge(pk, cid, val, cl).unwrap();
        a.execute_batch("DROP TRIGGER skip").unwrap();
    }
    // A delete of a row this replica does not have is no write to skip.
    merge(40, "-1", None, 2).unwrap();
    assert_eq!(dump(&a, "t"), vec![vec![V::Integer(2), V::Null, V::Text("bee".into())]]);
}

/// An app trigger's RAISE(FAIL) stops a statement but keeps the writes it made before: an
/// AFTER trigger's keeps the merge's write to the row. The merge then records the change's
/// clock too and returns the trigger's error, so the row never holds what its clock does not
/// say: in a transaction both stay (the app may commit them), outside one both go. Until
/// 2026-12-05 the clock was not recorded: after COMMIT the row held a value this replica
/// never sent. A BEFORE trigger's RAISE(FAIL) stops the write itself: nothing stays.
#[test]
fn a_merge_whose_write_an_app_trigger_fails_but_keeps_records_it() {
    let a = mem();
    at(&a, 1);
    a.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'one'), (2, 'two');")
        .unwrap();
    let merge = |pk: i64, cid: &str, val: Option<&str>, cl: i64| merge_from_site_7(&a, pk, cid, val, cl);
    let fail = |timing: &str, event: &str| format!("CREATE TRIGGER f {timing} {event} ON t BEGIN SELECT RAISE(FAIL, 'no {event}'); END");
    // (event, the merged change: key, cid, value, cl)
    let cases = [("INSERT", 3, "a", Some("three"), 1), ("UPDATE", 1, "a", Some("uno"), 1), ("DELETE", 2, "-1", None, 2)];
    for (event, pk, cid, val, cl) in cases {
        // BEFORE: the write does not happen.
        a.execute_batch(&fail("BEFORE", event)).unwrap();
        let before = (dump(&a, "t"), changes(&a));
        a.execute_batch("BEGIN").unwrap();
        let e = merge(pk, cid, val, cl).unwrap_err().to_string();
        assert!(e.contains(&format!("no {event}")) && !e.contains("recorded the write's clock"), "{event}: {e}");
        a.execute_batch("COMMIT").unwrap();
        assert_eq!((dump(&a, "t"), changes(&a)), before, "{event}: BEFORE");
        // AFTER, outside a transaction: the statement's failure rolls both back.
        a.execute_batch(&format!("DROP TRIGGER f; {}", fail("AFTER", event))).unwrap();
        let e = merge(pk, cid, val, cl).unwrap_err().to_string();
        assert!(e.contains(&format!("no {event}")), "{event}: {e}");
        assert_eq!((dump(&a, "t"), changes(&a)), before, "{event}: AFTER, outside a transaction");
        // AFTER, in a transaction, merged by an INSERT ... SELECT (a statement that may write
        // several rows): its failure rolls back its own work, the write and its clock.
        a.execute_batch("BEGIN").unwrap();
        let e = a
            .execute("INSERT INTO crsql_changes SELECT 't', crsql_pack_columns(?1), ?2, ?3, 70000, 1, ?4, ?5, 0", rusqlite::params![pk, cid, val, vec![7u8; 16], cl])
            .unwrap_err();
        assert!(e.to_string().contains(&format!("no {event}")), "{event}: {e}");
        a.execute_batch("COMMIT").unwrap();
        assert_eq!((dump(&a, "t"), changes(&a)), before, "{event}: AFTER, in an INSERT ... SELECT");
        // AFTER, in a transaction that commits: the write and its clock stay.
        a.execute_batch("BEGIN").unwrap();
        let e = merge(pk, cid, val, cl).unwrap_err().to_string();
        assert!(e.contains(&format!("no {event}")) && e.contains("so the merge recorded the write's clock too"), "{event}: {e}");
        a.execute_batch("COMMIT; DROP TRIGGER f").unwrap();
        let kept = (dump(&a, "t"), changes(&a));
        assert_ne!(kept, before, "{event}: the write stays");
        let kept_portable = portable(&a);
        // The same change merged where no trigger fails it gives the same table and feed.
        let b = mem();
        at(&b, 1);
        b.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');").unwrap();
        apply(&b, &before.1).unwrap();
        merge_from_site_7(&b, pk, cid, val, cl).unwrap();
        assert_eq!((dump(&b, "t"), portable(&b)), (kept.0, kept_portable), "{event}: as if merged without the trigger");
    }
}

/// A merge's user-table write that fails before it runs (here its statement does not
/// compile: an app's TEMP trigger names a missing table) applies nothing, even right after
/// writes whose `changes()` count is still 1: an earlier version of the FAIL rule above took
/// that count for the failed statement's, and recorded a clock for a value never written.
#[test]
fn a_merge_whose_write_cannot_be_prepared_applies_nothing() {
    let a = mem();
    a.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');").unwrap();
    let site = vec![7u8; 16];
    let merge = |val: &str, col_version: i64| {
        a.execute("INSERT INTO crsql_changes VALUES ('t', crsql_pack_columns(1), 'a', ?1, ?2, 1, ?3, 1, 0)", rusqlite::params![val, col_version, site])
    };
    a.execute_batch("BEGIN").unwrap();
    merge("x", 1).unwrap();
    a.execute_batch("CREATE TEMP TRIGGER bad AFTER UPDATE ON main.t BEGIN INSERT INTO missing VALUES (1); END").unwrap();
    let before = (dump(&a, "t"), changes(&a));
    let e = merge("y", 2).unwrap_err().to_string();
    assert!(e.contains("cannot apply change to \"t\"") && e.contains("no such table: missing"), "{e}");
    a.execute_batch("COMMIT").unwrap();
    assert_eq!((dump(&a, "t"), changes(&a)), before);
}

/// An app trigger that writes the merged table while a merge writes it (its own row or
/// another) makes a write no clock records: this replica would hold, and never send, what no
/// other has. The merge is refused, inside a transaction too, and leaves the table and the
/// feed as they were. Until 2026-12-05 it went through (README warned). Writes of such a
/// trigger to a plain table are fine, as is the second firing of an INSERT OR REPLACE that
/// replaces a live row under recursive_triggers (the replaced row's delete), and of an update
/// inside an alter bracket (the bracket's BEFORE UPDATE trigger).
#[test]
fn a_merge_during_which_an_app_trigger_writes_the_merged_table_is_refused() {
    let a = mem();
    at(&a, 1);
    a.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, n INTEGER DEFAULT 0); SELECT crsql_as_crr('t');
         CREATE TABLE audit(id INTEGER, bit INTEGER);
         CREATE TRIGGER audited AFTER UPDATE ON t BEGIN INSERT INTO audit VALUES (NEW.id, crsql_internal_sync_bit()); END;
         INSERT INTO t(id, a) VALUES (1, 'one'), (2, 'two');",
    )
    .unwrap();
    let merge = |pk: i64, cid: &str, val: Option<&str>, cl: i64| merge_from_site_7(&a, pk, cid, val, cl);
    let refused = |e: rusqlite::Error| {
        let e = e.to_string();
        assert!(e.contains("cannot apply change to \"t\": sqlite-crr: a trigger of the app wrote \"t\" while a merge wrote it"), "{e}");
        assert!(e.contains("WHEN crsql_internal_sync_bit() = 0"), "{e}");
    };
    // A trigger that writes a plain table is no write to the merged table.
    merge(2, "a", Some("merged"), 1).unwrap();
    assert_eq!(one::<String>(&a, "SELECT group_concat(id || ':' || bit) FROM audit"), "2:1");
    let cases = [
        ("the row's own", "AFTER UPDATE OF a", "UPDATE t SET n = n + 1 WHERE id = NEW.id", 1, "a", Some("later"), 1),
        ("another row", "AFTER INSERT", "UPDATE t SET n = n + 1 WHERE id = 1", 5, "a", Some("five"), 1),
        ("a new row, before", "BEFORE DELETE", "INSERT INTO t(id, a) VALUES (OLD.id + 100, 'copy')", 2, "-1", None, 2),
    ];
    let writes = |when: &str, timing: &str, body: &str| format!("CREATE TRIGGER writes {timing} ON t WHEN {when} BEGIN {body}; END");
    for (what, timing, body, pk, cid, val, cl) in cases {
        a.execute_batch(&writes("1", timing, body)).unwrap();
        let before = (dump(&a, "t"), changes(&a));
        for in_txn in [false, true] {
            if in_txn {
                a.execute_batch("BEGIN").unwrap();
            }
            refused(merge(pk, cid, val, cl).expect_err(what));
            assert_eq!((dump(&a, "t"), changes(&a)), before, "{what} (in a transaction: {in_txn}): the refused change left something");
            if in_txn {
                a.execute_batch("COMMIT").unwrap();
            }
        }
        a.execute_batch(&format!("DROP TRIGGER writes; {}", writes("crsql_internal_sync_bit() = 0", timing, body))).unwrap();
        merge(pk, cid, val, cl).unwrap();
        a.execute_batch("DROP TRIGGER writes").unwrap();
    }
    assert_eq!(
        dump(&a, "t"),
        vec![vec![V::Integer(1), V::Text("later".into()), V::Integer(0)], vec![V::Integer(5), V::Text("five".into()), V::Integer(0)]]
    );
    // With recursive_triggers on, a merge that starts a later life of a live row replaces it:
    // the replaced row's delete fires the table's trigger, then the insert. That is allowed...
    a.execute_batch("PRAGMA recursive_triggers = ON").unwrap();
    merge(5, "a", Some("five again"), 3).unwrap();
    assert_eq!(one::<String>(&a, "SELECT a FROM t WHERE id = 5"), "five again");
    // ...but not a third firing.
    a.execute_batch(&writes("1", "AFTER INSERT", "UPDATE t SET n = n + 1 WHERE id = 1")).unwrap();
    let before = (dump(&a, "t"), changes(&a));
    refused(merge(1, "a", Some("one again"), 3).unwrap_err());
    assert_eq!((dump(&a, "t"), changes(&a)), before);
    // Inside an alter bracket an update fires the bracket's BEFORE UPDATE trigger too: allowed,
    // and an app trigger's write beside it is still seen.
    a.execute_batch("DROP TRIGGER writes; PRAGMA recursive_triggers = OFF; SELECT crsql_begin_alter('t');").unwrap();
    merge(5, "a", Some("in a bracket"), 3).unwrap();
    a.execute_batch(&writes("1", "AFTER UPDATE OF a", "UPDATE t SET n = n + 1 WHERE id = NEW.id")).unwrap();
    let before = (dump(&a, "t"), changes(&a));
    refused(merge(5, "a", Some("zzz"), 3).unwrap_err());
    assert_eq!((dump(&a, "t"), changes(&a)), before);
    a.execute_batch("DROP TRIGGER writes; SELECT crsql_commit_alter('t');").unwrap();
    assert_eq!(one::<String>(&a, "SELECT a FROM t WHERE id = 5"), "in a bracket");
}

/// crsql_internal_sync_bit() (cr-sqlite's name) is 1 inside the app's triggers that a merge
/// fires and 0 for local writes, so an app trigger that derives data (a counter, a copy) can
/// skip merges: the origin's derived writes arrive as changes of their own, and replicas agree.
/// Run on merges too, such a trigger wrote the same row unrecorded: n read 1 on the origin and
/// 2 on the peer, for good (such a merge is now refused: the test above). Setting the bit (cr-sqlite's way to stop recording) is refused.
#[test]
fn app_triggers_can_skip_merges_with_the_sync_bit() {
    let replica = || {
        let c = mem();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, n INTEGER DEFAULT 0); SELECT crsql_as_crr('t');
             CREATE TABLE seen(bit INTEGER);
             CREATE TRIGGER bits AFTER UPDATE OF a ON t BEGIN INSERT INTO seen VALUES (crsql_internal_sync_bit()); END;
             CREATE TRIGGER bump AFTER UPDATE OF a ON t WHEN crsql_internal_sync_bit() = 0 BEGIN
               UPDATE t SET n = n + 1 WHERE id = NEW.id;
             END;",
        )
        .unwrap();
        c
    };
    let (a, b) = (replica(), replica());
    a.execute_batch("INSERT INTO t(id, a) VALUES (1, 'x')").unwrap();
    apply(&b, &changes(&a)).unwrap();
    a.execute_batch("UPDATE t SET a = 'y' WHERE id = 1").unwrap();
    apply(&b, &changes_where(&a, "WHERE db_version > 1")).unwrap();
    assert_eq!(dump(&a, "t"), dump(&b, "t"));
    assert_eq!(one::<i64>(&b, "SELECT n FROM t"), 1);
    assert_eq!(one::<String>(&a, "SELECT group_concat(bit) FROM seen"), "0");
    assert_eq!(one::<String>(&b, "SELECT group_concat(bit) FROM seen"), "1");
    assert_eq!(one::<i64>(&a, "SELECT crsql_internal_sync_bit()"), 0);
    let e = err(&a, "SELECT crsql_internal_sync_bit(1)");
    assert!(e.contains("setting the sync bit is not supported"), "{e}");
}

/// A TEMP table with a CRR's name shadows it for unqualified SQL; the extension's statements
/// name the main schema, so merges, the feed's values and crsql_as_crr's triggers still reach
/// the CRR. Until 2026-12-05 a merge wrote the TEMP table (and the feed read it back): the CRR
/// never got the value its clock recorded.
#[test]
fn a_temp_table_of_the_same_name_is_not_written_by_merges() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); CREATE TEMP TABLE t(id INTEGER PRIMARY KEY, a TEXT);
         SELECT crsql_as_crr('t');",
    )
    .unwrap();
    c.execute("INSERT INTO crsql_changes VALUES ('t', X'010901', 'a', 'merged', 1, 1, ?1, 1, 0)", [vec![7u8; 16]]).unwrap();
    c.execute_batch("INSERT INTO main.t VALUES (2, 'local')").unwrap();
    let main: Vec<(i64, String)> = {
        let mut s = c.prepare("SELECT id, a FROM main.t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(main, vec![(1, "merged".to_string()), (2, "local".to_string())]);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM temp.t"), 0);
    let vals: Vec<V> = changes(&c).into_iter().map(|x| x.val).collect();
    assert_eq!(vals, vec![V::Text("merged".into()), V::Text("local".into())]);
}

/// Generated columns are computed on every replica: not tracked, never in the feed, and a
/// change that names one is refused as a schema mismatch that says why (until 2026-12-05 it
/// said the table had no such column). Adding one in an alter bracket changes nothing synced.
#[test]
fn generated_columns_are_computed_on_each_replica_and_never_merged() {
    let replica = || {
        let c = mem();
        c.execute_batch(
            "CREATE TABLE g(id INTEGER PRIMARY KEY NOT NULL, a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, \
                            c INTEGER AS (a + 1) STORED, d TEXT); SELECT crsql_as_crr('g');",
        )
        .unwrap();
        c
    };
    let (a, b) = (replica(), replica());
    a.execute_batch("INSERT INTO g(id, a, d) VALUES (1, 5, 'x'), (2, 7, 'y'); UPDATE g SET a = 6 WHERE id = 1;").unwrap();
    let cids: Vec<String> = changes(&a).into_iter().map(|c| c.cid).collect();
    let mut sorted = cids.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "a", "d", "d"], "only the ordinary columns are tracked: {cids:?}");
    sync(&a, &b);
    assert_eq!(dump(&b, "g"), dump(&a, "g"));
    assert_eq!(one::<String>(&b, "SELECT group_concat(b || '/' || c) FROM (SELECT b, c FROM g ORDER BY id)"), "12/7,14/8");
    let before = (dump(&b, "g"), changes(&b));
    for col in ["b", "C"] {
        let e = b
            .execute("INSERT INTO crsql_changes VALUES ('g', crsql_pack_columns(1), ?1, 99, 1 << 40, 1, ?2, 1, 0)", rusqlite::params![col, vec![9u8; 16]])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("column \"{col}\" of table \"g\" is generated")), "{e}");
        assert_eq!((dump(&b, "g"), changes(&b)), before);
    }
    let e = b.execute("INSERT INTO crsql_changes VALUES ('g', crsql_pack_columns(1), 'zz', 99, 1 << 40, 1, ?1, 1, 0)", [vec![9u8; 16]]).unwrap_err();
    assert!(e.to_string().contains("table \"g\" has no column \"zz\" (schema mismatch)"), "{e}");
    for r in [&a, &b] {
        r.execute_batch("SELECT crsql_begin_alter('g'); ALTER TABLE g ADD COLUMN e INTEGER AS (a * 10) VIRTUAL; SELECT crsql_commit_alter('g');").unwrap();
    }
    a.execute_batch("INSERT INTO g(id, a) VALUES (3, 1)").unwrap();
    sync(&a, &b);
    assert_eq!(dump(&b, "g"), dump(&a, "g"));
    assert_eq!(one::<i64>(&b, "SELECT e FROM g WHERE id = 3"), 10);
}

/// A change of this replica's own site id with a version past every version it made or merged
/// was made by another database with the same site id: this replica before the backup it was
/// restored from, or a copy of its file that crr_new_site_id did not make a replica of its
/// own. Transports keep their progress by site id, so the two would lose each other's
/// changes at peers for good; the change is refused, saying so, and after crr_new_site_id on
/// the refusing database it merges. (Until 2026-12-05 it merged silently.) Its own changes
/// echoed back, and lamport mode, where versions count writes, are not affected.
#[test]
fn a_change_of_this_replicas_own_site_that_it_never_made_is_refused() {
    for lamport in [false, true] {
        let dir = tmpdir(&format!("own-site-{lamport}"));
        let a = open(dir.join("a.db").to_str().unwrap());
        at(&a, 1_000);
        if lamport {
            a.execute_batch("SELECT crsql_config_set('clock', 'lamport')").unwrap();
        }
        a.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
        let backup = dir.join("backup.db");
        a.execute("VACUUM INTO ?1", [backup.to_str().unwrap()]).unwrap();
        at(&a, 2_000);
        a.execute_batch("UPDATE t SET a = 'later' WHERE id = 1; INSERT INTO t VALUES (2, 'y');").unwrap();
        apply(&a, &changes(&a)).unwrap();
        let restored = open(backup.to_str().unwrap());
        at(&restored, 3_000);
        let before = (dump(&restored, "t"), changes(&restored));
        let merged = apply(&restored, &changes(&a));
        if lamport {
            merged.unwrap();
            continue;
        }
        let e = merged.unwrap_err().to_string();
        assert!(e.contains("change from this replica's own site id") && e.contains("SELECT crr_new_site_id()"), "{e}");
        assert_eq!((dump(&restored, "t"), changes(&restored)), before);
        restored.execute_batch("SELECT crr_new_site_id()").unwrap();
        apply(&restored, &changes(&a)).unwrap();
        assert_eq!(dump(&restored, "t"), dump(&a, "t"));
    }
}

/// The replica whose changes the stopped merges below merge, and its feed: inserts, an update,
/// a delete, in two tables.
fn stopped_merge_source() -> (Connection, Vec<Change>) {
    let src = replica();
    at(&src, 2_000_000);
    src.execute_batch(
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3); INSERT INTO s VALUES (1, 10);
         UPDATE t SET a = 'b2' WHERE id = 2; DELETE FROM t WHERE id = 3;",
    )
    .unwrap();
    let feed = changes(&src);
    (src, feed)
}

/// A merge interrupted anywhere (by sqlite3_interrupt, or a progress handler that gives up), in
/// one INSERT ... SELECT or change by change in a transaction that reads the feed before it
/// commits, leaves the replica as it was, and
/// the same changes merged again converge. An interrupt (or a full disk, or no memory) in one
/// of a merge's own statements makes SQLite roll back the whole transaction at once; until
/// 2026-12-05 a held clock record whose write it stopped was put back afterwards, and the next
/// merge of that row built on a clock naming a site the rollback had removed ("corrupt clock
/// data: unknown site ordinal 1"), or a read of crsql_changes wrote it without its row.
#[test]
fn a_merge_interrupted_anywhere_leaves_the_replica_as_it_was() {
    let (src, feed) = stopped_merge_source();
    let replica_to_merge_into = || {
        let dst = replica();
        at(&dst, 1_000_000);
        dst.execute_batch("INSERT INTO t VALUES (1, 'own', 0)").unwrap();
        stage_feed(&dst, &feed);
        dst
    };
    let state = |c: &Connection| (dump(c, "t"), dump(c, "s"), portable(c), one::<i64>(c, "SELECT crsql_db_version()"));
    for (per_change, how) in [false, true].into_iter().flat_map(|p| How::ALL.map(|h| (p, h))) {
        let merge = |dst: &Connection| -> rusqlite::Result<()> {
            if !per_change {
                return dst.execute_batch("INSERT INTO crsql_changes SELECT * FROM temp.feed");
            }
            merge_reading_before_commit(dst, &feed)
        };
        // The steps a whole merge takes, counted by a handler that never stops it.
        let steps = {
            let dst = replica_to_merge_into();
            let (r, steps) = Stop::count(&dst, || merge(&dst));
            r.unwrap();
            steps
        };
        assert!(steps > 500, "{steps} steps");
        let (mut dst, mut stopped) = (replica_to_merge_into(), 0);
        let mut before = state(&dst);
        for at_step in 0..steps {
            let r = Stop::at(&dst, at_step, how, || merge(&dst));
            let whole = match r {
                Ok(()) => true,
                Err(e) => {
                    stopped += 1;
                    let what = format!("stopped at step {at_step} of {steps} (per change: {per_change}, {how:?})");
                    let interrupted = e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted);
                    assert!(interrupted && e.to_string().contains("interrupt"), "{what}: {e}");
                    // Where SQLite rolled back only the statement, the app rolls back the rest.
                    if !dst.is_autocommit() {
                        dst.execute_batch("ROLLBACK").unwrap();
                    }
                    let now = state(&dst);
                    if now != before {
                        // SQLite asks the progress handler once more after a statement has
                        // ended, and reports an interrupt even though the statement (or the
                        // COMMIT) went through, for plain tables too: the merge is then whole,
                        // and merging the same changes again changes nothing.
                        merge(&dst).unwrap();
                        assert_eq!(state(&dst), now, "{what}: a part committed");
                    }
                    now != before
                }
            };
            if whole {
                converge(&src, &dst, "t");
                assert_eq!(dump(&dst, "s"), dump(&src, "s"));
                dst = replica_to_merge_into();
                before = state(&dst);
            }
        }
        assert!(stopped > steps / 2, "the merge was stopped at {stopped} of its {steps} steps only");
    }
}

/// An app that, after a merge change by change was stopped at any step (a progress handler that
/// gave up once), commits what its transaction still holds (retrying the COMMIT, say): what it
/// committed, a part of the merge, is consistent, table and feed, and merging the same changes
/// again converges with the source.
#[test]
fn a_stopped_merge_committed_anyway_leaves_a_consistent_replica() {
    let (src, feed) = stopped_merge_source();
    let replica_to_merge_into = || {
        let dst = replica();
        at(&dst, 1_000_000);
        dst.execute_batch("INSERT INTO t VALUES (1, 'own', 0), (4, 'own', 4);").unwrap();
        dst
    };
    let merge = |dst: &Connection| merge_reading_before_commit(dst, &feed);
    let steps = {
        let dst = replica_to_merge_into();
        let (r, steps) = Stop::count(&dst, || merge(&dst));
        r.unwrap();
        steps
    };
    let mut committed_after = 0;
    for at_step in 0..steps {
        let dst = replica_to_merge_into();
        let r = Stop::at(&dst, at_step, How::GivesUpOnce, || merge(&dst));
        if r.is_err() && !dst.is_autocommit() {
            committed_after += 1;
            dst.execute_batch("COMMIT").unwrap_or_else(|e| panic!("stopped at step {at_step} of {steps}: the COMMIT after failed: {e}"));
        }
        let feed_now = portable(&dst);
        assert_eq!(feed_now, portable(&dst), "stopped at step {at_step}: the feed reads differently twice");
        converge(&src, &dst, "t");
        assert_eq!(dump(&dst, "s"), dump(&src, "s"), "stopped at step {at_step}");
    }
    assert!(committed_after > 100, "only {committed_after} of {steps} stops left the transaction open");
}

/// A merge or crsql_as_crr that fills the disk (a page limit, PRAGMA max_page_count, just above
/// the database's size, raised a page at a time) leaves the replica's table, feed and schema
/// as they were, and goes through once there is room: SQLite rolls back the whole transaction
/// then, as for an interrupt.
#[test]
fn a_merge_or_as_crr_that_fills_the_disk_leaves_nothing_behind() {
    let src = replica();
    src.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO t SELECT i, printf('%.*c', 200, 'x'), i FROM n;
         UPDATE t SET a = 'changed' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0;",
    )
    .unwrap();
    let feed = changes(&src);
    let state = |c: &Connection| {
        let schema: String = one(c, "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema ORDER BY name)");
        (dump(c, "t"), portable(c), one::<i64>(c, "SELECT crsql_db_version()"), schema)
    };
    let work: [Work; 2] = [
        ("merge", &|c: &Connection| apply(c, &feed)),
        ("crsql_as_crr", &|c: &Connection| c.execute_batch("SELECT crsql_as_crr('u')")),
    ];
    for (what, f) in work {
        let mut full = 0;
        for extra in 0.. {
            let c = replica();
            c.execute_batch(
                "CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v TEXT NOT NULL DEFAULT '' CHECK (length(v) < 9999)) STRICT;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) INSERT INTO u SELECT i, 'y' FROM n;",
            )
            .unwrap();
            let pages: i64 = one(&c, "PRAGMA page_count");
            c.execute_batch(&format!("PRAGMA max_page_count = {}", pages + extra)).unwrap();
            let before = state(&c);
            match f(&c) {
                Ok(()) => break,
                Err(e) => {
                    assert!(e.to_string().contains("full"), "{what} with {extra} pages to spare: {e}");
                    full += 1;
                    if !c.is_autocommit() {
                        c.execute_batch("ROLLBACK").unwrap();
                    }
                    assert_eq!(state(&c), before, "{what} with {extra} pages to spare left something behind");
                    c.execute_batch("PRAGMA max_page_count = 1000000").unwrap();
                    f(&c).unwrap_or_else(|e| panic!("{what} again, with room: {e}"));
                }
            }
        }
        assert!(full > 5, "{what} filled the disk {full} times only");
    }
}

/// A conflict clause on INSERT INTO crsql_changes changes nothing: whatever it says (OR IGNORE,
/// OR REPLACE, OR FAIL, OR ABORT, OR ROLLBACK), a change refused by its table (here a STRICT
/// column's type) makes the statement apply none of its changes, and leaves the transaction
/// open with what earlier statements merged.
#[test]
fn conflict_clauses_on_crsql_changes_change_nothing() {
    let site = vec![7u8; 16];
    for mode in ["", "OR IGNORE", "OR REPLACE", "OR FAIL", "OR ABORT", "OR ROLLBACK"] {
        let c = replica();
        c.execute_batch("BEGIN").unwrap();
        c.execute("INSERT INTO crsql_changes VALUES ('s', crsql_pack_columns(9), 'n', 9, 70000, 1, ?1, 1, 0)", [&site]).unwrap();
        let sql = format!(
            "INSERT {mode} INTO crsql_changes VALUES ('s', crsql_pack_columns(1), 'n', 1, 70000, 1, ?1, 1, 0), \
             ('s', crsql_pack_columns(2), 'n', 'not a number', 70000, 1, ?1, 1, 1), ('s', crsql_pack_columns(3), 'n', 3, 70000, 1, ?1, 1, 2)"
        );
        let e = c.execute(&sql, [&site]).expect_err(mode);
        assert!(e.to_string().contains("cannot store TEXT value in INTEGER column"), "{mode}: {e}");
        assert!(!c.is_autocommit(), "{mode}: the transaction was rolled back");
        assert_eq!(dump(&c, "s"), vec![vec![V::Integer(9), V::Integer(9)]], "{mode}");
        c.execute_batch("COMMIT").unwrap();
        assert_eq!(changes(&c).len(), 1, "{mode}");
    }
}

/// A table of `n` columns besides its key `id`, of every affinity in turn, made a CRR.
fn wide_replica(n: usize) -> Connection {
    let types = ["INTEGER", "REAL", "TEXT", "NUMERIC", "BLOB", ""];
    let cols: Vec<String> = (0..n).map(|i| format!("c{i} {}", types[i % types.len()])).collect();
    let c = mem();
    c.execute_batch(&format!("CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, {}); SELECT crsql_as_crr('w');", cols.join(", "))).unwrap();
    // Columns an index names keep a statement of their own.
    c.execute_batch("CREATE INDEX w_c1 ON w(c1); CREATE INDEX w_c2 ON w(lower(c2)) WHERE c8 IS NOT NULL;").unwrap();
    c
}

/// Literals that each affinity stores in its own way (5.0 as 5 in INTEGER, 5 as 5.0 in REAL,
/// '05' as 5 in NUMERIC, 5 as '5' in TEXT, ...), for row `r`, column `i`.
fn wide_value(r: usize, i: usize) -> &'static str {
    ["5", "5.0", "'5'", "'05'", "X'05'", "NULL", "'t'", "2.5", "' 7'", "9007199254740993", "-0.0", "''"][(r * 7 + i) % 12]
}

/// A merge into a CRR of at least tables::WIDE_WRITES tracked columns writes each cell through
/// one statement for the table, each column set to itself but the merged one: the statements
/// a connection keeps stay few (a statement per column kept 440 MiB on a CRR of 1,000
/// columns, and a full row's first merge took 2.7 s to prepare them), and every column keeps
/// the value it stored, in its storage class, whatever its affinity.
#[test]
fn a_wide_crr_merges_through_one_statement_and_keeps_every_stored_value() {
    let n = 200;
    let (a, b) = (wide_replica(n), wide_replica(n));
    let keys_before: i64 = one(&b, "SELECT crr_debug_statement_keys()");
    for r in 0..12 {
        let vals: Vec<&str> = (0..n).map(|i| wide_value(r, i)).collect();
        a.execute_batch(&format!("INSERT INTO w VALUES ({r}, {})", vals.join(", "))).unwrap();
    }
    converge(&a, &b, "w");
    let keys: i64 = one(&b, "SELECT crr_debug_statement_keys()");
    assert!(keys < keys_before + 30, "merging rows of {n} columns made {} kinds of statement", keys - keys_before);
    // Single cells written on both sides, then merged into rows whose other cells came from
    // merges (and are set to themselves): each replica must hold what the other does.
    for (c, shift) in [(&a, 1), (&b, 2)] {
        for r in 0..12 {
            let i = (r * 13 + shift * 29) % n;
            c.execute_batch(&format!("UPDATE w SET c{i} = {} WHERE id = {r}", wide_value(r + shift, i))).unwrap();
        }
    }
    let rows = converge(&a, &b, "w");
    assert_eq!(one::<String>(&b, "PRAGMA integrity_check"), "ok");
    let reals = rows.iter().flatten().filter(|v| matches!(v, V::Real(_))).count();
    let texts = rows.iter().flatten().filter(|v| matches!(v, V::Text(_))).count();
    assert!(reals > 100 && texts > 100, "{reals} REAL and {texts} TEXT values: the literals should make many of both");
    // A narrow replica (a statement per column) that merges the same feed holds the same.
    let narrow = wide_replica(n);
    narrow.execute_batch(&format!("SELECT crr_set_wide_writes_for_testing({})", n + 1)).unwrap();
    sync(&a, &narrow);
    assert_eq!(dump(&narrow, "w"), rows);
    assert_eq!(portable(&narrow), portable(&a));
    assert!(one::<i64>(&narrow, "SELECT crr_debug_statement_keys()") > n as i64, "the narrow replica took the wide path");
}

/// A merge that makes a row of a wide CRR writes it through one statement for the table,
/// whichever column's cell makes it, every other column given its default's value: a stream
/// of rows whose first cells were of varying columns (a read filtered by cid) kept a
/// statement per column, each as large as the table (99 MiB at 1,000 columns). The rows hold
/// what a statement per column, which leaves the other columns out, makes: for every way a
/// default can be written, in every affinity.
#[test]
fn a_wide_crr_makes_rows_through_one_statement_whatever_their_first_cell() {
    let defaults = [
        "", "DEFAULT NULL", "DEFAULT 5", "DEFAULT -5.0", "DEFAULT '05'", "DEFAULT x'05'", "DEFAULT abc", "DEFAULT \"q\"\"d\"", "DEFAULT [br]",
        "DEFAULT `bt`", "DEFAULT true", "DEFAULT FALSE", "DEFAULT (abs(-3) || 'x')", "DEFAULT (typeof(CURRENT_DATE))", "DEFAULT - 'abc'",
        "DEFAULT 0x10", "DEFAULT .5",
    ];
    let types = ["INTEGER", "REAL", "TEXT", "NUMERIC", "BLOB", ""];
    // Every type with every default.
    let n = types.len() * defaults.len();
    let cols: Vec<String> = (0..n).map(|i| format!("c{i} {} {}", types[i % types.len()], defaults[i % defaults.len()])).collect();
    let schema = format!(
        "CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, {}, c_check TEXT CHECK (c_check IS NULL OR c_check != 'no'), \
         g GENERATED ALWAYS AS (coalesce(c2, 0) + 1) VIRTUAL); CREATE INDEX w_c1 ON w(c1); SELECT crsql_as_crr('w');",
        cols.join(", ")
    );
    let replica = || {
        let c = mem();
        c.execute_batch(&schema).unwrap();
        c
    };
    let (src, a, per_column) = (replica(), replica(), replica());
    per_column.execute_batch(&format!("SELECT crr_set_wide_writes_for_testing({})", n + 2)).unwrap();
    let first = |r: usize| format!("c{}", (r * 7) % n);
    let rows_made = 40;
    for r in 0..rows_made {
        src.execute_batch(&format!("INSERT INTO w(id, {}) VALUES ({r}, {})", first(r), wide_value(r, r))).unwrap();
    }
    // Each row arrives as one cell, of another column each time.
    let feed: Vec<Change> = (0..rows_made).flat_map(|r| changes_where(&src, &format!("WHERE pk = crsql_pack_columns({r}) AND cid = '{}'", first(r)))).collect();
    assert_eq!(feed.len(), rows_made);
    let keys_before: i64 = one(&a, "SELECT crr_debug_statement_keys()");
    for c in [&a, &per_column] {
        apply(c, &feed).unwrap();
    }
    let made = dump(&a, "w");
    assert_eq!(made.len(), rows_made);
    assert_eq!(made, dump(&per_column, "w"), "rows made by the shared statement hold what leaving columns out gives");
    let keys: i64 = one(&a, "SELECT crr_debug_statement_keys()");
    assert!(keys < keys_before + 20, "making {rows_made} rows, each from a cell of another column, took {} kinds of statement", keys - keys_before);
    assert!(one::<i64>(&per_column, "SELECT crr_debug_statement_keys()") > keys_before + rows_made as i64, "the reference took the shared statement");
    // The defaults are the source's too, and the rest of the rows converge.
    assert_eq!(made, dump(&src, "w"));
    sync(&src, &a);
    sync(&src, &per_column);
    assert_eq!(dump(&a, "w"), dump(&src, "w"));
    assert_eq!(portable(&a), portable(&per_column));
    assert_eq!(one::<String>(&a, "PRAGMA integrity_check"), "ok");
    // (c6: INTEGER DEFAULT abc, the string 'abc'; c7: REAL DEFAULT "q""d".)
    let defaulted = (0..rows_made).filter(|&r| first(r) != "c6" && first(r) != "c7").count();
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM w WHERE c6 = 'abc' AND c7 = 'q\"d'"), defaulted as i64);
}

/// The one statement of a wide CRR's merges names every column, so it would fire the app's
/// triggers on `UPDATE OF` some columns for every cell: a table with such a trigger, in main
/// or TEMP (made after the wide statement was), keeps a statement per column. Its other
/// UPDATE triggers fire as they do for a statement per column, once per merged cell.
#[test]
fn app_triggers_on_update_of_columns_fire_for_their_columns_only_on_a_wide_crr() {
    let n = 80;
    let src = wide_replica(n);
    let row = |r: usize| format!("INSERT INTO w VALUES ({r}, {})", (0..n).map(|i| wide_value(r, i)).collect::<Vec<_>>().join(", "));
    // Each receiver logs its triggers' firings; `per_column` merges through a statement per
    // column whatever the width (the reference).
    let receivers: Vec<Connection> = (0..5).map(|_| wide_replica(n)).collect();
    receivers[0].execute_batch(&format!("SELECT crr_set_wide_writes_for_testing({})", n + 1)).unwrap();
    for c in &receivers {
        c.execute_batch(
            "CREATE TABLE log(what TEXT, id INTEGER);
             CREATE TRIGGER any_update AFTER UPDATE ON w BEGIN INSERT INTO log VALUES ('any', NEW.id); END;
             CREATE TRIGGER of_c3 AFTER UPDATE OF c3 ON w BEGIN INSERT INTO log VALUES ('c3', NEW.id); END;",
        )
        .unwrap();
    }
    // The third has no trigger of its own on UPDATE OF until a TEMP one is made below; the
    // fourth's is named as the extension's triggers are (as another CRR's would be), and the
    // fifth's with this CRR's table id but a kind the extension does not make.
    receivers[2].execute_batch("DROP TRIGGER of_c3").unwrap();
    receivers[3]
        .execute_batch("DROP TRIGGER of_c3; CREATE TRIGGER crr_999_update AFTER UPDATE OF c3 ON w BEGIN INSERT INTO log VALUES ('c3', NEW.id); END;")
        .unwrap();
    let tid: i64 = one(&receivers[4], "SELECT tid FROM crr_tables WHERE name = 'w'");
    receivers[4]
        .execute_batch(&format!("DROP TRIGGER of_c3; CREATE TRIGGER crr_{tid}_c3_log AFTER UPDATE OF c3 ON w BEGIN INSERT INTO log VALUES ('c3', NEW.id); END;"))
        .unwrap();
    let log = |c: &Connection| rows(c, "SELECT what, id, count(*) FROM log GROUP BY what, id ORDER BY what, id");
    let step = |sql: &str| {
        src.execute_batch(sql).unwrap();
        for c in &receivers {
            sync(&src, c);
        }
        assert_eq!(log(&receivers[1]), log(&receivers[0]), "after {sql}");
        assert_eq!(log(&receivers[3]), log(&receivers[0]), "after {sql}, with the trigger named like the extension's");
        assert_eq!(log(&receivers[4]), log(&receivers[0]), "after {sql}, with the trigger named like this CRR's");
        assert_eq!(dump(&receivers[1], "w"), dump(&src, "w"));
        assert_eq!(dump(&receivers[2], "w"), dump(&src, "w"));
    };
    step(&row(1));
    step(&row(2));
    // Wide statements are kept now; a TEMP trigger on UPDATE OF comes after them.
    receivers[2].execute_batch("CREATE TEMP TRIGGER of_c5 AFTER UPDATE OF c5 ON main.w BEGIN INSERT INTO log VALUES ('c5', NEW.id); END;").unwrap();
    step("UPDATE w SET c3 = 'x' WHERE id = 1");
    step("UPDATE w SET c4 = 'y' WHERE id = 1");
    step("UPDATE w SET c5 = 'z', c6 = 'z' WHERE id = 2");
    step(&row(3));
    // c3 merged by an UPDATE: at each row's making (its first cell, c0, makes it) and once more.
    let by_id = |c: &Connection, what: &str| rows(c, &format!("SELECT id, count(*) FROM log WHERE what = '{what}' GROUP BY id ORDER BY id"));
    let counts = |v: &[(i64, i64)]| v.iter().map(|&(id, k)| vec![V::Integer(id), V::Integer(k)]).collect::<Vec<_>>();
    assert_eq!(by_id(&receivers[1], "c3"), counts(&[(1, 2), (2, 1), (3, 1)]), "of_c3 fires for merges of c3 only");
    assert_eq!(by_id(&receivers[2], "c5"), counts(&[(2, 1), (3, 1)]), "the TEMP trigger of c5 fires for merges of c5 only");
    let any: i64 = one(&receivers[2], "SELECT count(*) FROM log WHERE what = 'any'");
    assert_eq!(any, one::<i64>(&receivers[0], "SELECT count(*) FROM log WHERE what = 'any'"), "any_update fires once per merged cell");
}

/// SQLite checks a CHECK constraint at an UPDATE only if the statement sets a column it names.
/// A column a CHECK names keeps a statement of its own on a wide CRR, out of the one the
/// other columns share: so a merge of another column does not check it, as on a narrow CRR
/// (a row stored while ignore_check_constraints was on would otherwise refuse every merge).
#[test]
fn a_merge_into_a_wide_crr_checks_only_the_checks_of_its_column() {
    let cols: Vec<String> = (0..80).map(|i| if i == 3 { "c3 INTEGER CHECK (c3 < 100)".to_string() } else { format!("c{i}") }).collect();
    let schema = format!("CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, {}); SELECT crsql_as_crr('w');", cols.join(", "));
    let (a, b) = pair(&schema);
    a.execute_batch("INSERT INTO w(id, c3, c10) VALUES (1, 5, 'x')").unwrap();
    sync(&a, &b);
    b.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE w SET c3 = 500; PRAGMA ignore_check_constraints = OFF;").unwrap();
    a.execute_batch("UPDATE w SET c10 = 'y', c20 = 'z'").unwrap();
    sync(&a, &b);
    assert_eq!(rows(&b, "SELECT c3, c10, c20 FROM w"), vec![vec![V::Integer(500), V::Text("y".into()), V::Text("z".into())]]);
    // A merge of the column itself is checked, as ever.
    a.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE w SET c3 = 900; PRAGMA ignore_check_constraints = OFF;").unwrap();
    let e = apply(&b, &changes_where(&a, "WHERE cid = 'c3'")).unwrap_err();
    assert!(e.to_string().contains("CHECK constraint failed"), "{e}");
}

/// The statements merges keep are bounded by the schema, not by its tables' width squared
/// times their number: merging rows into 100 CRRs of 20 columns kept 28.7 MiB of statements
/// on the connection until 2026-12-06 (a statement per column, each as large as its table
/// and holding its triggers). Now the widest tables of such a schema are written through one
/// statement for the table (`shared_writes::shared_writes`), and the statements stay within a
/// quarter of the cache's bound; a replica made to keep a statement per column
/// (crr_set_wide_writes_for_testing) holds the same tables and feed, and far more statements.
#[test]
fn merging_into_many_crrs_keeps_the_statements_within_bounds() {
    let cols: Vec<String> = (0..20).map(|i| format!("c{i} TEXT")).collect();
    let schema: String = (0..100).map(|t| format!("CREATE TABLE t{t}(id INTEGER PRIMARY KEY NOT NULL, {}); SELECT crsql_as_crr('t{t}');", cols.join(", "))).collect();
    let (a, b) = pair(&schema);
    let per_column = mem();
    per_column.execute_batch(&format!("SELECT crr_set_wide_writes_for_testing(1000); {schema}")).unwrap();
    for r in 0..3 {
        let values: Vec<String> = (0..20).map(|i| format!("'v{r}-{i}'")).collect();
        let tx: String = (0..100).map(|t| format!("INSERT INTO t{t} VALUES ({r}, {});", values.join(", "))).collect();
        a.execute_batch(&format!("BEGIN; {tx} COMMIT;")).unwrap();
    }
    a.execute_batch(&(0..100).map(|t| format!("UPDATE t{t} SET c3 = 'x', c17 = 'y' WHERE id = 1;")).collect::<String>()).unwrap();
    sync(&a, &b);
    sync(&a, &per_column);
    let held = |c: &Connection| one::<i64>(c, "SELECT crr_debug_statement_bytes()");
    assert!(held(&b) <= 8 << 20, "{} bytes of statements", held(&b));
    assert!(held(&per_column) > 20 << 20, "the scenario keeps {} bytes a statement per column", held(&per_column));
    for t in 0..100 {
        let table = format!("t{t}");
        assert_eq!(dump(&b, &table), dump(&a, &table));
        assert_eq!(dump(&per_column, &table), dump(&a, &table));
    }
    assert_eq!(portable(&b), portable(&a));
    assert_eq!(portable(&per_column), portable(&a));
}

/// The cache finalizes the least recently used statements past its bound, and they are
/// prepared again at their next use. With a bound of 0 (crr_set_statement_budget_for_testing)
/// every statement but the last used is finalized after each use, nested ones (a local write
/// whose trigger writes another CRR, a merge that fires it) included: local writes, merges and reads
/// give what they give with the default bound, and the cache holds one statement at most.
#[test]
fn statements_finalized_past_the_cache_bound_are_prepared_again() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');
                  CREATE TABLE log(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT 0); SELECT crsql_as_crr('log');
                  CREATE TRIGGER count AFTER UPDATE ON t WHEN crsql_internal_sync_bit() = 0 BEGIN INSERT INTO log(id, n) VALUES (NEW.id, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1; END;";
    let (a, b) = pair(schema);
    let (c, d) = pair(schema);
    for x in [&c, &d] {
        x.execute_batch("SELECT crr_set_statement_budget_for_testing(0)").unwrap();
    }
    for x in [&a, &c] {
        x.execute_batch("SELECT crr_set_wall_clock_for_testing(1000000)").unwrap();
        x.execute_batch(
            "INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2), (3, 'z', 3); UPDATE t SET a = 'w' WHERE id < 3; DELETE FROM t WHERE id = 3;
             BEGIN; UPDATE t SET b = b + 10; INSERT OR REPLACE INTO t VALUES (4, 'v', 4); COMMIT;",
        )
        .unwrap();
    }
    for x in [&b, &d] {
        x.execute_batch("SELECT crr_set_wall_clock_for_testing(2000000); INSERT INTO t VALUES (2, 'mine', 0), (5, 'own', 5);").unwrap();
    }
    let (ab, cd) = (converge(&a, &b, "t"), converge(&c, &d, "t"));
    assert_eq!(cd, ab);
    for table in ["t", "log"] {
        assert_eq!(dump(&d, table), dump(&b, table), "{table}");
    }
    let stable = |x: &Connection| changes(x).into_iter().map(|ch| (ch.table, ch.pk, ch.cid, ch.val, ch.col_version, ch.cl)).collect::<Vec<_>>();
    assert_eq!(stable(&c), stable(&a));
    let held = |x: &Connection| one::<i64>(x, "SELECT crr_debug_statement_bytes()");
    // (The one statement kept is the last used, whichever it is: under 64 KiB.)
    assert!(held(&d) < 64 << 10 && held(&b) > held(&d), "{} and {}", held(&d), held(&b));
    d.execute_batch("SELECT crr_set_statement_budget_for_testing(NULL)").unwrap();
    let before = held(&d);
    d.execute_batch("UPDATE t SET a = 'again'").unwrap();
    sync(&c, &d);
    assert!(held(&d) > 2 * before, "the default bound keeps them: {} then {}", before, held(&d));
}

/// A TEMP trigger on `UPDATE OF` columns is looked for again after a rollback: the TEMP
/// schema's cookie comes back with it, and a TEMP trigger made afterwards can bring it to the
/// value a merge in the rolled-back transaction saw without one. Merges of other columns
/// must not fire it (they go through a statement per column once it exists).
#[test]
fn a_temp_update_of_trigger_made_after_a_rollback_fires_for_its_column_only() {
    let n = 70;
    let (src, dst) = (wide_replica(n), wide_replica(n));
    dst.execute_batch("CREATE TEMP TABLE log(what, id)").unwrap();
    let cells = |id: i64| (0..n).map(|i| format!("'v{id}-{i}'")).collect::<Vec<_>>().join(", ");
    src.execute_batch(&format!("INSERT INTO w VALUES (1, {}); INSERT INTO w VALUES (2, {});", cells(1), cells(2))).unwrap();
    let cookie = |c: &Connection| one::<i64>(c, "PRAGMA temp.schema_version");
    let before = cookie(&dst);
    // Rolled back: a merge that saw the TEMP schema one step on, without the trigger.
    dst.execute_batch("BEGIN; CREATE TEMP TABLE scratch(x);").unwrap();
    for ch in changes_where(&src, "WHERE pk = crsql_pack_columns(1)") {
        apply_one(&dst, &ch).unwrap();
    }
    dst.execute_batch("ROLLBACK").unwrap();
    assert_eq!(cookie(&dst), before);
    dst.execute_batch("CREATE TEMP TRIGGER of_c5 AFTER UPDATE OF c5 ON main.w BEGIN INSERT INTO log VALUES ('c5', NEW.id); END;").unwrap();
    assert_eq!(cookie(&dst), before + 1, "the TEMP schema's cookie is where the rolled-back merge saw it");
    // (Each row's c5 cell, merged by an UPDATE once a first cell made the row, fires it.)
    sync(&src, &dst);
    dst.execute_batch("DELETE FROM log").unwrap();
    src.execute_batch("UPDATE w SET c3 = 'x', c4 = 'y' WHERE id = 1; UPDATE w SET c5 = 'z' WHERE id = 2;").unwrap();
    sync(&src, &dst);
    assert_eq!(dump(&dst, "w"), dump(&src, "w"));
    assert_eq!(rows(&dst, "SELECT id, count(*) FROM log GROUP BY id ORDER BY id"), vec![vec![V::Integer(2), V::Integer(1)]], "of_c5 fires for the merge of c5 only");
}

/// A transport that stages the feed in a table made from it (`CREATE TABLE outbox AS SELECT *
/// FROM crsql_changes`) and merges from there keeps every value as it is: `val` has no
/// declared type, so the staging table's column has no affinity. Declared ANY (cr-sqlite's
/// declaration), it had NUMERIC affinity: the outbox held '1' as 1, 7.0 as 7, ' 5' as 5 and
/// '1e5' as 100000, the peer merged those, and the two held different values for good (until
/// 2026-12-06). A comparison with `val` reads it as an ordinary untyped column does.
#[test]
fn a_feed_staged_in_a_table_made_from_it_keeps_its_values() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, v, s TEXT, n NUMERIC); SELECT crsql_as_crr('t');";
    let (a, b) = pair(schema);
    a.execute_batch("INSERT INTO t VALUES (1, '1', '2', '3.5'), (2, 7.0, 'x', 4), (3, ' 5', '007', 'y'), (4, '1e5', X'01', 2.5);").unwrap();
    a.execute_batch("CREATE TABLE outbox AS SELECT * FROM crsql_changes").unwrap();
    let staged = rows(&a, "SELECT val, typeof(val) FROM outbox ORDER BY db_version, seq");
    let feed = rows(&a, "SELECT val, typeof(val) FROM crsql_changes ORDER BY db_version, seq");
    assert_eq!(staged, feed, "the outbox holds the feed's values");
    let outbox = changes_from(&a, "SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM outbox");
    apply(&b, &outbox).unwrap();
    let typed = "SELECT id, v, typeof(v), s, typeof(s), n, typeof(n) FROM t ORDER BY id";
    assert_eq!(rows(&b, typed), rows(&a, typed));
    assert_eq!(portable(&b), portable(&a));
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE val = '1'"), 1, "the text '1' only");
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE val = 7"), 1, "the REAL 7.0 only");
}

/// A transport that cannot keep a value's class (JSON has one kind of number, and no bytes)
/// can carry `crsql_pack_columns(val)` instead, the key codec's exact bytes, and merge
/// `(SELECT cell FROM crsql_unpack_columns(?))`, as README's *Using it from code* says: the
/// peer then holds the same tables and feed, REAL 7.0 and INTEGER 7, '007' and 7, -0.0, large
/// integers and blobs included.
#[test]
fn values_packed_for_a_transport_merge_as_they_were() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, v, s TEXT, r REAL); SELECT crsql_as_crr('t');";
    let (a, b) = pair(schema);
    a.execute_batch(
        "INSERT INTO t VALUES (1, 7.0, '007', 7), (2, 7, '7.0', 2.5), (3, -0.0, '', -0.0), (4, 9007199254740993, X'00ff', NULL),
         (5, '1e5', NULL, 1e300), (6, NULL, 'x', 0.1 + 0.2), (7, X'', 'é', -7);",
    )
    .unwrap();
    // A change with its value packed: the nine columns, val as crsql_pack_columns(val).
    type Packed = (String, Vec<u8>, String, Vec<u8>, i64, i64, Vec<u8>, i64, i64);
    let packed: Vec<Packed> = {
        let mut s = a.prepare("SELECT \"table\", pk, cid, crsql_pack_columns(val), col_version, db_version, site_id, cl, seq FROM crsql_changes").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    {
        let tx = b.unchecked_transaction().unwrap();
        let mut s = tx.prepare("INSERT INTO crsql_changes VALUES (?1, ?2, ?3, (SELECT cell FROM crsql_unpack_columns(?4)), ?5, ?6, ?7, ?8, ?9)").unwrap();
        for p in &packed {
            s.execute(rusqlite::params![p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8]).unwrap();
        }
        drop(s);
        tx.commit().unwrap();
    }
    let typed = "SELECT id, quote(v), typeof(v), quote(s), typeof(s), quote(r), typeof(r) FROM t ORDER BY id";
    assert_eq!(rows(&b, typed), rows(&a, typed));
    assert_eq!(portable(&b), portable(&a));
}
