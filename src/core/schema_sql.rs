//! Reading the schema's SQL text: the CREATE TABLE, CREATE INDEX and CREATE TRIGGER texts
//! SQLite keeps in sqlite_schema, for what its pragmas do not say (CHECK constraints and the
//! columns they name, generated columns' expressions, declared collations, DEFAULT clauses as
//! SQL, the options after the column list, a trigger's `UPDATE OF` event). A small tokenizer
//! (`tokens`) keeps quoted identifiers, string literals and comments apart from bare words;
//! it takes any text without panicking (proptested), and the readers are checked against
//! SQLite's own answers over random misleading texts in tests/extension.rs.
//!
//! The readers: whether a trigger fires on `UPDATE OF` columns, which columns a text mentions
//! (`shared_writes::shared_write_slots` uses both), the CHECK constraints and the columns they
//! name, generated columns with their expressions, `default_expr` (the SQL of a column's
//! default value from its DEFAULT clause's text: a name there is a string, as in SQLite),
//! `column_collations` (for the probe of a row of defaults), `is_strict` and `is_without_rowid`
//! (the options after the column list). The tokenizer keeps a string literal as a token of its
//! own: SQLite takes one for a name where its grammar wants one (`'a' TEXT COLLATE 'nocase'`).
//! The checks against SQLite compare with `pragma_table_list`, an index's collation, and which
//! CHECKs an UPDATE of a column checks, through generated columns too.

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
/// `DEFAULT name` (bare, or quoted as `"name"`, `[name]` or `` `name` ``) for the string 'name', and
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
    let text = &*without_comments(text);
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
pub(super) fn column_definitions<'a>(sql: &str, toks: &'a [(Token, usize)]) -> Vec<(&'a String, &'a [(Token, usize)])> {
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
    // (The expressions are SQL the probe runs: without the comments of the text.)
    let sql = &*without_comments(sql);
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

/// Whether `sql` may hold a comment (it holds `--` or `/*`, maybe inside quotes).
pub fn may_hold_comment(sql: &str) -> bool {
    sql.contains("--") || sql.contains("/*")
}

/// `sql` with each comment (`-- ...` to the end of its line, `/* ... */`) replaced by a space,
/// quoted text untouched: SQL the extension runs must not hold one, since SQLite 3.49's
/// `SQLITE_DBCONFIG_ENABLE_COMMENTS` lets an app refuse any statement that does ("unrecognized
/// token"), and the app's own texts that the extension builds SQL from (a DEFAULT, a CHECK,
/// a generated column's expression) may hold them. A space, not nothing: `a/**/b` is two
/// words, as SQLite reads it.
pub fn without_comments(sql: &str) -> std::borrow::Cow<'_, str> {
    if !may_hold_comment(sql) {
        return std::borrow::Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut kept) = (0, 0);
    while i < bytes.len() {
        let comment_end = match bytes[i] {
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(bytes, i, bytes[i]);
                continue;
            }
            b'[' => {
                i = bytes[i..].iter().position(|&b| b == b']').map_or(bytes.len(), |p| i + p + 1);
                continue;
            }
            // (The newline stays: it ends the comment's line.)
            b'-' if bytes.get(i + 1) == Some(&b'-') => bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p),
            b'/' if bytes.get(i + 1) == Some(&b'*') => sql[i + 2..].find("*/").map_or(bytes.len(), |p| i + 2 + p + 2),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&sql[kept..i]);
        out.push(' ');
        (i, kept) = (comment_end, comment_end);
    }
    if kept == 0 {
        return std::borrow::Cow::Borrowed(sql);
    }
    out.push_str(&sql[kept..]);
    std::borrow::Cow::Owned(out)
}

/// A token of a CREATE TABLE text, as far as `check_constraints` and `sql_words` need it.
#[derive(Debug, PartialEq)]
pub(super) enum Token {
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
pub(super) fn tokens(sql: &str) -> Vec<(Token, usize)> {
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
    // (The expressions are SQL the probe runs: without the comments of the text.)
    let sql = &*without_comments(sql);
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

/// True when the CREATE TABLE text ends with the WITHOUT ROWID option: after the column
/// list's closing parenthesis, as `is_strict` reads it. Until 2026-12-06 the words anywhere
/// counted, so a column named `without` of type `rowid` made a rowid table one without, whose
/// key need not be declared NOT NULL: `crsql_as_crr` took a nullable TEXT key, and rows keyed
/// by NULL (which a rowid table holds any number of) shared one clock row.
pub fn is_without_rowid(sql: &str) -> bool {
    table_options(sql).windows(2).any(|w| w[0].eq_ignore_ascii_case("WITHOUT") && w[1].eq_ignore_ascii_case("ROWID"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

        /// Without its comments a text reads as the same tokens: the readers see what they saw.
        #[test]
        fn a_text_without_comments_has_the_same_tokens(sql in "[\"`\\[\\]'a-z (),*/\n-]{0,16}") {
            let strip = |t: Vec<(Token, usize)>| t.into_iter().map(|(t, _)| t).collect::<Vec<_>>();
            proptest::prop_assert_eq!(strip(tokens(&without_comments(&sql))), strip(tokens(&sql)));
        }
    }

    #[test]
    fn comments_go_and_quoted_text_stays() {
        let sql = "CREATE TABLE t(a TEXT DEFAULT '--x' /* c */, \"b--\" DEFAULT (1/**/-/* x */-2), [c/*] -- d\n, `e--`) -- end";
        assert_eq!(without_comments(sql), "CREATE TABLE t(a TEXT DEFAULT '--x'  , \"b--\" DEFAULT (1 - -2), [c/*]  \n, `e--`)  ");
        assert!(matches!(without_comments("SELECT 'a--b', 1 - 2"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(without_comments("SELECT 1 /* unterminated"), "SELECT 1  ");
        // The extension's own SQL files.
        for file in [include_str!("../../sql/schema.sql"), include_str!("../../sql/clock_table.sql")] {
            let bare = without_comments(file);
            assert!(!bare.contains("--") && !bare.contains("/*"), "{bare}");
            assert_eq!(bare.matches("CREATE ").count(), file.lines().filter(|l| l.starts_with("CREATE ")).count());
        }
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
    fn without_rowid_detection() {
        assert!(is_without_rowid("CREATE TABLE t(a PRIMARY KEY) without  rowid"));
        assert!(!is_without_rowid("CREATE TABLE \"without rowid\"(a PRIMARY KEY)"));
        assert!(!is_without_rowid("CREATE TABLE t(a TEXT PRIMARY KEY, without rowid)"));
        assert!(!is_without_rowid("CREATE TABLE t(a TEXT PRIMARY KEY, b CHECK (b != 'x') /* without rowid */)"));
        assert!(is_without_rowid("CREATE TABLE t(a TEXT PRIMARY KEY, without rowid) STRICT, WITHOUT /* ) */ ROWID"));
        assert!(is_strict("CREATE TABLE t(a INT PRIMARY KEY) WITHOUT ROWID, STRICT"));
        assert!(!is_strict("CREATE TABLE t(strict INT PRIMARY KEY, \"x)\" TEXT)"));
        assert!(is_strict("CREATE TABLE t(a ANY PRIMARY KEY) STRICT /* ) */ "));
        assert!(is_strict("CREATE TABLE t(a ANY PRIMARY KEY) STRICT -- )"));
        assert!(!is_strict("CREATE TABLE t(a ANY PRIMARY KEY) /* STRICT */"));
    }
}
