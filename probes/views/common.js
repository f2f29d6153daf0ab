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

  // Say the page is interactive (the tests and the timing read these).
  function ready() {
    document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
    document.documentElement.dataset.ready = "1";
  }

  return { el, svg, radios, fmt, ready };
})();
