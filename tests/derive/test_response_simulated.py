"""Recovery of the simulator's ground truth (issue 3 quality bar).

The simulator (mmtrial.simulate, which never imports derive/) designs each subject's per-assessment
IMWG categories and writes the laboratory values that express them, plus the confirmed best
response it intended (``truth`` TRUE_BOR, TRUE_RESP_DT, TRUE_MR_DT, TRUE_PD_DT, TRUE_LAST_ADEQ_DT,
TRUE_NEWTX_DT; confirmation by two consecutive assessments, docs/simulator.md). The derivation
reads the written study through the normal reader and must recover that truth exactly.
"""

from __future__ import annotations

import pandas as pd
import pytest

simulate = pytest.importorskip("mmtrial.simulate")


@pytest.fixture(scope="module", params=[11, 12])
def derived(request, tmp_path_factory):
    from mmtrial.derive.adsl import derive_adsl
    from mmtrial.derive.response import derive_adrs
    from mmtrial.sdtm import read_study

    sim = simulate.simulate_study(n=500, seed=request.param)
    path = tmp_path_factory.mktemp(f"sim{request.param}")
    simulate.write_study(sim, path, fmt="parquet")
    study = read_study(path)
    res = derive_adrs(study.domains, derive_adsl(study.domains))
    return sim.truth.set_index("USUBJID"), res.adsl.set_index("USUBJID")


def test_measurable_disease_and_route_match_truth(derived):
    truth, adsl = derived
    assert (adsl["MEASFL"] == truth["TRUE_MEASURABLE"]).all()
    assert (adsl["RSPROUTE"] == truth["TRUE_ROUTE"]).all()


def test_bor_matches_truth(derived):
    truth, adsl = derived
    m = truth["TRUE_MEASURABLE"] == "Y"
    mismatch = adsl.loc[m, "BOR"] != truth.loc[m, "TRUE_BOR"]
    assert not mismatch.any(), pd.DataFrame({"derived": adsl.loc[m, "BOR"], "truth": truth.loc[m, "TRUE_BOR"]})[mismatch]
    assert adsl.loc[~m, "BOR"].isna().all()  # no route, not in the efficacy population: no BOR


@pytest.mark.parametrize(("var", "true"), [("RSPDT", "TRUE_RESP_DT"), ("MRDT", "TRUE_MR_DT"),
                                           ("PDDT", "TRUE_PD_DT"), ("NACTDT", "TRUE_NEWTX_DT")])
def test_dates_match_truth(derived, var, true):
    truth, adsl = derived
    m = truth["TRUE_MEASURABLE"] == "Y"
    x, y = pd.to_datetime(adsl.loc[m, var]), pd.to_datetime(truth.loc[m, true])
    assert ((x == y) | (x.isna() & y.isna())).all()


def test_last_adequate_assessment_matches_truth_without_pd(derived):
    # the simulator gives TRUE_LAST_ADEQ_DT only for subjects without PD (PFS censoring)
    truth, adsl = derived
    m = (truth["TRUE_MEASURABLE"] == "Y") & adsl["PDDT"].isna()
    x, y = pd.to_datetime(adsl.loc[m, "LSTADQDT"]), pd.to_datetime(truth.loc[m, "TRUE_LAST_ADEQ_DT"])
    assert ((x == y) | (x.isna() & y.isna())).all()
