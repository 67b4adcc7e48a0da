"""The simulator reads the protocol: any regimen's cycles, days, phases, units, step-up and ladder.

Expected values are worked by hand from the protocol text (the regimens in
tests/support/sim_protocols.py), from the BSA formulas (Mosteller, N Engl J Med 1987;317:1098;
DuBois, Arch Intern Med 1916;17:863) and from the data contract (ex, vs). ex rows are expanded
back into administrations here with the CDISC meaning of EXDOSFRQ (QD every day, ONCE one day,
BIW days 1 and 3 and QW day 1 of each week from EXSTDTC), independently of the simulator's writer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmtrial.derive.exposure import derive_adex, derive_exposure_intervals
from mmtrial.errors import ProtocolError
from mmtrial.protocol.regimen import compute_bsa, compute_dose_mg
from mmtrial.simulate import simulate_study, write_study
from support.sim_protocols import DARA, KD, KD_LADDER, POMDEX, POMDEX_LADDER, protocol

WEEK_DAYS = {"QD": list(range(7)), "BIW": [0, 2], "QW": [0]}


def expand_ex(ex: pd.DataFrame) -> pd.DataFrame:
    """One row per administration (USUBJID, EXTRT, DATE, EXDOSE) from ex rows (vectorised)."""
    if ex.empty:  # e.g. full-adherence subjects who stopped before the regimen's first dosing day
        return pd.DataFrame({"USUBJID": pd.Series(dtype=object), "EXTRT": pd.Series(dtype=object),
                             "DATE": pd.Series(dtype="datetime64[ns]"), "EXDOSE": pd.Series(dtype=float)})
    st_ = pd.to_datetime(ex["EXSTDTC"]).to_numpy()
    span = (pd.to_datetime(ex["EXENDTC"]).to_numpy() - st_) // np.timedelta64(1, "D")
    frq = ex["EXDOSFRQ"].to_numpy()
    parts = []
    for code in np.unique(frq):
        idx = np.flatnonzero(frq == code)
        offs = np.array([0] if code == "ONCE" else WEEK_DAYS[code])
        weeks = span[idx] // 7 + 1
        owner = np.repeat(idx, weeks * len(offs))
        k = np.arange(len(owner)) - np.repeat(np.cumsum(weeks * len(offs)) - weeks * len(offs), weeks * len(offs))
        day = 7 * (k // len(offs)) + offs[k % len(offs)]
        keep = day <= span[owner]
        parts.append((owner[keep], day[keep]))
    owner = np.concatenate([p[0] for p in parts])
    day = np.concatenate([p[1] for p in parts])
    return pd.DataFrame({"USUBJID": ex["USUBJID"].to_numpy()[owner], "EXTRT": ex["EXTRT"].to_numpy()[owner],
                         "DATE": st_[owner] + day.astype("timedelta64[D]"),
                         "EXDOSE": ex["EXDOSE"].to_numpy(float)[owner]})


@pytest.fixture(scope="module")
def pomdex():
    return simulate_study(150, seed=4, protocol=protocol(POMDEX, POMDEX_LADDER))


def test_pomdex_full_adherence_subject_gets_days_1_to_21_and_weekly_dex(pomdex):
    # protocol text: pomalidomide 4 mg days 1-21 (one QD row per cycle), dexamethasone 40 mg
    # days 1, 8, 15, 22 (one ONCE row each) of 28-day cycles; cycle k starts on day 28(k-1)
    tr = pomdex.truth
    ex = pomdex.domains["ex"]
    full = tr[(tr["TRUE_FULL_ADHERENCE"] == "Y") & (tr["TRUE_N_CYCLES"] >= 3)]
    assert len(full) >= 3
    for u, fd in zip(full["USUBJID"], pd.to_datetime(full["TRUE_FIRST_DOSE_DT"]), strict=True):
        mine = ex[ex["USUBJID"] == u]
        pom = mine[mine["EXTRT"] == "POMALIDOMIDE"].reset_index(drop=True)
        dex = mine[mine["EXTRT"] == "DEXAMETHASONE"].reset_index(drop=True)
        for k in range(2):  # two complete cycles
            row = pom.iloc[k]
            assert (row["EXDOSFRQ"], row["EXDOSE"], row["EXDOSU"], row["EXROUTE"]) == ("QD", 4.0, "mg", "ORAL")
            assert pd.Timestamp(row["EXSTDTC"]) == fd + pd.Timedelta(days=28 * k)
            assert pd.Timestamp(row["EXENDTC"]) == fd + pd.Timedelta(days=28 * k + 20)
            got = pd.to_datetime(dex["EXSTDTC"].iloc[4 * k: 4 * k + 4]).tolist()
            assert got == [fd + pd.Timedelta(days=28 * k + d) for d in (0, 7, 14, 21)]
        assert (dex["EXDOSFRQ"] == "ONCE").all() and (dex["EXDOSE"] == 40).all()
        assert mine["EXADJ"].isna().all()


def test_pomdex_reductions_follow_the_ladder_and_never_on_rest_days(pomdex):
    ex = pomdex.domains["ex"]
    pom = ex[ex["EXTRT"] == "POMALIDOMIDE"]
    assert set(pom["EXDOSE"]) <= set(POMDEX_LADDER) and (pom["EXDOSE"] < 4).any()
    # the dose only goes down (ladder), and a reduced row is marked as an adjustment
    assert (pom.groupby("USUBJID")["EXDOSE"].diff().dropna() <= 0).all()
    assert (pom.loc[pom["EXDOSE"] < 4, "EXADJ"] == "ADVERSE EVENT").all()
    # every administration lies on days 1-21 of a cycle (actual cycle starts, delays included)
    cyc = pomdex.cycles
    adm = expand_ex(pom)
    adm = adm.merge(cyc.assign(START=pd.to_datetime(cyc["START_DT"]))[["USUBJID", "CYCLE", "START"]], on="USUBJID")
    adm["CDY"] = (adm["DATE"] - adm["START"]).dt.days + 1
    inside = adm[(adm["CDY"] >= 1) & (adm["CDY"] <= 28)]
    assert len(inside) == len(adm[["USUBJID", "DATE"]].drop_duplicates())  # one cycle each
    assert inside["CDY"].between(1, 21).all()


def test_cycle_delays_are_whole_held_weeks_and_nothing_is_given_while_waiting():
    # heavy toxicity makes holds at cycle boundaries common; a delayed cycle starts when dosing
    # resumes (a week boundary, day 7w) and no dose falls between its planned and actual start
    sim = simulate_study(200, seed=2, protocol=protocol(KD, KD_LADDER, {"toxicity_scale": {"platelets": 2.5}}))
    cyc = sim.cycles
    tr = sim.truth.set_index("USUBJID")
    assert (cyc["DELAY_DAYS"] >= 0).all()
    late = cyc[cyc["DELAY_DAYS"] > 0]
    assert len(late) > 5
    first = pd.to_datetime(tr.loc[late["USUBJID"], "TRUE_FIRST_DOSE_DT"]).to_numpy()
    start = pd.to_datetime(late["START_DT"]).to_numpy()
    assert (((start - first) / np.timedelta64(1, "D")) % 7 == 0).all()
    assert (tr.loc[late["USUBJID"].unique(), "TRUE_N_DELAYS"] > 0).all()
    adm = expand_ex(sim.domains["ex"])
    w = late.assign(P=pd.to_datetime(late["PLANNED_START_DT"]), S=pd.to_datetime(late["START_DT"]))
    j = adm.merge(w[["USUBJID", "P", "S"]], on="USUBJID")
    assert not ((j["DATE"] >= j["P"]) & (j["DATE"] < j["S"])).any()


def test_mg_per_m2_with_step_up_uses_the_cycles_weight_and_dubois_bsa():
    sim = simulate_study(120, seed=5, protocol=protocol(KD, KD_LADDER))
    vs = sim.domains["vs"]
    assert set(vs["VSTESTCD"]) == {"HEIGHT", "WEIGHT"} and set(vs["VSSTRESU"]) == {"cm", "kg"}
    assert (vs.loc[vs["VISIT"] == "SCREENING", "VSBLFL"] == "Y").all()
    cfz = expand_ex(sim.domains["ex"].query("EXTRT == 'CARFILZOMIB'"))
    h = vs[vs["VSTESTCD"] == "HEIGHT"].set_index("USUBJID")["VSSTRESN"]
    wt = vs[vs["VSTESTCD"] == "WEIGHT"].assign(DATE=lambda d: pd.to_datetime(d["VSDTC"])).sort_values("DATE")
    # the latest weight on or before each administration (the weight of its cycle's day 1)
    m = pd.merge_asof(cfz.sort_values("DATE"), wt[["USUBJID", "DATE", "VSSTRESN"]], on="DATE", by="USUBJID")
    bsa = compute_bsa(h.loc[m["USUBJID"]].to_numpy(), m["VSSTRESN"].to_numpy(), "dubois")
    per_m2 = m["EXDOSE"].to_numpy() / bsa
    levels = np.array([20.0, *KD_LADDER])
    nearest = levels[np.abs(per_m2[:, None] - levels[None, :]).argmin(axis=1)]
    np.testing.assert_allclose(per_m2, nearest, atol=0.01 / bsa.min() + 1e-9)
    # 20 mg/m2 only on cycle 1 days 1-2 (the step-up doses), i.e. the first two administrations
    rank = m.sort_values("DATE").groupby("USUBJID").cumcount()
    assert (nearest[rank.sort_index().to_numpy() >= 2] != 20).all()
    assert (nearest[(rank.sort_index() < 2).to_numpy()] == 20).all()


def test_mg_per_kg_phases_change_the_dosing_days():
    # daratumumab 16 mg/kg: days 1, 8, 15, 22 in cycles 1-2, then days 1 and 15 in cycles 3-6
    sim = simulate_study(150, seed=8, protocol=protocol(DARA, simulation={"toxicity_scale": {
        "platelets": 0.0, "neutrophils": 0.0, "hemoglobin": 0.0, "sodium": 0.0, "nonhematologic": 0.0}}))
    tr = sim.truth
    full = tr[(tr["TRUE_FULL_ADHERENCE"] == "Y") & (tr["TRUE_N_CYCLES"] >= 4)]
    assert len(full) >= 5
    ex = sim.domains["ex"]
    wt0 = sim.domains["vs"].query("VSTESTCD == 'WEIGHT' and VISIT == 'SCREENING'").set_index("USUBJID")["VSSTRESN"]
    for u, fd in zip(full["USUBJID"], pd.to_datetime(full["TRUE_FIRST_DOSE_DT"]), strict=True):
        days = (pd.to_datetime(ex.loc[ex["USUBJID"] == u, "EXSTDTC"]) - fd).dt.days.tolist()
        # cycles 1-2 weekly, 3-6 days 1 and 15, 7+ day 1 (cycle k starts on day 28(k-1))
        want = [0, 7, 14, 21, 28, 35, 42, 49] + [28 * k + d for k in range(2, 6) for d in (0, 14)] + [
            28 * k for k in range(6, 30)]
        assert len(days) >= 9 and days == want[: len(days)]
        first = ex[ex["USUBJID"] == u].iloc[0]
        assert first["EXDOSFRQ"] == "ONCE" and first["EXROUTE"] == "INTRAVENOUS"
        assert first["EXDOSE"] == pytest.approx(16 * wt0[u], abs=0.006)


def test_storm_rows_stay_twice_weekly_runs_and_no_dose_after_death():
    sim = simulate_study(300, seed=7)
    ex, dm = sim.domains["ex"], sim.domains["dm"].set_index("USUBJID")
    assert set(ex["EXDOSFRQ"]) <= {"BIW", "QW"} and set(ex["EXROUTE"]) == {"ORAL"}
    assert "vs" not in sim.domains and (dm["ARMCD"] == "SELDEX").all()
    dth = pd.to_datetime(dm.loc[ex["USUBJID"], "DTHDTC"]).to_numpy()
    end = pd.to_datetime(ex["EXENDTC"]).to_numpy()
    died = ~pd.isna(dth)
    assert (end[died] <= dth[died]).all()


def test_simulation_section_options_are_checked_with_the_key():
    with pytest.raises(ProtocolError, match=r"simulation\.respons_rates"):
        simulate_study(5, protocol=protocol(POMDEX, POMDEX_LADDER, {"respons_rates": {}}))
    with pytest.raises(ProtocolError, match="sum to 1"):
        simulate_study(5, protocol=protocol(POMDEX, POMDEX_LADDER, {"response_rates": {"PR": 0.5}}))
    with pytest.raises(ProtocolError, match="unknown SimulationParams fields"):
        simulate_study(5, protocol=protocol(POMDEX, POMDEX_LADDER, {"params": {"no_such": 1}}))


def test_simulation_section_sets_n_response_rates_and_missed_doses():
    rates = {"sCR": 0.0, "CR": 0.0, "VGPR": 0.1, "PR": 0.5, "MR": 0.1, "SD": 0.2, "PD": 0.08, "NE": 0.02}
    sim = simulate_study(protocol=protocol(POMDEX, POMDEX_LADDER, {"n": 800, "seed": 3, "response_rates": rates,
                                                                   "missed_dose_prob": 0.05}))
    tr = sim.truth
    assert len(tr) == 800 and sim.metadata["seed"] == 3
    # latent PR-or-better 60%: a binomial(800, 0.6) proportion is within 0.6 +- 0.055 (> 3 SD)
    assert abs(tr["TRUE_CLASS"].isin(["sCR", "CR", "VGPR", "PR"]).mean() - 0.6) < 0.055
    # missed doses: about 5% of planned administrations; a subject with one is not fully adherent
    given = len(expand_ex(sim.domains["ex"]))
    missed = tr["TRUE_MISSED_DOSES"].sum()
    assert 0.035 < missed / (given + missed) < 0.065
    assert (tr.loc[tr["TRUE_MISSED_DOSES"] > 0, "TRUE_FULL_ADHERENCE"] == "N").all()


# --- property: any valid regimen -------------------------------------------------------------
@st.composite
def regimens(draw):
    """A random valid regimen: 1-3 phases of 7-42-day cycles, 1-2 drugs, mg / mg/m2 / mg/kg."""
    n_ph = draw(st.integers(1, 3))
    names = ["STUDYDRUG", "PARTNER"][: draw(st.integers(1, 2))]
    units = {nm: draw(st.sampled_from(["mg", "mg/m2", "mg/kg"])) for nm in names}
    doses = {nm: draw(st.sampled_from([1.3, 4.0, 16.0, 20.0])) for nm in names}
    phases, first = [], 1
    for i in range(n_ph):
        length = draw(st.integers(7, 42))
        last = 999 if i == n_ph - 1 else first + draw(st.integers(0, 3))
        drugs = []
        for nm in names:
            if draw(st.booleans()) and length % 7 == 0:
                spec = {"days_of_week": draw(st.sampled_from([[1], [1, 3], [1, 2, 3, 4, 5, 6, 7], [2, 5]]))}
            else:
                days = sorted(draw(st.sets(st.integers(1, length), min_size=1, max_size=min(length, 21))))
                spec = {"cycle_days": days}
            drugs.append({"name": nm, "dose": doses[nm], "unit": units[nm], "route": "ORAL", **spec})
        phases.append({"cycles": [first, last], "cycle_length_days": length, "drugs": drugs})
        first = last + 1
    reg = {"study_drug": "STUDYDRUG", "phases": phases}
    if draw(st.booleans()) and "cycle_days" in phases[0]["drugs"][0]:
        d1 = phases[0]["drugs"][0]["cycle_days"][0]
        phases[0]["drugs"][0]["step_up"] = [{"cycle": 1, "day": d1, "dose": doses["STUDYDRUG"] / 2}]
    return reg


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reg=regimens(), seed=st.integers(0, 10_000), tox=st.sampled_from([0.2, 1.0]))
@example(  # found by CI: full-adherence subjects with no ex row (first dose planned on day 10)
    reg={"study_drug": "STUDYDRUG", "phases": [
        {"cycles": [1, 1], "cycle_length_days": 16, "drugs": [
            {"name": "STUDYDRUG", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": [10]}]},
        {"cycles": [2, 999], "cycle_length_days": 7, "drugs": [
            {"name": "STUDYDRUG", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": [1]}]}]},
    seed=144, tox=0.2)
@example(  # found while adding the RDI check: EXCYCLE cycles whose first dose is planned on day 11 or 16
    reg={"study_drug": "STUDYDRUG", "phases": [
        {"cycles": [1, 1], "cycle_length_days": 31, "drugs": [
            {"name": "STUDYDRUG", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": [16]},
            {"name": "PARTNER", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": [11]}]},
        {"cycles": [2, 2], "cycle_length_days": 9, "drugs": [
            {"name": "STUDYDRUG", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": list(range(1, 10))},
            {"name": "PARTNER", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": [1, 2, 3, 4]}]},
        {"cycles": [3, 999], "cycle_length_days": 28, "drugs": [
            {"name": "STUDYDRUG", "dose": 1.3, "unit": "mg", "route": "ORAL", "cycle_days": [1, 28]},
            {"name": "PARTNER", "dose": 1.3, "unit": "mg", "route": "ORAL", "days_of_week": [1, 3]}]}]},
    seed=1673, tox=0.2)
def test_any_regimen_passes_the_input_checks_and_full_adherence_is_the_plan(tmp_path_factory, reg, seed, tox):
    from mmtrial.sdtm import load_study

    proto = protocol(reg, [reg["phases"][0]["drugs"][0]["dose"]],
                     {"toxicity_scale": {"platelets": tox, "neutrophils": tox, "hemoglobin": tox, "sodium": tox}})
    sim = simulate_study(14, seed=seed, protocol=proto)
    out = write_study(sim, tmp_path_factory.mktemp("anyreg") / "study")
    study, issues = load_study(out)
    errors = [i for i in issues if i.severity == "error"]
    assert not errors, errors[:3]

    tr = sim.truth
    full = tr[tr["TRUE_FULL_ADHERENCE"] == "Y"]
    if full.empty:
        return
    # the derivation (docs/exposure.md) on the study as read: full adherence is RDI 100% (within
    # the 0.01 mg rounding of body-size doses) and no interruption, wherever treatment stopped
    lv = derive_exposure_intervals(study["ex"], ladder=proto.dose_ladder, regimen=proto.regimen,
                                   vs=study.get("vs"), ladder_for=proto.ladder_for)
    adex = derive_adex(lv, pd.DataFrame({"USUBJID": full["USUBJID"]}), regimen=proto.regimen,
                       ladder=proto.dose_ladder)
    mine_ = adex[adex["USUBJID"].isin(full["USUBJID"])]
    assert ((mine_["RDI"] - 1.0).abs() < 0.005).all(), mine_[["USUBJID", "EXTRT", "RDI", "PLNWKDOS", "ACTWKDOS"]]
    assert (mine_["NINTERR"] == 0).all() and (mine_["NREDUC"] == 0).all()
    ex = sim.domains["ex"]
    adm = expand_ex(ex[ex["USUBJID"].isin(full["USUBJID"])])
    fd = pd.to_datetime(full.set_index("USUBJID")["TRUE_FIRST_DOSE_DT"])
    adm["STUDYDY"] = (adm["DATE"] - fd.loc[adm["USUBJID"]].to_numpy()).dt.days + 1
    last = adm.groupby("USUBJID")["STUDYDY"].max()
    plan = proto.regimen.schedule(200)
    for u in full["USUBJID"]:
        mine = adm[adm["USUBJID"] == u].sort_values(["EXTRT", "STUDYDY"])
        exp = plan[plan["STUDYDY"] <= last.get(u, 0)].sort_values(["DRUG", "STUDYDY"])
        assert list(zip(mine["EXTRT"], mine["STUDYDY"], strict=True)) == list(
            zip(exp["DRUG"], exp["STUDYDY"], strict=True)), u
        if not len(exp):
            continue
        # doses: protocol dose x body size (latest vs weight on or before the day), 0.01 mg rounding
        if "vs" in sim.domains:
            vs = sim.domains["vs"]
            vs = vs[vs["USUBJID"] == u]
            h = float(vs.loc[vs["VSTESTCD"] == "HEIGHT", "VSSTRESN"].iloc[0])
            w = vs[vs["VSTESTCD"] == "WEIGHT"].assign(D=lambda x: pd.to_datetime(x["VSDTC"]))
            dates = fd[u] + pd.to_timedelta(exp["STUDYDY"].to_numpy() - 1, unit="D")
            wt = np.array([w.loc[w["D"] <= d, "VSSTRESN"].iloc[-1] for d in dates])
        else:
            h, wt = 170.0, np.full(len(exp), 70.0)
        bsa = compute_bsa(np.full(len(exp), h), wt, proto.regimen.bsa_formula)
        want = compute_dose_mg(exp["DOSE"].to_numpy(), exp["UNIT"].to_numpy(), bsa, wt)
        np.testing.assert_allclose(mine["EXDOSE"].to_numpy(), want, atol=0.006)


@pytest.mark.parametrize("reg, ladder, sim_opts", [
    (KD, KD_LADDER, {"toxicity_scale": {"platelets": 2.5}}),
    (POMDEX, POMDEX_LADDER, {"missed_dose_prob": 0.0}),
    (DARA, None, {}),
])
def test_the_vectorised_week_walk_equals_the_day_by_day_walk(monkeypatch, reg, ladder, sim_opts):
    from mmtrial.simulate import treatment

    proto = protocol(reg, ladder, sim_opts)
    fast = simulate_study(120, seed=6, protocol=proto)
    monkeypatch.setattr(treatment, "VECTORISED_WEEK", False)
    slow = simulate_study(120, seed=6, protocol=proto)
    for name in fast.domains:
        pd.testing.assert_frame_equal(fast.domains[name], slow.domains[name])
    pd.testing.assert_frame_equal(fast.truth, slow.truth)
    pd.testing.assert_frame_equal(fast.cycles, slow.cycles)
    assert (fast.cycles["DELAY_DAYS"] > 0).any() or reg is not KD
