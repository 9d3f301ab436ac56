// Helpers shared by the dashboard's pages. Text from the lineage only ever enters the page as
// text nodes (never as HTML), so a hypothesis cannot inject markup or script.
"use strict";

const AR = {
  colours: {},
  el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "style") node.style.cssText = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  },
  num(x, digits = 6) { return x === null || x === undefined ? "—" : Number(x).toPrecision(digits).replace(/\.?0+(e|$)/, "$1"); },
  signed(x) { return x === null || x === undefined ? "—" : (x >= 0 ? "+" : "") + AR.num(x, 4); },
  exp(n) { return "exp " + String(n).padStart(3, "0"); },
  ago(s) {
    if (s === null || s === undefined) return "";
    if (s < 120) return Math.round(s) + "s";
    if (s < 7200) return (s / 60).toFixed(1) + "m";
    return (s / 3600).toFixed(1) + "h";
  },
  usd(x) { return "$" + Number(x || 0).toFixed(2); },
  colour(status) { return AR.colours[status] || "#555"; },
  chip(status) { return AR.el("span", { class: "st", style: "background:" + AR.colour(status) }, status); },
  fill(node, ...kids) { node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined)); },
  table(node, head, rows) {
    AR.fill(node, AR.el("tr", {}, head.map((h) => AR.el("th", {}, h))),
      rows.map((r) => AR.el("tr", {}, r.map((c) => AR.el("td", {}, c)))));
  },
  async getJSON(url) {
    const r = await fetch(url, { cache: "no-cache", credentials: "same-origin" });
    if (r.status === 401) { AR.signedOut(); throw new Error("401"); }
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  },
  signedOut() {
    const live = document.getElementById("live");
    if (live) { live.className = "live off"; live.title = "signed out: reopen the dashboard's address with ?token=TOKEN"; }
  },
  beat(ok) {
    const live = document.getElementById("live");
    if (live) { live.className = ok ? "live on" : "live off"; }
  },
  // Run `fn` now, then every `ms` after it finishes (never two at once).
  loop(fn, ms) {
    const step = async () => {
      try { await fn(); AR.beat(true); } catch (e) { AR.beat(false); console.warn(e); }
      setTimeout(step, ms);
    };
    step();
  },
  plotConfig: { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] },
  layout(extra) {
    return Object.assign({
      margin: { l: 56, r: 12, t: 8, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 12 }, legend: { orientation: "h", y: -0.18 },
      hovermode: "closest",
    }, extra);
  },
};
