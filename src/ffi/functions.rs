//! SQL functions (SPEC 2) and the internal functions the tracking triggers call. Each is a
//! plain Rust `fn(&Conn, &[Value]) -> Result<Value>`, or, for the trigger functions that run
//! for every written row, `fn(&Conn, &Args) -> Result<Value>` (arguments read in place); one
//! trampoline translates for all.

use super::api::{self, sqlite};
use super::guard::guard;
use super::values::{self, Args};
use crate::core::{ident, pk_codec, table_shape};
use crate::core::value::{Value, ValueRef};
use crate::error::{Error, Result};
use crate::storage::conn::Conn;
use crate::storage::{alter, as_crr, config, dirty, sites, tables, track, txn};
use std::cell::Cell;
use std::ffi::CString;
use std::os::raw::{c_int, c_void};

#[derive(Clone, Copy)]
enum Func {
    Values(fn(&Conn, &[Value]) -> Result<Value>),
    Args(fn(&Conn, &Args) -> Result<Value>),
    /// A tracking trigger's record: built in the registration's buffer, returned as a blob.
    Record(fn(&Conn, &Args, &mut track::RecordBuf) -> Result<()>),
}
use Func::{Args as A, Record as R, Values as V};

/// Largest record buffer a registration keeps for its next call (records of wide rows are
/// rare; their buffer is freed).
const RECORD_BUF_KEEP: usize = 64 * 1024;

struct FnCtx {
    conn: *const Conn,
    f: Func,
    name: &'static str,
    /// For `Func::Record`: taken out for each call (so a nested call of the same function
    /// gets a fresh one instead of a borrow error) and put back.
    buf: Cell<track::RecordBuf>,
}

/// What an error of function `name` starts with: its name, but for the internal functions
/// our triggers call, whose name would tell an app's user nothing (the error stops the app's
/// own INSERT, UPDATE or DELETE).
fn error_context(name: &'static str) -> &'static str {
    if name.starts_with("crr_internal_") {
        "sqlite-crr"
    } else {
        name
    }
}

unsafe extern "C" fn trampoline(ctx: *mut api::sqlite3_context, argc: c_int, argv: *mut *mut api::sqlite3_value) {
    // SAFETY: user data is the FnCtx registered with this function; it and its Conn live until
    // the function's destructor runs at connection close. The arguments live for this call.
    let fc = &*(sqlite!(user_data(ctx)) as *const FnCtx);
    let conn = &*fc.conn;
    let r = match fc.f {
        Func::Values(f) => {
            // A public function may read or rewrite clocks: a merge's held clock is written
            // first (storage/merge.rs). Those that rewrite clocks today open a savepoint,
            // which writes it too; this covers any that reads without one.
            let args = values::args(argc, argv);
            guard(fc.name, || {
                conn.enter_call()?;
                crate::storage::merge::flush_held(conn)?;
                f(conn, &args)
            }.map_err(|e| e.context(error_context(fc.name))))
        }
        Func::Args(f) => {
            let args = Args::new(argc, argv);
            guard(fc.name, || f(conn, &args).map_err(|e| e.context(error_context(fc.name))))
        }
        Func::Record(f) => {
            let args = Args::new(argc, argv);
            let mut buf = fc.buf.take();
            buf.bytes.clear();
            let r = guard(fc.name, || f(conn, &args, &mut buf).map_err(|e| e.context(error_context(fc.name))));
            match &r {
                Ok(()) => values::result_blob(ctx, &buf.bytes),
                Err(e) => values::result_error(ctx, e),
            }
            if buf.bytes.capacity() <= RECORD_BUF_KEEP {
                fc.buf.set(buf);
            }
            return;
        }
    };
    match r {
        Ok(v) => values::result(ctx, &v),
        Err(e) => values::result_error(ctx, &e),
    }
}

unsafe extern "C" fn destroy_ctx(p: *mut c_void) {
    // SAFETY: p is the Box<FnCtx> leaked at registration, destroyed exactly once by SQLite.
    drop(Box::from_raw(p as *mut FnCtx));
}

/// Frees the function context and the connection state it owns (see `register_all`).
unsafe extern "C" fn destroy_owner(p: *mut c_void) {
    // SAFETY: as destroy_ctx; the owner function is the last registration and the only one
    // whose destructor frees the Conn, after which no callback of this connection runs.
    let fc = Box::from_raw(p as *mut FnCtx);
    super::entry::forget_connection(fc.conn);
    drop(Box::from_raw(fc.conn as *mut Conn));
}

fn register(conn: *const Conn, name: &'static str, n_arg: c_int, flags: c_int, f: Func, owner: bool) -> Result<()> {
    let cname = CString::new(name).expect("function names have no NUL");
    let ctx = Box::into_raw(Box::new(FnCtx { conn, f, name, buf: Cell::default() }));
    let destroy: unsafe extern "C" fn(*mut c_void) = if owner { destroy_owner } else { destroy_ctx };
    // SAFETY: conn is live; on failure SQLite calls destroy itself.
    let rc = unsafe {
        let db = (*conn).db.raw();
        sqlite!(create_function_v2(db, cname.as_ptr(), n_arg, api::SQLITE_UTF8 | flags, ctx as *mut c_void, Some(trampoline), None, None, Some(destroy)))
    };
    if rc != api::SQLITE_OK {
        return Err(Error::with_code(rc, format!("cannot register {name}")));
    }
    Ok(())
}

fn text_arg<'a>(args: &'a [Value], i: usize, what: &str) -> Result<&'a str> {
    match args.get(i) {
        Some(Value::Text(s)) => Ok(s),
        Some(v) => Err(Error::new(format!("{what} must be text, got {}", v.type_name()))),
        None => Err(Error::new(format!("missing {what}"))),
    }
}

fn ok() -> Value {
    Value::Text("OK".into())
}

fn as_crr_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    arity(args.len(), "crsql_as_crr", 1..=2)?;
    match args.len() {
        1 => as_crr::as_crr(conn, None, text_arg(args, 0, "table name")?)?,
        _ => as_crr::as_crr(conn, Some(text_arg(args, 0, "schema name")?), text_arg(args, 1, "table name")?)?,
    }
    Ok(ok())
}

fn as_table_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    as_crr::as_table(conn, text_arg(args, 0, "table name")?)?;
    Ok(ok())
}

fn begin_alter_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    alter::begin(conn, text_arg(args, 0, "table name")?)?;
    Ok(ok())
}

fn commit_alter_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    alter::commit(conn, text_arg(args, 0, "table name")?)?;
    Ok(ok())
}

fn site_id_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Blob(sites::own(conn)?.to_vec()))
}

fn new_site_id_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Blob(sites::replace_own(conn)?.to_vec()))
}

fn db_version_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Integer(txn::committed_db_version(conn)?))
}

fn next_db_version_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    if let Some(v) = conn.txn.borrow().db_version {
        return Ok(Value::Integer(v));
    }
    Ok(Value::Integer(txn::version_after(txn::max_db_version(conn)?)?))
}

/// The packed key of its arguments. A key's TEXT must be UTF-8 (SPEC 6): other bytes are an
/// error here, not replaced, so that a key is never packed as another key (the tracking
/// triggers of a table keyed by text call this, so such a write fails and changes nothing).
fn pack_columns_fn(_: &Conn, args: &Args) -> Result<Value> {
    if args.is_empty() {
        return Err(Error::new("give it the key's values: a key has 1 to 255 columns"));
    }
    let mut values = Vec::with_capacity(args.len());
    for i in 0..args.len() {
        let v = args.value_ref(i);
        if let ValueRef::Text(t) = v {
            if std::str::from_utf8(t).is_err() {
                return Err(Error::new(format!("key value {} is TEXT but not valid UTF-8 (a key's text must be UTF-8)", i + 1)));
            }
        }
        values.push(v.to_value());
    }
    pk_codec::encode(&values).map(Value::Blob).map_err(|e| Error::new(e.to_string()))
}

/// crsql_internal_sync_bit(): 1 while a merge writes a CRR's rows (so inside the app's
/// triggers that this fires), else 0, under cr-sqlite's name, so that an app's trigger can
/// skip merges with `WHEN crsql_internal_sync_bit() = 0`. cr-sqlite's setter form, which
/// stops recording local writes, is refused: here every local write is recorded.
fn sync_bit_fn(conn: &Conn, args: &Args) -> Result<Value> {
    if !args.is_empty() {
        return Err(Error::new("setting the sync bit is not supported (every local write is recorded); without an argument it says whether a merge is writing"));
    }
    Ok(Value::Integer(i64::from(conn.merging_tid.get().is_some())))
}

fn rows_impacted_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Integer(conn.txn.borrow().rows_impacted.total()))
}

fn config_set_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    let value = args.get(1).cloned().unwrap_or(Value::Null);
    config::set(conn, text_arg(args, 0, "setting name")?, &value)
}

fn config_get_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    config::get(conn, text_arg(args, 0, "setting name")?)
}

/// The functions cr-sqlite's triggers call (`crsql_after_insert('t', ...)`, and before 0.16
/// `crsql_increment_and_get_seq()`), on a table of a database cr-sqlite wrote: an error that
/// says so, where SQLite said "no such function" (a function this extension lacked, it seemed).
/// crsql_as_crr refuses such a table the same way (`table_shape::check`).
fn cr_sqlite_trigger_fn(_: &Conn, args: &[Value]) -> Result<Value> {
    let (table, fix) = match args.first() {
        Some(Value::Text(t)) => (
            format!("table \"{t}\""),
            format!(
                "drop them ({}), then SELECT crsql_as_crr({})",
                table_shape::drop_triggers(&table_shape::cr_sqlite_triggers_of(t)),
                ident::literal(t)
            ),
        ),
        _ => ("this table".to_string(), "drop them (named <table>__crsql_itrig, _utrig and _dtrig), then call crsql_as_crr on it".to_string()),
    };
    Err(Error::new(format!(
        "{table} has cr-sqlite's triggers, which call cr-sqlite's functions: sqlite-crr does not run them \
         (databases cr-sqlite wrote are not supported yet); to track it with sqlite-crr from now on, {fix}"
    )))
}

/// cr-sqlite's functions that sqlite-crr has no counterpart of (SPEC keeps cr-sqlite's names,
/// not all of its features): an error that says so, where SQLite said "no such function".
fn not_supported(name: &str, instead: &str) -> Result<Value> {
    Err(Error::new(format!("{name} is cr-sqlite's and not supported yet by sqlite-crr{instead}")))
}

fn automigrate_fn(_: &Conn, _: &[Value]) -> Result<Value> {
    not_supported("crsql_automigrate", ": change a CRR's schema between crsql_begin_alter and crsql_commit_alter")
}

fn fract_as_ordered_fn(_: &Conn, _: &[Value]) -> Result<Value> {
    not_supported("crsql_fract_as_ordered (fractional indexing)", "")
}

fn fract_key_between_fn(_: &Conn, _: &[Value]) -> Result<Value> {
    not_supported("crsql_fract_key_between (fractional indexing)", "")
}

fn finalize_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    conn.stmts.clear();
    Ok(ok())
}

fn set_wall_clock_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    conn.wall_ms_override.set(match args.first() {
        Some(Value::Integer(ms)) => Some(*ms),
        Some(Value::Null) | None => None,
        Some(v) => return Err(Error::new(format!("wall clock must be integer ms or NULL, got {}", v.type_name()))),
    });
    Ok(Value::Null)
}

/// This build's name, which another copy of the library loading on the same connection reads
/// (`entry::setup`), and `crsql_sha()` gives (cr-sqlite gives its build's git commit there).
fn build_fn(_: &Conn, _: &Args) -> Result<Value> {
    Ok(Value::Text(super::entry::build()))
}

/// Which copy of the library registered the functions (`entry::instance`).
fn instance_fn(_: &Conn, _: &Args) -> Result<Value> {
    Ok(Value::Integer(super::entry::instance()))
}

fn clock_rows_read_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Integer(conn.clock_rows_read.get() as i64))
}

fn records_recovered_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Integer(conn.records_recovered.get() as i64))
}

/// crr_set_scan_cap_for_testing(n): a crsql_changes scan holds at most about n changes at a
/// time (storage::changes::Scan::prune), so tests can read a feed in many parts; NULL restores
/// the default.
fn set_scan_cap_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    conn.scan_cap.set(match args.first() {
        Some(Value::Integer(n)) if *n >= 1 => usize::try_from(*n).unwrap_or(usize::MAX),
        Some(Value::Null) | None => crate::storage::changes::SCAN_CAP,
        Some(v) => return Err(Error::new(format!("scan cap must be a positive integer or NULL, got {}", v.type_name()))),
    });
    Ok(Value::Null)
}

/// crr_set_wide_writes_for_testing(n): merges write the cells, and make the rows, of a CRR
/// with n or more tracked columns through one statement for the table
/// (storage::merge::write_cell, recreate_row), and of no other (the schema-wide budget that
/// also sends narrower tables there, tables::SHARED_WRITE_BUDGET, is off), so tests can put
/// narrow tables through either path; NULL restores the defaults. The registry is loaded
/// again at its next use, with the new bound.
fn set_wide_writes_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    conn.wide_writes.set(match args.first() {
        Some(Value::Integer(n)) if *n >= 1 => Some(usize::try_from(*n).unwrap_or(usize::MAX)),
        Some(Value::Null) | None => None,
        Some(v) => return Err(Error::new(format!("wide writes bound must be a positive integer or NULL, got {}", v.type_name()))),
    });
    conn.tables.borrow_mut().invalidate();
    Ok(Value::Null)
}

fn statement_keys_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Integer(conn.stmts.keys() as i64))
}

/// The bytes this connection's cached statements hold (storage::stmt_cache::BUDGET bounds them).
fn statement_bytes_fn(conn: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Integer(conn.stmts.held() as i64))
}

/// crr_set_statement_budget_for_testing(bytes): the memory this connection's cached statements
/// may hold before the least recently used are finalized (0: every one but the last used is,
/// after each use), so tests can put every path through statements prepared again; NULL
/// restores the default.
fn set_statement_budget_fn(conn: &Conn, args: &[Value]) -> Result<Value> {
    conn.stmts.set_budget(match args.first() {
        Some(Value::Integer(n)) if *n >= 0 => Some(usize::try_from(*n).unwrap_or(usize::MAX)),
        Some(Value::Null) | None => None,
        Some(v) => return Err(Error::new(format!("statement budget must be a non-negative integer or NULL, got {}", v.type_name()))),
    });
    Ok(Value::Null)
}

/// Called by format 1's insert trigger only (`track::check_legacy_caller`).
fn internal_insert(conn: &Conn, args: &Args) -> Result<Value> {
    let tid = args.int(0, "table id")?;
    track::check_legacy_caller(conn, tid, format!("crr_internal_insert({tid},"))?;
    let slots = track::decode_slots(args.blob(2, "slot list")?)?;
    let clock = tables::clock_of(conn, tid)?;
    track::on_insert(conn, clock, args.blob(1, "pk")?, &slots)?;
    Ok(Value::Null)
}

/// An update trigger's slot list and its change flags, read in place.
fn slots_and_flags<'a>(args: &Args<'a>, slots_at: usize) -> Result<(track::Slots<'a>, track::Flags<'a>)> {
    let slots = track::Slots::parse(args.blob(slots_at, "slot list")?)?;
    let flags = if slots.is_empty() { track::Flags::Text(&[]) } else { flags_arg(args, slots_at + 1)? };
    Ok((slots, checked(&slots, flags)?))
}

/// A trigger's change flags argument: a bit mask, or text for wide tables (track::Flags).
fn flags_arg<'a>(args: &Args<'a>, i: usize) -> Result<track::Flags<'a>> {
    Ok(match args.value_ref(i) {
        ValueRef::Integer(bits) => track::Flags::Bits(bits),
        _ => track::Flags::Text(args.text_bytes(i, "change flags")?),
    })
}

/// `flags` for the slot list `slots`, refused where they do not fit it (none for no slots).
fn checked<'f>(slots: &track::Slots, flags: track::Flags<'f>) -> Result<track::Flags<'f>> {
    let flags = if slots.is_empty() { track::Flags::Text(&[]) } else { flags };
    flags.check(slots.len())?;
    Ok(flags)
}

/// The (slot, changed) pairs of an update trigger.
fn changed_slots(args: &Args, slots_at: usize) -> Result<Vec<(usize, bool)>> {
    let (slots, flags) = slots_and_flags(args, slots_at)?;
    Ok(slots.iter().enumerate().map(|(i, s)| (s, flags.changed(i))).collect())
}

fn internal_update(conn: &Conn, args: &Args) -> Result<Value> {
    let changed = changed_slots(args, 3)?;
    let clock = tables::clock_of(conn, args.int(0, "table id")?)?;
    track::on_update(conn, clock, args.blob(1, "old pk")?, args.blob(2, "new pk")?, &changed)?;
    Ok(Value::Null)
}

/// crr_internal_alter_old(tid, old pk): the BEFORE UPDATE trigger of an alter bracket
/// (storage::alter::bracket_old).
fn internal_alter_old(conn: &Conn, args: &Args) -> Result<Value> {
    alter::bracket_old(conn, args.int(0, "table id")?, args.blob(1, "old pk")?)?;
    Ok(Value::Null)
}

/// crr_internal_alter_new(tid, old pk, new pk): the AFTER UPDATE trigger of an alter bracket
/// (storage::alter::bracket_new).
fn internal_alter_new(conn: &Conn, args: &Args) -> Result<Value> {
    alter::bracket_new(conn, args.int(0, "table id")?, args.blob(1, "old pk")?, args.blob(2, "new pk")?)?;
    Ok(Value::Null)
}

/// The first call of every tracking trigger, for every row (its WHEN clause). A trigger that
/// goes on to record the write first makes sure crr_internal_txn is in the transaction
/// (`Conn::enter_write`: one flag test after the transaction's first row); a silenced one (a
/// merge writing the row, whose transaction crsql_changes is in) records nothing.
///
/// Triggers of internal schema 5 pass the database's token with the table id
/// (`track::tracking_arg`): a trigger of an ATTACHed replica's table passes its own
/// database's, and is refused.
fn internal_tracking(conn: &Conn, args: &Args) -> Result<Value> {
    let tid = track::checked_tid(conn, args.int(0, "table id")?)?;
    let on = track::tracking(conn, tid)?;
    if on {
        conn.enter_write()?;
    }
    Ok(Value::Integer(i64::from(on)))
}

fn internal_db_version(conn: &Conn, _: &Args) -> Result<Value> {
    Ok(Value::Integer(txn::db_version(conn)?))
}

/// The refusal of a call to a function registered for any argument count with a count it
/// does not take.
/// (Inlined, the refusal apart: the tracking triggers call two such functions per row.)
#[inline(always)]
fn arity(given: usize, name: &str, counts: std::ops::RangeInclusive<usize>) -> Result<()> {
    let (lo, hi) = (*counts.start(), *counts.end());
    if given >= lo && given <= hi {
        return Ok(());
    }
    Err(wrong_arity(given, name, lo, hi))
}

#[cold]
#[inline(never)]
fn wrong_arity(given: usize, name: &str, lo: usize, hi: usize) -> Error {
    let takes = if hi - lo == 1 { format!("{lo} or {hi}") } else { format!("{lo} to {hi}") };
    Error::new(format!("wrong number of arguments to function {name}(): {given} (it takes {takes})"))
}

/// crr_internal_mark(tid, key[, old dbv[, dbv]]): the db_version a trigger (or track::save)
/// stores in a bucket clock's row of rowid `key`, after marking its bucket
/// (storage/dirty.rs): the transaction's, or `dbv`; `old dbv` is the row's previous one.
fn internal_mark(conn: &Conn, args: &Args) -> Result<Value> {
    arity(args.len(), "crr_internal_mark", 2..=4)?;
    let dbv = if args.len() > 3 { args.int(3, "dbv")? } else { txn::db_version(conn)? };
    let old = if args.len() > 2 { Some(args.int(2, "old dbv")?) } else { None };
    dirty::mark(conn, args.int(0, "table id")?, args.int(1, "key")?, dbv, old)?;
    Ok(Value::Integer(dbv))
}

/// crr_internal_grow(tid[, dbv]): the db_version a trigger (or track::save) stores in a new
/// row of packed-key bucket clock `tid`: the transaction's, or `dbv`; the rows it adds are
/// marked by range (dirty::grow).
fn internal_grow(conn: &Conn, args: &Args) -> Result<Value> {
    arity(args.len(), "crr_internal_grow", 1..=2)?;
    let dbv = if args.len() > 1 { args.int(1, "dbv")? } else { txn::db_version(conn)? };
    dirty::grow(conn, args.int(0, "table id")?, dbv)?;
    Ok(Value::Integer(dbv))
}

fn internal_hwm(conn: &Conn, _: &Args) -> Result<Value> {
    Ok(Value::Integer(txn::hwm(conn)))
}

fn internal_fresh_record(conn: &Conn, args: &Args, buf: &mut track::RecordBuf) -> Result<()> {
    let slots = track::Slots::parse(args.blob(0, "slot list")?)?;
    track::fresh_record(conn, slots, &mut buf.bytes)
}

fn internal_insert_over_record(conn: &Conn, args: &Args, buf: &mut track::RecordBuf) -> Result<()> {
    let tid = args.int(0, "table id")?;
    let slots = track::Slots::parse(args.blob(4, "slot list")?)?;
    let (cl, clock, fresh) = (args.int(1, "cl")?, args.blob(2, "clock")?, args.blob(3, "fresh record")?);
    track::insert_over_record(conn, tid, cl, clock, fresh, slots, buf)
}

/// crr_internal_update_record(tid, cl, clock, slots): the record of a row the update trigger
/// found changed, with the flags its WHEN clause held (`internal_changed`); triggers of
/// earlier builds (until 2026-12-06) pass the flags as a fifth argument.
fn internal_update_record(conn: &Conn, args: &Args, buf: &mut track::RecordBuf) -> Result<()> {
    arity(args.len(), "crr_internal_update_record", 4..=5)?;
    let (tid, cl, clock) = (args.int(0, "table id")?, args.int(1, "cl")?, args.blob(2, "clock")?);
    let mut record = |slots: track::Slots, flags: track::Flags| {
        let changed = slots.iter().enumerate().filter(|(i, _)| flags.changed(*i)).map(|(_, s)| s);
        track::update_record(conn, tid, cl, clock, changed, buf)
    };
    if args.len() == 5 {
        let (slots, flags) = slots_and_flags(args, 3)?;
        return record(slots, flags);
    }
    let slots = track::Slots::parse(args.blob(3, "slot list")?)?;
    // Taken out for the call (the record's work runs SQL) and put back, buffer and all.
    let held = std::mem::take(&mut *conn.held_flags.borrow_mut());
    let r = checked(&slots, held.flags()).and_then(|flags| record(slots, flags));
    *conn.held_flags.borrow_mut() = held;
    r
}

/// crr_internal_changed(key_changed, flags): the update trigger's test, after
/// crr_internal_tracking, of whether the row's key or a tracked column changed; holds the
/// flags for the record function of the trigger's body (track::HeldFlags).
fn internal_changed(conn: &Conn, args: &Args) -> Result<Value> {
    let key_changed = args.int(0, "key changed")? != 0;
    let any = conn.held_flags.borrow_mut().hold(flags_arg(args, 1)?);
    Ok(Value::Integer(i64::from(key_changed || any)))
}

fn internal_tombstone_record(conn: &Conn, _: &Args, buf: &mut track::RecordBuf) -> Result<()> {
    track::tombstone_record(conn, buf)
}

/// Called by format 1's delete trigger only (`track::check_legacy_caller`).
fn internal_delete(conn: &Conn, args: &Args) -> Result<Value> {
    let tid = args.int(0, "table id")?;
    track::check_legacy_caller(conn, tid, format!("crr_internal_delete({tid},"))?;
    let clock = tables::clock_of(conn, tid)?;
    track::on_delete(conn, clock, args.blob(1, "pk")?)?;
    Ok(Value::Null)
}

/// Registers every function. The last one, `crsql_site_id`, owns the Conn: its destructor
/// (run by SQLite when the connection closes) frees it.
pub fn register_all(conn: *const Conn) -> Result<()> {
    const PURE: c_int = api::SQLITE_DETERMINISTIC | api::SQLITE_INNOCUOUS;
    const TRIGGER: c_int = api::SQLITE_INNOCUOUS;
    // Reads without side effects (but crsql_site_id's install of the extension's tables in a
    // new database, as any first use of the extension there makes them): an app's views and
    // triggers may call them where `PRAGMA trusted_schema` is off (until 2026-12-07 "unsafe
    // use of crsql_db_version()", which made every write to a table fail once an app trigger
    // on it called one). What writes (crsql_as_crr, crsql_config_set, ...) is not marked:
    // SQLite refuses it in views and triggers then, as it should for a schema it does not
    // trust.
    const READ: c_int = api::SQLITE_INNOCUOUS;
    let table: &[(&'static str, c_int, c_int, Func)] = &[
        // (One registration for every argument count: see crr_internal_mark's.)
        ("crsql_as_crr", -1, 0, V(as_crr_fn)),
        ("crsql_as_table", 1, 0, V(as_table_fn)),
        ("crsql_begin_alter", 1, 0, V(begin_alter_fn)),
        ("crsql_commit_alter", 1, 0, V(commit_alter_fn)),
        ("crsql_db_version", 0, READ, V(db_version_fn)),
        ("crsql_next_db_version", 0, READ, V(next_db_version_fn)),
        ("crsql_pack_columns", -1, PURE, A(pack_columns_fn)),
        ("crsql_rows_impacted", 0, READ, V(rows_impacted_fn)),
        ("crsql_internal_sync_bit", -1, TRIGGER, A(sync_bit_fn)),
        ("crsql_config_set", 2, 0, V(config_set_fn)),
        ("crsql_config_get", 1, READ, V(config_get_fn)),
        ("crsql_finalize", 0, 0, V(finalize_fn)),
        // (cr-sqlite's gives its git commit; apps call it to see that the extension is loaded.)
        ("crsql_sha", 0, PURE, A(build_fn)),
        // (Innocuous: an error, and cr-sqlite's triggers call them where the schema may not be trusted.)
        ("crsql_after_insert", -1, READ, V(cr_sqlite_trigger_fn)),
        ("crsql_after_update", -1, READ, V(cr_sqlite_trigger_fn)),
        ("crsql_after_delete", -1, READ, V(cr_sqlite_trigger_fn)),
        ("crsql_increment_and_get_seq", 0, READ, V(cr_sqlite_trigger_fn)),
        ("crsql_get_seq", 0, READ, V(cr_sqlite_trigger_fn)),
        ("crsql_automigrate", -1, 0, V(automigrate_fn)),
        ("crsql_fract_as_ordered", -1, 0, V(fract_as_ordered_fn)),
        ("crsql_fract_key_between", 2, READ, V(fract_key_between_fn)),
        ("crr_new_site_id", 0, api::SQLITE_DIRECTONLY, V(new_site_id_fn)),
        ("crr_set_wall_clock_for_testing", 1, api::SQLITE_DIRECTONLY, V(set_wall_clock_fn)),
        ("crr_debug_clock_rows_read", 0, 0, V(clock_rows_read_fn)),
        ("crr_debug_records_recovered", 0, 0, V(records_recovered_fn)),
        ("crr_debug_statement_keys", 0, 0, V(statement_keys_fn)),
        ("crr_debug_statement_bytes", 0, 0, V(statement_bytes_fn)),
        ("crr_set_statement_budget_for_testing", 1, api::SQLITE_DIRECTONLY, V(set_statement_budget_fn)),
        ("crr_set_scan_cap_for_testing", 1, api::SQLITE_DIRECTONLY, V(set_scan_cap_fn)),
        ("crr_set_wide_writes_for_testing", 1, api::SQLITE_DIRECTONLY, V(set_wide_writes_fn)),
        ("crr_internal_build", 0, PURE, A(build_fn)),
        ("crr_internal_instance", 0, PURE, A(instance_fn)),
        ("crr_internal_insert", 3, TRIGGER, A(internal_insert)),
        ("crr_internal_update", 5, TRIGGER, A(internal_update)),
        ("crr_internal_delete", 2, TRIGGER, A(internal_delete)),
        ("crr_internal_tracking", 1, TRIGGER, A(internal_tracking)),
        ("crr_internal_alter_old", 2, TRIGGER, A(internal_alter_old)),
        ("crr_internal_alter_new", 3, TRIGGER, A(internal_alter_new)),
        ("crr_internal_db_version", 0, TRIGGER, A(internal_db_version)),
        // (Each registration is a FuncDef that SQLite allocates from the connection's
        // lookaside memory, for good: one for every argument count leaves less of it to
        // statements, and preparing one cost more, 3.5% of `make instructions`' prep row for
        // three more. So one each, taking any count.)
        ("crr_internal_mark", -1, TRIGGER, A(internal_mark)),
        ("crr_internal_grow", -1, TRIGGER, A(internal_grow)),
        ("crr_internal_hwm", 0, TRIGGER, A(internal_hwm)),
        ("crr_internal_fresh_record", 1, TRIGGER, R(internal_fresh_record)),
        ("crr_internal_insert_over_record", 5, TRIGGER, R(internal_insert_over_record)),
        ("crr_internal_update_record", -1, TRIGGER, R(internal_update_record)),
        ("crr_internal_changed", 2, TRIGGER, A(internal_changed)),
        ("crr_internal_tombstone_record", 0, TRIGGER, R(internal_tombstone_record)),
    ];
    for (name, n, flags, f) in table {
        register(conn, name, *n, *flags, *f, false)?;
    }
    register(conn, "crsql_site_id", 0, READ, V(site_id_fn), true)
}
