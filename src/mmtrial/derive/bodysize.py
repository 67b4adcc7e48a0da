"""Body size (height, weight, body-surface area) of each subject on a date, from vs.

Rule
----
vs rows with VSTESTCD ``HEIGHT`` (cm; ``M`` and ``IN`` converted) and ``WEIGHT`` (kg; ``LB``
converted) are the measurements (CDISC SDTM IG 3.4, VS domain; units as CDISC CT VSRESU). On a
date the subject's height and weight are the last values measured on or before it; before the
first measurement the first one is used (a baseline taken after the first dose still sets the
first doses). BSA by the regimen's formula (:func:`mmtrial.protocol.regimen.compute_bsa`:
Mosteller default, DuBois option). A new measurement therefore changes body-size doses from
its date on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.protocol.regimen import BsaFormula, compute_bsa
from mmtrial.sdtm.issues import InputIssue

#: unit -> factor to the standard unit (HEIGHT in cm, WEIGHT in kg)
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "HEIGHT": {"CM": 1.0, "M": 100.0, "IN": 2.54, "[IN_I]": 2.54},
    "WEIGHT": {"KG": 1.0, "LB": 0.45359237, "[LB_AV]": 0.45359237, "G": 0.001},
}


def derive_body_size(vs: pd.DataFrame | None) -> tuple[pd.DataFrame, list[InputIssue]]:
    """HEIGHT (cm) and WEIGHT (kg) over time: one row per subject and measurement date.

    Returns the table (USUBJID, VSDT, HEIGHT, WEIGHT; each forward-filled within the subject)
    and the problems found (an unknown unit or a non-positive value is an error naming the row).
    """
    cols = ["USUBJID", "VSDT", "HEIGHT", "WEIGHT"]
    if vs is None or vs.empty or not {"USUBJID", "VSTESTCD"} <= set(vs.columns):
        return pd.DataFrame(columns=cols), []
    test = vs["VSTESTCD"].astype("string").str.upper()
    v = vs.loc[test.isin(["HEIGHT", "WEIGHT"]).fillna(False).to_numpy()].copy()
    if v.empty:
        return pd.DataFrame(columns=cols), []
    v["VSTESTCD"] = v["VSTESTCD"].astype("string").str.upper()
    val = pd.to_numeric(v.get("VSSTRESN", v.get("VSORRES")), errors="coerce").to_numpy(dtype=float)
    unit = (v["VSSTRESU"].astype("string").str.upper().str.strip() if "VSSTRESU" in v
            else pd.Series(np.where(v["VSTESTCD"] == "HEIGHT", "CM", "KG"), index=v.index))
    fac = np.full(len(v), np.nan)
    for t, m in UNIT_FACTORS.items():
        is_t = (v["VSTESTCD"] == t).to_numpy()
        fac = np.where(is_t, unit.map(m).astype(float).to_numpy(), fac)
    dt_col = "VSDT" if "VSDT" in v else None
    dt = (v[dt_col].to_numpy(dtype="datetime64[D]") if dt_col
          else pd.to_datetime(v["VSDTC"], errors="coerce").to_numpy(dtype="datetime64[D]"))
    rown = v["ROWNUM"].to_numpy() if "ROWNUM" in v else np.arange(1, len(v) + 1)
    issues: list[InputIssue] = []
    bad_u = np.isnan(fac) & ~np.isnan(val)
    bad_v = ~np.isnan(val) & (val <= 0)
    for mask, var, shown, problem in (
        (bad_u, "VSSTRESU", unit.to_numpy(dtype=object), "unit not known for body size (HEIGHT: cm, m, "
         "in; WEIGHT: kg, lb)"),
        (bad_v, "VSSTRESN", val, "height or weight must be positive"),
        (~np.isnan(val) & np.isnat(dt), "VSDTC", v.get("VSDTC", pd.Series([None] * len(v))).to_numpy(),
         "measurement date missing or invalid"),
    ):
        for i in np.flatnonzero(mask)[:200]:
            x = shown[i]
            issues.append(InputIssue(domain="vs", variable=var, row=int(rown[i]),
                                     usubjid=str(v["USUBJID"].iat[i]),
                                     value=None if pd.isna(x) else str(x), problem=problem))
    ok = ~np.isnan(val) & ~np.isnan(fac) & ~bad_v & ~np.isnat(dt)
    long = pd.DataFrame({"USUBJID": v["USUBJID"].astype(str).to_numpy()[ok], "VSDT": dt[ok],
                         "T": v["VSTESTCD"].to_numpy(dtype=object)[ok], "V": (val * fac)[ok]})
    if long.empty:
        return pd.DataFrame(columns=cols), issues
    # one value per subject, date and test: the last row given
    wide = long.pivot_table(index=["USUBJID", "VSDT"], columns="T", values="V", aggfunc="last")
    wide = wide.reindex(columns=["HEIGHT", "WEIGHT"]).reset_index().sort_values(["USUBJID", "VSDT"])
    wide[["HEIGHT", "WEIGHT"]] = wide.groupby("USUBJID", sort=False)[["HEIGHT", "WEIGHT"]].ffill()
    wide[["HEIGHT", "WEIGHT"]] = wide.groupby("USUBJID", sort=False)[["HEIGHT", "WEIGHT"]].bfill()
    wide.columns.name = None
    return wide[cols].reset_index(drop=True), issues


def lookup_body_size(keys: pd.DataFrame, body: pd.DataFrame, formula: BsaFormula = "mosteller") -> pd.DataFrame:
    """HEIGHT, WEIGHT and BSA for each (USUBJID, ADT) of ``keys``, in the order of ``keys``.

    The last measurement on or before ADT, else the subject's first one; NaN without any.
    """
    n = len(keys)
    out = pd.DataFrame({"HEIGHT": np.full(n, np.nan), "WEIGHT": np.full(n, np.nan)})
    if n == 0 or body.empty:
        out["BSA"] = np.nan
        return out
    k = pd.DataFrame({"USUBJID": keys["USUBJID"].astype(str).to_numpy(),
                      "ADT": keys["ADT"].to_numpy(dtype="datetime64[ns]"), "_I": np.arange(n)})
    b = body.assign(VSDT=body["VSDT"].to_numpy(dtype="datetime64[ns]"))
    ks = k.sort_values("ADT", kind="stable")
    bs = b.sort_values("VSDT", kind="stable")
    back = pd.merge_asof(ks, bs, left_on="ADT", right_on="VSDT", by="USUBJID", direction="backward")
    first = b.sort_values(["USUBJID", "VSDT"]).drop_duplicates("USUBJID")[["USUBJID", "HEIGHT", "WEIGHT"]]
    back = back.merge(first, on="USUBJID", how="left", suffixes=("", "_F"))
    for c in ("HEIGHT", "WEIGHT"):
        back[c] = back[c].fillna(back[c + "_F"])
    back = back.sort_values("_I")
    out["HEIGHT"] = back["HEIGHT"].to_numpy(dtype=float)
    out["WEIGHT"] = back["WEIGHT"].to_numpy(dtype=float)
    out["BSA"] = compute_bsa(out["HEIGHT"].to_numpy(), out["WEIGHT"].to_numpy(), formula)
    return out


__all__ = ["UNIT_FACTORS", "derive_body_size", "lookup_body_size"]
