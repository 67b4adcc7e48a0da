"""End to end: `mmtrial analyze` on a randomised two-arm study writes results.json `comparison`
whose hazard ratios and log-rank p-values equal R's coxph / survdiff on the ADTTE and ADSL it
wrote (live R; skipped when R is absent), and whose ADSL/ADTTE follow the two-arm rules
(data contract v2; docs/randomised.md)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mmtrial.cli import app
from support.rscript import run_r
from support.two_arm_study import (
    STRATA,
    itt_endpoint_frame,
    two_arm_protocol_text,
    write_two_arm_study,
)

pytestmark = pytest.mark.slow  # one `mmtrial analyze` of an 80-subject study (about 30 s CPU)


@pytest.fixture(scope="module")
def two_arm(tmp_path_factory):
    base = tmp_path_factory.mktemp("twoarm")
    write_two_arm_study(base / "study", n=80, seed=3)
    (base / "two.toml").write_text(two_arm_protocol_text(), "utf-8")
    res = CliRunner().invoke(app, ["analyze", str(base / "study"), "--out", str(base / "out"),
                                   "--protocol", str(base / "two.toml"), "--quiet"])
    assert res.exit_code == 0, res.output
    out = base / "out"
    return {"base": base, "results": json.loads((out / "results.json").read_text("utf-8")),
            "adsl": pd.read_parquet(out / "adam" / "adsl.parquet"),
            "adtte": pd.read_parquet(out / "adam" / "adtte.parquet")}


R_COMPARE = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); d <- read.csv(a[1], colClasses = c(stratum = "character"))
out <- NULL
for (p in c("PFS", "OS")) {
  x <- d[d$PARAMCD == p, ]
  f <- coxph(Surv(AVAL, 1 - CNSR) ~ arm + strata(stratum), data = x, ties = "breslow")
  u <- coxph(Surv(AVAL, 1 - CNSR) ~ arm, data = x, ties = "breslow")
  s <- survdiff(Surv(AVAL, 1 - CNSR) ~ arm + strata(stratum), data = x)
  s0 <- survdiff(Surv(AVAL, 1 - CNSR) ~ arm, data = x)
  ci <- exp(confint(f))
  out <- rbind(out, data.frame(param = p, hr = exp(coef(f)[[1]]), lo = ci[1, 1], hi = ci[1, 2],
                               uhr = exp(coef(u)[[1]]), p = 1 - pchisq(s$chisq, 1), up = 1 - pchisq(s0$chisq, 1)))
}
write.csv(out, stdout(), row.names = FALSE)
"""


def test_comparison_equals_r_coxph_survdiff(two_arm, tmp_path):
    adsl, adtte = two_arm["adsl"], two_arm["adtte"]
    d = itt_endpoint_frame(adsl, adtte)
    r = run_r(tmp_path, R_COMPARE, d).set_index("param")
    comp = two_arm["results"]["comparison"]
    assert comp["experimental"] == "SD" and comp["control"] == "D" and comp["strata"] == list(STRATA)
    for p in ("PFS", "OS"):
        c = comp[p]
        assert c["ties"] == "breslow" and c["stratified"] is True
        assert c["hr"] == pytest.approx(r.at[p, "hr"], rel=1e-6)
        assert c["hr_ci"] == pytest.approx([r.at[p, "lo"], r.at[p, "hi"]], rel=1e-6)
        assert c["p_logrank"] == pytest.approx(r.at[p, "p"], rel=1e-6)
        assert c["unstratified"]["hr"] == pytest.approx(r.at[p, "uhr"], rel=1e-6)
        assert c["unstratified"]["p_logrank"] == pytest.approx(r.at[p, "up"], rel=1e-6)
        n_ev = d.loc[d["PARAMCD"] == p].assign(e=lambda x: 1 - x["CNSR"]).groupby("ARMCD")["e"].sum()
        assert c["events"] == {"SD": int(n_ev["SD"]), "D": int(n_ev["D"])}


def test_adsl_two_arm_variables(two_arm):
    """ADSL: TRT01P = the randomised arm's label, TRT01PN 1 experimental / 2 control (data contract
    v2), ITTFL for every randomised subject, RANDDT the ds RANDOMIZED date, strata from suppdm."""
    adsl = two_arm["adsl"]
    study = two_arm["base"] / "study"
    dm = pd.read_csv(study / "dm.csv")
    ds = pd.read_csv(study / "ds.csv")
    supp = pd.read_csv(study / "suppdm.csv", keep_default_na=False)
    m = adsl.merge(dm[["USUBJID", "ARMCD", "ARM"]], on="USUBJID", suffixes=("", "_DM"))
    assert (m["ARMCD"] == m["ARMCD_DM"]).all() and (m["TRT01P"] == m["ARM_DM"]).all()
    assert (m["TRT01PN"] == np.where(m["ARMCD"] == "SD", 1, 2)).all()
    assert (adsl["ITTFL"] == "Y").all()
    rand = ds.loc[ds["DSDECOD"] == "RANDOMIZED"].set_index("USUBJID")["DSSTDTC"]
    assert (pd.to_datetime(adsl["RANDDT"]).dt.strftime("%Y-%m-%d").to_numpy() == adsl["USUBJID"].map(rand).to_numpy()).all()
    want = supp.loc[supp["QNAM"] == "STRATLOT"].set_index("USUBJID")["QVAL"]
    assert (adsl["STRATLOT"].to_numpy() == adsl["USUBJID"].map(want).to_numpy()).all()
    # crossover only for control subjects, dated on or after progression
    assert set(adsl.loc[adsl["ARMCD"] == "SD", "CROSSFL"]) == {""}
    assert set(adsl.loc[adsl["ARMCD"] == "D", "CROSSFL"]) <= {"Y", "N"}
    x = adsl.loc[adsl["CROSSFL"] == "Y"]
    assert len(x) and (pd.to_datetime(x["CROSSDT"]) >= pd.to_datetime(x["PDDT"])).all()


def test_adtte_origin_is_randomisation(two_arm):
    """ADTTE of a randomised study: STARTDT = RANDDT for the ITT endpoints (data contract v2)."""
    adsl, adtte = two_arm["adsl"], two_arm["adtte"]
    for p in ("PFS", "OS", "TTNT"):
        t = adtte.loc[adtte["PARAMCD"] == p].merge(adsl[["USUBJID", "RANDDT"]], on="USUBJID")
        assert len(t) == len(adsl)
        assert (pd.to_datetime(t["STARTDT"]) == pd.to_datetime(t["RANDDT"])).all()
        assert (t["AVAL"] == (pd.to_datetime(t["ADT"]) - pd.to_datetime(t["STARTDT"])).dt.days + 1).all()


def test_subgroups_and_rpsftm_present(two_arm):
    comp = two_arm["results"]["comparison"]
    rows = comp["subgroups_PFS"]
    names = {r["subgroup"] for r in rows}
    assert {"Prior proteasome inhibitor", "Age", "Sex"} <= names
    adsl = two_arm["adsl"]
    age = [r for r in rows if r["subgroup"] == "Age"]
    assert sum(r["n"] for r in age) == int(adsl["AGE"].notna().sum())
    rp = comp["OS_rpsftm"]
    assert "sensitivity" in rp["label"] and rp["n_switchers"] == int((adsl["CROSSFL"] == "Y").sum())
    assert rp["hr_itt"] == pytest.approx(comp["OS"]["hr"], rel=1e-9)


def test_os_by_response_times_response_from_the_os_origin(two_arm):
    """results.json os_by_response: the landmark groups measure time to response from the OS origin
    (ADTTE STARTDT = RANDDT here), the clock OS runs on; responders are those with RSPFL = Y and
    RSPDT - STARTDT + 1 <= L months (Anderson, Cain & Gelber 1983; AVAL convention of the tte
    step: days + 1, 30.4375 days per month). Recomputed here with pandas from the written ADaM."""
    adsl, adtte, res = two_arm["adsl"], two_arm["adtte"], two_arm["results"]
    land = res["os_by_response"]["landmark"]
    L = float(land["landmark"])
    os_ = adtte.loc[adtte["PARAMCD"] == "OS", ["USUBJID", "AVAL", "STARTDT"]].merge(
        adsl[["USUBJID", "RSPFL", "RSPDT", "TRTSDT"]], on="USUBJID", how="left")
    t = os_["AVAL"].to_numpy(float) / 30.4375
    at_risk = t >= L

    def responders(origin: str) -> int:
        rdays = (pd.to_datetime(os_["RSPDT"]) - pd.to_datetime(os_[origin])).dt.days + 1
        resp = os_["RSPFL"].eq("Y").fillna(False).to_numpy(bool) & (rdays / 30.4375 <= L).fillna(False).to_numpy(bool)
        return int((resp & at_risk).sum())

    assert land["groups"]["responder"]["n"] == responders("STARTDT")
    assert land["n_excluded"] == int((~at_risk).sum())
