//! Recording local writes (SPEC 4). The AFTER triggers that crsql_as_crr installs write the
//! clock row themselves and call the `*_record` functions here (through crr_internal_*) for
//! the record to store; a key change, or a live row without a live clock, goes through
//! `on_update` instead. `on_insert` / `on_delete` / `record_cell` serve backfill, commit_alter
//! and that fallback.
//!
//! A transaction's fresh rows of one slot list differ only in their seqs while its tick is
//! steady (`txn::steady_tick`), so after the first such record the rest are spliced from a
//! template (`core::row_clock::SeqTemplate`, kept in `Txn::fresh`). The triggers' per-row
//! record functions (`fresh_record`, `update_record`, `insert_over_record`, `tombstone_record`)
//! build their record in a `RecordBuf` that their registration keeps across calls
//! (`ffi::functions`, `Func::Record`): no allocation per row. The update trigger tests each
//! column once, in its WHEN clause (`crr_internal_changed`), which holds the flags for its
//! body's `update_record` (`HeldFlags`): SQLite compiles the trigger into every UPDATE of the
//! table, and a second copy of the tests made preparing one up to twice as dear on wide tables.

use super::conn::{Conn, MergeWrite};
use super::{sites, ticks};
use super::stmt_cache::Key;
use super::tables::{self, Clock, KeyLayout};
use super::txn::{self, ClockMode};
use crate::core::merge::{is_alive, sentinel_site_wins, sentinel_visible};
use crate::core::row_clock::{Entry, RowClock, SeqTemplate};
use crate::core::value::{Value, ValueRef};
use crate::core::{pk_codec, table_shape};
use crate::error::{Error, Result};

/// Refuses a key that has a twin (`table_shape::key_twin`) as a new row's key: what the
/// insert trigger checks in SQL, for the keys Rust records (key changes, backfill, alter).
fn refuse_key_twins(conn: &Conn, clock: Clock, pk: &[u8]) -> Result<()> {
    // Only a REAL can have a twin, and a packed REAL's header is the byte 0x02: a blob without
    // one is not decoded (crsql_as_crr's backfill of 20,000 integer keys: +466 instructions a
    // row decoded, +47 this way), and the registry is asked only for a REAL.
    if clock.key == KeyLayout::Rowid || !pk.contains(&0x02) {
        return Ok(());
    }
    let keys = pk_codec::decode(pk).map_err(|e| Error::new(format!("bad key blob: {e}")))?;
    if !keys.iter().any(|k| matches!(k, Value::Real(_))) {
        return Ok(());
    }
    let Some(table) = tables::by_tid(conn, clock.tid)? else { return Ok(()) };
    match table_shape::key_twin_in(&keys, table.key_affinities(conn)?, &table.pk) {
        Some(reason) => Err(Error::new(format!("table \"{}\": {reason}", table.name))),
        None => Ok(()),
    }
}

/// The argument a tracking trigger passes crr_internal_tracking: the database's token
/// (`meta::token`, 31 bits) above the table id (below 2^32). One integer rather than two
/// arguments: a second one cost every tracked or merged row about 200 instructions (W6's
/// apply step +1.1%), this costs none measurable. Triggers of earlier builds pass the table
/// id alone, which is below 2^32: `check_legacy_caller` takes it only from the main
/// database's own such triggers.
pub fn tracking_arg(tid: i64, token: i64) -> i64 {
    debug_assert!((0..1 << 32).contains(&tid) && (1..1 << 31).contains(&token));
    (token << 32) | tid
}

/// The table id in a tracking trigger's argument, after checking the token it carries, if
/// any (`tracking_arg`).
#[inline]
pub fn checked_tid(conn: &Conn, arg: i64) -> Result<i64> {
    if arg >> 32 != 0 {
        check_token(conn, arg >> 32)?;
    } else {
        check_legacy_caller(conn, arg, format!("crr_internal_tracking({arg})"))?;
    }
    Ok(arg & 0xFFFF_FFFF)
}

/// Refuses a call that only an earlier build's trigger makes (`call`, the text of it: a bare
/// table id to crr_internal_tracking, or format 1's crr_internal_insert / _delete, which
/// record into the clock of table `tid`) unless a trigger of the main database makes it.
/// Otherwise it comes from the trigger of an ATTACHed database that no schema-5 build has
/// opened, which `check_token` cannot tell apart: format 1's recorded into this database's
/// clock of the same table id. The calls found are kept for the schema cookie they were
/// found at; a call not found is looked for again before it is refused.
#[cold]
pub fn check_legacy_caller(conn: &Conn, tid: i64, call: String) -> Result<()> {
    let cookie = tables::schema_cookie(conn)?;
    {
        let known = conn.legacy_callers.borrow();
        if known.0 == Some(cookie) && known.1.contains(&call) {
            return Ok(());
        }
    }
    let mut s = conn.db.prepare("SELECT 1 FROM main.sqlite_schema WHERE type = 'trigger' AND name GLOB ?1 AND instr(sql, ?2) > 0", false)?;
    s.bind_text(1, &format!("crr_{tid}_*"))?;
    s.bind_text(2, &call)?;
    if !s.step()? {
        return Err(foreign_trigger());
    }
    let mut known = conn.legacy_callers.borrow_mut();
    if known.0 != Some(cookie) {
        *known = (Some(cookie), Vec::new());
    }
    known.1.push(call);
    Ok(())
}

fn foreign_trigger() -> Error {
    Error::new(
        "this write is to a CRR of another database than this connection's main one (an ATTACHed replica): \
         sqlite-crr records writes to the main database's CRRs only (attached ones: not supported yet); \
         write it on a connection that opens that database as main",
    )
}

/// Refuses a tracking trigger whose database token is not the main database's
/// (`meta::token`): the trigger of a CRR in an ATTACHed database.
#[inline]
fn check_token(conn: &Conn, token: i64) -> Result<()> {
    if conn.token.get() == Some(token) {
        return Ok(());
    }
    check_stored_token(conn, token)
}

/// `check_token` when the cached token is not the trigger's (kept out of line: every tracked
/// row passes the test above).
#[cold]
fn check_stored_token(conn: &Conn, token: i64) -> Result<()> {
    // Read again: the token may have changed since the cache was filled (another
    // connection's crr_new_site_id, a rollback, a restore through the backup API).
    if super::meta::stored_token(conn)? == token {
        return Ok(());
    }
    if conn.replaced_token.get() == Some(token) {
        return Err(Error::new(
            "this connection's database was replaced under it by another database with the same schema cookie \
             (sqlite3_rsync does so), and SQLite still runs the replaced database's triggers: open the connection \
             again to write its CRRs",
        ));
    }
    Err(foreign_trigger())
}

/// Reads a row's clock record.
pub fn load(conn: &Conn, clock: Clock, pk: &[u8]) -> Result<Option<RowClock>> {
    load_reusing(conn, clock, pk, &mut Vec::new())
}

/// `load`, the record's cells decoded in the allocation of `cells` (taken when there is a
/// record; what it held is dropped).
pub fn load_reusing(conn: &Conn, clock: Clock, pk: &[u8], cells: &mut Vec<Option<Entry>>) -> Result<Option<RowClock>> {
    conn.stmts.with(
        conn.db,
        Key::ClockGet(clock.tid),
        || format!("SELECT cl, clock FROM {} WHERE pk = ?1", clock.table()),
        |s| {
            if !clock.bind_key(s, 1, pk)? || !s.step()? {
                return Ok(None);
            }
            decode_reusing(conn, clock.tid, s.i64(0), s.bytes(1), std::mem::take(cells)).map(Some)
        },
    )
}

/// The error for a key that a rowid clock cannot hold (merge validation refuses these first).
fn not_a_rowid(clock: Clock) -> Error {
    Error::new(format!("table id {}: its clock is keyed by rowid, and this key is not one integer", clock.tid))
}

/// Writes a row's clock record; `old` is the `dbv` of the record it replaces, if any (see
/// `mark_bucket`).
pub fn save(conn: &Conn, clock: Clock, pk: &[u8], rc: &RowClock, old: Option<i64>) -> Result<()> {
    mark_bucket(conn, clock, pk, rc.max_db_version(), old)?;
    let tid = clock.tid;
    conn.stmts.with(
        conn.db,
        Key::ClockPut(tid),
        || {
            // A packed-key bucket clock's row marks its bucket as it is written (its rowid is
            // the clock's: storage/dirty.rs), as the triggers' writes do.
            let (dbv, new_dbv) = if packed_buckets(clock) {
                (format!("crr_internal_grow({tid}, ?3)"), format!("crr_internal_mark({tid}, rowid, dbv, excluded.dbv)"))
            } else {
                ("?3".to_string(), "excluded.dbv".to_string())
            };
            format!(
                "INSERT INTO {} (pk, cl, dbv, clock) VALUES (?1, ?2, {dbv}, ?4) \
                 ON CONFLICT(pk) DO UPDATE SET cl = excluded.cl, dbv = {new_dbv}, clock = excluded.clock",
                clock.table()
            )
        },
        |s| {
            if !clock.bind_key(s, 1, pk)? {
                return Err(not_a_rowid(clock));
            }
            s.bind_i64(2, rc.cl)?;
            s.bind_i64(3, rc.max_db_version())?;
            with_encoded(conn, rc, |record| s.run_with_borrowed(4, &ValueRef::Blob(record)))
        },
    )?;
    if packed_buckets(clock) && !conn.txn_joined.get() {
        // While the extension is set up nothing reports the transaction's end: the new row is
        // marked now (dirty::flush, which then forgets the range).
        super::dirty::flush(conn)?;
    }
    Ok(())
}

/// Whether `clock` is a packed-key clock that marks crr_dirty buckets of its own rowids.
fn packed_buckets(clock: Clock) -> bool {
    clock.buckets && clock.key == KeyLayout::Packed
}

/// Writes the record of a row whose clock row exists with `old_dbv` as its `dbv`: a plain
/// UPDATE, which leaves the `dbv` index alone when the row's db_version stays the same (the
/// second and later merged cells of a row in one transaction).
pub fn save_existing(conn: &Conn, clock: Clock, pk: &[u8], rc: &RowClock, old_dbv: i64) -> Result<()> {
    let dbv = rc.max_db_version();
    if dbv != old_dbv {
        mark_bucket(conn, clock, pk, dbv, Some(old_dbv))?;
    }
    let tid = clock.tid;
    let (key, set) = match (dbv == old_dbv, packed_buckets(clock)) {
        (true, _) => (Key::ClockUpdate(tid), String::new()),
        (false, false) => (Key::ClockUpdateDbv(tid), ", dbv = ?4".to_string()),
        // (Marks the row's bucket, see `save`.)
        (false, true) => (Key::ClockUpdateDbv(tid), format!(", dbv = crr_internal_mark({tid}, rowid, dbv, ?4)")),
    };
    conn.stmts.with(
        conn.db,
        key,
        || format!("UPDATE {} SET cl = ?2, clock = ?3{set} WHERE pk = ?1", clock.table()),
        |s| {
            if !clock.bind_key(s, 1, pk)? {
                return Err(not_a_rowid(clock));
            }
            s.bind_i64(2, rc.cl)?;
            if dbv != old_dbv {
                s.bind_i64(4, dbv)?;
            }
            with_encoded(conn, rc, |record| s.run_with_borrowed(3, &ValueRef::Blob(record)))
        },
    )
}

/// A rowid clock's row `pk` is about to be stored with `dbv`, having had `old` (storage/dirty.rs).
/// (A packed-key bucket clock's row marks its bucket in the statement that stores it.)
fn mark_bucket(conn: &Conn, clock: Clock, pk: &[u8], dbv: i64, old: Option<i64>) -> Result<()> {
    if !clock.buckets || clock.key == KeyLayout::Packed {
        return Ok(());
    }
    let key = crate::core::pk_codec::decode_integer(pk).ok_or_else(|| not_a_rowid(clock))?;
    super::dirty::mark(conn, clock.tid, key, dbv, old)
}

/// What one local write stamps on a row's entries: this transaction's db_version and next
/// seqs, this replica's site ordinal (read once per record), and each cell's version: the
/// transaction's tick in HLC mode (read at the first cell that needs it: one tick per
/// transaction, so one per record), the cell's previous version + 1 in Lamport mode (as
/// cr-sqlite).
struct Stamp<'a> {
    conn: &'a Conn,
    dbv: i64,
    site: u32,
    /// The clock mode, and the tick once read.
    hlc: Option<bool>,
    tick: Option<i64>,
}

impl<'a> Stamp<'a> {
    fn new(conn: &'a Conn, dbv: i64) -> Result<Stamp<'a>> {
        Ok(Stamp { conn, dbv, site: sites::own_ordinal(conn)?, hlc: None, tick: None })
    }

    /// A fresh local entry at the next seq.
    fn entry(&self, col_version: i64) -> Entry {
        Entry { col_version, db_version: self.dbv, seq: txn::next_seq(self.conn), site: self.site }
    }

    /// The version a local write of a cell gets.
    fn cell_version(&mut self, previous: Option<Entry>) -> Result<i64> {
        let hlc = match self.hlc {
            Some(h) => h,
            None => *self.hlc.insert(txn::mode(self.conn)? == ClockMode::Hlc),
        };
        if !hlc {
            // (Up to the most a peer merges, as an HLC tick: past it, peers would refuse the
            // change for good. A merged version that high is a corrupt or hostile change.)
            return previous.map_or(Ok(1), |e| {
                e.col_version.checked_add(1).filter(|&v| v <= crate::core::merge::VERSION_MAX).ok_or_else(|| {
                    Error::new("a cell's version is exhausted: its next would pass 2^62, which peers refuse to merge (a change merged at a version that high, or a damaged clock record)")
                })
            });
        }
        match self.tick {
            Some(t) => Ok(t),
            None => Ok(*self.tick.insert(txn::tick(self.conn)?)),
        }
    }
}

fn silenced(conn: &Conn, tid: i64) -> bool {
    conn.merging_tid.get() == Some(tid)
}

/// The causal length of a row's next life (a delete or a resurrection): one more, unless a
/// damaged clock row holds i64::MAX, where adding wrapped to a negative one.
fn next_life(cl: i64) -> Result<i64> {
    cl.checked_add(1).ok_or_else(|| Error::new("a row's causal length is exhausted (i64::MAX: a damaged clock row)"))
}

/// Starts a new life of the row at causal length `cl` with a local sentinel.
fn new_life(stamp: &Stamp, cl: i64, slots: usize) -> RowClock {
    RowClock { cl, sentinel: stamp.entry(cl), cells: Vec::with_capacity(slots) }
}

/// In the same life, a local write raises the visible sentinel's site like any other change
/// (see core::merge::sentinel_site_wins), so replicas agree on it. `entry` makes the new
/// sentinel entry when one is needed.
fn touch_sentinel(conn: &Conn, rc: &mut RowClock, own_site: u32, entry: impl FnOnce() -> Result<Entry>) -> Result<()> {
    if rc.sentinel.site == own_site || !sentinel_visible(rc.cl, rc.has_cells()) {
        return Ok(());
    }
    let own = sites::own(conn)?;
    let current = sites::site_id(conn, rc.sentinel.site)?;
    if sentinel_site_wins(&own, &current) {
        rc.sentinel = entry()?;
    }
    Ok(())
}

/// Records local writes of `slots` in a live row's clock: touches the sentinel, then one
/// entry per slot at this transaction's db_version.
fn write_cells(conn: &Conn, rc: &mut RowClock, dbv: i64, slots: impl Iterator<Item = usize>) -> Result<()> {
    let mut stamp = Stamp::new(conn, dbv)?;
    let cl = rc.cl;
    touch_sentinel(conn, rc, stamp.site, || Ok(stamp.entry(cl)))?;
    for slot in slots {
        let v = stamp.cell_version(rc.cell(slot))?;
        rc.set_cell(slot, stamp.entry(v));
    }
    Ok(())
}

/// A row's first life (or a resurrection): a local sentinel and a local entry per slot.
fn fresh(conn: &Conn, dbv: i64, cl: i64, slots: impl ExactSizeIterator<Item = usize>) -> Result<RowClock> {
    let mut stamp = Stamp::new(conn, dbv)?;
    let mut rc = new_life(&stamp, cl, slots.len());
    for slot in slots {
        let v = stamp.cell_version(None)?;
        rc.set_cell(slot, stamp.entry(v));
    }
    Ok(rc)
}

/// Runs `f` on the record of `rc` about to be stored (`encode_into`), encoded in the
/// connection's kept buffer (`Conn::record_scratch`; a nested use gets a new one).
fn with_encoded<T>(conn: &Conn, rc: &RowClock, f: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    let mut buf = conn.record_scratch.take();
    buf.clear();
    let result = encode_into(conn, rc, &mut buf).and_then(|()| f(&buf));
    if buf.capacity() <= RECORD_SCRATCH_MAX {
        conn.record_scratch.set(buf);
    }
    result
}

/// The largest buffer `with_encoded` keeps (a very wide row's record is not held on to).
const RECORD_SCRATCH_MAX: usize = 64 * 1024;

/// Encodes a record about to be stored, appended to `out`. Every clock record written goes
/// through here (`save`, `save_existing` through `with_encoded`, and the records the triggers
/// store; a fresh record spliced from its template does the same first step), so this is
/// where the row a merge remembered (conn::MergedRow) stops being trusted (the merge
/// re-remembers its own after), and where the transaction decides how the clock mark covers
/// its tick (txn::before_record).
fn encode_into(conn: &Conn, rc: &RowClock, out: &mut Vec<u8>) -> Result<()> {
    conn.forget_merged_row();
    txn::before_record(conn, rc)?;
    ticks::Lookup::new(conn).encode_into(rc, out)
}

/// Decodes a stored clock record of table `tid` (an error names the table).
pub fn decode(conn: &Conn, tid: i64, cl: i64, bytes: &[u8]) -> Result<RowClock> {
    decode_reusing(conn, tid, cl, bytes, Vec::new())
}

/// `decode`, its cells held in `cells` (see RowClock::decode_reusing).
fn decode_reusing(conn: &Conn, tid: i64, cl: i64, bytes: &[u8], cells: Vec<Option<Entry>>) -> Result<RowClock> {
    ticks::Lookup::new(conn).decode_reusing(cl, bytes, || format!("table id {tid}"), cells)
}

/// AFTER INSERT: a new row, a re-insert of a deleted key (resurrection), or an INSERT OR
/// REPLACE over a live row (every column written). `slots` are the table's tracked slots.
pub fn on_insert(conn: &Conn, clock: Clock, pk: &[u8], slots: &[usize]) -> Result<()> {
    if silenced(conn, clock.tid) {
        return Ok(());
    }
    refuse_key_twins(conn, clock, pk)?;
    let dbv = txn::db_version(conn)?;
    let loaded = load(conn, clock, pk)?;
    let old_dbv = loaded.as_ref().map(RowClock::max_db_version);
    let rc = match loaded {
        None => fresh(conn, dbv, 1, slots.iter().copied())?,
        Some(old) if !is_alive(old.cl) => fresh(conn, dbv, next_life(old.cl)?, slots.iter().copied())?,
        Some(mut old) => {
            write_cells(conn, &mut old, dbv, slots.iter().copied())?;
            old
        }
    };
    save(conn, clock, pk, &rc, old_dbv)
}

/// AFTER UPDATE: records the changed tracked columns (`changed` holds every tracked slot and
/// whether it changed); a changed key is a delete of the old key and an insert of the new one.
pub fn on_update(conn: &Conn, clock: Clock, old_pk: &[u8], new_pk: &[u8], changed: &[(usize, bool)]) -> Result<()> {
    if silenced(conn, clock.tid) {
        return Ok(());
    }
    let slots: Vec<usize> = changed.iter().map(|(s, _)| *s).collect();
    if old_pk != new_pk {
        on_delete(conn, clock, old_pk)?;
        return on_insert(conn, clock, new_pk, &slots);
    }
    if !changed.iter().any(|(_, c)| *c) {
        return Ok(());
    }
    let mut rc = match load(conn, clock, new_pk)? {
        Some(rc) if is_alive(rc.cl) => rc,
        // A live row without a live clock (written while tracking was off): record it whole.
        _ => return on_insert(conn, clock, new_pk, &slots),
    };
    let dbv = txn::db_version(conn)?;
    let old_dbv = rc.max_db_version();
    write_cells(conn, &mut rc, dbv, changed.iter().filter(|(_, c)| *c).map(|(s, _)| *s))?;
    save(conn, clock, new_pk, &rc, Some(old_dbv))
}

/// AFTER DELETE: the causal length becomes even, cells go, the sentinel stays as tombstone.
pub fn on_delete(conn: &Conn, clock: Clock, pk: &[u8]) -> Result<()> {
    if silenced(conn, clock.tid) {
        return Ok(());
    }
    let dbv = txn::db_version(conn)?;
    let (cl, old_dbv) = match load(conn, clock, pk)? {
        None => (2, None),
        Some(rc) if is_alive(rc.cl) => (next_life(rc.cl)?, Some(rc.max_db_version())),
        Some(_) => return Ok(()),
    };
    save(conn, clock, pk, &new_life(&Stamp::new(conn, dbv)?, cl, 0), old_dbv)
}

// The trigger path. The tracking triggers (triggers::trigger_sql) write the clock row in their
// own SQL, inside the user's statement; these only compute the records they store. The
// causal length is the clock row's own column, so a record does not depend on it.

/// Whether table `tid`'s triggers record writes: not while a merge writes its rows
/// (merge::write_user). The merge's write of one row fires one of the table's triggers, or
/// two: an INSERT OR REPLACE that replaces a row fires its delete too under recursive_triggers,
/// and an update inside an alter bracket fires the bracket's BEFORE UPDATE trigger too. Any
/// other firing is a write an app's trigger made to the merged table in the middle of the
/// merge's, which no clock would record (this replica would hold, and never send, what no
/// other has): refused, which stops the merge's statement and so undoes both. (One firing
/// too many goes unseen: an upsert's insert inside a bracket, the rare way a merge writes a
/// row its clock has but the table lost, beside an app trigger's insert or delete.)
#[inline]
pub fn tracking(conn: &Conn, tid: i64) -> Result<bool> {
    if !silenced(conn, tid) {
        return Ok(true);
    }
    merge_firing(conn, tid).map(|()| false)
}

/// A firing of table `tid`'s triggers during a merge's write of it (see `tracking`).
fn merge_firing(conn: &Conn, tid: i64) -> Result<()> {
    let fired = conn.merge_fired.get() + 1;
    conn.merge_fired.set(fired);
    let explained = || -> Result<bool> {
        Ok(match conn.merge_write.get() {
            MergeWrite::Replace => recursive_triggers(conn)?,
            MergeWrite::Update => super::alter::in_bracket(conn, tid)?,
            MergeWrite::Delete => false,
        })
    };
    if fired == 1 || (fired == 2 && explained()?) {
        return Ok(());
    }
    let name = tables::by_tid(conn, tid)?.map_or_else(|| format!("table id {tid}"), |t| t.name.clone());
    Err(Error::new(format!(
        "a trigger of the app wrote \"{name}\" while a merge wrote it, a write no clock would record (replicas would \
         disagree); guard the trigger with WHEN crsql_internal_sync_bit() = 0"
    )))
}

fn recursive_triggers(conn: &Conn) -> Result<bool> {
    let mut s = conn.db.prepare("PRAGMA recursive_triggers", false)?;
    Ok(s.step()? && s.i64(0) != 0)
}

/// The record of a row inserted where its key has no clock row.
///
/// The fresh records a transaction stores for one table differ only in their seqs while its
/// tick is steady (`txn::steady_tick`: then neither handing out the tick nor storing a record
/// does any clock work), so after the first the record is spliced from a template
/// (core::row_clock::SeqTemplate) kept for the transaction (`Txn::fresh`).
pub fn fresh_record(conn: &Conn, slots: Slots, out: &mut Vec<u8>) -> Result<()> {
    let dbv = txn::db_version(conn)?;
    if let Some(tick) = txn::steady_tick(conn) {
        let site = sites::own_ordinal(conn)?;
        let hit = conn.txn.borrow().fresh.as_ref().is_some_and(|f| f.dbv == dbv && f.tick == tick && f.site == site && f.slots == slots.bytes());
        if hit {
            conn.forget_merged_row();
            let seq = txn::take_seqs(conn, 1 + slots.len() as i64);
            conn.txn.borrow().fresh.as_ref().expect("checked above").template.write_with_seq(seq, out);
            return Ok(());
        }
    }
    let rc = fresh(conn, dbv, 1, slots.iter())?;
    let start = out.len();
    encode_into(conn, &rc, out)?;
    // A template of a record encoded while the tick is steady (its crr_ticks row was written
    // before the encoding, the cells refer to it): what a later hit would have encoded.
    if let Some(tick) = txn::steady_tick(conn) {
        if rc.cells.iter().flatten().all(|e| e.col_version == tick) {
            if let Some(template) = SeqTemplate::cut(&rc, &out[start..]) {
                let site = sites::own_ordinal(conn)?;
                conn.txn.borrow_mut().fresh = Some(FreshTemplate { slots: slots.bytes().to_vec(), dbv, tick, site, template });
            }
        }
    }
    Ok(())
}

/// The fresh record of one table's slot list at a db_version, steady tick and site (see
/// `fresh_record`).
#[derive(Debug)]
pub struct FreshTemplate {
    slots: Vec<u8>,
    dbv: i64,
    tick: i64,
    site: u32,
    template: SeqTemplate,
}

/// The record of a row inserted where its key has a clock row (`cl`, `clock`), given the
/// `fresh` record the trigger computed first, in `buf.bytes`. A deleted key comes back to
/// life with exactly the fresh record (the trigger raises `cl`); over a live row (INSERT OR
/// REPLACE) every slot is written, reusing the fresh record's seq numbers so none is skipped.
pub fn insert_over_record(conn: &Conn, tid: i64, cl: i64, clock: &[u8], fresh: &[u8], slots: Slots, buf: &mut RecordBuf) -> Result<()> {
    if !is_alive(cl) {
        buf.bytes.extend_from_slice(fresh);
        return Ok(());
    }
    let new = decode(conn, tid, 1, fresh)?;
    buf.rewrite(conn, tid, cl, clock, |rc| {
        let mut stamp = Stamp::new(conn, new.sentinel.db_version)?;
        touch_sentinel(conn, rc, stamp.site, || Ok(Entry { col_version: cl, ..new.sentinel }))?;
        for slot in slots.iter() {
            let e = new.cell(slot).ok_or_else(|| Error::new(format!("fresh record lacks slot {slot} (table id {tid})")))?;
            let col_version = stamp.cell_version(rc.cell(slot))?;
            rc.set_cell(slot, Entry { col_version, ..e });
        }
        Ok(())
    })
}

/// The record of a live row after an UPDATE that kept its key, in `buf.bytes`; `changed` is
/// the slots the UPDATE changed.
pub fn update_record(conn: &Conn, tid: i64, cl: i64, clock: &[u8], changed: impl Iterator<Item = usize>, buf: &mut RecordBuf) -> Result<()> {
    buf.rewrite(conn, tid, cl, clock, |rc| {
        let dbv = txn::db_version(conn)?;
        write_cells(conn, rc, dbv, changed)
    })
}

/// The record of a deleted row, in `buf.bytes`: a local sentinel only.
pub fn tombstone_record(conn: &Conn, buf: &mut RecordBuf) -> Result<()> {
    let dbv = txn::db_version(conn)?;
    encode_into(conn, &new_life(&Stamp::new(conn, dbv)?, 2, 0), &mut buf.bytes)
}

/// Where a tracking trigger's function builds the record it returns, kept across calls (by
/// the function's registration, ffi::functions) so that the per-row calls allocate nothing:
/// the encoded bytes, and the cells of a record decoded on the way.
#[derive(Debug, Default)]
pub struct RecordBuf {
    pub bytes: Vec<u8>,
    cells: Vec<Option<Entry>>,
}

impl RecordBuf {
    /// Decodes the stored record (`cl`, `clock`) of table `tid` into the kept cells, lets
    /// `change` rewrite it, and encodes the result into `bytes`.
    fn rewrite(&mut self, conn: &Conn, tid: i64, cl: i64, clock: &[u8], change: impl FnOnce(&mut RowClock) -> Result<()>) -> Result<()> {
        let mut rc = decode_reusing(conn, tid, cl, clock, std::mem::take(&mut self.cells))?;
        let r = change(&mut rc).and_then(|()| encode_into(conn, &rc, &mut self.bytes));
        self.cells = rc.cells;
        r
    }
}

/// A local write of one cell outside the triggers (crsql_commit_alter records added columns
/// whose values differ from the default).
pub fn record_cell(conn: &Conn, clock: Clock, pk: &[u8], slot: usize) -> Result<()> {
    rewrite_live(conn, clock, pk, |rc, dbv| write_cells(conn, rc, dbv, std::iter::once(slot)))
}

/// Runs `f` on the clock record of the live row `pk` (with this transaction's db_version) and
/// stores it; a row without a live record is left alone. crsql_commit_alter's writes of cells
/// outside the triggers (`record_cell`, `record_unwritten_cells`).
fn rewrite_live(conn: &Conn, clock: Clock, pk: &[u8], f: impl FnOnce(&mut RowClock, i64) -> Result<()>) -> Result<()> {
    let dbv = txn::db_version(conn)?;
    let mut rc = match load(conn, clock, pk)? {
        Some(rc) if is_alive(rc.cl) => rc,
        _ => return Ok(()),
    };
    let old_dbv = rc.max_db_version();
    f(&mut rc, dbv)?;
    save(conn, clock, pk, &rc, Some(old_dbv))
}

/// The col_version of a cell whose value no write gave it and a merge would not make: a
/// default that changed (a 12-step rebuild), or one that is an expression (`DEFAULT
/// CURRENT_TIMESTAMP`, evaluated when the rebuild copied the rows). crsql_commit_alter records
/// such cells (`record_unwritten_cells`) so that they travel: at version 0 a cell loses to
/// every write (HLC versions and lamport counts are above it) and wins only over a peer that
/// has no entry for the cell (one that made the row by merge, with its own default); two
/// replicas' such cells tie on the version and settle by value, then site, as any two writes.
pub const UNWRITTEN_VERSION: i64 = 0;

/// Records, for the live row `pk`, each of `slots` its clock has no entry for, at
/// `UNWRITTEN_VERSION` and this transaction's db_version (see there).
pub fn record_unwritten_cells(conn: &Conn, clock: Clock, pk: &[u8], slots: &[usize]) -> Result<()> {
    rewrite_live(conn, clock, pk, |rc, dbv| {
        let stamp = Stamp::new(conn, dbv)?;
        let cl = rc.cl;
        touch_sentinel(conn, rc, stamp.site, || Ok(stamp.entry(cl)))?;
        for &slot in slots {
            if rc.cell(slot).is_none() {
                rc.set_cell(slot, stamp.entry(UNWRITTEN_VERSION));
            }
        }
        Ok(())
    })
}

/// Encodes a slot list for a trigger's constant argument: 2 bytes big-endian per slot.
pub fn encode_slots(slots: &[usize]) -> Vec<u8> {
    slots.iter().flat_map(|s| (*s as u16).to_be_bytes()).collect()
}

pub fn decode_slots(bytes: &[u8]) -> Result<Vec<usize>> {
    Ok(Slots::parse(bytes)?.iter().collect())
}

/// Most tracked slots whose update flags a trigger passes as one integer bit mask (more
/// are passed as text, one '0'/'1' per slot).
pub const FLAG_BITS_MAX: usize = 62;

/// An update trigger's change flags, one per slot of its slot list: an integer whose bit i
/// says slot i changed (tables of at most FLAG_BITS_MAX tracked columns), or text with one
/// '0'/'1' per slot (wider tables, and every trigger of earlier builds; for one slot the two
/// agree).
#[derive(Debug, Clone, Copy)]
pub enum Flags<'a> {
    Bits(i64),
    Text(&'a [u8]),
}

impl Flags<'_> {
    /// Refuses flags that do not fit a list of `n` slots.
    pub fn check(&self, n: usize) -> Result<()> {
        let fits = match self {
            Flags::Bits(b) => n <= FLAG_BITS_MAX && *b >= 0 && *b >> n == 0,
            Flags::Text(t) => t.len() == n && t.iter().all(|c| matches!(c, b'0' | b'1')),
        };
        if fits {
            Ok(())
        } else {
            Err(Error::new(format!("tracking trigger passed change flags {self:?} that do not fit its {n} columns")))
        }
    }

    pub fn changed(&self, i: usize) -> bool {
        match self {
            Flags::Bits(b) => i < 63 && (b >> i) & 1 == 1,
            Flags::Text(t) => t.get(i) == Some(&b'1'),
        }
    }
}

/// The change flags of the row that an update trigger's WHEN clause tested last
/// (`crr_internal_changed`), held for the record function its body calls next for the same
/// row (`crr_internal_update_record` of this build's triggers): the trigger then names each
/// column's test once, not once in its WHEN clause and again in its body. SQLite compiles a
/// table's triggers into every statement that writes it, and each column a trigger names
/// costs a lookup of the name among the table's columns, so a second copy of the tests made
/// preparing an UPDATE of a wide table nearly twice as dear. A trigger's WHEN clause runs
/// right before its body, and nothing between them fires a trigger of ours.
#[derive(Debug, Default)]
pub struct HeldFlags {
    /// Some for a table of at most FLAG_BITS_MAX tracked columns, else the flags are `text`.
    bits: Option<i64>,
    text: Vec<u8>,
}

impl HeldFlags {
    /// Holds `flags` (a value of the trigger's flags expression); whether any slot changed.
    pub fn hold(&mut self, flags: Flags<'_>) -> bool {
        match flags {
            Flags::Bits(b) => {
                self.bits = Some(b);
                b != 0
            }
            Flags::Text(t) => {
                self.bits = None;
                self.text.clear();
                self.text.extend_from_slice(t);
                t.contains(&b'1')
            }
        }
    }

    pub fn flags(&self) -> Flags<'_> {
        match self.bits {
            Some(b) => Flags::Bits(b),
            None => Flags::Text(&self.text),
        }
    }
}

/// A slot list (`encode_slots`) read in place, for the triggers' per-row calls.
#[derive(Debug, Clone, Copy)]
pub struct Slots<'a>(&'a [u8]);

impl<'a> Slots<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Slots<'a>> {
        if !bytes.len().is_multiple_of(2) {
            return Err(Error::new("corrupt slot list in a tracking trigger"));
        }
        Ok(Slots(bytes))
    }

    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = usize> + 'a {
        self.0.chunks_exact(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_bits_or_text_agree_and_refuse_what_does_not_fit() {
        let bits = Flags::Bits(0b101);
        let text = Flags::Text(b"101");
        for f in [bits, text] {
            f.check(3).unwrap();
            assert_eq!((0..3).map(|i| f.changed(i)).collect::<Vec<_>>(), [true, false, true], "{f:?}");
        }
        // One slot: an old trigger's lone flag arrives as the integer 0 or 1.
        assert!(Flags::Bits(1).changed(0) && !Flags::Bits(0).changed(0));
        for (f, n) in [(Flags::Bits(0b1000), 3), (Flags::Bits(-1), 3), (Flags::Bits(1), FLAG_BITS_MAX + 1), (Flags::Text(b"10"), 3), (Flags::Text(b"1x1"), 3)] {
            let e = f.check(n).unwrap_err();
            assert!(e.message.contains("do not fit"), "{f:?}: {}", e.message);
        }
    }
}
