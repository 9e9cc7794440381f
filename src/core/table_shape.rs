//! Which tables can be CRRs (SPEC section 3), decided from a plain description of the table.
//! The storage layer reads the description from SQLite's pragmas; the rules live here. What
//! the rules need of the schema's SQL text (CHECK constraints, generated columns, AUTOINCREMENT)
//! is read by schema_sql.rs.
//!
//! The rules: not one of the extension's own tables (`is_own_table`; a clock is `crr_clock_N`
//! with N as the extension writes it, `clock_table_id`, which the registry's load uses too), no
//! key collation but BINARY, no key of more than 255 columns, no CHECK on several non-key
//! columns (a generated column standing for those its expression names:
//! `schema_sql::generated_columns`, `through_generated`), no tracked column named `-1`.
//! `storage::as_crr::check_shape`, which crsql_as_crr and crsql_commit_alter call, adds the
//! connection's limit on a function's arguments for a packed key, and, with SQL, no row of
//! defaults that fails a CHECK (`storage::probe`).
//!
//! Also here: affinities, and which values a column stores as they are (`stored_as_is`, checked
//! against SQLite in tests/merge.rs); `key_twin`, a REAL key equal to an INTEGER in a key
//! column that can hold both (BLOB affinity), which would name one row two ways (also checked
//! against SQLite), and `key_twin_in`, the first such value of a whole key
//! (`track::refuse_key_twins`; `merge::validate` applies the rule in the walk over the key it
//! makes anyway).

use super::schema_sql::{check_constraints, generated_columns, is_strict, through_generated, uses_autoincrement};
use super::value::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDesc {
    pub name: String,
    pub decl_type: String,
    pub not_null: bool,
    pub has_default: bool,
    /// The DEFAULT expression as written, if any.
    pub default_sql: Option<String>,
    /// 1-based position in the primary key; 0 when not a key column.
    pub pk_index: u32,
    /// Generated (computed) columns are derived locally and not tracked.
    pub generated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDesc {
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    pub without_rowid: bool,
    /// Names of UNIQUE constraints and unique indexes other than the primary key.
    pub unique_indexes: Vec<String>,
    /// cr-sqlite's tracking triggers on the table (`<table>__crsql_itrig`, `_utrig`, `_dtrig`):
    /// a table cr-sqlite made a CRR in a database it wrote.
    pub cr_sqlite_triggers: Vec<String>,
    pub has_foreign_keys: bool,
    /// Whether the primary key has an index of its own (`origin = 'pk'` in
    /// pragma_index_list): every primary key except a rowid alias.
    pub pk_has_index: bool,
    /// The collation of each key column in that index (`pragma_index_xinfo`), by name.
    pub key_collations: Vec<(String, String)>,
    /// The CREATE TABLE statement, as stored in sqlite_schema.
    pub sql: String,
}

/// What a CRR tracks: key columns in key order, and the tracked non-key columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub pk: Vec<String>,
    pub columns: Vec<TrackedColumn>,
    /// The key is the table's rowid (one INTEGER PRIMARY KEY column that aliases it), so every
    /// key value is an integer.
    pub rowid_key: bool,
    /// The key columns' affinities, in key order (those of BLOB affinity can hold key twins,
    /// see `key_twin`).
    pub pk_affinity: Vec<Affinity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedColumn {
    pub name: String,
    /// Whether `1` and `1.0` (or `'1'` and `1`) can be stored distinctly, so a change of storage
    /// class must be compared with `typeof` as well.
    pub keeps_storage_class: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub table: String,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table \"{}\" cannot be a CRR: {}", self.table, self.reason)
    }
}

/// SQLite column affinity from a declared type (<https://sqlite.org/datatype3.html>, 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

pub fn affinity(decl_type: &str) -> Affinity {
    let t = decl_type.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// The names cr-sqlite gives the tracking triggers of its CRR `table` (insert, update,
/// delete), which `check` refuses and the functions they call name.
pub fn cr_sqlite_triggers_of(table: &str) -> [String; 3] {
    ["itrig", "utrig", "dtrig"].map(|k| format!("{table}__crsql_{k}"))
}

/// `DROP TRIGGER a; DROP TRIGGER b` for triggers `names`.
pub fn drop_triggers(names: &[String]) -> String {
    names.iter().map(|n| format!("DROP TRIGGER {}", crate::core::ident::quote(n))).collect::<Vec<_>>().join("; ")
}

/// A column's declared type as SQL the extension can run (a probe's or a temporary table's
/// column): as declared, or, where it holds a comment (SQLite keeps those between a type's
/// words: `VARCHAR /* x */ (10)`), the name of its affinity, which SQLite reads from the whole
/// text, the comment's too (`BLOB /* INT */` has INTEGER affinity). A connection may refuse
/// SQL with comments (`schema_sql::without_comments`).
pub fn sql_type(decl_type: &str) -> std::borrow::Cow<'_, str> {
    if !super::schema_sql::may_hold_comment(decl_type) {
        return std::borrow::Cow::Borrowed(decl_type);
    }
    std::borrow::Cow::Borrowed(match affinity(decl_type) {
        Affinity::Integer => "INTEGER",
        Affinity::Text => "TEXT",
        Affinity::Blob => "BLOB",
        Affinity::Real => "REAL",
        Affinity::Numeric => "NUMERIC",
    })
}

/// Whether SQLite stores `v` in a column of this affinity as it is, same type and value (the
/// rules of <https://sqlite.org/datatype3.html> 3.0, checked against SQLite in tests/merge.rs).
/// A key value it would convert (`1` in a TEXT key column becomes `'1'`) names another row
/// than the packed key that carried it: merges refuse it.
pub fn stored_as_is(a: Affinity, v: &Value) -> bool {
    match (a, v) {
        (Affinity::Blob, _) | (_, Value::Null) | (_, Value::Blob(_)) => true,
        (Affinity::Text, Value::Text(_)) => true,
        (Affinity::Text, Value::Integer(_) | Value::Real(_)) => false,
        (Affinity::Integer | Affinity::Numeric, Value::Integer(_)) => true,
        // A REAL column keeps integral values as integers on disk and reads them back as REAL:
        // -0.0 comes back as 0.0.
        (Affinity::Real, Value::Real(f)) => !(*f == 0.0 && f.is_sign_negative()),
        (Affinity::Real, Value::Integer(_)) => false,
        // An integral REAL strictly inside the i64 range becomes an INTEGER.
        (Affinity::Integer | Affinity::Numeric, Value::Real(f)) => {
            !(f.fract() == 0.0 && *f > -9_223_372_036_854_775_808.0 && *f < 9_223_372_036_854_775_808.0)
        }
        (Affinity::Real | Affinity::Integer | Affinity::Numeric, Value::Text(t)) => !looks_numeric(t),
    }
}

/// The INTEGER a REAL key value equals, where the key column could hold both: SQLite compares
/// a REAL with an INTEGER by value (`1.0 = 1`, `-0.0 = 0`), so in a key column that converts
/// neither into the other (BLOB affinity, a STRICT table's ANY) the two are one row under two
/// packed keys. A replica holding `1` and one holding `1.0` would each replace the other's
/// row when they merge, and never converge. Columns of every other affinity store only one of
/// the two (`stored_as_is`), so their keys have no twin. Such keys are refused wherever one
/// would be recorded: local inserts and key changes, crsql_as_crr's backfill, merges.
pub fn key_twin(a: Affinity, v: &Value) -> Option<i64> {
    match (a, v) {
        // Exactly the REALs equal to an i64 (SQLite's sqlite3IntFloatCompare): integral and
        // in [-2^63, 2^63); -0.0 included, NaN and the infinities not.
        (Affinity::Blob, Value::Real(f)) if f.fract() == 0.0 && *f >= -9_223_372_036_854_775_808.0 && *f < 9_223_372_036_854_775_808.0 => {
            Some(*f as i64)
        }
        _ => None,
    }
}

/// Why a key value with a twin (`key_twin`) cannot be recorded, for error messages.
pub fn key_twin_reason(column: &str, real: f64, twin: i64) -> String {
    format!(
        "key column \"{column}\" cannot hold the REAL {real:?}: SQLite finds it equal to the INTEGER {twin}, so \
         replicas could hold one row under two keys and never converge; store the INTEGER {twin}"
    )
}

/// Why a key cannot be recorded (`key_twin_reason`), if one of its values has a twin: `keys`
/// with their columns' affinities and names, in key order; the first such value. (Merges
/// apply the same rule inside the walk they make over the key anyway, merge::validate.)
pub fn key_twin_in(keys: &[Value], affinities: &[Affinity], names: &[String]) -> Option<String> {
    keys.iter().zip(affinities).zip(names).find_map(|((k, a), name)| match (key_twin(*a, k), k) {
        (Some(twin), Value::Real(f)) => Some(key_twin_reason(name, *f, twin)),
        _ => None,
    })
}

/// Whether SQLite reads this text as a number when a numeric affinity applies: an optional
/// sign, digits with at most one '.', at least one digit, an optional exponent with digits,
/// and ASCII white space around (not hex, not "inf").
fn looks_numeric(t: &str) -> bool {
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r');
    let b = t.trim_matches(space).as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The `cid` crsql_changes gives a row's sentinel (as cr-sqlite): no tracked column can have
/// this name, as its changes would read, and merge, as the sentinel's.
pub const SENTINEL_CID: &str = "-1";

/// The extension's own tables that sql/schema.sql makes, with their columns (a test in
/// storage/schema.rs holds the two together; the clock tables `crr_clock_<tid>` are its own
/// too, `is_own_table`).
pub const OWN_TABLES: [(&str, &[&str]); 8] = [
    ("crr_meta", &["key", "value"]),
    ("crr_sites", &["ordinal", "site_id"]),
    ("crr_tables", &["tid", "name"]),
    ("crr_columns", &["tid", "name", "slot", "pk_index", "keeps_class"]),
    ("crr_ticks", &["dbv", "tick"]),
    ("crr_dirty", &["tid", "dbv", "bucket"]),
    ("crr_tails", &["tid", "bucket", "at"]),
    ("crsql_tracked_peers", &["site_id", "version", "seq", "tag", "event"]),
];

/// Whether `name` is one of the extension's own tables (ASCII case aside, as SQL names go).
pub fn is_own_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // (`crr_clock_007` can only be an app's.)
    OWN_TABLES.iter().any(|(t, _)| *t == lower) || clock_table_id(&lower).is_some()
}

/// The table id of clock table `name`: `crr_clock_` and an id's digits as the extension
/// writes them (no sign, no leading zero, nothing after); None for any other name.
pub fn clock_table_id(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("crr_clock_")?;
    let tid: i64 = digits.parse().ok()?;
    (tid > 0 && tid.to_string() == digits).then_some(tid)
}

/// Decides whether `t` can be a CRR and what it tracks.
pub fn check(t: &TableDesc) -> Result<Shape, Refusal> {
    let refuse = |reason: String| Refusal { table: t.name.clone(), reason };
    // Made a CRR, crr_meta (say) would send its rows to peers, whose merges would overwrite
    // their own schema version, clock mark and token with them.
    if is_own_table(&t.name) {
        return Err(refuse(
            "it is one of sqlite-crr's own tables, whose rows belong to this replica alone (a peer that merged \
             them would take this replica's settings, clock mark and counters for its own)"
                .into(),
        ));
    }
    // Its triggers call cr-sqlite's functions at every write, and its clocks hold what
    // sqlite-crr's would: the history of a database cr-sqlite wrote is not read (not supported
    // yet), and the table is not tracked twice.
    if !t.cr_sqlite_triggers.is_empty() {
        let quoted: Vec<String> = t.cr_sqlite_triggers.iter().map(|n| crate::core::ident::quote(n)).collect();
        return Err(refuse(format!(
            "it is a CRR of cr-sqlite (its triggers {} are cr-sqlite's), whose clocks sqlite-crr does not read \
             (databases cr-sqlite wrote are not supported yet). To track it with sqlite-crr from now on, its history \
             starting anew as a new CRR's, drop those triggers ({}; and cr-sqlite's tables of it, \
             {}, if no cr-sqlite build will need them), then call crsql_as_crr again",
            quoted.join(", "),
            drop_triggers(&t.cr_sqlite_triggers),
            crate::core::ident::quote(&format!("{}__crsql_clock", t.name)),
        )));
    }
    let (pk, rowid_key) = key_columns(t).map_err(refuse)?;
    refuse_constraints(t).map_err(refuse)?;
    let columns = tracked_columns(t).map_err(refuse)?;
    let strict = is_strict(&t.sql);
    Ok(Shape {
        pk: pk.iter().map(|c| c.name.clone()).collect(),
        columns,
        rowid_key,
        pk_affinity: pk.iter().map(|c| column_affinity(&c.decl_type, strict)).collect(),
    })
}

/// `check`'s rules for the key: its columns in key order, and whether it is the rowid (an
/// INTEGER PRIMARY KEY alias); Err with the reason a key cannot be a CRR's.
fn key_columns(t: &TableDesc) -> Result<(Vec<&ColumnDesc>, bool), String> {
    let mut pk: Vec<&ColumnDesc> = t.columns.iter().filter(|c| c.pk_index > 0).collect();
    if pk.is_empty() {
        return Err("it has no PRIMARY KEY".into());
    }
    pk.sort_by_key(|c| c.pk_index);
    // SQLite takes a key of up to 2,000 columns; the packed key counts its columns in one
    // byte, so the triggers of a wider one would fail every write (until 2026-12-06 such a
    // table was taken, and each INSERT then failed in crsql_pack_columns).
    if pk.len() > super::pk_codec::PK_COLUMNS_MAX {
        return Err(format!(
            "its primary key has {} columns; a CRR's key has at most {} (crsql_changes' pk blob counts them in one byte)",
            pk.len(),
            super::pk_codec::PK_COLUMNS_MAX
        ));
    }
    // "INTEGER PRIMARY KEY DESC" and "INT PRIMARY KEY" are not aliases: SQLite gives them an
    // index of their own.
    let rowid_alias =
        !t.without_rowid && pk.len() == 1 && pk[0].decl_type.trim().eq_ignore_ascii_case("INTEGER") && !t.pk_has_index;
    for c in &pk {
        if !c.not_null && !t.without_rowid && !rowid_alias {
            return Err(format!("primary key column \"{}\" is nullable (declare it NOT NULL)", c.name));
        }
    }
    // Keys that differ in bytes but are equal under the key's collation ('a' and 'A' under
    // NOCASE) would be one row on a replica that got both and two rows elsewhere.
    if let Some((name, coll)) = t.key_collations.iter().find(|(_, coll)| !coll.eq_ignore_ascii_case("BINARY")) {
        return Err(format!(
            "primary key column \"{name}\" has COLLATE {coll}: keys equal under it but not byte for byte \
             would be one row on one replica and two on another (use the BINARY collation)"
        ));
    }
    Ok((pk, rowid_alias))
}

/// `check`'s rules for the table's constraints: no UNIQUE besides the key, no FOREIGN KEY, no
/// CHECK on several non-key columns, no AUTOINCREMENT.
fn refuse_constraints(t: &TableDesc) -> Result<(), String> {
    if let Some(name) = t.unique_indexes.first() {
        return Err(format!(
            "it has a UNIQUE constraint or unique index (\"{name}\") besides the primary key; \
             concurrent writes on two replicas could not both be merged"
        ));
    }
    if t.has_foreign_keys {
        return Err(
            "it has FOREIGN KEY constraints; merges apply changes one cell at a time in any order, \
             so checked foreign keys would reject valid merges"
                .into(),
        );
    }
    // A CHECK on one non-key column (and the key, which a row keeps) holds for each value a
    // peer sends; one on several can fail half way through a peer's update of them.
    let names: Vec<String> = t.columns.iter().filter(|c| c.pk_index == 0).map(|c| c.name.clone()).collect();
    // A CHECK that names a generated column checks the columns its expression names too: one
    // on `g AS (a || b)` is one on a and b (until 2026-12-06 it passed for a CHECK on one).
    let generated = if t.columns.iter().any(|c| c.generated) {
        let all: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        generated_columns(&t.sql, &all)
    } else {
        Vec::new()
    };
    for check in check_constraints(&t.sql, &names) {
        // The non-key columns it stands for (a row keeps its key), in table order.
        let stored = through_generated(&check.columns, &generated);
        let cols: Vec<&String> = names.iter().filter(|n| stored.iter().any(|c| c.eq_ignore_ascii_case(n))).collect();
        if cols.len() > 1 {
            let through: Vec<String> = check.columns.iter().filter(|c| generated.iter().any(|g| g.name.eq_ignore_ascii_case(c))).map(|c| format!("\"{c}\"")).collect();
            return Err(format!(
                "it has a CHECK constraint on several columns ({}{}); merges apply changes one cell at a time, \
                 so it would reject valid merges (a peer's update of both columns, applied one by one)",
                cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "),
                if through.is_empty() { String::new() } else { format!(", through generated column {}", through.join(", ")) }
            ));
        }
    }
    if uses_autoincrement(&t.sql) {
        return Err("it uses AUTOINCREMENT; replicas would allocate the same keys".into());
    }
    Ok(())
}

/// `check`'s rules for the non-key columns, and those it tracks (stored ones: generated
/// columns are computed on each replica).
fn tracked_columns(t: &TableDesc) -> Result<Vec<TrackedColumn>, String> {
    let mut columns = Vec::new();
    for c in t.columns.iter().filter(|c| c.pk_index == 0 && !c.generated) {
        if c.name == SENTINEL_CID {
            return Err(format!(
                "column \"{SENTINEL_CID}\" has the name crsql_changes gives a row's sentinel (cid '{SENTINEL_CID}'), \
                 so its changes could not be told from the sentinel's; rename the column"
            ));
        }
        if c.not_null && !c.has_default {
            return Err(format!(
                "column \"{}\" is NOT NULL without a DEFAULT; merges create rows one column at a time",
                c.name
            ));
        }
        columns.push(TrackedColumn {
            name: c.name.clone(),
            keeps_storage_class: affinity(&c.decl_type) == Affinity::Blob
                || c.decl_type.trim().eq_ignore_ascii_case("ANY"),
        });
    }
    Ok(columns)
}

/// The affinity a column of a table applies: a STRICT table's ANY column applies none.
pub fn column_affinity(decl_type: &str, strict: bool) -> Affinity {
    if strict && decl_type.trim().eq_ignore_ascii_case("ANY") {
        Affinity::Blob
    } else {
        affinity(decl_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, not_null: bool, pk: u32) -> ColumnDesc {
        ColumnDesc { name: name.into(), decl_type: ty.into(), not_null, has_default: false, default_sql: None, pk_index: pk, generated: false }
    }

    fn table(columns: Vec<ColumnDesc>) -> TableDesc {
        TableDesc {
            name: "t".into(),
            columns,
            without_rowid: false,
            unique_indexes: vec![],
            cr_sqlite_triggers: vec![],
            has_foreign_keys: false,
            pk_has_index: false,
            key_collations: vec![],
            sql: "CREATE TABLE t(...)".into(),
        }
    }

    fn refusal(t: &TableDesc) -> String {
        check(t).unwrap_err().to_string()
    }

    #[test]
    fn accepts_ordinary_tables() {
        let shape = check(&table(vec![col("id", "INTEGER", false, 1), col("a", "TEXT", false, 0), col("b", "", false, 0)])).unwrap();
        assert_eq!(shape.pk, vec!["id"]);
        assert_eq!(shape.columns.len(), 2);
        assert!(!shape.columns[0].keeps_storage_class);
        assert!(shape.columns[1].keeps_storage_class);
        let compound = check(&table(vec![col("b", "TEXT", true, 2), col("a", "TEXT", true, 1)])).unwrap();
        assert_eq!(compound.pk, vec!["a", "b"]);
        assert!(compound.columns.is_empty());
    }

    #[test]
    fn a_type_with_a_comment_is_run_as_its_affinity() {
        assert_eq!(sql_type("VARCHAR(10)"), "VARCHAR(10)");
        assert_eq!(sql_type("VARCHAR /* x */ (10)"), "TEXT");
        // (SQLite reads the comment's words too: this column has INTEGER affinity.)
        assert_eq!(sql_type("BLOB /* INT */ (5)"), "INTEGER");
        assert_eq!(sql_type("DECIMAL(10, /* y */ 2)"), "NUMERIC");
        assert_eq!(sql_type("DOUBLE -- d\n PRECISION"), "REAL");
    }

    #[test]
    fn refusals_name_table_and_reason() {
        assert!(refusal(&table(vec![col("a", "TEXT", false, 0)])).contains("table \"t\" cannot be a CRR: it has no PRIMARY KEY"));
        assert!(refusal(&table(vec![col("k", "TEXT", false, 1)])).contains("\"k\" is nullable"));
        let mut u = table(vec![col("id", "INTEGER", true, 1)]);
        u.unique_indexes.push("u1".into());
        assert!(refusal(&u).contains("UNIQUE"));
        let mut cr = table(vec![col("id", "INTEGER", true, 1)]);
        cr.cr_sqlite_triggers = vec!["t__crsql_itrig".into(), "t__crsql_dtrig".into()];
        assert!(refusal(&cr).contains("it is a CRR of cr-sqlite (its triggers \"t__crsql_itrig\", \"t__crsql_dtrig\" are cr-sqlite's)"));
        assert!(refusal(&cr).contains("DROP TRIGGER \"t__crsql_itrig\"; DROP TRIGGER \"t__crsql_dtrig\";"));
        let mut f = table(vec![col("id", "INTEGER", true, 1)]);
        f.has_foreign_keys = true;
        assert!(refusal(&f).contains("FOREIGN KEY"));
        let mut a = table(vec![col("id", "INTEGER", true, 1)]);
        a.sql = "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT)".into();
        assert!(refusal(&a).contains("AUTOINCREMENT"));
        assert!(refusal(&table(vec![col("id", "INTEGER", true, 1), col("n", "TEXT", true, 0)])).contains("\"n\" is NOT NULL without a DEFAULT"));
        assert!(refusal(&table(vec![col("id", "INTEGER", true, 1), col("-1", "TEXT", false, 0)])).contains("column \"-1\" has the name crsql_changes gives a row's sentinel"));
        let mut nocase = table(vec![col("k", "TEXT", true, 1)]);
        nocase.key_collations = vec![("k".into(), "NOCASE".into())];
        assert!(refusal(&nocase).contains("primary key column \"k\" has COLLATE NOCASE"));
        nocase.key_collations = vec![("k".into(), "BINARY".into())];
        assert!(check(&nocase).is_ok());
        // A key column may have that name: keys are not cids.
        assert!(check(&table(vec![col("-1", "INTEGER", true, 1), col("-2", "TEXT", false, 0)])).is_ok());
        // The packed key counts its columns in one byte.
        let keyed = |n: u32| table((1..=n).map(|i| col(&format!("k{i}"), "INTEGER", true, i)).collect());
        assert_eq!(check(&keyed(255)).unwrap().pk.len(), 255);
        assert!(refusal(&keyed(256)).contains("table \"t\" cannot be a CRR: its primary key has 256 columns; a CRR's key has at most 255"));
    }

    #[test]
    fn rowid_keys() {
        assert!(check(&table(vec![col("id", "integer ", false, 1), col("a", "TEXT", false, 0)])).unwrap().rowid_key);
        let mut desc = table(vec![col("id", "INTEGER", true, 1)]);
        desc.pk_has_index = true; // INTEGER PRIMARY KEY DESC
        assert!(!check(&desc).unwrap().rowid_key);
        assert!(!check(&table(vec![col("id", "INT", true, 1)])).unwrap().rowid_key);
        assert!(!check(&table(vec![col("a", "INTEGER", true, 1), col("b", "INTEGER", true, 2)])).unwrap().rowid_key);
        let mut w = table(vec![col("id", "INTEGER", true, 1)]);
        w.without_rowid = true;
        w.pk_has_index = true;
        assert!(!check(&w).unwrap().rowid_key);
    }

    #[test]
    fn check_constraints_and_the_columns_they_name() {
        let cols: Vec<String> = ["id", "lo", "Hi", "we ird", "x"].iter().map(|s| s.to_string()).collect();
        let of = |sql: &str| check_constraints(sql, &cols).into_iter().map(|c| c.columns).collect::<Vec<_>>();
        assert_eq!(of("CREATE TABLE r(id INTEGER PRIMARY KEY, lo INT, hi INT, CHECK (lo <= hi))"), vec![vec!["lo", "Hi"]]);
        assert_eq!(of("CREATE TABLE r(id, lo INT CHECK (lo > 0), hi CHECK(\"HI\" < 'lo x'))"), vec![vec!["lo"], vec!["Hi"]]);
        assert_eq!(of("CREATE TABLE r(x CHECK (length(x) < 9 AND [we ird] IS NULL)) -- CHECK (lo < hi)"), vec![vec!["x", "we ird"]]);
        assert_eq!(of("CREATE TABLE r(x, \"check\"(9), y /* CHECK (lo<hi) */)"), Vec::<Vec<String>>::new());
        assert_eq!(of("CREATE TABLE r(x CHECK (x IN (1, (2))), lo CHECK (((lo))))"), vec![vec!["x"], vec!["lo"]]);
        let exprs: Vec<String> = check_constraints("CREATE TABLE r(x CHECK ( x IN (1, (2)) ), lo CHECK(lo > ')'))", &cols).into_iter().map(|c| c.expr).collect();
        assert_eq!(exprs, vec!["x IN (1, (2))", "lo > ')'"]);
        let mut r = table(vec![col("id", "INTEGER", true, 1), col("lo", "INT", false, 0), col("hi", "INT", false, 0)]);
        r.sql = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, lo INT, hi INT, CONSTRAINT ordered CHECK (lo <= hi))".into();
        assert!(refusal(&r).contains("it has a CHECK constraint on several columns (\"lo\", \"hi\")"));
        r.sql = "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, lo INT CHECK (lo >= 0), hi INT CHECK (hi > id))".into();
        assert!(check(&r).is_ok());
    }

    #[test]
    fn values_stored_as_they_are() {
        use Affinity::*;
        let text = |t: &str| Value::Text(t.into());
        assert!(stored_as_is(Blob, &Value::Integer(1)) && stored_as_is(Text, &text("1")) && stored_as_is(Text, &Value::Blob(vec![1])));
        assert!(!stored_as_is(Text, &Value::Integer(1)) && !stored_as_is(Text, &Value::Real(1.5)));
        assert!(!stored_as_is(Real, &Value::Integer(1)) && stored_as_is(Real, &Value::Real(1.0)) && !stored_as_is(Real, &Value::Real(-0.0)));
        assert!(!stored_as_is(Integer, &Value::Real(2.0)) && stored_as_is(Numeric, &Value::Real(2.5)) && stored_as_is(Integer, &Value::Real(1e300)));
        for numeric in ["1", " 1 ", "+1", "-1.", ".5", "1e5", "1E-5", "\x0B7\r"] {
            assert!(!stored_as_is(Numeric, &text(numeric)), "{numeric:?}");
        }
        for not in ["", " ", ".", "1e", "e5", "0x10", "1 2", "inf", "NaN", "1.2.3", "--1", "\u{a0}1"] {
            assert!(stored_as_is(Integer, &text(not)), "{not:?}");
        }
    }

    #[test]
    fn reals_equal_to_an_integer_are_key_twins_where_both_can_be_stored() {
        use Affinity::*;
        for (f, i) in [(1.0, 1), (0.0, 0), (-0.0, 0), (-3.0, -3), (1e18, 1_000_000_000_000_000_000), (-9_223_372_036_854_775_808.0, i64::MIN)] {
            assert_eq!(key_twin(Blob, &Value::Real(f)), Some(i), "{f:?}");
        }
        for f in [1.5, -0.25, 9_223_372_036_854_775_808.0, 1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            assert_eq!(key_twin(Blob, &Value::Real(f)), None, "{f:?}");
        }
        for v in [Value::Integer(1), Value::Text("1".into()), Value::Blob(vec![1]), Value::Null] {
            assert_eq!(key_twin(Blob, &v), None, "{v:?}");
        }
        // Other affinities store only one of the two.
        for a in [Integer, Numeric, Real, Text] {
            assert_eq!(key_twin(a, &Value::Real(1.0)), None, "{a:?}");
        }
        let reason = key_twin_reason("id", -0.0, 0);
        assert!(reason.contains("key column \"id\" cannot hold the REAL -0.0") && reason.ends_with("store the INTEGER 0"), "{reason}");
    }

    /// Every table sql/schema.sql makes is known as the extension's own, and so are clocks.
    #[test]
    fn the_extensions_own_tables_are_known() {
        let schema = include_str!("../../sql/schema.sql");
        let made: Vec<&str> = schema.split("CREATE TABLE IF NOT EXISTS ").skip(1).map(|s| s.split('(').next().unwrap().trim()).collect();
        assert_eq!(made.len(), OWN_TABLES.len(), "{made:?}");
        for name in made {
            assert!(is_own_table(name) && is_own_table(&name.to_uppercase()), "{name}");
        }
        assert!(is_own_table("crr_clock_12") && is_own_table("CRR_CLOCK_3"));
        for not in ["crr_clock_", "crr_clock_1_dbv", "crr_orders", "meta", "t", "crr_clock_007", "crr_clock_+1", "crr_clock_0", "crr_clock_1x"] {
            assert!(!is_own_table(not), "{not}");
        }
        let mut own = table(vec![col("key", "TEXT", true, 1), col("value", "", false, 0)]);
        own.name = "crr_meta".into();
        assert!(refusal(&own).contains("table \"crr_meta\" cannot be a CRR: it is one of sqlite-crr's own tables"), "{}", refusal(&own));
    }

    #[test]
    fn affinities() {
        assert_eq!(column_affinity("ANY", true), Affinity::Blob);
        assert_eq!(column_affinity("ANY", false), Affinity::Numeric);
        assert_eq!(affinity("VARCHAR(10)"), Affinity::Text);
        assert_eq!(affinity("BIGINT"), Affinity::Integer);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("DECIMAL"), Affinity::Numeric);
    }
}
