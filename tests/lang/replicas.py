"""The extension loaded from Python through apsw, which carries its own SQLite (3.54 with the
pinned apsw, as the Rust tests' bundled SQLite since 2026-12-07, and newer than the shell's 3.40): two file replicas
write while apart, exchange their changes both ways through plain SELECT and INSERT on
crsql_changes, and converge; errors reach Python with our messages; an app's own commit and
rollback hooks run beside the extension (which installs none: apsw refuses to install a hook
that other code holds) and hide no transaction's end from it.

Run by tests/lang/run.sh (make test), which installs apsw into tests/lang/.py first."""

import os
import subprocess
import sys
import tempfile

import apsw

EXT = os.environ.get("CRR_EXTENSION", "dist/crr")
CHANGES = 'SELECT "table", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes'
failed = []


def check(what, got, want):
    if got != want:
        failed.append(what)
        print(f"FAIL {what}:\n  got  {got!r}\n  want {want!r}", file=sys.stderr)


def raises(what, sql, conn, fragment):
    try:
        conn.execute(sql).fetchall()
    except apsw.Error as e:
        check(f"{what}: message", fragment in str(e), True)
        if fragment not in str(e):
            print(f"  message was {e}", file=sys.stderr)
        return
    check(f"{what}: raised", False, True)


def connect(path, entry_point=None):
    conn = apsw.Connection(path)
    conn.enable_load_extension(True)
    conn.load_extension(EXT, entry_point)
    return conn


def open_replica(path, entry_point=None):
    conn = connect(path, entry_point)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE items(id INTEGER PRIMARY KEY NOT NULL, name TEXT, qty INTEGER, price REAL, data BLOB);"
        "SELECT crsql_as_crr('items');"
    )
    return conn


def sync(src, dst, since):
    """Sends src's changes after db_version `since` that did not come from dst; returns the
    highest db_version read and the rows sent."""
    dst_site = dst.execute("SELECT crsql_site_id()").fetchall()[0][0]
    rows = src.execute(CHANGES + " WHERE db_version > ? AND site_id IS NOT ?", (since, dst_site)).fetchall()
    with dst:
        for r in rows:
            dst.execute("INSERT INTO crsql_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", r)
    return max([since] + [r[5] for r in rows]), rows


def table(conn):
    return conn.execute("SELECT * FROM items ORDER BY id").fetchall()


def feed(conn):
    """crsql_changes apart from db_version and seq, which are each replica's own."""
    return sorted((t, pk, cid, repr(val), cv, site, cl) for (t, pk, cid, val, cv, _, site, cl, _) in conn.execute(CHANGES))


def under_an_authorizer(tmp):
    """An app's authorizer (sqlite3_set_authorizer) also judges the extension's own statements.
    One that refuses PRAGMAs refuses the read of the schema cookie that every write, read and
    merge starts with: the error says that it refused a statement of the extension's, and
    which (until 2026-12-07, only "not authorized"). Allowed again, everything goes on."""
    c = open_replica(os.path.join(tmp, "auth.db"))
    c.execute("INSERT INTO items(id, name) VALUES (1, 'x')")
    refusing = [True]

    def authorizer(op, p1, p2, db, trigger):
        return apsw.SQLITE_DENY if refusing[0] and op == apsw.SQLITE_PRAGMA else apsw.SQLITE_OK

    c.authorizer = authorizer
    said = "the app's authorizer (sqlite3_set_authorizer) refused a statement of sqlite-crr's"
    raises("a write under an authorizer that refuses PRAGMAs", "INSERT INTO items(id, name) VALUES (2, 'y')", c, said)
    raises("which statement it refused", "SELECT crsql_db_version()", c, "`PRAGMA schema_version`")
    refusing[0] = False
    c.execute("INSERT INTO items(id, name) VALUES (2, 'y')")
    check("allowed again, the writes are recorded", len(feed(c)), 8)
    c.close()


def refusing_comments(tmp):
    """A connection that refuses SQL with comments (SQLITE_DBCONFIG_ENABLE_COMMENTS off, SQLite
    3.49+: "unrecognized token") installs the extension, makes CRRs of tables whose DEFAULT,
    CHECK and generated column texts hold comments, writes, merges and alters them, and upgrades
    a database an earlier build wrote. Until 2026-12-07 its first crsql_as_crr failed on the
    comments of the extension's own schema file."""
    path = os.path.join(tmp, "no-comments.db")
    maker = apsw.Connection(path)
    maker.execute(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY NOT NULL, -- the key\n"
        " body TEXT DEFAULT ('x' /* a default */ || '-') CHECK (length(body) /* in bytes */ < 100), -- short\n"
        " n INTEGER DEFAULT (1 -- one\n + 1), len INTEGER AS (length(body) /* generated */) VIRTUAL)"
    )
    maker.close()
    c = apsw.Connection(path)
    c.config(apsw.SQLITE_DBCONFIG_ENABLE_COMMENTS, 0)
    c.enable_load_extension(True)
    c.load_extension(EXT)
    raises("a comment on this connection", "SELECT 1 -- no", c, "unrecognized token")
    c.execute("SELECT crsql_as_crr('notes')")
    c.execute("INSERT INTO notes(id) VALUES (1)")
    c.execute("INSERT INTO notes(id, body) VALUES (2, 'two')")
    c.execute("UPDATE notes SET n = 5 WHERE id = 2")
    peer = connect(os.path.join(tmp, "no-comments-peer.db"))
    peer.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY NOT NULL, body TEXT DEFAULT ('x' || '-') CHECK (length(body) < 100), n INTEGER DEFAULT 2, len INTEGER AS (length(body)) VIRTUAL)")
    peer.execute("SELECT crsql_as_crr('notes')").fetchall()
    peer.execute("INSERT INTO notes(id, n) VALUES (3, 3)")
    with c:
        for r in peer.execute(CHANGES).fetchall():
            c.execute("INSERT INTO crsql_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", r)
    # (One statement a call: apsw's execute stops at a SELECT's first row.)
    for sql in ["SELECT crsql_begin_alter('notes')", "ALTER TABLE notes ADD COLUMN tag TEXT DEFAULT 't'", "SELECT crsql_commit_alter('notes')"]:
        c.execute(sql).fetchall()
    c.execute("UPDATE notes SET tag = 'u' WHERE id = 3")
    check(
        "a connection refusing comments: the table",
        c.execute("SELECT id, body, n, len, tag FROM notes ORDER BY id").fetchall(),
        [(1, "x-", 2, 2, "t"), (2, "two", 5, 3, "t"), (3, "x-", 3, 2, "u")],
    )
    # Two cells a row (body and n), and the updated tag (the added column's default is no change).
    check("a connection refusing comments: the feed", len(c.execute(CHANGES).fetchall()), 7)
    c.execute("SELECT crr_new_site_id()")
    c.execute("SELECT crsql_as_table('notes')")
    c.close()
    peer.close()
    # A database an earlier build wrote (internal schema 1), upgraded at the load.
    old = os.path.join(tmp, "no-comments-old.db")
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "v1-fcb3fae.sqlite3"), "rb") as f, open(old, "wb") as g:
        g.write(f.read())
    c = apsw.Connection(old)
    c.config(apsw.SQLITE_DBCONFIG_ENABLE_COMMENTS, 0)
    c.enable_load_extension(True)
    c.load_extension(EXT)
    tables = [r[0] for r in c.execute("SELECT name FROM crr_tables ORDER BY name")]
    before = c.execute("SELECT crsql_db_version()").fetchall()[0][0]
    c.execute(f"DELETE FROM \"{tables[0]}\"")
    check(
        "an upgraded database on a connection refusing comments records a write",
        c.execute("SELECT count(*) FROM crsql_changes WHERE db_version > ?", (before,)).fetchall()[0][0] > 0,
        True,
    )
    c.close()


def main():
    tmp = tempfile.mkdtemp()
    # One replica through the default entry point, one through cr-sqlite's name for it.
    a = open_replica(os.path.join(tmp, "a.db"))
    b = open_replica(os.path.join(tmp, "b.db"), "sqlite3_crsqlite_init")
    check("site ids are 16 bytes and differ", [len(a.execute("SELECT crsql_site_id()").fetchall()[0][0]), a.execute("SELECT crsql_site_id()").fetchall() != b.execute("SELECT crsql_site_id()").fetchall()], [16, True])

    # b's wall clock is ahead, so where both write a cell b's write wins.
    a.execute("SELECT crr_set_wall_clock_for_testing(1700000000000)")
    b.execute("SELECT crr_set_wall_clock_for_testing(1700000001000)")
    blob = bytes(range(256))
    with a:
        a.execute("INSERT INTO items VALUES (1, 'ünïcødé ✓', 3, 1.5, ?)", (blob,))
        a.execute("INSERT INTO items VALUES (2, 'a''s', 2 << 61, NULL, NULL)")
        a.execute("INSERT INTO items VALUES (3, 'doomed', 0, 0.0, x'')")
    with b:
        b.execute("INSERT INTO items VALUES (2, 'b''s', -7, 2.25, x'00ff')")
        b.execute("INSERT INTO items VALUES (4, NULL, NULL, NULL, NULL)")
    a_seen, sent = sync(a, b, 0)
    check("a's first sync sends its 3 rows x 4 cells", len(sent), 12)
    hlc = sent[0][4]
    check("an HLC col_version is an integer beyond 2^53 (JavaScript numbers lose it)", [type(hlc), hlc > 2**53], [int, True])
    with b:
        b.execute("UPDATE items SET qty = qty + 10 WHERE id = 1")
        b.execute("DELETE FROM items WHERE id = 3")
    with a:
        a.execute("UPDATE items SET price = 9.75 WHERE id = 1")
    b_seen, _ = sync(b, a, 0)
    a_seen, _ = sync(a, b, a_seen)
    want = [
        (1, "ünïcødé ✓", 13, 9.75, blob),
        (2, "b's", -7, 2.25, b"\x00\xff"),
        (4, None, None, None, None),
    ]
    check("replica a", table(a), want)
    check("replica b", table(b), want)
    check("identical crsql_changes apart from db_version and seq", feed(a), feed(b))
    pk3 = a.execute("SELECT crsql_pack_columns(3)").fetchall()[0][0]
    check("deleted row 3 keeps only its sentinel", [(c[2], c[6]) for c in feed(a) if c[1] == pk3], [("-1", 2)])

    # Delivering everything again changes nothing.
    before = (table(b), feed(b), b.execute("SELECT crsql_db_version()").fetchall())
    with b:
        for r in a.execute(CHANGES).fetchall():
            b.execute("INSERT INTO crsql_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", r)
        check("a duplicate delivery impacts no row", b.execute("SELECT crsql_rows_impacted()").fetchall(), [(0,)])
    check("a duplicate delivery leaves b as it was", (table(b), feed(b), b.execute("SELECT crsql_db_version()").fetchall()), before)

    # Errors carry our messages, and a refused change applies nothing.
    raises("an unknown table", "SELECT crsql_as_crr('nope')", a, 'table "nope" does not exist')
    raises(
        "a pk blob that does not decode",
        "INSERT INTO crsql_changes VALUES ('items', x'01', 'name', 'x', 1, 1, zeroblob(16), 1, 0)",
        a,
        'bad pk for table "items": pk blob is truncated',
    )
    raises(
        "a column the table does not have",
        "INSERT INTO crsql_changes VALUES ('items', crsql_pack_columns(1), 'nope', 'x', 1, 1, zeroblob(16), 1, 0)",
        a,
        'has no column "nope"',
    )
    check("refused changes applied nothing", (table(a), feed(a)), (want, feed(b)))

    # An app's commit hook (apsw's setcommithook) runs beside the extension, and each
    # transaction still gets its own db_version.
    commits = []
    a.setcommithook(lambda: commits.append(1) or False)
    v0 = a.execute("SELECT crsql_db_version()").fetchall()[0][0]
    a.execute("UPDATE items SET qty = 100 WHERE id = 2")
    a.execute("UPDATE items SET qty = 101 WHERE id = 2")
    versions = [r[0] for r in a.execute("SELECT db_version FROM crsql_changes WHERE db_version > ? ORDER BY db_version", (v0,))]
    check("the app's commit hook ran for both transactions", len(commits), 2)
    check("two transactions, two db_versions", [a.execute("SELECT crsql_db_version()").fetchall()[0][0] - v0, versions], [2, [v0 + 2]])

    # An app's rollback hook too; a rolled-back transaction, then another connection's two
    # commits: a's next commit still gets a db_version of its own.
    rollbacks = []
    a.setrollbackhook(lambda: rollbacks.append(1))
    other = connect(os.path.join(tmp, "a.db"))
    a.execute("BEGIN; INSERT INTO items(id) VALUES (10); INSERT INTO items(id) VALUES (11); ROLLBACK")
    other.execute("INSERT INTO items(id) VALUES (12)")
    other.execute("INSERT INTO items(id) VALUES (13)")
    a.execute("INSERT INTO items(id) VALUES (14)")
    check("the app's rollback hook ran", len(rollbacks), 1)
    check(
        "rows 12, 13 and 14 each have a db_version of their own",
        a.execute("SELECT count(DISTINCT db_version) FROM crsql_changes WHERE pk IN (crsql_pack_columns(12), crsql_pack_columns(13), crsql_pack_columns(14))").fetchall(),
        [(3,)],
    )
    check("the rolled-back rows are gone", a.execute("SELECT count(*) FROM items WHERE id IN (10, 11)").fetchall(), [(0,)])
    other.close()

    # sqlite3_rsync (shipped with apsw) copies a's pages into a read replica whose connection
    # stays open and has read a feed of its own before: the file then holds a's database under
    # the schema cookie it had (the same DDL made both), and the connection reads it as a's.
    # Until 2026-12-06 it named its former site id for a's changes.
    rsync = os.path.join(os.path.dirname(apsw.__file__), "sqlite_extra_binaries", "sqlite3_rsync")
    if os.path.exists(rsync):
        reader = open_replica(os.path.join(tmp, "r.db"))
        with reader:
            reader.execute("INSERT INTO items(id, name) VALUES (99, 'its own')")
        check("the read replica's own feed first", len(feed(reader)), 4)
        done = subprocess.run([rsync, os.path.join(tmp, "a.db"), os.path.join(tmp, "r.db")], capture_output=True, text=True)
        check("sqlite3_rsync ran", (done.returncode, done.stderr), (0, ""))
        check("the replica's connection reads a's feed", feed(reader), feed(a))
        check("and a's site id", reader.execute("SELECT crsql_site_id()").fetchall(), a.execute("SELECT crsql_site_id()").fetchall())
        # SQLite still runs the triggers of the database rsync replaced (same schema cookie):
        # a write is refused, saying so.
        raises("a write after sqlite3_rsync", "INSERT INTO items(id) VALUES (98)", reader, "replaced under it by another database")
        reader.close()
    else:
        print(f"(no {rsync}: the sqlite3_rsync check is skipped)")

    refusing_comments(tmp)
    under_an_authorizer(tmp)

    a.setcommithook(None)
    a.setrollbackhook(None)
    for c in (a, b):
        c.execute("SELECT crsql_finalize()")
        c.close()
    label = f"python (apsw {apsw.apsw_version()}, SQLite {apsw.sqlite_lib_version()})"
    if failed:
        print(f"{label}: {len(failed)} checks failed", file=sys.stderr)
        sys.exit(1)
    print(f"{label}: all checks passed")


main()
