//! Fuzz target: the row clock record decoder (src/core/row_clock.rs). See fuzz/checks/decoders.rs.
#![no_main]
#[path = "../checks/decoders.rs"]
mod decoders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| decoders::row_clock_decode(data));
