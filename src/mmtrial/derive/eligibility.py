"""Eligibility (protocol inclusion criteria as data), the label population, and the disease
history used by them and by the baseline table (diagnosis date, myeloma type, cytogenetics).

Criteria are lists of terms (grammar in :func:`mmtrial.derive.refractory.parse_term`), read
from the protocol's ``[eligibility]`` section; every subject is evaluated on every criterion at
once, and each failure carries its evidence (which drug, last dose, first progression).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._frames import lookup
from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.lines import _string_agg
from mmtrial.derive.refractory import RefractoryRule, StatusTerms, Term, parse_term
from mmtrial.sdtm.issues import InputIssue

STORM_SOURCE = "Chari A, et al. N Engl J Med 2019;381:727-738 (STORM Part 2 eligibility)"
LABEL_SOURCE = "XPOVIO (selinexor) prescribing information 2019, section 1.1 (indication)"


@dataclass(frozen=True)
class Criterion:
    """One inclusion criterion: all ``terms`` must hold."""

    id: str
    label: str
    terms: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(self.terms))
        if not self.terms:
            raise ValueError(f"eligibility criterion {self.id!r}: no terms")
        for t in self.terms:
            parse_term(t)


STORM_CRITERIA: tuple[Criterion, ...] = (
    Criterion("EXP_BTZ", "Prior bortezomib", ("exposed:bortezomib",)),
    Criterion("EXP_CFZ", "Prior carfilzomib", ("exposed:carfilzomib",)),
    Criterion("EXP_LEN", "Prior lenalidomide", ("exposed:lenalidomide",)),
    Criterion("EXP_POM", "Prior pomalidomide", ("exposed:pomalidomide",)),
    Criterion("EXP_DAR", "Prior daratumumab", ("exposed:daratumumab",)),
    Criterion("EXP_GC", "Prior glucocorticoids", ("exposed:GLUCOCORTICOID",)),
    Criterion("EXP_ALK", "Prior alkylating agent", ("exposed:ALKYLATOR",)),
    Criterion("REF_PI", "Refractory to >= 1 proteasome inhibitor", ("refractory:PI",)),
    Criterion("REF_IMID", "Refractory to >= 1 IMiD", ("refractory:IMID",)),
    Criterion("REF_DAR", "Refractory to daratumumab", ("refractory:daratumumab",)),
    Criterion("REF_GC", "Refractory to glucocorticoids", ("refractory:GLUCOCORTICOID",)),
    Criterion("REF_LAST", "Refractory to the last line of therapy", ("refractory:last_line",)),
    Criterion("MEASURABLE", "Measurable disease at baseline", ("flag:MEASFL",)),
)

LABEL_CRITERIA: tuple[Criterion, ...] = (
    Criterion("LINES4", ">= 4 prior therapies", ("lines>=4",)),
    Criterion("REF_PI2", "Refractory to >= 2 proteasome inhibitors", ("refractory:PI>=2",)),
    Criterion("REF_IMID2", "Refractory to >= 2 IMiDs", ("refractory:IMID>=2",)),
    Criterion("REF_CD38", "Refractory to an anti-CD38 monoclonal antibody", ("refractory:ANTI-CD38",)),
)


@dataclass(frozen=True)
class EligibilityRule:
    """Inclusion criteria, label population and disease-history options (``[eligibility]``).

    Parameters
    ----------
    criteria : tuple of Criterion
        Protocol inclusion criteria (default: STORM Part 2, Chari 2019). ELIGFL = all hold.
    label_population : tuple of Criterion
        The regulatory label population (default: XPOVIO 2019: >= 4 prior therapies, refractory
        to >= 2 PIs, >= 2 IMiDs and an anti-CD38 mAb). LABELFL = all hold. "Prior therapies" are
        counted as lines of therapy (NLINES).
    high_risk_cytogenetics : tuple of str
        LBTESTCDs (LBCAT CYTOGENETICS) whose POSITIVE result makes HRCYTOFL = Y (default
        del(17p), t(4;14), t(14;16); add GAIN1Q for the wider definitions; domain.md 1.2 tag U).
    cytogenetic_tests : tuple of str
        Abnormalities shown in the baseline table (each gets ``<TESTCD>FL``).
    """

    criteria: tuple[Criterion, ...] = STORM_CRITERIA
    label_population: tuple[Criterion, ...] = LABEL_CRITERIA
    high_risk_cytogenetics: tuple[str, ...] = ("DEL17P", "T414", "T1416")
    cytogenetic_tests: tuple[str, ...] = ("DEL17P", "T414", "T1416", "GAIN1Q")
    source: str = STORM_SOURCE
    label_source: str = LABEL_SOURCE
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("criteria", "label_population"):
            crit = tuple(getattr(self, name))
            ids = [c.id for c in crit]
            if len(set(ids)) != len(ids):
                raise ValueError(f"EligibilityRule.{name}: duplicate criterion ids {ids}")
            object.__setattr__(self, name, crit)
        object.__setattr__(self, "high_risk_cytogenetics", tuple(s.upper() for s in self.high_risk_cytogenetics))
        object.__setattr__(self, "cytogenetic_tests",
                           tuple(dict.fromkeys(s.upper() for s in (*self.cytogenetic_tests, *self.high_risk_cytogenetics))))

    @classmethod
    def from_protocol(cls, section: dict[str, Any]) -> EligibilityRule:
        """Build from ``[eligibility]``: ``criteria`` and ``label_population`` are arrays of tables
        with ``id``, ``label`` and ``rule`` (one term) or ``rules`` (several)."""
        allowed = {"criteria", "label_population", "high_risk_cytogenetics", "cytogenetic_tests",
                   "source", "label_source"}
        unknown = set(section) - allowed
        if unknown:
            raise ValueError(f"[eligibility]: unknown option(s) {sorted(unknown)}; allowed {sorted(allowed)}")

        def crits(items: list[dict[str, Any]], where: str) -> tuple[Criterion, ...]:
            out = []
            for i, it in enumerate(items):
                if "id" not in it or ("rule" not in it and "rules" not in it):
                    raise ValueError(f"[eligibility] {where}[{i}]: expected id, label and rule (or rules); got {it}")
                terms = (it["rule"],) if "rule" in it else tuple(it["rules"])
                out.append(Criterion(str(it["id"]), str(it.get("label", it["id"])), terms))
            return tuple(out)

        kw: dict[str, Any] = {}
        if "criteria" in section:
            kw["criteria"] = crits(section["criteria"], "criteria")
        if "label_population" in section:
            kw["label_population"] = crits(section["label_population"], "label_population")
        for k in ("high_risk_cytogenetics", "cytogenetic_tests"):
            if k in section:
                kw[k] = tuple(section[k])
        for k in ("source", "label_source"):
            if k in section:
                kw[k] = str(section[k])
        return cls(**kw)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra", None)
        return d


DEFAULT_ELIGIBILITY_RULE = EligibilityRule()


# --------------------------------------------------------------------------- disease history

#: MHTERM patterns -> myeloma type (first match wins; regex on the upper-cased term).
MYELOMA_TYPES: tuple[tuple[str, str], ...] = (
    (r"NON[- ]?SECRETORY", "Non-secretory"),
    (r"LIGHT[- ]CHAIN|BENCE[- ]JONES", "Light chain"),
    (r"\bIGG\b", "IgG"),
    (r"\bIGA\b", "IgA"),
    (r"\bIGD\b", "IgD"),
    (r"\bIGM\b", "IgM"),
    (r"\bIGE\b", "IgE"),
)


def derive_disease_history(
    mh: pd.DataFrame | None,
    adsl: pd.DataFrame,
) -> tuple[pd.DataFrame, list[InputIssue]]:
    """DIAGDT, DIAGYRS, MMTYPE and MMLCTYPE per subject from mh PRIMARY DIAGNOSIS.

    Rule
    ----
    data-contract.md mh: MHCAT ``PRIMARY DIAGNOSIS``, MHTERM e.g. ``IGG KAPPA MULTIPLE MYELOMA``,
    MHSTDTC = date of diagnosis. DIAGDT = earliest diagnosis date; DIAGYRS = (TRTSDT - DIAGDT) /
    365.25 (time since diagnosis at first dose, years, as "median duration of myeloma" in Chari
    2019). MMTYPE from :data:`MYELOMA_TYPES` (``Other`` with a warning when no pattern matches);
    MMLCTYPE ``Kappa``/``Lambda`` when the term names it.
    """
    out = adsl[["USUBJID"]].copy()
    issues: list[InputIssue] = []
    if mh is None or len(mh) == 0 or "MHCAT" not in mh:
        out["DIAGDT"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
        out["DIAGYRS"] = np.nan
        out["MMTYPE"] = pd.Series(pd.NA, index=out.index, dtype="string")
        out["MMLCTYPE"] = pd.Series(pd.NA, index=out.index, dtype="string")
        return out, issues
    x = mh.loc[mh["MHCAT"].astype("string").str.upper().eq("PRIMARY DIAGNOSIS").fillna(False)].copy()
    if "MHSTDT" not in x:
        x["MHSTDT"] = pd.NaT
    if "ROWNUM" not in x:
        x["ROWNUM"] = np.arange(1, len(x) + 1)
    x["USUBJID"] = x["USUBJID"].astype("string")
    x = x.sort_values(["USUBJID", "MHSTDT"], na_position="last").drop_duplicates("USUBJID")
    term = x["MHTERM"].astype("string").str.upper()
    conds = [term.str.contains(p, regex=True).fillna(False).to_numpy() for p, _ in MYELOMA_TYPES]
    x["MMTYPE"] = np.select(conds, [lbl for _, lbl in MYELOMA_TYPES], default="Other")
    x["MMLCTYPE"] = np.select([term.str.contains("KAPPA").fillna(False).to_numpy(),
                               term.str.contains("LAMBDA").fillna(False).to_numpy()],
                              ["Kappa", "Lambda"], default=None)
    other = x.loc[x["MMTYPE"] == "Other"]
    issues += [
        InputIssue(domain="mh", variable="MHTERM", problem="myeloma type not recognised; shown as Other",
                   severity="warning", usubjid=str(u), row=int(r), value=None if pd.isna(v) else str(v),
                   hint="Use terms such as 'IGG KAPPA MULTIPLE MYELOMA' (data-contract.md mh).",
                   rule="baseline myeloma type")
        for u, r, v in zip(other["USUBJID"], other["ROWNUM"], other["MHTERM"], strict=True)
    ]
    out["USUBJID"] = out["USUBJID"].astype("string")
    out = out.merge(x[["USUBJID", "MHSTDT", "MMTYPE", "MMLCTYPE"]].rename(columns={"MHSTDT": "DIAGDT"}),
                    on="USUBJID", how="left")
    out["DIAGDT"] = pd.to_datetime(out["DIAGDT"])
    trt = pd.to_datetime(adsl["TRTSDT"]).to_numpy() if "TRTSDT" in adsl else np.full(len(out), np.datetime64("NaT"))
    out["DIAGYRS"] = (pd.Series(trt, index=out.index) - out["DIAGDT"]).dt.days / 365.25
    out["MMTYPE"] = out["MMTYPE"].astype("string")
    out["MMLCTYPE"] = out["MMLCTYPE"].astype("string")
    return out, issues


def derive_cytogenetics(
    lb: pd.DataFrame | None,
    adsl: pd.DataFrame,
    *,
    rule: EligibilityRule = DEFAULT_ELIGIBILITY_RULE,
) -> pd.DataFrame:
    """Per-abnormality flags (``<TESTCD>FL``), HRCYTOFL and CYTOTSFL (any test result) per subject.

    Rule
    ----
    data-contract.md lb cytogenetics: LBCAT ``CYTOGENETICS``, LBTESTCD ``DEL17P``, ``T414``,
    ``T1416``, ``GAIN1Q``, LBSTRESC ``POSITIVE``/``NEGATIVE``, before first dose. Results after
    TRTSDT are ignored. ``<TESTCD>FL`` = Y if any result POSITIVE, N if tested and none positive,
    missing if not tested. HRCYTOFL = Y if any high-risk abnormality is positive (default
    del(17p), t(4;14), t(14;16)), N if any high-risk test was done and none positive, else missing.
    """
    out = adsl[["USUBJID"]].copy()
    out["USUBJID"] = out["USUBJID"].astype("string")
    tests = rule.cytogenetic_tests
    empty = lb is None or len(lb) == 0 or "LBCAT" not in lb
    x = pd.DataFrame(columns=["USUBJID", "LBTESTCD", "POS"])
    if not empty:
        # LBCAT tested on its distinct values; only the variables read here are copied (issue 15:
        # an upper-cased copy of every lab record's category was 13 M texts at 100,000 subjects)
        code, cats = pd.factorize(lb["LBCAT"])
        hit = np.append(pd.Series(cats, dtype="string").str.upper().eq("CYTOGENETICS").fillna(False)
                        .to_numpy(dtype=bool), False)[code]
        x = lb.loc[hit, [c for c in ("USUBJID", "LBTESTCD", "LBSTRESC", "LBDT") if c in lb]]
        x["USUBJID"] = x["USUBJID"].astype("string")
        if "TRTSDT" in adsl and "LBDT" in x:
            ref = lookup(x["USUBJID"], adsl.set_index("USUBJID")["TRTSDT"])
            x = x.loc[~(pd.to_datetime(x["LBDT"]) > pd.to_datetime(ref)).fillna(False)]
        res = x["LBSTRESC"].astype("string").str.upper().str.strip()
        x = x.loc[res.isin(["POSITIVE", "NEGATIVE"]).fillna(False)]
        x = x.assign(LBTESTCD=x["LBTESTCD"].astype("string").str.upper(), POS=res.loc[x.index].eq("POSITIVE"))
    agg = x.groupby(["USUBJID", "LBTESTCD"])["POS"].any().unstack() if len(x) else pd.DataFrame()
    ids = out["USUBJID"]
    for t in tests:
        if t in agg.columns:
            v = ids.map(agg[t])
            out[f"{t}FL"] = pd.Series(np.where(v.isna(), None, np.where(v.fillna(False).astype(bool), "Y", "N")),
                                      index=out.index, dtype="string")
        else:
            out[f"{t}FL"] = pd.Series(pd.NA, index=out.index, dtype="string")
    hr = [f"{t}FL" for t in rule.high_risk_cytogenetics]
    anypos = np.zeros(len(out), dtype=bool)
    tested = np.zeros(len(out), dtype=bool)
    for c in hr:
        anypos |= out[c].eq("Y").fillna(False).to_numpy()
        tested |= out[c].notna().to_numpy()
    out["HRCYTOFL"] = pd.Series(np.where(anypos, "Y", np.where(tested, "N", None)), index=out.index, dtype="string")
    alltested = np.zeros(len(out), dtype=bool)
    for t in tests:
        alltested |= out[f"{t}FL"].notna().to_numpy()
    out["CYTOTSFL"] = np.where(alltested, "Y", "N")
    return out


# --------------------------------------------------------------------------- eligibility

def derive_eligibility(
    subjects: pd.DataFrame,
    status: pd.DataFrame,
    *,
    dictionary: DrugDictionary,
    rule: EligibilityRule = DEFAULT_ELIGIBILITY_RULE,
) -> pd.DataFrame:
    """ELIGFL, LABELFL and one ``Y``/``N`` column per criterion (``ELIG_<id>``, ``LABEL_<id>``).

    Rule
    ----
    Protocol inclusion criteria as data (default STORM Part 2: prior bortezomib, carfilzomib,
    lenalidomide, pomalidomide, daratumumab, glucocorticoids and an alkylator; refractory to >= 1
    PI, >= 1 IMiD, daratumumab, glucocorticoids and the last line; measurable disease. Chari 2019,
    domain.md 1.1, tag C). Label population: XPOVIO 2019 section 1.1 (domain.md 1.9, tag C).
    A criterion whose flag is absent from ``subjects`` raises ``KeyError`` naming it.
    """
    out = subjects[["USUBJID"]].copy()
    terms = StatusTerms(status, subjects, dictionary)  # the status table encoded once (issue 15)
    for prefix, crits, flag in (("ELIG", rule.criteria, "ELIGFL"), ("LABEL", rule.label_population, "LABELFL")):
        allok = np.ones(len(subjects), dtype=bool)
        for c in crits:
            ok = np.ones(len(subjects), dtype=bool)
            for t in c.terms:
                ok &= terms.holds(parse_term(t))
            out[f"{prefix}_{c.id}"] = np.where(ok, "Y", "N")
            allok &= ok
        out[flag] = np.where(allok, "Y", "N")
    return out


def _fmt_date(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).dt.strftime("%Y-%m-%d").astype("string").fillna("?")


def compute_term_evidence(
    term: str,
    ids: pd.Series,
    *,
    status: pd.DataFrame,
    subjects: pd.DataFrame,
    adlot: pd.DataFrame,
    dictionary: DrugDictionary,
    refractory: RefractoryRule,
) -> pd.Series:
    """A short text, per subject in ``ids``, of the data behind a term's result (vectorised)."""
    t: Term = parse_term(term)
    ids = ids.astype("string").reset_index(drop=True)
    subj = subjects.assign(USUBJID=subjects["USUBJID"].astype("string")).set_index("USUBJID")
    w = refractory.window_days
    if t.kind == "lines":
        return "NLINES = " + ids.map(subj["NLINES"]).fillna(0).astype("int64").astype("string")
    if t.kind == "flag":
        v = ids.map(subj[t.var]).astype("string").fillna("missing") if t.var in subj else pd.Series("absent", index=ids.index)
        return f"{t.var} = " + v
    if t.kind == "last_line":
        last = adlot.sort_values("LINENUM").drop_duplicates("USUBJID", keep="last")
        last = pd.DataFrame({"USUBJID": ids}).merge(
            last.assign(USUBJID=last["USUBJID"].astype("string"))[["USUBJID", "LINENUM", "DRUGS", "LOTENDT", "LOTPDDT"]],
            on="USUBJID", how="left")
        has = last["LINENUM"].notna()
        txt = ("last line " + last["LINENUM"].astype("Int64").astype("string").fillna("?")
               + " (" + last["DRUGS"].astype("string").fillna("") + ") ended "
               + _fmt_date(last["LOTENDT"]) + "; progression on or within " + str(w)
               + " days: " + _fmt_date(last["LOTPDDT"]).str.replace("?", "none"))
        return txt.where(has, "no prior line recorded")
    resolved = [dictionary.resolve(n) for n in t.names]
    drugs = {v for k, v in resolved if k == "drug"}
    classes = {v for k, v in resolved if k == "class"}
    members = drugs | set(dictionary.drug_classes.loc[dictionary.drug_classes["CLASS"].isin(classes), "DRUG"])
    s = status.loc[status["DRUG"].isin(members) & status["USUBJID"].astype("string").isin(set(ids))].copy()
    s["USUBJID"] = s["USUBJID"].astype("string")
    if len(drugs) == 1 and not classes:
        d = pd.DataFrame({"USUBJID": ids}).merge(
            s[["USUBJID", "LDOSEDT", "REFFL", "NXTPDDT", "NXTPDDY"]].drop_duplicates("USUBJID"),
            on="USUBJID", how="left")
        exp = d["REFFL"].notna()
        txt = (next(iter(drugs)) + " last dose " + _fmt_date(d["LDOSEDT"])
               + "; refractory " + d["REFFL"].astype("string").fillna("N")
               + "; first progression after start "
               + _fmt_date(d["NXTPDDT"]).str.replace("?", "none")
               + " (" + d["NXTPDDY"].astype("Int64").astype("string").fillna("-")
               + " days after last dose; window " + str(w) + ")")
        return txt.where(exp, f"no {next(iter(drugs))} in prior therapy")
    what = "+".join(t.names)
    e = _string_agg(s, ["USUBJID"], "DRUG", "DRUG", "EXP", distinct=True).set_index("USUBJID")["EXP"] if len(s) else pd.Series(dtype="string")
    r0 = s.loc[s["REFFL"].eq("Y")]
    r = _string_agg(r0, ["USUBJID"], "DRUG", "DRUG", "REF", distinct=True).set_index("USUBJID")["REF"] if len(r0) else pd.Series(dtype="string")
    return (f"{what} (need >= {t.n} {t.status}): exposed to " + ids.map(e).astype("string").fillna("none")
            + "; refractory to " + ids.map(r).astype("string").fillna("none"))


def derive_eligibility_listing(
    elig: pd.DataFrame,
    *,
    status: pd.DataFrame,
    subjects: pd.DataFrame,
    adlot: pd.DataFrame,
    dictionary: DrugDictionary,
    rule: EligibilityRule = DEFAULT_ELIGIBILITY_RULE,
    refractory: RefractoryRule | None = None,
    which: str = "criteria",
) -> pd.DataFrame:
    """One row per subject and failed criterion: USUBJID, CRITID, CRITERION, EVIDENCE.

    Evidence is built for the failing subjects only, one vectorised pass per criterion term.
    """
    refractory = refractory or RefractoryRule()
    crits = rule.criteria if which == "criteria" else rule.label_population
    prefix = "ELIG" if which == "criteria" else "LABEL"
    parts = []
    for c in crits:
        fail = elig.loc[elig[f"{prefix}_{c.id}"].eq("N"), "USUBJID"].astype("string").reset_index(drop=True)
        if len(fail) == 0:
            continue
        ev = None
        for t in c.terms:
            e = compute_term_evidence(t, fail, status=status, subjects=subjects, adlot=adlot,
                                      dictionary=dictionary, refractory=refractory)
            ev = e if ev is None else ev + " | " + e
        parts.append(pd.DataFrame({"USUBJID": fail, "CRITID": c.id, "CRITERION": c.label, "EVIDENCE": ev}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="string") for c in ("USUBJID", "CRITID", "CRITERION", "EVIDENCE")})
    order = {c.id: i for i, c in enumerate(crits)}
    out = pd.concat(parts, ignore_index=True)
    out["_o"] = out["CRITID"].map(order)
    return out.sort_values(["USUBJID", "_o"]).drop(columns="_o").reset_index(drop=True)
