"""Every input check fires on a crafted bad file with the message a user needs (issue 2).

One case per rule: the mutation, then the issue expected (rule, domain, variable, row, USUBJID,
value). Rows are 1-based data rows of the file.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.sdtm import StudyInputError, load_study, read_study
from mmtrial.sdtm.write import write_study_folder


def _drop_domain(d):
    del d["ae"]


def _drop_var(d):
    d["dm"] = d["dm"].drop(columns=["SEX"])


def _missing_value(d):
    d["ae"].loc[1, "AEDECOD"] = None


def _bad_type(d):
    d["dm"]["AGE"] = d["dm"]["AGE"].astype(object)
    d["dm"].loc[2, "AGE"] = "sixty"


def _bad_date(d):
    d["lb"].loc[3, "LBDTC"] = "2019-02-30"


def _bad_date_format(d):
    d["ex"].loc[0, "EXSTDTC"] = "07/01/2019"


def _bad_term(d):
    d["dm"].loc[1, "SEX"] = "FEMALE"


def _bad_grade(d):
    d["ae"].loc[0, "AETOXGR"] = 7


def _bad_ife(d):
    d["lb"].loc[4, "LBSTRESC"] = "WEAK"


def _bad_unit(d):
    d["lb"].loc[0, "LBSTRESU"] = "mg/mL"


def _dup_key(d):
    d["lb"] = pd.concat([d["lb"], d["lb"].iloc[[1]]], ignore_index=True)


def _date_order(d):
    d["ex"].loc[2, "EXENDTC"] = "2019-01-01"


def _death_before_dose(d):
    d["dm"].loc[0, "DTHDTC"] = "2018-12-01"


def _unknown_subject(d):
    d["ae"].loc[1, "USUBJID"] = "S-999"


def _two_files(d):
    pass  # handled in the test (a second dm file)


CASES = [
    ("MISSING_DOMAIN", _drop_domain, "ae", "(file)", None, None, None),
    ("MISSING_VARIABLE", _drop_var, "dm", "SEX", None, None, None),
    ("MISSING_VALUE", _missing_value, "ae", "AEDECOD", 2, "S-002", None),
    ("TYPE", _bad_type, "dm", "AGE", 3, "S-003", "sixty"),
    ("DATE_INVALID", _bad_date, "lb", "LBDTC", 4, "S-002", "2019-02-30"),
    ("DATE_INVALID", _bad_date_format, "ex", "EXSTDTC", 1, "S-001", "07/01/2019"),
    ("CONTROLLED_TERM", _bad_term, "dm", "SEX", 2, "S-002", "FEMALE"),
    ("CONTROLLED_TERM", _bad_grade, "ae", "AETOXGR", 1, "S-001", "7.0"),
    ("CONTROLLED_TERM", _bad_ife, "lb", "LBSTRESC", 5, "S-002", "WEAK"),
    ("UNIT_UNKNOWN", _bad_unit, "lb", "LBSTRESU", 1, "S-001", "mg/mL"),
    ("DUPLICATE_KEY", _dup_key, "lb", "USUBJID+LBTESTCD+LBSPEC+LBDTC", 6, "S-001", "S-001"),
    ("DATE_ORDER", _date_order, "ex", "EXENDTC", 3, "S-002", None),
    ("DATE_ORDER", _death_before_dose, "dm", "DTHDTC", 1, "S-001", None),
    ("UNKNOWN_SUBJECT", _unknown_subject, "ae", "USUBJID", 2, "S-999", "S-999"),
]


@pytest.mark.parametrize(("rule", "mutate", "domain", "variable", "row", "usubjid", "value"), CASES,
                         ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_check_rule_fires_with_location(tmp_path, raw_domains, rule, mutate, domain, variable, row, usubjid, value):
    mutate(raw_domains)
    folder = write_study_folder(tmp_path / "s", raw_domains)
    _, issues = load_study(folder)
    hits = [i for i in issues if i.rule == rule and i.domain == domain and i.variable == variable]
    assert hits, f"no {rule} issue; got {[(i.rule, i.domain, i.variable) for i in issues]}"
    hit = hits[0]
    assert hit.severity == "error"
    assert hit.row == row and hit.usubjid == usubjid
    if value is not None:
        assert hit.value == value
    msg = hit.message()
    assert domain in msg and variable in msg
    if row is not None:
        assert f"row {row}" in msg
    with pytest.raises(StudyInputError) as exc:
        read_study(folder)
    assert any(i.rule == rule for i in exc.value.issues)


def test_unit_error_names_subject_test_unit_and_expected_units(tmp_path, raw_domains):
    _bad_unit(raw_domains)
    _, issues = load_study(write_study_folder(tmp_path / "s", raw_domains))
    (hit,) = [i for i in issues if i.rule == "UNIT_UNKNOWN"]
    msg = hit.message()
    assert "S-001" in msg and "MPROTEIN" in msg and "mg/mL" in msg and "g/dL" in msg and "g/L" in msg


def test_two_files_for_one_domain_is_an_error(tmp_path, raw_domains):
    folder = write_study_folder(tmp_path / "s", raw_domains)
    raw_domains["dm"].to_parquet(folder / "dm.parquet")
    _, issues = load_study(folder)
    assert any(i.rule == "DUPLICATE_DOMAIN_FILE" and i.domain == "dm" for i in issues)


def test_unreadable_file_is_reported_not_skipped(tmp_path, raw_domains):
    folder = write_study_folder(tmp_path / "s", raw_domains)
    (folder / "rs.json").write_text("{not json")
    _, issues = load_study(folder)
    assert any(i.rule == "FILE_UNREADABLE" and i.domain == "rs" for i in issues)


def test_all_problems_reported_at_once(tmp_path, raw_domains):
    for m in (_bad_type, _bad_date, _bad_term, _bad_unit, _unknown_subject):
        m(raw_domains)
    _, issues = load_study(write_study_folder(tmp_path / "s", raw_domains))
    rules = {i.rule for i in issues if i.severity == "error"}
    assert {"TYPE", "DATE_INVALID", "CONTROLLED_TERM", "UNIT_UNKNOWN", "UNKNOWN_SUBJECT"} <= rules


def test_lab_row_with_no_result_is_a_warning_and_kept(tmp_path, raw_domains):
    raw_domains["lb"].loc[1, "LBSTRESN"] = None
    study = read_study(write_study_folder(tmp_path / "s", raw_domains))
    assert len(study["lb"]) == 5
    assert any(i.rule == "MISSING_VALUE" and i.severity == "warning" for i in study.metadata["issues"])


def test_a_missing_variable_does_not_hide_other_problems(tmp_path, raw_domains):
    # the new-user trial: dropping ex.EXDOSE hid a bad date and an unknown unit elsewhere
    raw_domains["ex"] = raw_domains["ex"].drop(columns=["EXDOSE"])
    _bad_date(raw_domains)
    _bad_unit(raw_domains)
    study, issues = load_study(write_study_folder(tmp_path / "s", raw_domains))
    assert study is None
    rules = {(i.rule, i.domain, i.variable) for i in issues if i.severity == "error"}
    assert {("MISSING_VARIABLE", "ex", "EXDOSE"), ("DATE_INVALID", "lb", "LBDTC"),
            ("UNIT_UNKNOWN", "lb", "LBSTRESU")} <= rules
