"""CSR figures added for submission (issue 14): spider plot, swimmer plot by response, laboratory
values over time. Built on ``matplotlib.figure.Figure`` directly (no pyplot state).

Rule
----
TLG catalog (../shared/reference/tlg-catalog.md): IPPG01 (individual patient plot over time:
percent change of the myeloma marker per patient), mmtrial-F02 (swimmer plot: bar = time on
treatment, colour = best response, markers for first response, progression and death, arrow for
ongoing treatment; responders, >= MR), STF Figures 16-20 (median and interquartile range over
time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.figures.swimmer import _add_bars
from mmtrial.figures.waterfall import BOR_COLOURS

DAYS_PER_MONTH = 30.4375
BOR_ORDER = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def compute_spider_data(adrs: pd.DataFrame, adsl: pd.DataFrame) -> pd.DataFrame:
    """Percent change from baseline of the route's marker per efficacy subject and assessment
    (ADRS OVR before new therapy), with the subject's confirmed BOR; baseline (0%) at day 1."""
    o = adrs.loc[(adrs["PARAMCD"] == "OVR") & (adrs["ANL01FL"] == "Y") & adrs["PCHG"].notna()
                 & adrs["ADY"].notna(), ["USUBJID", "ADY", "PCHG", "PCHGPARM"]]
    eff = adsl.loc[adsl["EFFFL"].astype(object).eq("Y").to_numpy(dtype=bool), ["USUBJID", "BOR"]]
    d = o.merge(eff, on="USUBJID", how="inner")
    base = d.drop_duplicates("USUBJID").assign(ADY=1.0, PCHG=0.0)
    d = pd.concat([base, d], ignore_index=True).sort_values(["USUBJID", "ADY"], kind="stable")
    d["MONTH"] = (d["ADY"] - 1) / DAYS_PER_MONTH
    d["BOR"] = d["BOR"].astype(object).fillna("NE")
    return d.reset_index(drop=True)


def plot_spider(d: pd.DataFrame, *, cap: float = 100.0):
    """One line per subject: percent change over months, coloured by confirmed BOR."""
    fig = _figure(8, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.collections import LineCollection

    d = d.sort_values(["USUBJID", "ADY"], kind="stable")
    xy = np.column_stack([d["MONTH"].to_numpy(float), d["PCHG"].clip(upper=cap).to_numpy(float)])
    subj = d["USUBJID"].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, subj[1:] != subj[:-1]])
    lines = np.split(xy, starts[1:])  # one polyline per subject
    colours = [BOR_COLOURS.get(b, "#737373") for b in d["BOR"].to_numpy()[starts]]
    ax.add_collection(LineCollection(lines, colors=colours, linewidths=0.8, alpha=0.8))
    ax.autoscale_view()
    for y, lab in ((-50.0, "PR"), (-90.0, "VGPR"), (25.0, "PD")):
        ax.axhline(y, color="#555555", lw=0.6, ls="--")
        ax.text(ax.get_xlim()[1] if len(d) else 1, y, f" {lab}", va="center", fontsize=7)
    ax.set_xlabel("Months since first dose")
    ax.set_ylabel("Change from baseline in the myeloma marker (%)")
    present = [b for b in BOR_ORDER if b in set(d["BOR"])]
    from matplotlib.lines import Line2D

    ax.legend([Line2D([0], [0], color=BOR_COLOURS[b], lw=2) for b in present], present, title="Best response",
              fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def compute_swimmer_response(adsl: pd.DataFrame, *, responders: tuple[str, ...] = ("sCR", "CR", "VGPR", "PR", "MR"),
                             ) -> pd.DataFrame:
    """One row per efficacy subject with BOR in ``responders``: months on treatment, first response,
    progression and death (months from the first dose) and whether treatment is ongoing."""
    eff = adsl.loc[adsl["EFFFL"].astype(object).eq("Y").to_numpy(dtype=bool)
                   & adsl["BOR"].astype(object).isin(list(responders)).to_numpy(dtype=bool)].copy()

    def months(col: str) -> pd.Series:
        if col not in eff:
            return pd.Series(np.nan, index=eff.index)
        return ((eff[col] - eff["TRTSDT"]).dt.days + 1) / DAYS_PER_MONTH

    out = pd.DataFrame({"USUBJID": eff["USUBJID"].astype(str), "BOR": eff["BOR"].astype(object),
                        "DUR": months("TRTEDT"), "RSP": months("MRDT" if "MRDT" in eff else "RSPDT"),
                        "PD": months("PDDT"), "DTH": months("DTHDT")})
    ongoing = eff["EOTSTT"].astype(object).str.upper().eq("ONGOING") if "EOTSTT" in eff else False
    out["ONGOING"] = np.asarray(ongoing, dtype=bool) if not isinstance(ongoing, bool) else False
    return out.sort_values(["DUR", "USUBJID"], ascending=[True, True]).reset_index(drop=True)


#: Most lanes the responder swimmer plot draws (issue 15: one labelled lane per patient made the
#: figure 450 inches high and cost about 30 s of CPU at 5,000 subjects).
SWIMMER_MAX_PATIENTS = 100


def cap_swimmer_response(d: pd.DataFrame, max_patients: int = SWIMMER_MAX_PATIENTS) -> pd.DataFrame:
    """The lanes shown: all when there are at most ``max_patients``, else the ``max_patients``
    longest treated (as the exposure swimmer plot does), in the same order (by duration)."""
    if len(d) <= max_patients:
        return d
    return d.sort_values(["DUR", "USUBJID"], na_position="first", kind="stable").tail(max_patients).reset_index(drop=True)


def plot_swimmer_response(d: pd.DataFrame):
    """Horizontal bars (treatment duration) coloured by BOR, with response, PD and death markers."""
    fig = _figure(8, max(3.0, 0.18 * len(d) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(d))
    # what ax.barh(y, DUR, height=0.7) draws, as one collection (issue 15: one artist per bar)
    _add_bars(ax, y.astype(float), np.zeros(len(d)), d["DUR"].fillna(0).to_numpy(dtype=float), height=0.7,
              colors=[BOR_COLOURS.get(b, "#737373") for b in d["BOR"]])
    ax.scatter(d["RSP"], y, marker="^", color="black", s=14, label="First response (MR or better)", zorder=3)
    ax.scatter(d["PD"], y, marker="x", color="#cb181d", s=16, label="Progression", zorder=3)
    ax.scatter(d["DTH"], y, marker="D", color="#4d4d4d", s=12, label="Death", zorder=3)
    on = d.loc[d["ONGOING"]]
    if len(on):
        ax.scatter(on["DUR"] + 0.3, y[d["ONGOING"].to_numpy()], marker=">", color="black", s=14,
                   label="Treatment ongoing", zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels(d["USUBJID"], fontsize=5)
    ax.set_xlabel("Months since first dose")
    from matplotlib.patches import Patch

    bors = [b for b in BOR_ORDER if b in set(d["BOR"])]
    handles, labels = ax.get_legend_handles_labels()
    handles += [Patch(color=BOR_COLOURS[b]) for b in bors]
    labels += [f"BOR {b}" for b in bors]
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_lab_over_time(stats_frame: pd.DataFrame, names: dict[str, str]):
    """One panel per test: median (line) and interquartile range (band) over the analysis visits."""
    tests = list(dict.fromkeys(stats_frame["PARAMCD"]))
    fig = _figure(8, 2.0 * max(1, len(tests)))
    for i, t in enumerate(tests, start=1):
        ax = fig.add_subplot(len(tests), 1, i)
        s = stats_frame.loc[stats_frame["PARAMCD"] == t].sort_values("AVISITN")
        x = (s["AVISITN"].clip(lower=1) - 1) / 7.0
        ax.fill_between(x, s["q1"], s["q3"], color="#9ecae1", alpha=0.6, lw=0)
        ax.plot(x, s["median"], color="#08306b", lw=1.2, marker="o", ms=2)
        unit = s["AVALU"].iloc[0] if len(s) else ""
        ax.set_ylabel(f"{names.get(t, t)}\n({unit})", fontsize=7)
        ax.tick_params(labelsize=7)
    if tests:
        ax.set_xlabel("Weeks since first dose (baseline at week 0)")
    return fig


def plot_lab_over_time_by_arm(frames: dict[str, pd.DataFrame], names: dict[str, str]):
    """One panel per test; per arm (``frames``: arm label -> :func:`compute_lab_by_visit` frame) the
    median (line, the arm's colour of the KM plots) and the interquartile range (band)."""
    from mmtrial.figures.km import _COLOURS

    tests = list(dict.fromkeys(t for f in frames.values() for t in f["PARAMCD"]))
    fig = _figure(8, 2.0 * max(1, len(tests)))
    ax = None
    for i, t in enumerate(tests, start=1):
        ax = fig.add_subplot(len(tests), 1, i)
        unit = ""
        for k, (label, f) in enumerate(frames.items()):
            s = f.loc[f["PARAMCD"] == t].sort_values("AVISITN")
            if not len(s):
                continue
            x = (s["AVISITN"].clip(lower=1) - 1) / 7.0
            col = _COLOURS[k % len(_COLOURS)]
            ax.fill_between(x, s["q1"], s["q3"], color=col, alpha=0.15, lw=0)
            ax.plot(x, s["median"], color=col, lw=1.2, marker="o", ms=2, label=label)
            unit = s["AVALU"].iloc[0]
        ax.set_ylabel(f"{names.get(t, t)}\n({unit})", fontsize=7)
        ax.tick_params(labelsize=7)
        if i == 1:
            ax.legend(fontsize=7, frameon=False, loc="best")
    if ax is not None:
        ax.set_xlabel("Weeks since first dose (baseline at week 0)")
    return fig
