"""Step ``overview`` (last): analysis populations table and ``results.json`` ``populations``."""

from __future__ import annotations

import pandas as pd

from mmtrial.context import Analysis
from mmtrial.report.model import Section, Table
from mmtrial.tables.format import fmt_n_pct


def build_populations_table(adsl: pd.DataFrame, a: Analysis) -> Table:
    """STF Table 4 (Subject Populations), single arm: n (%) of subjects in each population."""
    n = len(adsl)
    rows, subjects = [], {}
    pops = [("Enrolled (dm)", pd.Series(True, index=adsl.index), "all subjects in dm")]
    pops.append(("Safety population (SAFFL = Y)", adsl["SAFFL"] == "Y", a.protocol.populations.safety))
    if "EFFFL" in adsl:
        pops.append(("Efficacy population, mITT (EFFFL = Y)", adsl["EFFFL"] == "Y", a.protocol.populations.efficacy))
    for i, (label, mask, definition) in enumerate(pops):
        rows.append({"Population": label, "n (%)": fmt_n_pct(int(mask.sum()), n), "Definition": definition})
        subjects[(i, "n (%)")] = adsl.loc[mask, "USUBJID"].tolist()
    return Table(
        id="populations", title="Analysis populations", data=pd.DataFrame(rows), stub="Population",
        footnotes=["Percentages are of all enrolled subjects.",
                   f"Definitions from the protocol file ({a.protocol.source_path})."],
        population="Enrolled", source="ADSL", cell_subjects=subjects)


def run(a: Analysis) -> None:
    adsl = a.adam["adsl"]
    a.results["populations"] = {
        "enrolled": len(adsl),
        "safety": int((adsl["SAFFL"] == "Y").sum()),
        "efficacy": int((adsl["EFFFL"] == "Y").sum()) if "EFFFL" in adsl else None,
    }
    a.sections.append(Section(id="populations", title="Analysis populations", order=12,
                              blocks=[build_populations_table(adsl, a)]))
