"""A fabricated two-arm analysis for the by-arm report tests (issue 13, engineer "armrep").

The pipeline runs on a small simulated single-arm study; then ADSL gets the two-arm variables of
docs/adam.md / issue 13's interface (ARMCD, ARM, TRT01P/TRT01PN, TRT01A/TRT01AN, ITTFL, RANDDT,
one stratum STRATPI) by a seeded 1:1 assignment, a few subjects' actual arm differs from the
planned one (so TRT01A != TRT01P is exercised), and results.json ``comparison`` is computed by
the real ``stats.twoarm.compare_arms`` on these data, with ``subgroups_PFS`` from
``compute_subgroup_hazard_ratios`` and an ``OS_rpsftm`` entry shaped like ``RpsftmResult``.
The by-arm step (``steps/by_arm.py``) then runs as the pipeline's last step would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EXPERIMENTAL, CONTROL = "SVD", "VD"
LABELS = {EXPERIMENTAL: "Selinexor + Vd", CONTROL: "Bortezomib + dex"}
#: Subjects (by position in ADSL) whose actual treatment is the other arm.
SWITCHED = (0, 5)


def assign_arms(adsl: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """ADSL with the two-arm variables (seeded 1:1 allocation)."""
    rng = np.random.default_rng(seed)
    n = len(adsl)
    exp = rng.permutation(np.arange(n) % 2 == 0)
    armcd = np.where(exp, EXPERIMENTAL, CONTROL)
    act = armcd.copy()
    for i in SWITCHED:
        act[i] = CONTROL if act[i] == EXPERIMENTAL else EXPERIMENTAL
    out = adsl.copy()
    out["ARMCD"] = armcd
    out["ARM"] = [LABELS[a] for a in armcd]
    out["ACTARMCD"] = act
    out["ACTARM"] = [LABELS[a] for a in act]
    out["TRT01P"] = out["ARM"]
    out["TRT01PN"] = np.where(armcd == EXPERIMENTAL, 1, 2)
    out["TRT01A"] = out["ACTARM"]
    out["TRT01AN"] = np.where(act == EXPERIMENTAL, 1, 2)
    out["ITTFL"] = "Y"
    out["RANDDT"] = pd.to_datetime(out["TRTSDT"])
    out["STRATPI"] = np.where(rng.random(n) < 0.5, "Y", "N")
    return out


def fabricate_comparison(adsl: pd.DataFrame, adtte: pd.DataFrame) -> dict:
    from mmtrial.stats.twoarm import compare_arms, compute_subgroup_hazard_ratios

    comp = compare_arms(adsl, adtte, experimental=EXPERIMENTAL, control=CONTROL, strata=["STRATPI"])
    pfs = adtte[adtte["PARAMCD"] == "PFS"].merge(adsl[["USUBJID", "ARMCD", "STRATPI", "SEX"]], on="USUBJID")
    subs = []
    for var in ("STRATPI", "SEX"):
        frame, p_int = compute_subgroup_hazard_ratios(
            pfs["AVAL"], pfs["CNSR"] == 0, (pfs["ARMCD"] == EXPERIMENTAL).astype(int), pfs[var])
        for r in frame.itertuples():
            subs.append({"subgroup": var, "level": r.LEVEL, "n": r.N, "events": r.EVENTS, "hr": r.HR,
                         "hr_ci": [r.LCL, r.UCL], "p_interaction": p_int})
    comp["subgroups_PFS"] = subs
    comp["OS_rpsftm"] = {"psi": -0.4, "psi_ci": [-0.9, 0.1], "acceleration_factor": float(np.exp(0.4)),
                         "acceleration_factor_ci": [float(np.exp(-0.1)), float(np.exp(0.9))],
                         "hr_adjusted": 0.62, "hr_adjusted_ci": [0.35, 1.1], "hr_itt": 0.8, "p_itt": 0.2,
                         "recensoring": True, "treatment_time": "treatment group", "level": 0.95,
                         "n_switchers": 7, "method": "RPSFTM (Robins-Tsiatis 1991), log-rank estimating equation"}
    return comp


def two_arm_analysis(base):
    """(analysis after the by-arm step, ADSL with arms, the fabricated comparison) from a copy of
    ``base``, a finished single-arm analysis (e.g. the ``demo`` fixture's)."""
    import copy

    from mmtrial.steps import by_arm

    a = copy.deepcopy(base)
    adsl = assign_arms(a.adam["adsl"])
    a.adam["adsl"] = adsl
    comp = fabricate_comparison(adsl, a.adam["adtte"])
    a.results["comparison"] = comp
    by_arm.run(a)
    return a, adsl, comp
