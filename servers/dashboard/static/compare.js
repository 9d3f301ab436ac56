// The comparison page: per search and per group (bootstrap intervals), and best-so-far curves
// with each group's median and 25-75% band. Polls /api/compare (ETag: the searches' versions).
"use strict";
(function () {
  const d = document.body.dataset;
  const { el, num, table } = AR;
  const $ = (id) => document.getElementById(id);
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  let last = "";

  const ci = (f) => (f.mean === null ? "—" : num(f.mean, 4) + (f.lo === null ? "" : " [" + num(f.lo, 4) + ", " + num(f.hi, 4) + "]"));
  const mix = (m) => Object.entries(m).map(([k, v]) => k + " " + Math.round(v * 100) + "%").join(" · ");

  function render(c) {
    table($("cmp-searches"), ["search", "group", "trials", "keeps", "best", "baseline", "improvement", "%", "trials to best", "status mix"],
      c.searches.map((s) => [el("a", { href: "/s/" + s.label + "/" }, s.label), s.group, String(s.trials), String(s.keeps),
        num(s.best), num(s.baseline), num(s.improvement, 4), num(s.improvement_pct, 3), s.trials_to_best === null ? "—" : String(s.trials_to_best), mix(s.status_mix)]));
    $("cmp-boot").textContent = "mean [" + Math.round(c.bootstrap.level * 100) + "% bootstrap interval over the group's searches, " + c.bootstrap.resamples + " resamples]";
    table($("cmp-groups"), ["group", "searches", "trials", "keeps", "best", "improvement", "%", "trials to best", "status mix"],
      c.groups.map((g) => [g.name, String(g.n), ci(g.figures.trials), ci(g.figures.keeps), ci(g.figures.best), ci(g.figures.improvement),
        ci(g.figures.improvement_pct), ci(g.figures.trials_to_best), mix(g.status_mix)]));
    const traces = [];
    c.groups.forEach((g, i) => {
      const colour = palette[i % palette.length];
      c.searches.filter((s) => s.group === g.name).forEach((s) => traces.push({ type: "scatter", mode: "lines", x: s.plot.x, y: s.plot.y,
        line: { shape: "hv", color: colour, width: 1 }, opacity: 0.45, name: s.label, legendgroup: g.name, showlegend: false }));
      if (g.n > 1) {
        traces.push({ type: "scatter", mode: "lines", x: g.curve.x, y: g.curve.lo, line: { width: 0, shape: "hv" }, hoverinfo: "skip", showlegend: false, legendgroup: g.name });
        traces.push({ type: "scatter", mode: "lines", x: g.curve.x, y: g.curve.hi, line: { width: 0, shape: "hv" }, fill: "tonexty",
          fillcolor: colour + "33", hoverinfo: "skip", name: g.name + " (25-75%)", legendgroup: g.name });
      }
      traces.push({ type: "scatter", mode: "lines", x: g.curve.x, y: g.curve.median, line: { shape: "hv", color: colour, width: 3 },
        name: g.name + (g.n > 1 ? " (median of " + g.n + ")" : ""), legendgroup: g.name });
    });
    $("cmp-curves-title").textContent = c.units === "metric" ? "Best so far: " + c.metric + (c.lower_is_better ? " (lower is better)" : " (higher is better)")
      : "Best so far: improvement over each search's baseline, % (higher is better)";
    Plotly.react($("chart-compare"), traces, AR.layout({ xaxis: { title: { text: "trial (exp id)" } }, uirevision: "keep" }), AR.plotConfig);
  }

  async function tick() {
    const c = await AR.getJSON("/api/compare");
    const key = JSON.stringify(c.searches.map((s) => [s.label, s.trials, s.best]));
    if (key === last) return;
    last = key;
    render(c);
    $("foot").textContent = "updated " + new Date().toLocaleTimeString();
  }
  AR.loop(tick, Number(d.poll) || 2000);
})();
