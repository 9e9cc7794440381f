//! Safe handles over a connection and its prepared statements. Everything above `ffi` talks to
//! SQLite through `Db` and `Stmt` and contains no `unsafe`.

use super::api::{self, sqlite, SQLITE_DONE, SQLITE_OK, SQLITE_ROW};
use crate::core::value::{Value, ValueRef};
use crate::error::{Error, Result};
use std::ffi::CStr;
use std::os::raw::c_int;

/// Whether SQLite refused an expression deeper than the connection's SQLITE_LIMIT_EXPR_DEPTH
/// (1,000 by default). Apps that take SQL from elsewhere lower it (SQLite's advice for
/// untrusted SQL is 10; Diesel's `set_recommended_security_limits` sets that), and the
/// extension's own queries are deeper than that (the highest db_version's reads 14): they are
/// not the app's SQL, so `Db::prepare` prepares them with the limit raised, as SQLite runs its
/// own nested SQL without the app's limits. (Until 2026-12-07 every local write failed under
/// such a limit.) A cached statement that SQLite prepares again itself, at its first step
/// after a schema change, would meet the app's limit: every cached statement of ours is
/// finalized when the schema cookie moves (the registry's reload, `tables::all_with_cookie`,
/// which the paths that use them ask first), before it is stepped again. Not so the schema
/// the extension makes (`Db::exec`: triggers, tables): SQLite reads it again under each
/// connection's limits, so it must fit them.
pub fn too_deep(e: &Error) -> bool {
    e.code == crate::error::SQLITE_ERROR && e.message.starts_with("Expression tree is too large")
}

/// A connection handle. Valid for as long as the connection is open, which outlives every
/// object of the extension that holds one (they are freed by the connection's destructors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Db(*mut api::sqlite3);

impl Db {
    /// # Safety
    /// `raw` must be an open connection that outlives the returned handle's use.
    pub unsafe fn from_raw(raw: *mut api::sqlite3) -> Db {
        Db(raw)
    }

    pub fn raw(self) -> *mut api::sqlite3 {
        self.0
    }

    /// The connection's latest error message.
    pub fn errmsg(self) -> String {
        // SAFETY: errmsg returns a NUL-terminated string owned by the connection.
        unsafe {
            let p = sqlite!(errmsg(self.0));
            if p.is_null() {
                return "unknown error".into();
            }
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    fn error(self, rc: c_int) -> Error {
        let e = Error::with_code(rc & 0xFF, self.errmsg());
        if e.code != api::SQLITE_AUTH {
            return e;
        }
        // (An app that runs SQL from elsewhere may refuse what it does not expect: say whose
        // statement it refused, which SQLite's "not authorized" does not.)
        e.context(
            "the app's authorizer (sqlite3_set_authorizer) refused a statement of sqlite-crr's, which reads and writes its \
             crr_ tables and the CRRs, and reads PRAGMAs (schema_version, table_info and others)",
        )
    }

    /// `prepare`, or None where SQLite answers SQLITE_ERROR: the SQL names a function, table or
    /// column the connection does not have. Other errors (no memory, an interrupt) are no
    /// answer, and are returned.
    pub fn prepare_if_resolves(self, sql: &str) -> Result<Option<Stmt>> {
        match self.prepare(sql, false) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.code == crate::error::SQLITE_ERROR => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Prepares one statement. `persistent` hints SQLite that it will be cached. A statement
    /// SQLite finds deeper than the connection's SQLITE_LIMIT_EXPR_DEPTH is prepared again
    /// with the limit raised (`too_deep`).
    pub fn prepare(self, sql: &str, persistent: bool) -> Result<Stmt> {
        let raw = match self.prepare_within_limits(sql, persistent) {
            Err(e) if too_deep(&e) => self.with_depth_raised(|| self.prepare_within_limits(sql, persistent)),
            prepared => prepared,
        }
        .map_err(|e| e.context(&format!("preparing `{}`", abbreviate(sql))))?;
        if raw.is_null() {
            return Err(Error::new(format!("no statement in `{}`", abbreviate(sql))));
        }
        Ok(Stmt { raw, db: self })
    }

    /// Runs `f` with this connection's SQLITE_LIMIT_EXPR_DEPTH at the most SQLite was built to
    /// allow, then as it was (see `too_deep`).
    fn with_depth_raised<T>(self, f: impl FnOnce() -> T) -> T {
        // SAFETY: plain setting of a connection's limit (SQLite truncates it to the limit it
        // was built with); it is set back below.
        let was = unsafe { sqlite!(limit(self.0, api::SQLITE_LIMIT_EXPR_DEPTH, c_int::MAX)) };
        let out = f();
        // SAFETY: as above.
        unsafe { sqlite!(limit(self.0, api::SQLITE_LIMIT_EXPR_DEPTH, was)) };
        out
    }

    /// The statement SQLite prepared (null for text without one), under the connection's
    /// limits as they are.
    fn prepare_within_limits(self, sql: &str, persistent: bool) -> Result<*mut api::sqlite3_stmt> {
        let mut raw: *mut api::sqlite3_stmt = std::ptr::null_mut();
        let flags = if persistent { api::SQLITE_PREPARE_PERSISTENT } else { 0 };
        // SAFETY: sql is passed with its exact length; raw receives a statement or null.
        let rc = unsafe {
            sqlite!(prepare_v3(self.0, sql.as_ptr() as *const _, sql.len() as c_int, flags, &mut raw, std::ptr::null_mut()))
        };
        if rc != SQLITE_OK {
            return Err(self.error(rc));
        }
        Ok(raw)
    }

    /// Runs one or more statements separated by `;`, discarding rows.
    pub fn exec(self, sql: &str) -> Result<()> {
        let mut rest = sql;
        while !rest.trim().is_empty() {
            let mut raw: *mut api::sqlite3_stmt = std::ptr::null_mut();
            let mut tail: *const std::os::raw::c_char = std::ptr::null();
            // SAFETY: rest is a valid UTF-8 slice; tail points into it on return.
            let rc = unsafe {
                sqlite!(prepare_v2(self.0, rest.as_ptr() as *const _, rest.len() as c_int, &mut raw, &mut tail))
            };
            if rc != SQLITE_OK {
                return Err(self.error(rc));
            }
            let consumed = if tail.is_null() { rest.len() } else { tail as usize - rest.as_ptr() as usize };
            rest = &rest[consumed..];
            if raw.is_null() {
                continue; // only whitespace or a comment
            }
            let mut stmt = Stmt { raw, db: self };
            while stmt.step()? {}
        }
        Ok(())
    }

    pub fn in_autocommit(self) -> bool {
        // SAFETY: plain query of connection state.
        unsafe { sqlite!(get_autocommit(self.0)) != 0 }
    }

    /// Whether this connection holds a write transaction on the main database (one whose
    /// uncommitted changes, schema cookie included, a rollback can still undo).
    pub fn in_write_txn(self) -> bool {
        // SAFETY: "main" is a NUL-terminated literal; txn_state exists from 3.34 (we need 3.35).
        unsafe { sqlite!(txn_state(self.0, c"main".as_ptr())) == api::SQLITE_TXN_WRITE }
    }

    /// Whether this connection holds no transaction at all on the main database (not even the
    /// read transaction of a statement still running).
    pub fn main_txn_none(self) -> bool {
        // SAFETY: as in_write_txn.
        unsafe { sqlite!(txn_state(self.0, c"main".as_ptr())) == api::SQLITE_TXN_NONE }
    }

    /// The main database's data version (SQLITE_FCNTL_DATA_VERSION): it moves at every commit
    /// of this connection, and when this connection first reads after another's commit; never
    /// inside a write transaction, and not at a rollback.
    pub fn data_version(self) -> u32 {
        let mut v: u32 = 0;
        // SAFETY: a NULL schema name means "main"; this opcode writes one unsigned int through
        // the pointer, which points at `v` for the duration of the call.
        unsafe {
            sqlite!(file_control(self.0, std::ptr::null(), api::SQLITE_FCNTL_DATA_VERSION, &mut v as *mut u32 as *mut std::ffi::c_void))
        };
        v
    }

    /// The main database's open file (SQLITE_FCNTL_FILE_POINTER), as an address: it stays
    /// while the connection has the database open, and changes when `sqlite3_deserialize`
    /// replaces the database (which opens the new one before it closes the old, so the two
    /// never share an address; a second deserialize could, in principle, reuse the first
    /// one's freed address).
    pub fn main_file(self) -> usize {
        let mut f: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: a NULL schema name means "main"; this opcode writes one pointer through the
        // argument, which points at `f` for the duration of the call. The pointer is only
        // compared, never dereferenced.
        unsafe {
            sqlite!(file_control(self.0, std::ptr::null(), api::SQLITE_FCNTL_FILE_POINTER, &mut f as *mut *mut std::ffi::c_void as *mut std::ffi::c_void))
        };
        f as usize
    }

    /// Rows the last INSERT, UPDATE or DELETE that completed on this connection changed
    /// itself (not its triggers).
    pub fn changes(self) -> i32 {
        // SAFETY: self.0 is an open connection.
        unsafe { sqlite!(changes(self.0)) }
    }

    /// Rows changed by INSERT, UPDATE and DELETE on this connection since it opened (wraps
    /// around; compare for equality only).
    pub fn total_changes(self) -> i32 {
        // SAFETY: self.0 is an open connection.
        unsafe { sqlite!(total_changes(self.0)) }
    }

    /// Whether the main database refuses writes: opened read-only (`mode=ro`, a read-only
    /// file), or on a connection with `PRAGMA query_only = 1`, which reader pools set.
    pub fn is_readonly(self) -> bool {
        // SAFETY: "main" is a NUL-terminated literal.
        if unsafe { sqlite!(db_readonly(self.0, c"main".as_ptr())) } == 1 {
            return true;
        }
        // (An error reading it, an interrupt say, counts as writable: the write then reports.)
        self.prepare("PRAGMA query_only", false).and_then(|mut s| Ok(s.step()? && s.i64(0) == 1)).unwrap_or(false)
    }

    /// Whether the main database's triggers fire on this connection
    /// (`SQLITE_DBCONFIG_ENABLE_TRIGGER`, on unless the app turned it off; it never stops
    /// TEMP triggers).
    pub fn triggers_enabled(self) -> bool {
        let mut on: c_int = 1;
        // SAFETY: for this option SQLite reads an int (negative: leave the setting as it is)
        // and writes one int through the pointer, which points at `on` for the call.
        let rc = unsafe { sqlite!(db_config(self.0, api::SQLITE_DBCONFIG_ENABLE_TRIGGER, -1 as c_int, &mut on as *mut c_int)) };
        rc != api::SQLITE_OK || on != 0
    }

    /// Runs `f` with the main database's triggers off on this connection for the statements
    /// `f` prepares (SQLITE_DBCONFIG_ENABLE_TRIGGER; TEMP triggers still fire), then turns them
    /// back on, whatever `f` returns (it is on: `Conn::enter_call` refuses calls without it).
    /// Changing the setting expires the connection's prepared statements: those not running
    /// are prepared again at their next step; running ones (the app's statement that called
    /// us) go on.
    pub fn without_main_triggers<T>(self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        struct On(Db);
        impl Drop for On {
            fn drop(&mut self) {
                let mut now: c_int = 1;
                // SAFETY: as in `triggers_enabled`, with 1: turn them on.
                unsafe { sqlite!(db_config(self.0 .0, api::SQLITE_DBCONFIG_ENABLE_TRIGGER, 1 as c_int, &mut now as *mut c_int)) };
            }
        }
        let mut now: c_int = 1;
        // SAFETY: as in `triggers_enabled`, with 0: turn them off.
        let rc = unsafe { sqlite!(db_config(self.0, api::SQLITE_DBCONFIG_ENABLE_TRIGGER, 0 as c_int, &mut now as *mut c_int)) };
        let _on = On(self);
        if rc != api::SQLITE_OK || now != 0 {
            return Err(Error::new("could not turn the main database's triggers off (SQLITE_DBCONFIG_ENABLE_TRIGGER)"));
        }
        f()
    }

    /// This connection's run-time limit `id` (`api::SQLITE_LIMIT_*`: SQLITE_LIMIT_COLUMN,
    /// 2,000 unless the host or app set another; SQLITE_LIMIT_COMPOUND_SELECT, 500), at least 1.
    pub fn limit(self, id: c_int) -> usize {
        // SAFETY: a negative new value only reads the limit.
        let n = unsafe { sqlite!(limit(self.0, id, -1)) };
        n.max(1) as usize
    }

    /// 16 random bytes from SQLite's PRNG.
    pub fn random_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: writes exactly 16 bytes into out.
        unsafe { sqlite!(randomness(16, out.as_mut_ptr() as *mut _)) };
        out
    }
}

fn abbreviate(sql: &str) -> String {
    let s: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// A prepared statement, finalized on drop.
pub struct Stmt {
    raw: *mut api::sqlite3_stmt,
    db: Db,
}

impl Stmt {
    fn check(&self, rc: c_int) -> Result<()> {
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.db.error(rc))
        }
    }

    pub fn bind_i64(&mut self, i: usize, v: i64) -> Result<()> {
        // SAFETY: raw is a live statement; out-of-range indexes return SQLITE_RANGE.
        let rc = unsafe { sqlite!(bind_int64(self.raw, i as c_int, v)) };
        self.check(rc)
    }

    pub fn bind_f64(&mut self, i: usize, v: f64) -> Result<()> {
        // SAFETY: as bind_i64.
        let rc = unsafe { sqlite!(bind_double(self.raw, i as c_int, v)) };
        self.check(rc)
    }

    pub fn bind_null(&mut self, i: usize) -> Result<()> {
        // SAFETY: as bind_i64.
        let rc = unsafe { sqlite!(bind_null(self.raw, i as c_int)) };
        self.check(rc)
    }

    pub fn bind_text(&mut self, i: usize, v: &str) -> Result<()> {
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before returning.
        let rc = unsafe {
            sqlite!(bind_text64(self.raw, i as c_int, v.as_ptr() as *const _, v.len() as u64, api::transient(), api::SQLITE_UTF8 as u8))
        };
        self.check(rc)
    }

    pub fn bind_blob(&mut self, i: usize, v: &[u8]) -> Result<()> {
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes; a zero-length blob is not NULL.
        let rc = unsafe {
            sqlite!(bind_blob64(self.raw, i as c_int, v.as_ptr() as *const _, v.len() as u64, api::transient()))
        };
        self.check(rc)
    }

    pub fn bind_value(&mut self, i: usize, v: &Value) -> Result<()> {
        match v {
            Value::Null => self.bind_null(i),
            Value::Integer(x) => self.bind_i64(i, *x),
            Value::Real(x) => self.bind_f64(i, *x),
            Value::Text(s) => self.bind_text(i, s),
            Value::Blob(b) => self.bind_blob(i, b),
        }
    }

    /// Binds `v` at `i` (text and blob bytes borrowed, not copied), runs the statement to
    /// completion, and binds NULL there again: SQLite reads borrowed bytes only while the
    /// statement runs, so it never holds them past this call, which they outlive.
    pub fn run_with_borrowed(&mut self, i: usize, v: &ValueRef<'_>) -> Result<()> {
        let (p, n, text) = match v {
            ValueRef::Text(t) => (t.as_ptr(), t.len(), true),
            ValueRef::Blob(b) => (b.as_ptr(), b.len(), false),
            ValueRef::Null => return self.bind_null(i).and_then(|()| self.run()),
            ValueRef::Integer(x) => return self.bind_i64(i, *x).and_then(|()| self.run()),
            ValueRef::Real(x) => return self.bind_f64(i, *x).and_then(|()| self.run()),
        };
        // SAFETY: raw is a live statement; SQLITE_STATIC (no destructor) makes SQLite use the
        // bytes in place, valid for this whole call; they are unbound below before it returns.
        let rc = unsafe {
            if text {
                sqlite!(bind_text64(self.raw, i as c_int, p as *const _, n as u64, None, api::SQLITE_UTF8 as u8))
            } else {
                sqlite!(bind_blob64(self.raw, i as c_int, p as *const _, n as u64, None))
            }
        };
        let result = self.check(rc).and_then(|()| self.run());
        let unbound = self.bind_null(i);
        result.and(unbound)
    }

    /// Advances; true when a row is available.
    pub fn step(&mut self) -> Result<bool> {
        // SAFETY: raw is a live statement.
        let rc = unsafe { sqlite!(step(self.raw)) };
        match rc {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            _ => {
                let mut err = self.db.error(rc);
                if err.code == api::SQLITE_AUTH {
                    // (Refused as SQLite prepared it again: after a schema change, or a new
                    // authorizer. Which statement it was.)
                    err = err.context(&format!("`{}`", abbreviate(&self.sql())));
                }
                // SAFETY: resetting after an error makes the statement reusable.
                unsafe { sqlite!(reset(self.raw)) };
                Err(err)
            }
        }
    }

    /// The statement's SQL text.
    pub fn sql(&self) -> String {
        // SAFETY: raw is a live statement; SQLite owns the NUL-terminated text it returns.
        unsafe {
            let p = sqlite!(sql(self.raw));
            if p.is_null() {
                return String::new();
            }
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    /// The heap memory the statement holds, in bytes (SQLITE_STMTSTATUS_MEMUSED).
    pub fn memory_used(&self) -> usize {
        // SAFETY: raw is a live statement; the op only measures it (reset flag 0).
        let n = unsafe { sqlite!(stmt_status(self.raw, api::SQLITE_STMTSTATUS_MEMUSED, 0)) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Resets for re-execution (bindings are kept).
    pub fn reset(&mut self) {
        // SAFETY: raw is a live statement. The return code repeats the last step's error,
        // which step already reported.
        unsafe { sqlite!(reset(self.raw)) };
    }

    /// Steps to completion, for statements that return no rows of interest.
    pub fn run(&mut self) -> Result<()> {
        while self.step()? {}
        self.reset();
        Ok(())
    }

    pub fn column_type(&self, i: usize) -> i32 {
        // SAFETY: raw has a current row (callers only read after step returned true).
        unsafe { sqlite!(column_type(self.raw, i as c_int)) }
    }

    pub fn i64(&self, i: usize) -> i64 {
        // SAFETY: as column_type.
        unsafe { sqlite!(column_int64(self.raw, i as c_int)) }
    }

    pub fn f64(&self, i: usize) -> f64 {
        // SAFETY: as column_type.
        unsafe { sqlite!(column_double(self.raw, i as c_int)) }
    }

    /// Column bytes (text or blob); empty for NULL. Borrowed until the next step or reset.
    pub fn bytes(&self, i: usize) -> &[u8] {
        // SAFETY: the pointer from column_blob is valid for column_bytes bytes until the
        // statement moves on; &self ties the borrow to the statement, and stepping needs &mut.
        unsafe {
            let p = sqlite!(column_blob(self.raw, i as c_int)) as *const u8;
            let n = sqlite!(column_bytes(self.raw, i as c_int));
            if p.is_null() || n <= 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p, n as usize)
            }
        }
    }

    pub fn text(&self, i: usize) -> String {
        // SAFETY: column_text converts to UTF-8 in place; then read the bytes.
        unsafe { sqlite!(column_text(self.raw, i as c_int)) };
        String::from_utf8_lossy(self.bytes(i)).into_owned()
    }

    /// Column `i` in place (borrowed until the next step or reset).
    pub fn value_ref(&self, i: usize) -> ValueRef<'_> {
        match self.column_type(i) {
            api::SQLITE_INTEGER => ValueRef::Integer(self.i64(i)),
            api::SQLITE_FLOAT => ValueRef::Real(self.f64(i)),
            api::SQLITE_TEXT => {
                // SAFETY: as `text`.
                unsafe { sqlite!(column_text(self.raw, i as c_int)) };
                ValueRef::Text(self.bytes(i))
            }
            api::SQLITE_BLOB => ValueRef::Blob(self.bytes(i)),
            _ => ValueRef::Null,
        }
    }

    pub fn value(&self, i: usize) -> Value {
        self.value_ref(i).to_value()
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: raw was returned by prepare and is finalized exactly once.
        unsafe { sqlite!(finalize(self.raw)) };
    }
}
