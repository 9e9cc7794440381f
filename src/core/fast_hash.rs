//! A fast hasher for the per-connection maps whose keys this crate makes itself: statement
//! cache keys, db_versions, site ordinals. std's default (SipHash-1-3) is built to resist
//! keys chosen by an attacker and costs about 100 instructions per lookup. These maps are on
//! every write path (a merge looks up five to six statements per change), where that showed
//! up as 6% of a merge's instructions.
//!
//! **Not for keys an outsider picks** (a remote peer's site id, a table name): a multiply
//! hash has easy collisions, so such maps keep `std`'s hasher.

use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hash of 64-bit words (the scheme of rustc's FxHasher).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

/// An odd constant with well-mixed bits (the one rustc-hash 2 uses).
const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }
    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.add(i as u64);
    }
    /// The multiply leaves its best bits at the top; hashbrown picks buckets from the low
    /// bits and its 7-bit tags from the top, so both get well-mixed bits.
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// `HashMap<K, V, FastBuild>`: a map using [`FastHasher`].
pub type FastBuild = BuildHasherDefault<FastHasher>;
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: &T) -> u64 {
        FastBuild::default().hash_one(t)
    }

    #[test]
    fn equal_keys_hash_equal_and_neighbours_differ() {
        assert_eq!(hash(&(3i64, 7usize)), hash(&(3i64, 7usize)));
        assert_ne!(hash(&(3i64, 7usize)), hash(&(7i64, 3usize)));
        assert_ne!(hash(&1i64), hash(&2i64));
        // A short tail differs from the same bytes padded with zeros.
        let raw = |b: &[u8]| {
            let mut h = FastHasher::default();
            h.write(b);
            h.finish()
        };
        assert_ne!(raw(&[1, 0]), raw(&[1]));
        assert_ne!(raw(&[1, 2, 3, 4, 5, 6, 7, 8, 9]), raw(&[1, 2, 3, 4, 5, 6, 7, 8]));
    }

    /// Sequential keys (db_versions, ordinals) spread over the low bits that pick buckets.
    #[test]
    fn sequential_keys_fill_buckets_evenly() {
        let buckets = 1024u64;
        let mut counts = vec![0u32; buckets as usize];
        for i in 0..(buckets * 8) as i64 {
            counts[(hash(&i) % buckets) as usize] += 1;
        }
        let max = *counts.iter().max().unwrap();
        assert!(max <= 24, "a bucket got {max} of 8 expected keys");
    }

    #[test]
    fn maps_work() {
        let mut m: FastMap<i64, i64> = FastMap::default();
        for i in 0..10_000 {
            m.insert(i, i * 2);
        }
        assert!((0..10_000).all(|i| m[&i] == i * 2));
    }
}
