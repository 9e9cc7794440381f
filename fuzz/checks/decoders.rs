//! Fuzz checks for the pure decoders (no SQLite): pk blobs and row clock records.
//!
//! Shared by the libFuzzer targets in `fuzz/fuzz_targets/` (coverage-guided, `make fuzz`) and by
//! `tests/fuzz_decoders.rs`, which replays every committed corpus file and every kept crasher in
//! `make test`. Each check panics when a property is broken; returning means the input passed.
#![allow(dead_code)] // each target uses one check; the replay test uses all

use crr::core::pk_codec;
use crr::core::row_clock::{Entry, RowClock};

/// pk blobs: decoding never panics, and a blob that decodes is canonical, so encoding the
/// decoded values gives back exactly the input bytes; decoding into a vector that held other
/// values (as merges do) gives the same result.
pub fn pk_decode(data: &[u8]) {
    let decoded = pk_codec::decode(data);
    let mut reused = vec![crr::core::value::Value::Text("stale".into()), crr::core::value::Value::Integer(7)];
    let again = pk_codec::decode_into(data, &mut reused).map(|()| reused);
    assert_eq!(again.is_ok(), decoded.is_ok(), "a reused vector changed the result");
    if let (Ok(a), Ok(b)) = (&again, &decoded) {
        // Compared encoded: a NaN key is not equal to itself as a value.
        assert_eq!(pk_codec::encode(a), pk_codec::encode(b), "a reused vector changed the values");
    }
    if let Ok(values) = decoded {
        let again = pk_codec::encode(&values).expect("decoded values must encode");
        assert_eq!(again, data, "a decodable pk blob is not canonical");
    }
}

/// A fixed tick lookup for the decoder: even db_versions have a tick, odd ones have none.
fn tick_of(db_version: i64) -> Option<i64> {
    (db_version % 2 == 0).then(|| db_version.wrapping_mul(7_919) & i64::MAX)
}

/// Row clock records (our own storage, read back from the clock tables; a corrupted file
/// must give an error, not a crash). Byte 0 is the causal length the record is decoded with.
/// A record that decodes round-trips, encoded with and without tick references; decoding
/// into a vector that held another record's cells (as the triggers do) changes nothing.
pub fn row_clock_decode(data: &[u8]) {
    let Some((&cl, record)) = data.split_first() else { return };
    let cl = i64::from(cl);
    let decoded = RowClock::decode_with(cl, record, &mut tick_of);
    let stale = vec![Some(Entry { col_version: 9, db_version: 9, seq: 9, site: 9 }), None, Some(Entry { col_version: 1, db_version: 2, seq: 3, site: 4 })];
    assert_eq!(RowClock::decode_reusing(cl, record, &mut tick_of, stale), decoded, "a reused vector changed the result");
    if let Ok(rc) = decoded {
        let n = rc.cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        for bytes in [rc.encode(), rc.encode_with(&mut tick_of)] {
            let back = RowClock::decode_with(cl, &bytes, &mut tick_of).expect("an encoded record must decode");
            assert_eq!(back.sentinel, rc.sentinel);
            assert_eq!(back.cells[..], rc.cells[..n], "record did not round-trip");
        }
    }
}

