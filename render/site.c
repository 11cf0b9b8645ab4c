/* render/site.c: render_site(): read the database once, write every file into a fresh directory
 * beside the target, then swap it into place.
 *
 * The swap: renameat2(RENAME_EXCHANGE) when the target exists (one atomic step: a reader sees the
 * old site or the new one), else a plain rename; where the file system cannot exchange, the old
 * site is renamed away, the new one renamed in, and the old one removed. On any error the
 * temporary directory is removed and the previous site stays as it was.
 *
 * A render killed before it could clean up (kill -9, a machine reset) leaves its temporary
 * directory (.NAME.tmp-XXXXXX) or the renamed-away old site (NAME.old-PID). Each render holds an
 * flock on its temporary directory while it fills it, so the next render removes every
 * .NAME.tmp-* it can lock (its owner is dead; a render still running keeps its lock) and every
 * NAME.old-PID whose process is gone, before it starts. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "render/render_impl.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* ------------------------------------------------------------------ files */

static int mkdirs_for(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return err("render: cannot create directory %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    return 0;
}

int site_write_file(struct site *s, const char *relpath, const void *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->dir, relpath);
    if (strchr(relpath, '/') && mkdirs_for(path)) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return err("render: cannot write %s: %s", path, strerror(errno));
    errno = 0;
    size_t w = fwrite(data, 1, len, f);
    int e = w != len ? errno : 0;
    if (fclose(f) && !e) e = errno;
    if (w != len || e)
        return err("render: writing %s: %s", path, e ? strerror(e) : "short write");
#pragma omp atomic
    s->n_files++;
    return 0;
}

static int read_all(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return err("render: cannot read %s: %s (--templates DIR)", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    if (!b) return err("render: out of memory reading %s", path);
    *out = b;
    *len = n;
    return 0;
}

static int copy_static(struct site *s, const char *name) {
    char path[4096], *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", s->opts->templates_dir, name);
    if (read_all(path, &data, &len)) return -1;
    int rc = site_write_file(s, name, data, len);
    free(data);
    return rc;
}

/* s as one shell word on f: as is when it is plain, else in single quotes ('\'' for a quote) */
static void shell_word(FILE *f, const char *s) {
    bool plain = *s;
    for (const char *p = s; *p; p++)
        plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 strchr("._/-:=+@,%", *p) != NULL;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = s; *p; p++)
        if (*p == '\'') fputs("'\\''", f);
        else fputc(*p, f);
    fputc('\'', f);
}

char *site_repro_command(const struct lb_run *r) {
    const char *cmd = lb_run_prov(r, "repro.command");
    if (cmd && *cmd) {
        char *c = strdup(cmd);
        if (!c) err("render: out of memory (reproduce command)");
        return c;
    }
    /* `lowbit job` plans and runs this one job from models.csv and recipes.csv; the limit is
     * the run's own: --full when no task was limited, --limit N when all were limited to N */
    bool any = false, all_same = r->n_defs > 0;
    double l0 = r->n_defs ? r->defs[0].limit_n : NAN;
    for (int i = 0; i < r->n_defs; i++) {
        double l = r->defs[i].limit_n;
        any |= !isnan(l);
        if (isnan(l) != isnan(l0) || (!isnan(l) && l != l0)) all_same = false;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        err("render: out of memory (reproduce command)");
        return NULL;
    }
    fputs("lowbit job --model-id ", f);
    shell_word(f, r->model_id);
    fputs(" --recipe-id ", f);
    shell_word(f, r->recipe_id);
    if (r->n_defs && !any) fputs(" --full", f);
    else if (all_same && !isnan(l0)) fprintf(f, " --limit %.0f", l0);
    if (fclose(f)) {
        free(text);
        err("render: out of memory (reproduce command)");
        return NULL;
    }
    return text;
}

/* ------------------------------------------------------------------ leftovers */

/* remove what killed renders of parent/base left: .base.tmp-* that no render holds locked, and
 * base.old-PID of processes that are gone */
static void sweep_leftovers(const char *parent, const char *base) {
    DIR *d = opendir(parent);
    if (!d) return;
    char tmp_prefix[300], old_prefix[300];
    snprintf(tmp_prefix, sizeof tmp_prefix, ".%s.tmp-", base);
    snprintf(old_prefix, sizeof old_prefix, "%s.old-", base);
    const size_t nt = strlen(tmp_prefix), no = strlen(old_prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        const bool is_tmp = !strncmp(e->d_name, tmp_prefix, nt);
        const bool is_old = !strncmp(e->d_name, old_prefix, no);
        if (!is_tmp && !is_old) continue;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", parent, e->d_name) < 0) continue;
        bool dead = false;
        if (is_tmp) {
            const int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            dead = fd >= 0 && !flock(fd, LOCK_EX | LOCK_NB);
            if (fd >= 0) close(fd); /* (removing it needs no lock: nobody else wants it) */
        } else {
            char *end = NULL;
            const long pid = strtol(e->d_name + no, &end, 10);
            dead = end && !*end && pid > 0 && kill((pid_t)pid, 0) && errno == ESRCH;
        }
        struct stat st;
        if (dead && !lstat(path, &st) && S_ISDIR(st.st_mode)) rm_tree(path);
        free(path);
    }
    closedir(d);
}

/* ------------------------------------------------------------------ swap */

static int swap_into_place(const char *tmp, const char *out) {
    struct stat st;
    if (lstat(out, &st)) {
        if (errno != ENOENT) return err("render: %s: %s", out, strerror(errno));
        if (rename(tmp, out)) return err("render: rename %s -> %s: %s", tmp, out, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return err("render: %s exists and is not a directory; remove it or choose another -o",
                   out);
    if (!renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE)) {
        rm_tree(tmp); /* now the previous site */
        return 0;
    }
    /* no exchange here (old kernel, some file systems): away, in, remove */
    char old[4200];
    snprintf(old, sizeof old, "%s.old-%ld", out, (long)getpid());
    if (rename(out, old)) return err("render: rename %s -> %s: %s", out, old, strerror(errno));
    if (rename(tmp, out)) {
        int e = errno;
        rename(old, out);
        return err("render: rename %s -> %s: %s", tmp, out, strerror(e));
    }
    rm_tree(old);
    return 0;
}

/* ------------------------------------------------------------------ render */

enum site_step { SITE_STEP_DATASETS, SITE_STEP_RUNS, SITE_STEP_INDEX, SITE_STEP_ABOUT };

/* one of the steps render_site runs beside the charts; sets *failed on error (LOWBIT_DEBUG=1
 * prints its time) */
static void site_step(struct site *s, sqlite3 *db, enum site_step k, int *failed) {
    static const char *const names[] = {"datasets", "runs", "index", "about"};
    int stop;
#pragma omp atomic read
    stop = *failed;
    if (stop) return;
    double t = now_s(), c = (double)clock() / CLOCKS_PER_SEC;
    int rc = k == SITE_STEP_DATASETS ? datasets_write(s, db)
             : k == SITE_STEP_RUNS   ? pages_runs(s)
             : k == SITE_STEP_INDEX  ? page_index(s)
                                     : page_about(s);
    if (rc) {
#pragma omp atomic write
        *failed = 1;
    }
    if (getenv("LOWBIT_DEBUG")) /* cpu: of the whole process */
        fprintf(stderr, "render: %-8s %.2f s (cpu %.2f s)\n", names[k], now_s() - t,
                (double)clock() / CLOCKS_PER_SEC - c);
}

int render_site(const struct render_opts *o, struct render_stats *stats) {
    double t0 = now_s();
    int ret = -1;
    sqlite3 *db = NULL;
    struct lb_data d = {0};
    struct site s = {.opts = o, .d = &d};
    char tmpl[4200];
    bool txn = false;
    int lock_fd = -1;
    err_first_only(true); /* the parallel writers of a full disk: one message */
    /* every file's path is built in 4096-byte buffers under the output directory: refused up
     * front rather than cut short (a cut path names another file, maybe outside the site) */
    if (strlen(o->out_dir) > 3000) {
        err("render: -o: a path of %zu bytes; lowbit takes at most 3000 here", strlen(o->out_dir));
        goto out;
    }

    if (sqlite3_open_v2(o->db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        err("render: cannot open database %s: %s (build it with 'lowbit run' or 'lowbit "
            "collect')",
            o->db_path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    /* one read transaction: the pages and the data/lowbit.db copy show the same snapshot */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        err("render: %s: %s", o->db_path, sqlite3_errmsg(db));
        goto out;
    }
    txn = true;
    if (lb_data_load(&d, db)) goto out;
    if (getenv("LOWBIT_DEBUG")) fprintf(stderr, "render: load     %.2f s\n", now_s() - t0);
    if (d.has_fixture_rows && !o->fixture) {
        err("render: %s holds fixture rows (provenance key 'fixture'); fixtures are never "
            "published: render them only with --fixture, which marks every page",
            o->db_path);
        goto out;
    }
    if (site_templates_load(&s) || site_cols_build(&s)) goto out;

    /* the new site goes beside the target, on the same file system, so rename can swap it */
    char outc[4096];
    snprintf(outc, sizeof outc, "%s", o->out_dir);
    while (strlen(outc) > 1 && outc[strlen(outc) - 1] == '/') outc[strlen(outc) - 1] = 0;
    char parent[4096], pbuf[4096];
    snprintf(pbuf, sizeof pbuf, "%s", outc); /* dirname() writes into its argument */
    snprintf(parent, sizeof parent, "%s", dirname(pbuf));
    char base[4096];
    snprintf(base, sizeof base, "%s", outc);
    snprintf(tmpl, sizeof tmpl, "%s/.%s.tmp-XXXXXX", parent, basename(base));
    {
        char mk[4300];
        snprintf(mk, sizeof mk, "%s/x", parent);
        if (mkdirs_for(mk)) goto out;
    }
    snprintf(base, sizeof base, "%s", outc);
    sweep_leftovers(parent, basename(base));
    if (!mkdtemp(tmpl)) {
        err("render: cannot create a directory in %s: %s", parent, strerror(errno));
        goto out;
    }
    chmod(tmpl, 0755);
    s.dir = tmpl;
    /* held until this render ends: the mark of a live render for sweep_leftovers */
    lock_fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX)) {
        err("render: cannot lock %s: %s", tmpl, strerror(errno));
        goto fail;
    }

    if (copy_static(&s, "style.css") || copy_static(&s, "lowbit.js")) goto fail;
    /* The charts (Cairo, libpng: most of the time) are drawn by OpenMP tasks while two tasks
     * write the rest: the datasets (SQLite, libcsv, jansson: no libxml2) and the run pages, side
     * by side; then the board and the about page, which show the datasets' sizes. libxml2 is only
     * ever used by one task at a time (the depend(xml) chain: runs, then index + about), jansson
     * only by the datasets task. The pages with charts need their sizes: they come after. */
    int n_lay = d.n_groups * CHARTS_PER_GROUP + CHARTS_GLOBAL, failed = 0, dep_data = 0,
        dep_xml = 0;
    s.lay = xcalloc((size_t)n_lay, sizeof *s.lay, "chart layouts");
    if (!s.lay) goto fail;
    (void)dep_data, (void)dep_xml; /* only named by the depend clauses */
    double t_par = now_s();
#pragma omp parallel
#pragma omp single
    {
#pragma omp task shared(failed, s, db) depend(out: dep_data)
        site_step(&s, db, SITE_STEP_DATASETS, &failed);
#pragma omp task shared(failed, s, db) depend(out: dep_xml)
        site_step(&s, db, SITE_STEP_RUNS, &failed);
#pragma omp task shared(failed, s, db) depend(in: dep_data) depend(inout: dep_xml)
        {
            site_step(&s, db, SITE_STEP_INDEX, &failed);
            site_step(&s, db, SITE_STEP_ABOUT, &failed);
        }
        for (int g = 0; g <= d.n_groups; g++) {
#pragma omp task shared(failed) firstprivate(g)
            {
                struct chart_layout *l = &s.lay[g * CHARTS_PER_GROUP];
                int rc = g < d.n_groups ? charts_group(&s, g, &l[0], &l[1], &l[2], &l[3], &l[4], &l[5], &l[6])
                                        : charts_global(&s, &l[0], &l[1], &l[2]);
                if (rc) {
#pragma omp atomic write
                    failed = 1;
                }
            }
        }
    }
    if (getenv("LOWBIT_DEBUG")) fprintf(stderr, "render: parallel %.2f s\n", now_s() - t_par);
    if (failed) goto fail;
    double t_pages = now_s();
    if (pages_models(&s) || page_compare(&s)) goto fail;
    if (getenv("LOWBIT_DEBUG")) fprintf(stderr, "render: models   %.2f s\n", now_s() - t_pages);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    txn = false;
    double t_swap = now_s();
    if (swap_into_place(tmpl, outc)) goto fail;
    if (getenv("LOWBIT_DEBUG")) fprintf(stderr, "render: swap     %.2f s\n", now_s() - t_swap);
    s.dir = NULL;
    ret = 0;
    if (stats) {
        stats->n_runs = d.n_runs;
        stats->n_board = d.n_board;
        stats->n_groups = d.n_groups;
        stats->n_files = s.n_files;
        stats->seconds = now_s() - t0;
    }
    if (!o->quiet)
        fprintf(stderr, "render: %s: %d runs (%d on the board), %d base models, %d files in %.2f s%s\n",
                outc, d.n_runs, d.n_board, d.n_groups, s.n_files, now_s() - t0,
                o->fixture ? " (FIXTURE DATA)" : "");
    goto out;
fail:
    if (s.dir) rm_tree(s.dir);
out:
    if (lock_fd >= 0) close(lock_fd);
    err_first_only(false);
    if (txn) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; s.lay && i < d.n_groups * CHARTS_PER_GROUP + CHARTS_GLOBAL; i++)
        free(s.lay[i].labels);
    free(s.lay);
    site_templates_release(&s);
    site_cols_release(&s);
    lb_data_release(&d);
    sqlite3_close(db);
    return ret;
}
