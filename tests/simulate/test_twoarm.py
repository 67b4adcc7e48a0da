"""The randomised two-arm simulator (BOSTON): randomisation, SDTM of a two-arm study, crossover.

Interface: data contract v2 "Randomised two-arm trials" and the issue-13 brief (dm ARMCD/ARM/
ACTARMCD/ACTARM, ds RANDOMIZED, suppdm strata, cm crossover, ex per arm's regimen).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.protocol.model import Protocol
from mmtrial.protocol.regimen import compute_bsa
from mmtrial.simulate import simulate_study, write_study
from mmtrial.simulate.twoarm import randomise_permuted_blocks

PI_DRUGS = {"BORTEZOMIB", "CARFILZOMIB", "IXAZOMIB"}


@pytest.fixture(scope="module")
def boston():
    return simulate_study(n=120, seed=11, protocol="boston")


@settings(max_examples=40, deadline=None)
@given(strata=st.lists(st.integers(0, 3), min_size=1, max_size=200), ratio=st.sampled_from([(1, 1), (2, 1)]),
       blocks=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_permuted_blocks_are_balanced_within_each_stratum(strata, ratio, blocks, seed):
    # Zelen 1974: every complete block of a stratum holds the ratio exactly; an incomplete last block
    # leaves at most block_size * max(ratio) / sum(ratio) of imbalance
    size = blocks * sum(ratio)
    s = np.array(strata)
    arm = randomise_permuted_blocks(np.random.default_rng(seed), s, ratio, size)
    for k in np.unique(s):
        a = arm[s == k]
        full = len(a) // size * size
        per_block = a[:full].reshape(-1, size)
        assert ((per_block == 0).sum(axis=1) == size * ratio[0] // sum(ratio)).all()
        tail = a[full:]
        assert (tail == 0).sum() <= size * ratio[0] // sum(ratio)
        assert (tail == 1).sum() <= size * ratio[1] // sum(ratio)


def test_block_size_must_fit_the_ratio():
    with pytest.raises(ValueError, match="multiple"):
        randomise_permuted_blocks(np.random.default_rng(0), np.zeros(4, int), (2, 1), 4)


def test_dm_planned_and_actual_arm_from_the_protocol(boston):
    dm = boston.domains["dm"]
    proto = Protocol.load("boston")
    assert set(dm["ARMCD"]) == {"SVD", "VD"}
    # actual = planned, except the randomised subjects never treated (boston.toml not_treated_prob)
    treated = dm["ACTARMCD"] != "NOTTRT"
    assert (dm.loc[treated, "ACTARMCD"] == dm.loc[treated, "ARMCD"]).all()
    assert (dm.loc[treated, "ACTARM"] == dm.loc[treated, "ARM"]).all()
    assert (dm.loc[~treated, "ACTARM"] == "Not Treated").all()
    assert dict(zip(dm["ARMCD"], dm["ARM"], strict=True)) == {a: proto.arm_label(a) for a in ("SVD", "VD")}
    assert abs((dm["ARMCD"] == "SVD").sum() - (dm["ARMCD"] == "VD").sum()) <= 12  # 12 strata x half a block of 4
    assert dm["USUBJID"].is_unique


def test_one_randomisation_record_per_subject_before_the_first_dose(boston):
    ds, dm = boston.domains["ds"], boston.domains["dm"]
    r = ds[ds["DSDECOD"] == "RANDOMIZED"]
    assert (r["DSCAT"] == "PROTOCOL MILESTONE").all() and (r["DSTERM"] == "RANDOMIZED").all()
    assert r["USUBJID"].is_unique and set(r["USUBJID"]) == set(dm["USUBJID"])
    m = dm.merge(r, on="USUBJID")
    gap = (pd.to_datetime(m["RFXSTDTC"]) - pd.to_datetime(m["DSSTDTC"])).dt.days
    dosed = m["ACTARMCD"] != "NOTTRT"  # a subject never treated has no first dose
    assert gap[dosed].between(0, 7).all()  # [simulation.two_arm] randomisation_to_dose_days = (0, 7)
    assert m.loc[~dosed, "RFXSTDTC"].isna().all()


def test_suppdm_strata_match_the_prior_therapy(boston):
    supp = boston.domains["suppdm"]
    assert list(supp.columns) == ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL",
                                  "QORIG"]
    assert (supp["RDOMAIN"] == "DM").all() and (supp["QORIG"] == "CRF").all() and (supp["IDVAR"] == "").all()
    wide = supp.pivot(index="USUBJID", columns="QNAM", values="QVAL")
    assert set(wide.columns) == {"STRATPI", "STRATLOT", "STRATRISS"}
    labels = dict(zip(supp["QNAM"], supp["QLABEL"], strict=False))
    assert labels == {"STRATPI": "Prior proteasome inhibitor", "STRATLOT": "Prior lines of therapy",
                      "STRATRISS": "R-ISS stage"}
    assert set(wide["STRATPI"]) == {"Y", "N"} and set(wide["STRATLOT"]) <= {"1", ">1"}
    assert set(wide["STRATRISS"]) <= {"III", "I/II"}
    cm = boston.domains["cm"]
    prior = cm[cm["CMCAT"] == "PRIOR ANTI-MYELOMA THERAPY"]
    has_pi = prior.groupby("USUBJID")["CMTRT"].agg(lambda s: bool(set(s) & PI_DRUGS))
    assert (wide["STRATPI"].eq("Y") == has_pi.reindex(wide.index)).all()
    # lines (Rajkumar 2015): regimens, induction + maintenance linked by CMLNKGRP being one line
    reg = prior.drop_duplicates(["USUBJID", "CMGRPID"])
    lines = reg.groupby("USUBJID").apply(lambda g: g["CMLNKGRP"].isna().sum() + g["CMLNKGRP"].notna().any(),
                                         include_groups=False)
    assert lines.between(1, 3).all()
    assert (wide["STRATLOT"].eq("1") == lines.reindex(wide.index).eq(1)).all()


def test_each_arm_is_dosed_by_its_regimen(boston):
    ex, dm, vs = boston.domains["ex"], boston.domains["dm"], boston.domains["vs"]
    arm = dict(zip(dm["USUBJID"], dm["ARMCD"], strict=True))
    ex = ex.assign(ARMCD=ex["USUBJID"].map(arm))
    assert set(ex.loc[ex["ARMCD"] == "VD", "EXTRT"]) == {"BORTEZOMIB", "DEXAMETHASONE"}
    assert set(ex.loc[ex["ARMCD"] == "SVD", "EXTRT"]) == {"SELINEXOR", "BORTEZOMIB", "DEXAMETHASONE"}
    # bortezomib 1.3 mg/m2 (Mosteller BSA from the screening height and weight) at the first dose
    base = vs.sort_values("VSDTC").drop_duplicates(["USUBJID", "VSTESTCD"]).pivot(
        index="USUBJID", columns="VSTESTCD", values="VSSTRESN")
    bsa = pd.Series(compute_bsa(base["HEIGHT"].to_numpy(), base["WEIGHT"].to_numpy()), index=base.index)
    first = ex[ex["EXTRT"] == "BORTEZOMIB"].sort_values("EXSTDTC").drop_duplicates("USUBJID")
    ratio = first["EXDOSE"].to_numpy() / bsa.reindex(first["USUBJID"]).to_numpy()
    assert np.allclose(ratio, 1.3, atol=0.02)
    # Vd cycle 1: twice weekly bortezomib, days 1, 4, 8, 11 (Grosicki 2020)
    vd = ex[(ex["ARMCD"] == "VD") & (ex["EXTRT"] == "BORTEZOMIB")].copy()
    vd["DAY"] = (pd.to_datetime(vd["EXSTDTC"]) - pd.to_datetime(vd["USUBJID"].map(
        dict(zip(dm["USUBJID"], dm["RFXSTDTC"], strict=True))))).dt.days + 1
    c1 = vd[vd["DAY"] <= 11].groupby("USUBJID")["DAY"].apply(tuple)
    assert (c1 == (1, 4, 8, 11)).mean() > 0.8  # the rest had a hold or a missed dose in cycle 1


def test_crossover_is_a_control_subject_starting_selinexor_after_progression(boston):
    tr, cm = boston.truth, boston.domains["cm"]
    sub = cm[(cm["CMCAT"] == "SUBSEQUENT ANTI-MYELOMA THERAPY") & (cm["CMTRT"] == "SELINEXOR")]
    arm = dict(zip(tr["USUBJID"], tr["ARMCD"], strict=True))
    assert set(sub["USUBJID"].map(arm)) <= {"VD"}
    crossed = tr[tr["TRUE_CROSSOVER"] == "Y"]
    assert set(sub["USUBJID"]) == set(crossed["USUBJID"]) and len(crossed) > 0
    first = sub.groupby("USUBJID")["CMSTDTC"].min()
    pd_dt = crossed.set_index("USUBJID")["TRUE_PD_DT"]
    assert (pd.to_datetime(first) >= pd.to_datetime(pd_dt.reindex(first.index))).all()
    assert (tr.loc[tr["ARMCD"] == "SVD", "TRUE_CROSSOVER"] == "").all()


def test_same_seed_same_study_and_synthetic_label():
    a = simulate_study(n=24, seed=3, protocol="boston")
    b = simulate_study(n=24, seed=3, protocol="boston")
    for k in a.domains:
        pd.testing.assert_frame_equal(a.domains[k], b.domains[k])
    assert a.metadata["synthetic"] is True and "Synthetic data" in a.metadata["note"]
    assert a.metadata["randomisation"]["method"] == "stratified permuted blocks"


def test_simulated_two_arm_study_passes_the_input_checks(boston, tmp_path):
    from mmtrial.sdtm import load_study

    write_study(boston, tmp_path / "s")
    _, issues = load_study(tmp_path / "s")
    assert [i for i in issues if i.severity == "error"] == []
    assert [i for i in issues if i.severity == "warning"] == []  # none expected (docs/simulator.md)


def test_simulation_options_for_an_unknown_arm_or_stratum_are_protocol_errors(tmp_path):
    from mmtrial.errors import ProtocolError
    from mmtrial.protocol.model import bundled

    src = bundled("boston").read_text("utf-8")
    bad_arm = tmp_path / "a.toml"
    bad_arm.write_text(src.replace("[simulation.arms.VD]", "[simulation.arms.XX]"), "utf-8")
    with pytest.raises(ProtocolError, match=r"simulation\.arms\.XX"):
        simulate_study(n=8, seed=1, protocol=bad_arm)
    bad_stratum = tmp_path / "s.toml"
    bad_stratum.write_text(src.replace('strata = ["STRATPI", "STRATLOT", "STRATRISS"]',
                                       'strata = ["STRATPI", "STRATECOG"]'), "utf-8")
    with pytest.raises(ProtocolError, match="STRATECOG"):
        simulate_study(n=8, seed=1, protocol=bad_stratum)
