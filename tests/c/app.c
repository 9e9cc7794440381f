/* A C app that uses sqlite-crr through bindings/c/crr.h, as SPEC section 1 promises:
 *
 *   app static           the extension linked in (libcrr.a) and registered for every new
 *                        connection with sqlite3_auto_extension;
 *   app load <library>   the shared library loaded with sqlite3_load_extension.
 *
 * Either way two replicas write, exchange their changes through crsql_changes, and must then
 * hold the same rows. Exits 0 on success; prints what differs and exits 1 otherwise.
 * tests/c/run.sh builds and runs it (make test). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crr.h"

static void die(sqlite3 *db, const char *what) {
    fprintf(stderr, "c app: %s: %s\n", what, db ? sqlite3_errmsg(db) : "(no connection)");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "c app: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* The first column of the first row of `sql`, as text (malloc'd; "" for NULL). */
static char *text_of(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) die(db, sql);
    if (sqlite3_step(s) != SQLITE_ROW) die(db, sql);
    const unsigned char *t = sqlite3_column_text(s, 0);
    char *out = strdup(t ? (const char *)t : "");
    sqlite3_finalize(s);
    return out;
}

static sqlite3 *open_replica(const char *load) {
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) die(db, "open");
    if (load) {
        char *err = NULL;
        sqlite3_enable_load_extension(db, 1);
        if (sqlite3_load_extension(db, load, "sqlite3_crr_init", &err) != SQLITE_OK) {
            fprintf(stderr, "c app: loading %s: %s\n", load, err ? err : "?");
            exit(1);
        }
    }
    exec(db, "CREATE TABLE todo(id INTEGER PRIMARY KEY NOT NULL, title TEXT, done INTEGER NOT NULL DEFAULT 0);"
             "SELECT crsql_as_crr('todo');");
    return db;
}

/* Applies every change of `from` to `to`, in one transaction; returns how many. */
static int sync_changes(sqlite3 *from, sqlite3 *to) {
    sqlite3_stmt *read, *write;
    if (sqlite3_prepare_v2(from, "SELECT \"table\", pk, cid, val, col_version, db_version, site_id, cl, seq FROM crsql_changes",
                           -1, &read, NULL) != SQLITE_OK)
        die(from, "read changes");
    if (sqlite3_prepare_v2(to, "INSERT INTO crsql_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &write, NULL) != SQLITE_OK)
        die(to, "prepare merge");
    exec(to, "BEGIN");
    int n = 0, rc;
    while ((rc = sqlite3_step(read)) == SQLITE_ROW) {
        for (int i = 0; i < 9; i++) sqlite3_bind_value(write, i + 1, sqlite3_column_value(read, i));
        if (sqlite3_step(write) != SQLITE_DONE) die(to, "merge");
        sqlite3_reset(write);
        n++;
    }
    if (rc != SQLITE_DONE) die(from, "read changes");
    exec(to, "COMMIT");
    sqlite3_finalize(read);
    sqlite3_finalize(write);
    return n;
}

int main(int argc, char **argv) {
    const char *load = NULL;
    if (argc == 2 && strcmp(argv[1], "static") == 0) {
        if (sqlite3_auto_extension((void (*)(void))sqlite3_crr_init) != SQLITE_OK) die(NULL, "sqlite3_auto_extension");
    } else if (argc == 3 && strcmp(argv[1], "load") == 0) {
        load = argv[2];
    } else {
        fprintf(stderr, "usage: app static | app load <library>\n");
        return 2;
    }
    sqlite3 *a = open_replica(load), *b = open_replica(load);
    char *site_a = text_of(a, "SELECT hex(crsql_site_id())"), *site_b = text_of(b, "SELECT hex(crsql_site_id())");
    if (strlen(site_a) != 32 || strcmp(site_a, site_b) == 0) {
        fprintf(stderr, "c app: site ids %s and %s: want two different 16-byte ids\n", site_a, site_b);
        return 1;
    }
    exec(a, "INSERT INTO todo(id, title) VALUES (1, 'buy milk'), (2, 'write report')");
    exec(b, "INSERT INTO todo(id, title) VALUES (3, 'book flights')");
    int to_b = sync_changes(a, b), to_a = sync_changes(b, a);
    exec(a, "UPDATE todo SET done = 1 WHERE id = 2");
    exec(b, "DELETE FROM todo WHERE id = 1");
    to_b += sync_changes(a, b);
    to_a += sync_changes(b, a);
    const char *rows = "SELECT group_concat(id || ':' || title || ':' || done, ', ') FROM (SELECT * FROM todo ORDER BY id)";
    char *rows_a = text_of(a, rows), *rows_b = text_of(b, rows);
    const char *want = "2:write report:1, 3:book flights:0";
    if (strcmp(rows_a, want) != 0 || strcmp(rows_b, want) != 0) {
        fprintf(stderr, "c app (%s): replicas hold [%s] and [%s], want [%s]\n", argv[1], rows_a, rows_b, want);
        return 1;
    }
    printf("c app (%s, SQLite %s): converged after %d + %d changes\n", argv[1], sqlite3_libversion(), to_b, to_a);
    free(site_a), free(site_b), free(rows_a), free(rows_b);
    sqlite3_close(a);
    sqlite3_close(b);
    return 0;
}
