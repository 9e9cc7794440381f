//! Per-connection state. One `Conn` per connection that loaded the extension; every function,
//! virtual table and hook of that connection reaches it through its user-data pointer.

use super::sites::Sites;
use super::stmt_cache::StmtCache;
use super::tables::Tables;
use super::txn::Txn;
use crate::ffi::db::Db;
use std::cell::{Cell, RefCell};

pub struct Conn {
    pub db: Db,
    pub stmts: StmtCache,
    pub txn: RefCell<Txn>,
    pub tables: RefCell<Tables>,
    pub sites: RefCell<Sites>,
    /// The CRR whose row a merge is writing right now: its tracking triggers stay silent.
    pub merging_tid: Cell<Option<i64>>,
    /// Simulated wall clock (ms) for tests; None = the system clock.
    pub wall_ms_override: Cell<Option<i64>>,
    /// Clock rows read by crsql_changes scans (crr_debug_clock_rows_read()), so tests can
    /// check that "changes since V" does not read the history.
    pub clock_rows_read: Cell<u64>,
}

impl Conn {
    pub fn new(db: Db) -> Conn {
        Conn {
            db,
            stmts: StmtCache::default(),
            txn: RefCell::new(Txn::default()),
            tables: RefCell::new(Tables::default()),
            sites: RefCell::new(Sites::default()),
            merging_tid: Cell::new(None),
            wall_ms_override: Cell::new(None),
            clock_rows_read: Cell::new(0),
        }
    }

    /// The wall clock in ms since the epoch (the only clock read in the extension).
    pub fn wall_ms(&self) -> i64 {
        if let Some(ms) = self.wall_ms_override.get() {
            return ms;
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// The transaction ended (commit hook, rollback hook).
    pub fn end_transaction(&self, committed: bool) {
        self.txn.borrow_mut().reset();
        self.sites.borrow_mut().end_transaction(committed);
        if !committed {
            // A rolled-back schema change can bring the schema cookie back to a value we
            // cached, so forget what we know of the schema.
            self.tables.borrow_mut().invalidate();
        }
    }
}
