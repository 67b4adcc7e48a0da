"""Concordance of derived and assessor BOR (derive/concordance.py).

Kappa oracles: scikit-learn ``cohen_kappa_score`` (independent implementation of Cohen 1960 and,
with ``weights="linear"``, Cohen 1968) and a hand-worked 2x2 case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from mmtrial.derive.concordance import (
    compute_cohen_kappa,
    derive_assessor_bor,
    derive_concordance,
    extract_assessor_responses,
)
from mmtrial.derive.confirm import ConfirmationRule
from mmtrial.sdtm.issues import StudyInputError


def test_kappa_hand_worked_2x2():
    # table [[20, 5], [10, 15]]: p_o = 35/50 = 0.7; p_e = (25*30 + 25*20)/2500 = 0.5; kappa = 0.4
    a = np.array([0] * 25 + [1] * 25)
    b = np.array([0] * 20 + [1] * 5 + [0] * 10 + [1] * 15)
    k = compute_cohen_kappa(a, b, 2)
    assert k.kappa == pytest.approx(0.4) and k.observed == pytest.approx(0.7) and k.expected == pytest.approx(0.5)


@pytest.mark.parametrize("weights", ["none", "linear", "quadratic"])
def test_kappa_matches_sklearn(weights):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 8, 300)
    b = np.where(rng.random(300) < 0.6, a, rng.integers(0, 8, 300))
    ours = compute_cohen_kappa(a, b, 8, weights=weights).kappa
    ref = cohen_kappa_score(a, b, weights=None if weights == "none" else weights, labels=list(range(8)))
    assert ours == pytest.approx(ref, abs=1e-12)


def _rs(rows):
    return pd.DataFrame(rows, columns=["USUBJID", "RSTESTCD", "RSSTRESC", "RSEVAL", "RSDT"]).assign(
        RSCAT=None, ROWNUM=lambda d: np.arange(1, len(d) + 1))


def test_assessor_bor_uses_same_confirmation_rule():
    t = pd.Timestamp("2020-01-29")
    rs = _rs([("A", "OVRLRESP", "PR", "INDEPENDENT ASSESSOR", t), ("A", "OVRLRESP", "pr", "INDEPENDENT ASSESSOR",
              t + pd.Timedelta(days=28)),
              ("B", "OVRLRESP", "PR", "INDEPENDENT ASSESSOR", t), ("B", "OVRLRESP", "PD", "INDEPENDENT ASSESSOR",
              t + pd.Timedelta(days=28)),
              ("C", "BESTRSP", "VGPR", "INVESTIGATOR", t)])
    resp, _ = extract_assessor_responses(rs, pd.Index(["A", "B", "C"]))
    fd = np.full(3, float((pd.Timestamp("2020-01-01") - pd.Timestamp("1970-01-01")).days))
    bor = derive_assessor_bor(resp, fd, np.full(3, np.nan), rule=ConfirmationRule())
    # A: PR confirmed; B: unconfirmed PR then PD (last, accepted) -> SD; C: investigator BOR given
    assert list(bor["INDEPENDENT ASSESSOR"]) == [4, 2, -1]
    assert list(bor["INVESTIGATOR"]) == [-1, -1, 5]


def test_invalid_assessor_response_is_an_error():
    rs = _rs([("A", "OVRLRESP", "GOOD", "INVESTIGATOR", pd.Timestamp("2020-02-01"))])
    with pytest.raises(StudyInputError) as e:
        extract_assessor_responses(rs, pd.Index(["A"]))
    assert (e.value.issues[0].row, e.value.issues[0].value) == (1, "GOOD")


def test_concordance_table_and_disagreements():
    derived = np.array([4, 4, 2, 1, -1])
    assessed = np.array([4, 3, 2, 1, 4])
    c = derive_concordance(derived, assessed, np.array(list("ABCDE"), dtype=object))
    assert c["n"] == 4 and c["agree"] == 3 and c["disagree"] == ["B"]
    assert c["table"].loc["PR", "MR"] == 1 and c["table"].to_numpy().sum() == 4
    assert c["subjects"][("PR", "MR")] == ["B"]
