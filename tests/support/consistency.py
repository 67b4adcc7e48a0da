"""Consistency checks that every completed analysis must pass, whatever the study's shape (issue 11).

Each check states an invariant of the outputs that needs no expected value: populations are
nested, response counts add up to the efficacy population, every derived subject is in ADSL, no
analysis date lies after the last date in the input, results.json is strict JSON, and every
output that could not be computed is listed with its reason in results.json and in the report.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

ADT_DATASETS = ("adrs", "adtte", "adlb", "adae")


def _reject_constant(name: str):
    raise AssertionError(f"results.json holds {name}: not valid JSON (NaN/inf must be null)")


def read_results(out_dir: Path) -> dict:
    """results.json parsed strictly (NaN, Infinity are errors)."""
    return json.loads((Path(out_dir) / "results.json").read_text("utf-8"), parse_constant=_reject_constant)


def _latest(text: pd.Series) -> pd.Timestamp | None:
    """The latest date in ISO 8601 text, a partial date counting as the end of its period."""
    t = text.dropna().astype(str).str.strip().str[:10]
    t = t[t.str.match(r"^\d{4}")]
    if t.empty:
        return None
    full = pd.to_datetime(t.where(t.str.len() == 10), errors="coerce", format="%Y-%m-%d")
    month = pd.to_datetime(t.where(t.str.len() == 7) + "-01", errors="coerce", format="%Y-%m-%d") + pd.offsets.MonthEnd(0)
    year = pd.to_datetime(t.where(t.str.len() == 4) + "-12-31", errors="coerce", format="%Y-%m-%d")
    vals = pd.concat([full, month, year]).dropna()
    return None if vals.empty else vals.max()


def last_input_date(study_dir: Path) -> pd.Timestamp | None:
    """The latest --DTC value over every CSV domain of the study folder."""
    latest = []
    for f in Path(study_dir).glob("*.csv"):
        if f.name.startswith("_"):
            continue
        df = pd.read_csv(f, dtype=str)
        for c in df.columns:
            if c.endswith("DTC"):
                d = _latest(df[c])
                if d is not None:
                    latest.append(d)
    return max(latest) if latest else None


def check_outputs(out_dir: Path, study_dir: Path | None = None) -> dict:
    """Assert the invariants of one completed analysis; returns results.json."""
    out_dir = Path(out_dir)
    res = read_results(out_dir)
    report = (out_dir / "report.html").read_text("utf-8")
    adsl = pd.read_parquet(out_dir / "adam" / "adsl.parquet")
    ids = set(adsl["USUBJID"].astype(str))
    assert adsl["USUBJID"].is_unique, "ADSL must have one row per subject"

    # populations: enrolled >= safety >= efficacy, and nested subject by subject
    pops = res["populations"]
    assert pops["enrolled"] == len(adsl)
    saf = adsl["SAFFL"].astype(str).eq("Y")
    eff = adsl["EFFFL"].astype(str).eq("Y") if "EFFFL" in adsl else pd.Series(False, index=adsl.index)
    assert pops["safety"] == int(saf.sum())
    assert pops["efficacy"] in (None, int(eff.sum()))
    assert not (eff & ~saf).any(), "an efficacy subject outside the safety population"

    # response: category counts add up to the efficacy population
    rsp = res["response"]
    assert sum(rsp["counts"].values()) == rsp["n"] == int(eff.sum())
    for key in ("orr", "cbr", "vgpr_or_better"):
        assert rsp[key]["n"] == rsp["n"]
        assert 0 <= rsp[key]["x"] <= rsp["n"]
        if rsp["n"] == 0:
            assert rsp[key]["estimate"] is None and rsp[key]["ci"] == [None, None]

    # derived datasets: subjects in ADSL; BOR once per efficacy subject; dates within the data
    last = last_input_date(study_dir) if study_dir is not None else None
    for name in ADT_DATASETS:
        path = out_dir / "adam" / f"{name}.parquet"
        if not path.exists():
            continue
        df = pd.read_parquet(path)
        assert set(df["USUBJID"].astype(str)) <= ids, f"{name} has subjects not in ADSL"
        if last is not None and "ADT" in df and len(df):
            adt = pd.to_datetime(df["ADT"]).dropna()
            assert not (adt > last).any(), f"{name} ADT after the last date in the data ({last.date()})"
    adrs = pd.read_parquet(out_dir / "adam" / "adrs.parquet")
    bor = adrs.loc[adrs["PARAMCD"] == "BOR"]
    assert bor["USUBJID"].is_unique
    assert set(bor["USUBJID"].astype(str)) == set(adsl.loc[eff, "USUBJID"].astype(str))
    adtte_path = out_dir / "adam" / "adtte.parquet"
    if adtte_path.exists():
        adtte = pd.read_parquet(adtte_path)
        assert adtte["CNSR"].isin([0, 1]).all()
        assert (adtte["AVAL"].dropna() >= 0).all()
        for code, r in res.get("time_to_event", {}).items():
            assert r["n"] == int((adtte["PARAMCD"] == code).sum())
            assert 0 <= r["events"] <= r["n"]

    # every output not computed is listed with its reason, in results.json and in the report
    notes = res["not_computable"]
    for n in notes:
        assert n["reason"] and n["what"] and n["step"]
        assert html.escape(n["reason"], quote=False) in report or n["reason"] in report, n["reason"]
    if notes:
        assert "Not computable on this study" in report
    return res
