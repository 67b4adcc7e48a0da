"""Session fixtures shared across the suite: the bundled demo (synthetic STORM-like study, n=123,
seed 7) simulated and analysed once per test run: under pytest-xdist the first worker that needs
it builds it and pickles it into the run's shared temporary folder, the other workers load that
copy (one build instead of one per worker; each worker still has its own objects)."""

from __future__ import annotations

import fcntl
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import shared_pickle


@dataclass
class Demo:
    study_dir: Path
    out_dir: Path
    truth: object  # the simulator's ground truth (pandas DataFrame)
    output: object  # mmtrial.pipeline.AnalysisOutput


def _build_demo(base: Path) -> Demo:
    from mmtrial.pipeline import analyze
    from mmtrial.simulate import simulate_study, write_study

    sim = simulate_study(n=123, seed=7)
    write_study(sim, base / "study", fmt="csv")
    out = analyze(base / "study", base / "output", run_date="2026-01-01T00:00:00Z")
    return Demo(study_dir=base / "study", out_dir=base / "output", truth=sim.truth, output=out)


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Demo:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _build_demo(tmp_path_factory.mktemp("demo"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, common to its workers
    cached = shared / "demo.pickle"
    with open(shared / "demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits for the first one's build
        if cached.exists():
            return Demo(*pickle.loads(cached.read_bytes()))
        built = _build_demo(Path(tempfile.mkdtemp(prefix="demo-", dir=shared)))
        tmp = shared / "demo.pickle.tmp"
        shared_pickle.dump((built.study_dir, built.out_dir, built.truth, built.output), tmp)
        os.replace(tmp, cached)
        return built


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
