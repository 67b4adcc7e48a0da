"""Baseline values, measurable disease and route (derive/baseline.py).

Thresholds: IMWG measurable disease (Rajkumar 2011 / Kumar 2016; domain.md 2.4, tag U for the
1 g/dL IMWG serum value; the 0.5 g/dL default is the issue's RRMM-trial threshold): serum >= 0.5
g/dL, urine >= 200 mg/24h, involved FLC >= 10 mg/dL with abnormal ratio (normal 0.26-1.65);
marrow route >= 30% plasma cells (Durie 2006, domain.md 2.1, tag C).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.baseline import (
    MARKER_KEYS,
    MeasurableDisease,
    derive_baseline,
    derive_measurable_disease,
)


def base_frame(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    d = {f"BL_{k}": np.full(n, np.nan) for k in MARKER_KEYS}
    d.update({f"BL_{k}": np.asarray(v, float) for k, v in cols.items()})
    return pd.DataFrame(d)


def test_baseline_is_last_value_on_or_before_first_dose():
    labs = pd.DataFrame({"SUBJ": [0, 0, 0, 1], "KEY": [0, 0, 0, 0], "DAY": [90.0, 100.0, 101.0, 120.0],
                         "VAL": [3.0, 2.0, 1.0, 5.0], "ROWNUM": [1, 2, 3, 4]})
    b = derive_baseline(labs, np.array([100.0, 100.0]))
    assert b["BL_SPEP"][0] == 2.0 and b["BL_SPEP_ROW"][0] == 2  # day 100 = first-dose day counts
    assert np.isnan(b["BL_SPEP"][1])  # only a post-dose value
    bw = derive_baseline(labs.assign(DAY=[50.0, 60.0, 101.0, 120.0]), np.array([100.0, 100.0]),
                         criteria=MeasurableDisease(baseline_window_days=28))
    assert np.isnan(bw["BL_SPEP"][0])  # day 60 is 40 days before first dose: outside a 28-day window


def test_same_day_duplicates_later_row_wins():
    labs = pd.DataFrame({"SUBJ": [0, 0], "KEY": [0, 0], "DAY": [100.0, 100.0], "VAL": [2.0, 2.5],
                         "ROWNUM": [7, 8]})
    assert derive_baseline(labs, np.array([100.0]))["BL_SPEP"][0] == 2.5


@pytest.mark.parametrize(("cols", "route", "meas"), [
    ({"SPEP": [0.5]}, "M-PROTEIN", "Y"),
    ({"SPEP": [0.49]}, "NONE", "N"),
    ({"SPEP": [0.1], "UPEP": [200]}, "M-PROTEIN", "Y"),
    ({"SPEP": [0.1], "UPEP": [199]}, "NONE", "N"),
    ({"SPEP": [0.1], "KAPPA": [10.0], "LAMBDA": [1.0]}, "FLC", "Y"),  # involved kappa 10, ratio 10
    ({"SPEP": [0.1], "KAPPA": [9.9], "LAMBDA": [1.0]}, "NONE", "N"),
    ({"SPEP": [0.1], "KAPPA": [1.0], "LAMBDA": [20.0]}, "FLC", "Y"),  # lambda involved, ratio 0.05
    ({"SPEP": [0.1], "KAPPA": [16.5], "LAMBDA": [10.0]}, "NONE", "N"),  # ratio 1.65: normal
    ({"SPEP": [0.1], "BMPC": [30.0]}, "MARROW", "N"),
    ({"SPEP": [0.1], "BMPC": [29.9]}, "NONE", "N"),
    ({"SPEP": [2.0], "KAPPA": [50.0], "LAMBDA": [1.0]}, "M-PROTEIN", "Y"),  # M-protein first
])
def test_measurable_disease_and_route(cols, route, meas):
    b = derive_measurable_disease(base_frame(**cols))
    assert (b["RSPROUTE"][0], b["MEASFL"][0]) == (route, meas)


def test_dflc_is_involved_minus_uninvolved():
    b = derive_measurable_disease(base_frame(SPEP=[0.1, 0.1], KAPPA=[50.0, 1.0], LAMBDA=[1.0, 21.0]))
    assert list(b["BL_DFLC"]) == [49.0, 20.0] and list(b["BL_INVOLVED"]) == ["KAPPA", "LAMBDA"]


def test_marrow_counts_as_measurable_option():
    b = derive_measurable_disease(base_frame(BMPC=[40.0]),
                                  criteria=MeasurableDisease(marrow_counts_as_measurable=True))
    assert b["MEASFL"][0] == "Y"


def test_options_validate_themselves():
    with pytest.raises(ValueError, match="serum_mprotein_g_dl must be a positive number; got -1"):
        MeasurableDisease(serum_mprotein_g_dl=-1)
    with pytest.raises(ValueError, match="flc_ratio_normal"):
        MeasurableDisease(flc_ratio_normal=(2.0, 1.0))
