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


def forest_hr_figure(rows: Sequence[dict], *, overall: float | None = None,
                     xlabel: str = "Hazard ratio (log scale)", favours: tuple[str, str] = ("", "")):
    """Forest plot of hazard ratios by subgroup (TLG catalog FSTG02, BOSTON Figure 2).

    rows: dicts with ``label`` (subgroup: level), ``n``, ``events``, ``hr``, ``hr_ci`` (2 numbers)
    and optionally ``p_interaction`` (printed on the first row of its subgroup). Log x axis,
    reference line at HR 1 and a dashed line at the overall HR; boxes sized by events.
    """
    from mmtrial.figures.svg import new_figure
    from mmtrial.tables.format import fmt_estimate_ci, fmt_p

    k = len(rows)
    fig = new_figure(figsize=(8.6, 1.3 + 0.34 * max(k, 1)))
    bottom, height = 0.10 + 0.4 / (1.3 + 0.34 * max(k, 1)), 0.0
    height = 0.90 - bottom - 0.05
    ax = fig.add_axes((0.36, bottom, 0.28, height))
    y = np.arange(k)[::-1]
    finite = [v for r in rows for v in (r.get("hr_ci") or []) if v is not None and np.isfinite(v) and v > 0]
    lo_x = min([*finite, 0.5]) * 0.9
    hi_x = max([*finite, 2.0]) * 1.1
    max_ev = max([int(r.get("events") or 0) for r in rows] + [1])

    def ypos(yi: float) -> float:
        return bottom + height * (yi + 0.5) / max(k, 1)

    for yi, r in zip(y, rows, strict=True):
        fig.text(0.01, ypos(yi), str(r["label"]), va="center", fontsize=8)
        fig.text(0.33, ypos(yi), f"{r.get('events', '')}/{r.get('n', '')}", va="center", ha="right", fontsize=8)
        hr, ci = r.get("hr"), tuple(r.get("hr_ci") or (None, None))
        fig.text(0.66, ypos(yi), fmt_estimate_ci(hr, ci, 2), va="center", fontsize=8)
        if r.get("p_interaction") is not None:
            fig.text(0.99, ypos(yi), fmt_p(r["p_interaction"]), va="center", ha="right", fontsize=8)
        if hr is None or not np.isfinite(hr) or hr <= 0:
            continue
        lo, hi = (min(max(v, lo_x), hi_x) if v is not None and np.isfinite(v) else (lo_x if j == 0 else hi_x)
                  for j, v in enumerate(ci))
        ax.plot([lo, hi], [yi, yi], color="#1f4e79", lw=1.3)
        ax.plot([hr], [yi], "s", color="#1f4e79", ms=3 + 5 * np.sqrt(int(r.get("events") or 0) / max_ev))
    ax.axvline(1.0, color="#444444", lw=0.8)
    if overall is not None and np.isfinite(overall) and overall > 0:
        ax.axvline(overall, color="#888888", ls="--", lw=0.9)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ticks = [t for t in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 10.0) if lo_x <= t <= hi_x]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.5, k - 0.5)
    ax.set_yticks([])
    ax.set_xlabel(xlabel, fontsize=8)
    ax.grid(axis="x", alpha=0.25)
    head = bottom + height + 0.02
    fig.text(0.01, head, "Subgroup", fontsize=8, weight="bold")
    fig.text(0.33, head, "Events/n", fontsize=8, weight="bold", ha="right")
    fig.text(0.66, head, "HR (95% CI)", fontsize=8, weight="bold")
    fig.text(0.99, head, "Interaction p", fontsize=8, weight="bold", ha="right")
    if any(favours):
        fig.text(0.36, 0.01, f"< favours {favours[0]}", fontsize=7.5)
        fig.text(0.64, 0.01, f"favours {favours[1]} >", fontsize=7.5, ha="right")
    return fig


def forest_difference_figure(rows: Sequence[dict], *, overall: float | None = None,
                             favours: tuple[str, str] | None = None, xlabel: str = "Difference in ORR (percentage points)"):
    """Forest plot of a difference of proportions (experimental - control) by subgroup.

    rows: dicts with ``label``, ``counts`` (text, e.g. "40/52 vs 30/50"), ``estimate`` and ``ci``
    (differences as proportions, -1 to 1; None when not estimable). Reference line at 0 (no
    difference), dashed line at the overall difference; box size by the subgroup's n.
    """
    from mmtrial.figures.svg import new_figure
    from mmtrial.tables.format import fmt_estimate_ci

    k = len(rows)
    fig = new_figure(figsize=(8.0, 1.3 + 0.38 * max(k, 1)))
    ax = fig.add_axes((0.42, 0.2, 0.36, 0.72))
    y = np.arange(k)[::-1]
    n_max = max([*(r.get("n") or 0 for r in rows), 1])
    his = [100 * abs(v) for r in rows if r.get("ci") and None not in r["ci"] for v in r["ci"]]
    lim = min(100.0, max(25.0, 5 * np.ceil(max([*his, 0.0]) / 5)))
    for yi, r in zip(y, rows, strict=True):
        yy = 0.2 + 0.72 * (yi + 0.5) / k
        fig.text(0.01, yy, r["label"], va="center", fontsize=8.5)
        fig.text(0.40, yy, r.get("counts", ""), va="center", ha="right", fontsize=8)
        est, ci = r.get("estimate"), r.get("ci")
        if est is None or ci is None or None in ci or not np.isfinite(est):
            fig.text(0.80, yy, "NE", va="center", fontsize=8.5)
            continue
        ax.plot([100 * ci[0], 100 * ci[1]], [yi, yi], color="#1f4e79", lw=1.4)
        ax.plot([100 * est], [yi], "s", color="#1f4e79", ms=4 + 4 * np.sqrt((r.get("n") or 0) / n_max))
        fig.text(0.80, yy, fmt_estimate_ci(est, tuple(ci), 1, 100), va="center", fontsize=8.5)
    ax.axvline(0.0, color="#444444", lw=0.8)
    if overall is not None and np.isfinite(overall):
        ax.axvline(100 * overall, color="#888888", ls="--", lw=0.9)
    ax.set_ylim(-0.5, k - 0.5)
    ax.set_yticks([])
    ax.set_xlim(-lim, lim)
    ax.set_xlabel(xlabel, fontsize=8.5)
    ax.grid(axis="x", alpha=0.25)
    if favours:
        ax.text(0.02, -0.2, f"< favours {favours[1]}", transform=ax.transAxes, fontsize=7.5, va="top")
        ax.text(0.98, -0.2, f"favours {favours[0]} >", transform=ax.transAxes, fontsize=7.5, va="top", ha="right")
    fig.text(0.01, 0.95, "Subgroup", fontsize=8.5, weight="bold")
    fig.text(0.40, 0.95, "Responders/n (exp. vs control)", fontsize=8, weight="bold", ha="right")
    fig.text(0.80, 0.95, "Difference (CI)", fontsize=8.5, weight="bold")
    return fig
