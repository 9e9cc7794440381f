//! Replays the fuzz corpus of the pure decoders (pk blobs, row clock records) through the
//! checks the libFuzzer targets run. Links only the crate (no rusqlite).

#[path = "../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../fuzz/checks/decoders.rs"]
mod decoders;

#[test]
fn pk_decode_corpus() {
    corpus::replay("pk_decode", decoders::pk_decode);
}

#[test]
fn row_clock_decode_corpus() {
    corpus::replay("row_clock_decode", decoders::row_clock_decode);
}

/// The property the pk check relies on: a non-minimal encoding (1 written in 2 bytes) is
/// refused, so only canonical blobs decode and re-encoding must reproduce them.
#[test]
fn non_canonical_pk_blobs_are_refused() {
    decoders::pk_decode(&[0x01, 0x09, 0x01]);
    assert!(crr::core::pk_codec::decode(&[0x01, 0x11, 0x00, 0x01]).is_err());
    decoders::pk_decode(&[0x01, 0x11, 0x00, 0x01]);
}
