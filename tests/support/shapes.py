"""Studies of many shapes for edge-case and property-based tests (issue 11).

A *shape* starts from a small simulated study (``mmtrial.simulate_study``) and applies
mutations that real studies show: no deaths, no responders, light-chain-only disease, no
measurable disease, no post-baseline assessment, optional domains or record types absent,
partial dates, once-daily dosing, fewer subjects (down to none). Each mutation is a small pure
function of the domain frames (``dict[str, DataFrame]`` of raw SDTM text, as the simulator
writes them), so a test can name exactly the shape it needs; :func:`study_shapes` is the
hypothesis strategy that combines them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

Domains = dict[str, pd.DataFrame]

#: Domains and record types a study may lack (data contract: rs pr tu tr mh are optional; cm
#: SUBSEQUENT rows and the LBCAT = BIOMARKER panel are optional record types).
OPTIONAL_PARTS = ("rs", "pr", "tu", "tr", "mh", "cm_subsequent", "biomarker")

DISEASE_TESTS = ("MPROTEIN", "KAPPAFLC", "LAMBDFLC", "BMPC")


def _copy(domains: Domains) -> Domains:
    return {k: v.copy() for k, v in domains.items()}


def keep_subjects(domains: Domains, n: int) -> Domains:
    """The first ``n`` dm subjects and their records in every domain (``n = 0``: empty domains
    that keep their columns)."""
    out = _copy(domains)
    keep = set(out["dm"]["USUBJID"].iloc[:n])
    return {k: v.loc[v["USUBJID"].isin(keep)].reset_index(drop=True) for k, v in out.items()}


def drop_optional(domains: Domains, parts: frozenset[str] | set[str]) -> Domains:
    """Remove optional domains (rs pr tu tr mh) and optional record types: ``cm_subsequent``
    (cm SUBSEQUENT ANTI-MYELOMA THERAPY rows) and ``biomarker`` (lb LBCAT = BIOMARKER rows)."""
    out = _copy(domains)
    for p in parts:
        if p in ("rs", "pr", "tu", "tr", "mh"):
            out.pop(p, None)
    if "cm_subsequent" in parts:
        cm = out["cm"]
        out["cm"] = cm.loc[cm["CMCAT"] != "SUBSEQUENT ANTI-MYELOMA THERAPY"].reset_index(drop=True)
    if "biomarker" in parts:
        lb = out["lb"]
        out["lb"] = lb.loc[lb["LBCAT"] != "BIOMARKER"].reset_index(drop=True)
    return out


def remove_deaths(domains: Domains, subjects: set[str] | None = None) -> Domains:
    """No subject (or none of ``subjects``) died: no ds DSDECOD = DEATH, no dm DTHFL/DTHDTC, no
    fatal AE outcome for them."""
    out = _copy(domains)
    who = (lambda df: df["USUBJID"].isin(subjects)) if subjects is not None else (lambda df: pd.Series(True, index=df.index))
    ds = out["ds"]
    out["ds"] = ds.loc[~((ds["DSDECOD"] == "DEATH") & who(ds))].reset_index(drop=True)
    dm = out["dm"]
    dm.loc[who(dm), ["DTHFL", "DTHDTC"]] = None
    ae = out["ae"]
    if "AEOUT" in ae:
        ae.loc[who(ae) & (ae["AEOUT"] == "FATAL"), "AEOUT"] = "NOT RECOVERED/NOT RESOLVED"
    return out


def _disease(lb: pd.DataFrame) -> pd.Series:
    return lb["LBTESTCD"].isin(DISEASE_TESTS)


def flatten_disease(domains: Domains) -> Domains:
    """No responders: every disease marker (M-protein, FLC, marrow plasma cells) of a subject stays
    at its first value and immunofixation stays positive, so no assessment shows a decrease
    (IMWG PR needs >= 50% reduction, Kumar 2016); assessor responses become SD."""
    out = _copy(domains)
    lb = out["lb"].sort_values(["USUBJID", "LBTESTCD", "LBSPEC", "LBDTC"], kind="stable")
    d = _disease(lb)
    first = lb.loc[d].groupby(["USUBJID", "LBTESTCD", "LBSPEC"])["LBSTRESN"].transform("first")
    lb.loc[d, "LBSTRESN"] = first
    lb.loc[lb["LBTESTCD"] == "IFE", "LBSTRESC"] = "POSITIVE"
    out["lb"] = lb.sort_index()
    if "rs" in out:
        rs = out["rs"]
        on_study = rs["RSCAT"] != "PRIOR THERAPY"
        rs.loc[on_study, "RSSTRESC"] = "SD"
    return out


def make_non_measurable(domains: Domains) -> Domains:
    """No subject has measurable disease at any time: serum M-protein 0.2 g/dL (< 0.5), urine
    50 mg/24h (< 200), kappa = lambda = 1.0 mg/dL (normal ratio), marrow plasma cells 10% (< 30%;
    thresholds from the bundled protocol's [response] section)."""
    out = _copy(domains)
    lb = out["lb"]
    values = {("MPROTEIN", "SERUM"): 0.2, ("MPROTEIN", "URINE"): 50.0, ("KAPPAFLC", "SERUM"): 1.0,
              ("LAMBDFLC", "SERUM"): 1.0, ("BMPC", "BONE MARROW"): 10.0}
    for (code, spec), v in values.items():
        lb.loc[(lb["LBTESTCD"] == code) & (lb["LBSPEC"] == spec), "LBSTRESN"] = v
    return out


def light_chain_only(domains: Domains) -> Domains:
    """Light-chain disease: no serum or urine M-protein (0), free light chains as simulated."""
    out = _copy(domains)
    lb = out["lb"]
    lb.loc[lb["LBTESTCD"] == "MPROTEIN", "LBSTRESN"] = 0.0
    return out


def remove_post_baseline_assessments(domains: Domains) -> Domains:
    """No disease assessment after the first dose: lb disease markers, rs on-study rows and tu/tr
    lesion records (a new plasmacytoma is itself a progression, IMWG)."""
    out = _copy(domains)
    first = out["dm"].set_index("USUBJID")["RFXSTDTC"]
    lb = out["lb"]
    ref = lb["USUBJID"].map(first)
    post = _disease(lb) | (lb["LBTESTCD"] == "IFE")
    post &= pd.to_datetime(lb["LBDTC"].str[:10], errors="coerce") > pd.to_datetime(ref, errors="coerce")
    out["lb"] = lb.loc[~post].reset_index(drop=True)
    if "rs" in out:
        rs = out["rs"]
        out["rs"] = rs.loc[rs["RSCAT"] == "PRIOR THERAPY"].reset_index(drop=True)
    for dom in ("tu", "tr"):
        if dom in out:
            df = out[dom]
            when = pd.to_datetime(df[f"{dom.upper()}DTC"].astype("string").str[:10], errors="coerce")
            late = when > pd.to_datetime(df["USUBJID"].map(first), errors="coerce")
            out[dom] = df.loc[~late.fillna(False)].reset_index(drop=True)
    return out


#: Date variables that may be partial in real studies (the first dose and lab dates are not:
#: mmtrial needs complete dates there).
PARTIAL_DATE_VARS = {"ae": ("AESTDTC", "AEENDTC"), "cm": ("CMSTDTC", "CMENDTC"), "mh": ("MHSTDTC",),
                     "pr": ("PRSTDTC",)}


def truncate_dates(domains: Domains, *, fraction: float, seed: int) -> Domains:
    """Make ``fraction`` of the dates in :data:`PARTIAL_DATE_VARS` partial (``YYYY-MM`` or ``YYYY``)."""
    out = _copy(domains)
    rng = np.random.default_rng(seed)
    for dom, variables in PARTIAL_DATE_VARS.items():
        if dom not in out:
            continue
        df = out[dom]
        for var in variables:
            if var not in df or not len(df):
                continue
            s = df[var].astype("string")
            pick = (rng.random(len(df)) < fraction) & s.str.len().ge(10).fillna(False).to_numpy()
            to_year = rng.random(len(df)) < 0.3
            s = s.where(~(pick & ~to_year), s.str[:7])
            s = s.where(~(pick & to_year), s.str[:4])
            df[var] = s.astype(object).where(s.notna(), None)
    return out


def once_daily_dosing(domains: Domains) -> Domains:
    """Every ex record dosed once daily (EXDOSFRQ = QD, CDISC C71113)."""
    out = _copy(domains)
    out["ex"]["EXDOSFRQ"] = "QD"
    return out


@dataclass(frozen=True)
class Shape:
    """One study shape: a simulated study of ``n_sim`` subjects (seed ``seed``) cut to ``n``
    subjects, then mutated. ``describe()`` names it in a failing example."""

    n: int = 6
    seed: int = 1
    n_sim: int | None = None
    absent: frozenset[str] = field(default_factory=frozenset)
    no_deaths: bool = False
    no_responders: bool = False
    light_chain: bool = False
    non_measurable: bool = False
    no_post_baseline: bool = False
    partial_dates: float = 0.0
    qd_dosing: bool = False

    def describe(self) -> str:
        flags = [k for k in ("no_deaths", "no_responders", "light_chain", "non_measurable", "no_post_baseline",
                             "qd_dosing") if getattr(self, k)]
        return (f"n={self.n} seed={self.seed} absent={sorted(self.absent)} partial={self.partial_dates:g} "
                + " ".join(flags))


MUTATIONS: tuple[tuple[str, Callable[[Domains], Domains]], ...] = (
    ("no_deaths", remove_deaths),
    ("no_responders", flatten_disease),
    ("light_chain", light_chain_only),
    ("non_measurable", make_non_measurable),
    ("no_post_baseline", remove_post_baseline_assessments),
    ("qd_dosing", once_daily_dosing),
)


def build_domains(shape: Shape) -> Domains:
    """The raw domain frames of ``shape``."""
    from mmtrial.simulate import simulate_study

    sim = simulate_study(n=max(1, shape.n_sim or shape.n), seed=shape.seed)
    d = keep_subjects(sim.domains, shape.n)
    d = drop_optional(d, shape.absent)
    for flag, mutate in MUTATIONS:
        if getattr(shape, flag):
            d = mutate(d)
    if shape.partial_dates:
        d = truncate_dates(d, fraction=shape.partial_dates, seed=shape.seed)
    return d


def write_domains(domains: Domains, folder: Path, *, synthetic: bool = True) -> Path:
    """Write raw domain frames as CSV (one file per domain) and a ``study.json``."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in domains.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    (folder / "study.json").write_text(json.dumps({"synthetic": synthetic, "generator": "tests/support/shapes.py"}))
    return folder


def write_shape(shape: Shape, folder: Path) -> Path:
    return write_domains(build_domains(shape), folder)


def study_shapes(*, max_n: int = 8, absent_always: frozenset[str] = frozenset()):
    """Hypothesis strategy over :class:`Shape` (0..max_n subjects, every mutation on or off;
    the parts in ``absent_always`` are always dropped)."""
    from hypothesis import strategies as st

    return st.builds(
        Shape,
        n=st.integers(0, max_n),
        seed=st.integers(0, 10_000),
        n_sim=st.just(max(max_n, 1)),
        absent=st.frozensets(st.sampled_from(OPTIONAL_PARTS)).map(lambda s: s | absent_always),
        no_deaths=st.booleans(),
        no_responders=st.booleans(),
        light_chain=st.booleans(),
        non_measurable=st.booleans(),
        no_post_baseline=st.booleans(),
        partial_dates=st.sampled_from([0.0, 0.0, 0.3]),
        qd_dosing=st.booleans(),
    )
