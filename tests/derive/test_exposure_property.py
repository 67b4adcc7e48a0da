"""Property: for any valid regimen, an ex that follows its schedule exactly has RDI 100% and no
interruption or delay; the same doses as runs or as dose days give the same ADEX; removing one
dose inside a dosing window gives exactly one interruption.

The expected values follow from the definitions (docs/exposure.md): full adherence is, by
definition of the planned dose intensity (planned dose of the cycles / their planned length,
the last cycle up to the end of treatment: ``planned_last_cycle = "treated_days"``), RDI = 1,
also when treatment stops after any planned administration, mid-cycle included; the synthetic ex is built from ``Regimen.schedule`` here, independently of the code
under test.

Example count: 6 random regimens by default, the full 20 under ``pytest --sweeps``
(tests/support/sweeps.py); each example derives ADEX four times (~1 s each on a loaded 2-core
machine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtrial.derive.exposure import derive_adex, derive_exposure_intervals
from mmtrial.protocol.model import DoseLadder
from mmtrial.protocol.regimen import Regimen
from support.sweeps import examples

D0 = np.datetime64("2024-01-01")
NO_LADDER = DoseLadder(drug="NONE", source="none", levels=())


@st.composite
def regimens(draw):
    n_phases = draw(st.integers(1, 2))
    first_len = draw(st.integers(1, 3))
    phases = []
    for i in range(n_phases):
        length = draw(st.integers(7, 35))
        names = draw(st.lists(st.sampled_from(["A", "B"]), min_size=1, max_size=2, unique=True))
        drugs = []
        for name in sorted(names):
            days = draw(st.lists(st.integers(1, length), min_size=1, max_size=min(length, 12), unique=True))
            drugs.append({"name": name, "dose": draw(st.sampled_from([1.0, 2.5, 10.0, 40.0])),
                          "cycle_days": sorted(days)})
        cycles = [1, first_len] if (i == 0 and n_phases == 2) else ([first_len + 1, 999] if i else [1, 999])
        phases.append({"cycles": cycles, "cycle_length_days": length, "drugs": drugs})
    study = phases[0]["drugs"][0]["name"]
    return Regimen(study_drug=study, phases=phases), draw(st.integers(1, 5))


def ex_from_schedule(sch: pd.DataFrame, runs: bool) -> pd.DataFrame:
    """Dose days (ONCE) or runs of consecutive days (QD) of the planned schedule."""
    s = sch.sort_values(["DRUG", "STUDYDY"]).reset_index(drop=True)
    if runs:
        same = (s["DRUG"] == s["DRUG"].shift()) & (s["STUDYDY"] == s["STUDYDY"].shift() + 1) & (
            s["DOSE"] == s["DOSE"].shift())
        rid = (~same).cumsum()
        g = s.groupby(rid)
        s = pd.DataFrame({"DRUG": g["DRUG"].first(), "DOSE": g["DOSE"].first(), "STUDYDY": g["STUDYDY"].first(),
                          "ENDDY": g["STUDYDY"].last()})
    else:
        s = s.assign(ENDDY=s["STUDYDY"])
    ex = pd.DataFrame({
        "USUBJID": "S1", "EXTRT": s["DRUG"].to_numpy(), "EXDOSE": s["DOSE"].to_numpy(dtype=float), "EXDOSU": "mg",
        "EXDOSFRQ": "QD" if runs else "ONCE",
        "EXSTDT": pd.to_datetime(D0 + (s["STUDYDY"].to_numpy(dtype=np.int64) - 1).astype("timedelta64[D]")),
        "EXENDT": pd.to_datetime(D0 + (s["ENDDY"].to_numpy(dtype=np.int64) - 1).astype("timedelta64[D]")),
    })
    ex["ROWNUM"] = np.arange(1, len(ex) + 1)
    return ex


def adex_of(ex: pd.DataFrame, reg: Regimen) -> pd.DataFrame:
    lv = derive_exposure_intervals(ex, ladder=NO_LADDER, regimen=reg)
    return derive_adex(lv, pd.DataFrame({"USUBJID": ["S1"]}), regimen=reg, ladder=NO_LADDER)


COLS = ["EXTRT", "NDOSES", "CUMDOSE", "CYCLES", "TRTDURD", "PLNWKDOS", "ACTWKDOS", "RDI", "NINTERR",
        "INTRDAYS", "NDELAY", "NREDUC", "NESCAL"]


@pytest.mark.slow
@settings(max_examples=examples(6, full=20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regimens(), st.data())
def test_full_adherence_is_rdi_one_and_one_missed_dose_is_one_interruption(reg_n, data):
    reg, n_cycles = reg_n
    sch = reg.schedule(n_cycles)
    days_form = adex_of(ex_from_schedule(sch, runs=False), reg)
    assert np.allclose(days_form["RDI"].to_numpy(dtype=float), 1.0, atol=1e-9)
    assert (days_form["NINTERR"] == 0).all() and (days_form["NDELAY"] == 0).all()
    assert (days_form["NREDUC"] == 0).all() and (days_form["NESCAL"] == 0).all()
    # every drug's cycles with a dose = the cycles it is planned in
    planned_cycles = sch.groupby("DRUG")["CYCLE"].nunique()
    assert dict(zip(days_form["EXTRT"], days_form["CYCLES"], strict=True)) == planned_cycles.to_dict()
    runs_form = adex_of(ex_from_schedule(sch, runs=True), reg)
    pd.testing.assert_frame_equal(days_form[COLS], runs_form[COLS])
    # treatment stopped after any planned administration (mid-cycle included), every planned dose
    # taken up to then: still RDI 1, no interruption, no delay
    stop = data.draw(st.sampled_from(sorted(sch["STUDYDY"].unique())))
    cut = adex_of(ex_from_schedule(sch.loc[sch["STUDYDY"] <= stop], runs=False), reg)
    assert np.allclose(cut["RDI"].to_numpy(dtype=float), 1.0, atol=1e-9), (stop, cut[COLS])
    assert (cut["NINTERR"] == 0).all() and (cut["NDELAY"] == 0).all()
    # remove one dose that is neither a cycle's first administration (that would move the
    # cycle's start: a delay) nor a drug's first or last administration (treatment starting later
    # or ending earlier is no interruption)
    s = sch.sort_values(["DRUG", "STUDYDY"]).reset_index(drop=True)
    cyc_first = s.groupby("CYCLE")["STUDYDY"].transform("min")
    drug_first = s.groupby("DRUG")["STUDYDY"].transform("min")
    drug_last = s.groupby("DRUG")["STUDYDY"].transform("max")
    ok = (s["STUDYDY"] != cyc_first) & (s["STUDYDY"] != drug_first) & (s["STUDYDY"] != drug_last)
    if not ok.any():
        return
    i = data.draw(st.sampled_from(list(np.flatnonzero(ok.to_numpy()))))
    drug = s["DRUG"].iat[i]
    one_less = adex_of(ex_from_schedule(s.drop(index=i), runs=False), reg)
    r = one_less.set_index("EXTRT")
    assert r.loc[drug, "NINTERR"] == 1
    assert r.loc[drug, "INTRDAYS"] >= 1
    assert r.loc[drug, "RDI"] < 1
    others = r.drop(index=drug)
    assert (others["NINTERR"] == 0).all()
