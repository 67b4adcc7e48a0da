"""The PFS forest plot's subgroups come from the protocol's ``[forest]`` section (docs/protocol.md):
defaults equal to BOSTON's Figure 2 (age 65, one prior line vs more, HRCYTOFL, LENREFFL/PIREFFL);
another cut-off changes the subgroups; bad values are protocol errors naming the key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.errors import ProtocolError
from mmtrial.protocol.model import Protocol
from mmtrial.steps.comparison import (
    ComparisonOptions,
    compute_subgroup_levels,
    compute_subgroups_pfs,
    forest_footnote,
    forest_options,
)
from support.two_arm_study import two_arm_protocol_text


def _protocol(tmp_path, extra: str = "") -> Protocol:
    p = tmp_path / "two.toml"
    p.write_text(two_arm_protocol_text() + "\n" + extra, "utf-8")
    return Protocol.load(p)


def _adsl(ages) -> pd.DataFrame:
    n = len(ages)
    return pd.DataFrame({"USUBJID": [f"S{i:02d}" for i in range(n)], "AGE": ages,
                         "ARMCD": np.where(np.arange(n) % 2 == 0, "EXP", "CTL"), "ITTFL": "Y",
                         "NLINES": (np.arange(n) % 4) + 1})


def test_defaults_are_the_previous_fixed_options(tmp_path):
    assert forest_options(_protocol(tmp_path)) == ComparisonOptions()
    assert ComparisonOptions() == ComparisonOptions(65, 2, "HRCYTOFL", ("LENREFFL", "PIREFFL"))


def test_age_70_in_the_protocol_changes_the_age_subgroups(tmp_path):
    opts = forest_options(_protocol(tmp_path, "[forest]\nage_cutoff = 70\nnlines_cutoff = 3\n"))
    assert opts.age_cutoff == 70 and opts.nlines_cutoff == 3
    adsl = _adsl([60, 67, 72, np.nan])
    age = {v: lv for v, _, lv in compute_subgroup_levels(adsl, [], opts)}["AGE"]
    default = {v: lv for v, _, lv in compute_subgroup_levels(adsl, [], ComparisonOptions())}["AGE"]
    # hand-worked: 67 is >= 65 but < 70; a missing age is in no level
    assert default.tolist() == ["<65", ">=65", ">=65", pd.NA]
    assert age.tolist() == ["<70", "<70", ">=70", pd.NA]
    lines = {v: lv for v, _, lv in compute_subgroup_levels(adsl, [], opts)}["NLINES"]
    assert lines.tolist() == ["<3", "<3", ">=3", ">=3"]  # NLINES 1, 2, 3, 4


def test_subgroup_counts_follow_the_cutoff(tmp_path):
    rng = np.random.default_rng(4)
    n = 60
    adsl = _adsl(rng.integers(50, 85, n).astype(float))
    adtte = pd.DataFrame({"USUBJID": adsl["USUBJID"], "PARAMCD": "PFS",
                          "AVAL": rng.integers(10, 400, n).astype(float), "CNSR": rng.integers(0, 2, n)})
    for cut in (65, 70):
        opts = ComparisonOptions(age_cutoff=cut)
        rows = compute_subgroups_pfs(adsl, adtte, experimental="EXP", strata=[], ties="breslow", level=0.95,
                                     opts=opts)
        n_by = {r["level"]: r["n"] for r in rows if r["subgroup"] == "Age"}
        assert n_by == {f"<{cut}": int((adsl["AGE"] < cut).sum()), f">={cut}": int((adsl["AGE"] >= cut).sum())}


def test_footnote_prints_the_cutoffs():
    text = forest_footnote(ComparisonOptions(age_cutoff=70, refractory_vars=("TCRFL",)))
    assert "age < 70 vs >= 70 years" in text and "TCRFL" in text and "[forest]" in text


@pytest.mark.parametrize(("extra", "key"), [("[forest]\nage_cutoff = 0\n", "forest.age_cutoff"),
                                            ("[forest]\nnlines_cutoff = 1\n", "forest.nlines_cutoff"),
                                            ("[forest]\nage_cut = 70\n", "forest.age_cut")])
def test_bad_forest_options_are_protocol_errors(tmp_path, extra, key):
    with pytest.raises(ProtocolError) as e:
        _protocol(tmp_path, extra)
    assert key in str(e.value)


def test_prior_lines_subgroup_that_repeats_a_stratum_is_shown_once():
    """BOSTON stratifies by 1 vs > 1 prior lines (Grosicki 2020, Figure 2 shows it once): the derived
    NLINES < 2 / >= 2 subgroup is the same partition, so only the stratum is listed; when the
    stratum disagrees with NLINES for one subject (a stratification error) both are shown."""
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C", "D"], "NLINES": [1, 2, 3, 1],
                         "STRATLOT": ["1", ">1", ">1", "1"]})
    names = [v for v, _, _ in compute_subgroup_levels(adsl, ["STRATLOT"], ComparisonOptions())]
    assert names == ["STRATLOT"]
    adsl.loc[3, "STRATLOT"] = ">1"  # misstratified subject
    names = [v for v, _, _ in compute_subgroup_levels(adsl, ["STRATLOT"], ComparisonOptions())]
    assert names == ["STRATLOT", "NLINES"]
