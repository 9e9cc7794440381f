//! The clock record of one row: the causal length, the sentinel entry and one entry per tracked
//! column ("slot"). Stored as one blob per row, so a tracked insert writes one clock row instead
//! of one per cell.
//!
//! Record format, version 1 (all integers unsigned LEB128 varints, see `varint.rs`):
//! ```text
//! byte 0       format version = 1
//! sentinel     db_version, seq, site ordinal        (its col_version is the causal length)
//! n            number of slot entries that follow (trailing absent slots are not written)
//! per slot     tag byte: 0 = no entry, 1 = entry; an entry is
//!              col_version, db_version, seq, site ordinal
//! ```
//! The causal length and the row's highest db_version are stored beside the blob as columns
//! (they are indexed / queried directly). Site ordinals are this database's own numbering of
//! 16-byte site ids (0 = this replica); they never leave the database.

use super::varint;
use std::fmt;

pub const FORMAT_VERSION: u8 = 1;
/// Most tracked columns per table (SQLite's own default column limit is 2000).
pub const SLOTS_MAX: usize = 32_767;

/// One clock entry: which version of the cell, when this replica recorded it, from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub col_version: i64,
    pub db_version: i64,
    pub seq: i64,
    pub site: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowClock {
    /// Causal length: odd = alive, even = deleted, 0 = never seen.
    pub cl: i64,
    /// The sentinel's record (its col_version is always `cl`; the field is kept equal to it).
    pub sentinel: Entry,
    pub cells: Vec<Option<Entry>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptClock(pub &'static str);

impl fmt::Display for CorruptClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt row clock record: {}", self.0)
    }
}

impl RowClock {
    /// The highest db_version among the entries: the indexed `dbv` column.
    pub fn max_db_version(&self) -> i64 {
        self.cells.iter().flatten().map(|e| e.db_version).fold(self.sentinel.db_version, i64::max)
    }

    pub fn cell(&self, slot: usize) -> Option<Entry> {
        self.cells.get(slot).copied().flatten()
    }

    pub fn set_cell(&mut self, slot: usize, entry: Entry) {
        if self.cells.len() <= slot {
            self.cells.resize(slot + 1, None);
        }
        self.cells[slot] = Some(entry);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.cells.len() * 12);
        out.push(FORMAT_VERSION);
        put_i(&mut out, self.sentinel.db_version);
        put_i(&mut out, self.sentinel.seq);
        varint::put(&mut out, u64::from(self.sentinel.site));
        let n = self.cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        varint::put(&mut out, n as u64);
        for cell in &self.cells[..n] {
            match cell {
                None => out.push(0),
                Some(e) => {
                    out.push(1);
                    put_i(&mut out, e.col_version);
                    put_i(&mut out, e.db_version);
                    put_i(&mut out, e.seq);
                    varint::put(&mut out, u64::from(e.site));
                }
            }
        }
        out
    }

    /// Decodes a record; `cl` comes from its own column. Never panics on any bytes.
    pub fn decode(cl: i64, bytes: &[u8]) -> Result<RowClock, CorruptClock> {
        let mut pos = 0usize;
        if bytes.first() != Some(&FORMAT_VERSION) {
            return Err(CorruptClock("unknown format version"));
        }
        pos += 1;
        let sentinel = Entry {
            col_version: cl,
            db_version: get_i(bytes, &mut pos)?,
            seq: get_i(bytes, &mut pos)?,
            site: get_site(bytes, &mut pos)?,
        };
        let n = varint::get(bytes, &mut pos).ok_or(CorruptClock("truncated slot count"))?;
        if n as usize > SLOTS_MAX || n > bytes.len() as u64 {
            return Err(CorruptClock("slot count out of range"));
        }
        let mut cells = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let tag = *bytes.get(pos).ok_or(CorruptClock("truncated slot"))?;
            pos += 1;
            cells.push(match tag {
                0 => None,
                1 => Some(Entry {
                    col_version: get_i(bytes, &mut pos)?,
                    db_version: get_i(bytes, &mut pos)?,
                    seq: get_i(bytes, &mut pos)?,
                    site: get_site(bytes, &mut pos)?,
                }),
                _ => return Err(CorruptClock("unknown slot tag")),
            });
        }
        if pos != bytes.len() {
            return Err(CorruptClock("trailing bytes"));
        }
        Ok(RowClock { cl, sentinel, cells })
    }
}

fn put_i(out: &mut Vec<u8>, v: i64) {
    // Versions, db_versions and seqs are never negative (checked where they enter).
    varint::put(out, v.max(0) as u64);
}

fn get_i(bytes: &[u8], pos: &mut usize) -> Result<i64, CorruptClock> {
    let v = varint::get(bytes, pos).ok_or(CorruptClock("truncated integer"))?;
    i64::try_from(v).map_err(|_| CorruptClock("integer out of range"))
}

fn get_site(bytes: &[u8], pos: &mut usize) -> Result<u32, CorruptClock> {
    let v = varint::get(bytes, pos).ok_or(CorruptClock("truncated site ordinal"))?;
    u32::try_from(v).map_err(|_| CorruptClock("site ordinal out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (0i64..i64::MAX, 0i64..i64::MAX, 0i64..1 << 40, 0u32..1000).prop_map(|(v, d, s, site)| Entry {
            col_version: v,
            db_version: d,
            seq: s,
            site,
        })
    }

    proptest! {
        #[test]
        fn round_trip(cl in 0i64..1000, s in entry(), cells in proptest::collection::vec(proptest::option::of(entry()), 0..20)) {
            let rc = RowClock { cl, sentinel: Entry { col_version: cl, ..s }, cells };
            let back = RowClock::decode(cl, &rc.encode()).unwrap();
            // Trailing empty slots are not stored.
            let n = rc.cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            prop_assert_eq!(&back.cells[..], &rc.cells[..n]);
            prop_assert_eq!(back.sentinel, rc.sentinel);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RowClock::decode(1, &bytes);
        }
    }
}
