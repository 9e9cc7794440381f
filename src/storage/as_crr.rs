//! crsql_as_crr / crsql_as_table: upgrading a table to a CRR (SPEC 3) and back; removing the
//! clock data of CRRs whose table was dropped.

use super::conn::Conn;
use super::savepoint::in_savepoint;
use super::tables::{self, clock_table, Clock, KeyLayout};
use super::{dirty, meta, schema, track};
use crate::core::fast_hash::FastHasher;
use crate::core::ident::quote;
use crate::core::table_shape::{self, Affinity, ColumnDesc, Shape, TableDesc};
use crate::core::value::Value;
use crate::error::{Error, Result, SQLITE_CONSTRAINT, SQLITE_ERROR, SQLITE_LOCKED};
use crate::ffi::db::Stmt;
use std::collections::HashMap;
use std::hash::Hasher;

const CLOCK_TABLE_SQL: &str = include_str!("../../sql/clock_table.sql");
const CLOCK_DBV_INDEX_SQL: &str = include_str!("../../sql/clock_dbv_index.sql");

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

/// Reads what SPEC 3 needs to know of a table. Err when there is no such table.
pub fn describe(conn: &Conn, name: &str) -> Result<TableDesc> {
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
        without_rowid: table_shape::is_without_rowid(&sql),
        name,
        columns,
        unique_indexes,
        has_foreign_keys,
        pk_has_index,
        key_collations,
        sql,
    })
}

fn changed_expr(column: &str, keeps_class: bool) -> String {
    let c = quote(column);
    if keeps_class {
        format!("(NEW.{c} IS NOT OLD.{c} COLLATE BINARY OR typeof(NEW.{c}) IS NOT typeof(OLD.{c}))")
    } else {
        format!("(NEW.{c} IS NOT OLD.{c} COLLATE BINARY)")
    }
}

/// `terms` joined by `op`, an associative operator (" OR ", " || "), in parenthesized groups
/// of CHAIN_GROUP when there are more: SQLite refuses an expression tree deeper than
/// SQLITE_LIMIT_EXPR_DEPTH (1000 by default), and a plain chain is as deep as it is long, so
/// a table of about 1,000 columns could not become a CRR ("Expression tree is too large",
/// until 2026-12-06). Grouped, 2,000 columns (SQLite's most) are about 100 deep. A chain of
/// at most CHAIN_GROUP terms is the plain one, the text every earlier build made.
fn chain(terms: &[String], op: &str) -> String {
    if terms.len() <= CHAIN_GROUP {
        return terms.join(op);
    }
    terms.chunks(CHAIN_GROUP).map(|g| format!("({})", g.join(op))).collect::<Vec<_>>().join(op)
}

const CHAIN_GROUP: usize = 64;

fn blob_literal(bytes: &[u8]) -> String {
    format!("X'{}'", bytes.iter().map(|b| format!("{b:02X}")).collect::<String>())
}

/// The three AFTER triggers that record local writes. Each writes the table's clock row in its
/// own SQL, inside the user's statement (no nested statement, no second statement journal),
/// and asks storage::track only for the record to store: `slots` is the tracked slots as a
/// constant blob, `flags` which slots changed (update: a bit mask, or text for wide tables,
/// see track::Flags), tested once per column: the update trigger's WHEN clause hands them to
/// crr_internal_changed, which holds them for the record function of its body
/// (track::HeldFlags; until 2026-12-06 the body tested every column again, and preparing an
/// UPDATE of a CRR cost 1.2 times what it does now at 3 columns, 1.75 times at 100). The
/// update trigger hands a key
/// change, or a live row without a live clock (its UPDATE matched nothing), to
/// crr_internal_update. All three stay silent while a merge writes the table. (The persisted
/// clock mark is kept by txn (tick, before_record); triggers of earlier builds raise it
/// themselves through crr_internal_hwm.)
///
/// The triggers name no virtual table (crr_internal_txn joins through a statement of ours
/// instead, `Conn::enter_write`): SQLite checks every trigger when any table is renamed or a
/// column dropped, and a connection without the extension could then alter no table of the
/// database.
///
/// `pk_affinity` holds the key columns' affinities (empty for a rowid key): an inserted key
/// value with a twin in a column of BLOB affinity (`table_shape::key_twin`) aborts the
/// statement. Key changes, which crr_internal_update records, are checked in Rust.
fn trigger_sql(clock: Clock, token: i64, table: &str, pk: &[String], pk_affinity: &[Affinity], cols: &[Tracked]) -> String {
    let t = quote(table);
    let tid = clock.tid;
    let tracking = format!("crr_internal_tracking({})", track::tracking_arg(tid, token));
    let keys = |prefix: &str| pk.iter().map(|k| format!("{prefix}.{}", quote(k))).collect::<Vec<_>>();
    let (new_key, old_key) = (clock.key_sql(&keys("NEW")), clock.key_sql(&keys("OLD")));
    let inserted_key = clock.key_sql(&twin_checked(table, pk, pk_affinity));
    // A rowid key is always an integer, so only its value can change; any other key may
    // change class alone (1 -> 1.0 compares equal).
    let key_keeps_class = clock.key != KeyLayout::Rowid;
    let buckets = clock.buckets;
    let clock = clock.trigger_table();
    let slots = blob_literal(&track::encode_slots(&cols.iter().map(|c| c.slot).collect::<Vec<_>>()));
    let changed: Vec<String> = cols.iter().map(|c| changed_expr(&c.name, c.keeps_class)).collect();
    let flags = if cols.is_empty() {
        "''".to_string()
    } else if cols.len() <= track::FLAG_BITS_MAX {
        // One integer, bit i for slot list entry i: no text is built per row.
        changed.iter().enumerate().map(|(i, e)| if i == 0 { e.clone() } else { format!("({e} << {i})") }).collect::<Vec<_>>().join(" | ")
    } else {
        chain(&changed, " || ")
    };
    // The fallback's flags: every slot. It runs on a key change (a delete and an insert of
    // the whole row) or a live row without a live clock (recorded whole), so track::on_update
    // reads its flags only for whether any slot changed, which the WHEN clause has tested
    // already. A constant instead of a second copy of `flags` saves SQLite compiling a
    // second test per column into every statement that updates the table (see README
    // "Preparing statements").
    let all_flags = if cols.is_empty() {
        "''".to_string()
    } else if cols.len() <= track::FLAG_BITS_MAX {
        ((1i64 << cols.len()) - 1).to_string()
    } else {
        format!("'{}'", "1".repeat(cols.len()))
    };
    let key_changed = chain(&pk.iter().map(|k| changed_expr(k, key_keeps_class)).collect::<Vec<_>>(), " OR ");
    // The clock row's dbv: a bucket clock marks the row's bucket in crr_dirty as it is
    // written (storage/dirty.rs), a new row (`fresh_dbv`) or an existing one, whose previous
    // dbv's entry may then go (`rewritten_dbv`); a dbv index needs nothing.
    let fresh_dbv = |key: &str| if buckets { format!("crr_internal_mark({tid}, {key})") } else { "crr_internal_db_version()".to_string() };
    let rewritten_dbv = if buckets { format!("crr_internal_mark({tid}, pk, dbv)") } else { "excluded.dbv".to_string() };
    let (insert_dbv, delete_dbv) = (fresh_dbv(&inserted_key), fresh_dbv(&old_key));
    let update_dbv = if buckets { rewritten_dbv.clone() } else { "crr_internal_db_version()".to_string() };
    format!(
        "CREATE TRIGGER IF NOT EXISTS main.\"crr_{tid}_insert\" AFTER INSERT ON {t} WHEN {tracking} BEGIN \
           INSERT INTO {clock}(pk, cl, dbv, clock) \
             VALUES ({inserted_key}, 1, {insert_dbv}, crr_internal_fresh_record({slots})) \
             ON CONFLICT(pk) DO UPDATE SET cl = cl | 1, dbv = {rewritten_dbv}, \
               clock = crr_internal_insert_over_record({tid}, cl, clock, excluded.clock, {slots}); \
           END;\n\
         CREATE TRIGGER IF NOT EXISTS main.\"crr_{tid}_update\" AFTER UPDATE ON {t} \
             WHEN {tracking} AND crr_internal_changed({key_changed}, {flags}) BEGIN \
           UPDATE {clock} SET dbv = {update_dbv}, \
               clock = crr_internal_update_record({tid}, cl, clock, {slots}) \
             WHERE pk = {new_key} AND cl & 1 AND NOT ({key_changed}); \
           SELECT crr_internal_update({tid}, crsql_pack_columns({old}), crsql_pack_columns({new}), {slots}, {all_flags}) \
             WHERE changes() = 0; \
           END;\n\
         CREATE TRIGGER IF NOT EXISTS main.\"crr_{tid}_delete\" AFTER DELETE ON {t} WHEN {tracking} BEGIN \
           INSERT INTO {clock}(pk, cl, dbv, clock) \
             VALUES ({old_key}, 2, {delete_dbv}, crr_internal_tombstone_record()) \
             ON CONFLICT(pk) DO UPDATE SET cl = cl + 1, dbv = {rewritten_dbv}, clock = excluded.clock WHERE cl & 1; \
           END;",
        new = keys("NEW").join(", "),
        old = keys("OLD").join(", "),
    )
}

/// The insert trigger's `NEW.<key>` expressions: a column of BLOB affinity raises an error
/// for a REAL equal to an INTEGER (`table_shape::key_twin`, the same test in SQL: CAST
/// saturates, and a saturated value compares unequal). RAISE takes only a literal message,
/// so it names the table and column as they were at creation; commit_alter makes the
/// triggers again after a rename. Cost (callgrind, 20,000 inserts through the sqlite3 shell):
/// about 400 instructions an insert with integer or text keys, 400-600 with 16-byte random
/// blobs, about 2% of a tracked insert; the CAST first was dearer for integers and text, and
/// the check outside the key's expression (in `cl`'s) cost the same.
fn twin_checked(table: &str, pk: &[String], pk_affinity: &[Affinity]) -> Vec<String> {
    pk.iter()
        .enumerate()
        .map(|(i, k)| {
            let v = format!("NEW.{}", quote(k));
            if pk_affinity.get(i) != Some(&Affinity::Blob) {
                return v;
            }
            let message = format!(
                "table \"{table}\": key column \"{k}\" cannot hold a REAL equal to an INTEGER (SQLite finds 1.0 = 1, so \
                 replicas could hold one row under two keys and never converge); store the INTEGER"
            );
            format!(
                "CASE WHEN typeof({v}) = 'real' AND {v} = CAST({v} AS INTEGER) THEN RAISE(ABORT, {}) ELSE {v} END",
                crate::core::ident::literal(&message)
            )
        })
        .collect()
}

/// Gives table `clock.tid` this build's three triggers (`trigger_sql`). Triggers that are
/// already exactly those are kept: crsql_as_crr, which apps call at every start, then changes
/// no schema (every connection would otherwise read the schema again and prepare its
/// statements anew); any others (an earlier build's, or made for the table's shape before an
/// alter) are replaced. Ok(true) when one of the three was missing (the table dropped and
/// made again, with the triggers that went with it): writes since then went unrecorded.
pub fn install_triggers(conn: &Conn, clock: Clock, table: &str, pk: &[String], pk_affinity: &[Affinity], cols: &[Tracked]) -> Result<bool> {
    let sql = trigger_sql(clock, meta::make_token(conn)?, table, pk, pk_affinity, cols);
    let found = triggers_found(conn, clock.tid, &sql)?;
    if found != Found::Same {
        conn.db.exec(&drop_triggers_sql(clock.tid))?;
        conn.db.exec(&sql)?;
    }
    Ok(found == Found::Missing)
}

/// What `triggers_found` found of a table's three triggers.
#[derive(PartialEq)]
enum Found {
    /// The three that `trigger_sql` makes.
    Same,
    /// Three, not all of them those.
    Other,
    /// Not all three.
    Missing,
}

/// Table `tid`'s three triggers, compared with those `sql` (`trigger_sql`) makes. SQLite keeps
/// a CREATE TRIGGER's text from the trigger's name on, without `IF NOT EXISTS` and the schema
/// name; so does this comparison.
fn triggers_found(conn: &Conn, tid: i64, sql: &str) -> Result<Found> {
    // The three in one pass over the schema (SQLite keeps no index on it: with 400 CRRs a
    // pass costs about 0.07 ms, and apps call crsql_as_crr for each CRR at every start).
    let mut s = conn.db.prepare("SELECT name, sql FROM main.sqlite_schema WHERE type = 'trigger' AND name IN (?1, ?2, ?3)", false)?;
    for (i, kind) in ["insert", "update", "delete"].iter().enumerate() {
        s.bind_text(i + 1, &format!("crr_{tid}_{kind}"))?;
    }
    let mut stored = HashMap::new();
    while s.step()? {
        stored.insert(s.text(0), s.text(1));
    }
    if stored.len() < 3 {
        return Ok(Found::Missing);
    }
    let statements: Vec<&str> = sql.split(";\n").map(|st| st.trim_end_matches(';')).collect();
    for kind in ["insert", "update", "delete"] {
        let name = format!("\"crr_{tid}_{kind}\"");
        let made = format!("CREATE TRIGGER IF NOT EXISTS main.{name}");
        let Some(statement) = statements.iter().find(|st| st.starts_with(&made)) else { return Ok(Found::Other) };
        let expected = format!("CREATE TRIGGER {name}{}", &statement[made.len()..]);
        if stored.get(&format!("crr_{tid}_{kind}")) != Some(&expected) {
            return Ok(Found::Other);
        }
    }
    Ok(Found::Same)
}

/// Whether the main schema has a trigger named `name`.
pub(super) fn has_trigger(conn: &Conn, name: &str) -> Result<bool> {
    let mut s = conn.db.prepare("SELECT 1 FROM main.sqlite_schema WHERE type = 'trigger' AND name = ?1", false)?;
    s.bind_text(1, name)?;
    s.step()
}

fn drop_triggers_sql(tid: i64) -> String {
    format!(
        "DROP TRIGGER IF EXISTS main.\"crr_{tid}_insert\"; DROP TRIGGER IF EXISTS main.\"crr_{tid}_update\"; \
         DROP TRIGGER IF EXISTS main.\"crr_{tid}_delete\"; DROP TRIGGER IF EXISTS main.\"crr_{tid}_alter_old\";"
    )
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

/// Raises the db_version floor to cover clock tables (or entries) about to disappear.
pub(super) fn raise_floor(conn: &Conn, max: i64) -> Result<()> {
    conn.carry.set(None);
    let floor = meta::get_i64(conn, "db_version_floor", 0)?;
    if max > floor {
        meta::set(conn, "db_version_floor", &Value::Integer(max))?;
    }
    Ok(())
}

/// Removes the clock data of CRRs whose table was dropped. `hard` also drops the clock tables
/// (only possible from a top-level function call: SQLite refuses DROP TABLE while another
/// statement of the connection reads); otherwise they are emptied and dropped later.
pub fn reap_dropped(conn: &Conn, hard: bool) -> Result<()> {
    conn.forget_merged_row();
    dirty::flush(conn)?;
    tables::all(conn)?;
    let dropped = conn.tables.borrow().dropped.clone();
    // A connection that may not write leaves them to one that may (the registry lists no
    // dropped CRR anyway): until 2026-12-06 the crsql_as_crr apps call at every start failed
    // on a read-only connection while a dropped CRR's clock was left.
    let pending = !dropped.is_empty() || (hard && !conn.tables.borrow().orphans.is_empty());
    if pending && conn.db.is_readonly() {
        return Ok(());
    }
    if !dropped.is_empty() {
        super::txn::secure_mark(conn)?;
    }
    for c in &dropped {
        let tid = c.tid;
        // For a bucket clock, the highest of its crr_dirty entries, which is at least its rows'
        // (and may be above them, see dirty.rs): the floor covers every version reported.
        let mut s = conn.db.prepare(&c.max_dbv_sql(), false)?;
        s.step()?;
        let max = s.i64(0);
        drop(s);
        raise_floor(conn, max)?;
        conn.stmts.clear();
        forget_registration(conn, tid)?;
    }
    if hard {
        // Those the last load of the registry found (no query of the schema per call: this
        // runs in every crsql_as_crr, which apps call for each CRR at every start), and those
        // of the CRRs removed just now.
        let found = std::mem::take(&mut conn.tables.borrow_mut().orphans);
        let mut orphans = Vec::new();
        for name in found {
            if is_emptied_clock(conn, &name)? {
                orphans.push(name);
            }
        }
        orphans.extend(dropped.iter().map(|c| format!("crr_clock_{}", c.tid)));
        if !orphans.is_empty() {
            conn.stmts.clear();
        }
        for name in orphans {
            match conn.db.exec(&format!("DROP TABLE IF EXISTS main.{}", quote(&name))) {
                // Another statement of the connection runs (`SELECT crsql_as_crr(name) FROM
                // sqlite_schema ...`): SQLite refuses DROP TABLE then, and the emptied clock
                // table waits for a later call (until 2026-12-06 the call failed with
                // `database table is locked` while a dropped CRR's clock was left).
                Err(e) if e.code & 0xff == SQLITE_LOCKED => {}
                r => r?,
            }
        }
    }
    if !dropped.is_empty() {
        conn.tables.borrow_mut().invalidate();
    }
    Ok(())
}

/// Removes CRR `tid` from the registry and empties its clock table, which `reap_dropped`
/// (with `hard`) then drops as a clock of no CRR, or leaves for a later call while another
/// statement of the connection runs (SQLite refuses DROP TABLE then). What crsql_as_table
/// and the removal of a dropped CRR share.
fn forget_registration(conn: &Conn, tid: i64) -> Result<()> {
    conn.db.exec(&format!(
        "DELETE FROM {}; DELETE FROM main.crr_columns WHERE tid = {tid}; DELETE FROM main.crr_tables WHERE tid = {tid}; \
         DELETE FROM main.crr_meta WHERE key = 'alter.{tid}';",
        clock_table(tid)
    ))?;
    dirty::forget(conn, tid)
}

/// What crsql_as_crr, crsql_begin_alter and crsql_commit_alter do first: remove the CRRs
/// whose table was dropped (`reap_dropped`; `hard` also drops their clock tables), then give
/// crr_tables the names renames outside a bracket left behind
/// (`tables::register_current_names`), so that neither a dropped CRR nor a stale name holds
/// a name the call is about to record.
pub fn tidy_registry(conn: &Conn, hard: bool) -> Result<()> {
    reap_dropped(conn, hard)?;
    tables::register_current_names(conn)
}

/// Whether `name`, a table named as the clock of a table id no CRR has, is a clock this
/// extension emptied when it removed the CRR (`reap_dropped` without `hard`): a clock's four
/// columns and no row. Any other table of that name is an app's, and keeps its rows: until
/// 2026-12-06 an app's table named `crr_clock_2` was dropped by the next crsql_as_crr. A
/// virtual table is never one (its columns are not read: with its module missing on the
/// connection, that failed every crsql_as_crr with `no such module`, until 2026-12-06).
fn is_emptied_clock(conn: &Conn, name: &str) -> Result<bool> {
    let mut s = conn.db.prepare("SELECT sql LIKE 'CREATE VIRTUAL TABLE%' FROM main.sqlite_schema WHERE type = 'table' AND name = ?1", false)?;
    s.bind_text(1, name)?;
    if !s.step()? || s.i64(0) != 0 {
        return Ok(false);
    }
    drop(s);
    let sql = format!(
        "SELECT (SELECT count(*) FROM pragma_table_info(?1, 'main')) = 4 \
           AND (SELECT count(*) FROM pragma_table_info(?1, 'main') WHERE name IN ('pk', 'cl', 'dbv', 'clock')) = 4 \
           AND NOT EXISTS (SELECT 1 FROM main.{})",
        quote(name)
    );
    let mut s = conn.db.prepare(&sql, false)?;
    s.bind_text(1, name)?;
    s.step()?;
    Ok(s.i64(0) != 0)
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
    meta::set(conn, "next_tid", &Value::Integer(tid + 1))?;
    Ok(tid)
}

/// Internal schema 3 -> 4: moves every rowid clock that has a dbv index and its three
/// triggers onto crr_dirty buckets: an entry per bucket and dbv of its rows, no index, and
/// triggers that mark buckets. A clock without its three triggers (between
/// crsql_begin_alter and crsql_commit_alter: a schema-3 build's bracket has no update
/// trigger; or its table dropped) keeps its index, and so does its next trigger set
/// (`trigger_sql` follows the clock).
pub fn move_to_buckets(conn: &Conn) -> Result<()> {
    conn.tables.borrow_mut().invalidate();
    for info in tables::all(conn)?.iter().filter(|t| t.key == KeyLayout::Rowid && !t.buckets) {
        let tid = info.tid;
        if !has_all_triggers(conn, tid)? {
            continue;
        }
        let cols = registered_columns(conn, tid)?;
        conn.stmts.clear();
        let clock = Clock { buckets: true, ..info.clock() };
        conn.db.exec(&format!(
            "INSERT OR IGNORE INTO main.crr_dirty(tid, dbv, bucket) SELECT DISTINCT {tid}, dbv, pk >> {} FROM {}; DROP INDEX main.\"crr_clock_{tid}_dbv\";",
            dirty::BUCKET_BITS,
            clock.table()
        ))?;
        install_triggers(conn, clock, &info.name, &info.pk, &[], &cols)?;
    }
    conn.tables.borrow_mut().invalidate();
    conn.stmts.clear();
    Ok(())
}

/// Internal schema 4 -> 5: every CRR's triggers are made again from the registry, passing the
/// database's token (`meta::token`, `track::tracking_arg`) and checking inserted keys for twins.
/// Left as they are, passing a bare table id (`track::check_legacy_caller` takes it from the
/// main database's triggers only): a table between
/// crsql_begin_alter and crsql_commit_alter (the commit makes its triggers), one ALTERed
/// outside a bracket (its registered columns may be gone; reads and merges refuse it until a
/// bracket records its shape, whose commit makes them), and one without its three triggers.
/// (`renew_token` only rewrites a token already in the text, so it could not serve here.)
pub fn add_token_to_triggers(conn: &Conn) -> Result<()> {
    conn.tables.borrow_mut().invalidate();
    for info in tables::all(conn)?.iter() {
        if !has_all_triggers(conn, info.tid)? || super::alter::in_bracket(conn, info.tid)? {
            continue;
        }
        match info.check_columns(conn) {
            Err(e) if e.stopped_the_work() => return Err(e),
            Err(_) => continue,
            Ok(()) => {}
        }
        // A table whose triggers cannot be made again keeps its own (they still record, with a
        // bare table id) rather than fail the upgrade, and with it every load of the extension;
        // but not for an interrupt, or the like: this upgrade is the only one, and it is tried
        // again at the next load.
        let remade = in_savepoint(conn, "crr_token_triggers", || {
            let cols = registered_columns(conn, info.tid)?;
            let affinities = info.key_affinities(conn)?.to_vec();
            install_triggers(conn, info.clock(), &info.name, &info.pk, &affinities, &cols)
        });
        match remade {
            Err(e) if e.stopped_the_work() => return Err(e),
            _ => {}
        }
    }
    conn.tables.borrow_mut().invalidate();
    conn.stmts.clear();
    Ok(())
}

/// Gives the database a new token and every trigger of ours that passes the old one the new
/// one: crr_new_site_id makes a copy of a file another replica, and ATTACHed to the original
/// it must not pass for it (`meta::token`). The triggers keep their text but for the token, so
/// this also serves a table between crsql_begin_alter and crsql_commit_alter and one ALTERed
/// outside a bracket, whose triggers no other code would remake as they are.
pub fn renew_token(conn: &Conn) -> Result<()> {
    // The stored one, whatever the connection knew: the triggers carry that.
    let old = meta::stored_token(conn)?;
    if old == 0 {
        return Ok(()); // no trigger carries one
    }
    meta::set_token(conn, old)?;
    let new = meta::token(conn)?;
    let mut s = conn.db.prepare("SELECT name, sql FROM main.sqlite_schema WHERE type = 'trigger' AND name GLOB 'crr_[0-9]*_*'", false)?;
    let mut triggers = Vec::new();
    while s.step()? {
        triggers.push((s.text(0), s.text(1)));
    }
    drop(s);
    for (name, sql) in triggers {
        let Some(tid) = name.strip_prefix("crr_").and_then(|r| r.split('_').next()).and_then(|t| t.parse::<i64>().ok()) else { continue };
        let (from, to) = (format!("crr_internal_tracking({})", track::tracking_arg(tid, old)), format!("crr_internal_tracking({})", track::tracking_arg(tid, new)));
        if !sql.contains(&from) {
            continue; // an earlier build's trigger: no token
        }
        if !remake_trigger(conn, &name, &sql.replace(&from, &to))? {
            return Err(Error::new(format!("trigger \"{name}\": its text does not start with its quoted name")));
        }
    }
    Ok(())
}

/// Drops trigger `name` of the main schema and makes it again from `sql` (its text as
/// sqlite_schema keeps it, `CREATE TRIGGER "name" ...`), named `main."name"`: unqualified, the
/// text would make a TEMP trigger on a TEMP table of the CRR's name, if there is one. False,
/// and nothing done, for a text in another form than every build has made them in (the name
/// quoted as `quote` does).
fn remake_trigger(conn: &Conn, name: &str, sql: &str) -> Result<bool> {
    let quoted = quote(name);
    let Some(rest) = sql.strip_prefix("CREATE TRIGGER ").and_then(|s| s.strip_prefix(quoted.as_str())) else {
        return Ok(false);
    };
    conn.db.exec(&format!("DROP TRIGGER main.{quoted}; CREATE TRIGGER main.{quoted}{rest}"))?;
    Ok(true)
}

/// SQLite fires a table's triggers newest first, so an app's trigger made after ours ran
/// before them: an AFTER trigger's RAISE(IGNORE) abandoned our tracking of the write it let
/// through, its RAISE(FAIL) stopped the statement with the write kept and not recorded. Our
/// triggers (any form: this build's, a bracket's, an earlier build's) of every CRR with an app
/// trigger made after the first of them, or of `table` only, are made again, same text, so
/// that they are the newest; a CRR already in that order is left alone (and a trigger whose
/// text `remake_trigger` does not know, which no build has made, is left where it is).
pub fn put_tracking_first(conn: &Conn, table: Option<&str>) -> Result<()> {
    remake_all(conn, out_of_order(conn, table)?)
}

fn remake_all(conn: &Conn, triggers: Vec<(String, String)>) -> Result<()> {
    for (name, sql) in triggers {
        remake_trigger(conn, &name, &sql)?;
    }
    Ok(())
}

/// `put_tracking_first` for every CRR, when the extension is loaded, in a savepoint of its own:
/// best effort (a read-only database, or one another connection is writing, is left as it is
/// until a later load or crsql_as_crr).
pub fn put_tracking_first_at_load(conn: &Conn) {
    // (Whether the database refuses writes is asked only when there is something to write:
    // it takes a statement, at every load.)
    match out_of_order(conn, None) {
        Ok(triggers) if !triggers.is_empty() && !conn.db.is_readonly() => {
            let _ = in_savepoint(conn, "crr_trigger_order", || remake_all(conn, triggers));
        }
        _ => {}
    }
}

/// Our triggers (name, text) that `put_tracking_first` makes again, oldest first.
fn out_of_order(conn: &Conn, table: Option<&str>) -> Result<Vec<(String, String)>> {
    // One pass over the schema's triggers (of `table` only, when given), without their text:
    // the crsql_as_crr that apps call at every start for each CRR read every trigger's text
    // through a CTE, about 1 ms a call with 400 CRRs (a correlated form took 160 ms at a load
    // of 400 CRRs). Table names match as SQL's do, ASCII case aside (NOCASE folds ASCII only).
    let mut s = conn.db.prepare(
        "SELECT rowid, name, tbl_name FROM main.sqlite_schema WHERE type = 'trigger' AND (?1 IS NULL OR tbl_name = ?1 COLLATE NOCASE)",
        false,
    )?;
    match table {
        Some(t) => s.bind_text(1, t)?,
        None => s.bind_null(1)?,
    }
    // Per table: the first of our triggers, the last of the app's, and ours (rowid, name).
    #[derive(Default)]
    struct Seen {
        first_ours: Option<i64>,
        last_app: Option<i64>,
        ours: Vec<(i64, String)>,
    }
    let mut by_table: HashMap<String, Seen> = HashMap::new();
    while s.step()? {
        let (rowid, name) = (s.i64(0), s.text(1));
        let seen = by_table.entry(s.text(2).to_ascii_lowercase()).or_default();
        if is_tracking_trigger(&name) {
            seen.first_ours = Some(seen.first_ours.map_or(rowid, |r| r.min(rowid)));
            seen.ours.push((rowid, name));
        } else {
            seen.last_app = Some(seen.last_app.map_or(rowid, |r| r.max(rowid)));
        }
    }
    drop(s);
    let mut late: Vec<(i64, String)> = by_table
        .into_values()
        .filter(|t| matches!((t.last_app, t.first_ours), (Some(app), Some(ours)) if app > ours))
        .flat_map(|t| t.ours)
        .collect();
    if late.is_empty() {
        return Ok(Vec::new());
    }
    late.sort_unstable();
    let mut text = conn.db.prepare("SELECT sql FROM main.sqlite_schema WHERE type = 'trigger' AND name = ?1", false)?;
    let mut triggers = Vec::new();
    for (_, name) in late {
        text.bind_text(1, &name)?;
        if text.step()? {
            triggers.push((name, text.text(0)));
        }
        text.reset();
    }
    Ok(triggers)
}

/// The kinds of tracking trigger the extension makes, `crr_<tid>_<kind>`: the three of
/// `trigger_sql`, and alter.rs's bracket one (whose update trigger keeps its kind's name).
const TRACKING_KINDS: [&str; 4] = ["insert", "update", "delete", "alter_old"];

/// Whether trigger `name` is one of the tracking triggers some build made (SQL's
/// `GLOB 'crr_[0-9]*_insert'`, and `_update`, `_delete`, `_alter_old`).
fn is_tracking_trigger(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("crr_") else { return false };
    rest.starts_with(|c: char| c.is_ascii_digit())
        && TRACKING_KINDS.iter().any(|kind| rest.strip_suffix(kind).is_some_and(|head| head.len() > 1 && head.ends_with('_')))
}

/// The table id of a trigger named exactly as one of the extension's own
/// (`crr_<digits>_<kind>`); None for any other name, even one `is_tracking_trigger` takes.
pub fn own_trigger_tid(name: &str) -> Option<i64> {
    let (digits, kind) = name.strip_prefix("crr_")?.split_once('_')?;
    TRACKING_KINDS.contains(&kind).then(|| digits.parse().ok())?
}

/// Whether table `tid` has its insert, update and delete triggers.
fn has_all_triggers(conn: &Conn, tid: i64) -> Result<bool> {
    for kind in ["insert", "update", "delete"] {
        if !has_trigger(conn, &format!("crr_{tid}_{kind}"))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The registry's tracked columns of table `tid`, by slot.
fn registered_columns(conn: &Conn, tid: i64) -> Result<Vec<Tracked>> {
    let mut cols = Vec::new();
    let mut s = conn.db.prepare("SELECT slot, name, keeps_class FROM main.crr_columns WHERE tid = ?1 AND pk_index = 0 AND slot >= 0 ORDER BY slot", false)?;
    s.bind_i64(1, tid)?;
    while s.step()? {
        cols.push(Tracked { slot: s.i64(0) as usize, name: s.text(1), keeps_class: s.i64(2) != 0 });
    }
    Ok(cols)
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

/// What `check_defaults` evaluates for a table: the TEMP table it stores the row of defaults
/// in (one per column layout), the row, and the checks.
struct Probe {
    /// `name (columns) [STRICT]`, for CREATE TEMP TABLE.
    table: String,
    /// `temp."name"`, for the statements on it.
    qualified: String,
    /// `(stored columns) VALUES (their defaults)`, for its INSERT.
    values: String,
    /// (what the error names, the expression that must not be false)
    checks: Vec<(String, String)>,
}

/// The probe of `desc`, None when it has nothing to check (no CHECK, no NOT NULL column, not
/// STRICT); its columns have their collations, the app's own too if `app_collations`, and
/// its generated columns their expressions if `generated` (else a CHECK that names one is
/// not judged, nor its NOT NULL).
fn probe_of(desc: &TableDesc, app_collations: bool, generated: bool) -> Option<Probe> {
    let names: Vec<String> = desc.columns.iter().map(|c| c.name.clone()).collect();
    let mut checks: Vec<(String, String)> =
        table_shape::check_constraints(&desc.sql, &names).into_iter().map(|c| (format!("CHECK ({})", c.expr), c.expr)).collect();
    let generated: Vec<table_shape::Generated> =
        if generated && desc.columns.iter().any(|c| c.generated) { table_shape::generated_columns(&desc.sql, &names) } else { Vec::new() };
    let computed = |c: &ColumnDesc| generated.iter().find(|g| g.name.eq_ignore_ascii_case(&c.name));
    // A NOT NULL column whose DEFAULT is NULL (`DEFAULT NULL`) fails the same way, and so does
    // a generated one whose expression gives NULL there.
    checks.extend(
        desc.columns
            .iter()
            .filter(|c| c.pk_index == 0 && c.not_null && (!c.generated || computed(c).is_some()))
            .map(|c| (format!("NOT NULL on {}", quote(&c.name)), format!("{} IS NOT NULL", quote(&c.name)))),
    );
    let strict = table_shape::is_strict(&desc.sql);
    if checks.is_empty() && !strict {
        return None;
    }
    let stored: Vec<&ColumnDesc> = desc.columns.iter().filter(|c| !c.generated).collect();
    // Each column's collation too, for the CHECKs' comparisons (`made_probe`: an app's own
    // may not be registered on this connection, and CREATE TABLE fails on it).
    let collations = table_shape::column_collations(&desc.sql);
    let collation = |c: &ColumnDesc| {
        let named = collations.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(&c.name)).map(|(_, coll)| coll.as_str());
        match named {
            Some(coll) if coll.eq_ignore_ascii_case("NOCASE") || coll.eq_ignore_ascii_case("RTRIM") => format!(" COLLATE {coll}"),
            Some(coll) if app_collations && !coll.eq_ignore_ascii_case("BINARY") => format!(" COLLATE {}", quote(coll)),
            _ => String::new(),
        }
    };
    // The generated columns after the stored ones, computed from them as in the table (a
    // CHECK on `g AS (a || 'x')` judges the row of defaults' g: until 2026-12-06 it was not).
    let computed_columns = desc.columns.iter().filter_map(|c| computed(c).map(|g| format!("{} {} AS ({}){}", quote(&c.name), c.decl_type, g.expr, collation(c))));
    let columns = stored.iter().map(|c| format!("{} {}{}", quote(&c.name), c.decl_type, collation(c))).chain(computed_columns).collect::<Vec<_>>().join(", ");
    let values = stored
        .iter()
        .map(|c| if c.pk_index > 0 { "NULL".to_string() } else { table_shape::default_expr(c.default_sql.as_deref()) })
        .collect::<Vec<_>>()
        .join(", ");
    let values = format!("({}) VALUES ({values})", stored.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", "));
    // A STRICT table's probe is STRICT too: a default of the wrong type fails the insert.
    let layout = format!("({columns}){}", if strict { " STRICT" } else { "" });
    let name = layout_table_name("crr_defaults_probe", &layout);
    Some(Probe { table: format!("{name} {layout}"), qualified: format!("temp.{name}"), values, checks })
}

/// The quoted name of a TEMP table the extension keeps for one `layout` of columns (the probe
/// of a row of defaults, alter's `column_defaults`): `prefix` and the layout's hash.
pub fn layout_table_name(prefix: &str, layout: &str) -> String {
    let mut hash = FastHasher::default();
    hash.write(layout.as_bytes());
    format!("\"{prefix}_{:016x}\"", hash.finish())
}

/// Makes the TEMP table that `check_defaults` will use for the table `desc` describes, if it
/// needs one, before crsql_as_crr or crsql_commit_alter opens its savepoint: creating a TEMP
/// table expires every prepared statement, `in_savepoint`'s ROLLBACK TO and RELEASE too, and
/// a pending interrupt would keep them from being prepared again (the savepoint, half done,
/// stayed open). Callers describe the table with `describe_before_savepoint`.
pub fn make_probe(conn: &Conn, desc: &TableDesc) -> Result<()> {
    made_probe(conn, desc).map(drop)
}

/// The probe of `desc` with its TEMP table made (None: nothing to check). A column's collation
/// that is the app's own is applied if the app registered it on this connection; if not (the
/// probe's CREATE fails with `no such collation sequence`), the probe compares under BINARY
/// there: the table itself cannot be written on this connection then.
fn made_probe(conn: &Conn, desc: &TableDesc) -> Result<Option<Probe>> {
    let Some(probe) = probe_of(desc, true, true) else {
        return Ok(None);
    };
    let e = match probe.make(conn) {
        Ok(()) => return Ok(Some(probe)),
        Err(e) if e.stopped_the_work() => return Err(e),
        Err(e) => e,
    };
    // Without what this connection cannot make: an app's collation it has not registered, or
    // a generated column's expression it cannot prepare (an app's function).
    let collations = !e.message.contains("no such collation sequence");
    let Some(probe) = probe_of(desc, collations, false) else {
        return Ok(None);
    };
    probe.make(conn)?;
    Ok(Some(probe))
}

impl Probe {
    /// Creates its TEMP table unless it exists.
    fn make(&self, conn: &Conn) -> Result<()> {
        conn.db.exec(&format!("CREATE TEMP TABLE IF NOT EXISTS {}", self.table))
    }
}

/// Refuses a table whose row of defaults fails one of its CHECK constraints or has NULL in a
/// NOT NULL column (key columns NULL,
/// so only what fails whatever the key counts): a merge creates a row with its defaults and
/// then applies the change's cell, so `qty INTEGER DEFAULT 0 CHECK (qty > 0)` failed every
/// merge of a new row that began with another column, and the sync stopped there for good.
/// The defaults are stored in a TEMP table of the same declared types (so with the same
/// affinities; one per column layout, emptied after use and kept until the connection
/// closes: DROP TABLE is refused while another statement runs, `SELECT crsql_as_crr(name)
/// FROM sqlite_schema ...`, CREATE and DELETE are not) and each CHECK is evaluated on that
/// row; a CHECK that cannot be evaluated so (it names a generated column) is not judged.
fn check_defaults(conn: &Conn, desc: &TableDesc) -> Result<()> {
    // (Made already, by `make_probe`, unless the table changed shape since.)
    let Some(p) = made_probe(conn, desc)? else {
        return Ok(());
    };
    let Probe { qualified: probe, values, mut checks, .. } = p;
    conn.db.exec(&format!("DELETE FROM {probe}"))?;
    let mut failed = None;
    match conn.db.exec(&format!("INSERT INTO {probe}{values}")) {
        Ok(()) => {}
        // A constraint refused it (a STRICT column's type, NOT NULL); any other error (an
        // interrupt, a full disk) is not the table's.
        Err(e) if e.code == SQLITE_CONSTRAINT => {
            failed = Some(format!("its column types ({})", e.message));
            checks.clear();
        }
        Err(e) => return Err(e),
    }
    for (shown, check) in &checks {
        // A CHECK the probe cannot prepare (it names a generated column, which the probe
        // lacks) is not judged; an interrupt or lack of memory is no verdict and is reported.
        let Some(mut s) = conn.db.prepare_if_resolves(&format!("SELECT NOT ({check}) FROM {probe}"))? else { continue };
        match s.step() {
            Ok(true) if s.column_type(0) == crate::ffi::api::SQLITE_INTEGER && s.i64(0) == 1 => {
                failed = Some(shown.clone());
                break;
            }
            Ok(_) => {}
            // The check raised an error on the row of defaults (an overflow, a function's
            // error): the table's INSERT of that row fails the same way. Any other error (an
            // interrupt, a progress handler, no memory) is no verdict.
            Err(e) if e.code == SQLITE_ERROR => {
                failed = Some(format!("{shown} ({})", e.message));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    conn.db.exec(&format!("DELETE FROM {probe}"))?;
    match failed {
        Some(what) => Err(Error::new(format!(
            "table \"{}\" cannot be a CRR: a row of its defaults fails {what}; merges create a row with \
             its defaults before its columns arrive one at a time (give the column a DEFAULT that passes)",
            desc.name
        ))),
        None => Ok(()),
    }
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
pub fn check_shape(conn: &Conn, desc: &TableDesc) -> Result<Shape> {
    let shape = table_shape::check(desc).map_err(|r| Error::new(r.to_string()))?;
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
        if let Some(info) = existing {
            info.check_columns(conn)?;
            keeps_key_layout(&info, &shape)?;
            let cols = tracked_of(&info, &shape).ok_or_else(|| {
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
            return Ok(());
        }
        let tid = allocate_tid(conn)?;
        let clock = Clock::new(tid, if shape.rowid_key { KeyLayout::Rowid } else { KeyLayout::Packed });
        let (key_type, options) = match clock.key {
            KeyLayout::Rowid => ("INTEGER", ""),
            KeyLayout::Packed => ("BLOB", " WITHOUT ROWID"),
        };
        conn.db.exec(
            &CLOCK_TABLE_SQL.replace("{tid}", &tid.to_string()).replace("{key_type}", key_type).replace("{options}", options),
        )?;
        if !clock.buckets {
            conn.db.exec(&CLOCK_DBV_INDEX_SQL.replace("{tid}", &tid.to_string()))?;
        }
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
    })
}

/// crsql_as_table(table): stops tracking; the table and its rows stay, the clock goes.
pub fn as_table(conn: &Conn, table: &str) -> Result<()> {
    super::savepoint::lock_first(conn)?;
    let info = tables::by_name(conn, table)?.ok_or_else(|| Error::new(format!("table \"{table}\" is not a CRR")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_triggers_are_told_by_name_as_sqls_glob_tells_them() {
        for yes in ["crr_1_insert", "crr_12_update", "crr_7_delete", "crr_3_alter_old", "crr_1x_insert"] {
            assert!(super::is_tracking_trigger(yes), "{yes}");
        }
        for no in ["crr__insert", "crr_insert", "crr_1_insert2", "app_1_insert", "crr_x1_update", "crr_1_alter_new", "CRR_1_insert", "crr_1"] {
            assert!(!super::is_tracking_trigger(no), "{no}");
        }
        assert_eq!(super::own_trigger_tid("crr_12_update"), Some(12));
        assert_eq!(super::own_trigger_tid("crr_3_alter_old"), Some(3));
        for no in ["crr_1x_insert", "crr_1_c3_update", "crr_1_log", "crr__insert", "crr_1"] {
            assert_eq!(super::own_trigger_tid(no), None, "{no}");
        }
    }

    /// The update trigger checks a key's storage class only where it can change alone.
    #[test]
    fn rowid_keys_skip_the_class_check() {
        let cols = [Tracked { slot: 0, name: "a".into(), keeps_class: false }];
        let pk = ["id".to_string()];
        let rowid = trigger_sql(Clock::new(1, KeyLayout::Rowid), 7, "t", &pk, &[], &cols);
        let packed = trigger_sql(Clock::new(1, KeyLayout::Packed), 7, "t", &pk, &[], &cols);
        assert!(!rowid.contains("typeof(NEW.\"id\")"), "{rowid}");
        assert!(packed.contains("typeof(NEW.\"id\") IS NOT typeof(OLD.\"id\")"), "{packed}");
        assert!(rowid.contains("NEW.\"id\" IS NOT OLD.\"id\" COLLATE BINARY"), "{rowid}");
    }

    /// Up to FLAG_BITS_MAX tracked columns the update flags are one integer; beyond, text.
    #[test]
    fn update_flags_are_a_bit_mask_unless_the_table_is_wide() {
        let pk = ["id".to_string()];
        let cols = |n: usize| (0..n).map(|i| Tracked { slot: i, name: format!("c{i}"), keeps_class: false }).collect::<Vec<_>>();
        let narrow = trigger_sql(Clock::new(1, KeyLayout::Rowid), 7, "t", &pk, &[], &cols(track::FLAG_BITS_MAX));
        assert!(narrow.contains(&format!("<< {})", track::FLAG_BITS_MAX - 1)) && !narrow.contains("||"), "{narrow}");
        let wide = trigger_sql(Clock::new(1, KeyLayout::Rowid), 7, "t", &pk, &[], &cols(track::FLAG_BITS_MAX + 1));
        assert!(wide.contains("||") && !wide.contains("<<"), "{wide}");
    }
}
