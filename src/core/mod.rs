//! The pure core: no SQLite types, no I/O, no clock reads (time is always an argument).
//!
//! **Architecture invariant:** nothing in `core` knows SQLite exists. Every rule that decides
//! what a replica stores (the clock, the value order, the merge rule, the formats) lives here so
//! it can be property-tested without a database.
#![forbid(unsafe_code)]

pub mod change_id;
pub mod fast_hash;
pub mod hlc;
pub mod ident;
pub mod merge;
pub mod pk_codec;
pub mod row_clock;
pub mod schema_sql;
pub mod shared_writes;
pub mod table_shape;
pub mod value;
pub mod varint;
