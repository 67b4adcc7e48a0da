"""Cox hazard ratio on the Worcester Heart Attack Study (WHAS500): CAMIS's R-vs-SAS comparison.

The reference: PSI AIMS CAMIS, "R vs SAS - Kaplan Meier and Cox-proportion hazards modelling"
(Comp/r-sas_survival.qmd, with R/survival.qmd and SAS/survival.qmd): the model is
``coxph(Surv(LENFOLY, FSTAT) ~ AFB)`` with ``LENFOLY = round(LENFOL / 365.25, 2)`` and AFB = 1
(atrial fibrillation) as the reference level, so the hazard ratio is AFB = 0 vs AFB = 1. CAMIS
reports HR 0.583 with R's default Efron ties and 0.584 with SAS PHREG's default Breslow ties (the
rounded years make the ties). The stratified model adds ``strata(GENDER)``.

The data: Hosmer, Lemeshow & May, Applied Survival Analysis 2nd ed. (Wiley 2008), shipped by
scikit-survival (its ``datasets/data/whas500.arff``, what ``sksurv.datasets.load_whas500`` reads;
GPL-3, a test-only dependency, never imported by mmtrial). The tests skip with the reason when
scikit-survival is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmtrial.stats.twoarm import compute_stratified_cox
from mmtrial.stats.weighting import fit_weighted_cox
from support.rscript import run_r


def _whas500_arff() -> Path:
    """The WHAS500 ARFF file that scikit-survival installs (read without importing sksurv, whose
    scikit-learn import costs seconds; ``sksurv.datasets.load_whas500`` reads the same file)."""
    spec = importlib.util.find_spec("sksurv")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-survival (the test extra) is not installed: it ships the WHAS500 data")
    path = Path(spec.origin).parent / "datasets" / "data" / "whas500.arff"
    if not path.is_file():
        pytest.skip(f"scikit-survival has no {path.name} at {path.parent}")
    return path


@pytest.fixture(scope="module")
def whas500() -> pd.DataFrame:
    from scipy.io import arff

    raw = pd.DataFrame(arff.loadarff(_whas500_arff())[0])
    days = raw["lenfol"].to_numpy(dtype=float)
    nominal = {c: raw[c].str.decode("ascii").astype(int).to_numpy() for c in ("fstat", "afb", "gender")}
    return pd.DataFrame({
        "lenfol": days,
        # CAMIS: LENFOLY = round(LENFOL / 365.25, 2) (R round; SAS round(x, 0.01))
        "lenfoly": np.round(days / 365.25, 2),
        **nominal,
        "age": raw["age"].to_numpy(float), "bmi": raw["bmi"].to_numpy(float),
    })


def test_whas500_is_the_camis_data(whas500):
    # Hosmer, Lemeshow & May 2008, section 1.3: 500 subjects, 215 deaths, 78 with AFB.
    assert len(whas500) == 500
    assert int(whas500["fstat"].sum()) == 215
    assert int(whas500["afb"].sum()) == 78


@pytest.mark.parametrize(("ties", "published"), [("efron", 0.583), ("breslow", 0.584)])
def test_cox_hr_matches_camis_published(whas500, ties, published):
    # CAMIS Comp/r-sas_survival.qmd: HR (AFB 0 vs 1) 0.583 R (Efron), 0.584 SAS (Breslow).
    d = whas500
    r = compute_stratified_cox(d["lenfoly"], d["fstat"], (d["afb"] == 0).astype(int), ties=ties)
    assert round(r.hr, 3) == published
    assert r.ci[0] < r.hr < r.ci[1]
    assert r.n_events == 215


R_WHAS = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); d <- read.csv(a[1])
d$AFB <- factor(d$afb, levels = c(1, 0))
out <- NULL
for (tt in c("lenfol", "lenfoly")) for (ties in c("efron", "breslow")) for (st in c(0, 1)) {
  f <- if (st == 1) coxph(as.formula(paste0("Surv(", tt, ", fstat) ~ AFB + strata(gender)")),
                          data = d, ties = ties)
       else coxph(as.formula(paste0("Surv(", tt, ", fstat) ~ AFB")), data = d, ties = ties)
  ci <- exp(confint(f))
  out <- rbind(out, data.frame(time = tt, ties = ties, strat = st, hr = exp(coef(f))[[1]],
                               lo = ci[1, 1], hi = ci[1, 2], term = "AFB0", coef = NA, se = NA))
}
for (ties in c("efron", "breslow")) {  # several covariates
  f <- coxph(Surv(lenfoly, fstat) ~ afb + gender + age + bmi, data = d, ties = ties)
  out <- rbind(out, data.frame(time = "multi", ties = ties, strat = 0, hr = NA, lo = NA, hi = NA,
                               term = names(coef(f)), coef = unname(coef(f)), se = sqrt(diag(vcov(f)))))
}
write.csv(out, stdout(), row.names = FALSE)
"""


@pytest.fixture(scope="module")
def r_whas(tmp_path_factory, whas500) -> pd.DataFrame:
    """R survival coxph on WHAS500, one R run for every test below."""
    return run_r(tmp_path_factory.mktemp("whas_r"), R_WHAS, whas500)


@pytest.mark.r
def test_cox_on_whas500_matches_r_coxph_live(r_whas, whas500):
    # R survival coxph, live: both time scales (days and CAMIS's rounded years), both ties,
    # unstratified and stratified by gender (CAMIS's stratified model).
    ref = r_whas[r_whas["time"] != "multi"]
    d = whas500
    for row in ref.itertuples():
        strata = d["gender"] if row.strat == 1 else None
        r = compute_stratified_cox(d[row.time], d["fstat"], (d["afb"] == 0).astype(int), strata,
                                   ties=row.ties)
        np.testing.assert_allclose([r.hr, *r.ci], [row.hr, row.lo, row.hi], rtol=1e-6,
                                   err_msg=f"{row.time} {row.ties} strata={row.strat}")


@pytest.mark.r
def test_multivariable_cox_on_whas500_matches_r_coxph_live(r_whas, whas500):
    # Several covariates (stats/weighting.fit_weighted_cox, unit weights): the WHAS500 model of
    # atrial fibrillation adjusted for gender, age and BMI (the UCLA/CAMIS data), R coxph live.
    ref = r_whas[r_whas["time"] == "multi"]
    d = whas500
    x = d[["afb", "gender", "age", "bmi"]].to_numpy(float)
    for ties, r in ref.groupby("ties", sort=False):
        fit = fit_weighted_cox(d["lenfoly"], d["fstat"], x, ties=ties)
        assert fit.converged
        np.testing.assert_allclose(fit.coef, r["coef"].to_numpy(), rtol=1e-6, err_msg=ties)
        np.testing.assert_allclose(np.sqrt(np.diag(fit.var_model)), r["se"].to_numpy(), rtol=1e-5, err_msg=ties)
