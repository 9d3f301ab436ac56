// A trial's page: while the trial is unfinished, check its status and reload once it changes.
"use strict";
(function () {
  const d = document.body.dataset;
  if (d.finished === "yes") return;
  const tick = async () => {
    try {
      const r = await fetch(d.api + "/trial/" + d.exp, { cache: "no-store", credentials: "same-origin" });
      if (r.ok) {
        const t = await r.json();
        if (t.status !== d.status) { location.reload(); return; }
      }
    } catch (e) { console.warn(e); }
    setTimeout(tick, Number(d.poll) || 2000);
  };
  setTimeout(tick, Number(d.poll) || 2000);
})();
