/* tests/bench_render.c: `make bench`'s figure for the site: the time `lowbit render` takes on N
 * synthetic runs (default 10,000; target < 10 s wall clock).
 *
 *   bench_render [LOWBIT_BIN [N]]      (LOWBIT_BIN default out/lowbit; run from the repository root)
 *
 * Builds a FIXTURE database of N runs with tests/render_fixture.h (fixture_big: 100 recipes per
 * base model, every 97th run failed; deterministic), renders it once with `LOWBIT_BIN render
 * --fixture` in a child process (wall clock from fork to exit, so process start, the database
 * load, the pages, the charts, the datasets and the swap are all in it), then checks the site is
 * complete: one runs/<id>.html per run, the board, models, compare and about pages, and N rows in
 * data/leaderboard.csv, data/leaderboard.json and data/lowbit.db. Prints one line:
 *   render: 10000 runs -> 10007 files, 123.4 MiB in 3.21 s (target < 10 s: met)
 * Exit status 1 when the render failed or the site is incomplete; a missed target is reported in
 * the line, not in the status (the figure depends on the machine and its load). The fixture
 * database and the site (a few hundred MB) are removed at the end. Timed here and not in
 * tests/test_render.c, which checks the same site's contents: a timed test on a shared machine
 * would fail for reasons that are not bugs. */
#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/render_fixture.h"

#define TARGET_SECONDS 10.0
#define RECIPES_PER_MODEL 100

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* files and bytes under dir, and the .html files of its runs/ directory */
struct tally {
    long files, run_pages;
    long long bytes;
};

static void tally_dir(const char *dir, bool in_runs, struct tally *t) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            tally_dir(p, !strcmp(e->d_name, "runs"), t);
            continue;
        }
        t->files++;
        t->bytes += (long long)st.st_size;
        size_t n = strlen(e->d_name);
        if (in_runs && n > 5 && !strcmp(e->d_name + n - 5, ".html")) t->run_pages++;
    }
    closedir(d);
}

static void csv_field(void *s, size_t len, void *data) { (void)s, (void)len, (void)data; }
static void csv_row(int c, void *data) {
    (void)c;
    ++*(long *)data;
}

/* records in a CSV file, header included; -1 when unreadable or malformed */
static long csv_records(const char *path) {
    size_t len = 0;
    char *text = slurp(path, &len);
    if (!text) return -1;
    struct csv_parser p;
    long rows = 0;
    int ok = !csv_init(&p, CSV_STRICT | CSV_APPEND_NULL) &&
             csv_parse(&p, text, len, csv_field, csv_row, &rows) == len &&
             !csv_fini(&p, csv_field, csv_row, &rows);
    csv_free(&p);
    free(text);
    return ok ? rows : -1;
}

static long json_rows(const char *path) {
    json_t *root = json_load_file(path, 0, NULL);
    json_t *rows = json_object_get(root, "rows");
    long n = json_is_array(rows) ? (long)json_array_size(rows) : -1;
    json_decref(root);
    return n;
}

static long db_runs(const char *path) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM runs", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* bin render --db db -o site --fixture -q; the exit status (-1 when it could not run) */
static int render(const char *bin, const char *db, const char *site) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (!pid) {
        execl(bin, bin, "render", "--db", db, "-o", site, "--fixture", "-q", (char *)NULL);
        fprintf(stderr, "bench_render: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool exists(const char *site, const char *rel) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", site, rel);
    return !access(p, R_OK);
}

int main(int argc, char **argv) {
    const char *bin = argc > 1 ? argv[1] : "out/lowbit";
    const long n_runs = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
    if (n_runs < 1 || n_runs > 1000000 ||
        (n_runs > RECIPES_PER_MODEL && n_runs % RECIPES_PER_MODEL)) {
        fprintf(stderr, "usage: bench_render [LOWBIT_BIN [N]]: N runs, 1..%d or a multiple of %d "
                "(default 10000)\n", RECIPES_PER_MODEL, RECIPES_PER_MODEL);
        return 2;
    }
    if (access(bin, X_OK)) {
        fprintf(stderr, "bench_render: %s: %s (build it with make)\n", bin, strerror(errno));
        return 1;
    }
    const int n_recipes = n_runs < RECIPES_PER_MODEL ? (int)n_runs : RECIPES_PER_MODEL;
    const int n_models = (int)(n_runs / n_recipes);

    char dir[256], db[512], site[512], cmd[1200];
    snprintf(dir, sizeof dir, "out/tmp/bench_render.%ld", (long)getpid());
    snprintf(db, sizeof db, "%s/fixture.db", dir);
    snprintf(site, sizeof site, "%s/site", dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd)) {
        fprintf(stderr, "bench_render: cannot create %s\n", dir);
        return 1;
    }

    double t0 = wall();
    if (fixture_big(db, n_models, n_recipes)) {
        fprintf(stderr, "bench_render: building the fixture database %s failed\n", db);
        return 1;
    }
    const double t_db = wall() - t0;
    t0 = wall();
    const int rc = render(bin, db, site);
    const double secs = wall() - t0;

    /* complete: every page and every row */
    struct tally t = {0};
    tally_dir(site, false, &t);
    char p[600];
    snprintf(p, sizeof p, "%s/data/leaderboard.csv", site);
    const long csv = csv_records(p);
    snprintf(p, sizeof p, "%s/data/leaderboard.json", site);
    const long json = json_rows(p);
    snprintf(p, sizeof p, "%s/data/lowbit.db", site);
    const long dbn = db_runs(p);
    static const char *const pages[] = {"index.html", "about.html", "compare.html",
                                        "models/index.html", "style.css", "lowbit.js"};
    int missing = 0;
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
        if (!exists(site, pages[i])) {
            fprintf(stderr, "bench_render: %s/%s is missing\n", site, pages[i]);
            missing++;
        }
    const bool complete = !rc && !missing && t.run_pages == n_runs && csv == n_runs + 1 &&
                          json == n_runs && dbn == n_runs;
    if (!complete)
        fprintf(stderr, "bench_render: incomplete site (render exit %d): %ld of %ld run pages, "
                "leaderboard.csv %ld rows, leaderboard.json %ld rows, lowbit.db %ld runs\n", rc,
                t.run_pages, n_runs, csv - 1, json, dbn);

    printf("render: %ld runs -> %ld files, %.1f MiB in %.2f s (target < %.0f s: %s)\n", n_runs,
           t.files, (double)t.bytes / (1024.0 * 1024.0), secs, TARGET_SECONDS,
           !complete ? "INCOMPLETE" : secs < TARGET_SECONDS ? "met" : "NOT met");
    if (getenv("BENCH_VERBOSE")) /* BENCH_VERBOSE=1: how the fixture was built */
        printf("  fixture database (%d base models x %d recipes) built in %.2f s; %ld run pages\n",
               n_models, n_recipes, t_db, t.run_pages);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "bench_render: could not remove %s\n", dir);
    return complete ? 0 : 1;
}
