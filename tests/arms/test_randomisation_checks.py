"""Input checks of a randomised two-arm study (sdtm/randomisation.py; docs/input-checks.md): each
rule fires on a study broken in one place and names the domain, variable, row and USUBJID; suppdm
is read in every format the reader supports; a single-arm protocol ignores all of it."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.protocol.model import Protocol
from mmtrial.sdtm.check import load_study
from support.two_arm_study import (
    STRATA,
    make_two_arm_domains,
    two_arm_protocol_text,
    write_two_arm_study,
)


@pytest.fixture(scope="module")
def base():
    return make_two_arm_domains(n=24, seed=5)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    p = tmp_path_factory.mktemp("proto") / "two.toml"
    p.write_text(two_arm_protocol_text(), "utf-8")
    return Protocol.load(p)


def _issues(tmp_path, domains, protocol, fmt="csv"):
    write_two_arm_study(tmp_path / "s", domains=domains, fmt=fmt)
    study, issues = load_study(tmp_path / "s", protocol=protocol)
    return study, issues


def _copy(base):
    return {k: v.copy() for k, v in base.items()}


def _errors(issues, rule):
    return [i for i in issues if i.rule == rule and i.severity == "error"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xpt", "json"])
def test_valid_study_in_every_suppdm_format(tmp_path, base, protocol, fmt):
    study, issues = _issues(tmp_path, _copy(base), protocol, fmt)
    assert [i.message() for i in issues if i.severity == "error"] == []
    supp = study.domains["suppdm"]
    assert set(supp["QNAM"]) == set(STRATA)
    got = supp.loc[supp["QNAM"] == "STRATLOT"].set_index("USUBJID")["QVAL"].sort_index()
    want = base["suppdm"].loc[base["suppdm"]["QNAM"] == "STRATLOT"].set_index("USUBJID")["QVAL"].sort_index()
    assert got.tolist() == want.tolist()


def test_stratum_missing_names_subject_and_factor(tmp_path, base, protocol):
    d = _copy(base)
    s = d["suppdm"]
    victim = s["USUBJID"].iloc[3]
    d["suppdm"] = s.loc[~((s["USUBJID"] == victim) & (s["QNAM"] == "STRATRISS"))]
    _, issues = _issues(tmp_path, d, protocol)
    e = _errors(issues, "STRATUM_MISSING")
    assert len(e) == 1
    assert (e[0].domain, e[0].variable, e[0].usubjid) == ("suppdm", "STRATRISS", victim)
    dm_row = int(d["dm"].index[d["dm"]["USUBJID"] == victim][0]) + 1
    assert e[0].row == dm_row


def test_stratum_blank_value(tmp_path, base, protocol):
    d = _copy(base)
    d["suppdm"].loc[0, "QVAL"] = ""
    _, issues = _issues(tmp_path, d, protocol)
    e = [i for i in _errors(issues, "STRATUM_MISSING") if i.variable == "QVAL"]
    assert len(e) == 1 and e[0].row == 1 and e[0].usubjid == d["suppdm"].loc[0, "USUBJID"]


def test_suppdm_absent_when_protocol_stratifies(tmp_path, base, protocol):
    d = _copy(base)
    del d["suppdm"]
    _, issues = _issues(tmp_path, d, protocol)
    e = [i for i in _errors(issues, "MISSING_DOMAIN") if i.domain == "suppdm"]
    assert len(e) == 1 and "STRATPI" in e[0].problem


def test_arm_unknown(tmp_path, base, protocol):
    d = _copy(base)
    d["dm"].loc[2, "ARMCD"] = "XYZ"
    _, issues = _issues(tmp_path, d, protocol)
    e = _errors(issues, "ARM_UNKNOWN")
    assert len(e) == 1 and (e[0].domain, e[0].variable, e[0].row, e[0].value) == ("dm", "ARMCD", 3, "XYZ")
    assert e[0].usubjid == d["dm"].loc[2, "USUBJID"]


def test_actarm_unknown_and_nottrt_allowed(tmp_path, base, protocol):
    d = _copy(base)
    d["dm"].loc[1, "ACTARMCD"] = "SVX"
    d["dm"].loc[4, "ACTARMCD"] = "NOTTRT"
    _, issues = _issues(tmp_path, d, protocol)
    e = _errors(issues, "ACTARM_UNKNOWN")
    assert [(i.row, i.value) for i in e] == [(2, "SVX")]


def test_randomized_missing_and_repeated(tmp_path, base, protocol):
    d = _copy(base)
    ds = d["ds"]
    rand = ds.index[ds["DSDECOD"] == "RANDOMIZED"]
    gone = ds.loc[rand[0], "USUBJID"]
    twice = ds.loc[[rand[1]]]
    d["ds"] = pd.concat([ds.drop(index=rand[0]), twice.assign(DSSTDTC="2016-01-01")], ignore_index=True)
    _, issues = _issues(tmp_path, d, protocol)
    miss = _errors(issues, "RANDOMIZED_MISSING")
    assert [(i.domain, i.usubjid) for i in miss] == [("ds", gone)]
    rep = _errors(issues, "RANDOMIZED_REPEATED")
    assert len(rep) == 1 and rep[0].usubjid == twice["USUBJID"].iloc[0] and rep[0].row == len(d["ds"])


def test_treated_before_randomisation(tmp_path, base, protocol):
    d = _copy(base)
    ds = d["ds"]
    i = ds.index[ds["DSDECOD"] == "RANDOMIZED"][5]
    subj = ds.loc[i, "USUBJID"]
    first = d["ex"].loc[d["ex"]["USUBJID"] == subj, "EXSTDTC"].min()
    ds.loc[i, "DSSTDTC"] = (pd.Timestamp(first[:10]) + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    _, issues = _issues(tmp_path, d, protocol)
    e = _errors(issues, "TREATED_BEFORE_RANDOMISATION")
    assert e and {i.usubjid for i in e} == {subj} and all(i.domain == "ex" and i.variable == "EXSTDTC" for i in e)


def test_single_arm_protocol_ignores_two_arm_rules(tmp_path, base):
    """The STORM protocol (single arm): suppdm is read, but no randomisation rule applies."""
    d = _copy(base)
    d["dm"].loc[2, "ARMCD"] = "XYZ"
    del d["suppdm"]
    _, issues = _issues(tmp_path, d, Protocol.load("storm"))
    rules = {"ARM_UNKNOWN", "ACTARM_UNKNOWN", "RANDOMIZED_MISSING", "RANDOMIZED_REPEATED",
             "TREATED_BEFORE_RANDOMISATION", "STRATUM_MISSING"}
    assert not [i for i in issues if i.rule in rules]
