//! Reading crsql_changes (SPEC 6): one row per clock entry, in (db_version, seq) order.
//!
//! The clock index on `dbv` (a row's highest db_version) bounds the scan: every entry with
//! db_version > V belongs to a row whose dbv > V, so "changes since V" reads only rows touched
//! since V. Entries are collected compactly (40 bytes each, keys once per row), filtered and
//! sorted; values are read from the user table only when the `val` column is asked for.

use super::conn::Conn;
use super::{sites, ticks};
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

/// `Change::slot` of a sentinel entry.
const SENTINEL_SLOT: u32 = u32::MAX;

/// One change of a scan, kept small (40 bytes) because a full scan holds every change until
/// it is sorted: the row's key, table and causal length live once per row in `Scan::rows`,
/// the site as this database's ordinal (resolved to 16 bytes only when read).
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub db_version: i64,
    pub seq: i64,
    pub col_version: i64,
    row: u32,
    /// The site ordinal (see sites.rs).
    pub site: u32,
    slot: u32,
}

/// One clock row a scan emitted changes for: its table, causal length and packed key (a range
/// of `Scan::pks`).
#[derive(Debug, Clone, Copy)]
struct ScanRow {
    pk_start: usize,
    pk_len: u32,
    table: u32,
    cl: i64,
}

/// The result of one crsql_changes scan, in (db_version, seq) order.
#[derive(Debug, Default)]
pub struct Scan {
    tables: Vec<Rc<TableInfo>>,
    rows: Vec<ScanRow>,
    pks: Vec<u8>,
    pub changes: Vec<Change>,
    /// The current values (by slot) of the row whose `val` was read last, and the
    /// connection's total_changes then: a row's changes are usually adjacent in
    /// (db_version, seq) order, so one lookup serves all of them until anything is written.
    values: Option<(u32, i32, Vec<Value>)>,
}

impl Scan {
    fn row(&self, c: &Change) -> &ScanRow {
        &self.rows[c.row as usize]
    }
    pub fn table(&self, c: &Change) -> &TableInfo {
        &self.tables[self.row(c).table as usize]
    }
    pub fn pk(&self, c: &Change) -> &[u8] {
        let r = self.row(c);
        &self.pks[r.pk_start..r.pk_start + r.pk_len as usize]
    }
    pub fn cl(&self, c: &Change) -> i64 {
        self.row(c).cl
    }
    pub fn cid(&self, c: &Change) -> Cid {
        if c.slot == SENTINEL_SLOT {
            Cid::Sentinel
        } else {
            Cid::Slot(c.slot as usize)
        }
    }
    pub fn cid_text(&self, c: &Change) -> &str {
        match self.cid(c) {
            Cid::Sentinel => "-1",
            Cid::Slot(s) => self.table(c).columns.get(s).and_then(|n| n.as_deref()).unwrap_or_default(),
        }
    }

    /// Records a clock row; returns its index for the changes that follow.
    fn push_row(&mut self, table: u32, cl: i64, pk: &[u8]) -> Result<u32> {
        let row = u32::try_from(self.rows.len()).map_err(|_| Error::new("crsql_changes: too many rows in one scan (filter by db_version)"))?;
        let pk_len = u32::try_from(pk.len()).map_err(|_| Error::new("crsql_changes: packed key too large"))?;
        self.rows.push(ScanRow { pk_start: self.pks.len(), pk_len, table, cl });
        self.pks.extend_from_slice(pk);
        Ok(row)
    }
}

fn wanted(conn: &Conn, f: &Filter, e: &Entry) -> Result<bool> {
    if e.db_version < f.dbv_min || e.db_version > f.dbv_max {
        return Ok(false);
    }
    if f.site_eq.is_none() && f.site_ne.is_none() {
        return Ok(true);
    }
    let site: SiteId = sites::site_id(conn, e.site)?;
    Ok(f.site_eq.as_deref().is_none_or(|s| s == site) && f.site_ne.as_deref().is_none_or(|s| s != site))
}

/// Adds the wanted entries of one clock row to the scan.
fn emit(conn: &Conn, f: &Filter, scan: &mut Scan, table: u32, pk: &[u8], rc: &RowClock) -> Result<()> {
    let info = scan.tables[table as usize].clone();
    let cid_slot = match f.cid.as_deref() {
        None => None,
        Some("-1") => Some(SENTINEL_SLOT),
        Some(name) => match info.slot_of(name) {
            Some(s) => Some(s as u32),
            None => return Ok(()),
        },
    };
    let mut row = None;
    let mut push = |scan: &mut Scan, slot: u32, e: &Entry| -> Result<()> {
        if cid_slot.is_some_and(|c| c != slot) || !wanted(conn, f, e)? {
            return Ok(());
        }
        let row = match row {
            Some(r) => r,
            None => *row.insert(scan.push_row(table, rc.cl, pk)?),
        };
        scan.changes.push(Change { db_version: e.db_version, seq: e.seq, col_version: e.col_version, row, site: e.site, slot });
        Ok(())
    };
    if sentinel_visible(rc.cl, info.tracked_count()) {
        push(scan, SENTINEL_SLOT, &rc.sentinel)?;
    }
    for (slot, e) in rc.cells.iter().enumerate() {
        if let (Some(e), Some(Some(_))) = (e, info.columns.get(slot)) {
            push(scan, slot as u32, e)?;
        }
    }
    Ok(())
}

/// Reads the clock rows of one table that can hold wanted entries (one key, or the `dbv`
/// range) and emits their entries as they are stepped.
fn scan_table(conn: &Conn, f: &Filter, scan: &mut Scan, table: u32) -> Result<()> {
    let info = scan.tables[table as usize].clone();
    let layout = info.clock();
    let clock = info.clock_table();
    let mut key = Vec::new();
    let mut lookup = ticks::Lookup::new(conn);
    let mut read = |s: &mut crate::ffi::db::Stmt| -> Result<()> {
        while s.step()? {
            let rc = lookup.decode(s.i64(1), s.bytes(2), || format!("in {}", info.name))?;
            conn.clock_rows_read.set(conn.clock_rows_read.get() + 1);
            key.clear();
            layout.read_key(s, 0, &mut key);
            emit(conn, f, scan, table, &key, &rc)?;
        }
        Ok(())
    };
    if let Some(pk) = &f.pk {
        conn.stmts.with(conn.db, Key::ClockByPk(info.tid), || format!("SELECT pk, cl, clock FROM {clock} WHERE pk = ?1"), |s| {
            if !layout.bind_key(s, 1, pk)? {
                return Ok(()); // no clock row can have this key
            }
            read(s)
        })
    } else if f.dbv_min == i64::MIN && f.dbv_max == i64::MAX {
        // Everything: a plain scan of the clock, not the dbv index plus a seek per row.
        conn.stmts.with(conn.db, Key::ClockAll(info.tid), || format!("SELECT pk, cl, clock FROM {clock}"), read)
    } else {
        conn.stmts.with(
            conn.db,
            Key::ClockRange(info.tid),
            || format!("SELECT pk, cl, clock FROM {clock} WHERE dbv >= ?1 AND dbv <= ?2"),
            |s| {
                s.bind_i64(1, f.dbv_min)?;
                s.bind_i64(2, f.dbv_max)?;
                read(s)
            },
        )
    }
}

/// Every change matching `f`, in (db_version, seq) order.
pub fn collect(conn: &Conn, f: &Filter) -> Result<Scan> {
    let mut scan = Scan::default();
    if f.dbv_min > f.dbv_max {
        return Ok(scan);
    }
    scan.tables = tables::all(conn)?
        .iter()
        .filter(|t| f.table.as_deref().is_none_or(|name| name.eq_ignore_ascii_case(&t.name)))
        .cloned()
        .collect();
    for table in 0..scan.tables.len() {
        scan_table(conn, f, &mut scan, table as u32)?;
    }
    // In place (a full scan holds millions of changes); (row, slot) makes the order total.
    scan.changes.sort_unstable_by_key(|c| (c.db_version, c.seq, c.row, c.slot));
    Ok(scan)
}

impl Scan {
    /// The current value of change `i`'s cell (NULL for sentinels and rows that are gone),
    /// borrowed from the scan's row cache: the caller hands it to SQLite, which copies it.
    pub fn value(&mut self, conn: &Conn, i: usize) -> Result<&Value> {
        static NULL: Value = Value::Null;
        let c = self.changes[i];
        let Cid::Slot(slot) = self.cid(&c) else { return Ok(&NULL) };
        let written = conn.db.total_changes();
        if self.values.as_ref().is_none_or(|(row, w, _)| *row != c.row || *w != written) {
            let mut values = self.values.take().map(|(_, _, v)| v).unwrap_or_default();
            row_values(conn, self.table(&c), self.pk(&c), &mut values)?;
            self.values = Some((c.row, written, values));
        }
        Ok(self.values.as_ref().and_then(|(_, _, v)| v.get(slot)).unwrap_or(&NULL))
    }
}

/// The current values of a row's tracked columns, by slot, into `out` (left empty when the
/// row is gone; its buffer is reused from the previous row).
fn row_values(conn: &Conn, t: &TableInfo, pk: &[u8], out: &mut Vec<Value>) -> Result<()> {
    out.clear();
    let keys = pk_codec::decode(pk).map_err(|e| Error::new(format!("corrupt clock key in {}: {e}", t.name)))?;
    conn.stmts.with(
        conn.db,
        Key::RowValues(t.tid),
        || {
            let cols: Vec<String> = t.columns.iter().map(|c| c.as_deref().map_or_else(|| "NULL".to_string(), crate::core::ident::quote)).collect();
            let cols = if cols.is_empty() { "NULL".to_string() } else { cols.join(", ") };
            format!("SELECT {cols} FROM {} WHERE {}", t.quoted(), t.pk_where(1))
        },
        |s| {
            for (i, k) in keys.iter().enumerate() {
                s.bind_value(i + 1, k)?;
            }
            if s.step()? {
                out.extend((0..t.columns.len()).map(|i| s.value(i)));
            }
            Ok(())
        },
    )
}
