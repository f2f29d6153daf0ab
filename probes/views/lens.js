// The lens explorer: a layer x position grid coloured by a metric; hover or focus a cell for its top tokens.
// Reads the JSON in #probes-data (probes/views/lens.py says what it holds). No libraries, no network.
(function () {
  "use strict";
  const { el, radios, fmt, VIRIDIS, PUOR, MISSING, colour, css, dark, scaleBar } = probesView;
  const data = JSON.parse(document.getElementById("probes-data").textContent);
  const nRows = data.rows.length;
  const nPos = data.positions.length;
  const k = data.k;

  // A metric's scale: value -> t in [0, 1] (1 bright), and back for the legend's ticks.
  function scaleOf(m) {
    const f = { log: Math.log, sqrt: Math.sqrt, linear: (v) => v }[m.scale];
    const g = { log: Math.exp, sqrt: (v) => v * v, linear: (v) => v }[m.scale];
    const lo = m.scale === "sqrt" ? 0 : f(m.lo), hi = m.scale === "sqrt" ? 1 : f(m.hi);
    const toT = (v) => {
      const u = m.scale === "sqrt" ? Math.sqrt(Math.max(v - m.lo, 0) / (m.hi - m.lo)) : (f(Math.max(v, m.lo)) - lo) / (hi - lo);
      const t = Math.min(Math.max(u, 0), 1);
      return m.bright === "high" ? t : 1 - t;
    };
    const fromT = (t) => {
      const u = m.bright === "high" ? t : 1 - t;
      return m.scale === "sqrt" ? m.lo + u * u * (m.hi - m.lo) : g(lo + u * (hi - lo));
    };
    return { toT, fromT };
  }

  const lensNames = [...new Set(data.panels.map((p) => p.lens))];
  const runNames = [...new Set(data.panels.map((p) => p.run))];
  const state = { metric: data.metrics[0].key, lens: lensNames[0], run: "0", pinned: null, labels: nPos <= 40 };
  const panelOf = (lens, run) => data.panels.find((p) => p.lens === lens && p.run === run);

  // ---- page skeleton --------------------------------------------------------------------------------
  const header = el("header", {},
    el("h1", { text: data.title }),
    data.prompt !== null ? el("p", { class: "prompt" }, el("span", { class: "what", text: "prompt " }),
      el("span", { text: data.prompt })) : null,
    data.text !== null ? el("p", { class: "prompt" }, el("span", { class: "what", text: "generated " }),
      el("span", { text: data.text })) : null,
    data.skipped ? el("p", { class: "note", text: `Blocks ${data.skipped} skipped in every run.` }) : null,
    ...data.notes.map((n) => el("p", { class: "note", text: n })));

  const controls = el("div", { class: "controls" });
  controls.append(radios("metric", "colour", data.metrics.map((m) => [m.key, m.label]), state.metric,
    (v) => { state.metric = v; paint(); }));
  if (lensNames.length > 1) {
    controls.append(radios("lens", "lens", lensNames.map((n) => [n, n]), state.lens,
      (v) => { state.lens = v; render(); }));
  }
  if (runNames.length > 1) {
    const runs = runNames.map((n, i) => [String(i), n]);
    runs.push(["both", "both, one above the other"], ["diff", `difference (${runNames[1]} − ${runNames[0]})`]);
    controls.append(radios("run", "run", runs, state.run, (v) => { state.run = v; render(); }));
  }
  const labelBox = el("input", { type: "checkbox" });
  labelBox.checked = state.labels;
  labelBox.addEventListener("change", () => { state.labels = labelBox.checked; render(); });
  controls.append(el("label", { class: "check" }, labelBox, "top-1 token in each cell"));

  const legend = el("div", { class: "legend", "aria-live": "polite" });
  const grids = el("div", { class: "grids" });
  const details = el("aside", { class: "details", "aria-live": "polite" });
  document.body.append(header, controls, legend, el("main", {}, grids, details));

  // ---- grids ------------------------------------------------------------------------------------------
  let shown = []; // the grids on the page: { panel, base (a difference's other run), caption, cells, grid, active }

  function visiblePanels() {
    const runs = state.run === "both" || state.run === "diff" ? runNames.slice(0, 2) : [runNames[+state.run]];
    return runs.map((r) => panelOf(state.lens, r));
  }

  const labelWidth = 1 + Math.max(9, ...data.panels.flatMap((p) => p.rows.map((r) => r.length)));

  function headerRow(corner, ids, cls) {
    const row = el("div", { class: "row", role: "row" }, el("div", { class: `corner ${cls}`, text: corner }));
    for (const id of ids) {
      const text = id === null ? "?" : data.vocab[id];
      row.append(el("div", { class: `col ${cls}`, role: "columnheader", title: text }, el("span", { text })));
    }
    return row;
  }

  function buildGrid(panel, base, caption) {
    const grid = el("div", { class: "grid" + (state.labels ? " labelled" : ""), role: "grid",
      "aria-label": `${caption}: rows are the residual stream after each block, columns positions`,
      "aria-rowcount": String(nRows + 2), "aria-colcount": String(nPos + 1) });
    grid.style.setProperty("--n", String(nPos));
    grid.style.setProperty("--lw", `${labelWidth}ch`); // every grid alike, so grids one above the other align
    grid.append(headerRow(data.kind === "generation" ? "generated" : "next", data.next, "top"));
    const cells = new Array(nRows * nPos);
    for (let r = nRows - 1; r >= 0; r--) {
      const row = el("div", { class: "row", role: "row" });
      row.append(el("div", { class: "rowlabel", role: "rowheader", text: panel.rows[r] }));
      for (let j = 0; j < nPos; j++) {
        const cell = el("div", { class: "cell", role: "gridcell", tabindex: "-1" });
        cell.dataset.r = r;
        cell.dataset.j = j;
        if (panel.emergence[j] === r) cell.classList.add("emerge");
        if (state.labels) cell.textContent = data.vocab[panel.top[(r * nPos + j) * k]];
        cells[r * nPos + j] = cell;
        row.append(cell);
      }
      grid.append(row);
    }
    grid.append(headerRow(data.kind === "generation" ? "fed" : "input", data.fed, "bottom"));
    const view = { panel, base, caption, cells, grid, active: null };
    grid.addEventListener("mouseover", (e) => {
      const c = e.target.closest(".cell");
      if (c && !state.pinned) show(+c.dataset.r, +c.dataset.j);
    });
    grid.addEventListener("click", (e) => {
      const c = e.target.closest(".cell");
      if (c) { focus(view, +c.dataset.r, +c.dataset.j); pin(+c.dataset.r, +c.dataset.j); }
    });
    grid.addEventListener("focusin", (e) => {
      const c = e.target.closest(".cell");
      if (c && !state.pinned) show(+c.dataset.r, +c.dataset.j);
    });
    grid.addEventListener("keydown", (e) => keys(view, e));
    return view;
  }

  function render() {
    const panels = visiblePanels();
    shown = state.run === "diff"
      ? [buildGrid(panels[1], panels[0], `${state.lens}: ${panels[1].run} − ${panels[0].run}`)]
      : panels.map((p) => buildGrid(p, null, `${p.lens}, ${p.run}`));
    const scrollers = shown.map((v) => el("div", { class: "scroll" }, v.grid));
    for (const s of scrollers) {
      // Grids one above the other scroll together, so a column stays a column.
      s.addEventListener("scroll", () => { for (const t of scrollers) if (t !== s) t.scrollLeft = s.scrollLeft; });
    }
    grids.replaceChildren(...shown.flatMap((v, i) => [el("h2", { text: v.caption }), scrollers[i]]));
    const at = state.pinned || { r: nRows - 1, j: nPos - 1 };
    for (const v of shown) setActive(v, at.r, at.j);
    if (state.pinned) for (const v of shown) v.cells[at.r * nPos + at.j].classList.add("pinned");
    paint();
    show(at.r, at.j);
  }

  // ---- colour -------------------------------------------------------------------------------------------
  const metricOf = (key) => data.metrics.find((m) => m.key === key);
  const diffValue = (key, v) => (v === null ? null : key === "rank" ? Math.log10(v) : v);

  function paint() {
    const m = metricOf(state.metric);
    if (state.run === "diff") {
      const v = shown[0];
      const a = v.panel[m.key], b = v.base[m.key];
      const d = a.map((x, i) => (x === null || b[i] === null ? null : diffValue(m.key, x) - diffValue(m.key, b[i])));
      const top = Math.max(1e-9, ...d.filter((x) => x !== null).map(Math.abs));
      fill(v.cells, d, (x) => colour(PUOR, 0.5 + x / (2 * top)));
      drawLegend(PUOR, [-top, 0, top].map((x, i) => [i / 2, x]),
        `${m.key === "rank" ? "log10 of the rank of " + m.label.replace(/^rank of /, "") : m.label}: ` +
        `${v.panel.run} − ${v.base.run} (orange: higher with ${v.panel.run})`);
      return;
    }
    const s = scaleOf(m);
    for (const v of shown) fill(v.cells, v.panel[m.key], (x) => colour(VIRIDIS, s.toT(x)));
    const ticks = [0, 0.5, 1].map((t) => [t, s.fromT(t)]);
    drawLegend(VIRIDIS, ticks, `${m.label} (brighter: closer to the final answer)`);
  }

  function fill(cells, values, toColour) {
    for (let i = 0; i < cells.length; i++) {
      const x = values[i];
      const c = x === null ? null : toColour(x);
      cells[i].style.backgroundColor = c ? css(c) : MISSING;
      cells[i].style.color = c && dark(c) ? "#fff" : "#000";
    }
  }

  function drawLegend(stops, ticks, label) {
    const scale = scaleBar(stops, ticks);
    const missing = el("span", { class: "missing" }, el("span", { class: "swatch" }), "no value");
    const emerge = el("span", { class: "missing" }, el("span", { class: state.labels ? "swatch emerge" : "swatch emerge dot" }),
      data.kind === "generation" ? "row where the generated token emerges" : "row where the final top-1 emerges");
    legend.replaceChildren(el("div", { class: "label", text: label }), scale,
      el("div", { class: "keys" }, missing, emerge));
  }

  // ---- details ------------------------------------------------------------------------------------------
  function show(r, j) {
    for (const v of shown) {
      if (v.current !== undefined) v.cells[v.current].classList.remove("current");
      v.current = r * nPos + j;
      v.cells[v.current].classList.add("current");
    }
    const col = `position ${data.positions[j]}`;
    const fed = data.vocab[data.fed[j]];
    const next = data.next[j] === null ? "unknown" : data.vocab[data.next[j]];
    const nextWord = data.kind === "generation" ? "generated" : "next";
    const head = el("div", { class: "where" },
      el("div", {}, el("b", { text: `row ${data.rows[r]}` }), `, ${col}`),
      el("div", {}, "input ", el("code", { text: fed }), ` · ${nextWord} `, el("code", { text: next })),
      state.pinned ? el("div", { class: "pin", text: "pinned: click the cell again or press Esc to release" }) : null);
    const blocks = [];
    const panels = state.run === "diff" ? [shown[0].base, shown[0].panel] : shown.map((v) => v.panel);
    for (const p of panels) blocks.push(topTable(p, r, j));
    details.replaceChildren(head, ...blocks);
  }

  function topTable(p, r, j) {
    const i = r * nPos + j;
    const table = el("table", { class: "top" });
    table.append(el("caption", { text: `${p.lens}, ${p.run}` }));
    for (let n = 0; n < k; n++) {
      const tok = data.vocab[p.top[i * k + n]];
      const prob = p.p[i * k + n];
      const bar = el("span", { class: "pbar" });
      bar.style.width = `${Math.max(0, Math.min(1, prob)) * 100}%`;
      const hit = data.next[j] !== null && p.top[i * k + n] === data.next[j];
      table.append(el("tr", { class: hit ? "hit" : "" }, el("td", { class: "n", text: String(n + 1) }),
        el("td", { class: "tok" }, el("code", { text: tok })), el("td", { class: "prob", text: fmt(prob) }),
        el("td", { class: "barcell" }, bar)));
    }
    const facts = el("dl", { class: "facts" });
    for (const m of data.metrics) facts.append(el("dt", { text: m.label }), el("dd", { text: fmt(p[m.key][i]) }));
    const e = p.emergence[j];
    facts.append(el("dt", { text: "emerges at row" }), el("dd", { text: e === null ? "never (not top-1 at the end)" : p.rows[e] }));
    return el("section", { class: "cellinfo" }, table, facts);
  }

  // ---- focus, pinning, keys ----------------------------------------------------------------------------
  function setActive(view, r, j) {
    if (view.active !== null) view.cells[view.active].tabIndex = -1;
    view.active = r * nPos + j;
    view.cells[view.active].tabIndex = 0;
  }

  function focus(view, r, j) {
    setActive(view, r, j);
    view.cells[view.active].focus();
  }

  function pin(r, j) {
    const same = state.pinned && state.pinned.r === r && state.pinned.j === j;
    for (const v of shown) for (const c of v.grid.querySelectorAll(".pinned")) c.classList.remove("pinned");
    state.pinned = same ? null : { r, j };
    if (state.pinned) for (const v of shown) v.cells[r * nPos + j].classList.add("pinned");
    show(r, j);
  }

  function keys(view, e) {
    const c = e.target.closest(".cell");
    if (!c) return;
    let r = +c.dataset.r, j = +c.dataset.j;
    const moves = { ArrowUp: [1, 0], ArrowDown: [-1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (e.key in moves) {
      r = Math.min(Math.max(r + moves[e.key][0], 0), nRows - 1);
      j = Math.min(Math.max(j + moves[e.key][1], 0), nPos - 1);
    } else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = nPos - 1;
    else if (e.key === "Enter" || e.key === " ") { pin(r, j); e.preventDefault(); return; }
    else if (e.key === "Escape") { if (state.pinned) pin(state.pinned.r, state.pinned.j); return; }
    else return;
    e.preventDefault();
    focus(view, r, j);
  }

  render();
  probesView.ready();
})();
