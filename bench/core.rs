//! Criterion micro-benchmarks of the pure core (`cargo bench --bench core`): the HLC, the
//! value order, the merge rule, the pk codec and the row clock record. No SQLite involved, so
//! these numbers isolate the cost of our own rules from the cost of the storage they drive.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use crr::core::hlc;
use crr::core::merge::{cell_wins, row_step, CellWrite};
use crr::core::pk_codec;
use crr::core::row_clock::{Entry, RowClock};
use crr::core::value::{cmp_values, Value, ValueRef};

fn clock(c: &mut Criterion) {
    let wall_ms = 1_780_000_000_000i64;
    c.bench_function("hlc/tick", |b| {
        let mut hwm = 0i64;
        b.iter(|| {
            hwm = hlc::tick(black_box(hwm), black_box(wall_ms)).unwrap();
            hwm
        })
    });
    c.bench_function("hlc/observe", |b| b.iter(|| hlc::observe(black_box(wall_ms << 16), black_box((wall_ms << 16) + 5))));
}

fn values(c: &mut Criterion) {
    let (i, r) = (ValueRef::Integer(42), ValueRef::Real(42.5));
    let (t1, t2) = (ValueRef::Text(b"name-12345"), ValueRef::Text(b"name-12346"));
    c.bench_function("value/cmp int-real", |b| b.iter(|| cmp_values(black_box(&i), black_box(&r))));
    c.bench_function("value/cmp text", |b| b.iter(|| cmp_values(black_box(&t1), black_box(&t2))));
}

fn merge(c: &mut Criterion) {
    let (s1, s2) = ([1u8; 16], [2u8; 16]);
    let local = CellWrite { col_version: 7, value: ValueRef::Text(b"left"), site: &s1 };
    let tie = CellWrite { col_version: 7, value: ValueRef::Text(b"right"), site: &s2 };
    c.bench_function("merge/row_step", |b| b.iter(|| row_step(black_box(3), black_box(3))));
    c.bench_function("merge/cell_wins on a version tie", |b| b.iter(|| cell_wins(black_box(tie), black_box(Some(local)))));
}

fn pk(c: &mut Criterion) {
    let one = [Value::Integer(123_456)];
    let compound = [Value::Text("user-42".into()), Value::Integer(7), Value::Blob(vec![9; 16])];
    let (b1, b3) = (pk_codec::encode(&one).unwrap(), pk_codec::encode(&compound).unwrap());
    c.bench_function("pk/encode integer", |b| b.iter(|| pk_codec::encode(black_box(&one))));
    c.bench_function("pk/decode integer", |b| b.iter(|| pk_codec::decode(black_box(&b1))));
    c.bench_function("pk/encode text+int+blob", |b| b.iter(|| pk_codec::encode(black_box(&compound))));
    c.bench_function("pk/decode text+int+blob", |b| b.iter(|| pk_codec::decode(black_box(&b3))));
}

fn row_clock(c: &mut Criterion) {
    let e = |seq| Entry { col_version: 1_780_000_000_000 << 16, db_version: 1234, seq, site: 0 };
    let rc = RowClock { cl: 1, sentinel: Entry { col_version: 1, ..e(0) }, cells: vec![Some(e(0)), Some(e(1)), Some(e(2))] };
    let bytes = rc.encode();
    c.bench_function("row_clock/encode 3 cells", |b| b.iter(|| black_box(&rc).encode()));
    c.bench_function("row_clock/decode 3 cells", |b| b.iter(|| RowClock::decode(1, black_box(&bytes))));
}

criterion_group!(benches, clock, values, merge, pk, row_clock);
criterion_main!(benches);
