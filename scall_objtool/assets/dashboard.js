/* scall-objtool dashboard: renders the embedded report data (no network). */
(function () {
  "use strict";
  var T0 = performance.now();
  var D = JSON.parse(document.getElementById("scall-data").textContent);
  if (D.v !== 1) throw new Error("unknown dashboard data version " + D.v);
  var S = D.strings;
  var LINE = D.line;
  var NS = "http://www.w3.org/2000/svg";
  var MAX_LINE = 256;     /* longer cache lines get no picture */

  function str(i) { return i === null || i === undefined ? null : S[i]; }
  function el(tag, attrs) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    setAttrs(e, attrs);
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function setAttrs(e, attrs) {
    if (!attrs) return;
    for (var k in attrs) {
      if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
      if (k === "text") e.textContent = attrs[k];
      else if (k === "on") { for (var ev in attrs.on) e.addEventListener(ev, attrs.on[ev]); }
      else e.setAttribute(k, attrs[k]);
    }
  }
  function add(e, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(e, x); }); return; }
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  function clickOnEnter(ev) {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); ev.currentTarget.click(); }
  }
  function fmt(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function pct(a, b) { return b ? (100 * a / b).toFixed(1) + "%" : "\u2013"; }
  function hex(n) { return "0x" + n.toString(16); }
  function title(t) { return sv("title", { text: t }); }
  function clipTail(s, n) { return s.length > n ? s.slice(0, n - 1) + "\u2026" : s; }
  function clip(s, n) { return s.length > n ? "\u2026" + s.slice(s.length - n + 1) : s; }

  /* each reason's meaning and each kind's opcode bytes: the tool's one table of
     each (scall_objtool/vocabulary.py), embedded with the data */
  var REASON_TEXT = D.vocab.reasons;
  var OPCODES = D.vocab.opcodes;

  /* ------------------------------------------------------------ sites */
  function site(i) {
    var r = D.sites[i];
    return {
      i: i, obj: str(r[0]), sec: str(r[1]), off: r[2], addr: r[3][0], exact: r[3][1],
      exactBasis: r[3][2], g: r[3][3], base: r[3][4], fn: str(r[4]), foff: r[5],
      tramp: str(r[6]), kind: str(r[7]), len: r[8], pre: r[9], crossing: r[10],
      reason: str(r[11]), align: r[12], file: str(r[13]), line: r[14], inlined: r[15],
      placement: r[16], state: r[17] === undefined ? null : r[17],
      remedy: r.length > 18 ? str(r[18]) : null
    };
  }
  var SITES = D.sites.map(function (_, i) { return site(i); });
  function where(s) {
    return s.fn !== null && s.foff !== null ? s.fn + "+" + hex(s.foff) : s.sec + "+" + hex(s.off);
  }

  /* The possible starts of a site within its cache line. */
  function placements(s) {
    if (s.len === null) return null;
    if (s.exact !== null)
      return { starts: [s.exact], basis: s.exactBasis === "address" ? "address " + s.addr
                                                                     : "placement" };
    if (s.g === null) return null;
    var g = s.g, starts = [];
    for (var p = s.base; p < LINE; p += g) starts.push(p);
    return { starts: starts, g: g,
             basis: g === LINE ? "offset " + hex(s.off) + ", section " + g + "-aligned"
                               : "offset " + hex(s.off) + " mod " + g };
  }

  /* The instruction's bytes, as far as the report tells them. */
  function insnBytes(s) {
    var out = [], i;
    for (i = 0; i < s.pre.length; i += 2) out.push(["pre", s.pre.slice(i, i + 2)]);
    var op = OPCODES[s.kind] || [];
    op.forEach(function (b) { if (out.length < s.len) out.push(["op", b]); });
    while (out.length < s.len) out.push(["imm", "\u00b7\u00b7"]);
    return out;
  }

  /* One row of a picture: the line (and the start of the next), the
     instruction at start p, the boundary marked where it is crossed. */
  function pictureRow(g, s, bytes, p, y, cw, rh, big) {
    var W = LINE + 16, crosses = p + s.len > LINE;
    var row = sv("g", { "class": "prow", "data-start": p, "data-crosses": crosses ? 1 : 0,
                        transform: "translate(0," + y + ")" });
    row.appendChild(sv("rect", { "class": "cell", x: 0, y: 0, width: LINE * cw, height: rh }));
    row.appendChild(sv("rect", { "class": "cell next", x: LINE * cw, y: 0,
                                 width: (W - LINE) * cw, height: rh }));
    if (big) {
      for (var t = 8; t < W; t += 8) {
        if (t === LINE) continue;
        row.appendChild(sv("line", { x1: t * cw, x2: t * cw, y1: 0, y2: rh, stroke: "#fff" }));
      }
    }
    bytes.forEach(function (b, i) {
      var r = sv("rect", { "class": "byte " + b[0], "data-i": i, x: (p + i) * cw + 0.5, y: 1,
                           width: cw - 1, height: rh - 2 });
      r.appendChild(title("byte " + i + " of " + s.len + " at line offset " + hex(p + i) +
                          (p + i >= LINE ? " (next line)" : "")));
      row.appendChild(r);
      if (big && cw >= 10) row.appendChild(sv("text", { "class": "hexl", x: (p + i + 0.5) * cw,
        y: rh / 2 + 3, "text-anchor": "middle", text: b[1] }));
    });
    var bl = sv("line", { "class": "boundary" + (crosses ? " hit" : ""), x1: LINE * cw,
                          x2: LINE * cw, y1: -1, y2: rh + 1,
                          "data-byte": crosses ? LINE - p : null });
    row.appendChild(bl);
    if (big) {
      var msg = "start " + hex(p) + ": " + (crosses ? "crosses the line after byte " +
        (LINE - p) + " of " + s.len : "fits");
      row.appendChild(sv("text", { "class": "lbl" + (crosses ? " hit" : ""), x: W * cw + 8,
                                   y: rh / 2 + 4, text: msg }));
    }
    g.appendChild(row);
    return crosses;
  }

  /* The cache-line picture of a site (small in the table, big in details). */
  function picture(s, big) {
    var pl = LINE <= MAX_LINE ? placements(s) : null;
    if (!pl) return el("span", { "class": "note", text: s.len === null
      ? "no length in a check report (use scan --format json)"
      : LINE > MAX_LINE ? "a " + LINE + "-byte line is too long to draw" : "no placement" });
    var W = LINE + 16;
    var cw = big ? Math.max(3, Math.min(11, Math.floor(880 / W)))
                 : Math.max(1, Math.floor(320 / W));
    var rh = big ? 20 : 7, gap = big ? 6 : 2, labelW = big ? 300 : 0;
    var bytes = insnBytes(s), starts = pl.starts, many = starts.length > 8;
    var rows = many ? 2 : starts.length;
    var top = big ? 16 : 0;
    var height = top + rows * (rh + gap);
    var crossing = starts.filter(function (p) { return p + s.len > LINE; });
    var root = sv("svg", { "class": "pic", width: W * cw + labelW + 2, height: height,
                           "data-line": LINE, "data-starts": starts.join(","),
                           "data-crossing": crossing.join(","), role: "img" });
    root.appendChild(title(starts.length === 1
      ? (crossing.length ? "crosses" : "does not cross") + " the " + LINE + "-byte line (" + pl.basis + ")"
      : crossing.length + " of " + starts.length + " possible placements cross the " + LINE +
        "-byte line (" + pl.basis + ")"));
    var g = sv("g", { transform: "translate(1," + top + ")" });
    root.appendChild(g);
    if (big) {
      root.appendChild(sv("text", { "class": "lbl", x: 1, y: 11, text: "line +0x0" }));
      root.appendChild(sv("text", { "class": "lbl", x: LINE * cw + 1, y: 11,
                                    text: "next line (+" + hex(LINE) + ")" }));
    }
    if (!many) {
      starts.forEach(function (p, k) { pictureRow(g, s, bytes, p, k * (rh + gap), cw, rh, big); });
    } else {
      /* every possible start, coloured by whether it crosses; then the first
         crossing placement drawn out */
      var map = sv("g", { "class": "startmap" });
      for (var p = 0; p < LINE; p++) {
        var possible = (p - starts[0]) % pl.g === 0 && p >= starts[0];
        var cls = !possible ? "no" : p + s.len > LINE ? "cross" : "fit";
        var r = sv("rect", { "class": "start " + cls, x: p * cw + 0.5, y: 1, width: cw - 1,
                             height: rh - 2 });
        r.appendChild(title("start " + hex(p) + ": " + (cls === "no" ? "impossible" :
                                                          cls === "cross" ? "crosses" : "fits")));
        map.appendChild(r);
      }
      if (big) map.appendChild(sv("text", { "class": "lbl", x: W * cw + 8, y: rh / 2 + 4,
        text: crossing.length + " of " + starts.length + " starts cross" }));
      g.appendChild(map);
      pictureRow(g, s, bytes, crossing.length ? crossing[0] : starts[0], rh + gap, cw, rh, big);
    }
    return root;
  }

  /* ---------------------------------------------------------- tables */
  function makeTable(host, cfg) {
    var st = { q: "", key: cfg.sort[0], dir: cfg.sort[1], page: 0, size: cfg.pageSize || 20 };
    var q = el("input", { type: "search", id: cfg.id + "-q", placeholder: cfg.placeholder ||
                          "filter\u2026", "aria-label": "filter " + cfg.title });
    q.addEventListener("input", function () { st.q = q.value.toLowerCase(); st.page = 0; draw(); });
    var sizeSel = el("select", { id: cfg.id + "-size", "aria-label": "rows per page" },
      [10, 20, 50, 100].map(function (n) {
        return el("option", { value: n, selected: n === st.size ? "selected" : null, text: n + " rows" });
      }));
    sizeSel.addEventListener("change", function () { st.size = +sizeSel.value; st.page = 0; draw(); });
    var controls = el("div", { "class": "controls" }, q, cfg.controls || null, sizeSel);
    var table = el("table", { id: cfg.id + "-table" });
    var thead = el("thead"), tbody = el("tbody");
    table.appendChild(thead); table.appendChild(tbody);
    var hr = el("tr");
    cfg.columns.forEach(function (c) {
      var th = el("th", { "class": (c.num ? "num " : "") + (c.get ? "sortable" : ""),
                          "data-key": c.key, scope: "col", text: c.label });
      if (c.get) {
        th.tabIndex = 0;
        th.addEventListener("click", function () {
          if (st.key === c.key) st.dir = -st.dir; else { st.key = c.key; st.dir = c.num ? -1 : 1; }
          st.page = 0; draw();
        });
        th.addEventListener("keydown", clickOnEnter);
      }
      hr.appendChild(th);
    });
    thead.appendChild(hr);
    var count = el("span", { id: cfg.id + "-count" });
    var prev = el("button", { type: "button", id: cfg.id + "-prev", text: "\u2039 prev" });
    var next = el("button", { type: "button", id: cfg.id + "-next", text: "next \u203a" });
    prev.addEventListener("click", function () { st.page--; draw(); });
    next.addEventListener("click", function () { st.page++; draw(); });
    var pager = el("div", { "class": "pager", id: cfg.id + "-pager" }, prev, next, count);
    var chart = cfg.chart ? el("div", { id: cfg.id + "-chart", "class": "chart" }) : null;
    var body = el("div", null, table, pager);
    host.appendChild(el("h2", null, cfg.title, cfg.sub ? el("span", { "class": "sub", text: cfg.sub }) : null));
    if (cfg.help) host.appendChild(el("p", { "class": "help", text: cfg.help }));
    host.appendChild(controls);
    host.appendChild(chart ? el("div", { "class": cfg.stack ? "stack" : "split" }, chart, body) : body);

    function draw() {
      var rows = cfg.rows();
      var shown = rows.filter(function (r) {
        return (!st.q || cfg.text(r).toLowerCase().indexOf(st.q) >= 0) &&
               (!cfg.predicate || cfg.predicate(r));
      });
      var col = cfg.columns.filter(function (c) { return c.key === st.key; })[0];
      if (col && col.get) {
        var dir = st.dir;
        shown = shown.map(function (r, i) { return [col.get(r), i, r]; });
        shown.sort(function (a, b) {
          var x = a[0], y = b[0];
          if (x === null && y !== null) return 1;
          if (y === null && x !== null) return -1;
          if (x < y) return -dir;
          if (x > y) return dir;
          return a[1] - b[1];
        });
        shown = shown.map(function (t) { return t[2]; });
      }
      Array.prototype.forEach.call(hr.children, function (th) {
        th.removeAttribute("aria-sort");
        if (th.getAttribute("data-key") === st.key)
          th.setAttribute("aria-sort", st.dir > 0 ? "ascending" : "descending");
      });
      var pages = Math.max(1, Math.ceil(shown.length / st.size));
      st.page = Math.min(Math.max(0, st.page), pages - 1);
      var from = st.page * st.size, to = Math.min(shown.length, from + st.size);
      tbody.textContent = "";
      for (var i = from; i < to; i++) {
        var r = shown[i];
        var tr = el("tr", { "data-key": cfg.key ? cfg.key(r) : null, "class": cfg.rowClass || null });
        cfg.columns.forEach(function (c) {
          var v = c.cell ? c.cell(r) : c.get(r);
          tr.appendChild(el("td", { "class": (c.num ? "num " : "") + (c.cls || "") },
                            c.num && typeof v === "number" ? fmt(v) : v));
        });
        tbody.appendChild(tr);
        if (cfg.after) cfg.after(tr, r, tbody);
      }
      if (!shown.length) tbody.appendChild(el("tr", null, el("td", {
        colspan: cfg.columns.length, "class": "note", text: rows.length ? "no row matches" : "none" })));
      count.textContent = shown.length ? "rows " + fmt(from + 1) + "\u2013" + fmt(to) + " of " +
        fmt(shown.length) + (shown.length !== rows.length ? " (filtered from " + fmt(rows.length) + ")" : "")
        : "0 rows";
      count.setAttribute("data-total", shown.length);
      prev.disabled = st.page === 0; next.disabled = st.page >= pages - 1;
      if (chart) { chart.textContent = ""; add(chart, cfg.chart(shown)); }
    }
    draw();
    return { draw: draw, state: st };
  }

  /* Horizontal bars of the first rows of a table's current view. */
  function hbars(rows, label, parts, legend, clipEnd) {
    var top = rows.slice(0, 12);
    if (!top.length) return el("p", { "class": "note", text: "nothing to chart" });
    var max = 1;
    top.forEach(function (r) {
      var t = 0; parts.forEach(function (p) { t += p.get(r); }); max = Math.max(max, t);
    });
    var lw = 230, bw = 300, rh = 20, h = top.length * rh + 6;
    var root = sv("svg", { "class": "hbars", width: lw + bw + 70, height: h, role: "img" });
    top.forEach(function (r, k) {
      var y = k * rh + 3, x = lw, name = label(r), total = 0;
      root.appendChild(sv("text", { "class": "barlbl", x: lw - 6, y: y + 13, "text-anchor": "end",
                                    text: clipEnd ? clipTail(name, 36) : clip(name, 36) }, title(name)));
      parts.forEach(function (p) {
        var v = p.get(r), w = v / max * bw;
        total += v;
        if (v) root.appendChild(sv("rect", { "class": p.cls, x: x, y: y + 2, width: Math.max(w, 1),
                                             height: rh - 6 }, title(p.name + ": " + fmt(v))));
        x += w;
      });
      root.appendChild(sv("text", { "class": "barnum", x: x + 5, y: y + 13,
                                    text: parts.length > 1 ? fmt(parts[1].get(r)) + " / " + fmt(total) : fmt(total) }));
    });
    var box = el("div", null, root);
    if (legend) box.appendChild(el("p", { "class": "legend" }, legend));
    return box;
  }
  function legendOkBad() {
    return [el("span", null, el("span", { "class": "sw", style: "background:var(--ok)" }), " patchable"),
            el("span", null, el("span", { "class": "sw", style: "background:var(--bad)" }), " fallback"),
            el("span", { text: "numbers: fallback / sites; the first 12 rows of the table's view" })];
  }
  function verdictCell(reason) {
    return reason === null ? el("span", { "class": "verdict ok", text: "patchable" })
                           : el("span", { "class": "verdict bad", text: reason });
  }

  /* ---------------------------------------------------------- header */
  var pol = D.policy || {};
  var meta = document.getElementById("meta");
  add(meta, [
    el("span", { "class": "chip", id: "meta-label", text: D.label }),
    el("span", { "class": "chip", text: D.kind + " report" }),
    el("span", { "class": "chip", id: "meta-version", text: "scall-objtool " + D.version }),
    el("span", { "class": "chip", id: "meta-policy", text: "policy " + (pol.name || "?") +
      (pol.allow_tail ? " --allow-tail" : "") +
      (pol.assume_align ? " --assume-align " + pol.assume_align : "") +
      (pol.module ? " --module" : "") + ", cache line " + LINE }),
    D.root ? el("span", { "class": "chip", title: D.root, text: "objects under " + clip(D.root, 60) }) : null
  ]);

  /* --------------------------------------------------------- summary */
  var sm = D.summary;
  function card(k, v, id, cls, extra) {
    return el("div", { "class": "card" + (extra && extra.wide ? " wide" : "") },
      el("div", { "class": "k", text: k }),
      el("div", { "class": "v " + (cls || ""), id: id, "data-value": v, text: fmt(v) }),
      extra ? extra.body : null);
  }
  var share = sm.sites ? sm.patchable / sm.sites : 0;
  var reasonList = el("ul", { "class": "mini", id: "sum-reasons" },
    D.by_reason.length ? D.by_reason.map(function (kv) {
      return el("li", { "data-reason": kv[0] }, el("span", { text: kv[0] }),
                el("span", { "class": "n", id: "sum-reason-" + kv[0], "data-value": kv[1], text: fmt(kv[1]) }));
    }) : el("li", { text: "none" }));
  var kindList = el("ul", { "class": "mini", id: "sum-kinds" }, D.by_kind.map(function (kv) {
    return el("li", null, el("span", { text: kv[0] }),
              el("span", { "class": "n", id: "sum-kind-" + kv[0], "data-value": kv[1], text: fmt(kv[1]) }));
  }));
  add(document.getElementById("summary"), [
    card("Objects", sm.objects, "sum-objects"),
    card("Sites", sm.sites, "sum-sites"),
    el("div", { "class": "card" },
       el("div", { "class": "k", text: "Patchable" }),
       el("div", { "class": "v ok", id: "sum-patchable", "data-value": sm.patchable, text: fmt(sm.patchable) }),
       el("div", { "class": "s", id: "sum-share", text: pct(sm.patchable, sm.sites) + " of the sites" }),
       el("div", { "class": "bar" }, el("div", { style: "width:" + (100 * share).toFixed(2) + "%" }))),
    card("Fallback", sm.fallback, "sum-fallback", "bad"),
    card("References", sm.references, "sum-references"),
    el("div", { "class": "card wide" }, el("div", { "class": "k", text: "Fallback by reason" }), reasonList),
    el("div", { "class": "card" }, el("div", { "class": "k", text: "Sites by kind" }), kindList),
    D.check ? el("div", { "class": "card", id: "sum-check" },
      el("div", { "class": "k", text: "Check" }),
      el("div", { "class": "v " + (D.check.passed ? "ok" : "bad"), text: D.check.passed ? "passed" : "failed" }),
      el("div", { "class": "s", text: fmt(D.check.failing) + " failing, at most " + fmt(D.check.max_fallback) +
        (D.check.baseline !== null ? "; " + fmt(D.check.new) + " new, " + fmt(D.check.baselined) + " baselined, " + fmt(D.check.fixed) + " fixed" : "") })) : null
  ]);

  /* ------------------------------------------------------ breakdowns */
  var reasonRows = D.by_reason.map(function (kv) { return { name: kv[0], n: kv[1] }; });
  makeTable(document.getElementById("bd-reason"), {
    id: "reason", title: "By reason", sub: "fallback sites", sort: ["n", -1], pageSize: 10, stack: true,
    rows: function () { return reasonRows; },
    text: function (r) { return r.name + " " + REASON_TEXT[r.name]; },
    key: function (r) { return r.name; },
    columns: [
      { key: "name", label: "reason", get: function (r) { return r.name; }, cls: "mono" },
      { key: "n", label: "fallback", num: true, get: function (r) { return r.n; } },
      { key: "share", label: "share", num: true, get: function (r) { return r.n / (sm.fallback || 1); },
        cell: function (r) { return pct(r.n, sm.fallback); } },
      { key: "why", label: "meaning", cell: function (r) { return REASON_TEXT[r.name] || ""; } },
      { key: "remedy", label: "remedy", cell: function (r) { return (D.remedies || {})[r.name] || ""; } }
    ],
    chart: function (rows) { return hbars(rows, function (r) { return r.name; },
      [{ get: function (r) { return r.n; }, cls: "bad-fill", name: "fallback" }]); }
  });
  var kindRows = D.by_kind.map(function (kv) { return { name: kv[0], n: kv[1] }; });
  makeTable(document.getElementById("bd-kind"), {
    id: "kind", title: "By kind", sub: "sites", sort: ["n", -1], pageSize: 10, stack: true,
    rows: function () { return kindRows; },
    text: function (r) { return r.name; },
    key: function (r) { return r.name; },
    columns: [
      { key: "name", label: "kind", get: function (r) { return r.name; }, cls: "mono" },
      { key: "n", label: "sites", num: true, get: function (r) { return r.n; } },
      { key: "share", label: "share", num: true, get: function (r) { return r.n / (sm.sites || 1); },
        cell: function (r) { return pct(r.n, sm.sites); } }
    ],
    chart: function (rows) { return hbars(rows, function (r) { return r.name; },
      [{ get: function (r) { return r.n; }, cls: "acc-fill", name: "sites" }]); }
  });

  function countCols(nameLabel, extra) {
    return [
      { key: "name", label: nameLabel, get: function (r) { return r.name; }, cls: "mono wrap" }
    ].concat(extra || []).concat([
      { key: "sites", label: "sites", num: true, get: function (r) { return r.sites; } },
      { key: "patchable", label: "patchable", num: true, get: function (r) { return r.patchable; } },
      { key: "fallback", label: "fallback", num: true, get: function (r) { return r.fallback; } },
      { key: "share", label: "patchable %", num: true,
        get: function (r) { return r.sites ? r.patchable / r.sites : null; },
        cell: function (r) { return pct(r.patchable, r.sites); } }
    ]);
  }
  var okBad = [{ get: function (r) { return r.patchable; }, cls: "ok-fill", name: "patchable" },
               { get: function (r) { return r.fallback; }, cls: "bad-fill", name: "fallback" }];

  function dirOf(path) {
    var p = path, k = p.indexOf("(");
    if (p.charAt(p.length - 1) === ")" && k >= 0) p = p.slice(0, k);
    var j = p.lastIndexOf("/");
    return j > 0 ? p.slice(0, j) : ".";
  }
  var depth = 2, dirCache = {};
  function dirRows() {
    if (dirCache[depth]) return dirCache[depth];
    var m = {}, order = [];
    D.objs.forEach(function (o) {
      var d = dirOf(S[o[0]]);
      if (depth > 0 && d !== ".") d = d.split("/").slice(0, depth).join("/");
      var r = m[d];
      if (!r) { r = m[d] = { name: d, objects: 0, sites: 0, patchable: 0, fallback: 0, refs: 0 }; order.push(r); }
      r.objects++; r.sites += o[1]; r.patchable += o[2]; r.fallback += o[3]; r.refs += o[4];
    });
    return (dirCache[depth] = order);
  }
  var depthSel = el("select", { id: "dir-depth", "aria-label": "directory depth" },
    [[1, "depth 1"], [2, "depth 2"], [3, "depth 3"], [0, "full path"]].map(function (d) {
      return el("option", { value: d[0], selected: d[0] === depth ? "selected" : null, text: d[1] });
    }));
  var dirTable = makeTable(document.getElementById("bd-dir"), {
    id: "dir", title: "By directory", sub: "objects relative to the common directory",
    sort: ["fallback", -1], controls: depthSel,
    rows: dirRows, text: function (r) { return r.name; }, key: function (r) { return r.name; },
    columns: countCols("directory", [
      { key: "objects", label: "objects", num: true, get: function (r) { return r.objects; } }
    ]).concat([{ key: "refs", label: "references", num: true, get: function (r) { return r.refs; } }]),
    chart: function (rows) { return hbars(rows, function (r) { return r.name; }, okBad, legendOkBad()); }
  });
  depthSel.addEventListener("change", function () { depth = +depthSel.value; dirTable.state.page = 0; dirTable.draw(); });

  var trampRows = D.tramps.map(function (t) {
    return { name: S[t[0]], sites: t[1], patchable: t[2], fallback: t[3] };
  });
  makeTable(document.getElementById("bd-tramp"), {
    id: "tramp", title: "By trampoline", sub: fmt(trampRows.length) + " static calls",
    sort: ["fallback", -1],
    rows: function () { return trampRows; }, text: function (r) { return r.name; },
    key: function (r) { return r.name; },
    columns: countCols("trampoline"),
    chart: function (rows) {
      var pre = pol.tramp_prefix || "";
      return hbars(rows, function (r) { return pre && r.name.indexOf(pre) === 0 ? r.name.slice(pre.length) : r.name; },
                   okBad, legendOkBad(), true);
    }
  });

  /* ----------------------------------------------------------- sites */
  var open = {};
  var verdictSel = el("select", { id: "sites-verdict", "aria-label": "verdict" },
    [["fallback", "fallback sites"], ["patchable", "patchable sites"], ["all", "all sites"]].map(function (o) {
      return el("option", { value: o[0], text: o[1] });
    }));
  var reasonSel = el("select", { id: "sites-reason", "aria-label": "reason" },
    [el("option", { value: "", text: "any reason" })].concat(D.by_reason.map(function (kv) {
      return el("option", { value: kv[0], text: kv[0] });
    })));
  var crossSel = el("select", { id: "sites-crossing", "aria-label": "crossing" },
    ["", "never", "depends", "always"].map(function (c) {
      return el("option", { value: c, text: c ? "crossing " + c : "any crossing" });
    }));
  if (D.kind === "check") verdictSel.disabled = true;
  /* A check against a baseline: each finding is new, known (unchanged or
     updated) or fixed (gone); the table opens on the current findings, new
     ones first, and one click shows the new ones alone. */
  var BASELINED = D.check !== null && D.check.baseline !== null;
  var STATE_RANK = { "new": 0, "known": 1, "fixed": 2 };
  var stateSel = el("select", { id: "sites-state", "aria-label": "against the baseline" },
    [["current", "new and known"], ["new", "new only"], ["known", "known only"], ["fixed", "fixed"],
     ["all", "new, known and fixed"]].map(function (o) {
      return el("option", { value: o[0], text: o[1] });
    }));
  var newBtn = el("button", { type: "button", id: "sites-new",
    text: "new findings only (" + fmt(BASELINED ? D.check.new : 0) + ")" });
  newBtn.addEventListener("click", function () {
    stateSel.value = "new"; siteTable.state.page = 0; siteTable.draw();
  });
  if (!BASELINED) { stateSel.style.display = "none"; newBtn.style.display = "none"; }
  function stateOk(s) {
    var v = stateSel.value;
    if (v === "all") return true;
    if (v === "current") return s.state !== "fixed";
    return s.state === v;
  }
  function src(s) {
    return s.file !== null ? s.file + ":" + s.line : null;
  }
  function chainNode(s) {
    if (!s.inlined || !s.inlined.length) return null;
    return el("ol", { "class": "chain" }, s.inlined.map(function (f) {
      var fn = str(f[0]), file = str(f[1]);
      return el("li", { text: (fn || "?") + (file !== null ? " (" + file + (f[2] !== null ? ":" + f[2] : "") + ")" : "") });
    }));
  }
  var siteTable = makeTable(document.getElementById("sites"), {
    id: "sites", title: D.kind === "check" ? "Findings" : "Sites",
    sub: D.kind === "check" ? "the check report lists the fallback sites" : null,
    placeholder: "filter by object, function, trampoline, source\u2026",
    help: "Each row's picture lays the instruction's bytes on the " + LINE + "-byte cache line (prefix, opcode, displacement from dark to light) " +
      "and marks the line boundary in red where the instruction crosses it. Without an exact placement, every possible one is a row " +
      "(with many, a strip of the possible starts: green fits, red crosses). Click a row for the large picture and every detail.",
    sort: BASELINED ? ["state", 1] : ["order", 1],
    controls: [newBtn, stateSel, verdictSel, reasonSel, crossSel], rowClass: "site",
    rows: function () { return SITES; },
    predicate: function (s) {
      var v = verdictSel.value;
      if (v === "fallback" && s.reason === null) return false;
      if (v === "patchable" && s.reason !== null) return false;
      if (reasonSel.value && s.reason !== reasonSel.value) return false;
      if (crossSel.value && s.crossing !== crossSel.value) return false;
      return !BASELINED || stateOk(s);
    },
    text: function (s) {
      return [s.obj, where(s), s.sec, s.tramp, s.kind, s.reason || "patchable", src(s) || "",
              (s.inlined || []).map(function (f) { return str(f[0]) + " " + str(f[1]); }).join(" ")].join(" ");
    },
    key: function (s) { return s.i; },
    columns: [
      { key: "order", label: "#", num: true, get: function (s) { return s.i; }, cell: function (s) { return s.i + 1; } },
      { key: "state", label: BASELINED ? "baseline" : "", get: BASELINED ? function (s) {
          return s.state === null ? 3 : STATE_RANK[s.state]; } : null,
        cell: function (s) { return s.state === null ? "" :
          el("span", { "class": "state state-" + s.state, "data-state": s.state, text: s.state }); } },
      { key: "obj", label: "object", cls: "mono wrap", get: function (s) { return s.obj; } },
      { key: "where", label: "function+offset", cls: "mono wrap", get: function (s) { return where(s); },
        cell: function (s) { return el("span", null, where(s), el("br"),
          el("span", { "class": "note", text: s.sec + "+" + hex(s.off) + (s.addr !== null ? " @" + s.addr : "") })); } },
      { key: "tramp", label: "trampoline", cls: "mono wrap", get: function (s) { return s.tramp; },
        cell: function (s) { return el("span", null, s.tramp, el("br"), el("span", { "class": "note", text: s.kind + (s.len !== null ? ", " + s.len + " bytes" : "") })); } },
      { key: "reason", label: "verdict", get: function (s) { return s.reason || ""; },
        cell: function (s) { return el("span", null, verdictCell(s.reason), el("br"),
          el("span", { "class": "note", text: s.crossing !== null ? "crossing " + s.crossing + (s.align !== null ? " (align " + s.align + ")" : "") : "" })); } },
      { key: "src", label: "source", cls: "mono wrap", get: function (s) { return src(s); },
        cell: function (s) { return el("span", null, src(s) || "\u2013", chainNode(s)); } },
      { key: "pic", label: "cache line", cell: function (s) { return picture(s, false); } }
    ],
    after: function (tr, s, tbody) {
      tr.setAttribute("data-site", s.i);
      if (open[s.i]) { tr.classList.add("open"); tbody.appendChild(detail(s)); }
      tr.tabIndex = 0;
      tr.setAttribute("aria-expanded", open[s.i] ? "true" : "false");
      tr.addEventListener("click", function () { open[s.i] = !open[s.i]; siteTable.draw(); });
      tr.addEventListener("keydown", clickOnEnter);
    }
  });
  [stateSel, verdictSel, reasonSel, crossSel].forEach(function (x) {
    x.addEventListener("change", function () { siteTable.state.page = 0; siteTable.draw(); });
  });
  function detail(s) {
    var kv = el("div", { "class": "kv" });
    function row(k, v) { if (v !== null && v !== undefined && v !== "") add(kv, [el("div", { "class": "k", text: k }), el("div", { "class": "mono", text: v })]); }
    row("object", s.obj);
    row("function", s.fn !== null ? where(s) : null);
    row("section", s.sec + "+" + hex(s.off));
    row("address", s.addr);
    row("instruction", s.kind + (s.len !== null ? ", " + s.len + " bytes" : "") + (s.pre ? ", prefixes " + s.pre : ""));
    row("trampoline", s.tramp);
    row("verdict", s.reason === null ? "patchable" : "fallback: " + s.reason);
    row("remedy", s.remedy);
    row("crossing", s.crossing !== null ? s.crossing + (s.align !== null ? " (known alignment " + s.align + ")" : "") : null);
    row("source", src(s));
    if (s.inlined && s.inlined.length) row("inlined", s.inlined.map(function (f) {
      return (str(f[0]) || "?") + (str(f[1]) !== null ? " (" + str(f[1]) + ":" + f[2] + ")" : ""); }).join("  \u2190  "));
    if (s.placement !== null && s.placement !== undefined) row("placement", typeof s.placement === "object" ?
      Object.keys(s.placement).map(function (k) { return k + " " + JSON.stringify(s.placement[k]); }).join(", ")
      : JSON.stringify(s.placement));
    var pl = LINE <= MAX_LINE ? placements(s) : null;
    if (pl) row("placements", pl.starts.length + " possible start" + (pl.starts.length > 1 ? "s" : "") +
      " in the line (" + pl.basis + ")");
    return el("tr", { "class": "detail", "data-detail": s.i },
      el("td", { colspan: 8 }, el("div", { "class": "bigpic" }, picture(s, true)), kv));
  }

  /* ----------------------------------------------------------- trend */
  var trendHost = document.getElementById("trend");
  /* series: [[key, css], ...]; zoom: the axis spans the values' own range
     (not from 0), so that a change of a few percent is visible */
  function lineChart(points, series, id, zoom) {
    var w = 640, h = 220, l = 56, r = 70, t = 14, b = 40;
    var max = 1, min = Infinity;
    points.forEach(function (p) { series.forEach(function (ser) {
      max = Math.max(max, p[ser[0]]); min = Math.min(min, p[ser[0]]); }); });
    var bottom = 0, span = max;
    if (zoom) {
      var pad = Math.max(1, Math.ceil((max - min) * 0.25));
      bottom = Math.max(0, min - pad); span = max + pad - bottom;
    }
    var mag = Math.pow(10, Math.floor(Math.log10(Math.max(1, span)))), step = mag;
    if (span / step < 4 && step >= 10) step /= 5; else if (span / step < 4 && step >= 2) step /= 2;
    if (span / step > 8) step *= 2.5; if (span / step > 8) step *= 2;
    step = Math.max(1, step);
    bottom = Math.floor(bottom / step) * step;
    var top = Math.max(bottom + step, Math.ceil((zoom ? max + (max - bottom) * 0.05 : max) / step) * step);
    var n = points.length;
    function X(i) { return l + (n === 1 ? (w - l - r) / 2 : i * (w - l - r) / (n - 1)); }
    function Y(v) { return t + (h - t - b) * (1 - (v - bottom) / (top - bottom)); }
    var root = sv("svg", { id: id, width: w, height: h, role: "img",
                           "data-axis-min": bottom, "data-axis-max": top });
    for (var v = bottom; v <= top + 1e-9; v += step) {
      root.appendChild(sv("line", { "class": "grid", x1: l, x2: w - r, y1: Y(v), y2: Y(v) }));
      root.appendChild(sv("text", { "class": "axis", x: l - 6, y: Y(v) + 4, "text-anchor": "end", text: fmt(Math.round(v)) }));
    }
    points.forEach(function (p, i) {
      var anchor = n > 1 && i === 0 ? "start" : n > 1 && i === n - 1 ? "end" : "middle";
      root.appendChild(sv("text", { "class": "axis", x: X(i), y: h - b + 16, "text-anchor": anchor,
                                    text: clip(p.label, 28) }, title(p.label)));
    });
    series.forEach(function (ser) {
      var d = points.map(function (p, i) { return (i ? "L" : "M") + X(i).toFixed(1) + " " + Y(p[ser[0]]).toFixed(1); }).join(" ");
      root.appendChild(sv("path", { "class": ser[1] + "-line", d: d, "data-series": ser[0] }));
      points.forEach(function (p, i) {
        root.appendChild(sv("circle", { "class": ser[1] + "-fill", cx: X(i), cy: Y(p[ser[0]]), r: 4,
                                        "data-series": ser[0], "data-value": p[ser[0]] },
                            title(p.label + ": " + fmt(p[ser[0]]) + " " + ser[0])));
      });
    });
    root.appendChild(sv("text", { "class": "axis", x: l, y: h - 6 }, series.map(function (ser) {
      return [sv("tspan", { "class": ser[1] + "-fill", text: "\u25cf" }), " " + ser[0] + "   "]; }),
      zoom ? " (axis from " + fmt(bottom) + ")" : null));
    return root;
  }
  if (D.trend.length < 2) {
    trendHost.appendChild(el("p", { "class": "note", text: "One report. Pass several (one per build or commit, oldest first) to chart patchable and fallback sites over them and list what changed between the last two." }));
  } else {
    var tt = el("table", { id: "trend-table" }, el("thead", null, el("tr", null,
      ["report", "kind", "policy", "objects", "sites", "patchable", "fallback", "patchable %"].map(function (h, i) {
        return el("th", { "class": i > 2 ? "num" : "", text: h }); }))),
      el("tbody", null, D.trend.map(function (p) {
        return el("tr", null, el("td", { "class": "mono", text: p.label }), el("td", { text: p.kind }),
          el("td", { text: p.policy || "?" }),
          [p.objects, p.sites, p.patchable, p.fallback].map(function (v) { return el("td", { "class": "num", text: fmt(v) }); }),
          el("td", { "class": "num", text: pct(p.patchable, p.sites) }));
      })));
    trendHost.appendChild(el("div", { "class": "split" },
      lineChart(D.trend, [["patchable", "ok"], ["fallback", "bad"]], "trend-chart", false),
      el("div", null, tt)));
    trendHost.appendChild(el("div", null, el("h3", { text: "Fallback sites, on their own scale" }),
      lineChart(D.trend, [["fallback", "bad"]], "trend-fallback", true)));
    var df = D.diff, c = df.counts, prevLabel = D.trend[D.trend.length - 2].label;
    var dhost = document.getElementById("diff-panel");
    dhost.hidden = false;
    var typeSel = el("select", { id: "diff-type", "aria-label": "change" },
      [["", "any change"], ["added", "added"], ["removed", "removed"], ["changed", "changed"]].map(function (o) {
        return el("option", { value: o[0], text: o[1] }); }));
    var diffRows = df.rows.map(function (r, i) {
      return { i: i, type: r[0], obj: str(r[1]), where: str(r[2]), kind: str(r[3]), tramp: str(r[4]),
               was: str(r[5]), now: str(r[6]), src: r[7] ? str(r[7][0]) + ":" + r[7][1] : null, newfb: r[8] };
    });
    var diffTable = makeTable(dhost, {
      id: "diff", title: "Changes: " + prevLabel + " \u2192 " + D.label,
      sub: fmt(c.added) + " added, " + fmt(c.removed) + " removed, " + fmt(c.changed) + " changed, " +
        fmt(c.unchanged) + " unchanged (" + fmt(c.moved) + " moved); " + fmt(c.new_fallback) + " new fallback" +
        (df.scope === "fallback" ? " (fallback sites only: a check report lists no others)" : ""),
      help: "Sites are matched as diff matches them: by object, function, trampoline, kind and reason, counted; of the rest, those in the same function with the same trampoline are changed.",
      sort: ["order", 1], controls: typeSel,
      rows: function () { return diffRows; },
      predicate: function (r) { return !typeSel.value || r.type === typeSel.value; },
      text: function (r) { return [r.type, r.obj, r.where, r.kind, r.tramp, r.was || "", r.now || "", r.src || ""].join(" "); },
      key: function (r) { return r.i; },
      columns: [
        { key: "order", label: "#", num: true, get: function (r) { return r.i; }, cell: function (r) { return r.i + 1; } },
        { key: "type", label: "change", get: function (r) { return r.type; },
          cell: function (r) { return el("span", { "class": "tag-" + r.type, text: r.type + (r.newfb ? " (new fallback)" : "") }); } },
        { key: "obj", label: "object", cls: "mono wrap", get: function (r) { return r.obj; } },
        { key: "where", label: "function+offset", cls: "mono wrap", get: function (r) { return r.where; } },
        { key: "tramp", label: "trampoline", cls: "mono wrap", get: function (r) { return r.tramp; },
          cell: function (r) { return el("span", null, r.tramp, el("br"), el("span", { "class": "note", text: r.kind })); } },
        { key: "was", label: "was", get: function (r) { return r.was; }, cell: function (r) { return r.was || "\u2013"; } },
        { key: "now", label: "now", get: function (r) { return r.now; }, cell: function (r) { return r.now || "\u2013"; } },
        { key: "src", label: "source", cls: "mono wrap", get: function (r) { return r.src; }, cell: function (r) { return r.src || "\u2013"; } }
      ]
    });
    typeSel.addEventListener("change", function () { diffTable.state.page = 0; diffTable.draw(); });
  }

  document.getElementById("footer").textContent = "Generated by scall-objtool " + D.version +
    " from " + D.trend.length + " report" + (D.trend.length > 1 ? "s" : "") + ". Self-contained: no network access.";
  /* for tests and the curious: the crossing the pictures show, per site */
  window.scallDashboard = {
    pictureCrossing: function () {
      return SITES.map(function (s) {
        var pl = LINE <= MAX_LINE ? placements(s) : null;
        if (!pl) return null;
        var n = pl.starts.filter(function (p) { return p + s.len > LINE; }).length;
        return n === 0 ? "never" : n === pl.starts.length ? "always" : "depends";
      });
    }
  };
  document.documentElement.setAttribute("data-render-ms", (performance.now() - T0).toFixed(1));
  document.documentElement.setAttribute("data-ready", "1");
})();
