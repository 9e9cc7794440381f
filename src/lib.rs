//! sqlite-crr: a SQLite extension that turns ordinary tables into conflict-free replicated
//! relations. See ARCHITECTURE.md for the code map.
//!
//! Layers, dependencies pointing one way: `core` (pure rules) <- `storage` (SQL over the
//! extension's tables, safe) <- `ffi` (the only `unsafe`: C API, entry points, vtabs).

pub mod core;
pub mod error;
pub mod ffi;
pub mod storage;

pub use ffi::entry::{register_auto_extension, sqlite3_crr_init, sqlite3_crsqlite_init};
