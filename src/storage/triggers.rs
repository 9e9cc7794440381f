//! The tracking triggers of a CRR: the SQL of the three AFTER triggers that record local
//! writes (`trigger_sql`), their install from the registry (`install_triggers`, which keeps
//! triggers that already have this build's text), and their upkeep: kept the newest of their
//! table's triggers (`put_tracking_first`), given a database's new token (`renew_token`, for
//! crr_new_site_id), made again by the internal schema's upgrades (`move_to_buckets`,
//! `add_token_to_triggers`, `move_packed_to_buckets`, through `remake_each`). A bracket's
//! triggers are alter.rs's.

use super::as_crr::Tracked;
use super::conn::Conn;
use super::savepoint::in_savepoint;
use super::tables::{self, Clock, KeyLayout, TableInfo};
use super::{dirty, meta, track};
use crate::core::ident::quote;
use crate::core::table_shape::Affinity;
use crate::error::{Error, Result};
use std::collections::HashMap;

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
    let packed = clock.key == KeyLayout::Packed;
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
    // dbv's entry may then go (`rewritten_dbv`); a dbv index needs nothing. A bucket is one of
    // the clock's rowids: a rowid clock's key, known before the row is written; a packed-key
    // clock's new rows get theirs as they are written, and are marked by range
    // (crr_internal_grow, dirty::grow).
    // (A rowid clock's triggers name its rowid `pk`, as every earlier build's did: text that
    // stays the same keeps them, `install_triggers`.)
    let rowid = if packed { "rowid" } else { "pk" };
    let fresh_dbv = |key: &str| match (buckets, packed) {
        (false, _) => "crr_internal_db_version()".to_string(),
        (true, false) => format!("crr_internal_mark({tid}, {key})"),
        (true, true) => format!("crr_internal_grow({tid})"),
    };
    let rewritten_dbv = if buckets { format!("crr_internal_mark({tid}, {rowid}, dbv)") } else { "excluded.dbv".to_string() };
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
        conn.db.exec(&sql).map_err(|e| too_large_for_connection(conn, table, cols.len(), sql.len(), e))?;
    }
    Ok(found == Found::Missing)
}

/// The refusal of triggers larger than the connection's limits allow, which apps that take
/// SQL from elsewhere lower (SQLite's advice: expressions 10 deep, statements of 100,000
/// bytes): the update trigger tests every tracked column in one expression, and names each
/// column several times. They must fit (`ffi::db::too_deep`): SQLite reads the schema again
/// under the limits of each connection, and refuses the whole database where a trigger is too
/// deep ("malformed database schema"). `bytes`: the three triggers' SQL, which SQLite
/// measures in one piece.
fn too_large_for_connection(conn: &Conn, table: &str, columns: usize, bytes: usize, e: Error) -> Error {
    use crate::ffi::api::{SQLITE_LIMIT_EXPR_DEPTH, SQLITE_LIMIT_SQL_LENGTH, SQLITE_TOOBIG};
    let (what, limit, name, default) = if crate::ffi::db::too_deep(&e) {
        (format!("test its {columns} tracked columns in an expression deeper"), SQLITE_LIMIT_EXPR_DEPTH, "SQLITE_LIMIT_EXPR_DEPTH", "1,000")
    } else if e.code == SQLITE_TOOBIG && e.message.contains("statement too long") {
        (format!("are {bytes} bytes of SQL for its {columns} tracked columns, more"), SQLITE_LIMIT_SQL_LENGTH, "SQLITE_LIMIT_SQL_LENGTH", "1,000,000,000")
    } else {
        return e;
    };
    let n = conn.db.limit(limit);
    Error::with_code(
        e.code,
        format!(
            "the triggers that record table \"{table}\"'s writes {what} than this connection's {name} ({n}) allows ({e}); \
             SQLite would refuse the database's schema on a connection with that limit: raise it ({default} by default), \
             or track fewer columns"
        ),
    )
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

pub(super) fn drop_triggers_sql(tid: i64) -> String {
    format!(
        "DROP TRIGGER IF EXISTS main.\"crr_{tid}_insert\"; DROP TRIGGER IF EXISTS main.\"crr_{tid}_update\"; \
         DROP TRIGGER IF EXISTS main.\"crr_{tid}_delete\"; DROP TRIGGER IF EXISTS main.\"crr_{tid}_alter_old\";"
    )
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
        let cols = registered_columns(conn, info)?;
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

/// Internal schema 5 -> 6: moves every packed-key clock made before (a WITHOUT ROWID table
/// keyed by `pk`, with a dbv index) onto crr_dirty buckets, as `crsql_as_crr` makes them now:
/// its rows are copied aside, in key order, and into a clock table of this build's layout,
/// whose ids then number them; each bucket gets an entry at each dbv of its rows; the triggers
/// are made again to mark buckets. The clocks `remake_each` passes over, or whose move fails,
/// stay as they were, and keep working through their index: a table between
/// crsql_begin_alter and crsql_commit_alter, one ALTERed outside a bracket, one without its
/// three triggers.
pub fn move_packed_to_buckets(conn: &Conn) -> Result<()> {
    remake_each(conn, "crr_packed_buckets", |t| t.key == KeyLayout::Packed && !t.buckets, |info, cols, affinities| {
        let clock = Clock { buckets: true, ..info.clock() };
        let (t, tid, aside) = (clock.table(), info.tid, "main.\"crr_moving_clock\"");
        conn.db.exec(&format!(
            "CREATE TABLE {aside}(pk BLOB NOT NULL, cl INTEGER NOT NULL, dbv INTEGER NOT NULL, clock BLOB NOT NULL); \
             INSERT INTO {aside} SELECT pk, cl, dbv, clock FROM {t} ORDER BY pk; DROP TABLE {t};"
        ))?;
        super::as_crr::create_clock_table(conn, clock)?;
        conn.db.exec(&format!(
            "INSERT INTO {t}(pk, cl, dbv, clock) SELECT pk, cl, dbv, clock FROM {aside} ORDER BY rowid; DROP TABLE {aside}; \
             INSERT OR IGNORE INTO main.crr_dirty(tid, dbv, bucket) SELECT DISTINCT {tid}, dbv, id >> {} FROM {t};",
            dirty::BUCKET_BITS
        ))?;
        install_triggers(conn, clock, &info.name, &info.pk, affinities, cols).map(drop)
    })
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
    remake_each(conn, "crr_token_triggers", |_| true, |info, cols, affinities| {
        install_triggers(conn, info.clock(), &info.name, &info.pk, affinities, cols).map(drop)
    })
}

/// Runs `remake` (given the registry's tracked columns and the key's affinities) on every CRR
/// that `wanted` picks and whose triggers can be made again from the registry: its three
/// triggers are there, it is not between crsql_begin_alter and crsql_commit_alter, and its
/// columns are the registered ones (`check_columns`). Each in a savepoint of its own: a CRR
/// whose `remake` fails keeps what it had (its triggers still record) rather than fail an
/// upgrade, and with it every load of the extension; but not for an interrupt, or the like,
/// which fails the whole (an upgrade is tried again at the next load).
fn remake_each(
    conn: &Conn,
    savepoint: &str,
    wanted: impl Fn(&TableInfo) -> bool,
    remake: impl Fn(&TableInfo, &[Tracked], &[Affinity]) -> Result<()>,
) -> Result<()> {
    conn.tables.borrow_mut().invalidate();
    for info in tables::all(conn)?.iter().filter(|t| wanted(t)) {
        if !has_all_triggers(conn, info.tid)? || super::alter::in_bracket(conn, info.tid)? {
            continue;
        }
        match info.check_columns(conn) {
            Err(e) if e.stopped_the_work() => return Err(e),
            Err(_) => continue,
            Ok(()) => {}
        }
        let remade = in_savepoint(conn, savepoint, || {
            let cols = registered_columns(conn, info)?;
            let affinities = info.key_affinities(conn)?.to_vec();
            conn.stmts.clear();
            remake(info, &cols, &affinities)
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
fn registered_columns(conn: &Conn, info: &TableInfo) -> Result<Vec<Tracked>> {
    let mut cols = Vec::new();
    let mut s = conn.db.prepare("SELECT slot, name, keeps_class FROM main.crr_columns WHERE tid = ?1 AND pk_index = 0 AND slot >= 0 ORDER BY slot", false)?;
    s.bind_i64(1, info.tid)?;
    while s.step()? {
        let name = s.text(1);
        let slot = super::tables::checked_slot(&info.name, &name, s.i64(0))?;
        cols.push(Tracked { slot, name, keeps_class: s.i64(2) != 0 });
    }
    Ok(cols)
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
