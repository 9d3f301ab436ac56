// The search page: polls the summary (ETag: the lineage's change counter), fetches only new
// points, and redraws what changed. No reload; text from the lineage enters as text only.
"use strict";
(function () {
  const d = document.body.dataset;
  const { el, fill, num, signed, exp, ago, usd, chip, table } = AR;
  const $ = (id) => document.getElementById(id);
  let version = null, epoch = null, treeKey = "";
  const pts = { next: 0, exp: [], status: [], specialist: [], score: [], t: [], statuses: [], specialists: [], maxExp: 0, maxT: 0 };

  const link = (n) => el("a", { href: d.base + "/trial/" + n }, exp(n));

  async function loadPoints(s) {
    if (s.epoch !== epoch) {
      epoch = s.epoch;
      for (const k of ["exp", "status", "specialist", "score", "t"]) pts[k] = [];
      pts.next = 0; pts.maxExp = 0; pts.maxT = 0;
    }
    while (pts.next < s.points.total) {
      const page = await AR.getJSON(d.api + "/points?start=" + pts.next);
      if (page.epoch !== epoch || page.next <= pts.next) break;
      for (const k of ["exp", "status", "specialist", "score", "t"]) for (const v of page[k]) pts[k].push(v);
      for (const v of page.exp) if (v > pts.maxExp) pts.maxExp = v;
      for (const v of page.t) if (v !== null && v > pts.maxT) pts.maxT = v;
      pts.statuses = page.statuses; pts.specialists = page.specialists; pts.next = page.next;
    }
  }

  function header(h) {
    const state = h.state === "stopped" ? "stopped: " + (h.stop_reason || "run ended")
      : h.state === "stopping" ? "stopping: " + h.stop_reason : h.state;
    const title = $("state");
    title.textContent = state;
    title.className = "chip state-" + h.state;
    const unit = h.unit ? " " + h.unit : "";
    const dir = h.lower_is_better ? "↓ lower is better" : "↑ higher is better";
    const budget = h.budget === null ? "" : " / " + h.budget;
    const card = (label, value, sub) => el("div", { class: "card" }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, value), sub ? el("div", { class: "sub" }, sub) : null);
    fill($("cards"),
      card("task", h.task, h.arm + " arm" + (h.lineage ? "" : ", lineage off") + " · " + h.search
        + (h.backend === "local" ? "" : " · on " + h.backend)),
      card("metric", h.metric + unit, dir),
      card("trials", h.used + budget, h.trials !== h.used ? h.trials + " submitted (infra errors and cancels give their slot back)" : h.budget === null ? "no trial budget set" : "used of the budget"),
      card("best", h.best_exp === null ? "—" : [link(h.best_exp), " ", num(h.best)], h.baseline !== null && h.best !== null ? "Δ " + signed(h.best - h.baseline) + " vs baseline" : ""),
      card("baseline", num(h.baseline) + (h.spread !== null ? " ± " + num(h.spread, 3) : ""), "n = " + h.baseline_n
        + Object.entries(h.calibrated).map(([k, v]) => " · " + k + " = " + v).join("")),
      card("noise margin", num(h.margin, 4), "max(" + h.margin_rule.abs_delta + ", " + h.margin_rule.sigmas + " × spread)"),
      card("spend", usd(h.spend_usd), h.inflight + " in flight"));
  }

  function scoreChart(node, s, useTime) {
    const h = s.header, bs = s.best_series, traces = [];
    const xOf = (i) => (useTime ? (pts.t[i] === null ? null : pts.t[i] * 1000) : pts.exp[i]);
    const groups = new Map();
    for (let i = 0; i < pts.exp.length; i++) {
      const name = pts.statuses[pts.status[i]];
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(i);
    }
    for (const [name, idx] of groups) {
      const scored = name === "keep" || name === "discard";
      traces.push({
        type: "scattergl", mode: "markers", name, x: idx.map(xOf), customdata: idx.map((i) => pts.exp[i]),
        y: scored ? idx.map((i) => pts.score[i]) : idx.map(() => name), yaxis: scored ? "y" : "y2",
        marker: { color: AR.colour(name), size: name === "keep" ? 10 : 5, symbol: name === "keep" ? "diamond" : "circle",
          line: name === "keep" ? { width: 1, color: "#0b3d1f" } : { width: 0 } },
        hovertemplate: "exp %{customdata}<br>" + (scored ? "%{y:.6g}" : name) + "<extra>" + name + "</extra>",
      });
    }
    const last = useTime ? Math.max(pts.maxT, bs.t[bs.t.length - 1] || 0) : pts.maxExp;
    const bx = bs.exp.map((e, i) => (useTime ? bs.t[i] * 1000 : e)), by = bs.score.slice();
    if (by.length && by[0] !== null) {
      const endX = useTime ? last * 1000 : last;
      if (endX > bx[bx.length - 1]) { bx.push(endX); by.push(by[by.length - 1]); }
      if (h.margin > 0) {
        const band = (sign) => ({ type: "scatter", mode: "lines", x: bx, y: by.map((v) => v + sign * h.margin),
          line: { width: 0, shape: "hv" }, hoverinfo: "skip", showlegend: sign > 0, name: "noise band (± margin)",
          fill: sign > 0 ? "tonexty" : "none", fillcolor: "rgba(27,158,75,0.14)" });
        traces.push(band(-1), band(1));
      }
      traces.push({ type: "scatter", mode: "lines", name: "best so far", x: bx, y: by,
        line: { shape: "hv", color: "#13733a", width: 2 }, hoverinfo: "skip" });
    }
    const shapes = h.baseline === null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: h.baseline, y1: h.baseline,
      yref: "y", line: { dash: "dash", color: "#5b6770", width: 1.5 } }];
    const annotations = h.baseline === null ? [] : [{ xref: "paper", x: 0, y: h.baseline, yref: "y", text: "baseline",
      showarrow: false, xanchor: "left", yanchor: "bottom", font: { size: 11, color: "#5b6770" } }];
    const layout = AR.layout({
      xaxis: { anchor: "y2", type: useTime ? "date" : "linear", title: { text: useTime ? "" : "trial (exp id)" } },
      yaxis: { domain: [0.3, 1], automargin: true, title: { text: h.metric + (h.unit ? " (" + h.unit + ")" : "") } },
      yaxis2: { domain: [0, 0.22], type: "category", tickfont: { size: 10 }, automargin: true },
      shapes, annotations, uirevision: "keep",
    });
    Plotly.react(node, traces, layout, AR.plotConfig);
    if (!node.dataset.clicks) {
      node.dataset.clicks = "1";
      node.on("plotly_click", (e) => { const p = e.points && e.points[0]; if (p && p.customdata !== undefined) location.href = d.base + "/trial/" + p.customdata; });
    }
  }

  function timelineChart(s) {
    const tl = s.timeline;
    const mids = tl.edges.slice(1).map((e, i) => ((e + tl.edges[i]) / 2) * 1000);
    const traces = Object.entries(tl.counts).map(([name, ys]) => ({ type: "bar", name, x: mids, y: ys, marker: { color: AR.colour(name) } }));
    Plotly.react($("chart-timeline"), traces, AR.layout({ barmode: "stack", xaxis: { type: "date" }, yaxis: { title: { text: "trials finished" } }, uirevision: "keep" }), AR.plotConfig);
  }

  function specialistChart(s) {
    const specs = Object.keys(s.by_specialist);
    const names = [...new Set(specs.flatMap((k) => Object.keys(s.by_specialist[k])))];
    const traces = names.map((name) => ({ type: "bar", orientation: "h", name, y: specs, x: specs.map((k) => s.by_specialist[k][name] || 0), marker: { color: AR.colour(name) } }));
    Plotly.react($("chart-specialists"), traces, AR.layout({ barmode: "stack", margin: { l: 80, r: 12, t: 8, b: 40 }, uirevision: "keep" }), AR.plotConfig);
  }

  function leaderboard(s) {
    table($("leaderboard"), ["#", "trial", "score", "by", "hypothesis"],
      s.leaderboard.map((r, i) => [String(i + 1), link(r.exp), num(r.score), r.specialist, el("span", { class: "hyp" }, r.hypothesis)]));
  }

  function node(r, onPath) {
    const li = el("li", { class: onPath ? "on-path" : "" });
    const kids = el("ul", { class: "kids" });
    let offset = 0, open = false;
    const more = async () => {
      const page = await AR.getJSON(d.api + "/children/" + r.exp + "?offset=" + offset);
      offset += page.children.length;
      kids.append(...page.children.map((c) => node(c, false)));
      if (page.more) kids.append(el("li", { class: "more" }, el("button", { class: "link", onclick: (e) => { e.target.parentNode.remove(); more(); } }, "more…")));
    };
    const toggle = r.children ? el("button", { class: "toggle", title: r.children + " children", onclick: async (e) => {
      open = !open; e.target.textContent = (open ? "▾ " : "▸ ") + r.children;
      if (open && !offset) await more();
      kids.hidden = !open;
    } }, "▸ " + r.children) : el("span", { class: "toggle none" }, "·");
    li.append(toggle, " ", link(r.exp), " ", chip(r.status), " ", num(r.score), " ", el("span", { class: "by" }, r.specialist), " ",
      el("span", { class: "hyp" }, r.hypothesis), kids);
    kids.hidden = true;
    return li;
  }

  // The best's ancestry as one flat path (it can be hundreds of trials long), root first; long
  // paths show their two ends and a button for the middle. Each node opens its children below it.
  function tree(s) {
    const key = JSON.stringify(s.tree.map((r) => [r.exp, r.children]));
    if (key === treeKey) return;
    treeKey = key;
    const root = $("tree");
    if (!s.tree.length) { fill(root, el("li", { class: "muted" }, "no best yet")); return; }
    const nodes = s.tree.map((r) => node(r, true));
    const hide = s.tree.length > 30 ? nodes.slice(3, -25) : [];
    hide.forEach((li) => { li.hidden = true; });
    const more = hide.length ? el("li", { class: "more" }, el("button", { class: "link", onclick: (e) => {
      hide.forEach((li) => { li.hidden = false; }); e.target.parentNode.remove(); } }, "… " + hide.length + " more ancestors")) : null;
    const cut = s.tree[0].parent !== null ? el("li", { class: "muted" }, "… older ancestors of " + exp(s.tree[0].exp) + " not shown (the path is longer than " + s.tree.length + ")") : null;
    fill(root, cut, nodes.slice(0, 3), more, nodes.slice(3));
  }

  function specialists(s) {
    table($("specialists"), ["specialist", "doing now", "in flight", "trials", "keeps", "spend", "last outcomes", "failures"],
      s.specialists.map((p) => {
        const doing = p.paused ? el("span", { class: "warn" }, "paused: " + p.paused)
          : p.session ? "in session (" + p.session.model + ") " + ago(p.session.age_s) + ", " + p.session.tool_calls + " tool calls"
          : p.last ? "last: " + p.last.kind + (p.last.exp !== null ? " " + exp(p.last.exp) : "") + " " + ago(p.last.age_s) + " ago" : "idle";
        const flight = p.inflight.map((f) => el("div", {}, link(f.exp), " ", f.status, f.queue !== null ? " (" + f.queue + " ahead)" : "", " ", ago(f.age_s)));
        const strip = el("span", { class: "strip" }, p.recent.map(([e, st]) => el("a", { class: "cell", href: d.base + "/trial/" + e, title: exp(e) + " " + st, style: "background:" + AR.colour(st) })));
        const fails = Object.entries(p.failures).map(([k, n]) => k + " " + n).join(" · ");
        return [p.name, doing, flight, String(p.trials), String(p.keeps), usd(p.spend_usd), strip, fails || "—"];
      }));
  }

  function recent(s) {
    table($("recent"), ["trial", "by", "status", "score", "Δ", "hypothesis"], s.recent.map((r) =>
      [link(r.exp), r.specialist, chip(r.status), num(r.score), signed(r.delta),
        el("span", { class: "hyp" }, r.hypothesis, r.note ? el("div", { class: "note" }, r.note) : null)]));
    table($("inflight"), ["trial", "by", "status", "for", "queue", "worker"], s.inflight.map((f) =>
      [link(f.exp), f.specialist, chip(f.status), ago(f.age_s), f.queue === null ? "" : f.queue + " ahead", f.worker || ""]));
  }

  async function tick() {
    const s = await AR.getJSON(d.api + "/summary");
    if (s.version === version && s.epoch === epoch) return;
    AR.colours = s.colours;
    await loadPoints(s);
    version = s.version;
    header(s.header);
    scoreChart($("chart-trials"), s, false);
    scoreChart($("chart-time"), s, true);
    leaderboard(s); tree(s); specialists(s); recent(s);
    timelineChart(s); specialistChart(s);
    $("foot").textContent = "updated " + new Date().toLocaleTimeString() + " · lineage version " + s.version + " · " + pts.next + " finished trials plotted";
  }

  AR.loop(tick, Number(d.poll) || 2000);
})();
