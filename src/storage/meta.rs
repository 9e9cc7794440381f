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

/// `get_i64` through a statement prepared now, for a value read once per call of a function
/// that may follow the app's DDL: a cached statement prepared before it would be prepared
/// again inside its step, where an interrupt reads as "database schema has changed".
pub fn get_i64_now(conn: &Conn, key: &str, default: i64) -> Result<i64> {
    let mut s = conn.db.prepare("SELECT value FROM main.crr_meta WHERE key = ?1", false)?;
    s.bind_text(1, key)?;
    Ok(if s.step()? && s.column_type(0) == crate::ffi::api::SQLITE_INTEGER { s.i64(0) } else { default })
}

/// The bits of a token that count, whatever the row holds (31: a token rides above a table id,
/// `track::tracking_arg`).
const TOKEN_MASK: i64 = 0x7FFF_FFFF;

/// The token as stored now, read through the cached statement of `get` and leaving the
/// connection's cached token (`token`) alone: the registry's check that the database is still
/// the one it loaded (`tables::same_database`). 0 where there is none.
pub fn read_token(conn: &Conn) -> Result<i64> {
    Ok(get_i64(conn, "token", 0)? & TOKEN_MASK)
}

/// The database's token: a random number its tracking triggers pass to crr_internal_tracking,
/// which refuses a trigger whose token is not the main database's. A trigger of an ATTACHed
/// replica's CRR runs on this connection too, and would record its write with this
/// database's db_version, clock and crr_dirty: a version below what that replica's peers
/// already synced (so they never get the write) and no bucket entry in its own crr_dirty.
/// Made with the internal schema (or at its upgrade to 5); a copy of the file keeps it until
/// crr_new_site_id makes the copy another replica (`triggers::renew_token`). Cached on the
/// connection (`track::check_token` reads it again before refusing).
pub fn token(conn: &Conn) -> Result<i64> {
    if let Some(t) = conn.token.get() {
        return Ok(t);
    }
    // Not through the cached statement of `get`: read once per connection (at its first tracked
    // write, or when triggers are made), it would leave that statement prepared against a
    // schema the app's next DDL changes, and its next use would have to re-prepare it.
    let t = get_i64_now(conn, "token", 0)? & TOKEN_MASK;
    if t != 0 {
        conn.token.set(Some(t));
    }
    Ok(t)
}

/// The token as stored now: another connection's crr_new_site_id, or a rollback, may have
/// changed it since the cache was filled. What triggers are made with.
pub fn stored_token(conn: &Conn) -> Result<i64> {
    conn.token.set(None);
    token(conn)
}

/// The database's token (`stored_token`), made first if it has none (a new internal schema,
/// the upgrade to 5).
pub fn make_token(conn: &Conn) -> Result<i64> {
    let t = stored_token(conn)?;
    if t != 0 {
        return Ok(t);
    }
    set_token(conn, 0)?;
    token(conn)
}

/// Stores a new random token other than `old` (the cache is filled again at the next read).
pub fn set_token(conn: &Conn, old: i64) -> Result<()> {
    let t = loop {
        let bytes = conn.db.random_bytes();
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        // 31 bits, non-zero (0 means none): it rides above a table id (track::tracking_arg).
        let t = (i64::from_le_bytes(b) & TOKEN_MASK) | 1;
        if t != old {
            break t;
        }
    };
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
