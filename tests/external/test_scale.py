"""The scale paths give the pandas path's answers: the single DuckDB SQL pass over Parquet and
the per-patient-partition Dask run (local cluster), on a small simulated cohort.

Oracle: external/history.py + external/emulate.py (the trial derivations of derive/, whose
results tests/external/test_cohort_emulation.py checks against the simulator's truth)."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import STORM_CRITERIA, EligibilityRule
from mmtrial.external.cohort import check_cohort_domains
from mmtrial.external.emulate import emulate_target_trial
from mmtrial.external.history import derive_cohort_history
from mmtrial.external.scale import derive_status_dask, derive_status_sql, write_normalised_parquet
from mmtrial.simulate.cohort import simulate_cohort

pytestmark = pytest.mark.slow  # a simulated cohort and a Dask cluster: ~1 minute on 2 busy cores

RULE = EligibilityRule(criteria=STORM_CRITERIA, label_population=())
FLAGS = ["LSTREFFL", "TCRFL", "PENTAFL", "QUADFL", "TCEFL", "MEASFL", "ELIGFL", *[f"ELIG_{c.id}" for c in STORM_CRITERIA]]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    import numpy as np

    sim = simulate_cohort(120, seed=21)
    raw = {}
    for k, v in sim.domains.items():
        v = v.astype("string").reset_index(drop=True)
        v.insert(0, "ROWNUM", np.arange(1, len(v) + 1))
        raw[k] = v
    frames, issues = check_cohort_domains(raw, label="sim")
    assert not [i for i in issues if i.severity == "error"]
    folder = tmp_path_factory.mktemp("norm")
    write_normalised_parquet(frames, folder, dictionary=DrugDictionary.load(None), partitions=2)
    h = derive_cohort_history(frames)
    ref = emulate_target_trial(h, frames, eligibility=RULE).lines
    return folder, ref


def _same(ref: pd.DataFrame, other: pd.DataFrame, suffix: str) -> None:
    m = ref.merge(other, on=["USUBJID", "LINENUM"], how="outer", indicator=True, suffixes=("", suffix))
    assert (m["_merge"] == "both").all(), "the same lines"
    assert (pd.to_datetime(m["LOTSTDT"]) == pd.to_datetime(m[f"LOTSTDT{suffix}"])).all()
    for c in FLAGS:
        a = m[c].astype("string").fillna("missing")
        b = m[f"{c}{suffix}"].astype("string").fillna("missing")
        assert (a == b).all(), f"{c}: {int((a != b).sum())} lines differ"
    assert m["TCRFL"].eq("Y").sum() > 10 and m["ELIGFL"].eq("Y").sum() > 0  # not vacuous


def test_duckdb_sql_pass_equals_pandas(cohort, tmp_path):
    folder, ref = cohort
    sql = derive_status_sql(folder, eligibility=RULE)
    _same(ref, sql, "_S")
    out = derive_status_sql(folder, eligibility=RULE, out=tmp_path / "status.parquet")  # out of core
    back = pd.read_parquet(out)
    assert len(back) == len(sql)
    assert (back["ELIGFL"].to_numpy() == sql["ELIGFL"].to_numpy()).all()
    assert (pd.to_datetime(back["LOTSTDT"]).to_numpy() == pd.to_datetime(sql["LOTSTDT"]).to_numpy()).all()


def test_dask_local_cluster_equals_pandas(cohort):
    distributed = pytest.importorskip("distributed")
    folder, ref = cohort
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dk = derive_status_dask(folder, eligibility=RULE, client=client)
    _same(ref, dk, "_D")
