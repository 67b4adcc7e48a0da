"""Session fixtures shared across the suite: the bundled demo (synthetic STORM-like study, n=123,
seed 7) simulated and analysed once per test process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Demo:
    study_dir: Path
    out_dir: Path
    truth: object  # the simulator's ground truth (pandas DataFrame)
    output: object  # mmtrial.pipeline.AnalysisOutput


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Demo:
    from mmtrial.pipeline import analyze
    from mmtrial.simulate import simulate_study, write_study

    base = tmp_path_factory.mktemp("demo")
    sim = simulate_study(n=123, seed=7)
    write_study(sim, base / "study", fmt="csv")
    out = analyze(base / "study", base / "output", run_date="2026-01-01T00:00:00Z")
    return Demo(study_dir=base / "study", out_dir=base / "output", truth=sim.truth, output=out)


def pytest_addoption(parser) -> None:
    parser.addoption("--sweeps", action="store_true", default=False,
                     help="also run the long simulation sweeps (marker 'sweep'); a sample runs by default")


def pytest_configure(config) -> None:
    import support.sweeps

    support.sweeps.FULL = bool(config.getoption("--sweeps"))


def pytest_collection_modifyitems(config, items) -> None:
    if config.getoption("--sweeps"):
        return
    skip = pytest.mark.skip(reason="long simulation sweep: run with --sweeps (a smaller sample runs by default)")
    for item in items:
        if "sweep" in item.keywords:
            item.add_marker(skip)
