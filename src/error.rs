//! One error type for the storage and SQL layers: an SQLite result code and a message that
//! travels all the way to the caller (`sqlite3_result_error`, the vtab's zErrMsg).

use std::fmt;

/// SQLite primary result codes used by the extension.
pub const SQLITE_ERROR: i32 = 1;
pub const SQLITE_CONSTRAINT: i32 = 19;
pub const SQLITE_MISUSE: i32 = 21;
pub const SQLITE_READONLY: i32 = 8;
pub const SQLITE_LOCKED: i32 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: i32,
    pub message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { code: SQLITE_ERROR, message: message.into() }
    }

    pub fn with_code(code: i32, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// Whether the error stopped the work rather than judged it: an interrupt (sqlite3_interrupt,
    /// a progress handler that gives up), no memory, a full disk, an I/O error, a database busy
    /// or locked, an abort. The same work can go through when tried again, so code that lets a
    /// failure pass ("this table keeps its old triggers") must not let these pass: the next
    /// statement may well run (a progress handler can give up once), and the failure would
    /// stay for good.
    pub fn stopped_the_work(&self) -> bool {
        // SQLITE_ABORT, BUSY, LOCKED, NOMEM, INTERRUPT, IOERR, FULL, PROTOCOL.
        matches!(self.code, 4 | 5 | 6 | 7 | 9 | 10 | 13 | 15)
    }

    /// Prefixes the message with context (`"crsql_as_crr: "` etc.), keeping the code.
    pub fn context(self, what: &str) -> Self {
        Error { code: self.code, message: format!("{what}: {}", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
