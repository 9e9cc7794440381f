//! Site ids and their local ordinals (`crr_sites`). Ordinal 0 is this replica.
//!
//! Invariant: a cached mapping is trusted only once its row is committed, or while no rollback
//! can have undone it: a mapping created in the open transaction is re-read from the table
//! before use unless it was created while crsql_changes was in the transaction and no
//! rollback was reported since (`Conn::still_written`). Any other rollback comes without a
//! hook telling us. At commit, the same test decides which of the transaction's mappings are
//! kept: a rollback to a savepoint may have undone the row, freeing its ordinal for another
//! site id. (Until 2026-12-04 a commit kept them all: a site id added by a merge or by
//! crr_new_site_id and then undone by ROLLBACK TO stayed cached, and records went on naming
//! an ordinal that crr_sites did not hold.)

use super::conn::Conn;
use super::stmt_cache::Key;
use crate::core::merge::SiteId;
use crate::error::{Error, Result};
use crate::core::fast_hash::FastMap;
use std::collections::HashMap;

#[derive(Default)]
pub struct Sites {
    /// Keyed by ids peers send: std's DoS-resistant hasher.
    by_id: HashMap<SiteId, u32>,
    by_ordinal: FastMap<u32, SiteId>,
    /// Ordinals inserted by the open transaction, with the rollback mark of their insert (a
    /// map: a merge of changes from 100,000 new sites in one transaction took 6.4 s with a
    /// list searched at every lookup, until 2026-12-06).
    fresh: FastMap<u32, Option<u64>>,
    /// The last id looked up and its ordinal (an entry of `by_id`): a batch of changes mostly
    /// comes from one site, and comparing 16 bytes is cheaper than hashing them.
    last: Option<(SiteId, u32)>,
}

impl Sites {
    /// The transaction ended. Committed, the mappings it created are kept where no rollback
    /// can have undone their row since (`still_written` of their mark): a rollback to a
    /// savepoint that SQLite did not report, or one that undid the row, leaves the ordinal free
    /// for another site id. Every other mapping it created is forgotten (read again if needed).
    pub fn end_transaction(&mut self, committed: bool, still_written: impl Fn(Option<u64>) -> bool) {
        for (ord, mark) in std::mem::take(&mut self.fresh) {
            if committed && still_written(mark) {
                continue;
            }
            self.last = None;
            if let Some(id) = self.by_ordinal.remove(&ord) {
                self.by_id.remove(&id);
            }
        }
    }

    /// Forgets every mapping (`Conn::forget_database`). Which ordinals the open transaction
    /// inserted is kept: those are still tested at each use, and decided at its end.
    pub fn forget_committed(&mut self) {
        self.by_id.clear();
        self.by_ordinal.clear();
        self.last = None;
    }

    /// Whether the cached mapping of `ord` can be used without re-reading its row.
    fn trusted(&self, conn: &Conn, ord: u32) -> bool {
        match self.fresh.get(&ord) {
            None => true,
            Some(mark) => conn.still_written(*mark),
        }
    }

    fn is_fresh(&self, ord: u32) -> bool {
        self.fresh.contains_key(&ord)
    }
}

fn lookup_by_id(conn: &Conn, site: &SiteId) -> Result<Option<u32>> {
    conn.stmts.with(conn.db, Key::SiteById, || "SELECT ordinal FROM main.crr_sites WHERE site_id = ?1".into(), |s| {
        s.bind_blob(1, site)?;
        Ok(if s.step()? { Some(s.i64(0) as u32) } else { None })
    })
}

fn remember(conn: &Conn, site: SiteId, ord: u32, fresh: bool) {
    let mark = conn.rollback_mark();
    let mut sites = conn.sites.borrow_mut();
    sites.last = Some((site, ord));
    // The maps stay one-to-one: a rollback can free an ordinal that another site then takes
    // (and trust is kept by ordinal), so whatever either map held for `site` or `ord` goes.
    if let Some(old_ord) = sites.by_id.insert(site, ord).filter(|o| *o != ord) {
        sites.by_ordinal.remove(&old_ord);
    }
    if let Some(old_site) = sites.by_ordinal.insert(ord, site).filter(|s| *s != site) {
        sites.by_id.remove(&old_site);
    }
    if fresh {
        sites.fresh.insert(ord, mark);
    }
}

/// The ordinal of `site`, if this database knows it.
pub fn ordinal(conn: &Conn, site: &SiteId) -> Result<Option<u32>> {
    let cached = {
        let mut sites = conn.sites.borrow_mut();
        let ord = match sites.last {
            Some((id, ord)) if id == *site => Some(ord),
            _ => sites.by_id.get(site).copied(),
        };
        if let Some(ord) = ord {
            sites.last = Some((*site, ord));
        }
        ord.map(|o| (o, !sites.trusted(conn, o)))
    };
    match cached {
        Some((ord, false)) => Ok(Some(ord)),
        _ => {
            let found = lookup_by_id(conn, site)?;
            if let Some(ord) = found {
                remember(conn, *site, ord, cached.is_some());
            }
            Ok(found)
        }
    }
}

/// The ordinal of `site`, adding it to `crr_sites` if new.
pub fn ordinal_or_insert(conn: &Conn, site: &SiteId) -> Result<u32> {
    if let Some(ord) = ordinal(conn, site)? {
        return Ok(ord);
    }
    let ord = conn.stmts.with(
        conn.db,
        Key::SiteInsert,
        || "INSERT INTO main.crr_sites(ordinal, site_id) VALUES ((SELECT max(ordinal) + 1 FROM main.crr_sites), ?1) RETURNING ordinal".into(),
        |s| {
            s.bind_blob(1, site)?;
            if !s.step()? {
                return Err(Error::new("crr_sites insert returned no ordinal"));
            }
            Ok(s.i64(0) as u32)
        },
    )?;
    remember(conn, *site, ord, true);
    Ok(ord)
}

/// The 16-byte id for an ordinal stored in a clock record.
pub fn site_id(conn: &Conn, ord: u32) -> Result<SiteId> {
    known_site_id(conn, ord)?.ok_or_else(|| Error::new(format!("corrupt clock data: unknown site ordinal {ord}")))
}

/// The 16-byte id for an ordinal, None if crr_sites has no such row.
fn known_site_id(conn: &Conn, ord: u32) -> Result<Option<SiteId>> {
    let cached = {
        let sites = conn.sites.borrow();
        sites.by_ordinal.get(&ord).filter(|_| sites.trusted(conn, ord)).copied()
    };
    if let Some(id) = cached {
        return Ok(Some(id));
    }
    let id = conn.stmts.with(conn.db, Key::SiteByOrdinal, || "SELECT site_id FROM main.crr_sites WHERE ordinal = ?1".into(), |s| {
        s.bind_i64(1, i64::from(ord))?;
        if !s.step()? {
            return Ok(None);
        }
        let b = s.bytes(0);
        SiteId::try_from(b).map(Some).map_err(|_| Error::new(format!("corrupt crr_sites row {ord}: site id of {} bytes", b.len())))
    })?;
    let Some(id) = id else { return Ok(None) };
    let fresh = conn.sites.borrow().is_fresh(ord);
    if !fresh {
        remember(conn, id, ord, false);
    }
    Ok(Some(id))
}

/// The ordinal of this replica's own site id: 0 unless the id was replaced (crr_new_site_id).
/// Read once per write transaction, and at every call outside one.
pub fn own_ordinal(conn: &Conn) -> Result<u32> {
    if let Some(o) = conn.txn.borrow().own_site {
        return Ok(o);
    }
    // The carry is only for write transactions (their end is seen, and resets Txn).
    if conn.txn.borrow().db_version.is_some() {
        if let Some(o) = super::txn::carried(conn)?.and_then(|c| c.own_site) {
            conn.txn.borrow_mut().own_site = Some(o);
            return Ok(o);
        }
    }
    let o = if super::schema::is_installed(conn)? { super::meta::get_i64(conn, "own_site_ordinal", 0)? as u32 } else { 0 };
    // Kept for the rest of the transaction only while one of our tables is in it: the end of
    // any other is not reported, and another connection may replace the id before the next.
    if conn.txn_joined.get() {
        conn.txn.borrow_mut().own_site = Some(o);
    }
    Ok(o)
}

/// This replica's site id.
pub fn own(conn: &Conn) -> Result<SiteId> {
    if !super::schema::is_installed(conn)? {
        // A new database gets its tables, and its site id, at the first function that needs
        // them (schema.rs): this is one.
        if conn.db.is_readonly() {
            return Err(never_written());
        }
        super::schema::install_to_write(conn)?;
        conn.tables.borrow_mut().invalidate();
    }
    let o = own_ordinal(conn)?;
    // (Only a missing row says so: any other error, an interrupt say, is passed on as it is.)
    known_site_id(conn, o)?.ok_or_else(never_written)
}

fn never_written() -> Error {
    Error::new("this database has no site id yet: sqlite-crr was never loaded on it by a connection that may write (it is read-only, or query_only)")
}

/// Gives this database a new random site id, for a file copied to make a new replica. The
/// history keeps its old attribution (entries name the old id's ordinal); writes from now on
/// carry the new id.
pub fn replace_own(conn: &Conn) -> Result<SiteId> {
    super::schema::install_to_write(conn)?;
    // One savepoint: both writes or neither (outside a transaction SQLite would otherwise
    // commit each nested write on its own). (The own site is read again at its next use:
    // `writing_settings`.)
    super::savepoint::in_savepoint(conn, "crr_new_site", || {
        super::txn::writing_settings(conn)?;
        let id = conn.db.random_bytes();
        let ord = ordinal_or_insert(conn, &id)?;
        super::meta::set(conn, "own_site_ordinal", &crate::core::value::Value::Integer(i64::from(ord)))?;
        // Another replica now: ATTACHed to the file it was copied from, it must not pass for it.
        super::triggers::renew_token(conn)?;
        Ok(id)
    })
}
