//! The probe of a row of defaults (SPEC 3): crsql_as_crr and crsql_commit_alter refuse a table
//! whose row of defaults fails a CHECK, a NOT NULL or its STRICT column types, since a merge
//! creates a row with its defaults and then applies its cells one at a time. The row is stored
//! in a TEMP table of the table's column layout, kept per layout (`layout_table_name`), and
//! each check is evaluated on it (`check_defaults`).

use super::conn::Conn;
use crate::core::fast_hash::FastHasher;
use crate::core::ident::quote;
use crate::core::schema_sql;
use crate::core::table_shape::{sql_type, ColumnDesc, TableDesc};
use crate::error::{Error, Result, SQLITE_CONSTRAINT, SQLITE_ERROR};
use std::hash::Hasher;

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
        schema_sql::check_constraints(&desc.sql, &names).into_iter().map(|c| (format!("CHECK ({})", c.expr), c.expr)).collect();
    let generated: Vec<schema_sql::Generated> =
        if generated && desc.columns.iter().any(|c| c.generated) { schema_sql::generated_columns(&desc.sql, &names) } else { Vec::new() };
    let computed = |c: &ColumnDesc| generated.iter().find(|g| g.name.eq_ignore_ascii_case(&c.name));
    // A NOT NULL column whose DEFAULT is NULL (`DEFAULT NULL`) fails the same way, and so does
    // a generated one whose expression gives NULL there.
    checks.extend(
        desc.columns
            .iter()
            .filter(|c| c.pk_index == 0 && c.not_null && (!c.generated || computed(c).is_some()))
            .map(|c| (format!("NOT NULL on {}", quote(&c.name)), format!("{} IS NOT NULL", quote(&c.name)))),
    );
    let strict = schema_sql::is_strict(&desc.sql);
    if checks.is_empty() && !strict {
        return None;
    }
    let stored: Vec<&ColumnDesc> = desc.columns.iter().filter(|c| !c.generated).collect();
    // Each column's collation too, for the CHECKs' comparisons (`made_probe`: an app's own
    // may not be registered on this connection, and CREATE TABLE fails on it).
    let collations = schema_sql::column_collations(&desc.sql);
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
    let computed_columns = desc.columns.iter().filter_map(|c| computed(c).map(|g| format!("{} {} AS ({}){}", quote(&c.name), sql_type(&c.decl_type), g.expr, collation(c))));
    let columns = stored.iter().map(|c| format!("{} {}{}", quote(&c.name), sql_type(&c.decl_type), collation(c))).chain(computed_columns).collect::<Vec<_>>().join(", ");
    let values = stored
        .iter()
        .map(|c| if c.pk_index > 0 { "NULL".to_string() } else { schema_sql::default_expr(c.default_sql.as_deref()) })
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
pub(super) fn check_defaults(conn: &Conn, desc: &TableDesc) -> Result<()> {
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
