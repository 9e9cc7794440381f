"""Replicas on two versions of SQLite: one through apsw (SQLite 3.54), one in the system's
sqlite3 shell (3.40, Debian 12), each a file of its own. Both write random rows (REALs that
the two versions write as text differently among them), run the same schema changes in
brackets, each at its own time (ADD COLUMN with defaults that SQLite 3.40 gives old rows
otherwise than new ones, `DEFAULT 1.0` untyped and `DEFAULT true` in a TEXT column; a 12-step
rebuild that adds a column and drops one; a column renamed; the table renamed; a column added
and one renamed outside a bracket, mended by an empty one), and exchange their changes through
a plain table in a third file, as a transport would; after a last exchange both ways they must
hold the same tables, value for value and type for type, and the same feed. A REAL default of
a TEXT column, which the versions would store as different text, is refused on both.

Run by tests/lang/run.sh (make test) after replicas.py; SQLITE3 names another shell."""

import os
import random
import subprocess
import sys
import tempfile

import apsw

EXT = os.environ.get("CRR_EXTENSION", "dist/crr")
SHELL = os.environ.get("SQLITE3", "/usr/bin/sqlite3")
FEED = 'SELECT "table", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes'
SCHEMA = (
    "CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b REAL, c, d BLOB);"
    "CREATE TABLE u(k TEXT NOT NULL PRIMARY KEY, v NUMERIC, w TEXT) WITHOUT ROWID;"
    "SELECT crsql_as_crr('t'); SELECT crsql_as_crr('u');"
)
MIGRATIONS = [
    "SELECT crsql_begin_alter('t'); ALTER TABLE t ADD COLUMN e DEFAULT 1.0; ALTER TABLE t ADD COLUMN f TEXT DEFAULT true;"
    " SELECT crsql_commit_alter('t');",
    "SELECT crsql_begin_alter('u'); ALTER TABLE u ADD COLUMN g INTEGER DEFAULT 7; SELECT crsql_commit_alter('u');",
    # A 12-step rebuild that adds a column and drops one, then a column renamed.
    "SELECT crsql_begin_alter('t'); CREATE TABLE t_new(id INTEGER PRIMARY KEY NOT NULL, a TEXT, b REAL, c, e DEFAULT 1.0,"
    " f TEXT DEFAULT true, x NUMERIC DEFAULT '2.50'); INSERT INTO t_new(id, a, b, c, e, f) SELECT id, a, b, c, e, f FROM t;"
    " DROP TABLE t; ALTER TABLE t_new RENAME TO t; SELECT crsql_commit_alter('t');",
    "SELECT crsql_begin_alter('u'); ALTER TABLE u RENAME COLUMN w TO w2; SELECT crsql_commit_alter('u');",
    # The table renamed (the feed names it by its new name from then on).
    "SELECT crsql_begin_alter('u'); ALTER TABLE u RENAME TO items; SELECT crsql_commit_alter('items');",
    # A column added, then one renamed, outside a bracket, each mended by the empty bracket an
    # app runs at its start.
    "ALTER TABLE t ADD COLUMN y INTEGER DEFAULT 3; SELECT crsql_begin_alter('t'); SELECT crsql_commit_alter('t');",
    "ALTER TABLE t RENAME COLUMN c TO c2; SELECT crsql_begin_alter('t'); SELECT crsql_commit_alter('t');",
]
failed = []


def check(what, got, want):
    if got != want:
        failed.append(what)
        print(f"FAIL {what}:\n  got  {got!r}\n  want {want!r}", file=sys.stderr)


def literal(v):
    """`v` as SQL text; a REAL with all the digits its value needs."""
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return "x'" + v.hex() + "'"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else "NULL"
    return str(v)


def value(r):
    # REALs that SQLite 3.40 and 3.54 write as text differently, in columns of every affinity.
    return r.choice([
        None, r.randint(-5, 5), r.random() * 10 ** r.randint(-5, 20), 0.1 + 0.2, 1e15, 0.000986, 1.0, 5.0,
        "t%d" % r.randint(0, 99), "  7 ", "1e5", bytes([r.randint(0, 255) for _ in range(3)]),
    ])


def writes(r, side, done):
    """Random writes of one side, as SQL, to the columns its migrations (`done`) left."""
    t_cols = ["a", "b", "c2" if done[6] else "c"] + ([] if done[2] else ["d"]) + (["e", "f"] if done[0] else []) + (["x"] if done[2] else [])
    t_cols += ["y"] if done[5] else []
    w = "w2" if done[3] else "w"
    u = "items" if done[4] else "u"
    out = []
    for _ in range(r.randint(5, 15)):
        i = r.randint(1, 12)
        k = "k%d" % r.randint(1, 6)
        pick = r.randint(0, 9)
        if pick <= 3:
            out.append("INSERT OR REPLACE INTO t(id, %s) VALUES (%d, %s);" % (", ".join(t_cols), i, ", ".join(literal(value(r)) for _ in t_cols)))
        elif pick <= 5:
            out.append("UPDATE t SET %s = %s WHERE id = %d;" % (r.choice(t_cols), literal(value(r)), i))
        elif pick <= 7:
            out.append("INSERT OR REPLACE INTO %s(k, v, %s) VALUES (%s, %s, %s);" % (u, w, literal(k), literal(value(r)), literal("%s-%s" % (side, value(r)))))
        elif pick == 8:
            out.append("DELETE FROM t WHERE id = %d;" % i)
        else:
            col = "g" if done[1] and r.random() < 0.5 else "v"
            out.append("UPDATE %s SET %s = %s WHERE k = %s;" % (u, col, literal(value(r)), literal(k)))
    return out


def shell(db, sql):
    """Runs `sql` in the system's sqlite3 shell on `db`, with the extension loaded; stops at the
    first error, which fails the test."""
    script = ".bail on\n.load %s\n%s\n" % (os.path.abspath(EXT), sql)
    p = subprocess.run([SHELL, "-batch", db], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("sqlite3 shell: %s" % (p.stderr or p.stdout))
    return p.stdout


def main():
    r = random.Random(int(os.environ.get("CRR_VERSIONS_SEED", "7")))
    tmp = tempfile.mkdtemp(prefix="crr-versions-")
    p_db, s_db, box = (os.path.join(tmp, n) for n in ("p.db", "s.db", "box.db"))
    p = apsw.Connection(p_db)
    p.enable_load_extension(True)
    p.load_extension(EXT)
    # (apsw runs the statements of a text as its cursor is read: list() reads it.)
    run = lambda sql, args=None: list(p.execute(sql, args))
    run("PRAGMA journal_mode = WAL; " + SCHEMA)
    version = shell(s_db, "PRAGMA journal_mode = WAL; %s SELECT sqlite_version();" % SCHEMA).split()[-1]
    if version == apsw.sqlite_lib_version():
        print("versions: skipped (the shell's SQLite is apsw's, %s: nothing to compare)" % version)
        return 0

    def p_to_s():
        run("ATTACH ? AS box; DROP TABLE IF EXISTS box.ch; CREATE TABLE box.ch AS " + FEED + "; DETACH box;", (box,))
        shell(s_db, "ATTACH '%s' AS box; INSERT INTO crsql_changes SELECT * FROM box.ch; DETACH box;" % box)

    def s_to_p():
        shell(s_db, "ATTACH '%s' AS box; DROP TABLE IF EXISTS box.ch; CREATE TABLE box.ch AS %s; DETACH box;" % (box, FEED))
        run("ATTACH ? AS box", (box,))
        try:
            run("BEGIN; INSERT INTO crsql_changes SELECT * FROM box.ch; COMMIT;")
        finally:
            if not p.getautocommit():
                run("ROLLBACK")
            run("DETACH box")

    migrated = {"p": [False] * len(MIGRATIONS), "s": [False] * len(MIGRATIONS)}
    for rnd in range(11):
        run("BEGIN; " + " ".join(writes(r, "p", migrated["p"])) + " COMMIT;")
        shell(s_db, "BEGIN; " + " ".join(writes(r, "s", migrated["s"])) + " COMMIT;")
        # Each side runs each migration at its own round, the shell later.
        for side, at in (("p", 1), ("s", 3)):
            for m in range(len(MIGRATIONS)):
                if rnd == at + m and not migrated[side][m]:
                    if side == "p":
                        run(MIGRATIONS[m])
                    else:
                        shell(s_db, MIGRATIONS[m])
                    migrated[side][m] = True
        # A sync a side's schema cannot take yet fails whole (schema mismatch), and is tried
        # again at the next round.
        for sync in (p_to_s, s_to_p) if r.random() < 0.5 else (s_to_p, p_to_s):
            try:
                sync()
            except (apsw.Error, RuntimeError) as e:
                check("round %d: a refused sync says schema mismatch" % rnd, "schema mismatch" in str(e), True)
    p_to_s()
    s_to_p()

    # The REAL default of an added TEXT column is refused on both.
    bad = "SELECT crsql_begin_alter('items'); ALTER TABLE items ADD COLUMN h TEXT DEFAULT 0.000986; SELECT crsql_commit_alter('items');"
    try:
        run(bad)
        check("apsw: a REAL default of an added TEXT column is refused", "accepted", "refused")
    except apsw.Error as e:
        check("apsw: the refusal names the column", 'column "h" has TEXT affinity and DEFAULT 0.000986' in str(e), True)
    try:
        shell(s_db, bad)
        check("shell: a REAL default of an added TEXT column is refused", "accepted", "refused")
    except RuntimeError as e:
        check("shell: the refusal names the column", 'column "h" has TEXT affinity and DEFAULT 0.000986' in str(e), True)

    # The shell's file, read here (values compared as Python holds them: a REAL's bits).
    if not p.getautocommit():
        run("ROLLBACK")
    run("ATTACH ? AS s", (s_db,))
    for table, key in (("t", "id"), ("items", "k")):
        cols = [row[1] for row in p.execute("SELECT * FROM pragma_table_info(?)", (table,))]
        typed = ", ".join("%s, typeof(%s)" % (c, c) for c in cols)
        mine = p.execute("SELECT %s FROM main.%s ORDER BY %s" % (typed, table, key)).fetchall()
        theirs = p.execute("SELECT %s FROM s.%s ORDER BY %s" % (typed, table, key)).fetchall()
        check("table %s: the same on SQLite %s and %s" % (table, apsw.sqlite_lib_version(), version), theirs, mine)
        check("table %s: rows" % table, len(mine) > 3, True)
    portable = "SELECT \"table\", pk, cid, val, col_version, site_id, cl FROM %s ORDER BY 1, 2, 3"
    mine = p.execute(portable % "crsql_changes").fetchall()
    run("DETACH s")
    theirs_file = os.path.join(tmp, "feed.db")
    shell(s_db, "ATTACH '%s' AS box; CREATE TABLE box.feed AS %s; DETACH box;" % (theirs_file, portable % "crsql_changes"))
    run("ATTACH ? AS f", (theirs_file,))
    theirs = p.execute("SELECT * FROM f.feed").fetchall()
    check("the feeds agree", theirs, mine)
    # Texts the two versions write differently did travel (else the test proves little).
    tricky = p.execute("SELECT count(*) FROM crsql_changes WHERE typeof(val) = 'real' AND CAST(val AS TEXT) != printf('%!.15g', val)").fetchone()[0]
    check("REALs the versions write differently travelled", tricky > 0, True)
    if failed:
        print("versions: %d check(s) failed" % len(failed), file=sys.stderr)
        return 1
    print("versions (SQLite %s and the shell's %s): all checks passed" % (apsw.sqlite_lib_version(), version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
