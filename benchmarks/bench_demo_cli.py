"""Benchmark: the 122-subject demo end to end from the CLI (issue 7: under 10 s).

Times ``mmtrial simulate`` and ``mmtrial analyze`` as subprocesses (interpreter start-up and
imports included), three runs each, and prints the median. Run:
``.venv/bin/python benchmarks/bench_demo_cli.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MMTRIAL = str(Path(sys.executable).with_name("mmtrial"))


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([MMTRIAL, *args, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(runs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        study, out = Path(tmp) / "study", Path(tmp) / "out"
        sim = [_run(["simulate", "--n", "122", "--seed", "7", "--out", str(study)]) for _ in range(runs)]
        ana = [_run(["analyze", str(study), "--out", str(out)]) for _ in range(runs)]
    print(f"mmtrial simulate (n=122): median {statistics.median(sim):.2f} s over {runs} runs")
    print(f"mmtrial analyze  (n=122): median {statistics.median(ana):.2f} s over {runs} runs "
          f"(target < 10 s end to end; report.html included)")
    print(f"end to end: {statistics.median(sim) + statistics.median(ana):.2f} s")


if __name__ == "__main__":
    main()
