"""The comparison's plot (`autoresearch compare --plot`): best-so-far curves, each search thin,
each group's median thick with its 25-75% band (see `lineage.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def plot_compare(result: dict[str, Any], path: Path) -> Path:
    """Write the comparison's PNG to `path` (parents created) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    try:
        for i, g in enumerate(result["groups"]):
            colour = COLOURS[i % len(COLOURS)]
            for s in (s for s in result["searches"] if s["group"] == g["name"]):
                if s["plot"]["x"]:
                    ax.step(s["plot"]["x"], s["plot"]["y"], where="post", color=colour, alpha=0.35, linewidth=1)
            c = g["curve"]
            if g["n"] > 1 and c["x"]:
                ax.fill_between(c["x"], c["lo"], c["hi"], step="post", color=colour, alpha=0.18, linewidth=0)
            if c["x"]:
                label = f"{g['name']} (median of {g['n']})" if g["n"] > 1 else g["name"]
                ax.step(c["x"], c["median"], where="post", color=colour, linewidth=2.5, label=label)
        if result["units"] == "metric":
            direction = "lower is better" if result["lower_is_better"] else "higher is better"
            ax.set_ylabel(f"{result['metric']} ({direction})")
        else:
            ax.set_ylabel("improvement over baseline, % (higher is better)")
        ax.set_xlabel("trial (exp id)")
        ax.set_title("best so far: each search thin, each group's median thick, band 25-75%")
        ax.grid(alpha=0.3)
        if result["groups"]:
            ax.legend(loc="best", fontsize=9)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
