//! Quoting of SQL identifiers and literals: any table or column name (quotes, spaces, keywords,
//! unicode) becomes a safe token.

/// `name` as a double-quoted identifier, inner quotes doubled.
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// `text` as a single-quoted SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting() {
        assert_eq!(super::quote(r#"a "b""#), r#""a ""b""""#);
        assert_eq!(super::quote("sélect"), "\"sélect\"");
        assert_eq!(super::literal("it's"), "'it''s'");
    }
}
