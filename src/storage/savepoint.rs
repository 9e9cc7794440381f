//! `in_savepoint`: work that must be whole or absent (crsql_as_crr, a bracket's begin and
//! commit, crsql_as_table, crr_new_site_id, crsql_config_set, the install and upgrades of the
//! internal schema), in a savepoint of its own that no failure leaves open; `lock_first`, the
//! write lock of a writing function called first in a transaction.
//!
//! Where the connection holds no transaction on main yet, the savepoint takes main's write lock
//! first (`write_lock`, a DELETE that matches nothing; first in an app's transaction,
//! `lock_first`, which each writing function calls first, most through
//! `schema::install_to_write`), so the work reads the last commit and waits for other writers
//! through the busy handler instead of failing with SQLITE_BUSY at its first write; the
//! install, which has no table to lock yet, checks for another connection's site id under the
//! lock its first CREATE TABLE took. See ARCHITECTURE.md's invariant on failed statements.

use super::conn::Conn;
use crate::error::{Error, Result};
use crate::ffi::db::Stmt;

/// Runs `f` inside a savepoint: on error only `f`'s own work is rolled back.
///
/// A pending interrupt (sqlite3_interrupt) stops every statement until the caller's statement
/// ends, ROLLBACK TO and RELEASE included (at their first step; new ones fail to prepare),
/// which left the savepoint, and the transaction it may have begun, open with half the work
/// in it: the app's next writes went into it and never committed. SQLite's rule for a write
/// an interrupt stops is to roll back the whole transaction, and so it does for a write
/// statement stepped while the interrupt is pending: `abandon`, prepared before the work (it
/// sets the database's user_version to what it is, in case it runs after all), makes it do
/// that when the savepoint cannot be undone.
///
/// A savepoint that began the transaction is released by a commit, which can find the
/// database busy (a reader, in rollback-journal mode) again after the ROLLBACK TO: then a
/// ROLLBACK ends the transaction, all of it ours, and the error is SQLITE_BUSY.
///
/// Where the connection holds no transaction on the main database yet, not even a read (the
/// call is alone, or first in a transaction that `BEGIN` opened), the savepoint takes main's
/// write lock before the work reads anything, with a write that changes nothing. The work
/// then reads the last commit, and waits for another writer as any write does (the busy
/// handler). Otherwise the work read a snapshot, and its first write found that another
/// connection had committed since: SQLITE_BUSY at once, which no busy handler retries (WAL),
/// or a deadlock one side must lose (rollback journal). Apps call crsql_as_crr at every
/// start, and of several processes that started at once all but one failed. A transaction
/// that has read already keeps its snapshot (the app's to begin IMMEDIATE). No lock is taken
/// before the internal tables exist (there is nothing to write: the install finds out itself
/// whether another connection installed them meanwhile, `schema::install`), nor on a
/// connection that refuses writes (crsql_as_crr of a CRR whose triggers are this build's
/// writes nothing, and succeeds there).
///
/// The errors of ROLLBACK TO and RELEASE say little (SQLite can report an interrupt after a
/// statement did its work, at the progress handler's last call), so whether the savepoint is
/// still there is asked of SQLite instead: ROLLBACK TO answers "no such savepoint" once it is
/// gone (released, or rolled back with the whole transaction, which an interrupt, a full disk
/// or no memory in a write does).
pub fn in_savepoint<T>(conn: &Conn, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut release = conn.db.prepare(&format!("RELEASE {name}"), false)?;
    let mut rollback = conn.db.prepare(&format!("ROLLBACK TO {name}"), false)?;
    let user_version = {
        let mut s = conn.db.prepare("PRAGMA main.user_version", false)?;
        s.step()?;
        s.i64(0)
    };
    let mut abandon = conn.db.prepare(&format!("PRAGMA main.user_version = {user_version}"), false)?;
    // (See above: a RELEASE that commits can find the database busy.)
    let began = conn.db.in_autocommit();
    // (See above: work that no snapshot binds yet takes the write lock first.)
    let mut lock = if conn.db.main_txn_none() && !conn.db.is_readonly() { write_lock(conn)? } else { None };
    let mut end = conn.db.prepare("ROLLBACK", false)?;
    // A SAVEPOINT that reports an error may have been made: undone as the work is.
    let mut open = conn.db.prepare(&format!("SAVEPOINT {name}"), false)?;
    // What the transaction holds back is written before the RELEASE (which commits, if the
    // savepoint began the transaction): a commit whose own work (xSync) an interrupt stops
    // rolls back, but leaves SQLite's transaction flag set.
    let work = || f().and_then(|v| super::merge::write_held_back(conn).map(|()| v));
    let error = match open.run().and_then(|()| lock.as_mut().map_or(Ok(()), |s| s.run())).and_then(|()| work()) {
        Ok(v) => match release.run() {
            Ok(()) => return Ok(v),
            // Released after all (the error came after), or not (an interrupt, or a commit
            // that found the database busy): then the work is rolled back, below.
            Err(e) => match rollback.run() {
                Err(gone) if is_gone(&gone) => return Ok(v),
                _ => e,
            },
        },
        Err(e) => {
            if rollback.run().is_err_and(|r| is_gone(&r)) {
                return Err(forgot(conn, e));
            }
            e
        }
    };
    // Rolled back to the savepoint, unless an interrupt stopped that; released now (twice at
    // most: a release that reports an error may have been done, then the second says "no
    // such savepoint").
    for _ in 0..2 {
        match release.run() {
            Ok(()) => return Err(forgot(conn, error)),
            Err(r) if is_gone(&r) => return Err(forgot(conn, error)),
            Err(_) => {}
        }
    }
    if began {
        let _ = end.run();
        if conn.db.in_autocommit() {
            return Err(forgot(conn, error));
        }
    }
    let _ = abandon.run();
    let e = forgot(conn, error);
    if conn.db.in_autocommit() {
        return Err(Error::with_code(e.code, format!("{e} (the whole transaction was rolled back, as SQLite does when an interrupt stops a write)")));
    }
    Err(Error::with_code(e.code, format!("{e}; and the savepoint {name} could not be undone: the transaction is still open, roll it back")))
}

/// The start of a function that writes (crsql_as_crr, crsql_as_table, the bracket's two
/// calls, crr_new_site_id, crsql_config_set), called first in a transaction that has not
/// read the main database yet (`BEGIN; SELECT crsql_as_crr('t'); ...`): it takes main's write
/// lock before the function reads anything, as a write statement does, for the reasons
/// above; `in_savepoint` cannot, the function has read by then. Outside a transaction it is
/// `in_savepoint`'s to take. (Through `schema::install_to_write`, except for crsql_as_table and
/// crsql_commit_alter, which need no install.)
pub fn lock_first(conn: &Conn) -> Result<()> {
    if conn.db.in_autocommit() || !conn.db.main_txn_none() || conn.db.is_readonly() {
        return Ok(());
    }
    match write_lock(conn)? {
        Some(mut s) => s.run(),
        None => Ok(()),
    }
}

/// The statement that takes main's write lock (see above), None before the internal tables
/// exist.
fn write_lock(conn: &Conn) -> Result<Option<Stmt>> {
    conn.db.prepare_if_resolves("DELETE FROM main.crr_meta WHERE 0")
}

/// SQLite's answer to ROLLBACK TO or RELEASE of a savepoint that no longer exists.
fn is_gone(e: &Error) -> bool {
    e.message.contains("no such savepoint")
}

/// What the cache knew of the schema may be what the rollback undid: read again.
fn forgot(conn: &Conn, e: Error) -> Error {
    conn.tables.borrow_mut().invalidate();
    conn.stmts.clear();
    e
}
