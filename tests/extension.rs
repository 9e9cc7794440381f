//! Integration tests: the real built extension (dist/crr.so) in rusqlite's bundled SQLite.
//! SPEC sections 1-6: loading, site id, crsql_as_crr, tracking, crsql_changes, functions.

mod common;
use common::*;
use rusqlite::types::Value as V;

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, c REAL);";

fn crr_t() -> rusqlite::Connection {
    let c = mem();
    c.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
    c
}

/// `crr_t` in a database file of its own (for tests that reopen it); returns its path too.
fn crr_t_file(test: &str) -> (rusqlite::Connection, String) {
    let path = tmpdir(test).join("h.db").to_str().unwrap().to_string();
    let c = open(&path);
    c.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
    (c, path)
}

/// (cid, val, cl) of every change, in feed order.
fn feed(c: &rusqlite::Connection) -> Vec<(String, V, i64)> {
    changes(c).into_iter().map(|x| (x.cid, x.val, x.cl)).collect()
}

fn txt(s: &str) -> V {
    V::Text(s.into())
}

#[test]
fn site_id_is_16_random_bytes_stored_in_the_database() {
    let dir = tmpdir("site");
    let path = dir.join("a.db");
    let path = path.to_str().unwrap();
    let first: Vec<u8> = one(&open(path), "SELECT crsql_site_id()");
    assert_eq!(first.len(), 16);
    let again: Vec<u8> = one(&open(path), "SELECT crsql_site_id()");
    assert_eq!(first, again, "site id survives reopening");
    let other: Vec<u8> = one(&mem(), "SELECT crsql_site_id()");
    assert_ne!(first, other);
}

/// With `PRAGMA trusted_schema = OFF` (SQLite's advice for apps that open files they did not
/// write) triggers may use only innocuous functions and virtual tables: the tracking triggers
/// use only innocuous functions of ours and no virtual table, so tracked writes and merges
/// work as usual.
#[test]
fn tracking_works_with_an_untrusted_schema() {
    let c = mem();
    c.execute_batch("PRAGMA trusted_schema = OFF;").unwrap();
    c.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
    c.execute_batch("INSERT INTO t(id, a) VALUES (1, 'x'); UPDATE t SET a = 'y'; DELETE FROM t WHERE id = 1; INSERT INTO t(id, a) VALUES (2, 'z');")
        .unwrap();
    let r = mem();
    r.execute_batch(&format!("PRAGMA trusted_schema = OFF; {T} SELECT crsql_as_crr('t');")).unwrap();
    apply(&r, &changes(&c)).unwrap();
    assert_eq!(dump(&r, "t"), dump(&c, "t"));
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes WHERE pk = crsql_pack_columns(1) AND cid = '-1'"), 1);
}

/// cr-sqlite's functions that sqlite-crr has no counterpart of say so, naming themselves,
/// where SQLite said "no such function" (until 2026-12-07), which reads as a broken build.
#[test]
fn cr_sqlites_other_functions_say_they_are_not_supported_yet() {
    let c = mem();
    for (sql, says) in [
        ("SELECT crsql_automigrate('CREATE TABLE t(id PRIMARY KEY NOT NULL)')", "crsql_automigrate is cr-sqlite's and not supported yet by sqlite-crr: change a CRR's schema between crsql_begin_alter and crsql_commit_alter"),
        ("SELECT crsql_fract_as_ordered('t', 'ord')", "crsql_fract_as_ordered (fractional indexing) is cr-sqlite's and not supported yet"),
        ("SELECT crsql_fract_key_between(NULL, NULL)", "crsql_fract_key_between (fractional indexing) is cr-sqlite's and not supported yet"),
    ] {
        let e = err(&c, sql);
        assert!(e.contains(says), "{sql}: {e}");
    }
    // crsql_sha() names the build (cr-sqlite's names its git commit): apps call it, with
    // crsql_site_id(), to see that the extension is loaded, and it said "no such function"
    // until 2026-12-07.
    let sha: String = one(&c, "SELECT crsql_sha()");
    assert!(sha.starts_with("sqlite-crr ") && sha.contains(env!("CARGO_PKG_VERSION")), "{sha}");
}

/// A connection that refuses SQL with comments (`SQLITE_DBCONFIG_ENABLE_COMMENTS` off, SQLite
/// 3.49+) runs every path of the extension on a table whose text holds comments in its types,
/// defaults, CHECKs and generated columns (made by a connection that allows them): the
/// extension's own SQL holds none, and what it builds from the app's texts is left without
/// them (a type with a comment is run as its affinity's name, as SQLite reads the comment's
/// words too). Until 2026-12-07 such a connection could not install the extension, nor make a
/// CRR of a table with a CHECK and a commented type. It converges with one that allows them.
#[test]
fn a_connection_that_refuses_comments_runs_everything_on_a_commented_schema() {
    use rusqlite::config::DbConfig;
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, -- the key
        a VARCHAR /* width */ (10) DEFAULT ('x' /* a default */ || '-') CHECK (a != '' /* not empty */),
        b BLOB /* INT */ (5) DEFAULT (1 -- one
          + 1),
        g TEXT /* generated */ AS (a || 'g') VIRTUAL CHECK (length(g) /* bytes */ < 100))";
    let (strict, open) = (mem(), mem());
    strict.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_COMMENTS, false).unwrap();
    assert!(err(&strict, "SELECT 1 -- no").contains("unrecognized token"));
    for c in [&strict, &open] {
        execute_with_comments(c, schema);
        c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    }
    strict.execute_batch("INSERT INTO t(id) VALUES (1); INSERT INTO t(id, a, b) VALUES (2, 'two', '22'); UPDATE t SET a = 'uno' WHERE id = 1;").unwrap();
    open.execute_batch("INSERT INTO t(id, b) VALUES (3, 3); DELETE FROM t WHERE id = 3; INSERT INTO t(id) VALUES (4);").unwrap();
    // (b has INTEGER affinity, from its type's comment: '22' is stored as 22.)
    assert_eq!(one::<String>(&strict, "SELECT typeof(b) FROM t WHERE id = 2"), "integer");
    apply(&strict, &changes(&open)).unwrap();
    apply(&open, &changes(&strict)).unwrap();
    // An alter on the refusing connection, of a column whose type holds a comment.
    for c in [&strict, &open] {
        c.execute_batch("SELECT crsql_begin_alter('t')").unwrap();
        execute_with_comments(c, "ALTER TABLE t ADD COLUMN z DECIMAL(10, /* scale */ 2) DEFAULT 1.5");
        // (Old rows read the integer 1 here, rows inserted after it the text '1'.)
        execute_with_comments(c, "ALTER TABLE t ADD COLUMN y TEXT /* flag */ DEFAULT true");
        c.execute_batch("SELECT crsql_commit_alter('t')").unwrap();
    }
    strict.execute_batch("UPDATE t SET z = 2.25 WHERE id = 2").unwrap();
    apply(&open, &changes(&strict)).unwrap();
    apply(&strict, &changes(&open)).unwrap();
    let table = "SELECT id, a, b, typeof(b), g, z, y, typeof(y) FROM t ORDER BY id";
    assert_eq!(rows(&strict, table), rows(&open, table));
    // And the same feeds apart from db_version and seq (SPEC 7): the alter recorded the same.
    let feed = |c: &rusqlite::Connection| {
        let mut f: Vec<_> = changes(c).into_iter().map(|x| (x.pk, x.cid, format!("{:?}", x.val), x.col_version, x.site_id, x.cl)).collect();
        f.sort();
        f
    };
    assert_eq!(feed(&strict), feed(&open));
    assert_eq!(rows(&strict, "SELECT id, a, b, z FROM t ORDER BY id"), vec![
        vec![V::Integer(1), V::Text("uno".into()), V::Integer(2), V::Real(1.5)],
        vec![V::Integer(2), V::Text("two".into()), V::Integer(22), V::Real(2.25)],
        vec![V::Integer(4), V::Text("x-".into()), V::Integer(2), V::Real(1.5)],
    ]);
    strict.execute_batch("SELECT crr_new_site_id(); SELECT crsql_as_table('t'); SELECT crsql_as_crr('t');").unwrap();
}

/// Under `PRAGMA trusted_schema = OFF` (also the default of builds with
/// SQLITE_TRUSTED_SCHEMA=0) tracking works (above), and since 2026-12-07 so do an app's views
/// and triggers that call the extension's reads (`crsql_db_version()`, `crsql_site_id()`,
/// `crsql_unpack_columns`, ...): until then an app trigger that recorded `crsql_db_version()`
/// made every write to its table fail ("unsafe use of crsql_db_version()"). What writes stays
/// refused there (a merge through `crsql_changes`, `crsql_as_crr`): a schema SQLite is told
/// not to trust (an attached file's, say) must not merge into this replica.
#[test]
fn an_untrusted_schema_lets_views_and_triggers_call_the_reads() {
    let untrusting = || {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA trusted_schema = OFF").unwrap();
        load(&c);
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER DEFAULT 0); SELECT crsql_as_crr('t');").unwrap();
        c
    };
    let (a, b) = (untrusting(), untrusting());
    a.execute_batch(
        "CREATE TABLE audit(id, dbv, site, impacted);
         CREATE TRIGGER audit_t AFTER INSERT ON t BEGIN
           INSERT INTO audit VALUES (NEW.id, crsql_db_version(), crsql_site_id(), crsql_rows_impacted());
         END;
         CREATE VIEW status AS SELECT crsql_db_version() AS dbv, crsql_next_db_version() AS next,
           crsql_config_get('clock') AS clock, (SELECT count(*) FROM crsql_unpack_columns(crsql_pack_columns(1, 'x'))) AS cells;",
    )
    .unwrap();
    a.execute_batch("INSERT INTO t VALUES (1, 'one', 1); INSERT INTO t VALUES (2, 'two', 2); UPDATE t SET a = 'uno' WHERE id = 1; DELETE FROM t WHERE id = 2;").unwrap();
    let site: Vec<u8> = one(&a, "SELECT crsql_site_id()");
    assert_eq!(rows(&a, "SELECT id, dbv, site FROM audit ORDER BY id"), vec![
        vec![V::Integer(1), V::Integer(0), V::Blob(site.clone())],
        vec![V::Integer(2), V::Integer(1), V::Blob(site)],
    ]);
    assert_eq!(rows(&a, "SELECT dbv, next, clock, cells FROM status"), vec![vec![V::Integer(4), V::Integer(5), V::Text("hlc".into()), V::Integer(2)]]);
    // Merges both ways, and an alter, on connections that do not trust the schema.
    b.execute_batch("INSERT INTO t VALUES (3, 'three', 3)").unwrap();
    apply(&a, &changes(&b)).unwrap();
    apply(&b, &changes(&a)).unwrap();
    for c in [&a, &b] {
        c.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN z TEXT; SELECT crsql_commit_alter('t');").unwrap();
    }
    a.execute_batch("UPDATE t SET z = 'zed' WHERE id = 3").unwrap();
    apply(&b, &changes(&a)).unwrap();
    let table = "SELECT id, a, b, z FROM t ORDER BY id";
    assert_eq!(rows(&a, table), rows(&b, table));
    assert_eq!(rows(&b, table).len(), 2);
    // What writes stays out of views and triggers there, as SQLite refuses any function or
    // virtual table not marked innocuous.
    a.execute_batch("CREATE VIEW feed AS SELECT * FROM crsql_changes; CREATE TABLE inbox(x); CREATE TRIGGER redo AFTER INSERT ON inbox BEGIN SELECT crsql_as_crr('t'); END;").unwrap();
    assert!(err(&a, "SELECT * FROM feed").contains("unsafe use of virtual table \"crsql_changes\""));
    assert!(err(&a, "INSERT INTO inbox VALUES (1)").contains("unsafe use of crsql_as_crr()"));
    a.execute_batch("PRAGMA trusted_schema = ON").unwrap();
    assert_eq!(one::<i64>(&a, "SELECT count(*) FROM feed"), changes(&a).len() as i64);
}

/// The tracking triggers name no virtual table of ours: SQLite checks every trigger of the
/// schema when any table is renamed or a column dropped, so a connection without the
/// extension (a migration tool, a database browser) can still alter the other tables; a write
/// to a CRR there still fails, naming our function.
#[test]
fn a_connection_without_the_extension_can_alter_other_tables() {
    let (c, path) = crr_t_file("alter-without-extension");
    c.execute("INSERT INTO t(id, a) VALUES (1, 'x')", []).unwrap();
    let plain = rusqlite::Connection::open(&path).unwrap();
    plain
        .execute_batch("CREATE TABLE other(x, y); ALTER TABLE other RENAME TO other2; ALTER TABLE other2 RENAME COLUMN x TO z; ALTER TABLE other2 DROP COLUMN y;")
        .unwrap();
    let e = plain.execute("INSERT INTO t(id, a) VALUES (2, 'y')", []).unwrap_err();
    assert!(e.to_string().contains("crr_internal_tracking"), "{e}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_changes"), 3);
}

/// crr_internal_txn takes the row of NULLs the extension joins transactions with and stores
/// nothing; any other write is refused.
#[test]
fn crr_internal_txn_holds_no_rows() {
    let c = crr_t();
    c.execute_batch("INSERT INTO crr_internal_txn VALUES (NULL)").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_internal_txn"), 0);
    for sql in ["INSERT INTO crr_internal_txn VALUES (1)", "INSERT INTO crr_internal_txn(rowid, x) VALUES (5, NULL)"] {
        let e = c.execute_batch(sql).unwrap_err();
        assert!(e.to_string().contains("crr_internal_txn is internal to sqlite-crr and holds no rows"), "{sql}: {e}");
    }
}

/// TEMP tables named like the internal ones, shaped like them (so that a statement that found
/// them would run without error), take nothing of their place: SQLite looks for an unqualified
/// table in temp first, and until 2026-12-05 the feed then read an empty clock and merges wrote
/// theirs where the connection's close dropped it. Every kind of work runs beside them: local
/// writes, a new CRR, merges both ways, reads since a version, an alter bracket, crsql_as_table;
/// the shadowed replica must converge with a plain one and leave every TEMP table empty.
#[test]
fn temp_tables_named_like_the_internal_ones_change_nothing() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');
                  CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID; SELECT crsql_as_crr('w');";
    let (shadowed, plain) = (mem(), mem());
    shadowed.execute_batch(schema).unwrap();
    plain.execute_batch(schema).unwrap();
    let names = ["crr_meta", "crr_sites", "crr_tables", "crr_columns", "crr_ticks", "crr_dirty", "crr_tails", "crr_clock_1", "crr_clock_2"];
    for n in names {
        shadowed.execute_batch(&format!("CREATE TEMP TABLE \"{n}\" AS SELECT * FROM main.\"{n}\" WHERE 0")).unwrap();
    }
    shadowed
        .execute_batch(
            "CREATE TEMP TABLE crr_clock_3(pk, cl, dbv, clock); CREATE TEMP TABLE crr_internal_txn(x);
             INSERT INTO t VALUES (1, 'one'), (2, 'two'); UPDATE t SET a = 'uno' WHERE id = 1; DELETE FROM t WHERE id = 2;
             INSERT INTO w VALUES ('k', 1);
             CREATE TABLE n(id INTEGER PRIMARY KEY NOT NULL, x); INSERT INTO n VALUES (7, 'seven'); SELECT crsql_as_crr('n');",
        )
        .unwrap();
    plain.execute_batch("CREATE TABLE n(id INTEGER PRIMARY KEY NOT NULL, x); SELECT crsql_as_crr('n'); INSERT INTO t VALUES (3, 'three');").unwrap();
    assert_eq!(one::<i64>(&shadowed, "SELECT crsql_db_version()"), 5, "one version per transaction (the backfill of n too)");
    let since = one::<i64>(&plain, "SELECT crsql_db_version()");
    apply(&plain, &changes(&shadowed)).unwrap();
    apply(&shadowed, &changes(&plain)).unwrap();
    shadowed.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN b DEFAULT 0; SELECT crsql_commit_alter('t'); UPDATE t SET b = 5 WHERE id = 1;").unwrap();
    plain.execute_batch("SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN b DEFAULT 0; SELECT crsql_commit_alter('t');").unwrap();
    apply(&plain, &changes_where_with(&shadowed, "WHERE db_version > ?1", &[since])).unwrap();
    for table in ["t", "w", "n"] {
        assert_eq!(dump(&shadowed, table), dump(&plain, table), "table {table}");
    }
    assert_eq!(dump(&plain, "t"), vec![vec![V::Integer(1), txt("uno"), V::Integer(5)], vec![V::Integer(3), txt("three"), V::Integer(0)]]);
    let portable = |c: &rusqlite::Connection| {
        let mut v: Vec<String> = changes(c).into_iter().map(|x| format!("{} {:?} {} {:?} {} {}", x.table, x.pk, x.cid, x.val, x.col_version, x.cl)).collect();
        v.sort();
        v
    };
    assert_eq!(portable(&shadowed), portable(&plain));
    shadowed.execute_batch("SELECT crsql_as_table('n')").unwrap();
    assert_eq!(changes_where(&shadowed, "WHERE \"table\" = 'n'").len(), 0);
    for n in names.iter().chain(&["crr_clock_3", "crr_internal_txn"]) {
        assert_eq!(one::<i64>(&shadowed, &format!("SELECT count(*) FROM temp.\"{n}\"")), 0, "temp.{n} was written");
    }
}

/// A write to a CRR of an ATTACHed replica is refused: its triggers run on this connection,
/// whose db_version, clock and crr_dirty are another database's, and until 2026-12-05 the
/// row was recorded at this database's db_version (1, on a replica already at 3: peers that
/// had synced to 3 never got it). Both tables here have table id 1, as two replicas' first
/// CRRs do. The attached replica is still read, copied from, and written on its own.
#[test]
fn writes_to_a_crr_of_an_attached_database_are_refused() {
    let dir = tmpdir("attached-crr");
    let (x_path, m_path) = (dir.join("x.db"), dir.join("m.db"));
    let x = open(x_path.to_str().unwrap());
    x.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x1'); INSERT INTO t VALUES (2, 'x2'); INSERT INTO t VALUES (3, 'x3');").unwrap();
    let m = open(m_path.to_str().unwrap());
    m.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, v TEXT); SELECT crsql_as_crr('u');").unwrap();
    m.execute(&format!("ATTACH '{}' AS x", x_path.to_str().unwrap()), []).unwrap();
    let before = changes(&x);
    for sql in ["INSERT INTO x.t VALUES (10, 'via attach')", "UPDATE x.t SET v = 'changed' WHERE id = 1", "DELETE FROM x.t WHERE id = 2"] {
        let e = err(&m, sql);
        assert!(e.contains("sqlite-crr: this write is to a CRR of another database than this connection's main one") && e.contains("not supported yet"), "{sql}: {e}");
    }
    assert_eq!(dump(&x, "t"), vec![vec![V::Integer(1), txt("x1")], vec![V::Integer(2), txt("x2")], vec![V::Integer(3), txt("x3")]]);
    assert_eq!(changes(&x), before, "the refused writes left no clock behind");
    // Reading it and copying from it into this database's CRR are fine.
    m.execute_batch("INSERT INTO u SELECT id, v FROM x.t WHERE id < 3").unwrap();
    assert_eq!(changes(&m).len(), 2);
    // On its own connection the replica takes writes, recorded as its own.
    x.execute_batch("INSERT INTO t VALUES (4, 'x4')").unwrap();
    assert_eq!(changes_where(&x, "WHERE db_version > 3").len(), 1);
}

#[test]
fn loading_twice_on_one_connection_is_harmless() {
    let c = crr_t();
    load(&c);
    c.execute("INSERT INTO t(id, a) VALUES (1, 'x')", []).unwrap();
    assert_eq!(changes(&c).len(), 3);
}

/// A function that stands in for another build's: it names that build.
unsafe extern "C" fn other_build(ctx: *mut rusqlite::ffi::sqlite3_context, _: std::ffi::c_int, _: *mut *mut rusqlite::ffi::sqlite3_value) {
    rusqlite::ffi::sqlite3_result_text(ctx, c"sqlite-crr 9.9.9 (internal schema 9)".as_ptr(), -1, rusqlite::ffi::SQLITE_TRANSIENT());
}

/// Two copies of the library (two files, as an app's bundled one and a package's) loaded on
/// one connection: the second finds the first (`crr_internal_build()`) and, being the same
/// build, leaves the connection to it. Until 2026-12-06 both registered everything, the
/// second's registrations freed the first's state, and the process crashed (at the next
/// statement, or at close). Another build, an earlier one (which has no crr_internal_build),
/// or cr-sqlite (the same public names) is refused with an error that names it.
#[test]
fn a_second_copy_of_the_library_on_one_connection_leaves_it_to_the_first() {
    let dir = tmpdir("two-copies");
    let copy = dir.join("crr.so");
    std::fs::copy(extension_path(), &copy).unwrap();
    let path = dir.join("c.db");
    {
        let c = open(path.to_str().unwrap());
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t'); INSERT INTO t VALUES (1, 'x');").unwrap();
        load_extension_from(&c, &copy).unwrap();
        c.execute_batch("INSERT INTO t VALUES (2, 'y'); UPDATE t SET a = 'z' WHERE id = 1;").unwrap();
        let peer = open(":memory:");
        peer.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');").unwrap();
        apply(&peer, &changes(&c)).unwrap();
        assert_eq!(dump(&peer, "t"), dump(&c, "t"));
        c.close().unwrap();
    }
    // Another build, and an earlier one, already there (stood in for by their marks).
    for (mark, arity, named) in [
        ("crr_internal_build", 0, "sqlite-crr 9.9.9 (internal schema 9) (another copy of the library)"),
        ("crr_internal_tracking", 1, "an earlier build of sqlite-crr (another copy of the library)"),
        ("crsql_site_id", 0, "cr-sqlite (or another extension with a crsql_site_id function)"),
    ] {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let name = std::ffi::CString::new(mark).unwrap();
        // SAFETY (test): a function of the test's own on its own open connection.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_create_function_v2(c.handle(), name.as_ptr(), arity, rusqlite::ffi::SQLITE_UTF8, std::ptr::null_mut(), Some(other_build), None, None, None)
        };
        assert_eq!(rc, 0);
        let e = load_extension_from(&c, &extension_path()).unwrap_err();
        assert!(e.contains(&format!("{named} is already loaded on this connection; sqlite-crr ")), "{e}");
        assert!(c.prepare("SELECT crsql_db_version()").is_err(), "nothing of this build registered");
    }
}

#[test]
fn pack_columns_matches_the_spec_examples_and_unpack_inverts_it() {
    let c = mem();
    for (sql, hex) in [("1", "010901"), ("0", "0101"), ("-1", "0141FFFFFFFFFFFFFFFF"), ("'a'", "010B0161"), ("1, 'a', NULL, X'00', 1.5", "0509010B0161050C0100023FF8000000000000")] {
        let got: String = one(&c, &format!("SELECT hex(crsql_pack_columns({sql}))"));
        assert_eq!(got, hex, "{sql}");
    }
    let cells: Vec<V> = {
        let mut s = c.prepare("SELECT cell FROM crsql_unpack_columns(crsql_pack_columns(7, 'x', NULL, X'ff', 2.5))").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(cells, vec![V::Integer(7), txt("x"), V::Null, V::Blob(vec![255]), V::Real(2.5)]);
    // `cell` has no affinity: text that looks like a number stays text, in a comparison and in
    // a table made from it (declared ANY, NUMERIC affinity, it made '007' the integer 7).
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crsql_unpack_columns(crsql_pack_columns('007', 7.0)) WHERE cell = '007'"), 1);
    c.execute_batch("CREATE TABLE keys AS SELECT cell FROM crsql_unpack_columns(crsql_pack_columns('007', 7.0))").unwrap();
    assert_eq!(rows(&c, "SELECT cell, typeof(cell) FROM keys ORDER BY rowid"), vec![vec![txt("007"), txt("text")], vec![V::Real(7.0), txt("real")]]);
    let e = err(&c, "SELECT crsql_pack_columns()");
    assert!(e.contains("crsql_pack_columns: give it the key's values"), "{e}");
    for bad in ["X''", "X'01'", "X'010901FF'", "X'0107'", "X'0149'", "X'010B01FF'", "'text'"] {
        let e = err(&c, &format!("SELECT * FROM crsql_unpack_columns({bad})"));
        assert!(e.contains("crsql_unpack_columns"), "{bad}: {e}");
    }
}

/// crsql_unpack_columns answers like a table of (cell, package) rows: its hidden package
/// column reads back (SQLite reads it for an OR that names it), and an OR of two keys, which
/// SQLite answers with one scan per term and drops duplicates by rowid, keeps both keys' rows
/// (until 2026-12-05 the rowid was the column's index alone: the second key's rows went, and
/// a term naming the package matched nothing).
#[test]
fn unpack_columns_under_ors_and_its_package_column() {
    let c = mem();
    let rows = |w: &str| -> Vec<(V, String)> {
        let mut s = c.prepare(&format!("SELECT cell, hex(package) FROM crsql_unpack_columns WHERE {w} ORDER BY 2, 1")).unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    let one_of = |k: &str, v: V| (v, k.to_string());
    assert_eq!(rows("package = X'010901'"), vec![one_of("010901", V::Integer(1))]);
    assert_eq!(rows("(package = X'010901' AND cell = 1) OR (package = X'010902')"), vec![one_of("010901", V::Integer(1)), one_of("010902", V::Integer(2))]);
    assert_eq!(
        rows("(package = X'0209010B0161' AND cell = 1) OR (package = X'0209010B0161')"),
        vec![one_of("0209010B0161", V::Integer(1)), one_of("0209010B0161", txt("a"))]
    );
    assert_eq!(
        rows("(package = X'010901' AND cell = 1) OR (package = X'010902') OR (package = X'010901')"),
        vec![one_of("010901", V::Integer(1)), one_of("010902", V::Integer(2))]
    );
}

/// crsql_as_crr refuses, for its row of defaults, exactly the tables on which SQLite itself
/// refuses an insert of the key alone: random column definitions (types, NOT NULL,
/// collations, defaults in every form, CHECKs that compare), each judged both ways. The
/// stop-32 build disagreed on 28 of about 1,100: it compared under BINARY whatever the
/// column's collation.
#[test]
fn a_row_of_defaults_is_refused_exactly_where_sqlite_refuses_it() {
    let types = ["INTEGER", "REAL", "TEXT", "NUMERIC", "BLOB", "", "VARCHAR(5)"];
    let collations = ["", " COLLATE NOCASE", " COLLATE RTRIM", " COLLATE BINARY"];
    let defaults = [
        "", " DEFAULT 'x'", " DEFAULT 'X'", " DEFAULT 'x '", " DEFAULT 5", " DEFAULT '5'", " DEFAULT 5.0", " DEFAULT NULL", " DEFAULT x",
        " DEFAULT \"X\"", " DEFAULT (lower('X'))", " DEFAULT true", " DEFAULT -1",
    ];
    let checks = [
        "", " CHECK (c != 'X')", " CHECK (c = 'x')", " CHECK (c > 4)", " CHECK (typeof(c) = 'integer')", " CHECK (length(c) < 2)",
        " CHECK (c IN ('x', 'y'))", " CHECK (c = 'x ')", " CHECK (c < 'Y')",
    ];
    let mut r = Rng(33);
    let (mut judged, mut refused) = (0, 0);
    for _ in 0..400 {
        let not_null = if r.chance(30) { " NOT NULL" } else { "" };
        let col = format!("c {}{not_null}{}{}{}", r.pick(&types), r.pick(&collations), r.pick(&defaults), r.pick(&checks));
        let strict = if r.chance(15) { " STRICT" } else { "" };
        let sql = format!("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, {col}){strict}");
        let plain = rusqlite::Connection::open_in_memory().unwrap();
        if plain.execute_batch(&sql).is_err() {
            continue; // (a STRICT table takes only its own type names)
        }
        let sqlite_takes_it = plain.execute_batch("INSERT INTO t(id) VALUES (1)").is_ok();
        let c = mem();
        c.execute_batch(&sql).unwrap();
        let why = match c.execute_batch("SELECT crsql_as_crr('t')") {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        // (A NOT NULL column without a DEFAULT is refused for its own reason.)
        let for_defaults = why.as_ref().is_some_and(|w| w.contains("a row of its defaults fails") || w.contains("NOT NULL without a DEFAULT"));
        assert!(why.is_none() || for_defaults, "{sql}: refused for another reason: {why:?}");
        assert_eq!(why.is_none(), sqlite_takes_it, "{sql}: SQLite {} its row of defaults; crsql_as_crr said {why:?}", if sqlite_takes_it { "takes" } else { "refuses" });
        judged += 1;
        refused += usize::from(why.is_some());
    }
    assert!(judged > 300 && refused > 50 && refused < judged - 50, "{judged} tables judged, {refused} refused: both kinds should be many");
}

/// The readers of a table's CREATE TABLE text (`core::table_shape`: each column's collation,
/// STRICT, WITHOUT ROWID) agree with SQLite over random texts written to mislead them: names
/// that are keywords elsewhere (`without rowid` as a column and its type, `strict`), names and
/// collations written as strings ('a', `COLLATE 'nocase'`), `a$b`, quoted names holding `)`
/// and `,`, comments and strings holding `)`, `COLLATE` or an option's words. SQLite's answers:
/// `pragma_table_list` (strict, wr) and the collation of an index on the column. Until
/// 2026-12-06 `'a' TEXT COLLATE 'nocase'`, and a column named a$b, were read without their
/// collation (crsql_as_crr took a table whose row of defaults fails its CHECK under it), and a
/// column named without of type rowid made the table WITHOUT ROWID (its nullable key passed).
#[test]
fn the_readers_of_a_create_table_text_agree_with_sqlite() {
    use crr::core::schema_sql::{column_collations, is_strict, is_without_rowid};
    let names = ["a", "B", "a$b", "\"x)\"", "'s'", "[b c]", "without", "rowid", "strict", "key", "\"collate\"", "`q,`", "é", "\"it\"\"s\"", "_1", "x"];
    let types = ["", "TEXT", "INTEGER", "VARCHAR(10)", "DOUBLE PRECISION", "rowid", "without", "ANY", "BLOB", "REAL", "INT"];
    let collations = ["NOCASE", "rtrim", "\"NOCASE\"", "'rtrim'", "[binary]", "`nocase`", "'NoCase'"];
    let defaults = ["'x)'", "(1 + 2)", "x'00'", "5", "'COLLATE NOCASE'", "a", "\"rtrim\"", "'it''s ) STRICT'"];
    let options = ["", " STRICT", " WITHOUT ROWID", " WITHOUT ROWID, STRICT", " STRICT /* ) */", " -- WITHOUT ROWID\n", " /* STRICT ) */ WITHOUT ROWID", "STRICT,without rowid -- )"];
    let tables = [("t", "t"), ("\"t (x\"", "t (x"), ("[without rowid]", "without rowid"), ("\"strict\"", "strict")];
    let mut r = Rng(34);
    let (mut made, mut collated, mut strict_seen, mut wr_seen) = (0, 0, 0, 0);
    for _ in 0..600 {
        let mut cols = Vec::new();
        let mut pool: Vec<&str> = names.to_vec();
        for _ in 0..1 + r.below(4) {
            let name = pool.remove(r.below(pool.len() as u64) as usize);
            let mut col = format!("{name} {}", r.pick(&types));
            for _ in 0..r.below(4) {
                let part = match r.below(7) {
                    0 | 1 => format!(" COLLATE {}", r.pick(&collations)),
                    2 => " NOT NULL".to_string(),
                    3 => format!(" DEFAULT {}", r.pick(&defaults)),
                    4 => format!(" CHECK ({name} != ')' COLLATE NOCASE)"),
                    5 => " /* ) , COLLATE NOCASE STRICT WITHOUT ROWID */".to_string(),
                    _ => " -- ) COLLATE rtrim, strict\n".to_string(),
                };
                col.push_str(&part);
            }
            cols.push(col);
        }
        let (table, bare) = r.pick(&tables);
        let key = if r.chance(50) { "id INTEGER PRIMARY KEY NOT NULL".to_string() } else { "id TEXT NOT NULL".to_string() };
        let mut items = vec![key.clone()];
        items.extend(cols);
        if key.starts_with("id TEXT") {
            items.push("CONSTRAINT 'k,' PRIMARY KEY (id /* ) */)".to_string());
        }
        if r.chance(30) {
            items.push("CHECK (id != 'COLLATE ) NOCASE')".to_string());
        }
        let sql = format!("CREATE TABLE {table}({}){}", items.join(", "), r.pick(&options));
        let c = rusqlite::Connection::open_in_memory().unwrap();
        if c.execute_batch(&sql).is_err() {
            continue; // (a STRICT table takes only its own type names; a generated column no DEFAULT)
        }
        made += 1;
        let stored: String = one(&c, "SELECT sql FROM sqlite_schema WHERE type = 'table'");
        let (strict, wr): (bool, bool) = c.query_row("SELECT strict, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1", [bare], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
        assert_eq!(is_strict(&stored), strict, "STRICT of {stored}");
        assert_eq!(is_without_rowid(&stored), wr, "WITHOUT ROWID of {stored}");
        strict_seen += usize::from(strict);
        wr_seen += usize::from(wr);
        let read = column_collations(&stored);
        let columns: Vec<String> = c.prepare("SELECT name FROM pragma_table_xinfo(?1)").unwrap().query_map([bare], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        for column in columns {
            c.execute_batch(&format!("CREATE INDEX probe ON \"{}\"(\"{}\")", bare.replace('"', "\"\""), column.replace('"', "\"\""))).unwrap();
            let sqlite: String = one(&c, "SELECT coll FROM pragma_index_xinfo('probe') WHERE cid >= 0");
            c.execute_batch("DROP INDEX probe").unwrap();
            let ours = read.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(&column)).map_or("BINARY", |(_, coll)| coll.as_str());
            assert!(ours.eq_ignore_ascii_case(&sqlite), "column {column:?} of {stored}: SQLite's collation {sqlite}, read {ours}");
            collated += usize::from(!sqlite.eq_ignore_ascii_case("BINARY"));
        }
    }
    assert!(made > 300 && collated > 100 && strict_seen > 30 && wr_seen > 30, "{made} tables, {collated} collated columns, {strict_seen} STRICT, {wr_seen} WITHOUT ROWID");
}

/// `core::schema_sql::check_constraints` finds, for each CHECK of a random CREATE TABLE text,
/// at least the columns SQLite finds it names: SQLite checks a CHECK at an UPDATE only if the
/// statement sets a column it names, so each CHECK here first calls a function that logs it,
/// and `UPDATE t SET c = c` of each column shows which CHECKs name that column. The texts
/// mislead: strings and comments spelled as columns, quoted names, names with `$`, a string
/// in double quotes that names no column (SQLite takes it for a string), qualified names. What
/// it finds decides crsql_as_crr's refusal of a CHECK on several columns (a column missed let
/// a table through whose merges, one cell at a time, fail it) and which columns a wide CRR's
/// shared statement leaves out. It may find more (a function spelled as a column): the test
/// holds the surplus to those cases.
#[test]
fn the_columns_a_check_names_are_found_as_sqlite_finds_them() {
    use crr::core::schema_sql::check_constraints;
    let pool = ["a", "b", "\"c d\"", "x$y", "[e]", "`f`", "length", "\"it\"\"s\"", "é", "lower"];
    let dequote = |n: &str| -> String {
        match n.as_bytes()[0] {
            b'"' => n[1..n.len() - 1].replace("\"\"", "\""),
            b'[' | b'`' => n[1..n.len() - 1].to_string(),
            _ => n.to_string(),
        }
    };
    let mut r = Rng(35);
    let (mut judged, mut named) = (0, 0);
    for _ in 0..300 {
        let mut cols: Vec<&str> = Vec::new();
        let mut left: Vec<&str> = pool.to_vec();
        for _ in 0..2 + r.below(4) {
            cols.push(left.remove(r.below(left.len() as u64) as usize));
        }
        let atom = |r: &mut Rng| -> String {
            let c = *r.pick(&cols);
            match r.below(9) {
                0 => format!("{c} IS NOT 'z'"),
                1 => format!("length({c}) < 99"),
                2 => format!("'{}' != ''", dequote(c).replace('\'', "''")),
                3 => format!("/* {c} */ 1"),
                4 => format!("\"{}\" IS NOT NULL", dequote(c).replace('"', "\"\"")),
                5 => format!("t.{c} IS NOT 'z'"),
                6 => format!("{c} COLLATE NOCASE != 'x)'"),
                7 => "\"nocolumn\" = 'nocolumn'".to_string(),
                _ => format!("coalesce({c}, 1) IS NOT NULL -- {}\n", r.pick(&cols)),
            }
        };
        let n_checks = 1 + r.below(3) as usize;
        let checks: Vec<String> = (0..n_checks)
            .map(|i| {
                let atoms: Vec<String> = (0..1 + r.below(3)).map(|_| atom(&mut r)).collect();
                format!("CHECK (crr_test_log({i}) AND ({}))", atoms.join(" OR "))
            })
            .collect();
        let defs: Vec<String> = cols.iter().map(|c| format!("{c} TEXT")).collect();
        let sql = format!("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, {}, {})", defs.join(", "), checks.join(", "));
        let (c, log) = logging_table(&sql);
        c.execute_batch(&format!("INSERT INTO t VALUES (1{})", ", 'v'".repeat(cols.len()))).unwrap();
        let names: Vec<String> = cols.iter().map(|c| dequote(c)).collect();
        let found = check_constraints(&sql, &names);
        assert_eq!(found.len(), n_checks, "{sql}");
        for name in &names {
            log.lock().unwrap().clear();
            c.execute_batch(&format!("UPDATE t SET \"{}\" = \"{0}\"", name.replace('"', "\"\""))).unwrap();
            let mut sqlite: Vec<i64> = log.lock().unwrap().clone();
            sqlite.sort();
            sqlite.dedup();
            let ours: Vec<i64> = (0..n_checks as i64).filter(|&i| found[i as usize].columns.iter().any(|f| f.eq_ignore_ascii_case(name))).collect();
            for i in &sqlite {
                assert!(ours.contains(i), "CHECK {i} names {name:?} for SQLite, not for check_constraints: {sql}");
            }
            // A surplus only where a function has the column's spelling.
            for i in ours.iter().filter(|i| !sqlite.contains(i)) {
                let expr = &found[*i as usize].expr;
                assert!(["length", "lower"].contains(&name.as_str()) && expr.contains(&format!("{name}(")), "CHECK {i} does not name {name:?}: {sql}");
            }
            named += sqlite.len();
        }
        judged += 1;
    }
    assert!(judged == 300 && named > 300, "{judged} tables, {named} CHECK-column pairs");
}

/// A connection holding table `sql`, whose CHECKs call `crr_test_log(i)`: the log of the
/// CHECKs SQLite checked.
fn logging_table(sql: &str) -> (rusqlite::Connection, std::sync::Arc<std::sync::Mutex<Vec<i64>>>) {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    let log: std::sync::Arc<std::sync::Mutex<Vec<i64>>> = Default::default();
    let sink = log.clone();
    c.create_scalar_function("crr_test_log", 1, rusqlite::functions::FunctionFlags::SQLITE_UTF8, move |ctx| {
        sink.lock().unwrap().push(ctx.get::<i64>(0)?);
        Ok(1)
    })
    .unwrap();
    c.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    (c, log)
}

/// A CHECK that names a generated column checks the stored columns its expression names, in
/// turn: `core::schema_sql::generated_columns` and `through_generated` find them as SQLite
/// does (which checks a CHECK at an UPDATE that sets one of them: the logging function
/// again), over random generated columns (`AS`, `GENERATED ALWAYS AS`, STORED or VIRTUAL, of
/// stored columns and earlier generated ones, with CASTs and strings that spell names) and
/// CHECKs on them. crsql_as_crr refuses a CHECK that stands for several columns this way
/// (until 2026-12-06 one on `g AS (a || b)` passed, and a peer's update of a and b failed at
/// its first cell, for good), and a wide CRR's shared statement leaves them out.
#[test]
fn the_columns_a_check_stands_for_through_generated_ones_are_found_as_sqlite_finds_them() {
    use crr::core::schema_sql::{check_constraints, generated_columns, through_generated};
    let stored = ["a", "b", "\"c d\"", "x$y"];
    let dequote = |n: &str| if n.starts_with('"') { n[1..n.len() - 1].to_string() } else { n.to_string() };
    let mut r = Rng(37);
    let mut through = 0;
    for _ in 0..300 {
        let mut defs: Vec<String> = stored.iter().map(|c| format!("{c} TEXT")).collect();
        let mut names: Vec<&str> = stored.to_vec();
        let generated = ["g1", "\"g 2\"", "g3"];
        for g in generated.iter().take(1 + r.below(3) as usize) {
            let term = |r: &mut Rng, names: &[&str]| -> String {
                let c = *r.pick(names);
                match r.below(6) {
                    0 => format!("coalesce({c}, 'x')"),
                    1 => format!("CAST({c} AS TEXT)"),
                    2 => format!("'{}'", dequote(c).replace('\'', "''")),
                    3 => format!("length({c})"),
                    _ => c.to_string(),
                }
            };
            let expr: Vec<String> = (0..1 + r.below(3)).map(|_| term(&mut r, &names)).collect();
            let form = match r.below(3) {
                0 => format!("{g} TEXT AS ({})", expr.join(" || ")),
                1 => format!("{g} GENERATED ALWAYS AS ({}) STORED", expr.join(" || ")),
                _ => format!("{g} ANY AS (({})) VIRTUAL", expr.join(" || ")),
            };
            defs.push(form);
            names.push(g);
        }
        let n_checks = 1 + r.below(3) as usize;
        let checks: Vec<String> = (0..n_checks)
            .map(|i| {
                let atoms: Vec<String> = (0..1 + r.below(2)).map(|_| format!("{} IS NOT 'z'", r.pick(&names))).collect();
                format!("CHECK (crr_test_log({i}) AND ({}))", atoms.join(" OR "))
            })
            .collect();
        let sql = format!("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, {}, {})", defs.join(", "), checks.join(", "));
        let (c, log) = logging_table(&sql);
        c.execute_batch("INSERT INTO t(id) VALUES (1)").unwrap();
        let all: Vec<String> = names.iter().map(|c| dequote(c)).collect();
        let gens = generated_columns(&sql, &all);
        assert_eq!(gens.len(), names.len() - stored.len(), "{sql}");
        let found = check_constraints(&sql, &all);
        for column in stored.iter().map(|c| dequote(c)) {
            log.lock().unwrap().clear();
            c.execute_batch(&format!("UPDATE t SET \"{column}\" = \"{column}\"")).unwrap();
            let mut sqlite: Vec<i64> = log.lock().unwrap().clone();
            sqlite.sort();
            sqlite.dedup();
            let ours: Vec<i64> = (0..n_checks as i64).filter(|&i| through_generated(&found[i as usize].columns, &gens).contains(&column)).collect();
            assert_eq!(ours, sqlite, "the CHECKs an UPDATE of {column:?} checks: {sql}");
            through += ours.iter().filter(|&&i| !found[i as usize].columns.contains(&column)).count();
        }
    }
    assert!(through > 100, "{through} CHECK-column pairs through a generated column");
}

/// `core::schema_sql::trigger_updates_of_columns` tells a trigger that SQLite fires only for
/// UPDATEs that set some of the columns (`UPDATE OF`) from one it fires for every UPDATE, or
/// for none, over random CREATE TRIGGER texts that mislead (trigger names that are event
/// keywords in quotes or strings, comments and WHEN strings holding `UPDATE OF`, TEMP, IF NOT
/// EXISTS, a schema name). SQLite's answer: which columns' `UPDATE t SET c = c` fire it. A
/// wide CRR's merges write every column through one UPDATE where no such trigger exists: one
/// taken for another would fire for cells its app never meant it to.
#[test]
fn triggers_on_update_of_columns_are_told_as_sqlite_fires_them() {
    use crr::core::schema_sql::trigger_updates_of_columns;
    let names = ["x", "\"update\"", "[insert]", "'delete'", "update_of", "\"of\"", "`UPDATE OF`", "\"x y\""];
    let columns = ["a", "b", "c"];
    let mut r = Rng(36);
    let (mut subset, mut all, mut none) = (0, 0, 0);
    for _ in 0..300 {
        let of: Vec<&str> = columns.iter().copied().filter(|_| r.chance(40)).collect();
        let kind = r.below(4);
        let is_of = kind == 3 && !of.is_empty();
        let event = match kind {
            0 => "INSERT".to_string(),
            1 => "DELETE".to_string(),
            2 => "UPDATE".to_string(),
            _ if of.is_empty() => "UPDATE /* OF a */".to_string(),
            _ => format!("UPDATE {} OF {}", r.pick(&["", "/* INSERT */", "-- DELETE\n"]), of.join(", ")),
        };
        let sql = format!(
            "CREATE {}TRIGGER {}{}{} {} {event} ON t {}{}BEGIN INSERT INTO log VALUES (1); END",
            r.pick(&["", "TEMP "]),
            r.pick(&["", "IF NOT EXISTS "]),
            r.pick(&["", "main."]),
            r.pick(&names),
            r.pick(&["", "BEFORE", "AFTER"]),
            r.pick(&["", "FOR EACH ROW "]),
            r.pick(&["", "WHEN 'UPDATE OF a' != '' ", "WHEN new.a IS NOT 'INSERT' ", "/* UPDATE OF b */ "]),
        );
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a, b, c); CREATE TABLE log(x); INSERT INTO t VALUES (1, 1, 1, 1);").unwrap();
        if let Err(e) = c.execute_batch(&sql) {
            // (A TEMP trigger cannot be named in main.)
            assert!(sql.contains("TEMP") && sql.contains("main."), "{sql}: {e}");
            continue;
        }
        let stored: String = one(&c, "SELECT sql FROM sqlite_temp_schema WHERE type = 'trigger' UNION ALL SELECT sql FROM sqlite_schema WHERE type = 'trigger'");
        let fires: Vec<bool> = columns
            .iter()
            .map(|col| {
                c.execute_batch(&format!("DELETE FROM log; UPDATE t SET {col} = {col};")).unwrap();
                one::<i64>(&c, "SELECT count(*) FROM log") > 0
            })
            .collect();
        let ours = trigger_updates_of_columns(&stored);
        match fires.iter().filter(|f| **f).count() {
            0 => none += 1,
            3 => all += 1,
            _ => {
                subset += 1;
                assert!(ours, "SQLite fires {stored:?} for some columns' UPDATEs only ({fires:?}): not told");
            }
        }
        assert_eq!(ours, is_of, "{stored}");
    }
    assert!(subset > 40 && all > 40 && none > 40, "{subset} on some columns, {all} on all, {none} on none");
}

/// The probe of a row of defaults applies a column's collation, the app's own too when the
/// app has registered it on the connection: under a case-blind one the default 'x' fails
/// `CHECK (a != 'X')`. A connection without it (whose writes to the table would fail for want
/// of it) judges the CHECK under BINARY, as all probes did until 2026-12-06, rather than
/// failing with `no such collation sequence`.
#[test]
fn the_probe_of_a_row_of_defaults_applies_the_apps_collation_where_it_is_registered() {
    let dir = tmpdir("app_collation");
    let path = fresh_file(&dir, "a.db");
    let with = open(&path);
    with.create_collation("anycase", |a: &str, b: &str| a.to_lowercase().cmp(&b.to_lowercase())).unwrap();
    with.execute_batch(
        "CREATE TABLE f(id INTEGER PRIMARY KEY NOT NULL, a TEXT COLLATE anycase DEFAULT 'x' CHECK (a != 'X'));
         CREATE TABLE g(id INTEGER PRIMARY KEY NOT NULL, a TEXT COLLATE \"anycase\" DEFAULT 'x' CHECK (a = 'X'));",
    )
    .unwrap();
    let e = err(&with, "SELECT crsql_as_crr('f')");
    assert!(e.contains("a row of its defaults fails CHECK (a != 'X')"), "{e}");
    with.execute_batch("SELECT crsql_as_crr('g')").unwrap();
    let without = open(&path);
    without.execute_batch("SELECT crsql_as_crr('f')").unwrap();
    assert_eq!(one::<i64>(&without, "SELECT count(*) FROM crr_tables"), 2);
}

#[test]
fn as_crr_refusals_name_the_table_and_the_reason() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE nopk(a, b);
         CREATE TABLE nullpk(k TEXT PRIMARY KEY, v);
         CREATE TABLE nullwords(k TEXT PRIMARY KEY, without rowid);
         CREATE TABLE uniq(id INTEGER PRIMARY KEY NOT NULL, e TEXT UNIQUE);
         CREATE TABLE uidx(id INTEGER PRIMARY KEY NOT NULL, e TEXT); CREATE UNIQUE INDEX uidx_e ON uidx(e);
         CREATE TABLE parent(id INTEGER PRIMARY KEY NOT NULL);
         CREATE TABLE fk(id INTEGER PRIMARY KEY NOT NULL, p INTEGER REFERENCES parent(id));
         CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, v);
         CREATE TABLE nn(id INTEGER PRIMARY KEY NOT NULL, v TEXT NOT NULL);
         CREATE TABLE minus(id INTEGER PRIMARY KEY NOT NULL, \"-1\" TEXT);
         CREATE TABLE nocase(k TEXT COLLATE NOCASE PRIMARY KEY NOT NULL, v) WITHOUT ROWID;
         CREATE TABLE rtrim(k TEXT NOT NULL, j NOT NULL, v, PRIMARY KEY (k, j COLLATE RTRIM));
         CREATE TABLE ranged(id INTEGER PRIMARY KEY NOT NULL, lo INT DEFAULT 0, hi INT DEFAULT 0, CHECK (lo <= hi));
         CREATE TABLE qty(id INTEGER PRIMARY KEY NOT NULL, name TEXT, n INTEGER DEFAULT 0 CHECK (n > 0));
         CREATE TABLE nulldefault(id INTEGER PRIMARY KEY NOT NULL, v TEXT NOT NULL DEFAULT NULL);
         CREATE TABLE strictdefault(id INTEGER PRIMARY KEY NOT NULL, v INTEGER DEFAULT 'abc') STRICT;
         CREATE TABLE doc(id INTEGER PRIMARY KEY NOT NULL, body TEXT DEFAULT '' CHECK (json_extract(body, '$.v') IS NOT NULL));
         CREATE TABLE folded(id INTEGER PRIMARY KEY NOT NULL, a TEXT COLLATE NOCASE DEFAULT 'x' CHECK (a != 'X'));
         CREATE TABLE strnamed(id INTEGER PRIMARY KEY NOT NULL, 'a' TEXT COLLATE 'nocase' DEFAULT 'x' CHECK (a != 'X'));
         CREATE TABLE dollar(id INTEGER PRIMARY KEY NOT NULL, a$b TEXT COLLATE NOCASE DEFAULT 'x' CHECK (a$b != 'X'));
         CREATE TABLE gensum(id INTEGER PRIMARY KEY NOT NULL, a TEXT DEFAULT '', b TEXT DEFAULT '', g TEXT AS (a || b) STORED CHECK (length(g) <= 4));
         CREATE TABLE gendefault(id INTEGER PRIMARY KEY NOT NULL, a TEXT DEFAULT '', b TEXT, g TEXT AS (a || 'x') CHECK (g != 'x'));
         CREATE TABLE gennull(id INTEGER PRIMARY KEY NOT NULL, a INT DEFAULT 0, g INT AS (CASE WHEN a > 0 THEN a END) NOT NULL);
         CREATE TABLE genfine(id INTEGER PRIMARY KEY NOT NULL, a INT DEFAULT 1, b TEXT, g INT AS (a * 2), h INT AS (id + g) CHECK (h > 0 AND a > 0));
         CREATE TABLE fine(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT '5' CHECK (typeof(n) = 'integer'), m INT DEFAULT 0,
                           r TEXT COLLATE RTRIM DEFAULT 'y ' CHECK (r = 'y'), CHECK (id > 0 OR m > 0));
         CREATE VIEW vw AS SELECT 1;",
    )
    .unwrap();
    // (The internal tables, which a refused call does not make, for their own refusal.)
    c.execute_batch("SELECT crsql_site_id()").unwrap();
    let cases = [
        ("missing", "table \"missing\" does not exist"),
        ("vw", "\"vw\" is a view: only tables can be CRRs"),
        ("nopk", "table \"nopk\" cannot be a CRR: it has no PRIMARY KEY"),
        // The extension's own tables: crr_meta and crr_dirty passed every other rule, and
        // until 2026-12-05 became CRRs whose rows (schema version, clock mark, token, next
        // table id) went to peers.
        ("crr_meta", "table \"crr_meta\" cannot be a CRR: it is one of sqlite-crr's own tables"),
        ("CRR_DIRTY", "table \"crr_dirty\" cannot be a CRR: it is one of sqlite-crr's own tables"),
        ("nullpk", "table \"nullpk\" cannot be a CRR: primary key column \"k\" is nullable"),
        // A column named without, of type rowid, does not make the table WITHOUT ROWID (until
        // 2026-12-06 the words anywhere did: the nullable key passed, and NULL keys were taken).
        ("nullwords", "table \"nullwords\" cannot be a CRR: primary key column \"k\" is nullable"),
        ("uniq", "table \"uniq\" cannot be a CRR: it has a UNIQUE constraint"),
        ("uidx", "table \"uidx\" cannot be a CRR: it has a UNIQUE constraint or unique index (\"uidx_e\")"),
        ("fk", "table \"fk\" cannot be a CRR: it has FOREIGN KEY constraints"),
        ("auto", "table \"auto\" cannot be a CRR: it uses AUTOINCREMENT"),
        ("nn", "table \"nn\" cannot be a CRR: column \"v\" is NOT NULL without a DEFAULT"),
        // Its changes would read, and merge, as the row sentinel's (cid '-1'): a peer lost them.
        ("minus", "table \"minus\" cannot be a CRR: column \"-1\" has the name crsql_changes gives a row's sentinel"),
        // 'a' from one replica and 'A' from another were one row on each, spelled differently.
        ("nocase", "table \"nocase\" cannot be a CRR: primary key column \"k\" has COLLATE NOCASE"),
        ("rtrim", "table \"rtrim\" cannot be a CRR: primary key column \"j\" has COLLATE RTRIM"),
        // A peer's UPDATE SET lo = 5, hi = 10 of (1, 2) failed on every replica it reached,
        // applied one cell at a time: (5, 2).
        ("ranged", "table \"ranged\" cannot be a CRR: it has a CHECK constraint on several columns (\"lo\", \"hi\")"),
        // A peer's INSERT of (1, 'pen', 3) reached every replica as name first, on a row of
        // defaults (n = 0): it failed there each time.
        ("qty", "table \"qty\" cannot be a CRR: a row of its defaults fails CHECK (n > 0)"),
        ("strictdefault", "table \"strictdefault\" cannot be a CRR: a row of its defaults fails its column types (cannot store TEXT value in INTEGER column"),
        ("nulldefault", "table \"nulldefault\" cannot be a CRR: a row of its defaults fails NOT NULL on \"v\""),
        // The CHECK compares under the column's collation: 'x' is 'X' under NOCASE (until
        // 2026-12-06 the probe compared under BINARY and let the table pass).
        ("folded", "table \"folded\" cannot be a CRR: a row of its defaults fails CHECK (a != 'X')"),
        // The same, with the name and the collation written as strings, and with a name that
        // holds '$' (until 2026-12-06 read without their collation, and let through).
        ("strnamed", "table \"strnamed\" cannot be a CRR: a row of its defaults fails CHECK (a != 'X')"),
        ("dollar", "table \"dollar\" cannot be a CRR: a row of its defaults fails CHECK (a$b != 'X')"),
        // The CHECK raises an error on the row of defaults, as every merge's INSERT of that row
        // would (until 2026-12-06 the probe took the error for a pass).
        ("doc", "table \"doc\" cannot be a CRR: a row of its defaults fails CHECK (json_extract(body, '$.v') IS NOT NULL) (malformed JSON)"),
        // A CHECK on a generated column is one on the columns its expression names (until
        // 2026-12-06 one on `g AS (a || b)` passed: a peer's update of a and b then failed at
        // its first cell), and the probe of a row of defaults computes generated columns
        // (until then a CHECK or NOT NULL on one went unjudged).
        ("gensum", "table \"gensum\" cannot be a CRR: it has a CHECK constraint on several columns (\"a\", \"b\", through generated column \"g\")"),
        ("gendefault", "table \"gendefault\" cannot be a CRR: a row of its defaults fails CHECK (g != 'x')"),
        ("gennull", "table \"gennull\" cannot be a CRR: a row of its defaults fails NOT NULL on \"g\""),
    ];
    for (table, want) in cases {
        let e = err(&c, &format!("SELECT crsql_as_crr('{table}')"));
        assert!(e.contains("crsql_as_crr: ") && e.contains(want), "{table}: {e}");
    }
    // The defaults are judged with the column's affinity ('5' is stored as 5) and collation
    // ('y ' is 'y' under RTRIM: refused until 2026-12-06), and a CHECK that the key could
    // satisfy is not held against them; the probe table is left empty.
    c.execute_batch("SELECT crsql_as_crr('fine'); SELECT crsql_as_table('fine'); SELECT crsql_as_crr('genfine'); SELECT crsql_as_table('genfine');").unwrap();
    let probe: String = one(&c, "SELECT name FROM temp.sqlite_schema WHERE name LIKE 'crr_defaults_probe_%'");
    assert_eq!(one::<i64>(&c, &format!("SELECT count(*) FROM temp.\"{probe}\"")), 0);
    let e = err(&c, "SELECT crsql_as_crr('temp', 'nopk')");
    assert!(e.contains("not supported yet"), "{e}");
    // Nothing was left behind by the refusals.
    let n: i64 = one(&c, "SELECT count(*) FROM crr_tables");
    assert_eq!(n, 0);
    let triggers: i64 = one(&c, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'");
    assert_eq!(triggers, 0);
}

/// A key of more columns than the packed key can count (255), or than one function call takes
/// on the connection (SQLITE_LIMIT_FUNCTION_ARG: 127 in most builds, 1,000 in the newest; set to 127 here), is refused with
/// the table and the reason, and leaves nothing behind; a key of as many columns as both allow
/// is tracked and syncs. Until 2026-12-06 a key of 256 or more columns was taken on an SQLite
/// whose functions take 1,000 arguments (apsw's 3.54 here; 3.40 and 3.46 take 127), and every INSERT into the table then
/// failed in crsql_pack_columns; where they take fewer, crsql_as_crr failed with "too many
/// arguments on function crsql_pack_columns", naming neither the table nor its key.
#[test]
fn a_key_of_more_columns_than_its_triggers_can_pack_is_refused() {
    let keyed = |name: &str, n: usize| {
        let cols: Vec<String> = (0..n).map(|i| format!("k{i} INTEGER NOT NULL")).collect();
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        format!("CREATE TABLE {name}({}, v TEXT, PRIMARY KEY ({}));", cols.join(", "), keys.join(", "))
    };
    let insert = |name: &str, n: usize, v: &str| format!("INSERT INTO {name} VALUES ({}, '{v}');", (0..n).map(|i| (i * 3).to_string()).collect::<Vec<_>>().join(", "));
    let c = mem();
    // (127, as SQLite builds but the newest have it: the bundled 3.54 takes 1,000.)
    c.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_FUNCTION_ARG, 127).unwrap();
    let most = c.limit(rusqlite::limits::Limit::SQLITE_LIMIT_FUNCTION_ARG).unwrap();
    assert_eq!(most, 127);
    c.execute_batch(&format!("{}{}{}", keyed("widest", 256), keyed("over", most as usize + 1), keyed("most", most as usize))).unwrap();
    let e = err(&c, "SELECT crsql_as_crr('widest')");
    assert!(e.contains("table \"widest\" cannot be a CRR: its primary key has 256 columns; a CRR's key has at most 255"), "{e}");
    let e = err(&c, "SELECT crsql_as_crr('over')");
    let want = format!(
        "table \"over\" cannot be a CRR: its primary key has {} columns, and the triggers that record its writes pack them \
         with one call of crsql_pack_columns, which this SQLite lets take at most {most} arguments (SQLITE_LIMIT_FUNCTION_ARG)",
        most + 1
    );
    assert!(e.contains(&want), "{e}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables"), 0);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), 0);
    // The limit is the connection's: lowered, it refuses a key it took before.
    let low = mem();
    low.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_FUNCTION_ARG, 5).unwrap();
    low.execute_batch(&format!("{}{}", keyed("six", 6), keyed("five", 5))).unwrap();
    let e = err(&low, "SELECT crsql_as_crr('six')");
    assert!(e.contains("its primary key has 6 columns, and the triggers") && e.contains("at most 5 arguments"), "{e}");
    low.execute_batch(&format!("SELECT crsql_as_crr('five'); {}", insert("five", 5, "x"))).unwrap();
    assert_eq!(changes(&low).len(), 1);
    // A key of as many columns as the connection allows is tracked, and merges into a peer.
    c.execute_batch(&format!("SELECT crsql_as_crr('most'); {} {}", insert("most", most as usize, "x"), insert("most", most as usize, "y").replace("0, 3,", "1, 3,"))).unwrap();
    let peer = mem();
    peer.execute_batch(&format!("{} SELECT crsql_as_crr('most');", keyed("most", most as usize))).unwrap();
    apply(&peer, &changes(&c)).unwrap();
    assert_eq!(dump(&peer, "most"), dump(&c, "most"));
    assert_eq!(one::<i64>(&peer, "SELECT count(*) FROM most"), 2);
}

/// A connection with SQLite's advised limits for untrusted SQL (expressions at most 10 deep, as
/// Diesel's `set_recommended_security_limits` sets too) runs the extension: its own queries are
/// deeper (the highest db_version's, 14), and until 2026-12-07 every local write and
/// crsql_db_version() failed with "Expression tree is too large". A CRR whose triggers would be
/// deeper than the connection allows (the update trigger tests every column in one
/// expression) is refused, naming the limit: SQLite would refuse the database's whole schema on
/// such a connection.
#[test]
fn a_connection_with_a_low_expression_depth_limit_runs_the_extension() {
    use rusqlite::limits::Limit;
    let dir = tmpdir("expr-depth");
    let path = fresh_file(&dir, "d.db");
    let open_limited = || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, 10).unwrap();
        load(&c);
        c
    };
    let a = open_limited();
    a.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
         CREATE TABLE k(x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y)) WITHOUT ROWID;
         CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, c1, c2, c3, c4, c5, c6, c7, c8);
         SELECT crsql_as_crr('t'); SELECT crsql_as_crr('k');
         INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2); INSERT INTO k VALUES ('p', 1, 'v');
         UPDATE t SET a = 'z' WHERE id = 1; DELETE FROM t WHERE id = 2;",
    )
    .unwrap();
    let e = err(&a, "SELECT crsql_as_crr('w')");
    assert!(e.contains("the triggers that record table \"w\"'s writes test its 8 tracked columns in an expression deeper than this connection's SQLITE_LIMIT_EXPR_DEPTH (10)"), "{e}");
    // The same for the length of their SQL (about 85 bytes a column, for a column name of 4).
    let long = mem();
    long.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 2_000).unwrap();
    long.execute_batch("CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20)").unwrap();
    let e = err(&long, "SELECT crsql_as_crr('w')");
    assert!(e.contains("the triggers that record table \"w\"'s writes are") && e.contains("bytes of SQL for its 20 tracked columns, more than this connection's SQLITE_LIMIT_SQL_LENGTH (2000)"), "{e}");
    assert_eq!(one::<i64>(&long, "SELECT count(*) FROM crr_tables"), 0);
    assert_eq!(one::<i64>(&a, "SELECT crsql_db_version()"), 4);
    // A schema change prepares the extension's cached statements again at their next step,
    // under the connection's limits: they still run.
    a.execute_batch("CREATE TABLE other(x); INSERT INTO t VALUES (3, 'n', 3); SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT; SELECT crsql_commit_alter('t');")
        .unwrap();
    let b = mem();
    b.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER, d TEXT);
         CREATE TABLE k(x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y)) WITHOUT ROWID;
         SELECT crsql_as_crr('t'); SELECT crsql_as_crr('k'); INSERT INTO t VALUES (9, 'b', 9, 'd'); INSERT INTO k VALUES ('q', 2, 'w');",
    )
    .unwrap();
    apply(&a, &changes(&b)).unwrap();
    apply(&b, &changes(&a)).unwrap();
    for table in ["t", "k"] {
        assert_eq!(dump(&a, table), dump(&b, table), "{table}");
    }
    assert_eq!(dump(&a, "t").len(), 3);
    drop(a);
    // Opened again with the limit, the database's schema reads, and the extension runs.
    let again = open_limited();
    again.execute_batch("INSERT INTO t VALUES (4, 'r', 4, NULL); INSERT INTO k VALUES ('s', 3, 'u');").unwrap();
    assert_eq!(changes(&again).len(), changes(&b).len() + 4);
}

/// Each of the other limits SQLite advises for untrusted SQL (and Diesel's recommended
/// security limits set), alone, and all of them with the depth limit, on CRRs narrow enough
/// for it: the extension installs, tracks, reads, merges both ways, alters, takes a new site
/// id, stops tracking a table and opens the database again.
#[test]
fn connections_with_the_advised_limits_for_untrusted_sql_run_the_extension() {
    use rusqlite::limits::Limit;
    let advised = [
        (Limit::SQLITE_LIMIT_LENGTH, 1_000_000),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
        (Limit::SQLITE_LIMIT_COLUMN, 100),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 3),
        (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 8),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 10),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    ];
    let wide: Vec<String> = (0..70).map(|i| format!("c{i} TEXT")).collect();
    let narrow = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER);
                  CREATE TABLE k(x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y)) WITHOUT ROWID;
                  CREATE TABLE e(id INTEGER PRIMARY KEY NOT NULL, v TEXT);";
    let dir = tmpdir("advised-limits");
    // (what the case is, its limits, whether it has a CRR of 70 columns)
    type Case = (String, Vec<(Limit, i32)>, bool);
    let cases: Vec<Case> = advised
        .iter()
        .map(|&(l, v)| (format!("{l:?} {v}"), vec![(l, v)], true))
        .chain(std::iter::once(("all, and SQLITE_LIMIT_EXPR_DEPTH 10".to_string(), [&advised[..], &[(Limit::SQLITE_LIMIT_EXPR_DEPTH, 10)]].concat(), false)))
        .collect();
    for (i, (case, limits, with_wide)) in cases.into_iter().enumerate() {
        let schema = if with_wide { format!("{narrow} CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, {});", wide.join(", ")) } else { narrow.to_string() };
        let crrs: &[&str] = if with_wide { &["t", "k", "e", "w"] } else { &["t", "k", "e"] };
        let path = fresh_file(&dir, &format!("l{i}.db"));
        let open_limited = || {
            let c = rusqlite::Connection::open(&path).unwrap();
            for &(l, v) in &limits {
                c.set_limit(l, v).unwrap();
            }
            load(&c);
            c
        };
        let a = open_limited();
        a.execute_batch(&schema).unwrap();
        for t in crrs {
            a.execute_batch(&format!("SELECT crsql_as_crr('{t}')")).unwrap_or_else(|e| panic!("{case}: {t}: {e}"));
        }
        let mut writes = String::from("INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 2); INSERT INTO k VALUES ('p', 1, 'v'); UPDATE t SET a = 'z' WHERE id = 1; DELETE FROM t WHERE id = 2;");
        if with_wide {
            writes.push_str("INSERT INTO w(id, c1, c60) VALUES (1, 'a', 'b'); UPDATE w SET c2 = 'q';");
        }
        a.execute_batch(&writes).unwrap_or_else(|e| panic!("{case}: {e}"));
        let b = mem();
        b.execute_batch(&schema).unwrap();
        for t in crrs {
            b.execute_batch(&format!("SELECT crsql_as_crr('{t}')")).unwrap();
        }
        b.execute_batch("INSERT INTO t VALUES (7, 'm', 7); INSERT INTO k VALUES ('r', 2, 's');").unwrap();
        if with_wide {
            b.execute_batch("INSERT INTO w(id, c5) VALUES (7, 'm'); UPDATE w SET c9 = 'n';").unwrap();
        }
        apply(&a, &changes(&b)).unwrap_or_else(|e| panic!("{case}: merge: {e}"));
        apply(&b, &changes(&a)).unwrap();
        for t in crrs {
            assert_eq!(dump(&a, t), dump(&b, t), "{case}: {t}");
        }
        a.execute_batch(
            "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN d TEXT DEFAULT 'q'; SELECT crsql_commit_alter('t');
             SELECT crr_new_site_id(); SELECT crsql_as_table('e'); SELECT crsql_as_crr('t');",
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        let before = changes(&a).len();
        drop(a);
        let again = open_limited();
        again.execute_batch("INSERT INTO t(id, a) VALUES (5, 'r')").unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(changes(&again).len(), before + 3, "{case}");
        assert_eq!(one::<i64>(&again, "SELECT crsql_db_version()"), one::<i64>(&again, "SELECT max(db_version) FROM crsql_changes"), "{case}");
    }
}

/// Making every table a CRR from one SELECT over the schema works, also for tables whose
/// defaults are checked (the check's probe table: DROP TABLE is refused while a statement
/// runs: from 1529eae to fcb4985 such a table failed here with "database table is locked").
#[test]
fn as_crr_from_a_select_over_the_schema() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE a(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT 1 CHECK (n > 0));
         CREATE TABLE b(id INTEGER PRIMARY KEY NOT NULL, v TEXT NOT NULL DEFAULT 'x') STRICT;
         CREATE TABLE d(id INTEGER PRIMARY KEY NOT NULL, w);",
    )
    .unwrap();
    let done: Vec<String> = {
        let mut s = c.prepare("SELECT name, crsql_as_crr(name) FROM sqlite_schema WHERE type = 'table' AND name IN ('a', 'b', 'd') ORDER BY name").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(done, vec!["a", "b", "d"]);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_tables"), 3);
    // The same with a CRR dropped: its clock is emptied and its table left for a call that
    // no statement runs around (until 2026-12-06: `database table is locked`), and so for
    // crsql_begin_alter and crsql_commit_alter.
    c.execute_batch("DROP TABLE d; CREATE TABLE e(id INTEGER PRIMARY KEY NOT NULL, w);").unwrap();
    for f in ["crsql_as_crr", "crsql_begin_alter", "crsql_commit_alter"] {
        let mut s = c.prepare(&format!("SELECT {f}(name) FROM sqlite_schema WHERE type = 'table' AND name IN ('a', 'b', 'e') ORDER BY name")).unwrap();
        let answers: Vec<String> = s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(answers, ["OK", "OK", "OK"], "{f}");
    }
    assert_eq!(one::<String>(&c, "SELECT group_concat(name) FROM (SELECT name FROM crr_tables ORDER BY tid)"), "a,b,e");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_clock_3"), 0);
    c.execute_batch("SELECT crsql_as_crr('e')").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema WHERE name = 'crr_clock_3'"), 0);
    // crsql_as_table so: the clocks it cannot drop there are emptied, and dropped next time.
    let done: Vec<String> = {
        let mut s = c.prepare("SELECT crsql_as_table(name) FROM sqlite_schema WHERE type = 'table' AND name IN ('a', 'b')").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(done, ["OK", "OK"]);
    assert_eq!(one::<String>(&c, "SELECT group_concat(name) FROM crr_tables"), "e");
    c.execute_batch("SELECT crsql_as_crr('e')").unwrap();
    assert_eq!(one::<String>(&c, "SELECT group_concat(name) FROM sqlite_schema WHERE name GLOB 'crr_clock_*'"), "crr_clock_4");
}

#[test]
fn accepted_shapes_compound_without_rowid_strict_and_any_identifier() {
    let c = mem();
    c.execute_batch(
        r#"CREATE TABLE "we""ird tbl" ("sél ect" TEXT NOT NULL, "order" INTEGER NOT NULL, "va'l ue" TEXT DEFAULT 'd', "" BLOB, PRIMARY KEY ("sél ect", "order")) WITHOUT ROWID;
           CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, n INTEGER, x ANY) STRICT;
           SELECT crsql_as_crr('we"ird tbl'); SELECT crsql_as_crr('s');
           INSERT INTO "we""ird tbl" VALUES ('k', 1, 'v', X'00');
           UPDATE "we""ird tbl" SET "va'l ue" = 'w' WHERE "order" = 1;
           INSERT INTO s VALUES (1, 2, 'x');"#,
    )
    .unwrap();
    let ch = changes_where(&c, "WHERE \"table\" = 'we\"ird tbl'");
    let cids: Vec<&str> = ch.iter().map(|x| x.cid.as_str()).collect();
    assert_eq!(cids, vec!["", "va'l ue"]);
    assert_eq!(ch[1].val, txt("w"));
    let pk: Vec<V> = {
        let mut s = c.prepare("SELECT cell FROM crsql_unpack_columns(?1)").unwrap();
        s.query_map([&ch[0].pk], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(pk, vec![txt("k"), V::Integer(1)]);
    assert_eq!(changes_where(&c, "WHERE \"table\" = 's'").len(), 2);
}

#[test]
fn as_crr_backfills_existing_rows_once_and_is_idempotent() {
    let c = mem();
    c.execute_batch(&format!("{T} INSERT INTO t VALUES (1,'a',1,1.0),(2,'b',2,2.0); SELECT crsql_as_crr('t');")).unwrap();
    let first = changes(&c);
    assert_eq!(first.len(), 6);
    assert!(first.iter().all(|x| x.db_version == 1 && x.cl == 1));
    let schema: i64 = one(&c, "PRAGMA schema_version");
    c.execute_batch("SELECT crsql_as_crr('t'); SELECT crsql_as_crr('T');").unwrap();
    assert_eq!(changes(&c), first, "a second crsql_as_crr changes nothing");
    let triggers: i64 = one(&c, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'");
    assert_eq!(triggers, 3);
    // Not even the schema: the triggers it would make are there already (apps call it at
    // every start, and a schema change makes every connection prepare its statements anew).
    assert_eq!(one::<i64>(&c, "PRAGMA schema_version"), schema, "the same triggers were made again");
}

/// Kept triggers still track, and rows written while tracking was off are still backfilled
/// by a crsql_as_crr that keeps the triggers; a WITHOUT ROWID table and a renamed table too.
#[test]
fn as_crr_again_keeps_its_triggers_and_still_backfills() {
    let c = mem();
    c.execute_batch(&format!("{T} SELECT crsql_as_crr('t'); CREATE TABLE w(k TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID; SELECT crsql_as_crr('w');")).unwrap();
    let tid: i64 = one(&c, "SELECT tid FROM crr_tables WHERE name = 't'");
    // A row the triggers did not see: written while its insert trigger was gone.
    let insert_sql: String = one(&c, &format!("SELECT sql FROM sqlite_schema WHERE name = 'crr_{tid}_insert'"));
    c.execute_batch(&format!("DROP TRIGGER \"crr_{tid}_insert\"; INSERT INTO t VALUES (1, 'untracked', 1, 1.0); {insert_sql};")).unwrap();
    assert_eq!(changes(&c).len(), 0);
    let schema: i64 = one(&c, "PRAGMA schema_version");
    c.execute_batch("SELECT crsql_as_crr('t'); SELECT crsql_as_crr('w');").unwrap();
    assert_eq!(one::<i64>(&c, "PRAGMA schema_version"), schema, "triggers kept");
    assert_eq!(changes(&c).len(), 3, "the untracked row is backfilled");
    c.execute_batch("INSERT INTO t VALUES (2, 'tracked', 2, 2.0); INSERT INTO w VALUES ('x', 1);").unwrap();
    assert_eq!(changes(&c).len(), 7);
    // After a rename, crsql_as_crr under the new name still works and the triggers track.
    c.execute_batch("ALTER TABLE w RENAME TO w2; SELECT crsql_as_crr('w2'); INSERT INTO w2 VALUES ('y', 2);").unwrap();
    assert_eq!(changes_where(&c, "WHERE \"table\" = 'w2'").len(), 2);
}

/// With `SQLITE_DBCONFIG_ENABLE_TRIGGER` off, SQLite runs no trigger of the main schema, so a
/// CRR's writes went unrecorded without a word, and never reached another replica (until
/// 2026-12-06). SQLite tells an extension nothing at such a write, so the load refuses such a
/// connection, and every call of the extension fails while the setting is off, naming it:
/// the app learns at its next sync at the latest. Once triggers are on again, crsql_as_crr
/// records the rows inserted meanwhile.
#[test]
fn a_connection_with_triggers_turned_off_is_refused_and_told_why() {
    use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER as TRIGGERS;
    let says_why = |e: &str| e.contains("triggers are turned off on this connection (SQLITE_DBCONFIG_ENABLE_TRIGGER)");
    let bare = rusqlite::Connection::open_in_memory().unwrap();
    bare.set_db_config(TRIGGERS, false).unwrap();
    let e = load_extension_checked(&bare).unwrap_err();
    assert!(says_why(&e) && e.contains("before loading the extension"), "{e}");
    assert!(bare.prepare("SELECT crsql_site_id()").is_err(), "a refused load registers nothing");
    bare.set_db_config(TRIGGERS, true).unwrap();
    load_extension_checked(&bare).unwrap();

    let c = crr_t();
    c.execute_batch("INSERT INTO t VALUES (1, 'tracked', 1, 1.0)").unwrap();
    let before = changes(&c);
    let r = mem();
    r.execute_batch(&format!("{T} SELECT crsql_as_crr('t'); INSERT INTO t VALUES (3, 'peer', 3, 3.0);")).unwrap();
    apply(&r, &before).unwrap();
    c.set_db_config(TRIGGERS, false).unwrap();
    // SQLite lets the writes through, and runs no trigger of ours.
    c.execute_batch("INSERT INTO t VALUES (2, 'unseen', 2, 2.0); UPDATE t SET a = 'also unseen' WHERE id = 1").unwrap();
    let refused = |what: &str, e: rusqlite::Error| assert!(says_why(&e.to_string()), "{what}: {e}");
    refused("a read", c.prepare("SELECT count(*) FROM crsql_changes").and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0))).unwrap_err());
    refused("a merge", apply(&c, &changes(&r)).unwrap_err());
    for call in ["SELECT crsql_db_version()", "SELECT crsql_site_id()", "SELECT crsql_as_crr('t')", "SELECT crsql_finalize()"] {
        refused(call, c.query_row(call, [], |_| Ok(())).unwrap_err());
    }
    // Nothing of the refused calls happened.
    c.set_db_config(TRIGGERS, true).unwrap();
    // (A change's value is read from the table as it is now, so compare clocks.)
    let clocks = |cs: Vec<Change>| cs.into_iter().map(|x| (x.cid, x.col_version, x.db_version, x.cl, x.seq)).collect::<Vec<_>>();
    assert_eq!(clocks(changes(&c)), clocks(before.clone()), "no change recorded or merged while triggers were off");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM t WHERE id = 3"), 0);
    // The inserted row is recorded by crsql_as_crr; the update of row 1 is not (no trace of it
    // is left to find), so a peer that had row 1 keeps its old value.
    c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    apply(&r, &changes(&c)).unwrap();
    assert_eq!(one::<String>(&c, "SELECT a FROM t WHERE id = 1"), "also unseen");
    assert_eq!(
        dump(&r, "t"),
        vec![
            vec![V::Integer(1), txt("tracked"), V::Integer(1), V::Real(1.0)],
            vec![V::Integer(2), txt("unseen"), V::Integer(2), V::Real(2.0)],
            vec![V::Integer(3), txt("peer"), V::Integer(3), V::Real(3.0)],
        ]
    );
}

/// SQLite refuses a compound SELECT of more terms than SQLITE_LIMIT_COMPOUND_SELECT (500 by
/// default), and the highest db_version (at a transaction's first write, crsql_db_version())
/// and the clock mark (at a connection's first write) are read with a term per CRR: with 499
/// CRRs every local write and crsql_db_version() failed ("too many terms in compound SELECT",
/// until 2026-12-06). Here the limit is lowered to 3 over 8 CRRs of both clock kinds, the
/// newest version in the last one (the last group of terms), with another connection's
/// commit and a reopen behind a wall clock that went back; then 505 CRRs under the default.
#[test]
fn more_crrs_than_a_compound_select_may_name_still_take_writes() {
    let path = tmpdir("compound").join("c.db").to_str().unwrap().to_string();
    let limited = |path: &str| {
        let c = open(path);
        // SAFETY (test): sets a limit of our own open connection.
        unsafe { rusqlite::ffi::sqlite3_limit(c.handle(), rusqlite::ffi::SQLITE_LIMIT_COMPOUND_SELECT, 3) };
        c
    };
    let c = limited(&path);
    for i in 0..8 {
        let key = if i % 2 == 0 { "id INTEGER PRIMARY KEY NOT NULL" } else { "id TEXT PRIMARY KEY NOT NULL" };
        c.execute_batch(&format!("CREATE TABLE t{i}({key}, v); SELECT crsql_as_crr('t{i}');")).unwrap();
    }
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(5000000)").unwrap();
    for i in 0..8 {
        c.execute(&format!("INSERT INTO t{i} VALUES (1, 'v{i}')"), []).unwrap();
    }
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 8);
    let d = limited(&path);
    d.execute_batch("SELECT crr_set_wall_clock_for_testing(6000000); UPDATE t7 SET v = 'newest' WHERE id = '1';").unwrap();
    c.execute("UPDATE t0 SET v = 'after' WHERE id = 1", []).unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 10, "above the other connection's commit");
    let newest: i64 = one(&c, "SELECT max(col_version) FROM crsql_changes");
    drop((c, d));
    // Reopened with the wall clock far behind: the next version is still above every stored one.
    let c = limited(&path);
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(1); UPDATE t3 SET v = 'reopened' WHERE id = '1';").unwrap();
    let (v, dbv): (i64, i64) = c.query_row("SELECT col_version, db_version FROM crsql_changes WHERE val = 'reopened'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert!(v > newest, "{v} <= {newest}");
    assert_eq!(dbv, 11);
    // The default limit, and more CRRs than it allows terms.
    let m = mem();
    let tables: String = (0..505).map(|i| format!("CREATE TABLE m{i}(id INTEGER PRIMARY KEY NOT NULL, v); SELECT crsql_as_crr('m{i}');")).collect();
    m.execute_batch(&tables).unwrap();
    m.execute_batch("INSERT INTO m504 VALUES (1, 'x'); INSERT INTO m0 VALUES (1, 'y');").unwrap();
    assert_eq!(one::<i64>(&m, "SELECT crsql_db_version()"), 2);
}

/// A table of SQLite's most columns (2,000) is a CRR like any other. Until 2026-12-06 one of
/// about 1,000 could not become one (its update trigger's test of each column was a chain of
/// ORs as deep as it is long: "Expression tree is too large (maximum depth 1000)"), and a read
/// of one of 1,998 or more failed ("too many columns in result set"); a bracket on a table
/// of 1,200 columns adds and drops one.
#[test]
fn a_table_of_sqlites_most_columns_is_a_crr() {
    let wide = |n: usize| {
        let cols: String = (0..n).map(|i| format!(", c{i}")).collect();
        format!("CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL{cols}); SELECT crsql_as_crr('w');")
    };
    let (a, b) = (mem(), mem());
    for c in [&a, &b] {
        c.execute_batch(&wide(1999)).unwrap();
    }
    a.execute_batch("INSERT INTO w(id, c0, c1998) VALUES (1, 'first', 'last'); UPDATE w SET c1000 = 5, c1998 = 'later' WHERE id = 1;").unwrap();
    let feed = changes(&a);
    assert_eq!(feed.len(), 1999);
    assert!(feed.iter().any(|x| x.cid == "c1998" && x.val == txt("later") && x.db_version == 2), "a far column's update is read with its value");
    // The cells that are not NULL (the others are the defaults a merged row starts with): a
    // merge prepares a statement per column it writes, each compiling the table's triggers,
    // whose size grows with the columns (22 ms each here: the first full row of so wide a
    // table takes 45 s to merge on a connection, later rows reuse the statements).
    let set: Vec<Change> = feed.iter().filter(|x| x.val != V::Null).cloned().collect();
    assert_eq!(set.len(), 3);
    apply(&b, &set).unwrap();
    assert_eq!(dump(&b, "w"), dump(&a, "w"));
    let c = mem();
    c.execute_batch(&wide(1200)).unwrap();
    c.execute_batch(
        "INSERT INTO w(id, c5) VALUES (1, 'x'); SELECT crsql_begin_alter('w'); ALTER TABLE w ADD COLUMN extra DEFAULT 0; \
         ALTER TABLE w DROP COLUMN c7; UPDATE w SET c1199 = 'y', extra = 3; SELECT crsql_commit_alter('w'); UPDATE w SET c0 = 'z';",
    )
    .unwrap();
    let mut cids: Vec<String> = changes_where(&c, "WHERE db_version > 1").into_iter().map(|x| x.cid).collect();
    cids.sort();
    assert_eq!(cids, ["c0", "c1199", "extra"]);
    // The read's fallback alone: 10 columns under a column limit of 12 (the clock scan with
    // values would select 13).
    let d = mem();
    d.execute_batch(&wide(9)).unwrap();
    d.execute_batch("INSERT INTO w(id, c8) VALUES (1, 'v')").unwrap();
    // SAFETY (test): sets a limit of our own open connection.
    unsafe { rusqlite::ffi::sqlite3_limit(d.handle(), rusqlite::ffi::SQLITE_LIMIT_COLUMN, 12) };
    assert!(changes(&d).iter().any(|x| x.cid == "c8" && x.val == txt("v")));
}

/// SQLite fires a table's triggers newest first, so an app's AFTER trigger made after
/// crsql_as_crr ran before the extension's: its RAISE(IGNORE) abandoned the tracking of the
/// write it let through (no error, nothing recorded), and its RAISE(FAIL) stopped the statement
/// with the write kept and unrecorded, even outside a transaction (FAIL commits what it keeps).
/// crsql_as_crr and every load of the extension make the extension's triggers the table's
/// newest again (the same text, in the main schema even while a TEMP table of the CRR's name
/// exists, as crr_new_site_id's remade triggers are); then the tracking runs first, and FAIL
/// keeps the write with its record.
#[test]
fn app_triggers_made_after_the_crr_cannot_skip_its_tracking() {
    let (c, path) = crr_t_file("trigger-order");
    let app = "CREATE TRIGGER skip AFTER UPDATE ON t WHEN NEW.a = 'skip' BEGIN SELECT RAISE(IGNORE); END;
               CREATE TRIGGER stop AFTER INSERT ON t WHEN NEW.a = 'stop' BEGIN SELECT RAISE(FAIL, 'stopped'); END;";
    c.execute_batch(&format!("INSERT INTO t VALUES (1, 'one', 1, 1.0); {app} CREATE TEMP TABLE t(x); SELECT crsql_as_crr('main', 't'); SELECT crr_new_site_id();")).unwrap();
    let ours: i64 = one(&c, "SELECT count(*) FROM main.sqlite_schema WHERE type = 'trigger' AND name GLOB 'crr_*' AND tbl_name = 't'");
    assert_eq!(ours, 3, "the extension's triggers stay the main table's");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM temp.sqlite_schema WHERE type = 'trigger'"), 0);
    c.execute_batch("DROP TABLE temp.t").unwrap();
    let rebuilds = |c: &rusqlite::Connection| {
        let b = mem();
        b.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
        apply(&b, &changes(c)).unwrap();
        assert_eq!(dump(&b, "t"), dump(c, "t"), "the feed does not rebuild the table");
    };
    // The version of cell `a` of row `id` (a write the triggers missed leaves it as it was,
    // while the feed shows the new value: a rebuild cannot see that, peers can).
    let version = |c: &rusqlite::Connection, id: i64| -> i64 {
        one(c, &format!("SELECT db_version FROM crsql_changes WHERE pk = crsql_pack_columns({id}) AND cid = 'a'"))
    };
    let before = version(&c, 1);
    c.execute_batch("UPDATE t SET a = 'skip' WHERE id = 1").unwrap();
    assert!(version(&c, 1) > before, "the update is recorded");
    let e = c.execute_batch("INSERT INTO t VALUES (2, 'stop', 2, 2.0)").unwrap_err();
    assert!(e.to_string().contains("stopped"), "{e}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM t"), 2, "FAIL keeps the write");
    rebuilds(&c);
    // Made again after the CRR, then a reopen: the load puts the tracking first.
    c.execute_batch(&format!("DROP TRIGGER skip; DROP TRIGGER stop; {app}")).unwrap();
    drop(c);
    let c = open(&path);
    let before = version(&c, 2);
    c.execute_batch("UPDATE t SET a = 'skip' WHERE id = 2").unwrap();
    assert!(version(&c, 2) > before, "the update is recorded");
    c.execute_batch("INSERT INTO t VALUES (3, 'stop', 3, 3.0)").unwrap_err();
    rebuilds(&c);
    // Once in order, loads and crsql_as_crr leave the schema alone.
    let schema: i64 = one(&c, "PRAGMA schema_version");
    drop(c);
    let c = open(&path);
    c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    assert_eq!(one::<i64>(&c, "PRAGMA schema_version"), schema);
}

#[test]
fn a_failing_as_crr_rolls_back_only_its_own_work() {
    let c = mem();
    c.execute_batch("CREATE TABLE keep(x); CREATE TABLE bad(a); BEGIN; INSERT INTO keep VALUES (1);").unwrap();
    assert!(err(&c, "SELECT crsql_as_crr('bad')").contains("no PRIMARY KEY"));
    c.execute_batch("COMMIT").unwrap();
    let n: i64 = one(&c, "SELECT count(*) FROM keep");
    assert_eq!(n, 1);
}

#[test]
fn as_table_stops_tracking_and_keeps_the_data() {
    let c = crr_t();
    c.execute_batch("INSERT INTO t(id, a) VALUES (1, 'x'); SELECT crsql_as_table('t'); INSERT INTO t(id, a) VALUES (2, 'y');").unwrap();
    assert_eq!(dump(&c, "t").len(), 2);
    assert!(changes(&c).is_empty());
    let clocks: i64 = one(&c, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'crr_clock%'");
    assert_eq!(clocks, 0);
    assert!(err(&c, "SELECT crsql_as_table('t')").contains("is not a CRR"));
    // db_version never goes back, even though the clock that held the highest one is gone.
    let v: i64 = one(&c, "SELECT crsql_db_version()");
    assert_eq!(v, 1);
}

#[test]
fn insert_records_each_column_update_only_changed_ones() {
    let c = crr_t();
    c.execute("INSERT INTO t VALUES (1, 'x', 1, 1.5)", []).unwrap();
    assert_eq!(feed(&c), vec![("a".into(), txt("x"), 1), ("b".into(), V::Integer(1), 1), ("c".into(), V::Real(1.5), 1)]);
    c.execute("UPDATE t SET a = 'y', b = 1 WHERE id = 1", []).unwrap();
    let since = changes_where(&c, "WHERE db_version > 1");
    assert_eq!(since.len(), 1, "b was set to the value it had: not a change");
    assert_eq!((since[0].cid.as_str(), &since[0].val), ("a", &txt("y")));
    assert!(since[0].col_version > changes(&c)[0].col_version);
    c.execute("UPDATE t SET a = 'y' WHERE id = 1", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE db_version > 2").len(), 0);
}

/// The trigger functions build records in buffers kept across calls (one per function, shared
/// by every table): a wide row's record must leave nothing in a narrow row's.
#[test]
fn records_of_tables_of_different_widths_stay_apart() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, c1, c2, c3, c4, c5, c6, c7, c8); SELECT crsql_as_crr('w');
         CREATE TABLE n(id INTEGER PRIMARY KEY NOT NULL, a); SELECT crsql_as_crr('n');
         INSERT INTO w VALUES (1, 1, 2, 3, 4, 5, 6, 7, 8); INSERT INTO n VALUES (1, 'x');
         UPDATE w SET c8 = 80; UPDATE n SET a = 'y'; UPDATE w SET c1 = 10; UPDATE n SET a = 'z';",
    )
    .unwrap();
    let of = |table: &str| -> Vec<(String, V, i64)> {
        changes(&c).into_iter().filter(|x| x.table == table).map(|x| (x.cid, x.val, x.col_version)).collect()
    };
    let w = of("w");
    let cells: Vec<(&str, V)> = w.iter().map(|(cid, val, _)| (cid.as_str(), val.clone())).collect();
    let mut want: Vec<(&str, V)> = (2..=7).map(|i| (["c2", "c3", "c4", "c5", "c6", "c7"][i - 2], V::Integer(i as i64))).collect();
    want.extend([("c8", V::Integer(80)), ("c1", V::Integer(10))]);
    assert_eq!(cells, want);
    assert!(w[6].2 > w[0].2 && w[7].2 > w[6].2, "the updated cells have later versions: {w:?}");
    let n = of("n");
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!((n[0].0.as_str(), &n[0].1), ("a", &txt("z")));
    assert_eq!(dump(&c, "n"), vec![vec![V::Integer(1), txt("z")]]);
}

#[test]
fn storage_class_changes_count_in_untyped_columns_and_case_changes_count_in_nocase_columns() {
    let c = mem();
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, x, n TEXT COLLATE NOCASE); SELECT crsql_as_crr('u'); INSERT INTO u VALUES (1, 1, 'a');").unwrap();
    c.execute_batch("UPDATE u SET x = 1.0 WHERE id = 1; UPDATE u SET n = 'A' WHERE id = 1;").unwrap();
    let since: Vec<String> = changes_where(&c, "WHERE db_version > 1").into_iter().map(|x| x.cid).collect();
    assert_eq!(since, vec!["x", "n"]);
}

#[test]
fn delete_leaves_a_tombstone_and_reinsert_resurrects() {
    let c = crr_t();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1,1.0); DELETE FROM t WHERE id = 1;").unwrap();
    assert_eq!(feed(&c), vec![("-1".into(), V::Null, 2)]);
    let s = &changes(&c)[0];
    assert_eq!(s.col_version, 2, "sentinel col_version is the causal length");
    c.execute("INSERT INTO t(id, a) VALUES (1, 'again')", []).unwrap();
    assert_eq!(
        feed(&c),
        vec![("-1".into(), V::Null, 3), ("a".into(), txt("again"), 3), ("b".into(), V::Null, 3), ("c".into(), V::Null, 3)]
    );
}

#[test]
fn key_only_tables_show_the_sentinel() {
    let c = mem();
    c.execute_batch("CREATE TABLE k(a TEXT NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b)); SELECT crsql_as_crr('k'); INSERT INTO k VALUES ('x', 1);").unwrap();
    assert_eq!(feed(&c), vec![("-1".into(), V::Null, 1)]);
}

#[test]
fn insert_or_replace_and_upsert_are_recorded() {
    let c = crr_t();
    c.execute("INSERT INTO t VALUES (1,'x',1,1.0)", []).unwrap();
    c.execute("INSERT OR REPLACE INTO t VALUES (1,'y',1,1.0)", []).unwrap();
    let r = changes_where(&c, "WHERE db_version = 2");
    assert_eq!(r.len(), 3, "replace writes every column");
    assert!(r.iter().all(|x| x.cl == 1));
    assert_eq!(r[0].val, txt("y"));
    c.execute("INSERT INTO t(id, a) VALUES (1, 'z') ON CONFLICT(id) DO UPDATE SET a = excluded.a", []).unwrap();
    let u = changes_where(&c, "WHERE db_version = 3");
    assert_eq!(u.iter().map(|x| (x.cid.as_str(), x.val.clone())).collect::<Vec<_>>(), vec![("a", txt("z"))]);
    c.execute("INSERT INTO t(id, a) VALUES (2, 'new') ON CONFLICT(id) DO UPDATE SET a = excluded.a", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE db_version = 4").len(), 3);
}

/// With recursive triggers on (apsw's best practice), SQLite fires the delete triggers of the
/// row a REPLACE removes: the replace is recorded as a delete and a re-insert, and a peer that
/// merges it holds the same row and the same changes.
#[test]
fn a_replace_under_recursive_triggers_is_a_delete_and_a_reinsert() {
    let c = crr_t();
    c.execute_batch("PRAGMA recursive_triggers = ON; INSERT INTO t VALUES (1,'x',1,1.0); INSERT OR REPLACE INTO t VALUES (1,'y',1,1.0)").unwrap();
    let r = changes_where(&c, "WHERE db_version = 2");
    assert!(r.iter().all(|x| x.cl == 3), "deleted (2) and inserted again (3): {r:?}");
    assert_eq!(r.iter().map(|x| x.cid.as_str()).collect::<Vec<_>>(), ["-1", "a", "b", "c"]);
    let peer = crr_t();
    apply(&peer, &changes(&c)).unwrap();
    assert_eq!(dump(&peer, "t"), dump(&c, "t"));
    let key = |x: &Change| (x.cid.clone(), format!("{:?}", x.val), x.col_version, x.cl);
    assert_eq!(changes(&peer).iter().map(key).collect::<Vec<_>>(), changes(&c).iter().map(key).collect::<Vec<_>>());
}

#[test]
fn app_triggers_writes_are_recorded() {
    let c = crr_t();
    c.execute_batch(
        "CREATE TABLE log(id INTEGER PRIMARY KEY NOT NULL, what TEXT); SELECT crsql_as_crr('log');
         CREATE TRIGGER t_log AFTER UPDATE ON t BEGIN INSERT INTO log(what) VALUES ('t ' || NEW.id); END;
         INSERT INTO t(id, a) VALUES (1, 'x'); UPDATE t SET a = 'y';",
    )
    .unwrap();
    let l = changes_where(&c, "WHERE \"table\" = 'log'");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].val, txt("t 1"));
    assert_eq!(l[0].db_version, changes_where(&c, "WHERE \"table\" = 't' AND cid = 'a'")[0].db_version);
}

#[test]
fn primary_key_update_is_delete_plus_insert_at_the_new_db_version() {
    let c = crr_t();
    c.execute("INSERT INTO t VALUES (1,'x',1,1.0)", []).unwrap();
    c.execute("UPDATE t SET id = 2 WHERE id = 1", []).unwrap();
    let all = changes(&c);
    let old_pk: Vec<u8> = one(&c, "SELECT crsql_pack_columns(1)");
    let new_pk: Vec<u8> = one(&c, "SELECT crsql_pack_columns(2)");
    let old: Vec<_> = all.iter().filter(|x| x.pk == old_pk).collect();
    assert_eq!(old.len(), 1);
    assert_eq!((old[0].cid.as_str(), old[0].cl, old[0].db_version), ("-1", 2, 2));
    let moved: Vec<_> = all.iter().filter(|x| x.pk == new_pk).collect();
    assert_eq!(moved.len(), 3);
    assert!(moved.iter().all(|x| x.db_version == 2 && x.cl == 1), "moved cells carry the new db_version: {moved:?}");
}

#[test]
fn one_db_version_per_transaction_with_increasing_seq() {
    let c = mem();
    c.execute_batch(&format!("{T} CREATE TABLE k(a TEXT PRIMARY KEY NOT NULL); SELECT crsql_as_crr('t'); SELECT crsql_as_crr('k');")).unwrap();
    c.execute_batch("BEGIN; INSERT INTO t(id, a) VALUES (1, 'x'); INSERT INTO k VALUES ('q'); UPDATE t SET b = 5; COMMIT;").unwrap();
    let all = changes(&c);
    assert!(all.iter().all(|x| x.db_version == 1));
    let seqs: Vec<i64> = all.iter().map(|x| x.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    c.execute_batch("INSERT INTO t(id) VALUES (2); INSERT INTO t(id) VALUES (3);").unwrap();
    let v: Vec<i64> = changes_where(&c, "WHERE db_version > 1").iter().map(|x| x.db_version).collect();
    assert_eq!(v, vec![2, 2, 2, 3, 3, 3]);
    // A rolled-back transaction leaves nothing and its db_version is used by the next one.
    c.execute_batch("BEGIN; INSERT INTO t(id) VALUES (9); ROLLBACK; INSERT INTO t(id) VALUES (4);").unwrap();
    let after: Vec<i64> = changes_where(&c, "WHERE db_version > 3").iter().map(|x| x.db_version).collect();
    assert_eq!(after, vec![4, 4, 4]);
}

/// An app's own commit hook (sqlite3_commit_hook keeps one per connection) replaced ours
/// (the extension now installs none). Transactions must still each get their own db_version
/// and tick: before, the next
/// transaction took on the last one's (two committed transactions at one db_version, so a peer
/// that had synced the first never asked for the second) and crsql_db_version() went stale.
#[test]
fn an_apps_commit_hook_does_not_run_two_transactions_together() {
    let mut hook = AppHook::default();
    let c = crr_t();
    let peer = crr_t();
    // SAFETY: `hook` outlives every commit of `c` below; the hook is removed before it goes.
    unsafe { set_app_hook(&c, Some(&mut hook)) };
    c.execute("INSERT INTO t(id, a) VALUES (1, 'one')", []).unwrap();
    apply(&peer, &changes(&c)).unwrap();
    c.execute_batch("BEGIN; INSERT INTO t(id, a) VALUES (2, 'two'); UPDATE t SET a = 'one again' WHERE id = 1; COMMIT;").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 2);
    let dbv = |id: i64| one::<i64>(&c, &format!("SELECT db_version FROM crsql_changes WHERE pk = crsql_pack_columns({id}) AND cid = 'a'"));
    assert_eq!((dbv(1), dbv(2)), (2, 2));
    assert!(version_of(&c, "t", 1, "a") > version_of(&peer, "t", 1, "a"), "the second write outranks the first");
    // The peer asks for what it has not seen and gets the second transaction whole.
    apply(&peer, &changes_where(&c, "WHERE db_version > 1")).unwrap();
    assert_eq!(dump(&peer, "t"), dump(&c, "t"));
    // A merge right after a local transaction, and a read right after a merge, see the
    // commit too.
    peer.execute("INSERT INTO t(id, a) VALUES (4, 'from the peer')", []).unwrap();
    let from_peer = changes_where(&peer, "WHERE cid = 'a' AND val = 'from the peer'");
    c.execute("INSERT INTO t(id) VALUES (3)", []).unwrap();
    apply(&c, &from_peer).unwrap();
    let feed: Vec<(i64, i64)> = changes_where(&c, "WHERE db_version > 2 AND cid = 'a'").iter().map(|x| (x.db_version, x.pk[2] as i64)).collect();
    assert_eq!(feed, vec![(3, 3), (4, 4)]);
    c.execute("INSERT INTO t(id) VALUES (5)", []).unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 5);
    clear_app_hook(&c);
    assert_eq!(hook.calls, 5, "the app's hook ran at every commit");
}

/// The same, for a merge that writes no user row (a tombstone of a greater site raises the
/// sentinel of a row both deleted): it must not record at the last local transaction's
/// db_version either.
#[test]
fn an_apps_commit_hook_does_not_run_a_merge_into_the_last_transaction() {
    let (a, b) = (crr_t(), crr_t());
    a.execute("INSERT INTO t(id, a) VALUES (1, 'x')", []).unwrap();
    apply(&b, &changes(&a)).unwrap();
    let site = |c: &rusqlite::Connection| one::<Vec<u8>>(c, "SELECT crsql_site_id()");
    let (hi, lo) = if site(&a) > site(&b) { (&a, &b) } else { (&b, &a) };
    // SAFETY: a hook without a record points nowhere.
    unsafe { set_app_hook(lo, None) };
    hi.execute("DELETE FROM t WHERE id = 1", []).unwrap();
    lo.execute("DELETE FROM t WHERE id = 1", []).unwrap();
    // Read nothing in between (a read would notice the commit first): the insert and the
    // delete are this replica's transactions 1 and 2.
    apply(lo, &changes_where(hi, "WHERE cid = '-1'")).unwrap();
    let (dbv, owner): (i64, Vec<u8>) = lo.query_row("SELECT db_version, site_id FROM crsql_changes WHERE cid = '-1'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(owner, site(hi), "the greater site owns the tombstone");
    assert_eq!(dbv, 3, "the merge is a transaction of its own");
    clear_app_hook(lo);
}

/// The extension installs no commit hook (it notices commits itself), so loading it keeps a
/// commit hook the app installed before; and transactions stay apart all the same.
#[test]
fn a_commit_hook_installed_before_loading_keeps_running() {
    let mut hook = AppHook::default();
    let c = rusqlite::Connection::open_in_memory().unwrap();
    // SAFETY: `hook` outlives every commit of `c` below; the hook is removed before it goes.
    unsafe { set_app_hook(&c, Some(&mut hook)) };
    load(&c);
    c.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
    let before = hook.calls;
    c.execute("INSERT INTO t(id) VALUES (1)", []).unwrap();
    c.execute("INSERT INTO t(id) VALUES (2)", []).unwrap();
    assert_eq!(hook.calls, before + 2, "the app's hook ran at both commits");
    let dbvs: Vec<i64> = changes(&c).iter().map(|x| x.db_version).collect();
    assert_eq!(dbvs, vec![1, 1, 1, 2, 2, 2]);
    clear_app_hook(&c);
}

/// An app's commit hook that vetoes a commit turns it into a rollback, which SQLite reports to
/// crr_internal_txn (xRollback): the next transaction starts clean.
#[test]
fn an_apps_commit_hook_that_vetoes_a_commit_leaves_a_clean_next_transaction() {
    let mut hook = AppHook { vetoes: 1, ..AppHook::default() };
    let c = crr_t();
    // SAFETY: `hook` outlives every commit of `c` below; the hook is removed before it goes.
    unsafe { set_app_hook(&c, Some(&mut hook)) };
    let e = c.execute_batch("BEGIN; INSERT INTO t(id, a) VALUES (1, 'vetoed'); COMMIT;").unwrap_err();
    assert!(e.to_string().contains("constraint"), "{e}");
    c.execute_batch("ROLLBACK").ok();
    c.execute("INSERT INTO t(id, a) VALUES (2, 'kept')", []).unwrap();
    let feed: Vec<(i64, i64)> = changes(&c).iter().map(|x| (x.db_version, x.pk[2] as i64)).collect();
    assert_eq!(feed.iter().map(|f| f.1).collect::<Vec<_>>(), vec![2, 2, 2], "only the kept row: {feed:?}");
    assert!(feed.iter().all(|f| f.0 == 1), "{feed:?}");
    clear_app_hook(&c);
}

/// Two connections to a new file with the CRR `t` (`crr_t_file`), in WAL mode or not.
fn two_connections(name: &str, wal: bool) -> (rusqlite::Connection, rusqlite::Connection) {
    let (a, path) = crr_t_file(&format!("{name}{}", if wal { "-wal" } else { "" }));
    if wal {
        a.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    }
    let b = open(&path);
    (a, b)
}

/// SQLite keeps one rollback hook per connection. The extension installs none (its virtual
/// tables' xRollback tell it of rollbacks), so an app's own runs, and hides no rollback from
/// the extension (see `common::around_rollbacks`).
#[test]
fn an_apps_rollback_hook_runs_and_hides_no_rollback() {
    for wal in [false, true] {
        let (a, b) = two_connections("app-rollback-hook", wal);
        let rows = around_rollbacks(&a, &b, "t", 1);
        assert_eq!(rows, [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)], "(db_version, first seq) of the committed rows (wal {wal})");
    }
}

/// A write transaction in which our code ran without joining (here a plain-table write and a
/// test-clock call) and that rolled back is not reported to us; another connection's commit
/// after it must still end what the last commit carried, or the next commit takes that
/// connection's db_version.
#[test]
fn an_unreported_rollback_then_another_connections_commit_leaves_db_versions_apart() {
    for wal in [false, true] {
        let (a, b) = two_connections("unreported-rollback", wal);
        a.execute_batch("CREATE TABLE plain(x)").unwrap();
        a.execute("INSERT INTO t(id, a) VALUES (1, 'a')", []).unwrap();
        a.execute_batch("BEGIN; INSERT INTO plain VALUES (1); SELECT crr_set_wall_clock_for_testing(NULL); ROLLBACK;").unwrap();
        b.execute("INSERT INTO t(id, a) VALUES (2, 'b')", []).unwrap();
        a.execute("INSERT INTO t(id, a) VALUES (3, 'a')", []).unwrap();
        let dbv = |id: i64| one::<i64>(&a, &format!("SELECT db_version FROM crsql_changes WHERE pk = crsql_pack_columns({id}) AND cid = 'a'"));
        assert_eq!([1, 2, 3].map(dbv), [1, 2, 3], "wal {wal}");
    }
}

/// A connection's next transaction starts from what its last commit left (txn::Carry), also
/// across a commit in which our code ran but wrote nothing (here a plain-table write and a
/// read of crsql_db_version()), but never past another connection's commit, whether it came
/// before such a commit or after it.
#[test]
fn a_plain_commit_passes_the_carry_on_but_another_connections_commit_ends_it() {
    for wal in [false, true] {
        let (a, b) = two_connections("carry", wal);
        a.execute_batch("CREATE TABLE plain(x)").unwrap();
        let dbv = |c: &rusqlite::Connection, id: i64| one::<i64>(c, &format!("SELECT db_version FROM crsql_changes WHERE pk = crsql_pack_columns({id}) AND cid = 'a'"));
        a.execute("INSERT INTO t(id, a) VALUES (1, 'a')", []).unwrap();
        let plain = |n: i64| a.execute_batch(&format!("BEGIN; INSERT INTO plain VALUES ({n}); SELECT crsql_db_version(); COMMIT;")).unwrap();
        plain(1);
        a.execute("INSERT INTO t(id, a) VALUES (2, 'a')", []).unwrap();
        assert_eq!((dbv(&a, 1), dbv(&a, 2)), (1, 2));
        b.execute("INSERT INTO t(id, a) VALUES (3, 'b')", []).unwrap();
        plain(2);
        a.execute("INSERT INTO t(id, a) VALUES (4, 'a')", []).unwrap();
        plain(3);
        b.execute("INSERT INTO t(id, a) VALUES (5, 'b')", []).unwrap();
        a.execute("INSERT INTO t(id, a) VALUES (6, 'a')", []).unwrap();
        let all: Vec<i64> = (1..=6).map(|id| dbv(&a, id)).collect();
        assert_eq!(all, vec![1, 2, 3, 4, 5, 6], "wal {wal}");
    }
}

#[test]
fn db_version_functions() {
    let c = crr_t();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 0);
    assert_eq!(one::<i64>(&c, "SELECT crsql_next_db_version()"), 1);
    c.execute_batch("BEGIN; INSERT INTO t(id) VALUES (1);").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_next_db_version()"), 1);
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 0);
    c.execute_batch("COMMIT").unwrap();
    assert_eq!(one::<i64>(&c, "SELECT crsql_db_version()"), 1);
}

#[test]
fn changes_since_v_reads_only_rows_touched_since_v() {
    let c = crr_t();
    for i in 0..500 {
        c.execute("INSERT INTO t(id, a) VALUES (?1, 'x')", [i]).unwrap();
    }
    let before: i64 = one(&c, "SELECT crr_debug_clock_rows_read()");
    let n: i64 = one(&c, "SELECT count(*) FROM crsql_changes WHERE db_version > 495");
    assert_eq!(n, 15);
    let read: i64 = one::<i64>(&c, "SELECT crr_debug_clock_rows_read()") - before;
    assert_eq!(read, 5, "only the 5 rows written since version 495 are read");
    let before: i64 = one(&c, "SELECT crr_debug_clock_rows_read()");
    let pk_count: i64 = one(&c, "SELECT count(*) FROM crsql_changes WHERE pk = crsql_pack_columns(7)");
    assert_eq!(pk_count, 3);
    assert_eq!(one::<i64>(&c, "SELECT crr_debug_clock_rows_read()") - before, 1);
    let plan = |sql: &str| -> String {
        let mut s = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        s.query_map([], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect::<Vec<_>>().join(" ")
    };
    // Bits 4 and 8 (272): db_version > and site_id = pushed down; bit 10 (1024): val is read.
    let all = plan("SELECT * FROM crsql_changes WHERE db_version > 3 AND site_id = X'00'");
    assert!(all.contains("INDEX 1296"), "{all}");
    let no_val = plan("SELECT pk, cid FROM crsql_changes WHERE db_version > 3 AND site_id = X'00'");
    assert!(no_val.contains("INDEX 272"), "{no_val}");
}

#[test]
fn filters_on_every_pushed_column_agree_with_a_full_scan() {
    let c = crr_t();
    c.execute_batch("INSERT INTO t VALUES (1,'x',1,1.0),(2,'y',2,2.0); UPDATE t SET a = 'z' WHERE id = 2; DELETE FROM t WHERE id = 1;").unwrap();
    let all = changes(&c);
    let site: Vec<u8> = one(&c, "SELECT crsql_site_id()");
    let checks: Vec<Check<&str, &Change>> = vec![
        ("WHERE db_version >= 2", Box::new(|x: &Change| x.db_version >= 2)),
        ("WHERE db_version < 3", Box::new(|x: &Change| x.db_version < 3)),
        ("WHERE db_version <= 2 AND db_version > 1", Box::new(|x: &Change| x.db_version == 2)),
        ("WHERE db_version = 3", Box::new(|x: &Change| x.db_version == 3)),
        ("WHERE cid = 'a'", Box::new(|x: &Change| x.cid == "a")),
        ("WHERE cid = '-1'", Box::new(|x: &Change| x.cid == "-1")),
        ("WHERE \"table\" = 't'", Box::new(|_: &Change| true)),
        ("WHERE \"table\" = 'zz'", Box::new(|_: &Change| false)),
        ("WHERE pk = crsql_pack_columns(2)", Box::new(|x: &Change| x.pk == vec![1, 9, 2])),
        ("WHERE db_version > 1.5", Box::new(|x: &Change| x.db_version > 1)),
    ];
    for (clause, keep) in checks {
        let want: Vec<Change> = all.iter().filter(|x| keep(x)).cloned().collect();
        assert_eq!(changes_where(&c, clause), want, "{clause}");
    }
    assert_eq!(changes_where(&c, &format!("WHERE site_id = X'{}'", hex(&site))).len(), all.len());
    assert_eq!(changes_where(&c, &format!("WHERE site_id != X'{}'", hex(&site))).len(), 0);
    assert_eq!(changes_where(&c, &format!("WHERE site_id IS NOT X'{}'", hex(&site))).len(), 0);
    let sorted: Vec<(i64, i64)> = changes_where(&c, "ORDER BY db_version, seq").iter().map(|x| (x.db_version, x.seq)).collect();
    assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    let desc: Vec<i64> = changes_where(&c, "ORDER BY db_version DESC").iter().map(|x| x.db_version).collect();
    assert!(desc.windows(2).all(|w| w[0] >= w[1]));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn new_crrs_show_up_in_a_prepared_statement_without_reconnecting() {
    let dir = tmpdir("visible");
    let path = dir.join("v.db");
    let path = path.to_str().unwrap();
    let reader = open(path);
    let mut count = reader.prepare("SELECT count(*) FROM crsql_changes").unwrap();
    assert_eq!(count.query_row([], |r| r.get::<_, i64>(0)).unwrap(), 0);
    let writer = open(path);
    writer.execute_batch(&format!("{T} SELECT crsql_as_crr('t'); INSERT INTO t(id, a) VALUES (1, 'x');")).unwrap();
    assert_eq!(count.query_row([], |r| r.get::<_, i64>(0)).unwrap(), 3);
    // And the reader can write it on its next statement.
    reader.execute("INSERT INTO t(id, a) VALUES (2, 'y')", []).unwrap();
    assert_eq!(count.query_row([], |r| r.get::<_, i64>(0)).unwrap(), 6);
}

#[test]
fn update_and_delete_on_crsql_changes_are_errors() {
    let c = crr_t();
    c.execute("INSERT INTO t(id) VALUES (1)", []).unwrap();
    assert!(err(&c, "UPDATE crsql_changes SET val = 1").contains("crsql_changes: UPDATE is not supported"));
    assert!(err(&c, "DELETE FROM crsql_changes").contains("crsql_changes: DELETE is not supported"));
    assert_eq!(changes(&c).len(), 3);
}

#[test]
fn config_settings_persist_and_clock_mode_is_fixed_once_crrs_exist() {
    let dir = tmpdir("config");
    let path = dir.join("c.db");
    let path = path.to_str().unwrap();
    let c = open(path);
    assert_eq!(one::<String>(&c, "SELECT crsql_config_get('clock')"), "hlc");
    assert_eq!(one::<i64>(&c, "SELECT crsql_config_get('hlc-max-drift-ms')"), 3_600_000);
    c.execute_batch("SELECT crsql_config_set('hlc-max-drift-ms', 5000); SELECT crsql_config_set('merge-equal-values', 1);").unwrap();
    assert!(err(&c, "SELECT crsql_config_set('nope', 1)").contains("unknown setting \"nope\""));
    assert!(err(&c, "SELECT crsql_config_set('clock', 'sundial')").contains("'hlc' or 'lamport'"));
    assert!(err(&c, "SELECT crsql_config_set('hlc-max-drift-ms', -1)").contains("non-negative"));
    c.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
    let e = err(&c, "SELECT crsql_config_set('clock', 'lamport')");
    assert!(e.contains("cannot change setting \"clock\" after CRRs exist"), "{e}");
    c.execute_batch("SELECT crsql_config_set('clock', 'hlc')").unwrap();
    drop(c);
    let c = open(path);
    assert_eq!(one::<i64>(&c, "SELECT crsql_config_get('hlc-max-drift-ms')"), 5000);
}

#[test]
fn lamport_mode_counts_writes_per_cell() {
    let c = mem();
    c.execute_batch(&format!("SELECT crsql_config_set('clock', 'lamport'); {T} SELECT crsql_as_crr('t');")).unwrap();
    c.execute_batch("INSERT INTO t(id, a) VALUES (1, 'x'); UPDATE t SET a = 'y'; UPDATE t SET a = 'z';").unwrap();
    let v: Vec<(String, i64)> = changes(&c).into_iter().map(|x| (x.cid, x.col_version)).collect();
    assert_eq!(v, vec![("b".into(), 1), ("c".into(), 1), ("a".into(), 3)]);
}

#[test]
fn hlc_versions_follow_the_wall_clock_and_never_go_back() {
    let (c, path) = crr_t_file("hlc");
    let path = path.as_str();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    c.execute("INSERT INTO t(id) VALUES (1)", []).unwrap();
    let v1 = changes(&c)[0].col_version;
    assert!(((v1 >> 16) - now_ms).abs() < 60_000, "wall part of {v1} is near {now_ms}");
    // Same transaction: one tick for all its writes.
    assert!(changes(&c).iter().all(|x| x.col_version == v1));
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(1000); UPDATE t SET a = 'back in time';").unwrap();
    let v2 = changes_where(&c, "WHERE cid = 'a'")[0].col_version;
    assert_eq!(v2, v1 + 1, "a wall clock that jumped back continues the counter");
    drop(c);
    let c = open(path);
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(1000); UPDATE t SET b = 1;").unwrap();
    let v3 = changes_where(&c, "WHERE cid = 'b'")[0].col_version;
    assert_eq!(v3, v2 + 1, "the high-water mark survives a restart");
}

/// A ROLLBACK TO that undoes the write which persisted the clock mark must not leave later
/// writes of the same transaction above the persisted mark: after a restart with a wall clock
/// that went back, the next version must still outrank every committed one.
#[test]
fn hlc_mark_survives_a_rollback_to_that_undid_its_persisting_write() {
    // The write that persisted the transaction's clock mark is undone by a ROLLBACK TO, or by
    // the failure of its own multi-row statement; later writes of the transaction reuse the
    // tick, and the mark must still cover them.
    let undo = [
        "SAVEPOINT s; INSERT INTO t(id) VALUES (1); ROLLBACK TO s; RELEASE s;",
        "INSERT INTO t(id) VALUES (1), (2), (1);",
    ];
    for (i, undo) in undo.iter().enumerate() {
        let (c, path) = crr_t_file(&format!("hlc-rollback-{i}"));
        let path = path.as_str();
        c.execute_batch("SELECT crr_set_wall_clock_for_testing(5000000); BEGIN;").unwrap();
        let failed = c.execute_batch(undo).is_err();
        assert_eq!(failed, i == 1, "{undo}");
        c.execute_batch("INSERT INTO t(id, a) VALUES (3, 'kept'); COMMIT;").unwrap();
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM t"), 1, "{undo}");
        let committed: i64 = one(&c, "SELECT max(col_version) FROM crsql_changes");
        // The persisted mark: crr_meta's, or the last local transaction's tick.
        let persisted: i64 = one(&c, "SELECT max((SELECT value FROM crr_meta WHERE key = 'hlc'), (SELECT coalesce(max(tick), 0) FROM crr_ticks))");
        assert!(persisted >= committed, "{undo}: persisted mark {persisted} is below committed version {committed}");
        drop(c);
        let c = open(path);
        c.execute_batch("SELECT crr_set_wall_clock_for_testing(1000); UPDATE t SET a = 'later';").unwrap();
        let later = changes_where(&c, "WHERE cid = 'a'")[0].col_version;
        assert!(later > committed, "{undo}: a restart reused a version: {later} <= {committed}");
    }
}

/// The version cell `cid` of row `id` of `table` holds.
fn version_of(c: &rusqlite::Connection, table: &str, id: i64, cid: &str) -> i64 {
    one(c, &format!("SELECT col_version FROM crsql_changes WHERE \"table\" = '{table}' AND pk = crsql_pack_columns({id}) AND cid = '{cid}'"))
}

/// A transaction that stores one record keeps its tick in that record instead of a crr_ticks
/// row (one page less per small transaction). The persisted clock mark must still cover it,
/// also when a later transaction replaces or removes that record: after a restart with a wall
/// clock that went back, the next version must outrank the one the record held.
#[test]
fn a_tick_kept_in_its_one_record_stays_covered_when_the_record_goes() {
    let later = [
        "",
        "DELETE FROM t WHERE id = 1",
        "UPDATE t SET a = 'y' WHERE id = 1",
        "DROP TABLE t",
        "SELECT crsql_as_table('t')",
        "merge",
    ];
    for (i, later) in later.iter().enumerate() {
        let (c, path) = crr_t_file(&format!("deferred-tick-{i}"));
        c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('u'); SELECT crr_set_wall_clock_for_testing(5000000);").unwrap();
        c.execute("INSERT INTO t(id, a) VALUES (1, 'x')", []).unwrap();
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_ticks"), 0, "a one-record transaction writes no crr_ticks row");
        let high = version_of(&c, "t", 1, "a");
        assert_eq!(high, 5000000 << 16);
        if *later == "merge" {
            // Another replica deletes the row; merging that replaces the record with its
            // tombstone.
            let b = mem();
            b.execute_batch(&format!("{T} SELECT crsql_as_crr('t');")).unwrap();
            apply(&b, &changes(&c)).unwrap();
            b.execute("DELETE FROM t WHERE id = 1", []).unwrap();
            apply(&c, &changes(&b)).unwrap();
            assert_eq!(one::<i64>(&c, "SELECT count(*) FROM t"), 0);
        } else if !later.is_empty() {
            c.execute_batch(later).unwrap();
        }
        drop(c);
        let c = open(&path);
        c.execute_batch("SELECT crr_set_wall_clock_for_testing(1000); INSERT INTO u(id, a) VALUES (1, 'after');").unwrap();
        let next = version_of(&c, "u", 1, "a");
        assert!(next > high, "{later:?}: a restart reused a version: {next} <= {high}");
    }
}

/// At most DEFER_MAX (32) transactions in a row leave their tick in their record, so a new
/// connection reads few records to find the clock mark; and a connection whose neighbour
/// committed since (on the same file) finds the neighbour's mark in its record.
#[test]
fn ticks_kept_in_records_are_bounded_and_seen_by_other_connections() {
    let (c, path) = crr_t_file("deferred-bound");
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(5000000);").unwrap();
    for i in 0..100 {
        c.execute("INSERT INTO t(id, a) VALUES (?1, 'x')", [i]).unwrap();
    }
    let rows: i64 = one(&c, "SELECT count(*) FROM crr_ticks");
    assert_eq!(rows, 3, "one crr_ticks row every 33 transactions");
    let since: i64 = one(&c, "SELECT count(*) FROM crr_clock_1 WHERE dbv > (SELECT max(dbv) FROM crr_ticks)");
    assert!(since <= 32, "{since} records since the last crr_ticks row");
    let d = open(&path);
    d.execute_batch("SELECT crr_set_wall_clock_for_testing(1000);").unwrap();
    let mut last = version_of(&c, "t", 99, "a");
    for i in 0..6 {
        let (w, other) = if i % 2 == 0 { (&d, &c) } else { (&c, &d) };
        w.execute("UPDATE t SET a = ?1 WHERE id = 7", [format!("v{i}")]).unwrap();
        let v = version_of(other, "t", 7, "a");
        assert!(v > last, "step {i}: {v} <= {last}");
        last = v;
    }
}

/// Connections taking turns: each transaction's first write recovers the clock mark (the
/// other connection committed since), and reads only the records stored since its own last
/// commit, which covered those before (one here: the other's), not every record since the
/// last crr_ticks row (up to DEFER_MAX, 32); its versions still outrank every one stored,
/// with its own wall clock far behind the other's.
#[test]
fn connections_taking_turns_read_only_the_records_since_their_last_commit() {
    let (c, path) = crr_t_file("turns-recover");
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(5000000);").unwrap();
    let d = open(&path);
    d.execute_batch("SELECT crr_set_wall_clock_for_testing(1000);").unwrap();
    let recovered = |x: &rusqlite::Connection| one::<i64>(x, "SELECT crr_debug_records_recovered()");
    let mut last = 0;
    let mut before = (0, 0);
    for i in 0..100 {
        if i == 4 {
            before = (recovered(&c), recovered(&d));
        }
        let w = if i % 2 == 0 { &c } else { &d };
        w.execute("INSERT INTO t(id, a) VALUES (?1, 'x')", [i]).unwrap();
        let v = version_of(w, "t", i, "a");
        assert!(v > last, "row {i}: version {v} is not above the last one, {last}");
        last = v;
    }
    let read = recovered(&c) - before.0 + recovered(&d) - before.1;
    assert!(read <= 96, "96 transactions after another connection's commit read {read} records to recover the clock mark");
}

/// `val` is the cell's current value even when the app writes the row while it reads the
/// feed (the scan reads a row's values once for all its changes, until anything is written).
#[test]
fn val_is_current_when_the_row_is_written_during_the_scan() {
    let c = crr_t();
    c.execute("INSERT INTO t(id, a, b) VALUES (1, 'a0', 10)", []).unwrap();
    let mut s = c.prepare("SELECT cid, val FROM crsql_changes WHERE cid != 'c'").unwrap();
    let mut rows = s.query([]).unwrap();
    let first = rows.next().unwrap().unwrap();
    assert_eq!(first.get::<_, String>(0).unwrap(), "a");
    assert_eq!(first.get::<_, String>(1).unwrap(), "a0");
    c.execute("UPDATE t SET b = 11 WHERE id = 1", []).unwrap();
    let second = rows.next().unwrap().unwrap();
    assert_eq!(second.get::<_, String>(0).unwrap(), "b");
    assert_eq!(second.get::<_, i64>(1).unwrap(), 11, "val must be read after the write");
}

/// `val` is the row's value whichever way the scan got it: read with the clock rows (a
/// rowid-keyed table, up to the read-ahead bound: the 3 MB blobs cross it), or looked up per
/// row (the rows past the bound, a table keyed otherwise, a scan by pk), for every storage
/// class, NULLs, a dropped column's slot and deleted rows.
#[test]
fn val_is_the_same_read_ahead_or_looked_up() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE r(id INTEGER PRIMARY KEY NOT NULL, a, b BLOB, gone TEXT, c REAL);
         CREATE TABLE p(k TEXT PRIMARY KEY NOT NULL, a, b BLOB, gone TEXT, c REAL);
         SELECT crsql_as_crr('r'); SELECT crsql_as_crr('p');",
    )
    .unwrap();
    let big = |i: u8| V::Blob(vec![i; 3 << 20]);
    let rows: Vec<(i64, V, V, V)> = vec![
        (1, V::Integer(7), V::Blob(vec![1, 2]), V::Real(0.5)),
        (2, txt("two"), V::Null, V::Null),
        (3, V::Real(2.25), big(3), V::Real(3.0)),
        (4, V::Null, big(4), V::Real(-1.0)),
        (5, V::Blob(vec![]), big(5), V::Real(5.5)),
        (6, txt(""), big(6), V::Null),
        (7, txt("seven"), V::Blob(vec![7]), V::Real(7.0)),
    ];
    for (id, a, b, cc) in &rows {
        for (table, key) in [("r", V::Integer(*id)), ("p", txt(&format!("k{id}")))] {
            c.execute(&format!("INSERT INTO {table} VALUES (?1, ?2, ?3, 'x', ?4)"), rusqlite::params![key, a, b, cc]).unwrap();
        }
    }
    c.execute_batch(
        "SELECT crsql_begin_alter('r'); ALTER TABLE r DROP COLUMN gone; SELECT crsql_commit_alter('r');
         SELECT crsql_begin_alter('p'); ALTER TABLE p DROP COLUMN gone; SELECT crsql_commit_alter('p');
         DELETE FROM r WHERE id = 2; DELETE FROM p WHERE k = 'k2';
         UPDATE r SET a = 'later' WHERE id = 7; UPDATE p SET a = 'later' WHERE k = 'k7';",
    )
    .unwrap();
    for clause in ["", "WHERE db_version > 0", "WHERE db_version >= 1 AND db_version <= 1000"] {
        let feed = changes_where(&c, clause);
        let mut cells = 0;
        for ch in &feed {
            if ch.cid == "-1" {
                assert_eq!(ch.val, V::Null, "a sentinel's val is NULL");
                continue;
            }
            cells += 1;
            let keys: Vec<V> = vec![c.query_row("SELECT cell FROM crsql_unpack_columns(?1)", [&ch.pk], |r| r.get(0)).unwrap()];
            let key_col = if ch.table == "r" { "id" } else { "k" };
            let now: V = c.query_row(&format!("SELECT {} FROM {} WHERE {key_col} = ?1", ch.cid, ch.table), rusqlite::params_from_iter(&keys), |r| r.get(0)).unwrap_or(V::Null);
            assert_eq!(ch.val, now, "{clause}: {} {:?} {}", ch.table, keys, ch.cid);
            let by_pk: V = c.query_row("SELECT val FROM crsql_changes WHERE \"table\" = ?1 AND pk = ?2 AND cid = ?3", rusqlite::params![ch.table, ch.pk, ch.cid], |r| r.get(0)).unwrap();
            assert_eq!(by_pk, now, "by pk: {} {:?} {}", ch.table, keys, ch.cid);
        }
        // Rows 1 and 3-7, 3 live columns each, in both tables.
        assert_eq!(cells, 2 * 6 * 3, "{clause}");
    }
    // A query that never reads val gets the same rows.
    let n: i64 = one(&c, "SELECT count(*) FROM crsql_changes");
    assert_eq!(n as usize, changes_where(&c, "").len());
}

/// An update records exactly the columns it changed, with the flags passed as a bit mask
/// (62 tracked columns, the most that fit) or as text (63 and more), at the mask's edges.
#[test]
fn updates_record_the_changed_columns_of_narrow_and_wide_tables() {
    for n in [1usize, 2, 62, 63, 100] {
        let c = mem();
        let cols: Vec<String> = (0..n).map(|i| format!("c{i} INTEGER")).collect();
        c.execute_batch(&format!("CREATE TABLE w(id INTEGER PRIMARY KEY NOT NULL, {}); SELECT crsql_as_crr('w');", cols.join(", "))).unwrap();
        c.execute("INSERT INTO w(id) VALUES (1)", []).unwrap();
        let before: i64 = one(&c, "SELECT crsql_db_version()");
        let changed: Vec<usize> = [0, 1, 61, 62, n - 1].into_iter().filter(|i| *i < n).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let set: Vec<String> = changed.iter().map(|i| format!("c{i} = {i}")).collect();
        c.execute(&format!("UPDATE w SET {} WHERE id = 1", set.join(", ")), []).unwrap();
        let got: Vec<String> = changes_where(&c, &format!("WHERE db_version > {before} ORDER BY seq")).into_iter().map(|ch| ch.cid).collect();
        let want: Vec<String> = changed.iter().map(|i| format!("c{i}")).collect();
        assert_eq!(got, want, "{n} columns");
        // The update trigger's fallback, whose flags are a constant of every slot: a row
        // without a live clock (inserted while the insert trigger was gone) and a key change
        // are each recorded whole, every column under the new key.
        let tid: i64 = one(&c, "SELECT tid FROM crr_tables WHERE name = 'w'");
        let insert_sql: String = one(&c, &format!("SELECT sql FROM sqlite_schema WHERE name = 'crr_{tid}_insert'"));
        c.execute_batch(&format!("DROP TRIGGER \"crr_{tid}_insert\"; INSERT INTO w(id) VALUES (3); {insert_sql};")).unwrap();
        let every: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        for (update, key) in [(format!("UPDATE w SET c{} = 9 WHERE id = 3", n - 1), 3), ("UPDATE w SET id = 4 WHERE id = 1".to_string(), 4)] {
            let before: i64 = one(&c, "SELECT crsql_db_version()");
            c.execute(&update, []).unwrap();
            let mut got: Vec<String> = changes_where(&c, &format!("WHERE db_version > {before} AND pk = crsql_pack_columns({key}) AND cid != '-1'"))
                .into_iter()
                .map(|ch| ch.cid)
                .collect();
            got.sort_by_key(|cid| cid[1..].parse::<usize>().unwrap());
            assert_eq!(got, every, "{n} columns: {update}");
        }
    }
}

/// The update trigger's WHEN clause holds the row's change flags for its body
/// (crr_internal_changed, track::HeldFlags). Updates nested in other updates by the app's
/// triggers, before and after the tracking trigger and on the same table or another of
/// other widths (bit flags and text flags), each record their own columns.
#[test]
fn nested_updates_each_record_their_own_columns() {
    for recursive in [false, true] {
        let c = mem();
        let wide: Vec<String> = (0..70).map(|i| format!("w{i}")).collect();
        // a_then_b is made after the CRR's triggers: it fires after its tracking trigger
        // (crsql_as_crr again would put that first; either order must hold).
        c.execute_batch(&format!(
            "PRAGMA recursive_triggers = {recursive};
             CREATE TABLE a(id INTEGER PRIMARY KEY NOT NULL, x, y, z);
             CREATE TABLE b(id INTEGER PRIMARY KEY NOT NULL, {});
             SELECT crsql_as_crr('a'); SELECT crsql_as_crr('b');
             INSERT INTO a VALUES (1, 0, 0, 0), (2, 0, 0, 0);
             INSERT INTO b(id) VALUES (1);
             CREATE TRIGGER a_then_b AFTER UPDATE OF x ON a WHEN NEW.id = 1 BEGIN
               UPDATE b SET w69 = NEW.x, w3 = NEW.x WHERE id = 1;
               UPDATE a SET z = NEW.x WHERE id = 2;
             END;
             CREATE TRIGGER b_then_a BEFORE UPDATE OF w5 ON b BEGIN UPDATE a SET y = NEW.w5 WHERE id = 2; END;",
            wide.join(", ")
        ))
        .unwrap();
        for (update, want) in [
            ("UPDATE a SET x = 7 WHERE id = 1", vec![("a", 1, "x"), ("b", 1, "w3"), ("b", 1, "w69"), ("a", 2, "z")]),
            ("UPDATE b SET w5 = 8, w40 = 8 WHERE id = 1", vec![("a", 2, "y"), ("b", 1, "w5"), ("b", 1, "w40")]),
        ] {
            let before: i64 = one(&c, "SELECT crsql_db_version()");
            c.execute_batch(update).unwrap();
            let mut got: Vec<(String, i64, String)> = rows(&c, &format!("SELECT \"table\", pk, cid FROM crsql_changes WHERE db_version > {before}"))
                .into_iter()
                .map(|r| match &r[..] {
                    [V::Text(t), V::Blob(pk), V::Text(cid)] => (t.clone(), i64::from(*pk.last().unwrap()), cid.clone()),
                    other => panic!("{other:?}"),
                })
                .collect();
            got.sort();
            let mut want: Vec<(String, i64, String)> = want.into_iter().map(|(t, k, c)| (t.to_string(), k, c.to_string())).collect();
            want.sort();
            assert_eq!(got, want, "recursive triggers {recursive}: {update}");
        }
    }
}

/// A CRR whose triggers an earlier build made (they called crr_internal_insert for every
/// row) keeps working, and crsql_as_crr again gives it this build's triggers.
#[test]
fn as_crr_again_replaces_triggers_of_an_earlier_build() {
    let c = crr_t();
    let tid: i64 = one(&c, "SELECT tid FROM crr_tables WHERE name = 't'");
    c.execute_batch(&format!(
        "DROP TRIGGER \"crr_{tid}_insert\"; CREATE TRIGGER \"crr_{tid}_insert\" AFTER INSERT ON t BEGIN \
           SELECT crr_internal_insert({tid}, crsql_pack_columns(NEW.id), X'000000010002'); END;"
    ))
    .unwrap();
    c.execute("INSERT INTO t(id, a) VALUES (1, 'old trigger')", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'a'")[0].val, rusqlite::types::Value::Text("old trigger".into()));
    c.execute_batch("SELECT crsql_as_crr('t')").unwrap();
    let sql: String = one(&c, &format!("SELECT sql FROM sqlite_schema WHERE name = 'crr_{tid}_insert'"));
    assert!(sql.contains("crr_internal_fresh_record"), "{sql}");
    c.execute("INSERT INTO t(id, a) VALUES (2, 'new trigger')", []).unwrap();
    assert_eq!(changes_where(&c, "WHERE cid = 'a'").len(), 2);
}

/// crsql_tracked_peers is an ordinary table, as in cr-sqlite, made with the other internal
/// tables: at the load of a database that has anything in it, and on a new one at the first
/// function that needs them (crsql_as_crr, crsql_site_id, ...), which every sync does first.
#[test]
fn tracked_peers_table_exists_as_in_cr_sqlite() {
    let c = mem();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT); SELECT crsql_as_crr('t');").unwrap();
    c.execute("INSERT INTO crsql_tracked_peers(site_id, version, seq, tag, event) VALUES (X'01', 5, 0, 0, 0)", []).unwrap();
    assert_eq!(one::<i64>(&c, "SELECT version FROM crsql_tracked_peers"), 5);
    let fresh = mem();
    let site: Vec<u8> = one(&fresh, "SELECT crsql_site_id()");
    assert_eq!(site.len(), 16);
    assert_eq!(one::<i64>(&fresh, "SELECT count(*) FROM crsql_tracked_peers"), 0);
}

#[test]
fn close_works_with_and_without_crsql_finalize() {
    let c = crr_t();
    c.execute_batch("INSERT INTO t(id) VALUES (1); SELECT count(*) FROM crsql_changes;").unwrap();
    c.close().expect("close without crsql_finalize");
    let c = crr_t();
    c.execute_batch("INSERT INTO t(id) VALUES (1); SELECT crsql_finalize(); INSERT INTO t(id) VALUES (2);").unwrap();
    c.close().expect("close after crsql_finalize");
}

/// The clock table's declared key type and whether it is WITHOUT ROWID.
fn clock_layout(c: &rusqlite::Connection, table: &str) -> (String, bool) {
    let tid: i64 = c.query_row("SELECT tid FROM crr_tables WHERE name = ?1", [table], |r| r.get(0)).unwrap();
    let ty: String = one(c, &format!("SELECT type FROM pragma_table_info('crr_clock_{tid}') WHERE name = 'pk'"));
    let sql: String = one(c, &format!("SELECT sql FROM sqlite_schema WHERE name = 'crr_clock_{tid}'"));
    (ty, sql.contains("WITHOUT ROWID"))
}

#[test]
fn rowid_keyed_tables_get_an_integer_clock_with_the_same_feed() {
    let c = mem();
    let tables = [
        ("r", "id INTEGER PRIMARY KEY NOT NULL, a", "", true),
        ("i", "id INT PRIMARY KEY NOT NULL, a", "", false),
        ("d", "id INTEGER PRIMARY KEY DESC NOT NULL, a", "", false),
        ("w", "id INTEGER PRIMARY KEY NOT NULL, a", " WITHOUT ROWID", false),
    ];
    for (name, cols, opts, _) in tables {
        c.execute_batch(&format!("CREATE TABLE {name}({cols}){opts}; SELECT crsql_as_crr('{name}');")).unwrap();
    }
    let mut feeds = Vec::new();
    for (name, _, _, rowid) in tables {
        // (Packed-key clocks are rowid tables too since internal schema 6.)
        assert_eq!(clock_layout(&c, name), if rowid { ("INTEGER".into(), false) } else { ("BLOB".into(), false) }, "{name}");
        // Insert, update, delete, resurrect, a key change, an update that changes nothing.
        c.execute_batch(&format!(
            "INSERT INTO {name} VALUES (1, 'x'), (2, 'y'), (-7, 'neg'); UPDATE {name} SET a = 'x2' WHERE id = 1;
             DELETE FROM {name} WHERE id = 2; INSERT INTO {name} VALUES (2, 'back'); UPDATE {name} SET id = 5 WHERE id = 1;
             UPDATE {name} SET a = a;"
        ))
        .unwrap();
        let feed: Vec<_> = changes_where(&c, &format!("WHERE \"table\" = '{name}'")).into_iter().map(|x| (x.pk, x.cid, x.val, x.cl)).collect();
        assert_eq!(feed.len(), 5, "{name}: {feed:?}");
        let by_key: i64 = one(&c, &format!("SELECT count(*) FROM crsql_changes WHERE \"table\" = '{name}' AND pk = crsql_pack_columns(5)"));
        assert_eq!(by_key, 1, "{name}: the changes of key 5");
        let by_text: i64 = one(&c, &format!("SELECT count(*) FROM crsql_changes WHERE \"table\" = '{name}' AND pk = crsql_pack_columns('5')"));
        assert_eq!(by_text, 0, "{name}: no row has the text key '5'");
        feeds.push(feed);
    }
    assert!(feeds.windows(2).all(|w| w[0] == w[1]), "the key layout must not show in the feed: {feeds:?}");
    // Old triggers are replaced, the layout stays.
    c.execute_batch("SELECT crsql_as_crr('r'); INSERT INTO r VALUES (9, 'z');").unwrap();
    assert_eq!(clock_layout(&c, "r"), ("INTEGER".into(), false));
    assert_eq!(changes_where(&c, "WHERE \"table\" = 'r' AND pk = crsql_pack_columns(9)").len(), 1);
}

/// A local transaction's HLC tick is stored once (crr_ticks), not in every record: a fresh row
/// of t costs about 10 bytes of clock record, and another connection (which reads the tick
/// from the table) sees the same versions. A transaction of one record keeps its tick in it.
#[test]
fn records_refer_to_their_transactions_tick() {
    let (c, path) = crr_t_file("ticks");
    c.execute_batch(
        "SELECT crr_set_wall_clock_for_testing(7000); BEGIN; \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
         INSERT INTO t SELECT i, 'v' || i, i, i * 0.5 FROM n; COMMIT; \
         SELECT crr_set_wall_clock_for_testing(8000); INSERT INTO t VALUES (500, 'one', 1, 1.0);",
    )
    .unwrap();
    // The transaction's first record is stored before it knows it will store more, so it
    // holds its version; the row is written before the second.
    let longest: i64 = one(&c, "SELECT max(length(clock)) FROM crr_clock_1 WHERE pk BETWEEN 2 AND 200");
    assert!(longest <= 10, "a fresh row's record holds no version: {longest} bytes");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM crr_ticks"), 1, "a row for the transaction of many records; the one-record transaction keeps its tick in its record");
    let single: i64 = one(&c, "SELECT length(clock) FROM crr_clock_1 WHERE pk = 500");
    assert!(single > longest, "the one-record transaction's record holds its version: {single} bytes");
    let versions = |c: &rusqlite::Connection| -> Vec<i64> {
        let mut s = c.prepare("SELECT col_version FROM crsql_changes ORDER BY db_version, seq").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    let here = versions(&c);
    assert_eq!(here.len(), 603);
    assert!(here[..600].iter().all(|v| *v == 7000 << 16) && here[600..].iter().all(|v| *v == 8000 << 16), "{:?}", &here[595..]);
    assert_eq!(versions(&open(&path)), here);
}

/// After a transaction's first fresh records, the rest are spliced from a template (only the
/// seqs differ). Spliced records must be exactly what encoding would store: every seq taken
/// once and in order (also across tables with other slot lists and rolled-back savepoints, one
/// of them taking the transaction's crr_ticks row with it),
/// the versions of the tick, and after a merge moved the clock past it, the new tick.
#[test]
fn fresh_records_of_a_transaction_hold_their_own_seqs_and_tick() {
    let (c, path) = crr_t_file("fresh-template");
    c.execute_batch("CREATE TABLE u(id INTEGER PRIMARY KEY NOT NULL, x TEXT); SELECT crsql_as_crr('u');").unwrap();
    let remote = one::<Vec<u8>>(&c, "SELECT X'0102030405060708090A0B0C0D0E0F10'");
    let merged: i64 = 9000 << 16;
    c.execute_batch("SELECT crr_set_wall_clock_for_testing(7000); BEGIN;").unwrap();
    // Each fresh row takes one seq for its sentinel and one per cell (t: 3 cells, u: 1), in
    // the order written, rolled-back rows included (seqs are not reused); a merged new row
    // takes one for its sentinel and one for its cell.
    let seq = std::cell::Cell::new(0i64);
    let mut expected: Vec<(String, i64, i64, Vec<i64>)> = Vec::new(); // table, id, first cell seq, versions
    let insert = |table: &str, id: i64, kept: bool, expected: &mut Vec<_>| {
        let (sql, cells) = match table {
            "t" => (format!("INSERT INTO t VALUES ({id}, 'a{id}', {id}, 0.5)"), 3),
            _ => (format!("INSERT INTO u VALUES ({id}, 'x{id}')"), 1),
        };
        c.execute_batch(&sql).unwrap();
        if kept {
            expected.push((table.to_string(), id, seq.get() + 1, vec![0; cells]));
        }
        seq.set(seq.get() + 1 + cells as i64);
    };
    // Rolled back: the first records, the crr_ticks row and the first template with them.
    c.execute_batch("SAVEPOINT s0;").unwrap();
    for id in 20..23 {
        insert("t", id, false, &mut expected);
    }
    c.execute_batch("ROLLBACK TO s0; RELEASE s0;").unwrap();
    for id in 1..=4 {
        insert("t", id, true, &mut expected);
        insert("u", id, true, &mut expected);
    }
    c.execute_batch("SAVEPOINT s;").unwrap();
    insert("t", 10, false, &mut expected);
    insert("t", 11, false, &mut expected);
    c.execute_batch("ROLLBACK TO s; RELEASE s;").unwrap();
    insert("t", 12, true, &mut expected);
    insert("t", 13, true, &mut expected);
    let before_merge = expected.len();
    c.execute(
        "INSERT INTO crsql_changes (\"table\", pk, cid, val, col_version, db_version, site_id, cl, seq) VALUES ('u', crsql_pack_columns(100), 'x', 'far', ?1, 1, ?2, 1, 0)",
        rusqlite::params![merged, remote],
    )
    .unwrap();
    seq.set(seq.get() + 2);
    insert("t", 14, true, &mut expected);
    insert("t", 15, true, &mut expected);
    insert("u", 5, true, &mut expected);
    c.execute_batch("COMMIT;").unwrap();
    let tick: i64 = 7000 << 16;
    for (i, row) in expected.iter_mut().enumerate() {
        let v = if i < before_merge { tick } else { -1 };
        row.3.iter_mut().for_each(|x| *x = v);
    }
    let read = |c: &rusqlite::Connection| -> Vec<(String, i64, i64, Vec<i64>)> {
        let mut rows: Vec<(String, i64, i64, Vec<i64>)> = Vec::new();
        for ch in changes_where(c, "WHERE site_id = crsql_site_id() ORDER BY seq") {
            let id = match crr::core::pk_codec::decode(&ch.pk).unwrap()[0] {
                crr::core::value::Value::Integer(i) => i,
                ref other => panic!("{other:?}"),
            };
            match rows.last_mut() {
                Some(r) if r.0 == ch.table && r.1 == id => {
                    assert_eq!(ch.seq, r.2 + r.3.len() as i64, "row {} {id}: its cells take consecutive seqs", ch.table);
                    r.3.push(ch.col_version);
                }
                _ => rows.push((ch.table.clone(), id, ch.seq, vec![ch.col_version])),
            }
        }
        rows
    };
    let mut here = read(&c);
    // After the merge the clock re-ticked past the merged version: one new tick, above it.
    let retick = here[before_merge].3[0];
    assert!(retick > merged, "re-ticked past the merged version: {retick} <= {merged}");
    for row in &mut here[before_merge..] {
        assert!(row.3.iter().all(|v| *v == retick), "{row:?}");
        row.3.iter_mut().for_each(|x| *x = -1);
    }
    assert_eq!(here, expected);
    let mut again = read(&open(&path));
    again[before_merge..].iter_mut().for_each(|r| r.3.iter_mut().for_each(|x| *x = -1));
    assert_eq!(again, expected, "the same after a restart");

    // A rollback that takes the crr_ticks row with it, then only spliced-for records: they
    // must not refer to the row that is gone.
    let (c, path) = crr_t_file("fresh-template-row-gone");
    c.execute_batch(
        "SELECT crr_set_wall_clock_for_testing(7000); BEGIN; SAVEPOINT s; \
         INSERT INTO t VALUES (20, 'a', 1, 0.5); INSERT INTO t VALUES (21, 'a', 1, 0.5); ROLLBACK TO s; RELEASE s; \
         INSERT INTO t VALUES (1, 'a', 1, 0.5); INSERT INTO t VALUES (2, 'a', 1, 0.5); COMMIT;",
    )
    .unwrap();
    for c in [&c, &open(&path)] {
        let versions: Vec<i64> = changes(c).iter().map(|x| x.col_version).collect();
        assert_eq!(versions, vec![tick; 6]);
    }
}

/// Local writes stopped at any step (by sqlite3_interrupt, or a progress handler that gives
/// up), in one statement or a transaction of several, leave the table and its feed as they
/// were (or, where SQLite reports the interrupt after the work was done, the work whole), and
/// every later write is recorded: the feed then holds each cell's value, and a replica that
/// merges it holds the table.
#[test]
fn local_writes_stopped_at_any_step_leave_table_and_feed_together() {
    let writes = [
        "UPDATE t SET a = a || '!', b = b + 1 WHERE id <= 3",
        "BEGIN; INSERT INTO t VALUES (9, 'n', 9, 9.5); UPDATE t SET id = 10 WHERE id = 2; DELETE FROM t WHERE id = 3; \
         INSERT OR REPLACE INTO t VALUES (1, 'r', 1, 1.5); COMMIT",
    ];
    let fresh = || {
        let c = crr_t();
        c.execute_batch("INSERT INTO t VALUES (1, 'a', 1, 0.5), (2, 'b', 2, 1.5), (3, 'c', 3, 2.5), (4, 'd', 4, 3.5)").unwrap();
        c
    };
    let state = |c: &rusqlite::Connection| (dump(c, "t"), feed(c), one::<i64>(c, "SELECT crsql_db_version()"));
    let mut stopped = 0;
    for w in writes {
        let (steps, whole) = {
            let c = fresh();
            let (r, steps) = Stop::count(&c, || c.execute_batch(w));
            r.unwrap();
            (steps, dump(&c, "t"))
        };
        for how in How::ALL {
            let mut c = fresh();
            let mut before = state(&c);
            for at_step in 0..steps {
                let r = Stop::at(&c, at_step, how, || c.execute_batch(w));
                if let Err(e) = &r {
                    stopped += 1;
                    assert!(e.to_string().contains("interrupt"), "{w} at step {at_step}: {e}");
                    if !c.is_autocommit() {
                        c.execute_batch("ROLLBACK").unwrap();
                    }
                }
                let now = state(&c);
                if r.is_ok() || now != before {
                    // Done: whole, the feed holds what the table holds, and later writes
                    // are recorded.
                    assert_eq!(dump(&c, "t"), whole, "{w} stopped at step {at_step} ({how:?}): half done");
                    c.execute_batch("UPDATE t SET c = c * 2; INSERT INTO t VALUES (20, 'z', 20, 20.5)").unwrap();
                    let other = crr_t();
                    apply(&other, &changes(&c)).unwrap();
                    assert_eq!(dump(&other, "t"), dump(&c, "t"), "{w} stopped at step {at_step} ({how:?})");
                    c = fresh();
                    before = state(&c);
                } else {
                    assert_eq!(now, before, "{w} stopped at step {at_step} ({how:?})");
                }
            }
        }
    }
    assert!(stopped > 500, "stopped {stopped} times only");
}

/// A function stopped by an interrupt reports the interrupt (its code, SQLITE_INTERRUPT), not
/// another error made of it: until 2026-12-05 crsql_site_id() said "this database has no site
/// id yet" (found by tests/rollbacks.rs with interrupts, seed 50832) and crsql_as_crr refused a
/// table whose "row of defaults fails its column types (interrupted)".
#[test]
fn functions_stopped_report_the_interrupt() {
    let calls = [
        "SELECT crsql_site_id()",
        "SELECT crsql_db_version()",
        "SELECT crsql_config_get('hlc-max-drift-ms')",
        "SELECT count(*) FROM crsql_changes",
        "SELECT crsql_as_crr('s')",
    ];
    for sql in calls {
        let fresh = || {
            let c = crr_t();
            c.execute_batch("INSERT INTO t VALUES (1, 'a', 1, 1.5); CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, n INTEGER DEFAULT 0 CHECK (n >= 0), m TEXT) STRICT;").unwrap();
            c
        };
        let steps = {
            let c = fresh();
            let (r, steps) = Stop::count(&c, || c.execute_batch(sql));
            r.unwrap();
            steps
        };
        for how in How::ALL {
            let mut c = fresh();
            for at_step in 0..steps {
                match Stop::at(&c, at_step, how, || c.execute_batch(sql)) {
                    Err(e) => assert_eq!(
                        e.sqlite_error_code(),
                        Some(rusqlite::ErrorCode::OperationInterrupted),
                        "{sql} stopped at step {at_step} of {steps}: {e}"
                    ),
                    // (crsql_as_crr is done: the next try needs the table as it was.)
                    Ok(()) => c = fresh(),
                }
            }
        }
    }
}

/// Functions the extension registers once for every argument count (each registration holds
/// lookaside memory of the connection for good: see functions.rs) refuse a count they do not
/// take, as SQLite refuses one for a function registered per count.
#[test]
fn functions_registered_for_any_argument_count_refuse_a_wrong_one() {
    let c = mem();
    for (sql, want) in [
        ("SELECT crsql_as_crr()", "wrong number of arguments to function crsql_as_crr(): 0 (it takes 1 or 2)"),
        ("SELECT crsql_as_crr('main', 't', 'x')", "wrong number of arguments to function crsql_as_crr(): 3 (it takes 1 or 2)"),
        ("SELECT crr_internal_mark(1)", "wrong number of arguments to function crr_internal_mark(): 1 (it takes 2 to 4)"),
        ("SELECT crr_internal_grow()", "wrong number of arguments to function crr_internal_grow(): 0 (it takes 1 or 2)"),
        ("SELECT crr_internal_update_record(1, 1, x'')", "wrong number of arguments to function crr_internal_update_record(): 3 (it takes 4 or 5)"),
    ] {
        let e = err(&c, sql);
        assert!(e.contains(want), "{sql}: {e}");
    }
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM sqlite_schema"), 0, "nothing installed");
}
