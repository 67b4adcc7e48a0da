"""Confirmation and best overall response (derive/confirm.py) on category sequences.

Expected values from Durie BGM et al., Leukemia 2006;20:1467-1473, Table footnote ("All response
categories require two consecutive assessments made at any time before the institution of any new
therapy"; domain.md 2.3, tag C) and Kumar S et al., Lancet Oncol 2016 (SD needs no confirmation;
PD by new lesion and marrow need no repeat; the response date is the first of the pair; tag U).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.confirm import (
    ConfirmationRule,
    compute_confirmed_rank,
    derive_best_overall_response,
)
from mmtrial.derive.response import RANK, RANK_NAMES


def confirmed(seq: list[str], *, noconf=None, marrow=False, days=None, rule=None) -> list[str]:
    rule = rule or ConfirmationRule()
    n = len(seq)
    rank = np.array([RANK[c] for c in seq])
    nc = np.zeros(n, bool) if noconf is None else np.array(noconf)
    d = np.arange(1, n + 1) * 28.0 if days is None else np.array(days, float)
    out = compute_confirmed_rank(np.zeros(n, "int64"), rank, nc, np.full(n, marrow), d, rule=rule)
    return list(RANK_NAMES[out])


@pytest.mark.parametrize(("seq", "expected"), [
    (["PR", "PR"], ["PR", "SD"]),  # pair confirms PR at the first; the last has nothing to confirm it
    (["CR", "VGPR"], ["VGPR", "SD"]),  # confirmed at the lower of the two
    (["VGPR", "CR", "CR"], ["VGPR", "CR", "SD"]),
    (["PR", "SD"], ["SD", "SD"]),  # unconfirmed response still meets SD
    (["PR", "PD", "PD"], ["SD", "PD", "NE"]),  # unconfirmed response followed by (confirmed) PD
    (["PR", "NE", "PR"], ["SD", "NE", "SD"]),  # NE breaks "consecutive" (default)
    (["MR", "PR"], ["MR", "SD"]),
    (["SD"], ["SD"]),  # SD needs no confirmation
])
def test_response_confirmation_by_next_assessment(seq, expected):
    assert confirmed(seq) == expected


def test_pd_confirmed_by_next_pd_else_not_counted():
    assert confirmed(["PD", "PD"]) == ["PD", "NE"]  # the second confirms the first; nothing confirms it
    assert confirmed(["PD", "SD"]) == ["NE", "SD"]
    assert confirmed(["PD", "NE", "PD"]) == ["NE", "NE", "NE"]  # lone last PD not confirmed (default)


def test_last_pd_acceptance_option():
    assert confirmed(["SD", "PD"]) == ["SD", "NE"]
    assert confirmed(["SD", "PD"], rule=ConfirmationRule(accept_unconfirmed_last_pd=True)) == ["SD", "PD"]


def test_pd_by_new_lesion_needs_no_confirmation():
    assert confirmed(["PD", "SD"], noconf=[True, False]) == ["PD", "SD"]


def test_marrow_route_pr_needs_no_repeat_but_cr_does():
    assert confirmed(["PR"], marrow=True) == ["PR"]
    assert confirmed(["CR"], marrow=True) == ["SD"]
    assert confirmed(["PR"], marrow=True, rule=ConfirmationRule(marrow_route_needs_confirmation=True)) == ["SD"]


def test_ne_skipped_when_option_off():
    rule = ConfirmationRule(ne_breaks_confirmation=False)
    assert confirmed(["PR", "NE", "PR"], rule=rule) == ["PR", "NE", "SD"]


def test_no_confirmation_option():
    assert confirmed(["PR", "PD"], rule=ConfirmationRule(consecutive=1)) == ["PR", "PD"]


def test_sd_min_days_option():
    # SD must be at least sd_min_days after first dose (some SAPs: 42 days); day 28 -> NE, day 56 -> SD
    assert confirmed(["SD", "SD"], rule=ConfirmationRule(sd_min_days=42)) == ["NE", "SD"]


def test_rule_validates_itself():
    with pytest.raises(ValueError, match="consecutive must be 1 or 2; got 3"):
        ConfirmationRule(consecutive=3)


def _ovr(rows):
    return pd.DataFrame(rows, columns=["SUBJ", "ADT_DAY", "RANK"]).assign(NOCONF=False, RSPROUTE="M-PROTEIN")


def test_bor_is_best_before_first_confirmed_pd():
    # subject 0: SD, PD, PD, PR, PR (a later "response" after confirmed PD does not count): BOR SD
    # subject 1: MR, PR, PR, VGPR: BOR PR dated at the first of the confirming pair (day 56)
    rows = [(0, 28, 2), (0, 56, 1), (0, 84, 1), (0, 112, 4), (0, 140, 4),
            (1, 28, 3), (1, 56, 4), (1, 84, 4), (1, 112, 5)]
    _, s = derive_best_overall_response(_ovr(rows), np.zeros(3), np.full(3, np.nan))
    assert list(s["BOR"]) == ["SD", "PR", "NE"]
    assert list(s["BORDT"][:2]) == [28, 56] and np.isnan(s["BORDT"][2])
    assert s["PDDT"][0] == 56 and np.isnan(s["PDDT"][1])
    assert s["RSPDT"][1] == 56 and s["MRDT"][1] == 28
    assert s["LSTADQDT"][0] == 56 and s["LSTADQDT"][1] == 112  # up to PD; last non-NE otherwise


def test_new_therapy_cut_same_day_counts_option():
    rows = [(0, 28, 4), (0, 56, 4)]
    nact = np.array([56.0])
    _, s = derive_best_overall_response(_ovr(rows), np.zeros(1), nact)
    assert s["BOR"][0] == "PR"
    _, s2 = derive_best_overall_response(_ovr(rows), np.zeros(1), nact,
                                         rule=ConfirmationRule(new_therapy_same_day_counts=False))
    assert s2["BOR"][0] == "SD"
