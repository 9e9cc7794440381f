//! The primary-key blob format (format version 1, byte-compatible with cr-sqlite 0.16).
//!
//! ```text
//! byte 0            number of key columns, 1..=255
//! per column        header byte (k << 3) | type, then a body:
//!   type 1 INTEGER  k big-endian bytes. Non-negative values use the fewest bytes (0 is k = 0,
//!                   no body); negative values always use k = 8. Bodies shorter than 8 bytes
//!                   are zero-extended; k = 8 is read as a two's-complement i64.
//!   type 2 REAL     header exactly 0x02, then 8 bytes big-endian IEEE-754.
//!   type 3 TEXT     k-byte big-endian length (k = 0 for empty), then that many UTF-8 bytes.
//!   type 4 BLOB     as TEXT, raw bytes.
//!   type 5 NULL     header exactly 0x05, no body.
//! ```
//! Examples: `(1)` = `01 09 01`, `(0)` = `01 01`, `(-1)` = `01 41 FF FF FF FF FF FF FF FF`,
//! `('a')` = `01 0B 01 61`.
//!
//! Every key has exactly one encoding: the decoder refuses non-minimal lengths and integers, so
//! a blob can serve as the key of a row's clock record. Decoding never panics.

use super::value::Value;
use std::fmt;

/// Most key columns a blob can describe (byte 0 is a u8).
pub const PK_COLUMNS_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkError {
    Empty,
    ZeroColumns,
    TooManyColumns(usize),
    Truncated { column: usize },
    TrailingBytes { count: usize },
    UnknownType { column: usize, code: u8 },
    LengthTooWide { column: usize, k: u8 },
    NotCanonical { column: usize },
    InvalidUtf8 { column: usize },
}

impl fmt::Display for PkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkError::Empty => write!(f, "pk blob is empty"),
            PkError::ZeroColumns => write!(f, "pk blob declares 0 columns"),
            PkError::TooManyColumns(n) => write!(f, "a primary key has at most 255 columns, got {n}"),
            PkError::Truncated { column } => write!(f, "pk blob is truncated in column {column}"),
            PkError::TrailingBytes { count } => write!(f, "pk blob has {count} trailing bytes"),
            PkError::UnknownType { column, code } => {
                write!(f, "pk blob column {column} has unknown type code {code}")
            }
            PkError::LengthTooWide { column, k } => {
                write!(f, "pk blob column {column} has a {k}-byte length or integer (at most 8)")
            }
            PkError::NotCanonical { column } => {
                write!(f, "pk blob column {column} is not in canonical (minimal) form")
            }
            PkError::InvalidUtf8 { column } => write!(f, "pk blob column {column} is TEXT but not valid UTF-8"),
        }
    }
}

const T_INTEGER: u8 = 1;
const T_REAL: u8 = 2;
const T_TEXT: u8 = 3;
const T_BLOB: u8 = 4;
const T_NULL: u8 = 5;

/// Bytes needed to hold `v` big-endian with no leading zero byte (0 for 0).
fn min_width(v: u64) -> u8 {
    (64 - v.leading_zeros()).div_ceil(8) as u8
}

fn push_be(out: &mut Vec<u8>, v: u64, k: u8) {
    let bytes = v.to_be_bytes();
    out.extend_from_slice(&bytes[8 - k as usize..]);
}

fn encode_one(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Integer(i) => {
            let k = if *i < 0 { 8 } else { min_width(*i as u64) };
            out.push((k << 3) | T_INTEGER);
            push_be(out, *i as u64, k);
        }
        Value::Real(r) => {
            out.push(T_REAL);
            out.extend_from_slice(&r.to_bits().to_be_bytes());
        }
        Value::Text(s) => encode_bytes(out, T_TEXT, s.as_bytes()),
        Value::Blob(b) => encode_bytes(out, T_BLOB, b),
    }
}

fn encode_bytes(out: &mut Vec<u8>, ty: u8, bytes: &[u8]) {
    let k = min_width(bytes.len() as u64);
    out.push((k << 3) | ty);
    push_be(out, bytes.len() as u64, k);
    out.extend_from_slice(bytes);
}

/// Packs key values. Fails only when there are 0 or more than 255 of them.
pub fn encode(values: &[Value]) -> Result<Vec<u8>, PkError> {
    if values.is_empty() {
        return Err(PkError::ZeroColumns);
    }
    if values.len() > PK_COLUMNS_MAX {
        return Err(PkError::TooManyColumns(values.len()));
    }
    let mut out = Vec::with_capacity(1 + values.len() * 9);
    out.push(values.len() as u8);
    for v in values {
        encode_one(&mut out, v);
    }
    Ok(out)
}

/// Appends the packed key of one INTEGER column (what `encode(&[Value::Integer(i)])` returns),
/// without allocating a Value.
pub fn encode_integer_into(out: &mut Vec<u8>, i: i64) {
    out.push(1);
    encode_one(out, &Value::Integer(i));
}

/// The integer a packed key of one INTEGER column holds; None for any other key or a bad blob
/// (exactly when `decode` would not return one integer). Allocates nothing.
pub fn decode_integer(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [1, header, ..] if header & 0x07 == T_INTEGER => {
            let mut r = Reader { bytes, pos: 1 };
            match decode_one(&mut r, 0) {
                Ok(Value::Integer(i)) if r.pos == bytes.len() => Some(i),
                _ => None,
            }
        }
        _ => None,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, column: usize) -> Result<&'a [u8], PkError> {
        let end = self.pos.checked_add(n).ok_or(PkError::Truncated { column })?;
        let s = self.bytes.get(self.pos..end).ok_or(PkError::Truncated { column })?;
        self.pos = end;
        Ok(s)
    }

    fn be_uint(&mut self, k: u8, column: usize) -> Result<u64, PkError> {
        let body = self.take(k as usize, column)?;
        Ok(body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

fn decode_one(r: &mut Reader<'_>, column: usize) -> Result<Value, PkError> {
    let header = r.take(1, column)?[0];
    let (k, ty) = (header >> 3, header & 0x07);
    if k > 8 {
        return Err(PkError::LengthTooWide { column, k });
    }
    match ty {
        T_INTEGER => {
            let raw = r.be_uint(k, column)?;
            if k == 8 {
                let v = raw as i64;
                if v >= 0 && min_width(raw) < 8 {
                    return Err(PkError::NotCanonical { column });
                }
                Ok(Value::Integer(v))
            } else {
                if min_width(raw) != k {
                    return Err(PkError::NotCanonical { column });
                }
                Ok(Value::Integer(raw as i64))
            }
        }
        T_REAL => {
            if k != 0 {
                return Err(PkError::NotCanonical { column });
            }
            let raw = r.be_uint(8, column)?;
            Ok(Value::Real(f64::from_bits(raw)))
        }
        T_TEXT | T_BLOB => {
            let len = r.be_uint(k, column)?;
            if min_width(len) != k {
                return Err(PkError::NotCanonical { column });
            }
            let len = usize::try_from(len).map_err(|_| PkError::Truncated { column })?;
            let body = r.take(len, column)?;
            if ty == T_TEXT {
                let s = std::str::from_utf8(body).map_err(|_| PkError::InvalidUtf8 { column })?;
                Ok(Value::Text(s.to_owned()))
            } else {
                Ok(Value::Blob(body.to_vec()))
            }
        }
        T_NULL => {
            if k != 0 {
                return Err(PkError::NotCanonical { column });
            }
            Ok(Value::Null)
        }
        code => Err(PkError::UnknownType { column, code }),
    }
}

/// Unpacks a key blob. Any malformed input is an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Vec<Value>, PkError> {
    let mut values = Vec::new();
    decode_into(bytes, &mut values)?;
    Ok(values)
}

/// `decode` into `values`, whatever it held before (its allocation is reused; on an error its
/// content is unspecified).
pub fn decode_into(bytes: &[u8], values: &mut Vec<Value>) -> Result<(), PkError> {
    values.clear();
    let (&count, _) = bytes.split_first().ok_or(PkError::Empty)?;
    if count == 0 {
        return Err(PkError::ZeroColumns);
    }
    let mut r = Reader { bytes, pos: 1 };
    values.reserve(count as usize);
    for column in 0..count as usize {
        values.push(decode_one(&mut r, column)?);
    }
    if r.pos != bytes.len() {
        return Err(PkError::TrailingBytes { count: bytes.len() - r.pos });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(values: &[Value], hex: &str) {
        let blob = encode(values).unwrap();
        let got: String = blob.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(got, hex, "encoding of {values:?}");
        assert_eq!(decode(&blob).unwrap(), values);
    }

    #[test]
    fn spec_examples() {
        check(&[Value::Integer(1)], "010901");
        check(&[Value::Integer(0)], "0101");
        check(&[Value::Integer(-1)], "0141FFFFFFFFFFFFFFFF");
        check(&[Value::Text("a".into())], "010B0161");
        check(&[Value::Text(String::new())], "0103");
        check(&[Value::Null], "0105");
        check(&[Value::Real(1.5)], "01023FF8000000000000");
        check(&[Value::Integer(256), Value::Blob(vec![0xAB])], "021101000C01AB");
        check(&[Value::Integer(i64::MAX)], "01417FFFFFFFFFFFFFFF");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let cases: &[(&[u8], PkError)] = &[
            (&[], PkError::Empty),
            (&[0], PkError::ZeroColumns),
            (&[1], PkError::Truncated { column: 0 }),
            (&[1, 0x09], PkError::Truncated { column: 0 }),
            (&[1, 0x09, 1, 7], PkError::TrailingBytes { count: 1 }),
            (&[1, 0x07], PkError::UnknownType { column: 0, code: 7 }),
            (&[1, 0x00], PkError::UnknownType { column: 0, code: 0 }),
            (&[1, 0x49], PkError::LengthTooWide { column: 0, k: 9 }),
            (&[1, 0x11, 0, 1], PkError::NotCanonical { column: 0 }),
            (&[1, 0x0B, 1, 0xFF], PkError::InvalidUtf8 { column: 0 }),
            (&[2, 0x09, 1], PkError::Truncated { column: 1 }),
            (&[1, 0x0B, 5, b'a'], PkError::Truncated { column: 0 }),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(bytes).unwrap_err(), *want, "decoding {bytes:02X?}");
        }
    }

    fn key_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_filter("no NaN", |f| !f.is_nan()).prop_map(Value::Real),
            ".{0,300}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Blob),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(key_value(), 1..6), stale in proptest::collection::vec(key_value(), 0..6)) {
            let blob = encode(&values).unwrap();
            prop_assert_eq!(decode(&blob).unwrap(), values.clone());
            // Into a vector that held other values, as merges decode.
            let mut reused = stale;
            decode_into(&blob, &mut reused).unwrap();
            prop_assert_eq!(reused, values);
        }

        #[test]
        fn one_integer_keys_pack_as_encode_does(i in any::<i64>(), other in key_value()) {
            let mut out = Vec::new();
            encode_integer_into(&mut out, i);
            prop_assert_eq!(&out, &encode(&[Value::Integer(i)]).unwrap());
            prop_assert_eq!(decode_integer(&out), Some(i));
            let not_one_integer = encode(&[other.clone(), Value::Integer(i)]).unwrap();
            prop_assert_eq!(decode_integer(&not_one_integer), None);
            let single = encode(std::slice::from_ref(&other)).unwrap();
            prop_assert_eq!(decode_integer(&single), if let Value::Integer(o) = other { Some(o) } else { None });
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_decoded_keys_reencode_identically(
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let one_integer = match decode(&bytes).as_deref() {
                Ok([Value::Integer(i)]) => Some(*i),
                _ => None,
            };
            prop_assert_eq!(decode_integer(&bytes), one_integer);
            if let Ok(values) = decode(&bytes) {
                prop_assert_eq!(encode(&values).unwrap(), bytes);
            }
        }
    }
}
