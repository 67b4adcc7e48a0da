"""A small randomised two-arm SDTM study for tests, made from a simulated single-arm study.

The single-arm simulator (STORM regimen: selinexor + dexamethasone) gives every domain; this
helper turns it into a two-arm trial (data contract v2, "Randomised two-arm trials"):

* dm ARMCD/ARM/ACTARMCD/ACTARM: subjects assigned at random to "SD" (selinexor +
  dexamethasone, experimental) or "D" (dexamethasone, control); control subjects lose their
  selinexor ex records, so each arm gets its own regimen;
* ds: one DSDECOD = RANDOMIZED record per subject, 0-6 days before the first dose;
* suppdm: the strata STRATPI (Y/N), STRATLOT (1/>1), STRATRISS (III/I/II);
* cm: for some control subjects the first subsequent-therapy record becomes SELINEXOR
  (crossover candidates; the derivation decides from the progression date);
* optionally a treatment effect: the experimental arm's death dates are left as simulated while
  the control arm is unchanged (the point is a valid study, not a given HR).

The protocol (:func:`two_arm_protocol_text`) is storm.toml with ``[arms]`` and
``[randomisation]`` instead of ``[regimen]``, without STORM's ``[tte.endpoints]`` (so the
randomised defaults apply) and without its ``[published]`` values.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

STRATA = ("STRATPI", "STRATLOT", "STRATRISS")
LABELS = {"STRATPI": "Prior proteasome inhibitor", "STRATLOT": "Prior lines of therapy",
          "STRATRISS": "R-ISS stage"}
ARMS = {"SD": "Selinexor + dexamethasone", "D": "Dexamethasone"}

_ARMS_TOML = """
[arms.SD]
label = "Selinexor + dexamethasone"
[arms.SD.regimen]
cycle_length_days = 28
study_drug = "SELINEXOR"
drugs = [
  { name = "SELINEXOR", dose_mg = 80, days_of_week = [1, 3] },
  { name = "DEXAMETHASONE", dose_mg = 20, days_of_week = [1, 3] },
]

[arms.D]
label = "Dexamethasone"
[arms.D.regimen]
cycle_length_days = 28
study_drug = "DEXAMETHASONE"
drugs = [
  { name = "DEXAMETHASONE", dose_mg = 20, days_of_week = [1, 3] },
]
"""


def two_arm_protocol_text(*, crossover: bool = True, censor_os: bool = False, sided: int = 2,
                          per_protocol: bool = False, profile: str = "sas") -> str:
    """storm.toml as a two-arm protocol (arms SD vs D, three strata)."""
    text = resources.files("mmtrial.protocol").joinpath("storm.toml").read_text("utf-8")
    # drop [regimen] (up to the next table), [published] and the [tte.endpoints.*] tables
    text = re.sub(r"(?ms)^\[regimen\]\n.*?(?=^\[)", _ARMS_TOML.lstrip() + "\n", text)
    text = re.sub(r"(?ms)^\[published\]\n.*?(?=^\[)", "", text)
    text = re.sub(r"(?ms)^\[tte\.endpoints\.[A-Z]+\]\n.*?(?=^\[)", "", text)
    text = re.sub(r'(?m)^profile = "sas"', f'profile = "{profile}"', text)
    rnd = (
        "\n[randomisation]\n"
        'experimental = "SD"\ncontrol = "D"\n'
        f"strata = {json.dumps(list(STRATA))}\n"
        f"sided = {sided}\nper_protocol = {'true' if per_protocol else 'false'}\n"
        f"crossover = {{ allowed = {'true' if crossover else 'false'}, "
        f"censor_os = {'true' if censor_os else 'false'} }}\n"
    )
    return text + rnd


def make_two_arm_domains(n: int = 80, seed: int = 3) -> dict[str, pd.DataFrame]:
    """The two-arm study's SDTM domains (frames), from ``simulate_study(n, seed)``."""
    from mmtrial.simulate import simulate_study

    sim = simulate_study(n=n, seed=seed)
    d = {k: v.copy() for k, v in sim.domains.items()}
    rng = np.random.default_rng(seed + 1000)
    dm = d["dm"]
    subj = dm["USUBJID"].astype(str).to_numpy()
    exp = rng.random(len(dm)) < 0.5
    armcd = np.where(exp, "SD", "D")
    dm["ARMCD"] = armcd
    dm["ARM"] = [ARMS[a] for a in armcd]
    dm["ACTARMCD"] = armcd
    dm["ACTARM"] = dm["ARM"]
    ctl = set(subj[~exp])
    ex = d["ex"]
    drop = ex["USUBJID"].astype(str).isin(ctl) & (ex["EXTRT"].astype(str).str.upper() == "SELINEXOR")
    d["ex"] = ex.loc[~drop.to_numpy()].reset_index(drop=True)
    # randomisation 0-6 days before the first dose
    first = pd.to_datetime(dm["RFXSTDTC"].astype(str).str[:10])
    rand = first - pd.to_timedelta(rng.integers(0, 7, len(dm)), unit="D")
    ds = d["ds"]
    rec = pd.DataFrame({c: None for c in ds.columns}, index=range(len(dm)))
    for c, v in (("STUDYID", dm["STUDYID"].to_numpy() if "STUDYID" in dm else "T"), ("USUBJID", subj),
                 ("DSCAT", "PROTOCOL MILESTONE"), ("DSDECOD", "RANDOMIZED"), ("DSTERM", "RANDOMIZED"),
                 ("DSSTDTC", rand.dt.strftime("%Y-%m-%d").to_numpy())):
        rec[c] = v
    d["ds"] = pd.concat([ds, rec[list(ds.columns)]], ignore_index=True)
    # strata
    vals = {"STRATPI": np.where(rng.random(len(dm)) < 0.7, "Y", "N"),
            "STRATLOT": np.where(rng.random(len(dm)) < 0.5, "1", ">1"),
            "STRATRISS": np.where(rng.random(len(dm)) < 0.2, "III", "I/II")}
    d["suppdm"] = pd.concat([pd.DataFrame({
        "STUDYID": dm["STUDYID"].to_numpy() if "STUDYID" in dm else "T", "RDOMAIN": "DM", "USUBJID": subj,
        "IDVAR": "", "IDVARVAL": "", "QNAM": q, "QLABEL": LABELS[q], "QVAL": vals[q], "QORIG": "CRF"})
        for q in STRATA], ignore_index=True)
    # crossover candidates: the first subsequent-therapy record of about half the control subjects
    cm = d["cm"]
    sub = cm.loc[(cm["CMCAT"] == "SUBSEQUENT ANTI-MYELOMA THERAPY") & cm["USUBJID"].astype(str).isin(ctl)]
    first_rec = sub.sort_values("CMSTDTC").drop_duplicates("USUBJID")
    pick = first_rec.index[rng.random(len(first_rec)) < 0.6]
    cm.loc[pick, "CMTRT"] = "SELINEXOR"
    d["cm"] = cm
    return d


def write_two_arm_study(folder: Path, *, n: int = 80, seed: int = 3, fmt: str = "csv",
                        domains: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write the two-arm study (CSV, or ``fmt`` for suppdm: csv, parquet, xpt, json) and study.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doms = domains if domains is not None else make_two_arm_domains(n, seed)
    for name, df in doms.items():
        if name == "suppdm" and fmt != "csv":
            write_domain(df, folder / f"suppdm.{fmt}", fmt)
        else:
            df.to_csv(folder / f"{name}.csv", index=False)
    (folder / "study.json").write_text(json.dumps({"synthetic": True}), "utf-8")
    return folder


def write_domain(df: pd.DataFrame, path: Path, fmt: str) -> None:
    """One domain frame in one of the reader's formats."""
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    elif fmt == "xpt":
        import pyreadstat

        pyreadstat.write_xport(df.astype(str), str(path), table_name=path.stem.upper()[:8])
    elif fmt == "json":
        doc = {"datasetJSONVersion": "1.1.0", "name": path.stem.upper(), "records": len(df),
               "columns": [{"itemOID": f"IT.{c}", "name": c, "label": c, "dataType": "string"} for c in df.columns],
               "rows": df.astype(object).where(df.notna(), None).values.tolist()}
        path.write_text(json.dumps(doc), "utf-8")
    else:
        df.to_csv(path, index=False)


def itt_endpoint_frame(adsl: pd.DataFrame, adtte: pd.DataFrame, experimental: str = "SD") -> pd.DataFrame:
    """PFS and OS rows of the ITT subjects with ``arm`` (1 = experimental) and ``stratum`` (the
    STRATA values joined by "|"): the data frame the R differential tests fit coxph/survdiff on."""
    itt = adsl.loc[adsl["ITTFL"] == "Y", ["USUBJID", "ARMCD", *STRATA]]
    d = adtte.loc[adtte["PARAMCD"].isin(["PFS", "OS"]), ["USUBJID", "PARAMCD", "AVAL", "CNSR"]].merge(itt, on="USUBJID")
    d["arm"] = (d["ARMCD"] == experimental).astype(int)
    d["stratum"] = d[list(STRATA)].astype(str).agg("|".join, axis=1)
    return d
