// The extension loaded from Node.js through better-sqlite3, which carries its own SQLite (3.53
// with the pinned version): two file replicas of a WITHOUT ROWID table with a compound key
// write while apart, exchange their changes both ways and converge. An HLC col_version is
// beyond 2^53, so a transport must read crsql_changes with safeIntegers (BigInt): the test
// shows that it converges then, and that without it the rounded versions are refused with an
// error that names col_version, leaving the replica as it was.
//
// Run by tests/lang/run.sh (make test), which installs better-sqlite3 into tests/lang first.

'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const Database = require('better-sqlite3');

const EXT = process.env.CRR_EXTENSION || 'dist/crr';
const CHANGES = 'SELECT "table", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes';
const failed = [];

function check(what, got, want) {
  const [g, w] = [JSON.stringify(got, jsonable), JSON.stringify(want, jsonable)];
  if (g !== w) {
    failed.push(what);
    console.error(`FAIL ${what}:\n  got  ${g}\n  want ${w}`);
  }
}

// BigInts and Buffers as text, so that results compare by value.
function jsonable(_key, v) {
  if (typeof v === 'bigint') return `${v}n`;
  if (v && v.type === 'Buffer') return `x'${Buffer.from(v.data).toString('hex')}'`;
  return v;
}

function openReplica(file, entryPoint) {
  const db = new Database(file);
  if (entryPoint) db.loadExtension(EXT, entryPoint);
  else db.loadExtension(EXT);
  db.pragma('journal_mode = WAL');
  db.exec(`CREATE TABLE notes(owner TEXT NOT NULL, n INTEGER NOT NULL, body TEXT, stars INTEGER DEFAULT 0,
             PRIMARY KEY (owner, n)) WITHOUT ROWID;
           SELECT crsql_as_crr('notes');`);
  return db;
}

const siteId = (db) => db.prepare('SELECT crsql_site_id()').pluck().get();
const rows = (db) => db.prepare('SELECT * FROM notes ORDER BY owner, n').safeIntegers().raw().all();
// crsql_changes apart from db_version and seq, which are each replica's own.
const feed = (db) =>
  db.prepare(CHANGES).safeIntegers().raw().all()
    .map(([t, pk, cid, val, cv, _dbv, site, cl]) => JSON.stringify([t, pk, cid, val, cv, site, cl], jsonable))
    .sort();

// Sends src's changes after db_version `since` that did not come from dst; returns the rows.
function sync(src, dst, since, safe = true) {
  const changes = src.prepare(CHANGES + ' WHERE db_version > ? AND site_id IS NOT ?')
    .safeIntegers(safe).raw().all(since, siteId(dst));
  const insert = dst.prepare('INSERT INTO crsql_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  dst.transaction(() => { for (const c of changes) insert.run(...c); })();
  return changes;
}

function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crr-node-'));
  const a = openReplica(path.join(tmp, 'a.db'));
  const b = openReplica(path.join(tmp, 'b.db'), 'sqlite3_crsqlite_init');
  check('site ids are 16-byte buffers that differ', [siteId(a).length, siteId(a).equals(siteId(b))], [16, false]);

  // b's wall clock is ahead, so where both write a cell b's write wins.
  a.prepare('SELECT crr_set_wall_clock_for_testing(?)').get(1700000000000n);
  b.prepare('SELECT crr_set_wall_clock_for_testing(?)').get(1700000001000n);
  a.transaction(() => {
    a.prepare("INSERT INTO notes(owner, n, body) VALUES ('ann', 1, 'hello'), ('ann', 2, 'bye'), ('bob', 1, 'hi')").run();
  })();
  b.prepare("INSERT INTO notes(owner, n, body, stars) VALUES ('ann', 1, 'hello from b', 5)").run();

  // Read without safeIntegers, the versions are rounded doubles: refused, nothing applied.
  const before = [rows(b), feed(b)];
  let message = '';
  try {
    sync(a, b, 0, false);
  } catch (e) {
    message = e.message;
  }
  check('rounded versions are refused with a clear error', message, 'crsql_changes: col_version must be an integer, got real');
  check('the refused batch left b as it was', [rows(b), feed(b)], before);

  const sent = sync(a, b, 0);
  const cv = sent[0][4];
  check('an HLC col_version is a BigInt beyond 2^53', [typeof cv, cv > BigInt(Number.MAX_SAFE_INTEGER)], ['bigint', true]);
  b.prepare("UPDATE notes SET stars = stars + 1 WHERE owner = 'bob'").run();
  b.prepare("DELETE FROM notes WHERE owner = 'ann' AND n = 2").run();
  a.prepare("UPDATE notes SET body = 'hi again' WHERE owner = 'bob'").run();
  sync(b, a, 0);
  sync(a, b, 0);

  const want = [['ann', 1n, 'hello from b', 5n], ['bob', 1n, 'hi again', 1n]];
  check('replica a', rows(a), want);
  check('replica b', rows(b), want);
  check('identical crsql_changes apart from db_version and seq', feed(a), feed(b));
  const pk = a.prepare("SELECT crsql_pack_columns('ann', 2)").pluck().get();
  check('the packed key unpacks to its cells', a.prepare('SELECT cell FROM crsql_unpack_columns(?)').pluck().all(pk), ['ann', 2]);
  check('the deleted row keeps only its sentinel',
    a.prepare('SELECT cid, cl FROM crsql_changes WHERE pk = ?').raw().all(pk), [['-1', 2]]);

  for (const db of [a, b]) {
    db.prepare('SELECT crsql_finalize()').get();
    db.close();
  }
  fs.rmSync(tmp, { recursive: true });
  const label = `node (better-sqlite3 ${require('better-sqlite3/package.json').version}, SQLite ${new Database(':memory:').prepare('SELECT sqlite_version()').pluck().get()})`;
  if (failed.length) {
    console.error(`${label}: ${failed.length} checks failed`);
    process.exit(1);
  }
  console.log(`${label}: all checks passed`);
}

main();
