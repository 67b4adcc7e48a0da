"""CTCAE v5.0 grading of laboratory values, and the ADLB dataset built on it.

Rules are data: ``data/ctcae_v5.json`` holds one record per CTCAE term and grade with its
verbatim text and typed thresholds (bound, operator, unit, relative to LLN / ULN / baseline).
One small engine (:func:`compute_toxgrade`) reads them; nothing is evaluated.

Rule
----
NCI Common Terminology Criteria for Adverse Events v5.0 (27 Nov 2017), terms Platelet count
decreased, Neutrophil count decreased, Anemia, White blood cell decreased, Lymphocyte count
decreased, Hyponatremia, Creatinine increased (../shared/reference/domain.md section 3, tag C).
CTCAE ranges read "<upper - lower": value < upper and >= lower, so a record's grade is the
highest grade whose bound it crosses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

from mmtrial.derive._groups import pack_keys
from mmtrial.sdtm.issues import InputIssue, StudyInputError
from mmtrial.sdtm.units import normalise_unit

DECIMALS = 9
Ref = Literal["absolute", "LLN", "ULN", "baseline"]
BaselineArm = Literal["above_uln", "any", "off"]


@dataclass(frozen=True)
class Arm:
    """One comparison: ``value <op> bound``; bound = ``value`` or ``factor`` x LLN/ULN/baseline."""

    op: Literal["<", ">"]
    ref: Ref
    value: float | None = None
    factor: float | None = None
    unit: str | None = None
    alt_values: tuple[tuple[str, float], ...] = ()
    requires: str | None = None

    def __post_init__(self) -> None:
        if self.op not in ("<", ">"):
            raise ValueError(f"Arm.op: allowed '<' or '>'; got {self.op!r}")
        if self.ref == "absolute" and (self.value is None or self.unit is None):
            raise ValueError("Arm with ref 'absolute' needs 'value' and 'unit'")
        if self.ref in ("LLN", "ULN", "baseline") and self.factor is None:
            raise ValueError(f"Arm with ref {self.ref!r} needs 'factor'")
        if self.ref not in ("absolute", "LLN", "ULN", "baseline"):
            raise ValueError(f"Arm.ref: allowed absolute, LLN, ULN, baseline; got {self.ref!r}")


@dataclass(frozen=True)
class GradeCriterion:
    """One CTCAE grade of one term: verbatim text and the arms (any of which suffices)."""

    term: str
    grade: int
    text: str
    any_of: tuple[Arm, ...]
    gradable_from_lab: bool = True


@dataclass(frozen=True)
class TermCriteria:
    """A CTCAE term graded from one laboratory test."""

    term: str
    meddra_code: str
    soc: str
    paramcd: str
    direction: Literal["low", "high"]
    unit: str
    ae_terms: tuple[str, ...]
    grades: tuple[GradeCriterion, ...]

    def units(self) -> tuple[str, ...]:
        """The default unit and every alternative unit printed by CTCAE for this term."""
        alts: list[str] = []
        for g in self.grades:
            for a in g.any_of:
                alts.extend(u for u, _ in a.alt_values if u not in alts)
        return (self.unit, *alts)


@dataclass(frozen=True)
class GradingCriteria:
    """A CTCAE version as data (``GradingCriteria.load("ctcae_v5")``)."""

    name: str
    version: str
    source: str
    terms: tuple[TermCriteria, ...]

    @classmethod
    def load(cls, name: str = "ctcae_v5") -> GradingCriteria:
        return _load_criteria(name)

    def by_paramcd(self) -> dict[str, TermCriteria]:
        return {t.paramcd: t for t in self.terms}

    def by_term(self) -> dict[str, TermCriteria]:
        return {t.term: t for t in self.terms}


@dataclass(frozen=True)
class GradingPolicy:
    """How grades that need clinical information are handled (CTCAE cannot be read from a value).

    Options
    -------
    assume : clinical conditions assumed present for every record (default none). ``"symptomatic"``
        turns the Hyponatremia grade 3 arm "125-129 mmol/L symptomatic" on, so 125-129 mmol/L is
        grade 3; by default it is grade 2 ("and asymptomatic"), the convention of admiral's
        lab-only grading. Anemia grade 4 (life-threatening) and grade 5 are never lab-derived.
    creatinine_baseline_arm : ``"above_uln"`` (default): the "x baseline" arms of Creatinine
        increased apply only to values above the ULN (a value inside the normal range is not
        "increased"); ``"any"``: the arms as printed; ``"off"``: ULN arms only. A subject without a
        baseline value is graded by the ULN arms. Baseline records are graded against the normal
        range only (never against themselves).
    """

    assume: frozenset[str] = frozenset()
    creatinine_baseline_arm: BaselineArm = "above_uln"

    def __post_init__(self) -> None:
        if self.creatinine_baseline_arm not in ("above_uln", "any", "off"):
            raise ValueError(
                "GradingPolicy.creatinine_baseline_arm: allowed 'above_uln', 'any', 'off'; "
                f"got {self.creatinine_baseline_arm!r}"
            )
        unknown = set(self.assume) - {"symptomatic"}
        if unknown:
            raise ValueError(f"GradingPolicy.assume: allowed 'symptomatic'; got {sorted(unknown)}")

    def describe(self) -> list[str]:
        hypo = "grade 3 (symptomatic assumed)" if "symptomatic" in self.assume else (
            "grade 2 (asymptomatic assumed; symptom status is not in the lab data)"
        )
        arm = {
            "above_uln": "applied only to values above the ULN",
            "any": "applied as printed",
            "off": "not applied (ULN arms only)",
        }[self.creatinine_baseline_arm]
        return [
            "Laboratory grades: CTCAE v5.0 thresholds applied to each value; grade 1 uses the "
            "record's own LLN/ULN; a value whose grade depends on a missing LLN/ULN is not graded.",
            f"Hyponatremia 125-129 mmol/L graded {hypo}.",
            "Anemia grade 4 (life-threatening consequences) needs clinical information: "
            "lab-derived anemia grades stop at 3.",
            f"Creatinine increased, 'x baseline' arms {arm}; baseline values are graded against "
            "the normal range only.",
        ]


def _arm(d: dict) -> Arm:
    return Arm(
        op=d["op"],
        ref=d["ref"],
        value=None if d.get("value") is None else float(d["value"]),
        factor=None if d.get("factor") is None else float(d["factor"]),
        unit=d.get("unit"),
        alt_values=tuple((str(k), float(v)) for k, v in d.get("alt_values", {}).items()),
        requires=d.get("requires"),
    )


@lru_cache(maxsize=4)
def _load_criteria(name: str) -> GradingCriteria:
    text = resources.files("mmtrial.data").joinpath(f"{name}.json").read_text("utf-8")
    data = json.loads(text)
    crit: dict[str, list[GradeCriterion]] = {}
    for c in data["criteria"]:
        g = GradeCriterion(
            term=c["term"],
            grade=int(c["grade"]),
            text=c["text"],
            any_of=tuple(_arm(a) for a in c["any_of"]),
            gradable_from_lab=bool(c.get("gradable_from_lab", True)),
        )
        if g.gradable_from_lab and not g.any_of:
            raise ValueError(f"{name}: {g.term} grade {g.grade} is gradable but has no arms")
        crit.setdefault(g.term, []).append(g)
    terms = []
    for t in data["terms"]:
        grades = tuple(sorted(crit.pop(t["term"], []), key=lambda g: g.grade))
        if not grades:
            raise ValueError(f"{name}: term {t['term']!r} has no criteria")
        ops = {a.op for g in grades for a in g.any_of}
        want = "<" if t["direction"] == "low" else ">"
        if ops != {want}:
            raise ValueError(f"{name}: {t['term']} direction {t['direction']} but operators {ops}")
        terms.append(
            TermCriteria(
                term=t["term"], meddra_code=str(t["meddra_code"]), soc=t["soc"],
                paramcd=t["paramcd"], direction=t["direction"], unit=t["unit"],
                ae_terms=tuple(s.upper() for s in t.get("ae_terms", [])), grades=grades,
            )
        )
    if crit:
        raise ValueError(f"{name}: criteria for unknown terms {sorted(crit)}")
    return GradingCriteria(
        name=data["name"], version=str(data["version"]), source=data["source"], terms=tuple(terms)
    )


def _factorize(values: pd.Series) -> tuple[np.ndarray, pd.api.extensions.ExtensionArray | np.ndarray]:
    """``pandas.factorize(values)`` (codes in order of first appearance, -1 missing; the distinct
    values). For Arrow-backed text the codes are Arrow's own int32 indices, without the int64
    copy pandas makes of them (issue 15: three 48 MB arrays for 6 M lab records)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = getattr(values.array, "_pa_array", None)
    if data is None or len(values) == 0 or not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return pd.factorize(values)
    enc = data.dictionary_encode().combine_chunks()
    idx = enc.indices
    if idx.null_count:
        idx = pc.fill_null(idx, -1)
    return idx.to_numpy(zero_copy_only=False), pd.array(enc.dictionary.to_pylist(), dtype=values.dtype)


BLOCK = 1 << 15  # rows graded at a time: a block's temporaries stay in the CPU cache (issue 15)


@dataclass(frozen=True)
class _Bound:
    """One arm as :func:`compute_toxgrade` applies it in one unit: ``value <op> bound``."""

    low: bool  # "<" (else ">")
    ref: Ref
    c: float  # absolute: the bound itself, rounded; else the factor
    above_uln: bool  # a baseline arm applied only to values above the ULN


def _program(term: TermCriteria, unit: str, policy: GradingPolicy) -> tuple[tuple[int, tuple[_Bound, ...]], ...]:
    """The gradable grades of ``term`` (in its order) with the arms that apply under ``policy``,
    absolute bounds taken in ``unit`` and rounded once (not once per record)."""
    prog = []
    is_creat = term.direction == "high"
    for g in term.grades:
        if not g.gradable_from_lab:
            continue
        arms = []
        for arm in g.any_of:
            if arm.requires is not None and arm.requires not in policy.assume:
                continue
            if arm.ref == "absolute":
                if unit == arm.unit:
                    value = arm.value
                else:
                    alts = dict(arm.alt_values)
                    if unit not in alts:
                        raise ValueError(
                            f"{term.term}: no CTCAE threshold in unit {unit!r}; "
                            f"allowed {list(term.units())}"
                        )
                    value = alts[unit]
                # the bound rounded as the per-record bounds are (same operations on one element)
                c = float(np.round(np.array([value], dtype=float), DECIMALS)[0])
            elif arm.ref == "baseline" and is_creat and policy.creatinine_baseline_arm == "off":
                continue
            else:
                c = float(arm.factor)  # type: ignore[arg-type]
            above = arm.ref == "baseline" and policy.creatinine_baseline_arm == "above_uln"
            arms.append(_Bound(arm.op == "<", arm.ref, c, above))
        if arms:
            prog.append((g.grade, tuple(arms)))
    return tuple(prog)


_P9 = float(10**DECIMALS)


def _round9(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``numpy.round(x, 9)`` (into ``out``; a new array when None), bit for bit: the same three
    operations numpy's ``round`` performs (multiply by 1e9, ``rint``, divide by 1e9), without its
    per-call overhead (measured: about 2.5 x the time of the operations at a few thousand values)."""
    out = np.multiply(x, _P9, out=out)
    np.rint(out, out=out)
    return np.true_divide(out, _P9, out=out)


def _grade_rows(
    prog: tuple[tuple[int, tuple[_Bound, ...]], ...],
    v: np.ndarray,
    lln: np.ndarray | None,
    uln: np.ndarray | None,
    base: np.ndarray | None,
) -> np.ndarray:
    """Grades of rounded values ``v`` (new float array, NaN where undetermined): the highest grade
    with a true arm; NaN when a higher grade has an arm with a missing LLN/ULN, or ``v`` is missing.
    ``uln`` is rounded; ``lln`` and ``base`` are not (bounds are rounded after the factor).

    Grades that are small integers (CTCAE's 1-5) are kept as int8 and raised by ``maximum`` with
    ``hit x grade`` (ufunc ``where=`` was 20 ns a value); any other grade as float.
    """
    n = v.shape[0]
    small = all(isinstance(g, (int, np.integer)) and 0 <= g <= 127 for g, _ in prog)
    top = np.zeros(n, dtype=np.int8 if small else float)
    unk: np.ndarray | None = None

    def raise_to(acc: np.ndarray, grade: float, mask: np.ndarray) -> None:
        if small:
            np.maximum(acc, mask.view(np.int8) * np.int8(grade), out=acc)
        else:
            np.maximum(acc, float(grade), out=acc, where=mask)

    with np.errstate(invalid="ignore"):
        for grade, arms in prog:
            hit: np.ndarray | None = None
            unknown: np.ndarray | None = None
            for a in arms:
                if a.ref == "absolute":
                    h = (v < a.c) if a.low else (v > a.c)
                else:
                    src = lln if a.ref == "LLN" else uln if a.ref == "ULN" else base
                    b = _round9(src * a.c)  # type: ignore[operator]
                    h = (v < b) if a.low else (v > b)  # a missing bound compares false
                    if a.ref != "baseline":  # missing LLN/ULN: unknown; missing baseline: false
                        u = np.isnan(b)
                        unknown = u if unknown is None else np.logical_or(unknown, u, out=unknown)
                    if a.above_uln:
                        h &= v > uln  # type: ignore[operator]
                hit = h if hit is None else np.logical_or(hit, h, out=hit)
            raise_to(top, grade, hit)  # type: ignore[arg-type]
            if unknown is not None:
                unknown &= ~hit  # type: ignore[operator]
                if unk is None:
                    unk = np.zeros(n, dtype=top.dtype)
                raise_to(unk, grade, unknown)
        drop = np.isnan(v)
        if unk is not None:
            drop |= unk > top
    out = top.astype(float)
    np.putmask(out, drop, np.nan)
    return out


def _needs(prog: tuple[tuple[int, tuple[_Bound, ...]], ...]) -> tuple[bool, bool, bool]:
    """Whether a program reads the LLN, the ULN, the baseline value."""
    arms = [a for _, arms in prog for a in arms]
    return (any(a.ref == "LLN" for a in arms),
            any(a.ref == "ULN" or a.above_uln for a in arms),
            any(a.ref == "baseline" for a in arms))


def compute_toxgrade(
    value: np.ndarray,
    *,
    term: TermCriteria,
    lln: np.ndarray | None = None,
    uln: np.ndarray | None = None,
    base: np.ndarray | None = None,
    unit: str | None = None,
    policy: GradingPolicy = GradingPolicy(),
) -> np.ndarray:
    """CTCAE grade of each value (float array; NaN where the grade cannot be determined).

    Rule
    ----
    CTCAE v5.0 (data/ctcae_v5.json): a grade holds when any of its arms holds; the record's grade
    is the highest grade that holds, 0 when none holds.

    Algorithm
    ---------
    1. Round values to 9 decimals. For every gradable grade and arm, compute the bound (absolute value in ``unit`` or
       factor x LLN/ULN/baseline) and compare strictly (``<`` or ``>``).
    2. An arm whose LLN/ULN is missing is *unknown*; a missing baseline makes a baseline arm false
       (the subject is graded by its other arms).
    3. Grade = highest grade with a true arm; NaN when a higher grade had an unknown arm, or when
       the value is missing.

    Examples
    --------
    >>> plat = GradingCriteria.load().by_paramcd()["PLAT"]
    >>> compute_toxgrade(np.array([75.0, 74.9, 50.0, 24.9]), term=plat, lln=np.full(4, 150.0))
    array([1., 2., 2., 4.])
    """
    # values and bounds are compared after rounding to 9 decimals, so binary floating-point error
    # (1.5 x 1.2 = 1.7999999999999998; unit conversion) never moves a value across a bound
    v = np.round(np.asarray(value, dtype=float), DECIMALS)
    n = v.shape[0]
    prog = _program(term, term.unit if unit is None else unit, policy)
    lln_a = np.full(n, np.nan) if lln is None else np.asarray(lln, dtype=float)
    uln_a = np.full(n, np.nan) if uln is None else np.round(np.asarray(uln, dtype=float), DECIMALS)
    base_a = np.full(n, np.nan) if base is None else np.asarray(base, dtype=float)
    return _grade_rows(prog, v, lln_a, uln_a, base_a)


def _unit_key(units: pd.Series) -> pd.Series:
    return normalise_unit(units)


def derive_var_atoxgr(
    lb: pd.DataFrame,
    *,
    criteria: GradingCriteria | None = None,
    policy: GradingPolicy = GradingPolicy(),
) -> pd.DataFrame:
    """Add ATOXGR, ATOXDSCL (CTCAE term), ATOXDIR (L/H) to an ADLB-shaped frame.

    Needs PARAMCD, AVAL, AVALU, ANRLO, ANRHI, BASE (baseline value, NaN on baseline records),
    USUBJID and ROWNUM (for messages). Tests without CTCAE criteria get ATOXGR missing.

    Rule
    ----
    CTCAE v5.0 (see :func:`compute_toxgrade`); grades are computed in the record's unit when
    CTCAE prints a threshold in it (e.g. g/L, mmol/L for hemoglobin), else it is an error.

    Raises
    ------
    StudyInputError
        naming subject, row, LBSTRESU and value, for a graded test in a unit CTCAE does not print.
    """
    criteria = criteria or GradingCriteria.load()
    out = lb.copy()
    grade, term_code, terms = compute_atoxgr_columns(
        out["PARAMCD"], out["AVALU"], out["AVAL"].to_numpy(dtype=float),
        out["ANRLO"].to_numpy(dtype=float), out["ANRHI"].to_numpy(dtype=float),
        out["BASE"].to_numpy(dtype=float), usubjid=out["USUBJID"],
        rownum=out.get("ROWNUM"), criteria=criteria, policy=policy,
    )
    out["ATOXGR"] = pd.array(grade, dtype="Float64")
    out["ATOXDSCL"] = pd.Categorical.from_codes(term_code, [t.term for t in terms])
    dir_code = np.array([0 if t.direction == "low" else 1 for t in terms] + [-1], dtype=np.int64)[term_code]
    out["ATOXDIR"] = pd.Categorical.from_codes(dir_code, ["L", "H"])
    return out


def compute_atoxgr_columns(
    paramcd: pd.Series | pd.Categorical,
    unit: pd.Series,
    aval: np.ndarray,
    lln: np.ndarray,
    uln: np.ndarray,
    base: np.ndarray,
    *,
    usubjid: pd.Series,
    rownum: pd.Series | None,
    criteria: GradingCriteria,
    policy: GradingPolicy,
) -> tuple[np.ndarray, np.ndarray, list[TermCriteria]]:
    """Grades (float, NaN missing), term codes (int8, -1 = not graded) and the term list, for columns.

    Works on factorised test codes and units (string work on distinct values only), so it runs
    at tens of millions of rows.
    """
    pcode, puni = pd.factorize(paramcd)
    return _atoxgr_from_codes(pcode, puni, unit, aval, lln, uln, base, None, usubjid=usubjid,
                              rownum=rownum, criteria=criteria, policy=policy)


def _atoxgr_from_codes(
    pcode: np.ndarray,
    puni: object,
    unit: pd.Series,
    aval: np.ndarray,
    lln: np.ndarray,
    uln: np.ndarray,
    base: np.ndarray,
    base_missing: np.ndarray | None,
    *,
    usubjid: pd.Series,
    rownum: pd.Series | None,
    criteria: GradingCriteria,
    policy: GradingPolicy,
) -> tuple[np.ndarray, np.ndarray, list[TermCriteria]]:
    """:func:`compute_atoxgr_columns` on test codes ``pcode`` (-1 missing) of the distinct tests
    ``puni``; ``base_missing`` marks records graded as if BASE were missing (baseline records).

    The records are graded a block of :data:`BLOCK` rows at a time and, within a block, one
    (term, unit) group at a time: each group's program (:func:`_program`) is made once, and no
    array of the length of lb is made for bounds, comparisons or intermediate grades (issue 15:
    those temporaries and their page faults were most of the time of ADLB).
    """
    n = len(aval)
    grade = np.empty(n)
    term_code = np.empty(n, dtype=np.int8)
    ucode, uuni = _factorize(unit)
    ukeys = normalise_unit(pd.Series(uuni, dtype="string")).to_numpy(dtype=object) if len(uuni) else np.array([], dtype=object)
    puni_list = list(np.asarray(puni, dtype=object))
    terms = [t for t in criteria.terms if t.paramcd in set(puni_list)]
    nu1 = len(uuni) + 1  # unit slots: 0 = missing unit, c + 1 = unit code c
    term_of_code = np.full(len(puni_list) + 1, -1, dtype=np.int8)  # the last slot: missing test
    crit_units: list[list[str | None]] = []  # per term and unit slot: the criterion unit or None
    for ti, t in enumerate(terms):
        term_of_code[puni_list.index(t.paramcd)] = ti
        keys = {normalise_unit(pd.Series([u])).iloc[0]: u for u in t.units()}
        crit_units.append([None] + [keys.get(ukeys[c]) for c in range(len(uuni))])
    programs: dict[int, tuple] = {}  # group -> (program, what it reads)
    unusable = False
    for s in range(0, n, BLOCK):
        e = min(s + BLOCK, n)
        tc = term_of_code[pcode[s:e]]
        term_code[s:e] = tc
        gb = grade[s:e]
        gb.fill(np.nan)
        if not terms or tc.max() < 0:
            continue
        gc = tc.astype(np.int32)
        gc += 1
        gc *= nu1
        gc += ucode[s:e]
        gc += 1  # group = (term + 1) x nu1 + unit slot; records of no term are below nu1
        counts = np.bincount(gc)
        for g in np.flatnonzero(counts[nu1:]) + nu1:
            ti, slot = divmod(int(g) - nu1, nu1)
            crit_unit = crit_units[ti][slot]
            if crit_unit is None:
                unusable = True
                continue
            entry = programs.get(g)
            if entry is None:
                steps = _program(terms[ti], crit_unit, policy)
                entry = programs[g] = (steps, _needs(steps))
            steps, (use_lln, use_uln, use_base) = entry
            whole = counts[g] == e - s
            idx = slice(None) if whole else np.flatnonzero(gc == g)
            v = aval[s:e][idx]
            v = _round9(v, out=None if whole else v)  # rounded as compute_toxgrade rounds
            lo = lln[s:e][idx] if use_lln else None
            hi = None
            if use_uln:
                hi = uln[s:e][idx]
                hi = _round9(hi, out=None if whole else hi)
            bs = None
            if use_base:
                bs = base[s:e][idx]
                if base_missing is not None:
                    bs = bs.copy() if whole else bs
                    bs[base_missing[s:e][idx]] = np.nan
            gb[idx] = _grade_rows(steps, v, lo, hi, bs)
    if unusable:
        _raise_unusable_units(terms, term_code, ucode, crit_units, unit, usubjid, rownum, criteria)
    return grade, term_code, terms


def _raise_unusable_units(
    terms: list[TermCriteria],
    term_code: np.ndarray,
    ucode: np.ndarray,
    crit_units: list[list[str | None]],
    unit: pd.Series,
    usubjid: pd.Series,
    rownum: pd.Series | None,
    criteria: GradingCriteria,
) -> None:
    """The error for graded records in a unit CTCAE does not print (the first 200 per term)."""
    issues: list[InputIssue] = []
    for ti, t in enumerate(terms):
        idx = np.flatnonzero(term_code == ti)
        usable = np.array([u is not None for u in crit_units[ti]])
        for r in idx[~usable[ucode[idx] + 1]][:200]:
            u = unit.iat[r]
            issues.append(
                InputIssue(
                    domain="lb", variable="LBSTRESU", usubjid=str(usubjid.iat[r]),
                    row=None if rownum is None else int(rownum.iat[r]),
                    value=None if pd.isna(u) else str(u),
                    problem=f"{t.paramcd} unit not usable for CTCAE grading of {t.term}",
                    hint=f"Expected one of {list(t.units())}.", rule=f"CTCAE v{criteria.version}",
                )
            )
    raise StudyInputError(issues)


@dataclass(frozen=True)
class AdlbOptions:
    """Options of :func:`derive_adlb`.

    Options
    -------
    on_treatment_window_days : post-baseline records count for worst grades from the day after
        first dose to last dose + this many days (default 30, the TEAE window).
    policy : :class:`GradingPolicy`.
    """

    on_treatment_window_days: int = 30
    policy: GradingPolicy = field(default_factory=GradingPolicy)

    def __post_init__(self) -> None:
        if self.on_treatment_window_days < 0:
            raise ValueError(
                f"AdlbOptions.on_treatment_window_days: allowed >= 0; got {self.on_treatment_window_days}"
            )


DAY_NS = 86_400_000_000_000  # nanoseconds in a day
_NAT = np.iinfo(np.int64).min  # NaT as int64


def _blocks(n: int) -> range:
    """Starts of the :data:`BLOCK`-row blocks of ``n`` rows."""
    return range(0, n, BLOCK)


def _last_rows(cols: list[np.ndarray]) -> np.ndarray:
    """Positions of the last row (by the other columns, then row order) per value of ``cols[0]``:
    one stable sort of the integer-valued columns packed into one int64 when their ranges allow,
    else ``numpy.lexsort``; the same rows either way."""
    packed = pack_keys(cols)
    o = np.argsort(packed, kind="stable") if packed is not None else np.lexsort(cols[::-1])
    k = cols[0][o]
    last = np.ones(o.size, dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    return o[last]


def _last_per_group(key: np.ndarray, order: np.ndarray, tiebreak: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the last row (by order, then tiebreak) per key among ``mask`` rows.

    The three integer-valued sort keys are packed into one int64 (each shifted to start at 0,
    mixed radix) when their ranges allow, and sorted once (stable: equal keys keep their row
    order, as ``numpy.lexsort`` does); otherwise ``numpy.lexsort``. The same rows either way.
    """
    out = np.zeros(key.shape[0], dtype=bool)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return out
    out[idx[_last_rows([key[idx], order[idx], tiebreak[idx]])]] = True
    return out


def _worst_rows(key: np.ndarray, grade: np.ndarray, ontrt: np.ndarray, adt: np.ndarray,
                rown: np.ndarray) -> np.ndarray | None:
    """Mask of the worst on-treatment graded record per key: the highest grade, then the smallest
    ``day x 10^9 + ROWNUM`` (earliest date, then first source row) -- the row
    ``_last_per_group(key, grade, -(day x 10^9 + ROWNUM), graded on-treatment)`` picks -- or
    None when two such records tie on all of these (the caller then sorts, as before).

    Three passes of ``ufunc.at`` over blocks of rows (highest grade per key; smallest
    day/ROWNUM among the records of that grade; the records holding both) instead of sorting
    the records: no array of the length of lb but the result (issue 15).
    """
    n = key.shape[0]
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    lo = int(key.min())
    best = np.full(int(key.max()) - lo + 1, -1.0)
    for s in _blocks(n):
        e = min(s + BLOCK, n)
        g = grade[s:e]
        c = ontrt[s:e] & ~np.isnan(g)
        np.maximum.at(best, key[s:e][c] - lo, g[c])
    first = np.full(best.shape, np.iinfo(np.int64).max)

    def candidates(s: int, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = key[s:e] - lo
        c = np.flatnonzero(ontrt[s:e] & (grade[s:e] == best[k]))
        t = adt[s:e][c].view(np.int64) // DAY_NS * 10**9 + rown[s:e][c]
        return c, k[c], t

    for s in _blocks(n):
        _, k, t = candidates(s, min(s + BLOCK, n))
        np.minimum.at(first, k, t)
    for s in _blocks(n):
        e = min(s + BLOCK, n)
        c, k, t = candidates(s, e)
        out[s:e][c[t == first[k]]] = True
    if int(np.count_nonzero(out)) != int(np.count_nonzero(best >= 0)):
        return None
    return out


def _float_with_na(values: np.ndarray) -> pd.arrays.FloatingArray:
    """``pd.array(values, dtype="Float64")`` (NaN -> NA) holding ``values`` itself, not a copy
    (issue 15); ``values`` must not change afterwards."""
    return pd.arrays.FloatingArray(values, np.isnan(values))


def _constant_text(value: str, n: int) -> pd.Series:
    """A text column of ``n`` copies of ``value``, as pandas makes it from the scalar (``str``
    dtype on an Arrow ``large_string`` array), built by Arrow directly: no Python object array
    of ``n`` references first (issue 15)."""
    import pyarrow as pa

    dtype = pd.Series([value]).dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return pd.Series(value, index=pd.RangeIndex(n), dtype=dtype)
    return pd.Series(pd.arrays.ArrowStringArray(pa.repeat(pa.scalar(value, pa.large_string()), n), dtype=dtype))


_PER_DAY = {"ns": DAY_NS, "us": DAY_NS // 1000, "ms": DAY_NS // 10**6, "s": 86_400}  # units a day


def _day_aligned(values: np.ndarray, per_day: int) -> bool:
    """Whether every datetime64 value (``per_day`` units a day) is midnight or NaT (read a block
    at a time)."""
    i = values.view(np.int64)
    for s in _blocks(i.shape[0]):
        b = i[s:s + BLOCK]
        if ((b % per_day != 0) & (b != _NAT)).any():
            return False
    return True


def _lab_dates(lb: pd.DataFrame, rows: np.ndarray | None, n: int) -> tuple[np.ndarray, pd.Series | np.ndarray]:
    """ADT: LBDT of the selected records at day resolution as datetime64[ns], and the output's
    column (lb's own LBDT, shared, when it is that already and every record is selected).

    LBDT already at midnight (as read) is taken as it is ([ns], else converted to [ns], exact);
    any other LBDT is floored to the day through datetime64[D] (the same values; no [ns] -> [D]
    -> [ns] round trip of every record when not needed, issue 15).
    """
    if "LBDT" not in lb:
        a = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        return a, a
    s = lb["LBDT"]
    unit = np.datetime_data(s.dtype)[0] if isinstance(s.dtype, np.dtype) and s.dtype.kind == "M" else None
    if unit in _PER_DAY and _day_aligned(s.to_numpy(), _PER_DAY[unit]):
        if rows is None and unit == "ns":
            s = s.reset_index(drop=True)
            return s.to_numpy(), s
        a = s.to_numpy()
        a = (a[rows] if rows is not None else a).astype("datetime64[ns]")  # exact at midnight
        return a, a
    d = s.to_numpy(dtype="datetime64[D]")
    a = (d[rows] if rows is not None else d).astype("datetime64[ns]")
    return a, a


def derive_adlb(
    lb: pd.DataFrame,
    adsl: pd.DataFrame,
    *,
    criteria: GradingCriteria | None = None,
    options: AdlbOptions = AdlbOptions(),
) -> pd.DataFrame:
    """ADLB: numeric lab records with baseline, CTCAE grades and worst-grade flags.

    Rule
    ----
    Baseline = the last non-missing value on or before the first dose (TRTSDT), per subject and
    test (ADaM BDS convention; ties on a date broken by the later source row). CTCAE v5.0 grades
    (:func:`derive_var_atoxgr`). Worst post-baseline grade: the highest ATOXGR among records after
    TRTSDT up to TRTEDT + window, the earliest such record flagged (WGRLOFL for low-direction
    terms, WGRHIFL for high-direction terms), as in admiral's ``derive_var_worst_flag``.

    Algorithm
    ---------
    1. Keep lb rows with a numeric LBSTRESN (character-only results are not lab values to grade).
    2. Merge TRTSDT/TRTEDT from ADSL; ABLFL, BASE, ONTRTFL.
    3. Grade every record; the baseline record is graded with BASE missing (against the normal
       range only); BTOXGR = the baseline record's grade.
    4. Flag the worst post-baseline on-treatment record per subject and test.

    Dates are compared as day-resolution datetime64[ns] (the output's ADT, TRTSDT, TRTEDT
    themselves); element-wise work runs a block of :data:`BLOCK` records at a time, so that the
    only arrays as long as lb are the output's columns and a few codes (issue 15).
    """
    criteria = criteria or GradingCriteria.load()
    has_value = lb["LBSTRESN"].notna().to_numpy(dtype=bool)
    # the records with a value, as row positions (None: all of them); each variable read below is
    # taken on its own, once: no copy of the selected rows of every variable first (issue 15)
    rows = None if has_value.all() else np.flatnonzero(has_value)
    del has_value
    n = len(lb) if rows is None else rows.size

    def text(name: str, *, required: bool = False) -> pd.Series:
        """A text variable of the selected records (shared with lb when every record is selected)."""
        if name not in lb and not required:
            return pd.Series(np.empty(n, dtype=object), dtype=object)  # None-filled
        s = lb[name] if rows is None else lb[name].take(rows)
        return s.reset_index(drop=True)

    def values(name: str, dtype=None) -> tuple[np.ndarray, pd.Series | np.ndarray]:
        """A numeric variable of the selected records, and the output's column: lb's own column
        (shared; pandas copies it on a write to either frame) when every record is selected and
        it has the dtype already, else a new array (issue 15: no copy of 48 MB per variable at
        6 M records)."""
        s = lb[name]
        if rows is None and isinstance(s.dtype, np.dtype) and (dtype is None or s.dtype == np.dtype(dtype)):
            s = s.reset_index(drop=True)
            return s.to_numpy(), s
        v = s.to_numpy(dtype=dtype)
        v = v[rows] if rows is not None else v.copy()
        return v, v

    def absent(value: object, dtype: object) -> tuple[np.ndarray, np.ndarray]:
        a = np.full(n, value, dtype=dtype)
        return a, a

    subj = text("USUBJID", required=True)
    adt, adt_col = _lab_dates(lb, rows, n)
    trt = adsl[["USUBJID", "TRTSDT", "TRTEDT"]].drop_duplicates("USUBJID")
    # subjects factorised once; ADSL looked up for the distinct subjects only, and TRTSDT/TRTEDT
    # (day resolution, [ns]) spread from them to the records (issue 15)
    subj_code, subj_uni = _factorize(subj)
    trt_index = pd.Index(trt["USUBJID"])
    pos_by_code = np.append(trt_index.get_indexer(pd.Index(subj_uni)), -1).astype(np.int64)
    no_subj = subj_code < 0
    if no_subj.any():  # code -1 (missing USUBJID): the last slot, looked up as the old code did
        pos_by_code[-1] = trt_index.get_indexer(subj[no_subj].iloc[:1])[0]
    del no_subj

    sdt, edt = (  # pos -1 -> the appended NaT (subject not in ADSL)
        np.append(trt[name].to_numpy(dtype="datetime64[D]"), np.datetime64("NaT"))
        .astype("datetime64[ns]")[pos_by_code][subj_code] for name in ("TRTSDT", "TRTEDT"))
    aval, aval_col = values("LBSTRESN", float)
    lln, lln_col = values("LBSTNRLO", float) if "LBSTNRLO" in lb else absent(np.nan, float)
    uln, uln_col = values("LBSTNRHI", float) if "LBSTNRHI" in lb else absent(np.nan, float)
    rown, rown_col = values("ROWNUM", np.int64) if "ROWNUM" in lb else (np.arange(1, n + 1),) * 2
    paramcd = text("LBTESTCD", required=True)
    unit = text("LBSTRESU")
    par_code, par_uni = _factorize(paramcd)
    npar = max(len(par_uni), 1)
    # subject x test (int32 when it fits: half the memory of int64, same values)
    key = subj_code.astype(np.int32 if (len(subj_uni) + 1) * npar < 2**31 else np.int64)
    key *= npar
    key += par_code
    del subj_code
    # baseline: the last record on or before TRTSDT (NaT compares false), by day then ROWNUM
    pre = np.flatnonzero(adt <= sdt)
    ablfl = np.zeros(n, dtype=bool)
    if pre.size:
        ablfl[pre[_last_rows([key[pre], adt[pre].view(np.int64) // DAY_NS, rown[pre]])]] = True
    del pre
    base_by_key = np.full(int(key.max()) + 1 if n else 0, np.nan)
    base_by_key[key[ablfl]] = aval[ablfl]
    base = base_by_key[key] if n else np.array([], dtype=float)
    window = np.timedelta64(options.on_treatment_window_days, "D")
    ontrt = np.empty(n, dtype=bool)
    for s in _blocks(n):
        e = min(s + BLOCK, n)
        np.greater(adt[s:e], sdt[s:e], out=ontrt[s:e])
        ontrt[s:e] &= adt[s:e] <= edt[s:e] + window
    # grade: baseline records against the normal range only
    grade, term_code, terms = _atoxgr_from_codes(
        par_code, par_uni, unit, aval, lln, uln, base, ablfl,
        usubjid=subj, rownum=pd.Series(rown, copy=False) if "ROWNUM" in lb else None,
        criteria=criteria, policy=options.policy,
    )
    del par_code
    bgr_by_key = np.full(base_by_key.shape, np.nan)
    bgr_by_key[key[ablfl]] = grade[ablfl]
    bgr = bgr_by_key[key] if n else np.array([], dtype=float)
    # worst post-baseline: highest grade, earliest date, first source row
    worst = _worst_rows(key, grade, ontrt, adt, rown)
    if worst is None:  # records tied on all of these: the last of them in row order, by a sort
        cand = ontrt & ~np.isnan(grade)
        day = adt.view(np.int64) // DAY_NS
        worst = _last_per_group(key, np.where(cand, grade, -1.0), -(day * 10**9 + rown), cand)
        del cand, day
    del key
    dir_code = np.array([0 if t.direction == "low" else 1 for t in terms] + [-1], dtype=np.int8)[term_code]
    ady = np.empty(n)
    for s in _blocks(n):
        e = min(s + BLOCK, n)
        d = adt[s:e].view(np.int64) - sdt[s:e].view(np.int64)
        d //= DAY_NS
        d += adt[s:e] >= sdt[s:e]
        ady[s:e] = d
        ady[s:e][np.isnat(adt[s:e]) | np.isnat(sdt[s:e])] = np.nan

    def y(mask: np.ndarray) -> pd.Categorical:
        # "Y"/"" flags as a categorical: no per-row string objects at tens of millions of rows
        return pd.Categorical.from_codes(mask.astype(np.int8), ["", "Y"])

    # the output's columns are made one at a time and what each was made from is dropped at once,
    # so the intermediates (codes, flags) are not all held with the output (issue 15)
    atoxdscl = pd.Categorical.from_codes(term_code, [t.term for t in terms])
    del term_code
    wgrlofl, wgrhifl = y(worst & (dir_code == 0)), y(worst & (dir_code == 1))
    atoxdir = pd.Categorical.from_codes(dir_code, ["L", "H"])
    del worst, dir_code
    ablfl_c, ontrt_c = y(ablfl), y(ontrt)
    del ablfl, ontrt
    out = pd.DataFrame({
        "USUBJID": subj,
        "PARAMCD": paramcd,
        "LBCAT": text("LBCAT"),
        "ADT": adt_col,
        "ADY": ady,
        "AVAL": aval_col,
        "AVALU": unit,
        "ANRLO": lln_col,
        "ANRHI": uln_col,
        "ABLFL": ablfl_c,
        "BASE": base,
        "CHG": aval - base,
        "ONTRTFL": ontrt_c,
        "ATOXGR": _float_with_na(grade),
        "BTOXGR": _float_with_na(bgr),
        "ATOXDSCL": atoxdscl,
        "ATOXDIR": atoxdir,
        "WGRLOFL": wgrlofl,
        "WGRHIFL": wgrhifl,
        "TRTSDT": sdt,
        "TRTEDT": edt,
        "SRCDOM": _constant_text("LB", n),
        "SRCSEQ": values("LBSEQ")[1] if "LBSEQ" in lb else np.full(n, np.nan),
        "ROWNUM": rown_col,
    }, copy=False)  # columns as they are (each a new array or a column shared with lb), one
    # block each: no consolidation copy of tens of millions of values into 2-D blocks (issue 15)
    return out
