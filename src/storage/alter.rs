//! crsql_begin_alter / crsql_commit_alter: ALTER TABLE on a CRR.
//!
//! begin: replaces the update trigger (it names every tracked column, and ALTER refuses to drop
//! a column a trigger's body names) by two whose bodies name only the key (`bracket_old` /
//! `bracket_new`),
//! and remembers the table's columns in `crr_meta` as `alter.<tid>`. The insert and delete
//! triggers name only key columns too (SQLite rewrites them on RENAME), so every write stays
//! tracked during the alter.
//! commit: re-reads the table and maps its columns onto clock slots. Columns whose names
//! disappeared and columns whose names appeared are paired in table order when their declared
//! types agree: those were renamed (RENAME COLUMN keeps a column's place and type) and keep
//! their slot and history. A tracked column left unpaired was dropped (its slot is cleared from
//! every clock record); a new column gets a new slot, and rows whose value differs from the
//! column's default become changes. Then the triggers are rebuilt; if the insert trigger was
//! lost (the 12-step rebuild drops the table), rows without a live clock are recorded as
//! inserts and live clocks without a row as deletes. A rename taken for a drop plus an add
//! still converges: the column's values are then sent again as new writes.
//!
//! Updates between begin and commit are recorded as the update trigger records them: the
//! bracket's BEFORE UPDATE trigger keeps the row's tracked values, its AFTER UPDATE trigger
//! reads them again and records the columns that changed (and a changed key as a delete and an
//! insert) through `track::on_update`. Until 2026-12-05 they were not tracked at all: such an
//! update never reached peers, and a key changed in a bracket left peers a row the replica no
//! longer had; begin called again in a bracket an earlier build began installs the two
//! triggers. A table the 12-step rebuild made anew has no triggers until commit: its updates
//! after the rebuild are still not seen (its inserts and deletes are, by commit's comparison).
//!
//! An added column's cells are recorded where they differ, byte for byte and in class, from
//! what SQLite gives a row inserted without the column (`column_defaults` asks SQLite: a TEMP
//! table, with a row made before the same columns are added to it and one after, made before
//! the commit's savepoint with the probe, `read_before_savepoint`, which reports a read SQLite
//! stopped, as crsql_as_crr does, through `as_crr::describe_before_savepoint`;
//! `record_non_default`).
//!
//! **Invariant:** after the commit every row at the default holds the inserted row's value, as
//! rows a merge makes and rows a 12-step rebuild copies do, so old rows that ADD COLUMN gave
//! another value (an untyped `DEFAULT 1.0` on SQLite 3.40: 1 vs 1.0) are updated first, unsent,
//! with main's triggers off (`give_old_rows_the_inserted_default`,
//! `ffi::db::Db::without_main_triggers`). Since that value must be the same on every replica,
//! an added TEXT column whose default is a REAL, which SQLite versions write as different text,
//! is refused (`refuse_real_default_as_text`).
//!
//! **Invariant** after a 12-step rebuild: a cell without a clock entry holds what a merge would
//! make of it (its column's default now); the others are recorded at `track::UNWRITTEN_VERSION`
//! (0, below every write) by `record_unmade_defaults`.

use super::as_crr::{backfill, describe, for_each_key, write_columns, Tracked};
use super::conn::Conn;
use super::dropped::{raise_floor, tidy_registry};
use super::savepoint::in_savepoint;
use super::stmt_cache::Key;
use super::tables::{self, Clock, TableInfo};
use super::triggers::{has_trigger, install_triggers};
use super::{meta, track, txn};
use crate::core::ident::quote;
use crate::core::merge::sentinel_visible;
use crate::core::pk_codec;
use crate::core::row_clock::SLOTS_MAX;
use crate::core::table_shape::{Shape, TableDesc};
use crate::core::value::{Value, ValueRef};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::rc::Rc;

const SEP: char = '\u{1}';
const TYPE_SEP: char = '\u{2}';

fn alter_key(tid: i64) -> String {
    format!("alter.{tid}")
}

pub fn begin(conn: &Conn, table: &str) -> Result<()> {
    if super::schema::refuse_before_install(conn)? {
        // (A new database has no CRR: refused without making the internal tables.)
        return Err(tables::not_a_crr(table));
    }
    super::schema::install_to_write(conn)?;
    in_savepoint(conn, "crr_begin_alter", || {
        // (A rebuild in the bracket drops the triggers, and the registry then finds the table
        // under its registered name.)
        tidy_registry(conn, true)?;
        let info = tables::crr_named(conn, table)?;
        if let Some(before) = begin_columns(conn, info.tid)? {
            // Already between begin and commit. A bracket an earlier build began has no
            // update trigger at all (updates went untracked there): give it this build's.
            if !has_trigger(conn, &format!("crr_{}_update", info.tid))? {
                install_bracket_triggers(conn, &info, &before)?;
            }
            return Ok(());
        }
        let desc = describe(conn, &info.name)?;
        let before: Vec<(String, String)> = desc.columns.iter().map(|c| (c.name.clone(), c.decl_type.clone())).collect();
        let names: Vec<String> = before.iter().map(|(n, ty)| format!("{n}{TYPE_SEP}{ty}")).collect();
        meta::set(conn, &alter_key(info.tid), &Value::Text(names.join(&SEP.to_string())))?;
        conn.db.exec(&format!("DROP TRIGGER IF EXISTS main.\"crr_{}_update\"", info.tid))?;
        install_bracket_triggers(conn, &info, &before)
    })
}

fn install_bracket_triggers(conn: &Conn, info: &tables::TableInfo, before: &[(String, String)]) -> Result<()> {
    let now = columns_now(conn, info, before)?;
    let tracked: Vec<String> = now.tracked.iter().map(|(_, n)| n.clone()).collect();
    conn.db.exec(&bracket_trigger_sql(info.tid, meta::make_token(conn)?, &now.table, &now.pk, &tracked))?;
    conn.stmts.clear();
    Ok(())
}

/// A CRR's key and tracked columns under their names now, inside a bracket that began with
/// columns `before`: mapped as commit will map them (`renames`). A tracked column that is gone
/// is left out; so is a column added in the bracket (it has no slot until commit).
struct ColumnsNow {
    table: String,
    pk: Vec<String>,
    /// (slot, name now), in slot order.
    tracked: Vec<(usize, String)>,
}

fn columns_now(conn: &Conn, info: &tables::TableInfo, before: &[(String, String)]) -> Result<ColumnsNow> {
    let desc = describe(conn, &info.name)?;
    let after: Vec<(String, String)> = desc.columns.iter().map(|c| (c.name.clone(), c.decl_type.clone())).collect();
    let renamed = renames(before, &after);
    let now = |n: &String| renamed.get(n).unwrap_or(n).clone();
    let tracked = info
        .columns
        .iter()
        .enumerate()
        .filter_map(|(slot, name)| Some((slot, now(name.as_ref()?))))
        .filter(|(_, name)| desc.columns.iter().any(|c| c.name == *name))
        .collect();
    Ok(ColumnsNow { table: desc.name, pk: info.pk.iter().map(now).collect(), tracked })
}

/// Whether table `tid` is between crsql_begin_alter and crsql_commit_alter.
pub fn in_bracket(conn: &Conn, tid: i64) -> Result<bool> {
    Ok(meta::get(conn, &alter_key(tid))?.is_some())
}

/// The columns the table had at crsql_begin_alter (name, declared type), None outside a
/// bracket.
fn begin_columns(conn: &Conn, tid: i64) -> Result<Option<Vec<(String, String)>>> {
    Ok(match meta::get(conn, &alter_key(tid))? {
        Some(Value::Text(t)) => Some(
            t.split(SEP)
                .map(|c| {
                    let (n, ty) = c.split_once(TYPE_SEP).unwrap_or((c, ""));
                    (n.to_owned(), ty.to_owned())
                })
                .collect(),
        ),
        _ => None,
    })
}

/// The update triggers of a bracket. Their bodies name only the key columns, so that ALTER
/// TABLE can drop or rename any other: the BEFORE trigger keeps the row's tracked values
/// (`bracket_old`), the AFTER trigger (named as the update trigger it stands in for, which
/// commit replaces) compares and records (`bracket_new`). Both fire only for an UPDATE that
/// sets a key or `tracked` column (`UPDATE OF`: SQLite renames a column there with the
/// table's, and lets DROP COLUMN drop one it lists), so the usual migration step of filling
/// a column added in the bracket (`UPDATE t SET d = ...`) costs nothing: commit records its
/// values. (Firing on every UPDATE made that step 9.5 times slower: 0.042 -> 0.40 s for
/// 100,000 rows.)
fn bracket_trigger_sql(tid: i64, token: i64, table: &str, pk: &[String], tracked: &[String]) -> String {
    let keys = |p: &str| pk.iter().map(|k| format!("{p}.{}", quote(k))).collect::<Vec<_>>().join(", ");
    let of = pk.iter().chain(tracked).map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    format!(
        "CREATE TRIGGER main.\"crr_{tid}_alter_old\" BEFORE UPDATE OF {of} ON {t} WHEN crr_internal_tracking({arg}) BEGIN \
           SELECT crr_internal_alter_old({tid}, crsql_pack_columns({old})); \
         END;\n\
         CREATE TRIGGER main.\"crr_{tid}_update\" AFTER UPDATE OF {of} ON {t} WHEN crr_internal_tracking({arg}) BEGIN \
           SELECT crr_internal_alter_new({tid}, crsql_pack_columns({old}), crsql_pack_columns({new})); \
         END;",
        t = quote(table),
        arg = track::tracking_arg(tid, token),
        old = keys("OLD"),
        new = keys("NEW"),
    )
}

/// A tracked value as the bracket's triggers read it, compared exactly (storage class and
/// bytes: text that is not UTF-8 too).
#[derive(Debug, PartialEq)]
enum Held {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Held {
    fn from(v: ValueRef<'_>) -> Held {
        match v {
            ValueRef::Null => Held::Null,
            ValueRef::Integer(i) => Held::Integer(i),
            ValueRef::Real(f) => Held::Real(f),
            ValueRef::Text(t) => Held::Text(t.to_vec()),
            ValueRef::Blob(b) => Held::Blob(b.to_vec()),
        }
    }
}

/// What the bracket's update triggers know of one table in the current schema: which of its
/// columns are tracked, under their current names, mapped onto slots as commit will map them
/// (`renames`; a column added in the bracket has no slot yet, commit records its values).
pub struct BracketPlan {
    tid: i64,
    cookie: i64,
    /// The rollback mark it was made under: a rolled-back ALTER can bring the schema cookie
    /// back with another schema behind it (as for the registry, `tables`).
    mark: Option<u64>,
    clock: Clock,
    /// The slots of the columns `sql` reads, in its column order.
    slots: Vec<usize>,
    /// Those columns of one row, by its key values (?1, ...).
    sql: String,
}

/// The bracket's state on a connection: the plan of the last table, and the values of rows
/// whose BEFORE UPDATE trigger ran and whose AFTER UPDATE trigger has not yet (a stack: an
/// app's trigger may update another row in between). Cleared at every transaction's end.
#[derive(Default)]
pub struct Bracket {
    plan: Option<Rc<BracketPlan>>,
    old: Vec<(i64, Vec<u8>, Option<Vec<Held>>)>,
}

impl Bracket {
    pub fn clear(&mut self) {
        self.plan = None;
        self.old.clear();
    }
}

fn bracket_plan(conn: &Conn, tid: i64) -> Result<Rc<BracketPlan>> {
    let cookie = tables::schema_cookie(conn)?;
    if let Some(p) = conn.bracket.borrow().plan.as_ref() {
        if p.tid == tid && p.cookie == cookie && conn.still_written(p.mark) {
            return Ok(p.clone());
        }
    }
    let info = tables::by_tid(conn, tid)?.ok_or_else(|| Error::new(format!("table id {tid} is not a CRR")))?;
    let before = begin_columns(conn, tid)?
        .ok_or_else(|| Error::new(format!("table \"{}\": an update trigger of crsql_begin_alter ran outside the bracket", info.name)))?;
    let now = columns_now(conn, &info, &before)?;
    let columns = if now.tracked.is_empty() { "NULL".to_string() } else { now.tracked.iter().map(|(_, n)| quote(n)).collect::<Vec<_>>().join(", ") };
    let sql = format!("SELECT {columns} FROM main.{} WHERE {}", quote(&now.table), tables::key_where(&now.pk, 1));
    let slots = now.tracked.iter().map(|(s, _)| *s).collect();
    // The cached statement of the last plan may read another shape.
    conn.stmts.forget(Key::BracketRow(tid));
    let plan = Rc::new(BracketPlan { tid, cookie, mark: conn.rollback_mark(), clock: info.clock(), slots, sql });
    conn.bracket.borrow_mut().plan = Some(plan.clone());
    Ok(plan)
}

/// The tracked values of the row with packed key `pk`, None if there is none.
fn bracket_row(conn: &Conn, plan: &BracketPlan, pk: &[u8]) -> Result<Option<Vec<Held>>> {
    let key = pk_codec::decode(pk).map_err(|e| Error::new(format!("invalid key of an updated row: {e}")))?;
    conn.stmts.with(conn.db, Key::BracketRow(plan.tid), || plan.sql.clone(), |s| {
        for (i, v) in key.iter().enumerate() {
            s.bind_value(i + 1, v)?;
        }
        if !s.step()? {
            return Ok(None);
        }
        Ok(Some((0..plan.slots.len()).map(|i| Held::from(s.value_ref(i))).collect()))
    })
}

/// crr_internal_alter_old(tid, old key): BEFORE UPDATE in a bracket, keeps the row's values.
pub fn bracket_old(conn: &Conn, tid: i64, old_pk: &[u8]) -> Result<()> {
    let plan = bracket_plan(conn, tid)?;
    let row = bracket_row(conn, &plan, old_pk)?;
    conn.bracket.borrow_mut().old.push((tid, old_pk.to_vec(), row));
    Ok(())
}

/// crr_internal_alter_new(tid, old key, new key): AFTER UPDATE in a bracket, records the
/// update as the update trigger would: the columns whose values changed, or a changed key
/// (a delete and an insert). Without the row's earlier values every column counts as changed.
pub fn bracket_new(conn: &Conn, tid: i64, old_pk: &[u8], new_pk: &[u8]) -> Result<()> {
    let plan = bracket_plan(conn, tid)?;
    let old = {
        let mut b = conn.bracket.borrow_mut();
        let at = b.old.iter().rposition(|(t, k, _)| *t == tid && k == old_pk);
        at.and_then(|i| b.old.remove(i).2)
    };
    let clock = plan.clock;
    let Some(new) = bracket_row(conn, &plan, new_pk)? else {
        // Gone already: an app's AFTER trigger deleted it, and the delete trigger recorded
        // that. A changed key still leaves the old key's clock live: that row is gone too.
        if old_pk != new_pk {
            track::on_delete(conn, clock, old_pk)?;
        }
        return Ok(());
    };
    let changed: Vec<(usize, bool)> = match old.filter(|o| o.len() == new.len()) {
        Some(old) => plan.slots.iter().zip(old.iter().zip(&new)).map(|(s, (o, n))| (*s, o != n)).collect(),
        None => plan.slots.iter().map(|s| (*s, true)).collect(),
    };
    track::on_update(conn, clock, old_pk, new_pk, &changed)
}

/// Old name -> new name for renamed columns: the names only on one side, paired in table order
/// where the declared types agree.
fn renames(before: &[(String, String)], after: &[(String, String)]) -> HashMap<String, String> {
    let gone: Vec<&(String, String)> = before.iter().filter(|(n, _)| !after.iter().any(|(m, _)| m == n)).collect();
    let new: Vec<&(String, String)> = after.iter().filter(|(n, _)| !before.iter().any(|(m, _)| m == n)).collect();
    let mut out = HashMap::new();
    let mut j = 0;
    for (old, ty) in gone {
        if let Some(k) = new[j..].iter().position(|(_, t)| t.eq_ignore_ascii_case(ty)) {
            out.insert(old.clone(), new[j + k].0.clone());
            j += k + 1;
        }
    }
    out
}

/// Removes the entries of `slots` from every clock record of `clock`.
///
/// A row left without cells shows its sentinel from now on (`sentinel_visible`), though it
/// was written long ago: it gets this transaction's db_version and a seq, so that "changes
/// since V" carries it to peers. Each replica that made the same alter has its own sentinel
/// for the row (the site of the write it saw first); the exchange settles on one site
/// (`sentinel_site_wins`), as it does for any visible sentinel.
///
/// Streamed: each row is rewritten right after the scan read it, not collected first. With
/// `dirty::mark` skipping rows whose dbv did not rise, crsql_commit_alter after a DROP COLUMN
/// on 1 million rows grows peak RSS by 0.1 MiB (it was 282 MiB). The scan goes in key order
/// and the rewrite keeps the key, so it neither skips nor revisits a row.
fn clear_slots(conn: &Conn, clock: Clock, slots: &[usize]) -> Result<()> {
    let mut s = conn.db.prepare(&format!("SELECT pk, cl, clock FROM {} ORDER BY pk", clock.table()), false)?;
    let mut pk = Vec::new();
    while s.step()? {
        let mut rc = track::decode(conn, clock.tid, s.i64(1), s.bytes(2))?;
        if !slots.iter().any(|slot| rc.cell(*slot).is_some()) {
            continue;
        }
        pk.clear();
        clock.read_key(&s, 0, &mut pk);
        let old_dbv = rc.max_db_version();
        let was_visible = sentinel_visible(rc.cl, rc.has_cells());
        for slot in slots {
            if let Some(c) = rc.cells.get_mut(*slot) {
                *c = None;
            }
        }
        if !was_visible && sentinel_visible(rc.cl, rc.has_cells()) {
            rc.sentinel.db_version = txn::db_version(conn)?;
            rc.sentinel.seq = txn::next_seq(conn);
        }
        track::save(conn, clock, &pk, &rc, Some(old_dbv))?;
    }
    Ok(())
}

/// What crsql_commit_alter reads before its savepoint, because it needs TEMP tables
/// (`probe::make_probe` says why). Empty where the table cannot be described: the savepoint
/// reports that.
#[derive(Default)]
struct Before {
    /// `column_defaults`.
    defaults: HashMap<String, Option<(Value, Value)>>,
    /// After a 12-step rebuild, the slots some row has no clock entry for
    /// (`slots_without_entries`, for `record_unmade_defaults`).
    unwritten: Vec<usize>,
}

fn read_before_savepoint(conn: &Conn, table: &str) -> Result<Before> {
    let Some(info) = tables::by_name(conn, table)? else { return Ok(Before::default()) };
    // (Until 2026-12-06 a failure to read the table, an interrupt say, passed here, and after a
    // rebuild an added column was taken for one whose default is an expression.)
    let Some(desc) = super::as_crr::describe_before_savepoint(conn, &info.name)? else { return Ok(Before::default()) };
    super::probe::make_probe(conn, &desc)?;
    let rebuilt = !has_trigger(conn, &format!("crr_{}_insert", info.tid))?;
    let (mut unwritten, mut also) = (Vec::new(), Vec::new());
    if let (true, Some(before)) = (rebuilt, begin_columns(conn, info.tid)?) {
        unwritten = slots_without_entries(conn, info.clock(), info.columns.len())?;
        also = columns_now(conn, &info, &before)?.tracked.into_iter().filter(|(slot, _)| unwritten.contains(slot)).map(|(_, n)| n).collect();
    }
    Ok(Before { defaults: column_defaults(conn, &info, &desc, rebuilt, &also)?, unwritten })
}

pub fn commit(conn: &Conn, table: &str) -> Result<()> {
    super::savepoint::lock_first(conn)?;
    // (The table's current name: a rename in the bracket is followed by the triggers.)
    let Before { defaults, mut unwritten } = read_before_savepoint(conn, table)?;
    in_savepoint(conn, "crr_commit_alter", || {
        // Another CRR renamed in the bracket may still hold this one's new name in crr_tables,
        // and so may one dropped in it (`DROP TABLE t; ALTER TABLE u RENAME TO t`: until
        // 2026-12-06 the commit failed with `UNIQUE constraint failed: crr_tables.name`); this
        // one's own new name is recorded too. Dropped CRRs' clock tables are only emptied
        // (dropped by the next crsql_as_crr or begin).
        tidy_registry(conn, false)?;
        let info = tables::crr_named(conn, table)?;
        let Some(before) = begin_columns(conn, info.tid)? else {
            return Err(Error::new(format!("table \"{}\": crsql_commit_alter without crsql_begin_alter", info.name)));
        };
        let desc = describe(conn, &info.name)?;
        let shape = super::as_crr::check_shape(conn, &desc)?;
        let after: Vec<(String, String)> = desc.columns.iter().map(|c| (c.name.clone(), c.decl_type.clone())).collect();
        let renamed = renames(&before, &after);
        let old_pk: Vec<String> = info.pk.iter().map(|k| renamed.get(k).unwrap_or(k).clone()).collect();
        if shape.pk != old_pk {
            return Err(Error::new(format!(
                "table \"{}\": changing the primary key of a CRR is not supported (was {:?}, now {:?})",
                info.name, info.pk, shape.pk
            )));
        }
        super::as_crr::keeps_key_layout(&info, &shape)?;
        let Slots { cols, dropped, added } = map_slots(&info, &shape, &renamed);
        // Slots are never reused (a dropped column's stays a hole), so a table that has had
        // SLOTS_MAX tracked columns over its life has none left: a record cannot hold more.
        if let Some((_, name)) = added.iter().find(|(slot, _)| *slot >= SLOTS_MAX) {
            return Err(Error::new(format!(
                "table \"{}\": column \"{name}\" cannot be tracked: the CRR has had {SLOTS_MAX} tracked columns over its life, \
                 the most a clock record holds (dropped columns keep their places); crsql_as_table and crsql_as_crr make its clock anew",
                info.name
            )));
        }
        for (_, name) in &added {
            if let Some(c) = desc.columns.iter().find(|c| &c.name == name) {
                refuse_real_default_as_text(conn, &desc, c)?;
            }
        }
        write_columns(conn, info.tid, &shape.pk, &cols)?;
        conn.tables.borrow_mut().invalidate();
        conn.stmts.clear();
        if !dropped.is_empty() {
            // Their entries go: keep db_versions and the clock above the ones they held (as
            // crsql_as_table does for a whole clock). A dropped column may hold the highest
            // db_version, and handing it out again gave a second transaction a version peers
            // had already synced past.
            txn::secure_mark(conn)?;
            raise_floor(conn, txn::max_db_version(conn)?)?;
            clear_slots(conn, info.clock(), &dropped)?;
        }
        let inserts_tracked = has_trigger(conn, &format!("crr_{}_insert", info.tid))?;
        record_added(conn, &info, &desc, &shape, (&cols, added), &defaults, inserts_tracked)?;
        conn.db.exec(&format!("DROP TRIGGER IF EXISTS main.\"crr_{}_alter_old\"", info.tid))?;
        conn.bracket.borrow_mut().clear();
        install_triggers(conn, info.clock(), &desc.name, &shape.pk, &shape.pk_affinity, &cols)?;
        if !inserts_tracked {
            // The table was dropped and made again (the twelve-step rebuild): its triggers went
            // with it, so inserts and deletes since then were not tracked either.
            backfill(conn, info.clock(), &desc.name, &shape.pk, &cols)?;
            tombstone_missing(conn, info.clock(), &desc.name, &shape.pk)?;
            // Those added now with a default that is an expression are looked at too.
            let expression = |t: &&Tracked| matches!(defaults.get(&t.name.to_ascii_lowercase()), Some(None)) && t.slot >= info.columns.len();
            unwritten.extend(cols.iter().filter(expression).map(|t| t.slot));
            let look: Vec<&Tracked> = cols.iter().filter(|t| unwritten.contains(&t.slot)).collect();
            record_unmade_defaults(conn, info.clock(), &desc.name, &shape.pk, &look, &defaults)?;
        }
        conn.db.exec(&format!("DELETE FROM main.crr_meta WHERE key = 'alter.{}'", info.tid))?;
        Ok(())
    })
}

/// The table's tracked columns after the alter, mapped onto the clock's slots.
struct Slots {
    /// Every tracked column with its slot: a renamed one keeps its own, an added one gets the
    /// next free.
    cols: Vec<Tracked>,
    /// The slots of the columns the alter dropped.
    dropped: Vec<usize>,
    /// The added columns' slots and names.
    added: Vec<(usize, String)>,
}

/// Maps the registry's tracked columns of `info` (renamed as `renamed` says) onto the columns
/// of `shape`, the table now.
fn map_slots(info: &TableInfo, shape: &Shape, renamed: &HashMap<String, String>) -> Slots {
    let mut cols: Vec<Tracked> = Vec::new();
    let mut dropped = Vec::new();
    for (slot, name) in info.columns.iter().enumerate() {
        let Some(name) = name else { continue };
        let now = renamed.get(name).unwrap_or(name);
        match shape.columns.iter().find(|c| &c.name == now) {
            Some(c) => cols.push(Tracked { slot, name: now.clone(), keeps_class: c.keeps_storage_class }),
            None => dropped.push(slot),
        }
    }
    let mut next_slot = info.columns.len();
    let mut added = Vec::new();
    for c in &shape.columns {
        if !cols.iter().any(|t| t.name == c.name) {
            cols.push(Tracked { slot: next_slot, name: c.name.clone(), keeps_class: c.keeps_storage_class });
            added.push((next_slot, c.name.clone()));
            next_slot += 1;
        }
    }
    Slots { cols, dropped, added }
}

/// Records the cells of the `added` columns whose rows differ from the column's default
/// (`record_non_default`). Rows are compared with what an inserted row gets: after ADD
/// COLUMN, old rows at another value are given it first (after a rebuild, which leaves no
/// insert trigger, the rows were inserted again).
fn record_added(
    conn: &Conn,
    info: &TableInfo,
    desc: &TableDesc,
    shape: &Shape,
    (cols, added): (&[Tracked], Vec<(usize, String)>),
    defaults: &HashMap<String, Option<(Value, Value)>>,
    inserts_tracked: bool,
) -> Result<()> {
    for (slot, name) in added {
        let default = desc.columns.iter().find(|c| c.name == name).and_then(|c| c.default_sql.clone());
        let keeps_class = cols.iter().any(|t| t.slot == slot && t.keeps_class);
        let stored = defaults.get(&name.to_ascii_lowercase()).and_then(Option::as_ref).map(|(old_rows, new_rows)| (inserts_tracked.then_some(old_rows), new_rows));
        if let Some((Some(old_rows), new_rows)) = stored {
            give_old_rows_the_inserted_default(conn, &desc.name, &name, old_rows, new_rows)?;
        }
        let stored = stored.map(|(_, new_rows)| new_rows);
        record_non_default(conn, info.clock(), &desc.name, &shape.pk, (&name, keeps_class), (default.as_deref(), stored), slot)?;
    }
    Ok(())
}

/// Refuses an added column of TEXT affinity whose default is a REAL (`DEFAULT 0.000986`,
/// `DEFAULT 5.`, `DEFAULT 1e15`, `DEFAULT 99999999999999999999`): SQLite stores it as the
/// text of the REAL, which versions write differently (3.40: 15 significant digits, `1.0e+15`,
/// `0.000986`; 3.54: up to 17, `1000000000000000.0`, `0.0009859999999999999`). The rows a
/// column is added to are left at its default unsent (`record_non_default`), and so are the
/// rows a merge makes with its defaults before their cells arrive, so replicas on different
/// versions of SQLite would hold different texts there for good. Which REALs every version
/// writes alike is not known, so every one is refused, with the fix: the default written as a
/// string. A default the connection cannot evaluate (an app's function it lacks) is not judged.
fn refuse_real_default_as_text(conn: &Conn, desc: &crate::core::table_shape::TableDesc, c: &crate::core::table_shape::ColumnDesc) -> Result<()> {
    use crate::core::schema_sql::{default_expr, is_strict};
    use crate::core::table_shape::{column_affinity, Affinity};
    let Some(dflt) = c.default_sql.as_deref() else { return Ok(()) };
    if column_affinity(&c.decl_type, is_strict(&desc.sql)) != Affinity::Text {
        return Ok(());
    }
    let value = default_expr(Some(dflt));
    let Some(mut s) = conn.db.prepare_if_resolves(&format!("SELECT typeof({value}), CAST({value} AS TEXT)"))? else {
        return Ok(());
    };
    if !s.step()? || s.text(0) != "real" {
        return Ok(());
    }
    // The literal as written, where it is one; else (an expression, in a rebuild) this
    // SQLite's text of it.
    let written = if dflt.trim().parse::<f64>().is_ok() { dflt.trim().to_string() } else { s.text(1) };
    Err(Error::new(format!(
        "table \"{}\": column \"{}\" has TEXT affinity and DEFAULT {dflt}, a REAL, which it stores as text; SQLite versions write \
         a REAL as text differently (this one: '{}'), and rows left at an added column's default are never sent, so replicas on other \
         versions would hold other text for good: write the default as a string (DEFAULT '{written}')",
        desc.name,
        c.name,
        s.text(1),
    )))
}

/// Records a delete for every live clock whose row is gone (deleted while tracking was off,
/// or not copied by a rebuild).
pub(super) fn tombstone_missing(conn: &Conn, clock: Clock, table: &str, pk: &[String]) -> Result<()> {
    // Only the keys whose row is gone are kept (not every live key: a rebuild of millions of
    // rows keeps few), then their deletes are written once the scan is over.
    let mut live = conn.db.prepare(&format!("SELECT pk FROM {} WHERE cl % 2 = 1", clock.table()), false)?;
    let mut row = conn.db.prepare(&format!("SELECT 1 FROM main.{} WHERE {}", quote(table), tables::key_where(pk, 1)), false)?;
    let (mut key, mut gone) = (Vec::new(), Vec::new());
    while live.step()? {
        key.clear();
        clock.read_key(&live, 0, &mut key);
        bind_key(&mut row, &key, table)?;
        if !row.step()? {
            gone.push(key.clone());
        }
        row.reset();
    }
    drop((live, row));
    for key in gone {
        track::on_delete(conn, clock, &key)?;
    }
    Ok(())
}

/// Binds the values of clock key `key` (packed) of table `table` from parameter 1 on, for a
/// statement that looks up the key's row (`tables::key_where`).
fn bind_key(s: &mut crate::ffi::db::Stmt, key: &[u8], table: &str) -> Result<()> {
    let values = pk_codec::decode(key).map_err(|e| Error::new(format!("corrupt clock key in {table}: {e}")))?;
    for (i, v) in values.iter().enumerate() {
        s.bind_value(i + 1, v)?;
    }
    Ok(())
}

/// After a 12-step rebuild: records the cells that no write gave their value and that a merge
/// would not make (`track::record_unwritten_cells`). A row's cell has no clock entry where
/// the column was added with the row at its default (ADD COLUMN, or a rebuild's new column);
/// a replica that makes the row by merge gives it the column's default as its table has it
/// then. After a rebuild that changed the default (`DEFAULT 'new'` to `DEFAULT 'draft'`),
/// or with a default that is an expression (`CURRENT_TIMESTAMP`, evaluated as the rebuild
/// copied the rows, and again by each merge), that is another value: until 2026-12-06 such a
/// replica, or one that rebuilt at another second, kept another value for good. `defaults`
/// (`column_defaults`) holds what a row inserted now gets, for each column whose default is
/// not an expression; where a cell without an entry holds exactly that, nothing is recorded.
fn record_unmade_defaults(conn: &Conn, clock: Clock, table: &str, pk: &[String], cols: &[&Tracked], defaults: &HashMap<String, Option<(Value, Value)>>) -> Result<()> {
    if cols.is_empty() {
        return Ok(());
    }
    // (slot, what a merge gives the cell; None: an expression, evaluated anew)
    let made: Vec<(usize, Option<&Value>)> =
        cols.iter().map(|t| (t.slot, defaults.get(&t.name.to_ascii_lowercase()).and_then(Option::as_ref).map(|(_, inserted)| inserted))).collect();
    let list = cols.iter().map(|t| quote(&t.name)).collect::<Vec<_>>().join(", ");
    let mut live = conn.db.prepare(&format!("SELECT pk, cl, clock FROM {} WHERE cl % 2 = 1", clock.table()), false)?;
    let mut row = conn.db.prepare(&format!("SELECT {list} FROM main.{} WHERE {}", quote(table), tables::key_where(pk, 1)), false)?;
    // Records are decoded as the scan reads them (loading each by key again took 81 ms, not
    // 49, for a rebuild of 100,000 rows). The rows to record are kept, not the live keys;
    // they are written once the scan is over.
    let (mut key, mut todo) = (Vec::new(), Vec::new());
    while live.step()? {
        let rc = track::decode(conn, clock.tid, live.i64(1), live.bytes(2))?;
        if made.iter().all(|(slot, _)| rc.cell(*slot).is_some()) {
            continue;
        }
        key.clear();
        clock.read_key(&live, 0, &mut key);
        bind_key(&mut row, &key, table)?;
        if row.step()? {
            let slots: Vec<usize> = made
                .iter()
                .enumerate()
                .filter(|(i, (slot, by_merge))| rc.cell(*slot).is_none() && by_merge.is_none_or(|v| row.value_ref(*i) != v.as_ref()))
                .map(|(_, (slot, _))| *slot)
                .collect();
            // (A value that could not be read, out of memory, shows as an error of the next step.)
            row.step()?;
            if !slots.is_empty() {
                todo.push((key.clone(), slots));
            }
        }
        row.reset();
    }
    drop((live, row));
    for (key, slots) in todo {
        track::record_unwritten_cells(conn, clock, &key, &slots)?;
    }
    Ok(())
}

/// The slots (of the table's first `slots`) that some live row's record of `clock` has no
/// entry for (a column added while the row was at its default; a dropped column's), in slot
/// order. One read of every record.
fn slots_without_entries(conn: &Conn, clock: Clock, slots: usize) -> Result<Vec<usize>> {
    let mut seen = vec![false; slots];
    let mut s = conn.db.prepare(&format!("SELECT cl, clock FROM {} WHERE cl % 2 = 1", clock.table()), false)?;
    while s.step()? {
        let rc = track::decode(conn, clock.tid, s.i64(0), s.bytes(1))?;
        for (slot, missing) in seen.iter_mut().enumerate() {
            *missing |= rc.cell(slot).is_none();
        }
    }
    Ok(seen.iter().enumerate().filter(|(_, m)| **m).map(|(slot, _)| slot).collect())
}

/// For each column of the table with a DEFAULT that the registry does not track (those a
/// commit may find added; after a 12-step rebuild, `rebuilt`, those without a DEFAULT too),
/// and each column named in `also` (tracked columns some rows have no clock entry for, after a
/// rebuild), by name in lower case: the value a row that existed before `ADD COLUMN` reads in
/// it, and the one a row inserted without it gets (`record_non_default`,
/// `record_unmade_defaults`). Only those: each costs an ALTER of the TEMP table, which
/// SQLite parses whole (all of a rebuilt table of 1,500 columns took 1.1 s).
///
/// SQLite gives old rows the DEFAULT's text with the column's affinity applied (`DEFAULT 5.`
/// reads '5.' in a TEXT column, the integer 5 in an untyped one; `DEFAULT true` the integer
/// 1 in a TEXT column), new ones the expression's value with it applied ('5.0', 5.0, '1').
/// Both are asked of SQLite: a TEMP table (one per set of such columns, kept until the
/// connection closes, as the probe of a row of defaults is, and made like it before the
/// commit's savepoint, whose statements a schema change would expire) holds a row made before
/// the columns are added to it and one made after. A default ADD COLUMN refuses (a 12-step
/// rebuild's `(1 + 1)` or CURRENT_TIMESTAMP, an expression each row evaluates) is None; a
/// column not asked about has no entry.
fn column_defaults(
    conn: &Conn,
    info: &tables::TableInfo,
    desc: &crate::core::table_shape::TableDesc,
    rebuilt: bool,
    also: &[String],
) -> Result<HashMap<String, Option<(Value, Value)>>> {
    let mut out = HashMap::new();
    let tracked = |n: &str| info.pk.iter().chain(info.columns.iter().flatten()).any(|c| c.eq_ignore_ascii_case(n));
    let wanted = |c: &crate::core::table_shape::ColumnDesc| {
        also.iter().any(|a| a.eq_ignore_ascii_case(&c.name)) || (!tracked(&c.name) && (rebuilt || c.default_sql.is_some()))
    };
    let added: Vec<_> = desc
        .columns
        .iter()
        .filter(|c| c.pk_index == 0 && !c.generated && wanted(c))
        .map(|c| (c, c.default_sql.as_deref()))
        .collect();
    if added.is_empty() {
        return Ok(out);
    }
    let layout: String = added.iter().map(|(c, d)| format!("{}\u{1}{}\u{2}", c.decl_type, d.map_or("\u{3}".to_string(), |d| format!("DEFAULT {d}")))).collect();
    let name = super::probe::layout_table_name("crr_added_defaults", &layout);
    let t = format!("temp.{name}");
    conn.db.exec(&format!("CREATE TEMP TABLE IF NOT EXISTS {name}(crr_row INTEGER PRIMARY KEY)"))?;
    // Row 0 is made before any column is added, so it reads each as an old row does.
    conn.db.exec(&format!("INSERT OR IGNORE INTO {t}(crr_row) VALUES (0)"))?;
    // Columns an earlier call added (it may have been stopped half way) are not added again.
    let mut present = std::collections::HashSet::new();
    let mut s = conn.db.prepare("SELECT name FROM pragma_table_info(?1, 'temp')", false)?;
    s.bind_text(1, &name[1..name.len() - 1])?;
    while s.step()? {
        present.insert(s.text(0));
    }
    drop(s);
    let mut columns = Vec::new();
    for (i, (c, dflt)) in added.iter().enumerate() {
        let column = format!("d{i}");
        if !present.contains(&column) {
            // (Without comments, as any SQL the extension runs: `schema_sql::without_comments`.)
            let dflt = dflt.map_or(String::new(), |d| format!(" DEFAULT {}", crate::core::schema_sql::without_comments(d)));
            match conn.db.exec(&format!("ALTER TABLE {t} ADD COLUMN \"{column}\" {}{dflt}", crate::core::table_shape::sql_type(&c.decl_type))) {
                Ok(()) => {}
                // A default ADD COLUMN does not take; an interrupt or a full disk is reported.
                Err(e) if e.code == crate::ffi::api::SQLITE_ERROR => {
                    out.insert(c.name.to_ascii_lowercase(), None);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        columns.push((c.name.to_ascii_lowercase(), column));
    }
    if columns.is_empty() {
        return Ok(out);
    }
    // Row 1 is made after, as a row inserted without the columns.
    conn.db.exec(&format!("DELETE FROM {t} WHERE crr_row = 1"))?;
    conn.db.exec(&format!("INSERT INTO {t}(crr_row) VALUES (1)"))?;
    let list = columns.iter().map(|(_, d)| format!("\"{d}\"")).collect::<Vec<_>>().join(", ");
    let mut s = conn.db.prepare(&format!("SELECT {list} FROM {t} ORDER BY crr_row"), false)?;
    let old_rows: Option<Vec<Value>> = s.step()?.then(|| (0..columns.len()).map(|i| s.value(i)).collect());
    let new_rows: Option<Vec<Value>> = s.step()?.then(|| (0..columns.len()).map(|i| s.value(i)).collect());
    // (A value that could not be read, out of memory, shows as an error of the next step.)
    s.step()?;
    if let (Some(old_rows), Some(new_rows)) = (old_rows, new_rows) {
        for (((name, _), a), b) in columns.into_iter().zip(old_rows).zip(new_rows) {
            out.insert(name, Some((a, b)));
        }
    }
    Ok(out)
}

/// For a few literals SQLite gives the rows a table had when `ADD COLUMN` added a column
/// another value than a row inserted later gets (`column_defaults`: `DEFAULT 5.` in a
/// TEXT column, '5.' then '5.0'; an untyped `DEFAULT 1.0`, 1 then 1.0; `DEFAULT true` in a
/// TEXT column, 1 then '1'). A peer that makes such a row by merge, or that ran the migration
/// as a 12-step rebuild, holds the inserted row's value, so the old rows are given it too: an
/// UPDATE of the rows holding exactly the old rows' value (bytes and class), with main's
/// triggers off (the app's do not fire, as none fires at ADD COLUMN; no tracking trigger names
/// the column yet anyway), which is not sent (every replica that runs the migration does the
/// same). Until 2026-12-06 they kept it, and replicas disagreed for good.
fn give_old_rows_the_inserted_default(conn: &Conn, table: &str, column: &str, old_rows: &Value, new_rows: &Value) -> Result<()> {
    if old_rows == new_rows {
        return Ok(());
    }
    let c = quote(column);
    // The app's triggers in main do not fire: SQLite itself gives rows values as it adds a
    // column without firing any, and an app's UPDATE trigger that stamps or counts would
    // write every such row, on every replica (TEMP triggers cannot be turned off).
    conn.db.without_main_triggers(|| {
        let mut s = conn.db.prepare(
            &format!("UPDATE main.{} SET {c} = ?2 WHERE +{c} IS ?1 COLLATE BINARY AND typeof({c}) = typeof(?1)", quote(table)),
            false,
        )?;
        s.bind_value(1, old_rows)?;
        s.bind_value(2, new_rows)?;
        s.run()
    })
}

/// Rows whose new column holds something other than its default are local writes: peers that
/// add the same column get the default, so only differing cells need to travel. Differing
/// byte for byte and in storage class from the value SQLite gives a row inserted without the
/// column (`stored`, from `column_defaults`; old rows that ADD COLUMN gave another value
/// have been given this one: `give_old_rows_the_inserted_default`). Only a default it cannot give that way (a
/// rebuild's `(1 + 1)`) is compared as an expression, under BINARY whatever the column's
/// collation, and by class too where the column keeps the class it is given (`keeps_class`).
/// A row at the default must not be sent: its cell would carry this commit's clock and could
/// beat a peer's later write to it. Until 2026-12-06 every comparison was the expression's,
/// under the column's collation and blind to class: a row set to 'X' under `COLLATE NOCASE
/// DEFAULT 'x'`, or to 5.0 under an untyped `DEFAULT 5`, went unrecorded (and kept a value
/// its peers never got), while an old row at `DEFAULT 5.` in a TEXT column ('5.', not the
/// expression's '5.0') was sent.
fn record_non_default(
    conn: &Conn,
    clock: Clock,
    table: &str,
    pk: &[String],
    (column, keeps_class): (&str, bool),
    (default_sql, stored): (Option<&str>, Option<&Value>),
    slot: usize,
) -> Result<()> {
    let keys = pk.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let c = quote(column);
    // (`+c` has no affinity: the stored values are compared as they are.)
    let differs = match stored {
        Some(_) => format!("+{c} IS NOT ?1 COLLATE BINARY OR typeof({c}) IS NOT typeof(?1)"),
        None => {
            let default = crate::core::schema_sql::default_expr(default_sql);
            let class = if keeps_class { format!(" OR typeof({c}) IS NOT typeof({default})") } else { String::new() };
            format!("{c} IS NOT {default} COLLATE BINARY{class}")
        }
    };
    let mut s = conn.db.prepare(&format!("SELECT crsql_pack_columns({keys}) FROM main.{} WHERE {differs}", quote(table)), false)?;
    if let Some(v) = stored {
        s.bind_value(1, v)?;
    }
    // The scan reads the user table; the writes go to its clock.
    for_each_key(&mut s, |key| track::record_cell(conn, clock, key, slot))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    fn cols(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn renames_pair_in_order_by_type() {
        let r = super::renames(&cols(&[("id", "INTEGER"), ("a", "TEXT"), ("b", "INTEGER")]), &cols(&[("id", "INTEGER"), ("title", "TEXT")]));
        assert_eq!(r.get("a").map(String::as_str), Some("title"));
        assert_eq!(r.len(), 1);
        let r = super::renames(&cols(&[("a", "TEXT")]), &cols(&[("a", "TEXT"), ("c", "TEXT")]));
        assert!(r.is_empty(), "an added column is not a rename");
        let r = super::renames(&cols(&[("a", "TEXT"), ("b", "TEXT")]), &cols(&[("x", "TEXT"), ("y", "TEXT")]));
        assert_eq!((r["a"].as_str(), r["b"].as_str()), ("x", "y"));
    }
}
