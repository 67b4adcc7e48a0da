"""Protocol dose-rule check (mmtrial.derive.doserules).

Expected values: XPOVIO label Table 2 / Table 1 as transcribed in ../shared/reference/domain.md
section 1.10. Thrombocytopenia, neutropenia, anaemia and hyponatraemia rows are tag C (verified
against the US label transcription and the Swiss selinexor product information, Table 2; sources
in data/dose_rules.toml); the other rows are tag U (unverified), so tests of those check that the
data file is applied as written, not the label itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.adae import derive_adae
from mmtrial.derive.doserules import (
    DoseRuleOptions,
    DoseRuleSet,
    derive_rule_checks,
    derive_rule_events,
)
from mmtrial.derive.exposure import derive_exposure_intervals
from mmtrial.derive.toxgrade import derive_adlb
from mmtrial.protocol.model import Protocol

RULES = DoseRuleSet.load()
R = {r.id: r for r in RULES.rules}
P = Protocol.load()


def test_rule_file_loads_with_tags_and_verified_rows_confirmed():
    assert {"PLT-REDUCE", "PLT-BLEED", "PLT-INTERRUPT", "ANC-REDUCE", "ANC-INTERRUPT", "HGB-REDUCE",
            "NA-INTERRUPT", "FAT-G2", "FAT-G3", "NV-G12", "NV-G3", "DIA-G2", "DIA-G3", "WT-LOSS",
            "OTHER-G34"} <= set(R)
    assert {r.id for r in RULES.rules if r.tag == "C"} == {
        "PLT-REDUCE", "PLT-BLEED", "PLT-INTERRUPT", "ANC-REDUCE", "ANC-INTERRUPT", "FN-INTERRUPT",
        "HGB-REDUCE", "HGB-LIFE", "NA-INTERRUPT"}
    assert all(r.source for r in RULES.rules)


# Each lab row at and beside its threshold (label: platelets 25,000 to <75,000 reduce; <25,000
# interrupt; ANC 0.5 to 1.0 reduce; <0.5 interrupt; Hb <8.0 reduce; sodium <=130 interrupt)
@pytest.mark.parametrize("rule,value,hit", [
    ("PLT-REDUCE", 75.0, False), ("PLT-REDUCE", 74.9, True), ("PLT-REDUCE", 25.0, True), ("PLT-REDUCE", 24.9, False),
    ("PLT-INTERRUPT", 25.0, False), ("PLT-INTERRUPT", 24.9, True),
    ("ANC-REDUCE", 1.0, False), ("ANC-REDUCE", 0.99, True), ("ANC-REDUCE", 0.5, True), ("ANC-REDUCE", 0.49, False),
    ("ANC-INTERRUPT", 0.5, False), ("ANC-INTERRUPT", 0.49, True),
    ("HGB-REDUCE", 8.0, False), ("HGB-REDUCE", 7.9, True),
    ("NA-INTERRUPT", 130.1, False), ("NA-INTERRUPT", 130.0, True), ("NA-INTERRUPT", 129.9, True),
])
def test_lab_rule_threshold(rule, value, hit):
    assert R[rule].lab_hit(np.array([value])).tolist() == [hit]


ADSL = pd.DataFrame({"USUBJID": ["S"], "TRTSDT": pd.to_datetime(["2020-01-01"]),
                     "TRTEDT": pd.to_datetime(["2020-06-30"]), "SAFFL": ["Y"]})


def _adae(rows):
    df = pd.DataFrame(rows, columns=["AEDECOD", "AEBODSYS", "AESTDT", "AEENDT", "AETOXGR"])
    df["USUBJID"] = "S"
    df["AESTDT"] = pd.to_datetime(df["AESTDT"])
    df["AEENDT"] = pd.to_datetime(df["AEENDT"])
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return derive_adae(df, ADSL)


def _fired(adae, adlb=None):
    adlb = adlb if adlb is not None else _adlb([])
    ev = derive_rule_events(adlb, adae, RULES)
    return sorted(ev["RULEID"].tolist())


# Each AE row at and beside its grade threshold
@pytest.mark.parametrize("pt,soc,grade,days,expected", [
    ("Fatigue", "GEN", 2, 8, ["FAT-G2"]), ("Fatigue", "GEN", 2, 7, []), ("Fatigue", "GEN", 1, 30, []),
    ("Fatigue", "GEN", 3, 1, ["FAT-G3"]),
    ("Nausea", "GI", 2, 3, ["NV-G12"]), ("Nausea", "GI", 3, 3, ["NV-G3"]),
    ("Vomiting", "GI", 1, 3, ["NV-G12"]), ("Vomiting", "GI", 4, 3, ["NV-G3"]),
    ("Diarrhoea", "GI", 1, 3, []), ("Diarrhoea", "GI", 2, 3, ["DIA-G2"]), ("Diarrhoea", "GI", 3, 3, ["DIA-G3"]),
    ("Weight decreased", "INV", 1, 3, []), ("Weight decreased", "INV", 2, 3, ["WT-LOSS"]),
    ("Decreased appetite", "MET", 2, 3, []), ("Decreased appetite", "MET", 3, 3, ["ANOREXIA-G3"]),
    ("Febrile neutropenia", "BLOOD AND LYMPHATIC SYSTEM DISORDERS", 3, 3, ["FN-INTERRUPT"]),
    ("Anaemia", "BLOOD AND LYMPHATIC SYSTEM DISORDERS", 3, 3, []),
    ("Anaemia", "BLOOD AND LYMPHATIC SYSTEM DISORDERS", 4, 3, ["HGB-LIFE"]),
    ("Pneumonia", "INFECTIONS AND INFESTATIONS", 2, 3, []),
    ("Pneumonia", "INFECTIONS AND INFESTATIONS", 3, 3, ["OTHER-G34"]),
    ("Pneumonia", "INFECTIONS AND INFESTATIONS", 5, 3, []),
])
def test_ae_rule_grade_threshold(pt, soc, grade, days, expected):
    start = pd.Timestamp("2020-02-01")
    adae = _adae([(pt, soc, start, start + pd.Timedelta(days=days - 1), grade)])
    assert _fired(adae) == expected


def _adlb(rows):
    lb = pd.DataFrame(rows, columns=["LBTESTCD", "LBDT", "LBSTRESN"])
    lb["USUBJID"] = "S"
    unit = {"PLAT": "10^9/L", "NEUT": "10^9/L", "HGB": "g/dL", "SODIUM": "mmol/L"}
    lb["LBSTRESU"] = lb["LBTESTCD"].map(unit)
    lb["LBSTNRLO"] = np.nan
    lb["LBSTNRHI"] = np.nan
    lb["LBDT"] = pd.to_datetime(lb["LBDT"])
    lb["ROWNUM"] = np.arange(1, len(lb) + 1)
    return derive_adlb(lb, ADSL)


def test_lab_rule_fires_at_onset_not_at_every_persisting_value():
    adlb = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-01-08", 60), ("PLAT", "2020-01-15", 55),
                  ("PLAT", "2020-01-22", 150), ("PLAT", "2020-01-29", 70)])
    ev = derive_rule_events(adlb, _adae([]), RULES)
    assert ev["ADT"].dt.strftime("%m-%d").tolist() == ["01-08", "01-29"]
    ev2 = derive_rule_events(adlb, _adae([]), RULES, options=DoseRuleOptions(trigger="every"))
    assert len(ev2) == 3


def test_bleeding_rule_needs_an_ongoing_bleeding_ae():
    adlb = _adlb([("PLAT", "2020-01-10", 60)])
    adae = _adae([("Epistaxis", "RESP", "2020-01-09", "2020-01-12", 1)])
    assert _fired(adae, adlb) == ["PLT-BLEED", "PLT-REDUCE"]
    adae2 = _adae([("Epistaxis", "RESP", "2020-01-01", "2020-01-05", 1)])
    assert _fired(adae2, adlb) == ["PLT-REDUCE"]


def _ex(rows):
    df = pd.DataFrame(rows, columns=["EXDOSE", "EXDOSFRQ", "EXSTDT", "EXENDT"])
    df["USUBJID"] = "S"
    df["EXTRT"] = "SELINEXOR"
    df["EXSTDT"] = pd.to_datetime(df["EXSTDT"])
    df["EXENDT"] = pd.to_datetime(df["EXENDT"])
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return derive_exposure_intervals(df, ladder=P.dose_ladder, regimen=P.regimen)


def _check(adlb, adexlvl, adae=None):
    adae = adae if adae is not None else _adae([])
    ev = derive_rule_events(adlb, adae, RULES)
    ch = derive_rule_checks(ev, adexlvl, adlb, RULES, study_drug="SELINEXOR", ladder_levels=[0, -1, -2, -3])
    return ch.loc[ch["GOVFL"] == "Y"]


def test_reduction_due_but_dose_kept_is_a_deviation():
    # platelets 60 on day 15 (2020-01-15); 80 mg BIW continues to 02-28: "dose kept"
    adlb = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-01-15", 60)])
    ch = _check(adlb, _ex([(80, "BIW", "2020-01-01", "2020-02-28")]))
    assert ch["ACTACT"].tolist() == ["MAINTAINED"]
    assert ch["DEVTYPE"].tolist() == ["DOSE KEPT"]


def test_reduction_to_next_level_within_window_is_compliant():
    adlb = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-01-15", 60)])
    lv = _ex([(80, "BIW", "2020-01-01", "2020-01-19"), (100, "QW", "2020-01-20", "2020-02-28")])
    ch = _check(adlb, lv)
    assert ch["ACTACT"].tolist() == ["REDUCED"]
    assert ch["NEWLVL"].tolist() == [-1] and ch["DEVFL"].tolist() == [""]


def test_interruption_then_restart_at_same_level_is_wrong_level():
    # platelets 20 (< 25: interrupt, restart 1 level lower); restart at 80 mg BIW (level 0)
    adlb = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-01-15", 20), ("PLAT", "2020-01-29", 90)])
    lv = _ex([(80, "BIW", "2020-01-01", "2020-01-15"), (80, "BIW", "2020-02-01", "2020-02-28")])
    ch = _check(adlb, lv)
    assert ch["ACTACT"].tolist() == ["INTERRUPTED"]
    assert ch["DEVTYPE"].tolist() == ["WRONG LEVEL"]
    assert "expected level <= -1" in ch["DEVTEXT"].iloc[0]


def test_restart_one_level_lower_after_recovery_is_compliant_and_before_recovery_is_flagged():
    lv = _ex([(80, "BIW", "2020-01-01", "2020-01-15"), (100, "QW", "2020-02-01", "2020-02-28")])
    ok = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-01-15", 20), ("PLAT", "2020-01-29", 50)])
    # (the recovery to 50 is also the onset of 25-<75 during the gap: same expected restart level)
    assert set(_check(ok, lv)["DEVFL"]) == {""}
    # last platelet count before the restart 49.9 < 50 (label: monitor until >= 50,000/mcL)
    early = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-01-15", 20), ("PLAT", "2020-01-29", 49.9)])
    ch = _check(early, lv)
    assert ch["RULEID"].tolist()[0] == "PLT-INTERRUPT"
    assert ch["DEVTYPE"].tolist()[0] == "BEFORE RECOVERY"


def test_interrupt_due_but_reduced_without_gap():
    adlb = _adlb([("SODIUM", "2020-01-01", 138), ("SODIUM", "2020-01-15", 130)])
    lv = _ex([(80, "BIW", "2020-01-01", "2020-01-16"), (100, "QW", "2020-01-17", "2020-02-28")])
    assert _check(adlb, lv)["DEVTYPE"].tolist() == ["NO INTERRUPTION"]


def test_reduction_due_at_lowest_level_requires_discontinuation():
    # at 60 mg once weekly (level -3) a further reduction means permanent discontinuation
    adlb = _adlb([("HGB", "2020-01-01", 11), ("HGB", "2020-01-15", 7.9)])
    cont = _ex([(60, "QW", "2020-01-01", "2020-03-01")])
    assert _check(adlb, cont)["DEVTYPE"].tolist() == ["NOT DISCONTINUED"]
    stop = _ex([(60, "QW", "2020-01-01", "2020-01-16")])
    ch = _check(adlb, stop)
    assert ch["ACTACT"].tolist() == ["DISCONTINUED"] and ch["DEVFL"].tolist() == [""]


def test_maintain_rule_never_a_deviation_and_most_severe_action_governs():
    adae = _adae([("Nausea", "GI", "2020-01-15", "2020-01-20", 2), ("Vomiting", "GI", "2020-01-15", "2020-01-16", 3)])
    lv = _ex([(80, "BIW", "2020-01-01", "2020-02-28")])
    ev = derive_rule_events(_adlb([]), adae, RULES)
    ch = derive_rule_checks(ev, lv, _adlb([]), RULES, study_drug="SELINEXOR", ladder_levels=[0, -1, -2, -3])
    gov = ch.loc[ch["GOVFL"] == "Y"]
    assert gov["RULEID"].tolist() == ["NV-G3"]
    assert gov["DEVTYPE"].tolist() == ["NOT INTERRUPTED"]
    assert ch.loc[ch["RULEID"] == "NV-G12", "DEVFL"].tolist() == [""]


def test_events_after_last_dose_are_not_checked():
    adlb = _adlb([("PLAT", "2020-01-01", 200), ("PLAT", "2020-03-15", 60)])
    lv = _ex([(80, "BIW", "2020-01-01", "2020-02-28")])
    assert _check(adlb, lv).empty


def _before_recovery_on_every_record(rows, adlb, rule_by_id):
    """The recovery check as defined (and as written before issue 15): pandas ``merge_asof`` of
    the events on every ADLB record with a date and a value, sorted by date."""
    r = rows.reset_index(drop=True).assign(
        _P=rows["RULEID"].map({i: x.resume_paramcd for i, x in rule_by_id.items()}).to_numpy(),
        _OP=rows["RULEID"].map({i: x.resume_op for i, x in rule_by_id.items()}).to_numpy(),
        _V=rows["RULEID"].map({i: x.resume_value for i, x in rule_by_id.items()}).to_numpy(dtype=float),
        _I=np.arange(len(rows)),
    )
    lab = adlb.loc[adlb["ADT"].notna() & adlb["AVAL"].notna(), ["USUBJID", "PARAMCD", "ADT", "AVAL"]]
    lab = lab.rename(columns={"PARAMCD": "_P", "ADT": "LABDT"}).astype(
        {"LABDT": "datetime64[ns]", "USUBJID": str, "_P": str})
    left = r.assign(NEWDT=pd.to_datetime(r["NEWDT"]).astype("datetime64[ns]")).sort_values("NEWDT")
    left = left.loc[left["NEWDT"].notna()].astype({"USUBJID": str, "_P": str})
    j = pd.merge_asof(left, lab.sort_values("LABDT"), left_on="NEWDT", right_on="LABDT",
                      by=["USUBJID", "_P"], direction="backward")
    ok_span = j["LABDT"].notna() & (j["LABDT"] > j["ADT"])
    val = j["AVAL"].to_numpy(dtype=float)
    recovered = np.where(j["_OP"].to_numpy() == ">", val > j["_V"].to_numpy(dtype=float),
                         val >= j["_V"].to_numpy(dtype=float))
    out = np.zeros(len(r), dtype=bool)
    out[j["_I"].to_numpy(dtype=np.int64)[ok_span.to_numpy() & ~recovered]] = True
    return out


def test_recovery_check_reads_only_the_matching_lab_records_with_the_same_result():
    """``_before_recovery`` (issue 15: it no longer copies every ADLB record) equals the check on
    every record (``merge_asof``, above) on random events and labs with same-day ties, missing
    dates and values, other subjects and other tests; 20 seeded cases."""
    from mmtrial.derive.doserules import _before_recovery

    resume = {i: r for i, r in R.items() if r.resume_paramcd}
    ids = sorted(resume)
    for seed in range(20):
        g = np.random.default_rng(seed)
        n = int(g.integers(50, 400))
        day = pd.Timestamp("2020-01-01") + pd.to_timedelta(g.integers(0, 60, n), unit="D")
        adlb = pd.DataFrame({
            "USUBJID": pd.array(g.choice(["S1", "S2", "S3", "S4"], n), dtype="str"),
            "PARAMCD": pd.array(g.choice(["PLAT", "NEUT", "HGB", "SODIUM", "ALB"], n), dtype="str"),
            "ADT": pd.Series(day).where(g.random(n) > 0.05),
            "AVAL": np.where(g.random(n) > 0.05, np.round(g.normal(100, 60, n)), np.nan),
        })
        m = int(g.integers(1, 30))
        rows = pd.DataFrame({
            "USUBJID": g.choice(["S1", "S2", "S3", "S9"], m).astype(object),
            "RULEID": g.choice(ids, m).astype(object),
            "ADT": pd.Timestamp("2020-01-01") + pd.to_timedelta(g.integers(0, 40, m), unit="D"),
            "NEWDT": (pd.Timestamp("2020-01-10") + pd.to_timedelta(g.integers(0, 50, m), unit="D")).where(
                g.random(m) > 0.1),
        }, index=g.permutation(np.arange(100, 100 + m)))
        want = _before_recovery_on_every_record(rows, adlb, resume)
        np.testing.assert_array_equal(_before_recovery(rows, adlb, resume), want, err_msg=f"seed {seed}")
