// tests/browser/board.mjs: the leaderboard in a real browser (Debian's headless Chromium),
// driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no npm package, no
// network, nothing downloaded. Run by tests/test_render.c, which renders the fixture site,
// writes the plan (argv[2], JSON) and compares what this prints with the orders it computes in C.
//
// Steps: the page with JavaScript disabled (full table, server-side ranking, controls hidden);
// with JavaScript (same order); rank by KLD, PPL and a task (each choice's order, bands and
// significance marks); a filter and a re-ranking applied through the controls with real
// mouse clicks and typing; the URL hash reloaded in a fresh page (same view); a column sort; the
// 10,000-run site filtered (time to the next frame). Screenshots (PNG) go to plan.shots.
// Prints one JSON object on stdout; exits 1 with a message on stderr when the browser fails.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const W = 1400, H = 900;
mkdirSync(plan.shots, { recursive: true });
const profile = mkdtempSync(path.join(plan.tmp, 'chromium-profile-'));
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-extensions', '--disable-default-apps', '--mute-audio', '--hide-scrollbars',
  '--font-render-hinting=none', `--window-size=${W},${H}`, '--remote-debugging-pipe',
  `--user-data-dir=${profile}`, 'about:blank'];
const proc = spawn(plan.chromium, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
let stderrTail = '';
proc.stderr.on('data', (d) => { stderrTail = (stderrTail + d.toString()).slice(-4000); });
let exited = false;
proc.on('exit', (code) => { exited = true; if (!done) fail(`chromium exited (${code}): ${stderrTail}`); });
let done = false;

function cleanup() {
  if (!exited) try { proc.kill('SIGKILL'); } catch { /* gone */ }
  try { rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
}
function fail(msg) {
  done = true;
  process.stderr.write(`browser test: ${msg}\n`);
  cleanup();
  process.exit(1);
}
const timer = setTimeout(() => fail('timed out after 180 s'), 180000);

// ------------------------------------------------------------------ DevTools protocol on fds 3/4
let nextId = 1;
const pending = new Map();
const listeners = [];
const toBrowser = proc.stdio[3], fromBrowser = proc.stdio[4];
let buf = Buffer.alloc(0);
fromBrowser.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  let i;
  while ((i = buf.indexOf(0)) >= 0) {
    const msg = JSON.parse(buf.subarray(0, i).toString('utf8'));
    buf = buf.subarray(i + 1);
    if (msg.id && pending.has(msg.id)) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p.resolve(msg.result);
    } else if (msg.method) {
      for (const l of listeners.slice()) l(msg);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  const msg = { id, method, params };
  if (sessionId) msg.sessionId = sessionId;
  toBrowser.write(JSON.stringify(msg) + '\0');
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}
function waitEvent(method, sessionId, ms = 60000) {
  return new Promise((resolve, reject) => {
    const l = (m) => {
      if (m.method === method && (!sessionId || m.sessionId === sessionId)) {
        remove(); clearTimeout(t); resolve(m.params);
      }
    };
    const remove = () => { const i = listeners.indexOf(l); if (i >= 0) listeners.splice(i, 1); };
    const t = setTimeout(() => { remove(); reject(new Error(`timeout waiting for ${method}`)); }, ms);
    listeners.push(l);
  });
}

const pageErrors = [];
listeners.push((m) => {
  if (m.method === 'Runtime.exceptionThrown')
    pageErrors.push(m.params.exceptionDetails.exception?.description || m.params.exceptionDetails.text);
  if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error' &&
      !/favicon/.test(m.params.entry.url || ''))
    pageErrors.push(`${m.params.entry.source}: ${m.params.entry.text} ${m.params.entry.url || ''}`);
});

async function newPage(js = true) {
  const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  const S = (m, p) => send(m, p, sessionId);
  await S('Page.enable');
  await S('Runtime.enable');
  await S('Log.enable');
  await S('Emulation.setDeviceMetricsOverride', { width: W, height: H, deviceScaleFactor: 1, mobile: false });
  if (!js) await S('Emulation.setScriptExecutionDisabled', { value: true });
  const page = {
    async goto(url) {
      const loaded = waitEvent('Page.loadEventFired', sessionId, 120000);
      const r = await S('Page.navigate', { url });
      if (r.errorText) throw new Error(`navigate ${url}: ${r.errorText}`);
      await loaded;
    },
    async eval(expr) {
      const r = await S('Runtime.evaluate', { expression: expr, returnByValue: true, awaitPromise: true });
      if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
      return r.result.value;
    },
    async click(selector) {
      const box = await page.eval(`(() => { const e = document.querySelector(${JSON.stringify(selector)});
        if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();
        return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()`);
      if (!box) throw new Error(`no element ${selector}`);
      for (const type of ['mousePressed', 'mouseReleased'])
        await S('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
    },
    async type(selector, text) {
      const ok = await page.eval(`(() => { const e = document.querySelector(${JSON.stringify(selector)});
        if (!e) return false; e.scrollIntoView({block: 'center'}); e.focus(); e.value = ''; return true; })()`);
      if (!ok) throw new Error(`no element ${selector}`);
      await S('Input.insertText', { text });
    },
    async shot(name, full) {
      const params = { format: 'png' };
      if (full) {
        const m = await S('Page.getLayoutMetrics');
        const h = Math.min(Math.ceil(m.cssContentSize.height), 3200);
        params.clip = { x: 0, y: 0, width: W, height: h, scale: 1 };
        params.captureBeyondViewport = true;
      }
      const { data } = await S('Page.captureScreenshot', params);
      writeFileSync(path.join(plan.shots, name), Buffer.from(data, 'base64'));
    },
    close: () => send('Target.closeTarget', { targetId }),
  };
  return page;
}

const order = `Array.from(document.querySelectorAll('#board tbody tr')).map(tr => +tr.id.slice(4))`;
const frame = `new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))`;

// ------------------------------------------------------------------ the steps
try {
  const out = {};
  // 1. no JavaScript: the full board, ranked server-side, controls hidden
  let p = await newPage(false);
  await p.goto(plan.index);
  out.nojs = await p.eval(order);
  // hidden as the reader sees it (a CSS display rule could override the attribute)
  out.nojs_controls_hidden = await p.eval(`getComputedStyle(document.getElementById('controls')).display === 'none'`);
  await p.shot('index-nojs.png', false);
  await p.close();

  // 2. with JavaScript
  p = await newPage(true);
  await p.goto(plan.index);
  out.initial = await p.eval(order);
  out.controls_shown = await p.eval(`getComputedStyle(document.getElementById('controls')).display !== 'none'`);
  await p.shot('index-initial.png', false);

  // 2b. rank by each choice of plan.rank_by (the select, changed as a reader changes it): the
  // order, the band column and the significance classes of the delta column
  out.rank_by = {};
  for (const key of plan.rank_by || []) {
    await p.eval(`(() => { const e = document.getElementById('f-by'); e.value = ${JSON.stringify(key)};
      e.dispatchEvent(new Event('change', {bubbles: true})); })()`);
    await p.eval(frame);
    out.rank_by[key] = await p.eval(`({order: ${order},
      bands: Array.from(document.querySelectorAll('#board tbody tr')).map(tr => +tr.cells[5].textContent),
      delta: Array.from(document.querySelectorAll('#board tbody tr')).map(tr => tr.cells[4].className),
      hash: location.hash, head: document.querySelector('#board thead th:nth-child(4)').textContent})`);
    if (key === 'kld') await p.shot('index-rank-by-kld.png', false);
  }
  await p.eval(`(() => { const e = document.getElementById('f-by'); e.value = 'avg';
    e.dispatchEvent(new Event('change', {bubbles: true})); })()`);
  await p.eval(frame);
  out.rank_by_back = await p.eval(order);

  // 3. filter (checkboxes, clicked) and re-rank (weights, typed)
  for (const a of plan.algorithms) await p.click(`input[name="algorithm"][value="${a}"]`);
  for (const t of plan.all_tasks)
    await p.type(`#w-${t}`, String(plan.weights[t] ?? 0));
  await p.eval(frame);
  out.filtered = await p.eval(order);
  out.filtered_bands = await p.eval(`Array.from(document.querySelectorAll('#board tbody tr')).map(tr => +tr.cells[5].textContent)`);
  out.filtered_delta = await p.eval(`Array.from(document.querySelectorAll('#board tbody tr')).map(tr => tr.cells[4].className)`);
  out.hash = await p.eval('location.hash');
  out.status = await p.eval(`document.getElementById('status').textContent`);
  out.score_head = await p.eval(`document.querySelector('#board thead th:nth-child(4)').textContent`);
  await p.eval(`window.scrollTo(0, 0)`);
  await p.shot('index-filtered-reranked.png', false);

  // 4. a column sort (header button)
  await p.click(`#board thead th[data-key="${plan.sort_key}"] button`);
  await p.eval(frame);
  out.sorted = await p.eval(order);
  out.sorted_hash = await p.eval('location.hash');
  await p.close();

  // 5. the shared URL: a fresh page opened on the hash shows the same view
  p = await newPage(true);
  await p.goto(plan.index + out.hash);
  out.reloaded = await p.eval(order);
  out.reloaded_weights = await p.eval(`Array.from(document.querySelectorAll('.wgrid input')).map(e => +e.value)`);
  await p.close();

  // 6. the other pages render (and their images load)
  for (const [name, url] of Object.entries(plan.pages)) {
    p = await newPage(true);
    await p.goto(url);
    out[`images_${name}`] = await p.eval(`Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)`);
    await p.shot(`${name}.png`, true);
    await p.close();
  }

  // 7. 10,000 rows: time from the filter's input event to the next frame
  if (plan.big_index) {
    p = await newPage(true);
    const t0 = Date.now();
    await p.goto(plan.big_index);
    out.big_load_ms = Date.now() - t0;
    out.big_rows = await p.eval(`document.querySelectorAll('#board tbody tr').length`);
    out.big_status = await p.eval(`document.getElementById('status').textContent`);
    out.big_filter = await p.eval(`(async () => {
      const e = document.getElementById('f-q'); const t0 = performance.now();
      e.value = ${JSON.stringify(plan.big_text)}; e.dispatchEvent(new Event('input', {bubbles: true}));
      await ${frame};
      const ms = performance.now() - t0;
      return {ms, shown: document.querySelectorAll('#board tbody tr').length}; })()`);
    out.big_rerank = await p.eval(`(async () => {
      const e = document.getElementById('w-mmlu'); const t0 = performance.now();
      e.value = '3'; e.dispatchEvent(new Event('input', {bubbles: true}));
      await ${frame};
      return {ms: performance.now() - t0}; })()`);
    out.big_clear = await p.eval(`(async () => {
      const e = document.getElementById('f-q'); const t0 = performance.now();
      e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true}));
      await ${frame};
      return {ms: performance.now() - t0, shown: document.querySelectorAll('#board tbody tr').length}; })()`);
    await p.eval(`window.scrollTo(0, 0)`);
    await p.shot('index-10k.png', false);
    await p.close();
  }
  out.page_errors = pageErrors;
  done = true;
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(out) + '\n');
  await send('Browser.close').catch(() => {});
  cleanup();
  process.exit(0);
} catch (e) {
  fail(e.stack || String(e));
}
