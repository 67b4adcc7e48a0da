"""The DuckDB SQL pass (external/scale.py) against the pandas path on generated cohorts with
stem-cell transplants (pr) and non-default line and refractory rules.

Oracle: the pandas derivations, unchanged from the trial (derive/lines.py, derive/refractory.py,
derive/eligibility.py via external/history.py and external/emulate.py); their own rules are
validated in tests/derive/ (Rajkumar 2015 lines, IMWG refractoriness) and against the simulator's
truth in tests/external/test_cohort_emulation.py. Here the SQL pass must give the same lines,
line start/end dates, refractory flags, MEASFL and every eligibility criterion at every line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import STORM_CRITERIA, EligibilityRule, derive_eligibility
from mmtrial.derive.lines import LineRule
from mmtrial.derive.refractory import DEFAULT_COMPOSITES, RefractoryRule
from mmtrial.external.emulate import derive_measurable_at_lines
from mmtrial.external.history import derive_cohort_history
from mmtrial.external.scale import derive_status_dask, derive_status_sql, write_normalised_parquet

RULE = EligibilityRule(criteria=STORM_CRITERIA, label_population=())
DIC = DrugDictionary.load(None)
DRUGS = ("bortezomib", "carfilzomib", "lenalidomide", "pomalidomide", "daratumumab", "dexamethasone",
         "cyclophosphamide", "melphalan")
REASONS = (None, "PROGRESSIVE DISEASE", "PLANNED", "TOXICITY", "COMPLETED")
PHASES = (None, "INDUCTION", "CONSOLIDATION", "MAINTENANCE")
T0 = pd.Timestamp("2015-01-01")
COMPOSITES = {**DEFAULT_COMPOSITES, "PIIMID2": ("refractory:PI+IMID>=2", "exposed:daratumumab")}


def _day(d: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=int(d))


@st.composite
def cohorts(draw) -> dict[str, pd.DataFrame]:
    """1-6 patients: regimens (1-3 drugs each, possibly no end date, a reason, phase and link
    group per regimen), transplants (with or without link groups), progressions (some linked to a
    regimen by RSGRPID), best responses (SD, PR, VGPR) and serum M-protein values, on a 0-900 day grid so that gaps, windows and
    tandem intervals fall on both sides of every threshold."""
    cm, rs, pr, lb = [], [], [], []
    for p in range(draw(st.integers(1, 6))):
        u = f"P{p}"
        t = 0
        for k in range(draw(st.integers(1, 5))):
            t += draw(st.sampled_from([0, 1, 20, 45, 100, 150]))
            dur = draw(st.integers(0, 200))
            noend = draw(st.booleans()) and draw(st.booleans())
            reason = draw(st.sampled_from(REASONS))
            phase = draw(st.sampled_from(PHASES))
            link = draw(st.sampled_from([None, None, "A", "B"]))
            drugs = draw(st.lists(st.sampled_from(DRUGS), min_size=1, max_size=3, unique=True))
            for j, d in enumerate(drugs):
                short = j > 0 and draw(st.booleans())  # a drug stopped before the others
                cm.append({"USUBJID": u, "CMGRPID": f"R{k:02d}", "CMTRT": d.upper(), "CMSTDT": _day(t),
                           "CMENDT": pd.NaT if noend else _day(t + (dur // 2 if short else dur)),
                           "CMRSDISC": reason, "CMSCAT": phase, "CMLNKGRP": link})
            if draw(st.booleans()):
                rs.append({"USUBJID": u, "RSGRPID": f"R{k:02d}", "RSDT": _day(t + draw(st.integers(0, 260)))})
            if draw(st.booleans()):  # a best response recorded for the regimen (SD: non-response)
                rs.append({"USUBJID": u, "RSGRPID": f"R{k:02d}", "RSDT": _day(t + draw(st.integers(0, 200))),
                           "RSSTRESC": draw(st.sampled_from(["SD", "PR", "VGPR"]))})
        for _ in range(draw(st.integers(0, 2))):
            pr.append({"USUBJID": u, "PRTRT": draw(st.sampled_from(["AUTOLOGOUS STEM CELL TRANSPLANT",
                                                                    "ALLOGENEIC STEM CELL TRANSPLANT", "RADIOTHERAPY"])),
                       "PRSTDT": _day(draw(st.integers(0, 700))), "PRLNKGRP": draw(st.sampled_from([None, "A", "T"]))})
        for _ in range(draw(st.integers(0, 3))):
            rs.append({"USUBJID": u, "RSGRPID": None, "RSDT": _day(draw(st.integers(0, 900)))})
        for _ in range(draw(st.integers(0, 3))):
            lb.append({"USUBJID": u, "LBDT": _day(draw(st.integers(0, 900))),
                       "LBSTRESN": draw(st.sampled_from([0.1, 0.5, 2.0]))})
    return _frames(cm, rs, pr, lb)


def _frames(cm, rs, pr, lb) -> dict[str, pd.DataFrame]:
    """Checked-frame shape (what external/cohort.py returns): typed dates, flags, ROWNUM."""
    c = pd.DataFrame(cm)
    c = c.assign(CMCAT="PRIOR ANTI-MYELOMA THERAPY", CMSTDTF="", CMENDTF="", ROWNUM=np.arange(1, len(c) + 1))
    for col in ("USUBJID", "CMGRPID", "CMTRT", "CMRSDISC", "CMSCAT", "CMLNKGRP"):
        c[col] = c[col].astype("string")
    c["CMENDT"] = pd.to_datetime(c["CMENDT"])
    r = pd.DataFrame(rs, columns=["USUBJID", "RSGRPID", "RSDT", "RSSTRESC"])
    r["RSSTRESC"] = r["RSSTRESC"].astype("string").fillna("PD")
    r = r.assign(RSCAT="PRIOR THERAPY", RSTESTCD="OVRLRESP", RSDTF="", ROWNUM=np.arange(1, len(r) + 1))
    r["RSDT"] = pd.to_datetime(r["RSDT"])
    for col in ("USUBJID", "RSGRPID"):
        r[col] = r[col].astype("string")
    q = pd.DataFrame(pr, columns=["USUBJID", "PRTRT", "PRSTDT", "PRLNKGRP"])
    q = q.assign(PRSTDTF="", ROWNUM=np.arange(1, len(q) + 1))
    q["PRSTDT"] = pd.to_datetime(q["PRSTDT"])
    for col in ("USUBJID", "PRTRT", "PRLNKGRP"):
        q[col] = q[col].astype("string")
    b = pd.DataFrame(lb, columns=["USUBJID", "LBDT", "LBSTRESN"])
    b = b.assign(LBTESTCD="MPROTEIN", LBSPEC="SERUM")
    b["LBDT"] = pd.to_datetime(b["LBDT"])
    b["USUBJID"] = b["USUBJID"].astype("string")
    return {"cm": c, "rs": r, "pr": q, "lb": b}


def _pandas_status(frames, line_rule, refractory_rule) -> pd.DataFrame:
    """The oracle: history at every line start (external/history.py), MEASFL and the criteria
    (as external/emulate.py, measurable 'when_available')."""
    h = derive_cohort_history(frames, line_rule=line_rule, refractory_rule=refractory_rule)
    s = h.status
    s["MEASFL"] = derive_measurable_at_lines(s, frames["lb"], window_days=30)
    ctx = s.rename(columns={"USUBJID": "_PAT", "KEY": "USUBJID"})
    ctx["NLINES"] = ctx["NPRIOR"]
    ctx["MEASFL"] = ctx["MEASFL"].fillna("Y")
    el = derive_eligibility(ctx, h.refr, dictionary=DIC, rule=RULE)
    return s.merge(el.rename(columns={"USUBJID": "KEY"}).drop(columns=["LABELFL"]), on="KEY", how="left")


def _compare(ref: pd.DataFrame, got: pd.DataFrame, composites) -> None:
    m = ref.merge(got, on=["USUBJID", "LINENUM"], how="outer", indicator=True, suffixes=("", "_S"))
    assert (m["_merge"] == "both").all(), m.loc[m["_merge"] != "both", ["USUBJID", "LINENUM", "_merge"]]
    for c in ("LOTSTDT", "LOTENDT"):
        a, b = pd.to_datetime(m[c]), pd.to_datetime(m[f"{c}_S"])
        assert ((a == b) | (a.isna() & b.isna())).all(), c
    for c in ["LSTREFFL", "MEASFL", "ELIGFL", *composites, *[f"ELIG_{k.id}" for k in STORM_CRITERIA]]:
        a = m[c].astype("string").fillna("missing")
        b = m[f"{c}_S"].astype("string").fillna("missing")
        bad = m.loc[a != b, ["USUBJID", "LINENUM", c, f"{c}_S"]]
        assert bad.empty, f"{c} differs:\n{bad}"


line_rules = st.builds(LineRule, tandem_max_days=st.sampled_from([0, 90, 180]), tandem_requires_link=st.booleans(),
                       infer_planned=st.booleans(), same_regimen_gap_days=st.sampled_from([0, 30]))
refractory_rules = st.builds(
    RefractoryRule, window_days=st.sampled_from([0, 1, 30, 60]), min_exposure_days=st.sampled_from([0, 28]),
    pd_on_first_day=st.booleans(), missing_end=st.sampled_from(["ongoing", "exclude"]),
    pd_link=st.sampled_from(["any", "regimen"]), nonresponse_is_refractory=st.booleans(),
    composites=st.just(COMPOSITES))


@pytest.mark.slow  # the pandas oracle costs ~1-9 s per cohort (per call, not per patient): 8 cohorts of up to 6
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(frames=cohorts(), line_rule=line_rules, refractory_rule=refractory_rules)
def test_sql_pass_equals_pandas_on_generated_cohorts(frames, line_rule, refractory_rule, tmp_path_factory):
    folder = tmp_path_factory.mktemp("norm")
    write_normalised_parquet(frames, folder, dictionary=DIC, partitions=1)
    ref = _pandas_status(frames, line_rule, refractory_rule)
    got = derive_status_sql(folder, eligibility=RULE, line_rule=line_rule, refractory_rule=refractory_rule)
    _compare(ref, got, COMPOSITES)


def _hand_cohort(extra_rs: tuple[dict, ...] = ()) -> dict[str, pd.DataFrame]:
    """One patient: VRd induction -> planned ASCT (day 130) -> tandem ASCT (day 250, 120 days:
    a planned tandem, same line) -> R maintenance; progression on day 400 (on R, line 1);
    Kd from day 420 (line 2); a third ASCT on day 700 (a new line: line 3); PD on day 760."""
    cm = [
        {"USUBJID": "H1", "CMGRPID": "R01", "CMTRT": d, "CMSTDT": _day(0), "CMENDT": _day(120),
         "CMRSDISC": "PLANNED", "CMSCAT": "INDUCTION", "CMLNKGRP": None}
        for d in ("BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE")
    ] + [
        {"USUBJID": "H1", "CMGRPID": "R02", "CMTRT": "LENALIDOMIDE", "CMSTDT": _day(280), "CMENDT": _day(400),
         "CMRSDISC": "PROGRESSIVE DISEASE", "CMSCAT": "MAINTENANCE", "CMLNKGRP": None},
    ] + [
        {"USUBJID": "H1", "CMGRPID": "R03", "CMTRT": d, "CMSTDT": _day(420), "CMENDT": _day(650),
         "CMRSDISC": "COMPLETED", "CMSCAT": None, "CMLNKGRP": None}
        for d in ("CARFILZOMIB", "DEXAMETHASONE")
    ]
    pr = [{"USUBJID": "H1", "PRTRT": "AUTOLOGOUS STEM CELL TRANSPLANT", "PRSTDT": _day(d), "PRLNKGRP": None}
          for d in (130, 250, 700)]
    rs = [{"USUBJID": "H1", "RSGRPID": "R02", "RSDT": _day(400)}, {"USUBJID": "H1", "RSGRPID": None, "RSDT": _day(760)},
          *extra_rs]
    return _frames(cm, rs, pr, [])


def test_sql_pass_transplants_hand_checked(tmp_path, monkeypatch):
    """Rajkumar 2015 (lines) and IMWG 60-day window (refractory), worked by hand: 3 lines starting
    on days 0, 420 and 700; lenalidomide refractory from line 2 (PD on day 400 on R); carfilzomib
    never refractory at a line start (the only later PD, day 760, is after line 3 starts). Line 2
    (Kd) ended 50 days before line 3 with no PD by day 700: LSTREFFL N."""
    frames = _hand_cohort()
    folder = write_normalised_parquet(frames, tmp_path, dictionary=DIC)
    got = derive_status_sql(folder, eligibility=RULE)
    assert got["LINENUM"].tolist() == [1, 2, 3]
    assert pd.to_datetime(got["LOTSTDT"]).tolist() == [_day(0), _day(420), _day(700)]
    assert got["LSTREFFL"].tolist() == ["N", "Y", "N"]  # line 1 progressed on day 400 (on R), before line 2
    assert got["ELIG_REF_IMID"].tolist() == ["N", "Y", "Y"]
    assert got["ELIG_REF_PI"].tolist() == ["N", "N", "N"]
    assert got["ELIG_EXP_CFZ"].tolist() == ["N", "N", "Y"]
    # a shorter tandem window (100 days): the second ASCT (120 days after the first) starts line 2
    lr = LineRule(tandem_max_days=100)
    got2 = derive_status_sql(folder, eligibility=RULE, line_rule=lr)
    assert pd.to_datetime(got2["LOTSTDT"]).tolist() == [_day(0), _day(250), _day(420), _day(700)]
    assert got2["ELIG_REF_IMID"].tolist() == ["N", "N", "Y", "Y"]  # R maintenance joins line 2, PD day 400
    # more distinct drugs than a 128-bit mask holds: drug-set counts instead of masks, same flags
    import mmtrial.external.scale as scale

    monkeypatch.setattr(scale, "MASK_DRUGS", 0)
    pd.testing.assert_frame_equal(got2, derive_status_sql(folder, eligibility=RULE, line_rule=lr))


@pytest.mark.slow  # the pandas oracle twice (~10 s on 2 busy cores)
def test_dask_path_with_transplants_and_rules(tmp_path):
    """The Dask bucket path passes the rules and the transplants through (default scheduler)."""
    frames = _hand_cohort()
    folder = write_normalised_parquet(frames, tmp_path, dictionary=DIC)
    lr, rr = LineRule(tandem_max_days=100), RefractoryRule(window_days=120)
    got = derive_status_dask(folder, eligibility=RULE, line_rule=lr, refractory_rule=rr)
    _compare(_pandas_status(frames, lr, rr), got, DEFAULT_COMPOSITES)
    # lines start on days 0, 250 (the ASCT 120 days after the first: no tandem within 100 days), 420
    # and 700; lenalidomide maintenance joins line 2 (planned phase) and progresses on day 400
    assert got["ELIG_REF_IMID"].tolist() == ["N", "N", "Y", "Y"]
    assert got["LSTREFFL"].tolist() == ["N", "N", "Y", "N"]



def test_sql_pass_nonresponse_hand_checked(tmp_path):
    """Rajkumar 2011 "nonresponsive while on therapy" (RefractoryRule.nonresponse_is_refractory):
    Kd (line 2) with best response SD on day 500 makes carfilzomib refractory at line 3 (day 700),
    although no progression qualifies; without the option it is not."""
    frames = _hand_cohort(({"USUBJID": "H1", "RSGRPID": "R03", "RSDT": _day(500), "RSSTRESC": "SD"},))
    folder = write_normalised_parquet(frames, tmp_path, dictionary=DIC)
    base = derive_status_sql(folder, eligibility=RULE)
    nr = derive_status_sql(folder, eligibility=RULE, refractory_rule=RefractoryRule(nonresponse_is_refractory=True))
    assert base["ELIG_REF_PI"].tolist() == ["N", "N", "N"]
    assert nr["ELIG_REF_PI"].tolist() == ["N", "N", "Y"]
    assert nr["LSTREFFL"].tolist() == ["N", "Y", "Y"]  # line 2 (Kd) non-responsive by line 3's start


def test_sql_pass_excluded_missing_end_is_not_refractory_by_nonresponse(tmp_path):
    """RefractoryRule.missing_end = "exclude" (its docstring: a prior drug without an end date
    "does not count toward refractoriness"): Kd (line 2) without an end date and with best
    response SD on day 500 leaves carfilzomib non-refractory at every line, as in the pandas path
    (the oracle). Regression: the SQL pass counted the non-response (hypothesis found it)."""
    frames = _hand_cohort(({"USUBJID": "H1", "RSGRPID": "R03", "RSDT": _day(500), "RSSTRESC": "SD"},))
    cm = frames["cm"]
    cm.loc[cm["CMGRPID"] == "R03", "CMENDT"] = pd.NaT
    rule = RefractoryRule(nonresponse_is_refractory=True, missing_end="exclude", composites=COMPOSITES)
    folder = write_normalised_parquet(frames, tmp_path, dictionary=DIC)
    got = derive_status_sql(folder, eligibility=RULE, refractory_rule=rule)
    assert got["ELIG_REF_PI"].tolist() == ["N", "N", "N"]
    _compare(_pandas_status(frames, LineRule(), rule), got, COMPOSITES)


def test_sql_pass_refuses_partial_date_bounds(tmp_path):
    """partial_dates 'certain'/'possible' need the imputation flags: a clear error, not a guess."""
    with pytest.raises(ValueError, match="partial_dates"):
        derive_status_sql(tmp_path, refractory_rule=RefractoryRule(partial_dates="certain"))
