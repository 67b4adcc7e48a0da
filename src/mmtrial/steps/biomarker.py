"""Step ``biomarker``: the response classifier from a pre-treatment marker panel (issue 8).

Runs only when ``lb`` has rows with LBCAT = BIOMARKER; otherwise it adds nothing. Needs ADSL with
TRTSDT and the response step's BOR (or RSPFL/CBRFL), so ``mmtrial analyze --only biomarker``
runs ``adsl`` and ``response`` first (:func:`run_biomarker_only` does the same from Python).

Reads the ``[biomarker]`` protocol section (:class:`BiomarkerConfig`); ``a.options["biomarker"]``
(a dict with the same keys) overrides it. Rules and options: docs/biomarker.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmtrial._frames import lookup
from mmtrial.context import Analysis
from mmtrial.report.model import Figure, Section, Text
from mmtrial.sdtm.issues import InputIssue, StudyInputError
from mmtrial.stats.classifier import DEFAULT_SEED, ClassifierOptions, fit_response_classifier

SECTION_ID = "biomarker"
SECTION_ORDER = 70

#: Confirmed BOR categories counted as responders (IMWG, Kumar et al. Lancet Oncol 2016).
RESPONDER_CATEGORIES: dict[str, tuple[str, ...]] = {
    "PR": ("sCR", "CR", "VGPR", "PR"),
    "MR": ("sCR", "CR", "VGPR", "PR", "MR"),
}
RESPONDER_LABELS = {"PR": "confirmed best overall response PR or better (IMWG)",
                    "MR": "confirmed best overall response MR or better (IMWG clinical benefit)"}
BOR_CATEGORIES = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")


@dataclass(frozen=True)
class PanelOptions:
    """How the biomarker panel and the response labels are assembled.

    Options
    -------
    responder : "PR" (default) or "MR"
        Responder = confirmed BOR PR or better (ORR), or MR or better (clinical benefit).
    population : "EFFFL" (default), "SAFFL" or "ALL"
        ADSL population whose subjects enter the analysis (efficacy population by default,
        where every subject has a BOR; NE counts as non-responder, as in the ORR).
    predose : "on-or-before" (default) or "before"
        A sample is pre-treatment when LBDT <= TRTSDT (ADaM baseline convention: a day-1 sample
        is taken before the dose) or, strictly, LBDT < TRTSDT.
    split : "auto" (default) or "none"
        "auto": LBSCAT TRAINING/VALIDATION, when present, designates a validation set.
    """

    responder: Literal["PR", "MR"] = "PR"
    population: Literal["EFFFL", "SAFFL", "ALL"] = "EFFFL"
    predose: Literal["on-or-before", "before"] = "on-or-before"
    split: Literal["auto", "none"] = "auto"

    def __post_init__(self) -> None:
        allowed = {"responder": ("PR", "MR"), "population": ("EFFFL", "SAFFL", "ALL"),
                   "predose": ("on-or-before", "before"), "split": ("auto", "none")}
        for name, vals in allowed.items():
            if getattr(self, name) not in vals:
                raise ValueError(f"PanelOptions: {name} must be one of {list(vals)}; got {getattr(self, name)!r}")


class BiomarkerConfig(BaseModel):
    """The ``[biomarker]`` protocol section (see storm.toml and docs/biomarker.md)."""

    model_config = ConfigDict(extra="forbid")
    responder: Literal["PR", "MR"] = "PR"
    population: Literal["EFFFL", "SAFFL", "ALL"] = "EFFFL"
    predose: Literal["on-or-before", "before"] = "on-or-before"
    split: Literal["auto", "none"] = "auto"
    model: Literal["l1-logistic", "elasticnet-logistic", "random-forest"] = "l1-logistic"
    k_markers: int = Field(4, ge=1)
    k_grid: list[int] = Field(default_factory=list)
    outer_folds: int = Field(5, ge=0)
    inner_folds: int = Field(3, ge=2)
    c_grid: list[float] = Field(default_factory=lambda: [0.03, 0.1, 0.3, 1.0, 3.0, 10.0])
    l1_ratio_grid: list[float] = Field(default_factory=lambda: [0.5])
    rf_trees: int = Field(100, ge=1)
    rf_min_samples_leaf_grid: list[int] = Field(default_factory=lambda: [1, 3])
    class_weight: Literal["balanced", "none"] = "balanced"
    tuning_score: Literal["roc_auc", "neg_log_loss", "accuracy"] = "roc_auc"
    threshold: float = Field(0.5, gt=0, lt=1)
    accuracy_ci: str = "wilson"
    auc_ci: Literal["delong", "bootstrap"] = "delong"
    bootstrap_reps: int = Field(2000, ge=1)
    permutations: int = Field(100, ge=0)
    permutation_statistic: Literal["accuracy", "auc"] = "accuracy"
    missing: Literal["impute-median", "error"] = "impute-median"
    level: float = Field(0.95, gt=0, lt=1)
    seed: int = DEFAULT_SEED
    n_jobs: int = 1
    source: str = ""

    def to_options(self) -> tuple[PanelOptions, ClassifierOptions]:
        d = self.model_dump()
        panel = PanelOptions(**{k: d.pop(k) for k in ("responder", "population", "predose", "split")})
        d.pop("source")
        for k in ("k_grid", "c_grid", "l1_ratio_grid", "rf_min_samples_leaf_grid"):
            d[k] = tuple(d[k])
        return panel, ClassifierOptions(**d)


def load_config(a: Analysis) -> BiomarkerConfig:
    """The protocol's ``[biomarker]`` section with ``a.options["biomarker"]`` overrides."""
    raw: dict[str, Any] = dict(a.protocol.section("biomarker"))
    raw.update(dict(a.options.get("biomarker", {}) or {}))
    return BiomarkerConfig.model_validate(raw)


@dataclass
class BiomarkerPanel:
    """The analysis-ready panel: X (subjects x markers), y (1 = responder), the split, counts."""

    X: pd.DataFrame
    y: pd.Series
    split: pd.Series | None  # "TRAINING" / "VALIDATION" per subject, None without a split
    counts: dict[str, int] = field(default_factory=dict)
    issues: list[InputIssue] = field(default_factory=list)

    def training(self) -> tuple[pd.DataFrame, pd.Series]:
        if self.split is None:
            return self.X, self.y
        keep = (self.split == "TRAINING").to_numpy()
        return self.X.loc[keep], self.y.loc[keep]

    def validation(self) -> tuple[pd.DataFrame, pd.Series] | None:
        if self.split is None:
            return None
        keep = (self.split == "VALIDATION").to_numpy()
        return self.X.loc[keep], self.y.loc[keep]


def _str(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip()


def _first_rows(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """First row (by ROWNUM) of each value of ``key``, with the number of rows per value."""
    g = df.sort_values("ROWNUM", kind="stable").groupby(key, sort=True)
    first = g.head(1).set_index(key)
    first["N_ROWS"] = g.size()
    return first.reset_index()


def derive_responder(adsl: pd.DataFrame, *, responder: Literal["PR", "MR"] = "PR") -> pd.Series:
    """1/0 responder per subject (index USUBJID; NA where no response is recorded).

    Rule
    ----
    Responder = confirmed best overall response PR or better (sCR, CR, VGPR, PR: the ORR of
    IMWG, Kumar et al. Lancet Oncol 2016;17:e328) or, with ``responder = "MR"``, MR or better
    (clinical benefit). BOR NE (not evaluable) is a non-responder, as in the ORR denominator.
    Source: ADSL.BOR (response step); when BOR is absent, RSPFL (PR) or CBRFL (MR).
    """
    idx = pd.Index(adsl["USUBJID"].astype(str), name="USUBJID")
    if "BOR" in adsl.columns:
        bor = _str(adsl["BOR"])
        bad = bor.notna() & ~bor.isin(BOR_CATEGORIES)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise StudyInputError([InputIssue(
                domain="adsl", variable="BOR", usubjid=str(adsl["USUBJID"].iloc[i]), value=str(bor.iloc[i]),
                problem=f"not an IMWG category ({', '.join(BOR_CATEGORIES)})", rule="biomarker responder")])
        resp = bor.isin(RESPONDER_CATEGORIES[responder]).astype("Int64")
        resp[bor.isna().to_numpy()] = pd.NA
        return pd.Series(resp.to_numpy(), index=idx, dtype="Int64", name="RESPONDER")
    flag = "RSPFL" if responder == "PR" else "CBRFL"
    if flag not in adsl.columns:
        raise StudyInputError([InputIssue(
            domain="adsl", variable="BOR",
            problem=f"ADSL has neither BOR nor {flag}; the biomarker classifier needs the response step",
            hint="Run the response step first (mmtrial analyze --only biomarker runs it).", rule="biomarker")])
    f = _str(adsl[flag])
    out = pd.Series(np.where(f == "Y", 1, 0), index=idx, dtype="Int64", name="RESPONDER")
    out[f.isna().to_numpy()] = pd.NA
    return out


def biomarker_rows(lb: pd.DataFrame) -> np.ndarray:
    """The lb records the biomarker panel reads: LBCAT = BIOMARKER (blanks stripped); none without
    LBCAT. The analysis keeps only these once ADLB is derived (``pipeline.DOMAIN_ROWS_READ_BY_STEP``,
    issue 15)."""
    if "LBCAT" not in lb.columns:
        return np.zeros(len(lb), dtype=bool)
    return _str(lb["LBCAT"]).eq("BIOMARKER").fillna(False).to_numpy(dtype=bool)


def derive_biomarker_panel(lb: pd.DataFrame | None, adsl: pd.DataFrame, *,
                           options: PanelOptions = PanelOptions()) -> BiomarkerPanel | None:
    """Pre-treatment biomarker matrix joined to the response labels.

    Rule
    ----
    Data contract (docs/data-contract.md, lb biomarker panel): LBCAT = BIOMARKER rows, any
    LBTESTCD (the marker), LBSTRESN the value, LBSTRESU as given, LBSCAT TRAINING/VALIDATION
    when the protocol designates a split. Algorithm:

    1. Keep LBCAT = BIOMARKER rows; none -> None (the step adds nothing).
    2. Errors (raised together): subject not in ADSL; a row without LBTESTCD; a marker recorded
       in more than one unit;
       a subject in both TRAINING and VALIDATION or with another LBSCAT value; some subjects
       with LBSCAT and others without.
    3. Warnings (in ``issues``, one per subject): missing LBDT (row not usable as
       pre-treatment) or missing LBSTRESN (value imputed in the pipeline).
    4. Pre-treatment: LBDT <= TRTSDT (``predose = "on-or-before"``, the ADaM baseline
       convention) or LBDT < TRTSDT; later rows and subjects never dosed are counted and left out.
    5. Several pre-treatment values of one marker: the latest (then the last row) is used, as
       the ADaM baseline (last value before treatment); the replaced rows are counted.
    6. Subjects outside the population (``population``) or without a BOR are counted and left out.
    """
    if lb is None or "LBCAT" not in lb.columns:
        return None
    bm = lb.loc[biomarker_rows(lb)].copy()
    if bm.empty:
        return None
    if "ROWNUM" not in bm.columns:
        bm["ROWNUM"] = np.arange(1, len(bm) + 1)
    for col in ("USUBJID", "LBTESTCD"):
        if col not in bm.columns:
            raise StudyInputError([InputIssue(domain="lb", variable=col, problem="required for biomarker rows")])
    if "LBDT" not in bm.columns:
        bm["LBDT"] = pd.NaT
    if "LBSTRESN" not in bm.columns:
        bm["LBSTRESN"] = np.nan
    bm["USUBJID"] = bm["USUBJID"].astype(str)
    bm["LBTESTCD"] = _str(bm["LBTESTCD"])
    bm["LBSTRESN"] = pd.to_numeric(bm["LBSTRESN"], errors="coerce").astype(float)
    counts: dict[str, int] = {"rows": len(bm)}
    errors: list[InputIssue] = []
    warns: list[InputIssue] = []

    # subjects not in ADSL
    known = pd.Index(adsl["USUBJID"].astype(str))
    unknown = bm.loc[~bm["USUBJID"].isin(known)]
    for _, r in _first_rows(unknown, "USUBJID").iterrows():  # one issue per unknown subject
        errors.append(InputIssue(domain="lb", variable="USUBJID", usubjid=r["USUBJID"], row=int(r["ROWNUM"]),
                                 value=r["USUBJID"], problem=f"biomarker rows ({int(r['N_ROWS'])}) for a subject "
                                 "not in dm/ADSL", rule="biomarker"))
    # every row names its marker
    for _, r in bm.loc[bm["LBTESTCD"].isna().to_numpy()].sort_values("ROWNUM").head(20).iterrows():
        errors.append(InputIssue(domain="lb", variable="LBTESTCD", usubjid=str(r["USUBJID"]), row=int(r["ROWNUM"]),
                                 value=None, problem="biomarker row without a marker name", rule="biomarker"))
    # one unit per marker
    if "LBSTRESU" in bm.columns:
        u = bm.assign(_U=_str(bm["LBSTRESU"]))
        nun = u.dropna(subset=["_U"]).groupby("LBTESTCD")["_U"].nunique()
        for marker in nun.index[nun > 1]:
            sub = u.loc[u["LBTESTCD"] == marker].dropna(subset=["_U"])
            vc = sub["_U"].value_counts()
            common = sorted(vc.index, key=lambda unit: (-int(vc[unit]), str(unit)))[0]  # majority unit
            odd = sub.loc[sub["_U"] != common].sort_values("ROWNUM").iloc[0]
            errors.append(InputIssue(
                domain="lb", variable="LBSTRESU", usubjid=str(odd["USUBJID"]), row=int(odd["ROWNUM"]),
                value=str(odd["_U"]), problem=f"biomarker {marker} is recorded in more than one unit "
                f"({', '.join(sorted(sub['_U'].unique()))}); values are not comparable",
                hint="Convert the marker to one unit in the input.", rule="biomarker"))
    # split designation
    split: pd.Series | None = None
    if options.split == "auto" and "LBSCAT" in bm.columns and _str(bm["LBSCAT"]).notna().any():
        sc = _str(bm["LBSCAT"]).str.upper()
        bad = sc.notna() & ~sc.isin(["TRAINING", "VALIDATION"])
        if bad.any():
            r = bm.loc[bad.to_numpy()].sort_values("ROWNUM").iloc[0]
            errors.append(InputIssue(domain="lb", variable="LBSCAT", usubjid=str(r["USUBJID"]), row=int(r["ROWNUM"]),
                                     value=str(r["LBSCAT"]), problem="biomarker split must be TRAINING or VALIDATION",
                                     rule="biomarker"))
        nos = bm.loc[sc.isna().to_numpy()]
        for _, r in _first_rows(nos, "USUBJID").iterrows():
            errors.append(InputIssue(domain="lb", variable="LBSCAT", usubjid=r["USUBJID"], row=int(r["ROWNUM"]),
                                     value=None, problem="missing while other biomarker rows designate a "
                                     "TRAINING/VALIDATION split", rule="biomarker"))
        per = bm.assign(_S=sc).dropna(subset=["_S"]).groupby("USUBJID")["_S"]
        both = per.nunique()
        for s in both.index[both > 1]:
            r = bm.loc[bm["USUBJID"] == s].sort_values("ROWNUM").iloc[0]
            errors.append(InputIssue(domain="lb", variable="LBSCAT", usubjid=s, row=int(r["ROWNUM"]),
                                     value="/".join(sorted(per.get_group(s).unique())),
                                     problem="subject in more than one biomarker split", rule="biomarker"))
        split = per.first()
    if errors:
        raise StudyInputError(errors)

    # missing dates and values: warnings, one per subject
    nodate = bm["LBDT"].isna()
    for _, r in _first_rows(bm.loc[nodate.to_numpy()], "USUBJID").iterrows():
        warns.append(InputIssue(domain="lb", variable="LBDTC", usubjid=r["USUBJID"], row=int(r["ROWNUM"]),
                                value=None, severity="warning",
                                problem=f"{int(r['N_ROWS'])} biomarker row(s) without a date cannot be placed "
                                "before the first dose; not used", rule="biomarker"))
    counts["rows_without_date"] = int(nodate.sum())
    noval = bm["LBSTRESN"].isna() & ~nodate
    for _, r in _first_rows(bm.loc[noval.to_numpy()], "USUBJID").iterrows():
        warns.append(InputIssue(domain="lb", variable="LBSTRESN", usubjid=r["USUBJID"], row=int(r["ROWNUM"]),
                                value=None, severity="warning",
                                problem=f"{int(r['N_ROWS'])} biomarker value(s) missing; imputed by the "
                                "training-fold median inside the classifier", rule="biomarker"))
    counts["rows_without_value"] = int(noval.sum())
    bm = bm.loc[~nodate.to_numpy()]

    # pre-treatment rows
    trt = adsl.assign(USUBJID=adsl["USUBJID"].astype(str)).set_index("USUBJID")
    first = pd.to_datetime(trt["TRTSDT"]) if "TRTSDT" in trt.columns else pd.Series(pd.NaT, index=trt.index)
    fd = lookup(bm["USUBJID"], first)
    undosed = fd.isna()
    counts["subjects_never_dosed"] = int(bm.loc[undosed.to_numpy(), "USUBJID"].nunique())
    counts["rows_never_dosed"] = int(undosed.sum())
    pre = (bm["LBDT"] <= fd) if options.predose == "on-or-before" else (bm["LBDT"] < fd)
    pre = pre.fillna(False).to_numpy(dtype=bool)
    counts["rows_after_first_dose"] = int((~pre & ~undosed.to_numpy()).sum())
    bm = bm.loc[pre]
    # latest pre-treatment value per subject and marker
    bm = bm.sort_values(["USUBJID", "LBTESTCD", "LBDT", "ROWNUM"], kind="stable")
    dup = bm.duplicated(["USUBJID", "LBTESTCD"], keep="last")
    counts["rows_replaced_by_later_value"] = int(dup.sum())
    bm = bm.loc[~dup.to_numpy()]
    X = bm.pivot(index="USUBJID", columns="LBTESTCD", values="LBSTRESN").sort_index()
    X = X.reindex(columns=sorted(X.columns))
    X.columns = pd.Index([str(c) for c in X.columns], name="MARKER")
    X.index.name = "USUBJID"
    counts["subjects_with_pretreatment_panel"] = len(X)

    # population and labels
    if options.population == "ALL":
        inpop = pd.Series(True, index=trt.index)
    else:
        if options.population not in trt.columns:
            raise StudyInputError([InputIssue(domain="adsl", variable=options.population,
                                              problem="population flag needed by the biomarker step is missing",
                                              hint="Run the adsl and response steps first.", rule="biomarker")])
        inpop = _str(trt[options.population]).eq("Y").fillna(False)
    keep = X.index.isin(inpop.index[inpop.to_numpy(dtype=bool)])
    counts["subjects_outside_population"] = int((~keep).sum())
    X = X.loc[keep]
    y_all = derive_responder(adsl, responder=options.responder)
    y = y_all.reindex(X.index)
    nobor = y.isna().to_numpy()
    for s in X.index[nobor]:
        warns.append(InputIssue(domain="adsl", variable="BOR", usubjid=str(s), value=None, severity="warning",
                                problem="biomarker panel present but no best overall response; subject left out "
                                "of the classifier", rule="biomarker"))
    counts["subjects_without_response"] = int(nobor.sum())
    X = X.loc[~nobor]
    y = y.loc[~nobor].astype(int)
    if split is not None:
        split = split.reindex(X.index)
    counts["subjects_analysed"] = len(X)
    counts["missing_values"] = int(X.isna().to_numpy().sum())
    return BiomarkerPanel(X=X, y=y, split=split, counts=counts, issues=warns)


def _exclusion_footnote(counts: dict[str, int], panel_opts: PanelOptions, population: str) -> str:
    rule = "on or before" if panel_opts.predose == "on-or-before" else "before"
    parts = [f"Pre-treatment samples: LBCAT = BIOMARKER, dated {rule} the first dose (TRTSDT); "
             f"{counts.get('subjects_analysed', 0)} subjects analysed ({population})."]
    excl = []
    labels = {
        "rows_after_first_dose": "rows after the first dose",
        "rows_without_date": "rows without a date",
        "rows_never_dosed": "rows of subjects never dosed",
        "rows_replaced_by_later_value": "earlier pre-treatment rows replaced by a later value of the same marker",
        "subjects_outside_population": "subjects outside the population",
        "subjects_without_response": "subjects without a best overall response",
    }
    for k, lab in labels.items():
        if counts.get(k):
            excl.append(f"{counts[k]} {lab}")
    if excl:
        parts.append("Not used: " + "; ".join(excl) + ".")
    return " ".join(parts)


def _population_label(a: Analysis, panel_opts: PanelOptions) -> str:
    if panel_opts.population == "EFFFL":
        return a.protocol.populations.efficacy
    if panel_opts.population == "SAFFL":
        return a.protocol.populations.safety
    return "all subjects with a pre-treatment biomarker sample"


def run(a: Analysis) -> None:
    """Fit and report the response classifier when the study has a biomarker panel."""
    from mmtrial.figures.roc import roc_figure
    from mmtrial.figures.svg import figure_to_svg
    from mmtrial.tables.biomarker import (
        coefficient_table,
        method_footnotes,
        performance_table,
        selection_table,
    )

    cfg = load_config(a)
    panel_opts, clf_opts = cfg.to_options()
    if "adsl" not in a.adam:
        raise RuntimeError("biomarker step: ADSL is missing; run the adsl and response steps first "
                           "(mmtrial.steps.biomarker.run_biomarker_only does)")
    panel = derive_biomarker_panel(a.study.get("lb"), a.adam["adsl"], options=panel_opts)
    if panel is None:
        return
    a.issues.extend(panel.issues)
    population = _population_label(a, panel_opts)
    resp_label = RESPONDER_LABELS[panel_opts.responder]
    excl_note = _exclusion_footnote(panel.counts, panel_opts, population)
    methods: dict[str, Any] = {
        "responder": panel_opts.responder, "responder_definition": resp_label,
        "population": panel_opts.population, "predose": panel_opts.predose, "split": panel_opts.split,
        "classifier": clf_opts.to_dict(), "cv": clf_opts.cv_label, "source": cfg.source,
    }
    Xtr, ytr = panel.training()
    val = panel.validation()
    try:
        result = fit_response_classifier(
            Xtr, ytr, options=clf_opts,
            X_validation=None if val is None or len(val[1]) == 0 else val[0],
            y_validation=None if val is None or len(val[1]) == 0 else val[1])
    except ValueError as exc:  # too few subjects per class, too few markers ...
        a.results["biomarker"] = {"status": "not estimable", "reason": str(exc), "counts": panel.counts,
                                  "n": len(ytr), "n_responders": int(ytr.sum()),
                                  "n_nonresponders": int(len(ytr) - ytr.sum())}
        methods["footnotes"] = [excl_note]
        a.methods["biomarker"] = methods
        a.sections.append(Section(id=SECTION_ID, title="Response biomarker classifier", order=SECTION_ORDER,
                                  blocks=[Text(f"The classifier could not be fitted: {exc}"), Text(excl_note)]))
        return
    notes = method_footnotes(result, responder_label=resp_label, extra=[excl_note])
    res = result.to_dict()
    res["status"] = "ok"
    res["responder"] = panel_opts.responder
    res["counts"] = panel.counts
    res["split"] = None if panel.split is None else {
        "training": int((panel.split == "TRAINING").sum()), "validation": int((panel.split == "VALIDATION").sum())}
    a.results["biomarker"] = res
    methods["footnotes"] = notes
    a.methods["biomarker"] = methods

    fig, alt = roc_figure(result.cv, result.validation)
    blocks: list = [
        performance_table(result, footnotes=notes, population=population),
        Figure(id="biomarker-roc", title="Response classifier: ROC curve", alt=alt,
               svg=figure_to_svg(fig, alt),
               footnotes=[f"Cross-validated curve from out-of-fold predicted probabilities ({clf_opts.cv_label}); "
                          "validation curve, when shown, from the final model. AUC CI: "
                          + ("DeLong." if clf_opts.auc_ci == "delong" else "stratified bootstrap.")]),
        selection_table(result, population=population),
        coefficient_table(result, population=population),
    ]
    if a.study.synthetic:
        blocks.insert(0, Text("Synthetic data: the marker panel and its planted signal are simulated."))
    a.sections.append(Section(id=SECTION_ID, title="Response biomarker classifier", blocks=blocks,
                              order=SECTION_ORDER))


def run_biomarker_only(a: Analysis) -> Analysis:
    """Run just what the classifier needs: ``adsl`` and ``response`` when not done yet, then this step."""
    from mmtrial.pipeline import run_steps

    need: list[str] = []
    if "adsl" not in a.adam:
        need.append("adsl")
    if "adsl" not in a.adam or not {"BOR", "RSPFL", "CBRFL"} & set(a.adam["adsl"].columns):
        need.append("response")
    return run_steps(a, (*need, "biomarker"))


__all__ = [
    "BiomarkerConfig",
    "BiomarkerPanel",
    "PanelOptions",
    "derive_biomarker_panel",
    "derive_responder",
    "run",
    "run_biomarker_only",
]
