"""Step ``overview`` (last): analysis populations table and ``results.json`` ``populations``;
the "Not computable" section and ``results.json`` ``not_computable``: every output a step could not
compute on this study, with the reason that step gave (:meth:`Analysis.note_not_computable`)."""

from __future__ import annotations

import pandas as pd

from mmtrial.context import Analysis
from mmtrial.report.model import Section, Table, Text
from mmtrial.tables.format import fmt_n_pct


def build_populations_table(adsl: pd.DataFrame, a: Analysis) -> Table:
    """STF Table 4 (Subject Populations), single arm: n (%) of subjects in each population."""
    n = len(adsl)
    rows, subjects = [], {}
    pops = [("Enrolled (dm)", pd.Series(True, index=adsl.index), "all subjects in dm")]
    pops.append(("Safety population (SAFFL = Y)", adsl["SAFFL"] == "Y", a.protocol.populations.safety))
    if "ITTFL" in adsl:  # randomised study (data contract v2): ITT and, when derived, per-protocol
        pops.append(("Intent-to-treat population (ITTFL = Y)", adsl["ITTFL"] == "Y",
                     "all randomised subjects, analysed by randomised arm (TRT01P)"))
    if "EFFFL" in adsl:
        pops.append(("Efficacy population, mITT (EFFFL = Y)", adsl["EFFFL"] == "Y", a.protocol.populations.efficacy))
    if "PPROTFL" in adsl:
        pops.append(("Per-protocol population (PPROTFL = Y)", adsl["PPROTFL"] == "Y",
                     "randomised, treated, and treated with the randomised arm's regimen (ACTARMCD = ARMCD)"
                     + (f"; no protocol deviation (dv) in {', '.join(a.protocol.randomisation.per_protocol_exclude)}"
                        if a.protocol.is_randomised and a.protocol.randomisation.per_protocol_exclude
                        else "; protocol deviations (dv) are not read")))
    for i, (label, mask, definition) in enumerate(pops):
        rows.append({"Population": label, "n (%)": fmt_n_pct(int(mask.sum()), n), "Definition": definition})
        subjects[(i, "n (%)")] = adsl.loc[mask, "USUBJID"].tolist()
    return Table(
        id="populations", title="Analysis populations", data=pd.DataFrame(rows), stub="Population",
        footnotes=["Percentages are of all enrolled subjects.",
                   f"Definitions from the protocol file ({a.protocol.source_path})."],
        population="Enrolled", source="ADSL", cell_subjects=subjects)


NOT_COMPUTABLE_SECTION = "not-computable"


def build_not_computable_table(a: Analysis) -> Table:
    """One row per output that could not be computed: what, why, and the step that found it."""
    rows = [{"Output": n.what, "Reason": n.reason, "Step": n.step,
             "results.json": n.key or "-"} for n in a.not_computable]
    return Table(
        id="not-computable", title="Outputs not computed on this study, and why",
        data=pd.DataFrame(rows, columns=["Output", "Reason", "Step", "results.json"]), stub="Output",
        footnotes=["Each output listed is null in results.json (at the key shown) and marked NE or omitted "
                   "in the tables; nothing is imputed in its place."],
        population="All subjects in dm", source="analysis steps")


def add_not_computable(a: Analysis) -> None:
    """``results.json`` ``not_computable`` and the report section listing them (when any)."""
    a.results["not_computable"] = [n.as_dict() for n in a.not_computable]
    if not a.not_computable:
        return
    a.sections.append(Section(
        id=NOT_COMPUTABLE_SECTION, title="Not computable on this study", order=13,
        blocks=[Text(f"{len(a.not_computable)} output(s) could not be computed from this study's data; "
                     "the reasons below come from the analysis step that found them."),
                build_not_computable_table(a)]))


def run(a: Analysis) -> None:
    adsl = a.adam["adsl"]
    a.results["populations"] = {
        "enrolled": len(adsl),
        "safety": int((adsl["SAFFL"] == "Y").sum()),
        "efficacy": int((adsl["EFFFL"] == "Y").sum()) if "EFFFL" in adsl else None,
    }
    for key, flag in (("itt", "ITTFL"), ("per_protocol", "PPROTFL")):  # randomised studies only
        if flag in adsl:
            a.results["populations"][key] = int((adsl[flag] == "Y").sum())
    a.sections.append(Section(id="populations", title="Analysis populations", order=12,
                              blocks=[build_populations_table(adsl, a)]))
    add_not_computable(a)
