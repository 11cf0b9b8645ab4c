/* gen/db.c: the database file: create it from gen/schema.sql (embedded in the binary at build
 * time as out/build/gen/schema.inc), upgrade older versions, check integrity.
 *
 * Durability: rollback journal (journal_mode DELETE) with synchronous FULL, so after a commit
 * returns, the change is in lowbit.db itself (no -wal file a copy of the database could miss:
 * render copies it into the site), and a process killed at any point leaves either the old or
 * the new state (SQLite rolls a hot journal back on the next open).
 *
 * Versions: PRAGMA user_version. 0 = an empty file: schema.sql creates everything. Version v < the
 * current one: migrations[v] upgrades v → v+1, all steps inside the one transaction that also
 * sets user_version, so an interrupted upgrade leaves the old version. A newer database than
 * this binary knows is refused. A schema change = add columns/tables to schema.sql, bump its
 * user_version and DB_SCHEMA_VERSION, and add the ALTER TABLE / CREATE TABLE step below. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/pipeline.h"
#include "kernels/common.h"

#include "gen/schema.inc" /* static const unsigned char lowbit_schema_sql[] (NUL-terminated) */

/* migrations[v]: SQL taking version v to v + 1 (v >= 1; version 0 is created from scratch) */
static const char *const migrations[DB_SCHEMA_VERSION] = {
    [0] = NULL, /* schema.sql */
    /* 1 -> 2: the training provenance of models trained by lowbit train (the same tables as
     * schema.sql's; tests/test_pipeline.c compares their columns on a migrated database) */
    [1] = "CREATE TABLE IF NOT EXISTS training (model_id TEXT PRIMARY KEY REFERENCES models(id), "
          "train_json TEXT NOT NULL, source_dir TEXT NOT NULL, files_sha256 TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS training_curve (model_id TEXT NOT NULL REFERENCES "
          "training(model_id) ON DELETE CASCADE, step INTEGER NOT NULL, tokens INTEGER NOT NULL, "
          "train_loss REAL NOT NULL, heldout_loss REAL, lr REAL, seconds REAL, "
          "PRIMARY KEY (model_id, step));",
};

const char *db_schema_sql(void) { return (const char *)lowbit_schema_sql; }

/* the version schema.sql sets (its "PRAGMA user_version = N;") */
static int schema_sql_version(void) {
    for (const char *p = db_schema_sql(); (p = strstr(p, "PRAGMA user_version"));) {
        p += strlen("PRAGMA user_version");
        while (*p == ' ') p++;
        if (*p == '=') return atoi(p + 1);
    }
    return -1;
}

int db_exec(sqlite3 *db, const char *sql, const char *what) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err("%s: %s: %s", sqlite3_db_filename(db, "main"), what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int int_query(sqlite3 *db, const char *sql, int *out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err("%s: %s: %s", sqlite3_db_filename(db, "main"), sql, sqlite3_errmsg(db));
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

void db_close(sqlite3 *db) {
    if (db) sqlite3_close(db);
}

int db_open(const char *path, sqlite3 **out) {
    *out = NULL;
    if (schema_sql_version() != DB_SCHEMA_VERSION)
        BUG("gen/schema.sql sets user_version %d but DB_SCHEMA_VERSION is %d", schema_sql_version(),
            DB_SCHEMA_VERSION);
    char dir[PIPE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (pipe_mkdirs(dir)) return -1;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        err("%s: cannot open the database: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 60000);
    int v = 0, tables = 0;
    if (db_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                "setting up") ||
        db_exec(db, "BEGIN IMMEDIATE", "locking") ||
        int_query(db, "PRAGMA user_version", &v) ||
        int_query(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", &tables))
        goto fail;
    if (v > DB_SCHEMA_VERSION) {
        err("%s: database schema version %d is newer than this lowbit's %d; update lowbit", path,
            v, DB_SCHEMA_VERSION);
        goto fail;
    }
    if (v == 0) {
        if (tables) {
            err("%s: has tables but no lowbit schema version; not a lowbit database?", path);
            goto fail;
        }
        if (db_exec(db, db_schema_sql(), "creating the schema (gen/schema.sql)")) goto fail;
    } else {
        for (int k = v; k < DB_SCHEMA_VERSION; k++) {
            char what[64];
            snprintf(what, sizeof what, "migrating schema version %d to %d", k, k + 1);
            if (!migrations[k]) BUG("no migration from schema version %d", k);
            if (db_exec(db, migrations[k], what)) goto fail;
        }
        if (v < DB_SCHEMA_VERSION) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d", DB_SCHEMA_VERSION);
            if (db_exec(db, sql, "setting the schema version")) goto fail;
        }
    }
    if (db_exec(db, "COMMIT", "committing the schema")) goto fail;
    *out = db;
    return 0;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return -1;
}

int db_check(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    int ret = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
        return err("integrity_check: %s", sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = err("integrity_check: %s", sqlite3_errmsg(db));
    } else {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok"))
            ret = err("%s: PRAGMA integrity_check: %s", sqlite3_db_filename(db, "main"),
                      r ? r : "(no answer)");
    }
    sqlite3_finalize(st);
    if (ret) return ret;
    if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
        return err("foreign_key_check: %s", sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = err("%s: PRAGMA foreign_key_check: table %s has a row without its parent in %s",
                  sqlite3_db_filename(db, "main"), sqlite3_column_text(st, 0),
                  sqlite3_column_text(st, 2));
    else if (rc != SQLITE_DONE)
        ret = err("foreign_key_check: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ret;
}
