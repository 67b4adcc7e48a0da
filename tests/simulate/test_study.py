"""The simulator: reproducible, contract-conformant, internally consistent, written atomically.

Expected values: the data contract (../shared/spec/data-contract.md v1 and docs/data-contract.md),
CDISC controlled terms, the XPOVIO dose ladder (domain.md 1.10, tag C) and IMWG refractoriness
(Rajkumar 2011: progression on or within 60 days of the last dose; domain.md 2.6).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.simulate import SimulationParams, simulate_study, write_study

REQUIRED = {  # data contract v1, "required variables"
    "dm": ["USUBJID", "AGE", "SEX", "RFXSTDTC"],
    "ex": ["USUBJID", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC"],
    "lb": ["USUBJID", "LBTESTCD", "LBSTRESU", "LBDTC"],
    "ae": ["USUBJID", "AEDECOD", "AEBODSYS", "AESTDTC", "AETOXGR"],
    "ds": ["USUBJID", "DSDECOD", "DSSTDTC"],
    "cm": ["USUBJID", "CMTRT", "CMCAT", "CMGRPID", "CMSTDTC", "CMENDTC"],
    "rs": ["USUBJID", "RSTESTCD", "RSSTRESC", "RSDTC"],
    "pr": ["USUBJID", "PRTRT", "PRSTDTC"],
    "tu": ["USUBJID", "TUSTRESC", "TUDTC"],
    "tr": ["USUBJID", "TRTESTCD", "TRSTRESN", "TRDTC"],
    "mh": ["USUBJID", "MHTERM", "MHSTDTC"],
}
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def sim():
    return simulate_study(n=300, seed=7)


def test_same_seed_gives_identical_frames_and_different_seed_differs():
    a, b, c = simulate_study(60, seed=3), simulate_study(60, seed=3), simulate_study(60, seed=4)
    for name in a.domains:
        pd.testing.assert_frame_equal(a.domains[name], b.domains[name])
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.domains["lb"].equals(c.domains["lb"])
    assert not a.truth["TRUE_BOR"].equals(c.truth["TRUE_BOR"])


def test_every_domain_has_the_contract_required_variables(sim):
    assert set(REQUIRED) == set(sim.domains)
    for name, cols in REQUIRED.items():
        missing = set(cols) - set(sim.domains[name].columns)
        assert not missing, f"{name} lacks {missing}"
    for name in ("dm", "ex", "lb", "ae", "ds", "cm", "rs"):
        assert len(sim.domains[name]) > 0


def test_every_dtc_is_a_valid_iso8601_date(sim):
    for name, df in sim.domains.items():
        for col in [c for c in df.columns if c.endswith("DTC")]:
            v = df[col].dropna()
            assert v.str.match(ISO).all(), (name, col, v[~v.str.match(ISO)].head())
            pd.to_datetime(v, format="%Y-%m-%d")  # raises on an impossible date
    # nonmissing per the project's schema (src/mmtrial/data/sdtm_schema.toml)
    assert sim.domains["lb"]["LBDTC"].notna().all()
    assert sim.domains["ae"]["AESTDTC"].notna().all()


def test_controlled_terms_and_keys(sim):
    d = sim.domains
    assert set(d["dm"]["SEX"]) <= {"M", "F"}
    assert set(d["ae"]["AETOXGR"].astype(int)) <= {1, 2, 3, 4, 5}
    assert set(d["ae"]["AEACN"].dropna()) <= {"DOSE NOT CHANGED", "DOSE REDUCED", "DRUG INTERRUPTED",
                                              "DRUG WITHDRAWN", "NOT APPLICABLE"}
    assert set(d["ae"]["AEOUT"].dropna()) <= {"RECOVERED/RESOLVED", "NOT RECOVERED/NOT RESOLVED", "FATAL"}
    assert set(d["rs"]["RSSTRESC"]) <= {"sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"}
    lb = d["lb"]
    ife = lb[lb["LBTESTCD"].isin(["IFE", "BMCLONAL"])]
    assert set(ife["LBSTRESC"]) == {"POSITIVE", "NEGATIVE"} and ife["LBSTRESN"].isna().all()
    assert set(lb.loc[lb["LBTESTCD"] == "MPROTEIN", "LBSPEC"]) == {"SERUM", "URINE"}
    assert set(lb["LBCAT"]) == {"DISEASE ASSESSMENT", "HEMATOLOGY", "CHEMISTRY", "CYTOGENETICS", "BIOMARKER"}
    # unique keys (sdtm_schema.toml keys)
    assert not lb.duplicated(["USUBJID", "LBTESTCD", "LBSPEC", "LBDTC"]).any()
    assert not d["ex"].duplicated(["USUBJID", "EXTRT", "EXSTDTC"]).any()
    assert not d["cm"].duplicated(["USUBJID", "CMCAT", "CMGRPID", "CMTRT", "CMSTDTC"]).any()
    # dates in order
    for dom, a, b in (("ex", "EXSTDTC", "EXENDTC"), ("ae", "AESTDTC", "AEENDTC"), ("cm", "CMSTDTC", "CMENDTC")):
        x = d[dom].dropna(subset=[a, b])
        assert (x[a] <= x[b]).all(), dom


def test_dm_deaths_and_efficacy_population(sim):
    dm = sim.domains["dm"]
    t = sim.truth.set_index("USUBJID")
    died = dm.set_index("USUBJID")["DTHFL"].eq("Y")
    assert (died == t["TRUE_DTH_DT"].notna()).all()
    assert (dm["DTHDTC"].notna() == died.to_numpy()).all()
    assert set(t["TRUE_BOR"].dropna()) <= {"sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"}
    # about 1% have no measurable disease and no BOR (efficacy < safety, as in STORM 122/123)
    big = simulate_study(3000, seed=5).truth
    frac = (big["TRUE_MEASURABLE"] == "N").mean()
    assert 0.004 < frac < 0.02
    assert big.loc[big["TRUE_MEASURABLE"] == "N", "TRUE_BOR"].isna().all()


def test_exposure_follows_the_xpovio_ladder_and_only_goes_down(sim):
    # XPOVIO label Table 1 (Xd): 80 mg BIW (160/wk) -> 100 QW -> 80 QW -> 60 QW (domain.md 1.10, C)
    ex = sim.domains["ex"]
    sel = ex[ex["EXTRT"] == "SELINEXOR"].copy()
    pairs = set(zip(sel["EXDOSE"], sel["EXDOSFRQ"], strict=True))
    assert pairs <= {(80.0, "BIW"), (100.0, "QW"), (80.0, "QW"), (60.0, "QW")}
    sel["WEEKLY"] = sel["EXDOSE"] * np.where(sel["EXDOSFRQ"] == "BIW", 2, 1)
    sel = sel.sort_values(["USUBJID", "EXSTDTC"])
    first = sel.groupby("USUBJID").head(1)
    assert (first["WEEKLY"] == 160).all() and first["EXADJ"].isna().all()
    diffs = sel.groupby("USUBJID")["WEEKLY"].diff().dropna()
    assert (diffs <= 0).all()
    later = sel[sel.duplicated("USUBJID")]
    assert (later["EXADJ"] == "ADVERSE EVENT").all()
    dex = ex[ex["EXTRT"] == "DEXAMETHASONE"]
    assert (dex["EXDOSE"] == 20).all() and (dex["EXDOSFRQ"] == "BIW").all()


def test_lab_adverse_events_agree_with_the_labs(sim):
    # CTCAE v5.0: platelet count decreased grade >= 3 is < 50 x10^9/L (domain.md section 3)
    ae, lb = sim.domains["ae"], sim.domains["lb"]
    g3 = set(ae.loc[(ae["AEDECOD"] == "THROMBOCYTOPENIA") & (ae["AETOXGR"] >= 3), "USUBJID"])
    low = set(lb.loc[(lb["LBTESTCD"] == "PLAT") & (lb["LBSTRESN"] < 50), "USUBJID"])
    assert g3 and g3 <= low
    g4n = set(ae.loc[(ae["AEDECOD"] == "NEUTROPENIA") & (ae["AETOXGR"] == 4), "USUBJID"])
    lown = set(lb.loc[(lb["LBTESTCD"] == "NEUT") & (lb["LBSTRESN"] < 0.5), "USUBJID"])
    assert g4n <= lown
    fatal = ae[ae["AEOUT"] == "FATAL"]
    dth = sim.domains["dm"].set_index("USUBJID")["DTHDTC"]
    assert (fatal["AEENDTC"].to_numpy() == dth.loc[fatal["USUBJID"]].to_numpy()).all()


PI = {"BORTEZOMIB", "CARFILZOMIB", "IXAZOMIB"}
IMID = {"LENALIDOMIDE", "POMALIDOMIDE", "THALIDOMIDE"}
PENTA = ("BORTEZOMIB", "CARFILZOMIB", "LENALIDOMIDE", "POMALIDOMIDE", "DARATUMUMAB")


def _refractory_drugs(sim, *, any_regimen_pd: bool) -> pd.DataFrame:
    """Drug-level refractoriness from cm/rs: a PD date on therapy or within 60 days after the
    drug's last dose in a regimen (Rajkumar 2011). With ``any_regimen_pd`` every prior PD counts,
    not only the regimen's own (RSGRPID), a stricter test of the non-penta subjects."""
    cm = sim.domains["cm"]
    cm = cm[cm["CMCAT"] == "PRIOR ANTI-MYELOMA THERAPY"].copy()
    rs = sim.domains["rs"]
    pdr = rs[(rs["RSCAT"] == "PRIOR THERAPY") & (rs["RSSTRESC"] == "PD")]
    on = ["USUBJID"] if any_regimen_pd else ["USUBJID", "CMGRPID"]
    pdr = pdr.rename(columns={"RSGRPID": "CMGRPID"})[["USUBJID", "CMGRPID", "RSDTC"]]
    if any_regimen_pd:
        pdr = pdr.drop(columns="CMGRPID")
    j = cm.merge(pdr, on=on)
    st_ = pd.to_datetime(j["CMSTDTC"])
    en = pd.to_datetime(j["CMENDTC"])
    pdd = pd.to_datetime(j["RSDTC"])
    j = j[(pdd >= st_) & (pdd <= en + pd.Timedelta(days=60))]
    return j[["USUBJID", "CMTRT"]].drop_duplicates()


def test_every_subject_is_triple_class_refractory_from_cm_and_rs(sim):
    ref = _refractory_drugs(sim, any_regimen_pd=False)
    by = ref.groupby("USUBJID")["CMTRT"].agg(set)
    subjects = sim.domains["dm"]["USUBJID"]
    assert set(by.index) == set(subjects)
    tcr = by.map(lambda s: bool(s & PI) and bool(s & IMID) and "DARATUMUMAB" in s)
    assert tcr.all()
    penta = by.map(lambda s: all(d in s for d in PENTA))
    truth = sim.truth.set_index("USUBJID")["TRUE_PENTA"].eq("Y")
    assert (penta.reindex(truth.index) == truth).all()
    # the stricter reading (any prior PD within 60 days of a drug's last dose) agrees as well
    strict = _refractory_drugs(sim, any_regimen_pd=True).groupby("USUBJID")["CMTRT"].agg(set)
    assert (strict.map(lambda s: all(d in s for d in PENTA)).reindex(truth.index) == truth).all()


def test_every_subject_meets_storm_prior_exposure_criteria(sim):
    # STORM eligibility (Chari NEJM 2019; domain.md 1.1, C): prior bortezomib, carfilzomib,
    # lenalidomide, pomalidomide, daratumumab, glucocorticoids and an alkylating agent
    prior = sim.domains["cm"]
    prior = prior[prior["CMCAT"] == "PRIOR ANTI-MYELOMA THERAPY"]
    exposed = prior.groupby("USUBJID")["CMTRT"].agg(set)
    needed = [{d} for d in PENTA] + [{"DEXAMETHASONE", "PREDNISONE"}, {"MELPHALAN", "CYCLOPHOSPHAMIDE", "BENDAMUSTINE"}]
    ok = exposed.map(lambda s: all(s & group for group in needed))
    assert set(exposed.index) == set(sim.domains["dm"]["USUBJID"]) and ok.all()


def test_prior_therapy_structure(sim):
    cm, pr = sim.domains["cm"], sim.domains["pr"]
    prior = cm[cm["CMCAT"] == "PRIOR ANTI-MYELOMA THERAPY"]
    nreg = prior.groupby("USUBJID")["CMGRPID"].nunique()
    assert nreg.min() >= 3 and nreg.max() <= 18  # STORM: 3-18 prior regimens (domain.md 1.2, C)
    # planned induction -> ASCT -> maintenance share one link group
    linked = prior.dropna(subset=["CMLNKGRP"]).groupby("USUBJID")["CMSCAT"].agg(set)
    assert linked.map(lambda s: s == {"INDUCTION", "MAINTENANCE"}).all()
    assert set(pr["USUBJID"]) == set(linked.index)
    sub = cm[cm["CMCAT"] == "SUBSEQUENT ANTI-MYELOMA THERAPY"]
    first = sim.domains["dm"].set_index("USUBJID")["RFXSTDTC"]
    assert (sub["CMSTDTC"].to_numpy() > first.loc[sub["USUBJID"]].to_numpy()).all()


def test_biomarker_panel_split_and_planted_signal():
    s = simulate_study(122, seed=7)
    lb = s.domains["lb"]
    bm = lb[lb["LBCAT"] == "BIOMARKER"]
    per = bm.groupby("USUBJID")["LBSCAT"].first()
    assert (per == "TRAINING").sum() == 35 and (per == "VALIDATION").sum() == 12
    assert bm["LBTESTCD"].nunique() == 50
    wide = bm.pivot(index="USUBJID", columns="LBTESTCD", values="LBSTRESN")
    resp = s.truth.set_index("USUBJID").loc[wide.index, "TRUE_RESPONDER"].eq("Y")
    diff = (wide[resp].mean() - wide[~resp].mean()) / wide.std()
    planted = diff[["IRF3", "ARL2BP", "ZBTB17", "ATRX"]].abs()
    noise = diff.drop(["IRF3", "ARL2BP", "ZBTB17", "ATRX"]).abs()
    assert planted.mean() > 2 * noise.mean()


def test_alternative_units_present_for_a_few_subjects():
    lb = simulate_study(600, seed=2).domains["lb"]
    units = set(zip(lb["LBTESTCD"], lb["LBSTRESU"].fillna(""), strict=True))
    assert {("HGB", "g/L"), ("KAPPAFLC", "mg/L"), ("MPROTEIN", "g/L"), ("CREAT", "umol/L")} <= units


def test_progress_callback_reports_stages_up_to_one():
    seen = []
    simulate_study(20, seed=1, progress=lambda stage, f: seen.append((stage, f)))
    fr = [f for _, f in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0 and all(0 <= f <= 1 for f in fr)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_study_atomically_with_truth_and_metadata(tmp_path, fmt):
    s = simulate_study(40, seed=9)
    out = tmp_path / "study"
    other = "parquet" if fmt == "csv" else "csv"
    write_study(simulate_study(5, seed=1), out, fmt=other)  # an earlier study mmtrial wrote
    write_study(s, out, fmt=fmt)
    names = sorted(p.name for p in out.iterdir())
    assert f"dm.{other}" not in names  # the old folder was replaced whole
    assert {f"{d}.{fmt}" for d in s.domains} <= set(names)
    assert "_truth.csv" in names and "study.json" in names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    assert ".mmtrial-output" in names  # marked as mmtrial's (docs/cli.md "The output folder")
    meta = json.loads((out / "study.json").read_text())
    assert meta["synthetic"] is True and meta["seed"] == 9 and meta["n"] == 40
    back = pd.read_csv(out / "lb.csv") if fmt == "csv" else pd.read_parquet(out / "lb.parquet")
    lb = s.domains["lb"]
    assert len(back) == len(lb)
    np.testing.assert_allclose(back["LBSTRESN"].to_numpy(float), lb["LBSTRESN"].to_numpy(float))
    assert (back["LBDTC"].astype(str).to_numpy() == lb["LBDTC"].to_numpy()).all()
    truth = pd.read_csv(out / "_truth.csv")
    assert list(truth["USUBJID"].astype(str)) == list(s.truth["USUBJID"])


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(ValueError, match="n must be >= 1; got 0"):
        simulate_study(0)
    with pytest.raises(ValueError, match="class_probs"):
        SimulationParams(class_probs=(0.5, 0.5, 0.5, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="fmt must be"):
        write_study(simulate_study(5, 1), "x", fmt="xlsx")


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 25), seed=st.integers(0, 2**31 - 1))
def test_small_studies_keep_the_invariants(n, seed):
    s = simulate_study(n, seed)
    assert len(s.domains["dm"]) == n == len(s.truth)
    assert set(s.domains["ex"]["USUBJID"]) == set(s.domains["dm"]["USUBJID"])  # all dosed (SAFFL)
    pd_dt = s.truth["TRUE_PD_DT"].dropna()
    fd = s.truth.loc[pd_dt.index, "TRUE_FIRST_DOSE_DT"]
    assert (pd_dt > fd).all()


@pytest.mark.parametrize("seed", [1, 7, 8])
def test_no_record_after_death_in_a_simulated_study(tmp_path, seed):
    # the input check AFTER_DEATH (docs/input-checks.md) finds nothing on a simulated study; seed 1
    # at n = 300 had a not-evaluable subject's end of treatment (withdrawal planned on day 17)
    # dated 9 days after the subject's death
    from mmtrial.sdtm import load_study

    out = write_study(simulate_study(300, seed=seed), tmp_path / "study")
    _, issues = load_study(out)
    after = [(i.domain, i.variable, i.usubjid, i.value) for i in issues if i.rule == "AFTER_DEATH"]
    assert after == []
    ds = pd.read_csv(out / "ds.csv")
    eot = ds.loc[ds["DSSCAT"] == "END OF TREATMENT", ["USUBJID", "DSSTDTC"]]
    dth = ds.loc[(ds["DSSCAT"] == "END OF STUDY") & (ds["DSDECOD"] == "DEATH"), ["USUBJID", "DSSTDTC"]]
    both = eot.merge(dth, on="USUBJID", suffixes=("_EOT", "_DTH"))
    assert len(both) and (pd.to_datetime(both["DSSTDTC_EOT"]) <= pd.to_datetime(both["DSSTDTC_DTH"])).all()
