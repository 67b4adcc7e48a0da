"""Best-overall-response tables (mmtrial-RSP01) and the concordance tables.

Numbers come from :func:`compute_response_summary` (typed results); this module only formats them
(``tables/format.py``: SAS half-up rounding) and attaches the subjects behind each count.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mmtrial.derive.response import CATEGORIES, RANK
from mmtrial.report.model import Listing, Table
from mmtrial.stats.proportion import compute_proportion
from mmtrial.tables.format import fmt_ci, fmt_n_pct, fmt_num

#: Summary rows: (key in results.json, label, minimum category).
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("orr", "Overall response (sCR + CR + VGPR + PR)", "PR"),
    ("vgpr_or_better", "VGPR or better (sCR + CR + VGPR)", "VGPR"),
    ("cbr", "Clinical benefit (sCR + CR + VGPR + PR + MR)", "MR"),
)


def compute_response_summary(adsl: pd.DataFrame, *, method: str = "clopper-pearson",
                             level: float = 0.95) -> dict[str, Any]:
    """Counts per BOR category and ORR / >=VGPR / CBR with CIs over the efficacy population.

    Parameters
    ----------
    adsl
        ADSL with EFFFL and BOR.

    Returns
    -------
    dict
        ``counts`` {category: n}, ``n``, ``orr``/``vgpr_or_better``/``cbr``/``categories`` (each a
        ProportionResult ``as_dict()``), and ``subjects`` {key: [USUBJID]} for traceability.

    Rule
    ----
    ORR = sCR + CR + VGPR + PR; clinical benefit = ORR + MR (myeloma CBR, as in STORM; not
    admiralonco's disease control); CI by ``method`` (Clopper-Pearson default: STORM and FDA
    tables, validation.md section 1).
    """
    eff = adsl[(adsl["EFFFL"].astype("string") == "Y").fillna(False).to_numpy(dtype=bool)]
    bor = eff["BOR"].astype("string").fillna("NE").to_numpy(dtype=object)
    usub = eff["USUBJID"].to_numpy(dtype=object)
    n = len(eff)
    rank = pd.Series(bor, dtype=object).map(RANK).to_numpy(dtype="int64")
    counts = {c: int((bor == c).sum()) for c in CATEGORIES}
    subjects: dict[str, list[str]] = {c: list(usub[bor == c]) for c in CATEGORIES}
    out: dict[str, Any] = {"n": n, "counts": counts}
    for key, _label, lo in SUMMARY_ROWS:
        m = rank >= RANK[lo]
        out[key] = compute_proportion(int(m.sum()), n, method, level).as_dict()
        subjects[key] = list(usub[m])
    out["categories"] = {c: compute_proportion(counts[c], n, method, level).as_dict() for c in CATEGORIES}
    out["subjects"] = subjects
    return out


def bor_table(summary: dict[str, Any], *, footnotes: list[str], population: str,
              table_id: str = "rsp01-bor", title: str | None = None) -> Table:
    """mmtrial-RSP01: n (%) and exact CI per IMWG category, then ORR, >=VGPR and clinical benefit."""
    n = summary["n"]
    level = summary["orr"]["level"]
    ci_col = f"{level * 100:g}% CI"
    rows, cells = [], {}
    for i, c in enumerate(CATEGORIES):
        r = summary["categories"][c]
        rows.append({"Best overall response": c, "n (%)": fmt_n_pct(r["x"], n),
                     ci_col: fmt_ci(tuple(r["ci"]), 1, 100.0) if n else "NE"})
        cells[(i, "n (%)")] = summary["subjects"][c]
    groups = ["Best overall response"] * len(CATEGORIES)
    for key, label, _ in SUMMARY_ROWS:
        r = summary[key]
        cells[(len(rows), "n (%)")] = summary["subjects"][key]
        rows.append({"Best overall response": label, "n (%)": fmt_n_pct(r["x"], n),
                     ci_col: fmt_ci(tuple(r["ci"]), 1, 100.0) if n else "NE"})
        groups.append("Summary")
    return Table(id=table_id, title=title or f"Best overall response by IMWG category (N = {n})",
                 data=pd.DataFrame(rows), footnotes=footnotes, population=population,
                 source="ADSL (EFFFL, BOR), ADRS (PARAMCD BOR)", stub="Best overall response",
                 groups=groups, cell_subjects=cells)


def concordance_table(conc: dict[str, Any], evaluator: str, *, footnotes: list[str]) -> Table:
    """Derived (rows) by assessed (columns) BOR, with totals; cells link to their subjects."""
    tab: pd.DataFrame = conc["table"]
    data = tab.copy()
    data["Total"] = data.sum(axis=1)
    data.loc["Total"] = data.sum(axis=0)
    disp = data.astype(int).astype(str)
    disp.insert(0, "Derived \\ assessed", list(disp.index))
    disp = disp.reset_index(drop=True)
    cells: dict[tuple[int, str], list[str]] = {}
    for (d, s), subs in conc["subjects"].items():
        cells[(list(CATEGORIES).index(d), s)] = subs
    k, wk = conc["kappa"], conc["weighted_kappa"]
    notes = [f"Agreement {conc['agree']}/{conc['n']} ({fmt_num(100 * conc['agree'] / conc['n'] if conc['n'] else None)}%); "
             f"Cohen's kappa {fmt_num(k.kappa, 3)}; linearly weighted kappa {fmt_num(wk.kappa, 3)} "
             "(Cohen 1960, 1968).", *footnotes]
    return Table(id=f"rsp-concordance-{evaluator.lower().replace(' ', '-')}",
                 title=f"Derived versus {evaluator.lower()} best overall response (N = {conc['n']})",
                 data=disp, footnotes=notes, population="Efficacy population with an assessor BOR",
                 source="ADSL (BOR), rs (RSTESTCD OVRLRESP)", stub="Derived \\ assessed", cell_subjects=cells)


def disagreement_listing(listing: pd.DataFrame, evaluator: str) -> Listing:
    """Subjects whose derived and assessed BOR differ, with the lab values behind the derived one."""
    d = listing.copy()
    for c in ("BL_SPEP", "BL_DFLC"):
        d[c] = d[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    for c in ("BL_UPEP", "BL_BMPC", "BEST_PCHG"):
        d[c] = d[c].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    d = d.rename(columns={"BOR_DERIVED": "Derived BOR (date)", "BOR_ASSESSED": f"{evaluator.title()} BOR",
                          "RSPROUTE": "Route", "BL_SPEP": "Baseline SPEP (g/dL)", "BL_UPEP": "Baseline UPEP (mg/24h)",
                          "BL_DFLC": "Baseline dFLC (mg/dL)", "BL_BMPC": "Baseline marrow PC (%)",
                          "BEST_PCHG": "Best % change", "ASSESSMENTS": "Assessments (derived category and values)"})
    return Listing(id=f"rsp-disagree-{evaluator.lower().replace(' ', '-')}",
                   title=f"Subjects whose derived BOR differs from the {evaluator.lower()} BOR",
                   data=d.astype(str), population="Efficacy population",
                   footnotes=["SPEP serum M-protein (g/dL); UPEP urine M-protein (mg/24h); dFLC involved minus "
                              "uninvolved free light chain (mg/dL); IFE serum/urine immunofixation; BMPC marrow "
                              "plasma cells (%), carried forward; [PD: ...] the progression criteria met."],
                   source="ADRS (PARAMCD OVR), ADSL, rs", anchor_column="USUBJID")
