//! The tick of each local transaction, stored once in `crr_ticks(dbv, tick)` so that row clock
//! records can refer to it instead of repeating a 9-byte HLC version per row (row clock
//! format 3, bit 5: "col_version = the tick of this entry's db_version").
//!
//! Stability is what makes the reference safe: a committed db_version is never handed out
//! again (txn.rs), so its row never changes and is cached per connection. The open
//! transaction's own row is written (txn.rs: before its second record, see `before_record`)
//! before any record that refers to it (the first tick it hands out, kept even if the clock is
//! re-ticked), and is trusted only while no rollback was reported since it was written;
//! otherwise its entries are simply stored in full. A transaction that has not ticked may
//! write a row holding the clock mark instead (`txn::settle`); nothing at its db_version refers
//! to that row until it is committed, and then it never changes either.

use super::conn::Conn;
use super::stmt_cache::Key;
use crate::core::row_clock::{CorruptClock, Entry, RowClock};
use crate::error::{Error, Result};
use crate::core::fast_hash::FastMap;

/// Most committed ticks a connection keeps in memory (then the cache starts over).
const CACHE_MAX: usize = 4096;

#[derive(Default)]
pub struct TickCache {
    committed: FastMap<i64, i64>,
}

impl TickCache {
    pub fn clear(&mut self) {
        self.committed.clear();
    }
}

/// Writes the open transaction's row (`INSERT OR REPLACE`: it replaces the row holding the
/// mark that this transaction wrote before it ticked, or a row left at this db_version by a
/// transaction that wrote no clock entry, see txn.rs).
pub fn write(conn: &Conn, dbv: i64, tick: i64) -> Result<()> {
    conn.stmts.with(conn.db, Key::TickPut, || "INSERT OR REPLACE INTO main.crr_ticks(dbv, tick) VALUES (?1, ?2)".into(), |s| {
        s.bind_i64(1, dbv)?;
        s.bind_i64(2, tick)?;
        s.run()
    })
}

/// Tick lookups for encoding and decoding records. A failed read is kept and reported by
/// `finish` (the core codec only sees "unknown").
pub struct Lookup<'a> {
    conn: &'a Conn,
    failed: Option<Error>,
}

impl<'a> Lookup<'a> {
    pub fn new(conn: &'a Conn) -> Lookup<'a> {
        Lookup { conn, failed: None }
    }

    /// The tick of `dbv`, for encoding. The open transaction's own db_version has a tick only
    /// once this transaction wrote its row, and only while that row is certainly still there
    /// (a row left at this db_version by a transaction that stored nothing is never used: it
    /// is replaced when this one ticks).
    fn for_encode(&mut self, dbv: i64) -> Option<i64> {
        if super::txn::current_db_version(self.conn) == Some(dbv) {
            return super::txn::own_tick(self.conn).and_then(|(_, tick, written)| written.then_some(tick));
        }
        self.committed(dbv)
    }

    /// The tick of `dbv`, for decoding a stored record (after a reported rollback the open
    /// transaction's row is read again: records that refer to it exist only if it does).
    fn for_decode(&mut self, dbv: i64) -> Option<i64> {
        if super::txn::current_db_version(self.conn) == Some(dbv) {
            return match super::txn::own_tick(self.conn) {
                Some((_, tick, true)) => Some(tick),
                Some((_, _, false)) => self.read(dbv),
                None => None,
            };
        }
        self.committed(dbv)
    }

    /// A committed db_version's tick: its row never changes, so it is cached.
    fn committed(&mut self, dbv: i64) -> Option<i64> {
        if let Some(t) = self.conn.ticks.borrow().committed.get(&dbv) {
            return Some(*t);
        }
        let t = self.read(dbv)?;
        let mut cache = self.conn.ticks.borrow_mut();
        if cache.committed.len() >= CACHE_MAX {
            cache.committed.clear();
        }
        cache.committed.insert(dbv, t);
        Some(t)
    }

    fn read(&mut self, dbv: i64) -> Option<i64> {
        let r = self.conn.stmts.with(self.conn.db, Key::TickGet, || "SELECT tick FROM main.crr_ticks WHERE dbv = ?1".into(), |s| {
            s.bind_i64(1, dbv)?;
            Ok(if s.step()? { Some(s.i64(0)) } else { None })
        });
        r.unwrap_or_else(|e| {
            self.failed.get_or_insert(e);
            None
        })
    }

    /// Encodes `rc`, appended to `out`.
    pub fn encode_into(&mut self, rc: &RowClock, out: &mut Vec<u8>) -> Result<()> {
        rc.encode_into(out, &mut |d| self.for_encode(d));
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Decodes, its cells held in `cells` (see RowClock::decode_reusing); `what` names the
    /// record in an error.
    pub fn decode_reusing(&mut self, cl: i64, bytes: &[u8], what: impl FnOnce() -> String, cells: Vec<Option<Entry>>) -> Result<RowClock> {
        let r = RowClock::decode_reusing(cl, bytes, &mut |d| self.for_decode(d), cells);
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        r.map_err(|e: CorruptClock| Error::new(format!("{e} ({})", what())))
    }
}

