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

/// The database's token: a random number its tracking triggers pass to crr_internal_tracking,
/// which refuses a trigger whose token is not the main database's. A trigger of an ATTACHed
/// replica's CRR runs on this connection too, and would record its write with this
/// database's db_version, clock and crr_dirty: a version below what that replica's peers
/// already synced (so they never get the write) and no bucket entry in its own crr_dirty.
/// Made with the internal schema (or at its upgrade to 5), never changed; a copy of the file
/// keeps it (both are then one database to this check). Cached on the connection.
pub fn token(conn: &Conn) -> Result<i64> {
    if let Some(t) = conn.token.get() {
        return Ok(t);
    }
    // Not through the cached statement of `get`: read once per connection, at load (see
    // schema::install), it would leave that statement prepared against a schema the app's
    // next DDL changes, and its next use would have to re-prepare it.
    let mut s = conn.db.prepare("SELECT value FROM main.crr_meta WHERE key = 'token'", false)?;
    let stored = if s.step()? { s.i64(0) } else { 0 };
    // 31 bits (make_token), whatever the row holds: it must fit above a table id.
    let t = stored & 0x7FFF_FFFF;
    if t != 0 {
        conn.token.set(Some(t));
    }
    Ok(t)
}

/// Gives the database a token if it has none (a new internal schema, the upgrade to 5).
pub fn make_token(conn: &Conn) -> Result<()> {
    if token(conn)? != 0 {
        return Ok(());
    }
    let bytes = conn.db.random_bytes();
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    // 31 bits, non-zero (0 means none): it rides above a table id (track::tracking_arg).
    let t = (i64::from_le_bytes(b) & 0x7FFF_FFFF) | 1;
    set(conn, "token", &Value::Integer(t))?;
    conn.token.set(None);
    Ok(())
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
