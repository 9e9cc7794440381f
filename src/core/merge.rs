//! THE merge rule (SPEC section 7): causal length for a row's life, last-writer-wins per cell.
//! Nothing else lives here. The storage layer applies these decisions to real tables; the model
//! in the tests applies them to plain maps and proves the laws (commutative, associative,
//! idempotent) that make replicas converge.

use super::value::{cmp_values, ValueRef};
use std::cmp::Ordering;

/// A 16-byte site id.
pub type SiteId = [u8; 16];

/// What an incoming change does to a row's life, given its causal length and ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStep {
    /// `incoming < local`: an older life; ignored.
    Stale,
    /// `incoming > local`, even: the row is deleted at the incoming causal length.
    Delete,
    /// `incoming > local`, odd: the row is (re)created with defaults; earlier cell clocks go.
    Recreate,
    /// Same life: cells compete by version, value, site.
    SameLife,
}

/// The greatest col_version or causal length a change may carry. No replica reaches it (an
/// HLC version reaches 2^62 in the year 4199; a causal length counts a row's deletes and
/// re-inserts), and below it local writes, which add one to what they find (a lamport
/// version, a causal length), cannot overflow; an HLC ticks up to it and no further
/// (`hlc::tick`), so that peers merge what it writes: a change with
/// col_version i64::MAX left an HLC replica unable to write and made a lamport replica's next
/// write of the cell wrap to 0, below what peers held.
pub const VERSION_MAX: i64 = 1 << 62;

pub fn row_step(incoming_cl: i64, local_cl: i64) -> RowStep {
    match incoming_cl.cmp(&local_cl) {
        Ordering::Less => RowStep::Stale,
        Ordering::Equal => RowStep::SameLife,
        Ordering::Greater if incoming_cl % 2 == 0 => RowStep::Delete,
        Ordering::Greater => RowStep::Recreate,
    }
}

pub fn is_alive(cl: i64) -> bool {
    cl % 2 == 1
}

/// A competing write of one cell.
#[derive(Debug, Clone, Copy)]
pub struct CellWrite<'a> {
    pub col_version: i64,
    pub value: ValueRef<'a>,
    pub site: &'a SiteId,
}

/// Whether `incoming` beats the local write: greater `(col_version, value, site)`, values in
/// ORDER BY order, sites bytewise. Equal on all three is the same write: it does not win.
pub fn cell_wins(incoming: CellWrite<'_>, local: Option<CellWrite<'_>>) -> bool {
    let Some(local) = local else { return true };
    incoming
        .col_version
        .cmp(&local.col_version)
        .then_with(|| cmp_values(&incoming.value, &local.value))
        .then_with(|| incoming.site.cmp(local.site))
        == Ordering::Greater
}

/// The sentinel of a life records the greatest site among the changes seen at that causal
/// length (`sentinel_takes_site` says which), so replicas that saw the same changes agree on
/// it. True when `incoming` raises it.
pub fn sentinel_site_wins(incoming: &SiteId, local: &SiteId) -> bool {
    incoming > local
}

/// Whether a merged change of the row's current life may raise its sentinel's site
/// (`sentinel_site_wins`): every change while the sentinel is visible, and a sentinel change
/// even while it is hidden (a life with cells), because an alter that drops the row's last
/// cells shows it (and sends it again, storage::alter), and a replica that had skipped a
/// peer's sentinel then would keep a smaller site for good.
pub fn sentinel_takes_site(change_is_sentinel: bool, cl: i64, has_cells: bool) -> bool {
    change_is_sentinel || sentinel_visible(cl, has_cells)
}

/// Whether the sentinel appears in crsql_changes: when it carries information: the row was
/// deleted or resurrected, or it has no cell entries (`has_cells` false: a table without
/// non-key columns, or a row whose columns an alter dropped), which would leave it out of the
/// feed altogether. (Until 2026-12-05 the last case was "the table has no tracked columns", so the
/// rows of a table whose columns were all dropped and one added, at its default, were in no
/// feed: a new replica never got them.)
pub fn sentinel_visible(cl: i64, has_cells: bool) -> bool {
    cl != 1 || !has_cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::Value;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A change as crsql_changes carries it, for one row of a table with `SLOTS` columns.
    #[derive(Debug, Clone)]
    struct Change {
        slot: Option<usize>,
        value: Value,
        col_version: i64,
        site: SiteId,
        cl: i64,
    }

    /// One row as a replica holds it: the model of what storage keeps.
    #[derive(Debug, Clone, PartialEq, Default)]
    struct Row {
        cl: i64,
        sentinel_site: Option<SiteId>,
        cells: Cells,
    }

    /// A row's cells by slot: (col_version, value, site).
    type Cells = BTreeMap<usize, (i64, Value, SiteId)>;

    const SLOTS: usize = 2;

    fn apply(row: &mut Row, c: &Change) {
        match row_step(c.cl, row.cl) {
            RowStep::Stale => return,
            RowStep::Delete => {
                *row = Row { cl: c.cl, sentinel_site: Some(c.site), cells: BTreeMap::new() };
                return;
            }
            RowStep::Recreate => {
                *row = Row { cl: c.cl, sentinel_site: Some(c.site), cells: BTreeMap::new() };
            }
            RowStep::SameLife => {
                if sentinel_takes_site(c.slot.is_none(), row.cl, !row.cells.is_empty()) {
                    let cur = row.sentinel_site.unwrap_or([0; 16]);
                    if sentinel_site_wins(&c.site, &cur) {
                        row.sentinel_site = Some(c.site);
                    }
                }
            }
        }
        if let (Some(slot), true) = (c.slot, is_alive(row.cl)) {
            let local = row.cells.get(&slot).map(|(v, val, s)| CellWrite { col_version: *v, value: val.as_ref(), site: s });
            if cell_wins(CellWrite { col_version: c.col_version, value: c.value.as_ref(), site: &c.site }, local) {
                row.cells.insert(slot, (c.col_version, c.value.clone(), c.site));
            }
        }
    }

    /// The observable state: cl, visible sentinel site, cells.
    fn observable(row: &Row) -> (i64, Option<SiteId>, Cells) {
        let s = if sentinel_visible(row.cl, !row.cells.is_empty()) && row.cl > 0 { row.sentinel_site } else { None };
        (row.cl, s, row.cells.clone())
    }

    fn change() -> impl Strategy<Value = Change> {
        (
            proptest::option::of(0..SLOTS),
            prop_oneof![Just(Value::Null), (0i64..3).prop_map(Value::Integer), "[ab]".prop_map(Value::Text)],
            0i64..4,
            (0u8..3).prop_map(|b| [b; 16]),
            1i64..6,
        )
            .prop_map(|(slot, value, col_version, site, cl)| Change { slot, value, col_version, site, cl })
    }

    fn merge_all(changes: &[Change]) -> Row {
        let mut row = Row::default();
        for c in changes {
            apply(&mut row, c);
        }
        row
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn commutative_under_any_order(changes in proptest::collection::vec(change(), 0..12), seed in any::<u64>()) {
            let mut shuffled = changes.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(observable(&merge_all(&changes)), observable(&merge_all(&shuffled)));
        }

        #[test]
        fn idempotent(changes in proptest::collection::vec(change(), 0..12)) {
            let once = merge_all(&changes);
            let mut twice = once.clone();
            for c in &changes { apply(&mut twice, c); }
            prop_assert_eq!(observable(&once), observable(&twice));
        }

        #[test]
        fn associative_batches(a in proptest::collection::vec(change(), 0..6), b in proptest::collection::vec(change(), 0..6), c in proptest::collection::vec(change(), 0..6)) {
            // (a then b) then c  ==  a then (b then c): merging b and c on one replica first and
            // shipping the survivors gives the same row as merging them one by one.
            let left = merge_all(&[a.clone(), b.clone(), c.clone()].concat());
            let bc = merge_all(&[b.clone(), c.clone()].concat());
            let mut shipped: Vec<Change> = bc.cells.iter().map(|(slot, (v, val, s))| Change {
                slot: Some(*slot), value: val.clone(), col_version: *v, site: *s, cl: bc.cl,
            }).collect();
            if let Some(site) = bc.sentinel_site {
                shipped.insert(0, Change { slot: None, value: Value::Null, col_version: bc.cl, site, cl: bc.cl });
            }
            let mut right = merge_all(&a);
            for ch in &shipped { apply(&mut right, ch); }
            // The cells and life agree; the sentinel site too when it is visible.
            prop_assert_eq!(observable(&left).0, observable(&right).0);
            prop_assert_eq!(observable(&left).2, observable(&right).2);
        }

        #[test]
        fn winner_is_one_of_the_inputs(changes in proptest::collection::vec(change(), 1..12)) {
            let row = merge_all(&changes);
            for (slot, (v, val, s)) in &row.cells {
                prop_assert!(changes.iter().any(|c| c.slot == Some(*slot) && c.col_version == *v && &c.value == val && &c.site == s));
            }
        }
    }

    #[test]
    fn tie_breaks() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let (one, two) = (ValueRef::Integer(1), ValueRef::Integer(2));
        let w = |v, value, site| CellWrite { col_version: v, value, site };
        assert!(cell_wins(w(2, one, &a), Some(w(1, two, &b))));
        assert!(cell_wins(w(1, two, &a), Some(w(1, one, &b))));
        assert!(cell_wins(w(1, one, &b), Some(w(1, one, &a))));
        assert!(!cell_wins(w(1, one, &a), Some(w(1, one, &a))));
        assert_eq!(row_step(3, 2), RowStep::Recreate);
        assert_eq!(row_step(4, 3), RowStep::Delete);
        assert_eq!(row_step(1, 3), RowStep::Stale);
    }
}
