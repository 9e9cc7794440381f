//! The `crr_meta` key/value table.

use super::conn::Conn;
use super::stmt_cache::Key;
use crate::core::value::Value;
use crate::error::Result;

pub fn get(conn: &Conn, key: &str) -> Result<Option<Value>> {
    conn.stmts.with(conn.db, Key::MetaGet, || "SELECT value FROM main.crr_meta WHERE key = ?1".into(), |s| {
        s.bind_text(1, key)?;
        Ok(if s.step()? { Some(s.value(0)) } else { None })
    })
}

pub fn get_i64(conn: &Conn, key: &str, default: i64) -> Result<i64> {
    Ok(match get(conn, key)? {
        Some(Value::Integer(v)) => v,
        _ => default,
    })
}

pub fn set(conn: &Conn, key: &str, value: &Value) -> Result<()> {
    conn.stmts.with(
        conn.db,
        Key::MetaPut,
        || "INSERT INTO main.crr_meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value".into(),
        |s| {
            s.bind_text(1, key)?;
            s.bind_value(2, value)?;
            s.run()
        },
    )
}
