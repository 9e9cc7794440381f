//! Prepared statements kept per connection, keyed by what they do (never by formatting SQL on
//! the hot path: the SQL text is built only on a miss).
//!
//! A statement is taken out of the cache while in use and put back after, reset, so nested use
//! (a trigger firing inside a merge) gets its own statement instead of resetting one mid-step.

use crate::error::Result;
use crate::ffi::db::{Db, Stmt};
use std::cell::RefCell;
use crate::core::fast_hash::FastMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    SchemaCookie,
    MetaGet,
    MetaPut,
    MetaRaiseHlc,
    JoinChanges,
    TickPut,
    TickGet,
    ClockMark,
    RecordsSince(i64),
    DataVersion,
    SiteById,
    SiteByOrdinal,
    SiteInsert,
    MaxDbVersion(i64),
    ClockGet(i64),
    ClockPut(i64),
    ClockUpdate(i64),
    ClockUpdateDbv(i64),
    /// A clock's rows in a dbv range / all of them; true: with the user row's values.
    ClockRange(i64, bool),
    ClockByPk(i64),
    CellValue(i64, usize),
    RowValues(i64),
    ClockAll(i64, bool),
    RowDelete(i64),
    RowRecreate(i64, Option<usize>),
    CellUpsert(i64, usize),
    CellUpdate(i64, usize),
    DirtyAdd,
    DirtyAddMany,
    DirtyRemove,
    DirtyRemoveMany,
}

#[derive(Default)]
pub struct StmtCache {
    map: RefCell<FastMap<Key, Stmt>>,
}

impl StmtCache {
    /// Runs `f` with the cached statement for `key`, preparing `sql()` on a miss.
    pub fn with<T>(&self, db: Db, key: Key, sql: impl FnOnce() -> String, f: impl FnOnce(&mut Stmt) -> Result<T>) -> Result<T> {
        let cached = self.map.borrow_mut().remove(&key);
        let mut stmt = match cached {
            Some(s) => s,
            None => db.prepare(&sql(), true)?,
        };
        let result = f(&mut stmt);
        stmt.reset();
        self.map.borrow_mut().entry(key).or_insert(stmt);
        result
    }

    /// Finalizes every cached statement (crsql_finalize, connection close, schema change).
    pub fn clear(&self) {
        let drained: Vec<Stmt> = self.map.borrow_mut().drain().map(|(_, s)| s).collect();
        drop(drained);
    }

    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
