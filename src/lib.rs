//! sqlite-crr: a SQLite extension that turns ordinary tables into conflict-free replicated
//! relations. See ARCHITECTURE.md for the code map.
pub mod core;
