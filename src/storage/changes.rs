//! Reading crsql_changes (SPEC 6): one row per clock entry, in (db_version, seq) order.
//!
//! The clock index on `dbv` (a row's highest db_version) bounds the scan: every entry with
//! db_version > V belongs to a row whose dbv > V, so "changes since V" reads only rows touched
//! since V. Entries are collected, filtered and sorted; values are read from the user table
//! only when the `val` column is asked for.

use super::conn::Conn;
use super::sites;
use super::stmt_cache::Key;
use super::tables::{self, TableInfo};
use crate::core::merge::{sentinel_visible, SiteId};
use crate::core::pk_codec;
use crate::core::row_clock::{Entry, RowClock};
use crate::core::value::Value;
use crate::error::{Error, Result};
use std::rc::Rc;

/// Constraints pushed down from the query (all optional; SQLite re-checks every row).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub table: Option<String>,
    pub pk: Option<Vec<u8>>,
    pub cid: Option<String>,
    /// Inclusive db_version bounds.
    pub dbv_min: i64,
    pub dbv_max: i64,
    pub site_eq: Option<Vec<u8>>,
    pub site_ne: Option<Vec<u8>>,
}

impl Filter {
    pub fn all() -> Filter {
        Filter { dbv_min: i64::MIN, dbv_max: i64::MAX, ..Filter::default() }
    }
}

/// Which entry of a row: the sentinel or a tracked column's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cid {
    Sentinel,
    Slot(usize),
}

#[derive(Debug, Clone)]
pub struct Change {
    pub table: Rc<TableInfo>,
    pub pk: Rc<[u8]>,
    pub cid: Cid,
    pub col_version: i64,
    pub db_version: i64,
    pub site: SiteId,
    pub cl: i64,
    pub seq: i64,
}

impl Change {
    pub fn cid_text(&self) -> String {
        match self.cid {
            Cid::Sentinel => "-1".into(),
            Cid::Slot(s) => self.table.columns.get(s).cloned().flatten().unwrap_or_default(),
        }
    }
}

fn wanted(f: &Filter, e: &Entry, site: &SiteId) -> bool {
    e.db_version >= f.dbv_min
        && e.db_version <= f.dbv_max
        && f.site_eq.as_deref().is_none_or(|s| s == site)
        && f.site_ne.as_deref().is_none_or(|s| s != site)
}

fn emit(conn: &Conn, f: &Filter, table: &Rc<TableInfo>, pk: Rc<[u8]>, rc: &RowClock, out: &mut Vec<Change>) -> Result<()> {
    let cid_slot = match f.cid.as_deref() {
        None => None,
        Some("-1") => Some(Cid::Sentinel),
        Some(name) => match table.slot_of(name) {
            Some(s) => Some(Cid::Slot(s)),
            None => return Ok(()),
        },
    };
    let mut push = |cid: Cid, e: &Entry| -> Result<()> {
        if cid_slot.is_some_and(|c| c != cid) {
            return Ok(());
        }
        let site = sites::site_id(conn, e.site)?;
        if wanted(f, e, &site) {
            out.push(Change {
                table: table.clone(),
                pk: pk.clone(),
                cid,
                col_version: e.col_version,
                db_version: e.db_version,
                site,
                cl: rc.cl,
                seq: e.seq,
            });
        }
        Ok(())
    };
    if sentinel_visible(rc.cl, table.tracked_count()) {
        push(Cid::Sentinel, &rc.sentinel)?;
    }
    for (slot, e) in rc.cells.iter().enumerate() {
        if let (Some(e), Some(Some(_))) = (e, table.columns.get(slot)) {
            push(Cid::Slot(slot), e)?;
        }
    }
    Ok(())
}

fn scan_table(conn: &Conn, f: &Filter, table: &Rc<TableInfo>, out: &mut Vec<Change>) -> Result<()> {
    let clock = table.clock_table();
    let mut rows: Vec<(Rc<[u8]>, RowClock)> = Vec::new();
    let mut read = |s: &mut crate::ffi::db::Stmt| -> Result<()> {
        while s.step()? {
            let rc = RowClock::decode(s.i64(1), s.bytes(2)).map_err(|e| Error::new(format!("{e} in {}", table.name)))?;
            rows.push((Rc::from(s.bytes(0)), rc));
            conn.clock_rows_read.set(conn.clock_rows_read.get() + 1);
        }
        Ok(())
    };
    if let Some(pk) = &f.pk {
        conn.stmts.with(conn.db, Key::ClockByPk(table.tid), || format!("SELECT pk, cl, clock FROM {clock} WHERE pk = ?1"), |s| {
            s.bind_blob(1, pk)?;
            read(s)
        })?;
    } else {
        conn.stmts.with(
            conn.db,
            Key::ClockRange(table.tid),
            || format!("SELECT pk, cl, clock FROM {clock} WHERE dbv >= ?1 AND dbv <= ?2"),
            |s| {
                s.bind_i64(1, f.dbv_min)?;
                s.bind_i64(2, f.dbv_max)?;
                read(s)
            },
        )?;
    }
    for (pk, rc) in rows {
        emit(conn, f, table, pk, &rc, out)?;
    }
    Ok(())
}

/// Every change matching `f`, in (db_version, seq) order.
pub fn collect(conn: &Conn, f: &Filter) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    if f.dbv_min > f.dbv_max {
        return Ok(out);
    }
    for table in tables::all(conn)?.iter() {
        if f.table.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case(&table.name)) {
            continue;
        }
        scan_table(conn, f, table, &mut out)?;
    }
    out.sort_by_key(|c| (c.db_version, c.seq));
    Ok(out)
}

/// The current value of a change's cell (NULL for sentinels and rows that are gone).
pub fn value(conn: &Conn, c: &Change) -> Result<Value> {
    let Cid::Slot(slot) = c.cid else { return Ok(Value::Null) };
    let Some(Some(column)) = c.table.columns.get(slot) else { return Ok(Value::Null) };
    let keys = pk_codec::decode(&c.pk).map_err(|e| Error::new(format!("corrupt clock key in {}: {e}", c.table.name)))?;
    let t = &c.table;
    conn.stmts.with(
        conn.db,
        Key::CellValue(t.tid, slot),
        || format!("SELECT {} FROM {} WHERE {}", crate::core::ident::quote(column), t.quoted(), t.pk_where(1)),
        |s| {
            for (i, k) in keys.iter().enumerate() {
                s.bind_value(i + 1, k)?;
            }
            Ok(if s.step()? { s.value(0) } else { Value::Null })
        },
    )
}
