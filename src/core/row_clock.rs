//! The clock record of one row: the causal length, the sentinel entry and one entry per tracked
//! column ("slot"). Stored as one blob per row, so a tracked insert writes one clock row instead
//! of one per cell.
//!
//! Record format, version 3 (all integers unsigned LEB128 varints, see `varint.rs`):
//! ```text
//! byte 0       format version = 3
//! sentinel     db_version, seq, site ordinal        (its col_version is the causal length)
//! n            number of slot entries that follow (trailing absent slots are not written)
//! per slot     tag byte: 0 = no entry; otherwise bit 0 is set and
//!                bit 1  col_version = the previous cell entry's   (never on the first cell)
//!                bit 2  db_version  = the previous entry's        (the sentinel before the first cell)
//!                bit 3  seq         = the previous entry's seq + 1
//!                bit 4  site        = the previous entry's
//!                bit 5  col_version = the tick of this entry's db_version (never with bit 1)
//!              then each field whose bit is clear, in the order col_version, db_version,
//!              seq, site ordinal. Other tag values are corrupt.
//! ```
//! A transaction's writes to a row share one version, db_version and site and take
//! consecutive seqs, so such a cell costs its tag byte alone. "The tick of a db_version" is
//! the HLC version the local transaction of that db_version gave its writes, stored once per
//! transaction beside the records (`crr_ticks`, see storage/ticks.rs); encoding and decoding
//! take it as a lookup, so this module stays pure. A 9-byte HLC version then costs nothing in
//! the records of the transaction that wrote it: a fresh 3-column row's record is about 10 bytes
//! (about 19 in version 2, 56 in version 1). The encoder sets every bit that holds (bit 1 before
//! bit 5), so each record has one encoding for a given lookup.
//!
//! Versions 1 and 2 (read only, written by earlier builds): version 2 is version 3 without
//! bit 5; version 1 has the same header and per slot a tag byte 0 = no entry or 1 = entry
//! followed by all four fields.
//! The causal length and the row's highest db_version are stored beside the blob as columns
//! (they are indexed / queried directly). Site ordinals are this database's own numbering of
//! 16-byte site ids (0 = this replica); they never leave the database.

use super::varint;
use std::fmt;

pub const FORMAT_VERSION: u8 = 3;
/// Earlier formats, still decoded.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;

const TAG_PRESENT: u8 = 1;
const SAME_VERSION: u8 = 2;
const SAME_DB_VERSION: u8 = 4;
const NEXT_SEQ: u8 = 8;
const SAME_SITE: u8 = 16;
const TICK_VERSION: u8 = 32;
const TAG_MAX_V2: u8 = 31;
const TAG_MAX: u8 = 63;
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

    /// The highest version among the cells (the sentinel's col_version is the causal length,
    /// not a version).
    pub fn max_version(&self) -> Option<i64> {
        self.cells.iter().flatten().map(|e| e.col_version).max()
    }

    /// Whether the row holds any cell entry.
    pub fn has_cells(&self) -> bool {
        self.cells.iter().any(Option::is_some)
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

    /// Encodes without tick lookups (no entry uses bit 5).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&mut |_| None)
    }

    /// Encodes; `tick_of(db_version)` is the tick of that db_version's local transaction, if
    /// known (an entry whose col_version equals it is stored as bit 5 alone).
    pub fn encode_with(&self, tick_of: &mut dyn FnMut(i64) -> Option<i64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_size_hint());
        self.encode_into(&mut out, tick_of);
        out
    }

    /// Room enough for the encoding of most records (a vector made with it does not grow).
    fn encoded_size_hint(&self) -> usize {
        8 + self.cells.len() * 2 + 10
    }

    /// `encode_with`, appended to `out` (a buffer kept across calls allocates nothing).
    pub fn encode_into(&self, out: &mut Vec<u8>, tick_of: &mut dyn FnMut(i64) -> Option<i64>) {
        out.reserve(self.encoded_size_hint());
        out.push(FORMAT_VERSION);
        put_i(out, self.sentinel.db_version);
        put_i(out, self.sentinel.seq);
        varint::put(out, u64::from(self.sentinel.site));
        let n = self.cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        varint::put(out, n as u64);
        let mut prev = self.sentinel;
        let mut first = true;
        for cell in &self.cells[..n] {
            let Some(e) = cell else {
                out.push(0);
                continue;
            };
            let mut tag = TAG_PRESENT;
            if !first && e.col_version == prev.col_version {
                tag |= SAME_VERSION;
            } else if tick_of(e.db_version) == Some(e.col_version) {
                tag |= TICK_VERSION;
            }
            if e.db_version == prev.db_version {
                tag |= SAME_DB_VERSION;
            }
            if prev.seq.checked_add(1) == Some(e.seq) {
                tag |= NEXT_SEQ;
            }
            if e.site == prev.site {
                tag |= SAME_SITE;
            }
            out.push(tag);
            if tag & (SAME_VERSION | TICK_VERSION) == 0 {
                put_i(out, e.col_version);
            }
            if tag & SAME_DB_VERSION == 0 {
                put_i(out, e.db_version);
            }
            if tag & NEXT_SEQ == 0 {
                put_i(out, e.seq);
            }
            if tag & SAME_SITE == 0 {
                varint::put(out, u64::from(e.site));
            }
            prev = *e;
            first = false;
        }
    }

    /// Decodes a record without tick lookups (an entry with bit 5 is an error).
    pub fn decode(cl: i64, bytes: &[u8]) -> Result<RowClock, CorruptClock> {
        Self::decode_with(cl, bytes, &mut |_| None)
    }

    /// Decodes a record (format 3, or 2 or 1 from earlier builds); `cl` comes from its own
    /// column, `tick_of` as for `encode_with`. Never panics on any bytes.
    pub fn decode_with(cl: i64, bytes: &[u8], tick_of: &mut dyn FnMut(i64) -> Option<i64>) -> Result<RowClock, CorruptClock> {
        Self::decode_reusing(cl, bytes, tick_of, Vec::new())
    }

    /// `decode_with`, its cells held in `cells` (emptied first), so that a vector kept across
    /// calls allocates nothing.
    pub fn decode_reusing(cl: i64, bytes: &[u8], tick_of: &mut dyn FnMut(i64) -> Option<i64>, mut cells: Vec<Option<Entry>>) -> Result<RowClock, CorruptClock> {
        let version = match bytes.first() {
            Some(&v) if v == FORMAT_VERSION || v == FORMAT_V2 || v == FORMAT_V1 => v,
            _ => return Err(CorruptClock("unknown format version")),
        };
        // A causal length is never negative (it counts a row's lives from 0 up): one that is
        // comes from a damaged clock row, and would be taken for a deleted row's.
        if cl < 0 {
            return Err(CorruptClock("negative causal length"));
        }
        let mut pos = 1usize;
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
        cells.clear();
        cells.reserve(n as usize);
        let mut prev: Option<Entry> = None;
        for _ in 0..n {
            let tag = *bytes.get(pos).ok_or(CorruptClock("truncated slot"))?;
            pos += 1;
            if tag == 0 {
                cells.push(None);
                continue;
            }
            let tag = match version {
                FORMAT_V1 if tag == 1 => TAG_PRESENT,
                FORMAT_V1 => return Err(CorruptClock("unknown slot tag")),
                FORMAT_V2 if tag > TAG_MAX_V2 => return Err(CorruptClock("unknown slot tag")),
                _ if tag & TAG_PRESENT == 0 || tag > TAG_MAX => return Err(CorruptClock("unknown slot tag")),
                _ if tag & SAME_VERSION != 0 && tag & TICK_VERSION != 0 => return Err(CorruptClock("unknown slot tag")),
                _ => tag,
            };
            let base = prev.unwrap_or(sentinel);
            let col_version = if tag & SAME_VERSION != 0 {
                Some(prev.ok_or(CorruptClock("first cell refers to a previous version"))?.col_version)
            } else if tag & TICK_VERSION != 0 {
                None // the tick of the db_version, read next
            } else {
                Some(get_i(bytes, &mut pos)?)
            };
            let db_version = if tag & SAME_DB_VERSION != 0 { base.db_version } else { get_i(bytes, &mut pos)? };
            let col_version = match col_version {
                Some(v) => v,
                None => tick_of(db_version).ok_or(CorruptClock("entry refers to the tick of a db_version that has none"))?,
            };
            let seq = if tag & NEXT_SEQ != 0 {
                base.seq.checked_add(1).ok_or(CorruptClock("seq out of range"))?
            } else {
                get_i(bytes, &mut pos)?
            };
            let site = if tag & SAME_SITE != 0 { base.site } else { get_site(bytes, &mut pos)? };
            let e = Entry { col_version, db_version, seq, site };
            cells.push(Some(e));
            prev = Some(e);
        }
        if pos != bytes.len() {
            return Err(CorruptClock("trailing bytes"));
        }
        Ok(RowClock { cl, sentinel, cells })
    }
}

/// A record's encoding cut around its sentinel's seq: a record whose cells' seqs each follow
/// the previous entry's (a fresh row's) encodes to the same bytes for every shift of all its
/// seqs, but for the sentinel's seq varint. A transaction's fresh rows of one table then differ
/// only there, so their records are spliced instead of encoded (storage/track.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqTemplate {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl SeqTemplate {
    /// Cuts `bytes`, the format-3 encoding of `rc`; None unless every present cell's seq is the
    /// previous entry's + 1 (then no cell stores a seq of its own).
    pub fn cut(rc: &RowClock, bytes: &[u8]) -> Option<SeqTemplate> {
        let mut prev = rc.sentinel.seq;
        for e in rc.cells.iter().flatten() {
            if prev.checked_add(1) != Some(e.seq) {
                return None;
            }
            prev = e.seq;
        }
        let mut head = vec![FORMAT_VERSION];
        put_i(&mut head, rc.sentinel.db_version);
        let mut seq = Vec::new();
        put_i(&mut seq, rc.sentinel.seq);
        let rest = bytes.strip_prefix(head.as_slice())?.strip_prefix(seq.as_slice())?;
        Some(SeqTemplate { head, tail: rest.to_vec() })
    }

    /// The encoding of the record with its sentinel's seq moved to `seq` (and every cell's
    /// moved by as much).
    #[cfg(test)]
    pub fn with_seq(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 10 + self.tail.len());
        self.write_with_seq(seq, &mut out);
        out
    }

    /// `with_seq`, appended to `out`.
    pub fn write_with_seq(&self, seq: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        put_i(out, seq);
        out.extend_from_slice(&self.tail);
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

    /// The format 1 encoder of earlier builds, kept to test that its records still decode.
    fn encode_v1(rc: &RowClock) -> Vec<u8> {
        let mut out = vec![FORMAT_V1];
        put_i(&mut out, rc.sentinel.db_version);
        put_i(&mut out, rc.sentinel.seq);
        varint::put(&mut out, u64::from(rc.sentinel.site));
        varint::put(&mut out, rc.cells.len() as u64);
        for cell in &rc.cells {
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

    /// One local transaction's fresh row: the cells after the first cost one byte each, and
    /// the first one too when its version is its transaction's tick.
    #[test]
    fn a_fresh_row_is_compact() {
        let hlc = 1_780_000_000_000i64 << 16;
        let e = |seq| Entry { col_version: hlc, db_version: 70_000, seq, site: 0 };
        let rc = RowClock { cl: 1, sentinel: Entry { col_version: 1, ..e(100) }, cells: vec![Some(e(101)), Some(e(102)), Some(e(103))] };
        let bytes = rc.encode();
        assert_eq!(bytes.len(), 1 + 3 + 1 + 1 + 1 + (1 + 9) + 1 + 1, "{bytes:02X?}");
        assert_eq!(RowClock::decode(1, &bytes).unwrap(), rc);
        let mut ticks = |dbv| (dbv == 70_000).then_some(hlc);
        let tagged = rc.encode_with(&mut ticks);
        assert_eq!(tagged.len(), 1 + 3 + 1 + 1 + 1 + 1 + 1 + 1, "{tagged:02X?}");
        assert_eq!(RowClock::decode_with(1, &tagged, &mut ticks).unwrap(), rc);
        let e = RowClock::decode(1, &tagged).unwrap_err();
        assert!(e.to_string().contains("tick of a db_version that has none"), "{e}");
    }

    #[test]
    fn a_negative_causal_length_is_an_error() {
        let rc = RowClock { cl: 1, sentinel: Entry { col_version: 1, db_version: 1, seq: 0, site: 0 }, cells: vec![] };
        for cl in [-1, -2, i64::MIN] {
            assert_eq!(RowClock::decode(cl, &rc.encode()).unwrap_err().to_string(), "corrupt row clock record: negative causal length");
        }
        assert_eq!(RowClock::decode(i64::MAX, &rc.encode()).unwrap().cl, i64::MAX);
    }

    #[test]
    fn corrupt_tags_are_errors() {
        let mut ticks = |_| Some(7);
        // A first cell that claims the previous cell's version; an unknown tag bit.
        assert!(RowClock::decode(1, &[2, 1, 0, 0, 1, 0b11, 5, 6, 0]).is_err());
        assert!(RowClock::decode(1, &[3, 1, 0, 0, 1, 0b100_0001, 5, 6, 7, 0]).is_err());
        // Bit 5 is format 3's, and never comes with bit 1.
        assert!(RowClock::decode_with(1, &[2, 1, 0, 0, 1, 0b10_0001, 6, 7, 0], &mut ticks).is_err());
        assert_eq!(RowClock::decode_with(1, &[3, 1, 0, 0, 1, 0b10_0001, 6, 7, 0], &mut ticks).unwrap().cell(0).unwrap().col_version, 7);
        assert!(RowClock::decode_with(1, &[3, 1, 0, 0, 2, 0b10_0001, 6, 7, 0, 0b10_0011], &mut ticks).is_err());
        // Format 1 knows only tags 0 and 1.
        assert!(RowClock::decode(1, &[1, 1, 0, 0, 1, 3, 5, 6, 7, 0]).is_err());
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

        /// Any tick lookup round-trips, and tags exactly the entries that carry their tick.
        #[test]
        fn round_trip_with_ticks(cl in 0i64..1000, s in entry(), cells in proptest::collection::vec(proptest::option::of(entry()), 0..20), picks in proptest::collection::vec(any::<bool>(), 20)) {
            // Give some entries' db_versions a tick equal to their version.
            let ticks: std::collections::HashMap<i64, i64> = cells.iter().flatten().zip(&picks).filter(|(_, p)| **p).map(|(e, _)| (e.db_version, e.col_version)).collect();
            let mut tick_of = |d: i64| ticks.get(&d).copied();
            let rc = RowClock { cl, sentinel: Entry { col_version: cl, ..s }, cells };
            let bytes = rc.encode_with(&mut tick_of);
            prop_assert!(bytes.len() <= rc.encode().len());
            let back = RowClock::decode_with(cl, &bytes, &mut tick_of).unwrap();
            let n = rc.cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            prop_assert_eq!(&back.cells[..], &rc.cells[..n]);
            prop_assert_eq!(back.encode_with(&mut tick_of), bytes);
        }

        /// Records written by earlier builds (format 2: format 3 without bit 5) still read back.
        #[test]
        fn format_2_still_decodes(cl in 0i64..1000, s in entry(), cells in proptest::collection::vec(proptest::option::of(entry()), 0..20)) {
            let rc = RowClock { cl, sentinel: Entry { col_version: cl, ..s }, cells };
            let mut v2 = rc.encode();
            v2[0] = FORMAT_V2;
            let back = RowClock::decode(cl, &v2).unwrap();
            let n = rc.cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            prop_assert_eq!(&back.cells[..], &rc.cells[..n]);
        }

        /// The buffer-reusing forms (the triggers' per-row path) agree with the allocating
        /// ones, whatever the buffers held before: encode_into appends, decode_reusing
        /// empties the cells it is given, write_with_seq appends.
        #[test]
        fn reused_buffers_change_nothing(
            cl in 0i64..1000, s in entry(),
            cells in proptest::collection::vec(proptest::option::of(entry()), 0..20),
            before in proptest::collection::vec(any::<u8>(), 0..16),
            stale in proptest::collection::vec(proptest::option::of(entry()), 0..20),
        ) {
            let rc = RowClock { cl, sentinel: Entry { col_version: cl, ..s }, cells };
            let mut tick_of = |d: i64| (d == s.db_version).then_some(s.col_version);
            let bytes = rc.encode_with(&mut tick_of);
            let mut out = before.clone();
            rc.encode_into(&mut out, &mut tick_of);
            prop_assert_eq!(&out[..before.len()], &before[..]);
            prop_assert_eq!(&out[before.len()..], &bytes[..]);
            let back = RowClock::decode_reusing(cl, &bytes, &mut tick_of, stale).unwrap();
            prop_assert_eq!(back, RowClock::decode_with(cl, &bytes, &mut tick_of).unwrap());
            if let Some(t) = SeqTemplate::cut(&rc, &bytes) {
                let mut out = before.clone();
                t.write_with_seq(s.seq + 5, &mut out);
                prop_assert_eq!(&out[..before.len()], &before[..]);
                prop_assert_eq!(&out[before.len()..], &t.with_seq(s.seq + 5)[..]);
            }
        }

        /// Records written by earlier builds (format 1) still read back.
        #[test]
        fn format_1_still_decodes(cl in 0i64..1000, s in entry(), cells in proptest::collection::vec(proptest::option::of(entry()), 0..20)) {
            let rc = RowClock { cl, sentinel: Entry { col_version: cl, ..s }, cells };
            let back = RowClock::decode(cl, &encode_v1(&rc)).unwrap();
            prop_assert_eq!(back, rc);
        }

        #[test]
        fn a_seq_template_encodes_every_shift_of_a_fresh_record(cl in 0i64..1000, s in entry(), cells in proptest::collection::vec(any::<bool>(), 0..20), picks in proptest::collection::vec(any::<bool>(), 20), shift in 0i64..1_000_000) {
            // A fresh record: consecutive seqs after the sentinel's, some versions the tick.
            let fresh = |seq0: i64| {
                let mut rc = RowClock { cl, sentinel: Entry { seq: seq0, ..s }, cells: Vec::new() };
                let mut seq = seq0;
                for (i, present) in cells.iter().enumerate() {
                    if *present {
                        seq += 1;
                        let col_version = if picks[i] { 77 } else { s.col_version.saturating_add(i as i64) };
                        rc.set_cell(i, Entry { col_version, seq, ..s });
                    }
                }
                rc
            };
            let mut tick_of = |d: i64| (d == s.db_version).then_some(77);
            let rc = fresh(s.seq);
            let t = SeqTemplate::cut(&rc, &rc.encode_with(&mut tick_of)).expect("a fresh record has consecutive seqs");
            prop_assert_eq!(t.with_seq(s.seq + shift), fresh(s.seq + shift).encode_with(&mut tick_of));
        }

        #[test]
        fn a_record_with_a_seq_of_its_own_has_no_template(s in entry(), gap in 3i64..100) {
            let mut rc = RowClock { cl: 1, sentinel: s, cells: Vec::new() };
            rc.set_cell(0, Entry { seq: s.seq + 1, ..s });
            rc.set_cell(2, Entry { seq: s.seq + gap, ..s });
            prop_assert_eq!(SeqTemplate::cut(&rc, &rc.encode()), None);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RowClock::decode(1, &bytes);
        }
    }
}
