"""Kaplan-Meier plot (TLG catalog KMG01): curves with censor marks, number-at-risk table and
median (CI) annotation, as an SVG string for the report.

Rule
----
KMG01 (insightsengineering/tlg-catalog graphs/efficacy/kmg01): step curve, "+" at censored
times, number at risk under the x axis at the tick times, median with its CI in a box; no Cox
annotation for a single arm.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np

from mmtrial.stats.survival import KaplanMeier

_COLOURS = ("#1f4e79", "#c0504d", "#4f8a3c", "#8064a2", "#d98c1f")


def _fmt(v: float | None) -> str:
    from mmtrial.tables.format import fmt_num

    return fmt_num(v, 1)


#: Characters of a number-at-risk row label that fit left of the first count at fontsize 8; a
#: longer label is set at fontsize 7 (room for :data:`RISK_LABEL_CHARS_SMALL` characters).
RISK_LABEL_CHARS = 22
RISK_LABEL_CHARS_SMALL = 26


def _risk_row_label(label: str) -> tuple[str, float]:
    """The curve label for its number-at-risk row and its font size, never cut mid-word.

    Up to :data:`RISK_LABEL_CHARS` characters at fontsize 8; up to
    :data:`RISK_LABEL_CHARS_SMALL` at fontsize 7 (so "Progression-free survival" stays whole);
    longer labels are shortened at a word boundary with "..." (the full label is in the legend).
    """
    label = str(label)
    if len(label) <= RISK_LABEL_CHARS:
        return label, 8.0
    if len(label) <= RISK_LABEL_CHARS_SMALL:
        return label, 7.0
    short = textwrap.shorten(label, width=RISK_LABEL_CHARS_SMALL, placeholder=" ...")
    if short == "...":  # one long word: cut it
        short = label[: RISK_LABEL_CHARS_SMALL - 3] + "..."
    return short, 7.0


#: Y-axis wording per endpoint (ADTTE PARAMCD): the survival function of each endpoint said in
#: its own words (OS: probability of being alive; DOR: of remaining in response ...).
KM_YLABELS: dict[str, str] = {
    "OS": "Overall survival probability",
    "PFS": "Progression-free survival probability",
    "DOR": "Probability of remaining in response",
    "TTNT": "Probability of no next treatment or death",
    "TTR": "Probability of not yet responding",
    "EFS": "Event-free survival probability",
}


def km_ylabel(paramcd: str, param: str | None = None) -> str:
    """The KM plot's y-axis label for an endpoint.

    Looks the PARAMCD up in :data:`KM_YLABELS`; an endpoint not listed gets
    ``"<PARAM> probability"`` from its ADTTE PARAM (e.g. "Time to Progression" ->
    "Time to progression probability"), else "Probability event-free".
    """
    code = str(paramcd).strip().upper()
    if code in KM_YLABELS:
        return KM_YLABELS[code]
    if param and str(param).strip():
        text = str(param).strip()
        return f"{text[0].upper()}{text[1:].lower()} probability"
    return "Probability event-free"


def compute_km_steps(km: KaplanMeier) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the step curve starting at (0, 1), with a point at each distinct time."""
    x = np.concatenate([[0.0], km.time])
    y = np.concatenate([[1.0], km.surv])
    return x, y


def km_figure(
    curves: Mapping[str, KaplanMeier],
    *,
    xlabel: str = "Months",
    ylabel: str = "Probability of survival",
    tick_step: float | None = None,
    at_risk_times: Sequence[float] | None = None,
    show_ci: bool = True,
    title: str = "",
    annotation: Sequence[str] = (),
):
    """A matplotlib figure of one or more KM curves with a number-at-risk table.

    The curves must already be on the plotting time scale (e.g. months). ``annotation``: lines
    printed in a box on the plot below the medians (two arms: the hazard ratio with its CI and
    the log-rank p, KMG01's Cox annotation).
    """
    from mmtrial.figures.svg import new_figure

    tmax = max((float(km.time[-1]) for km in curves.values() if km.time.size), default=1.0)
    if tick_step is None:
        raw = tmax / 8
        mag = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1
        tick_step = float(min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw))
    ticks = np.arange(0, tmax + tick_step, tick_step) if at_risk_times is None else np.asarray(at_risk_times, float)
    n_rows = len(curves)
    fig = new_figure(figsize=(7.5, 4.6 + 0.25 * n_rows))
    left, width = 0.22, 0.74  # room on the left for the number-at-risk row labels
    ax = fig.add_axes((left, 0.18 + 0.05 * n_rows, width, 0.72 - 0.05 * n_rows))
    lines = []
    for k, (label, km) in enumerate(curves.items()):
        col = _COLOURS[k % len(_COLOURS)]
        x, y = compute_km_steps(km)
        (ln,) = ax.step(x, y, where="post", color=col, lw=1.6, label=f"{label} (n={km.n})")
        lines.append(ln)
        if show_ci and km.time.size:
            lo = np.concatenate([[1.0], np.nan_to_num(km.lower, nan=np.nan)])
            hi = np.concatenate([[1.0], km.upper])
            ax.fill_between(x, lo, hi, step="post", color=col, alpha=0.12, lw=0)
        cens = km.n_censor > 0
        if cens.any():
            ax.plot(km.time[cens], km.surv[cens], "+", color=col, ms=7, mew=1.2)
        med = km.median
        lo_m, hi_m = km.median_ci
        ax.text(
            0.98,
            0.97 - 0.07 * k,
            f"{label}: median {_fmt(med)} ({_fmt(lo_m)}, {_fmt(hi_m)})",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8.5,
            color=col,
        )
        if med is not None:
            ax.plot([0, med, med], [0.5, 0.5, 0], ls=":", color=col, lw=0.8)
    if annotation:
        ax.text(0.98, 0.97 - 0.07 * n_rows, "\n".join(annotation), transform=ax.transAxes, ha="right",
                va="top", fontsize=8.5, bbox={"boxstyle": "square,pad=0.3", "fc": "white", "ec": "#888888",
                                              "lw": 0.6})
    ax.set_xlim(0, float(ticks[-1]) if len(ticks) else tmax)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    ax.legend(handles=lines, loc="lower left", fontsize=8.5, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    # number at risk table
    fig.text(0.01, 0.05 + 0.05 * n_rows, "Number at risk", fontsize=8.5, weight="bold")
    xmin, xmax = ax.get_xlim()
    for k, (label, km) in enumerate(curves.items()):
        yy = 0.03 + 0.05 * (n_rows - 1 - k)
        row_label, row_size = _risk_row_label(label)
        fig.text(0.01, yy, row_label, fontsize=row_size, color=_COLOURS[k % len(_COLOURS)])
        risk = km.number_at_risk(ticks) if km.time.size else np.zeros(len(ticks), int)
        for t, r in zip(ticks, risk, strict=True):
            fx = left + width * (t - xmin) / (xmax - xmin)
            fig.text(fx, yy, str(int(r)), fontsize=8, ha="center")
    return fig


def km_svg(curves: Mapping[str, KaplanMeier], alt: str, **kw) -> str:
    """The KM figure as a reproducible SVG string (see ``figures/svg.py``)."""
    from mmtrial.figures.svg import figure_to_svg

    return figure_to_svg(km_figure(curves, **kw), alt)
