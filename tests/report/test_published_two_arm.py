"""BOSTON's [published] keys map to the results.json ``comparison`` (data contract v2)."""

from __future__ import annotations

from mmtrial.protocol.model import Protocol
from mmtrial.report.published import PUBLISHED_ITEMS, format_computed

#: a results.json comparison shaped as the data contract's example (values invented for the test)
RESULTS = {"comparison": {
    "experimental": "SVD", "control": "VD",
    "PFS": {"hr": 0.7023, "hr_ci": [0.531, 0.928], "p_logrank": 0.00751,
            "median": {"SVD": 13.93, "VD": 9.456}},
    "ORR": {"x": {"SVD": 149, "VD": 129}, "n": {"SVD": 195, "VD": 207}, "p": 0.00123},
}}
ITEMS = {it.key: it for it in PUBLISHED_ITEMS}


def test_boston_comparison_keys_have_mappings():
    keys = set(Protocol.load("boston").published)
    mapped = {"itt_n_svd", "itt_n_vd", "median_pfs_months_svd", "median_pfs_months_vd", "pfs_hr", "pfs_hr_ci",
              "pfs_p", "orr_pct_svd", "orr_pct_vd", "orr_p"}
    assert mapped <= keys
    assert mapped <= set(ITEMS)


def test_comparison_values_are_formatted_as_in_the_paper():
    # ORR 149/195 = 76.41% -> 76.4 and 129/207 = 62.32% -> 62.3 (Grosicki 2020 counts; boston.toml)
    got = {k: format_computed(ITEMS[k], RESULTS) for k in
           ("itt_n_svd", "itt_n_vd", "orr_pct_svd", "orr_pct_vd", "median_pfs_months_vd", "pfs_hr", "pfs_hr_ci",
            "pfs_p", "orr_p")}
    assert got == {"itt_n_svd": "195", "itt_n_vd": "207", "orr_pct_svd": "76.4", "orr_pct_vd": "62.3",
                   "median_pfs_months_vd": "9.5", "pfs_hr": "0.70", "pfs_hr_ci": "(0.53, 0.93)",
                   "pfs_p": "0.0075", "orr_p": "0.0012"}


def test_missing_comparison_is_not_computed():
    assert format_computed(ITEMS["pfs_hr"], {}) == "not computed"
