"""Swimmer plot (mmtrial-F02): study-drug dose level over time, with AEs and responses marked.

Layout after osprey ``g_swimlane`` (tlg-catalog section 7): one lane per patient, bar segments
coloured by dose level along the protocol's ladder (gaps = interruptions), markers for grade >= 3
TEAE onsets, the first response of PR or better, progression and death.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESPONSE_OK = ("sCR", "CR", "VGPR", "PR")


def compute_swimmer_data(
    adexlvl: pd.DataFrame,
    adsl: pd.DataFrame,
    *,
    study_drug: str,
    adae: pd.DataFrame | None = None,
    adrs: pd.DataFrame | None = None,
    max_subjects: int = 60,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segments (USUBJID, START, END in days from first dose, DOSELVL) and markers
    (USUBJID, DAY, KIND) for the lanes shown.

    With more than ``max_subjects`` patients, responders (first PR or better in ADRS) come first,
    then the longest treated; lanes are ordered by treatment duration.
    """
    lv = adexlvl.loc[adexlvl["EXTRT"] == study_drug.upper()]
    if lv.empty:
        return pd.DataFrame(columns=["USUBJID", "START", "END", "DOSELVL", "LANE"]), pd.DataFrame(
            columns=["USUBJID", "DAY", "KIND", "LANE"])
    first = lv.groupby("USUBJID")["ASTDT"].transform("min")
    seg = pd.DataFrame({
        "USUBJID": lv["USUBJID"].to_numpy(),
        "START": (lv["ASTDT"] - first).dt.days.to_numpy(),
        "END": (lv["AENDT"] - first).dt.days.to_numpy() + 1,
        "DOSELVL": lv["DOSELVL"].to_numpy(dtype=float),
    })
    t0 = lv.groupby("USUBJID")["ASTDT"].min().rename("T0")
    dur = seg.groupby("USUBJID")["END"].max()
    marks: list[pd.DataFrame] = []

    def add(df: pd.DataFrame, datecol: str, kind: str) -> None:
        d = df.merge(t0, left_on="USUBJID", right_index=True)
        if d.empty:
            return
        day = (pd.to_datetime(d[datecol]) - d["T0"]).dt.days
        marks.append(pd.DataFrame({"USUBJID": d["USUBJID"].to_numpy(), "DAY": day.to_numpy(), "KIND": kind}))

    if adae is not None and len(adae):
        a = adae.loc[(adae["TRTEMFL"] == "Y") & (adae["ATOXGR"] >= 3) & adae["ASTDT"].notna()]
        add(a[["USUBJID", "ASTDT"]], "ASTDT", "Grade >=3 AE")
    responders: set[str] = set()
    if adrs is not None and len(adrs) and {"PARAMCD", "AVALC", "ADT"} <= set(adrs.columns):
        ovr = adrs.loc[(adrs["PARAMCD"] == "OVR") & adrs["ADT"].notna()].sort_values("ADT")
        r = ovr.loc[ovr["AVALC"].isin(RESPONSE_OK)].drop_duplicates("USUBJID")
        responders = set(r["USUBJID"])
        add(r[["USUBJID", "ADT"]], "ADT", "First response >= PR")
        p = ovr.loc[ovr["AVALC"] == "PD"].drop_duplicates("USUBJID")
        add(p[["USUBJID", "ADT"]], "ADT", "Progression")
    if "DTHDT" in adsl:
        add(adsl.loc[adsl["DTHDT"].notna(), ["USUBJID", "DTHDT"]], "DTHDT", "Death")
    mk = pd.concat(marks, ignore_index=True) if marks else pd.DataFrame(columns=["USUBJID", "DAY", "KIND"])
    subjects = pd.DataFrame({"USUBJID": dur.index, "DUR": dur.to_numpy()})
    subjects["RESP"] = subjects["USUBJID"].isin(responders)
    if len(subjects) > max_subjects:
        subjects = subjects.sort_values(["RESP", "DUR", "USUBJID"], ascending=[False, False, True]).head(max_subjects)
    subjects = subjects.sort_values(["DUR", "USUBJID"], ascending=[True, True]).reset_index(drop=True)
    lane = pd.Series(np.arange(len(subjects)), index=subjects["USUBJID"])
    seg = seg.loc[seg["USUBJID"].isin(lane.index)].assign(LANE=lambda x: x["USUBJID"].map(lane))
    mk = mk.loc[mk["USUBJID"].isin(lane.index)].assign(LANE=lambda x: x["USUBJID"].map(lane))
    return seg.reset_index(drop=True), mk.reset_index(drop=True)


MARKER_STYLE = {
    "Grade >=3 AE": dict(marker="v", color="#c0392b", s=22),
    "First response >= PR": dict(marker="*", color="#1e8449", s=60),
    "Progression": dict(marker="X", color="#000000", s=30),
    "Death": dict(marker="D", color="#6c3483", s=24),
}


def _add_bars(ax, lane: np.ndarray, left: np.ndarray, width: np.ndarray, *, height: float, colors: list) -> None:
    """Horizontal bars from ``left``, ``width`` long, centred on ``lane``, as one collection (issue 15).

    Draws what ``ax.barh(lane, width, left=left, height=height, color=colors,
    edgecolor="none")`` draws, including its sticky x edges at each bar's left end (no margin
    before the first dose), as one collection (:func:`mmtrial.figures.bars.add_rectangles`; one
    artist per bar was a third of the CPU of the whole plot at 195 bars).
    """
    from mmtrial.figures.bars import add_rectangles

    y0 = lane - height / 2  # barh's corners, computed as barh does (same floats, same limits)
    add_rectangles(ax, left, y0, left + width, y0 + height, colors=colors, sticky_x=np.unique(left).tolist())


def plot_swimmer(seg: pd.DataFrame, marks: pd.DataFrame, *, ladder_labels: dict[int, str],
                 title: str = "") -> str:
    """Render the swimmer plot as an SVG string (matplotlib, deterministic ids)."""
    import matplotlib as mpl
    from matplotlib.patches import Patch

    from mmtrial.figures.svg import new_figure

    nl = int(seg["LANE"].max()) + 1 if len(seg) else 1
    fig = new_figure(figsize=(9, max(2.5, 0.16 * nl + 1.5)))
    ax = fig.subplots()
    levels = sorted(ladder_labels, reverse=True)
    cmap = mpl.colormaps["Blues"]
    colors = {lvl: cmap(0.9 - 0.6 * i / max(len(levels) - 1, 1)) for i, lvl in enumerate(levels)}
    if len(seg):
        lv = seg["DOSELVL"].to_numpy(dtype=float)
        col = [colors.get(int(v), "#999999") if not np.isnan(v) else "#999999" for v in lv]
        _add_bars(ax, seg["LANE"].to_numpy(dtype=float), seg["START"].to_numpy(dtype=float) / 7.0,
                  (seg["END"] - seg["START"]).to_numpy(dtype=float) / 7.0, height=0.7, colors=col)
    for kind, st in MARKER_STYLE.items():
        m = marks.loc[marks["KIND"] == kind] if len(marks) else marks
        if len(m):
            ax.scatter(m["DAY"].to_numpy() / 7.0, m["LANE"].to_numpy(), zorder=3, label=kind,
                       linewidths=0, **st)
    ax.set_xlabel("Weeks from first dose")
    ax.set_ylabel("Patient")
    ax.set_yticks([])
    ax.set_ylim(-1, nl)
    handles = [Patch(color=colors[lvl], label=ladder_labels[lvl]) for lvl in levels]
    handles.append(Patch(color="#999999", label="off-ladder dose"))
    h2, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + h2, fontsize=7, loc="lower right", frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    from mmtrial.figures.svg import _draw_svg

    # the bytes of fig.savefig(format="svg", metadata={"Date": None}), drawn by the caching SVG
    # renderer of figures/svg.py (issue 15; tested equal)
    with mpl.rc_context({"svg.hashsalt": "mmtrial-swimmer"}):
        return _draw_svg(fig, None)[0]
