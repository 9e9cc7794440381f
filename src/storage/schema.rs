//! Creating the internal schema (sql/schema.sql) and the site id when the extension first
//! needs them on a database: at the load, unless the database is new (empty), and otherwise at
//! the first function that writes them (crsql_as_crr, crsql_site_id, crsql_config_set,
//! crr_new_site_id, crsql_begin_alter).
//!
//! A new database is left untouched at the load, so that what only an empty database takes
//! still works on a connection that loads the extension first (as every connection of an app
//! that registers it with `sqlite3_auto_extension` does): `PRAGMA page_size`, `auto_vacuum`
//! and `encoding`, and the restore of a `.dump`, whose `CREATE TABLE crr_meta ...` failed on
//! the tables the load had made (the restored database then kept the load's site id and
//! token, so its own writes were credited to another site and its triggers were refused as
//! another database's). Until 2026-12-06 the load made them on every database it could write.

use super::conn::Conn;
use super::meta;
use crate::core::schema_sql::without_comments;
use crate::core::table_shape::OWN_TABLES;
use crate::core::value::Value;
use crate::error::{Error, Result, SQLITE_READONLY};

/// 2: crr_ticks, row clock format 3, rowid clock tables. 3: the clock mark may rest in the
/// records of the last transactions instead of crr_ticks (txn::recover); a version-2 build would
/// read the mark from crr_ticks and crr_meta alone and could hand a version out again.
/// 4: rowid clocks without a dbv index, found through crr_dirty buckets (storage/dirty.rs); an
/// earlier build would neither read nor write those.
/// 5: the database has a token (`meta::token`) that its tracking triggers pass to
/// crr_internal_tracking with the table id (`track::tracking_arg`), which refuses the
/// triggers of an ATTACHed replica's tables; an earlier build would take the two for a table
/// id it does not know.
/// 6: packed-key clocks are rowid tables without a dbv index, found through crr_dirty buckets
/// of their own rowids (storage/dirty.rs; the upgrade moves those made before,
/// `triggers::move_packed_to_buckets`); an earlier build would write their rows without
/// marking a bucket, and "changes since V" would miss them.
/// 7: crr_tails, a bucket clock's tail (storage/dirty.rs): the rows of its highest buckets
/// need no crr_dirty entry; an earlier build would not read them as written since V. (The
/// upgrade makes the table: a clock without a row there has no tail.)
/// Earlier builds refuse a database of a later version, so the version moves whenever a build
/// writes what earlier ones cannot read or keep right.
pub const INTERNAL_SCHEMA_VERSION: i64 = 7;
const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

/// The internal schema's version, which every writing function asks first: through a
/// statement prepared now (`meta::get_i64_now`; a crsql_as_crr stopped early, after the
/// function before it had made the tables and the app some DDL, said "database schema has
/// changed" through the cached one).
fn version(conn: &Conn) -> Result<i64> {
    meta::get_i64_now(conn, "schema", 0)
}

/// Makes the internal tables that are missing (sql/schema.sql), then refuses an app's objects
/// of their names (`refuse_foreign_tables`), also where one made the CREATE fail (an index
/// of such a name: SQLite's "there is already an index named crr_dirty" until 2026-12-07).
fn make_tables(conn: &Conn) -> Result<()> {
    if let Err(e) = conn.db.exec(&without_comments(SCHEMA_SQL)) {
        if e.code == crate::ffi::api::SQLITE_ERROR {
            refuse_foreign_tables(conn)?;
        }
        return Err(e);
    }
    refuse_foreign_tables(conn)
}

/// Refuses a database that holds a table, view or index of an internal table's name that is
/// not that table: an app's, which the install's `CREATE TABLE IF NOT EXISTS` would take for
/// ours (until 2026-12-06 an app's `crr_dirty` made every write to a CRR fail, and an app's
/// `crr_meta` failed the load with "no such column: value"), or on which it fails.
fn refuse_foreign_tables(conn: &Conn) -> Result<()> {
    let mut s = conn.db.prepare(
        "SELECT type, name, \
         (SELECT group_concat(name, ', ') FROM (SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid)) \
         FROM main.sqlite_schema WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view', 'index')",
        false,
    )?;
    for (table, columns) in OWN_TABLES {
        s.bind_text(1, table)?;
        if !s.step()? {
            s.reset();
            continue;
        }
        // The app's spelling of the name: SQLite's names ignore case.
        let (kind, name, have) = (s.text(0), s.text(1), s.text(2));
        s.reset();
        let want = columns.join(", ");
        if kind != "table" || have != want {
            let what = if kind == "index" { format!("an index named {name}") } else { format!("a {kind} {name}({have})") };
            return Err(Error::new(format!(
                "this database has {what} where sqlite-crr keeps its table {table}({want}): \
                 names beginning with crr_ are the extension's, and crsql_tracked_peers is the transports' table \
                 (as in cr-sqlite); rename it, then use the extension"
            )));
        }
    }
    Ok(())
}

/// Asks sqlite_schema (uncached; `is_installed` is the cached answer) whether main has a
/// table, view or index (the names CREATE TABLE finds taken; a trigger's are apart) named
/// crr_meta, in any case, as SQLite's names match: the extension's table, or an app's object
/// that `install` refuses. (Until 2026-12-07 it asked for a table of that exact spelling, and
/// an app's empty table `CRR_Meta(key, value)`, which CREATE TABLE IF NOT EXISTS takes for
/// crr_meta, sent `install` round for ever: the load of such a database hung.)
fn exists(conn: &Conn) -> Result<bool> {
    let mut s = conn.db.prepare(
        "SELECT 1 FROM main.sqlite_schema WHERE name = 'crr_meta' COLLATE NOCASE AND type IN ('table', 'view', 'index')",
        false,
    )?;
    s.step()
}

/// The extension's virtual tables that live in main by name (eponymous): a table or view of
/// the app named as one hides it.
pub const VIRTUAL_TABLES: [&str; 2] = ["crsql_changes", "crr_internal_txn"];

/// The refusal of a database with a table or view named as one of `VIRTUAL_TABLES`: at the
/// load, and at every load of the registry (one made after the extension was loaded).
pub fn hidden_virtual_table(name: &str) -> Error {
    Error::new(format!(
        "this database has a table or view named {name}, which would hide the extension's virtual table \
         of that name (SQLite finds a table before a virtual table of the same name): rename it"
    ))
}

/// What the load does: `install`, but for a new database (nothing in its schema yet), which is
/// left as it is (see the top of this file). Whether the tables exist now.
///
/// It first refuses a database with a table or view in main named as one of
/// `VIRTUAL_TABLES`, which SQLite finds before the eponymous module: every read and merge of a
/// transport went to a `crsql_changes` table, silently, and the virtual table, never
/// connected, did not finalize the extension's statements at close, which then failed with
/// "database is locked" and left the connection open; a `crr_internal_txn` table took the rows
/// that join a transaction (`txn::JOIN_SQL`), and local writes went unrecorded (until
/// 2026-12-06). (A TEMP one, which only the connection itself can have made before the load,
/// is not looked for: naming `temp.sqlite_schema` makes SQLite set up the TEMP database at
/// every load.)
pub fn install_at_load(conn: &Conn) -> Result<bool> {
    let names = VIRTUAL_TABLES.map(|n| format!("'{n}'")).join(", ");
    let mut s = conn.db.prepare(
        &format!(
            "SELECT NOT EXISTS (SELECT 1 FROM main.sqlite_schema), (SELECT name FROM main.sqlite_schema \
             WHERE name COLLATE NOCASE IN ({names}) AND type IN ('table', 'view'))"
        ),
        false,
    )?;
    s.step()?;
    let (empty, hidden) = (s.i64(0) != 0, (s.column_type(1) != crate::ffi::api::SQLITE_NULL).then(|| s.text(1)));
    drop(s);
    if let Some(name) = hidden {
        return Err(hidden_virtual_table(&name));
    }
    if empty {
        return Ok(false);
    }
    let installed = install(conn)?;
    if installed {
        note_encoding(conn);
    }
    Ok(installed)
}

/// Notes whether the database's text is UTF-8 (`Conn::utf8`, which lets text be read without
/// a copy); only once its schema exists, since the encoding can change until then. Left false
/// (a copy, always right) where it cannot be read.
pub(super) fn note_encoding(conn: &Conn) {
    let utf8 = conn.db.prepare("PRAGMA encoding", false).and_then(|mut s| Ok(s.step()? && s.text(0) == "UTF-8"));
    conn.utf8.set(utf8.unwrap_or(false));
}

/// Creates the internal tables and the site id if missing. A read-only database without them
/// is left alone (reads of crsql_changes then see no CRRs). Whether they exist now.
pub fn install(conn: &Conn) -> Result<bool> {
    if exists(conn)? {
        let v = match version(conn) {
            Ok(v) if v != 0 => v,
            // A crr_meta without a schema version, or one whose version cannot be read: an
            // app's table, said by its columns where they are not ours.
            other => {
                refuse_foreign_tables(conn)?;
                other?;
                return Err(Error::new(
                    "this database has a table named crr_meta that holds no sqlite-crr schema version: it is not the \
                     extension's (names beginning with crr_ are); rename it, then use the extension",
                ));
            }
        };
        if v > INTERNAL_SCHEMA_VERSION {
            return Err(newer(v));
        }
        if v < INTERNAL_SCHEMA_VERSION && !conn.db.is_readonly() {
            // Version 1 -> 2 and 3 -> 4 add tables (CREATE ... IF NOT EXISTS); 2 -> 3 changes
            // only what records may hold; 3 -> 4 moves rowid clocks onto buckets; 4 -> 5 gives
            // the database its token and the triggers their check of it; 5 -> 6 moves
            // packed-key clocks onto buckets; 6 -> 7 adds crr_tails (a clock without a row
            // there has no tail).
            super::savepoint::in_savepoint(conn, "crr_upgrade", || {
                // Read again under the write lock: another connection may have upgraded it
                // since (see savepoint::write_lock).
                let v = version(conn)?;
                if v >= INTERNAL_SCHEMA_VERSION {
                    return Ok(());
                }
                make_tables(conn)?;
                meta::make_token(conn)?;
                if v < 4 {
                    super::triggers::move_to_buckets(conn)?;
                }
                if v < 5 {
                    super::triggers::add_token_to_triggers(conn)?;
                }
                if v < 6 {
                    super::triggers::move_packed_to_buckets(conn)?;
                }
                meta::set(conn, "schema", &Value::Integer(INTERNAL_SCHEMA_VERSION))
            })?;
        }
        return Ok(true);
    }
    if conn.db.is_readonly() {
        return Ok(false);
    }
    let ours = super::savepoint::in_savepoint(conn, "crr_install", || {
        // The first CREATE TABLE takes the write lock, waiting for another connection's
        // install to commit if one is under way: then every CREATE finds its table, and the
        // site id is there. (An app's table of one of their names is found after: the
        // check reads the schema, which must not come before the write lock.)
        make_tables(conn)?;
        if conn.db.prepare("SELECT 1 FROM main.crr_sites WHERE ordinal = 0", false)?.step()? {
            return Ok(false);
        }
        meta::set(conn, "schema", &Value::Integer(INTERNAL_SCHEMA_VERSION))?;
        meta::make_token(conn)?;
        // The clock mark of merged versions and re-ticks (txn::recover).
        meta::set(conn, "hlc", &Value::Integer(0))?;
        let site = conn.db.random_bytes();
        let mut s = conn.db.prepare("INSERT INTO main.crr_sites(ordinal, site_id) VALUES (0, ?1)", false)?;
        s.bind_blob(1, &site)?;
        s.run()?;
        Ok(true)
    })?;
    if !ours {
        // Installed by another connection meanwhile, maybe by an earlier build: as found
        // (crr_meta exists now, so this goes no further round).
        if !exists(conn)? {
            return Err(Error::new("sqlite-crr's table crr_meta is missing after its install"));
        }
        return install(conn);
    }
    note_encoding(conn);
    Ok(true)
}

/// The start of a function that writes (crsql_as_crr, crsql_begin_alter, crr_new_site_id,
/// crsql_config_set): the write lock first (`savepoint::lock_first`), then `install`; a
/// database that refuses writes and has no internal tables says so, instead of a statement
/// naming a missing table.
pub fn install_to_write(conn: &Conn) -> Result<()> {
    super::savepoint::lock_first(conn)?;
    if !install(conn)? {
        return Err(Error::with_code(
            SQLITE_READONLY,
            "the database refuses writes (it was opened read-only, or the connection is query_only), and sqlite-crr was never loaded on it by one that may write",
        ));
    }
    Ok(())
}

/// The refusal of a database whose internal schema `v` is a later build's.
pub fn newer(v: i64) -> Error {
    Error::new(format!("this database was written by a newer sqlite-crr (internal schema {v}, this build knows {INTERNAL_SCHEMA_VERSION})"))
}

/// Refuses to write a database of an earlier build's internal schema: one a restore put in
/// place of the database this connection loaded (and upgraded, as the load does) keeps its
/// version until a function that writes upgrades it (`install_to_write`).
pub fn check_current(conn: &Conn) -> Result<()> {
    match conn.internal_version.get() {
        Some(v) if v < INTERNAL_SCHEMA_VERSION => Err(Error::new(format!(
            "this database was written by an earlier sqlite-crr build (internal schema {v}; this build writes {INTERNAL_SCHEMA_VERSION}) \
             and took the place of the one this connection loaded (a restore): SELECT crr_new_site_id() (which a restored \
             database needs anyway) or crsql_as_crr upgrades it, and so does opening the connection again"
        ))),
        _ => Ok(()),
    }
}

/// Whether a function that writes should refuse what it can before `install_to_write`
/// makes a new database's tables, so that the refusal leaves the database as it was: true
/// where the tables are missing, and reading now is safe. Inside a transaction that has not
/// read main yet, a read now would fix its snapshot before the write lock comes
/// (`savepoint::lock_first`), and another connection's commit in between would fail the
/// install ("database is locked"): there the tables come first, as they always did.
pub fn refuse_before_install(conn: &Conn) -> Result<bool> {
    if !conn.db.in_autocommit() && conn.db.main_txn_none() {
        return Ok(false);
    }
    Ok(!is_installed(conn)?)
}

pub fn is_installed(conn: &Conn) -> Result<bool> {
    super::tables::installed(conn)
}

#[cfg(test)]
mod tests {
    /// `OWN_TABLES` lists each table sql/schema.sql makes, in its order, with its columns in theirs.
    #[test]
    fn tables_are_what_schema_sql_makes() {
        let made: Vec<&str> = super::SCHEMA_SQL.split("CREATE TABLE IF NOT EXISTS ").skip(1).collect();
        assert_eq!(made.len(), super::OWN_TABLES.len());
        for ((table, columns), sql) in super::OWN_TABLES.iter().zip(made) {
            let (name, body) = sql.split_once('(').unwrap();
            assert_eq!(name.trim(), *table);
            // The definitions, split at the commas outside parentheses, up to the closing one.
            let (mut depth, mut defs, mut current) = (0, Vec::new(), String::new());
            for ch in body.chars() {
                match ch {
                    '(' => depth += 1,
                    ')' if depth == 0 => break,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        defs.push(std::mem::take(&mut current));
                        continue;
                    }
                    _ => {}
                }
                current.push(ch);
            }
            defs.push(current);
            let names: Vec<String> = defs
                .iter()
                .map(|d| d.split_whitespace().next().unwrap_or("").to_string())
                .filter(|w| !["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"].contains(&w.as_str()))
                .collect();
            assert_eq!(names, columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(), "{table}");
        }
    }
}
