"""ADAE derivation (mmtrial.derive.adae).

Expected values: the TEAE definition of FDA's Standard Safety Tables and Figures IG (2025,
section 2.2) with the protocol window (STORM: 30 days after the last dose, storm.toml [safety]),
hand-worked day by day; CDISC CT for AEACN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmtrial.derive.adae import TeaeOptions, derive_adae
from mmtrial.sdtm.issues import StudyInputError

ADSL = pd.DataFrame({
    "USUBJID": ["A", "B"],
    "TRTSDT": pd.to_datetime(["2020-01-10", pd.NaT]),
    "TRTEDT": pd.to_datetime(["2020-02-09", pd.NaT]),
})


def _ae(rows):
    df = pd.DataFrame(rows, columns=["USUBJID", "AEDECOD", "AEBODSYS", "AESTDT", "AETOXGR", "AEACN"])
    df["AESTDT"] = pd.to_datetime(df["AESTDT"])
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return df


def test_teae_window_first_dose_to_last_dose_plus_30_days():
    # TRTSDT 2020-01-10, TRTEDT 2020-02-09: onset 01-09 no; 01-10 yes; 03-10 (= +30) yes; 03-11 no
    ae = _ae([
        ("A", "Nausea", "GI", "2020-01-09", 1, None),
        ("A", "Nausea", "GI", "2020-01-10", 1, None),
        ("A", "Fatigue", "GEN", "2020-03-10", 2, None),
        ("A", "Fatigue", "GEN", "2020-03-11", 2, None),
    ])
    out = derive_adae(ae, ADSL)
    assert out["TRTEMFL"].tolist() == ["", "Y", "Y", ""]
    out7 = derive_adae(ae, ADSL, options=TeaeOptions(window_days=0))
    assert out7["TRTEMFL"].tolist() == ["", "Y", "", ""]


def test_teae_untreated_subject_never_emergent_and_missing_onset_policy():
    ae = _ae([("B", "Nausea", "GI", "2020-01-20", 1, None), ("A", "Rash", "SKIN", None, 1, None)])
    assert derive_adae(ae, ADSL)["TRTEMFL"].tolist() == ["", "Y"]
    assert derive_adae(ae, ADSL, options=TeaeOptions(missing_onset="not_emergent"))["TRTEMFL"].tolist() == ["", ""]


def test_worst_grade_flag_one_record_per_subject_and_pt_highest_grade_earliest():
    ae = _ae([
        ("A", "Nausea", "GI", "2020-01-12", 2, "DOSE NOT CHANGED"),
        ("A", "Nausea", "GI", "2020-01-20", 3, "DRUG INTERRUPTED"),
        ("A", "Nausea", "GI", "2020-01-25", 3, "DOSE REDUCED"),
        ("A", "Fatigue", "GEN", "2020-01-12", 1, "DRUG WITHDRAWN"),
    ])
    out = derive_adae(ae, ADSL)
    assert out["AWGRPTFL"].tolist() == ["", "Y", "", "Y"]
    assert out["AINTFL"].tolist() == ["", "Y", "", ""]
    assert out["ARDFL"].tolist() == ["", "", "Y", ""]
    assert out["AWDFL"].tolist() == ["", "", "", "Y"]


def test_invalid_grade_and_action_are_errors_naming_row():
    ae = _ae([("A", "Nausea", "GI", "2020-01-12", 7, "STOPPED")])
    with pytest.raises(StudyInputError) as e:
        derive_adae(ae, ADSL)
    msg = str(e.value)
    assert "AETOXGR = '7'" in msg and "AEACN = 'STOPPED'" in msg and "row 1" in msg


def test_fatal_flag_from_outcome_or_grade_5():
    ae = _ae([("A", "Sepsis", "INF", "2020-01-12", 5, None), ("A", "Pneumonia", "INF", "2020-01-13", 4, None)])
    ae["AEOUT"] = [None, "FATAL"]
    out = derive_adae(ae, ADSL)
    assert out["AEFATFL"].tolist() == ["Y", "Y"]


# issue 15 (seventh pass): ADAE's flags are built by Arrow from a mask and its text variables are
# taken as they are when already pandas' text dtype. Oracle: the former expressions (commit
# 8f7c1b5), np.where(mask, "Y", "") and the object arrays of ``.astype("string").str.<f>()``,
# as pandas infers them back into a frame.
@given(st.lists(st.one_of(st.none(), st.sampled_from(["y", "Y", " nausea ", "FATAL", "", "Drug Withdrawn"])),
                min_size=1, max_size=30), st.sampled_from(["str", object]))
def test_flags_and_text_variables_equal_the_former_expressions(values, dtype):
    from mmtrial.derive.adae import _text, _y

    col = pd.Series(values, dtype=dtype, index=np.arange(len(values)) * 2)
    mask = col.fillna("").to_numpy(dtype=object) == "Y"
    want = pd.DataFrame({"F": np.where(mask, "Y", "")})["F"]
    pd.testing.assert_series_equal(pd.DataFrame({"F": _y(mask)})["F"], want, check_exact=True)
    for how, old in [(None, lambda c: c.to_numpy()), ("strip", lambda c: c.astype("string").str.strip().to_numpy()),
                     ("upper", lambda c: c.astype("string").str.upper().to_numpy())]:
        got = pd.DataFrame({"T": _text(col, how, old)})["T"]
        pd.testing.assert_series_equal(got, pd.DataFrame({"T": old(col)})["T"], check_exact=True)
