"""End to end: the protocol options of a randomised study together (issue 13): ``--profile r``
(Efron ties), ``[randomisation] sided = 1``, ``crossover.censor_os = true`` and
``per_protocol = true`` on a small two-arm study.

Expected values: R survival ``coxph(..., ties = "efron")`` and ``survdiff`` (stratified) on the
ADTTE mmtrial wrote (the one-sided p is Phi((O - E) / sqrt(V)) of the experimental arm, from
survdiff's obs, exp and var); the censoring and per-protocol rules (docs/randomised.md) by pandas
on the input domains.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from mmtrial.cli import app
from support.rscript import run_r
from support.two_arm_study import (
    itt_endpoint_frame,
    make_two_arm_domains,
    two_arm_protocol_text,
    write_two_arm_study,
)

# one `mmtrial analyze` of a 60-subject two-arm study (about 20 s CPU): the only end-to-end check of
# these four options together; its own study because the options change ADSL and ADTTE.
pytestmark = pytest.mark.slow

#: Subjects (by dm row) treated with the other arm's regimen: outside the per-protocol population.
SWITCHED_ROWS = (1, 2)
#: dm row of the subject with a MAJOR deviation (the next row has a MINOR one).
DEVIATION_ROW = 5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("twoarm_opts")
    doms = make_two_arm_domains(n=60, seed=5)
    dm = doms["dm"]
    arms = dict(zip(dm["ARMCD"], dm["ARM"], strict=False))
    for i in SWITCHED_ROWS:
        other = "D" if dm.at[i, "ARMCD"] == "SD" else "SD"
        dm.at[i, "ACTARMCD"], dm.at[i, "ACTARM"] = other, arms[other]
    # one MAJOR protocol deviation (dv) for a subject treated as randomised: out of the per-protocol set
    doms["dv"] = pd.DataFrame({"USUBJID": [dm.at[DEVIATION_ROW, "USUBJID"], dm.at[DEVIATION_ROW + 1, "USUBJID"]],
                               "DVSEQ": [1, 1], "DVCAT": ["MAJOR", "MINOR"],
                               "DVDECOD": ["ELIGIBILITY CRITERIA NOT MET", "VISIT OUT OF WINDOW"]})
    write_two_arm_study(base / "study", domains=doms)
    text = two_arm_protocol_text(sided=1, censor_os=True, per_protocol=True)
    text = text.replace("per_protocol = true\n", 'per_protocol = true\nper_protocol_exclude = ["MAJOR"]\n')
    assert "per_protocol_exclude" in text
    (base / "p.toml").write_text(text, "utf-8")
    res = CliRunner().invoke(app, ["analyze", str(base / "study"), "--out", str(base / "out"), "--protocol",
                                   str(base / "p.toml"), "--profile", "r", "--quiet"])
    assert res.exit_code == 0, res.output
    out = base / "out"
    return {"results": json.loads((out / "results.json").read_text("utf-8")), "dm": dm,
            "adsl": pd.read_parquet(out / "adam" / "adsl.parquet"),
            "adtte": pd.read_parquet(out / "adam" / "adtte.parquet")}


R_SCRIPT = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); d <- read.csv(a[1], colClasses = c(stratum = "character"))
out <- NULL
for (p in c("PFS", "OS")) {
  x <- d[d$PARAMCD == p, ]
  f <- coxph(Surv(AVAL, 1 - CNSR) ~ arm + strata(stratum), data = x, ties = "efron")
  s <- survdiff(Surv(AVAL, 1 - CNSR) ~ arm + strata(stratum), data = x)
  oe <- rowSums(as.matrix(s$obs)) - rowSums(as.matrix(s$exp))
  out <- rbind(out, data.frame(param = p, hr = exp(coef(f)[[1]]), p = 1 - pchisq(s$chisq, 1),
                               z = oe[2] / sqrt(s$var[2, 2])))
}
write.csv(out, stdout(), row.names = FALSE)
"""


def test_efron_ties_and_one_sided_logrank_equal_r(run, tmp_path):
    comp = run["results"]["comparison"]
    assert comp["sided"] == 1
    adsl, adtte = run["adsl"], run["adtte"]
    r = run_r(tmp_path, R_SCRIPT, itt_endpoint_frame(adsl, adtte)).set_index("param")
    for p in ("PFS", "OS"):
        c = comp[p]
        assert c["ties"] == "efron"  # the r profile's Cox ties (R coxph default)
        assert c["hr"] == pytest.approx(r.at[p, "hr"], rel=1e-6)
        assert c["p_logrank"] == pytest.approx(r.at[p, "p"], rel=1e-6)
        # one-sided: Phi(z) of the experimental arm's standardised O - E (small = benefit)
        assert c["p_logrank_one_sided"] == pytest.approx(stats.norm.cdf(r.at[p, "z"]), rel=1e-6)
        if r.at[p, "z"] < 0:  # effect in the stated direction: half the two-sided p
            assert c["p_logrank_one_sided"] == pytest.approx(c["p_logrank"] / 2, rel=1e-6)
        else:
            assert c["p_logrank_one_sided"] == pytest.approx(1 - c["p_logrank"] / 2, rel=1e-6)


def test_os_censored_at_crossover(run):
    """censor_os: a control subject who crossed over is censored at CROSSDT (docs/randomised.md)."""
    adsl, adtte = run["adsl"], run["adtte"]
    x = adsl.loc[adsl["CROSSFL"] == "Y", ["USUBJID", "CROSSDT"]]
    assert len(x), "the study should have crossover"
    os_ = adtte.loc[adtte["PARAMCD"] == "OS"].merge(x, on="USUBJID")
    assert len(os_) == len(x)
    assert (pd.to_datetime(os_["ADT"]) <= pd.to_datetime(os_["CROSSDT"])).all()
    at = pd.to_datetime(os_["ADT"]) == pd.to_datetime(os_["CROSSDT"])
    assert (os_.loc[at, "CNSR"] == 1).all()
    assert at.sum() >= 1


def test_per_protocol_population_counts(run):
    """PPROTFL = ITT, treated, treated as randomised (ACTARMCD = ARMCD) and no MAJOR deviation
    (per_protocol_exclude = ["MAJOR"]; the MINOR one does not exclude): pandas on dm and dv."""
    dm, adsl, res = run["dm"], run["adsl"], run["results"]
    same = dm["ACTARMCD"].astype(str) == dm["ARMCD"].astype(str)
    assert int((~same).sum()) == len(SWITCHED_ROWS)
    pp = adsl.loc[adsl["PPROTFL"] == "Y", "USUBJID"]
    major, minor = dm.at[DEVIATION_ROW, "USUBJID"], dm.at[DEVIATION_ROW + 1, "USUBJID"]
    assert major not in set(pp) and minor in set(pp)
    want = dm.loc[same & (dm["USUBJID"] != major), "USUBJID"]
    treated = adsl.loc[(adsl["ITTFL"] == "Y") & (adsl["SAFFL"] == "Y"), "USUBJID"]
    assert set(pp) == set(want) & set(treated)
    assert res["populations"]["per_protocol"] == len(pp)
    assert res["populations"]["itt"] == int((adsl["ITTFL"] == "Y").sum())
