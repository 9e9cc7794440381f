//! crsql_as_crr / crsql_as_table: upgrading a table to a CRR (SPEC 3) and back.

use super::conn::Conn;
use super::tables::{self, clock_table, TableInfo};
use super::{meta, schema, track};
use crate::core::ident::{literal, quote};
use crate::core::pk_codec;
use crate::core::table_shape::{self, ColumnDesc, Shape, TableDesc};
use crate::core::value::Value;
use crate::error::{Error, Result};

const CLOCK_TABLE_SQL: &str = include_str!("../../sql/clock_table.sql");

/// Runs `f` inside a savepoint: on error only `f`'s own work is rolled back.
pub fn in_savepoint<T>(conn: &Conn, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    conn.db.exec(&format!("SAVEPOINT {name}"))?;
    match f() {
        Ok(v) => {
            conn.db.exec(&format!("RELEASE {name}"))?;
            Ok(v)
        }
        Err(e) => {
            let rolled = conn.db.exec(&format!("ROLLBACK TO {name}; RELEASE {name}"));
            conn.tables.borrow_mut().invalidate();
            conn.stmts.clear();
            rolled.map_err(|r| Error::new(format!("{e}; and the rollback failed: {r}")))?;
            Err(e)
        }
    }
}

/// Reads what SPEC 3 needs to know of a table. Err when there is no such table.
fn describe(conn: &Conn, name: &str) -> Result<TableDesc> {
    let mut s = conn.db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE", false)?;
    s.bind_text(1, name)?;
    if !s.step()? {
        return Err(Error::new(format!("table \"{name}\" does not exist")));
    }
    let (name, sql) = (s.text(0), s.text(1));
    drop(s);
    if sql.trim_start().get(..14).is_some_and(|p| p.eq_ignore_ascii_case("CREATE VIRTUAL")) {
        return Err(Error::new(format!("table \"{name}\" cannot be a CRR: it is a virtual table")));
    }
    let mut columns = Vec::new();
    let mut s = conn.db.prepare(
        "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden FROM pragma_table_xinfo(?1)",
        false,
    )?;
    s.bind_text(1, &name)?;
    while s.step()? {
        columns.push(ColumnDesc {
            name: s.text(0),
            decl_type: s.text(1),
            not_null: s.i64(2) != 0,
            has_default: s.i64(3) != 0,
            pk_index: s.i64(4) as u32,
            generated: matches!(s.i64(5), 2 | 3),
        });
    }
    let mut unique_indexes = Vec::new();
    let mut s = conn.db.prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND origin <> 'pk'", false)?;
    s.bind_text(1, &name)?;
    while s.step()? {
        unique_indexes.push(s.text(0));
    }
    let mut s = conn.db.prepare("SELECT count(*) FROM pragma_foreign_key_list(?1)", false)?;
    s.bind_text(1, &name)?;
    s.step()?;
    let has_foreign_keys = s.i64(0) > 0;
    Ok(TableDesc { without_rowid: table_shape::is_without_rowid(&sql), name, columns, unique_indexes, has_foreign_keys, sql })
}

fn changed_expr(column: &str, keeps_class: bool) -> String {
    let c = quote(column);
    if keeps_class {
        format!("(NEW.{c} IS NOT OLD.{c} COLLATE BINARY OR typeof(NEW.{c}) IS NOT typeof(OLD.{c}))")
    } else {
        format!("(NEW.{c} IS NOT OLD.{c} COLLATE BINARY)")
    }
}

/// The three AFTER triggers that route local writes to storage::track.
fn trigger_sql(tid: i64, table: &str, shape: &Shape) -> String {
    let t = quote(table);
    let keys = |prefix: &str| shape.pk.iter().map(|k| format!("{prefix}.{}", quote(k))).collect::<Vec<_>>().join(", ");
    let n = shape.columns.len();
    let changed: String = shape.columns.iter().map(|c| format!(", {}", changed_expr(&c.name, c.keeps_storage_class))).collect();
    format!(
        "CREATE TRIGGER IF NOT EXISTS \"crr_{tid}_insert\" AFTER INSERT ON {t} BEGIN \
           SELECT crr_internal_insert({tid}, crsql_pack_columns({new}), {n}); END;\n\
         CREATE TRIGGER IF NOT EXISTS \"crr_{tid}_update\" AFTER UPDATE ON {t} BEGIN \
           SELECT crr_internal_update({tid}, crsql_pack_columns({old}), crsql_pack_columns({new}){changed}); END;\n\
         CREATE TRIGGER IF NOT EXISTS \"crr_{tid}_delete\" AFTER DELETE ON {t} BEGIN \
           SELECT crr_internal_delete({tid}, crsql_pack_columns({old}), {n}); END;",
        new = keys("NEW"),
        old = keys("OLD"),
    )
}

fn drop_triggers_sql(tid: i64) -> String {
    format!(
        "DROP TRIGGER IF EXISTS \"crr_{tid}_insert\"; DROP TRIGGER IF EXISTS \"crr_{tid}_update\"; \
         DROP TRIGGER IF EXISTS \"crr_{tid}_delete\";"
    )
}

/// Records a clock for every row that has none (all rows of a new CRR), as local inserts in
/// the current transaction.
fn backfill(conn: &Conn, tid: i64, table: &str, shape: &Shape) -> Result<usize> {
    let keys = shape.pk.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let mut s = conn.db.prepare(&format!("SELECT {keys} FROM {}", quote(table)), false)?;
    let mut pks = Vec::new();
    while s.step()? {
        let values: Vec<Value> = (0..shape.pk.len()).map(|i| s.value(i)).collect();
        pks.push(pk_codec::encode(&values).map_err(|e| Error::new(e.to_string()))?);
    }
    drop(s);
    let mut n = 0;
    for pk in pks {
        if track::load(conn, tid, &pk)?.is_none() {
            track::on_insert(conn, tid, &pk, shape.columns.len())?;
            n += 1;
        }
    }
    Ok(n)
}

fn same_columns(info: &TableInfo, shape: &Shape) -> bool {
    info.pk == shape.pk
        && info.columns.iter().flatten().map(String::as_str).eq(shape.columns.iter().map(|c| c.name.as_str()))
}

/// crsql_as_crr(table): idempotent; backfills existing rows as changes.
pub fn as_crr(conn: &Conn, schema_name: Option<&str>, table: &str) -> Result<()> {
    if let Some(s) = schema_name.filter(|s| !s.eq_ignore_ascii_case("main")) {
        return Err(Error::new(format!("schema \"{s}\": only the main schema can hold CRRs (not supported yet)")));
    }
    schema::install(conn)?;
    in_savepoint(conn, "crr_as_crr", || {
        let desc = describe(conn, table)?;
        let shape = table_shape::check(&desc).map_err(|r| Error::new(r.to_string()))?;
        if let Some(info) = tables::by_name(conn, &desc.name)? {
            if !same_columns(&info, &shape) {
                return Err(Error::new(format!(
                    "table \"{}\" changed shape since it became a CRR; wrap ALTER TABLE in \
                     crsql_begin_alter / crsql_commit_alter",
                    desc.name
                )));
            }
            conn.db.exec(&trigger_sql(info.tid, &desc.name, &shape))?;
            backfill(conn, info.tid, &desc.name, &shape)?;
            return Ok(());
        }
        let tid = meta::get_i64(conn, "next_tid", 1)?;
        meta::set(conn, "next_tid", &Value::Integer(tid + 1))?;
        conn.db.exec(&CLOCK_TABLE_SQL.replace("{tid}", &tid.to_string()))?;
        conn.db.exec(&format!("INSERT INTO crr_tables(tid, name) VALUES ({tid}, {})", literal(&desc.name)))?;
        let mut s = conn.db.prepare(
            "INSERT INTO crr_columns(tid, name, slot, pk_index, keeps_class) VALUES (?1, ?2, ?3, ?4, ?5)",
            false,
        )?;
        for (i, k) in shape.pk.iter().enumerate() {
            s.bind_i64(1, tid)?;
            s.bind_text(2, k)?;
            s.bind_null(3)?;
            s.bind_i64(4, i as i64 + 1)?;
            s.bind_i64(5, 0)?;
            s.run()?;
        }
        for (slot, c) in shape.columns.iter().enumerate() {
            s.bind_i64(1, tid)?;
            s.bind_text(2, &c.name)?;
            s.bind_i64(3, slot as i64)?;
            s.bind_i64(4, 0)?;
            s.bind_i64(5, i64::from(c.keeps_storage_class))?;
            s.run()?;
        }
        drop(s);
        conn.db.exec(&trigger_sql(tid, &desc.name, &shape))?;
        conn.tables.borrow_mut().invalidate();
        backfill(conn, tid, &desc.name, &shape)?;
        Ok(())
    })
}

/// crsql_as_table(table): stops tracking; the table and its rows stay, the clock goes.
pub fn as_table(conn: &Conn, table: &str) -> Result<()> {
    let info = tables::by_name(conn, table)?.ok_or_else(|| Error::new(format!("table \"{table}\" is not a CRR")))?;
    in_savepoint(conn, "crr_as_table", || {
        // Keep db_versions increasing after the clock's highest one disappears.
        let max = super::txn::max_db_version(conn)?;
        meta::set(conn, "db_version_floor", &Value::Integer(max))?;
        conn.db.exec(&drop_triggers_sql(info.tid))?;
        conn.stmts.clear();
        conn.db.exec(&format!("DROP TABLE IF EXISTS {}", clock_table(info.tid)))?;
        conn.db.exec(&format!("DELETE FROM crr_columns WHERE tid = {0}; DELETE FROM crr_tables WHERE tid = {0};", info.tid))?;
        conn.tables.borrow_mut().invalidate();
        Ok(())
    })
}
