"""Lines of therapy: worked examples of Rajkumar, Richardson, San Miguel, Blood 2015;126:921-922
(domain.md 2.7, tag C) and the rule's documented options."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mmtrial.derive.drugs import DrugDictionary, derive_drug_exposure
from mmtrial.derive.lines import (
    DEFAULT_LINE_RULE,
    LineRule,
    derive_adlot,
    derive_lines_of_therapy,
    derive_regimens,
    derive_transplants,
)
from support.sweeps import examples

DICT = DrugDictionary.load()
CAT = "PRIOR ANTI-MYELOMA THERAPY"


def cm_rows(rows):
    """rows: (USUBJID, CMGRPID, CMTRT, start, end, reason, phase, link)."""
    df = pd.DataFrame(rows, columns=["USUBJID", "CMGRPID", "CMTRT", "CMSTDT", "CMENDT", "CMRSDISC",
                                     "CMSCAT", "CMLNKGRP"])
    df["CMCAT"] = CAT
    df["CMSTDT"] = pd.to_datetime(df["CMSTDT"])
    df["CMENDT"] = pd.to_datetime(df["CMENDT"])
    df["ROWNUM"] = range(1, len(df) + 1)
    return df


def pr_rows(rows):
    """rows: (USUBJID, PRTRT, date, link)."""
    df = pd.DataFrame(rows, columns=["USUBJID", "PRTRT", "PRSTDT", "PRLNKGRP"])
    df["PRSTDT"] = pd.to_datetime(df["PRSTDT"])
    df["ROWNUM"] = range(1, len(df) + 1)
    return df


ASCT = "AUTOLOGOUS STEM CELL TRANSPLANT"


def lines_of(cm, pr=None, rule=DEFAULT_LINE_RULE):
    exp, _ = derive_drug_exposure(cm, dictionary=DICT)
    sct = derive_transplants(pr if pr is not None else pr_rows([]), rule=rule)
    items = derive_regimens(exp, sct)
    return derive_lines_of_therapy(items, exp, rule=rule)


def nlines(cm, pr=None, rule=DEFAULT_LINE_RULE):
    ln = lines_of(cm, pr, rule)
    return ln.groupby("USUBJID")["LINENUM"].max().to_dict()


def test_rd_then_bortezomib_added_for_inadequate_response_is_two_lines():
    # Rajkumar 2015 worked example: Rd, then bortezomib added for inadequate response (RVd) = 2 lines
    cm = cm_rows([
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-04-30", "INADEQUATE RESPONSE", None, None),
        ("S1", "R1", "DEXAMETHASONE", "2015-01-01", "2015-04-30", "INADEQUATE RESPONSE", None, None),
        ("S1", "R2", "LENALIDOMIDE", "2015-05-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R2", "BORTEZOMIB", "2015-05-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R2", "DEXAMETHASONE", "2015-05-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
    ])
    assert nlines(cm) == {"S1": 2}


def test_bortezomib_added_as_overlapping_regimen_is_a_new_line():
    # Rajkumar 2015 rule 2 (unplanned addition): Rd continues while bortezomib is recorded as its
    # own overlapping regimen -> the addition starts line 2
    cm = cm_rows([
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R1", "DEXAMETHASONE", "2015-01-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R2", "VELCADE", "2015-05-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
    ])
    ln = lines_of(cm)
    assert ln.set_index("ITEMID")["LINENUM"].to_dict() == {"R1": 1, "R2": 2}


def test_rd_stopped_for_toxicity_then_vcd_and_planned_transplant_is_two_lines_linked():
    # Rajkumar 2015 worked example: Rd stopped for toxicity, switched to VCD + planned SCT = 2 lines
    cm = cm_rows([
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-02-15", "TOXICITY", None, None),
        ("S1", "R1", "DEXAMETHASONE", "2015-01-01", "2015-02-15", "TOXICITY", None, None),
        ("S1", "R2", "BORTEZOMIB", "2015-03-01", "2015-06-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R2", "CYCLOPHOSPHAMIDE", "2015-03-01", "2015-06-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R2", "DEXAMETHASONE", "2015-03-01", "2015-06-30", "PLANNED", "INDUCTION", "P1"),
    ])
    pr = pr_rows([("S1", ASCT, "2015-08-01", "P1")])
    ln = lines_of(cm, pr)
    assert ln["LINENUM"].tolist() == [1, 2, 2]
    assert ln["LNRULE"].tolist() == ["NEW", "NEW", "LINKED"]


def test_vcd_then_transplant_without_link_is_inferred_planned():
    # same example without a declared link group: VCD stopped as PLANNED, SCT 31 days later
    # (<= planned_gap_days 120) -> inferred plan, still 2 lines; with infer_planned=False -> 3
    cm = cm_rows([
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-02-15", "TOXICITY", None, None),
        ("S1", "R2", "BORTEZOMIB", "2015-03-01", "2015-06-30", "PLANNED", None, None),
    ])
    pr = pr_rows([("S1", ASCT, "2015-07-31", None)])
    assert nlines(cm, pr) == {"S1": 2}
    assert nlines(cm, pr, LineRule(infer_planned=False)) == {"S1": 3}


def test_unplanned_lenalidomide_six_months_after_transplant_is_new_line():
    # Rajkumar 2015 worked example: lenalidomide started 6 months after SCT for rising paraprotein
    cm = cm_rows([
        ("S1", "R1", "BORTEZOMIB", "2015-01-01", "2015-04-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-04-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R1", "DEXAMETHASONE", "2015-01-01", "2015-04-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R2", "LENALIDOMIDE", "2016-01-01", "2016-09-30", "PROGRESSIVE DISEASE", None, None),
    ])
    pr = pr_rows([("S1", ASCT, "2015-06-01", "P1")])
    ln = lines_of(cm, pr)
    assert ln[["ITEMID", "LINENUM"]].values.tolist() == [["R1", 1], ["SCT1", 1], ["R2", 2]]


def test_planned_induction_transplant_consolidation_maintenance_is_one_line():
    # Rajkumar 2015: 3-6 cycles induction -> SCT -> consolidation -> lenalidomide maintenance = 1 line;
    # here declared by phases only (no link group), gaps < 120 days
    cm = cm_rows([
        ("S1", "R1", "BORTEZOMIB", "2015-01-01", "2015-04-30", "COMPLETED", "INDUCTION", None),
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-04-30", "COMPLETED", "INDUCTION", None),
        ("S1", "R2", "BORTEZOMIB", "2015-08-01", "2015-09-30", "COMPLETED", "CONSOLIDATION", None),
        ("S1", "R2", "LENALIDOMIDE", "2015-08-01", "2015-09-30", "COMPLETED", "CONSOLIDATION", None),
        ("S1", "R3", "LENALIDOMIDE", "2015-10-15", "2017-12-31", "PROGRESSIVE DISEASE", "MAINTENANCE", None),
    ])
    pr = pr_rows([("S1", ASCT, "2015-06-01", None)])
    ln = lines_of(cm, pr)
    assert ln["LINENUM"].tolist() == [1, 1, 1, 1]
    assert ln["LNRULE"].tolist() == ["NEW", "PLANNED", "PLANNED", "PLANNED"]


def test_planned_tandem_transplant_is_one_line_and_later_second_transplant_is_new_line():
    # Rajkumar 2015 rule 3: each SCT in a patient with >1 SCT is a new line, except a planned tandem
    # with a predefined interval ("e.g. 3 months"): 90 days apart -> tandem; 2 years -> new line
    cm = cm_rows([
        ("S1", "R1", "BORTEZOMIB", "2015-01-01", "2015-04-30", "PLANNED", "INDUCTION", "P1"),
        ("S2", "R1", "BORTEZOMIB", "2015-01-01", "2015-04-30", "PLANNED", "INDUCTION", "P1"),
    ])
    pr = pr_rows([
        ("S1", ASCT, "2015-06-01", "P1"), ("S1", ASCT, "2015-08-30", "P1"),
        ("S2", ASCT, "2015-06-01", "P1"), ("S2", ASCT, "2017-06-01", "P1"),
    ])
    assert nlines(cm, pr) == {"S1": 1, "S2": 2}
    # the tandem interval is an option: 60 days makes the 90-day second transplant a new line
    assert nlines(cm, pr, LineRule(tandem_max_days=60)) == {"S1": 2, "S2": 2}


def test_dropping_a_drug_for_toxicity_continues_the_line():
    # Rajkumar 2015 rule 1: a regimen is discontinued only when all its drugs are stopped;
    # VRd -> Rd after neuropathy (bortezomib dropped) is the same line
    cm = cm_rows([
        ("S1", "R1", "BORTEZOMIB", "2015-01-01", "2015-03-31", "TOXICITY", None, None),
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-03-31", "TOXICITY", None, None),
        ("S1", "R2", "LENALIDOMIDE", "2015-04-01", "2015-12-31", "PROGRESSIVE DISEASE", None, None),
    ])
    assert lines_of(cm)["LNRULE"].tolist() == ["NEW", "CONTINUATION"]


def test_same_regimen_restarted_after_gap_is_new_line_at_31_days_not_at_30():
    # LineRule.same_regimen_gap_days = 30 (documented option): restart 30 days after -> same line,
    # 31 days after -> a planned observation period interrupted (Rajkumar 2011) -> new line
    def case(start):
        return cm_rows([
            ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-03-01", "COMPLETED", None, None),
            ("S1", "R2", "LENALIDOMIDE", start, "2015-12-31", "PROGRESSIVE DISEASE", None, None),
        ])
    assert nlines(case("2015-03-31")) == {"S1": 1}
    assert nlines(case("2015-04-01")) == {"S1": 2}


def test_subset_regimen_after_progression_is_new_line():
    # Rajkumar 2011: a planned course modified as a result of progression starts a new line
    cm = cm_rows([
        ("S1", "R1", "BORTEZOMIB", "2015-01-01", "2015-03-31", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R1", "DEXAMETHASONE", "2015-01-01", "2015-03-31", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R2", "DEXAMETHASONE", "2015-04-01", "2015-05-31", "PROGRESSIVE DISEASE", None, None),
    ])
    assert nlines(cm) == {"S1": 2}


def test_combination_recorded_as_two_regimens_same_start_is_one_line():
    cm = cm_rows([
        ("S1", "R1", "DARATUMUMAB", "2016-01-01", "2016-06-30", "PROGRESSIVE DISEASE", None, None),
        ("S1", "R2", "POMALIDOMIDE", "2016-01-01", "2016-06-30", "PROGRESSIVE DISEASE", None, None),
    ])
    assert lines_of(cm)["LNRULE"].tolist() == ["NEW", "SAME START"]


def test_adlot_one_row_per_line_with_regimens_drugs_and_reason():
    cm = cm_rows([
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-02-15", "TOXICITY", None, None),
        ("S1", "R2", "BORTEZOMIB", "2015-03-01", "2015-06-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R2", "DEXAMETHASONE", "2015-03-01", "2015-06-30", "PLANNED", "INDUCTION", "P1"),
        ("S1", "R3", "LENALIDOMIDE", "2015-09-01", "2016-06-30", "PROGRESSIVE DISEASE", "MAINTENANCE", "P1"),
    ])
    pr = pr_rows([("S1", ASCT, "2015-08-01", "P1")])
    lot = derive_adlot(lines_of(cm, pr))
    assert lot["LINENUM"].tolist() == [1, 2]
    row2 = lot.iloc[1]
    assert row2["REGIMENS"] == "R2;SCT1;R3"
    assert row2["DRUGS"] == "bortezomib;dexamethasone;lenalidomide"
    assert row2["LOTRSDSC"] == "PROGRESSIVE DISEASE"
    assert row2["NSCT"] == 1
    assert row2["LOTSTDT"] == pd.Timestamp("2015-03-01")
    assert row2["LOTENDT"] == pd.Timestamp("2016-06-30")


def test_missing_start_date_regimen_is_its_own_line_placed_last():
    cm = cm_rows([
        ("S1", "R1", "LENALIDOMIDE", "2015-01-01", "2015-02-15", "TOXICITY", None, None),
        ("S1", "R0", "MELPHALAN", None, None, None, None, None),
    ])
    ln = lines_of(cm)
    assert ln[["ITEMID", "LINENUM"]].values.tolist() == [["R1", 1], ["R0", 2]]


def test_line_rule_rejects_negative_gap():
    with pytest.raises(ValueError, match="same_regimen_gap_days"):
        LineRule(same_regimen_gap_days=-1)
    with pytest.raises(ValueError, match="unknown option"):
        LineRule.from_protocol({"gap": 3})


@settings(max_examples=examples(5, 10), deadline=None)
@given(st.permutations(list(range(6))), st.integers(min_value=0, max_value=400))
def test_line_numbers_do_not_depend_on_input_row_order_or_subject_partition(perm, offset):
    """A sample of examples by default; the full count under ``pytest --sweeps`` (tests/support/sweeps.py)."""
    # property (STYLE.md 7): row order does not matter; subjects derived alone = derived together
    base = pd.Timestamp("2014-01-01") + pd.Timedelta(days=offset)
    rows = []
    for s in ("A", "B"):
        for i, drug in enumerate(["BORTEZOMIB", "LENALIDOMIDE", "LENALIDOMIDE"]):
            st_ = base + pd.Timedelta(days=100 * i)
            rows.append((s, f"R{i}", drug, st_, st_ + pd.Timedelta(days=60), "COMPLETED", None, None))
    cm = cm_rows(rows)
    ref = lines_of(cm).set_index(["USUBJID", "ITEMID"])["LINENUM"].sort_index()
    shuffled = cm.iloc[list(perm)].reset_index(drop=True)
    got = lines_of(shuffled).set_index(["USUBJID", "ITEMID"])["LINENUM"].sort_index()
    pd.testing.assert_series_equal(ref, got)
    alone = lines_of(cm.loc[cm["USUBJID"] == "A"]).set_index(["USUBJID", "ITEMID"])["LINENUM"].sort_index()
    pd.testing.assert_series_equal(ref.loc[["A"]], alone)


_REASONS = st.sampled_from([None, "PROGRESSIVE DISEASE", "TOXICITY", "PLANNED", "COMPLETED"])
_PHASES = st.sampled_from([None, "INDUCTION", "CONSOLIDATION", "MAINTENANCE"])
_LINKS = st.sampled_from([None, "P1", "P2"])


@settings(max_examples=examples(5, 200), deadline=None)
@example(cm_spec=[("A", 0, "BORTEZOMIB", 0, 0, True, None, None, None)], pr_spec=[], infer=True,
         tandem_link=False)  # no dated end in the whole study (crashed before: IndexError in derive_regimens)
@given(
    st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 5),
                       st.sampled_from(["BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE", "DARATUMUMAB"]),
                       st.sampled_from(range(0, 720, 45)), st.integers(0, 200), st.booleans(), _REASONS,
                       _PHASES, _LINKS), min_size=1, max_size=25),
    st.lists(st.tuples(st.sampled_from(["A", "B", "D"]), st.sampled_from(range(0, 720, 45)), _LINKS), max_size=4),
    st.booleans(), st.booleans(),
)
def test_integer_code_lines_equal_the_pandas_derivation(cm_spec, pr_spec, infer, tandem_link):
    """The numpy derivation on integer codes (lines._lines_of_therapy_codes, issue 15) gives the
    same frame, exactly, as the first release's pandas derivation (lines._lines_of_therapy_pandas:
    group-by shifts and merges) on random regimens, drug subsets, dates on a coarse grid (same
    starts), missing end dates, reasons, phases, link groups and transplants, under both options."""
    from mmtrial.derive.lines import _lines_of_therapy_codes, _lines_of_therapy_pandas

    base = pd.Timestamp("2012-01-01")
    rows = [(s, f"R{g}", d, base + pd.Timedelta(days=t0), None if noend else base + pd.Timedelta(days=t0 + n),
             r, ph, lk) for s, g, d, t0, n, noend, r, ph, lk in cm_spec]
    pr = pr_rows([(s, ASCT, base + pd.Timedelta(days=t), lk) for s, t, lk in pr_spec])
    exp, _ = derive_drug_exposure(cm_rows(rows), dictionary=DICT)
    items = derive_regimens(exp, derive_transplants(pr))
    rule = LineRule(infer_planned=infer, tandem_requires_link=tandem_link)
    pd.testing.assert_frame_equal(_lines_of_therapy_codes(items, exp, rule), _lines_of_therapy_pandas(items, exp, rule),
                                  check_exact=True)
