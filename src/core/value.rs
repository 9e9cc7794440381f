//! A SQL value and its total order: SQLite's ORDER BY order with BINARY collation
//! (NULL < numbers < TEXT < BLOB; integers and reals compare numerically; TEXT and BLOB bytewise).
//! This order breaks ties between concurrent writes of equal version, so it must be identical
//! on every replica: it depends on nothing but the two values.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// SQLite's type name, as `typeof()` spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

impl Value {
    /// A borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// A value read in place from its owner (an SQL call's argument), so that the parts of an
/// incoming change that are only looked at (table, key, column, site) are never copied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// The text's bytes as SQLite holds them: UTF-8, or not (SQLite stores whatever bytes it is
    /// given as TEXT), so that a value read from one table and written to another, or sent
    /// to a peer, is the same bytes (`to_value` is the one lossy step).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl ValueRef<'_> {
    /// Storage class rank in ORDER BY order.
    fn class_rank(&self) -> u8 {
        match self {
            ValueRef::Null => 0,
            ValueRef::Integer(_) | ValueRef::Real(_) => 1,
            ValueRef::Text(_) => 2,
            ValueRef::Blob(_) => 3,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Null => "null",
            ValueRef::Integer(_) => "integer",
            ValueRef::Real(_) => "real",
            ValueRef::Text(_) => "text",
            ValueRef::Blob(_) => "blob",
        }
    }

    /// Appends a self-delimiting copy to `out`, for buffers this process keeps in memory
    /// (`read_packed` reads it back; never stored or sent): a tag byte (0 NULL, 1 integer,
    /// 2 real, 3 text, 4 blob), then 8 little-endian bytes, or a u32 length and the bytes.
    pub fn pack_into(&self, out: &mut Vec<u8>) {
        let bytes = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            ValueRef::Null => out.push(0),
            ValueRef::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            ValueRef::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_le_bytes());
            }
            ValueRef::Text(t) => bytes(out, 3, t),
            ValueRef::Blob(b) => bytes(out, 4, b),
        }
    }

    /// An owned copy (text that is not UTF-8 has its invalid bytes replaced by U+FFFD).
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(*i),
            ValueRef::Real(f) => Value::Real(*f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

/// The value `ValueRef::pack_into` wrote at `at` in `buf`, and where the next one starts
/// (NULL and the end of `buf` where there is none).
#[inline]
pub fn read_packed(buf: &[u8], at: usize) -> (ValueRef<'_>, usize) {
    let end = (ValueRef::Null, buf.len());
    let word = |from: usize| buf.get(from..from + 8).and_then(|b| <[u8; 8]>::try_from(b).ok());
    let bytes = |from: usize| {
        let n = buf.get(from..from + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(|b| u32::from_le_bytes(b) as usize)?;
        buf.get(from + 4..from + 4 + n)
    };
    match buf.get(at) {
        Some(0) => (ValueRef::Null, at + 1),
        Some(1) => word(at + 1).map_or(end, |w| (ValueRef::Integer(i64::from_le_bytes(w)), at + 9)),
        Some(2) => word(at + 1).map_or(end, |w| (ValueRef::Real(f64::from_le_bytes(w)), at + 9)),
        Some(3) => bytes(at + 1).map_or(end, |t| (ValueRef::Text(t), at + 5 + t.len())),
        Some(4) => bytes(at + 1).map_or(end, |b| (ValueRef::Blob(b), at + 5 + b.len())),
        _ => end,
    }
}

/// Compares an integer with a real exactly (no rounding of large integers), as SQLite does.
/// NaN never reaches here from SQLite (it stores NaN as NULL); it sorts above every integer.
pub fn cmp_int_real(i: i64, r: f64) -> Ordering {
    if r.is_nan() {
        return Ordering::Less;
    }
    // 2^63 as f64 is exact; any real at or beyond it is larger than every i64.
    if r >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if r < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let floor = r.floor();
    // floor is within i64 range here.
    let fi = floor as i64;
    match i.cmp(&fi) {
        Ordering::Equal => {
            if r > floor {
                Ordering::Less
            } else {
                Ordering::Equal
            }
        }
        other => other,
    }
}

/// Total order used for tie-breaks (ORDER BY order, BINARY collation). TEXT compares its bytes
/// as SQLite holds them (BINARY is memcmp), so text that is not UTF-8 sorts as it does in
/// SQLite, and two different texts never compare equal.
pub fn cmp_values(a: &ValueRef<'_>, b: &ValueRef<'_>) -> Ordering {
    let rank = a.class_rank().cmp(&b.class_rank());
    if rank != Ordering::Equal {
        return rank;
    }
    match (a, b) {
        (ValueRef::Null, ValueRef::Null) => Ordering::Equal,
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(y),
        (ValueRef::Real(x), ValueRef::Real(y)) => x.partial_cmp(y).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())),
        (ValueRef::Integer(x), ValueRef::Real(y)) => cmp_int_real(*x, *y),
        (ValueRef::Real(x), ValueRef::Integer(y)) => cmp_int_real(*y, *x).reverse(),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        _ => Ordering::Equal, // unreachable: ranks differ
    }
}

/// True when two values are the same value of the same storage class (what a cell "changed"
/// means): `1` and `1.0` differ, as do `'a'` and `X'61'`.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits() || x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_filter("no NaN", |f| !f.is_nan()).prop_map(Value::Real),
            ".{0,8}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Blob),
        ]
    }

    #[test]
    fn class_order() {
        let v = [
            Value::Null,
            Value::Integer(-5),
            Value::Real(-4.5),
            Value::Integer(3),
            Value::Real(3.5),
            Value::Text("A".into()),
            Value::Text("a".into()),
            Value::Blob(vec![0]),
        ];
        for w in v.windows(2) {
            assert_eq!(cmp_values(&w[0].as_ref(), &w[1].as_ref()), Ordering::Less, "{:?} < {:?}", w[0], w[1]);
        }
    }

    /// TEXT that is not UTF-8 compares by its bytes, as BINARY collation does in SQLite: two
    /// such texts that a lossy conversion would make equal (both become U+FFFD) are ordered.
    #[test]
    fn text_that_is_not_utf8_compares_bytewise() {
        let (c3, ff, fffd) = (ValueRef::Text(&[0xC3]), ValueRef::Text(&[0xFF]), ValueRef::Text("\u{FFFD}".as_bytes()));
        assert_eq!(cmp_values(&c3, &ff), Ordering::Less);
        assert_eq!(cmp_values(&fffd, &ff), Ordering::Less, "EF BF BD < FF");
        assert_eq!(cmp_values(&c3, &fffd), Ordering::Less, "C3 < EF BF BD");
        assert_eq!(cmp_values(&ff, &ValueRef::Blob(&[0x00])), Ordering::Less, "any text < any blob");
    }

    #[test]
    fn int_real_exact() {
        assert_eq!(cmp_int_real(1, 1.0), Ordering::Equal);
        assert_eq!(cmp_int_real(i64::MAX, 9_223_372_036_854_775_807.0), Ordering::Less);
        assert_eq!(cmp_int_real(i64::MIN, -9_223_372_036_854_775_808.0), Ordering::Equal);
        assert_eq!(cmp_int_real(-1, -0.5), Ordering::Less);
        assert_eq!(cmp_int_real(-1, -1.5), Ordering::Greater);
    }

    proptest! {
        /// A run of packed values reads back in order, and a truncated buffer reads as NULL
        /// up to its end instead of panicking.
        #[test]
        fn packed_values_read_back(vs in proptest::collection::vec(any_value(), 0..8)) {
            let mut buf = Vec::new();
            let mut at = Vec::new();
            for v in &vs {
                at.push(buf.len());
                v.as_ref().pack_into(&mut buf);
            }
            let mut pos = 0;
            for (v, a) in vs.iter().zip(&at) {
                prop_assert_eq!(pos, *a);
                let (back, next) = read_packed(&buf, pos);
                prop_assert_eq!(back.to_value(), v.clone());
                pos = next;
            }
            prop_assert_eq!(pos, buf.len());
            for (v, a) in vs.iter().zip(&at) {
                let cut = &buf[..(a + 3).min(buf.len())];
                let (back, next) = read_packed(cut, *a);
                prop_assert!(back.to_value() == Value::Null || back.to_value() == *v);
                prop_assert!(next <= cut.len());
            }
        }

        #[test]
        fn total_order_is_antisymmetric_and_transitive(a in any_value(), b in any_value(), c in any_value()) {
            let (a, b, c) = (a.as_ref(), b.as_ref(), c.as_ref());
            prop_assert_eq!(cmp_values(&a, &b), cmp_values(&b, &a).reverse());
            if cmp_values(&a, &b) != Ordering::Greater && cmp_values(&b, &c) != Ordering::Greater {
                prop_assert_ne!(cmp_values(&a, &c), Ordering::Greater);
            }
        }

        /// Texts of any bytes order as their bytes do, and equal only when their bytes are.
        #[test]
        fn text_orders_as_its_bytes(a in proptest::collection::vec(any::<u8>(), 0..4), b in proptest::collection::vec(any::<u8>(), 0..4)) {
            prop_assert_eq!(cmp_values(&ValueRef::Text(&a), &ValueRef::Text(&b)), a.cmp(&b));
        }
    }
}
