//! Prepared statements kept per connection, keyed by what they do (never by formatting SQL on
//! the hot path: the SQL text is built only on a miss).
//!
//! A statement is taken out of the cache while in use and put back after, reset, so nested use
//! (a trigger firing inside a merge) gets its own statement instead of resetting one mid-step.
//!
//! Each key is given a slot until the next `clear` (one hash lookup per use). `clear` (every
//! registry load) finalizes them all, one in use when its use ends (`generation`), and forgets
//! every key, so keys of a schema gone (a dropped CRR's table id) do not pile up on a
//! long-lived connection (until 2026-12-06 they did).
//!
//! **Invariant:** after each fresh prepare the statements kept hold at most `BUDGET` (32 MiB,
//! `sqlite3_stmt_status` MEMUSED measured at each one's first use), but for those in use, which
//! cannot be finalized: past it `shed` finalizes the least recently used down to three quarters
//! of it, and they are prepared again at their next use. It is a bound, not the plan:
//! `tables::SHARED_WRITE_BUDGET` keeps merges' statements to a quarter of it.

use crate::error::Result;
use crate::ffi::db::{Db, Stmt};
use std::cell::{Cell, RefCell};
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
    /// A packed-key bucket clock's highest rowid (dirty::grow).
    ClockHighestRowid(i64),
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
    /// The TEMP schema's cookie (merge::temp_trigger_updates_of).
    TempCookie,
    DirtyAdd,
    DirtyAddMany,
    DirtyRemove,
    DirtyRemoveMany,
    /// The CRRs with a crr_dirty entry at a db_version or later (dirty::tables_written_since).
    DirtySince,
    /// A clock's tail and highest rowid (tails::fit), the entries of the buckets a tail's
    /// move leaves (tails::seal_tails), the move and a tail's removal (tails::move_tails),
    /// whether a tail holds a row written at a db_version or later (dirty::tables_written_since).
    DirtyTail(i64),
    DirtyTailSeal(i64),
    DirtyTailSealOne(i64),
    TailMove,
    TailDrop,
    /// The tails that moved least recently, and how many there are (tails::fit).
    TailsOldest,
    TailSince(i64),
    /// The CRRs' tails (tails::tails_of_crrs).
    Tails,
    /// The highest db_version of the CRRs' crr_dirty entries, and of a tail's rows
    /// (dirty::max_written).
    DirtyMax,
    TailMax(i64),
    /// A row's tracked values inside an alter bracket (storage::alter::bracket_row).
    BracketRow(i64),
    /// A table's columns (tables::TableInfo::check_columns).
    TableColumns,
    /// A table's first unique index besides its key (tables::TableInfo::check_columns).
    UniqueIndex,
}

/// The memory the cached statements of one connection may hold (`sqlite3_stmt_status`'s
/// MEMUSED, measured at each statement's first use): past it, the least recently used are
/// finalized, down to three quarters of it, and prepared again at their next use. A statement
/// that writes one column is as large as its table and holds the table's triggers, so a merge
/// that keeps one per column holds O(columns^2) a table; `tables::SHARED_WRITE_BUDGET` keeps the
/// schema's share of that to a quarter of this, and this bounds what it cannot (tables whose
/// triggers on `UPDATE OF` columns need a statement per column). A working set past it is
/// prepared again and again (merges 7 times slower in a test that cycled through 28 MiB of
/// statements with 8 MiB kept), so it is a bound, not a target.
pub const BUDGET: usize = 32 << 20;

/// A cached statement, with its size and when it was last used.
#[derive(Default)]
struct Slot {
    /// None while the statement is in use (or finalized).
    stmt: Option<Stmt>,
    /// Bytes it holds, measured after its first use.
    bytes: usize,
    /// The cache's use count at its last use.
    last: u64,
}

#[derive(Default)]
pub struct StmtCache {
    /// Each key's slot in `slots`, given on first use and kept until the next `clear` (one
    /// hash lookup per use; the statement goes back by index).
    index: RefCell<FastMap<Key, usize>>,
    slots: RefCell<Vec<Slot>>,
    /// Bytes the statements of this generation hold, in `slots` or in use (those a nested use
    /// left spare are not counted).
    held: Cell<usize>,
    /// Uses so far, the clock of `Slot::last`.
    uses: Cell<u64>,
    /// `BUDGET` unless a test set another (`crr_set_statement_budget_for_testing`).
    budget: Cell<Option<usize>>,
    /// Moves at every `clear`: a statement in use across one is finalized when its use ends,
    /// not put back (its SQL may name what the clear was for).
    generation: Cell<u64>,
}

impl StmtCache {
    /// Runs `f` with the cached statement for `key`, preparing `sql()` on a miss.
    pub fn with<T>(&self, db: Db, key: Key, sql: impl FnOnce() -> String, f: impl FnOnce(&mut Stmt) -> Result<T>) -> Result<T> {
        let slot = {
            let mut index = self.index.borrow_mut();
            let next = index.len();
            let slot = *index.entry(key).or_insert(next);
            if slot == next {
                self.slots.borrow_mut().push(Slot::default());
            }
            slot
        };
        let generation = self.generation.get();
        // (`held` counts a statement from its first put-back to its finalizing, in use or not:
        // nothing to count at a hit.)
        let (cached, counted) = {
            let mut slots = self.slots.borrow_mut();
            (slots[slot].stmt.take(), slots[slot].bytes)
        };
        let fresh = cached.is_none();
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
            if self.generation.get() != generation {
                // (`clear` set `held` to 0 and dropped the slot: nothing to take back.)
                Some(stmt)
            } else if slots[slot].stmt.is_some() {
                // A nested use put its own back first, and counted it (it is the slot's
                // `bytes` now); this one was counted if it came from the slot.
                if !fresh {
                    self.held.set(self.held.get().saturating_sub(counted));
                }
                Some(stmt)
            } else {
                let s = &mut slots[slot];
                if fresh {
                    s.bytes = stmt.memory_used();
                    self.held.set(self.held.get() + s.bytes);
                }
                let uses = self.uses.get() + 1;
                self.uses.set(uses);
                s.last = uses;
                s.stmt = Some(stmt);
                None
            }
        };
        drop(spare);
        if fresh && self.held.get() > self.budget() {
            self.shed(slot);
        }
        result
    }

    fn budget(&self) -> usize {
        self.budget.get().unwrap_or(BUDGET)
    }

    /// Sets the budget (None: `BUDGET`) and keeps to it at once.
    pub fn set_budget(&self, budget: Option<usize>) {
        self.budget.set(budget);
        if self.held.get() > self.budget() {
            self.shed(usize::MAX);
        }
    }

    /// Finalizes the least recently used statements but the one in slot `keep` (just used),
    /// until they hold three quarters of the budget.
    fn shed(&self, keep: usize) {
        let target = self.budget() / 4 * 3;
        let finalized: Vec<Stmt> = {
            let mut slots = self.slots.borrow_mut();
            let mut order: Vec<usize> = (0..slots.len()).filter(|&i| i != keep && slots[i].stmt.is_some()).collect();
            order.sort_unstable_by_key(|&i| slots[i].last);
            let mut out = Vec::new();
            for i in order {
                if self.held.get() <= target {
                    break;
                }
                self.held.set(self.held.get().saturating_sub(slots[i].bytes));
                out.extend(slots[i].stmt.take());
            }
            out
        };
        drop(finalized);
    }

    /// Finalizes the cached statement of `key`, if any: its next use prepares the SQL given
    /// then (for a key whose SQL can change, storage::alter's `BracketRow`).
    pub fn forget(&self, key: Key) {
        let slot = self.index.borrow().get(&key).copied();
        let stmt = slot.and_then(|i| {
            let mut slots = self.slots.borrow_mut();
            let stmt = slots[i].stmt.take();
            if stmt.is_some() {
                self.held.set(self.held.get().saturating_sub(slots[i].bytes));
            }
            stmt
        });
        drop(stmt);
    }

    /// Finalizes every cached statement (crsql_finalize, connection close, schema change) and
    /// forgets every key, so keys that name a table id, a group size or anything else of the
    /// schema before do not pile up (until 2026-12-06 keys were kept for good, and a
    /// connection that made and dropped CRRs kept about 3 more for each).
    pub fn clear(&self) {
        self.generation.set(self.generation.get() + 1);
        self.index.borrow_mut().clear();
        self.held.set(0);
        let drained: Vec<Stmt> = std::mem::take(&mut *self.slots.borrow_mut()).into_iter().filter_map(|s| s.stmt).collect();
        drop(drained);
    }

    /// Statements cached (not counting those in use).
    pub fn len(&self) -> usize {
        self.slots.borrow().iter().filter(|s| s.stmt.is_some()).count()
    }

    /// Bytes the cached statements hold (those in use included).
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Keys given a slot since the last `clear`.
    pub fn keys(&self) -> usize {
        self.index.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
