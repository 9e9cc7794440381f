//! The only place with `unsafe`: the SQLite C API table, entry points, SQL functions, the
//! virtual tables and the panic guard. Each piece is a thin translation to and from the safe
//! layers below; no rule of the product is decided here.

pub mod api;
pub mod changes_vtab;
pub mod db;
pub mod entry;
pub mod functions;
pub mod guard;
pub mod sys;
pub mod txn_vtab;
pub mod unpack_vtab;
pub mod values;
