"""The pipeline's output contract: atomic outputs, issues.csv, no partial report on errors (issue 2)."""

from __future__ import annotations

import contextlib
import json

import pandas as pd
import pytest

from mmtrial._io import write_marker
from mmtrial.pipeline import analyze, results_to_json
from mmtrial.sdtm import StudyInputError
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


def test_input_errors_write_only_issues_csv_and_remove_a_previous_report(tmp_path):
    raw = valid_raw_domains()
    raw["dm"].loc[1, "SEX"] = "FEMALE"
    study = write_study_folder(tmp_path / "bad", raw)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("an old report")  # as an earlier run wrote it (its marker)
    write_marker(out, kind="analysis", status="complete", files=["report.html"])
    with pytest.raises(StudyInputError) as exc:
        analyze(study, out)
    assert any(i.rule == "CONTROLLED_TERM" for i in exc.value.issues)
    assert sorted(p.name for p in out.iterdir()) == [".mmtrial-output", "issues.csv"]
    issues = pd.read_csv(out / "issues.csv")
    row = issues.loc[issues["rule"] == "CONTROLLED_TERM"].iloc[0]
    assert (row["domain"], row["variable"], row["row"], row["usubjid"], row["value"]) == ("dm", "SEX", 2, "S-002", "FEMALE")
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no temporary folder left


def test_results_json_writes_nan_and_nat_as_null_never_a_number():
    text = results_to_json({"median": float("nan"), "ci": [1.5, float("nan")], "d": pd.NaT, "n": 3})
    assert json.loads(text) == {"median": None, "ci": [1.5, None], "d": None, "n": 3}


def test_a_tiny_study_without_responders_goes_through_every_step(tmp_path):
    # 3 hand-made subjects, no post-baseline response, one never dosed: every step must cope
    study = write_study_folder(tmp_path / "s", valid_raw_domains())
    out = analyze(study, tmp_path / "out", run_date="2026-01-01")
    assert out.report_html.exists() and out.results_json.exists()
    res = json.loads(out.results_json.read_text())
    assert res["populations"]["enrolled"] == 3 and res["populations"]["safety"] == 2
    assert {p.stem for p in (tmp_path / "out" / "adam").iterdir()} >= {"adsl", "adrs", "adtte", "adex", "adlb", "adae"}
    import duckdb

    con = duckdb.connect(str(tmp_path / "out" / "mmtrial.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    con.close()
    assert {"adsl", "adrs", "sdtm_dm", "sdtm_lb"} <= tables
    # issue 15: once mmtrial.duckdb is written the domains nothing reads any more are released;
    # reading one raises instead of passing for an absent domain
    study_after = out.analysis.study
    assert "lb" in study_after and "lb" not in study_after.domains
    with pytest.raises(RuntimeError, match="'lb' was released"):
        study_after.get("lb")
    assert study_after.get("ex") is not None and study_after.get("dm") is not None


def test_study_release_keeps_only_the_named_domains():
    from mmtrial.context import Study

    s = Study(domains={"dm": pd.DataFrame({"USUBJID": ["A"]}), "lb": pd.DataFrame({"USUBJID": ["A"]})})
    s.release(keep=("dm", "suppdm"))
    assert list(s.domains) == ["dm"] and s.released == {"lb"}
    assert s.get("suppdm") is None  # absent, never read: still None
    with pytest.raises(RuntimeError, match="released"):
        s["lb"]


def test_domain_release_plan_after_the_last_reader():
    # hand-worked from DOMAINS_READ_BY_STEP: lb's last reader is conventions, cm's tte (after
    # prior_therapy), ae's exposure_safety; tr is read only by response (every domain); dm, ex,
    # suppdm stay for the outputs; a step not in the table reads every domain
    from mmtrial.pipeline import FINAL_STEPS, STEPS, plan_domain_release

    doms = ["dm", "ex", "lb", "cm", "ae", "tr", "suppdm", "zz"]
    plan = plan_domain_release(STEPS + FINAL_STEPS, doms)
    assert plan == {"conventions": ("lb",), "tte": ("cm",), "exposure_safety": ("ae",),
                    "response": ("tr", "zz")}
    assert plan_domain_release(("adsl", "my_step", "tte"), doms) == {
        "my_step": ("lb", "ae", "tr", "zz"), "tte": ("cm",)}


def test_domain_readers_table_matches_the_steps_source():
    """Every domain a step reads (``study.get("xx")``, ``study["xx"]``; ``study.domains`` or the
    Study passed on: every domain) is in pipeline.DOMAINS_READ_BY_STEP, so no domain is released
    before its last reader (reading a released one would raise, not pass unnoticed)."""
    import re
    from pathlib import Path

    import mmtrial.steps
    from mmtrial.pipeline import DOMAINS_READ_BY_STEP, FINAL_STEPS, STEPS

    folder = Path(mmtrial.steps.__file__).parent
    for step in STEPS + FINAL_STEPS:
        text = (folder / f"{step}.py").read_text()
        reads = set(re.findall(r"study(?:\.get\(|\[)\s*[\"']([a-z]+)[\"']", text))
        if "study.domains" in text or re.search(r"a\.study\s*[,)]", text):  # every domain, or the Study passed on
            reads.add("*")
        table = set(DOMAINS_READ_BY_STEP[step])
        assert reads <= table or "*" in table, (step, reads - table)


def test_domain_narrowing_plan_after_the_last_whole_reader():
    # hand-worked from DOMAINS_READ_BY_STEP and DOMAIN_ROWS_READ_BY_STEP: lb is read whole up to
    # exposure_safety, then only biomarker (its biomarker records) and conventions (the LBTEST
    # names) read it; no other domain has a row-only reader; dm/ex/suppdm are kept
    from mmtrial.pipeline import DOMAIN_ROWS_READ_BY_STEP, FINAL_STEPS, STEPS, plan_domain_narrowing

    doms = ["dm", "ex", "lb", "cm", "ae", "suppdm"]
    bio, names = DOMAIN_ROWS_READ_BY_STEP[("biomarker", "lb")], DOMAIN_ROWS_READ_BY_STEP[("conventions", "lb")]
    assert plan_domain_narrowing(STEPS + FINAL_STEPS, doms) == {"exposure_safety": {"lb": (bio, names)}}
    # a later whole reader (a step not in the table reads every domain) cancels the narrowing
    assert plan_domain_narrowing(("exposure_safety", "biomarker", "my_step", "conventions"), doms) == {
        "my_step": {"lb": (names,)}}
    # no whole reader before the row reader: nothing to narrow after
    assert plan_domain_narrowing(("biomarker", "conventions"), doms) == {}
    assert plan_domain_narrowing(("exposure_safety", "biomarker"), doms, keep=("lb",)) == {}


def test_study_narrow_keeps_the_selected_rows_with_their_index_and_dtypes():
    from mmtrial.context import Study

    lb = pd.DataFrame({"USUBJID": pd.array(["A", "B", "C", None], dtype="str"), "LBSTRESN": [1.0, 2.0, None, 4.0]},
                      index=[10, 11, 13, 17])
    s = Study(domains={"lb": lb})
    s.narrow("lb", [False, True, False, True], readers="x")
    pd.testing.assert_frame_equal(s["lb"], lb.iloc[[1, 3]])
    assert s.narrowed == {"lb": "x"}


def _lb_for_selectors():
    return pd.DataFrame({
        "USUBJID": ["S1", "S1", "S2", "S2", "S3", "S3", "S3", "S4"],
        "LBCAT": pd.array(["CHEMISTRY", " BIOMARKER", "BIOMARKER", None, "HEMATOLOGY", "BIOMARKER ",
                           "CHEMISTRY", "biomarker"], dtype="str"),
        "LBTESTCD": pd.array(["ALB", "GENE1", "GENE1", "ALB", "HGB", "GENE2", None, None], dtype="str"),
        "LBTEST": pd.array([None, "Gene 1", "Gene one", "Albumin", "Hemoglobin", None, "Unknown", "Other"],
                           dtype="str"),
    })


def test_row_selectors_pick_the_rows_the_steps_read():
    # hand-worked on the frame above: LBCAT = BIOMARKER after stripping blanks (case as given);
    # the first record with an LBTEST of each LBTESTCD (a missing LBTESTCD is one key, as
    # drop_duplicates has it), which is what conventions read before (dropna + drop_duplicates)
    from mmtrial.steps.biomarker import biomarker_rows
    from mmtrial.steps.conventions import lbtest_name_rows

    lb = _lb_for_selectors()
    assert biomarker_rows(lb).tolist() == [False, True, True, False, False, True, False, False]
    assert lbtest_name_rows(lb).tolist() == [False, True, False, True, True, False, True, False]
    old = lb[["LBTESTCD", "LBTEST"]].dropna(subset=["LBTEST"]).drop_duplicates("LBTESTCD")
    assert old.index.tolist() == lb.index[lbtest_name_rows(lb)].tolist()
    assert not biomarker_rows(lb.drop(columns="LBCAT")).any()
    assert not lbtest_name_rows(lb.drop(columns="LBTEST")).any()


def test_row_selectors_give_the_same_rows_on_a_narrowed_domain():
    """Every subset of lb holding a selector's rows gives the selector the same rows (so each
    may run on lb narrowed to the union of the selectors): all 256 subsets of the 8 records."""
    import itertools

    import numpy as np

    from mmtrial.pipeline import DOMAIN_ROWS_READ_BY_STEP, row_selector

    lb = _lb_for_selectors()
    for path in DOMAIN_ROWS_READ_BY_STEP.values():
        sel = row_selector(path)
        want = lb.index[sel(lb)].tolist()
        for extra in itertools.product([False, True], repeat=len(lb)):
            sub = lb.iloc[np.flatnonzero(sel(lb) | np.array(extra))]
            assert sub.index[sel(sub)].tolist() == want, (path, extra)


def test_row_readers_select_with_their_selector():
    """Each (step, domain) of DOMAIN_ROWS_READ_BY_STEP names a function of the step's module that
    the step's source calls, and the step reads that domain (DOMAINS_READ_BY_STEP)."""
    import importlib
    import inspect

    from mmtrial.pipeline import DOMAIN_ROWS_READ_BY_STEP, DOMAINS_READ_BY_STEP

    for (step, dom), path in DOMAIN_ROWS_READ_BY_STEP.items():
        module, _, func = path.partition(":")
        assert module == f"mmtrial.steps.{step}" and dom in DOMAINS_READ_BY_STEP[step]
        source = inspect.getsource(importlib.import_module(module))
        assert callable(getattr(importlib.import_module(module), func))
        assert source.count(f"{func}(") >= 2, (step, func)  # defined and called


def test_variables_dropped_after_the_checks_are_named_by_no_step_side_module():
    """pipeline.VARIABLES_NOT_READ_BY_STEPS: no module that runs after the checks (steps, derive,
    stats, tables, figures, report, submission) names a dropped variable, so dropping it changes
    no output. ex's VISIT (the cycle source of the exposure derivation) is the one other variable
    of that name."""
    from pathlib import Path

    import mmtrial
    from mmtrial.pipeline import VARIABLES_NOT_READ_BY_STEPS

    root = Path(mmtrial.__file__).parent
    other_domain = {"VISIT": {"derive/exposure.py", "steps/exposure_safety.py"}}  # ex's VISIT
    for folder in ("steps", "derive", "stats", "tables", "figures", "report", "submission"):
        for path in (root / folder).rglob("*.py"):
            text, rel = path.read_text(), path.relative_to(root).as_posix()
            for names in VARIABLES_NOT_READ_BY_STEPS.values():
                for name in names:
                    if rel in other_domain.get(name, ()):
                        continue
                    assert f'"{name}"' not in text and f"'{name}'" not in text, (rel, name)


def test_drop_unread_variables_shares_the_other_variables():
    import numpy as np

    from mmtrial.context import Study
    from mmtrial.pipeline import drop_unread_variables

    lb = pd.DataFrame({"USUBJID": ["A", "B"], "LBSTRESN": [1.0, 2.0], "LBDTF": ["", "D"], "VISIT": ["C1", "C2"]})
    s = Study(domains={"lb": lb, "dm": pd.DataFrame({"VISIT": ["x"]})})
    drop_unread_variables(s)
    assert list(s["lb"].columns) == ["USUBJID", "LBSTRESN"] and list(s["dm"].columns) == ["VISIT"]
    assert np.shares_memory(s["lb"]["LBSTRESN"].to_numpy(), lb["LBSTRESN"].to_numpy())


def test_input_errors_found_by_a_derivation_also_leave_only_issues_csv(tmp_path):
    # overlapping ex intervals of one drug pass the reader but not the exposure derivation
    # (derive/exposure.py): the run must still end with issues.csv and no report
    raw = valid_raw_domains()
    raw["ex"].loc[1, "EXSTDTC"] = "2019-01-20"  # starts before the previous interval ends (02-03)
    study = write_study_folder(tmp_path / "s", raw)
    with pytest.raises(StudyInputError) as exc:
        analyze(study, tmp_path / "out")
    assert any("overlap" in i.problem for i in exc.value.issues)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mmtrial-output", "issues.csv"]
    assert pd.read_csv(tmp_path / "out" / "issues.csv")["problem"].str.contains("overlap").any()


def _fake_step(monkeypatch, name, run):
    """Register ``run`` as the step module ``mmtrial.steps.<name>`` for one test."""
    import sys
    import types

    module = types.ModuleType(f"mmtrial.steps.{name}")
    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_last_read_carries_out_the_domain_plan_inside_the_step(monkeypatch):
    """Study.last_read (issue 15): the narrowing and the release planned after a step happen when
    the step calls it, not when the step returns; reading the domain again in the step raises;
    after the step the plan is done once, and a step that does not call it gets it afterwards."""
    from mmtrial.context import Analysis, Study
    from mmtrial.pipeline import DOMAIN_ROWS_READ_BY_STEP, run_steps
    from mmtrial.protocol.model import Protocol

    lb = _lb_for_selectors()
    ae = pd.DataFrame({"USUBJID": ["S1"]})
    seen = {}

    def early(a):
        seen["before"] = (len(a.study["lb"]), "ae" in a.study.domains)
        a.study.last_read("lb")
        seen["lb after last_read"] = len(a.study.domains["lb"])  # the biomarker records only (3)
        with pytest.raises(RuntimeError, match="last_read"):
            a.study.get("lb")
        a.study.last_read("ae")
        seen["ae after last_read"] = "ae" in a.study.domains
        a.study.last_read("lb")  # a second call: nothing more to do

    def late(a):
        seen["late"] = (len(a.study["lb"]), "ae" in a.study.domains)

    _fake_step(monkeypatch, "early_step", early)
    _fake_step(monkeypatch, "late_step", late)
    bio = DOMAIN_ROWS_READ_BY_STEP[("biomarker", "lb")]
    plans = {"release_domains": {"early_step": ("ae",), "late_step": ("ae",)},
             "narrow_domains": {"early_step": {"lb": (bio,)}, "late_step": {"lb": (bio,)}}}
    a = Analysis(study=Study(domains={"lb": lb, "ae": ae}), protocol=Protocol.load(None))
    run_steps(a, ("early_step",), **plans)
    assert seen == {"before": (8, True), "lb after last_read": 3, "ae after last_read": False}
    assert a.study.released == {"ae"} and a.study.get("lb").index.tolist() == [1, 2, 5]
    assert a.study.after_last_read == {} and a.study.finished == set()
    # a step that never calls last_read: the same plan after it
    b = Analysis(study=Study(domains={"lb": lb, "ae": ae}), protocol=Protocol.load(None))
    run_steps(b, ("late_step",), **plans)
    assert seen["late"] == (8, True)
    assert b.study.released == {"ae"} and b.study.get("lb").index.tolist() == [1, 2, 5]


def test_for_storage_writes_mixed_objects_as_text_without_touching_the_input():
    """pipeline._for_storage: a column of mixed objects becomes str(value) (missing stays
    missing), text and typed columns are left as they are and shared with the input, which is
    not modified (issue 15: the frame is copied shallowly, not every column); a frame with
    nothing to change is returned itself. Expected values worked by hand."""
    import numpy as np

    from mmtrial.pipeline import _for_storage

    df = pd.DataFrame({"AVAL": [1.5, 2.0, np.nan], "NOCONF": [True, None, False],
                       "TEXT": pd.array(["a", None, "c"], dtype="str"), "OBJ": ["x", None, "z"]})
    before = df.copy()
    out = _for_storage(df)
    assert out["NOCONF"].isna().tolist() == [False, True, False]
    assert out["NOCONF"].dropna().tolist() == ["True", "False"]
    pd.testing.assert_frame_equal(df, before)  # the input as it was
    assert np.shares_memory(out["AVAL"].to_numpy(), df["AVAL"].to_numpy())
    pd.testing.assert_frame_equal(out.drop(columns="NOCONF"), df.drop(columns="NOCONF"))
    plain = df.drop(columns="NOCONF")
    assert _for_storage(plain) is plain


def test_analyze_runs_under_mmtrials_pandas_options_and_restores_the_callers(tmp_path, monkeypatch):
    """analyze() computes without numexpr (pipeline.pandas_options: as a plain install, which has
    no numexpr) and gives the caller's pandas options back afterwards, also after an error."""
    import pandas as pd

    import mmtrial.pipeline as pipeline

    pytest.importorskip("numexpr")  # the test environment has it (scikit-survival's dependency)
    seen: list[bool] = []

    def load(*args, **kwargs):
        seen.append(pd.get_option("compute.use_numexpr"))
        raise RuntimeError("stop after reading")

    monkeypatch.setattr(pipeline, "load_study", load)
    study = tmp_path / "study"
    study.mkdir()
    (study / "dm.csv").write_text("STUDYID,USUBJID\nS,1\n")
    with pd.option_context("compute.use_numexpr", True):
        with contextlib.suppress(Exception):  # whatever analyze makes of the error, the options return
            pipeline.analyze(study, tmp_path / "out")
        assert pd.get_option("compute.use_numexpr") is True
    assert seen == [False]
