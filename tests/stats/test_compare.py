"""Tests for mmtrial.stats.compare: counting-process split (hand), log-rank (scipy), Mantel-Byar
and time-dependent Cox (R survival coxph), landmark analysis (hand, Anderson 1983)."""

from __future__ import annotations

import io
import shutil
import subprocess
import textwrap

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmtrial.stats import (
    compute_cox,
    compute_landmark_comparison,
    compute_logrank,
    compute_mantel_byar,
    compute_naive_comparison,
    compute_time_dependent_cox,
    km_options,
)
from mmtrial.stats.compare import compute_counting_process


def test_counting_process_split_hand_example():
    # Therneau & Grambsch 3.7: subject 0 responds at 2 and dies at 5 -> (0,2] state 0, (2,5] state 1;
    # subject 1 never responds; subject 2 "responds" at 6 after its end at 4 -> stays state 0;
    # subject 3 responds at 0 -> state 1 throughout.
    cp = compute_counting_process([5, 3, 4, 7], [1, 0, 1, 1], [2, np.nan, 6, 0])
    df = pd.DataFrame(cp).sort_values(["id", "start"]).reset_index(drop=True)
    assert df[["id", "start", "stop", "event", "state"]].values.tolist() == [
        [0, 0, 2, 0, 0],
        [0, 2, 5, 1, 1],
        [1, 0, 3, 0, 0],
        [2, 0, 4, 1, 0],
        [3, 0, 7, 1, 1],
    ]


def test_logrank_matches_scipy_logrank():
    # scipy.stats.logrank (hypergeometric variance, as R survdiff): chisq = statistic^2
    rng = np.random.default_rng(11)
    t = rng.integers(1, 40, 150).astype(float)
    e = rng.random(150) < 0.7
    g = rng.random(150) < 0.4
    mine = compute_logrank(t, e, g)
    x = stats.CensoredData(uncensored=t[g & e], right=t[g & ~e])
    y = stats.CensoredData(uncensored=t[~g & e], right=t[~g & ~e])
    ref = stats.logrank(x, y)
    assert mine.chisq == pytest.approx(ref.statistic**2, rel=1e-10)
    assert mine.p_value == pytest.approx(ref.pvalue, rel=1e-8)


def test_mantel_byar_without_switches_is_the_logrank_test():
    # Mantel & Byar 1974: with membership fixed from time 0 it reduces to the log-rank test
    rng = np.random.default_rng(5)
    t = rng.integers(1, 30, 80).astype(float)
    e = rng.random(80) < 0.6
    g = rng.random(80) < 0.5
    mb = compute_mantel_byar(t, e, np.where(g, 0.0, np.nan))
    lr = compute_logrank(t, e, g)
    assert mb.chisq == pytest.approx(lr.chisq, rel=1e-12)


def test_mantel_byar_hand_computed_small_case():
    # Hand: subjects (time, event, response time): A (4, 1, 1), B (2, 1, -), C (3, 1, -), D (5, 0, -).
    # t=2: at risk A(resp since 1), B, C, D: n=4, n1=1, d=1 (B, state 0): E1 = 1/4, V = 1*1/4*3/4*3/3 = 3/16
    # t=3: A, C, D: n=3, n1=1, d=1 (C): E1 = 1/3, V = 1/3*2/3 = 2/9
    # t=4: A, D: n=2, n1=1, d=1 (A, state 1): O1 = 1, E1 = 1/2, V = 1/4
    # O - E = 1 - (1/4 + 1/3 + 1/2) = -1/12; V = 3/16 + 2/9 + 1/4 = 95/144
    mb = compute_mantel_byar([4, 2, 3, 5], [1, 1, 1, 0], [1, np.nan, np.nan, np.nan])
    assert mb.observed == 1
    assert mb.expected == pytest.approx(13 / 12)
    assert mb.variance == pytest.approx(95 / 144)
    assert mb.chisq == pytest.approx((1 / 12) ** 2 / (95 / 144))


def test_landmark_analysis_hand_example():
    # Anderson 1983: landmark L = 2. Subject dying/censored before L is excluded; response by L
    # makes a responder; a response after L counts as non-response; time from L.
    t = np.array([1.0, 3.0, 5.0, 6.0, 2.0])
    e = np.array([1, 1, 0, 1, 1])
    rt = np.array([np.nan, 1.5, 4.0, 2.0, np.nan])
    lm = compute_landmark_comparison(t, e, rt, 2.0, options=km_options("sas"))
    assert lm.n_excluded == 1  # subject 0 (died at 1); subject 4 (died at 2 = L) is kept
    resp, non = lm.groups["responder"], lm.groups["non-responder"]
    assert resp.n == 2 and sorted(resp.time.tolist()) == [1.0, 4.0]  # subjects 1 (3-2) and 3 (6-2)
    assert non.n == 2 and sorted(non.time.tolist()) == [0.0, 3.0]  # subjects 4 (2-2) and 2 (5-2)


def test_naive_comparison_groups_by_best_response():
    t = np.array([1.0, 3.0, 5.0, 6.0])
    e = np.array([1, 1, 0, 1])
    nv = compute_naive_comparison(t, e, np.array([0, 1, 1, 0]), options=km_options("r"))
    assert nv.groups["responder"].n == 2 and nv.groups["non-responder"].n == 2
    assert nv.n_excluded == 0


def test_guarantee_time_bias_reproduced_in_simulation():
    # Anderson 1983: when response has no effect on survival, the naive comparison still shows a
    # large benefit, while Mantel-Byar does not. Response time ~ Exp, survival independent of it.
    rng = np.random.default_rng(2024)
    n = 1000
    t = rng.exponential(10, n)
    rt = rng.exponential(5, n)
    resp = rt < t
    e = np.ones(n)
    naive = compute_cox(t, e, resp)
    td = compute_time_dependent_cox(t, e, np.where(resp, rt, np.nan))
    assert naive.hr < 0.5  # strong spurious "benefit"
    assert 0.85 < td.hr < 1.15  # no effect once response is time-dependent
    assert compute_mantel_byar(t, e, np.where(resp, rt, np.nan)).p_value > 0.01


# -- R survival coxph ------------------------------------------------------------------------------
R_COX = textwrap.dedent(
    """
    suppressMessages(library(survival))
    d <- read.csv(commandArgs(TRUE)[1])
    out <- NULL
    for (ti in c("breslow", "efron")) {
      f <- coxph(Surv(start, stop, event) ~ state, data = d, ties = ti)
      out <- rbind(out, data.frame(ties = ti, coef = unname(coef(f)), se = unname(sqrt(diag(vcov(f)))),
                                   score = unname(f$score)))
    }
    write.csv(out, stdout(), row.names = FALSE)
    """
)


@pytest.mark.r
@pytest.mark.parametrize("tied", [False, True])
def test_time_dependent_cox_and_mantel_byar_match_r_coxph(tmp_path, tied):
    # R survival coxph(Surv(start, stop, event) ~ state, ties = "breslow"/"efron"): coefficient and
    # SE (Wald); without tied event times the Breslow score test is the Mantel-Byar statistic
    rs = shutil.which("Rscript")
    if rs is None:
        pytest.skip("R is not installed (Rscript not on PATH): coxph comparison skipped")
    rng = np.random.default_rng(99 + tied)
    n = 300
    t = rng.integers(1, 60, n).astype(float) if tied else rng.permutation(n).astype(float) + 1
    rt = np.where(rng.random(n) < 0.4, rng.uniform(0, 30, n), np.nan)
    if tied:
        rt = np.floor(rt) + 0.5
    e = (rng.random(n) < 0.7).astype(float)
    ref = _assert_time_dependent_cox_matches_r(tmp_path, rs, t, e, rt)
    if not tied:
        assert compute_mantel_byar(t, e, rt).chisq == pytest.approx(ref.loc["breslow", "score"], rel=1e-8)


@pytest.mark.r
def test_time_dependent_cox_switch_on_an_event_day_matches_r_coxph(tmp_path):
    # R survival coxph(Surv(start, stop, event) ~ state): a (start, stop] row is at risk at t only
    # when start < t (R; statsmodels PHReg counts entry <= t, Stata's convention). Integer days, as
    # in ADTTE: responses fall on days on which other subjects die, so the two conventions differ.
    # Expected values: R coxph coefficient and SE, ties Breslow and Efron.
    rs = shutil.which("Rscript")
    if rs is None:
        pytest.skip("R is not installed (Rscript not on PATH): coxph comparison skipped")
    rng = np.random.default_rng(7)
    n = 200
    t = rng.integers(2, 80, n).astype(float)
    rt = np.where(rng.random(n) < 0.5, rng.integers(1, 40, n).astype(float), np.nan)
    e = (rng.random(n) < 0.8).astype(float)
    cp = pd.DataFrame(compute_counting_process(t, e, rt))
    switch_days = set(cp.loc[(cp["state"] == 1) & (cp["start"] > 0), "start"])
    assert switch_days & set(cp.loc[cp["event"] == 1, "stop"])  # the case under test occurs
    _assert_time_dependent_cox_matches_r(tmp_path, rs, t, e, rt)


def test_cox_entry_time_equal_to_an_event_time_is_not_at_risk_then():
    # Left truncation, R Surv(entry, time): a subject is at risk at t only when entry < t
    # (Therneau & Grambsch 2000 section 3.7). Hand-worked partial likelihood, checked with R
    # coxph(Surv(s, t, e) ~ g, ties = "breslow") -> exp(coef) = 1:
    # A (g 1, entry 0, dies at 1), B (g 0, entry 0, dies at 2), C (g 0, entry 1, censored at 3),
    # D (g 1, entry 0, censored at 2.5). Risk sets: t = 1 {A, B, D} (C enters at 1: not yet at
    # risk), t = 2 {B, C, D}. With u = e^b the score is 1/(2u + 1) - u/(u + 2) = 0 -> u = 1.
    # (Counting C at risk at t = 1, the entry <= t convention, gives 1/(u + 1) = u/(u + 2) -> sqrt 2.)
    t = np.array([1.0, 2.0, 3.0, 2.5])
    e = np.array([1.0, 1.0, 0.0, 0.0])
    g = np.array([1.0, 0.0, 0.0, 1.0])
    entry = np.array([0.0, 0.0, 1.0, 0.0])
    for ties in ("breslow", "efron"):  # no tied event times: both give the same estimate
        fit = compute_cox(t, e, g, entry=entry, ties=ties)
        assert fit.hr == pytest.approx(1.0, abs=1e-6)


def _assert_time_dependent_cox_matches_r(tmp_path, rs, t, e, rt) -> pd.DataFrame:
    """Fit R coxph(Surv(start, stop, event) ~ state) on the counting-process data (R_COX) and
    assert mmtrial's coefficient and SE equal R's for Breslow and Efron ties; returns R's table."""
    cp = pd.DataFrame(compute_counting_process(t, e, rt))
    (tmp_path / "d.csv").write_text(cp.to_csv(index=False))
    (tmp_path / "c.R").write_text(R_COX)
    res = subprocess.run([rs, str(tmp_path / "c.R"), str(tmp_path / "d.csv")], capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and "there is no package called" in res.stderr:
        pytest.skip("R package 'survival' is not installed")
    assert res.returncode == 0, res.stderr
    ref = pd.read_csv(io.StringIO(res.stdout)).set_index("ties")
    for ties in ("breslow", "efron"):
        fit = compute_time_dependent_cox(t, e, rt, ties=ties)
        assert np.log(fit.hr) == pytest.approx(ref.loc[ties, "coef"], rel=1e-6, abs=1e-9)
        se = (np.log(fit.ci[1]) - np.log(fit.hr)) / stats.norm.ppf(0.975)
        assert se == pytest.approx(ref.loc[ties, "se"], rel=1e-6)
    return ref
