//! Fuzz check for crsql_changes INSERT on a real database (through SQL only, so it links
//! nothing but rusqlite; the extension is loaded or registered by the caller).
//!
//! Shared by `fuzz/fuzz_targets/changes_insert.rs` and `tests/fuzz_changes.rs`. The check
//! panics when a property is broken; returning means the input passed.

#![allow(dead_code)] // the fuzz target and the replay test use different parts
use rusqlite::types::Value;
use rusqlite::Connection;

/// The tables `changes_insert` writes to: integer key, compound text key, STRICT, key-only.
pub const CHANGES_SCHEMA: &str = "
    CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b INTEGER DEFAULT 0, c);
    CREATE TABLE u(k1 TEXT NOT NULL, k2 INTEGER NOT NULL, v, PRIMARY KEY (k1, k2)) WITHOUT ROWID;
    CREATE TABLE s(id INTEGER PRIMARY KEY NOT NULL, n INTEGER, r REAL) STRICT;
    CREATE TABLE k(x NOT NULL, y NOT NULL, PRIMARY KEY (x, y));
    SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u'); SELECT crsql_as_crr('s'); SELECT crsql_as_crr('k');
    INSERT INTO t VALUES (1, 'one', 1, 1.5), (2, 'two', 2, NULL);
    INSERT INTO u VALUES ('a', 1, x'00'), ('b', 2, 'bee');
    INSERT INTO s VALUES (1, 10, 0.5);
    INSERT INTO k VALUES (1, 'y');
    DELETE FROM t WHERE id = 2;";

/// A connection (with the extension loaded) prepared for `changes_insert`.
pub fn changes_db(conn: &Connection) {
    conn.execute_batch(CHANGES_SCHEMA).expect("fuzz schema");
}

/// Reads the fuzz input as a stream of choices.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a.to_vec()
    }
    fn i64(&mut self) -> i64 {
        match self.u8() % 4 {
            0 => i64::from(self.u8()),
            1 => -i64::from(self.u8()),
            2 => i64::from_be_bytes(self.take(8).try_into().unwrap_or([0; 8])),
            _ => i64::from(self.u8()) << 40,
        }
    }
    fn value(&mut self) -> Value {
        match self.u8() % 5 {
            0 => Value::Null,
            1 => Value::Integer(self.i64()),
            2 => Value::Real(self.i64() as f64 / 7.0),
            3 => {
                let n = usize::from(self.u8() % 8);
                Value::Text(String::from_utf8_lossy(&self.take(n)).into_owned())
            }
            _ => {
                let n = usize::from(self.u8() % 8);
                Value::Blob(self.take(n))
            }
        }
    }
    fn empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A packed key: mostly well-formed keys of the tables above (packed by the extension's own
/// crsql_pack_columns), sometimes arbitrary bytes.
fn pk(conn: &Connection, b: &mut Bytes<'_>) -> Value {
    let key: Vec<Value> = match b.u8() % 4 {
        0 => vec![Value::Integer(i64::from(b.u8() % 4))],
        1 => vec![Value::Text(["a", "b", "c"][usize::from(b.u8() % 3)].into()), Value::Integer(i64::from(b.u8() % 3))],
        2 => vec![Value::Integer(i64::from(b.u8() % 2)), Value::Text("y".into())],
        _ => {
            let n = usize::from(b.u8() % 12);
            return Value::Blob(b.take(n));
        }
    };
    let sql = if key.len() == 1 { "SELECT crsql_pack_columns(?)" } else { "SELECT crsql_pack_columns(?, ?)" };
    conn.query_row(sql, rusqlite::params_from_iter(key.iter()), |r| r.get(0)).expect("crsql_pack_columns")
}

/// One row for `INSERT INTO crsql_changes`, every column chosen by the input.
fn change(conn: &Connection, b: &mut Bytes<'_>) -> Vec<Value> {
    let table = ["t", "u", "s", "k", "nope", "crr_meta"][usize::from(b.u8() % 6)];
    let pk = pk(conn, b);
    let cid = ["a", "b", "c", "v", "n", "r", "-1", "zz", "id"][usize::from(b.u8() % 9)];
    let val = b.value();
    let col_version = b.i64();
    let db_version = b.i64();
    let site = match b.u8() % 4 {
        0 => Value::Blob(vec![0x11; 16]),
        1 => Value::Blob(vec![0xEE; 16]),
        2 => Value::Null,
        _ => {
            let n = usize::from(b.u8() % 20);
            Value::Blob(b.take(n))
        }
    };
    let cl = match b.u8() % 3 {
        0 => 1,
        1 => i64::from(b.u8() % 6),
        _ => b.i64(),
    };
    let seq = i64::from(b.u8());
    vec![
        Value::Text(table.into()),
        pk,
        Value::Text(cid.into()),
        val,
        Value::Integer(col_version),
        Value::Integer(db_version),
        site,
        Value::Integer(cl),
        Value::Integer(seq),
    ]
}

/// Everything a merge could touch: the user tables and the change feed.
fn snapshot(conn: &Connection) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for q in [
        "SELECT 't', * FROM t ORDER BY id",
        "SELECT 'u', * FROM u ORDER BY k1, k2",
        "SELECT 's', * FROM s ORDER BY id",
        "SELECT 'k', * FROM k ORDER BY x, y",
        "SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes",
    ] {
        let mut s = conn.prepare(q).expect("snapshot query");
        let n = s.column_count();
        let rows = s.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect()).expect("snapshot");
        out.extend(rows.map(|r| r.expect("snapshot row")));
    }
    out
}

/// crsql_changes INSERT: arbitrary rows either merge or fail with an error; a refused row
/// leaves the tables and the change feed exactly as they were; the file stays consistent.
pub fn changes_insert(conn: &Connection, data: &[u8]) {
    let mut b = Bytes(data);
    conn.execute_batch("BEGIN").expect("begin");
    let mut stmt = conn.prepare("INSERT INTO crsql_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").expect("prepare");
    for _ in 0..16 {
        if b.empty() {
            break;
        }
        let row = change(conn, &mut b);
        let before = snapshot(conn);
        if let Err(e) = stmt.execute(rusqlite::params_from_iter(row.iter())) {
            assert!(!e.to_string().is_empty(), "an error without a message");
            assert_eq!(snapshot(conn), before, "a refused change {row:?} altered the database ({e})");
        }
    }
    drop(stmt);
    conn.execute_batch("COMMIT").expect("commit");
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
    assert_eq!(ok, "ok");
    since_agrees_with_the_feed(conn);
}

/// For every V, the changes since V are the full feed's changes with db_version > V (rows
/// written since V are found through the clocks' dbv index or crr_dirty buckets), and those up
/// to V the full feed's with db_version <= V.
fn since_agrees_with_the_feed(conn: &Connection) {
    const FEED: &str = "SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes";
    let read = |sql: &str, v: i64| -> Vec<Vec<Value>> {
        let mut s = conn.prepare(sql).expect("feed query");
        let rows = s.query_map([v], |r| (0..9).map(|i| r.get::<_, Value>(i)).collect()).expect("feed");
        rows.map(|r| r.expect("feed row")).collect()
    };
    let all = read(&format!("{FEED} WHERE ?1 = ?1"), 0);
    let top = all.iter().filter_map(|r| if let Value::Integer(d) = r[5] { Some(d) } else { None }).max().unwrap_or(0);
    for v in 0..=top {
        let want: Vec<Vec<Value>> = all.iter().filter(|r| matches!(r[5], Value::Integer(d) if d > v)).cloned().collect();
        assert_eq!(read(&format!("{FEED} WHERE db_version > ?1"), v), want, "changes since {v}");
        // And a window's end (a row's clock is found by its highest db_version).
        let want: Vec<Vec<Value>> = all.iter().filter(|r| matches!(r[5], Value::Integer(d) if d <= v)).cloned().collect();
        assert_eq!(read(&format!("{FEED} WHERE db_version <= ?1"), v), want, "changes up to {v}");
    }
}
