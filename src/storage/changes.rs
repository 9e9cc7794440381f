//! Reading crsql_changes (SPEC 6): one row per clock entry, in (db_version, seq) order.
//!
//! A clock row's `dbv` (its highest db_version) bounds the scan: every entry with a
//! db_version above V belongs to a row whose dbv is above V, so "changes since V" reads only
//! rows touched since V, found through the clock's dbv index or crr_dirty buckets
//! (`tables::Clock::rows_since`).
//! Entries are collected compactly (32 bytes each, keys once per row), filtered and sorted;
//! values are read from the user table only when the `val` column is asked for. A scan holds
//! at most SCAN_CAP changes; a read of more goes in parts (`Scan::prune`, `Reader::go_on`),
//! which hold together what one scan would have (`Scan::horizon`).
//! For a table keyed by its rowid the clock scan itself reads them (a LEFT JOIN, so no
//! statement runs per row), into a bounded buffer; other rows are looked up one at a time.
//!
//! A read left before its end (a LIMIT page of a sync) keeps its scan for the next read on the
//! connection (`Cached`): a later page whose filter asks for a part of the same range is cut
//! from it by binary search instead of scanning and sorting everything since its lower bound
//! again, so paging through a feed costs one scan, not one per page. The cached scan is
//! used only while nothing it read can have changed (`Stamp`, see `read`).
//!
//! A read since a version scans only the bucket clocks that crr_dirty says were written since,
//! found in one statement; a cursor reads the scan through a `Reader`, a range of it. A scan
//! holds at most `SCAN_CAP` changes: `Scan::prune` keeps the first ones and `Scan::more` says
//! where they end, and a `Reader` that gets there reads on with a scan of the changes after
//! that point, `Filter::after`, and, where anything was written since, before the
//! `Scan::horizon` noted at the first cut, where changes written later start: the parts hold
//! what one scan would have, so a loop that writes for each change it reads ends, and memory
//! stays flat for any feed.
//!
//! The kept scan lives in `Conn::feed_cache`. A window of versions right after the last read's
//! (`Conn::feed_last`) is collected on to the last version and kept the same way, so windows
//! cost one scan too. **Invariant** (in `read`, `Stamp`): the kept scan is used only while the
//! data version, the transaction's next seq, the rollback epoch and the CRR registry are what
//! they were when it was read. The buffer of values a rowid clock's scan packs holds at most 4
//! MiB (`PREFETCH_MAX`).

use super::conn::Conn;
use super::{sites, ticks};
use super::stmt_cache::Key;
use super::tables::{self, KeyLayout, TableInfo};
use crate::core::merge::{sentinel_visible, SiteId};
use crate::core::pk_codec;
use crate::core::row_clock::{Entry, RowClock};
use crate::core::value::{read_packed, ValueRef};
use crate::error::{Error, Result};
use crate::core::fast_hash::FastBuild;
use std::collections::HashSet;
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
    /// Inclusive seq bounds (any db_version: with `dbv_min` they say where a keyset page
    /// starts, `db_version = V AND seq > S`).
    pub seq_min: i64,
    pub seq_max: i64,
    pub site_eq: Option<Vec<u8>>,
    pub site_ne: Option<Vec<u8>>,
    /// Whether the query reads `val` (then a rowid-keyed table's scan reads the values too).
    pub values: bool,
    /// Only changes after this (db_version, seq): set by a read that goes on past the end of
    /// a scan that was cut short (`Scan::more`), never by a query.
    pub after: Option<(i64, i64)>,
    /// Only changes before this (db_version, seq): the read's `Scan::horizon`, set with `after`
    /// where something was written since the horizon was noted.
    pub before: Option<(i64, i64)>,
}

impl Filter {
    pub fn all() -> Filter {
        Filter { dbv_min: i64::MIN, dbv_max: i64::MAX, seq_min: i64::MIN, seq_max: i64::MAX, ..Filter::default() }
    }

    /// Whether the two name the same table, key, column and sites (their version and seq
    /// ranges, and `values`, may differ).
    fn same_names(&self, other: &Filter) -> bool {
        self.table == other.table && self.pk == other.pk && self.cid == other.cid && self.site_eq == other.site_eq && self.site_ne == other.site_ne
    }

    /// Whether `other` wants a part of what this filter wants: the same names but version and
    /// seq ranges inside this one's (then its changes are a range of this one's, which are
    /// sorted by (db_version, seq)). `values` says only how values are read; it does not
    /// matter.
    pub fn covers(&self, other: &Filter) -> bool {
        self.same_names(other)
            && self.dbv_min <= other.dbv_min
            && other.dbv_max <= self.dbv_max
            && self.seq_min <= other.seq_min
            && other.seq_max <= self.seq_max
            && self.after.is_none_or(|a| other.wants_only_after(a))
            && (self.before.is_none() || self.before == other.before)
    }

    /// Whether every change this filter wants comes after (db_version, seq) `at`.
    fn wants_only_after(&self, at: (i64, i64)) -> bool {
        self.after.is_some_and(|a| a >= at) || (self.dbv_min, self.seq_min) > at
    }

    /// Whether `next` is the window of versions right after this one, with the same names and
    /// seq range.
    pub fn followed_by(&self, next: &Filter) -> bool {
        self.same_names(next)
            && (self.seq_min, self.seq_max) == (next.seq_min, next.seq_max)
            && (self.after, next.after, self.before, next.before) == (None, None, None, None)
            && self.dbv_max != i64::MAX
            && next.dbv_min == self.dbv_max + 1
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

/// `ScanRow::values` of a row whose values the scan did not read.
const NO_VALUES: u32 = u32::MAX;

/// Most bytes of values one scan reads ahead (`Scan::packed`); the rows after are looked up
/// when read, so a scan of millions of rows stays small.
pub const PREFETCH_MAX: usize = 4 << 20;

/// Most changes one scan holds (`Scan::prune`, which keeps at most three quarters when it is full):
/// 32 MiB of changes (a power of two, so that their Vec does not double past it), and their
/// rows. A read of more goes on with a scan of the rest, which reads the clocks again (the
/// rows written since the last change held).
pub const SCAN_CAP: usize = 1 << 20;

/// One change of a scan, kept small (32 bytes) because a scan holds every change it keeps
/// (up to SCAN_CAP) until it is sorted: the row's key, table and causal length live once per row in `Scan::rows`,
/// the site as this database's ordinal (resolved to 16 bytes only when read), the seq in 32
/// bits (seqs count one transaction's entries from 0, and a transaction of more than 2^32
/// changes is not supported; `emit` refuses a larger seq).
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub db_version: i64,
    pub col_version: i64,
    seq: u32,
    row: u32,
    /// The site ordinal (see sites.rs).
    pub site: u32,
    slot: u32,
}

impl Change {
    #[inline]
    pub fn seq(&self) -> i64 {
        i64::from(self.seq)
    }

    /// The sort key of a scan, and where a filter's bounds cut it.
    #[inline]
    fn at(&self) -> (i64, i64) {
        (self.db_version, self.seq())
    }
}

/// One clock row a scan emitted changes for: its table, causal length and packed key (a range
/// of `Scan::pks`).
#[derive(Debug, Clone, Copy)]
struct ScanRow {
    pk_start: u32,
    pk_len: u32,
    table: u32,
    /// Where this row's values (one per slot) start in `Scan::packed`, or NO_VALUES.
    values: u32,
    cl: i64,
}

/// The result of one crsql_changes scan, in (db_version, seq) order.
#[derive(Debug, Default)]
pub struct Scan {
    tables: Vec<Rc<TableInfo>>,
    rows: Vec<ScanRow>,
    pks: Vec<u8>,
    pub changes: Vec<Change>,
    /// Values the clock scan read (`ValueRef::pack_into`), and the connection's
    /// total_changes when the scan ended: they are current only while it holds.
    packed: Vec<u8>,
    read_at: i32,
    /// Some((db_version, seq)) when the scan was cut short there (`prune`): it holds the
    /// changes its filter wants up to that point, and the rest are read by another scan, of
    /// the changes after it, when a reader gets there (`Reader::go_on`).
    more: Option<(i64, i64)>,
    /// Where the changes written after the scan end, set when it is first cut short
    /// (`horizon`): the scans of the rest read only the changes before it, as one scan would
    /// have. Without it a loop that wrote a CRR for each change it read (or an INSERT INTO a
    /// CRR ... SELECT FROM crsql_changes) would read its own writes in the next part, and
    /// more after them, without end.
    horizon: Option<(i64, i64)>,
}

impl Scan {
    #[inline]
    fn row(&self, c: &Change) -> &ScanRow {
        &self.rows[c.row as usize]
    }
    #[inline]
    pub fn table(&self, c: &Change) -> &TableInfo {
        &self.tables[self.row(c).table as usize]
    }
    #[inline]
    pub fn pk(&self, c: &Change) -> &[u8] {
        let r = self.row(c);
        &self.pks[r.pk_start as usize..r.pk_start as usize + r.pk_len as usize]
    }
    #[inline]
    pub fn cl(&self, c: &Change) -> i64 {
        self.row(c).cl
    }
    #[inline]
    pub fn cid(&self, c: &Change) -> Cid {
        if c.slot == SENTINEL_SLOT {
            Cid::Sentinel
        } else {
            Cid::Slot(c.slot as usize)
        }
    }
    #[inline]
    pub fn cid_text(&self, c: &Change) -> &str {
        match self.cid(c) {
            Cid::Sentinel => "-1",
            Cid::Slot(s) => self.table(c).columns.get(s).and_then(|n| n.as_deref()).unwrap_or_default(),
        }
    }

    /// Keeps the first `cap` changes in (db_version, seq) order (and any others of the last
    /// one's (db_version, seq)), or only those of the versions before the last one's where
    /// they are at least half of `cap`, and the rows they name; `more` then says where they end.
    /// A full read of a large feed so holds a bounded part of it at a time, and reads the
    /// clocks again for each further part: it held all of it until 2026-12-06, about 42 bytes
    /// a change (125 MiB for 3,000,000).
    fn prune(&mut self, cap: usize) {
        if self.changes.is_empty() {
            return;
        }
        let cap = cap.clamp(1, self.changes.len());
        self.changes.select_nth_unstable_by_key(cap - 1, |c| (c.db_version, c.seq, c.row, c.slot));
        let mut last = self.changes[cap - 1].at();
        // At the end of a version where that keeps at least half: the next part then starts
        // with a version, where the next keyset page (`db_version >= ?v`, or `db_version = ?v
        // AND seq > ?s` and then `db_version > ?v`) can be cut from it once kept. Cut inside a
        // version, the page that asked for the rest of that version scanned the part again.
        let before_last = self.changes.iter().filter(|c| c.db_version < last.0).count();
        if before_last > 0 && before_last >= cap / 2 {
            last = (last.0 - 1, i64::MAX);
        }
        self.changes.retain(|c| c.at() <= last);
        self.more = Some(last);
        // The rows (keys, values) only the dropped changes named go too: `to` is each kept
        // row's new index.
        const DROPPED: u32 = u32::MAX;
        let mut to = vec![DROPPED; self.rows.len()];
        for c in &self.changes {
            to[c.row as usize] = 0;
        }
        let (mut rows, mut pks, mut packed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in self.rows.iter().enumerate() {
            if to[i] == DROPPED {
                continue;
            }
            to[i] = rows.len() as u32;
            let values = if r.values == NO_VALUES {
                NO_VALUES
            } else {
                let (start, mut end) = (r.values as usize, r.values as usize);
                for _ in 0..self.tables[r.table as usize].columns.len() {
                    end = read_packed(&self.packed, end).1;
                }
                packed.extend_from_slice(&self.packed[start..end]);
                (packed.len() - (end - start)) as u32
            };
            rows.push(ScanRow { pk_start: pks.len() as u32, values, ..*r });
            pks.extend_from_slice(&self.pks[r.pk_start as usize..][..r.pk_len as usize]);
        }
        for c in &mut self.changes {
            c.row = to[c.row as usize];
        }
        (self.rows, self.pks, self.packed) = (rows, pks, packed);
    }

    /// Records a clock row; returns its index for the changes that follow.
    fn push_row(&mut self, table: u32, cl: i64, pk: &[u8]) -> Result<u32> {
        let row = u32::try_from(self.rows.len()).map_err(|_| Error::new("crsql_changes: too many rows in one scan (filter by db_version)"))?;
        let pk_len = u32::try_from(pk.len()).map_err(|_| Error::new("crsql_changes: packed key too large"))?;
        let pk_start = u32::try_from(self.pks.len() + pk.len()).map_err(|_| Error::new("crsql_changes: too many keys in one scan (filter by db_version)"))? - pk_len;
        self.rows.push(ScanRow { pk_start, pk_len, table, cl, values: NO_VALUES });
        self.pks.extend_from_slice(pk);
        Ok(row)
    }
}

fn wanted(conn: &Conn, f: &Filter, e: &Entry) -> Result<bool> {
    if e.db_version < f.dbv_min || e.db_version > f.dbv_max || e.seq < f.seq_min || e.seq > f.seq_max {
        return Ok(false);
    }
    if f.after.is_some_and(|a| (e.db_version, e.seq) <= a) || f.before.is_some_and(|b| (e.db_version, e.seq) >= b) {
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
        if cid_slot.is_some_and(|c| c != slot) || scan.more.is_some_and(|k| (e.db_version, e.seq) > k) || !wanted(conn, f, e)? {
            return Ok(());
        }
        let row = match row {
            Some(r) => r,
            None => *row.insert(scan.push_row(table, rc.cl, pk)?),
        };
        let seq = u32::try_from(e.seq).map_err(|_| Error::new(format!("crsql_changes: seq {} of db_version {} is out of range (one transaction's changes are counted in 32 bits; a larger seq is a corrupt clock record)", e.seq, e.db_version)))?;
        scan.changes.push(Change { db_version: e.db_version, col_version: e.col_version, seq, row, site: e.site, slot });
        Ok(())
    };
    if sentinel_visible(rc.cl, rc.has_cells()) {
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
    // Each row's record is decoded in the cells' allocation of the one before.
    let mut cells = Vec::new();
    // Values come with the clock rows of a rowid-keyed table (columns 3.. of the query),
    // unless the query would have more columns than SQLite allows a result
    // (SQLITE_LIMIT_COLUMN, 2,000 by default: "too many columns in result set" for a CRR of
    // 1,998 columns, until 2026-12-06); then each value is looked up.
    let with_values = f.values && info.key == KeyLayout::Rowid && f.pk.is_none() && 3 + info.columns.iter().flatten().count() <= conn.db.limit(crate::ffi::api::SQLITE_LIMIT_COLUMN);
    let cap = conn.scan_cap.get();
    let mut read = |s: &mut crate::ffi::db::Stmt| -> Result<()> {
        while s.step()? {
            let rc = lookup.decode_reusing(s.i64(1), s.bytes(2), || format!("in {}", info.name), std::mem::take(&mut cells))?;
            // Room for every entry of the row first (emit holds the index of the row it
            // emits, which `prune` moves): the scan never holds more than `cap` changes.
            if scan.changes.len() + rc.cells.len() + 1 > cap {
                if scan.horizon.is_none() && f.before.is_none() {
                    scan.horizon = Some(horizon(conn)?);
                }
                scan.prune(cap - cap / 4);
            }
            conn.clock_rows_read.set(conn.clock_rows_read.get() + 1);
            key.clear();
            layout.read_key(s, 0, &mut key);
            let rows = scan.rows.len();
            emit(conn, f, scan, table, &key, &rc)?;
            cells = rc.cells;
            if with_values && scan.rows.len() > rows && scan.packed.len() < PREFETCH_MAX {
                if let Some(row) = scan.rows.last_mut() {
                    row.values = scan.packed.len() as u32;
                }
                info.pack_by_slot(s, 3, &mut scan.packed);
            }
        }
        Ok(())
    };
    // "c.pk, c.cl, c.clock" and, with values, the row's tracked columns by slot, from `from`.
    let select = |from: &str| {
        if !with_values {
            return format!("SELECT c.pk, c.cl, c.clock FROM {from}");
        }
        let cols: String = info.live_columns("u.").iter().map(|c| format!(", {c}")).collect();
        format!("SELECT c.pk, c.cl, c.clock{cols} FROM {from} LEFT JOIN {} AS u ON u.{} = c.pk", info.quoted(), info.pk_list())
    };
    if let Some(pk) = &f.pk {
        conn.stmts.with(conn.db, Key::ClockByPk(info.tid), || format!("SELECT pk, cl, clock FROM {clock} WHERE pk = ?1"), |s| {
            if !layout.bind_key(s, 1, pk)? {
                return Ok(()); // no clock row can have this key
            }
            read(s)
        })
    } else if f.dbv_min == i64::MIN {
        // Everything, or everything up to a db_version: a plain scan of the clock, not the dbv
        // index plus a seek per row. A clock row's dbv is the highest db_version among its
        // entries, so only a lower bound can use it: a row written at 3 and again at 7 has
        // dbv 7 and its entry at 3 is wanted by `db_version <= 5` (`wanted` checks each entry).
        conn.stmts.with(conn.db, Key::ClockAll(info.tid, with_values), || select(&format!("{clock} AS c")), read)
    } else {
        conn.stmts.with(
            conn.db,
            Key::ClockRange(info.tid, with_values),
            || format!("{} WHERE c.dbv >= ?1", select(&layout.rows_since(1, super::dirty::has_tails(conn)))),
            |s| {
                s.bind_i64(1, f.dbv_min)?;
                read(s)
            },
        )
    }
}

/// The (db_version, seq) every change written from now on comes at or after: this
/// transaction's next seq at its db_version, or the first seq of the next db_version.
fn horizon(conn: &Conn) -> Result<(i64, i64)> {
    let (dbv, seq) = {
        let t = conn.txn.borrow();
        (t.db_version, t.seq)
    };
    Ok(match dbv {
        Some(d) => (d, seq),
        None => (super::txn::max_db_version(conn)?.saturating_add(1), i64::MIN),
    })
}

/// Every change matching `f`, in (db_version, seq) order, read from the clocks of `registry`
/// (the CRRs the read's `Stamp` holds).
fn collect(conn: &Conn, f: &Filter, registry: &[Rc<TableInfo>]) -> Result<Scan> {
    let mut scan = Scan::default();
    if f.dbv_min > f.dbv_max || f.seq_min > f.seq_max {
        return Ok(scan);
    }
    scan.tables = registry
        .iter()
        .filter(|t| f.table.as_deref().is_none_or(|name| name.eq_ignore_ascii_case(&t.name)))
        .cloned()
        .collect();
    for t in &scan.tables {
        t.check_columns(conn)?;
    }
    let written = bucket_clocks_written_since(conn, f, &scan.tables)?;
    for table in 0..scan.tables.len() {
        let t = &scan.tables[table];
        if t.buckets && written.as_ref().is_some_and(|w| !w.contains(&t.tid)) {
            continue;
        }
        scan_table(conn, f, &mut scan, table as u32)?;
    }
    // In place (a full scan holds millions of changes); (row, slot) makes the order total.
    scan.changes.sort_unstable_by_key(|c| (c.db_version, c.seq, c.row, c.slot));
    scan.read_at = conn.db.total_changes();
    Ok(scan)
}

/// For a read of the changes since a db_version, of bucket clocks: those with a
/// crr_dirty entry at that version or later, in one statement (a seek each), so that the
/// others are not scanned at all: by the invariant of storage/dirty.rs none of their rows was
/// written since. None where every table is to be scanned anyway. (A poll that found nothing
/// new ran a statement per CRR: 0.56 ms with 400 CRRs, until 2026-12-06.)
fn bucket_clocks_written_since(conn: &Conn, f: &Filter, tables: &[Rc<TableInfo>]) -> Result<Option<HashSet<i64, FastBuild>>> {
    if f.pk.is_some() || f.dbv_min == i64::MIN || !tables.iter().any(|t| t.buckets) {
        return Ok(None);
    }
    super::dirty::tables_written_since(conn, f.dbv_min).map(Some)
}

/// A scan kept for the next read on the connection (`Conn::feed_cache`): the filter it was
/// collected for and the state of the database then.
pub struct Cached {
    filter: Filter,
    stamp: Stamp,
    scan: Rc<Scan>,
}

/// What a scan of the clocks depends on, read before it is collected; a later read may reuse
/// the scan only while all of it is unchanged (`read`):
/// - the database's data version (SQLITE_FCNTL_DATA_VERSION): it moves at every commit of
///   this connection and at the first read after another connection's or process's commit;
/// - the open transaction's next seq (`Txn::seq`): every clock entry written (by the triggers'
///   record functions, merges, the Rust tracking path, backfills and alters) takes a new seq
///   before its row is written, and so does a delete (its sentinel), so no write in the
///   transaction, even one of the statement running now, leaves it where it was;
/// - the rollback epoch (`Conn::rollback_epoch`): it moves at every rollback reported to us,
///   which undoes entries but leaves the seq where it was, and at every transaction end,
///   which starts the seq over (a transaction that wrote an entry has joined, so its
///   rollbacks are reported);
/// - the CRR registry (`tables::all`, reloaded at every schema change, and after a rollback):
///   DDL removes clock entries without seqs (a dropped CRR, crsql_as_table, DROP COLUMN) or
///   renames a table.
///
/// Writes to other tables move none of them: a transport that records its progress between
/// pages, in the same write transaction, keeps the scan.
struct Stamp {
    data_version: u32,
    seq: i64,
    epoch: u64,
    registry: Rc<Vec<Rc<TableInfo>>>,
}

impl Stamp {
    fn now(conn: &Conn) -> Result<Stamp> {
        let registry = tables::all(conn)?;
        Ok(Stamp { data_version: conn.db.data_version(), seq: conn.txn.borrow().seq, epoch: conn.rollback_epoch.get(), registry })
    }

    fn same(&self, other: &Stamp) -> bool {
        (self.data_version, self.seq, self.epoch) == (other.data_version, other.seq, other.epoch) && Rc::ptr_eq(&self.registry, &other.registry)
    }
}

/// One read of crsql_changes (a cursor's): the changes `pos..end` of a scan, in order, and
/// when the scan was cut short before the end of what `want` wants, the next scan's after it.
#[derive(Default)]
pub struct Reader {
    scan: Rc<Scan>,
    pos: usize,
    end: usize,
    want: Filter,
    /// The filter the scan was collected for and the state it was collected at, when it was
    /// collected here (None when it came from the cache).
    fresh: Option<(Filter, Stamp)>,
    /// The current values (by slot, packed as `Scan::packed` is) of the row whose `val` was
    /// read last, and the connection's total_changes then: a row's changes are usually
    /// adjacent in (db_version, seq) order, so one lookup serves all of them until anything
    /// is written.
    values: Option<(u32, i32, Vec<u8>)>,
}

/// Every change matching `f`, in (db_version, seq) order: cut from the connection's cached
/// scan when that covers `f` and is still current, else collected.
///
/// Current means: nothing the scan depends on has moved since it was collected (`Stamp`): no
/// commit (data version), no clock entry written (the transaction's seq), no rollback, no
/// schema change. Inside a write transaction too: its uncommitted writes move the seq, and
/// its rollbacks the epoch.
///
/// A window of versions right after the last read's (a transport reading versions in
/// batches) is collected on to the last version: scanning every row written since its lower
/// bound costs the same, and the windows after it are then cut from this scan.
pub fn read(conn: &Conn, f: &Filter) -> Result<Reader> {
    let last = conn.feed_last.replace(Some(f.clone()));
    let wider = last.is_some_and(|l| l.followed_by(f)).then(|| Filter { dbv_max: i64::MAX, ..f.clone() });
    let mut r = read_wider(conn, f, wider)?;
    r.go_on(conn)?;
    Ok(r)
}

/// The changes `f` wants, cut from the cached scan where that serves them, else from a scan
/// collected for `wider` (a filter that wants all `f` wants, and more), or for `f`.
fn read_wider(conn: &Conn, f: &Filter, wider: Option<Filter>) -> Result<Reader> {
    super::merge::write_held_back(conn)?;
    let stamp = Stamp::now(conn)?;
    {
        let mut cache = conn.feed_cache.borrow_mut();
        if cache.as_ref().is_some_and(|c| !c.stamp.same(&stamp)) {
            *cache = None;
        }
        // (Not a scan cut short before what `f` wants: the read would go on after it.)
        if let Some(c) = cache.as_ref().filter(|c| c.filter.covers(f) && !c.scan.more.is_some_and(|k| f.wants_only_after(k))) {
            return Ok(cut(c.scan.clone(), f, None));
        }
    }
    let wide = wider.unwrap_or_else(|| f.clone());
    let scan = Rc::new(collect(conn, &wide, &stamp.registry)?);
    Ok(cut(scan, f, Some((wide, stamp))))
}

/// A reader of the changes of `scan` (sorted, a superset of what `f` wants) that `f` wants:
/// from (dbv_min, seq_min) (after `after`) to (dbv_max, seq_max). Changes of the versions
/// between them with a seq outside the seq bounds stay in the range: SQLite checks every row
/// again.
fn cut(scan: Rc<Scan>, f: &Filter, fresh: Option<(Filter, Stamp)>) -> Reader {
    let changes = &scan.changes;
    let pos = changes.partition_point(|ch| ch.at() < (f.dbv_min, f.seq_min) || f.after.is_some_and(|a| ch.at() <= a));
    let end = pos + changes[pos..].partition_point(|ch| ch.at() <= (f.dbv_max, f.seq_max));
    Reader { scan, pos, end, want: f.clone(), fresh, values: None }
}

impl Reader {
    /// The change under the cursor, None past the end.
    #[inline]
    pub fn current(&self) -> Option<&Change> {
        if self.pos < self.end {
            self.scan.changes.get(self.pos)
        } else {
            None
        }
    }

    #[inline]
    pub fn scan(&self) -> &Scan {
        &self.scan
    }

    /// Moves to the next change; true when that is past the end of the range, where the
    /// caller must `go_on` (kept apart so that a step inside the range runs no more code).
    #[inline]
    pub fn advance(&mut self) -> bool {
        self.pos += 1;
        self.pos >= self.end
    }

    /// At the end of a scan cut short (`Scan::more`) before the end of what `want` wants, reads
    /// on: the changes after the cut, a scan of their own (`read_wider`, which leaves alone
    /// the last read a window of versions would follow, `Conn::feed_last`), until there is a
    /// change or nothing more. (A part may hold none that `want` wants: a kept scan cut at the end of a
    /// version, asked for what follows inside that version. Each part's cut lies beyond the
    /// last's: a kept scan serves the rest only if its cut does, `read_wider`.)
    pub fn go_on(&mut self, conn: &Conn) -> Result<()> {
        while self.pos >= self.end && self.end == self.scan.changes.len() {
            let Some(more) = self.scan.more.filter(|&k| (self.want.dbv_max, self.want.seq_max) > k) else {
                return Ok(());
            };
            let bound = self.want.before.or(self.scan.horizon);
            // Where nothing was written since the bound was noted, the next part needs none:
            // it is then what a read starting there would collect, and kept (`finish`), it
            // serves the next pages of a keyset paging too.
            let before = match bound {
                Some(b) if horizon(conn)? != b => Some(b),
                _ => None,
            };
            let rest = Filter { after: Some(more), before, dbv_min: self.want.dbv_min.max(more.0), ..self.want.clone() };
            // Collected for every version and seq after the cut, as windows are (`read`): it
            // costs the same scan, and kept, it serves the next pages, whatever their upper
            // bounds (the recommended keyset page's `db_version = ?v AND seq > ?s` wants one
            // version, and the query for the versions after it scanned the part again).
            let wider = Filter { dbv_max: i64::MAX, seq_min: i64::MIN, seq_max: i64::MAX, ..rest.clone() };
            // This scan goes first (read to its end, it is not kept), so that two are not held.
            let done = std::mem::take(self);
            let want = Filter { before: bound, ..done.want.clone() };
            done.finish(conn);
            *self = read_wider(conn, &rest, Some(wider))?;
            self.want = want;
        }
        Ok(())
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// The read is over. Left before the end of a scan it collected (a LIMIT, an EXISTS, a
    /// window read on to the last version), it keeps the scan for the next read (the next
    /// page). A read of the cached scan to its very end (the last page) frees it: the pages
    /// are done.
    pub fn finish(self, conn: &Conn) {
        match self.fresh {
            Some((filter, stamp)) if self.pos < self.scan.changes.len() => {
                *conn.feed_cache.borrow_mut() = Some(Cached { filter, stamp, scan: self.scan });
            }
            Some(_) => {}
            None if self.pos >= self.scan.changes.len() => {
                let mut cache = conn.feed_cache.borrow_mut();
                if cache.as_ref().is_some_and(|c| Rc::ptr_eq(&c.scan, &self.scan)) {
                    *cache = None;
                }
            }
            None => {}
        }
    }

    /// The current value of the current change's cell (NULL for sentinels and rows that are
    /// gone), borrowed from what the scan read or from the row cache: the caller hands it to
    /// SQLite, which copies it.
    pub fn value(&mut self, conn: &Conn) -> Result<ValueRef<'_>> {
        let Some(&c) = self.current() else { return Err(Error::new("val read past the last row")) };
        let scan = &*self.scan;
        let Cid::Slot(slot) = scan.cid(&c) else { return Ok(ValueRef::Null) };
        let written = conn.db.total_changes();
        let start = scan.row(&c).values;
        if start != NO_VALUES && written == scan.read_at {
            // The row's values are one per slot, in slot order (emit only sends slots it has).
            let mut at = start as usize;
            for _ in 0..slot {
                at = read_packed(&scan.packed, at).1;
            }
            return Ok(read_packed(&scan.packed, at).0);
        }
        if self.values.as_ref().is_none_or(|(row, w, _)| *row != c.row || *w != written) {
            let mut values = self.values.take().map(|(_, _, v)| v).unwrap_or_default();
            row_values(conn, scan.table(&c), scan.pk(&c), &mut values)?;
            self.values = Some((c.row, written, values));
        }
        let Some((_, _, packed)) = self.values.as_ref() else { return Ok(ValueRef::Null) };
        let mut at = 0;
        for _ in 0..slot {
            at = read_packed(packed, at).1;
        }
        Ok(read_packed(packed, at).0)
    }
}

/// The current values of a row's tracked columns, by slot, packed into `out` as they are
/// (`ValueRef::pack_into`: text keeps its bytes; left empty when the row is gone, which reads
/// as NULL; its buffer is reused from the previous row).
fn row_values(conn: &Conn, t: &TableInfo, pk: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let keys = pk_codec::decode(pk).map_err(|e| Error::new(format!("corrupt clock key in {}: {e}", t.name)))?;
    conn.stmts.with(
        conn.db,
        Key::RowValues(t.tid),
        || {
            let cols = t.live_columns("");
            let cols = if cols.is_empty() { "NULL".to_string() } else { cols.join(", ") };
            format!("SELECT {cols} FROM {} WHERE {}", t.quoted(), t.pk_where(1))
        },
        |s| {
            for (i, k) in keys.iter().enumerate() {
                s.bind_value(i + 1, k)?;
            }
            if s.step()? {
                t.pack_by_slot(s, 0, out);
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{Change, Filter};

    /// A scan holds every change it keeps until it is sorted: 32 bytes each.
    #[test]
    fn a_change_of_a_scan_takes_32_bytes() {
        assert_eq!(std::mem::size_of::<Change>(), 32);
    }

    fn range(dbv_min: i64, dbv_max: i64) -> Filter {
        Filter { dbv_min, dbv_max, ..Filter::all() }
    }

    #[test]
    fn a_filter_covers_the_parts_of_its_ranges_with_the_same_names() {
        let since = range(5, i64::MAX);
        assert!(since.covers(&range(5, i64::MAX)));
        assert!(since.covers(&range(9, 12)));
        assert!(since.covers(&Filter { seq_min: 3, values: true, ..range(7, 7) }));
        assert!(!since.covers(&range(4, i64::MAX)), "a lower bound below the kept one");
        assert!(!range(5, 10).covers(&range(6, 11)), "an upper bound above the kept one");
        assert!(!Filter { seq_min: 2, ..since.clone() }.covers(&since), "changes below the kept seq range");
        assert!(!since.covers(&Filter { table: Some("t".into()), ..range(6, 9) }));
        assert!(!since.covers(&Filter { site_ne: Some(vec![1]), ..range(6, 9) }));
        assert!(!Filter { cid: Some("a".into()), ..since.clone() }.covers(&range(6, 9)));
    }

    /// A scan of the changes after (db_version, seq) `a` (the rest of a read cut short) covers
    /// only reads that want nothing at or before `a`.
    #[test]
    fn a_scan_of_the_rest_covers_only_reads_of_the_rest() {
        let rest = Filter { after: Some((5, 3)), ..range(5, i64::MAX) };
        assert!(rest.covers(&Filter { after: Some((5, 3)), ..range(5, i64::MAX) }));
        assert!(rest.covers(&Filter { after: Some((7, 0)), ..range(5, 9) }));
        assert!(rest.covers(&range(6, 9)), "versions after a's");
        assert!(rest.covers(&Filter { seq_min: 4, ..range(5, 9) }), "a's version, seqs after a's");
        assert!(!rest.covers(&range(5, 9)), "a's version from seq 0");
        assert!(!rest.covers(&Filter { seq_min: 3, ..range(5, 9) }), "a itself");
        assert!(!rest.covers(&Filter { after: Some((5, 2)), ..range(5, 9) }));
        assert!(range(1, i64::MAX).covers(&rest), "a whole scan covers the rest of itself");
        assert!(!Filter { after: Some((1, 1)), ..range(1, 10) }.followed_by(&range(11, 20)));
        assert!(!range(1, 10).followed_by(&Filter { after: Some((11, 0)), ..range(11, 20) }));
    }

    #[test]
    fn a_window_is_followed_by_the_one_after_it() {
        assert!(range(1, 10).followed_by(&range(11, 20)));
        assert!(range(1, 10).followed_by(&range(11, i64::MAX)));
        assert!(!range(1, 10).followed_by(&range(12, 20)), "a gap");
        assert!(!range(1, 10).followed_by(&range(10, 20)), "an overlap");
        assert!(!range(1, i64::MAX).followed_by(&range(i64::MIN, 5)), "no upper bound to follow");
        assert!(!range(1, 10).followed_by(&Filter { pk: Some(vec![1]), ..range(11, 20) }));
        assert!(!range(1, 10).followed_by(&Filter { seq_min: 1, ..range(11, 20) }));
    }
}
