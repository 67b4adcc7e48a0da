"""Forest plot of response rate by subgroup, single-arm form (TLG catalog FSTG01).

Rule
----
FSTG01 (insightsengineering/tlg-catalog graphs/efficacy/fstg01), adapted to one arm: one row per
subgroup level with n, responders and ORR with its exact CI as a point and a bar, and a vertical
reference line at the overall ORR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def forest_figure(rows: Sequence[dict], *, overall: float | None = None, xlabel: str = "ORR (%)"):
    """rows: dicts with ``label``, ``n``, ``x``, ``estimate``, ``ci`` (proportions, 0-1)."""
    from mmtrial.figures.svg import new_figure
    from mmtrial.tables.format import fmt_ci, fmt_pct

    k = len(rows)
    fig = new_figure(figsize=(8.0, 1.0 + 0.38 * max(k, 1)))
    ax = fig.add_axes((0.42, 0.16, 0.36, 0.76))
    y = np.arange(k)[::-1]
    for yi, r in zip(y, rows, strict=True):
        if r["n"] == 0 or r["estimate"] is None or np.isnan(r["estimate"]):
            continue
        lo, hi = r["ci"]
        ax.plot([100 * lo, 100 * hi], [yi, yi], color="#1f4e79", lw=1.4)
        ax.plot([100 * r["estimate"]], [yi], "s", color="#1f4e79", ms=4 + 4 * np.sqrt(r["n"] / max(x["n"] for x in rows)))
        fig.text(0.01, 0.16 + 0.76 * (yi + 0.5) / k, r["label"], va="center", fontsize=8.5)
        fig.text(0.34, 0.16 + 0.76 * (yi + 0.5) / k, f"{r['x']}/{r['n']}", va="center", ha="right", fontsize=8.5)
        fig.text(
            0.80,
            0.16 + 0.76 * (yi + 0.5) / k,
            f"{fmt_pct(r['x'], r['n'])} {fmt_ci(tuple(r['ci']), 1, 100)}",
            va="center",
            fontsize=8.5,
        )
    if overall is not None:
        ax.axvline(100 * overall, color="#888888", ls="--", lw=0.9)
    ax.set_ylim(-0.5, k - 0.5)
    ax.set_yticks([])
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.25)
    fig.text(0.01, 0.95, "Subgroup", fontsize=8.5, weight="bold")
    fig.text(0.34, 0.95, "x/n", fontsize=8.5, weight="bold", ha="right")
    fig.text(0.80, 0.95, "ORR % (95% CI)", fontsize=8.5, weight="bold")
    return fig


def forest_svg(rows: Sequence[dict], alt: str, **kw) -> str:
    from mmtrial.figures.svg import figure_to_svg

    return figure_to_svg(forest_figure(rows, **kw), alt)
