// The dataset-lens view: per-row curves of one metric with their intervals, one line per lens and run.
// Hover or focus the chart (arrow keys move) for the exact numbers. Reads #probes-data (views/dataset.py).
(function () {
  "use strict";
  const { el, svg, radios, fmt } = probesView;
  const data = JSON.parse(document.getElementById("probes-data").textContent);
  const nRows = data.rows.length;

  // Okabe-Ito: told apart with every common colour-vision deficiency; a skip run is also dashed.
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
  const lensNames = [...new Set(data.series.map((s) => s.lens))];
  const colourOf = (s) => PALETTE[lensNames.indexOf(s.lens) % PALETTE.length];
  const dashOf = (s) => (s.run.startsWith("full model") ? "" : "7 4");
  const state = { metric: data.metrics[0].key, row: nRows - 1, hidden: new Set() };

  // ---- page skeleton --------------------------------------------------------------------------------
  const pct = Math.round(data.level * 100);
  const header = el("header", {},
    el("h1", { text: data.title }),
    el("p", { class: "prompt" }, el("span", { class: "what", text: "dataset " }), el("span", { text: data.source }),
      el("span", { class: "what", text: ` · ${fmt(data.texts)} texts, ${fmt(data.windows)} windows, ` +
        `${fmt(data.tokens)} tokens` })),
    el("p", { class: "note", text: `Lines: the mean over every position. Bands: the ${pct}% bootstrap interval ` +
      `(resampling whole texts, ${fmt(data.replicates)} replicates).` }),
    data.skipped ? el("p", { class: "note", text: `Blocks ${data.skipped} skipped in every run.` }) : null,
    ...data.notes.map((n) => el("p", { class: "note", text: n })));

  const metricOf = (key) => data.metrics.find((m) => m.key === key);
  const unitText = (m) => (m.unit === "fraction" ? "" : `, ${m.unit}`);
  const controls = el("div", { class: "controls" });
  controls.append(radios("metric", "metric", data.metrics.map((m) => [m.key, m.label + unitText(m)]), state.metric,
    (v) => { state.metric = v; draw(); }));

  const legend = el("div", { class: "legend series", role: "group", "aria-label": "series (click to hide or show)" });
  for (const [i, s] of data.series.entries()) {
    const box = el("input", { type: "checkbox" });
    box.checked = true;
    box.dataset.series = String(i);
    box.addEventListener("change", () => { if (box.checked) state.hidden.delete(i); else state.hidden.add(i); draw(); });
    const key = svg("svg", { width: "34", height: "12", "aria-hidden": "true" },
      svg("rect", { x: "0", y: "1", width: "34", height: "10", fill: colourOf(s), "fill-opacity": "0.2" }),
      svg("line", { x1: "0", y1: "6", x2: "34", y2: "6", stroke: colourOf(s), "stroke-width": "2.2",
        "stroke-dasharray": dashOf(s) }));
    legend.append(el("label", { class: "check" }, box, key, " " + s.name));
  }

  const chart = el("div", { class: "chart" });
  const details = el("aside", { class: "details", "aria-live": "polite" });
  document.body.append(header, controls, legend, el("main", {}, el("div", { class: "grids" }, chart), details));

  // ---- the chart --------------------------------------------------------------------------------------
  const W = 760, H = 400, M = { left: 64, right: 16, top: 14, bottom: 52 };
  const x = (r) => M.left + (nRows === 1 ? 0.5 : r / (nRows - 1)) * (W - M.left - M.right);
  let y = null;

  function niceTicks(lo, hi, n) {
    const step0 = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= step0);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(6)));
    return out;
  }

  function extent(m) {
    let hi = 0, lo = 0;
    for (const [i, s] of data.series.entries()) {
      if (state.hidden.has(i)) continue;
      for (const v of [...s.values[m.key].high, ...s.values[m.key].mean]) if (v !== null) hi = Math.max(hi, v);
      for (const v of s.values[m.key].low) if (v !== null) lo = Math.min(lo, v);
    }
    // A weak model's accuracy stays low: use the chart's height for it, but never past 1.
    if (m.unit === "fraction") return [0, hi > 0 ? Math.min(1, hi * 1.1 + 0.01) : 1];
    return [lo, hi > lo ? hi * 1.06 : lo + 1];
  }

  // A path through the points that have a value; a missing value breaks the line.
  function path(values, toY) {
    let d = "", pen = "M";
    for (let r = 0; r < nRows; r++) {
      if (values[r] === null) { pen = "M"; continue; }
      d += `${pen}${x(r).toFixed(1)},${toY(values[r]).toFixed(1)}`;
      pen = "L";
    }
    return d;
  }

  function band(low, high, toY) {
    const up = [], down = [];
    for (let r = 0; r < nRows; r++) {
      if (low[r] === null || high[r] === null) continue;
      up.push(`${x(r).toFixed(1)},${toY(high[r]).toFixed(1)}`);
      down.unshift(`${x(r).toFixed(1)},${toY(low[r]).toFixed(1)}`);
    }
    return up.length ? `M${up.join("L")}L${down.join("L")}Z` : "";
  }

  const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", tabindex: "0", role: "img" });
  chart.append(plot);

  function draw() {
    const m = metricOf(state.metric);
    const [lo, hi] = extent(m);
    y = (v) => H - M.bottom - ((v - lo) / (hi - lo)) * (H - M.top - M.bottom);
    plot.setAttribute("aria-label", `${m.label} against the lens row, one line per series; ` +
      "arrow keys move along the rows, the readout beside the chart gives the numbers");
    const parts = [];
    for (const t of niceTicks(lo, hi, 6)) {
      parts.push(svg("line", { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t), class: "gridline" }));
      parts.push(svg("text", { x: M.left - 6, y: y(t) + 4, "text-anchor": "end", class: "tick", text: fmt(t) }));
    }
    const every = Math.max(1, Math.ceil(nRows / 16));
    for (let r = 0; r < nRows; r++) {
      if (r % every && r !== nRows - 1) continue;
      parts.push(svg("text", { x: x(r), y: H - M.bottom + 16, "text-anchor": "middle", class: "tick", text: data.rows[r] }));
    }
    parts.push(svg("text", { x: (M.left + W - M.right) / 2, y: H - 10, "text-anchor": "middle", class: "axis",
      text: "lens row (embed: the embedding; i: after block i)" }));
    parts.push(svg("text", { x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle", class: "axis",
      transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})`, text: m.label + unitText(m) }));
    parts.push(svg("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "frame" }));
    parts.push(svg("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "frame" }));
    for (const [i, s] of data.series.entries()) {
      if (state.hidden.has(i)) continue;
      const v = s.values[m.key], c = colourOf(s);
      const g = svg("g", { class: "series", "data-series": String(i) });
      g.append(svg("path", { d: band(v.low, v.high, y), fill: c, "fill-opacity": "0.16", stroke: "none", class: "band" }));
      g.append(svg("path", { d: path(v.mean, y), fill: "none", stroke: c, "stroke-width": "2",
        "stroke-dasharray": dashOf(s), class: "line" }));
      for (let r = 0; r < nRows; r++) {
        if (v.mean[r] === null) continue;
        const hollow = s.skipped.includes(r);
        g.append(svg("circle", { cx: x(r), cy: y(v.mean[r]), r: "3.2", fill: hollow ? "#fff" : c, stroke: c,
          "stroke-width": "1.4" }));
      }
      parts.push(g);
    }
    const guide = svg("line", { x1: 0, x2: 0, y1: M.top, y2: H - M.bottom, class: "guide" });
    parts.push(guide);
    // One wide transparent rectangle per row: the row under the pointer is the nearest one.
    const step = (W - M.left - M.right) / Math.max(nRows - 1, 1);
    for (let r = 0; r < nRows; r++) {
      const hit = svg("rect", { x: x(r) - step / 2, y: M.top, width: step, height: H - M.top - M.bottom,
        fill: "transparent", class: "hit" });
      hit.dataset.r = String(r);
      parts.push(hit);
    }
    plot.replaceChildren(...parts);
    show(state.row);
  }

  plot.addEventListener("mouseover", (e) => {
    const r = e.target.dataset && e.target.dataset.r;
    if (r !== undefined) show(+r);
  });
  plot.addEventListener("keydown", (e) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowDown: -1, ArrowUp: 1 };
    let r = state.row;
    if (e.key in moves) r += moves[e.key];
    else if (e.key === "Home") r = 0;
    else if (e.key === "End") r = nRows - 1;
    else return;
    e.preventDefault();
    show(Math.min(Math.max(r, 0), nRows - 1));
  });

  // ---- the readout ----------------------------------------------------------------------------------
  function show(r) {
    state.row = r;
    const guide = plot.querySelector(".guide");
    if (guide) { guide.setAttribute("x1", x(r)); guide.setAttribute("x2", x(r)); }
    const m = metricOf(state.metric);
    const table = el("table", { class: "readout" });
    table.append(el("tr", {}, el("th", { text: "mean" }), el("th", { text: `${pct}% interval` })));
    for (const [i, s] of data.series.entries()) {
      if (state.hidden.has(i)) continue;
      const v = s.values[m.key];
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = colourOf(s);
      table.append(el("tbody", { "data-series": String(i) },
        el("tr", {}, el("td", { class: "name", colspan: "2" }, swatch,
          s.name + (s.skipped.includes(r) ? " (this block skipped)" : ""))),
        el("tr", {}, el("td", { class: "mean", text: show6(v.mean[r]) }),
          el("td", { class: "interval" }, el("span", { class: "low", text: show6(v.low[r]) }), " – ",
            el("span", { class: "high", text: show6(v.high[r]) })))));
    }
    details.replaceChildren(el("div", { class: "where" }, el("b", { text: `row ${data.rows[r]}` }),
      `: ${m.label}${unitText(m)}`), table);
  }

  // The readout shows each number as the result's JSON has it (6 decimals), not rounded further.
  const show6 = (v) => (v === null ? "–" : String(v));

  draw();
  probesView.ready();
})();
