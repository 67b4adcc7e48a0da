"""`mmtrial simulate --protocol` and `mmtrial demo --protocol`; the simulator's import boundary.

Expected behaviour: the brief of issue 12 and the data contract v2 (exit code 2 for a usage error;
every output says "synthetic data"); docs/design.md (simulate/ never imports derive/ or stats/).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from mmtrial.cli import app

SIM_DIR = Path(__file__).resolve().parents[2] / "src" / "mmtrial" / "simulate"

KD_TOML = """
[study]
id = "KD-CLI"
title = "Carfilzomib + dexamethasone (CLI test)"
drug = "CARFILZOMIB"

[regimen]
cycle_length_days = 28
study_drug = "CARFILZOMIB"
drugs = [
  { name = "CARFILZOMIB", dose = 56, unit = "mg/m2", route = "INTRAVENOUS", cycle_days = [1, 2, 8, 9, 15, 16], step_up = [ { cycle = 1, day = 1, dose = 20 }, { cycle = 1, day = 2, dose = 20 } ] },
  { name = "DEXAMETHASONE", dose = 20, unit = "mg", route = "ORAL", cycle_days = [1, 2, 8, 9, 15, 16, 22, 23] },
]

[dose_ladder.CARFILZOMIB]
source = "carfilzomib dose-level reductions (test)"
levels = [ { level = 0, dose = 56 }, { level = -1, dose = 45 } ]

[visits]
response_assessment_days = 28
lab_interval_days = 7
assessment_window_days = 7

[simulation]
n = 30
seed = 5
"""


def test_simulator_never_imports_derive_or_stats():
    for f in SIM_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text("utf-8"))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for m in mods:
                assert not m.startswith(("mmtrial.derive", "mmtrial.stats")), (f.name, m)
    code = ("import sys, mmtrial.simulate, mmtrial.simulate.config, mmtrial.simulate.calibration; "
            "print([m for m in sys.modules if m.startswith(('mmtrial.derive', 'mmtrial.stats'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SIM_DIR.parents[1])})
    assert out.stdout.strip() == "[]"


def test_simulate_cli_reads_the_protocol_file(tmp_path):
    proto = tmp_path / "kd.toml"
    proto.write_text(KD_TOML, "utf-8")
    res = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "study"), "--protocol", str(proto)])
    assert res.exit_code == 0, res.output
    assert "synthetic data" in res.output
    study = tmp_path / "study"
    meta = json.loads((study / "study.json").read_text())
    assert meta["synthetic"] is True and meta["n"] == 30 and meta["seed"] == 5  # from [simulation]
    assert meta["protocol_id"] == "KD-CLI" and meta["study_drug"] == "CARFILZOMIB"
    ex = pd.read_csv(study / "ex.csv")
    assert set(ex["EXTRT"]) == {"CARFILZOMIB", "DEXAMETHASONE"} and set(ex["EXDOSU"]) == {"mg"}
    assert (study / "vs.csv").is_file() and (study / "_truth_cycles.csv").is_file()


def test_simulate_cli_bundled_name_and_usage_errors(tmp_path):
    r = CliRunner()
    ok = r.invoke(app, ["simulate", "--out", str(tmp_path / "s"), "--protocol", "storm", "--n", "8", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "s" / "study.json").read_text())["protocol_id"] == "STORM"
    missing = r.invoke(app, ["simulate", "--out", str(tmp_path / "t"), "--protocol", "no-such-protocol"])
    assert missing.exit_code == 2 and "no bundled protocol" in missing.output and "stratus" in missing.output
    bad = tmp_path / "bad.toml"
    bad.write_text(KD_TOML.replace("n = 30", "n = 30\nrespons_rate = 0.3"), "utf-8")
    res = r.invoke(app, ["simulate", "--out", str(tmp_path / "u"), "--protocol", str(bad)])
    assert res.exit_code == 2 and "simulation.respons_rate" in res.output
    assert not (tmp_path / "u").exists()


def test_demo_any_protocol_end_to_end_rdi_is_100_for_full_adherence(tmp_path):
    # full adherence = every planned dose taken until treatment stopped (often mid-cycle: death,
    # progression); RDI 100% by the rule of docs/exposure.md (the last cycle counts up to the end of
    # treatment), within the 0.01 mg rounding of the mg/m2 doses (carfilzomib >= 20 mg/m2)
    proto = tmp_path / "kd.toml"
    proto.write_text(KD_TOML, "utf-8")
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--protocol", str(proto), "--quiet"])
    assert res.exit_code == 0, res.output
    adex = pd.read_parquet(tmp_path / "demo" / "output" / "adam" / "adex.parquet")
    truth = pd.read_csv(tmp_path / "demo" / "study" / "_truth.csv")
    full = set(truth.loc[truth["TRUE_FULL_ADHERENCE"] == "Y", "USUBJID"])
    rdi = adex[adex["USUBJID"].isin(full)]["RDI"]
    assert len(rdi) and ((rdi - 1.0).abs() < 0.001).all(), adex[adex["USUBJID"].isin(full)]
    assert (adex.loc[adex["USUBJID"].isin(full), "NINTERR"] == 0).all()


def test_boston_simulate_writes_a_randomised_study(tmp_path):
    # issue 13: `mmtrial simulate --protocol boston` writes the randomised study (both arms, SUPPDM)
    sim = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "s"), "--protocol", "boston", "--n", "16",
                                   "--quiet"])
    assert sim.exit_code == 0, sim.output
    dm = pd.read_csv(tmp_path / "s" / "dm.csv")
    assert set(dm["ARMCD"]) == {"SVD", "VD"} and (tmp_path / "s" / "suppdm.csv").exists()
    assert json.loads((tmp_path / "s" / "study.json").read_text())["protocol_id"] == "BOSTON"


def test_boston_demo_end_to_end(tmp_path):
    """issue 13: `mmtrial demo --protocol boston` runs end to end on the simulated randomised study
    (about 30 s of CPU; back in the default run since the fifth pass of issue 15, docs/design.md
    "The test suite's time"). The two-arm statistics are compared with R in
    tests/arms/test_two_arm_e2e.py."""
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--protocol", "boston", "--n", "60",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "demo" / "output"
    results = json.loads((out / "results.json").read_text())
    assert results["populations"]["enrolled"] == 60
    assert "synthetic data" in (out / "report.html").read_text("utf-8").lower()
    comp = results["comparison"]  # the two-arm analysis (steps/comparison.py)
    assert (comp["experimental"], comp["control"]) == ("SVD", "VD")
    assert comp["PFS"]["hr"] > 0 and comp["ORR"]["n"]["SVD"] + comp["ORR"]["n"]["VD"] == 60
