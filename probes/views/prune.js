// The prune view: the full model's continuation and each pruned run's, aligned token by token, each token
// coloured by KL(full ‖ run) on the full continuation's prefix; the first divergence marked.
// Hover or focus a token (arrow keys move) for the numbers. Reads #probes-data (views/prune.py).
(function () {
  "use strict";
  const { el, radios, fmt, VIRIDIS, MISSING, colour, css, dark, scaleBar } = probesView;
  const data = JSON.parse(document.getElementById("probes-data").textContent);
  const runs = data.runs;
  const nPos = Math.max(...runs.map((r) => Math.max(r.tokens.length, r.kl.length)));
  const state = { at: { run: Math.min(1, runs.length - 1), t: 0 }, metric: data.metrics[0].key };

  // KL on a square-root scale, bright where the run agrees with the full model (as in the lens view).
  const toT = (v) => 1 - Math.sqrt(Math.min(Math.max(v / data.kl_max, 0), 1));
  const fromT = (t) => data.kl_max * (1 - t) * (1 - t);

  // ---- page skeleton --------------------------------------------------------------------------------
  const header = el("header", {},
    el("h1", { text: data.title }),
    el("p", { class: "prompt" }, el("span", { class: "what", text: "prompt " }), el("span", { text: data.prompt })),
    el("p", { class: "note", text: `${data.greedy ? "Greedy decoding" : `Sampled (${data.config})`}, the same ` +
      "prompt and seed for every run. Each token's colour: the run's KL(full ‖ run), or whether its top-1 " +
      "is the full model's, where it reads the full model's continuation up to that token (teacher-forced): " +
      "every run is compared on the same prefix." }),
    ...data.notes.map((n) => el("p", { class: "note", text: n })));

  const AGREE = colour(VIRIDIS, 1), DISAGREE = colour(VIRIDIS, 0);
  const controls = el("div", { class: "controls" }, radios("metric", "colour", data.metrics.map((m) => [m.key, m.label]),
    state.metric, (v) => { state.metric = v; repaint(); }));
  const legend = el("div", { class: "legend" });
  const keys = () => el("div", { class: "keys" },
    el("span", {}, el("span", { class: "swatch diverge" }), "first divergence from the full model"),
    el("span", {}, el("span", { class: "swatch differs" }, "ab"), "bold: the token differs from the full model's"));
  function drawLegend() {
    if (state.metric === "kl") {
      legend.replaceChildren(
        el("div", { class: "label", text: "KL(full ‖ run) on the same prefix, nats (brighter: closer to the full model)" }),
        scaleBar(VIRIDIS, [0, 0.5, 1].map((t) => [t, fromT(t)])), keys());
      return;
    }
    const swatch = (c) => { const s = el("span", { class: "swatch" }); s.style.background = css(c); return s; };
    legend.replaceChildren(el("div", { class: "label", text: "top-1 on the same prefix" }),
      el("div", { class: "keys" }, el("span", {}, swatch(AGREE), "the full model's top-1"),
        el("span", {}, swatch(DISAGREE), "another token")), keys());
  }

  const lines = el("div", { class: "grids lines" });
  const details = el("aside", { class: "details", "aria-live": "polite" });
  document.body.append(header, controls, legend, el("main", {}, lines, details));

  // ---- the aligned rows, wrapped to the page's width ----------------------------------------------------
  const CELL = 74; // px a token
  const labelWidth = 1 + Math.max(10, ...runs.map((r) => r.name.length));
  let cells = []; // cells[run][t]

  function render() {
    const room = lines.clientWidth - labelWidth * 7.5 - 8;
    const per = Math.max(4, Math.floor(room / CELL));
    cells = runs.map(() => new Array(nPos));
    const blocks = [];
    for (let start = 0; start < nPos; start += per) {
      const end = Math.min(start + per, nPos);
      const grid = el("div", { class: "grid tokens", role: "grid",
        "aria-label": `positions ${start + 1} to ${end} of the continuation; one row per run` });
      grid.style.setProperty("--n", String(end - start));
      grid.style.setProperty("--lw", `${labelWidth}ch`);
      const head = el("div", { class: "row", role: "row" }, el("div", { class: "corner top", text: "token" }));
      for (let t = start; t < end; t++) head.append(el("div", { class: "col top", role: "columnheader", text: String(t + 1) }));
      grid.append(head);
      for (const [k, run] of runs.entries()) {
        const row = el("div", { class: "row", role: "row" },
          el("div", { class: "rowlabel", role: "rowheader", text: run.name, title: run.skipped ? `blocks ${run.skipped} skipped` : "" }));
        for (let t = start; t < end; t++) {
          const cell = el("div", { class: "cell tok", role: "gridcell", tabindex: "-1" });
          cell.dataset.run = String(k);
          cell.dataset.t = String(t);
          if (t < run.tokens.length) {
            const text = data.vocab[run.tokens[t]];
            cell.textContent = text;
            cell.title = text;
            if (k > 0 && runs[0].tokens[t] !== run.tokens[t]) cell.classList.add("differs");
          } else cell.classList.add("none");
          if (k > 0 && run.diverge === t) cell.classList.add("diverge");
          paint(cell, k, t);
          cells[k][t] = cell;
          row.append(cell);
        }
        grid.append(row);
      }
      blocks.push(grid);
    }
    lines.replaceChildren(...blocks);
    const { run, t } = state.at;
    cells[run][t].tabIndex = 0;
    show(run, t);
  }

  function paint(cell, k, t) {
    if (k === 0 || t >= runs[k].tokens.length) { cell.style.backgroundColor = k === 0 ? "#f2f2f2" : "#fff"; return; }
    const v = runs[k][state.metric][t];
    const c = v === null || v === undefined ? null
      : state.metric === "kl" ? colour(VIRIDIS, toT(v)) : v ? AGREE : DISAGREE;
    cell.style.backgroundColor = c ? css(c) : MISSING;
    cell.style.color = c && dark(c) ? "#fff" : "#000";
  }

  function repaint() {
    drawLegend();
    for (const [k, row] of cells.entries()) for (const [t, cell] of row.entries()) if (cell) paint(cell, k, t);
  }

  // ---- details ------------------------------------------------------------------------------------------
  function show(k, t) {
    for (const c of lines.querySelectorAll(".cell.current")) c.classList.remove("current");
    for (const row of cells) if (row[t]) row[t].classList.add("current");
    const table = el("table", { class: "top runs" });
    table.append(el("tr", {}, ...["run", "token", "KL", "top-1"].map((h) => el("th", { text: h }))));
    for (const [i, run] of runs.entries()) {
      const tok = t < run.tokens.length ? data.vocab[run.tokens[t]] : "(ended)";
      const kl = i === 0 ? null : run.kl[t], agree = i === 0 ? null : run.agree[t];
      table.append(el("tr", { class: i === k ? "hit" : "", "data-run": String(i) },
        el("td", { class: "name", text: run.name }), el("td", { class: "tok" }, el("code", { text: tok })),
        el("td", { class: "prob kl", text: i === 0 ? "" : fmt(kl) }),
        el("td", { class: "agree", text: i === 0 || agree === null || agree === undefined ? "" : agree ? "same" : "other" })));
    }
    const run = runs[k];
    const facts = el("dl", { class: "facts" });
    if (k > 0) {
      facts.append(el("dt", { text: "first divergence" }),
        el("dd", { text: run.diverge === null ? "none" : `token ${run.diverge + 1}` }));
      for (const [key, label] of [["tf_kl", "mean KL on the full text"], ["tf_top1_agreement", "top-1 agreement"],
        ["ppl_under_full", "perplexity under full"]]) {
        facts.append(el("dt", { text: label }), el("dd", { text: fmt(run.metrics[key]) }));
      }
    }
    details.replaceChildren(
      el("div", { class: "where" }, el("b", { text: `token ${t + 1}` }), " of the continuation"),
      el("div", { class: "note", text: "each run's token; on the full model's prefix, its KL(full ‖ run) (nats) " +
        "and whether its top-1 is the full model's:" }),
      table, k > 0 ? el("h2", { text: `${run.name}: blocks ${run.skipped} skipped` }) : null, facts);
  }

  function focus(k, t) {
    const old = lines.querySelector('.cell[tabindex="0"]');
    if (old) old.tabIndex = -1;
    state.at = { run: k, t };
    cells[k][t].tabIndex = 0;
    cells[k][t].focus();
  }

  lines.addEventListener("mouseover", (e) => {
    const c = e.target.closest(".cell");
    if (c) show(+c.dataset.run, +c.dataset.t);
  });
  lines.addEventListener("focusin", (e) => {
    const c = e.target.closest(".cell");
    if (c) show(+c.dataset.run, +c.dataset.t);
  });
  lines.addEventListener("keydown", (e) => {
    const c = e.target.closest(".cell");
    if (!c) return;
    let k = +c.dataset.run, t = +c.dataset.t;
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (e.key in moves) { k += moves[e.key][0]; t += moves[e.key][1]; }
    else if (e.key === "Home") t = 0;
    else if (e.key === "End") t = nPos - 1;
    else return;
    e.preventDefault();
    focus(Math.min(Math.max(k, 0), runs.length - 1), Math.min(Math.max(t, 0), nPos - 1));
  });
  let width = lines.clientWidth;
  window.addEventListener("resize", () => { if (lines.clientWidth !== width) { width = lines.clientWidth; render(); } });

  drawLegend();
  render();
  probesView.ready();
})();
