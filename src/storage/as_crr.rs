//! crsql_as_crr / crsql_as_table: upgrading a table to a CRR (SPEC 3) and back. The
//! triggers it installs are triggers.rs's, the probe of a row of defaults probe.rs's, and the
//! removal of the CRRs whose table was dropped, which it does first, dropped.rs's.

use super::conn::Conn;
use super::dropped::{forget_registration, raise_floor, reap_dropped, tidy_registry};
use super::probe::{check_defaults, make_probe};
use super::savepoint::in_savepoint;
use super::tables::{self, Clock, KeyLayout};
use super::triggers::{drop_triggers_sql, install_triggers, put_tracking_first};
use super::{meta, schema, track};
use crate::core::ident::quote;
use crate::core::schema_sql;
use crate::core::table_shape::{self, ColumnDesc, Shape, TableDesc};
use crate::core::value::Value;
use crate::error::{Error, Result};
use crate::ffi::db::Stmt;

const CLOCK_TABLE_SQL: &str = include_str!("../../sql/clock_table.sql");

/// A tracked column and its slot in the row clock record.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub slot: usize,
    pub name: String,
    pub keeps_class: bool,
}

/// `describe` for the work crsql_as_crr and crsql_commit_alter do before their savepoint
/// (TEMP tables: `make_probe`): None where the table cannot be described (no such table, a
/// virtual one), which the savepoint reports; Err where SQLite stopped the read (an interrupt,
/// no memory: `Error::stopped_the_work`), which the same call, made again, gets past. Until
/// 2026-12-06 both were passed over, and the work inside the savepoint went on without what
/// this would have made.
pub fn describe_before_savepoint(conn: &Conn, name: &str) -> Result<Option<TableDesc>> {
    match describe(conn, name) {
        Ok(desc) => Ok(Some(desc)),
        Err(e) if e.stopped_the_work() => Err(e),
        Err(_) => Ok(None),
    }
}

/// The refusal of `name`, which is no table of main: it says what the name is where it is a
/// view, or a table of TEMP or of an attached database (a lookup of each schema, on this
/// path only).
#[cold]
fn not_found(conn: &Conn, name: &str) -> Error {
    let schemas = conn.db.prepare("SELECT name FROM pragma_database_list ORDER BY seq", false).and_then(|mut s| {
        let mut names = Vec::new();
        while s.step()? {
            names.push(s.text(0));
        }
        Ok(names)
    });
    let found = schemas.unwrap_or_default().into_iter().find_map(|schema| kind_of(conn, &schema, name).map(|kind| (schema, kind)));
    Error::new(match found {
        Some((schema, kind)) if kind == "view" => {
            format!("\"{name}\" is a view{}: only tables can be CRRs", if schema == "main" { String::new() } else { format!(" of schema \"{schema}\"") })
        }
        Some((schema, _)) if schema == "temp" => {
            format!("table \"{name}\" is a TEMP table: only tables of the main database can be CRRs (a TEMP table lasts one connection)")
        }
        Some((schema, _)) => format!(
            "table \"{name}\" is in attached database \"{schema}\": only tables of the main database can be CRRs \
             (attached ones: not supported yet); call it on a connection that opens that database as main"
        ),
        // A schema-qualified name of a table of main ('main.t'): say how it is named.
        None => match name.split_once('.').filter(|(schema, table)| schema.eq_ignore_ascii_case("main") && !table.is_empty()) {
            Some((schema, table)) if kind_of(conn, "main", table).as_deref() == Some("table") => format!(
                "table \"{name}\" does not exist: give the table's name alone, crsql_as_crr({t}), or the schema apart, \
                 crsql_as_crr({s}, {t})",
                t = crate::core::ident::literal(table),
                s = crate::core::ident::literal(schema)
            ),
            _ => format!("table \"{name}\" does not exist"),
        },
    })
}

/// Whether schema `schema` has a table or view named `name`, and which (for an error's advice
/// only: a failed read answers None).
fn kind_of(conn: &Conn, schema: &str, name: &str) -> Option<String> {
    let sql = format!("SELECT type FROM {}.sqlite_schema WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE", quote(schema));
    let mut s = conn.db.prepare(&sql, false).ok()?;
    s.bind_text(1, name).ok()?;
    s.step().ok()?.then(|| s.text(0))
}

/// Reads what SPEC 3 needs to know of a table. Err when there is no such table.
pub fn describe(conn: &Conn, name: &str) -> Result<TableDesc> {
    // The table's row (the scan stops there), and whether cr-sqlite's clock of it exists: a
    // lookup by name, where a scan of the schema for cr-sqlite's triggers made every
    // crsql_as_crr call of an app with 400 CRRs cost 45% more.
    let mut s = conn.db.prepare(
        "SELECT s.name, s.sql, EXISTS (SELECT 1 FROM pragma_table_info(s.name || '__crsql_clock', 'main')) \
         FROM main.sqlite_schema AS s WHERE s.type = 'table' AND s.name = ?1 COLLATE NOCASE",
        false,
    )?;
    s.bind_text(1, name)?;
    if !s.step()? {
        drop(s);
        return Err(not_found(conn, name));
    }
    let (name, sql, cr_sqlite_clock) = (s.text(0), s.text(1), s.i64(2) != 0);
    drop(s);
    // Then cr-sqlite's triggers on it (`TableDesc::cr_sqlite_triggers`), which a database
    // cr-sqlite wrote has beside that clock.
    let mut cr_sqlite_triggers = Vec::new();
    if cr_sqlite_clock {
        let mut s = conn.db.prepare(
            "SELECT name FROM main.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE \
             AND name GLOB '*__crsql_[idu]trig' ORDER BY rowid",
            false,
        )?;
        s.bind_text(1, &name)?;
        while s.step()? {
            cr_sqlite_triggers.push(s.text(0));
        }
    }
    if sql.trim_start().get(..14).is_some_and(|p| p.eq_ignore_ascii_case("CREATE VIRTUAL")) {
        return Err(Error::new(format!("table \"{name}\" cannot be a CRR: it is a virtual table")));
    }
    let mut columns = Vec::new();
    let mut s = conn.db.prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1, 'main')", false)?;
    s.bind_text(1, &name)?;
    while s.step()? {
        let default_sql = if s.column_type(3) == crate::ffi::api::SQLITE_NULL { None } else { Some(s.text(3)) };
        columns.push(ColumnDesc {
            name: s.text(0),
            decl_type: s.text(1),
            not_null: s.i64(2) != 0,
            has_default: default_sql.is_some(),
            default_sql,
            pk_index: s.i64(4) as u32,
            generated: matches!(s.i64(5), 2 | 3),
        });
    }
    let mut unique_indexes = Vec::new();
    let mut pk_has_index = false;
    let mut s = conn.db.prepare("SELECT name, origin = 'pk' FROM pragma_index_list(?1, 'main') WHERE \"unique\" = 1", false)?;
    s.bind_text(1, &name)?;
    while s.step()? {
        if s.i64(1) != 0 {
            pk_has_index = true;
        } else {
            unique_indexes.push(s.text(0));
        }
    }
    let mut key_collations = Vec::new();
    let mut s = conn.db.prepare(
        "SELECT x.name, x.coll FROM pragma_index_list(?1, 'main') AS l, pragma_index_xinfo(l.name, 'main') AS x \
         WHERE l.origin = 'pk' AND x.key = 1 AND x.cid >= 0",
        false,
    )?;
    s.bind_text(1, &name)?;
    while s.step()? {
        key_collations.push((s.text(0), s.text(1)));
    }
    let mut s = conn.db.prepare("SELECT count(*) FROM pragma_foreign_key_list(?1, 'main')", false)?;
    s.bind_text(1, &name)?;
    s.step()?;
    let has_foreign_keys = s.i64(0) > 0;
    Ok(TableDesc {
        without_rowid: schema_sql::is_without_rowid(&sql),
        name,
        columns,
        unique_indexes,
        cr_sqlite_triggers,
        has_foreign_keys,
        pk_has_index,
        key_collations,
        sql,
    })
}

/// Records a clock for every row that has no live one (all rows of a new CRR, rows written
/// while tracking was off: new, or over a tombstone, which they resurrect), as local inserts
/// in the current transaction.
pub fn backfill(conn: &Conn, clock: Clock, table: &str, pk: &[String], cols: &[Tracked]) -> Result<usize> {
    let keys: Vec<String> = pk.iter().map(|k| format!("src.{}", quote(k))).collect();
    let mut s = conn.db.prepare(
        &format!(
            "SELECT crsql_pack_columns({}) FROM main.{} AS src LEFT JOIN {} AS c ON c.pk = {} WHERE c.pk IS NULL OR c.cl % 2 = 0",
            keys.join(", "),
            quote(table),
            clock.table(),
            clock.key_sql(&keys)
        ),
        false,
    )?;
    let slots: Vec<usize> = cols.iter().map(|c| c.slot).collect();
    // Each key is recorded after the scan has checked it, and the scan checks every key once,
    // so whether it sees the clock rows written behind it does not matter. (A LEFT JOIN, not
    // NOT EXISTS: SQLite runs a correlated subquery as a subroutine per row, and crsql_as_crr
    // on a CRR of 1,000,000 integer keys, which apps call at every start, took 181 ms that
    // way, 56 ms this way; 403 and 375 ms with text keys.)
    for_each_key(&mut s, |pk| track::on_insert(conn, clock, pk, &slots))
}

/// Runs `f` on the first column (bytes) of every row `s` returns, as it is stepped; returns
/// how many. Not the whole result first: crsql_as_crr on 1 million rows then grew by 55 MiB
/// (at that rate, about 550 MiB for 10 million), now by 2 MiB. `f` may write tables the scan
/// reads, as long as the rows the scan has yet to return do not depend on those writes:
/// SQLite allows it, and leaves open only whether the scan sees them. (Writing a table
/// another statement has a cursor on costs about 3% more instructions, the same in batches
/// of 4,096 keys: measured, not kept.)
pub(super) fn for_each_key(s: &mut Stmt, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<usize> {
    let (mut key, mut n) = (Vec::new(), 0);
    while s.step()? {
        key.clear();
        key.extend_from_slice(s.bytes(0));
        f(&key)?;
        n += 1;
    }
    Ok(n)
}

/// Rewrites the registry's column list of `tid`.
pub fn write_columns(conn: &Conn, tid: i64, pk: &[String], cols: &[Tracked]) -> Result<()> {
    conn.db.exec(&format!("DELETE FROM main.crr_columns WHERE tid = {tid}"))?;
    let mut s = conn.db.prepare(
        "INSERT INTO main.crr_columns(tid, name, slot, pk_index, keeps_class) VALUES (?1, ?2, ?3, ?4, ?5)",
        false,
    )?;
    for (i, k) in pk.iter().enumerate() {
        s.bind_i64(1, tid)?;
        s.bind_text(2, k)?;
        s.bind_null(3)?;
        s.bind_i64(4, i as i64 + 1)?;
        s.bind_i64(5, 0)?;
        s.run()?;
    }
    for c in cols {
        s.bind_i64(1, tid)?;
        s.bind_text(2, &c.name)?;
        s.bind_i64(3, c.slot as i64)?;
        s.bind_i64(4, 0)?;
        s.bind_i64(5, i64::from(c.keeps_class))?;
        s.run()?;
    }
    Ok(())
}

/// The next table id, past those whose schema names (`crr_clock_N`, its dbv index, the
/// `crr_N_...` triggers) an object of the app holds already (names compare as SQL's, ASCII
/// case aside): creating the clock would fail, and every later crsql_as_crr with it.
fn allocate_tid(conn: &Conn) -> Result<i64> {
    let mut tid = meta::get_i64(conn, "next_tid", 1)?;
    let mut s = conn.db.prepare(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE name COLLATE NOCASE IN \
           ('crr_clock_' || ?1, 'crr_clock_' || ?1 || '_dbv', 'crr_' || ?1 || '_insert', 'crr_' || ?1 || '_update', \
            'crr_' || ?1 || '_delete', 'crr_' || ?1 || '_alter_old'))",
        false,
    )?;
    loop {
        s.bind_i64(1, tid)?;
        s.step()?;
        let taken = s.i64(0) != 0;
        s.reset();
        if !taken {
            break;
        }
        tid += 1;
    }
    drop(s);
    // Ids count up from 1, one per crsql_as_crr: one outside that range is a damaged crr_meta
    // (adding to i64::MAX wrapped to a negative id, whose names no registry load reads).
    let next = tid.checked_add(1).filter(|_| tid >= 1).ok_or_else(|| Error::new(format!("corrupt crr_meta: next_tid {tid} is not a table id")))?;
    meta::set(conn, "next_tid", &Value::Integer(next))?;
    Ok(tid)
}

/// The tracked columns of `shape` matched to the registry's slots of an existing CRR.
fn tracked_of(info: &tables::TableInfo, shape: &Shape) -> Option<Vec<Tracked>> {
    let mut out = Vec::new();
    for (slot, name) in info.columns.iter().enumerate() {
        let Some(name) = name else { continue };
        let c = shape.columns.iter().find(|c| &c.name == name)?;
        out.push(Tracked { slot, name: name.clone(), keeps_class: c.keeps_storage_class });
    }
    (out.len() == shape.columns.len() && info.pk == shape.pk).then_some(out)
}

/// Refuses a CRR whose table no longer has the key its clock is laid out for: a rowid clock
/// needs the table's key to be its rowid (an INTEGER PRIMARY KEY), as a table made again with
/// `INT PRIMARY KEY` is not (until 2026-12-06 crsql_as_crr took it, and the table's INSERTs of
/// keys that are not integers, which its schema allows, failed with "key must be an integer").
pub(super) fn keeps_key_layout(info: &tables::TableInfo, shape: &Shape) -> Result<()> {
    if info.key == KeyLayout::Rowid && !shape.rowid_key {
        return Err(Error::new(format!(
            "table \"{}\": its key {:?} must stay an INTEGER PRIMARY KEY (the table's rowid): its clock is keyed by it{}",
            info.name,
            shape.pk,
            info.if_made_again()
        )));
    }
    Ok(())
}

/// Whether `desc` can be a CRR (SPEC 3, `table_shape::check`, and `check_defaults`, which
/// needs SQL): what crsql_as_crr and crsql_commit_alter both ask.
/// `table_shape::check`'s rules (SPEC 3), which need nothing but the description.
fn shape_of(desc: &TableDesc) -> Result<Shape> {
    table_shape::check(desc).map_err(|r| Error::new(r.to_string()))
}

pub fn check_shape(conn: &Conn, desc: &TableDesc) -> Result<Shape> {
    let shape = shape_of(desc)?;
    // The triggers pack a compound key with one call of crsql_pack_columns (Clock::key_sql),
    // and SQLite refuses a call of more arguments than SQLITE_LIMIT_FUNCTION_ARG (127 unless
    // SQLite was built or set otherwise): until 2026-12-06 that failed here as "too many
    // arguments on function crsql_pack_columns", naming neither the table nor its key.
    let most = conn.db.limit(crate::ffi::api::SQLITE_LIMIT_FUNCTION_ARG);
    if !shape.rowid_key && shape.pk.len() > most {
        return Err(Error::new(format!(
            "table \"{}\" cannot be a CRR: its primary key has {} columns, and the triggers that record its writes \
             pack them with one call of crsql_pack_columns, which this SQLite lets take at most {most} arguments \
             (SQLITE_LIMIT_FUNCTION_ARG)",
            desc.name,
            shape.pk.len()
        )));
    }
    check_defaults(conn, desc)?;
    Ok(shape)
}

/// crsql_as_crr(table): idempotent; backfills existing rows as changes.
pub fn as_crr(conn: &Conn, schema_name: Option<&str>, table: &str) -> Result<()> {
    if let Some(s) = schema_name.filter(|s| !s.eq_ignore_ascii_case("main")) {
        return Err(Error::new(format!("schema \"{s}\": only the main schema can hold CRRs (not supported yet)")));
    }
    if schema::refuse_before_install(conn)? {
        // A new database gets the internal tables at its first crsql_as_crr (schema.rs): what
        // can be refused without them is refused first, and leaves it as it was (until
        // 2026-12-07 a call on a missing table, or one without a key, installed them).
        shape_of(&describe(conn, table)?)?;
    }
    schema::install_to_write(conn)?;
    if let Some(desc) = describe_before_savepoint(conn, table)? {
        make_probe(conn, &desc)?;
    }
    in_savepoint(conn, "crr_as_crr", || {
        tidy_registry(conn, true)?;
        let desc = describe(conn, table)?;
        let existing = tables::by_name(conn, &desc.name)?;
        if let Some(info) = &existing {
            if super::alter::in_bracket(conn, info.tid)? {
                // An app that calls crsql_as_crr at every start, after a migration stopped
                // half way: its triggers would replace the bracket's.
                return Err(Error::new(format!(
                    "table \"{0}\" is between crsql_begin_alter and crsql_commit_alter: finish the alter with \
                     SELECT crsql_commit_alter({1})",
                    info.name,
                    crate::core::ident::literal(&info.name)
                )));
            }
        }
        let shape = check_shape(conn, &desc)?;
        match existing {
            Some(info) => renew(conn, &info, &desc, &shape),
            None => create(conn, &desc, &shape),
        }
    })
}

/// crsql_as_crr on a CRR (apps call it at every start): the triggers made again if they are
/// not this build's, and the rows written while tracking was off recorded.
fn renew(conn: &Conn, info: &tables::TableInfo, desc: &TableDesc, shape: &Shape) -> Result<()> {
    info.check_columns(conn)?;
    keeps_key_layout(info, shape)?;
    let cols = tracked_of(info, shape).ok_or_else(|| {
        Error::new(format!(
            "table \"{}\" changed shape since it became a CRR; wrap ALTER TABLE in \
             crsql_begin_alter / crsql_commit_alter{}",
            desc.name,
            info.if_made_again()
        ))
    })?;
    // The clock keeps the key layout it was made with.
    let lost = install_triggers(conn, info.clock(), &desc.name, &shape.pk, &shape.pk_affinity, &cols)?;
    put_tracking_first(conn, Some(&desc.name))?;
    backfill(conn, info.clock(), &desc.name, &shape.pk, &cols)?;
    if lost {
        // The table was dropped and made again outside a bracket (an unbracketed
        // rebuild): the rows it lost are deletes, as crsql_commit_alter records after
        // a rebuild. Until 2026-12-06 their clocks stayed live, and the feed sent
        // their cells with NULL values: a replica made from it held rows this one
        // had not, and one that had them kept them.
        super::alter::tombstone_missing(conn, info.clock(), &desc.name, &shape.pk)?;
    }
    Ok(())
}

/// crsql_as_crr on a table that is not a CRR yet: its clock, registry entry and triggers, and
/// its rows recorded as inserts.
fn create(conn: &Conn, desc: &TableDesc, shape: &Shape) -> Result<()> {
    let tid = allocate_tid(conn)?;
    let clock = Clock::new(tid, if shape.rowid_key { KeyLayout::Rowid } else { KeyLayout::Packed });
    create_clock_table(conn, clock)?;
    let mut s = conn.db.prepare("INSERT INTO main.crr_tables(tid, name) VALUES (?1, ?2)", false)?;
    s.bind_i64(1, tid)?;
    s.bind_text(2, &desc.name)?;
    s.run()?;
    drop(s);
    let cols: Vec<Tracked> = shape
        .columns
        .iter()
        .enumerate()
        .map(|(slot, c)| Tracked { slot, name: c.name.clone(), keeps_class: c.keeps_storage_class })
        .collect();
    write_columns(conn, tid, &shape.pk, &cols)?;
    install_triggers(conn, clock, &desc.name, &shape.pk, &shape.pk_affinity, &cols)?;
    conn.tables.borrow_mut().invalidate();
    backfill(conn, clock, &desc.name, &shape.pk, &cols)?;
    Ok(())
}

/// Creates the (empty) clock table of `clock`, in this build's layout for its key
/// (sql/clock_table.sql).
pub(super) fn create_clock_table(conn: &Conn, clock: Clock) -> Result<()> {
    let key = match clock.key {
        KeyLayout::Rowid => "pk INTEGER PRIMARY KEY NOT NULL",
        KeyLayout::Packed => "id INTEGER PRIMARY KEY NOT NULL, pk BLOB NOT NULL UNIQUE",
    };
    conn.db.exec(&schema_sql::without_comments(CLOCK_TABLE_SQL).replace("{tid}", &clock.tid.to_string()).replace("{key}", key))
}

/// crsql_as_table(table): stops tracking; the table and its rows stay, the clock goes.
pub fn as_table(conn: &Conn, table: &str) -> Result<()> {
    super::savepoint::lock_first(conn)?;
    let info = tables::crr_named(conn, table)?;
    in_savepoint(conn, "crr_as_table", || {
        // Keep db_versions increasing after the clock's highest one disappears, and the clock
        // mark above the versions its records held.
        super::txn::secure_mark(conn)?;
        let max = super::txn::max_db_version(conn)?;
        raise_floor(conn, max)?;
        conn.db.exec(&drop_triggers_sql(info.tid))?;
        conn.stmts.clear();
        // Its clock, emptied, is a clock of no CRR now: the reap drops it (or, called from a
        // statement, `SELECT crsql_as_table(name) FROM sqlite_schema ...`, leaves it to a
        // later call: SQLite refuses DROP TABLE then).
        forget_registration(conn, info.tid)?;
        conn.tables.borrow_mut().invalidate();
        reap_dropped(conn, true)
    })
}

