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
    KeyTypes,
    MetaGet,
    MetaPut,
    MetaRaiseHlc,
    JoinTransaction,
    TickPut,
    TickGet,
    ClockMark,
    /// (terms a group, which group: see txn::group_size). Their SQL follows the registry,
    /// and every load of the registry clears the cache (tables::all_with_cookie).
    RecordsSince(usize, usize),
    /// One bucket clock's records after a db_version (txn::records_since).
    RecordsSinceOne(i64),
    SiteById,
    SiteByOrdinal,
    SiteInsert,
    /// As `RecordsSince`.
    MaxDbVersion(usize, usize),
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
    /// Whether a row with the change's exact key is there (merge::delete_row).
    RowExists(i64),
    RowRecreate(i64, Option<usize>),
    /// A wide table's row made with a cell, one for all its columns (merge::recreate_row).
    RowRecreateWide(i64),
    CellUpsert(i64, usize),
    CellUpdate(i64, usize),
    /// A wide table's cell UPDATE, one for all its columns (merge::write_cell).
    CellUpdateWide(i64),
    /// The TEMP triggers of a table (merge::temp_trigger_updates_of).
    TempTriggers,
    DirtyAdd,
    DirtyAddMany,
    DirtyRemove,
    DirtyRemoveMany,
    /// The CRRs with a crr_dirty entry at a db_version or later (dirty::tables_written_since).
    DirtySince,
    /// A row's tracked values inside an alter bracket (storage::alter::bracket_row).
    BracketRow(i64),
    /// A table's columns (tables::TableInfo::check_columns).
    TableColumns,
}

#[derive(Default)]
pub struct StmtCache {
    /// Each key's slot in `slots`, given on first use and kept until the next `clear` (one
    /// hash lookup per use; the statement goes back by index).
    index: RefCell<FastMap<Key, usize>>,
    /// None while the statement is in use (or finalized).
    slots: RefCell<Vec<Option<Stmt>>>,
    /// Moves at every `clear`: a statement in use across one is finalized when its use ends,
    /// not put back (its SQL may name what the clear was for).
    generation: std::cell::Cell<u64>,
}

impl StmtCache {
    /// Runs `f` with the cached statement for `key`, preparing `sql()` on a miss.
    pub fn with<T>(&self, db: Db, key: Key, sql: impl FnOnce() -> String, f: impl FnOnce(&mut Stmt) -> Result<T>) -> Result<T> {
        let slot = {
            let mut index = self.index.borrow_mut();
            let next = index.len();
            let slot = *index.entry(key).or_insert(next);
            if slot == next {
                self.slots.borrow_mut().push(None);
            }
            slot
        };
        let generation = self.generation.get();
        let cached = self.slots.borrow_mut()[slot].take();
        let mut stmt = match cached {
            Some(s) => s,
            None => db.prepare(&sql(), true)?,
        };
        let result = f(&mut stmt);
        stmt.reset();
        // One that a `clear` went past while it was in use is finalized (its slot may be gone
        // or another key's now); so is one whose key a nested use put its own statement back
        // under first (that one is kept). Each once the borrow has ended, as `clear` does.
        let spare = {
            let mut slots = self.slots.borrow_mut();
            if self.generation.get() != generation || slots[slot].is_some() {
                Some(stmt)
            } else {
                slots[slot] = Some(stmt);
                None
            }
        };
        drop(spare);
        result
    }

    /// Finalizes the cached statement of `key`, if any: its next use prepares the SQL given
    /// then (for a key whose SQL can change, storage::alter's `BracketRow`).
    pub fn forget(&self, key: Key) {
        let slot = self.index.borrow().get(&key).copied();
        let stmt = slot.and_then(|i| self.slots.borrow_mut()[i].take());
        drop(stmt);
    }

    /// Finalizes every cached statement (crsql_finalize, connection close, schema change) and
    /// forgets every key, so keys that name a table id, a group size or anything else of the
    /// schema before do not pile up (until 2026-12-06 keys were kept for good, and a
    /// connection that made and dropped CRRs kept about 3 more for each).
    pub fn clear(&self) {
        self.generation.set(self.generation.get() + 1);
        self.index.borrow_mut().clear();
        let drained: Vec<Stmt> = std::mem::take(&mut *self.slots.borrow_mut()).into_iter().flatten().collect();
        drop(drained);
    }

    /// Statements cached (not counting those in use).
    pub fn len(&self) -> usize {
        self.slots.borrow().iter().filter(|s| s.is_some()).count()
    }

    /// Keys given a slot since the last `clear`.
    pub fn keys(&self) -> usize {
        self.index.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
