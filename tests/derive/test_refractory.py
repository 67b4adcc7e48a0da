"""Refractory status (IMWG, Rajkumar 2011; domain.md 2.6, tag C): progression on therapy or
within 60 days of the last dose; triple-class / penta / quad refractory and triple-class exposed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mmtrial.derive.drugs import DrugDictionary, derive_drug_exposure
from mmtrial.derive.refractory import (
    DEFAULT_REFRACTORY_RULE,
    RefractoryRule,
    compute_date_bounds,
    compute_term,
    derive_drug_refractory,
    derive_line_refractory,
    derive_refractory_flags,
    parse_term,
)
from support.sweeps import examples

DICT = DrugDictionary.load()
CAT = "PRIOR ANTI-MYELOMA THERAPY"


def cm_rows(rows):
    """rows: (USUBJID, CMGRPID, CMTRT, start, end[, start flag, end flag])."""
    rows = [r if len(r) == 7 else (*r, "", "") for r in rows]
    df = pd.DataFrame(rows, columns=["USUBJID", "CMGRPID", "CMTRT", "CMSTDT", "CMENDT", "CMSTDTF", "CMENDTF"])
    df["CMCAT"] = CAT
    df["CMSTDT"] = pd.to_datetime(df["CMSTDT"])
    df["CMENDT"] = pd.to_datetime(df["CMENDT"])
    df["ROWNUM"] = range(1, len(df) + 1)
    return df


def rs_rows(rows):
    """rows: (USUBJID, RSGRPID, RSSTRESC, date[, flag])."""
    rows = [r if len(r) == 5 else (*r, "") for r in rows]
    df = pd.DataFrame(rows, columns=["USUBJID", "RSGRPID", "RSSTRESC", "RSDT", "RSDTF"])
    df["RSCAT"] = "PRIOR THERAPY"
    df["RSTESTCD"] = "OVRLRESP"
    df["RSDT"] = pd.to_datetime(df["RSDT"])
    df["ROWNUM"] = range(1, len(df) + 1)
    return df


def refr(cm, rs, rule=DEFAULT_REFRACTORY_RULE, trtsdt=None):
    exp, _ = derive_drug_exposure(cm, dictionary=DICT)
    out, issues = derive_drug_refractory(exp, rs, dictionary=DICT, rule=rule, trtsdt=trtsdt)
    return out.set_index(["USUBJID", "DRUG"]), issues


def test_refractory_at_60_days_after_last_dose_but_not_at_61():
    # IMWG (Rajkumar 2011): "progression within 60 days of the last dose"; last dose 2016-03-01,
    # PD 2016-04-30 = day 60 (2016 is a leap year: Mar has 31 days, 30 + 30) -> refractory;
    # PD 2016-05-01 = day 61 -> not refractory
    cm = cm_rows([("A", "R1", "BORTEZOMIB", "2016-01-01", "2016-03-01"),
                  ("B", "R1", "BORTEZOMIB", "2016-01-01", "2016-03-01")])
    rs = rs_rows([("A", "R1", "PD", "2016-04-30"), ("B", "R1", "PD", "2016-05-01")])
    out, _ = refr(cm, rs)
    assert out.loc[("A", "bortezomib"), "REFFL"] == "Y"
    assert out.loc[("A", "bortezomib"), "REFDAYS"] == 60
    assert out.loc[("A", "bortezomib"), "REFTYPE"] == "PD WITHIN 60 DAYS OF LAST DOSE"
    assert out.loc[("B", "bortezomib"), "REFFL"] == "N"
    assert out.loc[("B", "bortezomib"), "NXTPDDY"] == 61


def test_progression_on_therapy_is_refractory():
    cm = cm_rows([("A", "R1", "LENALIDOMIDE", "2016-01-01", "2016-06-30")])
    out, _ = refr(cm, rs_rows([("A", "R1", "PD", "2016-06-30")]))
    assert out.loc[("A", "lenalidomide"), "REFTYPE"] == "PD ON THERAPY"
    assert out.loc[("A", "lenalidomide"), "REFDAYS"] == 0


def test_progression_before_the_drug_started_is_not_refractory():
    # the PD that led to the regimen precedes its first dose: never refractory to it
    cm = cm_rows([("A", "R2", "POMALIDOMIDE", "2016-02-01", "2016-06-30")])
    out, _ = refr(cm, rs_rows([("A", "R1", "PD", "2016-01-31")]))
    assert out.loc[("A", "pomalidomide"), "REFFL"] == "N"
    assert pd.isna(out.loc[("A", "pomalidomide"), "NXTPDDT"])


def test_overlapping_regimens_each_drug_judged_on_its_own_exposure():
    # daratumumab ongoing (Jan-Dec) while a short carfilzomib course ended in March; PD in November:
    # on daratumumab (refractory), 245 days after carfilzomib (not refractory)
    cm = cm_rows([("A", "R1", "DARATUMUMAB", "2016-01-01", "2016-12-31"),
                  ("A", "R2", "CARFILZOMIB", "2016-02-01", "2016-03-01")])
    out, _ = refr(cm, rs_rows([("A", "R1", "PD", "2016-11-01")]))
    assert out.loc[("A", "daratumumab"), "REFFL"] == "Y"
    assert out.loc[("A", "carfilzomib"), "REFFL"] == "N"


def test_pd_link_regimen_only_counts_the_regimens_own_progression():
    # PD recorded for regimen R2 within 60 days of the end of R1's drug: counts with pd_link="any"
    # (IMWG timing) but not with pd_link="regimen"
    cm = cm_rows([("A", "R1", "BORTEZOMIB", "2016-01-01", "2016-03-01"),
                  ("A", "R2", "LENALIDOMIDE", "2016-03-05", "2016-04-20")])
    rs = rs_rows([("A", "R2", "PD", "2016-04-20")])
    assert refr(cm, rs)[0].loc[("A", "bortezomib"), "REFFL"] == "Y"
    assert refr(cm, rs, RefractoryRule(pd_link="regimen"))[0].loc[("A", "bortezomib"), "REFFL"] == "N"


def test_minimum_exposure_option():
    # MAMMOTH used >= 4 weeks of the drug: 27 days exposure is not enough with min_exposure_days=28
    cm = cm_rows([("A", "R1", "CARFILZOMIB", "2016-01-01", "2016-01-27")])
    rs = rs_rows([("A", "R1", "PD", "2016-01-27")])
    assert refr(cm, rs)[0].loc[("A", "carfilzomib"), "REFFL"] == "Y"
    assert refr(cm, rs, RefractoryRule(min_exposure_days=28))[0].loc[("A", "carfilzomib"), "REFFL"] == "N"
    cm28 = cm_rows([("A", "R1", "CARFILZOMIB", "2016-01-01", "2016-01-28")])
    assert refr(cm28, rs, RefractoryRule(min_exposure_days=28))[0].loc[("A", "carfilzomib"), "REFFL"] == "Y"


def test_partial_end_date_rules_imputed_certain_possible():
    # end date "2016-03" (day imputed, flag D): true last dose anywhere 2016-03-01..31.
    # PD 2016-05-15: within 60 days only if the last dose was on or after 2016-03-16.
    # imputed as 2016-03-31 (sdtm/dates.py end rule "last") -> 45 days -> refractory;
    # certain -> no (a 03-01 last dose is 75 days); possible -> yes; DATEIMPFL = Y either way.
    cm = cm_rows([("A", "R1", "BORTEZOMIB", "2016-01-01", "2016-03-31", "", "D")])
    rs = rs_rows([("A", "R1", "PD", "2016-05-15")])
    got = {m: refr(cm, rs, RefractoryRule(partial_dates=m))[0].loc[("A", "bortezomib")]
           for m in ("imputed", "certain", "possible")}
    assert [got[m]["REFFL"] for m in ("imputed", "certain", "possible")] == ["Y", "N", "Y"]
    assert all(got[m]["DATEIMPFL"] == "Y" for m in got)
    # a complete date 75 days before PD is not refractory and not ambiguous
    cm2 = cm_rows([("A", "R1", "BORTEZOMIB", "2016-01-01", "2016-03-01")])
    r2 = refr(cm2, rs)[0].loc[("A", "bortezomib")]
    assert (r2["REFFL"], r2["DATEIMPFL"]) == ("N", "N")


def test_partial_progression_date_year_only_is_ambiguous():
    # PD "2016" (flag M) imputed 2016-01-01 by the start rule: before the drug started under
    # "imputed" -> not refractory; "possible" -> refractory (the PD may be in March)
    cm = cm_rows([("A", "R1", "LENALIDOMIDE", "2016-02-01", "2016-03-01")])
    rs = rs_rows([("A", "R1", "PD", "2016-01-01", "M")])
    assert refr(cm, rs)[0].loc[("A", "lenalidomide"), "REFFL"] == "N"
    assert refr(cm, rs, RefractoryRule(partial_dates="possible"))[0].loc[("A", "lenalidomide"), "REFFL"] == "Y"


def test_date_bounds_from_flags():
    lo, hi = compute_date_bounds(pd.Series(pd.to_datetime(["2016-02-15", "2016-02-01", "2016-01-01", None])),
                                 pd.Series(["", "D", "M", ""]))
    assert [str(x.date()) if pd.notna(x) else None for x in lo] == ["2016-02-15", "2016-02-01", "2016-01-01", None]
    assert [str(x.date()) if pd.notna(x) else None for x in hi] == ["2016-02-15", "2016-02-29", "2016-12-31", None]


def test_missing_end_date_is_ongoing_until_first_study_dose_with_warning():
    cm = cm_rows([("A", "R1", "DARATUMUMAB", "2016-01-01", None)])
    rs = rs_rows([("A", "R1", "PD", "2016-12-01")])
    out, issues = refr(cm, rs, trtsdt=pd.Series({"A": pd.Timestamp("2017-01-10")}))
    assert out.loc[("A", "daratumumab"), "REFFL"] == "Y"
    assert [(i.domain, i.variable, i.row) for i in issues] == [("cm", "CMENDTC", 1)]
    out2, _ = refr(cm, rs, RefractoryRule(missing_end="exclude"), trtsdt=pd.Series({"A": pd.Timestamp("2017-01-10")}))
    assert out2.loc[("A", "daratumumab"), "REFFL"] == "N"


def test_nonresponse_option_counts_best_response_sd():
    # Rajkumar 2011: refractory also = nonresponsive (no MR) while on therapy; off by default
    cm = cm_rows([("A", "R1", "POMALIDOMIDE", "2016-01-01", "2016-03-01")])
    rs = rs_rows([("A", "R1", "SD", "2016-02-01")])
    assert refr(cm, rs)[0].loc[("A", "pomalidomide"), "REFFL"] == "N"
    r = refr(cm, rs, RefractoryRule(nonresponse_is_refractory=True))[0].loc[("A", "pomalidomide")]
    assert (r["REFFL"], r["REFTYPE"]) == ("Y", "NONRESPONSE")


def _status(rows):
    """rows: (USUBJID, drug, EXPFL, REFFL)."""
    return pd.DataFrame(rows, columns=["USUBJID", "DRUG", "EXPFL", "REFFL"])


def _flags(status, subjects=("S",)):
    subj = pd.DataFrame({"USUBJID": list(subjects), "NLINES": 5, "LSTREFFL": "Y"})
    return derive_refractory_flags(status, subj, dictionary=DICT).set_index("USUBJID")


def test_triple_class_refractory_needs_pi_imid_and_anti_cd38():
    # domain.md 2.6 (C): TCR = refractory to >= 1 PI, >= 1 IMiD and an anti-CD38 mAb
    full = _status([("S", "ixazomib", "Y", "Y"), ("S", "thalidomide", "Y", "Y"), ("S", "isatuximab", "Y", "Y")])
    assert _flags(full).loc["S", "TCRFL"] == "Y"
    assert _flags(full).loc["S", "PENTAFL"] == "N"
    no_cd38 = _status([("S", "ixazomib", "Y", "Y"), ("S", "thalidomide", "Y", "Y"), ("S", "isatuximab", "Y", "N")])
    f = _flags(no_cd38).loc["S"]
    assert (f["TCRFL"], f["TCEFL"]) == ("N", "Y")  # exposed but not refractory to the anti-CD38


def test_penta_refractory_needs_the_four_named_drugs_and_an_anti_cd38():
    # domain.md 1.9 / 2.6 (C): penta = bortezomib, carfilzomib, lenalidomide, pomalidomide, anti-CD38
    drugs = ["bortezomib", "carfilzomib", "lenalidomide", "pomalidomide", "daratumumab"]
    st_ = _status([("S", d, "Y", "Y") for d in drugs])
    f = _flags(st_).loc["S"]
    assert (f["PENTAFL"], f["QUADFL"], f["TCRFL"], f["REFRCAT"]) == ("Y", "Y", "Y", "PENTA")
    assert (f["PIREFN"], f["IMDREFN"], f["C38REFN"]) == (2, 2, 1)
    assert (f["BTZREFFL"], f["DARREFFL"]) == ("Y", "Y")
    # carfilzomib exposed but not refractory: quad (MAMMOTH: CD38 + 1 PI + 2 IMiDs), not penta
    st2 = _status([("S", d, "Y", "N" if d == "carfilzomib" else "Y") for d in drugs])
    f2 = _flags(st2).loc["S"]
    assert (f2["PENTAFL"], f2["QUADFL"], f2["REFRCAT"]) == ("N", "Y", "QUAD")
    # ixazomib in place of carfilzomib: 2 PIs and 2 IMiDs refractory, but not the STORM penta definition
    st3 = _status([("S", "ixazomib" if d == "carfilzomib" else d, "Y", "Y") for d in drugs])
    assert _flags(st3).loc["S", "PENTAFL"] == "N"


def test_subject_without_prior_therapy_has_no_flags():
    f = _flags(_status([]), subjects=("S",)).loc["S"]
    assert (f["TCRFL"], f["PENTAFL"], f["TCEFL"], f["REFRCAT"], f["PIEXPN"]) == ("N", "N", "N", "NOT TRIPLE", 0)


def test_term_grammar_and_errors():
    assert parse_term("refractory:PI+IMID>=3").names == ("PI", "IMID")
    assert parse_term("lines>=4").n == 4
    assert parse_term("refractory:last_line").kind == "last_line"
    with pytest.raises(ValueError, match="not understood"):
        parse_term("refractory PI")
    with pytest.raises(ValueError, match="neither a drug nor a class"):
        compute_term("refractory:unobtainium", _status([]), pd.DataFrame({"USUBJID": ["S"]}), DICT)
    with pytest.raises(ValueError, match="window_days"):
        RefractoryRule(window_days=-1)
    with pytest.raises(ValueError, match="unknown option"):
        RefractoryRule.from_protocol({"window": 60})


@settings(max_examples=examples(6, 15), deadline=None)
@given(st.integers(min_value=-30, max_value=120), st.integers(min_value=0, max_value=90))
def test_refractory_iff_pd_between_first_dose_and_window_end(pd_offset, window):
    """A sample of examples by default; the full count under ``pytest --sweeps`` (tests/support/sweeps.py)."""
    # property: with complete dates, REFFL = Y exactly when start < PD <= last dose + window
    # (start <= PD with pd_on_first_day = True); Rajkumar 2011: PD on therapy or within the window
    start, end = pd.Timestamp("2016-01-01"), pd.Timestamp("2016-02-01")
    pdd = end + pd.Timedelta(days=pd_offset)
    cm = cm_rows([("A", "R1", "BORTEZOMIB", start, end)])
    out, _ = refr(cm, rs_rows([("A", "R1", "PD", pdd)]), RefractoryRule(window_days=window))
    expected = start < pdd <= end + pd.Timedelta(days=window)
    assert (out.loc[("A", "bortezomib"), "REFFL"] == "Y") == expected
    out, _ = refr(cm, rs_rows([("A", "R1", "PD", pdd)]),
                  RefractoryRule(window_days=window, pd_on_first_day=True))
    assert (out.loc[("A", "bortezomib"), "REFFL"] == "Y") == (start <= pdd <= end + pd.Timedelta(days=window))


def test_progression_dated_on_the_next_regimens_first_day_does_not_make_it_refractory():
    # Real-world records date a progression on the day the next regimen starts (it is why that
    # regimen starts). Lenalidomide R1 2016-01-01..2016-06-30; PD 2016-07-01; pomalidomide R2 from
    # 2016-07-01 to 2016-12-31, no later PD. Lenalidomide: PD 1 day after its last dose ->
    # refractory (Rajkumar 2011, within 60 days); pomalidomide: the PD is not "on" it.
    cm = cm_rows([("A", "R1", "LENALIDOMIDE", pd.Timestamp("2016-01-01"), pd.Timestamp("2016-06-30")),
                  ("A", "R2", "POMALIDOMIDE", pd.Timestamp("2016-07-01"), pd.Timestamp("2016-12-31"))])
    out, _ = refr(cm, rs_rows([("A", "R1", "PD", pd.Timestamp("2016-07-01"))]), RefractoryRule())
    assert out.loc[("A", "lenalidomide"), "REFFL"] == "Y"
    assert out.loc[("A", "pomalidomide"), "REFFL"] == "N"


def test_last_line_refractory_item_window_and_missing_end_as_ongoing():
    # Rajkumar 2011: refractory to a line = PD on it or within 60 days of its end. Line 1 of S1 is
    # induction (ends 2016-03-01) then maintenance from 2016-07-01: a PD on 2016-06-01 (92 days
    # after induction, before maintenance) is relapse, not refractoriness. S2's last line has no
    # end date: ongoing until the day before first dose (missing_end="ongoing").
    lines = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S2"], "LINENUM": [1, 1, 1], "ITEMID": ["R1", "R2", "R1"],
        "STDT": pd.to_datetime(["2016-01-01", "2016-07-01", "2017-01-01"]),
        "ENDT": pd.to_datetime(["2016-03-01", "2016-12-31", None]), "STDTF": "", "ENDTF": "",
    })
    rs = rs_rows([("S1", "R1", "PD", "2016-06-01"), ("S2", "R1", "PD", "2017-11-01")])
    got = derive_line_refractory(lines, rs).set_index("USUBJID")["LOTREFFL"].to_dict()
    assert got == {"S1": "N", "S2": "N"}
    trt = pd.Series({"S1": pd.Timestamp("2018-01-01"), "S2": pd.Timestamp("2017-12-01")})
    got = derive_line_refractory(lines, rs, trtsdt=trt).set_index("USUBJID")["LOTREFFL"].to_dict()
    assert got == {"S1": "N", "S2": "Y"}


# ---------------------------------------------------------------- the window join against SQL

_FLAG = st.sampled_from(["", "", "D", "M", "d"])


def _reference_window_pairs(iv: pd.DataFrame, ev: pd.DataFrame, rule: RefractoryRule) -> pd.DataFrame:
    """Reference: every (interval, PD) pair of the subject (and regimen, for ``pd_link="regimen"``)
    tested one by one with the rule's wording (domain.md 2.6; Rajkumar 2011: PD on the drug or
    within ``window_days`` after its last dose; partial dates by their earliest/latest consistent
    day from compute_date_bounds); days are floats, a missing end date (NaN) qualifies nothing."""
    pairs = iv.merge(ev, on=["subj", "grp"] if rule.pd_link == "regimen" else ["subj"])
    w = rule.window_days
    after = (lambda a, b: a >= b) if rule.pd_on_first_day else (lambda a, b: a > b)
    p = pairs
    pairs = pairs.loc[(p["pdhi"] >= p["stlo"]) & (p["pdlo"] <= p["enhi"] + w)]  # possible at all
    p = pairs
    cert = after(p["pdlo"], p["sthi"]) & (p["pdhi"] <= p["enlo"] + w)
    chosen = {"imputed": after(p["pd"], p["st"]) & (p["pd"] <= p["en"] + w), "certain": cert,
              "possible": after(p["pdhi"], p["stlo"])}[rule.partial_dates]
    return pairs.assign(chosen=chosen, cert=cert)


@settings(max_examples=examples(12, 300), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(range(0, 400, 40)),
                       st.integers(-5, 300), _FLAG, _FLAG, st.booleans()), min_size=1, max_size=10),
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(range(0, 600, 60)), _FLAG),
             max_size=12),
    st.sampled_from(["imputed", "certain", "possible"]), st.sampled_from(["any", "regimen"]), st.booleans(),
    st.integers(0, 90),
)
@example(ivs=[(0, 0, 0, 100, "", "", False)], evs=[(0, 0, 60, ""), (0, 1, 60, "")], partial="imputed",
         link="any", first_day=False, window=60)  # two PDs on one day: the later row is the evidence
@example(ivs=[(0, 0, 120, 30, "", "", False)], evs=[(0, 0, 120, "")], partial="imputed", link="any",
         first_day=False, window=60)  # PD on the first day: possible (DATEIMPFL), not qualifying
def test_window_join_matches_pairwise_reference(ivs, evs, partial, link, first_day, window):
    """The numpy range join (refractory._window_hits) against testing every pair: the first
    qualifying PD day per interval (among PDs on that day, the one recorded last), whether any
    qualifying PD is certain, whether any PD is possible. Random partial-date flags, missing end
    dates, regimen links and PD days on a coarse grid (ties)."""
    from mmtrial.derive import refractory
    from mmtrial.derive.refractory import _window_hits

    rule = RefractoryRule(partial_dates=partial, pd_link=link, pd_on_first_day=first_day, window_days=window)
    base = pd.Timestamp("2015-01-01")
    st_ = pd.Series([base + pd.Timedelta(days=d) for _, _, d, _, _, _, _ in ivs])
    en = pd.Series([pd.NaT if miss else base + pd.Timedelta(days=d + n) for _, _, d, n, _, _, miss in ivs])
    stf = pd.Series([f for *_, f, _, _ in ivs])
    enf = pd.Series([f for *_, f, _ in ivs])
    events = pd.DataFrame({"PDDT": pd.to_datetime([base + pd.Timedelta(days=d) for _, _, d, _ in evs]),
                           "PDDTF": pd.Series([f for *_, f in evs], dtype=object)})
    i_subj = np.array([s for s, *_ in ivs])
    e_subj = np.array([s for s, *_ in evs], dtype=np.int64)
    i_grp = pd.Series([f"R{g}" for _, g, *_ in ivs])
    e_grp = pd.Series([f"R{g}" for _, g, *_ in evs], dtype=object)
    args = (i_subj, i_grp if link == "regimen" else None, st_, en, stf, enf, e_subj,
            e_grp if link == "regimen" else None, events, rule)
    got = _window_hits(*args)
    saved = refractory._PAIRS_PER_CHUNK
    try:  # pairs formed a few at a time: the same answer
        refractory._PAIRS_PER_CHUNK = 2
        small = _window_hits(*args)
    finally:
        refractory._PAIRS_PER_CHUNK = saved
    for name in ("qual", "day", "event", "cert", "poss"):
        assert getattr(small, name).tolist() == getattr(got, name).tolist()

    def days(s):  # float day numbers, NaN for a missing date
        return (pd.to_datetime(s) - pd.Timestamp("1970-01-01")).dt.days.astype(float).to_numpy()

    (s_lo, s_hi), (e_lo, e_hi) = compute_date_bounds(st_, stf), compute_date_bounds(en, enf)
    p_lo, p_hi = compute_date_bounds(events["PDDT"], events["PDDTF"])
    iv = pd.DataFrame({"i": np.arange(len(ivs)), "subj": i_subj, "grp": i_grp.astype(str), "st": days(st_),
                       "stlo": days(s_lo), "sthi": days(s_hi), "en": days(en), "enlo": days(e_lo),
                       "enhi": days(e_hi)})
    ev = pd.DataFrame({"j": np.arange(len(evs)), "subj": e_subj, "grp": e_grp.astype(str),
                       "pd": days(events["PDDT"]), "pdlo": days(p_lo), "pdhi": days(p_hi)})
    pairs = _reference_window_pairs(iv, ev, rule)
    chosen = pairs.loc[pairs["chosen"]]
    best = chosen.sort_values(["i", "pd", "j"], ascending=[True, True, False]).drop_duplicates("i")
    n = len(ivs)
    assert got.poss.tolist() == np.isin(np.arange(n), pairs["i"]).tolist()
    assert got.qual.tolist() == np.isin(np.arange(n), best["i"]).tolist()
    assert got.day[got.qual].tolist() == best["pd"].astype(int).tolist()
    assert got.event[got.qual].tolist() == best["j"].tolist()
    assert got.cert.tolist() == np.isin(np.arange(n), chosen.loc[chosen["cert"], "i"]).tolist()
