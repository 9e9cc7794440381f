//! Table lifecycle: ALTER through crsql_begin_alter/commit_alter, DROP TABLE, crsql_as_table and
//! back, new site ids for copied files, Lamport mode.

mod common;
use common::*;
use rusqlite::types::Value as V;
use rusqlite::Connection;

fn replica() -> Connection {
    let c = mem();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');").unwrap();
    c
}

/// After `a`'s whole feed reaches `b` and a new replica, both hold `a`'s table `t`, of `rows` rows.
fn a_replica_and_a_new_one_hold_t_as(a: &Connection, b: &Connection, rows: usize) {
    sync_since(a, b, 0).unwrap();
    let c = replica();
    sync_since(a, &c, 0).unwrap();
    assert_eq!(dump(a, "t").len(), rows);
    for r in [b, &c] {
        assert_eq!(dump(r, "t"), dump(a, "t"));
    }
}

/// A replica with a second CRR, `u`, of `t`'s shape.
fn replica_with_u() -> Connection {
    let c = replica();
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('u');").unwrap();
    c
}

fn sync_since(from: &Connection, to: &Connection, since: i64) -> rusqlite::Result<()> {
    apply(to, &changes_where(from, &format!("WHERE db_version > {since}")))
}

/// Two replicas that both hold what `writes` wrote on the first, and the first's db_version
/// after it (what the second has seen).
fn synced_pair(writes: &str) -> (Connection, Connection, i64) {
    let (a, b) = (replica(), replica());
    a.execute_batch(writes).unwrap();
    sync_since(&a, &b, 0).unwrap();
    let seen: i64 = one(&a, "SELECT crsql_db_version()");
    (a, b, seen)
}

fn portable(c: &Connection) -> Vec<String> {
    let mut v: Vec<String> = changes(c).into_iter().map(|x| format!("{} {:?} {} {:?} {} {:?} {}", x.table, x.pk, x.cid, x.val, x.col_version, x.site_id, x.cl)).collect();
    v.sort();
    v
}

fn cids(c: &Connection) -> Vec<String> {
    let mut v: Vec<String> = changes(c).into_iter().map(|x| x.cid).collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn add_column_with_default_tracks_the_new_column_and_only_differing_values_travel() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1),(2,'y',2);").unwrap();
    let before = changes(&c).len();
    c.execute_batch(
        "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d INTEGER DEFAULT 7; UPDATE t SET d = 9 WHERE id = 2; SELECT crsql_commit_alter('t');",
    )
    .unwrap();
    let added = changes_where(&c, "WHERE cid = 'd'");
    assert_eq!(added.len(), 1, "only the row whose value differs from the default: {added:?}");
    assert_eq!(added[0].val, V::Integer(9));
    assert_eq!(changes(&c).len(), before + 1);
    c.execute("UPDATE t SET d = 10 WHERE id = 1", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'd'").len(), 2, "the new column is tracked");
    c.execute("INSERT INTO t(id) VALUES (3)", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE pk = crsql_pack_columns(3)").len(), 3);
}

/// `DEFAULT name` is the string 'name' in SQLite (quoted or not; bare TRUE and FALSE are 1
/// and 0), and a parenthesized default loses its parentheses in the schema's record of it:
/// the commit compares each row with the default's value, not with a column of that name.
/// Until 2026-12-06 `DEFAULT x` failed the commit (`no such column: x`), and `DEFAULT a`
/// compared with column a: a row backfilled from `a` went unrecorded, and one left at the
/// default was sent.
#[test]
fn an_added_column_whose_default_is_a_name_records_the_rows_that_differ_from_it() {
    for (default, value) in [
        ("x", V::Text("x".into())),
        ("a", V::Text("a".into())),
        ("\"a\"", V::Text("a".into())),
        ("[b]", V::Text("b".into())),
        ("true", V::Integer(1)),
        ("- 'abc'", V::Integer(0)),
        ("-1", V::Integer(-1)),
        ("NULL", V::Null),
    ] {
        let c = replica();
        c.execute_batch("INSERT INTO t VALUES (1, 'a', 1), (2, 'y', 2), (3, 'z', 3);").unwrap();
        c.execute_batch(&format!("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d DEFAULT {default}; UPDATE t SET d = a WHERE id = 1; UPDATE t SET d = b WHERE id = 3;"))
            .unwrap();
        assert_eq!(rows(&c, "SELECT d FROM t WHERE id = 2"), vec![vec![value.clone()]], "DEFAULT {default}");
        c.execute_batch("SELECT crsql_commit_alter('t');").unwrap_or_else(|e| panic!("DEFAULT {default}: {e}"));
        let ids = rows(&c, "SELECT id, d FROM t ORDER BY id");
        let differ: Vec<Vec<V>> = ids.into_iter().filter(|r| r[1] != value).map(|r| vec![r[0].clone()]).collect();
        let sent = rows(&c, "SELECT id FROM t WHERE crsql_pack_columns(id) IN (SELECT pk FROM crsql_changes WHERE cid = 'd') ORDER BY id");
        assert_eq!(sent, differ, "DEFAULT {default}: the rows whose value differs from the default are the changes");
    }
}

/// A row whose added column differs from the default byte for byte is a change, whatever the
/// column's collation, and so is one in another storage class where the column keeps it (no
/// affinity): a peer that runs the same migration holds the default. Until 2026-12-06 'X'
/// under NOCASE DEFAULT 'x', and 5.0 under an untyped DEFAULT 5, went unrecorded.
#[test]
fn an_added_column_sends_values_that_differ_from_its_default_in_bytes_or_class() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1, 'p', 1), (2, 'q', 2), (3, 'r', 3);");
    let migration = "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT COLLATE NOCASE DEFAULT 'x'; \
                     ALTER TABLE t ADD COLUMN e DEFAULT 5; ALTER TABLE t ADD COLUMN f REAL DEFAULT 1;";
    a.execute_batch(&format!(
        "{migration} UPDATE t SET d = 'X', e = 5.0, f = 1 WHERE id = 1; UPDATE t SET d = 'x', e = '5' WHERE id = 3; SELECT crsql_commit_alter('t');"
    ))
    .unwrap();
    let sent = rows(&a, "SELECT t.id, c.cid FROM crsql_changes AS c JOIN t ON c.pk = crsql_pack_columns(t.id) WHERE c.cid IN ('d', 'e', 'f') ORDER BY 1, 2");
    let want = |v: &[(i64, &str)]| v.iter().map(|(id, c)| vec![V::Integer(*id), V::Text(c.to_string())]).collect::<Vec<_>>();
    assert_eq!(sent, want(&[(1, "d"), (1, "e"), (3, "e")]));
    b.execute_batch(&format!("{migration} SELECT crsql_commit_alter('t');")).unwrap();
    sync_since(&a, &b, seen).unwrap();
    let typed = "SELECT id, d, e, typeof(e), f, typeof(f) FROM t ORDER BY id";
    assert_eq!(rows(&b, typed), rows(&a, typed));
}

/// After ADD COLUMN, crsql_commit_alter sends the added column's cells of exactly the rows
/// that hold something else than the default (byte for byte and in storage class), whatever
/// literal the DEFAULT is and whatever the column's declared type and collation, and every
/// replica then holds the same table: one that had the rows before it ran the same migration,
/// one that makes them by merge after it, and one that ran it as a 12-step rebuild. For some
/// literals SQLite gives the rows a table had when the column was added another value than a
/// row inserted later (`DEFAULT 5.` reads '5.' in a TEXT column's old rows and is '5.0' in an
/// inserted one, `DEFAULT 1.0` the integer 1 and the REAL 1.0 in an untyped one, `DEFAULT
/// true` the integer 1 and the text '1' in a TEXT one): the commit gives those old rows the
/// inserted row's value, and does not send them (their cells would carry the commit's clock
/// and could beat a peer's later write). Until 2026-12-06 they kept the old rows' value, which
/// a replica that made the row by merge, or rebuilt the table, did not hold; before that the
/// commit compared with the inserted row's value under the column's affinity and collation:
/// it left rows set to 'X' (NOCASE 'x') or 5.0 (untyped 5) unsent, and sent old rows at '5.'
/// (TEXT 5.). A REAL default in a column of TEXT affinity (`DEFAULT 5.` among them) is
/// refused since 2026-12-06: SQLite versions write the REAL as text differently.
#[test]
fn an_added_column_sends_exactly_the_rows_that_differ_from_the_default_and_replicas_agree() {
    let forms = [
        "1", "-1", "+1", "0x10", "0x7fffffffffffffff", "99999999999999999999", "1e308", "1e309", ".5", "5.", "-1.50", "1.0", "1.5e-3", "'x'",
        "'X'", "'x '", "'it''s'", "''", "x''", "X'00FF'", "NULL", "true", "FALSE", "abc", "\"q\"", "[b r]", "`t`", "- 'abc'", "-'5'",
        "+'5x'", "'5'", "'5.0'", "' 5'",
    ];
    // The literal a row is set to: a name default is the string of the name.
    let as_value = |f: &str| match f {
        "abc" => "'abc'".to_string(),
        "\"q\"" => "'q'".to_string(),
        "[b r]" => "'b r'".to_string(),
        "`t`" => "'t'".to_string(),
        _ => f.to_string(),
    };
    let types = ["INTEGER", "REAL", "TEXT", "NUMERIC", "BLOB", "", "VARCHAR(5)", "TEXT COLLATE NOCASE", "COLLATE RTRIM"];
    let typed = "SELECT id, quote(d), typeof(d) FROM t ORDER BY id";
    let cell = |c: &Connection, id: i64| one::<String>(c, &format!("SELECT quote(d) || ' ' || typeof(d) FROM t WHERE id = {id}"));
    let (mut split, mut refused) = (0, 0);
    for f in forms {
        for ty in types {
            let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1, 'p', 1), (2, 'q', 2), (4, 's', 4);");
            let (c, e) = (replica(), replica());
            sync_since(&a, &e, 0).unwrap();
            let migration = format!("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d {ty} DEFAULT {f};");
            let v = as_value(f);
            // Row 1 stays at the default, row 2 is set to the literal, row 3 is inserted
            // without the column, row 4 is set to something else.
            a.execute_batch(&format!(
                "{migration} UPDATE t SET d = {v} WHERE id = 2; UPDATE t SET d = 'other' WHERE id = 4; INSERT INTO t(id, a) VALUES (3, 'r');"
            ))
            .unwrap_or_else(|e| panic!("{ty} DEFAULT {f}: {e}"));
            let (old_row, inserted) = (cell(&a, 1), cell(&a, 3));
            split += usize::from(inserted != old_row);
            // A REAL default in a column of TEXT affinity is refused: SQLite versions write
            // the REAL as text differently, and rows at the default are never sent.
            if ["TEXT", "VARCHAR(5)", "TEXT COLLATE NOCASE"].contains(&ty) && one::<String>(&a, &format!("SELECT typeof({v})")) == "real" {
                let e = err(&a, "SELECT crsql_commit_alter('t')");
                assert!(e.contains("column \"d\" has TEXT affinity and DEFAULT") && e.contains("write the default as a string"), "{ty} DEFAULT {f}: {e}");
                refused += 1;
                continue;
            }
            let others = "SELECT count(*), max(db_version) FROM crsql_changes WHERE cid != 'd'";
            let before = rows(&a, others);
            a.execute_batch("SELECT crsql_commit_alter('t');").unwrap();
            assert_eq!(rows(&a, others), before, "{ty} DEFAULT {f}: the commit records no other column");
            assert_eq!(cell(&a, 1), inserted, "{ty} DEFAULT {f}: an old row at the default holds what an inserted row gets");
            let want: Vec<i64> = (2..=4).filter(|&id| cell(&a, id) != inserted).collect();
            let sent = rows(&a, "SELECT t.id FROM crsql_changes AS x JOIN t ON x.pk = crsql_pack_columns(t.id) WHERE x.cid = 'd' ORDER BY 1");
            assert_eq!(sent, want.iter().map(|&id| vec![V::Integer(id)]).collect::<Vec<_>>(), "{ty} DEFAULT {f}: {:?}", rows(&a, typed));
            for r in [&b, &c] {
                r.execute_batch(&format!("{migration} SELECT crsql_commit_alter('t');")).unwrap();
            }
            e.execute_batch(&format!(
                "SELECT crsql_begin_alter('t'); CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, d {ty} DEFAULT {f}); \
                 INSERT INTO t_new(id, a, b) SELECT id, a, b FROM t; DROP TABLE t; ALTER TABLE t_new RENAME TO t; SELECT crsql_commit_alter('t');"
            ))
            .unwrap();
            sync_since(&a, &b, seen).unwrap();
            sync_since(&a, &c, 0).unwrap();
            sync_since(&a, &e, seen).unwrap();
            let want = rows(&a, typed);
            for (r, which) in [(&b, "had the rows"), (&c, "makes them by merge"), (&e, "rebuilt the table")] {
                assert_eq!(rows(r, typed), want, "{ty} DEFAULT {f}: the peer that {which}");
            }
        }
    }
    assert!(split > 10, "only {split} defaults read otherwise in old rows than in inserted ones");
    // (The REAL forms: 99999999999999999999, 1e308, 1e309, .5, 5., -1.50, 1.0, 1.5e-3.)
    assert_eq!(refused, 8 * 3, "REAL defaults refused in TEXT columns");
}

/// Slots are never reused, so a CRR that has had 32,767 tracked columns over its life (the
/// most a clock record holds) can track no more: commit_alter refuses the next one by name,
/// where it took it and wrote records that no read could decode. The table's history is set
/// by hand to one slot short of the end (32,765 alters would take minutes).
#[test]
fn a_crr_that_has_used_every_slot_refuses_another_column_by_name() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1, 'x', 1); UPDATE crr_columns SET slot = 32765 WHERE name = 'b';").unwrap();
    // The last slot is taken and works: its cell is recorded and read back.
    c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN last TEXT DEFAULT ''; SELECT crsql_commit_alter('t');").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT slot FROM crr_columns WHERE name = 'last'"), 32766);
    c.execute_batch("UPDATE t SET last = 'filled' WHERE id = 1").unwrap();
    // Read with the clock scan's values, and looked up by key: either selected a column per
    // slot, dropped ones too, and failed past SQLite's 2,000 ("too many columns in result set").
    assert_eq!(one::<String>(&c, "SELECT val FROM crsql_changes WHERE cid = 'last'"), "filled");
    assert_eq!(one::<String>(&c, "SELECT val FROM crsql_changes WHERE pk = crsql_pack_columns(1) AND cid = 'last'"), "filled");
    // A peer's cell of that column merges into its slot.
    let peer = replica();
    peer.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN last TEXT DEFAULT ''; SELECT crsql_commit_alter('t'); INSERT INTO t VALUES (2, 'p', 2, 'from peer');").unwrap();
    apply(&c, &changes(&peer)).unwrap();
    assert_eq!(one::<String>(&c, "SELECT last FROM t WHERE id = 2"), "from peer");
    assert_eq!(one::<String>(&c, "SELECT val FROM crsql_changes WHERE pk = crsql_pack_columns(2) AND cid = 'last'"), "from peer");
    // One more is refused, naming the table and the column; the app rolls its ALTER back.
    c.execute_batch("BEGIN; SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN more TEXT DEFAULT '';").unwrap();
    let e = err(&c, "SELECT crsql_commit_alter('t')");
    assert!(e.contains("table \"t\": column \"more\" cannot be tracked: the CRR has had 32767 tracked columns over its life"), "{e}");
    c.execute_batch("ROLLBACK").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_columns WHERE name = 'more'"), 0);
    c.execute_batch("UPDATE t SET last = 'again', a = 'y' WHERE id = 1").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE val IN ('again', 'y')"), 2);
}

/// A column of TEXT affinity added with a REAL default (`DEFAULT 0.000986`, or a rebuild's
/// `DEFAULT (0.1 + 0.2)`) is refused at the commit, which names the column and the string to
/// write instead: SQLite stores the REAL as text, and its versions write it differently (3.40
/// '0.000986', 3.54 '0.0009859999999999999'), while rows left at an added column's default are
/// never sent, so replicas on different versions held different text for good (until
/// 2026-12-06). The bracket stays open: the column added again with the string goes through,
/// and replicas agree. A REAL default in a column that keeps REALs, and a table made a CRR with
/// such a column (its rows' cells are all sent), are taken.
#[test]
fn a_real_default_of_an_added_text_column_is_refused_and_a_string_is_taken() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1, 'p', 1), (2, 'q', 2);");
    a.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT DEFAULT 0.000986;").unwrap();
    let e = err(&a, "SELECT crsql_commit_alter('t')");
    assert!(e.contains("table \"t\": column \"d\" has TEXT affinity and DEFAULT 0.000986, a REAL"), "{e}");
    assert!(e.ends_with("write the default as a string (DEFAULT '0.000986')"), "{e}");
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE cid = 'd'"), 0);
    // Still in the bracket: the column is made again with the string.
    a.execute_batch("ALTER TABLE t DROP COLUMN d; ALTER TABLE t ADD COLUMN d TEXT DEFAULT '0.000986'; SELECT crsql_commit_alter('t');").unwrap();
    b.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT DEFAULT '0.000986'; SELECT crsql_commit_alter('t');").unwrap();
    a.execute("INSERT INTO t(id, a) VALUES (3, 'r')", []).unwrap();
    sync_since(&a, &b, seen).unwrap();
    assert_eq!(dump(&b, "t"), dump(&a, "t"));
    assert_eq!(one::<String>(&b, "SELECT group_concat(d) FROM t"), "0.000986,0.000986,0.000986");
    // A rebuild's expression, in a column of another TEXT type.
    a.execute_batch(
        "SELECT crsql_begin_alter('t'); CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, d TEXT DEFAULT '0.000986', \
         e VARCHAR(9) DEFAULT (0.1 + 0.2)); INSERT INTO t_new(id, a, b, d) SELECT id, a, b, d FROM t; DROP TABLE t; ALTER TABLE t_new RENAME TO t;",
    )
    .unwrap();
    let e = err(&a, "SELECT crsql_commit_alter('t')");
    assert!(e.contains("column \"e\" has TEXT affinity and DEFAULT 0.1 + 0.2, a REAL"), "{e}");
    a.execute_batch("ROLLBACK").ok();
    // Columns that keep a REAL as it is.
    let c = replica();
    c.execute_batch(
        "INSERT INTO t VALUES (1, 'p', 1); SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN r REAL DEFAULT 0.000986; \
         ALTER TABLE t ADD COLUMN n DEFAULT 0.000986; ALTER TABLE t ADD COLUMN i NUMERIC DEFAULT 0.000986; SELECT crsql_commit_alter('t');",
    )
    .unwrap();
    assert_eq!(one::<String>(&c, "SELECT typeof(r) || typeof(n) || typeof(i) FROM t"), "realrealreal");
    // A table made a CRR with such a column: every row's cells are sent.
    c.execute_batch("CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, d TEXT DEFAULT 0.000986); INSERT INTO s(id) VALUES (1); SELECT crsql_as_crr('s');").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE \"table\" = 's' AND cid = 'd'"), 1);
}

// That crsql_commit_alter gives old rows the inserted row's default without firing the app's
// triggers in main is checked in tests/shell/tour.sql: on the bundled SQLite (3.46 when this was written) the only
// defaults ADD COLUMN gives old rows otherwise than inserted ones are REALs in TEXT columns,
// which the commit refuses; SQLite 3.40 also gives an untyped `DEFAULT 1.0` the integer 1.

/// Runs a 12-step rebuild of `t(id, a, b)` in a bracket: the new table has `more` after
/// its columns, and `copied` are the columns the rows keep.
fn rebuild_with(c: &Connection, more: &str, copied: &str) {
    c.execute_batch(&format!(
        "SELECT crsql_begin_alter('t'); CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER{more}); \
         INSERT INTO t_new({copied}) SELECT {copied} FROM t; DROP TABLE t; ALTER TABLE t_new RENAME TO t; SELECT crsql_commit_alter('t');"
    ))
    .unwrap();
}

/// A rebuild that changes a column's default (`DEFAULT 'new'` to `DEFAULT 'draft'`) records
/// the cells no write gave a value, which hold the old default: a replica that makes those
/// rows by merge afterwards gives them the new one. They travel at col_version 0 (below every
/// write), so a peer's write of the cell, received before or after, wins over them. Until
/// 2026-12-06 nothing was recorded, and that replica held 'draft' where the others held 'new'.
#[test]
fn a_default_a_rebuild_changes_reaches_replicas_that_make_the_rows_by_merge() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1, 'p', 1), (2, 'q', 2), (3, 'r', 3);");
    let add = "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN s TEXT DEFAULT 'new'; SELECT crsql_commit_alter('t');";
    for r in [&a, &b] {
        r.execute_batch(add).unwrap();
    }
    // A peer's write of row 2's cell, made before the origin's rebuild; row 3's, after.
    b.execute("UPDATE t SET s = 'b wrote' WHERE id = 2", []).unwrap();
    rebuild_with(&a, ", s TEXT DEFAULT 'draft'", "id, a, b, s");
    let unwritten = changes_where(&a, "WHERE cid = 's'");
    assert_eq!(unwritten.len(), 3, "{unwritten:?}");
    assert!(unwritten.iter().all(|c| c.col_version == 0 && c.val == V::Text("new".into())), "{unwritten:?}");
    b.execute("UPDATE t SET s = 'b later' WHERE id = 3", []).unwrap();
    rebuild_with(&b, ", s TEXT DEFAULT 'draft'", "id, a, b, s");
    // A replica made after the migration, with the table as it is now.
    let c = mem();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, s TEXT DEFAULT 'draft'); SELECT crsql_as_crr('t');").unwrap();
    sync_since(&a, &c, 0).unwrap();
    assert_eq!(one::<String>(&c, "SELECT s FROM t WHERE id = 1"), "new", "the old default, not the replica's own");
    sync_since(&b, &c, 0).unwrap();
    sync_since(&b, &a, seen).unwrap();
    sync_since(&a, &b, 0).unwrap();
    let typed = "SELECT id, s FROM t ORDER BY id";
    let want = vec![
        vec![V::Integer(1), V::Text("new".into())],
        vec![V::Integer(2), V::Text("b wrote".into())],
        vec![V::Integer(3), V::Text("b later".into())],
    ];
    for r in [&a, &b, &c] {
        assert_eq!(rows(r, typed), want);
    }
    assert_eq!(portable(&a), portable(&b));
    assert_eq!(portable(&a), portable(&c));
    // A rebuild that keeps the default records nothing: a merge makes the same value; nor
    // does one that adds a column without a default (NULL, as a merge makes it).
    let before = changes(&a).len();
    let top: i64 = one(&a, "SELECT crsql_db_version()");
    rebuild_with(&a, ", s TEXT DEFAULT 'draft'", "id, a, b, s");
    a.execute_batch("INSERT INTO t(id, a) VALUES (4, 'd'); SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN e TEXT DEFAULT 'x'; SELECT crsql_commit_alter('t');").unwrap();
    rebuild_with(&a, ", s TEXT DEFAULT 'draft', e TEXT DEFAULT 'x', f TEXT", "id, a, b, s, e");
    assert_eq!(changes_where(&a, &format!("WHERE db_version > {top} AND col_version = 0")).len(), 0, "{:?}", changes(&a));
    assert_eq!(changes(&a).len(), before + 3, "row 4's cells");
}

/// A rebuild that adds a column whose default is an expression SQLite evaluates as the rows
/// are copied (`CURRENT_TIMESTAMP`; here an app function that answers differently on each
/// replica, as the time does from one second to the next) records the rows' cells, at
/// col_version 0: replicas that rebuilt at different times, and one that makes the rows by
/// merge, end with the same values (the greatest). Until 2026-12-06 each kept its own.
#[test]
fn an_expression_default_a_rebuild_evaluates_converges() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1, 'p', 1), (2, 'q', 2);");
    let c = replica();
    for (r, now) in [(&a, 100), (&b, 200), (&c, 300)] {
        // Innocuous, as a DEFAULT's function must be where the schema is not trusted (CRR_STRICT).
        r.create_scalar_function("app_now", 0, rusqlite::functions::FunctionFlags::SQLITE_UTF8 | rusqlite::functions::FunctionFlags::SQLITE_INNOCUOUS, move |_| Ok(now)).unwrap();
    }
    for r in [&a, &b, &c] {
        rebuild_with(r, ", d INTEGER DEFAULT (app_now())", "id, a, b");
    }
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE cid = 'd' AND col_version = 0"), 2);
    sync_since(&a, &b, seen).unwrap();
    sync_since(&b, &a, seen).unwrap();
    sync_since(&a, &c, 0).unwrap();
    let typed = "SELECT id, d FROM t ORDER BY id";
    let want = vec![vec![V::Integer(1), V::Integer(200)], vec![V::Integer(2), V::Integer(200)]];
    for r in [&a, &b, &c] {
        assert_eq!(rows(r, typed), want);
    }
    assert_eq!(portable(&a), portable(&b));
    assert_eq!(portable(&a), portable(&c));
}

/// A table whose default is a name can be a CRR when its defaults must be checked (a CHECK,
/// a NOT NULL): until 2026-12-06 the check pasted the name and failed with `no such column`.
#[test]
fn a_table_whose_default_is_a_name_becomes_a_crr() {
    let c = mem();
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT NOT NULL DEFAULT abc, b TEXT CHECK (b IS NULL OR b != 'c') DEFAULT \"c2\"); SELECT crsql_as_crr('u');")
        .unwrap();
    let e = err(&c, "CREATE TABLE v(id INTEGER PRIMARY KEY NOT NULL, b TEXT CHECK (b != 'c') DEFAULT c); SELECT crsql_as_crr('v');");
    assert!(e.contains("CHECK"), "a default of the name c is the string 'c', which the CHECK refuses: {e}");
}

/// The version of cell `cid` of row `id`, and the site that wrote it.
fn cell(c: &Connection, id: i64, cid: &str) -> (i64, Vec<u8>) {
    let found = changes_where(c, &format!("WHERE pk = crsql_pack_columns({id}) AND cid = '{cid}'"));
    assert_eq!(found.len(), 1, "row {id} column {cid}: {found:?}");
    (found[0].col_version, found[0].site_id.clone())
}

#[test]
fn updates_in_an_alter_bracket_are_recorded_as_anywhere_else() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1,'x',1),(2,'y',2),(3,'z',3),(4,'w',4);");
    let (x1, y2, w4) = (cell(&a, 1, "b"), cell(&a, 2, "a"), cell(&a, 4, "a"));
    a.execute_batch(
        "SELECT crsql_begin_alter('t'); UPDATE t SET a = 'w' WHERE id = 4; UPDATE t SET b = 20 WHERE id = 2; UPDATE t SET id = 9 WHERE id = 3;",
    )
    .unwrap();
    // A peer's write merged in the bracket stays the peer's.
    b.execute("UPDATE t SET b = 40 WHERE id = 4", []).unwrap();
    sync_since(&b, &a, seen).unwrap();
    a.execute_batch(
        "ALTER TABLE t ADD COLUMN d TEXT; ALTER TABLE t RENAME COLUMN a TO title;
         UPDATE t SET title = 'renamed' WHERE id = 1;
         SAVEPOINT s; UPDATE t SET b = 99 WHERE id = 2; ROLLBACK TO s; RELEASE s;
         SELECT crsql_commit_alter('t');",
    )
    .unwrap();
    assert_eq!(cell(&a, 1, "b"), x1, "a column the update left alone keeps its version");
    assert_eq!(cell(&a, 2, "title"), y2, "so does one of a row whose other column changed");
    assert_eq!(cell(&a, 4, "title"), w4, "an update to the same value is no write");
    assert!(cell(&a, 1, "title").0 > x1.0, "an update after a rename is the renamed column's");
    assert!(cell(&a, 2, "b").0 > x1.0);
    assert_eq!(one::<i64>(&a, "SELECT b FROM t WHERE id = 2"), 20);
    assert_eq!(cell(&a, 4, "b").1, cell(&b, 4, "b").1, "the merged cell keeps its writer");
    let moved = changes_where(&a, "WHERE pk = crsql_pack_columns(3)");
    assert_eq!((moved.len(), moved[0].cid.as_str(), moved[0].cl), (1, "-1", 2), "a changed key deletes the old one: {moved:?}");
    assert_eq!(changes_where(&a, "WHERE pk = crsql_pack_columns(9)").len(), 2, "and inserts the new one");
    b.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT; ALTER TABLE t RENAME COLUMN a TO title; SELECT crsql_commit_alter('t');")
        .unwrap();
    sync_since(&a, &b, seen).unwrap();
    sync_since(&b, &a, 0).unwrap();
    assert_eq!(dump(&a, "t"), dump(&b, "t"));
    assert_eq!(portable(&a), portable(&b));
    assert_eq!(dump(&b, "t").len(), 4);
}

#[test]
fn alter_table_outside_a_bracket_stops_reads_and_merges_until_a_bracket_records_it() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1,'x',1),(2,'y',2);");
    // Added without a bracket: no trigger records the new column.
    a.execute_batch("ALTER TABLE t ADD COLUMN d TEXT; UPDATE t SET d = 'lost?' WHERE id = 1;").unwrap();
    let hint = "changed outside crsql_begin_alter / crsql_commit_alter: its column \"d\" is not tracked; \
                SELECT crsql_begin_alter('t'); SELECT crsql_commit_alter('t'); records its new shape";
    for sql in ["SELECT count(*) FROM crsql_changes", "SELECT crsql_as_crr('t')"] {
        let e = err(&a, sql);
        assert!(e.contains(hint), "{sql}: {e}");
    }
    b.execute("UPDATE t SET b = 20 WHERE id = 2", []).unwrap();
    let before = (dump(&a, "t"), one::<i64>(&a, "SELECT crsql_db_version()"));
    let e = sync_since(&b, &a, seen).unwrap_err().to_string();
    assert!(e.contains(hint), "{e}");
    assert_eq!((dump(&a, "t"), one::<i64>(&a, "SELECT crsql_db_version()")), before, "nothing merged");
    a.execute_batch("CREATE TABLE other(id INTEGER PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('other'); INSERT INTO other VALUES (1, 'o');")
        .unwrap();
    assert_eq!(changes_where(&a, "WHERE \"table\" = 'other'").len(), 1, "another table's feed is still read");
    // An empty bracket afterwards records the new shape, and the values written meanwhile.
    a.execute_batch("SELECT crsql_begin_alter('t'); SELECT crsql_commit_alter('t');").unwrap();
    assert_eq!(changes_where(&a, "WHERE cid = 'd'")[0].val, V::Text("lost?".into()));
    b.execute_batch(
        "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT; SELECT crsql_commit_alter('t');
         CREATE TABLE other(id INTEGER PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('other');",
    )
    .unwrap();
    sync_since(&b, &a, seen).unwrap();
    sync_since(&a, &b, seen).unwrap();
    assert_eq!(dump(&a, "t"), dump(&b, "t"));
    assert_eq!(portable(&a), portable(&b));
    // A renamed column, a renamed key column.
    a.execute("ALTER TABLE t RENAME COLUMN a TO title", []).unwrap();
    let e = err(&a, "SELECT count(*) FROM crsql_changes");
    assert!(e.contains("table \"t\" changed outside crsql_begin_alter / crsql_commit_alter: its column \"a\" is gone"), "{e}");
    a.execute("ALTER TABLE t RENAME COLUMN id TO k", []).unwrap();
    let e = err(&a, "SELECT count(*) FROM crsql_changes");
    assert!(e.contains("its key column \"id\" is gone; rename it back"), "{e}");
    a.execute_batch("ALTER TABLE t RENAME COLUMN k TO id; SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b;").unwrap();
    let e = err(&a, "SELECT count(*) FROM crsql_changes");
    assert!(e.contains("table \"t\" is between crsql_begin_alter and crsql_commit_alter, and its column \"a\" is gone"), "{e}");
    a.execute_batch("ALTER TABLE t ADD COLUMN b INTEGER; SELECT crsql_commit_alter('t');").unwrap();
    assert_eq!(cids(&a), vec!["b", "d", "title", "v"]);
}

/// A connection that did not load the extension cannot write a CRR (its triggers call the
/// extension's functions), so no write goes unrecorded; it reads, and writes other tables.
#[test]
fn a_connection_without_the_extension_writes_no_crr() {
    let dir = tmpdir("no-extension");
    let path = fresh_file(&dir, "n.db");
    let c = open(&path);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); CREATE TABLE plain(x); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');")
        .unwrap();
    let bare = Connection::open(&path).unwrap();
    for sql in ["INSERT INTO t VALUES (2, 'y')", "UPDATE t SET a = 'z'", "DELETE FROM t"] {
        let e = bare.execute_batch(sql).unwrap_err().to_string();
        assert!(e.contains("no such function: crr_internal_"), "{sql}: {e}");
    }
    assert_eq!(rows(&bare, "SELECT id, a FROM t"), vec![vec![V::Integer(1), V::Text("x".into())]]);
    bare.execute_batch("INSERT INTO plain VALUES (1)").unwrap();
    assert_eq!(changes(&c).len(), 1);
}

/// A unique index made on a CRR outside a bracket (CREATE UNIQUE INDEX needs no ALTER) is
/// refused by reads and merges as an ALTER outside one is, with the statement that drops it;
/// inside a bracket crsql_commit_alter refuses it; without it, everything goes on.
#[test]
fn a_unique_index_made_outside_a_bracket_stops_reads_and_merges_until_it_goes() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1,'x',1),(2,'y',2);");
    // CREATE UNIQUE INDEX needs no ALTER: until 2026-12-07 reads and merges went on (and an
    // INSERT OR REPLACE over another row's 'x' deleted that row unrecorded).
    a.execute_batch("CREATE UNIQUE INDEX ta ON t(a); INSERT INTO t VALUES (3,'z',3);").unwrap();
    let hint = "table \"t\" changed outside crsql_begin_alter / crsql_commit_alter: it has a UNIQUE constraint or unique index \
                (\"ta\") besides the primary key";
    let e = err(&a, "SELECT count(*) FROM crsql_changes");
    assert!(e.contains(hint) && e.ends_with("; DROP INDEX main.\"ta\""), "{e}");
    let e = err(&a, "SELECT crsql_as_crr('t')");
    assert!(e.contains("cannot be a CRR: it has a UNIQUE constraint or unique index (\"ta\")"), "{e}");
    b.execute("UPDATE t SET b = 20 WHERE id = 2", []).unwrap();
    let before = (dump(&a, "t"), one::<i64>(&a, "SELECT crsql_db_version()"));
    let e = sync_since(&b, &a, seen).unwrap_err().to_string();
    assert!(e.contains(hint), "{e}");
    assert_eq!((dump(&a, "t"), one::<i64>(&a, "SELECT crsql_db_version()")), before, "nothing merged");
    // Inside a bracket, its commit refuses the index as crsql_as_crr does.
    a.execute("DROP INDEX ta", []).unwrap();
    a.execute_batch("SELECT crsql_begin_alter('t'); CREATE UNIQUE INDEX ta ON t(a);").unwrap();
    assert!(err(&a, "SELECT crsql_commit_alter('t')").contains("cannot be a CRR: it has a UNIQUE constraint or unique index (\"ta\")"));
    // Without it (a plain index is fine), reads and merges go on, and the replicas converge.
    a.execute_batch("DROP INDEX ta; SELECT crsql_commit_alter('t'); CREATE INDEX tb ON t(b);").unwrap();
    sync_since(&b, &a, seen).unwrap();
    sync_since(&a, &b, 0).unwrap();
    assert_eq!(dump(&a, "t"), dump(&b, "t"));
    assert_eq!(portable(&a), portable(&b));
    assert_eq!(dump(&a, "t").len(), 3);
    // A UNIQUE constraint of a table rebuilt outside a bracket has no name to drop.
    b.execute_batch(
        "CREATE TABLE t2(id INTEGER PRIMARY KEY NOT NULL, a TEXT UNIQUE, b INTEGER); INSERT INTO t2 SELECT * FROM t;
         DROP TABLE t; ALTER TABLE t2 RENAME TO t;",
    )
    .unwrap();
    let e = err(&b, "SELECT count(*) FROM crsql_changes");
    assert!(e.contains("(\"sqlite_autoindex_t_1\") besides the primary key") && e.contains("rebuild the table without it"), "{e}");
}

#[test]
fn an_app_restarted_in_the_middle_of_a_migration_is_told_to_finish_it() {
    let dir = tmpdir("half_migrated");
    let path = dir.join("db").to_str().unwrap().to_string();
    let c = open(&path);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1,'x',1);")
        .unwrap();
    c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT DEFAULT 'n';").unwrap();
    drop(c);
    let c = open(&path);
    let e = err(&c, "SELECT crsql_as_crr('t')");
    assert!(e.contains("table \"t\" is between crsql_begin_alter and crsql_commit_alter: finish the alter with SELECT crsql_commit_alter('t')"), "{e}");
    c.execute_batch("UPDATE t SET a = 'y'; SELECT crsql_commit_alter('t'); SELECT crsql_as_crr('t');").unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'a'")[0].val, V::Text("y".into()), "the update in the bracket is tracked");
    assert_eq!(cids(&c), vec!["a", "b"], "d holds its default");
    c.execute("UPDATE t SET d = 'm'", []).unwrap();
    assert_eq!(cids(&c), vec!["a", "b", "d"]);
}

#[test]
fn drop_column_leaves_no_clock_data_and_rename_keeps_history() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1);").unwrap();
    let a_version = changes_where(&c, "WHERE cid = 'a'")[0].col_version;
    let raw_before: Vec<u8> = one(&c, "SELECT clock FROM crr_clock_1");
    c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b; ALTER TABLE t RENAME COLUMN a TO title; SELECT crsql_commit_alter('t');").unwrap();
    assert_eq!(cids(&c), vec!["title"]);
    let title = &changes(&c)[0];
    assert_eq!((title.col_version, &title.val), (a_version, &V::Text("x".into())), "rename keeps the cell's history");
    let raw: Vec<u8> = one(&c, "SELECT clock FROM crr_clock_1");
    c.execute("UPDATE t SET title = 'y'", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'title'")[0].val, V::Text("y".into()));
    // Record (core/row_clock.rs, format 2): version, sentinel (3 one-byte varints here), slot
    // count, then per slot a tag byte and the fields that differ from the previous entry.
    assert_eq!(raw_before[4], 2, "two slots before");
    assert_eq!(raw[4], 1, "the dropped column's entry is gone from the clock record: {raw:?}");
    assert_eq!(raw.len(), raw_before.len() - 1, "slot b's entry (one tag byte) is gone: {raw_before:?} -> {raw:?}");
}

#[test]
fn indexes_and_the_twelve_step_rebuild() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1),(2,'y',2);").unwrap();
    c.execute_batch(
        "SELECT crsql_begin_alter('t');
         CREATE INDEX t_a ON t(a);
         CREATE TABLE new_t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, z REAL DEFAULT 0.5);
         INSERT INTO new_t(id, a, b) SELECT id, a, b FROM t;
         DROP TABLE t;
         ALTER TABLE new_t RENAME TO t;
         SELECT crsql_commit_alter('t');",
    )
    .unwrap();
    assert_eq!(cids(&c), vec!["a", "b"]);
    c.execute_batch("UPDATE t SET z = 1.5 WHERE id = 1; DROP INDEX IF EXISTS t_a;").unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'z'").len(), 1);
    let e = err(&c, "SELECT crsql_begin_alter('t'); CREATE UNIQUE INDEX tu ON t(a); SELECT crsql_commit_alter('t');");
    assert!(e.contains("UNIQUE"), "{e}");
}

/// Nor can an alter add a column whose DEFAULT fails its CHECK (merges create rows with their
/// defaults).
#[test]
fn an_alter_that_adds_a_default_its_check_refuses_is_refused() {
    let c = replica();
    c.execute_batch("BEGIN").unwrap();
    let e = err(&c, "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 0 CHECK (n > 0); SELECT crsql_commit_alter('t');");
    assert!(e.contains("a row of its defaults fails CHECK (n > 0)"), "{e}");
    c.execute_batch("ROLLBACK").unwrap();
    c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 1 CHECK (n > 0); SELECT crsql_commit_alter('t');").unwrap();
}

/// A column cannot become "-1", the cid of the row sentinel in crsql_changes, by an alter
/// either: commit_alter refuses it and the alter can be rolled back.
#[test]
fn an_alter_that_names_a_column_like_the_sentinel_is_refused() {
    let c = replica();
    for alter in ["ALTER TABLE t ADD COLUMN \"-1\" TEXT", "ALTER TABLE t RENAME COLUMN a TO \"-1\""] {
        c.execute_batch("BEGIN").unwrap();
        let e = err(&c, &format!("SELECT crsql_begin_alter('t'); {alter}; SELECT crsql_commit_alter('t');"));
        assert!(e.contains("column \"-1\" has the name crsql_changes gives a row's sentinel"), "{alter}: {e}");
        c.execute_batch("ROLLBACK").unwrap();
    }
    c.execute_batch("INSERT INTO t VALUES (3, 'z', 3)").unwrap();
    assert_eq!(cids(&c), vec!["a", "b"]);
}

#[test]
fn a_rebuild_that_stops_the_key_being_the_rowid_is_refused() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1);").unwrap();
    let before = changes(&c);
    let e = err(
        &c,
        "BEGIN; SELECT crsql_begin_alter('t');
         CREATE TABLE new_t(id INT PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
         INSERT INTO new_t SELECT * FROM t; DROP TABLE t; ALTER TABLE new_t RENAME TO t;
         SELECT crsql_commit_alter('t');",
    );
    assert!(e.contains("must stay an INTEGER PRIMARY KEY"), "{e}");
    c.execute_batch("ROLLBACK").unwrap();
    assert_eq!(changes(&c), before);
    c.execute("UPDATE t SET a = 'y'", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'a'")[0].val, V::Text("y".into()));
}

#[test]
fn old_schema_replica_refuses_new_column_until_it_migrates_then_converges() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1,'x',1)");
    let migrate = "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT; SELECT crsql_commit_alter('t');";
    a.execute_batch(migrate).unwrap();
    a.execute_batch("UPDATE t SET d = 'new', a = 'x2' WHERE id = 1; INSERT INTO t VALUES (2, 'q', 2, 'dd');").unwrap();
    let before = (dump(&b, "t"), changes(&b));
    let e = sync_since(&a, &b, seen).unwrap_err().to_string();
    assert!(e.contains("table \"t\" has no column \"d\" (schema mismatch)"), "{e}");
    assert_eq!((dump(&b, "t"), changes(&b)), before, "nothing applied");
    b.execute_batch(migrate).unwrap();
    sync_since(&a, &b, seen).unwrap();
    sync_since(&b, &a, 0).unwrap();
    assert_eq!(dump(&a, "t"), dump(&b, "t"));
    assert_eq!(portable(&a), portable(&b));
}

/// A long-lived connection whose schema keeps changing (a staging table made and dropped for
/// every batch, say) keeps a statement cache of a steady size: until 2026-12-06 the
/// statements that read every clock were keyed by the schema cookie, and each schema change
/// left a few entries for good (about 5 MiB per 30,000 changes).
#[test]
fn a_connection_whose_schema_keeps_changing_keeps_a_steady_statement_cache() {
    let dir = tmpdir("steady");
    let path = dir.join("s.db").to_str().unwrap().to_string();
    let (c, other) = (open(&path), open(&path));
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t');").unwrap();
    let round = |i: i64| {
        // Another connection's commit first, so that this one reads every clock again.
        other.execute("INSERT INTO t VALUES (?1, 'other')", [2 * i]).unwrap();
        c.execute_batch("CREATE TABLE staging(x); DROP TABLE staging;").unwrap();
        c.execute("INSERT INTO t VALUES (?1, 'this')", [2 * i + 1]).unwrap();
        let _: i64 = one(&c, "SELECT crsql_db_version()");
    };
    keys_settle(&c, round, 105);
}

/// Runs `round` 5 times, then up to `rounds`: `c`'s statement cache must hold about as many
/// keys as after the first 5. (A kind first used later, a rare path, may add one or two; a
/// key per round would add one per round or more.)
fn keys_settle(c: &Connection, round: impl Fn(i64), rounds: i64) {
    for i in 0..5 {
        round(i);
    }
    let settled: i64 = one(c, "SELECT crr_debug_statement_keys()");
    for i in 5..rounds {
        round(i);
    }
    let keys: i64 = one(c, "SELECT crr_debug_statement_keys()");
    assert!(keys <= settled + 3, "{settled} kinds of statement after 5 rounds, {keys} after {rounds}");
}

/// A long-lived connection that keeps making and dropping CRRs (a CRR per session or per
/// import, say) keeps a statement cache of a steady size too: the statements of a CRR's clock
/// are keyed by its table id, and until 2026-12-06 the keys of dropped CRRs were kept for
/// good (3 for each here: 28 keys after 5 rounds, 148 after 45).
#[test]
fn a_connection_that_makes_and_drops_crrs_keeps_a_steady_statement_cache() {
    let c = replica();
    let peer = replica();
    let round = |i: i64| {
        for r in [&c, &peer] {
            r.execute_batch(&format!("CREATE TABLE s{i}(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('s{i}');")).unwrap();
        }
        c.execute_batch(&format!("INSERT INTO s{i} VALUES (1, 'x'); UPDATE s{i} SET a = 'y'; DELETE FROM s{i};")).unwrap();
        // Merges and reads use their own statements of the table's clock.
        sync_since(&c, &peer, 0).unwrap();
        sync_since(&peer, &c, 0).unwrap();
        for r in [&c, &peer] {
            r.execute_batch(&format!("DROP TABLE s{i}")).unwrap();
        }
    };
    keys_settle(&c, round, 45);
}

#[test]
fn drop_table_removes_its_clock_and_other_tables_keep_working() {
    let c = replica();
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('u'); INSERT INTO t(id) VALUES (1); INSERT INTO u VALUES (1, 'x');").unwrap();
    let v_before: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute_batch("DROP TABLE t;").unwrap();
    assert_eq!(changes(&c).iter().map(|x| x.table.as_str()).collect::<Vec<_>>(), vec!["u"], "reads skip the dropped table at once");
    c.execute("INSERT INTO u VALUES (2, 'y')", []).unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_clock_1"), 0, "the next write removes the clock data");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables"), 1);
    assert!(one::<i64>(&c, "SELECT crsql_db_version()") > v_before);
    // A new table of the same name starts fresh; the old clock table is gone for good.
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (5, 'new');").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name = 'crr_clock_1'"), 0);
    assert_eq!(changes_where(&c, "WHERE \"table\" = 't'").len(), 1);
}

/// The app's own tables named as clocks are (`crr_clock_` and more) keep their rows, and
/// table ids go past the names the app's objects hold. Until 2026-12-06 the first
/// crsql_as_crr dropped an app's table named `crr_clock_2` (taken for a clock of no CRR, left
/// by a dropped one), rows and all, and one named `crr_clock_1x` once CRR 1 was gone; and a
/// table id whose clock name an app's table held would have made every crsql_as_crr fail.
#[test]
fn an_apps_tables_named_as_clocks_keep_their_rows_and_table_ids_go_past_them() {
    let c = replica();
    let mine = ["crr_clock_2", "crr_clock_1x", "crr_clock_007", "CRR_CLOCK_3", "crr_clock_9"];
    for name in mine {
        c.execute_batch(&format!("CREATE TABLE \"{name}\"(v); INSERT INTO \"{name}\" VALUES ('kept');")).unwrap();
    }
    // An app's object of the name of a trigger or an index of table id 4.
    c.execute_batch("CREATE TABLE log(v); CREATE TRIGGER crr_4_insert AFTER INSERT ON log BEGIN SELECT 1; END; CREATE INDEX crr_clock_5_dbv ON log(v);")
        .unwrap();
    // replica() made `t` table id 1.
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('u'); CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID; SELECT crsql_as_crr('w');").unwrap();
    let ids: Vec<(i64, String)> = {
        let mut s = c.prepare("SELECT tid, name FROM crr_tables ORDER BY tid").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(ids, vec![(1, "t".to_string()), (6, "u".to_string()), (7, "w".to_string())]);
    c.execute_batch("INSERT INTO t(id) VALUES (1); INSERT INTO u VALUES (1, 'x'); INSERT INTO w VALUES ('k', 'y'); DROP TABLE t; INSERT INTO u VALUES (2, 'z');")
        .unwrap();
    // CRR 1's emptied clock is dropped by the next crsql_as_crr; the app's tables stay.
    c.execute_batch("SELECT crsql_as_crr('u')").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name = 'crr_clock_1'"), 0);
    for name in mine {
        assert_eq!(one::<String>(&c, &format!("SELECT group_concat(v) FROM \"{name}\"")), "kept", "{name}");
    }
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name IN ('crr_4_insert', 'crr_clock_5_dbv')"), 2);
    // A name no clock has is the app's: crsql_as_crr judges the table as any other (until
    // 2026-12-06 it called `crr_clock_007` one of the extension's own tables).
    let e = err(&c, "SELECT crsql_as_crr('crr_clock_007')");
    assert!(e.contains("table \"crr_clock_007\" cannot be a CRR: it has no PRIMARY KEY"), "{e}");
    let e = err(&c, "SELECT crsql_as_crr('crr_clock_9')");
    assert!(e.contains("it is one of sqlite-crr's own tables"), "{e}");
    let tables: Vec<String> = changes(&c).into_iter().map(|x| x.table).collect();
    assert_eq!(tables, vec!["u", "w", "u"]);
    let peer = replica();
    peer.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('u'); CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID; SELECT crsql_as_crr('w');").unwrap();
    apply(&peer, &changes(&c)).unwrap();
    for t in ["u", "w"] {
        assert_eq!(dump(&peer, t), dump(&c, t), "{t}");
    }
}

/// An app's virtual table named as a clock is not taken for one: an empty FTS5 table with
/// a clock's four columns stays, and one whose module the connection lacks no longer fails
/// every crsql_as_crr with `no such module` (until 2026-12-06 it did: its columns were read).
#[test]
fn an_apps_virtual_table_named_as_a_clock_is_left_alone() {
    let dir = tmpdir("vtab-clock");
    let path = dir.join("db.sqlite3");
    let _ = std::fs::remove_file(&path);
    {
        let c = open(path.to_str().unwrap());
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); CREATE VIRTUAL TABLE crr_clock_8 USING fts5(pk, cl, dbv, clock);")
            .unwrap();
        // A virtual table of a module no connection here has (as an app's own module is).
        // (Written into the schema by hand, which defensive mode refuses: CRR_STRICT=1.)
        c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false).unwrap();
        c.execute_batch(
            "PRAGMA writable_schema = ON;
             INSERT INTO sqlite_schema VALUES ('table', 'crr_clock_9', 'crr_clock_9', 0, 'CREATE VIRTUAL TABLE crr_clock_9 USING apps_module(pk, cl, dbv, clock)');
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }
    let c = open(path.to_str().unwrap());
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('t');").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name IN ('crr_clock_8', 'crr_clock_9')"), 2);
    c.execute_batch("INSERT INTO u VALUES (1, 'x'); INSERT INTO crr_clock_8 VALUES ('a', 'b', 'c', 'd');").unwrap();
    assert_eq!(changes(&c).len(), 1);
}

/// A 12-step rebuild outside a bracket (the table dropped and made again, its triggers gone
/// with it) and the crsql_as_crr an app calls at its next start: the rows it left out are
/// deletes, and those inserted meanwhile inserts, as crsql_commit_alter records after a rebuild
/// in a bracket; the replicas that had the rows, and one made from the feed, hold the table.
/// Until 2026-12-06 the lost rows' clocks stayed live and the feed sent their cells with NULL
/// values: the first replica kept the rows, the new one held them with NULLs, and the origin
/// had none.
#[test]
fn a_crr_rebuilt_outside_a_bracket_sends_the_rows_it_lost_as_deletes_at_crsql_as_crr() {
    let (a, b) = (replica(), replica());
    a.execute_batch("INSERT INTO t VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3);").unwrap();
    sync_since(&a, &b, 0).unwrap();
    a.execute_batch(
        "CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
         INSERT INTO t_new SELECT * FROM t WHERE id != 2;
         DROP TABLE t; ALTER TABLE t_new RENAME TO t;
         INSERT INTO t VALUES (4, 'four', 4);",
    )
    .unwrap();
    let v: i64 = one(&a, "SELECT crsql_db_version()");
    a.execute_batch("SELECT crsql_as_crr('t');").unwrap();
    let since: Vec<(Vec<u8>, String, i64)> = changes_where(&a, &format!("WHERE db_version > {v}")).into_iter().map(|c| (c.pk, c.cid, c.cl)).collect();
    let key = |id: i64| one::<Vec<u8>>(&a, &format!("SELECT crsql_pack_columns({id})"));
    assert_eq!(since, vec![(key(4), "a".to_string(), 1), (key(4), "b".to_string(), 1), (key(2), "-1".to_string(), 2)]);
    a_replica_and_a_new_one_hold_t_as(&a, &b, 3);
    // Called again, it finds nothing more to record.
    a.execute_batch("SELECT crsql_as_crr('t');").unwrap();
    assert_eq!(changes_where(&a, &format!("WHERE db_version > {v}")).len(), 3);
}

/// An app's index named as a clock's `dbv` index, on a table of its own, does not make a rowid
/// clock pass for one with that index. Until 2026-12-06 it did: the triggers crsql_as_crr
/// made then marked no crr_dirty bucket, and once the app dropped its index, reads of the
/// changes since V (which find a rowid clock's rows through crr_dirty) missed the rows written
/// meanwhile.
#[test]
fn an_apps_index_named_as_a_clocks_does_not_hide_changes() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1, 'one', 1); CREATE TABLE mine(x); CREATE INDEX crr_clock_1_dbv ON mine(x); SELECT crsql_as_crr('t');").unwrap();
    let v: i64 = one(&c, "SELECT crsql_db_version()");
    c.execute_batch("INSERT INTO t VALUES (1000000, 'far', 2); DROP INDEX crr_clock_1_dbv;").unwrap();
    let since: Vec<i64> = changes_where(&c, &format!("WHERE db_version > {v}")).into_iter().map(|x| x.db_version).collect();
    assert_eq!(since, vec![v + 1, v + 1]);
}

/// A CRR dropped and made again with another shape outside a bracket is taken for the same
/// CRR changed outside a bracket, and the refusal says how to start over if the table is a
/// new one; crsql_as_table and crsql_as_crr then give it a history of its own.
#[test]
fn a_crr_made_again_with_another_shape_is_told_how_to_start_over() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1, 'old', 1); DROP TABLE t; CREATE TABLE t(k TEXT PRIMARY KEY NOT NULL, v TEXT);").unwrap();
    let e = err(&c, "SELECT crsql_as_crr('t')");
    assert!(
        e.contains("its key column \"id\" is gone")
            && e.contains("(the table was dropped and made again; if it is a new table, SELECT crsql_as_table('t'); SELECT crsql_as_crr('t'); makes it a CRR with a history of its own)"),
        "{e}"
    );
    // Not where the table lost no trigger (an ALTER outside a bracket).
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('u'); ALTER TABLE u ADD COLUMN d TEXT;").unwrap();
    let e = err(&c, "SELECT crsql_as_crr('u')");
    assert!(e.contains("its column \"d\" is not tracked") && !e.contains("dropped and made again"), "{e}");
    c.execute_batch("SELECT crsql_as_table('t'); SELECT crsql_as_crr('t'); INSERT INTO t VALUES ('a', 'new');").unwrap();
    let feed: Vec<(String, V)> = changes_where(&c, "WHERE \"table\" = 't'").into_iter().map(|x| (x.cid, x.val)).collect();
    assert_eq!(feed, vec![("v".to_string(), V::Text("new".into()))]);
    // Made again with the same columns but a key that is no longer the rowid: its rowid clock
    // cannot hold the keys the table now takes (until 2026-12-06 crsql_as_crr took it, and an
    // INSERT of a text key then failed with "key must be an integer").
    c.execute_batch("DROP TABLE u; CREATE TABLE u(id INT PRIMARY KEY NOT NULL, a TEXT);").unwrap();
    let e = err(&c, "SELECT crsql_as_crr('u')");
    assert!(e.contains("its key [\"id\"] must stay an INTEGER PRIMARY KEY (the table's rowid)") && e.contains("SELECT crsql_as_table('u'); SELECT crsql_as_crr('u');"), "{e}");
    c.execute_batch("SELECT crsql_as_table('u'); SELECT crsql_as_crr('u'); INSERT INTO u VALUES ('abc', 'x');").unwrap();
    assert_eq!(changes_where(&c, "WHERE \"table\" = 'u'").len(), 1);
    // Or with the same columns keyed otherwise.
    c.execute_batch("DROP TABLE u; CREATE TABLE u(id INT NOT NULL, a TEXT NOT NULL, PRIMARY KEY (id, a));").unwrap();
    let e = err(&c, "SELECT crsql_as_crr('u')");
    assert!(e.contains("changed shape since it became a CRR") && e.contains("SELECT crsql_as_table('u'); SELECT crsql_as_crr('u');"), "{e}");
}

/// A CRR dropped and another renamed to its name (`DROP TABLE t; ALTER TABLE u RENAME TO t`):
/// the name is the renamed CRR's, and the dropped one is dropped (its clock removed by the
/// next write). Until 2026-12-06 the dropped CRR took the renamed one's table for its own
/// rebuilt table: the feed showed its clock under the name too, with that table's values and
/// NULL for the rows it lacked (a replica made from the feed held a row the origin did not),
/// and crsql_as_crr gave the table the dropped CRR's triggers beside its own.
#[test]
fn a_crr_dropped_for_another_renamed_to_its_name_stays_dropped() {
    let (a, b) = (replica_with_u(), replica_with_u());
    a.execute_batch("INSERT INTO t VALUES (1, 'in t', 1), (5, 'only in t', 5); INSERT INTO u VALUES (1, 'in u', 1), (2, 'u2', 2);").unwrap();
    sync_since(&a, &b, 0).unwrap();
    for r in [&a, &b] {
        r.execute_batch("DROP TABLE t; ALTER TABLE u RENAME TO t;").unwrap();
    }
    let feed = |r: &Connection| -> Vec<(Vec<u8>, String, V)> { changes(r).into_iter().map(|c| (c.pk, c.cid, c.val)).collect() };
    let key = |id: i64| one::<Vec<u8>>(&a, &format!("SELECT crsql_pack_columns({id})"));
    let u_rows = vec![
        (key(1), "a".to_string(), V::Text("in u".into())),
        (key(1), "b".to_string(), V::Integer(1)),
        (key(2), "a".to_string(), V::Text("u2".into())),
        (key(2), "b".to_string(), V::Integer(2)),
    ];
    assert_eq!(feed(&a), u_rows);
    a.execute_batch("SELECT crsql_as_crr('t'); UPDATE t SET a = 'changed' WHERE id = 2;").unwrap();
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 't'"), 3);
    assert_eq!(one::<String>(&a, "SELECT group_concat(tid) FROM crr_tables"), "2");
    a_replica_and_a_new_one_hold_t_as(&a, &b, 2);
}

/// A CRR renamed outside a bracket leaves its old name free: a new table of that name becomes
/// a CRR (until 2026-12-06: `UNIQUE constraint failed: crr_tables.name`, as the registry still
/// held the old name), and a 12-step rebuild of the renamed one in a bracket keeps its history
/// (its table is found under the name crsql_begin_alter registers, not under the old one,
/// which is now the other CRR's). Names passed around by renames work the same.
#[test]
fn a_name_a_renamed_crr_left_can_be_a_new_crr() {
    let (a, b) = (replica_with_u(), replica_with_u());
    a.execute_batch("INSERT INTO t VALUES (1, 't1', 1); INSERT INTO u VALUES (1, 'u1', 1), (2, 'u2', 2), (3, 'u3', 3);").unwrap();
    sync_since(&a, &b, 0).unwrap();
    let migrate = |r: &Connection| {
        r.execute_batch(
            "ALTER TABLE u RENAME TO v;
             CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('u');
             ALTER TABLE t RENAME TO tmp; ALTER TABLE v RENAME TO t; ALTER TABLE tmp RENAME TO v;
             SELECT crsql_begin_alter('t');
             CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
             INSERT INTO t_new SELECT * FROM t WHERE id != 2;
             DROP TABLE t; ALTER TABLE t_new RENAME TO t;
             SELECT crsql_commit_alter('t');
             CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('w');",
        )
        .unwrap();
    };
    migrate(&a);
    let names = |r: &Connection| one::<String>(r, "SELECT group_concat(tid || name, ' ') FROM (SELECT * FROM crr_tables ORDER BY tid)");
    assert_eq!(names(&a), "1v 2t 3u 4w");
    a.execute_batch("INSERT INTO u VALUES (9, 'new u', 9); UPDATE t SET a = 'moved' WHERE id = 3; INSERT INTO w VALUES (1, 'w1', 1);").unwrap();
    // The rebuilt table kept its history: its row 2 is a delete, its other rows unchanged.
    let key = |id: i64| one::<Vec<u8>>(&a, &format!("SELECT crsql_pack_columns({id})"));
    let t_feed: Vec<(Vec<u8>, String, i64)> = changes_where(&a, "WHERE \"table\" = 't' ORDER BY pk, cid").into_iter().map(|c| (c.pk, c.cid, c.col_version.min(1))).collect();
    assert_eq!(t_feed, vec![(key(1), "a".into(), 1), (key(1), "b".into(), 1), (key(2), "-1".into(), 1), (key(3), "a".into(), 1), (key(3), "b".into(), 1)]);
    migrate(&b);
    sync_since(&a, &b, 0).unwrap();
    sync_since(&b, &a, 0).unwrap();
    for table in ["t", "u", "v", "w"] {
        assert_eq!(dump(&b, table), dump(&a, table), "{table}");
    }
    assert_eq!(one::<String>(&a, "SELECT group_concat(id || a) FROM (SELECT * FROM t ORDER BY id)"), "1u1,3moved");
    assert_eq!(names(&b), "1v 2t 3u 4w");
}

/// A CRR renamed in a bracket to the name another CRR left (renamed in the same bracket, but
/// outside its own): the commit records the new name (until 2026-12-06 it failed with
/// `UNIQUE constraint failed: crr_tables.name`), and both go on under their new names.
#[test]
fn a_bracket_may_rename_its_crr_to_a_name_another_left_in_it() {
    let (a, b) = (replica_with_u(), replica_with_u());
    a.execute_batch("INSERT INTO t VALUES (1, 't1', 1); INSERT INTO u VALUES (1, 'u1', 1);").unwrap();
    for r in [&a, &b] {
        r.execute_batch("SELECT crsql_begin_alter('u'); ALTER TABLE t RENAME TO x; ALTER TABLE u RENAME TO t; SELECT crsql_commit_alter('t');").unwrap();
    }
    assert_eq!(one::<String>(&a, "SELECT group_concat(tid || name, ' ') FROM (SELECT * FROM crr_tables ORDER BY tid)"), "1x 2t");
    a.execute_batch("UPDATE t SET a = 'was u' WHERE id = 1; UPDATE x SET a = 'was t' WHERE id = 1;").unwrap();
    sync_since(&a, &b, 0).unwrap();
    for table in ["t", "x"] {
        assert_eq!(dump(&b, table), dump(&a, table), "{table}");
    }
    assert_eq!(one::<String>(&b, "SELECT a FROM t"), "was u");
    // The same where the other CRR was dropped in the bracket, not renamed (until 2026-12-06
    // the commit failed the same way: the dropped CRR still held the name).
    for r in [&a, &b] {
        r.execute_batch("SELECT crsql_begin_alter('t'); DROP TABLE x; ALTER TABLE t RENAME TO x; SELECT crsql_commit_alter('x');").unwrap();
    }
    assert_eq!(one::<String>(&a, "SELECT group_concat(tid || name, ' ') FROM (SELECT * FROM crr_tables ORDER BY tid)"), "2x");
    a.execute_batch("UPDATE x SET a = 'renamed twice' WHERE id = 1;").unwrap();
    sync_since(&a, &b, 0).unwrap();
    assert_eq!(dump(&b, "x"), dump(&a, "x"));
    assert_eq!(one::<String>(&b, "SELECT a FROM x"), "renamed twice");
}

/// crsql_commit_alter called from a SELECT (over the schema, for every table a migration
/// touched) with a CRR dropped in the brackets: it removes the dropped CRR's clock rows but
/// leaves its clock table to the next crsql_as_crr (SQLite refuses DROP TABLE while another
/// statement runs: a build of 2026-12-06 failed here with `database table is locked`).
#[test]
fn commit_alter_from_a_select_with_a_crr_dropped_in_the_bracket() {
    let c = replica_with_u();
    c.execute_batch(
        "CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('w'); INSERT INTO t VALUES (1, 'x', 1);
         SELECT crsql_begin_alter('u'); SELECT crsql_begin_alter('w'); DROP TABLE t; ALTER TABLE u ADD COLUMN z TEXT; ALTER TABLE w ADD COLUMN z TEXT;",
    )
    .unwrap();
    let done: Vec<String> = {
        let mut s = c.prepare("SELECT crsql_commit_alter(name) FROM sqlite_schema WHERE type = 'table' AND name IN ('u', 'w')").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(done, ["OK", "OK"]);
    assert_eq!(one::<String>(&c, "SELECT group_concat(name) FROM (SELECT name FROM crr_tables ORDER BY tid)"), "u,w");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_clock_1"), 0);
    c.execute_batch("SELECT crsql_as_crr('u')").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name = 'crr_clock_1'"), 0);
}

/// A schema cookie seen inside a transaction can come back with another schema: rolling back
/// (to a savepoint, or the whole transaction) restores the cookie, and later DDL reaches the
/// same value again. What the extension learned of the rolled-back schema (here: `t` dropped)
/// must not outlive the rollback, or the next write would clear `t`'s history.
#[test]
fn a_rolled_back_drop_table_leaves_the_crr_and_its_history() {
    for (begin, undo) in [("BEGIN; SAVEPOINT s;", "ROLLBACK TO s; RELEASE s;"), ("BEGIN;", "ROLLBACK; BEGIN;")] {
        let c = replica();
        c.execute_batch("INSERT INTO t VALUES (1, 'x', 1);").unwrap();
        let cookie: i64 = one(&c, "PRAGMA schema_version");
        c.execute_batch(&format!("{begin} DROP TABLE t;")).unwrap();
        assert!(changes(&c).is_empty(), "{begin} reads skip the dropped table");
        c.execute_batch(&format!("{undo} CREATE TABLE other(z);")).unwrap();
        assert_eq!(one::<i64>(&c, "PRAGMA schema_version"), cookie + 1, "{begin} the cookie of the dropped schema came back");
        c.execute_batch("INSERT INTO t VALUES (2, 'y', 2); COMMIT;").unwrap();
        let rows: Vec<(i64, String)> = changes(&c).into_iter().map(|x| (x.db_version, x.cid)).collect();
        assert_eq!(rows, vec![(1, "a".into()), (1, "b".into()), (2, "a".into()), (2, "b".into())], "{begin}");
    }
}

#[test]
fn drop_table_after_as_table_and_as_table_round_trip_starts_a_fresh_history() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1); SELECT crsql_as_table('t'); UPDATE t SET a = 'untracked';").unwrap();
    assert!(changes(&c).is_empty());
    c.execute_batch("SELECT crsql_as_crr('t');").unwrap();
    let fresh = changes(&c);
    assert_eq!(fresh.len(), 2);
    assert!(fresh.iter().all(|x| x.db_version == 2 && x.cl == 1), "{fresh:?}");
    assert_eq!(fresh[0].val, V::Text("untracked".into()));
}

#[test]
fn a_copied_file_gets_a_new_site_id_and_both_copies_converge_as_two_sites() {
    let dir = tmpdir("copy");
    let (pa, pb) = (dir.join("a.db"), dir.join("b.db"));
    let a = open(pa.to_str().unwrap());
    a.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'shared');").unwrap();
    let site_a: Vec<u8> = one(&a, "SELECT crsql_site_id()");
    a.execute_batch(&format!("VACUUM INTO '{}'", pb.to_str().unwrap())).unwrap();
    let b = open(pb.to_str().unwrap());
    assert_eq!(one::<Vec<u8>>(&b, "SELECT crsql_site_id()"), site_a, "a copy starts with the same id");
    let site_b: Vec<u8> = one(&b, "SELECT crr_new_site_id()");
    assert_ne!(site_b, site_a);
    assert_eq!(one::<Vec<u8>>(&b, "SELECT crsql_site_id()"), site_b);
    assert_eq!(changes(&b)[0].site_id, site_a, "the copied history keeps its origin");
    a.execute("INSERT INTO t VALUES (2, 'from a')", []).unwrap();
    b.execute("INSERT INTO t VALUES (3, 'from b')", []).unwrap();
    sync_since(&a, &b, 0).unwrap();
    sync_since(&b, &a, 0).unwrap();
    assert_eq!(dump(&a, "t").len(), 3);
    assert_eq!(dump(&a, "t"), dump(&b, "t"));
    assert_eq!(portable(&a), portable(&b));
    let row3: Vec<u8> = one(&a, "SELECT site_id FROM crsql_changes WHERE pk = crsql_pack_columns(3)");
    assert_eq!(row3, site_b);
    // The id does not change on its own.
    drop(b);
    let b = open(pb.to_str().unwrap());
    assert_eq!(one::<Vec<u8>>(&b, "SELECT crsql_site_id()"), site_b);
}

/// The copy that crr_new_site_id makes another replica gets a token of its own too: ATTACHed
/// to the file it was copied from, its tables' writes are refused like any other replica's
/// (before, the copy's triggers carried the original's token, and the check let them pass).
/// Every trigger of the copy follows, a table's in an alter bracket too, so the copy writes
/// all its tables on its own connection as before.
#[test]
fn a_copy_made_another_replica_is_told_apart_when_attached_to_its_original() {
    let dir = tmpdir("copy-attached");
    let (pa, pb) = (dir.join("a.db"), dir.join("b.db"));
    let a = open(pa.to_str().unwrap());
    a.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'shared');
         CREATE TABLE m(id INTEGER PRIMARY KEY NOT NULL, x TEXT); SELECT crsql_as_crr('m'); INSERT INTO m VALUES (1, 'x');",
    )
    .unwrap();
    a.execute_batch(&format!("VACUUM INTO '{}'", pb.to_str().unwrap())).unwrap();
    let b = open(pb.to_str().unwrap());
    b.execute_batch("SELECT crsql_begin_alter('m'); ALTER TABLE m ADD COLUMN y TEXT;").unwrap();
    let token = |c: &rusqlite::Connection| one::<i64>(c, "SELECT value FROM crr_meta WHERE key = 'token'");
    assert_eq!(token(&b), token(&a), "a copy starts with the same token");
    b.execute_batch("SELECT crr_new_site_id()").unwrap();
    assert_ne!(token(&b), token(&a));
    // The copy writes on, a table in its bracket too, and finishes the alter.
    b.execute_batch("INSERT INTO t VALUES (2, 'b'); UPDATE m SET x = 'in the bracket', y = 'why' WHERE id = 1; SELECT crsql_commit_alter('m');").unwrap();
    assert_eq!(changes_where(&b, "WHERE \"table\" = 'm' AND cid = 'x'")[0].val, V::Text("in the bracket".into()));
    // The original refuses to write it through ATTACH.
    a.execute(&format!("ATTACH '{}' AS b", pb.to_str().unwrap()), []).unwrap();
    let e = err(&a, "INSERT INTO b.t VALUES (3, 'through attach')");
    assert!(e.contains("a CRR of another database than this connection's main one"), "{e}");
    assert_eq!(one::<i64>(&b, "SELECT count(*) FROM t"), 2);
}

/// One scenario run in both clock modes: behaviour agrees except for the version numbers.
fn scenario(mode: &str) -> (Rows, Vec<(String, i64, i64)>) {
    let (a, b) = (mem(), mem());
    for c in [&a, &b] {
        c.execute_batch(&format!("SELECT crsql_config_set('clock', '{mode}'); CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');")).unwrap();
    }
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(1000); INSERT INTO t VALUES (1,'x',1); UPDATE t SET a = 'x2'; UPDATE t SET a = 'x3';").unwrap();
    sync_since(&a, &b, 0).unwrap();
    b.execute_batch("SELECT crr_set_wall_clock_for_testing(2000); UPDATE t SET b = 5; DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (1, 'again', 6);").unwrap();
    sync_since(&b, &a, 0).unwrap();
    sync_since(&a, &b, 0).unwrap();
    assert_eq!(dump(&a, "t"), dump(&b, "t"), "{mode}");
    assert_eq!(portable(&a), portable(&b), "{mode}");
    let meta = changes(&a).into_iter().map(|x| (x.cid, x.col_version, x.cl)).collect();
    (dump(&a, "t"), meta)
}

#[test]
fn lamport_mode_follows_cr_sqlite_counters_and_agrees_with_hlc_on_outcomes() {
    let (rows_l, meta_l) = scenario("lamport");
    let (rows_h, meta_h) = scenario("hlc");
    assert_eq!(rows_l, rows_h);
    assert_eq!(rows_l, vec![vec![V::Integer(1), V::Text("again".into()), V::Integer(6)]]);
    // Lamport: sentinel col_version = cl = 3, resurrection restarts the columns at 1.
    assert_eq!(meta_l, vec![("-1".into(), 3, 3), ("a".into(), 1, 3), ("b".into(), 1, 3)]);
    assert!(meta_h.iter().all(|(cid, v, _)| cid == "-1" || *v > 1 << 16));
    // And counting: three writes of a cell in lamport mode give version 3.
    let c = mem();
    c.execute_batch("SELECT crsql_config_set('clock', 'lamport'); CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 1); UPDATE t SET a = 2; UPDATE t SET a = 3;").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT col_version FROM crsql_changes WHERE cid = 'a'"), 3);
}

#[test]
fn writes_during_an_alter_inserts_and_deletes_tracked_and_key_rename_allowed() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1),(2,'y',2);").unwrap();
    c.execute_batch(
        "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT;
         INSERT INTO t VALUES (3, 'during', 3, 'dd'); DELETE FROM t WHERE id = 2;
         ALTER TABLE t RENAME COLUMN id TO key; SELECT crsql_commit_alter('t');",
    )
    .unwrap();
    let row3 = changes_where(&c, "WHERE pk = crsql_pack_columns(3)");
    assert_eq!(row3.iter().map(|x| x.cid.as_str()).collect::<Vec<_>>(), vec!["a", "b", "d"], "{row3:?}");
    assert_eq!(changes_where(&c, "WHERE pk = crsql_pack_columns(2)")[0].cl, 2);
    c.execute("UPDATE t SET a = 'after' WHERE key = 1", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE pk = crsql_pack_columns(1) AND cid = 'a'")[0].val, V::Text("after".into()));
}

/// A database from a later internal schema (which this build could not read) is refused at
/// load with a clear error, so an older build never misreads newer clocks.
#[test]
fn a_database_of_a_newer_internal_schema_is_refused_at_load() {
    let path = tmpdir("newer-schema").join("n.db");
    let path = path.to_str().unwrap();
    let c = open(path);
    // (A new database gets the internal tables at the first function that needs them.)
    one::<Vec<u8>>(&c, "SELECT crsql_site_id()");
    assert_eq!(one::<i64>(&c, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7);
    c.execute_batch("UPDATE crr_meta SET value = 99 WHERE key = 'schema'").unwrap();
    drop(c);
    let c = Connection::open(path).unwrap();
    // SAFETY (test): loading our own extension into our own connection.
    let e = unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(&c).unwrap();
        c.load_extension(extension_path(), Some("sqlite3_crr_init")).expect_err("must refuse")
    };
    assert!(e.to_string().contains("written by a newer sqlite-crr (internal schema 99, this build knows 7)"), "{e}");
}

/// A connection carries what its last transaction committed into the next (txn::Carry); a new
/// site id and a changed setting take effect at once all the same.
/// A file replica in WAL mode (there, a connection's own commits leave PRAGMA data_version
/// alone, so it carries what it knows), its wall clock at 1,000,000 ms, rows 1 and 2 written.
fn carrying_replica(name: &str) -> (Connection, String) {
    let path = tmpdir(name).join("c.db").to_str().unwrap().to_string();
    let c = open(&path);
    c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');").unwrap();
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(1000000); INSERT INTO t VALUES (1,'x',1); INSERT INTO t VALUES (2,'y',2);").unwrap();
    (c, path)
}

#[test]
fn site_id_and_setting_changes_reach_the_next_transaction() {
    let (c, _) = carrying_replica("carry");
    let new_id: Vec<u8> = one(&c, "SELECT crr_new_site_id()");
    c.execute("INSERT INTO t VALUES (3,'z',3)", []).unwrap();
    let site: Vec<u8> = one(&c, "SELECT site_id FROM crsql_changes WHERE pk = crsql_pack_columns(3) AND cid = 'a'");
    assert_eq!(site, new_id);
    c.execute_batch("SELECT crsql_config_set('hlc-max-drift-ms', 1000)").unwrap();
    let mut ahead = changes_where(&c, "WHERE pk = crsql_pack_columns(3) AND cid = 'a'")[0].clone();
    ahead.site_id = vec![9; 16];
    ahead.col_version = (1_000_000 + 5_000) << 16;
    let e = apply(&c, &[ahead]).expect_err("5 s ahead with a 1 s limit").to_string();
    assert!(e.contains("hlc-max-drift-ms = 1000"), "{e}");
}

/// A rollback to a savepoint undoes a new site id and a changed setting in the database; the
/// extension must not keep using them: not for the rest of the transaction, not in the next one
/// (a connection carries what it knows into its next transaction), not after a reopen.
#[test]
fn a_site_id_and_a_setting_undone_by_rollback_to_are_not_used() {
    let (c, path) = carrying_replica("undone-site");
    let own: Vec<u8> = one(&c, "SELECT crsql_site_id()");
    // 5 s ahead: refused under the undone 1 s limit, well inside the stored hour.
    let ahead = |pk: i64| {
        let mut x = changes_where(&c, &format!("WHERE pk = crsql_pack_columns({pk}) AND cid = 'a'"))[0].clone();
        x.site_id = vec![9; 16];
        x.col_version = (1_000_000 + 5_000) << 16;
        x
    };
    let undo = "SAVEPOINT s; SELECT crsql_config_set('hlc-max-drift-ms', 1000); INSERT INTO t VALUES (9,'gone',9); ROLLBACK TO s; RELEASE s;";
    // The rest of the transaction.
    c.execute_batch(&format!("BEGIN; SAVEPOINT n; SELECT crr_new_site_id(); {undo} ROLLBACK TO n; RELEASE n; INSERT INTO t VALUES (3,'z',3);")).unwrap();
    apply_one(&c, &ahead(1)).expect("5 s ahead, later in the transaction");
    c.execute_batch("COMMIT;").unwrap();
    // The next transaction.
    c.execute_batch(&format!("BEGIN; {undo} COMMIT;")).unwrap();
    apply(&c, &[ahead(2)]).expect("5 s ahead, in the next transaction");
    c.execute_batch("INSERT INTO t VALUES (4,'w',4);").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_config_get('hlc-max-drift-ms')"), 3_600_000);
    assert_eq!(one::<Vec<u8>>(&c, "SELECT crsql_site_id()"), own);
    let sites = |c: &rusqlite::Connection| changes(c).into_iter().filter(|x| x.site_id != [9; 16]).map(|x| (x.pk, x.site_id)).collect::<Vec<_>>();
    let written = sites(&c);
    assert_eq!(written.len(), 6, "{written:?}");
    assert!(written.iter().all(|(_, s)| *s == own), "{written:?}");
    drop(c);
    let c = open(&path);
    assert_eq!(sites(&c), written, "every record names a site crr_sites holds");
}

/// A site added by a merge that a rollback to a savepoint undid frees its ordinal; the next new
/// site takes it. Changes from either site must still name their own.
#[test]
fn a_merged_site_undone_by_rollback_to_does_not_lend_its_ordinal() {
    let (a, b) = (replica(), replica());
    b.execute_batch("INSERT INTO t VALUES (1,'one',1); INSERT INTO t VALUES (2,'two',2);").unwrap();
    let feed = changes(&b);
    let first: Vec<_> = feed.iter().filter(|x| x.pk == feed[0].pk).cloned().collect();
    let second: Vec<_> = feed.iter().filter(|x| x.pk != feed[0].pk).cloned().collect();
    let with_site = |cs: &[Change], s: u8| cs.iter().cloned().map(|mut x| { x.site_id = vec![s; 16]; x }).collect::<Vec<_>>();
    a.execute_batch("BEGIN; SAVEPOINT s;").unwrap();
    for x in with_site(&first, 7) {
        apply_one(&a, &x).unwrap();
    }
    a.execute_batch("ROLLBACK TO s; RELEASE s; COMMIT;").unwrap();
    apply(&a, &with_site(&first, 8)).unwrap();
    apply(&a, &with_site(&second, 7)).unwrap();
    let mut got: Vec<(Vec<u8>, u8)> = changes(&a).into_iter().map(|x| (x.pk, x.site_id[0])).collect();
    got.sort();
    got.dedup();
    assert_eq!(got, vec![(first[0].pk.clone(), 8), (second[0].pk.clone(), 7)]);
}

/// Two connections to one new WAL file holding the CRR `t(id, a, b)`.
fn two_connections(name: &str) -> (Connection, Connection) {
    let path = tmpdir(name).join("c.db");
    let c = open(path.to_str().unwrap());
    c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');").unwrap();
    let other = open(path.to_str().unwrap());
    (c, other)
}

/// A read of this replica's site id outside a write transaction ends without a hook telling
/// the extension, so it must not be remembered: another connection may give the database a new
/// id before this one writes.
#[test]
fn a_site_id_read_outside_a_write_is_read_again_at_the_next_write() {
    let (c1, c2) = two_connections("read-site");
    let old: Vec<u8> = one(&c1, "SELECT crsql_site_id()");
    let new: Vec<u8> = one(&c2, "SELECT crr_new_site_id()");
    assert_ne!(old, new);
    assert_eq!(one::<Vec<u8>>(&c1, "SELECT crsql_site_id()"), new);
    c1.execute("INSERT INTO t VALUES (1, 'x', 1)", []).unwrap();
    let sites: Vec<Vec<u8>> = changes(&c1).into_iter().map(|x| x.site_id).collect();
    assert_eq!(sites, vec![new.clone(), new]);
}

/// `crr_new_site_id()` outside a transaction: SQLite commits each of its writes on its own
/// (a nested write statement in autocommit mode), so what it left for "this transaction" was
/// in fact left for the next one; another connection that gives the database a new id in
/// between must win. (Found by tests/rollbacks.rs's site check.)
#[test]
fn a_new_site_id_then_another_connections_is_the_one_writes_use() {
    let (c, other) = two_connections("two-new-ids");
    let _: Vec<u8> = one(&c, "SELECT crr_new_site_id()");
    let latest: Vec<u8> = one(&other, "SELECT crr_new_site_id()");
    c.execute("INSERT INTO t VALUES (1, 'x', 1)", []).unwrap();
    let sites: Vec<Vec<u8>> = changes(&c).into_iter().map(|x| x.site_id).collect();
    assert_eq!(sites, vec![latest.clone(), latest.clone()]);
    assert_eq!(one::<Vec<u8>>(&c, "SELECT crsql_site_id()"), latest);
}

/// `crr_new_site_id()` writes the new id and points the replica at it: both, or, when the
/// second write fails, neither (outside a transaction SQLite committed the first on its own).
#[test]
fn a_new_site_id_that_fails_half_way_leaves_nothing() {
    let c = replica();
    let own: Vec<u8> = one(&c, "SELECT crsql_site_id()");
    let sites: i64 = one(&c, "SELECT count(*) FROM crr_sites");
    // A trigger of the test's own refuses the second write.
    c.execute_batch(
        "CREATE TRIGGER refuse_own BEFORE INSERT ON crr_meta WHEN NEW.key = 'own_site_ordinal' BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let e = err(&c, "SELECT crr_new_site_id()");
    assert!(e.contains("refused"), "{e}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_sites"), sites, "the new id's row stayed");
    assert_eq!(one::<Vec<u8>>(&c, "SELECT crsql_site_id()"), own);
    c.execute_batch("DROP TRIGGER refuse_own; INSERT INTO t VALUES (1, 'x', 1);").unwrap();
    assert!(changes(&c).iter().all(|x| x.site_id == own));
}

/// What README says of renames: a drop and an add of the same type in one bracket are taken
/// for a rename (the new column inherits the old one's entries), and in two brackets they are
/// not.
#[test]
fn a_drop_and_an_add_are_a_rename_in_one_bracket_and_not_in_two() {
    let one_bracket = replica();
    one_bracket.execute_batch("INSERT INTO t VALUES (1, 'x', 5); SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b; ALTER TABLE t ADD COLUMN c INTEGER; SELECT crsql_commit_alter('t');").unwrap();
    assert_eq!(cids(&one_bracket), vec!["a", "c"]);
    let two_brackets = replica();
    two_brackets
        .execute_batch(
            "INSERT INTO t VALUES (1, 'x', 5); SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b; SELECT crsql_commit_alter('t');
             SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN c INTEGER; SELECT crsql_commit_alter('t');",
        )
        .unwrap();
    assert_eq!(cids(&two_brackets), vec!["a"]);
}

/// Rows left without cell entries by an alter (every tracked column dropped, then one added at
/// its default) show their sentinel, so a new replica that syncs from scratch gets them. Until
/// 2026-12-05 such rows were in no feed: the table had tracked columns, so a sentinel at causal
/// length 1 stayed hidden.
#[test]
fn rows_an_alter_left_without_cells_still_reach_a_new_replica() {
    let c = replica();
    c.execute_batch(
        "INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2);
         SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN a; ALTER TABLE t DROP COLUMN b; SELECT crsql_commit_alter('t');
         SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 0; SELECT crsql_commit_alter('t');",
    )
    .unwrap();
    let fresh = mem();
    fresh.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT 0); SELECT crsql_as_crr('t');").unwrap();
    sync_since(&c, &fresh, 0).unwrap();
    assert_eq!(dump(&fresh, "t"), dump(&c, "t"));
    assert_eq!(portable(&fresh), portable(&c));
    // A write to the row hides the sentinel again, on both.
    c.execute_batch("UPDATE t SET n = 5 WHERE id = 1").unwrap();
    sync_since(&c, &fresh, 0).unwrap();
    assert_eq!(portable(&fresh), portable(&c));
    assert_eq!(cids(&c), vec!["-1", "n"]);
}

/// Two replicas whose feeds a DROP COLUMN changes: the sentinel of a row left without cells is
/// shown again from then on, so both must have settled its site. Found by tests/alters.rs.
/// (1) Rows whose sentinel the drop shows are sent again (their sentinel gets the alter's
/// db_version): a peer that had synced past them never got them, and kept its own site.
/// (2) A peer's sentinel merged while the local row had cells (so its sentinel was hidden)
/// still raises the site: the peer's row never had cells and is not sent again.
/// Both orders of the two sites are run, since the greater one decides ((2) fails only when
/// y's is the greater).
#[test]
fn a_sentinel_an_alter_shows_has_the_same_site_on_every_replica() {
    let drop_b = "SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN b; SELECT crsql_commit_alter('t');";
    for y_greater in [true, false] {
        let (a, b) = (replica(), replica());
        let a_greater = one::<Vec<u8>>(&a, "SELECT crsql_site_id()") > one::<Vec<u8>>(&b, "SELECT crsql_site_id()");
        let (x, y) = if a_greater == y_greater { (&b, &a) } else { (&a, &b) };
        // (1): both insert row 1 (cells a and b) and sync; dropping a leaves cells, dropping b
        // then leaves none.
        x.execute("INSERT INTO t VALUES (1, 'x', 1)", []).unwrap();
        y.execute("INSERT INTO t VALUES (1, 'y', 2)", []).unwrap();
        let (sx, sy): (i64, i64) = (one(x, "SELECT crsql_db_version()"), one(y, "SELECT crsql_db_version()"));
        sync_since(x, y, 0).unwrap();
        sync_since(y, x, 0).unwrap();
        for c in [x, y] {
            c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t DROP COLUMN a; SELECT crsql_commit_alter('t');").unwrap();
        }
        // (2): row 2 made while t has no column on both (sentinels shown), then x writes the new
        // column b (x's row has a cell, its sentinel is hidden) and takes y's sentinel, then
        // both drop b: x's row shows its sentinel again, y's row never hid it.
        for c in [x, y] {
            c.execute_batch(drop_b).unwrap();
        }
        x.execute("INSERT INTO t VALUES (2)", []).unwrap();
        y.execute("INSERT INTO t VALUES (2)", []).unwrap();
        for c in [x, y] {
            c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN b INTEGER; SELECT crsql_commit_alter('t');").unwrap();
        }
        x.execute("UPDATE t SET b = 5 WHERE id = 2", []).unwrap();
        sync_since(y, x, sy).unwrap();
        let sy: i64 = one(y, "SELECT crsql_db_version()");
        for c in [x, y] {
            c.execute_batch(drop_b).unwrap();
        }
        sync_since(x, y, sx).unwrap();
        sync_since(y, x, sy).unwrap();
        assert_eq!(dump(x, "t"), dump(y, "t"));
        assert_eq!(portable(x), portable(y), "y's site the greater: {y_greater}");
    }
}

/// The twelve-step rebuild drops the table and its triggers: rows it leaves out, deletes after
/// it and inserts over a tombstone are recorded at crsql_commit_alter (found by
/// tests/alters.rs: a re-inserted row stayed deleted in the feed, and peers never got it).
#[test]
fn a_rebuild_records_the_rows_it_drops_deletes_and_brings_back() {
    let (a, b, seen) = synced_pair("INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2), (3, 'z', 3), (4, 'w', 4); DELETE FROM t WHERE id = 3;");
    let rebuild = |filter: &str, after: &str| {
        format!(
            "SELECT crsql_begin_alter('t'); CREATE TABLE t2(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
             INSERT INTO t2 SELECT * FROM t {filter}; DROP TABLE t; ALTER TABLE t2 RENAME TO t; {after}
             SELECT crsql_commit_alter('t');"
        )
    };
    a.execute_batch(&rebuild("WHERE id != 1", "INSERT INTO t VALUES (3, 'back', 3); DELETE FROM t WHERE id = 2;")).unwrap();
    b.execute_batch(&rebuild("", "")).unwrap();
    sync_since(&a, &b, seen).unwrap();
    let rows = dump(&a, "t");
    assert_eq!(rows, vec![vec![V::Integer(3), V::Text("back".into()), V::Integer(3)], vec![V::Integer(4), V::Text("w".into()), V::Integer(4)]]);
    assert_eq!(dump(&b, "t"), rows);
    assert_eq!(portable(&a), portable(&b));
}

/// The clock never forgets a version it handed out. crsql_begin_alter's transaction wrote the
/// clock's mark into crr_ticks at its db_version and no change; the next transaction was
/// given the same db_version, and kept its tick in its one record there, where the mark's
/// recovery (the records after the last crr_ticks row) did not look. A connection that then
/// recovered the mark got one below that tick, so with its wall clock a little behind it
/// wrote the same cell at a lower version: peers holding the first write took the second for
/// stale, and the replica took the first back from them. (Until 2026-12-05; a db_version that
/// crr_ticks holds is no longer given again.)
#[test]
fn a_version_written_after_an_alter_bracket_opens_stays_under_the_clock_mark() {
    let path = tmpdir("mark-after-bracket").join("a.db").to_str().unwrap().to_string();
    let a = open(&path);
    let at = |c: &Connection, ms: i64| c.execute_batch(&format!("SELECT crr_set_wall_clock_for_testing({ms})")).unwrap();
    let peer = replica();
    peer.execute_batch("DROP TABLE t; CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, c0 TEXT, c1); SELECT crsql_as_crr('u');").unwrap();
    at(&a, 1_000_000);
    a.execute_batch(
        "CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, c0 TEXT, c1); SELECT crsql_as_crr('u');
         SELECT crsql_begin_alter('u'); ALTER TABLE u DROP COLUMN c0; INSERT INTO u(id, c1) VALUES (3, 1);
         SELECT crsql_commit_alter('u');",
    )
    .unwrap();
    peer.execute_batch("SELECT crsql_begin_alter('u'); ALTER TABLE u DROP COLUMN c0; SELECT crsql_commit_alter('u');").unwrap();
    at(&a, 1_000_010);
    a.execute_batch("SELECT crsql_begin_alter('u')").unwrap();
    at(&a, 1_000_020);
    a.execute_batch("UPDATE u SET c1 = 'a' WHERE id = 3").unwrap();
    let first: i64 = one(&a, "SELECT col_version FROM crsql_changes WHERE cid = 'c1'");
    apply(&peer, &changes(&a)).unwrap();
    // Another connection, its wall clock 15 ms behind, writes the cell again.
    let b = open(&path);
    at(&b, 1_000_005);
    b.execute_batch("UPDATE u SET c1 = 'b' WHERE id = 3").unwrap();
    let second: i64 = one(&b, "SELECT col_version FROM crsql_changes WHERE cid = 'c1'");
    assert!(second > first, "the second write's version {second} is not above the first's {first}");
    apply(&peer, &changes(&b)).unwrap();
    assert_eq!(one::<String>(&peer, "SELECT c1 FROM u"), "b");
}

/// The functions that write in several statements of their own inside a savepoint
/// (crsql_as_crr, begin and commit alter, crsql_as_table, crr_new_site_id, and since
/// 2026-12-06 crsql_config_set), stopped at any step
/// by sqlite3_interrupt or by a progress handler that gives up, leave the database as it was
/// (or, where SQLite reports the interrupt after the work was done, done) and no transaction
/// open: until 2026-12-05 a pending interrupt stopped their ROLLBACK TO as well, and the
/// savepoint, with half the work in it, stayed open as a transaction the app's next writes went
/// into and never committed. Now, where the savepoint cannot be undone, the whole transaction
/// is rolled back (as SQLite does when an interrupt stops a write); an app's own transaction
/// around the call goes with it then, and otherwise stays with its own writes.
#[test]
fn functions_stopped_at_any_step_leave_no_transaction_open_and_no_half_done_work() {
    let setup = |c: &Connection, f: &str, alter: &str| {
        // (STRICT, with a CHECK: crsql_as_crr and crsql_commit_alter then test the row of
        // defaults in a TEMP table, whose creation expires every prepared statement.)
        // (The internal tables first, as a database that has anything in it gets at the load.)
        c.execute_batch("SELECT crsql_site_id(); CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER DEFAULT 0 CHECK (b >= 0)) STRICT; CREATE TABLE app(x);").unwrap();
        c.execute_batch("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);").unwrap();
        if f != "crsql_as_crr" {
            c.execute_batch("SELECT crsql_as_crr('t'); UPDATE t SET a = 'a2' WHERE id = 1;").unwrap();
        }
        if f == "crsql_commit_alter" {
            c.execute_batch(&format!("SELECT crsql_begin_alter('t'); {alter}")).unwrap();
        }
    };
    // Schema, rows, and what the extension stores (read without it: crsql_changes would
    // refuse a table in a bracket).
    let state = |c: &Connection| {
        let q = |sql: &str| rows(c, sql);
        (
            // (Trigger texts hold the database's random token.)
            q("SELECT type, name, CASE type WHEN 'trigger' THEN tbl_name ELSE sql END FROM sqlite_schema ORDER BY name"),
            q("SELECT * FROM t ORDER BY id"),
            q("SELECT * FROM app"),
            q("SELECT * FROM crr_sites ORDER BY ordinal"),
            q("SELECT key, value FROM crr_meta WHERE key NOT IN ('token') ORDER BY key"),
            match one::<i64>(c, "SELECT count(*) FROM sqlite_schema WHERE name = 'crr_clock_1'") {
                0 => q("SELECT name FROM crr_tables"),
                _ => q("SELECT name FROM crr_tables UNION ALL SELECT count(*) || ' clock rows' FROM crr_clock_1"),
            },
        )
    };
    let mut stopped = 0;
    // (The alters a commit follows: a column added and written, renamed, dropped, and the
    // table rebuilt in SQLite's twelve steps.)
    let rebuild = "CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER DEFAULT 0 CHECK (b >= 0), e TEXT) STRICT; \
                   INSERT INTO t_new(id, a, b) SELECT id, a, b FROM t; DROP TABLE t; ALTER TABLE t_new RENAME TO t;";
    for (f, alter) in [
        ("crsql_as_crr", ""),
        ("crsql_begin_alter", ""),
        ("crsql_commit_alter", "ALTER TABLE t ADD COLUMN d INTEGER DEFAULT 0; UPDATE t SET d = id;"),
        ("crsql_commit_alter", "ALTER TABLE t RENAME COLUMN a TO a2;"),
        ("crsql_commit_alter", "ALTER TABLE t DROP COLUMN a;"),
        ("crsql_commit_alter", rebuild),
        ("crsql_as_table", ""),
        ("crr_new_site_id", ""),
        ("crsql_config_set", ""),
    ] {
        let call = match f {
            "crr_new_site_id" => format!("SELECT {f}()"),
            "crsql_config_set" => format!("SELECT {f}('hlc-max-drift-ms', 5000)"),
            _ => format!("SELECT {f}('t')"),
        };
        // (Inside an app's transaction: each function once, after the app's write and before
        // it (the call then takes the write lock first, savepoint::lock_first); the other
        // alters add nothing there.)
        let in_txn_too = !alter.contains("RENAME") && !alter.contains("DROP");
        for (in_app_txn, call_first) in [(false, false), (true, false), (true, true)].into_iter().filter(|&(t, _)| !t || in_txn_too) {
            let run = |c: &Connection| -> rusqlite::Result<()> {
                if in_app_txn {
                    c.execute_batch(if call_first { "BEGIN" } else { "BEGIN; INSERT INTO app VALUES (1);" })?;
                }
                c.execute_batch(&call)?;
                if in_app_txn {
                    c.execute_batch(if call_first { "INSERT INTO app VALUES (1); COMMIT" } else { "COMMIT" })?;
                }
                Ok(())
            };
            let fresh = || {
                let c = mem();
                setup(&c, f, alter);
                c
            };
            let (done, steps) = {
                let c = fresh();
                let (r, steps) = Stop::count(&c, || run(&c));
                r.unwrap();
                (state(&c), steps)
            };
            // Done (site ids are random: compared by count).
            let same = |a: &(Rows, Rows, Rows, Rows, Rows, Rows)| {
                (&a.0, &a.1, &a.2, a.3.len(), &a.5) == (&done.0, &done.1, &done.2, done.3.len(), &done.5)
            };
            for how in How::ALL {
                let mut c = fresh();
                let mut before = state(&c);
                for at_step in 0..steps {
                    let r = Stop::at(&c, at_step, how, || run(&c));
                    let what = format!("{call} stopped at step {at_step} of {steps} (after `{alter}`, in a transaction: {in_app_txn}, call first: {call_first}, {how:?})");
                    let Err(e) = r else {
                        // Stopped after its work, or where a stop changes nothing.
                        assert!(c.is_autocommit(), "{what}: succeeded, but left a transaction open");
                        assert!(same(&state(&c)), "{what}: succeeded, half done");
                        c = fresh();
                        before = state(&c);
                        continue;
                    };
                    stopped += 1;
                    let interrupted = e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted);
                    assert!(interrupted && e.to_string().contains("interrupt"), "{what}: {e}");
                    if !c.is_autocommit() {
                        // Open: only the app's own transaction may be, with the function's
                        // work in it whole, or none of it.
                        let open = state(&c);
                        let none = (&open.0, &open.1, &open.3, &open.4, &open.5) == (&before.0, &before.1, &before.3, &before.4, &before.5);
                        let whole = (&open.0, &open.1, open.3.len(), &open.5) == (&done.0, &done.1, done.3.len(), &done.5);
                        assert!(in_app_txn && (none || whole), "{what}: left a transaction open: {e}");
                        c.execute_batch("ROLLBACK").unwrap();
                    }
                    let now = state(&c);
                    if now == before {
                        continue;
                    }
                    // Done, the interrupt reported after.
                    assert!(same(&now), "{what}: half done: {now:?}");
                    c = fresh();
                    before = state(&c);
                }
            }
        }
    }
    assert!(stopped > 10_000, "stopped {stopped} times only");
}

/// A database that never met the extension, opened read-only or by a connection with
/// `PRAGMA query_only = 1` (as reader pools are): the extension loads, sees no CRRs, and its
/// functions that write say why they cannot, as crsql_site_id() does; a connection that may
/// write then installs as ever. (Until 2026-12-06 a query_only connection's load failed,
/// "attempt to write a readonly database", and the read-only connection's crsql_site_id() and
/// crsql_as_crr named a missing internal table.)
#[test]
fn a_database_that_refuses_writes_loads_and_its_writing_functions_say_why() {
    let path = tmpdir("query-only").join("q.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); INSERT INTO t VALUES (1, 'x');").unwrap();
    for query_only in [true, false] {
        let c = refusing_writes(std::path::Path::new(&path), query_only);
        load(&c);
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 0);
        assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 0);
        assert_eq!(one::<String>(&c, "SELECT crsql_config_get('clock')"), "hlc");
        let e = err(&c, "SELECT crsql_site_id()");
        assert!(e.contains("this database has no site id yet: sqlite-crr was never loaded on it by a connection that may write"), "{e}");
        // (A bracket is refused first: a database without the internal tables has no CRR.)
        assert!(err(&c, "SELECT crsql_begin_alter('t')").contains("table \"t\" is not a CRR"));
        for call in ["crsql_as_crr('t')", "crr_new_site_id()", "crsql_config_set('clock', 'lamport')"] {
            let e = c.execute_batch(&format!("SELECT {call}")).unwrap_err();
            assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly), "{call}: {e}");
            assert!(e.to_string().contains("the database refuses writes (it was opened read-only, or the connection is query_only)"), "{call}: {e}");
        }
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'crr%'"), 0);
    }
    let c = open(path.to_str().unwrap());
    c.execute_batch(
        "SELECT crsql_as_crr('t'); CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL); SELECT crsql_as_crr('u'); ALTER TABLE u RENAME TO v;
         CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL); SELECT crsql_as_crr('w'); DROP TABLE w;",
    )
    .unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 1);
    // Apps call crsql_as_crr at every start: on a CRR it writes nothing, so it succeeds on
    // these connections too (its savepoint takes no write lock there), also on one renamed
    // since crr_tables last recorded its name (a build of 2026-12-06 tried to record it there)
    // and while a dropped CRR's clock awaits removal (until 2026-12-06 it tried to remove it).
    for query_only in [true, false] {
        let r = refusing_writes(std::path::Path::new(&path), query_only);
        load(&r);
        r.execute_batch("SELECT crsql_as_crr('t'); SELECT crsql_as_crr('v');").unwrap();
        assert_eq!(one::<i64>(&r, "SELECT count(*) FROM crsql_changes"), 1);
    }
}

/// The steps of a call the meddle tests try: every `default`th, or every CRR_MEDDLE_STRIDE'th.
fn meddle_stride(default: usize) -> usize {
    std::env::var("CRR_MEDDLE_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Another connection commits at any step of a crsql_as_crr call (here: it makes the same
/// table a CRR): the call still goes through, in WAL and rollback-journal mode, alone and
/// first in an app's transaction. The call's savepoint takes the write lock before it reads,
/// so the other connection either went first (and the call finds a CRR) or waits (here:
/// fails at once, it has no busy timeout). Until 2026-12-06 the call read first, and in WAL
/// its first write then failed with SQLITE_BUSY, which no busy handler retries: of several
/// processes that started at once and made their tables CRRs, all but one failed
/// (tests/concurrency.rs). The call takes about 1,600 steps: make test tries every 9th
/// (4 s), CRR_MEDDLE_STRIDE=1 every one (30 s).
#[test]
fn crsql_as_crr_goes_through_whatever_another_connection_commits_meanwhile() {
    let stride = meddle_stride(9);
    let dir = tmpdir("meddled");
    for mode in ["WAL", "DELETE"] {
        for call in ["SELECT crsql_as_crr('t')", "BEGIN; SELECT crsql_as_crr('t'); COMMIT;"] {
            let mut steps = None;
            for at in (1..).step_by(stride) {
                let path = &fresh_file(&dir, "m.db");
                let a = open(path);
                a.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(())).unwrap();
                a.execute_batch("PRAGMA synchronous = OFF; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');").unwrap();
                let b = open(path);
                b.busy_timeout(std::time::Duration::ZERO).unwrap();
                let mut meddle = || {
                    let _ = b.execute_batch("SELECT crsql_as_crr('t')");
                };
                let (r, ran) = meddle_at(&a, at, &mut meddle, || a.execute_batch(call));
                r.unwrap_or_else(|e| panic!("{mode}, {call}, the other connection at step {at}: {e}"));
                assert_eq!(changes(&a).len(), 2, "{mode}, {call}, step {at}");
                a.execute("INSERT INTO t VALUES (3, 'z')", []).unwrap();
                assert_eq!(changes(&b).len(), 3, "{mode}, {call}, step {at}");
                if !ran {
                    steps = Some(at);
                    break;
                }
            }
            assert!(steps.unwrap() > 1000, "{mode}: {steps:?}");
        }
    }
}

/// The functions that write, with another connection that writes a row of another CRR at
/// any step of the call (WAL), alone and first in an app's transaction: the call goes
/// through, and the other connection's row, if it got in first, is tracked. (Until
/// 2026-12-06 crsql_as_crr and the bracket's calls failed with SQLITE_BUSY at some steps,
/// and in an app's transaction all of them.) Every 13th step; CRR_MEDDLE_STRIDE.
#[test]
fn the_writing_functions_go_through_whatever_another_connection_commits_meanwhile() {
    let stride = meddle_stride(13);
    let setup = "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; \
                 CREATE TABLE o(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('o'); \
                 CREATE TABLE t(k TEXT PRIMARY KEY NOT NULL, v INTEGER); INSERT INTO t VALUES ('a', 1), ('b', 2); \
                 CREATE TABLE r(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('r'); INSERT INTO r VALUES (1, 'x');";
    let calls = [
        ("", "SELECT crsql_as_crr('t')"),
        ("", "SELECT crsql_begin_alter('r')"),
        ("SELECT crsql_begin_alter('r'); ALTER TABLE r ADD COLUMN c INTEGER DEFAULT 7;", "SELECT crsql_commit_alter('r')"),
        ("", "SELECT crsql_as_table('r')"),
        ("", "SELECT crr_new_site_id()"),
        ("", "SELECT crsql_config_set('hlc-max-drift-ms', 5000)"),
    ];
    let dir = tmpdir("meddled-all");
    let calls = calls.iter().flat_map(|&(before, call)| [(before, call.to_string()), (before, format!("BEGIN; {call}; COMMIT;"))]);
    for (before, call) in calls {
        for at in (1..).step_by(stride) {
            let path = &fresh_file(&dir, "m.db");
            let a = open(path);
            a.execute_batch(setup).unwrap();
            a.execute_batch(before).unwrap();
            let b = open(path);
            b.busy_timeout(std::time::Duration::ZERO).unwrap();
            let mut wrote = false;
            let mut meddle = || wrote = b.execute("INSERT INTO o VALUES (1, 'b')", []).is_ok();
            let (r, ran) = meddle_at(&a, at, &mut meddle, || a.execute_batch(&call));
            r.unwrap_or_else(|e| panic!("{call}, the other connection at step {at}: {e}"));
            let tracked = one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE \"table\" = 'o'");
            assert_eq!(tracked, i64::from(wrote), "{call}, the other connection at step {at}");
            if !ran {
                break;
            }
        }
    }
}

/// While another connection holds the write lock, each writing function of a connection
/// without a busy timeout fails with SQLITE_BUSY (since 2026-12-06 at the lock it takes
/// before reading: the error path of that lock), leaves nothing, and no transaction open but
/// the app's own; once the other connection commits, the same call goes through.
#[test]
fn the_writing_functions_say_busy_while_another_connection_writes_and_leave_nothing() {
    let path = &fresh_file(&tmpdir("busy-functions"), "b.db");
    let a = open(path);
    a.execute_batch(
        "PRAGMA journal_mode = WAL; \
         CREATE TABLE t(k TEXT PRIMARY KEY NOT NULL, v INTEGER); INSERT INTO t VALUES ('a', 1); \
         CREATE TABLE r(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('r'); INSERT INTO r VALUES (1, 'x');",
    )
    .unwrap();
    a.busy_timeout(std::time::Duration::ZERO).unwrap();
    let b = open(path);
    let schema = |c: &Connection| rows(c, "SELECT type, name, sql FROM sqlite_schema ORDER BY name");
    for call in [
        "SELECT crsql_as_crr('t')",
        "SELECT crsql_begin_alter('r')",
        "SELECT crsql_as_table('r')",
        "SELECT crr_new_site_id()",
        "SELECT crsql_config_set('hlc-max-drift-ms', 5000)",
    ] {
        for in_app_txn in [false, true] {
            let before = (schema(&a), rows(&a, "SELECT * FROM crr_meta ORDER BY key"), rows(&a, "SELECT * FROM crr_sites"));
            b.execute_batch("BEGIN IMMEDIATE").unwrap();
            if in_app_txn {
                a.execute_batch("BEGIN").unwrap();
            }
            let e = a.execute_batch(call).unwrap_err();
            assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy), "{call}: {e}");
            assert_eq!(a.is_autocommit(), !in_app_txn, "{call}");
            if in_app_txn {
                a.execute_batch("ROLLBACK").unwrap();
            }
            b.execute_batch("COMMIT").unwrap();
            let after = (schema(&a), rows(&a, "SELECT * FROM crr_meta ORDER BY key"), rows(&a, "SELECT * FROM crr_sites"));
            assert!(before == after, "{call}: changed something");
        }
        a.execute_batch(call).unwrap_or_else(|e| panic!("{call}, with the lock free: {e}"));
        if call.contains("begin_alter") {
            a.execute_batch("SELECT crsql_commit_alter('r')").unwrap();
        }
    }
}

/// Another connection loads the extension at any step of this connection's load on a file of
/// an earlier build (both upgrade), and on a fresh file, which the loads leave empty, asks
/// for the site id at any step of this connection's first call (both install): this call
/// goes through, and the database has one site id, which both connections report, and the
/// current internal schema. (The other connection, which has no busy timeout, fails where
/// this one holds the write lock.) Until 2026-12-06 the two installs could collide ("UNIQUE
/// constraint failed: crr_sites.ordinal") and a load that read before another's commit
/// failed with SQLITE_BUSY; tests/concurrency.rs starts real processes at once. (The other
/// load runs inside this one, from its progress handler: the build of 1958a17 held a lock
/// of its own through the whole load, and deadlocked here.) Every 5th step; CRR_MEDDLE_STRIDE.
#[test]
fn a_load_goes_through_whatever_another_connections_load_does_meanwhile() {
    let dir = tmpdir("meddled-load");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v4-2dc5e40.sqlite3");
    for from in [None, Some(&fixture)] {
        for mode in ["WAL", "DELETE"] {
            let mut done = false;
            for at in (1..).step_by(meddle_stride(5)) {
                let path = fresh_file(&dir, "l.db");
                if let Some(f) = from {
                    std::fs::copy(f, &path).unwrap();
                }
                let a = rusqlite::Connection::open(&path).unwrap();
                a.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(())).unwrap();
                let b = rusqlite::Connection::open(&path).unwrap();
                b.busy_timeout(std::time::Duration::ZERO).unwrap();
                let mut b_loaded = false;
                let what = format!("{mode}, {}, the other {} at step {at}", if from.is_some() { "v4 file" } else { "fresh file" }, if from.is_some() { "load" } else { "install" });
                let (r, ran) = if from.is_some() {
                    let mut meddle = || b_loaded = load_extension_checked(&b).is_ok();
                    meddle_at(&a, at, &mut meddle, || load_extension_checked(&a))
                } else {
                    load_extension_checked(&a).unwrap();
                    b_loaded = load_extension_checked(&b).is_ok();
                    let mut meddle = || b_loaded &= b.query_row("SELECT crsql_site_id()", [], |_| Ok(())).is_ok();
                    let (r, ran) = meddle_at(&a, at, &mut meddle, || a.query_row("SELECT crsql_site_id()", [], |_| Ok(())).map_err(|e| e.to_string()));
                    (r.map(drop), ran)
                };
                r.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(one::<i64>(&a, "SELECT count(*) FROM crr_sites WHERE ordinal = 0"), 1, "{what}");
                assert_eq!(one::<i64>(&a, "SELECT value FROM crr_meta WHERE key = 'schema'"), 7, "{what}");
                let site: Vec<u8> = one(&a, "SELECT crsql_site_id()");
                if b_loaded {
                    assert_eq!(one::<Vec<u8>>(&b, "SELECT crsql_site_id()"), site, "{what}");
                }
                a.execute_batch("CREATE TABLE IF NOT EXISTS n(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('n'); INSERT INTO n VALUES (1, 'x');").unwrap();
                assert_eq!(changes_where(&a, "WHERE \"table\" = 'n'").len(), 1, "{what}");
                if !ran {
                    done = true;
                    break;
                }
            }
            assert!(done);
        }
    }
}

/// crsql_config_set('clock', ...) refuses a change once CRRs exist. Another connection that
/// makes a CRR and writes it at any step of the call must not get through with it unless it
/// came after the call's commit: the versions would be of one clock and the setting of the
/// other. (Until 2026-12-06 the call read whether CRRs exist, then wrote the setting, each in
/// a transaction of its own: at 20 of its steps both went through, with hlc versions under
/// the lamport setting.)
#[test]
fn a_clock_change_and_another_connections_first_crr_do_not_both_go_through() {
    let dir = tmpdir("meddled-clock");
    let mut wrong = Vec::new();
    for at in 1.. {
        let path = dir.join(format!("c{at}.db"));
        let path = path.to_str().unwrap();
        let a = open(path);
        a.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT);").unwrap();
        let b = open(path);
        b.busy_timeout(std::time::Duration::ZERO).unwrap();
        let mut meddle = || {
            let _ = b.execute_batch("BEGIN; SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x'); COMMIT;");
            if !b.is_autocommit() {
                b.execute_batch("ROLLBACK").unwrap();
            }
        };
        let (_, ran) = meddle_at(&a, at, &mut meddle, || a.execute_batch("SELECT crsql_config_set('clock', 'lamport')"));
        if !ran {
            break;
        }
        a.execute("INSERT OR REPLACE INTO t VALUES (2, 'y')", []).ok();
        let clock: String = one(&a, "SELECT crsql_config_get('clock')");
        let lamport = one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE col_version < 1000");
        let hlc = one::<i64>(&a, "SELECT count(*) FROM crsql_changes WHERE col_version >= 1000");
        if (clock == "lamport" && hlc > 0) || (clock == "hlc" && lamport > 0) {
            wrong.push((at, clock, lamport, hlc));
        }
    }
    assert!(wrong.is_empty(), "the clock setting disagrees with the versions, the other connection at (step, setting, lamport versions, hlc versions) {wrong:?}");
}

/// A table whose row of defaults fails a CHECK, or whose CHECK raises an error on it, is
/// refused however crsql_as_crr is stopped: a progress handler that gives up once (a time
/// slice spent) stops one statement only, and until 2026-12-06 the probe took its stopped
/// CHECK for a pass: the table became a CRR whose every merge of a new row failed.
#[test]
fn a_check_of_the_defaults_stopped_once_is_no_pass() {
    for (table, why) in [
        ("qty(id INTEGER PRIMARY KEY NOT NULL, name TEXT, n INTEGER DEFAULT 0 CHECK (n > 0))", "CHECK (n > 0)"),
        ("doc(id INTEGER PRIMARY KEY NOT NULL, body TEXT DEFAULT '' CHECK (json_extract(body, '$.v') IS NOT NULL))", "CHECK (json_extract(body, '$.v') IS NOT NULL) (malformed JSON)"),
    ] {
        let fresh = || {
            let c = mem();
            // (The internal tables first, as a database that has anything in it gets at the
            // load: the steps counted are crsql_as_crr's own.)
            c.execute_batch(&format!("SELECT crsql_site_id(); CREATE TABLE {table};")).unwrap();
            c
        };
        let name = &table[..3];
        let call = format!("SELECT crsql_as_crr('{name}')");
        let c = fresh();
        let (r, steps) = Stop::count(&c, || c.execute_batch(&call));
        assert!(r.unwrap_err().to_string().contains(why));
        let mut refused = 0;
        for at_step in 0..steps {
            let c = fresh();
            let r = Stop::at(&c, at_step, How::GivesUpOnce, || c.execute_batch(&call));
            let Err(e) = r else { panic!("{table}: stopped once at step {at_step} of {steps}, it became a CRR") };
            // (An interrupt SQLite reports after a CHECK's error keeps the error's message.)
            let interrupted = e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted);
            let e = e.to_string();
            assert!(interrupted || e.contains(&format!("a row of its defaults fails {why}")), "{table}, step {at_step}: {e}");
            refused += !interrupted as usize;
            assert!(c.is_autocommit(), "{table}, step {at_step}: a transaction was left open");
            assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables"), 0, "{table}, step {at_step}");
            assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), 0, "{table}, step {at_step}");
        }
        // (Most stops are in statements whose error crsql_as_crr reports.)
        assert!(refused > 0 && steps > 100, "{table}: {refused} refusals in {steps} steps");
    }
}

/// crsql_as_crr and crr_new_site_id whose commit finds the database busy (rollback-journal
/// mode, another connection in a read transaction) return SQLITE_BUSY, leave nothing behind and
/// no transaction open, and go through once the reader is done. Until 2026-12-05 the
/// savepoint, rolled back but not released (its RELEASE is the commit that was busy), stayed
/// open as a transaction: the app's next writes went into it, and crr_new_site_id reported
/// success there.
#[test]
fn functions_whose_commit_finds_the_database_busy_leave_no_transaction_open() {
    let path = tmpdir("busy-commit").join("b.db").to_str().unwrap().to_string();
    let b = open(&path);
    // (No waiting for the reader: rusqlite's default busy timeout is 5 s.)
    b.busy_timeout(std::time::Duration::ZERO).unwrap();
    b.execute_batch("PRAGMA journal_mode = DELETE; CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v TEXT); INSERT INTO u VALUES (1, 'x');").unwrap();
    let site: Vec<u8> = one(&b, "SELECT crsql_site_id()");
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    assert_eq!(one::<i64>(&reader, "SELECT count(*) FROM u"), 1);
    for call in ["SELECT crsql_as_crr('u')", "SELECT crr_new_site_id()"] {
        let e = b.execute_batch(call).expect_err(call);
        assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy), "{call}: {e}");
        assert!(b.is_autocommit(), "{call}: a transaction was left open");
        assert_eq!(one::<i64>(&b, "SELECT count(*) FROM crr_tables"), 0, "{call}");
        assert_eq!(one::<Vec<u8>>(&b, "SELECT crsql_site_id()"), site, "{call}");
    }
    reader.execute_batch("COMMIT").unwrap();
    b.execute_batch("SELECT crsql_as_crr('u'); SELECT crr_new_site_id();").unwrap();
    assert!(b.is_autocommit());
    assert_eq!(changes(&b).len(), 1);
    assert_ne!(one::<Vec<u8>>(&b, "SELECT crsql_site_id()"), site);

    // The first load on a database installs the internal schema, in a savepoint of its own.
    let path = tmpdir("busy-install").join("c.db").to_str().unwrap().to_string();
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("PRAGMA journal_mode = DELETE; CREATE TABLE x(y); INSERT INTO x VALUES (1); BEGIN;").unwrap();
    assert_eq!(one::<i64>(&reader, "SELECT count(*) FROM x"), 1);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.busy_timeout(std::time::Duration::ZERO).unwrap();
    // SAFETY (test): loading our own extension into our own connection.
    let loaded = unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(&c).unwrap();
        c.load_extension(extension_path(), Some("sqlite3_crr_init"))
    };
    assert!(loaded.is_err_and(|e| e.to_string().contains("locked")), "the install's commit was not busy");
    assert!(c.is_autocommit(), "a load whose install was busy left a transaction open");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'crr%'"), 0);
    reader.execute_batch("COMMIT").unwrap();
    load(&c);
    assert!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'crr%'") > 0);
}

/// Two replicas of the same two CRRs, made in the other order unless `same_order` (so at the
/// same schema cookie, with other table ids), each with a history of its own at other wall
/// clocks: single-row transactions and one of two rows (whose tick crr_ticks keeps). Both have
/// read their feed, so each connection holds what it has learnt of its database.
fn two_histories(a: &Connection, b: &Connection, same_order: bool) {
    let t = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');";
    let u = "CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, x TEXT); SELECT crsql_as_crr('u');";
    a.execute_batch(&if same_order { format!("{t}{u}") } else { format!("{u}{t}") }).unwrap();
    b.execute_batch(&format!("{t}{u}")).unwrap();
    for (c, who, ms) in [(a, "a", 1_600_000_000_000i64), (b, "b", 1_700_000_000_000)] {
        c.execute_batch(&format!(
            "SELECT crr_set_wall_clock_for_testing({ms}); INSERT INTO t VALUES (1, '{who}', 1); INSERT INTO u VALUES (1, '{who}');
             BEGIN; INSERT INTO t VALUES (2, '{who}', 2); INSERT INTO t VALUES (3, '{who}', 3); COMMIT;"
        ))
        .unwrap();
        assert_eq!(changes(c).len(), 7);
    }
    let cookie = |c: &Connection| one::<i64>(c, "PRAGMA schema_version");
    assert_eq!(cookie(a), cookie(b), "the case where the schema cookie tells nothing");
}

/// `a` now holds `b`'s database: it reads it as `b` does.
fn reads_as(a: &Connection, b: &Connection) {
    assert_eq!(portable(a), portable(b));
    assert_eq!(one::<Vec<u8>>(a, "SELECT crsql_site_id()"), one::<Vec<u8>>(b, "SELECT crsql_site_id()"));
    assert_eq!(one::<i64>(a, "SELECT crsql_db_version()"), 3);
}

/// `a` now holds `b`'s database: it reads it as `b` does, and writes on as `b` (the same site
/// id: `crr_new_site_id` is the app's to call), into the right clocks.
fn reads_and_writes_as(a: &Connection, b: &Connection) {
    reads_as(a, b);
    for c in [a, b] {
        c.execute_batch("INSERT INTO t VALUES (4, 'after', 4); UPDATE u SET x = 'after' WHERE id = 1;").unwrap();
    }
    assert_eq!(portable(a), portable(b));
    assert_eq!(dump(a, "t"), dump(b, "t"));
    let fresh = changes_where(a, "WHERE db_version > 3");
    assert_eq!(fresh.len(), 3, "{fresh:?}");
    let c = mem();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');
                     CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, x TEXT); SELECT crsql_as_crr('u');")
        .unwrap();
    sync_since(a, &c, 0).unwrap();
    assert_eq!(dump(&c, "t"), dump(b, "t"));
    assert_eq!(dump(&c, "u"), dump(b, "u"));
}

/// `two_histories` of a replica in a file (its path returned) and one in memory.
fn file_and_memory_histories(dir: &str, same_order: bool) -> (std::path::PathBuf, Connection, Connection) {
    let path = tmpdir(dir).join("a.db");
    let (a, b) = (open(path.to_str().unwrap()), mem());
    two_histories(&a, &b, same_order);
    (path, a, b)
}

/// A database restored through the backup API into a connection that has the extension
/// loaded is read as the database it now is. Until 2026-12-06 the connection went on with what
/// it had learnt of the database it replaced: its feed named that database's site id for the
/// restored one's own changes, and gave changes whose tick crr_ticks keeps that database's
/// tick (so peers merged other versions than the restored database's own feed holds), and new
/// writes carried the old site id.
#[test]
fn a_database_restored_through_the_backup_api_is_read_as_itself() {
    let (mut a, b) = (mem(), mem());
    two_histories(&a, &b, false);
    restore(&b, &mut a);
    reads_and_writes_as(&a, &b);
}

/// The same restore made by another connection to the file (a process restoring a backup
/// while the app runs).
#[test]
fn a_database_restored_into_its_file_by_another_connection_is_read_as_itself() {
    let (path, a, b) = file_and_memory_histories("restored-by-another", false);
    let mut restorer = Connection::open(&path).unwrap();
    restore(&b, &mut restorer);
    drop(restorer);
    reads_and_writes_as(&a, &b);
}

/// `sqlite3_deserialize` into a connection that has the extension loaded is refused with an
/// error saying what to do, and nothing is written. SQLite keeps an eponymous virtual table on
/// the schema it was first used with, and deserialize frees that schema: with SQLite 3.46
/// every later statement on crsql_changes (or json_each) reads past the connection's memory,
/// and a test that read the feed there crashed in one run of ten or twenty. Until 2026-12-06 the extension
/// went on: it wrote one CRR's clock for another's rows where the two databases had made them
/// in another order (the schema cookie, which the image keeps, told it nothing). Deserialized
/// before the load, the database is read and written as itself.
#[test]
fn a_database_deserialized_into_the_connection_is_refused_and_works_when_loaded_after() {
    let (mut a, mut b) = (mem(), mem());
    two_histories(&a, &b, false);
    let mut image = || {
        let rusqlite::serialize::Data::Owned(image) = b.serialize(rusqlite::MAIN_DB).unwrap() else {
            panic!("an in-memory database serializes to a copy")
        };
        image
    };
    a.deserialize(rusqlite::MAIN_DB, image(), false).unwrap();
    let refused = "the main database was replaced through sqlite3_deserialize after sqlite-crr was loaded";
    for sql in ["SELECT crsql_site_id()", "INSERT INTO t VALUES (4, 'refused', 4)", "SELECT crsql_as_crr('t')"] {
        let e = err(&a, sql);
        assert!(e.contains(refused), "{sql}: {e}");
    }
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM t"), 3);
    let mut c = Connection::open_in_memory().unwrap();
    c.deserialize(rusqlite::MAIN_DB, image(), false).unwrap();
    load(&c);
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(1700000000000)").unwrap();
    reads_and_writes_as(&c, &b);
}

/// Another database of the same schema put in the file under the same schema cookie, as
/// `sqlite3_rsync` does (it copies the origin's pages, cookie included; tests/lang/replicas.py
/// runs it): the data version moves, as at any other connection's commit, and the connection
/// reads the token again. (Simulated here by a restore whose cookie is set back. The schema is
/// made in the same order on both: SQLite itself, which knows a schema by its cookie too,
/// would read another one's tables through the old root pages.)
#[test]
fn a_database_replaced_in_its_file_under_the_same_cookie_is_read_as_itself() {
    let (path, a, b) = file_and_memory_histories("replaced-same-cookie", true);
    let cookie: i64 = one(&a, "PRAGMA schema_version");
    let mut restorer = Connection::open(&path).unwrap();
    restore(&b, &mut restorer);
    restorer.execute_batch(&format!("PRAGMA schema_version = {cookie}")).unwrap();
    drop(restorer);
    assert_eq!(one::<i64>(&a, "PRAGMA schema_version"), cookie);
    reads_as(&a, &b);
    // SQLite keeps the triggers it compiled from the old database's schema (it knows a schema
    // by its cookie), and they carry that database's token: the write is refused, saying why,
    // not recorded as the old database's. A new connection writes.
    let e = err(&a, "INSERT INTO t VALUES (4, 'after', 4)");
    assert!(e.contains("replaced under it by another database with the same schema cookie"), "{e}");
    drop(a);
    let a = open(path.to_str().unwrap());
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(1700000000000)").unwrap();
    reads_and_writes_as(&a, &b);
}

/// A restore of the database's own earlier backup, the common case: the versions after the
/// backup are handed out again, with new ticks. Until 2026-12-06 the connection kept the
/// ticks it had read of the versions the restore undid, and gave a change that refers to its
/// transaction's tick the old one (here row 5, beside row 4 of the same transaction).
#[test]
fn a_restore_of_its_own_earlier_backup_reads_the_new_ticks() {
    let mut a = replica();
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(1600000000000); INSERT INTO t VALUES (1, 'x', 1);").unwrap();
    let mut backup = Connection::open_in_memory().unwrap();
    restore(&a, &mut backup);
    a.execute_batch("BEGIN; INSERT INTO t VALUES (2, 'x', 2); INSERT INTO t VALUES (3, 'x', 3); COMMIT;").unwrap();
    assert_eq!(changes_where(&a, "WHERE db_version = 2").len(), 4);
    restore(&backup, &mut a);
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(1700000000000); BEGIN; INSERT INTO t VALUES (4, 'y', 4); INSERT INTO t VALUES (5, 'y', 5); COMMIT;").unwrap();
    let again = changes_where(&a, "WHERE db_version = 2");
    assert_eq!(again.len(), 4);
    assert!(again.iter().all(|c| c.col_version == again[0].col_version), "one transaction, one tick: {again:?}");
    let mut fresh = Connection::open_in_memory().unwrap();
    restore(&a, &mut fresh);
    load(&fresh);
    assert_eq!(portable(&fresh), portable(&a));
}

/// A copy of the database that went on elsewhere (the same token and site id, a tick far
/// ahead kept in its one record), restored into the file by another connection, under a
/// connection whose last commit left a clock mark for the database it replaced: that
/// connection's next write must outrank the copy's tick. (Since stop 44 a connection reads
/// only the records stored after its last commit's db_version, where the last crr_ticks row
/// is still the one it knew, as it is here; the restore moves the schema cookie, and the
/// registry's reload drops what the connection kept of its last commit. Without that drop
/// this write got a version below the copy's.)
#[test]
fn a_restored_copy_that_went_on_elsewhere_is_recovered_whole() {
    let dir = tmpdir("restored-copy-went-on");
    let path = dir.join("a.db");
    let a = open(path.to_str().unwrap());
    a.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t');").unwrap();
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(5000000); INSERT INTO t VALUES (1, 'x', 1);").unwrap();
    let mut copy = Connection::open_in_memory().unwrap();
    restore(&a, &mut copy);
    a.execute_batch("INSERT INTO t VALUES (2, 'x', 2);").unwrap();
    load(&copy);
    copy.execute_batch("SELECT crr_set_wall_clock_for_testing(9000000); INSERT INTO t VALUES (3, 'ahead', 3);").unwrap();
    let ahead: i64 = one(&copy, "SELECT col_version FROM crsql_changes WHERE pk = crsql_pack_columns(3) AND cid = 'a'");
    let mut restorer = open(path.to_str().unwrap());
    restore(&copy, &mut restorer);
    a.execute_batch("SELECT crr_set_wall_clock_for_testing(1000); INSERT INTO t VALUES (4, 'after', 4);").unwrap();
    let after: i64 = one(&a, "SELECT col_version FROM crsql_changes WHERE pk = crsql_pack_columns(4) AND cid = 'a'");
    assert!(after > ahead, "a write after the restore got version {after}, not above the restored copy's {ahead}");
}

/// A database emptied under a live connection (SQLITE_DBCONFIG_RESET_DATABASE, then VACUUM) is
/// a new database: the connection reads no CRRs, and the first function that needs the
/// internal tables (crsql_site_id() here, as crsql_as_crr) makes them again, with a new site
/// id and a history from version 1. (The stop-36 build went on naming the emptied database's
/// site id, which it had cached, for the new one; until the load left new databases alone,
/// crsql_site_id() said the tables were gone.)
#[test]
fn a_database_emptied_under_a_live_connection_starts_over_at_crsql_as_crr() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2);").unwrap();
    let old_site: Vec<u8> = one(&c, "SELECT crsql_site_id()");
    assert_eq!(changes(&c).len(), 4);
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_RESET_DATABASE, true).unwrap();
    c.execute_batch("VACUUM").unwrap();
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_RESET_DATABASE, false).unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema"), 0);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 0);
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 0);
    let site: Vec<u8> = one(&c, "SELECT crsql_site_id()");
    assert_ne!(site, old_site);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (5, 'z', 5);").unwrap();
    assert_eq!(one::<Vec<u8>>(&c, "SELECT crsql_site_id()"), site);
    let fresh = changes(&c);
    assert_eq!(fresh.len(), 2);
    assert!(fresh.iter().all(|x| x.db_version == 1 && x.site_id == site), "{fresh:?}");
}

/// A db_version at 2^62, which no database reaches (a damaged crr_meta's floor here), ends
/// local writes and merges with an error saying so, where adding to one at the top of the
/// range wrapped to versions "changes since V" had passed (until 2026-12-06: two transactions
/// after a floor of i64::MAX both recorded at db_version 0).
#[test]
fn an_exhausted_db_version_is_an_error_not_a_wrap() {
    for (floor, writes_left) in [(i64::MAX, 0), ((1 << 62) - 1, 1), (1 << 62, 0)] {
        let c = replica();
        c.execute_batch("INSERT INTO t VALUES (1, 'x', 1)").unwrap();
        c.execute("INSERT OR REPLACE INTO crr_meta VALUES ('db_version_floor', ?1)", [floor]).unwrap();
        let peer = replica();
        peer.execute_batch("INSERT INTO t VALUES (9, 'peer', 9)").unwrap();
        for i in 0..writes_left {
            c.execute("INSERT INTO t VALUES (?1, 'y', 2)", [100 + i]).unwrap();
        }
        let before = changes(&c);
        for attempt in ["write", "merge"] {
            let e = match attempt {
                "write" => c.execute_batch("INSERT INTO t VALUES (2, 'z', 3)"),
                _ => apply(&c, &changes(&peer)),
            }
            .unwrap_err()
            .to_string();
            assert!(e.contains("the db_version is exhausted"), "{floor} {attempt}: {e}");
        }
        assert_eq!(changes(&c), before, "{floor}");
        assert!(before.iter().all(|x| x.db_version == 1 || x.db_version == (1 << 62)), "{floor}: {before:?}");
    }
}

/// A clock row damaged to the top of the range: a key update of a live row whose causal
/// length is i64::MAX (the Rust path: a delete of the old key) says the row is exhausted,
/// where it wrapped to a negative causal length; a negative one is refused as damage when
/// read.
#[test]
fn a_clock_row_at_the_top_of_the_range_is_an_error_not_a_wrap() {
    let c = replica();
    c.execute_batch("INSERT INTO t VALUES (1, 'x', 1), (3, 'z', 3)").unwrap();
    c.execute_batch("UPDATE crr_clock_1 SET cl = 9223372036854775807 WHERE pk = 1; UPDATE crr_clock_1 SET cl = -3 WHERE pk = 3;").unwrap();
    let e = err(&c, "UPDATE t SET id = 10 WHERE id = 1");
    assert!(e.contains("a row's causal length is exhausted"), "{e}");
    let e = err(&c, "UPDATE t SET id = 30 WHERE id = 3");
    assert!(e.contains("negative causal length"), "{e}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM t WHERE id IN (1, 3)"), 2);
}

/// A damaged slot in crr_columns is an error naming the CRR, the column and the slot, where the
/// registry's load sized a vector by it: 2^40 failed the allocation, which aborts the process,
/// and larger ones panicked.
#[test]
fn a_damaged_slot_is_an_error_naming_it() {
    for slot in [1i64 << 40, i64::MAX, 32_767] {
        let c = replica();
        c.execute("UPDATE crr_columns SET slot = ?1 WHERE name = 'b'", [slot]).unwrap();
        let e = err(&c, "SELECT crsql_db_version()");
        assert!(e.contains(&format!("corrupt crr_columns row of CRR \"t\": column \"b\" has slot {slot}, beyond the 32767")), "{e}");
        c.execute("UPDATE crr_columns SET slot = 1 WHERE name = 'b'", []).unwrap();
        c.execute_batch("INSERT INTO t VALUES (1, 'x', 1)").unwrap();
        assert_eq!(changes(&c).len(), 2);
    }
}

/// A damaged next table id (crr_meta's `next_tid`) is refused by crsql_as_crr, where i64::MAX
/// wrapped to a negative id (a clock no registry load reads) and 0 or less made one.
#[test]
fn a_damaged_next_table_id_is_refused() {
    for next in [i64::MAX, 0, -5] {
        let c = replica();
        c.execute("UPDATE crr_meta SET value = ?1 WHERE key = 'next_tid'", [next]).unwrap();
        c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT)").unwrap();
        let e = err(&c, "SELECT crsql_as_crr('u')");
        assert!(e.contains(&format!("corrupt crr_meta: next_tid {next} is not a table id")), "{e}");
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables"), 1);
    }
}

/// `load_extension_checked` on a thread of its own, failing the test where it has not returned
/// within a minute (a load that never returns would hang the suite).
fn load_within_a_minute(c: Connection) -> (Connection, Result<(), String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let loaded = load_extension_checked(&c);
        tx.send((c, loaded)).ok();
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the load returns")
}

/// The extension's names in an app's schema: a table or view of an internal table's name with
/// other columns, or a crr_meta without a schema version, is refused by name where the
/// extension would have taken it for its own (until 2026-12-06 an app's `crr_dirty` made every
/// write to a CRR fail, an app's `crr_meta` failed the load with "no such column: value", and
/// one shaped as ours was written into); and a table or view named crsql_changes, which would
/// hide the virtual table from every transport, refuses the load (until then it did, silently,
/// and the close failed with "database is locked", leaving the connection open). The database
/// is left as it was, and works once the app's object has another name.
#[test]
fn an_apps_objects_of_the_extensions_names_are_refused_by_name() {
    let cases = [
        ("CREATE TABLE crr_dirty(a, b)", "a table crr_dirty(a, b) where sqlite-crr keeps its table crr_dirty(tid, dbv, bucket)", "crr_dirty"),
        ("CREATE TABLE crr_meta(x)", "a table crr_meta(x) where sqlite-crr keeps its table crr_meta(key, value)", "crr_meta"),
        ("CREATE TABLE crr_meta(key TEXT PRIMARY KEY, value)", "a table named crr_meta that holds no sqlite-crr schema version", "crr_meta"),
        // Our columns under another spelling of the name: until 2026-12-07 the load went round
        // its install for ever (it looked for crr_meta in that spelling only). (A trigger of
        // one of our names is no such object: the next test.)
        ("CREATE TABLE CRR_Meta(key TEXT PRIMARY KEY, value)", "a table named crr_meta that holds no sqlite-crr schema version", "CRR_Meta"),
        ("CREATE VIEW CRR_Tables AS SELECT 1 AS tid, 'x' AS name", "a view CRR_Tables(tid, name) where sqlite-crr keeps its table crr_tables(tid, name)", "CRR_Tables"),
        ("CREATE TABLE Crr_Sites(x)", "a table Crr_Sites(x) where sqlite-crr keeps its table crr_sites(ordinal, site_id)", "Crr_Sites"),
        ("CREATE TABLE other(x); CREATE INDEX crr_dirty ON other(x)", "an index named crr_dirty where sqlite-crr keeps its table crr_dirty(tid, dbv, bucket)", "crr_dirty"),
        ("CREATE TABLE crsql_tracked_peers(peer, at)", "a table crsql_tracked_peers(peer, at)", "crsql_tracked_peers"),
        ("CREATE TABLE crsql_changes(a)", "a table or view named crsql_changes, which would hide the extension's virtual table", "crsql_changes"),
        ("CREATE VIEW Crr_Internal_Txn AS SELECT 1", "a table or view named Crr_Internal_Txn, which would hide", "crr_internal_txn"),
    ];
    for (app, refusal, name) in cases {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(&format!("{app}; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT);")).unwrap();
        let schema = rows(&c, "SELECT type, name, sql FROM sqlite_schema ORDER BY name");
        let (c, loaded) = load_within_a_minute(c);
        let e = loaded.unwrap_err();
        assert!(e.contains(refusal), "{app}: {e}");
        assert_eq!(rows(&c, "SELECT type, name, sql FROM sqlite_schema ORDER BY name"), schema, "{app}");
        assert!(c.execute_batch("SELECT crsql_site_id()").is_err(), "{app}: the load registered its functions");
        // Renamed, it is the app's table and the extension's are made beside it.
        let kind = ["VIEW", "INDEX"].into_iter().find(|k| app.contains(k)).unwrap_or("TABLE");
        c.execute_batch(&format!("DROP {kind} {name}")).unwrap();
        load_extension_checked(&c).unwrap();
        c.execute_batch("SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
        assert_eq!(changes(&c).len(), 1, "{app}");
        c.close().unwrap();
    }
    // Made after the load, either hides its virtual table from then on: every write, read and
    // merge says so, where the writes went unrecorded (crr_internal_txn) or the reads read the
    // app's table (crsql_changes).
    for hiding in ["CREATE TABLE crr_internal_txn(x)", "CREATE VIEW crsql_changes AS SELECT 1 AS x"] {
        let c = mem();
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
        c.execute_batch(hiding).unwrap();
        for sql in ["INSERT INTO t VALUES (2, 'y')", "UPDATE t SET a = 'z'", "SELECT crsql_db_version()", "SELECT crsql_as_crr('t')"] {
            let e = err(&c, sql);
            assert!(e.contains("which would hide the extension's virtual table of that name"), "{hiding}: {sql}: {e}");
        }
        c.execute_batch(if hiding.contains("VIEW") { "DROP VIEW crsql_changes" } else { "DROP TABLE crr_internal_txn" }).unwrap();
        c.execute_batch("INSERT INTO t VALUES (2, 'y')").unwrap();
        assert_eq!(changes(&c).len(), 2, "{hiding}");
    }
}

/// An app's triggers named as the extension's tables are no obstacle: triggers have names of
/// their own, apart from tables', views' and indexes'. (A build of 2026-12-07 took a trigger
/// named crr_meta for the table, and the load failed with "no such table: main.crr_meta".)
#[test]
fn an_apps_triggers_of_the_extensions_table_names_are_no_obstacle() {
    let dir = tmpdir("trigger-names");
    // Made before the extension's first load, or after its install.
    for triggers_first in [true, false] {
        let path = fresh_file(&dir, &format!("t{triggers_first}.db"));
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE log(x); CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT);").unwrap();
        if !triggers_first {
            load(&c);
            c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
        }
        c.execute_batch(
            "CREATE TRIGGER crr_meta AFTER INSERT ON log BEGIN SELECT 1; END;
             CREATE TRIGGER CRR_Sites AFTER DELETE ON log BEGIN SELECT 1; END;",
        )
        .unwrap();
        drop(c);
        let c = open(&path);
        c.execute_batch("SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x'); INSERT INTO log VALUES (1);").unwrap();
        assert_eq!(changes(&c).len(), 1, "{triggers_first}");
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name IN ('crr_meta', 'CRR_Sites')"), 2);
    }
}

/// An ATTACHed database's table named crsql_changes (a transport's staging copy, say) is found
/// before the virtual table by an unqualified name, which SQLite cannot change; `main.crsql_changes`
/// is always the extension's. The connection still closes: the load connects the virtual table
/// by that name (until 2026-12-06 it used the unqualified one, and when an attached table
/// answered, the extension's statements were left for the close to fail on, "database is
/// locked", leaving the connection open).
#[test]
fn an_attached_table_named_crsql_changes_leaves_main_crsql_changes_and_the_close_working() {
    for read_main in [false, true] {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("ATTACH ':memory:' AS stage; CREATE TABLE stage.crsql_changes(a); INSERT INTO stage.crsql_changes VALUES ('staged');").unwrap();
        load(&c);
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
        assert_eq!(one::<String>(&c, "SELECT a FROM crsql_changes"), "staged");
        if read_main {
            assert_eq!(one::<i64>(&c, "SELECT count(*) FROM main.crsql_changes"), 1);
        }
        c.close().map_err(|(_, e)| e).unwrap();
    }
}

/// A new database is left as it is at the load: the settings only an empty database takes
/// (`PRAGMA page_size`, `auto_vacuum`, `encoding`) still take on a connection that loaded the
/// extension first, as every connection of an app that registers it for all connections
/// does. The internal tables and the site id come at the first function that needs them, on
/// whichever connection calls it first. (Until 2026-12-06 the load made them at once: the
/// three settings were silently ignored, page_size stayed 4096.)
#[test]
fn a_new_database_is_left_empty_at_load_so_its_file_settings_take() {
    let dir = tmpdir("new-database");
    let path = fresh_file(&dir, "n.db");
    let c = open(&path);
    let other = open(&path);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema"), 0);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 0);
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 0);
    assert_eq!(one::<String>(&c, "SELECT crsql_config_get('clock')"), "hlc");
    c.execute_batch("PRAGMA page_size = 8192; PRAGMA auto_vacuum = FULL;").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'héllo');").unwrap();
    assert_eq!(one::<i64>(&c, "PRAGMA page_size"), 8192);
    assert_eq!(one::<i64>(&c, "PRAGMA auto_vacuum"), 1);

    // The encoding too, on a connection of its own. (On another connection loaded before
    // the change, SQLite cannot take the new encoding inside a running statement: a first
    // statement that is a call of ours, with no table of its own to read the schema at its
    // prepare, fails with "database table is locked"; any statement that names a table first
    // reads the schema, and the calls after it work.)
    let u = open(&fresh_file(&dir, "u.db"));
    u.execute_batch("PRAGMA encoding = 'UTF-16le'; CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'héllo');").unwrap();
    assert_eq!(one::<String>(&u, "PRAGMA encoding"), "UTF-16le");
    assert_eq!(changes(&u)[0].val, V::Text("héllo".into()));
    // The other connection, loaded before the tables were made, finds them and the CRR.
    let site: Vec<u8> = one(&c, "SELECT crsql_site_id()");
    assert_eq!(site.len(), 16);
    assert_eq!(one::<Vec<u8>>(&other, "SELECT crsql_site_id()"), site);
    assert_eq!(changes(&other), changes(&c));
    other.execute("INSERT INTO t VALUES (2, 'wörld')", []).unwrap();
    let peer = mem();
    peer.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');").unwrap();
    sync_since(&c, &peer, 0).unwrap();
    assert_eq!(rows(&peer, "SELECT id, a FROM t ORDER BY id"), rows(&c, "SELECT id, a FROM t ORDER BY id"));
    assert_eq!(rows(&peer, "SELECT a FROM t WHERE id = 2"), vec![vec![V::Text("wörld".into())]]);
    assert!(changes(&peer).iter().all(|x| x.site_id == site));
    drop((c, other));
    let again = open(&path);
    assert_eq!(one::<i64>(&again, "PRAGMA page_size"), 8192);
    assert_eq!(one::<Vec<u8>>(&again, "SELECT crsql_site_id()"), site);
}

/// A call the extension refuses leaves a new database as it was: the internal tables come with
/// the first call that succeeds (so an empty database's file settings, above, still take
/// after a refused one). (Until
/// 2026-12-07 crsql_as_crr of a missing table or one without a key, crsql_begin_alter of any
/// table, and crsql_config_set of a wrong value installed them before they failed.) And a
/// name that is no table of main is told for what it is.
#[test]
fn a_refused_call_leaves_a_new_database_as_it_was() {
    let dir = tmpdir("refused-new");
    let c = open(&fresh_file(&dir, "n.db"));
    c.execute_batch(
        "CREATE TABLE nokey(a TEXT); CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); CREATE VIEW v AS SELECT 1 AS id;
         CREATE TEMP TABLE tmp(id INTEGER PRIMARY KEY NOT NULL); ATTACH ':memory:' AS aux; CREATE TABLE aux.far(id INTEGER PRIMARY KEY NOT NULL);",
    )
    .unwrap();
    let schema = || rows(&c, "SELECT type, name FROM main.sqlite_schema ORDER BY name");
    let before = schema();
    for (sql, said) in [
        ("SELECT crsql_as_crr('nope')", "table \"nope\" does not exist"),
        ("SELECT crsql_as_crr('nokey')", "table \"nokey\" cannot be a CRR: it has no PRIMARY KEY"),
        ("SELECT crsql_as_crr('v')", "\"v\" is a view: only tables can be CRRs"),
        ("SELECT crsql_as_crr('tmp')", "table \"tmp\" is a TEMP table: only tables of the main database can be CRRs"),
        ("SELECT crsql_as_crr('far')", "table \"far\" is in attached database \"aux\": only tables of the main database can be CRRs"),
        (
            "SELECT crsql_as_crr('main.t')",
            "table \"main.t\" does not exist: give the table's name alone, crsql_as_crr('t'), or the schema apart, crsql_as_crr('main', 't')",
        ),
        ("SELECT crsql_begin_alter('t')", "table \"t\" is not a CRR"),
        ("SELECT crsql_config_set('merge-equal-values', 'yes')", "setting \"merge-equal-values\" must be an integer"),
        ("SELECT crsql_config_set('clock', 'wall')", "setting \"clock\" must be 'hlc' or 'lamport'"),
        ("SELECT crsql_config_set('hlc-max-drift-ms', -1)", "must be a non-negative integer"),
    ] {
        let e = err(&c, sql);
        assert!(e.contains(said), "{sql}: {e}");
        assert_eq!(schema(), before, "{sql} left the database as it was");
    }
    c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    assert!(schema().len() > before.len() + 5, "the first call that succeeds installs");
    // Once installed, the same refusals say the same.
    assert!(err(&c, "SELECT crsql_as_crr('tmp')").contains("is a TEMP table"));
    assert!(err(&c, "SELECT crsql_begin_alter('nokey')").contains("table \"nokey\" is not a CRR"));
}

/// Two connections of one shared-cache database (`cache=shared`, as apps share an in-memory
/// database between connections: `file:name?mode=memory&cache=shared`) share SQLite's pages,
/// so one's commits do not show as another connection's to the other (its data version does not
/// move). Each still sees the other's CRRs, site id, alters and settings at once, and their
/// transactions never share a db_version.
#[test]
fn connections_of_a_shared_cache_database_see_each_others_work() {
    use rusqlite::OpenFlags;
    let uri = format!("file:crr-shared-{}?mode=memory&cache=shared", std::process::id());
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    let connect = || {
        let c = Connection::open_with_flags(&uri, flags).unwrap();
        load(&c);
        c
    };
    let (a, b) = (connect(), connect());
    a.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');").unwrap();
    // Each committed write gets the next db_version, whichever connection makes it, and the
    // other connection reads it at once.
    let last = std::cell::Cell::new(0i64);
    let write = |c: &Connection, sql: &str| {
        c.execute_batch(sql).unwrap();
        let committed = !sql.contains("ROLLBACK");
        last.set(last.get() + i64::from(committed));
        for x in [&a, &b] {
            assert_eq!(one::<i64>(x, "SELECT crsql_db_version()"), last.get(), "after {sql}");
        }
    };
    write(&b, "INSERT INTO t VALUES (1, 'b')");
    write(&a, "INSERT INTO t VALUES (2, 'a')");
    // A CRR one makes, the other tracks.
    a.execute_batch("CREATE TABLE u(k TEXT PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('u');").unwrap();
    write(&b, "INSERT INTO u VALUES ('x', 1)");
    // A new site id one gives the database, the other writes with.
    let site: Vec<u8> = one(&a, "SELECT crr_new_site_id()");
    write(&b, "INSERT INTO t VALUES (3, 'b')");
    assert_eq!(one::<Vec<u8>>(&b, "SELECT site_id FROM crsql_changes WHERE pk = crsql_pack_columns(3)"), site);
    // An alter one makes, the other writes the new column of.
    a.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN z TEXT; SELECT crsql_commit_alter('t');").unwrap();
    write(&b, "UPDATE t SET z = 'zed' WHERE id = 1");
    assert_eq!(one::<String>(&a, "SELECT val FROM crsql_changes WHERE cid = 'z'"), "zed");
    // A setting one changes, the other reads.
    a.execute_batch("SELECT crsql_config_set('merge-equal-values', 1)").unwrap();
    assert_eq!(one::<i64>(&b, "SELECT crsql_config_get('merge-equal-values')"), 1);
    // Transactions alternate, some rolled back, and a merge.
    for i in 0..12 {
        let end = if i % 5 == 4 { "ROLLBACK" } else { "COMMIT" };
        write(if i % 2 == 0 { &a } else { &b }, &format!("BEGIN; INSERT INTO t(id, a) VALUES ({}, 'n'); UPDATE u SET v = {i}; {end}", 100 + i));
    }
    let peer = mem();
    peer.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, z TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (500, 'peer', 'p');").unwrap();
    apply(&b, &changes(&peer)).unwrap();
    last.set(last.get() + 1);
    write(&a, "INSERT INTO t(id, a) VALUES (501, 'after the merge')");
    assert_eq!(last.get(), 17);
    // One feed, which a third connection loading afresh reads too.
    assert_eq!(changes(&a), changes(&b));
    assert_eq!(changes(&connect()), changes(&a));
    assert_eq!(one::<i64>(&connect(), "SELECT count(*) FROM t"), 15);
}

/// With `PRAGMA journal_mode = OFF` SQLite cannot undo a failed statement inside a
/// transaction: what it wrote before failing stays (SPEC 8's "a failed statement applies
/// nothing" needs a journal). The extension writes each row and its clock together, so what
/// stays is recorded: the feed says what the table holds, and a peer that merges it holds the
/// same rows.
#[test]
fn without_a_journal_a_failed_statements_first_rows_stay_and_are_recorded() {
    let dir = tmpdir("journal-off");
    let c = open(&fresh_file(&dir, "j.db"));
    assert_eq!(one::<String>(&c, "PRAGMA journal_mode = OFF"), "off");
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER CHECK (b < 10)); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x', 2);").unwrap();
    c.execute_batch("BEGIN").unwrap();
    let site = vec![7u8; 16];
    let merge = c.execute(
        "INSERT INTO crsql_changes VALUES ('t', crsql_pack_columns(5), 'a', 'v', 1, 1, ?1, 1, 0), ('t', crsql_pack_columns(6), 'b', 99, 1, 1, ?1, 1, 1)",
        [&site],
    );
    assert!(merge.unwrap_err().to_string().contains("CHECK constraint failed"));
    let local = c.execute("UPDATE t SET b = CASE id WHEN 1 THEN 3 ELSE 50 END", []);
    assert!(local.unwrap_err().to_string().contains("CHECK constraint failed"));
    c.execute_batch("COMMIT").unwrap();
    // Row 5's merged cell and row 1's new b stayed, each with its clock.
    assert_eq!(dump(&c, "t"), vec![
        vec![V::Integer(1), V::Text("x".into()), V::Integer(3)],
        vec![V::Integer(5), V::Text("v".into()), V::Null],
    ]);
    let peer = mem();
    peer.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER CHECK (b < 10)); SELECT crsql_as_crr('t');").unwrap();
    apply(&peer, &changes(&c)).unwrap();
    assert_eq!(dump(&peer, "t"), dump(&c, "t"));
}
