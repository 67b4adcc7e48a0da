"""Love plot: covariate balance before and after weighting (external control, MAIC).

Rule
----
Austin & Stuart, Stat Med 2015;34:3661, Figure 2 (absolute standardised differences per
covariate, before and after weighting; a reference line at 0.1, the usual threshold of
negligible imbalance, Austin 2009); the layout of cobalt ``love.plot`` (Greifer): one row per
covariate, ordered by the unweighted imbalance, open circles before and filled after.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_BEFORE, _AFTER = "#c0504d", "#1f4e79"


def love_figure(smd: pd.DataFrame, *, threshold: float = 0.1, absolute: bool = True,
                labels: dict[str, str] | None = None, title: str = ""):
    """A matplotlib figure of the SMDs of :func:`mmtrial.stats.weighting.compute_smd`.

    Parameters
    ----------
    smd : DataFrame with columns covariate, smd_unweighted, smd_weighted
    threshold : reference line(s) at +-threshold (0.1; Austin 2009)
    absolute : plot |SMD| (default) or the signed SMD
    labels : display names per covariate (default: the covariate name)
    """
    from mmtrial.figures.svg import new_figure

    need = {"covariate", "smd_unweighted", "smd_weighted"}
    if not need <= set(smd.columns):
        raise ValueError(f"love_figure: smd needs columns {sorted(need)}; got {list(smd.columns)}")
    d = smd.copy()
    before = d["smd_unweighted"].to_numpy(float)
    after = d["smd_weighted"].to_numpy(float)
    if absolute:
        before, after = np.abs(before), np.abs(after)
    order = np.argsort(np.nan_to_num(np.abs(before), nan=-1.0), kind="stable")  # largest at the top
    names = [(labels or {}).get(str(c), str(c)) for c in d["covariate"]]
    k = len(d)
    fig = new_figure(figsize=(6.5, 1.2 + 0.28 * max(k, 1)))
    ax = fig.add_axes((0.34, 0.12, 0.62, 0.8))
    y = np.arange(k)
    ax.scatter(before[order], y, facecolors="none", edgecolors=_BEFORE, s=28, label="Before weighting", zorder=3)
    ax.scatter(after[order], y, color=_AFTER, s=24, label="After weighting", zorder=3)
    for yi, b, a in zip(y, before[order], after[order], strict=True):
        if np.isfinite(b) and np.isfinite(a):
            ax.plot([b, a], [yi, yi], color="#999999", lw=0.6, zorder=2)
    ax.axvline(threshold, color="#555555", ls="--", lw=0.9)
    if absolute:
        ax.axvline(0, color="#555555", lw=0.6)
    else:
        ax.axvline(-threshold, color="#555555", ls="--", lw=0.9)
        ax.axvline(0, color="#555555", lw=0.6)
    ax.set_yticks(y)
    ax.set_yticklabels([names[i] for i in order], fontsize=8.5)
    ax.set_ylim(-0.6, k - 0.4)
    finite = np.concatenate([before[np.isfinite(before)], after[np.isfinite(after)], [threshold]])
    hi = float(np.max(np.abs(finite))) * 1.1
    ax.set_xlim(0 if absolute else -hi, hi)
    ax.set_xlabel("Absolute standardised mean difference" if absolute else "Standardised mean difference")
    ax.grid(axis="x", alpha=0.25)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def love_svg(smd: pd.DataFrame, alt: str, **kw) -> str:
    """The love plot as a reproducible SVG string (see ``figures/svg.py``)."""
    from mmtrial.figures.svg import figure_to_svg

    return figure_to_svg(love_figure(smd, **kw), alt)
