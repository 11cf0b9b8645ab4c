/* render/render.h: the static site, built from the database alone (issue 6).
 *
 * render_site() reads out/lowbit.db (schema v2 or v1, gen/schema.sql) in one read transaction and
 * writes
 *   index.html            the leaderboard (full table ranked by average without JavaScript)
 *   models/index.html     the base models (+ the held-out loss curves of the trained ones)
 *   models/<slug>.html    one page per base model + charts (+ a trained one's provenance, curve)
 *   runs/<id>.html        one page per run: scores +/- stderr, task definitions, recipe, provenance
 *   compare.html          bigger-and-quantized vs smaller-at-16-bit pairs, size trade-off charts
 *   about.html            tasks, metrics, protocols, how a row is produced and reproduced, datasets
 *   charts/<name>.svg|png Cairo charts (PNG at 2x)
 *   data/leaderboard.csv|json, data/lowbit.db (SQLite backup of the same snapshot)
 *   data/training_curves.csv|json  the curves (and train.json) of models trained by lowbit train
 * into a fresh directory beside out_dir, then swaps it into place (renameat2 RENAME_EXCHANGE, or
 * rename-away/rename-in), so a reader never sees half a site. Identical database, templates and
 * binary give identical bytes in every file. */
#ifndef RENDER_RENDER_H
#define RENDER_RENDER_H
#include <stdbool.h>

struct render_opts {
    const char *db_path;       /* opened read-only */
    const char *out_dir;       /* replaced as a whole */
    const char *templates_dir; /* layout.xhtml, index.xhtml ..., style.css, lowbit.js */
    bool fixture;              /* "FIXTURE DATA" banner on every page, fixture flag in the JSON */
    bool quiet;                /* no summary line on stderr */
    const char *pending_path;  /* lowbit run's OUT/pending.json: the board lists the runs not
                                * done yet (NULL: none) */
};

struct render_stats {
    int n_runs;   /* rows in runs (ok and failed) */
    int n_board;  /* rows on the leaderboard (status ok) */
    int n_groups; /* base models */
    int n_files;  /* files written */
    double seconds;
};

/* 0 on success; -1 with one err() line (the previous site, if any, is left untouched).
 * A database holding rows marked as fixtures (provenance key "fixture") is refused unless
 * o->fixture is set, so fixture rows are never published without their banner. */
int render_site(const struct render_opts *o, struct render_stats *stats);
#endif
