//! Which tables can be CRRs (SPEC section 3), decided from a plain description of the table.
//! The storage layer reads the description from SQLite's pragmas; the rules live here.

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

/// SQLite column affinity from a declared type (https://sqlite.org/datatype3.html, 3.1).
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

/// Whether SQLite stores `v` in a column of this affinity as it is, same type and value (the
/// rules of https://sqlite.org/datatype3.html 3.0, checked against SQLite in tests/merge.rs).
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

/// True when the CREATE TABLE text uses the AUTOINCREMENT keyword (outside quotes/comments).
pub fn uses_autoincrement(sql: &str) -> bool {
    sql_words(sql).iter().any(|w| w.eq_ignore_ascii_case("AUTOINCREMENT"))
}

/// True when a CREATE TRIGGER text's event is `UPDATE OF` a column list: such a trigger fires
/// only for statements whose SET names one of its columns (storage::merge writes a wide CRR's
/// cells through one statement that names every column, which would fire it for any).
/// The event is the first bare INSERT, UPDATE or DELETE: a trigger's name cannot be one of
/// those keywords unquoted, and its WHEN clause and body come after the event.
pub fn trigger_updates_of_columns(sql: &str) -> bool {
    let toks = tokens(sql);
    let word = |i: usize, w: &str| matches!(toks.get(i), Some((Token::Name(n), _)) if n.eq_ignore_ascii_case(w));
    let event = (0..toks.len()).find(|&i| ["INSERT", "UPDATE", "DELETE"].iter().any(|w| word(i, w)));
    event.is_some_and(|i| word(i, "UPDATE") && word(i + 1, "OF"))
}

/// Which of `names` a SQL text mentions as a word, a quoted identifier or a string (ASCII
/// case aside; a function, keyword or string that has a name's spelling counts too: this errs
/// toward more). SQLite takes a string for a column's name where an index lists one: `CREATE
/// INDEX i ON t('a')` indexes column a.
pub fn mentions(sql: &str, names: &[&str]) -> Vec<bool> {
    let mut out = vec![false; names.len()];
    for (t, _) in tokens(sql) {
        if let Token::Name(w) | Token::Quoted(w) | Token::Str(w) = t {
            for (i, n) in names.iter().enumerate() {
                out[i] |= n.eq_ignore_ascii_case(&w);
            }
        }
    }
    out
}

/// An SQL expression whose value is the default SQLite gives a column whose DEFAULT clause
/// reads `dflt` (`pragma_table_xinfo`'s `dflt_value`; None: no clause, so NULL), for
/// statements that write or compare a column's default without leaving the column out.
///
/// The text is the clause as written, but that a parenthesized expression loses its
/// parentheses, so it is pasted in parentheses; except a single name. SQLite's grammar takes
/// `DEFAULT name` (bare, or quoted as "name", [name] or `name`) for the string 'name', and
/// bare TRUE and FALSE for 1 and 0, where pasted a name is a column's (until 2026-12-06
/// `DEFAULT x` made `crsql_commit_alter` fail with `no such column: x`, compared with column
/// x where there was one, and made `crsql_as_crr` fail on a table with a CHECK). A
/// parenthesized expression holds no name (SQLite refuses it as not constant) but TRUE or
/// FALSE, which read the same either way; NULL and CURRENT_TIME, _DATE and _TIMESTAMP are
/// keywords, not names.
pub fn default_expr(dflt: Option<&str>) -> String {
    let Some(text) = dflt else {
        return "NULL".to_string();
    };
    // One name, bare or quoted (dequoted by `tokens`), and nothing else, is the string of its
    // name; a bare word that starts with a digit is a number.
    match tokens(text).as_slice() {
        [(Token::Name(word), _)] if !word.starts_with(|c: char| c.is_ascii_digit()) => match word.to_ascii_uppercase().as_str() {
            "NULL" | "CURRENT_TIME" | "CURRENT_DATE" | "CURRENT_TIMESTAMP" => word.clone(),
            "TRUE" => "1".to_string(),
            "FALSE" => "0".to_string(),
            _ => crate::core::ident::literal(word),
        },
        [(Token::Quoted(name), _)] => crate::core::ident::literal(name),
        _ => format!("({text})"),
    }
}

/// The columns of a CREATE TABLE text that declare a collation (`COLLATE name` among a
/// column's constraints; the last if several), with its name as written, dequoted. SQLite
/// reports a column's collation nowhere but in an index (`pragma_index_xinfo`), so
/// storage::as_crr's probe of a row of defaults reads it here: under `a TEXT COLLATE NOCASE
/// DEFAULT 'x' CHECK (a != 'X')` the row of defaults fails the CHECK, and a probe column
/// without the collation passed it.
pub fn column_collations(sql: &str) -> Vec<(String, String)> {
    let toks = tokens(sql);
    let mut out = Vec::new();
    for (name, item) in column_definitions(sql, &toks) {
        let (mut depth, mut collation) = (0usize, None);
        for (i, (t, _)) in item.iter().enumerate() {
            match t {
                Token::Open => depth += 1,
                Token::Close => depth = depth.saturating_sub(1),
                Token::Name(w) if depth == 0 && w.eq_ignore_ascii_case("COLLATE") => {
                    if let Some((Token::Name(c) | Token::Quoted(c) | Token::Str(c), _)) = item.get(i + 1) {
                        collation = Some(c.clone());
                    }
                }
                _ => {}
            }
        }
        if let Some(c) = collation {
            out.push((name.clone(), c));
        }
    }
    out
}

/// The column definitions of a CREATE TABLE text (`toks`, its tokens): each column's name (as
/// written, dequoted) and its tokens from the name on. The column list's items are split at
/// its commas; table constraints are left out.
fn column_definitions<'a>(sql: &str, toks: &'a [(Token, usize)]) -> Vec<(&'a String, &'a [(Token, usize)])> {
    let Some(open) = toks.iter().position(|(t, _)| *t == Token::Open) else {
        return Vec::new();
    };
    let mut items: Vec<&[(Token, usize)]> = Vec::new();
    let (mut depth, mut start) = (0usize, open + 1);
    for (i, (t, at)) in toks.iter().enumerate().skip(open + 1) {
        match t {
            Token::Open => depth += 1,
            Token::Close if depth == 0 => {
                items.push(&toks[start..i]);
                break;
            }
            Token::Close => depth -= 1,
            Token::Other if depth == 0 && sql.as_bytes()[*at] == b',' => {
                items.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
        .into_iter()
        .filter_map(|item| match item.first() {
            Some((Token::Name(w), _)) if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"].iter().any(|k| w.eq_ignore_ascii_case(k)) => None,
            // (A column's name may be written as a string: `'a' TEXT`.)
            Some((Token::Name(w) | Token::Quoted(w) | Token::Str(w), _)) => Some((w, item)),
            _ => None,
        })
        .collect()
}

/// A generated column of a CREATE TABLE text (`AS (expr)`, with or without `GENERATED
/// ALWAYS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub name: String,
    /// Its expression as written, without the parentheses around it.
    pub expr: String,
    /// The names among the given columns the expression mentions (ASCII case aside; as in
    /// `check_constraints`, this errs toward mentioning more).
    pub columns: Vec<String>,
}

/// The generated columns of a CREATE TABLE text.
pub fn generated_columns(sql: &str, columns: &[String]) -> Vec<Generated> {
    let toks = tokens(sql);
    let mut out = Vec::new();
    for (name, item) in column_definitions(sql, &toks) {
        // `AS (` outside parentheses (a CAST in a DEFAULT or a CHECK has one inside them).
        let mut depth = 0usize;
        let at_as = item.iter().enumerate().position(|(i, (t, _))| {
            match t {
                Token::Open => depth += 1,
                Token::Close => depth = depth.saturating_sub(1),
                _ => {}
            }
            depth == 0 && matches!(t, Token::Name(w) if w.eq_ignore_ascii_case("AS")) && item.get(i + 1).is_some_and(|(t, _)| *t == Token::Open)
        });
        let Some(k) = at_as else {
            continue;
        };
        let (expr, named, _) = parenthesized(sql, &item[k + 1..], columns);
        out.push(Generated { name: name.clone(), expr, columns: named });
    }
    out
}

/// Which slots of a wide CRR (its tracked `columns`, None where dropped) a merge writes
/// through the one statement the table's cells share (storage::merge::write_cell): the live
/// columns but those a CHECK of `table_sql` (its CREATE TABLE text) or an index of
/// `index_sql` names. SQLite rewrites an index's entries for every statement that sets one
/// of its columns, to the same value or not; and it checks a CHECK at an UPDATE only if the
/// statement sets a column it names, so on the shared statement every merge would check
/// every CHECK of the table, and a row stored while `ignore_check_constraints` was on could
/// be refused merges of its other columns.
pub fn shared_write_slots(table_sql: &str, columns: &[Option<String>], index_sql: &[String]) -> Vec<bool> {
    let names: Vec<&str> = columns.iter().map(|c| c.as_deref().unwrap_or_default()).collect();
    let mut slots: Vec<bool> = columns.iter().map(Option::is_some).collect();
    // (Most tables have no CHECK: their text is not tokenized, at every registry load.)
    if table_sql.as_bytes().windows(5).any(|w| w.eq_ignore_ascii_case(b"CHECK")) {
        // A CHECK on a generated column checks those its expression names too: SQLite checks
        // it at an UPDATE that sets one of them.
        let toks = tokens(table_sql);
        let mut all: Vec<String> = column_definitions(table_sql, &toks).into_iter().map(|(n, _)| n.clone()).collect();
        all.extend(names.iter().filter(|n| !n.is_empty() && !all.iter().any(|a| a.eq_ignore_ascii_case(n))).map(|n| n.to_string()).collect::<Vec<_>>());
        let generated = generated_columns(table_sql, &all);
        let checked: Vec<String> = check_constraints(table_sql, &all).into_iter().flat_map(|c| through_generated(&c.columns, &generated)).collect();
        for (slot, n) in slots.iter_mut().zip(&names) {
            *slot &= !checked.iter().any(|c| c.eq_ignore_ascii_case(n));
        }
    }
    for sql in index_sql {
        for (slot, named) in slots.iter_mut().zip(mentions(sql, &names)) {
            *slot &= !named;
        }
    }
    slots
}

/// Estimated bytes of the statements a merge keeps for a table of `c` tracked columns written
/// a statement per column: about c + 5 statements (one UPDATE per column, the row's INSERT
/// and the clock's few) of about 4 KiB and 400 bytes a column each (SQLite 3.46, 20 CRRs of
/// 5 columns: 6 KiB a statement; 100 of 20: 13 KiB; 10 of 60: 27 KiB).
fn per_column_bytes(c: usize) -> usize {
    (c + 5) * (4096 + 400 * c)
}

/// The same for a table written through one statement for the table: the shared UPDATE and
/// INSERT and the clock's few.
fn shared_bytes(c: usize) -> usize {
    6 * (4096 + 400 * c)
}

/// Which of the CRRs of `columns` tracked columns each a merge writes through one statement
/// for the table (`merge::write_cell`, `recreate_row`) rather than one per column: those of
/// `threshold` columns or more, and then, widest first, as many as bring the estimated memory
/// of the statements merges keep under `budget`. A statement per column costs the least per
/// merged cell (the shared one about 8% more, Python, 3 to 40 columns), but their memory grows
/// with the square of a table's width and with the number of tables: merging into 100 CRRs
/// of 20 columns kept 28.7 MiB of statements on the connection (until 2026-12-06).
pub fn shared_writes(columns: &[usize], threshold: usize, budget: usize) -> Vec<bool> {
    let mut out: Vec<bool> = columns.iter().map(|&c| c >= threshold).collect();
    let estimate = |c: usize, shared: bool| if shared { shared_bytes(c) } else { per_column_bytes(c) };
    let mut total: usize = columns.iter().zip(&out).map(|(&c, &s)| estimate(c, s)).sum();
    let mut widest: Vec<usize> = (0..columns.len()).filter(|&i| !out[i]).collect();
    widest.sort_by_key(|&i| std::cmp::Reverse(columns[i]));
    for i in widest {
        let c = columns[i];
        if total <= budget || shared_bytes(c) >= per_column_bytes(c) {
            break;
        }
        out[i] = true;
        total -= per_column_bytes(c) - shared_bytes(c);
    }
    out
}

/// A token of a CREATE TABLE text, as far as `check_constraints` and `sql_words` need it.
#[derive(Debug, PartialEq)]
enum Token {
    /// A bare word.
    Name(String),
    /// A quoted identifier ("x", `x`, [x]), unquoted: never a keyword.
    Quoted(String),
    /// A string literal ('x'), unquoted. SQLite takes one for a name where its grammar wants
    /// a name (a column's, `COLLATE 'nocase'`, an index's column `ON t('a')`), and for a
    /// string in an expression.
    Str(String),
    Open,
    Close,
    Other,
}

/// The tokens of a SQL text with the byte offset each starts at.
fn tokens(sql: &str) -> Vec<(Token, usize)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let mut push = |t: Token| out.push((t, start));
        match c {
            b'"' | b'`' => {
                let (end, closed) = quoted_end(bytes, i, c);
                // (Unclosed, it runs to the end of the text: no closing quote to leave out.)
                let inner = &sql[i + 1..if closed { end - 1 } else { end }];
                let q = (c as char).to_string();
                push(Token::Quoted(inner.replace(&format!("{q}{q}"), &q)));
                i = end;
            }
            b'[' => {
                let end = bytes[i..].iter().position(|&b| b == b']').map_or(bytes.len(), |p| i + p);
                push(Token::Quoted(sql[i + 1..end].to_string()));
                i = (end + 1).min(bytes.len());
            }
            b'\'' => {
                let (end, closed) = quoted_end(bytes, i, c);
                push(Token::Str(sql[i + 1..if closed { end - 1 } else { end }].replace("''", "'")));
                i = end;
            }
            // A blob literal is one token (not the name x and a string).
            b'x' | b'X' if bytes.get(i + 1) == Some(&b'\'') => {
                push(Token::Other);
                i = skip_quoted(bytes, i + 1, b'\'');
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p + 1)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = sql[i + 2..].find("*/").map_or(bytes.len(), |p| i + 2 + p + 2),
            b'(' => {
                push(Token::Open);
                i += 1;
            }
            b')' => {
                push(Token::Close);
                i += 1;
            }
            // (SQLite's names may hold '$' past their first character: a$b is one name.)
            _ if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$' || bytes[i] >= 0x80) {
                    i += 1;
                }
                push(Token::Name(sql[start..i].to_string()));
            }
            _ if c.is_ascii_whitespace() || c == 0x0B => i += 1,
            _ => {
                push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

/// One CHECK constraint of a CREATE TABLE text: its expression as written, and the names
/// among the given columns it mentions (ASCII case aside; a function or keyword that has a
/// column's name counts too: this errs toward mentioning more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConstraint {
    pub expr: String,
    pub columns: Vec<String>,
}

/// The parenthesized expression `toks` (tokens of `sql`) starts with: its text without the
/// parentheses, the names among `columns` it mentions (ASCII case aside, once each; a string
/// is a string, whatever it spells), and how many tokens it took.
fn parenthesized(sql: &str, toks: &[(Token, usize)], columns: &[String]) -> (String, Vec<String>, usize) {
    let (mut depth, mut named, mut used) = (0usize, Vec::new(), toks.len());
    let open = toks.first().map_or(sql.len(), |t| t.1);
    let mut close = sql.len();
    for (j, (t, at)) in toks.iter().enumerate() {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    (close, used) = (*at, j + 1);
                    break;
                }
            }
            Token::Name(n) | Token::Quoted(n) => {
                if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(n)) {
                    if !named.contains(c) {
                        named.push(c.clone());
                    }
                }
            }
            Token::Str(_) | Token::Other => {}
        }
    }
    (sql[(open + 1).min(close)..close].trim().to_string(), named, used)
}

/// The CHECK constraints (column or table constraints) of a CREATE TABLE text.
pub fn check_constraints(sql: &str, columns: &[String]) -> Vec<CheckConstraint> {
    let toks = tokens(sql);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_check = matches!(&toks[i].0, Token::Name(w) if w.eq_ignore_ascii_case("CHECK")) && toks.get(i + 1).is_some_and(|t| t.0 == Token::Open);
        if !is_check {
            i += 1;
            continue;
        }
        let (expr, named, used) = parenthesized(sql, &toks[i + 1..], columns);
        out.push(CheckConstraint { expr, columns: named });
        i += 1 + used;
    }
    out
}

/// Bare words of a SQL text, skipping quoted strings/identifiers and comments (`tokens`).
fn sql_words(sql: &str) -> Vec<String> {
    tokens(sql).into_iter().filter_map(|(t, _)| if let Token::Name(w) = t { Some(w) } else { None }).collect()
}

fn skip_quoted(bytes: &[u8], start: usize, q: u8) -> usize {
    quoted_end(bytes, start, q).0
}

/// Where the text quoted by `q` at `start` ends (past its closing quote), and whether it has
/// one (else it runs to the end of `bytes`).
fn quoted_end(bytes: &[u8], start: usize, q: u8) -> (usize, bool) {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == q {
            if bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return (i + 1, true);
        }
        i += 1;
    }
    (bytes.len(), false)
}

/// The `cid` crsql_changes gives a row's sentinel (as cr-sqlite): no tracked column can have
/// this name, as its changes would read, and merge, as the sentinel's.
pub const SENTINEL_CID: &str = "-1";

/// The extension's own tables (sql/schema.sql, and the clock tables `crr_clock_<tid>`).
const OWN_TABLES: [&str; 7] = ["crr_meta", "crr_sites", "crr_tables", "crr_columns", "crr_ticks", "crr_dirty", "crsql_tracked_peers"];

/// Whether `name` is one of the extension's own tables (ASCII case aside, as SQL names go).
pub fn is_own_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // (`crr_clock_007` can only be an app's.)
    OWN_TABLES.contains(&lower.as_str()) || clock_table_id(&lower).is_some()
}

/// The table id of clock table `name`: `crr_clock_` and an id's digits as the extension
/// writes them (no sign, no leading zero, nothing after); None for any other name.
pub fn clock_table_id(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("crr_clock_")?;
    let tid: i64 = digits.parse().ok()?;
    (tid > 0 && tid.to_string() == digits).then_some(tid)
}

/// The stored columns `named` (a CHECK's columns) stand for: each generated one stands for
/// those its expression names, in turn (`generated_columns`).
pub fn through_generated(named: &[String], generated: &[Generated]) -> Vec<String> {
    let (mut out, mut seen, mut todo): (Vec<String>, Vec<String>, Vec<String>) = (Vec::new(), Vec::new(), named.to_vec());
    while let Some(c) = todo.pop() {
        if seen.iter().any(|s| s.eq_ignore_ascii_case(&c)) {
            continue;
        }
        seen.push(c.clone());
        match generated.iter().find(|g| g.name.eq_ignore_ascii_case(&c)) {
            Some(g) => todo.extend(g.columns.iter().cloned()),
            None => out.push(c),
        }
    }
    out
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
    let mut pk: Vec<&ColumnDesc> = t.columns.iter().filter(|c| c.pk_index > 0).collect();
    if pk.is_empty() {
        return Err(refuse("it has no PRIMARY KEY".into()));
    }
    pk.sort_by_key(|c| c.pk_index);
    // SQLite takes a key of up to 2,000 columns; the packed key counts its columns in one
    // byte, so the triggers of a wider one would fail every write (until 2026-12-06 such a
    // table was taken, and each INSERT then failed in crsql_pack_columns).
    if pk.len() > super::pk_codec::PK_COLUMNS_MAX {
        return Err(refuse(format!(
            "its primary key has {} columns; a CRR's key has at most {} (crsql_changes' pk blob counts them in one byte)",
            pk.len(),
            super::pk_codec::PK_COLUMNS_MAX
        )));
    }
    // "INTEGER PRIMARY KEY DESC" and "INT PRIMARY KEY" are not aliases: SQLite gives them an
    // index of their own.
    let rowid_alias =
        !t.without_rowid && pk.len() == 1 && pk[0].decl_type.trim().eq_ignore_ascii_case("INTEGER") && !t.pk_has_index;
    for c in &pk {
        if !c.not_null && !t.without_rowid && !rowid_alias {
            return Err(refuse(format!("primary key column \"{}\" is nullable (declare it NOT NULL)", c.name)));
        }
    }
    // Keys that differ in bytes but are equal under the key's collation ('a' and 'A' under
    // NOCASE) would be one row on a replica that got both and two rows elsewhere.
    if let Some((name, coll)) = t.key_collations.iter().find(|(_, coll)| !coll.eq_ignore_ascii_case("BINARY")) {
        return Err(refuse(format!(
            "primary key column \"{name}\" has COLLATE {coll}: keys equal under it but not byte for byte \
             would be one row on one replica and two on another (use the BINARY collation)"
        )));
    }
    if let Some(name) = t.unique_indexes.first() {
        return Err(refuse(format!(
            "it has a UNIQUE constraint or unique index (\"{name}\") besides the primary key; \
             concurrent writes on two replicas could not both be merged"
        )));
    }
    if t.has_foreign_keys {
        return Err(refuse(
            "it has FOREIGN KEY constraints; merges apply changes one cell at a time in any order, \
             so checked foreign keys would reject valid merges"
                .into(),
        ));
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
            return Err(refuse(format!(
                "it has a CHECK constraint on several columns ({}{}); merges apply changes one cell at a time, \
                 so it would reject valid merges (a peer's update of both columns, applied one by one)",
                cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "),
                if through.is_empty() { String::new() } else { format!(", through generated column {}", through.join(", ")) }
            )));
        }
    }
    if uses_autoincrement(&t.sql) {
        return Err(refuse("it uses AUTOINCREMENT; replicas would allocate the same keys".into()));
    }
    let mut columns = Vec::new();
    for c in t.columns.iter().filter(|c| c.pk_index == 0 && !c.generated) {
        if c.name == SENTINEL_CID {
            return Err(refuse(format!(
                "column \"{SENTINEL_CID}\" has the name crsql_changes gives a row's sentinel (cid '{SENTINEL_CID}'), \
                 so its changes could not be told from the sentinel's; rename the column"
            )));
        }
        if c.not_null && !c.has_default {
            return Err(refuse(format!(
                "column \"{}\" is NOT NULL without a DEFAULT; merges create rows one column at a time",
                c.name
            )));
        }
        columns.push(TrackedColumn {
            name: c.name.clone(),
            keeps_storage_class: affinity(&c.decl_type) == Affinity::Blob
                || c.decl_type.trim().eq_ignore_ascii_case("ANY"),
        });
    }
    let strict = is_strict(&t.sql);
    Ok(Shape {
        pk: pk.iter().map(|c| c.name.clone()).collect(),
        columns,
        rowid_key: rowid_alias,
        pk_affinity: pk.iter().map(|c| column_affinity(&c.decl_type, strict)).collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_writes_keep_the_estimate_under_the_budget_widest_first() {
        // Past the threshold, always; under the budget, never.
        assert_eq!(shared_writes(&[3, 70, 20], 64, usize::MAX), vec![false, true, false]);
        assert_eq!(shared_writes(&[3, 20, 20], 1, usize::MAX), vec![true, true, true]);
        // 100 CRRs of 20 columns, about 29 MiB one statement per column: the widest go first,
        // ties in table order, until the estimate is under 8 MiB.
        let mut columns = vec![20; 100];
        columns[40] = 30;
        let shared = shared_writes(&columns, 64, 8 << 20);
        assert!(shared[40]);
        let n = shared.iter().filter(|s| **s).count();
        assert!((60..100).contains(&n), "{n}");
        assert!(shared[..n - 1].iter().all(|s| *s) && !shared[n..].iter().any(|s| *s), "{shared:?}");
        let estimate: usize = columns.iter().zip(&shared).map(|(&c, &s)| if s { shared_bytes(c) } else { per_column_bytes(c) }).sum();
        assert!(estimate <= 8 << 20, "{estimate}");
        // One table fewer would be over it.
        let mut fewer = shared.clone();
        fewer[n - 1] = false;
        let over: usize = columns.iter().zip(&fewer).map(|(&c, &s)| if s { shared_bytes(c) } else { per_column_bytes(c) }).sum();
        assert!(over > 8 << 20);
        // A table too narrow to gain stays as it is, whatever the budget.
        assert_eq!(shared_writes(&[1, 1, 1], 64, 0), vec![false, false, false]);
        assert_eq!(shared_writes(&[], 64, 0), Vec::<bool>::new());
    }

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
    fn refusals_name_table_and_reason() {
        assert!(refusal(&table(vec![col("a", "TEXT", false, 0)])).contains("table \"t\" cannot be a CRR: it has no PRIMARY KEY"));
        assert!(refusal(&table(vec![col("k", "TEXT", false, 1)])).contains("\"k\" is nullable"));
        let mut u = table(vec![col("id", "INTEGER", true, 1)]);
        u.unique_indexes.push("u1".into());
        assert!(refusal(&u).contains("UNIQUE"));
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
    fn generated_columns_are_read_with_their_expressions() {
        let sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT DEFAULT (CAST(1 AS TEXT)) CHECK (CAST(a AS INT) >= 0), \
                   \"g 1\" TEXT GENERATED ALWAYS AS (a || ')' || \"b\") STORED, b, h AS ((CAST(b AS TEXT))) VIRTUAL, CHECK (h AS_NOT))";
        let names: Vec<String> = ["id", "a", "g 1", "b", "h"].iter().map(|n| n.to_string()).collect();
        let g = generated_columns(sql, &names);
        assert_eq!(g.iter().map(|g| (g.name.as_str(), g.expr.as_str())).collect::<Vec<_>>(), vec![("g 1", "a || ')' || \"b\""), ("h", "(CAST(b AS TEXT))")]);
        assert_eq!((g[0].columns.clone(), g[1].columns.clone()), (vec!["a".to_string(), "b".to_string()], vec!["b".to_string()]));
        let mut stored = through_generated(&["h".into(), "g 1".into(), "id".into()], &g);
        stored.sort();
        assert_eq!(stored, vec!["a".to_string(), "b".to_string(), "id".to_string()]);
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
    fn autoincrement_only_as_keyword() {
        assert!(!uses_autoincrement("CREATE TABLE \"autoincrement\"(x 'AUTOINCREMENT' /* AUTOINCREMENT */) -- AUTOINCREMENT"));
        assert!(uses_autoincrement("create table t(id integer primary key autoincrement)"));
    }

    proptest::proptest! {
        /// The tokenizer reads SQL that SQLite stored, so always well formed; still, no text
        /// makes it panic (an unterminated quote or bracket before a multi-byte character).
        #[test]
        fn the_tokenizer_takes_any_text(sql in "[\"`\\[\\]'a-z (),é✓-]{0,12}") {
            let _ = trigger_updates_of_columns(&sql);
            let _ = mentions(&sql, &["a", "é"]);
            let _ = check_constraints(&sql, &["a".to_string()]);
            let _ = generated_columns(&sql, &["a".to_string()]);
            let _ = uses_autoincrement(&sql);
            let _ = (is_strict(&sql), is_without_rowid(&sql));
        }
    }

    #[test]
    fn a_wide_tables_shared_write_leaves_out_indexed_and_checked_columns() {
        let cols: Vec<Option<String>> = vec![Some("a".into()), None, Some("B c".into()), Some("d".into()), Some("e".into()), Some("f".into())];
        let table = "CREATE TABLE w(id INTEGER PRIMARY KEY, a, \"B c\", d CHECK (d > 0), e, f, CHECK (typeof(id) = 'integer'))";
        let indexes = ["CREATE INDEX i ON w(lower(e)) WHERE a IS NOT NULL".to_string()];
        assert_eq!(shared_write_slots(table, &cols, &indexes), [false, false, true, false, false, true]);
        assert_eq!(shared_write_slots("", &cols, &[]), [true, false, true, true, true, true]);
        // A CHECK on a generated column leaves out the columns its expression names.
        let table = "CREATE TABLE w(id INTEGER PRIMARY KEY, a, \"B c\", d, e, f, g AS (e || (f)) CHECK (g != ''))";
        assert_eq!(shared_write_slots(table, &cols, &[]), [true, false, true, true, false, false]);
    }

    #[test]
    fn mentions_finds_names_and_strings_outside_comments() {
        // (A string counts: `ON t('k')` indexes column k.)
        let sql = "CREATE INDEX \"i a\" ON t(\"B\", lower([c d]) COLLATE NOCASE, 'k') WHERE e > 'f' -- g\n AND H /* j */ AND a$b";
        let names = ["a", "b", "c d", "e", "f", "g", "h", "j", "i a", "k", "a$b"];
        assert_eq!(mentions(sql, &names), [false, true, true, true, true, false, true, false, true, true, true]);
    }

    #[test]
    fn a_trigger_on_update_of_columns_is_told_from_others() {
        for sql in [
            "CREATE TRIGGER x AFTER UPDATE OF a ON t BEGIN SELECT 1; END",
            "CREATE TRIGGER \"insert\" before update of \"b\", c on t begin select 1; end",
            "CREATE TRIGGER IF NOT EXISTS main.x AFTER /* delete */ UPDATE -- insert\n OF [a] ON t BEGIN DELETE FROM u; END",
            "CREATE TRIGGER of AFTER UPDATE OF of ON t BEGIN SELECT 1; END",
        ] {
            assert!(trigger_updates_of_columns(sql), "{sql}");
        }
        for sql in [
            "CREATE TRIGGER x AFTER UPDATE ON t BEGIN UPDATE u SET a = 1; END",
            "CREATE TRIGGER x AFTER INSERT ON t WHEN 'UPDATE OF' BEGIN UPDATE u SET a = 1; END",
            "CREATE TRIGGER x AFTER DELETE ON t BEGIN UPDATE u SET a = 1; END",
            "CREATE TRIGGER \"update of\" AFTER UPDATE ON t BEGIN SELECT 1; END",
            "CREATE TRIGGER of AFTER UPDATE ON \"of\" BEGIN SELECT 1; END",
            "CREATE TRIGGER x INSTEAD OF UPDATE ON v BEGIN SELECT 1; END",
            "",
        ] {
            assert!(!trigger_updates_of_columns(sql), "{sql}");
        }
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
    fn column_collations_are_read_from_the_column_definitions() {
        let sql = "CREATE TABLE \"t (x\" (id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE, [b c] VARCHAR(10) NOT NULL COLLATE \"RTRIM\" DEFAULT 'x', \
                   d TEXT CHECK (d COLLATE NOCASE != 'x') DEFAULT ('y' COLLATE NOCASE), e GENERATED ALWAYS AS (a COLLATE BINARY), \
                   f TEXT COLLATE rtrim COLLATE nocase, -- g TEXT COLLATE NOCASE\n \"collate\" TEXT, CONSTRAINT k CHECK (a COLLATE RTRIM > ''), \
                   UNIQUE (a COLLATE NOCASE))";
        let got = column_collations(sql);
        let want: Vec<(String, String)> =
            [("a", "NOCASE"), ("b c", "RTRIM"), ("f", "nocase")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
        assert!(column_collations("CREATE TABLE t(a, b)").is_empty());
        assert!(column_collations("CREATE TABLE t").is_empty());
    }

    #[test]
    fn default_expressions_are_the_values_sqlite_gives() {
        let d = |t: &str| default_expr(Some(t));
        assert_eq!(default_expr(None), "NULL");
        assert_eq!(d("NULL"), "NULL");
        assert_eq!(d("current_timestamp"), "current_timestamp");
        assert_eq!(d("-1"), "(-1)");
        assert_eq!(d("'it''s'"), "('it''s')");
        assert_eq!(d("x'00ff'"), "(x'00ff')");
        assert_eq!(d("1+2"), "(1+2)", "a parenthesized expression, shown without its parentheses");
        assert_eq!(d("lower('A')"), "(lower('A'))");
        assert_eq!(d("- 'abc'"), "(- 'abc')");
        assert_eq!(d("0x10"), "(0x10)");
        assert_eq!(d(".5"), "(.5)");
        // A name is the string of its text (dequoted); bare TRUE and FALSE are 1 and 0.
        assert_eq!(d("bare"), "'bare'");
        assert_eq!(d("a$b"), "'a$b'");
        assert_eq!(d("it_s"), "'it_s'");
        assert_eq!(d("True"), "1");
        assert_eq!(d("FALSE"), "0");
        assert_eq!(d("\"true\""), "'true'");
        assert_eq!(d("\"it\"\"s\""), "'it\"s'");
        assert_eq!(d("[it's]"), "'it''s'");
        assert_eq!(d("`b``t`"), "'b`t'");
        assert_eq!(d("sélect"), "'sélect'");
        // Not one name: pasted.
        assert_eq!(d("\"a\" || 'b'"), "(\"a\" || 'b')");
        assert_eq!(d("[a] + [b]"), "([a] + [b])");
    }

    #[test]
    fn affinities() {
        assert_eq!(affinity("VARCHAR(10)"), Affinity::Text);
        assert_eq!(affinity("BIGINT"), Affinity::Integer);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("DECIMAL"), Affinity::Numeric);
    }
}

/// True when the CREATE TABLE text has the STRICT option (after its column list). The list
/// ends at the last closing parenthesis outside comments and quotes: SQLite keeps a comment
/// between the options and the statement's end in the text, and until 2026-12-06 a `)` in it
/// hid the option (a STRICT table's ANY key column was taken for one of NUMERIC affinity,
/// and merges of a text key '5' were refused).
pub fn is_strict(sql: &str) -> bool {
    table_options(sql).iter().any(|w| w.eq_ignore_ascii_case("STRICT"))
}

/// The bare words of a CREATE TABLE text after its column list (its last closing parenthesis
/// outside comments and quotes): the table's options.
fn table_options(sql: &str) -> Vec<String> {
    let toks = tokens(sql);
    let end = toks.iter().rposition(|(t, _)| *t == Token::Close).unwrap_or(toks.len());
    toks.into_iter().skip(end).filter_map(|(t, _)| if let Token::Name(w) = t { Some(w) } else { None }).collect()
}

/// The affinity a column of a table applies: a STRICT table's ANY column applies none.
pub fn column_affinity(decl_type: &str, strict: bool) -> Affinity {
    if strict && decl_type.trim().eq_ignore_ascii_case("ANY") {
        Affinity::Blob
    } else {
        affinity(decl_type)
    }
}

/// True when the CREATE TABLE text ends with the WITHOUT ROWID option: after the column
/// list's closing parenthesis, as `is_strict` reads it. Until 2026-12-06 the words anywhere
/// counted, so a column named `without` of type `rowid` made a rowid table one without, whose
/// key need not be declared NOT NULL: `crsql_as_crr` took a nullable TEXT key, and rows keyed
/// by NULL (which a rowid table holds any number of) shared one clock row.
pub fn is_without_rowid(sql: &str) -> bool {
    table_options(sql).windows(2).any(|w| w[0].eq_ignore_ascii_case("WITHOUT") && w[1].eq_ignore_ascii_case("ROWID"))
}

#[cfg(test)]
mod rowid_tests {
    #[test]
    fn without_rowid_detection() {
        assert!(super::is_without_rowid("CREATE TABLE t(a PRIMARY KEY) without  rowid"));
        assert!(!super::is_without_rowid("CREATE TABLE \"without rowid\"(a PRIMARY KEY)"));
        assert!(!super::is_without_rowid("CREATE TABLE t(a TEXT PRIMARY KEY, without rowid)"));
        assert!(!super::is_without_rowid("CREATE TABLE t(a TEXT PRIMARY KEY, b CHECK (b != 'x') /* without rowid */)"));
        assert!(super::is_without_rowid("CREATE TABLE t(a TEXT PRIMARY KEY, without rowid) STRICT, WITHOUT /* ) */ ROWID"));
        assert!(super::is_strict("CREATE TABLE t(a INT PRIMARY KEY) WITHOUT ROWID, STRICT"));
        assert!(!super::is_strict("CREATE TABLE t(strict INT PRIMARY KEY, \"x)\" TEXT)"));
        assert!(super::is_strict("CREATE TABLE t(a ANY PRIMARY KEY) STRICT /* ) */ "));
        assert!(super::is_strict("CREATE TABLE t(a ANY PRIMARY KEY) STRICT -- )"));
        assert!(!super::is_strict("CREATE TABLE t(a ANY PRIMARY KEY) /* STRICT */"));
        assert_eq!(super::column_affinity("ANY", true), super::Affinity::Blob);
        assert_eq!(super::column_affinity("ANY", false), super::Affinity::Numeric);
    }
}
