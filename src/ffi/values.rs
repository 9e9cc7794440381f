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
    borrow(v, false).to_value()
}

/// Reads an argument in place (see `ValueRef`).
///
/// `raw_text`: the connection's text is UTF-8 (`Conn::utf8`), so a TEXT value's bytes are
/// read as they are (`sqlite3_value_blob`, which leaves the value TEXT) instead of through
/// `sqlite3_value_text`, which must give C a NUL-terminated string and so copies every value
/// bound with a length (what drivers bind) into a new allocation to terminate it.
///
/// # Safety
/// `v` must be a valid sqlite3_value for `'a`, and no other accessor may be used on it during
/// `'a` (a conversion could free the bytes). With `raw_text`, the database's text encoding
/// must be UTF-8: SQLite keeps the values a statement computes or binds in that encoding.
unsafe fn borrow<'a>(v: *mut api::sqlite3_value, raw_text: bool) -> ValueRef<'a> {
    match sqlite!(value_type(v)) {
        api::SQLITE_INTEGER => ValueRef::Integer(sqlite!(value_int64(v))),
        api::SQLITE_FLOAT => ValueRef::Real(sqlite!(value_double(v))),
        api::SQLITE_TEXT => {
            let p = if raw_text { sqlite!(value_blob(v)) as *const u8 } else { sqlite!(value_text(v)) };
            ValueRef::Text(bytes(p, sqlite!(value_bytes(v))))
        }
        api::SQLITE_BLOB => {
            let p = sqlite!(value_blob(v)) as *const u8;
            ValueRef::Blob(bytes(p, sqlite!(value_bytes(v))))
        }
        _ => ValueRef::Null,
    }
}

/// # Safety
/// `p` must be null or point to `n` bytes that stay valid for `'a`.
unsafe fn bytes<'a>(p: *const u8, n: c_int) -> &'a [u8] {
    if p.is_null() || n <= 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, n as usize)
    }
}

/// The arguments of one call, read in place (no copies): what the tracking triggers' functions
/// take, since they run for every written row.
pub struct Args<'a> {
    argv: &'a [*mut api::sqlite3_value],
    /// See `borrow`: set only by callers that know the connection's text is UTF-8.
    raw_text: bool,
}

impl<'a> Args<'a> {
    /// # Safety
    /// `argv` must point to `argc` values valid for `'a` (the duration of the call).
    pub unsafe fn new(argc: c_int, argv: *mut *mut api::sqlite3_value) -> Args<'a> {
        let argv = if argv.is_null() || argc <= 0 { &[][..] } else { std::slice::from_raw_parts(argv, argc as usize) };
        Args { argv, raw_text: false }
    }

    /// Reads TEXT arguments as they are, without a terminated copy (see `borrow`): only for
    /// a connection whose text is UTF-8 (`Conn::utf8`).
    pub fn raw_utf8_text(self, utf8: bool) -> Args<'a> {
        Args { raw_text: utf8, ..self }
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
        self.argv.get(i).map_or(ValueRef::Null, |v| unsafe { borrow(*v, self.raw_text) })
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
            Ok(bytes(sqlite!(value_blob(v)) as *const u8, sqlite!(value_bytes(v))))
        }
    }

    /// The argument as text bytes (any type, converted as SQL would; NULL is empty).
    pub fn text_bytes(&self, i: usize, what: &str) -> Result<&'a [u8], Error> {
        let v = self.raw(i, what)?;
        // SAFETY: as `blob`.
        unsafe {
            Ok(bytes(sqlite!(value_text(v)), sqlite!(value_bytes(v))))
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

/// Sets an INTEGER result.
///
/// # Safety
/// `ctx` must be the live context of the current call.
#[inline]
pub unsafe fn result_i64(ctx: *mut api::sqlite3_context, v: i64) {
    sqlite!(result_int64(ctx, v))
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
        ValueRef::Text(s) => result_text_bytes(ctx, s),
        ValueRef::Blob(b) => result_blob(ctx, b),
    }
}

/// Sets a TEXT result (SQLite copies it).
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result_text(ctx: *mut api::sqlite3_context, s: &str) {
    result_text_bytes(ctx, s.as_bytes())
}

/// Sets a TEXT result from its bytes as they are (UTF-8 or not; SQLite copies them).
///
/// # Safety
/// `ctx` must be the live context of the current call.
pub unsafe fn result_text_bytes(ctx: *mut api::sqlite3_context, s: &[u8]) {
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
