"""Waterfall at large n (issue 15): above MAX_BARS patients, runs of consecutive sorted patients.

Expected values worked by hand from the rule in ``aggregate_bars``'s docstring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.figures.waterfall import MAX_BARS, aggregate_bars, waterfall_figure


def test_runs_middle_value_and_majority_colour_by_hand():
    # 10 patients in 3 runs: edges round(0, 3.33, 6.67, 10) = 0, 3, 7, 10
    y = np.arange(10, 0, -1.0)
    bor = np.array(["PR"] * 6 + ["SD"] * 4, dtype=object)
    left, width, height, top = aggregate_bars(y, bor, 3)
    assert left.tolist() == [0, 3, 7] and width.tolist() == [3, 4, 3]
    assert height.tolist() == [9.0, 6.0, 2.0]  # values at indexes 1, 4, 8
    assert top.tolist() == ["PR", "PR", "SD"]  # run 2 holds PR, PR, PR, SD


def test_large_waterfall_draws_at_most_max_bars_and_says_so():
    rng = np.random.default_rng(0)
    n = 5 * MAX_BARS
    best = pd.DataFrame({"USUBJID": [f"S{i:05d}" for i in range(n)], "BOR": rng.choice(["PR", "SD", "PD"], n),
                         "PCHGPARM": "SPEP", "BEST_PCHG": rng.normal(-20, 60, n)})
    fig, alt = waterfall_figure(best)
    bars = fig.axes[0].collections[0]  # one collection of bars (figures/waterfall.add_column_bars)
    assert len(bars.get_paths()) == MAX_BARS
    assert "Aggregated" in alt and f"for {n} patients" in alt
