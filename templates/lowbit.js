/* lowbit.js: filtering, sorting and re-ranking of the leaderboard, with the view in the URL hash.
 *
 * The page is complete without this script (the whole board, ranked by average). The script reads
 * the rows' values from <script id="board-data"> (JSON, the same numbers as data/leaderboard.json)
 * and only shows, hides and reorders the existing <tr> elements and rewrites two cells per row (rank
 * and score) with textContent: no markup is ever built from data. Nothing is fetched. With
 * JavaScript the first 200 rows of a view are shown, and a button shows the rest.
 *
 * Rank by: the average (with the task weights below it), the KLD, the perplexity or one task.
 * Each choice other than custom weights carries statistics lowbit render computed (D.by, each
 * row's "by" column: rank, tie band, delta against the baseline and its 95% interval): the
 * script only shows them. Custom weights cannot be precomputed: for them the script compares
 * runs itself, from each row's per-document results ("bits"), with a normal approximation
 * (weightStats below; about.html#statistics).
 *
 * Hash: #by=kld&q=text&algorithm=gptq,awq&class=rotation&wdtype=int4&cdtype=..&group=128&dq=1&smin=0.1&smax=4
 *       &w=hellaswag:2,mmlu:1&sort=avg&dir=desc   (w lists the tasks with weight != 1; a task
 *       not listed keeps weight 1, unless w starts with "only:" when unlisted tasks weigh 0). */
(function () {
  "use strict";
  var dataEl = document.getElementById("board-data");
  var table = document.getElementById("board");
  var form = document.getElementById("controls");
  if (!dataEl || !table || !form) return;
  var D = JSON.parse(dataEl.textContent);
  var C = {};
  D.cols.forEach(function (c, i) { C[c] = i; });
  var TASKS = D.tasks;
  var BY = {};
  D.by.forEach(function (b, i) { BY[b.key] = i; b.index = i; });
  var tbody = table.tBodies[0];
  var BASE = {}; /* group -> its baseline's row (by state 3) */
  var rows = D.rows.map(function (r) {
    var tr = document.getElementById("run-" + r[C.id]);
    var text = [r[C.model], r[C.recipe], r[C.algorithm], r[C["class"]], r[C.wdtype]].join(" ").toLowerCase();
    return { d: r, tr: tr, text: text, score: r[C.avg] };
  }).filter(function (x) { return x.tr; });
  rows.forEach(function (r) { if (r.d[C.by][0][2] === 3) BASE[r.d[C.base]] = r; });
  var total = rows.length;
  var MAXW = 10, LIMIT = 200, showAll = false;

  /* ---------------------------------------------------------------- state */
  function defaults() {
    var w = {};
    TASKS.forEach(function (t) { w[t] = 1; });
    return { by: "avg", q: "", algorithm: [], "class": [], wdtype: [], cdtype: [], group: [], dq: "", smin: "",
             smax: "", w: w, sort: "avg", dir: "desc" };
  }
  var state = defaults();

  function weightsDefault(w) {
    return TASKS.every(function (t) { return w[t] === 1; });
  }

  function encode(s) {
    var parts = [];
    function put(k, v) { if (v !== "" && v !== null && v !== undefined) parts.push(k + "=" + v); }
    if (s.by !== "avg") put("by", encodeURIComponent(s.by));
    put("q", encodeURIComponent(s.q));
    ["algorithm", "class", "wdtype", "cdtype", "group"].forEach(function (k) {
      put(k, s[k].map(encodeURIComponent).join(","));
    });
    put("dq", s.dq);
    put("smin", s.smin);
    put("smax", s.smax);
    if (!weightsDefault(s.w)) {
      var zeros = TASKS.filter(function (t) { return s.w[t] === 0; }).length;
      var only = zeros * 2 > TASKS.length;
      var ws = TASKS.filter(function (t) { return only ? s.w[t] !== 0 : s.w[t] !== 1; })
        .map(function (t) { return t + ":" + s.w[t]; });
      put("w", (only ? "only:" : "") + ws.join(","));
    }
    if (s.sort !== "avg" || s.dir !== "desc") { put("sort", encodeURIComponent(s.sort)); put("dir", s.dir); }
    return parts.join("&");
  }

  function num(v) {
    var x = parseFloat(v);
    return isFinite(x) ? x : null;
  }

  function decode(h) {
    var s = defaults();
    h.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k = i < 0 ? kv : kv.slice(0, i), v = i < 0 ? "" : kv.slice(i + 1);
      try {
        if (k === "q") s.q = decodeURIComponent(v);
        else if (k === "by" && BY.hasOwnProperty(decodeURIComponent(v))) s.by = decodeURIComponent(v);
        else if (k === "algorithm" || k === "class" || k === "wdtype" || k === "cdtype" || k === "group")
          s[k] = v ? v.split(",").map(decodeURIComponent) : [];
        else if (k === "dq" && (v === "0" || v === "1")) s.dq = v;
        else if ((k === "smin" || k === "smax") && num(v) !== null) s[k] = String(num(v));
        else if (k === "w") {
          var only = v.indexOf("only:") === 0;
          if (only) { v = v.slice(5); TASKS.forEach(function (t) { s.w[t] = 0; }); }
          v.split(",").forEach(function (p) {
            var j = p.lastIndexOf(":"), t = p.slice(0, j), x = num(p.slice(j + 1));
            if (j > 0 && s.w.hasOwnProperty(t) && x !== null && x >= 0 && x <= MAXW) s.w[t] = x;
          });
        } else if (k === "sort") s.sort = decodeURIComponent(v);
        else if (k === "dir" && (v === "asc" || v === "desc")) s.dir = v;
      } catch (e) { /* a malformed part of a hand-edited hash is ignored */ }
    });
    return s;
  }

  /* ---------------------------------------------------------------- controls <-> state */
  var $ = function (id) { return document.getElementById(id); };
  var wInputs = TASKS.map(function (t) { return $("w-" + t); });

  function toControls(s) {
    $("f-by").value = s.by;
    $("f-q").value = s.q;
    ["algorithm", "class", "wdtype", "cdtype", "group"].forEach(function (k) {
      form.querySelectorAll('input[name="' + k + '"]').forEach(function (cb) {
        cb.checked = s[k].indexOf(cb.value) >= 0;
      });
    });
    $("f-dq").value = s.dq;
    $("f-smin").value = s.smin;
    $("f-smax").value = s.smax;
    TASKS.forEach(function (t, i) { if (wInputs[i]) wInputs[i].value = s.w[t]; });
  }

  function fromControls() {
    var s = defaults();
    if (BY.hasOwnProperty($("f-by").value)) s.by = $("f-by").value;
    s.q = $("f-q").value.trim();
    ["algorithm", "class", "wdtype", "cdtype", "group"].forEach(function (k) {
      form.querySelectorAll('input[name="' + k + '"]:checked').forEach(function (cb) { s[k].push(cb.value); });
    });
    s.dq = $("f-dq").value;
    s.smin = num($("f-smin").value) === null ? "" : String(num($("f-smin").value));
    s.smax = num($("f-smax").value) === null ? "" : String(num($("f-smax").value));
    TASKS.forEach(function (t, i) {
      var x = wInputs[i] ? num(wInputs[i].value) : 1;
      s.w[t] = x === null ? 0 : Math.min(MAXW, Math.max(0, x));
    });
    s.sort = state.sort;
    s.dir = state.dir;
    return s;
  }

  /* ---------------------------------------------------------------- score, filter, sort */
  /* the weighted mean over tasks with weight > 0, null when one of them is missing; with every
   * weight 1 it is the stored average itself (the server-side ranking, bit for bit) */
  function scoreOf(r, w, plain) {
    if (plain) return r.d[C.avg];
    var acc = r.d[C.tasks], s = 0, ws = 0;
    for (var i = 0; i < TASKS.length; i++) {
      var wt = w[TASKS[i]];
      if (!(wt > 0)) continue;
      if (acc[i] === null) return null;
      s += wt * acc[i];
      ws += wt;
    }
    return ws > 0 ? s / ws : null;
  }

  /* the score of a fixed choice (not custom weights) */
  function byScore(r, b) {
    if (b.key === "avg") return r.d[C.avg];
    if (b.key === "kld") return r.d[C.kld];
    if (b.key === "ppl") return r.d[C.pplc];
    return r.d[C.tasks][TASKS.indexOf(b.key)];
  }

  var curB = null; /* the choice of the current view (apply) */
  function keyOf(r, k) {
    if (k === "avg" || k === "rank") return r.order;
    if (k === "band") return curB ? r.d[C.by][curB.index][1] : r.wx ? r.wx[1] : null;
    if (k === "davg") return curB ? r.d[C.by][curB.index][3] : r.wx ? r.wx[3] : null;
    var ti = TASKS.indexOf(k);
    if (ti >= 0) return r.d[C.tasks][ti];
    if (k === "model") return (r.d[C.model] + " " + r.d[C.recipe]).toLowerCase();
    if (k in C) return r.d[C[k]];
    return null;
  }

  function passes(r, s, q, smin, smax) {
    var d = r.d;
    if (q && r.text.indexOf(q) < 0) return false;
    if (s.algorithm.length && s.algorithm.indexOf(d[C.algorithm] || "") < 0) return false;
    if (s["class"].length && s["class"].indexOf(d[C["class"]] || "") < 0) return false;
    if (s.wdtype.length && s.wdtype.indexOf(d[C.wdtype] || "") < 0) return false;
    if (s.cdtype.length && s.cdtype.indexOf(d[C.cdtype] || "") < 0) return false;
    if (s.group.length && (d[C.group] === null || s.group.indexOf(String(d[C.group])) < 0)) return false;
    if (s.dq !== "" && d[C.dq] !== +s.dq) return false;
    if (smin !== null && !(d[C.size] !== null && d[C.size] >= smin * 1e9)) return false;
    if (smax !== null && !(d[C.size] !== null && d[C.size] <= smax * 1e9)) return false;
    return true;
  }

  var moreBtn = $("show-all");
  var headCells = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var scoreHead = headCells[3], deltaHead = headCells[4];

  /* "+1.23" with the sign C's %+.2f gives */
  function signed(x, digits) {
    return (x < 0 || (x === 0 && 1 / x < 0) ? "" : "+") + x.toFixed(digits);
  }

  /* an interval's bound: more decimals (up to 6) while a non-zero bound would read 0, as
   * render's fmt_bound */
  function bound(x, digits) {
    var t = signed(x, digits);
    while (digits < 6 && x !== 0 && parseFloat(t) === 0) t = signed(x, ++digits);
    return t;
  }

  /* the score cell's text for choice b */
  function scoreText(v, b) {
    if (v === null || v === undefined) return "";
    if (b && b.key === "kld") return fmtG(v, 3);
    if (b && b.key === "ppl") return fmtG(v, 4);
    return (v * 100).toFixed(2);
  }

  /* C's %.Ng */
  function fmtG(v, sig) {
    if (v === 0) return "0";
    var e = Math.floor(Math.log10(Math.abs(v)));
    var t = v.toPrecision(sig);
    if (e < -4 || e >= sig) return t.replace(/\.?0+e/, "e").replace(/e([+-])(\d)$/, "e$10$2");
    return t.indexOf(".") >= 0 ? t.replace(/\.?0+$/, "") : t;
  }

  /* the delta cell of choice b (as render/pages_board.c writes it for the average): the estimate
   * against the baseline and its interval, "≈" when the interval includes 0; the KLD shows the
   * mean KLD itself (a difference from the unquantized model already), the PPL its change in % */
  var WCHOICE = { key: "w", label: "Score" };
  var DELTA_TITLE = {
    avg: "average minus the model's fp baseline on the same documents, percentage points, with " +
      "its 95% simultaneous paired-bootstrap interval; \u2248 = not significantly different",
    kld: "mean KL divergence from the unquantized model with its 95% simultaneous bootstrap interval over " +
      "chunks; \u2248 = not significantly above 0",
    ppl: "perplexity change against the model's fp baseline (%), llama.cpp protocol, with its " +
      "95% simultaneous paired-bootstrap interval over chunks; \u2248 = not significantly different",
    task: "accuracy minus the model's fp baseline on the same documents, percentage points, " +
      "with its 95% simultaneous paired-bootstrap interval; \u2248 = not significantly different",
    w: "weighted score minus the model's fp baseline's on the same documents, percentage " +
      "points, with a 95% interval from the normal approximation of the paired differences, " +
      "simultaneous over the model's runs (Bonferroni; computed in the page); \u2248 = not " +
      "significantly different"
  };
  /* ------------------------------------------------------------ custom weights: statistics */
  /* Two runs scored on the same documents of a task (same signature) are compared by the
   * weighted mean of the tasks' mean paired differences, with se^2 = sum_t (w_t/W)^2 s_t^2 / n_t,
   * s_t^2 the sample variance of the per-document differences (from the counts of documents only
   * one of the two got right). Its interval is delta +- z se, simultaneous by Bonferroni's rule
   * like render's max-|T| intervals: z = the normal quantile 1 - 0.05 / (2 m), m = the model's runs
   * compared with its baseline (for their deltas), or every pair of scored runs on the board (for
   * the tie bands, which follow the weighted order down the whole board as render's do). */
  var POP = new Uint8Array(256);
  for (var pi = 1; pi < 256; pi++) POP[pi] = (pi & 1) + POP[pi >> 1];
  function bitsOf(r, t) {
    if (!r.bits) r.bits = [];
    if (r.bits[t] === undefined) {
      var b = r.d[C.bits], x = b && b[t];
      if (!x) r.bits[t] = null;
      else {
        var hex = x[2], u = new Uint8Array(hex.length >> 1);
        for (var k = 0; k < u.length; k++) u[k] = parseInt(hex.substr(2 * k, 2), 16);
        r.bits[t] = { sig: x[0], n: x[1], u: u };
      }
    }
    return r.bits[t];
  }

  /* [delta, se] of a - b under weights w, null when not comparable */
  function compareW(a, b, w) {
    var W = 0, delta = 0, v = 0, t;
    for (t = 0; t < TASKS.length; t++) if (w[TASKS[t]] > 0) W += w[TASKS[t]];
    if (!(W > 0)) return null;
    for (t = 0; t < TASKS.length; t++) {
      var wt = w[TASKS[t]] / W;
      if (!(wt > 0)) continue;
      var x = bitsOf(a, t), y = bitsOf(b, t);
      if (!x || !y || x.sig !== y.sig || x.n !== y.n || x.n < 2) return null;
      var n10 = 0, n01 = 0;
      for (var k = 0; k < x.u.length; k++) {
        n10 += POP[x.u[k] & ~y.u[k] & 255];
        n01 += POP[y.u[k] & ~x.u[k] & 255];
      }
      var d = (n10 - n01) / x.n, s2 = ((n10 + n01) / x.n - d * d) * x.n / (x.n - 1);
      delta += wt * d;
      v += wt * wt * s2 / x.n;
    }
    return [delta, Math.sqrt(v)];
  }

  /* the standard normal quantile of p (0 < p < 1; Acklam's rational approximation, relative
   * error below 1.2e-9) */
  function normInv(p) {
    var a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269,
      -30.66479806614716, 2.506628277459239];
    var b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
      -13.28068155288572];
    var c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
      4.374664141464968, 2.938163982698783];
    var e = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
    if (p > 0.5) return -normInv(1 - p);
    if (p < 0.02425) {
      var q = Math.sqrt(-2 * Math.log(p));
      return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((e[0] * q + e[1]) * q + e[2]) * q + e[3]) * q + 1);
    }
    var u = p - 0.5, r = u * u;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * u /
      (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  /* Bonferroni's critical value for m statements at 95% together */
  function zcrit(m) { return -normInv(0.025 / Math.max(1, m)); }
  function ci(c, z) { return [c[0], c[0] - z * c[1], c[0] + z * c[1]]; }

  /* r.wx = [0, band, state, delta, lo, hi] of every row under weights w (as the "by" column) */
  function weightStats(w) {
    var all = rows.slice().sort(function (a, b) {
      var an = a.score === null, bn = b.score === null;
      if (an !== bn) return an ? 1 : -1;
      if (!an && a.score !== b.score) return b.score - a.score;
      return a.d[C.id] - b.d[C.id];
    });
    var i, r, base, m = {}, scored = 0;
    for (i = 0; i < all.length; i++) {
      r = all[i];
      base = BASE[r.d[C.base]];
      r.wc = base && base !== r ? compareW(r, base, w) : null;
      if (r.wc) m[r.d[C.base]] = (m[r.d[C.base]] || 0) + 1;
      if (r.score !== null) scored++;
    }
    var zp = zcrit(scored * (scored - 1) / 2), band = 0;
    for (i = 0; i < all.length; i++) {
      r = all[i];
      var c = i && r.score !== null ? compareW(all[i - 1], r, w) : null;
      if (!c || Math.abs(c[0]) > zp * c[1]) band++;
      base = BASE[r.d[C.base]];
      var x = r.wc ? ci(r.wc, zcrit(m[r.d[C.base]])) : null;
      r.wx = base === r ? [0, band, 3, null, null, null] :
        x ? [0, band, 1, x[0], x[1], x[2]] : [0, band, 0, null, null, null];
    }
  }

  function deltaCell(td, x, b, cacheKey) {
    var state = x ? x[2] : 0, text, ci = "", cls = "num", title = "";
    if (!b) {
      text = "";
    } else if (state === 3) {
      text = "baseline";
      cls = "num base";
    } else if (state === 2) {
      text = "n/a";
      title = "scored on other documents than the baseline: not compared";
    } else if (state !== 1 || x[3] === null) {
      text = "";
    } else {
      var f = b.key === "kld" ? function (v) { return fmtG(v, 3); } :
        b.key === "ppl" ? function (v, g) { return g(Math.expm1(v) * 100, 1); } :
        function (v, g) { return g(v * 100, 2); };
      var sig = x[4] > 0 || x[5] < 0;
      text = (sig ? "" : "\u2248") + f(x[3], signed);
      ci = " [" + f(x[4], bound) + ", " + f(x[5], bound) + "]";
      cls = sig ? "num sig" : "num ns";
      title = sig ? "significantly different from " + (b.key === "kld" ? "0" : "the baseline") +
        " (95% interval excludes 0)" : "not significantly different from " +
        (b.key === "kld" ? "0" : "the baseline") + " (95% interval includes 0)";
    }
    if (td.getAttribute("data-by") === cacheKey) return;
    td.setAttribute("data-by", cacheKey);
    td.textContent = text;
    if (ci) {
      var sp = document.createElement("span");
      sp.className = "ci";
      sp.textContent = ci;
      td.appendChild(sp);
    }
    td.className = cls;
    if (title) td.title = title;
    else td.removeAttribute("title");
  }

  function apply(s) {
    var t0 = performance.now();
    var plain = weightsDefault(s.w);
    /* b: the fixed choice whose statistics are shown, null for custom weights */
    var b = s.by !== "avg" || plain ? D.by[BY[s.by]] : null;
    curB = b;
    wInputs.forEach(function (e) { if (e) e.disabled = s.by !== "avg"; });
    var q = s.q.toLowerCase(), smin = num(s.smin), smax = num(s.smax);
    var shown = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      r.score = b ? byScore(r, b) : scoreOf(r, s.w, false);
      /* larger is better: the published rank of a fixed choice, else the weighted score */
      r.order = r.score === null ? null : b ? -r.d[C.by][b.index][0] : r.score;
      if (passes(r, s, q, smin, smax)) shown.push(r);
    }
    var wkey = "";
    if (!b) {
      weightStats(s.w);
      wkey = "w:" + TASKS.map(function (t) { return s.w[t]; }).join(",");
    }
    var k = s.sort, sign = s.dir === "asc" ? 1 : -1;
    var numeric = k === "avg" || k === "rank" || TASKS.indexOf(k) >= 0 ||
      ["group", "dq", "bits", "size", "params", "ppl", "kld", "bpw", "qsec", "davg", "band", "prefill", "decode", "mem"].indexOf(k) >= 0;
    if (k === "rank") sign = -sign; /* rank ascending = best score first */
    shown.sort(function (a, b) {
      var x = keyOf(a, k), y = keyOf(b, k);
      var xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn !== yn) return xn ? 1 : -1; /* missing values last, either direction */
      if (!xn && x !== y) {
        if (numeric) return (x < y ? -1 : 1) * sign;
        return (String(x) < String(y) ? -1 : 1) * sign;
      }
      return a.d[C.id] - b.d[C.id];
    });
    /* rank = position in this view; the score cell shows the current score. The rows go into a
     * new, detached <tbody> that replaces the old one: inserting into a live table re-styles
     * every following row on each insertion (quadratic with :nth-child), a detached one is
     * styled once. At most LIMIT rows are shown until "Show all" is pressed: a 10,000-row
     * table takes the browser far longer to lay out than the filtering itself. */
    var n = showAll ? shown.length : Math.min(shown.length, LIMIT);
    var nb = document.createElement("tbody");
    for (var j = 0; j < n; j++) {
      var row = shown[j], rank = String(j + 1);
      var sc = scoreText(row.score, b);
      var x = b ? row.d[C.by][b.index] : row.wx;
      var band = x ? String(x[1]) : "";
      if (row.tr.cells[0].textContent !== rank) row.tr.cells[0].textContent = rank;
      if (row.tr.cells[3].textContent !== sc) row.tr.cells[3].textContent = sc;
      deltaCell(row.tr.cells[4], x, b || WCHOICE, b ? b.key : wkey);
      if (row.tr.cells[5].textContent !== band) row.tr.cells[5].textContent = band;
      row.tr.className = x ? (x[1] % 2 ? "band-odd" : "band-even") : "";
      nb.appendChild(row.tr);
    }
    table.replaceChild(nb, tbody);
    tbody = nb;
    moreBtn.hidden = n === shown.length;
    moreBtn.textContent = "Show all " + shown.length + " rows";
    if (scoreHead) {
      var label = scoreHead.querySelector("button") || scoreHead;
      label.textContent = b ? b.label : "Score";
      scoreHead.title = !b ? "weighted mean of the chosen tasks' accuracies (%)" :
        b.key === "avg" ? "mean of the ten task accuracies (%)" :
        b.key === "kld" ? "mean KL divergence from the unquantized model (nats); lower is better" :
        b.key === "ppl" ? "WikiText-2 perplexity, llama.cpp protocol, context 512; lower is better" :
        b.label + " accuracy (%)";
    }
    if (deltaHead) deltaHead.title = DELTA_TITLE[!b ? "w" : DELTA_TITLE[b.key] ? b.key : "task"];
    document.body.classList.toggle("rerank", !b);
    document.body.classList.toggle("rankby", !!b && b.key !== "avg");
    headCells.forEach(function (th) {
      if (th.getAttribute("data-key") === k) th.setAttribute("aria-sort", s.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    var ws = TASKS.filter(function (t) { return s.w[t] > 0; });
    var cap = document.querySelector("table.board caption");
    if (cap) cap.textContent = "The board: " + total + " runs, ranked by " +
      (b ? (b.key === "avg" ? "average accuracy" : b.label + (b.lower ? " (lower is better)" : "")) :
        "the task weights");
    $("status").textContent = (n < shown.length ? "Showing the first " + n + " of " +
      shown.length + " matching runs" : "Showing " + shown.length + " runs") + " (" + total +
      " in all), " +
      (b ? "ranked by " + b.label + (b.lower ? " (lower is better)" : "") +
        ", with its own intervals and tie bands" : "re-ranked by weights " +
        ws.map(function (t) { return t + "\u00d7" + s.w[t]; }).join(", ") +
        " (intervals and bands by the normal approximation, computed in the page)") +
      (k !== "avg" ? "; sorted by " + k + " (" + s.dir + ")" : "") +
      " (" + Math.round(performance.now() - t0) + " ms).";
    state = s;
  }

  function writeHash(s) {
    var h = encode(s);
    var url = location.href.replace(/#.*$/, "") + (h ? "#" + h : "");
    try { history.replaceState(null, "", url); } catch (e) { location.replace(h ? "#" + h : "#"); }
  }

  function update() {
    var s = fromControls();
    apply(s);
    writeHash(s);
  }

  /* ---------------------------------------------------------------- wiring */
  headCells.forEach(function (th) {
    var key = th.getAttribute("data-key");
    if (!key) return;
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = th.textContent;
    th.textContent = "";
    th.appendChild(b);
    b.addEventListener("click", function () {
      var s = fromControls();
      if (state.sort === key) s.dir = state.dir === "asc" ? "desc" : "asc";
      else { s.sort = key; s.dir = key === "rank" || key === "model" || key === "algorithm" ||
        key === "class" || key === "wdtype" || key === "cdtype" || key === "size" || key === "params" ||
        key === "ppl" || key === "kld" || key === "bpw" || key === "qsec" || key === "mem" ? "asc" : "desc"; }
      apply(s);
      writeHash(s);
    });
  });
  moreBtn.addEventListener("click", function () { showAll = true; apply(state); });
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  form.addEventListener("submit", function (e) { e.preventDefault(); update(); });
  $("w-reset").addEventListener("click", function () {
    TASKS.forEach(function (t, i) { if (wInputs[i]) wInputs[i].value = 1; });
    update();
  });
  $("f-reset").addEventListener("click", function () {
    var s = defaults();
    s.w = fromControls().w;
    toControls(s);
    update();
  });
  window.addEventListener("hashchange", function () {
    var s = decode(location.hash);
    if (encode(s) === encode(state)) return;
    toControls(s);
    apply(s);
  });
  form.hidden = false;
  state = decode(location.hash);
  toControls(state);
  apply(state);
})();
