//! Which cells a wide CRR's merges write through one statement for the table rather than one
//! per column (storage::merge::write_cell, recreate_row): a statement per column costs the
//! least per merged cell, but their memory grows with the square of a table's width. Decided
//! at each registry load (storage::tables) from the tables' widths and the schema's text.

use super::schema_sql::{check_constraints, column_definitions, generated_columns, mentions, through_generated, tokens};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
