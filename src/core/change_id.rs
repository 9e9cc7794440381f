//! The rowid of a crsql_changes row: one integer per change, the same in every scan of the
//! feed. SQLite reads it to drop duplicates when it answers a WHERE clause of ORed terms with
//! one scan per term (the "MULTI-INDEX OR" plan): a rowid that named a scan position instead
//! gave one change two rowids (it came out twice) and two changes one (the second was lost).
//!
//! A change is named by its `(db_version, seq)`, unique in one database (a transaction's
//! changes take distinct seqs). Both go into 64 bits, exactly, in two ranges:
//! - `db_version < 2^31`, `seq < 2^32`: `db_version << 32 | seq`, from 0 up;
//! - `2^31 <= db_version < 2^31 + 2^38`, `seq < 2^24`: `-1 - ((db_version - 2^31) << 24 | seq)`,
//!   from -1 down.
//!
//! Outside them (over two billion transactions and then one of more than 16 million changes)
//! there is no rowid, and the caller reports an error rather than a rowid two changes share.

const LOW_DBV_END: i64 = 1 << 31;
const LOW_SEQ_BITS: u32 = 32;
const HIGH_DBV_SPAN: i64 = 1 << 38;
const HIGH_SEQ_BITS: u32 = 24;

/// The rowid of the change `(db_version, seq)`, if it has one.
pub fn rowid(db_version: i64, seq: i64) -> Option<i64> {
    if db_version < 0 || seq < 0 {
        return None;
    }
    if db_version < LOW_DBV_END && seq < 1 << LOW_SEQ_BITS {
        return Some(db_version << LOW_SEQ_BITS | seq);
    }
    let high = db_version - LOW_DBV_END;
    if (0..HIGH_DBV_SPAN).contains(&high) && seq < 1 << HIGH_SEQ_BITS {
        return Some(-1 - (high << HIGH_SEQ_BITS | seq));
    }
    None
}

/// The change a rowid names (the inverse of `rowid`, for tests and tools).
pub fn change(rowid: i64) -> (i64, i64) {
    if rowid >= 0 {
        (rowid >> LOW_SEQ_BITS, rowid & ((1 << LOW_SEQ_BITS) - 1))
    } else {
        let v = -1 - rowid;
        ((v >> HIGH_SEQ_BITS) + LOW_DBV_END, v & ((1 << HIGH_SEQ_BITS) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pairs around every edge of both ranges, and ordinary ones.
    fn pair() -> impl Strategy<Value = (i64, i64)> {
        let dbv = prop_oneof![
            0i64..1000,
            (LOW_DBV_END - 3)..(LOW_DBV_END + 3),
            (LOW_DBV_END + HIGH_DBV_SPAN - 3)..(LOW_DBV_END + HIGH_DBV_SPAN + 3),
            any::<i64>(),
        ];
        let seq = prop_oneof![
            0i64..1000,
            ((1i64 << HIGH_SEQ_BITS) - 3)..((1i64 << HIGH_SEQ_BITS) + 3),
            ((1i64 << LOW_SEQ_BITS) - 3)..((1i64 << LOW_SEQ_BITS) + 3),
            any::<i64>(),
        ];
        (dbv, seq)
    }

    proptest! {
        /// Two different changes never share a rowid, and a rowid gives its change back.
        #[test]
        fn rowids_name_one_change_each(a in pair(), b in pair()) {
            if let Some(r) = rowid(a.0, a.1) {
                prop_assert_eq!(change(r), a);
                if let Some(s) = rowid(b.0, b.1) {
                    prop_assert_eq!(r == s, a == b);
                }
            }
        }
    }

    #[test]
    fn the_ranges_and_their_edges() {
        assert_eq!(rowid(0, 0), Some(0));
        assert_eq!(rowid(1, 0), Some(1 << 32));
        assert_eq!(rowid(1, 5), Some((1 << 32) + 5));
        assert_eq!(rowid(LOW_DBV_END - 1, (1 << 32) - 1), Some(i64::MAX));
        assert_eq!(rowid(LOW_DBV_END, 0), Some(-1));
        assert_eq!(rowid(LOW_DBV_END, 1 << 24), None);
        assert_eq!(rowid(LOW_DBV_END + HIGH_DBV_SPAN - 1, (1 << 24) - 1), Some(-1 - ((HIGH_DBV_SPAN << 24) - 1)));
        assert_eq!(rowid(LOW_DBV_END + HIGH_DBV_SPAN, 0), None);
        assert_eq!(rowid(5, 1 << 32), None);
        assert_eq!(rowid(-1, 0), None);
        assert_eq!(rowid(1, -1), None);
    }
}
