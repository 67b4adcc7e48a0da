"""Step ``conventions`` (after every analysis step): the ADaM IG variables reviewers expect.

TRT01P/TRT01A, AGEGR1, PARAM/PARAMN, AVISIT/AVISITN, ANRIND/BNRIND and the numeric toxicity
grades (``derive/conventions.py``). It only adds variables; no statistic reads them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.context import Analysis
from mmtrial.derive.conventions import ConventionOptions, derive_vars_adam_conventions
from mmtrial.submission import data_cutoff


def regimen_label(a: Analysis) -> str:
    """The protocol's regimen as a treatment name, e.g. ``SELINEXOR + DEXAMETHASONE``."""
    names = a.protocol.regimen.drug_names()
    return " + ".join(names) if names else a.protocol.study.drug


def lbtest_name_rows(lb: pd.DataFrame) -> np.ndarray:
    """The lb records PARAM's test names are read from: the first record of each LBTESTCD with an
    LBTEST (none without both variables). The analysis keeps only these (and the biomarker
    records) once ADLB is derived (``pipeline.DOMAIN_ROWS_READ_BY_STEP``, issue 15)."""
    rows = np.zeros(len(lb), dtype=bool)
    if {"LBTESTCD", "LBTEST"} <= set(lb.columns):
        named = np.flatnonzero(lb["LBTEST"].notna().to_numpy(dtype=bool))
        # the two variables only: no copy of every lb variable (issue 15)
        first = ~lb["LBTESTCD"].take(named).duplicated(keep="first").to_numpy(dtype=bool)
        rows[named[first]] = True
    return rows


def run(a: Analysis) -> None:
    reg = a.protocol.regimen
    cycle = reg.cycle_length_days if not reg.phases else None
    opts = ConventionOptions(visit_interval_days=a.protocol.visits.lab_interval_days, cycle_length_days=cycle)
    lb = a.study.get("lb")
    names = {}
    if lb is not None and {"LBTESTCD", "LBTEST"} <= set(lb.columns):
        first = lb.loc[lbtest_name_rows(lb), ["LBTESTCD", "LBTEST"]]
        names = dict(zip(first["LBTESTCD"].astype(str), first["LBTEST"].astype(str).str.strip(), strict=True))
    a.adam.update(derive_vars_adam_conventions(a.adam, a.study.get("dm"), regimen_label(a), opts, names))
    cut = data_cutoff(a)
    a.results.setdefault("study", {})["data_cutoff"] = cut.isoformat() if cut else None
    if "applied_cutoff" in a.study.metadata:
        a.methods["data_cutoff"] = {"date": cut.isoformat(),
                                    "records_dropped": a.study.metadata.get("cutoff_dropped", {})}
    a.methods["adam_conventions"] = {"age_groups": list(opts.age_groups),
                                     "visit_interval_days": opts.visit_interval_days,
                                     "cycle_length_days": opts.cycle_length_days}
