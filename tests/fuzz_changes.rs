//! Replays the changes_insert fuzz corpus against the built extension (dist/crr.so): each
//! input's rows either merge or fail cleanly, leaving the database exactly as it was.

mod common;
#[path = "../fuzz/checks/changes.rs"]
mod changes;
#[path = "../fuzz/checks/corpus.rs"]
mod corpus;

#[test]
fn changes_insert_corpus() {
    corpus::replay("changes_insert", |data| {
        let conn = common::mem();
        changes::changes_db(&conn);
        changes::changes_insert(&conn, data);
    });
}

/// The check's input really reaches crsql_changes: a well-formed change is applied.
#[test]
fn changes_check_applies_a_valid_change() {
    let conn = common::mem();
    changes::changes_db(&conn);
    let count = |c: &rusqlite::Connection| -> i64 { c.query_row("SELECT count(*) FROM crsql_changes", [], |r| r.get(0)).unwrap() };
    let before = count(&conn);
    // table t, integer key 3, column a, TEXT '', col_version 1, db_version 1, site 0x11..,
    // cl 1, seq 0.
    changes::changes_insert(&conn, &[0, 0, 3, 0, 3, 0, 0, 1, 0, 1, 0, 0, 0]);
    assert_eq!(count(&conn), before + 1);
    let a: String = conn.query_row("SELECT a FROM t WHERE id = 3", [], |r| r.get(0)).unwrap();
    assert_eq!(a, "");
}
