//! SQL over the extension's own tables, through the safe `Db`/`Stmt` handles. No `unsafe`.
#![forbid(unsafe_code)]

pub mod alter;
pub mod as_crr;
pub mod changes;
pub mod config;
pub mod conn;
pub mod dirty;
pub mod dropped;
pub mod merge;
pub mod meta;
pub mod probe;
pub mod savepoint;
pub mod schema;
pub mod sites;
pub mod stmt_cache;
pub mod tables;
pub mod tails;
pub mod ticks;
pub mod track;
pub mod triggers;
pub mod txn;
