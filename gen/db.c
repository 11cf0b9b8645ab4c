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
 * user_version and DB_SCHEMA_VERSION, and add the ALTER TABLE / CREATE TABLE step below.
 *
 * Errors of the file system: SQLite reports a failed write as "disk I/O error" and has forgotten
 * errno by the time it returns (sqlite3_system_errno() is 0 for a write past a file-size limit).
 * The connections lowbit opens here go through a thin VFS ("lowbit-errno") that hands every call
 * to the default one and keeps the errno of the last failed read, write, truncate or sync, so
 * db_errmsg() can say "disk I/O error (File too large)" and a failure of the environment is
 * told apart from a broken file (gen/run.c retries the former). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/evaluate.h"
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
    /* 2 -> 3: where a failure came from (the runs of earlier versions keep NULL: collect and
     * lowbit run read a result file's error for them) */
    [2] = "ALTER TABLE runs ADD COLUMN failure TEXT CHECK (failure IN ('environment', 'input'));",
    /* 3 -> 4: the tasks table, and the leaderboard view reading its board tasks from it: the view
     * is dropped here and schema.sql (every statement IF NOT EXISTS) creates both afterwards;
     * task_defs.n_truncated (context overflow, issue 17); runs.prefill_tps, decode_tps,
     * run_memory_mb (what it costs to run, issue 17) */
    [3] = "DROP VIEW IF EXISTS leaderboard; ALTER TABLE task_defs ADD COLUMN n_truncated INTEGER;"
          "ALTER TABLE runs ADD COLUMN prefill_tps REAL; ALTER TABLE runs ADD COLUMN decode_tps "
          "REAL; ALTER TABLE runs ADD COLUMN run_memory_mb REAL;",
    /* 4 -> 5: the active parameters of a mixture of experts (issue 19); the rows of earlier
     * versions keep NULL, "not recorded" (a result file says, its model does not) */
    [4] = "ALTER TABLE models ADD COLUMN n_params_active INTEGER;"
          "ALTER TABLE runs ADD COLUMN n_params_active INTEGER;",
};
#define DB_RERUN_SCHEMA_BELOW 4 /* a migration from below this version runs schema.sql after it */

const char *db_schema_sql(void) { return (const char *)lowbit_schema_sql; }

static int int_query(sqlite3 *db, const char *sql, int *out);

/* the columns of task k into st's parameters 1..10 (name, position, label, abbr, title,
 * output_type, metrics, board_metric, n_docs_full, default_limit) */
static void bind_task(sqlite3_stmt *st, int k) {
    const struct task_info *t = task_get((enum task_id)k);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, k);
    sqlite3_bind_text(st, 3, t->label, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->abbr, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, eval_kind_name(t->kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, t->metrics, -1, SQLITE_STATIC);
    if (t->board_metric) sqlite3_bind_text(st, 8, t->board_metric, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 8);
    if (t->expected_docs) sqlite3_bind_int(st, 9, t->expected_docs);
    else sqlite3_bind_null(st, 9);
    if (t->default_limit) sqlite3_bind_int(st, 10, t->default_limit);
    else sqlite3_bind_null(st, 10);
}

int db_write_tasks(sqlite3 *db) {
    /* the rows already there, unchanged: nothing is written (a collect that finds nothing new
     * leaves the file's bytes as they were) */
    sqlite3_stmt *st = NULL;
    int same = 0, n = -1;
    if (int_query(db, "SELECT count(*) FROM tasks", &n)) return -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM tasks WHERE name = ?1 AND position = ?2 AND "
                           "label = ?3 AND abbr = ?4 AND title = ?5 AND output_type = ?6 AND "
                           "metrics = ?7 AND board_metric IS ?8 AND num_fewshot = 0 AND "
                           "n_docs_full IS ?9 AND default_limit IS ?10", -1, &st, NULL) != SQLITE_OK)
        return err("reading the tasks table: %s", db_errmsg(db));
    for (int k = 0; k < TASK_COUNT && n == TASK_COUNT; k++) {
        bind_task(st, k);
        if (sqlite3_step(st) == SQLITE_ROW) same += sqlite3_column_int(st, 0) == 1;
    }
    sqlite3_finalize(st);
    if (n == TASK_COUNT && same == TASK_COUNT) return 0;
    if (db_exec(db, "DELETE FROM tasks", "writing the tasks table")) return -1;
    if (sqlite3_prepare_v2(db, "INSERT INTO tasks (name, position, label, abbr, title, "
                           "output_type, metrics, board_metric, num_fewshot, n_docs_full, "
                           "default_limit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
                           -1, &st, NULL) != SQLITE_OK)
        return err("writing the tasks table: %s", db_errmsg(db));
    int rc = 0;
    for (int k = 0; k < TASK_COUNT && !rc; k++) {
        bind_task(st, k);
        if (sqlite3_step(st) != SQLITE_DONE) rc = err("writing the tasks table: %s", db_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* the version schema.sql sets (its "PRAGMA user_version = N;") */
static int schema_sql_version(void) {
    for (const char *p = db_schema_sql(); (p = strstr(p, "PRAGMA user_version"));) {
        p += strlen("PRAGMA user_version");
        while (*p == ' ') p++;
        if (*p == '=') return atoi(p + 1);
    }
    return -1;
}

/* ===== the errno-keeping VFS ===== */

static _Thread_local int io_errno; /* of the last failed file operation of this thread */

struct ef_file {
    sqlite3_file base; /* pMethods = &ef_io */
    sqlite3_file *real; /* the default VFS's file, allocated right after this struct */
};
#define REAL(f) (((struct ef_file *)(f))->real)
#define KEEP(rc)                                                                                   \
    do {                                                                                           \
        if ((rc) != SQLITE_OK && errno) io_errno = errno;                                          \
    } while (0)

static int ef_close(sqlite3_file *f) {
    return REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
}
static int ef_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off) {
    errno = 0;
    int rc = REAL(f)->pMethods->xRead(REAL(f), b, n, off);
    if (rc != SQLITE_IOERR_SHORT_READ) KEEP(rc);
    return rc;
}
static int ef_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off) {
    errno = 0;
    int rc = REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
    KEEP(rc);
    return rc;
}
static int ef_truncate(sqlite3_file *f, sqlite3_int64 size) {
    errno = 0;
    int rc = REAL(f)->pMethods->xTruncate(REAL(f), size);
    KEEP(rc);
    return rc;
}
static int ef_sync(sqlite3_file *f, int flags) {
    errno = 0;
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    KEEP(rc);
    return rc;
}
static int ef_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ef_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int ef_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int ef_check_lock(sqlite3_file *f, int *out) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ef_control(sqlite3_file *f, int op, void *arg) {
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ef_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int ef_device(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int ef_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **p) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int ef_shm_lock(sqlite3_file *f, int off, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void ef_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int ef_shm_unmap(sqlite3_file *f, int del) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int ef_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p) {
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}
static int ef_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

/* the methods a file of the default VFS has (version 1, 2 or 3): ours offer the same version */
static sqlite3_io_methods ef_io[4];
static sqlite3_vfs ef_vfs, *ef_base;

static int ef_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    struct ef_file *p = (struct ef_file *)f;
    p->real = (sqlite3_file *)(p + 1);
    p->base.pMethods = NULL;
    errno = 0;
    int rc = ef_base->xOpen(ef_base, name, p->real, flags, out);
    if (rc != SQLITE_OK) {
        KEEP(rc);
        return rc;
    }
    const int v = p->real->pMethods ? p->real->pMethods->iVersion : 1;
    p->base.pMethods = &ef_io[v >= 1 && v <= 3 ? v : 1];
    return rc;
}

static void ef_register(void) {
    static int done;
    if (done) return;
    done = 1;
    if (!(ef_base = sqlite3_vfs_find(NULL))) return;
    for (int v = 1; v <= 3; v++)
        ef_io[v] = (sqlite3_io_methods){
            .iVersion = v, .xClose = ef_close, .xRead = ef_read, .xWrite = ef_write,
            .xTruncate = ef_truncate, .xSync = ef_sync, .xFileSize = ef_file_size,
            .xLock = ef_lock, .xUnlock = ef_unlock, .xCheckReservedLock = ef_check_lock,
            .xFileControl = ef_control, .xSectorSize = ef_sector,
            .xDeviceCharacteristics = ef_device, .xShmMap = v >= 2 ? ef_shm_map : NULL,
            .xShmLock = v >= 2 ? ef_shm_lock : NULL, .xShmBarrier = v >= 2 ? ef_shm_barrier : NULL,
            .xShmUnmap = v >= 2 ? ef_shm_unmap : NULL, .xFetch = v >= 3 ? ef_fetch : NULL,
            .xUnfetch = v >= 3 ? ef_unfetch : NULL};
    ef_vfs = *ef_base;
    ef_vfs.zName = "lowbit-errno";
    ef_vfs.szOsFile = (int)sizeof(struct ef_file) + ef_base->szOsFile;
    ef_vfs.xOpen = ef_open;
    ef_vfs.pAppData = NULL;
    sqlite3_vfs_register(&ef_vfs, 0);
}

const char *db_errmsg(sqlite3 *db) {
    static _Thread_local char buf[512];
    if (!db) return "out of memory";
    int e = sqlite3_system_errno(db);
    if (!e) e = io_errno;
    const int code = sqlite3_errcode(db) & 0xff;
    /* the system's reason behind "disk I/O error", "database or disk is full" ... (EFBIG, EIO,
     * ENOSPC, EDQUOT): what tells a full disk or a file-size limit from a broken file */
    if (e && (code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN ||
              code == SQLITE_READONLY))
        snprintf(buf, sizeof buf, "%s (%s)", sqlite3_errmsg(db), strerror(e));
    else
        snprintf(buf, sizeof buf, "%s", sqlite3_errmsg(db));
    return buf;
}

int db_exec(sqlite3 *db, const char *sql, const char *what) {
    char *msg = NULL;
    io_errno = 0;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err("%s: %s: %s", sqlite3_db_filename(db, "main"), what, db_errmsg(db));
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
        return err("%s: %s: %s", sqlite3_db_filename(db, "main"), sql, db_errmsg(db));
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
    const char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        char *dir = xstrndup(path, (size_t)(slash - path), "a directory name");
        const int rc = dir ? mkdir_p(dir) : -1;
        free(dir);
        if (rc) return -1;
    }
    sqlite3 *db = NULL;
    ef_register();
    io_errno = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        ef_base ? "lowbit-errno" : NULL) != SQLITE_OK) {
        err("%s: cannot open the database: %s", path, db_errmsg(db));
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
        if (v < DB_RERUN_SCHEMA_BELOW &&
            db_exec(db, db_schema_sql(), "creating the new tables (gen/schema.sql)"))
            goto fail;
        if (v < DB_SCHEMA_VERSION) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d", DB_SCHEMA_VERSION);
            if (db_exec(db, sql, "setting the schema version")) goto fail;
        }
    }
    if (db_write_tasks(db) || db_exec(db, "COMMIT", "committing the schema")) goto fail;
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
        return err("integrity_check: %s", db_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW) {
        ret = err("integrity_check: %s", db_errmsg(db));
    } else {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok"))
            ret = err("%s: PRAGMA integrity_check: %s", sqlite3_db_filename(db, "main"),
                      r ? r : "(no answer)");
    }
    sqlite3_finalize(st);
    if (ret) return ret;
    if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
        return err("foreign_key_check: %s", db_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = err("%s: PRAGMA foreign_key_check: table %s has a row without its parent in %s",
                  sqlite3_db_filename(db, "main"), sqlite3_column_text(st, 0),
                  sqlite3_column_text(st, 2));
    else if (rc != SQLITE_DONE)
        ret = err("foreign_key_check: %s", db_errmsg(db));
    sqlite3_finalize(st);
    return ret;
}
