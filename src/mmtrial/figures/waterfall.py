"""Waterfall plot of the best percent change in the route's myeloma marker (mmtrial-F01).

Rule
----
TLG catalog mmtrial-F01 (after osprey ``g_waterfall`` and tern ``g_waterfall``): one bar per
patient, sorted from the largest increase to the largest decrease; the marker is serum M-protein
when measurable, else urine M-protein, else dFLC (marrow plasma cells for the marrow route); bar
colour = confirmed best overall response; reference lines at -25% (MR), -50% (PR), -90% (VGPR)
and +25% (PD); increases above +100% are drawn at +100% and marked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.derive.response import CATEGORIES

#: Colour per BOR category (colour-blind-safe ordering from dark blue to red/grey).
BOR_COLOURS: dict[str, str] = {
    "sCR": "#08306b", "CR": "#2171b5", "VGPR": "#4292c6", "PR": "#6baed6", "MR": "#9ecae1",
    "SD": "#bdbdbd", "PD": "#cb181d", "NE": "#737373",
}
REFERENCE_LINES: tuple[tuple[float, str], ...] = ((-25.0, "MR"), (-50.0, "PR"), (-90.0, "VGPR"), (25.0, "PD"))
CAP = 100.0
#: Legend placement: its lower centre just above the axes (axes coordinates), outside the data.
LEGEND_LOC = "lower center"
LEGEND_ANCHOR = (0.5, 1.0)
#: Above this many patients the waterfall is aggregated (issue 15): the sorted patients are cut
#: into this many runs of consecutive patients, one bar per run (a figure of 100,000 rectangles
#: is megabytes of SVG that no reader can resolve).
MAX_BARS = 1000


def aggregate_bars(y: np.ndarray, bor: np.ndarray, max_bars: int = MAX_BARS):
    """Runs of consecutive sorted patients as bars: (left edge, width, height, BOR per run).

    Rule
    ----
    ``y`` sorted (descending). Run edges ``round(linspace(0, n, max_bars + 1))``; a run's bar has
    the run's middle value (the median of the run for an odd length, since the values are
    sorted) and the colour of its most frequent BOR (first in :data:`CATEGORIES` order on ties).
    Vectorised: one pass over the patients, none per run.
    """
    n = y.size
    edges = np.unique(np.round(np.linspace(0, n, max_bars + 1)).astype(int))
    left, right = edges[:-1], edges[1:]
    height = y[(left + right - 1) // 2]
    run = np.repeat(np.arange(left.size), right - left)
    cats = list(CATEGORIES) + [c for c in pd.unique(bor) if c not in CATEGORIES]
    code = pd.Categorical(bor, categories=cats).codes
    counts = np.zeros((left.size, len(cats)), dtype=np.int64)
    np.add.at(counts, (run, code), 1)
    top = np.asarray(cats, dtype=object)[counts.argmax(axis=1)]
    return left, right - left, height, top


def add_column_bars(ax, left: np.ndarray, width: np.ndarray | float, height: np.ndarray, *, colors) -> None:
    """Vertical bars from 0 to ``height``, ``width`` wide from ``left``, as one collection (issue 15).

    Draws what ``ax.bar(left, height, width=width, align="edge", color=colors,
    edgecolor="none")`` draws (its sticky y edge at 0 included), as one collection
    (:func:`mmtrial.figures.bars.add_rectangles`; one artist per bar was about half of the
    waterfall's CPU at 123 patients).
    """
    from mmtrial.figures.bars import add_rectangles

    left = np.asarray(left, dtype=float)
    right = left + np.broadcast_to(np.asarray(width, dtype=float), left.shape)
    h = np.asarray(height, dtype=float)
    add_rectangles(ax, left, np.zeros_like(h), right, h, colors=colors, sticky_y=[0.0])


def derive_best_change(adrs: pd.DataFrame, adsl: pd.DataFrame) -> pd.DataFrame:
    """Best (lowest) percent change per efficacy subject over assessments before new therapy.

    Returns USUBJID, BOR, PCHGPARM (marker), BEST_PCHG; subjects without a post-baseline value
    of their marker are left out (the footnote gives their number).
    """
    o = adrs[(adrs["PARAMCD"] == "OVR") & (adrs["ANL01FL"] == "Y") & adrs["PCHG"].notna()]
    best = o.groupby("USUBJID", sort=False).agg(BEST_PCHG=("PCHG", "min"), PCHGPARM=("PCHGPARM", "first"))
    eff = adsl.loc[(adsl["EFFFL"].astype("string") == "Y").fillna(False).to_numpy(dtype=bool), ["USUBJID", "BOR"]]
    out = eff.merge(best, left_on="USUBJID", right_index=True, how="inner")
    return out.reset_index(drop=True)


def waterfall_figure(best: pd.DataFrame, *, n_eligible: int | None = None):
    """The matplotlib figure and its alt text for :func:`derive_best_change` output."""
    from matplotlib.patches import Patch

    from mmtrial.figures.svg import new_figure

    d = best.sort_values(["BEST_PCHG", "USUBJID"], ascending=[False, True], kind="stable").reset_index(drop=True)
    y = d["BEST_PCHG"].to_numpy(dtype=float)
    capped = y > CAP
    yc = np.minimum(y, CAP)
    colours = d["BOR"].astype("string").fillna("NE").map(BOR_COLOURS).fillna(BOR_COLOURS["NE"]).to_numpy()
    fig = new_figure(figsize=(8.0, 4.2), dpi=100)
    ax = fig.subplots()
    x = np.arange(len(d))
    aggregated = len(d) > MAX_BARS
    if aggregated:
        bor = d["BOR"].astype("string").fillna("NE").to_numpy(dtype=object)
        left, width, height, top = aggregate_bars(yc, bor)
        add_column_bars(ax, left - 0.5, width, height, colors=[BOR_COLOURS.get(c, BOR_COLOURS["NE"]) for c in top])
    else:  # what ax.bar(x, yc, width=0.85) draws: bars centred on x
        add_column_bars(ax, x - 0.85 / 2, 0.85, yc, colors=list(colours))
    if capped.any() and not aggregated:
        ax.scatter(x[capped], np.full(capped.sum(), CAP + 4), marker="^", s=14, color="#cb181d", zorder=3)
    for v, lab in REFERENCE_LINES:
        ax.axhline(v, color="#404040", lw=0.7, ls="--")
        ax.text(len(d) - 0.5 if len(d) else 0.5, v, f" {v:+.0f}% ({lab})", va="center", ha="left", fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-105, CAP + 10)
    ax.set_xlim(-1, max(len(d), 1))
    ax.set_xticks([])
    ax.set_xlabel(f"Patients sorted by best change ({MAX_BARS} bars, each a run of about "
                  f"{len(d) / MAX_BARS:.0f} consecutive patients)" if aggregated
                  else "Patients (one bar each), sorted by best change")
    ax.set_ylabel("Best change from baseline (%)")
    present = [c for c in CATEGORIES if (d["BOR"] == c).any()]
    # legend outside the plot area (one row above it), so it never covers bars or reference lines
    ax.legend(handles=[Patch(color=BOR_COLOURS[c], label=c) for c in present], title="Confirmed BOR",
              fontsize=7, title_fontsize=7, loc=LEGEND_LOC, bbox_to_anchor=LEGEND_ANCHOR,
              ncol=max(len(present), 1), frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    n = len(d)
    n_resp = int((y <= -50).sum())
    markers = ", ".join(f"{k} {int(v)}" for k, v in d["PCHGPARM"].astype("string").value_counts().items() if v > 0)
    alt = (f"Waterfall plot of the best percent change from baseline in the myeloma marker for {n} patients"
           + (f" of {n_eligible} in the efficacy population" if n_eligible is not None else "")
           + f" (markers: {markers or 'none'}). {n_resp} bars reach -50% or lower; "
           f"{int(capped.sum())} increases exceed +100% and are drawn at +100%. "
           "Dashed lines at -25%, -50%, -90% and +25%. Bars are coloured by confirmed best overall response."
           + (f" Aggregated: {MAX_BARS} bars, each the middle value of a run of consecutive sorted patients, "
              "coloured by the run's most frequent response." if aggregated else ""))
    return fig, alt
