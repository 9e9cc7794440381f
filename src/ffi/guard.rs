//! No panic crosses into C: every callback runs inside `guard`, which turns a panic into an
//! error result.

use crate::error::{Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::new(format!("{what}: internal error (panic: {msg}); please report it")))
        }
    }
}
