"""Step ``prior_therapy``: lines of therapy, drug/class refractoriness, eligibility, baseline table.

Reads cm (PRIOR ANTI-MYELOMA THERAPY), pr (transplants), rs (PRIOR THERAPY), mh (PRIMARY
DIAGNOSIS) and lb (CYTOGENETICS, baseline labs); options from the protocol's ``[lines]``,
``[refractory]`` and ``[eligibility]`` sections. Adds ADSL variables, ADLOT (lines), ADREFR
(refractory evidence per subject and drug), results ``baseline`` and ``eligibility``, the
method notes ``prior_therapy`` and the report section ``baseline``. Rules: docs/prior-therapy.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmtrial._frames import lookup
from mmtrial._memory import release_memory
from mmtrial.context import Analysis
from mmtrial.derive.drugs import PRIOR_THERAPY_CATEGORY, DrugDictionary, derive_drug_exposure
from mmtrial.derive.eligibility import (
    EligibilityRule,
    derive_cytogenetics,
    derive_disease_history,
    derive_eligibility,
    derive_eligibility_listing,
)
from mmtrial.derive.lines import (
    LineRule,
    compute_line_issues,
    derive_adlot,
    derive_lines_of_therapy,
    derive_regimens,
    derive_transplants,
)
from mmtrial.derive.refractory import (
    RefractoryRule,
    derive_drug_refractory,
    derive_line_refractory,
    derive_refractory_flags,
    parse_term,
)
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Listing, Section, Text
from mmtrial.sdtm.issues import InputIssue
from mmtrial.tables.baseline import build_baseline_table, derive_baseline_lab_values

SECTION_ID = "baseline"
SECTION_ORDER = 20


def _measurable_flag(a: Analysis, adsl: pd.DataFrame) -> tuple[pd.Series, str]:
    """MEASFL from ADSL when the response step has run; else derived here with the response
    module's own definition (derive/baseline.py, default thresholds)."""
    if "MEASFL" in adsl:
        return adsl["MEASFL"].astype("string"), "ADSL MEASFL (response step)"
    from mmtrial.derive.baseline import (
        MeasurableDisease,
        derive_baseline,
        derive_measurable_disease,
        extract_disease_labs,
    )

    lb = a.study.get("lb")
    if lb is None or len(lb) == 0:
        return pd.Series("N", index=adsl.index, dtype="string"), "no lb domain: measurable disease N"
    crit = MeasurableDisease()
    subjects = pd.Index(adsl["USUBJID"].astype(str))
    labs, _ = extract_disease_labs(lb, subjects)
    v = pd.to_datetime(adsl["TRTSDT"]).to_numpy().astype("datetime64[D]")
    fd = v.astype("int64").astype(float)
    fd[np.isnat(v)] = np.nan
    meas = derive_measurable_disease(derive_baseline(labs, fd, criteria=crit), criteria=crit)
    return (pd.Series(meas["MEASFL"].to_numpy(), index=adsl.index, dtype="string"),
            "derived from lb by derive/baseline.py (MeasurableDisease defaults: serum M-protein >= "
            f"{crit.serum_mprotein_g_dl} g/dL, urine >= {crit.urine_mprotein_mg_24h:g} mg/24h, involved FLC >= "
            f"{crit.involved_flc_mg_dl:g} mg/dL with an abnormal ratio) because ADSL has no MEASFL yet")


def _late_rows(df: pd.DataFrame, date_col: str, trtsdt: pd.Series, domain: str, var: str
               ) -> tuple[np.ndarray, list[InputIssue]]:
    """Rows dated on or after the first study dose (not prior therapy), with a warning each."""
    ref = lookup(df["USUBJID"], trtsdt)
    late = (pd.to_datetime(df[date_col]) >= ref).fillna(False).to_numpy(dtype=bool)
    b = df.loc[late]
    issues = [
        InputIssue(domain=domain, variable=var, problem="dated on or after the first study dose; not "
                   "counted as prior therapy", severity="warning", usubjid=str(u),
                   row=int(r) if "ROWNUM" in b else None, value=str(pd.Timestamp(d).date()),
                   hint="Prior therapy must precede study treatment; record later therapy as SUBSEQUENT.",
                   rule="prior therapy")
        for u, r, d in zip(b["USUBJID"], b["ROWNUM"] if "ROWNUM" in b else [None] * len(b), b[date_col], strict=True)
    ]
    return late, issues


def _prior_only(df: pd.DataFrame | None, date_col: str, trtsdt: pd.Series, domain: str, var: str
                ) -> tuple[pd.DataFrame | None, list[InputIssue]]:
    """Rows dated on or after the first study dose are not prior therapy: dropped with a warning each."""
    if df is None or len(df) == 0 or date_col not in df:
        return df, []
    late, issues = _late_rows(df, date_col, trtsdt, domain, var)
    return df.loc[~late], issues


#: The cm variables the prior-therapy derivations read (derive_drug_exposure, ``_prior_only``).
CM_COLUMNS: tuple[str, ...] = (
    "USUBJID", "ROWNUM", "CMCAT", "CMTRT", "CMGRPID", "CMSTDT", "CMENDT", "CMSTDTF", "CMENDTF",
    "CMRSDISC", "CMSCAT", "CMLNKGRP",
)


def _prior_cm(cm: pd.DataFrame | None, trtsdt: pd.Series) -> tuple[pd.DataFrame | None, list[InputIssue]]:
    """The cm prior-therapy rows (CMCAT; SUBSEQUENT rows are the response step's) dated before
    the first study dose (:func:`_prior_only`), with only the variables read here: one copy of
    those rows and columns instead of two copies of the domain (issue 15)."""
    if cm is None:
        return None, []
    cols = [c for c in cm.columns if c in CM_COLUMNS]
    rows = np.arange(len(cm))
    if "CMCAT" in cm:
        rows = np.flatnonzero(cm["CMCAT"].astype("string").str.upper().str.strip()
                              .eq(PRIOR_THERAPY_CATEGORY).fillna(False).to_numpy(dtype=bool))
    if len(rows) == 0 or "CMSTDT" not in cm:
        return cm[cols].take(rows), []
    x = cm[["USUBJID", "CMSTDT", *(["ROWNUM"] if "ROWNUM" in cm else [])]].take(rows)
    late, issues = _late_rows(x, "CMSTDT", trtsdt, "cm", "CMSTDTC")
    return cm[cols].take(rows[~late]), issues


class CriterionConfig(BaseModel):
    """One criterion of ``[eligibility]``: ``id``, ``label`` and one ``rule`` term or several ``rules``."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="short identifier (ELIG_<id> / LABEL_<id> variables)")
    label: str = Field("", description="wording shown in the report (default: the id)")
    rule: str | None = Field(None, description="one rule term, e.g. 'refractory:PI>=2' (docs/prior-therapy.md)")
    rules: list[str] | None = Field(None, min_length=1, description="several rule terms, all must hold")

    @model_validator(mode="after")
    def _one_rule(self) -> CriterionConfig:
        if (self.rule is None) == (self.rules is None):
            raise ValueError(f"criterion {self.id!r}: give exactly one of rule or rules")
        for t in (self.rule,) if self.rule is not None else tuple(self.rules or ()):
            parse_term(t)
        return self


class EligibilityConfig(BaseModel):
    """``[eligibility]``: inclusion criteria, the label population and cytogenetics options.

    Without ``criteria`` no inclusion criteria are checked (ELIGFL = Y); without
    ``label_population`` no label population is derived or shown (STORM's protocol gives the
    XPOVIO label population; it is never assumed for another protocol).
    """

    model_config = ConfigDict(extra="forbid")
    source: str = Field("", description="where the inclusion criteria come from")
    label_source: str = Field("", description="where the label population comes from")
    criteria: list[CriterionConfig] = Field(default_factory=list, description="protocol inclusion criteria")
    label_population: list[CriterionConfig] = Field(
        default_factory=list, description="a regulatory label population (STORM: XPOVIO section 1.1)")
    high_risk_cytogenetics: list[str] = Field(
        default_factory=lambda: list(EligibilityRule().high_risk_cytogenetics),
        description="LBTESTCDs whose positive result makes HRCYTOFL = Y")
    cytogenetic_tests: list[str] = Field(
        default_factory=lambda: list(EligibilityRule().cytogenetic_tests),
        description="abnormalities shown in the baseline table")


def eligibility_rule(p: Protocol) -> EligibilityRule:
    """The protocol's ``[eligibility]`` as an :class:`EligibilityRule` (absent lists: none, never STORM's)."""
    raw = dict(p.section("eligibility"))
    EligibilityConfig.model_validate(raw)
    raw.setdefault("criteria", [])
    raw.setdefault("label_population", [])
    if not raw["criteria"]:
        raw.setdefault("source", "none: the protocol lists no inclusion criteria")
    if not raw["label_population"]:
        raw.setdefault("label_source", "none: the protocol defines no label population")
    return EligibilityRule.from_protocol(raw)


def run(a: Analysis) -> None:
    if "adsl" not in a.adam:
        raise RuntimeError("step prior_therapy needs ADSL: run the 'adsl' step first (pipeline.STEPS)")
    adsl = a.adam["adsl"].copy()
    adsl["USUBJID"] = adsl["USUBJID"].astype("string")
    line_rule = LineRule.from_protocol(a.protocol.section("lines"))
    ref_rule = RefractoryRule.from_protocol(a.protocol.section("refractory"))
    elig_rule = eligibility_rule(a.protocol)
    has_label = bool(elig_rule.label_population)
    dict_path = a.options.get("drug_dictionary")
    dictionary = DrugDictionary.load(dict_path)
    for t in (*[t for c in elig_rule.criteria for t in c.terms], *[t for c in elig_rule.label_population for t in c.terms]):
        term = parse_term(t)
        for n in term.names:
            dictionary.resolve(n)  # fail early, naming the term
    trtsdt = pd.Series(pd.to_datetime(adsl["TRTSDT"]).to_numpy(), index=adsl["USUBJID"])
    trtsdt = trtsdt[~trtsdt.index.duplicated()]

    # the baseline lab values first, while no derivation's frames are held (issue 15: they read
    # only the subjects' first doses, the same in ADSL before and after this step)
    lab_values = derive_baseline_lab_values(a.study.get("lb"), adsl)
    release_memory()

    issues: list[InputIssue] = []
    cm, iss = _prior_cm(a.study.get("cm"), trtsdt)
    issues += iss
    pr, iss = _prior_only(a.study.get("pr"), "PRSTDT", trtsdt, "pr", "PRSTDTC")
    issues += iss
    rs = a.study.get("rs")

    # each intermediate frame is dropped after its last reader (issue 15: at 100,000 subjects
    # they are gigabytes together)
    exposure, iss = derive_drug_exposure(cm, dictionary=dictionary)
    del cm
    issues += iss
    sct = derive_transplants(pr, rule=line_rule)
    del pr
    subj = adsl[["USUBJID"]].copy()  # per-subject prior-therapy summary
    nsct = sct.groupby("USUBJID").size() if len(sct) else pd.Series(dtype="int64")
    subj["NSCT"] = subj["USUBJID"].map(nsct).fillna(0).astype("int64")
    items = derive_regimens(exposure, sct)
    del sct
    nreg = items.loc[items["ITEMTYPE"].eq("REGIMEN")].groupby("USUBJID").size() if len(items) else pd.Series(dtype="int64")
    lines = derive_lines_of_therapy(items, exposure, rule=line_rule)
    del items
    issues += compute_line_issues(lines)
    adlot = derive_adlot(lines)
    lref = derive_line_refractory(lines, rs, rule=ref_rule, trtsdt=trtsdt)
    del lines
    adlot = adlot.merge(lref, on=["USUBJID", "LINENUM"], how="left")
    del lref
    adrefr, iss = derive_drug_refractory(exposure, rs, dictionary=dictionary, rule=ref_rule, trtsdt=trtsdt)
    del exposure
    issues += iss

    nl = adlot.groupby("USUBJID")["LINENUM"].max() if len(adlot) else pd.Series(dtype="int64")
    subj.insert(1, "NLINES", subj["USUBJID"].map(nl).fillna(0).astype("int64"))
    subj.insert(2, "NREGIMEN", subj["USUBJID"].map(nreg).fillna(0).astype("int64"))
    subj["PRSCTFL"] = np.where(subj["NSCT"] > 0, "Y", "N")
    last = adlot.sort_values("LINENUM").drop_duplicates("USUBJID", keep="last").set_index("USUBJID") if len(adlot) else None
    if last is not None:
        subj["LSTREFFL"] = subj["USUBJID"].map(last["LOTREFFL"]).fillna("N").astype("string")
        subj["LSTLOTDT"] = pd.to_datetime(subj["USUBJID"].map(last["LOTENDT"]))
    else:
        subj["LSTREFFL"] = "N"
        subj["LSTLOTDT"] = pd.NaT
    flags = derive_refractory_flags(adrefr, subj, dictionary=dictionary, rule=ref_rule)
    hist, iss = derive_disease_history(a.study.get("mh"), adsl)
    issues += iss
    cyto = derive_cytogenetics(a.study.get("lb"), adsl, rule=elig_rule)
    meas, meas_src = _measurable_flag(a, adsl)
    flags = flags.merge(hist, on="USUBJID", how="left").merge(cyto, on="USUBJID", how="left")
    ctx = flags.copy()
    ctx["MEASFL"] = meas.to_numpy()
    elig = derive_eligibility(ctx, adrefr, dictionary=dictionary, rule=elig_rule)
    new = flags.merge(elig[["USUBJID", "ELIGFL", "LABELFL"]], on="USUBJID", how="left")
    keep = [c for c in adsl.columns if c not in set(new.columns) - {"USUBJID"}]
    a.adam["adsl"] = adsl[keep].merge(new, on="USUBJID", how="left")
    a.adam["adlot"] = adlot
    a.adam["adrefr"] = adrefr
    a.adam["adelig"] = elig
    a.issues.extend(issues)

    listing = derive_eligibility_listing(elig, status=adrefr, subjects=ctx, adlot=adlot, dictionary=dictionary,
                                         rule=elig_rule, refractory=ref_rule)
    label_listing = derive_eligibility_listing(elig, status=adrefr, subjects=ctx, adlot=adlot,
                                               dictionary=dictionary, rule=elig_rule, refractory=ref_rule,
                                               which="label_population")

    # results
    full = a.adam["adsl"]
    # Table 1 population: the efficacy (mITT) population once the response step has run, as in
    # STORM's baseline table of the 122 mITT patients; else the safety population.
    pop_flag, pop_label = ("EFFFL", "Efficacy population (mITT)") if "EFFFL" in full else ("SAFFL", "Safety population")
    pop_desc = f"{pop_label.lower()} ({pop_flag} = Y)"
    pop = full.loc[full[pop_flag].eq("Y").fillna(False)] if pop_flag in full else full
    n = len(pop)

    def npct(var: str) -> dict[str, Any]:
        x = int(pop[var].eq("Y").fillna(False).sum()) if var in pop else 0
        return {"n": x, "pct": round(100.0 * x / n, 1) if n else None}

    def med(var: str) -> float | None:
        v = pd.to_numeric(pop[var], errors="coerce").dropna() if var in pop else pd.Series(dtype=float)
        return float(v.median()) if len(v) else None

    a.results["baseline"] = {
        "population": pop_desc, "n": n,
        "median_age": med("AGE"), "median_prior_lines": med("NLINES"),
        "median_years_since_diagnosis": med("DIAGYRS"),
        "tcr": npct("TCRFL"), "penta": npct("PENTAFL"), "quad": npct("QUADFL"), "tce": npct("TCEFL"),
        "prior_sct": npct("PRSCTFL"), "high_risk_cytogenetics": npct("HRCYTOFL"),
        "label_population": npct("LABELFL") if has_label else None, "eligible": npct("ELIGFL"),
    }
    a.results["eligibility"] = {
        "n": len(full), "eligible": int(full["ELIGFL"].eq("Y").sum()),
        "failing": {c.id: int(elig[f"ELIG_{c.id}"].eq("N").sum()) for c in elig_rule.criteria},
        "label_population": int(full["LABELFL"].eq("Y").sum()) if has_label else None,
        "label_failing": {c.id: int(elig[f"LABEL_{c.id}"].eq("N").sum()) for c in elig_rule.label_population},
        "measurable_disease_source": meas_src,
    }
    a.methods["prior_therapy"] = {
        "lines": line_rule.as_dict(),
        "refractory": ref_rule.as_dict(),
        "eligibility": elig_rule.as_dict(),
        "drug_dictionary": {"path": dictionary.path, "version": dictionary.version, "source": dictionary.source},
        "measurable_disease": meas_src,
        "baseline_population": pop_desc,
        "time_since_diagnosis": "(TRTSDT - DIAGDT) / 365.25 years",
    }

    # report section
    notes = [
        line_rule.describe(), ref_rule.describe(),
        "Triple-class refractory: refractory to >= 1 PI, >= 1 IMiD and an anti-CD38 antibody; penta-refractory: "
        "bortezomib, carfilzomib, lenalidomide, pomalidomide and an anti-CD38 antibody (Gandhi et al., Leukemia 2019;33:2266, MAMMOTH).",
        "High-risk cytogenetics: " + ", ".join(elig_rule.high_risk_cytogenetics) + " positive before first dose.",
        f"Drug dictionary {dictionary.path} version {dictionary.version}.",
    ]
    table = build_baseline_table(full, lab_values,
                                 population_flag=pop_flag, population_label=pop_label,
                                 footnotes=notes)
    blocks: list = [table]
    nfail = int((full["ELIGFL"] == "N").sum())
    # sources carry their own brackets, so they follow a colon rather than sit inside brackets
    elig_text = (f"Eligibility by the protocol inclusion criteria: {len(full) - nfail} of {len(full)} "
                 f"subjects meet all criteria; {nfail} fail at least one. Criteria source: {elig_rule.source}."
                 if elig_rule.criteria else "The protocol lists no inclusion criteria ([eligibility] criteria).")
    # the label population (STORM: the XPOVIO label) is shown only when the protocol defines one
    label_text = (f" Label population: {int(full['LABELFL'].eq('Y').sum())} subject(s); source: "
                  f"{elig_rule.label_source}." if has_label else "")
    blocks.append(Text(f"{elig_text}{label_text} Measurable disease: {meas_src}."))
    if elig_rule.criteria:
        blocks.append(_listing("eligibility-failures", "Subjects failing an inclusion criterion, with the evidence",
                               listing, [f"{c.id}: {c.label} ({'; '.join(c.terms)})" for c in elig_rule.criteria]))
    if has_label:
        blocks.append(_listing("label-population-failures",
                               "Subjects outside the label population, with the evidence", label_listing,
                               [f"{c.id}: {c.label} ({'; '.join(c.terms)})" for c in elig_rule.label_population]))
    a.sections = [s for s in a.sections if s.id != SECTION_ID]
    a.sections.append(Section(id=SECTION_ID, title="Baseline characteristics and prior therapy",
                              blocks=blocks, order=SECTION_ORDER))


def _listing(lid: str, title: str, df: pd.DataFrame, crit_notes: list[str]) -> Listing:
    data = df.rename(columns={"CRITID": "Criterion id", "CRITERION": "Criterion", "EVIDENCE": "Evidence"})
    notes = ["Criteria (rule terms, docs/prior-therapy.md): " + "; ".join(crit_notes) + "."]
    if len(df) == 0:
        notes.append("No subject fails a criterion.")
    notes.append(f"{df['USUBJID'].nunique() if len(df) else 0} subjects, {len(df)} failed criteria.")
    return Listing(id=lid, title=title, data=data.astype("string").fillna(""), footnotes=notes,
                   population="All subjects in ADSL", source="ADSL, ADREFR, ADLOT", stub="USUBJID",
                   anchor_column=None)

