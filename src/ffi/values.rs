//! Converting between `sqlite3_value` / `sqlite3_context` and `core::value::Value`.

use super::api::{self, sqlite};
use crate::core::value::{Value, ValueRef};
use crate::error::Error;
use std::os::raw::c_int;

/// Copies an argument into a `Value`.
///
/// # Safety
/// `v` must be a valid protected or unprotected sqlite3_value for the duration of the call.
pub unsafe fn from_raw(v: *mut api::sqlite3_value) -> Value {
    borrow(v).to_value()
}

/// Reads an argument in place (see `ValueRef`).
///
/// # Safety
/// `v` must be a valid sqlite3_value for `'a`, and no other accessor may be used on it during
/// `'a` (a conversion could free the bytes).
unsafe fn borrow<'a>(v: *mut api::sqlite3_value) -> ValueRef<'a> {
    match sqlite!(value_type(v)) {
        api::SQLITE_INTEGER => ValueRef::Integer(sqlite!(value_int64(v))),
        api::SQLITE_FLOAT => ValueRef::Real(sqlite!(value_double(v))),
        api::SQLITE_TEXT => {
            let p = sqlite!(value_text(v));
            let n = sqlite!(value_bytes(v));
            let bytes = if p.is_null() || n <= 0 { &[][..] } else { std::slice::from_raw_parts(p, n as usize) };
            ValueRef::Text(String::from_utf8_lossy(bytes))
        }
        api::SQLITE_BLOB => {
            let p = sqlite!(value_blob(v)) as *const u8;
            let n = sqlite!(value_bytes(v));
            ValueRef::Blob(if p.is_null() || n <= 0 { &[] } else { std::slice::from_raw_parts(p, n as usize) })
        }
        _ => ValueRef::Null,
    }
}

/// The arguments of one call, read in place (no copies): what the tracking triggers' functions
/// take, since they run for every written row.
pub struct Args<'a> {
    argv: &'a [*mut api::sqlite3_value],
}

impl<'a> Args<'a> {
    /// # Safety
    /// `argv` must point to `argc` values valid for `'a` (the duration of the call).
    pub unsafe fn new(argc: c_int, argv: *mut *mut api::sqlite3_value) -> Args<'a> {
        let argv = if argv.is_null() || argc <= 0 { &[][..] } else { std::slice::from_raw_parts(argv, argc as usize) };
        Args { argv }
    }

    pub fn len(&self) -> usize {
        self.argv.len()
    }

    pub fn is_empty(&self) -> bool {
        self.argv.is_empty()
    }

    /// Argument `i` read in place, or NULL past the end (see `borrow`; each argument must be
    /// read through one accessor only).
    pub fn value_ref(&self, i: usize) -> ValueRef<'a> {
        // SAFETY: each of argv's values lives for 'a (Args::new).
        self.argv.get(i).map_or(ValueRef::Null, |v| unsafe { borrow(*v) })
    }

    fn raw(&self, i: usize, what: &str) -> Result<*mut api::sqlite3_value, Error> {
        self.argv.get(i).copied().ok_or_else(|| Error::new(format!("missing {what}")))
    }

    fn type_error(&self, v: *mut api::sqlite3_value, what: &str, want: &str) -> Error {
        // SAFETY: v is one of this call's arguments.
        let got = unsafe { from_raw(v) }.type_name();
        Error::new(format!("{what} must be {want}, got {got}"))
    }

    pub fn int(&self, i: usize, what: &str) -> Result<i64, Error> {
        let v = self.raw(i, what)?;
        // SAFETY: v is one of this call's arguments.
        unsafe {
            if sqlite!(value_type(v)) != api::SQLITE_INTEGER {
                return Err(self.type_error(v, what, "an integer"));
            }
            Ok(sqlite!(value_int64(v)))
        }
    }

    pub fn blob(&self, i: usize, what: &str) -> Result<&'a [u8], Error> {
        let v = self.raw(i, what)?;
        // SAFETY: v is one of this call's arguments; the bytes stay valid until the call returns
        // ('a), as no other accessor is used on v meanwhile.
        unsafe {
            if sqlite!(value_type(v)) != api::SQLITE_BLOB {
                return Err(self.type_error(v, what, "a blob"));
            }
            let p = sqlite!(value_blob(v)) as *const u8;
            let n = sqlite!(value_bytes(v));
            Ok(if p.is_null() || n <= 0 { &[] } else { std::slice::from_raw_parts(p, n as usize) })
        }
    }

    /// The argument as text bytes (any type, converted as SQL would; NULL is empty).
    pub fn text_bytes(&self, i: usize, what: &str) -> Result<&'a [u8], Error> {
        let v = self.raw(i, what)?;
        // SAFETY: as `blob`.
        unsafe {
            let p = sqlite!(value_text(v));
            let n = sqlite!(value_bytes(v));
            Ok(if p.is_null() || n <= 0 { &[] } else { std::slice::from_raw_parts(p, n as usize) })
        }
    }
}

/// # Safety
/// `argv` must point to `argc` valid values.
pub unsafe fn args(argc: c_int, argv: *mut *mut api::sqlite3_value) -> Vec<Value> {
    if argv.is_null() || argc <= 0 {
        return Vec::new();
    }
    std::slice::from_raw_parts(argv, argc as usize).iter().map(|v| from_raw(*v)).collect()
}

/// Sets a function or column result.
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result(ctx: *mut api::sqlite3_context, v: &Value) {
    result_ref(ctx, &v.as_ref())
}

/// Sets a result from a borrowed value (SQLite copies text and blobs).
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result_ref(ctx: *mut api::sqlite3_context, v: &ValueRef) {
    match v {
        ValueRef::Null => sqlite!(result_null(ctx)),
        ValueRef::Integer(i) => sqlite!(result_int64(ctx, *i)),
        ValueRef::Real(f) => sqlite!(result_double(ctx, *f)),
        ValueRef::Text(s) => result_text(ctx, s),
        ValueRef::Blob(b) => result_blob(ctx, b),
    }
}

/// Sets a TEXT result (SQLite copies it).
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result_text(ctx: *mut api::sqlite3_context, s: &str) {
    sqlite!(result_text64(ctx, s.as_ptr() as *const _, s.len() as u64, api::transient(), api::SQLITE_UTF8 as u8))
}

/// Sets a BLOB result (SQLite copies it).
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result_blob(ctx: *mut api::sqlite3_context, b: &[u8]) {
    sqlite!(result_blob64(ctx, b.as_ptr() as *const _, b.len() as u64, api::transient()))
}

/// Reports an error with its message and code.
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result_error(ctx: *mut api::sqlite3_context, e: &Error) {
    sqlite!(result_error(ctx, e.message.as_ptr() as *const _, e.message.len() as c_int));
    if e.code != api::SQLITE_ERROR {
        sqlite!(result_error_code(ctx, e.code));
    }
}
