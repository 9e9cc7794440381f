//! Applying one incoming change (INSERT INTO crsql_changes), SPEC 7 and 8.
//!
//! Order of work, so that a refused change leaves the database exactly as it was:
//! 1. validate everything (table, column, key blob, site id, versions, drift): no writes;
//! 2. decide with the pure rule (core::merge);
//! 3. write the user table first (the one step that can refuse a value, e.g. STRICT), each
//!    write a single statement, then the site ordinal, the clock record, the clock's mark.
//!
//! **Held clock.** A row's changes usually arrive one after another (one per cell), and each
//! would rewrite the row's clock. So after a change wrote the user table, its row's record is
//! held in memory (`conn::MergedRow` with `Held`) and the next change of the same row updates
//! it there; the clock row is written once, by `flush_held`, when the next change is of
//! another row, when a savepoint opens (xSavepoint, so the record lands at the level of the
//! writes it covers), before the transaction commits (xSync), before crsql_changes is read
//! and before any public function runs. Rollbacks: a held record is dropped when a rollback
//! undoes the writes it covers, and only then (`Conn::rolled_back_to`, by savepoint depth):
//! a change refused by the user table rolls back its own statement only, so the earlier
//! changes of the row stay and so does their record. A merge's own nested statement (the
//! user-table write) opens a savepoint at which nothing is flushed: the record is not its.
//!
//! Each user-table write must change its row (`sqlite3_changes`; a delete may find none, if the
//! row is absent), or the change is refused (an app's trigger skipped it with RAISE(IGNORE):
//! the clock would say what the row does not). The remembered row keeps its key and cell
//! vectors for the next (`MergedRow::spare`, `Bufs`), the change's key values go into
//! `Conn::keys_scratch`, and the value and record are bound without copies: no allocation per
//! change for integer keys (a text or blob key value is copied).
//!
//! **Wide CRRs.** A cell goes to the user table through a statement of its column, except on a
//! wide CRR (`tables::WIDE_WRITES`, 64 tracked columns, and, widest first, as many narrower
//! ones as keep the estimated memory of merges' statements under `tables::SHARED_WRITE_BUDGET`,
//! 8 MiB: `core::shared_writes`, decided at each registry load): there one UPDATE for the table
//! sets the merged column and every other to itself (`write_cell`), since every statement that
//! writes one column is as large as the table and one per column held O(columns^2) memory a
//! table (28.7 MiB for 100 CRRs of 20 columns until 2026-12-06). Columns an index or a CHECK
//! names keep their own statement, and so does every column of a table with a trigger of the
//! app on `UPDATE OF` columns, in main (found at the registry's load, `TableInfo::wide_slots`)
//! or TEMP (looked for again when the TEMP schema's cookie moves, the table written changes or
//! a rollback is heard: `Conn::temp_update_of`). A row a merge makes on a wide CRR is one
//! INSERT for the table too, whichever column's cell makes it (`recreate_row`): each other
//! column gets its default's value, `TableInfo::row_defaults` (from
//! `core::schema_sql::default_expr`, which crsql_commit_alter's comparison with an added
//! column's default and the probe of a row of defaults use too).

use super::conn::{Conn, Held, MergeWrite, MergedRow};
use super::stmt_cache::Key;
use super::tables::{self, KeyLayout, TableInfo};
use super::track::{load_reusing, save, save_existing};
use super::{sites, txn};
use crate::core::ident::quote;
use crate::core::merge::{self as rule, cell_wins, row_step, sentinel_site_wins, sentinel_takes_site, CellWrite, RowStep, SiteId};
use crate::core::pk_codec;
use crate::core::row_clock::{Entry, RowClock};
use crate::core::schema_sql;
use crate::core::table_shape::{self, Affinity};
use crate::core::value::{Value, ValueRef};
use crate::error::{Error, Result};
use std::rc::Rc;

/// A change as inserted into crsql_changes, before validation, read in place from the
/// INSERT's values (only `val` is ever copied).
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub table: ValueRef<'a>,
    pub pk: ValueRef<'a>,
    pub cid: ValueRef<'a>,
    pub val: ValueRef<'a>,
    pub col_version: ValueRef<'a>,
    pub db_version: ValueRef<'a>,
    pub site_id: ValueRef<'a>,
    pub cl: ValueRef<'a>,
    pub seq: ValueRef<'a>,
}

/// A validated change.
struct Valid<'a> {
    table: Rc<TableInfo>,
    pk: &'a [u8],
    keys: Vec<Value>,
    slot: Option<usize>,
    val: ValueRef<'a>,
    col_version: i64,
    site: SiteId,
    cl: i64,
}

fn non_negative(name: &str, v: &ValueRef) -> Result<i64> {
    match v {
        ValueRef::Integer(i) if *i >= 0 => Ok(*i),
        ValueRef::Integer(i) => Err(Error::new(format!("{name} must not be negative, got {i}"))),
        other => Err(Error::new(format!("{name} must be an integer, got {}", other.type_name()))),
    }
}

/// A name given as TEXT (a table's or a column's): names are UTF-8.
fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| Error::new(format!("{what} is TEXT but not valid UTF-8")))
}

/// A key value for an error message (long text and blobs cut).
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(t) => crate::core::ident::literal(&t.chars().take(40).collect::<String>()),
        Value::Blob(b) => format!("X'{}'", b.iter().take(20).map(|x| format!("{x:02X}")).collect::<String>()),
    }
}

fn validate<'a>(conn: &Conn, c: Incoming<'a>) -> Result<Valid<'a>> {
    let ValueRef::Text(name) = &c.table else {
        return Err(Error::new(format!("\"table\" must be text, got {}", c.table.type_name())));
    };
    let name = utf8(name, "\"table\"")?;
    let table = tables::by_name(conn, name)?.ok_or_else(|| Error::new(format!("no such CRR table: \"{name}\" (schema mismatch)")))?;
    table.check_columns(conn)?;
    let ValueRef::Blob(pk) = c.pk else {
        return Err(Error::new(format!("pk must be a blob, got {}", c.pk.type_name())));
    };
    let (keys, twin) = valid_key(conn, &table, pk)?;
    let slot = valid_cid(conn, &table, &c.cid)?;
    let site: SiteId = match &c.site_id {
        ValueRef::Blob(b) => SiteId::try_from(*b)
            .map_err(|_| Error::new(format!("site_id must be 16 bytes, got {}", b.len())))?,
        other => return Err(Error::new(format!("site_id must be a 16-byte blob, got {}", other.type_name()))),
    };
    let col_version = non_negative("col_version", &c.col_version)?;
    let cl = non_negative("cl", &c.cl)?;
    for (name, v) in [("col_version", col_version), ("cl", cl)] {
        if v > rule::VERSION_MAX {
            return Err(Error::new(format!("{name} {v} is beyond 2^62, which no replica reaches (a corrupt or hostile change)")));
        }
    }
    if !matches!(c.db_version, ValueRef::Null) {
        non_negative("db_version", &c.db_version)?;
    }
    if !matches!(c.seq, ValueRef::Null) {
        non_negative("seq", &c.seq)?;
    }
    // A key with a twin names a row no replica of this build writes (table_shape::key_twin);
    // one an earlier build wrote may still be deleted (delete_row deletes only that row), so
    // that the replica that holds it can fix it and its peers follow.
    if let Some(reason) = twin.filter(|_| rule::is_alive(cl)) {
        return Err(Error::new(format!("bad pk for table \"{}\": {reason}", table.name)));
    }
    if slot.is_some() {
        txn::check_drift(conn, col_version)?;
        // This replica's clock is past every version it made: a change of its own site beyond
        // it was made by another database with the same site id (a copy of this file that
        // crr_new_site_id did not make a replica of its own, or this replica before the
        // backup it was restored from). Transports keep their progress per site id, so two
        // databases that share one lose changes for good.
        if txn::beyond_mark(conn, col_version) && sites::ordinal(conn, &site)? == Some(sites::own_ordinal(conn)?) {
            return Err(Error::new(format!(
                "change from this replica's own site id at col_version {col_version}, past every version it has made or \
                 merged: another database shares its site id (a restored backup of it, or a copy of its file), and peers \
                 that keep their progress by site id would miss changes of one or the other; run SELECT \
                 crr_new_site_id() on this database, then sync again"
            )));
        }
    }
    Ok(Valid { table, pk, keys, slot, val: c.val, col_version, site, cl })
}

/// The change's key values, decoded into the connection's kept vector (put back by `keep`)
/// and checked against the table's key, and the reason its first value with a twin
/// (`table_shape::key_twin`) is refused where the change makes the row live.
#[inline]
fn valid_key(conn: &Conn, table: &TableInfo, pk: &[u8]) -> Result<(Vec<Value>, Option<String>)> {
    // Decoded in the kept vector (put back by `keep`).
    let mut keys = conn.keys_scratch.take();
    pk_codec::decode_into(pk, &mut keys).map_err(|e| Error::new(format!("bad pk for table \"{}\": {e}", table.name)))?;
    if keys.len() != table.pk.len() {
        return Err(Error::new(format!(
            "bad pk for table \"{}\": it has {} key columns, the pk blob has {}",
            table.name,
            table.pk.len(),
            keys.len()
        )));
    }
    if table.key == KeyLayout::Rowid && !matches!(keys[0], Value::Integer(_)) {
        return Err(Error::new(format!(
            "bad pk for table \"{}\": its key \"{}\" is an INTEGER PRIMARY KEY, the pk blob holds {}",
            table.name,
            table.pk[0],
            keys[0].type_name()
        )));
    }
    // A key value the column would store as another value (1 in a TEXT column is stored as
    // '1') would name the row by a key its clock does not hold: the row's next local write
    // would give it a second clock row, and replicas would disagree on which rows exist.
    // The first value with a twin (table_shape::key_twin_in's rule, walked here in the loop
    // every key takes anyway: a second pass over the key cost W6 14 instructions a change).
    let mut twin = None;
    for ((k, affinity), name) in keys.iter().zip(table.key_affinities(conn)?).zip(&table.pk) {
        if let (Some(int), Value::Real(f), None) = (table_shape::key_twin(*affinity, k), k, &twin) {
            twin = Some(table_shape::key_twin_reason(name, *f, int));
        }
        // (SQLite stores a NaN as NULL: no replica packs one, and a key of NULL fails its NOT
        // NULL with an error that did not say why, until 2026-12-06.)
        if matches!(k, Value::Real(f) if f.is_nan()) {
            return Err(Error::new(format!(
                "bad pk for table \"{}\": its key column \"{name}\" holds a REAL NaN, which SQLite stores as NULL (a corrupt or hostile change)",
                table.name
            )));
        }
        if !table_shape::stored_as_is(*affinity, k) {
            return Err(Error::new(format!(
                "bad pk for table \"{}\": its key column \"{name}\" ({affinity:?} affinity) would store the pk's {} {} \
                 as another value (schema mismatch)",
                table.name,
                k.type_name(),
                shown(k)
            )));
        }
    }
    Ok((keys, twin))
}

/// The change's column slot (None for the row's sentinel), or the reason the table has no
/// such tracked column.
#[inline]
fn valid_cid(conn: &Conn, table: &TableInfo, cid: &ValueRef) -> Result<Option<usize>> {
    Ok(match cid {
        ValueRef::Text(b"-1") => None,
        ValueRef::Integer(-1) => None,
        ValueRef::Text(col) => {
            let col = utf8(col, "cid")?;
            match table.slot_of(col) {
                Some(slot) => Some(slot),
                None if table.pk.iter().any(|k| k.eq_ignore_ascii_case(col)) => {
                    return Err(Error::new(format!("\"{col}\" is a key column of table \"{}\": key values travel in pk, not as cells", table.name)))
                }
                None if table.is_generated(conn, col)? => {
                    return Err(Error::new(format!(
                        "column \"{col}\" of table \"{}\" is generated: its value is computed from the others, not merged \
                         (schema mismatch: the sender's is an ordinary column)",
                        table.name
                    )))
                }
                None => return Err(Error::new(format!("table \"{}\" has no column \"{col}\" (schema mismatch)", table.name))),
            }
        }
        other => return Err(Error::new(format!("cid must be text, got {}", other.type_name()))),
    })
}

/// An error of an app's trigger that stopped a merge's user-table write after the write, and
/// kept it (`write_user`): the merge goes on (its clock is recorded), then fails with it.
type Kept = Option<Error>;

/// Runs one single-statement write on the user table with tracking silenced for it.
/// The table's tracking triggers count their firings meanwhile (track::tracking), which
/// depend on the `kind` of statement.
///
/// An error with the FAIL resolution (an app trigger's RAISE(FAIL), or its statement's OR
/// FAIL) stops the statement but keeps the writes it made before: an AFTER trigger's keeps
/// the row's write (`changes()` counts it). The row then holds the change, so its clock must
/// say so: Ok(Some(error)), to be returned once the clock is recorded. What undoes the failed
/// merge's work undoes both (outside a transaction, its rollback; an INSERT INTO crsql_changes
/// SELECT's statement rollback); otherwise both stay, as FAIL promises.
/// `changes()` is the failed statement's only if it ran (its end sets the count, and adds it
/// to `total_changes()`); one that failed to prepare or bind leaves an earlier statement's.
/// `value` is bound after the key, and `slot`, the wide statement's column (`write_cell`),
/// after it.
fn write_user(conn: &Conn, v: &Valid, kind: MergeWrite, key: Key, sql: impl FnOnce() -> String, value: Option<&ValueRef>, slot: Option<usize>) -> Result<Kept> {
    let previous = conn.merging_tid.replace(Some(v.table.tid));
    // Saved for a merge inside this one (an app trigger's INSERT INTO crsql_changes).
    let outer = (conn.merge_fired.replace(0), conn.merge_write.replace(kind));
    let total = conn.db.total_changes();
    let result = conn.stmts.with(conn.db, key, sql, |s| {
        for (i, k) in v.keys.iter().enumerate() {
            s.bind_value(i + 1, k)?;
        }
        if let Some(slot) = slot {
            s.bind_i64(v.keys.len() + 2, slot as i64)?;
        }
        match value {
            // The incoming value is bound as it is (it outlives the statement's run).
            Some(val) => s.run_with_borrowed(v.keys.len() + 1, val),
            None => s.run(),
        }
    });
    conn.merging_tid.set(previous);
    conn.merge_fired.set(outer.0);
    conn.merge_write.set(outer.1);
    match result {
        Ok(()) => Ok(None),
        Err(e) if conn.db.changes() > 0 && conn.db.total_changes() != total => Ok(Some(Error::with_code(
            e.code,
            format!(
                "change to \"{}\" written, but a trigger of the app failed it: {e} (FAIL keeps the writes a statement made \
                 before it, so the merge recorded the write's clock too, and what undoes the failed statement's work undoes \
                 both: a transaction's rollback, or the rollback of an INSERT of several changes; guard the trigger with \
                 WHEN crsql_internal_sync_bit() = 0)",
                v.table.name
            ),
        ))),
        Err(e) => Err(Error::with_code(e.code, format!("cannot apply change to \"{}\": {e}", v.table.name))),
    }
}

/// The error for a merge's user-table write that an app's BEFORE trigger skipped with
/// RAISE(IGNORE): the clock would say the change was applied while the row says otherwise,
/// and this replica would hold and pass on something no other replica has.
fn ignored(v: &Valid) -> Error {
    Error::new(format!(
        "cannot apply change to \"{}\": a trigger of the app skipped the merge's write (RAISE(IGNORE)), so the row \
         would not hold what its clock says; guard the trigger with WHEN crsql_internal_sync_bit() = 0",
        v.table.name
    ))
}

/// Deletes the row whose key is the change's, value and storage class: in a key column of
/// BLOB affinity a row keyed 1 is not the row keyed 1.0, though SQLite finds them equal
/// (table_shape::key_twin). A delete that changed nothing is checked: the row may be absent
/// (fine) or kept by an app's trigger (`ignored`).
fn delete_row(conn: &Conn, v: &Valid) -> Result<Kept> {
    let t = &v.table;
    let affinities = t.key_affinities(conn)?;
    let exact = || -> String {
        let classes = t.pk.iter().zip(affinities).enumerate().filter(|(_, (_, a))| **a == Affinity::Blob);
        let classes: String = classes.map(|(i, (k, _))| format!(" AND typeof({}) = typeof(?{})", quote(k), i + 1)).collect();
        format!("{}{classes}", t.pk_where(1))
    };
    let kept = write_user(conn, v, MergeWrite::Delete, Key::RowDelete(t.tid), || format!("DELETE FROM {} WHERE {}", t.quoted(), exact()), None, None)?;
    if conn.db.changes() > 0 {
        return Ok(kept);
    }
    let still_there = conn.stmts.with(conn.db, Key::RowExists(t.tid), || format!("SELECT 1 FROM {} WHERE {}", t.quoted(), exact()), |s| {
        for (i, k) in v.keys.iter().enumerate() {
            s.bind_value(i + 1, k)?;
        }
        s.step()
    })?;
    if still_there {
        return Err(ignored(v));
    }
    Ok(None)
}

/// Replaces the row with a fresh one holding defaults (and the incoming cell, if any).
///
/// On a wide CRR (`TableInfo::wide`) the row with a cell is made by one statement for the
/// table, which gives every tracked column its default (`TableInfo::row_defaults`) but the
/// one the slot parameter names: a statement per column made a stream of rows whose first
/// cells were of varying columns (a read filtered by cid, say) keep one statement, as large
/// as the table, per column (99 MiB at 1,000 columns until 2026-12-06). Giving a column its
/// default's value stores what leaving it out does.
fn recreate_row(conn: &Conn, v: &Valid) -> Result<Kept> {
    let t = &v.table;
    let n = t.pk.len();
    let column = v.slot.and_then(|s| t.columns[s].as_deref());
    let shared = match column {
        Some(_) => t.row_defaults(conn)?,
        None => None,
    };
    let kept = if let Some(defaults) = shared {
        let sql = || {
            let keys = (1..=n).map(|i| format!("?{i}"));
            let (cols, vals): (Vec<String>, Vec<String>) = t
                .columns
                .iter()
                .zip(defaults)
                .enumerate()
                .filter_map(|(i, (c, d))| Some((quote(c.as_deref()?), slot_case(n, i, d))))
                .unzip();
            format!(
                "INSERT OR REPLACE INTO {} ({}, {}) VALUES ({}, {})",
                t.quoted(),
                t.pk_list(),
                cols.join(", "),
                keys.collect::<Vec<_>>().join(", "),
                vals.join(", ")
            )
        };
        write_user(conn, v, MergeWrite::Replace, Key::RowRecreateWide(t.tid), sql, Some(&v.val), v.slot)?
    } else {
        let sql = || {
            let params: Vec<String> = (1..=n + usize::from(column.is_some())).map(|i| format!("?{i}")).collect();
            let cols = match column {
                Some(c) => format!("{}, {}", t.pk_list(), quote(c)),
                None => t.pk_list(),
            };
            format!("INSERT OR REPLACE INTO {} ({cols}) VALUES ({})", t.quoted(), params.join(", "))
        };
        let val = column.as_ref().map(|_| &v.val);
        write_user(conn, v, MergeWrite::Replace, Key::RowRecreate(t.tid, v.slot), sql, val, None)?
    };
    if conn.db.changes() == 0 {
        return Err(ignored(v));
    }
    Ok(kept)
}

/// Writes one cell of a live row (creating the row if the table lost it): a plain UPDATE,
/// cheaper than an upsert (no insert attempt, no conflict jump), then the upsert only if the
/// UPDATE changed no row (matched none, or an app's trigger skipped it: then the upsert is
/// skipped too, and `ignored` says so).
///
/// A wide table's UPDATE is one statement for its columns (but those an index or a CHECK
/// names), each set to itself but the one the slot parameter names (`tables::WIDE_WRITES`,
/// `TableInfo::wide_slots`): every statement that writes one column is as large as the
/// table, so one per column made a full row's first merge O(n^2) in time and in the memory
/// the kept statements hold. Setting a column to its own value stores the same value
/// (affinity gives back what it gave), and fires the table's UPDATE triggers as writing that
/// one column does, except triggers on `UPDATE OF` columns, which is why a table with one
/// takes the statement per column.
fn write_cell(conn: &Conn, v: &Valid, slot: usize) -> Result<Kept> {
    let t = &v.table;
    let column = t.columns[slot].as_deref().unwrap_or_default();
    let n = t.pk.len();
    let kept = if t.wide_slots.get(slot) == Some(&true) && !temp_trigger_updates_of(conn, t)? {
        let update = || {
            let set = t.columns.iter().zip(&t.wide_slots).enumerate().filter(|(_, (_, wide))| **wide).filter_map(|(i, (c, _))| {
                let c = quote(c.as_deref()?);
                Some(format!("{c} = {}", slot_case(n, i, &c)))
            });
            format!("UPDATE {} SET {} WHERE {}", t.quoted(), set.collect::<Vec<_>>().join(", "), t.pk_where(1))
        };
        write_user(conn, v, MergeWrite::Update, Key::CellUpdateWide(t.tid), update, Some(&v.val), Some(slot))?
    } else {
        let update = || format!("UPDATE {} SET {} = ?{} WHERE {}", t.quoted(), quote(column), n + 1, t.pk_where(1));
        write_user(conn, v, MergeWrite::Update, Key::CellUpdate(t.tid, slot), update, Some(&v.val), None)?
    };
    if conn.db.changes() > 0 {
        return Ok(kept);
    }
    let sql = || {
        let params: Vec<String> = (1..=n + 1).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}, {c}) VALUES ({}) ON CONFLICT({}) DO UPDATE SET {c} = excluded.{c}",
            t.quoted(),
            t.pk_list(),
            params.join(", "),
            t.pk_list(),
            c = quote(column)
        )
    };
    let kept = write_user(conn, v, MergeWrite::Update, Key::CellUpsert(t.tid, slot), sql, Some(&v.val), None)?;
    if conn.db.changes() == 0 {
        return Err(ignored(v));
    }
    Ok(kept)
}

/// A wide statement's expression for slot `i` of a table of `n` key columns: the merged value
/// (bound at n+1) where the slot parameter (n+2, `write_user`) names `i`, else `otherwise`.
fn slot_case(n: usize, i: usize, otherwise: &str) -> String {
    format!("CASE ?{} WHEN {i} THEN ?{} ELSE {otherwise} END", n + 2, n + 1)
}

/// Whether a TEMP trigger on `UPDATE OF` columns may fire on table `t` (see `write_cell`):
/// main's are found at the registry's load, but TEMP triggers do not move main's schema
/// cookie, so they are looked for in the TEMP schema, again whenever its own cookie moved or
/// another table is written (`Conn::temp_update_of`; looking at each wide write cost about
/// 1.9k instructions a cell, until 2026-12-06).
fn temp_trigger_updates_of(conn: &Conn, t: &TableInfo) -> Result<bool> {
    let cookie = conn.stmts.with(conn.db, Key::TempCookie, || "PRAGMA temp.schema_version".to_string(), |s| {
        s.step()?;
        Ok(s.i64(0))
    })?;
    if let Some((c, name, any)) = &*conn.temp_update_of.borrow() {
        if *c == cookie && *name == t.name {
            return Ok(*any);
        }
    }
    let sql = || "SELECT sql FROM temp.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE".to_string();
    let any = conn.stmts.with(conn.db, Key::TempTriggers, sql, |s| {
        s.bind_text(1, &t.name)?;
        let mut any = false;
        while !any && s.step()? {
            any = schema_sql::trigger_updates_of_columns(&s.text(0));
        }
        Ok(any)
    })?;
    *conn.temp_update_of.borrow_mut() = Some((cookie, t.name.clone(), any));
    Ok(any)
}

/// `f` of the local value of the changed cell, read in place (NULL when the row is missing).
fn with_local_value<T>(conn: &Conn, v: &Valid, slot: usize, f: impl FnOnce(ValueRef<'_>) -> T) -> Result<T> {
    let t = &v.table;
    let column = t.columns[slot].as_deref().unwrap_or_default();
    conn.stmts.with(
        conn.db,
        Key::CellValue(t.tid, slot),
        || format!("SELECT {} FROM {} WHERE {}", quote(column), t.quoted(), t.pk_where(1)),
        |s| {
            for (i, k) in v.keys.iter().enumerate() {
                s.bind_value(i + 1, k)?;
            }
            Ok(f(if s.step()? { s.value_ref(0) } else { ValueRef::Null }))
        },
    )
}

/// Remembers the row's clock (see conn::MergedRow): stored, or `held` back; returns false,
/// for the early returns of a change that wrote nothing. `bufs` are the previous entry's
/// allocations, reused; the change's decoded key goes back to `Conn::keys_scratch`.
fn keep(conn: &Conn, v: Valid, mut bufs: Bufs, rc: Option<RowClock>, held: Option<Held>) -> bool {
    if let Some(rc) = rc {
        let mark = conn.rollback_mark();
        let clock = v.table.clock();
        let mut slot = conn.merged_row.borrow_mut();
        match slot.as_mut() {
            // The row's record carried on (see `apply`): replaced in place, key kept; the
            // record it replaces lends its cells to the next change.
            Some(m) if m.is_row(clock.tid, v.pk) => {
                m.clock = clock;
                m.spare = std::mem::replace(&mut m.rc, rc).cells;
                m.mark = mark;
                m.held = held;
            }
            _ => {
                bufs.pk.clear();
                bufs.pk.extend_from_slice(v.pk);
                *slot = Some(MergedRow { clock, pk: bufs.pk, rc, mark, held, spare: bufs.spare });
            }
        }
    }
    conn.keys_scratch.set(v.keys);
    false
}

/// The allocations of the row a merge remembered last, reused for the next: its key, and
/// cell vectors for the next record (`cells`) and for the next row's `MergedRow::spare`.
#[derive(Default)]
struct Bufs {
    pk: Vec<u8>,
    cells: Vec<Option<Entry>>,
    spare: Vec<Option<Entry>>,
}

/// Writes the held clock record, if any (see the module comment); it then stays remembered
/// as stored, or, if the write fails, held: unless the failure ended the transaction (an
/// interrupt, a full disk: SQLite rolls everything back), which undid the writes the record
/// covers. Not while a merge writes the user table (its nested statement's savepoint is not
/// the record's level).
pub fn flush_held(conn: &Conn) -> Result<()> {
    if conn.merging_tid.get().is_some() {
        return Ok(());
    }
    let Some(h) = conn.merged_row.borrow().as_ref().and_then(|m| m.held) else {
        return Ok(());
    };
    let ends = conn.txn_ends.get();
    let mut m = conn.merged_row.borrow_mut().take().expect("checked above");
    let r = match h.stored {
        Some(old) => save_existing(conn, m.clock, &m.pk, &m.rc, old),
        None => save(conn, m.clock, &m.pk, &m.rc, None),
    };
    if r.is_ok() {
        m.held = None;
        m.mark = conn.rollback_mark();
    }
    if conn.txn_ends.get() == ends {
        *conn.merged_row.borrow_mut() = Some(m);
    }
    r
}

/// Writes everything held back: a merge's held clock, then the crr_dirty entries (its write
/// marks one); before the commit (xSync) and before crsql_changes is read.
pub fn write_held_back(conn: &Conn) -> Result<()> {
    flush_held(conn)?;
    super::dirty::flush(conn)
}

/// The local clock of the change's row and the buffers to reuse: the row's held record where
/// the change continues its run (it stays in place, so that a rollback of its writes still
/// drops it, and an error leaves it as it was; a copy is worked on), else the row's stored
/// one, after any other row's held record is written. `nested`: a merge inside a merge's
/// user-table write (a user trigger inserting into crsql_changes), which leaves the outer
/// merge's row alone and holds nothing back.
#[inline]
fn local_clock(conn: &Conn, v: &Valid, nested: bool) -> Result<(Option<RowClock>, Option<Held>, Bufs)> {
    let same_row = |m: &MergedRow| m.is_row(v.table.tid, v.pk);
    let continued = if nested {
        None
    } else {
        let depth = conn.depth.get();
        let mut m = conn.merged_row.borrow_mut();
        m.as_mut().filter(|m| same_row(m) && m.held.is_some_and(|h| h.level == depth)).map(|m| {
            // A copy to work on, in the spare's allocation.
            let mut cells = std::mem::take(&mut m.spare);
            cells.clone_from(&m.rc.cells);
            (RowClock { cl: m.rc.cl, sentinel: m.rc.sentinel, cells }, m.held)
        })
    };
    let (local, held, mut bufs) = match continued {
        Some((rc, held)) => (Some(rc), held, Bufs::default()),
        None => {
            let previous = if nested {
                None
            } else {
                flush_held(conn)?;
                conn.merged_row.borrow_mut().take()
            };
            match previous {
                Some(m) if same_row(&m) && conn.still_written(m.mark) => (Some(m.rc), None, Bufs { pk: m.pk, cells: Vec::new(), spare: m.spare }),
                Some(m) => (None, None, Bufs { pk: m.pk, cells: m.rc.cells, spare: m.spare }),
                None => (None, None, Bufs::default()),
            }
        }
    };
    let local = match local {
        Some(rc) => Some(rc),
        None => load_reusing(conn, v.table.clock(), v.pk, &mut bufs.cells)?,
    };
    Ok((local, held, bufs))
}

/// Whether the change's cell is written: a new life's always, and in the same life one that
/// wins over the local cell (SPEC 7.3; values compared only on equal col_versions).
#[inline]
fn decide_cell(conn: &Conn, v: &Valid, step: RowStep, local: Option<&RowClock>) -> Result<bool> {
    Ok(match (step, v.slot) {
        (RowStep::Recreate, Some(_)) => true,
        (RowStep::SameLife, Some(slot)) if rule::is_alive(v.cl) => {
            let rc = local.expect("same life implies a local clock");
            match rc.cell(slot) {
                None => true,
                Some(e) => {
                    let local_site = sites::site_id(conn, e.site)?;
                    let wins = |local_val: ValueRef<'_>| {
                        cell_wins(
                            CellWrite { col_version: v.col_version, value: v.val, site: &v.site },
                            Some(CellWrite { col_version: e.col_version, value: local_val, site: &local_site }),
                        )
                    };
                    // Values only matter on equal col_versions.
                    if e.col_version == v.col_version {
                        with_local_value(conn, v, slot, wins)?
                    } else {
                        wins(ValueRef::Null)
                    }
                }
            }
        }
        _ => false,
    })
}

/// Applies one change. Ok(true) when it changed this replica (rows impacted).
pub fn apply(conn: &Conn, incoming: Incoming) -> Result<bool> {
    let v = validate(conn, incoming)?;
    // A merge inside a merge's user-table write (a user trigger inserting into crsql_changes)
    // leaves the outer merge's row alone and holds nothing back.
    let nested = conn.merging_tid.get().is_some();
    let (local, held, mut bufs) = local_clock(conn, &v, nested)?;
    let local_cl = local.as_ref().map_or(0, |rc| rc.cl);
    // The dbv of the clock row stored for this key (a held record is not stored yet).
    let local_dbv = match held {
        Some(h) => h.stored,
        None => local.as_ref().map(RowClock::max_db_version),
    };
    let step = row_step(v.cl, local_cl);
    if step == RowStep::Stale {
        return Ok(keep(conn, v, bufs, local, held));
    }
    // Decided before any write (it may need the local value).
    let cell_applies = decide_cell(conn, &v, step, local.as_ref())?;
    let sentinel_raised = match (step, &local) {
        (RowStep::SameLife, Some(rc)) if sentinel_takes_site(v.slot.is_none(), rc.cl, rc.has_cells()) => {
            sentinel_site_wins(&v.site, &sites::site_id(conn, rc.sentinel.site)?)
        }
        _ => false,
    };
    if step == RowStep::SameLife && !cell_applies && !sentinel_raised {
        return Ok(keep(conn, v, bufs, local, held));
    }
    // Writes: user table first.
    let kept = match step {
        RowStep::Delete => delete_row(conn, &v)?,
        RowStep::Recreate => recreate_row(conn, &v)?,
        RowStep::SameLife if cell_applies => write_cell(conn, &v, v.slot.expect("cell applies"))?,
        _ => None,
    };
    let site = sites::ordinal_or_insert(conn, &v.site)?;
    let dbv = txn::db_version(conn)?;
    let entry = |col_version: i64| Entry { col_version, db_version: dbv, seq: txn::next_seq(conn), site };
    let mut rc = match (step, local) {
        (RowStep::SameLife, Some(rc)) => rc,
        // A new life: in the cells' allocation of the record it replaces, if any.
        (_, local) => {
            let mut cells = local.map_or_else(|| std::mem::take(&mut bufs.cells), |rc| rc.cells);
            cells.clear();
            cells.reserve(v.table.columns.len());
            RowClock { cl: v.cl, sentinel: entry(v.cl), cells }
        }
    };
    if sentinel_raised {
        rc.sentinel = entry(rc.cl);
    }
    if cell_applies {
        let slot = v.slot.expect("cell applies");
        rc.set_cell(slot, entry(v.col_version));
    }
    // Held back while SQLite reports rollbacks to us (crsql_changes is in the transaction).
    let hold = !nested && conn.txn_joined.get();
    if !hold {
        match local_dbv {
            Some(old) => save_existing(conn, v.table.clock(), v.pk, &rc, old)?,
            None => save(conn, v.table.clock(), v.pk, &rc, None)?,
        }
    }
    if v.slot.is_some() {
        txn::observe(conn, v.col_version)?;
    }
    conn.txn.borrow_mut().rows_impacted.add(conn.depth.get());
    let held = hold.then(|| Held { level: conn.depth.get(), stored: local_dbv });
    keep(conn, v, bufs, Some(rc), held);
    match kept {
        Some(e) => Err(e),
        None => Ok(true),
    }
}
