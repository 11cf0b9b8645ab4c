/* gen/cmd_render.c: `lowbit render`: the static site from the database (render/render.h). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "gen/cli.h"
#include "render/render.h"

static const char render_help[] =
    "usage: lowbit render [--db out/lowbit.db] [-o out/site] [--templates DIR] [--fixture]\n"
    "                    [--pending OUT/pending.json] [-q]\n"
    "\n"
    "Build the static site from the database alone: index.html (the leaderboard), one page per\n"
    "base model and per run, compare.html, about.html, charts (SVG + PNG), data/leaderboard.csv,\n"
    "data/leaderboard.json and data/lowbit.db. The site is written beside the target and swapped\n"
    "into place in one step; the same database gives the same bytes.\n"
    "\n"
    "  --db PATH         the database (default out/lowbit.db), opened read-only\n"
    "  -o, --out DIR     the site directory (default out/site), replaced as a whole\n"
    "  --templates DIR   templates/ (default: ./templates, else ../templates beside the binary)\n"
    "  --fixture         the database holds synthetic test rows: every page says FIXTURE DATA;\n"
    "                    a database with fixture rows is refused without it\n"
    "  --pending FILE    lowbit run's pending.json: the board lists the runs not done yet\n"
    "  -q, --quiet       no summary line\n";

/* templates/: ./templates when it exists, else <binary dir>/../templates */
static const char *default_templates(char *buf, size_t n) {
    if (!access("templates/layout.xhtml", R_OK)) return "templates";
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, n, "%s/../templates", exe);
            return buf;
        }
    }
    return "templates";
}

int cmd_render(int argc, char **argv) {
    char tbuf[PATH_MAX + 16];
    struct render_opts o = {.db_path = "out/lowbit.db", .out_dir = "out/site"};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(render_help, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--fixture")) {
            o.fixture = true;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            o.quiet = true;
        } else if ((r = cli_opt(argc, argv, &i, "--db", &v))) {
            if (r < 0) return -1;
            o.db_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v)) ||
                   (r = cli_opt(argc, argv, &i, "-o", &v))) {
            if (r < 0) return -1;
            o.out_dir = v;
        } else if ((r = cli_opt(argc, argv, &i, "--pending", &v))) {
            if (r < 0) return -1;
            o.pending_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "--templates", &v))) {
            if (r < 0) return -1;
            o.templates_dir = v;
        } else {
            return cli_unknown("render", argv[i]);
        }
    }
    if (!o.templates_dir) o.templates_dir = default_templates(tbuf, sizeof tbuf);
    int rc = render_site(&o, NULL);
    /* the process ends here: cairo's font caches and fontconfig's configuration are released
     * so LeakSanitizer (make check) sees nothing left */
    cairo_debug_reset_static_data();
    FcFini();
    return rc;
}
