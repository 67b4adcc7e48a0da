"""External cohorts: simulator, SDTM and OMOP readers, lines/refractory status at every line start,
target-trial emulation and its attrition (docs/external.md).

Oracles: the simulator's own IMWG bookkeeping (simulate/cohort.py tracks refractoriness per drug
with its own numpy code, written to _truth_lines.csv); hand-worked tiny cohorts for attrition
and measurable disease (IMWG: progression on or within 60 days of the last dose, Rajkumar 2011;
serum M-protein >= 0.5 g/dL).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.eligibility import STORM_CRITERIA, Criterion, EligibilityRule
from mmtrial.external.cohort import check_cohort_domains, read_cohort
from mmtrial.external.emulate import EmulationOptions, emulate_target_trial
from mmtrial.external.history import derive_cohort_history
from mmtrial.simulate.cohort import simulate_cohort, write_cohort

TCR = EligibilityRule(criteria=(Criterion("TCR", "Triple-class refractory",
                                          ("refractory:PI", "refractory:IMID", "refractory:ANTI-CD38")),),
                      label_population=())


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict[str, Path]:
    sim = simulate_cohort(150, seed=11)
    root = tmp_path_factory.mktemp("cohorts")
    out = {}
    for fmt in ("sdtm", "omop"):
        out[fmt] = write_cohort(sim, root / fmt, fmt=fmt)
    return out


@pytest.fixture(scope="module")
def histories(cohorts):
    res = {}
    for fmt, p in cohorts.items():
        c = read_cohort(p)
        res[fmt] = (c, derive_cohort_history(c.frames))
    return res


@pytest.mark.slow
def test_simulator_is_labelled_synthetic_and_deterministic(cohorts):
    import json

    meta = json.loads((cohorts["sdtm"] / "study.json").read_text())
    assert meta["synthetic"] is True and meta["label"] == "synthetic data"
    a = simulate_cohort(60, seed=5)
    b = simulate_cohort(60, seed=5)
    pd.testing.assert_frame_equal(a.domains["cm"], b.domains["cm"])
    assert not a.domains["cm"].equals(simulate_cohort(60, seed=6).domains["cm"])
    assert (a.domains["dm"]["ARM"].str.contains("SYNTHETIC DATA")).all()


@pytest.mark.slow
def test_status_at_every_line_matches_the_simulator_truth(cohorts, histories):
    """Derived lines (Rajkumar 2015) and class refractoriness at each line start (IMWG) equal the
    simulator's independent bookkeeping, line by line."""
    _, h = histories["sdtm"]
    truth = pd.read_csv(cohorts["sdtm"] / "_truth_lines.csv")
    m = h.status.merge(truth, on=["USUBJID", "LINENUM"], how="outer", indicator=True, suffixes=("", "_T"))
    assert (m["_merge"] == "both").all(), "the same lines in both"
    for c in ("TCRFL", "PENTAFL", "PIREFFL", "IMDREFFL", "C38REFFL"):
        assert (m[c] == m[f"{c}_T"]).all(), c
    assert m["TCRFL"].eq("Y").sum() > 20  # the comparison is not vacuous


@pytest.mark.slow
def test_omop_and_sdtm_give_the_same_lines_refractory_and_emulation(histories):
    (cs, hs), (co, ho) = histories["sdtm"], histories["omop"]
    cols = ["USUBJID", "LINENUM", "LOTSTDT", "LOTENDT", "DRUGS", "NPRIOR", "LSTREFFL", "TCRFL", "PENTAFL",
            "QUADFL", "TCEFL", "REFRCAT"]
    pd.testing.assert_frame_equal(hs.status[cols].reset_index(drop=True), ho.status[cols].reset_index(drop=True),
                                  check_dtype=False)
    es = emulate_target_trial(hs, cs.frames, eligibility=TCR)
    eo = emulate_target_trial(ho, co.frames, eligibility=TCR)
    pd.testing.assert_frame_equal(es.attrition, eo.attrition)
    k = ["USUBJID", "LINENUM", "OSDAYS", "OSEVENT", "PFSDAYS", "PFSEVENT", "AGE", "MALE", "DIAGYRS", "MEASFL"]
    pd.testing.assert_frame_equal(es.index[k], eo.index[k], check_dtype=False)


@pytest.mark.slow
def test_first_eligible_line_is_the_simulated_index(cohorts, histories):
    c, h = histories["sdtm"]
    truth = pd.read_csv(cohorts["sdtm"] / "_truth.csv")
    e = emulate_target_trial(h, c.frames, eligibility=TCR, options=EmulationOptions(measurable="ignore"))
    j = e.index.merge(truth, on="USUBJID")
    assert len(j) == int((truth["INDEXFL"] == "Y").sum())
    assert (j["LINENUM"] == j["INDEXLN"]).all()
    assert np.allclose(j["AGE"], j["AGEIDX"], atol=1e-3)
    assert (j["NPRIOR_x"] == j["NPRIOR_y"]).all()


@pytest.mark.slow
def test_index_options_every_and_random(histories):
    c, h = histories["sdtm"]
    first = emulate_target_trial(h, c.frames, eligibility=TCR).index
    every = emulate_target_trial(h, c.frames, eligibility=TCR, options=EmulationOptions(index="every")).index
    r1 = emulate_target_trial(h, c.frames, eligibility=TCR, options=EmulationOptions(index="random", seed=3)).index
    r2 = emulate_target_trial(h, c.frames, eligibility=TCR, options=EmulationOptions(index="random", seed=3)).index
    assert every["USUBJID"].nunique() == first["USUBJID"].nunique() == r1["USUBJID"].nunique()
    assert len(every) > len(first)
    assert set(zip(r1.USUBJID, r1.LINENUM, strict=True)) <= set(zip(every.USUBJID, every.LINENUM, strict=True))
    pd.testing.assert_frame_equal(r1, r2)
    # TCR persists: every line after the first eligible one is eligible too
    assert (every.groupby("USUBJID")["LINENUM"].agg(lambda s: s.max() - s.min() + 1 == len(s))).all()


@pytest.mark.slow
def test_study_drug_lines_are_excluded(histories):
    c, h = histories["sdtm"]
    e = emulate_target_trial(h, c.frames, eligibility=TCR,
                             options=EmulationOptions(index="every", exclude_drugs=("selinexor",)))
    assert not e.index["DRUGS"].str.contains("selinexor").any()
    row = e.attrition.loc[e.attrition["rule"] == "selinexor"].iloc[0]
    assert row["patients_excluded"] > 0


# ------------------------------------------------------------------ hand-worked tiny cohort

def _tiny() -> dict[str, pd.DataFrame]:
    """Four patients (IMWG refractoriness = PD after the first dose, <= 60 days after the last).

    P1: VRd (PD 10 d after end) -> DRd (PD 20 d after) -> Kd (line 3 starts TCR: PI, IMiD,
        anti-CD38 refractory); died after line 3 started.
    P2: VRd (PD 10 d) -> DRd stopped for toxicity, PD 100 d later (not refractory) -> Kd: not TCR.
    P3: VRd (PD) -> DRd (PD) -> selinexor + dexamethasone at line 3 (TCR, but the study drug).
    P4: dm only, no therapy.
    """
    def reg(u, g, drugs, st, en, why):
        return [{"USUBJID": u, "CMTRT": d, "CMCAT": "PRIOR ANTI-MYELOMA THERAPY", "CMGRPID": g,
                 "CMSTDTC": st, "CMENDTC": en, "CMRSDISC": why} for d in drugs]
    VRD = ("BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE")
    DRD = ("DARATUMUMAB", "LENALIDOMIDE", "DEXAMETHASONE")
    cm = pd.DataFrame(
        reg("P1", "R1", VRD, "2018-01-01", "2018-12-31", "PROGRESSIVE DISEASE")
        + reg("P1", "R2", DRD, "2019-01-20", "2019-12-31", "PROGRESSIVE DISEASE")
        + reg("P1", "R3", ("CARFILZOMIB", "DEXAMETHASONE"), "2020-01-25", "2020-06-30", "PROGRESSIVE DISEASE")
        + reg("P2", "R1", VRD, "2018-01-01", "2018-12-31", "PROGRESSIVE DISEASE")
        + reg("P2", "R2", DRD, "2019-01-20", "2019-06-30", "TOXICITY")
        + reg("P2", "R3", ("CARFILZOMIB", "DEXAMETHASONE"), "2019-10-15", "2020-03-31", "PROGRESSIVE DISEASE")
        + reg("P3", "R1", VRD, "2018-01-01", "2018-12-31", "PROGRESSIVE DISEASE")
        + reg("P3", "R2", DRD, "2019-01-20", "2019-12-31", "PROGRESSIVE DISEASE")
        + reg("P3", "R3", ("SELINEXOR", "DEXAMETHASONE"), "2020-01-25", "2020-05-31", "PROGRESSIVE DISEASE"))
    rs = pd.DataFrame([{"USUBJID": u, "RSCAT": "PRIOR THERAPY", "RSTESTCD": "OVRLRESP", "RSSTRESC": "PD", "RSDTC": d}
                       for u, d in [("P1", "2019-01-10"), ("P1", "2020-01-20"), ("P1", "2020-07-10"),
                                    ("P2", "2019-01-10"), ("P2", "2019-10-08"), ("P2", "2020-04-05"),
                                    ("P3", "2019-01-10"), ("P3", "2020-01-20")]])
    dm = pd.DataFrame({"USUBJID": ["P1", "P2", "P3", "P4"], "AGE": ["70", "60", "65", "80"],
                       "SEX": ["M", "F", "M", "F"], "BRTHDTC": ["1948-01-01", "1958-01-01", "1953-01-01", "1938-01-01"],
                       "DTHFL": ["Y", None, None, None], "DTHDTC": ["2020-09-01", None, None, None]})
    ds = pd.DataFrame({"USUBJID": ["P1", "P2", "P3", "P4"], "DSDECOD": ["DEATH", "LAST KNOWN ALIVE",
                                                                          "LAST KNOWN ALIVE", "LAST KNOWN ALIVE"],
                       "DSSTDTC": ["2020-09-01", "2021-01-01", "2021-01-01", "2021-01-01"]})
    lb = pd.DataFrame({"USUBJID": ["P1", "P2"], "LBCAT": "CHEMISTRY", "LBTESTCD": "MPROTEIN", "LBSPEC": "SERUM",
                       "LBSTRESN": ["1.2", "0.3"], "LBSTRESU": "g/dL", "LBDTC": ["2020-01-10", "2019-10-01"]})
    raw = {"dm": dm, "cm": cm, "rs": rs, "ds": ds, "lb": lb}
    out = {}
    for k, v in raw.items():
        v = v.astype("string").reset_index(drop=True)
        v.insert(0, "ROWNUM", np.arange(1, len(v) + 1))
        out[k] = v
    frames, issues = check_cohort_domains(out, label="tiny")
    assert not [i for i in issues if i.severity == "error"], issues
    return frames


@pytest.fixture(scope="module")
def tiny():
    frames = _tiny()
    return frames, derive_cohort_history(frames)


def test_attrition_hand_checked(tiny):
    frames, h = tiny
    st = h.status.set_index(["USUBJID", "LINENUM"])
    assert st.loc[("P1", 3), "TCRFL"] == "Y" and st.loc[("P1", 2), "TCRFL"] == "N"
    assert st.loc[("P2", 3), "TCRFL"] == "N"  # DRd stopped for toxicity, PD 100 days later
    assert st.loc[("P3", 3), "TCRFL"] == "Y"
    assert st.loc[("P1", 3), "LSTREFFL"] == "Y" and st.loc[("P2", 3), "LSTREFFL"] == "N"
    e = emulate_target_trial(h, frames, eligibility=TCR, options=EmulationOptions(exclude_drugs=("selinexor",)))
    a = e.attrition.set_index("step")
    # hand counts: 4 patients; 3 with therapy (9 lines); TCR at a line start: P1 line 3, P3 line 3
    assert a.loc[0, "patients"] == 4
    assert (a.loc[1, "patients"], a.loc[1, "lines"]) == (3, 9)
    assert (a.loc[2, "patients"], a.loc[2, "lines"], a.loc[2, "patients_excluded"]) == (2, 2, 1)
    assert (a.loc[3, "patients"], a.loc[3, "lines"]) == (1, 1)  # P3's line is the study drug
    assert a.iloc[-1]["patients"] == 1
    idx = e.index.iloc[0]
    assert idx["USUBJID"] == "P1" and idx["LINENUM"] == 3
    # OS: 2020-01-25 -> death 2020-09-01 = 220 days; PFS: PD 2020-07-10 = 167 days
    assert (idx["OSDAYS"], idx["OSEVENT"]) == (220, 1)
    assert (idx["PFSDAYS"], idx["PFSEVENT"]) == (167, 1)
    # measurable: M-protein 1.2 g/dL 15 days before line 3 -> Y; age (2020-01-25 - 1948-01-01)/365.25
    assert idx["MEASFL"] == "Y"
    assert idx["AGE"] == pytest.approx((pd.Timestamp("2020-01-25") - pd.Timestamp("1948-01-01")).days / 365.25)


def test_measurable_disease_rules(tiny):
    frames, h = tiny
    storm_like = EligibilityRule(criteria=(*TCR.criteria, Criterion("MEAS", "Measurable", ("flag:MEASFL",))),
                                 label_population=())
    # P3 has no M-protein: kept when labs are missing (when_available), excluded under require
    e1 = emulate_target_trial(h, frames, eligibility=storm_like)
    e2 = emulate_target_trial(h, frames, eligibility=storm_like, options=EmulationOptions(measurable="require"))
    assert set(e1.index["USUBJID"]) == {"P1", "P3"}
    assert set(e2.index["USUBJID"]) == {"P1"}
    st = e1.lines.set_index(["USUBJID", "LINENUM"])
    assert st.loc[("P2", 3), "MEASFL"] == "N"  # 0.3 g/dL < 0.5 (IMWG measurable threshold)
    assert pd.isna(st.loc[("P3", 3), "MEASFL"])


@pytest.mark.slow
def test_storm_criteria_run_on_a_cohort(histories):
    c, h = histories["sdtm"]
    e = emulate_target_trial(h, c.frames, eligibility=EligibilityRule(criteria=STORM_CRITERIA, label_population=()))
    a = e.attrition
    assert (a["patients"].diff().dropna() <= 0).all()  # attrition never adds patients
    assert len(a) == 2 + len(STORM_CRITERIA) + 2


def test_unknown_flag_criterion_is_a_usage_error(tiny):
    from mmtrial.errors import UsageError

    frames, h = tiny
    bad = EligibilityRule(criteria=(Criterion("X", "ECOG", ("flag:ECOGFL",)),), label_population=())
    with pytest.raises(UsageError, match="ECOGFL"):
        emulate_target_trial(h, frames, eligibility=bad)


def test_postgres_without_extension_is_a_clear_usage_error():
    from mmtrial.errors import UsageError

    try:
        import duckdb

        duckdb.connect().execute("LOAD postgres")
        pytest.skip("the postgres extension is installed here")
    except Exception:
        pass
    with pytest.raises(UsageError, match="postgres extension"):
        read_cohort("postgresql://user@localhost/cdm")


def test_missing_cohort_path_is_a_usage_error(tmp_path):
    from mmtrial.errors import UsageError

    with pytest.raises(UsageError, match="not found"):
        read_cohort(tmp_path / "nope")


def test_cohort_without_cm_is_an_input_error(tmp_path):
    from mmtrial.sdtm.issues import StudyInputError

    (tmp_path / "dm.csv").write_text("USUBJID,AGE,SEX\nP1,70,M\n")
    with pytest.raises(StudyInputError) as ei:
        read_cohort(tmp_path)
    assert any(i.domain == "cm" for i in ei.value.issues)


@pytest.mark.slow
def test_omop_and_sdtm_give_the_same_comparison(histories):
    """The IPTW comparison of the same simulated cohort read as SDTM and as OMOP: identical results."""
    from mmtrial.external.compare import compare_external
    from mmtrial.external.trial import derive_external_frame

    out = []
    for fmt in ("sdtm", "omop"):
        c, h = histories[fmt]
        e = emulate_target_trial(h, c.frames, eligibility=TCR, options=EmulationOptions(measurable="ignore"))
        f = derive_external_frame(e.index)
        g = e.index["DRUGS"].str.contains("selinexor").to_numpy()
        assert 5 < g.sum() < len(g) - 5
        out.append(compare_external(f[g], f[~g], covariates=["AGE", "MALE", "NPRIOR"], endpoints=("OS", "PFS")).results)
    assert out[0] == out[1]
