// What every probes view shares: building elements, radio switches, numbers as the page shows them.
// Inlined before each view's own script, in the same <script> element. No libraries, no network.
const probesView = (function () {
  "use strict";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // SVG elements need their namespace; attributes are set as given.
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function radios(name, legend, options, current, onChange) {
    const box = el("fieldset", { class: "switch" }, el("legend", { text: legend }));
    for (const [value, label] of options) {
      const input = el("input", { type: "radio", name, value });
      input.checked = value === current;
      input.addEventListener("change", () => onChange(value));
      box.append(el("label", {}, input, label));
    }
    return box;
  }

  // A number as the view shows it: 4 significant digits, integers with separators, a dash for none.
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (Number.isInteger(v)) return v.toLocaleString("en");
    return String(Number(v.toPrecision(4)));
  }

  // Colour-blind-safe palettes, as stops from matplotlib's viridis and ColorBrewer's PuOr.
  const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
    "#44bf70", "#7ad151", "#bddf26", "#fde725"];
  const PUOR = ["#2d004b", "#542788", "#8073ac", "#b2abd2", "#d8daeb", "#f7f7f7", "#fee0b6", "#fdb863",
    "#e08214", "#b35806", "#7f3b08"];
  const MISSING = "#d9d9d9";

  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  // The colour at t in [0, 1] along `stops`, as [r, g, b].
  function colour(stops, t) {
    const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2);
    const a = rgb(stops[i]), b = rgb(stops[i + 1]), f = x - i;
    return a.map((v, n) => Math.round(v + (b[n] - v) * f));
  }
  const css = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;
  const dark = (c) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] < 128; // white text on it

  // A legend's colour bar with ticks: [t, value] pairs, the ends to 4 digits (exact), the middle to 2.
  function scaleBar(stops, ticks) {
    const bar = el("div", { class: "bar" });
    bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const marks = el("div", { class: "ticks" });
    for (const [t, value] of ticks) {
      const mark = el("span", { text: fmt(Number(value.toPrecision(t === 0 || t === 1 ? 4 : 2))) });
      mark.style.left = `${t * 100}%`;
      marks.append(mark);
    }
    return el("div", { class: "scale" }, bar, marks);
  }

  // Say the page is interactive (the tests and the timing read these).
  function ready() {
    document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
    document.documentElement.dataset.ready = "1";
  }

  return { el, svg, radios, fmt, ready, VIRIDIS, PUOR, MISSING, colour, css, dark, scaleBar };
})();
