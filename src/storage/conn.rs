//! Per-connection state. One `Conn` per connection that loaded the extension; every function,
//! virtual table and hook of that connection reaches it through its user-data pointer.
//!
//! It holds the statement cache, the transaction state, the caches of what the database holds,
//! the test clock, the savepoint depth and a merge's held row clock. `check_triggers` is asked
//! at the load, by `enter_call` (the start of every public function and crsql_changes read) and
//! at crsql_changes' xBegin: a connection whose triggers are off
//! (`SQLITE_DBCONFIG_ENABLE_TRIGGER`) would write CRRs unrecorded, and is refused.

use super::sites::Sites;
use super::stmt_cache::StmtCache;
use super::tables::{Clock, Tables};
use super::ticks::TickCache;
use crate::core::row_clock::{Entry, RowClock};
use crate::core::value::Value;
use super::txn::{Carry, Txn};
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
    /// The firings of that CRR's tracking triggers during the merge's write, and the kind of
    /// write (see track::tracking).
    pub merge_fired: Cell<u32>,
    pub merge_write: Cell<MergeWrite>,
    /// The main database's token (meta::token), once read.
    pub token: Cell<Option<i64>>,
    /// Calls only an earlier build's triggers make that a trigger of the main database was
    /// found to make, and the schema cookie they were found at (track::check_legacy_caller).
    pub legacy_callers: RefCell<(Option<i64>, Vec<String>)>,
    /// Simulated wall clock (ms) for tests; None = the system clock.
    pub wall_ms_override: Cell<Option<i64>>,
    /// Clock rows read by crsql_changes scans (crr_debug_clock_rows_read()), so tests can
    /// check that "changes since V" does not read the history.
    pub clock_rows_read: Cell<u64>,
    /// Clock records read to recover the clock mark (`txn::recover`;
    /// crr_debug_records_recovered()), so tests can check what a recovery reads.
    pub records_recovered: Cell<u64>,
    /// Most changes a crsql_changes scan holds at a time (`changes::Scan::prune`): SCAN_CAP,
    /// or what crr_set_scan_cap_for_testing set.
    pub scan_cap: Cell<usize>,
    /// What crr_set_wide_writes_for_testing set: from how many tracked columns merges write a
    /// table's cells through one statement, and no narrower table (`tables::load`);
    /// None for the defaults.
    pub wide_writes: Cell<Option<usize>>,
    /// The change flags the update trigger's WHEN clause held for its body (track::HeldFlags).
    pub held_flags: RefCell<super::track::HeldFlags>,
    /// Set while crsql_changes or crr_internal_txn takes part in the open transaction (its
    /// xBegin ran): from then on SQLite tells it of every savepoint, statement and savepoint
    /// rollback, and the transaction's end.
    pub txn_joined: Cell<bool>,
    /// crsql_changes itself takes part in the open transaction (a merge's statement began it):
    /// SQLite then reports each savepoint to both of our tables, and crr_internal_txn leaves
    /// them to crsql_changes (they would do the same twice).
    pub changes_joined: Cell<bool>,
    /// Counts rollbacks (statement, savepoint, transaction) that crsql_changes was told of,
    /// and transaction ends. State written in a transaction may be cached across statements
    /// only while this has not moved since the state was written (see `Conn::rollback_mark`).
    pub rollback_epoch: Cell<u64>,
    /// Counts the transaction ends reported (`end_transaction`). A failed statement of ours
    /// can end the transaction it runs in (SQLite rolls back everything at an interrupt, a
    /// full disk or no memory, and reports it through xRollback before the statement returns):
    /// state taken out around such a statement goes back only if this has not moved.
    pub txn_ends: Cell<u64>,
    /// Ticks of committed local transactions (storage/ticks.rs).
    pub ticks: RefCell<TickCache>,
    /// What the last committed transaction left for the next (txn::Carry).
    pub carry: Cell<Option<Carry>>,
    /// What the last committed transaction knew of the clocks' tails (storage/dirty.rs), at
    /// the data version and schema cookie after its commit.
    pub tails_carry: RefCell<Option<super::tails::TailsCarry>>,
    /// The clock of the row the last merge wrote (see storage::merge::MergedRow).
    pub merged_row: RefCell<Option<MergedRow>>,
    /// Savepoints open (statements' too), as the vtabs' savepoint callbacks report them once
    /// crsql_changes or crr_internal_txn is in the transaction (see `Held`).
    pub depth: Cell<i32>,
    /// The database's text encoding is UTF-8 (`PRAGMA encoding`, read once the internal
    /// schema exists, which fixes it): the values SQLite hands us keep text in it, so their
    /// bytes can be read as they are (ffi::values::borrow).
    pub utf8: Cell<bool>,
    /// The main database's open file (`Db::main_file`) at the load: another one means the
    /// database was replaced through `sqlite3_deserialize` (`check_main_file`).
    pub main_file: Cell<usize>,
    /// The data version and the database's token (`meta::read_token`) at which the registry and
    /// what `forget_database` forgets were last known to be this database's: after another
    /// connection's commit the token is read again, and another token means another database
    /// (`tables::all_with_cookie`). None until the registry is loaded with the internal schema.
    pub identity: Cell<Option<(u32, i64)>>,
    /// `txn_ends` when `tables::all_with_cookie` last found, inside a joined transaction, that
    /// the database is the one it knows: until that transaction ends it cannot be replaced
    /// (a joined transaction writes, and holds the write lock), so the registry asks no more.
    pub same_database_in: Cell<Option<u64>>,
    /// `txn_ends` when `enter_write` checked the main file (`check_main_file`) and joined: the
    /// registry need not check it again in that transaction.
    pub file_checked_in: Cell<Option<u64>>,
    /// The token of the database another one replaced under this connection with the same
    /// schema cookie (`tables::same_database`), whose triggers SQLite keeps running: a trigger
    /// that passes it is told so (`track::check_token`).
    pub replaced_token: Cell<Option<i64>>,
    /// The database's internal schema version at the registry's last load (None without the
    /// internal schema). Below this build's after a restore put an earlier build's database in
    /// place (the load upgrades one, a restore does not): `txn::db_version` refuses to write it.
    pub internal_version: Cell<Option<i64>>,
    /// crr_internal_txn is registered on this connection (set once at load, after the internal
    /// schema is installed): until then nothing can join a transaction (`txn::join_transaction`).
    pub txn_vtab: Cell<bool>,
    /// The buffer the clock records stored through track::save / save_existing (merges, key
    /// changes, backfill, alter) are encoded in (track::with_encoded).
    pub record_scratch: Cell<Vec<u8>>,
    /// The vector merges decode a change's key values in (storage::merge::validate, `keep`).
    pub keys_scratch: Cell<Vec<Value>>,
    /// The last answer of `merge::temp_trigger_updates_of`: the TEMP schema's cookie, the
    /// table's name, and whether a TEMP trigger on `UPDATE OF` columns may fire on it. Only
    /// merges ask, so crsql_changes is in the transaction and hears of its rollbacks, which
    /// forget it (`rolled_back`).
    pub temp_update_of: RefCell<Option<(i64, String, bool)>>,
    /// The database's data version (`Db::data_version`) when crsql_changes or crr_internal_txn
    /// joined the open transaction; None once it ended. See `joined`, `notice_commit`.
    pub txn_data_version: Cell<Option<u32>>,
    /// The scan of the last crsql_changes read left before its end, for the next page
    /// (storage::changes::read).
    pub feed_cache: RefCell<Option<super::changes::Cached>>,
    /// The filter of the last crsql_changes read, to tell a window of versions that follows
    /// it (storage::changes::read).
    pub feed_last: RefCell<Option<super::changes::Filter>>,
    /// The update triggers of an alter bracket (storage::alter::Bracket).
    pub bracket: RefCell<super::alter::Bracket>,
}

/// The clock record of the row the last merge wrote, so that the next change of the same row
/// (a row's changes usually arrive together) need not read it back.
///
/// Stored (`held` None): trusted only while no rollback was reported since (`mark`), and
/// dropped by every other write of a clock record (`track::encode_into`), by reaping, by schema
/// reloads and at transaction end.
///
/// Held (`held` Some): the merge wrote the user table but not yet the clock row, so that
/// the next change of the same row updates the record in memory and the row's clock is
/// written once (storage::merge, "held clock").
pub struct MergedRow {
    /// The row's table's clock (its tid names the table).
    pub clock: Clock,
    pub pk: Vec<u8>,
    pub rc: RowClock,
    pub mark: Option<u64>,
    pub held: Option<Held>,
    /// A cell vector kept for the next record of a merge (its allocation is reused: a row's
    /// next change works on a copy of `rc`, so that an error leaves `rc` as it was).
    pub spare: Vec<Option<Entry>>,
}

impl MergedRow {
    /// Whether this is row `pk` of table `tid`.
    pub fn is_row(&self, tid: i64, pk: &[u8]) -> bool {
        self.clock.tid == tid && self.pk == pk
    }
}

/// A merged row's clock not written yet.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// `Conn::depth` when its user-table writes were made: a rollback to a savepoint below it
    /// undid them (the record goes), one at or above it did not (the record stays). A release
    /// down to a lower depth moves them there.
    pub level: i32,
    /// The `dbv` of the clock row stored for this key, None if there is none.
    pub stored: Option<i64>,
}

/// The statement a merge writes a row of the user table with (storage::merge::write_user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeWrite {
    Delete,
    /// INSERT OR REPLACE.
    Replace,
    /// UPDATE, or INSERT ... ON CONFLICT DO UPDATE.
    Update,
}

/// Why the extension refuses a connection whose triggers are off (`Conn::check_triggers`, and
/// the load).
pub const TRIGGERS_OFF: &str = "triggers are turned off on this connection (SQLITE_DBCONFIG_ENABLE_TRIGGER): its writes to \
                                CRRs would go unrecorded and never reach other replicas; turn them on \
                                (sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, 0))";

impl Conn {
    pub fn new(db: Db) -> Conn {
        Conn {
            db,
            stmts: StmtCache::default(),
            txn: RefCell::new(Txn::default()),
            tables: RefCell::new(Tables::default()),
            sites: RefCell::new(Sites::default()),
            merging_tid: Cell::new(None),
            merge_fired: Cell::new(0),
            merge_write: Cell::new(MergeWrite::Delete),
            token: Cell::new(None),
            legacy_callers: RefCell::new((None, Vec::new())),
            wall_ms_override: Cell::new(None),
            clock_rows_read: Cell::new(0),
            records_recovered: Cell::new(0),
            scan_cap: Cell::new(super::changes::SCAN_CAP),
            wide_writes: Cell::new(None),
            held_flags: RefCell::default(),
            txn_joined: Cell::new(false),
            changes_joined: Cell::new(false),
            rollback_epoch: Cell::new(0),
            txn_ends: Cell::new(0),
            ticks: RefCell::new(TickCache::default()),
            carry: Cell::new(None),
            tails_carry: RefCell::new(None),
            merged_row: RefCell::new(None),
            depth: Cell::new(0),
            utf8: Cell::new(false),
            main_file: Cell::new(0),
            identity: Cell::new(None),
            same_database_in: Cell::new(None),
            file_checked_in: Cell::new(None),
            replaced_token: Cell::new(None),
            internal_version: Cell::new(None),
            txn_vtab: Cell::new(false),
            record_scratch: Cell::new(Vec::new()),
            keys_scratch: Cell::new(Vec::new()),
            temp_update_of: RefCell::new(None),
            txn_data_version: Cell::new(None),
            feed_cache: RefCell::new(None),
            feed_last: RefCell::new(None),
            bracket: RefCell::new(Default::default()),
        }
    }

    /// Refuses to go on once `sqlite3_deserialize` replaced the main database (its file is
    /// another than at the load). SQLite keeps an eponymous virtual table on the schema it
    /// was first used with, and deserialize frees that schema without telling the table (any
    /// eponymous table: json_each's too; seen on 3.46, and 3.53's source has the same code),
    /// so that every statement on crsql_changes or crr_internal_txn then looks for a schema
    /// that is gone, past the end of the connection's list of databases (valgrind: invalid
    /// reads; a test crashed now and then); a statement of ours that names one (the join of
    /// a transaction, `txn::JOIN_SQL`) would too (and so do the pragma functions' tables
    /// that `crsql_as_crr` reads). Asked first by every call (`enter_call`), before a
    /// transaction's join (`enter_write`), and by the registry (`tables::all_with_cookie`:
    /// every read, merge and tracked write; once per joined transaction). A read of
    /// crsql_changes prepared by the app reaches SQLite's fault before any code of ours runs:
    /// README says to deserialize before the load, or on another connection.
    pub fn check_main_file(&self) -> crate::error::Result<()> {
        if self.db.main_file() == self.main_file.get() {
            return Ok(());
        }
        Err(crate::error::Error::new(
            "the main database was replaced through sqlite3_deserialize after sqlite-crr was loaded on this \
             connection: SQLite keeps virtual tables such as crsql_changes on the schema it then freed, so \
             the extension cannot go on here; deserialize before loading the extension, or open another connection",
        ))
    }

    /// The registry is loaded again (`tables::all_with_cookie`): the schema changed, or the
    /// main database is another one. What a connection learnt of its database stays true
    /// only while it is the same database: committed site ordinals and ticks, the token, the
    /// carry, the triggers found to make an earlier build's calls. All of it is read again
    /// when next needed (a schema change that is not a replacement only costs those reads).
    /// The open transaction's own state stays: no replacement can happen inside it.
    ///
    /// How a replacement shows: a restore through the backup API (into this connection, which
    /// leaves the data version where it was, or into the file by another) moves the schema
    /// cookie; `sqlite3_rsync` into the file keeps the origin's cookie, and moves the data
    /// version, as any other connection's commit does, after which the token is compared
    /// (`identity`). (`sqlite3_deserialize` is refused: `check_main_file`.)
    pub fn forget_database(&self) {
        self.sites.borrow_mut().forget_committed();
        self.ticks.borrow_mut().clear();
        self.token.set(None);
        self.carry.set(None);
        self.tails_carry.borrow_mut().take();
        *self.legacy_callers.borrow_mut() = (None, Vec::new());
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

    /// Refuses the extension's work on a connection whose main-database triggers are off
    /// (`SQLITE_DBCONFIG_ENABLE_TRIGGER`): there, SQLite runs no tracking trigger, so the
    /// connection's writes to CRRs go unrecorded, silently, and never reach another replica.
    /// SQLite tells an extension nothing at such a write, so the load, every public function,
    /// every read of crsql_changes and a transaction's first merge (xBegin) ask instead (the
    /// setting costs one call to read), and say what is wrong where the app will see it.
    pub fn check_triggers(&self) -> crate::error::Result<()> {
        if self.db.triggers_enabled() {
            return Ok(());
        }
        Err(crate::error::Error::new(format!(
            "{TRIGGERS_OFF}; crsql_as_crr then records the rows it inserted while they were off, not its updates or deletes"
        )))
    }

    /// The start of a call the app makes (every public SQL function, crsql_changes' xFilter):
    /// `check_main_file`, `check_triggers`, then `notice_commit`.
    pub fn enter_call(&self) -> crate::error::Result<()> {
        self.check_main_file()?;
        self.check_triggers()?;
        self.notice_commit();
        Ok(())
    }

    /// A mark for state written now: `Some(epoch)` when a later rollback that could undo it
    /// will be reported (crsql_changes is in the transaction), `None` when it would not be.
    pub fn rollback_mark(&self) -> Option<u64> {
        self.txn_joined.get().then(|| self.rollback_epoch.get())
    }

    /// Whether state written under `mark` is certainly still in the database.
    pub fn still_written(&self, mark: Option<u64>) -> bool {
        mark.is_some_and(|m| self.txn_joined.get() && m == self.rollback_epoch.get())
    }

    /// crsql_changes was told of a rollback (xRollbackTo, xRollback).
    pub fn rolled_back(&self) {
        self.rollback_epoch.set(self.rollback_epoch.get() + 1);
        // A rollback brings the TEMP schema's cookie back too, and later DDL can reach the
        // same value with other triggers (as `tables` says of main's).
        self.temp_update_of.borrow_mut().take();
        let mut t = self.txn.borrow_mut();
        if t.settings_written {
            // The rollback may have undone a setting or site id this transaction wrote. (A
            // token crr_new_site_id wrote needs nothing: the cached one is only compared, and
            // a mismatch reads the stored one, track::check_token.)
            t.forget_settings();
        }
    }

    /// A vtab in the transaction joined it (xBegin; SQLite then reports the savepoints open,
    /// if any, through xSavepoint).
    pub fn joined(&self) {
        self.txn_joined.set(true);
        self.depth.set(0);
        // Only a transaction whose end is reported keeps its data version: the carry's check
        // (txn::carried) and what its commit leaves (`end_transaction`) rely on it.
        self.txn_data_version.set(Some(self.db.data_version()));
    }

    /// Savepoint `n` (0-based) opened (xSavepoint).
    pub fn savepoint_opened(&self, n: i32) {
        self.depth.set(n + 1);
    }

    /// Savepoint `n` and those above it were released (xRelease): their writes now belong to
    /// the level below.
    pub fn released(&self, n: i32) {
        self.depth.set(n);
        let mut t = self.txn.borrow_mut();
        t.dirty.released(n);
        t.rows_impacted.released(n);
        drop(t);
        if let Some(h) = self.merged_row.borrow_mut().as_mut().and_then(|m| m.held.as_mut()) {
            h.level = h.level.min(n);
        }
    }

    /// The writes made since savepoint `n` opened were undone (xRollbackTo); `n` stays open.
    pub fn rolled_back_to(&self, n: i32) {
        self.rolled_back();
        self.depth.set(n + 1);
        let mut t = self.txn.borrow_mut();
        t.dirty.rolled_back_to(n);
        t.rows_impacted.rolled_back_to(n);
        drop(t);
        let undone = self.merged_row.borrow().as_ref().and_then(|m| m.held).is_some_and(|h| h.level > n);
        if undone {
            *self.merged_row.borrow_mut() = None;
        }
    }

    /// Some clock record may have been written by other code than the last merge: a stored
    /// merged row is no longer trusted (a held one stays: only writing it, or a rollback of its
    /// writes, ends it).
    pub fn forget_merged_row(&self) {
        let stored = self.merged_row.borrow().as_ref().is_some_and(|m| m.held.is_none());
        if stored {
            *self.merged_row.borrow_mut() = None;
        }
    }

    /// Makes sure the open transaction's end will be reported before per-transaction state is
    /// made in it: crr_internal_txn (or crsql_changes) takes part in it, so SQLite calls its
    /// xCommit or xRollback, which end the state (`end_transaction`).
    ///
    /// The extension installs no hooks. SQLite keeps one commit hook and one rollback hook per
    /// connection, so ours would replace an app's, or an app's ours; a commit or rollback we
    /// did not hear of would leave the next transaction on this one's db_version, seq and tick
    /// (two committed transactions at one db_version, so a peer that synced the first misses
    /// the second). Called by the tracking triggers' first function (crr_internal_tracking)
    /// and by the first write of a transaction (txn::db_version, clock), it joins with a
    /// statement (`txn::join_transaction`) once per transaction; then it is one test. (Merges
    /// need none: crsql_changes is in their transaction.)
    #[inline]
    pub fn enter_write(&self) -> crate::error::Result<()> {
        if self.txn_joined.get() {
            return Ok(());
        }
        self.check_main_file()?;
        self.notice_commit();
        super::txn::join_transaction(self)?;
        self.file_checked_in.set(Some(self.txn_ends.get()));
        Ok(())
    }

    /// Ends the state of a joined transaction whose commit was not reported: a safety net, since
    /// SQLite reports the end of every transaction one of our tables is in. Called by both
    /// tables' xBegin and by `enter_call` (crsql_changes' xFilter, every public SQL function).
    ///
    /// The database's data version cannot move inside a write transaction, and a rollback does
    /// not move it (xRollback ends the state then, and clears `txn_data_version`). So a
    /// version other than the one the joined transaction kept means it committed. Only a joined
    /// transaction keeps one (`joined`): one of ours that did not join may have rolled back
    /// unseen, and another connection's commit after it would look like its commit.
    pub fn notice_commit(&self) {
        if let Some(seen) = self.txn_data_version.get() {
            if seen != self.db.data_version() {
                self.end_transaction(true);
            }
        }
    }

    /// The transaction ended: committed (xCommit, or `notice_commit`) or rolled back
    /// (xRollback).
    pub fn end_transaction(&self, committed: bool) {
        self.txn_ends.set(self.txn_ends.get() + 1);
        // The data version this transaction's state was made at (None if none was).
        let ran_at = self.txn_data_version.take();
        if committed {
            // The commit moved the data version: a cached scan is stale; free it now.
            self.feed_cache.borrow_mut().take();
            self.tables.borrow_mut().committed(|m| self.still_written(m));
            let own = self.txn.borrow().carry(ran_at, |m| self.still_written(m));
            // A commit of ours that wrote moves the data version by one and leaves the same
            // database: no need to read the token again for it.
            if let (Some(_), Some(ran_at), Some((seen, token))) = (own, ran_at, self.identity.get()) {
                if seen == ran_at {
                    self.identity.set(Some((ran_at.wrapping_add(1), token)));
                }
            }
            // A commit that leaves no carry of its own (our code ran in it but wrote nothing)
            // passes on the last one, if that was current when it ran. (A commit in which none
            // of our code ran is not seen at all: the carry then no longer matches the data
            // version, and the next transaction reads what it needs.)
            let next = own.or_else(|| {
                let ran_at = ran_at?;
                self.carry.get().filter(|c| c.data_version == ran_at).map(|c| Carry { data_version: ran_at.wrapping_add(1), ..c })
            });
            self.carry.set(next);
            let tails = self.txn.borrow().dirty.carry_tails(ran_at, self.txn.borrow().cookie, |m| self.still_written(m), self.tails_carry.borrow_mut().take());
            *self.tails_carry.borrow_mut() = tails;
        }
        self.sites.borrow_mut().end_transaction(committed, |m| self.still_written(m));
        self.txn_joined.set(false);
        self.changes_joined.set(false);
        self.rolled_back();
        self.txn.borrow_mut().reset();
        self.bracket.borrow_mut().clear();
        // A held clock was written at xSync (storage::merge::flush_held) or rolled back.
        let held = self.merged_row.borrow_mut().take().is_some_and(|m| m.held.is_some());
        debug_assert!(!(committed && held), "a held merged clock reached the commit unwritten");
        if !committed {
            // Nothing committed is cached, but a rolled-back transaction's db_version will be
            // handed out again: start over to be sure.
            self.ticks.borrow_mut().clear();
            // A rolled-back schema change can bring the schema cookie back to a value we
            // cached, so forget what we know of the schema.
            self.tables.borrow_mut().invalidate();
        }
    }
}
