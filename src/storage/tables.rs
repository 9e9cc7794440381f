//! The registry of CRRs (`crr_tables`, `crr_columns`) and its per-connection cache, reloaded
//! whenever the schema cookie moves (any connection's DDL, including crsql_as_crr; a restore
//! through the backup API moves it too) or, after another connection's commit, the database's
//! token is another (`same_database`: `sqlite3_rsync` keeps the origin's cookie). Each reload
//! also forgets what the connection cached of the database's content
//! (`Conn::forget_database`). A database put in place by `sqlite3_deserialize` is refused
//! (`Conn::check_main_file`).
//!
//! Invariant: a cookie identifies a schema only once it is committed. Inside a write
//! transaction the cookie may be one this transaction's own DDL made, and a rollback (of the
//! transaction, or to a savepoint) brings the cookie back, so that later DDL can reach the same
//! value with another schema. A registry loaded inside a write transaction is therefore
//! provisional: loading it joins crr_internal_txn to the transaction (so every rollback is
//! reported), and it is trusted only while no rollback was reported since
//! (`Conn::still_written`) and, after the transaction, only if it committed (`committed`).
//!
//! A load reads sqlite_schema once (SQLite does not index it) and finds from that whether the
//! internal tables exist, each CRR's current name (its insert trigger's table; one without the
//! trigger is its registered name's table, rebuilt, unless another CRR's trigger names that
//! table; `register_current_names` gives crr_tables the names renames outside a bracket left
//! behind, at crsql_as_crr, crsql_begin_alter and crsql_commit_alter, after the clocks of
//! dropped CRRs are removed: `dropped::tidy_registry`), dropped CRRs and orphaned clock tables.
//! The first read or merge of a CRR after each load compares its columns with the registered
//! ones (`check_columns`, `drift`): a table ALTERed outside a bracket, or given a unique
//! index there (`unique_drift`), is refused by reads, merges and crsql_as_crr. Also here:
//! each clock's key layout (`Clock`: bind a packed key, read one back); a table's key
//! affinities, read at its first merge
//! (`TableInfo::key_affinities`), not at every load; which cells a merge writes through a wide
//! table's shared statement (`wide_slots`: the app's triggers, the indexes and the CHECKs are
//! read by one more scan of sqlite_schema, `WideSchema`, only when the load meets a wide CRR;
//! the choice is `core::shared_writes::shared_write_slots`).

use super::conn::Conn;
use super::stmt_cache::Key;
use crate::core::ident::quote;
use crate::core::pk_codec;
use crate::core::row_clock::SLOTS_MAX;
use crate::core::table_shape::{self, Affinity};
use crate::core::value::ValueRef;
use crate::core::{schema_sql, shared_writes};
use crate::error::{Error, Result};
use crate::ffi::db::Stmt;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// How a clock table holds a row's key (sql/clock_table.sql). A table whose key is its rowid
/// (one `INTEGER PRIMARY KEY` column of a rowid table) gets a rowid clock table keyed by that
/// integer: cheaper seeks and smaller rows than a packed blob. Every other table, and every
/// clock table made before this layout existed, holds the packed key (SPEC 6 format): in a
/// rowid table with an `id INTEGER PRIMARY KEY` and a UNIQUE `pk` since internal schema 6, in a
/// WITHOUT ROWID table before. Rust code always speaks packed keys; only binding and reading differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    Packed,
    Rowid,
}

/// One CRR's clock table: its table id, key layout, and how its rows written since a
/// db_version are found: `buckets` (the crr_dirty buckets of the clock's rowids,
/// storage/dirty.rs: rowid clocks made or upgraded by internal schema 4, packed-key clocks
/// made or upgraded by internal schema 6) or a `dbv` index (clocks an upgrade could not move,
/// see schema.rs: packed-key ones are WITHOUT ROWID tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub tid: i64,
    pub key: KeyLayout,
    pub buckets: bool,
}

impl Clock {
    /// A new clock of `key` layout, which uses buckets.
    pub fn new(tid: i64, key: KeyLayout) -> Clock {
        Clock { tid, key, buckets: true }
    }

    /// The clock table, as our statements name it (`clock_table`).
    pub fn table(&self) -> String {
        clock_table(self.tid)
    }

    /// The clock table's bare quoted name, for trigger bodies: they may not qualify the
    /// tables they write, and theirs are their own schema's (main) anyway.
    pub fn trigger_table(&self) -> String {
        bare_clock_table(self.tid)
    }

    /// The clock table's `pk` value for the key columns `cols` (each an SQL expression).
    pub fn key_sql(&self, cols: &[String]) -> String {
        match self.key {
            KeyLayout::Rowid => cols.join(", "),
            KeyLayout::Packed => format!("crsql_pack_columns({})", cols.join(", ")),
        }
    }

    /// Binds a packed key as the clock table's `pk` value. Ok(false) when no clock row can
    /// have this key (a rowid clock and a key that is not one integer).
    pub fn bind_key(&self, s: &mut Stmt, i: usize, pk: &[u8]) -> Result<bool> {
        match self.key {
            KeyLayout::Packed => s.bind_blob(i, pk).map(|_| true),
            KeyLayout::Rowid => match pk_codec::decode_integer(pk) {
                Some(id) => s.bind_i64(i, id).map(|_| true),
                None => Ok(false),
            },
        }
    }

    /// Appends the packed form of column `col` (the clock table's `pk`) to `out`.
    pub fn read_key(&self, s: &Stmt, col: usize, out: &mut Vec<u8>) {
        match self.key {
            KeyLayout::Packed => out.extend_from_slice(s.bytes(col)),
            KeyLayout::Rowid => pk_codec::encode_integer_into(out, s.i64(col)),
        }
    }

    /// A query for the highest `dbv` of this clock (0: none): its `dbv` index, or for a bucket
    /// clock its crr_dirty entries, which are at least every row's (storage/dirty.rs).
    pub fn max_dbv_sql(&self) -> String {
        if self.buckets {
            return super::dirty::max_sql(self.tid);
        }
        format!("SELECT coalesce(max(dbv), 0) FROM {}", self.table())
    }

    /// The FROM clause of a read of this clock's rows (as `c`) that can have a `dbv` at
    /// `?{param}` or later: the whole clock (a dbv index serves `c.dbv` bounds), or for a
    /// bucket clock the rows of the buckets with such an entry and its tail, if the database
    /// has tails (`dirty::has_tails`; storage/dirty.rs). Callers still bound `c.dbv`.
    pub fn rows_since(&self, param: usize, tails: bool) -> String {
        if !self.buckets {
            return format!("{} AS c", self.table());
        }
        format!("({}) AS d JOIN {} AS c ON c.rowid BETWEEN d.lo AND d.hi", super::dirty::ranges_since_sql(self.tid, param, tails), self.table())
    }

    /// The packed form of column `col`.
    pub fn key_at(&self, s: &Stmt, col: usize) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_key(s, col, &mut out);
        out
    }
}


#[derive(Debug)]
pub struct TableInfo {
    pub tid: i64,
    pub name: String,
    /// The name crr_tables holds, which an ALTER TABLE RENAME outside a bracket leaves behind
    /// `name` (`register_current_names`).
    registered: String,
    /// Whether its insert trigger is gone (the table was dropped and made again: a 12-step
    /// rebuild, or a new table of its name), for `drift`'s advice.
    remade: bool,
    /// Key columns in key order.
    pub pk: Vec<String>,
    /// Their affinities (merges refuse a key value the column would store as another value),
    /// read at a merge's first use (`key_affinities`), not at every registry load.
    key_affinity: std::cell::OnceCell<Vec<Affinity>>,
    /// Tracked columns by slot (None for a slot whose column was dropped).
    pub columns: Vec<Option<String>>,
    pub key: KeyLayout,
    /// See `Clock::buckets`.
    pub buckets: bool,
    /// By slot, whether a merge writes the slot's cell through one statement for the whole
    /// table (`merge::write_cell`), not one of its own; empty unless the table is `wide` and no
    /// trigger of the app in main fires on `UPDATE OF` columns
    /// (the statement names every such column, so it would fire the trigger for any cell; a
    /// TEMP one is asked of the TEMP schema, again whenever its cookie moved:
    /// `merge::temp_trigger_updates_of`). A column an index or a CHECK names keeps its own
    /// statement (and is left out of the shared one): SQLite rewrites an index's entry for
    /// every statement that sets a column of it, to the same value or not, and checks a CHECK
    /// for every statement that sets a column it names (`shared_writes::shared_write_slots`).
    pub wide_slots: Vec<bool>,
    /// Whether the table tracks at least `WIDE_WRITES` columns, or is among the widest of a
    /// schema whose statements would hold more than `SHARED_WRITE_BUDGET` a statement per
    /// column (`shared_writes::shared_writes`): a merge that makes a row writes it through one
    /// statement for the table, whichever column's cell makes it (`merge::recreate_row`, with
    /// `row_defaults`), and its cells through one (`wide_slots`).
    pub wide: bool,
    /// See `row_defaults`.
    defaults: std::cell::OnceCell<Option<Vec<String>>>,
    /// Why the table cannot be read or merged as it is (`drift`), None when its columns are
    /// the ones the registry names; found at the first `check_columns` (a table's columns
    /// cost a PRAGMA, about 43k instructions, which tables never read or merged need not pay).
    drift: std::cell::OnceCell<Option<String>>,
}

impl TableInfo {
    pub fn clock_table(&self) -> String {
        clock_table(self.tid)
    }

    pub fn clock(&self) -> Clock {
        Clock { tid: self.tid, key: self.key, buckets: self.buckets }
    }

    /// The table's name for our statements, in the main schema: unqualified, a TEMP table of
    /// the same name would be written and read instead.
    pub fn quoted(&self) -> String {
        format!("main.{}", quote(&self.name))
    }

    /// Err when ALTER TABLE changed the table's columns outside crsql_begin_alter /
    /// crsql_commit_alter: its feed and its merges would name columns it no longer has, or
    /// leave out one it has (whose writes no trigger records), so both are refused until a
    /// bracket records the new shape.
    ///
    /// The registry is loaded again whenever the schema cookie moves, and so is this answer:
    /// an ALTER moves it, and so do crsql_begin_alter and crsql_commit_alter (their triggers).
    #[inline]
    pub fn check_columns(&self, conn: &Conn) -> Result<()> {
        let drift = match self.drift.get() {
            Some(d) => d,
            None => self.find_drift(conn)?,
        };
        match drift {
            Some(why) => Err(Error::new(why.clone())),
            None => Ok(()),
        }
    }

    #[cold]
    fn find_drift(&self, conn: &Conn) -> Result<&Option<String>> {
        let in_bracket = super::alter::in_bracket(conn, self.tid)?;
        let current = conn.stmts.with(conn.db, Key::TableColumns, || "SELECT name FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0".into(), |s| {
            s.bind_text(1, &self.name)?;
            let mut current = Vec::new();
            while s.step()? {
                current.push(s.text(0));
            }
            Ok(current)
        })?;
        let mut drift = drift(&self.name, &self.pk, &self.columns, &current, in_bracket);
        if drift.is_none() && !in_bracket {
            // A unique index made outside a bracket (CREATE UNIQUE INDEX needs no ALTER).
            // Inside one, crsql_commit_alter refuses it as crsql_as_crr does.
            let unique = conn.stmts.with(conn.db, Key::UniqueIndex, || UNIQUE_INDEX.into(), |s| {
                s.bind_text(1, &self.name)?;
                Ok(if s.step()? { Some((s.text(0), s.i64(1) != 0)) } else { None })
            })?;
            drift = unique.map(|(index, made)| unique_drift(&self.name, &index, made));
        }
        if let Some(why) = drift.as_mut().filter(|_| !in_bracket) {
            why.push_str(&self.if_made_again());
        }
        Ok(self.drift.get_or_init(|| drift))
    }

    /// For a refusal of a table that was dropped and made again (its insert trigger is gone
    /// outside a bracket): how to make it a CRR of its own, if it is a new table; else empty.
    pub fn if_made_again(&self) -> String {
        if !self.remade {
            return String::new();
        }
        let t = crate::core::ident::literal(&self.name);
        format!(
            " (the table was dropped and made again; if it is a new table, SELECT crsql_as_table({t}); \
             SELECT crsql_as_crr({t}); makes it a CRR with a history of its own)"
        )
    }

    /// Whether the table has a generated column of that name (which no change may name: its
    /// value is computed from the others). For errors only: a PRAGMA per call.
    #[cold]
    pub fn is_generated(&self, conn: &Conn, column: &str) -> Result<bool> {
        let mut s = conn.db.prepare("SELECT 1 FROM pragma_table_xinfo(?1, 'main') WHERE hidden IN (2, 3) AND name = ?2 COLLATE NOCASE", false)?;
        s.bind_text(1, &self.name)?;
        s.bind_text(2, column)?;
        s.step()
    }

    /// By slot, the SQL of each tracked column's default value (`schema_sql::default_expr`;
    /// NULL for a dropped slot), for the statement a wide CRR's merges make rows with; None
    /// for a narrow table, or one whose columns are not the registry's (`check_columns` says
    /// why). Read at the first use: a PRAGMA, which tables never merged into need not pay.
    pub fn row_defaults(&self, conn: &Conn) -> Result<Option<&[String]>> {
        if !self.wide {
            return Ok(None);
        }
        if let Some(d) = self.defaults.get() {
            return Ok(d.as_deref());
        }
        let mut s = conn.db.prepare("SELECT name, dflt_value FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0", false)?;
        s.bind_text(1, &self.name)?;
        let mut found = HashMap::new();
        while s.step()? {
            let dflt = (s.column_type(1) != crate::ffi::api::SQLITE_NULL).then(|| s.text(1));
            found.insert(s.text(0).to_ascii_lowercase(), dflt);
        }
        let defaults = self.columns.iter().map(|c| match c {
            Some(c) => found.get(&c.to_ascii_lowercase()).map(|d| schema_sql::default_expr(d.as_deref())),
            None => Some("NULL".to_string()),
        });
        let defaults: Option<Vec<String>> = defaults.collect();
        Ok(self.defaults.get_or_init(|| defaults).as_deref())
    }

    /// The slot of a column, named as SQL names it: ASCII case does not matter (SQLite lets no
    /// table have two columns that differ in it), as it does not for table names.
    pub fn slot_of(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(column)))
    }

    /// The key columns' affinities, in key order, read from the table's declaration the first
    /// time they are asked for (a STRICT table's ANY column applies none).
    #[inline]
    pub fn key_affinities(&self, conn: &Conn) -> Result<&[Affinity]> {
        match self.key_affinity.get() {
            Some(a) => Ok(a),
            None => self.load_key_affinities(conn),
        }
    }

    #[cold]
    fn load_key_affinities(&self, conn: &Conn) -> Result<&[Affinity]> {
        let mut types: Vec<(String, String)> = Vec::new();
        let mut strict = false;
        conn.stmts.with(
            conn.db,
            Key::KeyTypes,
            || {
                "SELECT p.name, p.type, (SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1) \
                 FROM pragma_table_info(?1, 'main') AS p WHERE p.pk > 0"
                    .into()
            },
            |s| {
                s.bind_text(1, &self.name)?;
                while s.step()? {
                    types.push((s.text(0), s.text(1)));
                    strict = schema_sql::is_strict(&s.text(2));
                }
                Ok(())
            },
        )?;
        let affinities = self
            .pk
            .iter()
            .map(|k| types.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map_or(Affinity::Blob, |(_, ty)| table_shape::column_affinity(ty, strict)))
            .collect();
        Ok(self.key_affinity.get_or_init(|| affinities))
    }

    /// Slots that hold a column (dropped columns leave holes).
    pub fn live_slots(&self) -> Vec<usize> {
        self.columns.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(i, _)| i).collect()
    }

    /// The tracked columns, `prefix` before each quoted name, in slot order; dropped columns'
    /// slots left out (slots are never reused, so a CRR whose columns were dropped and added
    /// again for long has more slots than SQLite lets a statement select: `pack_by_slot` puts
    /// the holes back).
    pub fn live_columns(&self, prefix: &str) -> Vec<String> {
        self.columns.iter().flatten().map(|n| format!("{prefix}{}", quote(n))).collect()
    }

    /// Packs a row's tracked values into `out` by slot (`ValueRef::pack_into`), reading the
    /// live columns from `s` from column `first` on (a statement selecting `live_columns`) and
    /// NULL for each dropped column's slot.
    pub fn pack_by_slot(&self, s: &Stmt, first: usize, out: &mut Vec<u8>) {
        let mut i = first;
        for c in &self.columns {
            if c.is_some() {
                s.value_ref(i).pack_into(out);
                i += 1;
            } else {
                ValueRef::Null.pack_into(out);
            }
        }
    }

    /// `"k1" = ?1 AND "k2" = ?2 ...`, binding key values from `first`.
    pub fn pk_where(&self, first: usize) -> String {
        key_where(&self.pk, first)
    }

    pub fn pk_list(&self) -> String {
        self.pk.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
    }
}

/// `"k1" = ?first AND "k2" = ?first+1 ...`: the row of key columns `pk` named by parameters.
pub fn key_where(pk: &[String], first: usize) -> String {
    pk.iter().enumerate().map(|(i, k)| format!("{} = ?{}", quote(k), first + i)).collect::<Vec<_>>().join(" AND ")
}

/// Clock table `tid`, qualified: a TEMP table of the same name would otherwise take its place
/// in our statements (SQLite looks in temp first), and the feed would read it, merges write
/// it, and both lose the real clock. So do the other internal tables (`main.crr_meta`, ...).
pub fn clock_table(tid: i64) -> String {
    format!("main.{}", bare_clock_table(tid))
}

// The table id of clock table `name` (`table_shape::clock_table_id`: `crr_clock_N`, N as
// `bare_clock_table` writes it). Only such a table of no CRR is taken for an orphaned clock
// (and dropped, if it is one this extension emptied: `dropped::reap_dropped`): until
// 2026-12-06 `crr_clock_1x` or `crr_clock_007` counted too, and an app's table of any such
// name was dropped with its rows.
use crate::core::table_shape::clock_table_id;

/// From this many tracked columns on, a merge writes a cell through one statement for the
/// table (`TableInfo::wide_slots`). A statement that updates one column of a table of n
/// columns is O(n) in SQLite (it copies every column into the new record) and holds the
/// table's update trigger, itself O(n) (ours compares every column): a statement per column,
/// each kept, held O(n^2) memory (440 MiB on a 1,000-column CRR) and took n prepares.
pub const WIDE_WRITES: usize = 64;

/// The estimated memory of the statements merges keep (`shared_writes::shared_writes`) past
/// which narrower CRRs are written through one statement for the table too, widest first: a
/// quarter of the statement cache's bound (`stmt_cache::BUDGET`). Merging into 100 CRRs of 20
/// columns kept 28.7 MiB of statements until 2026-12-06; now 4.6 MiB.
pub const SHARED_WRITE_BUDGET: usize = super::stmt_cache::BUDGET / 4;

/// What only the `wide_slots` of wide CRRs need of the schema, read once per registry load and
/// only if a CRR is wide (one scan of sqlite_schema, not one per CRR; a load of narrow CRRs
/// reads none of it), all by table in lower case.
#[derive(Default)]
struct WideSchema {
    /// Every table's CREATE TABLE text (for its CHECKs).
    table_sql: HashMap<String, String>,
    /// The SQL of every index that has any (an automatic one, of a key, has none).
    index_sql: HashMap<String, Vec<String>>,
    /// The tables of the app's triggers on `UPDATE OF` columns.
    update_of: HashSet<String>,
    /// The table ids in the names of the triggers named like the extension's (`crr_<digits>...`,
    /// whose text is not read: they are most, and our update trigger names every column; looking
    /// through it made a load of 400 CRRs 3.5 times slower), None for a name that is not one of
    /// its own kinds (`triggers::own_trigger_tid`).
    named_ours: HashMap<String, Vec<Option<i64>>>,
}

impl WideSchema {
    fn read(conn: &Conn) -> Result<WideSchema> {
        let mut s = conn.db.prepare(
            "SELECT type, name, tbl_name, CASE WHEN type != 'trigger' OR name NOT GLOB 'crr_[0-9]*' THEN sql END \
             FROM main.sqlite_schema WHERE type IN ('table', 'index', 'trigger')",
            false,
        )?;
        let mut out = WideSchema::default();
        while s.step()? {
            let table = s.text(2).to_ascii_lowercase();
            let has_sql = s.column_type(3) != crate::ffi::api::SQLITE_NULL;
            match s.text(0).as_str() {
                "table" => {
                    out.table_sql.insert(table, s.text(3));
                }
                "index" if has_sql => out.index_sql.entry(table).or_default().push(s.text(3)),
                "trigger" if !has_sql => out.named_ours.entry(table).or_default().push(super::triggers::own_trigger_tid(&s.text(1))),
                "trigger" if schema_sql::trigger_updates_of_columns(&s.text(3)) => {
                    out.update_of.insert(table);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// `TableInfo::wide_slots` of CRR `tid`, table `table` (in lower case), of tracked
    /// `columns`: none where a trigger of the app fires on `UPDATE OF` columns (or one named
    /// like the extension's but not this CRR's own: its text was not read, so it counts as one).
    fn slots(&self, table: &str, tid: i64, columns: &[Option<String>]) -> Vec<bool> {
        let foreign = self.named_ours.get(table).is_some_and(|tids| tids.iter().any(|t| *t != Some(tid)));
        if foreign || self.update_of.contains(table) {
            return Vec::new();
        }
        let sql = self.table_sql.get(table).map_or("", String::as_str);
        shared_writes::shared_write_slots(sql, columns, self.index_sql.get(table).map_or(&[], |v| v.as_slice()))
    }
}

/// Clock `tid`'s quoted name, unqualified.
fn bare_clock_table(tid: i64) -> String {
    format!("\"crr_clock_{tid}\"")
}

#[derive(Default)]
pub struct Tables {
    cookie: Option<i64>,
    /// `Some(rollback mark)` when loaded inside a write transaction (see the invariant at the
    /// top); None when the cookie was a committed one.
    provisional: Option<Option<u64>>,
    list: Rc<Vec<Rc<TableInfo>>>,
    /// Clocks of CRRs whose table was dropped (found at the last load), awaiting removal.
    pub dropped: Vec<Clock>,
    /// Clock tables of no CRR (`crr_clock_N` whose N is not in crr_tables: their CRR's
    /// registry rows went with `dropped`), found at the last load, awaiting a DROP TABLE.
    pub orphans: Vec<String>,
    /// Whether the internal schema existed at the last load.
    installed: bool,
    /// Where in `list` the last `by_name` found its table (a hint, checked before use).
    last_hit: usize,
}

impl Tables {
    pub fn invalidate(&mut self) {
        self.cookie = None;
    }

    /// The transaction ended with a commit; `still_written` tells whether a state written under a
    /// rollback mark is still in the database. A provisional registry is kept (its cookie is now
    /// committed) if no rollback was reported since it was loaded.
    pub fn committed(&mut self, still_written: impl Fn(Option<u64>) -> bool) {
        match self.provisional.take() {
            Some(mark) if !still_written(mark) => self.invalidate(),
            _ => {}
        }
    }
}

pub fn schema_cookie(conn: &Conn) -> Result<i64> {
    conn.stmts.with(conn.db, Key::SchemaCookie, || "PRAGMA schema_version".into(), |s| {
        s.step()?;
        Ok(s.i64(0))
    })
}

/// The live CRRs, the clocks of dropped ones, and the names of orphaned clock tables.
type Registry = (Vec<Rc<TableInfo>>, Vec<Clock>, Vec<String>);

/// The registry, with each table's current name taken from its insert trigger (triggers follow
/// ALTER TABLE RENAME), and the clocks of the CRRs whose table is gone.
///
/// A CRR whose insert trigger is gone (a 12-step rebuild inside a bracket dropped it with the
/// table) is listed under its registered name while that table exists.
fn load(conn: &Conn) -> Result<Option<Registry>> {
    let seen = SchemaSeen::read(conn)?;
    if let Some(name) = seen.hiding {
        return Err(super::schema::hidden_virtual_table(&name));
    }
    if !seen.installed {
        return Ok(None);
    }
    let (found, dropped) = find_registered(conn, &seen)?;
    // Every registered CRR is found or dropped: a clock of neither is an orphan.
    let registered: HashSet<i64> = found.iter().map(|f| &f.clock).chain(&dropped).map(|c| c.tid).collect();
    let orphans = seen.clocks.into_iter().filter(|(tid, _)| !registered.contains(tid)).map(|(_, name)| name).collect();
    let read = read_columns(conn, found)?;
    Ok(Some((table_infos(conn, read)?, dropped, orphans)))
}

/// What a registry load needs of sqlite_schema, read in one pass.
struct SchemaSeen {
    /// Every table's name, ASCII case folded (names compare as SQL's do, ASCII case aside:
    /// NOCASE folds ASCII only).
    tables: HashSet<String>,
    /// Our insert triggers, by name: the table each is on.
    insert_triggers: HashMap<String, String>,
    /// The clocks' dbv indexes (a clock without one marks crr_dirty buckets).
    dbv_indexes: HashSet<String>,
    /// The clocks that are WITHOUT ROWID tables, by table id (packed-key clocks made before
    /// internal schema 6 that its upgrade left, which have a dbv index, or had: one that lost
    /// it is read whole).
    without_rowid: HashSet<i64>,
    /// Clock tables by table id (SQL's `name GLOB 'crr_clock_[0-9]*'`, and the id its digits
    /// make, as `CAST(substr(name, 11) AS INTEGER)` reads them).
    clocks: Vec<(i64, String)>,
    /// Whether the internal tables exist.
    installed: bool,
    /// A table or view of the app named as one of the extension's virtual tables, which it
    /// hides (`schema::hidden_virtual_table`).
    hiding: Option<String>,
}

impl SchemaSeen {
    fn read(conn: &Conn) -> Result<SchemaSeen> {
        // The schema is read once, into maps: SQLite has no index on sqlite_schema, and a query
        // that looked up each CRR's trigger, table and index in it took 27 ms for 400 CRRs (each
        // lookup a scan of the whole schema; now 2 ms), at the first use of every connection and
        // after every schema change.
        let mut s = conn.db.prepare(
            "SELECT type, name, tbl_name, CASE WHEN type = 'table' AND name GLOB 'crr_clock_[0-9]*' THEN sql END \
             FROM main.sqlite_schema WHERE type IN ('table', 'trigger', 'index', 'view')",
            false,
        )?;
        let mut seen = SchemaSeen {
            tables: HashSet::new(),
            insert_triggers: HashMap::new(),
            dbv_indexes: HashSet::new(),
            without_rowid: HashSet::new(),
            clocks: Vec::new(),
            installed: false,
            hiding: None,
        };
        while s.step()? {
            let name = s.text(1);
            // (As text: a UTF-16 database's bytes are not these.)
            match s.text(0).as_str() {
                "table" | "view" if super::schema::VIRTUAL_TABLES.iter().any(|v| name.eq_ignore_ascii_case(v)) => {
                    seen.hiding = Some(name);
                }
                "table" => {
                    seen.installed |= name == "crr_meta";
                    if let Some(tid) = clock_table_id(&name) {
                        if schema_sql::is_without_rowid(&s.text(3)) {
                            seen.without_rowid.insert(tid);
                        }
                        seen.clocks.push((tid, name.clone()));
                    }
                    seen.tables.insert(name.to_ascii_lowercase());
                }
                "trigger" if name.starts_with("crr_") && name.ends_with("_insert") => {
                    seen.insert_triggers.insert(name, s.text(2));
                }
                // Only one on its clock: an app's index of that name elsewhere made a rowid clock
                // pass for one with the index (until 2026-12-06), whose triggers then marked no
                // crr_dirty bucket, and "changes since V" missed their rows once it was gone.
                "index" if name.strip_suffix("_dbv").is_some_and(|clock| clock_table_id(clock).is_some() && s.text(2) == clock) => {
                    seen.dbv_indexes.insert(name);
                }
                _ => {}
            }
        }
        Ok(seen)
    }
}

/// A registered CRR whose table is there: its clock, its table's current name, the name
/// crr_tables holds, and whether its table was made again (it has no insert trigger).
struct Found {
    clock: Clock,
    name: String,
    registered: String,
    remade: bool,
}

/// The registered CRRs whose table is there, by table id, and the clocks of those whose table
/// is gone.
fn find_registered(conn: &Conn, seen: &SchemaSeen) -> Result<(Vec<Found>, Vec<Clock>)> {
    let mut s = conn.db.prepare(
        "SELECT tid, name, (SELECT type FROM pragma_table_info('crr_clock_' || tid, 'main') WHERE name = 'pk') = 'INTEGER' \
         FROM main.crr_tables ORDER BY tid",
        false,
    )?;
    let mut found = Vec::new();
    let mut untriggered = Vec::new();
    while s.step()? {
        let tid = s.i64(0);
        let key = if s.i64(2) != 0 { KeyLayout::Rowid } else { KeyLayout::Packed };
        let clock = Clock { tid, key, buckets: !seen.without_rowid.contains(&tid) && !seen.dbv_indexes.contains(&format!("crr_clock_{tid}_dbv")) };
        // Its current name is its insert trigger's table (triggers follow a rename).
        match seen.insert_triggers.get(&format!("crr_{tid}_insert")) {
            Some(table) => found.push(Found { clock, name: table.clone(), registered: s.text(1), remade: false }),
            None => untriggered.push((clock, s.text(1))),
        }
    }
    drop(s);
    // One without its insert trigger is its registered name's table, rebuilt, if that table
    // is there and is not another CRR's (`DROP TABLE t; ALTER TABLE u RENAME TO t`: until
    // 2026-12-06 the dropped CRR took the renamed one's table for its own, and the feed
    // showed its clock with that table's values); else it was dropped.
    let named: HashSet<String> = found.iter().map(|f| f.name.to_ascii_lowercase()).collect();
    let mut dropped = Vec::new();
    for (clock, name) in untriggered {
        let lower = name.to_ascii_lowercase();
        if seen.tables.contains(&lower) && !named.contains(&lower) {
            found.push(Found { clock, name: name.clone(), registered: name, remade: true });
        } else {
            dropped.push(clock);
        }
    }
    found.sort_by_key(|f| f.clock.tid);
    Ok((found, dropped))
}

/// A found CRR with its registered columns.
struct Registered {
    found: Found,
    /// The key columns, in key order.
    pk: Vec<String>,
    /// The tracked columns by slot (None where a dropped column's slot is).
    columns: Vec<Option<String>>,
}

/// A tracked column's slot as crr_columns holds it (`slot` >= 0), checked: a slot is a
/// position in every record of the clock (row_clock::SLOTS_MAX at most), and a larger one is
/// damage, which would size a table's vectors by it.
pub fn checked_slot(table: &str, column: &str, slot: i64) -> Result<usize> {
    usize::try_from(slot).ok().filter(|&s| s < SLOTS_MAX).ok_or_else(|| {
        Error::new(format!("corrupt crr_columns row of CRR \"{table}\": column \"{column}\" has slot {slot}, beyond the {SLOTS_MAX} a table can have"))
    })
}

/// Each found CRR with its registered columns.
fn read_columns(conn: &Conn, found: Vec<Found>) -> Result<Vec<Registered>> {
    let mut read = Vec::new();
    let mut cols = conn.db.prepare("SELECT name, slot, pk_index FROM main.crr_columns WHERE tid = ?1 ORDER BY pk_index, slot", false)?;
    for f in found {
        cols.bind_i64(1, f.clock.tid)?;
        let mut pk = Vec::new();
        let mut columns: Vec<Option<String>> = Vec::new();
        while cols.step()? {
            let (col, slot, pk_index) = (cols.text(0), cols.i64(1), cols.i64(2));
            if pk_index > 0 {
                pk.push(col);
            } else if slot >= 0 {
                let slot = checked_slot(&f.name, &col, slot)?;
                if columns.len() <= slot {
                    columns.resize(slot + 1, None);
                }
                columns[slot] = Some(col);
            }
        }
        cols.reset();
        read.push(Registered { found: f, pk, columns });
    }
    Ok(read)
}

/// The registry's entries, with which tables merges write through one statement for the
/// table: the wide ones, and as many more as keep the statements merges keep within a quarter
/// of the cache's budget.
fn table_infos(conn: &Conn, read: Vec<Registered>) -> Result<Vec<Rc<TableInfo>>> {
    let counts: Vec<usize> = read.iter().map(|r| r.columns.iter().flatten().count()).collect();
    let shared = match conn.wide_writes.get() {
        None => shared_writes::shared_writes(&counts, WIDE_WRITES, SHARED_WRITE_BUDGET),
        // A test's bound alone, so that it gets the path it asks for.
        Some(bound) => shared_writes::shared_writes(&counts, bound, usize::MAX),
    };
    // Read at the first wide CRR (TableInfo::wide_slots).
    let mut wide: Option<WideSchema> = None;
    let mut out = Vec::new();
    for (Registered { found: Found { clock, name, registered, remade }, pk, columns }, is_wide) in read.into_iter().zip(shared) {
        let tid = clock.tid;
        let wide_slots = if is_wide {
            let w = match wide {
                Some(ref w) => w,
                None => &*wide.insert(WideSchema::read(conn)?),
            };
            w.slots(&name.to_ascii_lowercase(), tid, &columns)
        } else {
            Vec::new()
        };
        out.push(Rc::new(TableInfo {
            tid,
            name,
            registered,
            remade,
            pk,
            wide_slots,
            wide: is_wide,
            defaults: Default::default(),
            key_affinity: Default::default(),
            columns,
            key: clock.key,
            buckets: clock.buckets,
            drift: Default::default(),
        }));
    }
    Ok(out)
}

/// What ALTER TABLE outside a bracket changed in table `name`, whose registered key is `pk`
/// and tracked columns `columns`, now that its columns are `current` (generated ones left out:
/// they are not tracked); None if nothing. Inside a bracket (`in_bracket`) an added column is
/// expected (commit tracks it), but a column renamed or dropped there cannot be read or
/// merged under its registered name until commit.
fn drift(name: &str, pk: &[String], columns: &[Option<String>], current: &[String], in_bracket: bool) -> Option<String> {
    let has = |c: &String| current.iter().any(|n| n.eq_ignore_ascii_case(c));
    let registered = || pk.iter().chain(columns.iter().flatten());
    if in_bracket {
        let gone = registered().find(|c| !has(c))?;
        return Some(format!(
            "table \"{name}\" is between crsql_begin_alter and crsql_commit_alter, and its column \"{gone}\" is gone: \
             it can be read and merged again once crsql_commit_alter has recorded its new shape"
        ));
    }
    let outside = format!("table \"{name}\" changed outside crsql_begin_alter / crsql_commit_alter");
    if let Some(k) = pk.iter().find(|k| !has(k)) {
        return Some(format!(
            "{outside}: its key column \"{k}\" is gone; rename it back (renaming a key column is fine inside a bracket)"
        ));
    }
    let tracked = |n: &String| registered().any(|c| c.eq_ignore_ascii_case(n));
    let what = match (columns.iter().flatten().find(|c| !has(c)), current.iter().find(|n| !tracked(n))) {
        (Some(gone), _) => format!("its column \"{gone}\" is gone"),
        (None, Some(new)) => format!("its column \"{new}\" is not tracked"),
        (None, None) => return None,
    };
    let t = crate::core::ident::literal(name);
    Some(format!("{outside}: {what}; SELECT crsql_begin_alter({t}); SELECT crsql_commit_alter({t}); records its new shape"))
}

/// A table's first unique index besides its key, and whether CREATE INDEX made it (else it is
/// a UNIQUE constraint of the table's definition).
const UNIQUE_INDEX: &str = "SELECT name, origin = 'c' FROM pragma_index_list(?1, 'main') WHERE \"unique\" = 1 AND origin <> 'pk'";

/// The refusal of CRR `name` that has a unique index `index` (`made` by CREATE INDEX) made
/// outside a bracket. Two replicas can each write a value the other holds in another row,
/// and their merges then fail for good; and an INSERT OR REPLACE that replaces the other row
/// deletes it without firing its delete trigger (unless `recursive_triggers` is on), so that
/// delete is never recorded.
fn unique_drift(name: &str, index: &str, made: bool) -> String {
    let fix = if made {
        format!("DROP INDEX main.{}", quote(index))
    } else {
        "rebuild the table without it, between crsql_begin_alter and crsql_commit_alter".into()
    };
    format!(
        "table \"{name}\" changed outside crsql_begin_alter / crsql_commit_alter: it has a UNIQUE constraint or unique index \
         (\"{index}\") besides the primary key, which concurrent writes on two replicas could break \
         (and an INSERT OR REPLACE deletes the rows it conflicts with unrecorded); {fix}"
    )
}

/// All CRRs, current as of the schema cookie.
pub fn all(conn: &Conn) -> Result<Rc<Vec<Rc<TableInfo>>>> {
    Ok(all_with_cookie(conn)?.1)
}

/// All CRRs and the schema cookie they are current for.
pub fn all_with_cookie(conn: &Conn) -> Result<(i64, Rc<Vec<Rc<TableInfo>>>)> {
    // (A merge asks at every change: inside a joined transaction, once is enough, and the
    // data version is the one it joined at.)
    let joined = conn.txn_joined.get().then(|| conn.txn_ends.get());
    let checked = joined.is_some() && conn.same_database_in.get() == joined;
    if !checked && (joined.is_none() || conn.file_checked_in.get() != joined) {
        conn.check_main_file()?;
    }
    let cookie = schema_cookie(conn)?;
    let current = {
        let t = conn.tables.borrow();
        let current = t.cookie == Some(cookie) && t.provisional.is_none_or(|mark| conn.still_written(mark));
        current.then(|| (t.list.clone(), t.installed))
    };
    let read_data_version = || conn.txn_data_version.get().filter(|_| joined.is_some()).unwrap_or_else(|| conn.db.data_version());
    if let Some((list, installed)) = current {
        if checked || !installed || same_database(conn, read_data_version())? {
            if joined.is_some() {
                conn.same_database_in.set(joined);
            }
            return Ok((cookie, list));
        }
    }
    let data_version = read_data_version();
    conn.forget_database();
    // Loaded inside a write transaction: make sure its rollbacks are reported from now on.
    let provisional = if conn.db.in_write_txn() {
        super::txn::join_transaction(conn)?;
        Some(conn.rollback_mark())
    } else {
        None
    };
    let loaded = load(conn)?;
    let installed = loaded.is_some();
    // The encoding, again: a database without the internal tables may be one whose encoding
    // can still change (new, emptied, or an install rolled back), and a restore may have put
    // a database of another encoding in place. Without the tables, text is read through
    // SQLite's copy until an install notes it (schema::install).
    if installed {
        super::schema::note_encoding(conn);
    } else {
        conn.utf8.set(false);
    }
    let (list, dropped, orphans) = loaded.unwrap_or_default();
    let list = Rc::new(list);
    // Statements prepared against the old schema may name clock tables that are gone.
    conn.stmts.clear();
    conn.forget_merged_row();
    // A restore can put a database of another build in place, which the load would have
    // refused (a later build's) or upgraded (an earlier build's: `txn::db_version`). (Read
    // through a statement prepared now: one prepared before a schema change would be
    // prepared again inside its step, where an interrupt reads as "schema has changed".)
    let version = if installed { Some(super::meta::get_i64(conn, "schema", 0)?) } else { None };
    if let Some(v) = version.filter(|v| *v > super::schema::INTERNAL_SCHEMA_VERSION) {
        return Err(super::schema::newer(v));
    }
    conn.internal_version.set(version);
    let mut t = conn.tables.borrow_mut();
    t.cookie = Some(cookie);
    t.provisional = provisional;
    t.list = list.clone();
    t.dropped = dropped;
    t.orphans = orphans;
    t.installed = installed;
    drop(t);
    let token = if installed { super::meta::read_token(conn)? } else { 0 };
    conn.identity.set(installed.then_some((data_version, token)));
    Ok((cookie, list))
}

/// Whether the main database is still the one the registry was loaded from, as far as the
/// schema cookie and the file cannot tell: unless the data version is where it was, its
/// token is read again (`Conn::identity`).
fn same_database(conn: &Conn, data_version: u32) -> Result<bool> {
    let Some((seen, token)) = conn.identity.get() else { return Ok(false) };
    if seen == data_version {
        return Ok(true);
    }
    let same = super::meta::read_token(conn)? == token;
    if same {
        conn.identity.set(Some((data_version, token)));
    } else {
        conn.replaced_token.set(Some(token));
    }
    Ok(same)
}

/// Whether the internal schema exists, current as of the schema cookie (one cached PRAGMA
/// instead of a query of sqlite_schema per transaction).
pub fn installed(conn: &Conn) -> Result<bool> {
    all_with_cookie(conn)?;
    Ok(conn.tables.borrow().installed)
}

/// `by_name`'s CRR, or the refusal of a name that is no CRR (the functions that take a CRR).
pub fn crr_named(conn: &Conn, name: &str) -> Result<Rc<TableInfo>> {
    by_name(conn, name)?.ok_or_else(|| not_a_crr(name))
}

pub fn not_a_crr(table: &str) -> Error {
    Error::new(format!("table \"{table}\" is not a CRR"))
}

/// The CRR named `name` (ASCII case aside). The table the last call found is compared first:
/// a merge asks once per change, changes come in runs of one table, and a search of 400 CRRs
/// per change took 43% off a merge's rate (152k changes/s against 264k with one CRR, until
/// 2026-12-06).
pub fn by_name(conn: &Conn, name: &str) -> Result<Option<Rc<TableInfo>>> {
    let list = all(conn)?;
    let hint = conn.tables.borrow().last_hit;
    if let Some(t) = list.get(hint).filter(|t| t.name.eq_ignore_ascii_case(name)) {
        return Ok(Some(t.clone()));
    }
    let found = list.iter().position(|t| t.name.eq_ignore_ascii_case(name));
    if let Some(i) = found {
        conn.tables.borrow_mut().last_hit = i;
    }
    Ok(found.map(|i| list[i].clone()))
}

/// Gives crr_tables each CRR's current name where an ALTER TABLE RENAME outside a bracket
/// left the old one (the registry reads a CRR's name from its insert trigger): in two steps,
/// so that names passed around (t to u, u to t) never meet in the UNIQUE column. The name is
/// free then for a new CRR (until 2026-12-06 `ALTER TABLE u RENAME TO v; CREATE TABLE u(...);
/// SELECT crsql_as_crr('u')` failed with `UNIQUE constraint failed: crr_tables.name`), and a
/// 12-step rebuild finds its table under it (`load`). Called inside a savepoint of ours
/// (crsql_as_crr, crsql_begin_alter, crsql_commit_alter).
pub fn register_current_names(conn: &Conn) -> Result<()> {
    let stale: Vec<(i64, String)> = all(conn)?.iter().filter(|t| t.name != t.registered).map(|t| (t.tid, t.name.clone())).collect();
    // (A connection that may not write reads and tracks nothing new: crsql_as_crr on an
    // existing CRR, which apps call at every start, read-only ones too, changes nothing there.)
    if stale.is_empty() || conn.db.is_readonly() {
        return Ok(());
    }
    let mut s = conn.db.prepare("UPDATE main.crr_tables SET name = ?2 WHERE tid = ?1", false)?;
    for step in [0, 1] {
        for (tid, name) in &stale {
            s.bind_i64(1, *tid)?;
            // First a name no table can have (a key with a NUL byte), then the current one.
            let name = if step == 0 { format!("\0renamed {tid}") } else { name.clone() };
            s.bind_text(2, &name)?;
            s.run()?;
        }
    }
    drop(s);
    conn.tables.borrow_mut().invalidate();
    Ok(())
}

pub fn by_tid(conn: &Conn, tid: i64) -> Result<Option<Rc<TableInfo>>> {
    Ok(all(conn)?.iter().find(|t| t.tid == tid).cloned())
}

/// The clock of table `tid` (for the tracking triggers' Rust fallbacks, which name only a tid).
pub fn clock_of(conn: &Conn, tid: i64) -> Result<Clock> {
    by_tid(conn, tid)?.map(|t| t.clock()).ok_or_else(|| Error::new(format!("table id {tid} is not a CRR")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_tables_are_told_by_the_names_this_extension_gives_them() {
        for (name, tid) in [("crr_clock_1", 1), ("crr_clock_12", 12), ("crr_clock_9223372036854775807", i64::MAX)] {
            assert_eq!(super::clock_table_id(name), Some(tid), "{name}");
            assert_eq!(super::bare_clock_table(tid), format!("\"{name}\""));
        }
        let others = ["crr_clock_", "crr_clock_x1", "crr_clocks", "CRR_CLOCK_1", "crr_meta", "crr_clock_12x", "crr_clock_007"];
        for name in others.into_iter().chain(["crr_clock_+1", "crr_clock_-1", "crr_clock_0", "crr_clock_1_dbv", "crr_clock_99999999999999999999"]) {
            assert_eq!(super::clock_table_id(name), None, "{name}");
        }
    }
}
