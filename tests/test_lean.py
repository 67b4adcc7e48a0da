"""Lean imports and no leftover processes (issue 15).

* ``import mmtrial`` (and the CLI module) must not import the heavy libraries: they load where
  used (scipy in the statistics, matplotlib in the figures, scikit-learn in the classifier,
  DuckDB when mmtrial.duckdb is written, WeasyPrint for the PDF).
* No process outlives a Python ``analyze()`` call: the biomarker permutations run in worker
  processes (``n_jobs = 2``) that must all be joined before ``analyze`` returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("scipy", "statsmodels", "matplotlib", "sklearn", "duckdb", "weasyprint", "joblib")


def _run(code: str, timeout: float = 600) -> str:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env, timeout=timeout, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["mmtrial", "mmtrial.cli", "mmtrial.pipeline"])
def test_import_does_not_load_heavy_libraries(module):
    loaded = json.loads(_run(f"""
        import json, sys
        import {module}
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """))
    assert loaded == [], f"import {module} loaded {loaded}"


def _children_code() -> str:
    # children of this process: psutil when installed, else a scan of /proc by parent pid
    return """
        def children():
            try:
                import psutil
                return [p.pid for p in psutil.Process().children(recursive=True)]
            except ImportError:
                pass
            me, found = os.getpid(), []
            for d in os.listdir('/proc'):
                if d.isdigit():
                    try:
                        with open(f'/proc/{d}/stat') as fh:
                            ppid = int(fh.read().rsplit(')', 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
                    if ppid == me:
                        found.append(int(d))
            return found
    """


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_no_child_process_survives_analyze(tmp_path):
    code = f"""
        import json, os
        {textwrap.indent(textwrap.dedent(_children_code()), '        ').strip()}
        from mmtrial.pipeline import analyze
        from mmtrial.simulate import simulate_study, write_study
        sim = simulate_study(n=60, seed=3)
        write_study(sim, {str(tmp_path / 'study')!r}, fmt="csv")
        before = children()
        out = analyze({str(tmp_path / 'study')!r}, {str(tmp_path / 'out')!r},
                      steps=("adsl", "response", "biomarker"),
                      options={{"biomarker": {{"permutations": 4, "n_jobs": 2}}}})
        res = json.loads(out.results_json.read_text())["biomarker"]
        print(json.dumps({{"before": before, "after": children(), "status": res.get("status"),
                          "perms": (res.get("permutation") or {{}}).get("n_permutations")}}))
    """
    got = json.loads(_run(code))
    assert got["before"] == []
    assert got["status"] == "ok" and got["perms"] == 4  # the pool really ran
    assert got["after"] == [], f"processes left behind by analyze(): {got['after']}"


def test_figures_are_drawn_without_pyplot():
    # figures are matplotlib.figure.Figure objects with their own canvas: pyplot (global figure
    # registry and backend state) is never imported by the figure builders
    got = json.loads(_run("""
        import json, sys
        import numpy as np, pandas as pd
        from mmtrial.figures.waterfall import waterfall_figure
        from mmtrial.figures.forest import forest_figure
        from mmtrial.figures.svg import figure_to_svg
        best = pd.DataFrame({"USUBJID": ["A", "B", "C"], "BOR": ["PR", "SD", "PD"],
                             "PCHGPARM": "SPEP", "BEST_PCHG": [-60.0, 5.0, 140.0]})
        svg = figure_to_svg(*waterfall_figure(best))
        fig = forest_figure([{"label": "All", "n": 10, "x": 3, "estimate": 0.3, "ci": (0.1, 0.6)}])
        svg2 = figure_to_svg(fig, "forest")
        print(json.dumps({"pyplot": "matplotlib.pyplot" in sys.modules,
                          "svg": svg.startswith("<svg") and svg2.startswith("<svg")}))
    """))
    assert got == {"pyplot": False, "svg": True}


def test_cox_models_import_neither_statsmodels_nor_scipy_stats():
    # issue 15: every Cox model of the analysis (one covariate, (start, stop] rows, strata, the
    # subgroup interaction model) is mmtrial.stats.cox's NumPy fit; statsmodels (and the
    # scipy.stats its PHReg imported) stays out of the process. Oracle of the numbers:
    # tests/stats/test_cox.py (R coxph, statsmodels PHReg)
    got = json.loads(_run("""
        import json, sys
        import numpy as np
        from mmtrial.stats.compare import compute_cox, compute_time_dependent_cox
        from mmtrial.stats.twoarm import compute_stratified_cox, compute_subgroup_hazard_ratios
        t = np.array([1., 2, 2, 3, 4, 5, 6, 7, 8, 9]); e = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 0])
        g = np.array([0, 1, 0, 1, 1, 0, 1, 0, 1, 0]); s = np.array(list("abbaabbaab"))
        hrs = [compute_cox(t, e, g).hr, compute_stratified_cox(t, e, g, s).hr,
               compute_time_dependent_cox(t, e, np.where(g == 1, 1.5, np.nan)).hr,
               compute_subgroup_hazard_ratios(t, e, g, s)[1]]
        print(json.dumps({"finite": bool(np.isfinite(hrs).all()),
                          "loaded": sorted(m for m in ("statsmodels", "scipy.stats") if m in sys.modules)}))
    """))
    assert got == {"finite": True, "loaded": []}


def test_special_functions_and_liblinear_without_the_scipy_packages_init():
    # issue 15: _dist takes scipy.special's ufuncs from scipy.special._ufuncs and liblinear's
    # BLAS from scipy.linalg.cython_blas without running the packages' __init__ (0.2 + 0.25 s);
    # oracle: scipy.special and scipy.stats imported as usual in this process (the same doubles)
    from scipy import special, stats

    got = json.loads(_run("""
        import json, sys
        import numpy as np
        from mmtrial._lazy import import_liblinear
        from mmtrial.stats import _dist
        v = [float(_dist.norm_ppf(0.975)), float(_dist.chi2_sf(3.2, 2)), float(_dist.beta_ppf(0.025, 3, 9)),
             float(_dist.norm_sf(1.3)), float(_dist._special("expit")(0.7))]
        ll = import_liblinear()
        print(json.dumps({"v": [x.hex() for x in v], "train": hasattr(ll, "train_wrap"),
                          "loaded": sorted(m for m in ("scipy.special", "scipy.linalg", "scipy.stats", "sklearn")
                                           if m in sys.modules)}))
    """))
    want = [float(stats.norm.ppf(0.975)), float(stats.chi2.sf(3.2, 2)), float(stats.beta.ppf(0.025, 3, 9)),
            float(stats.norm.sf(1.3)), float(special.expit(0.7))]
    assert got == {"v": [x.hex() for x in want], "train": True, "loaded": []}
    # a later ordinary import in the same process gets the real packages, with the same ufuncs
    after = json.loads(_run("""
        import json
        from mmtrial.stats import _dist
        _dist.norm_ppf(0.5)
        import scipy.special, scipy.stats
        print(json.dumps({"same": scipy.special.ndtri is _dist._special("ndtri"),
                          "stats": float(scipy.stats.norm.ppf(0.975)).hex()}))
    """))
    assert after == {"same": True, "stats": float(stats.norm.ppf(0.975)).hex()}


def test_classifier_runs_without_importing_scikit_learn_or_scipy_stats():
    # issue 15: the default (lasso logistic) classifier calls liblinear directly and needs neither
    # scikit-learn's package nor scipy.stats; oracle: the same fit in this process with
    # scikit-learn (hence scipy.stats) imported first, the ordinary import path: the same doubles
    import sklearn.linear_model  # noqa: F401

    code = """
        import json, sys
        import numpy as np, pandas as pd
        from mmtrial.stats.classifier import ClassifierOptions, fit_response_classifier
        rng = np.random.default_rng(3)
        y = pd.Series([1] * 12 + [0] * 14, index=[f"S{i}" for i in range(26)])
        X = pd.DataFrame(rng.normal(size=(26, 20)), index=y.index, columns=[f"M{j}" for j in range(20)])
        X.iloc[:, :2] += 1.5 * y.to_numpy()[:, None]
        r = fit_response_classifier(X, y, options=ClassifierOptions(permutations=1, n_jobs=1))
        out = [float(v).hex() for v in r.cv.predictions["probability"]] + [r.permutation.p_value.hex(),
               float(r.intercept).hex(), r.cv.auc.ci[0].hex()] + [float(v).hex() for v in r.coefficients]
    """
    lean = json.loads(_run(code + """
        print(json.dumps({"out": out, "loaded": sorted(m for m in ("sklearn", "scipy.stats") if m in sys.modules)}))
    """))
    ns: dict = {}
    exec(textwrap.dedent(code), ns)
    assert lean["loaded"] == []
    assert lean["out"] == ns["out"]
