//! Fuzz target: the primary-key blob decoder (SPEC 6). See fuzz/checks/decoders.rs.
#![no_main]
#[path = "../checks/decoders.rs"]
mod decoders;

libfuzzer_sys::fuzz_target!(|data: &[u8]| decoders::pk_decode(data));
