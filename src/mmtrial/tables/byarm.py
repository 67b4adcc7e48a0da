"""Tables by treatment arm: one column per arm (TRT01PN / TRT01AN order) plus a "Total" column.

A randomised study's tables show each arm side by side (ICH E3 section 14 displays; the TLG
catalog's ``ARM`` columns). Rather than a second set of table builders, every frame-based builder
in ``tables/`` is wrapped by :func:`by_arm`: it builds its table as before (the single-arm table
is unchanged, byte for byte) and records how it was called. For a study with two or more arms,
:func:`rebuild_by_arm` calls the builder again on each arm's subjects (every DataFrame argument
with a ``USUBJID`` column keeps the arm's rows only) and lays the arms' tables side by side with
the pooled table as "Total" (:func:`merge_arm_tables`). The builder's own population flag and
denominators apply within each arm, so each column's percentages use that column's N.

Rule
----
ADaM IG v1.3 ADSL: TRT01P / TRT01PN (planned, randomised arm) and TRT01A / TRT01AN (actual
treatment). Efficacy displays are by the planned arm over the ITT population (ITTFL); safety
displays by the actual treatment over the safety population (SAFFL) (ICH E9 section 5.2; FDA
Study Data Technical Conformance Guide). Column headers "Arm (N=xx)" as the TLG catalog.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial.report.model import Table

Kind = Literal["safety", "efficacy"]

#: (arm variable, its numeric order variable, population flag) per kind of table.
ARM_VARIABLES: dict[str, tuple[str, str, str]] = {
    "safety": ("TRT01A", "TRT01AN", "SAFFL"),
    "efficacy": ("TRT01P", "TRT01PN", "ITTFL"),
}

#: The attribute of a :class:`Table` that holds its :class:`ArmRecipe`.
RECIPE_ATTR = "by_arm_recipe"

_N_IN_HEADER = re.compile(r"\s*\(N\s*=\s*\d+\)\s*$")
_COUNT_CELL = re.compile(r"^\d+(\s*\(.*\))?$")


@dataclass(frozen=True)
class Arm:
    """One column of a by-arm table: the arm's label (TRT01P/TRT01A value), its subjects, N."""

    label: str
    subjects: frozenset[str]
    n: int

    @property
    def header(self) -> str:
        return f"{self.label} (N={self.n})"


@dataclass
class ArmRecipe:
    """How a table was built: the builder, its arguments, and how to split it by arm."""

    builder: Callable[..., Any]
    args: tuple
    kwargs: dict
    kind: Kind
    total: bool = True
    value_columns: int | None = None  # keep only the first k value columns per arm (None: all)
    arm_kwargs: dict = field(default_factory=dict)  # overrides for the per-arm calls (row filters off)


def _flag(df: pd.DataFrame, var: str) -> pd.Series:
    if var not in df.columns:
        return pd.Series(True, index=df.index)
    return df[var].astype("string").eq("Y").fillna(False)


def is_multi_arm(adsl: pd.DataFrame | None) -> bool:
    """True when ADSL's planned arm (TRT01P) takes two or more values (a randomised study)."""
    if adsl is None or "TRT01P" not in adsl.columns:
        return False
    return adsl["TRT01P"].astype("string").replace("", pd.NA).dropna().nunique() >= 2


def study_arms(adsl: pd.DataFrame, kind: Kind) -> list[Arm]:
    """The arms of a ``kind`` of table, in TRT01PN (efficacy) or TRT01AN (safety) order.

    N is the number of the arm's subjects in the kind's population (ITTFL or SAFFL = "Y");
    subjects with no arm value, and arm values with N = 0 (e.g. TRT01A "Not Treated"), are in no
    arm column (they stay in Total).
    """
    var, num, flag = ARM_VARIABLES[kind]
    if var not in adsl.columns:
        return []
    lab = adsl[var].astype("string").replace("", pd.NA)
    code, labels = pd.factorize(lab, sort=True)  # arms in label order; no arm: -1
    k = len(labels)
    has = code >= 0
    order_num = (pd.to_numeric(adsl[num], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                 if num in adsl.columns else np.full(len(adsl), np.nan))
    first = np.full(k, np.nan)
    np.fmin.at(first, code[has], order_num[has])  # each arm's smallest order number (NaN if none)
    n = np.bincount(code[has & _flag(adsl, flag).to_numpy(dtype=bool)], minlength=k)
    uid = adsl["USUBJID"].astype(str).to_numpy(dtype=object)
    by_arm = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[by_arm], np.arange(k + 1))
    # arm order: smallest order number, then label; an arm value with nobody in the population
    # (e.g. TRT01A "Not Treated") is no column
    return [Arm(str(labels[i]), frozenset(uid[by_arm[bounds[i]:bounds[i + 1]]].tolist()), int(n[i]))
            for i in np.argsort(first, kind="stable") if n[i] > 0]


def population_n(adsl: pd.DataFrame, kind: Kind) -> int:
    """N of the kind's population over all arms (the Total column)."""
    return int(_flag(adsl, ARM_VARIABLES[kind][2]).sum())


def by_arm(kind: Kind, *, total: bool = True, value_columns: int | None = None,
           arm_kwargs: dict | None = None):
    """Decorator: the builder's table remembers its call (:class:`ArmRecipe`) for :func:`rebuild_by_arm`.

    The table itself is returned unchanged (single-arm reports are unaffected). ``arm_kwargs``
    override keyword arguments in the per-arm calls: a builder that keeps only rows above a
    frequency threshold must show every row in each arm (the rows shown are the Total's, selected
    by the threshold over all arms), else a row below the threshold in one arm would read 0.
    """

    def wrap(builder):
        @functools.wraps(builder)
        def inner(*args, **kwargs):
            t = builder(*args, **kwargs)
            if isinstance(t, Table):
                setattr(t, RECIPE_ATTR, ArmRecipe(builder, args, dict(kwargs), kind, total, value_columns,
                                                  dict(arm_kwargs or {})))
            return t

        return inner

    return wrap


def subset_to_subjects(value: Any, subjects: frozenset[str]) -> Any:
    """A DataFrame argument with a USUBJID column keeps the rows of ``subjects``; others as given."""
    if isinstance(value, pd.DataFrame) and "USUBJID" in value.columns:
        return value.loc[value["USUBJID"].astype(str).isin(subjects)]
    return value


def _value_columns(t: Table) -> list[str]:
    stub = t.stub if t.stub in t.data.columns else t.data.columns[0]
    return [str(c) for c in t.data.columns if c != stub]


_N_VALUE = re.compile(r"\(N\s*=\s*(\d+)\)\s*$")


def _arm_column_names(label: str, n: int, cols: Sequence[str]) -> dict[str, str]:
    """One value column: "<label> (N=n)"; several: "<label> (N=n): <column>".

    A single column whose header states its own N (the builder's population, e.g. "Safety
    population (N=60)") keeps that N: it is the denominator of the column's percentages.
    """
    if len(cols) == 1:
        own = _N_VALUE.search(cols[0])
        return {cols[0]: f"{label} (N={own.group(1) if own else n})"}
    return {c: f"{label} (N={n}): {_N_IN_HEADER.sub('', c) if c.startswith(('All ', 'Safety ')) else c}"
            for c in cols}


def _row_keys(t: Table) -> list[tuple[str, int]]:
    """Each row's match key: (row group + "\\x1f" + row label, occurrence of that pair so far).

    The row label is the stub column's text (missing: ""), the row group ``t.groups`` when it
    has one per row (else ""); the occurrence numbers repeated (group, label) pairs 0, 1, ...
    """
    df = t.data
    cols = [str(c) for c in df.columns]
    si = cols.index(t.stub) if t.stub in cols else 0
    labels = df.iloc[:, si].astype("string").fillna("").tolist()
    if t.groups is not None and len(t.groups) == len(df):
        groups = pd.Series(t.groups, dtype="string").fillna("").tolist()
    else:
        groups = [""] * len(df)
    seen: dict[str, int] = {}
    keys = []
    for g, lab in zip(groups, labels, strict=True):  # the rows of a display table
        k = g + "\x1f" + lab
        occ = seen.get(k, 0)
        seen[k] = occ + 1
        keys.append((k, occ))
    return keys


def _column(t: Table, name: str) -> pd.Series:
    """The value column ``name`` (headers compared as text) of ``t.data``."""
    return t.data.iloc[:, [str(c) for c in t.data.columns].index(name)]


def _count_cells(col: pd.Series) -> np.ndarray:
    """True where a cell reads as a count ("n" or "n (...)"), after stripping blanks."""
    return col.astype("string").fillna("").str.strip().str.match(_COUNT_CELL.pattern).to_numpy(dtype=bool)


def _taken(col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """``col``'s values at ``rows`` as objects (pandas ``astype(object)``), NaN where ``rows`` is -1.

    What a left merge of ``col``'s frame onto those rows and ``astype(object)`` gave: a numpy
    integer column with unmatched rows becomes float first, as in pandas' merge.
    """
    absent = rows < 0
    if absent.any() and isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":
        col = col.astype(float)
    vals = col.astype(object).to_numpy()
    out = vals[np.where(absent, 0, rows)] if len(vals) else np.full(len(rows), np.nan, dtype=object)
    out[absent] = np.nan
    return out


def merge_arm_tables(total: Table, arm_tables: Sequence[tuple[Arm, Table | None]], *, total_n: int | None,
                     value_columns: int | None = None, footnote: str = "") -> Table:
    """The arms' tables side by side on the pooled table's rows (and the pooled values as Total).

    Rows are matched on (row group, row label, occurrence); a row of the pooled table that an
    arm's table lacks is a count of zero in that arm ("0") when the pooled cell is a count, and
    blank otherwise. Subjects behind linked counts (``cell_subjects``) follow their cells.
    Tables have tens to hundreds of rows: rows are matched through a dict of their keys and
    columns taken by position (no pandas merge; issue 15).
    """
    base_keys = _row_keys(total)
    cols0 = [str(c) for c in total.data.columns]
    stub = total.stub if total.stub in cols0 else cols0[0]
    tot_cols = _value_columns(total)
    if value_columns is not None:
        tot_cols = tot_cols[:value_columns]
    out: dict[str, Any] = {stub: total.data.iloc[:, cols0.index(stub)].reset_index(drop=True)}
    cells: dict[tuple[int, str], list[str]] = {}
    counts: dict[str, np.ndarray] = {}  # which pooled cells are counts, computed when needed

    def is_count(tc: str | None) -> np.ndarray:
        if tc not in tot_cols:
            return np.zeros(len(base_keys), dtype=bool)
        if tc not in counts:
            counts[tc] = _count_cells(_column(total, tc))
        return counts[tc]

    for arm, t in arm_tables:
        if t is None:
            continue
        pos = {k: i for i, k in enumerate(_row_keys(t))}
        rows = np.fromiter((pos.get(k, -1) for k in base_keys), dtype=np.int64, count=len(base_keys))
        cols = _value_columns(t)
        if value_columns is not None:
            cols = cols[:value_columns]
        names = _arm_column_names(arm.label, arm.n, cols)
        for j, c in enumerate(cols):
            vals = _taken(_column(t, c), rows)
            missing = pd.isna(vals)
            if missing.any():
                # the arm's column j matches the pooled column j (its header may differ: "... (N=arm n)")
                filler = is_count(c if c in tot_cols else (tot_cols[j] if j < len(tot_cols) else None))
                vals[missing] = np.where(filler[missing], "0", "")
            out[names[c]] = vals
        back = {int(p): i for i, p in enumerate(rows) if p >= 0}
        for (r, c), subs in t.cell_subjects.items():
            if str(c) in names and r in back:
                cells[(back[r], names[str(c)])] = subs
    if total_n is not None:
        names = _arm_column_names("Total", total_n, tot_cols)
        for c in tot_cols:
            out[names[c]] = _column(total, c).to_numpy()
        for (r, c), subs in total.cell_subjects.items():
            if str(c) in names:
                cells[(r, names[str(c)])] = subs
    notes = list(total.footnotes)
    if footnote:
        notes.append(footnote)
    return Table(id=total.id, title=total.title, data=pd.DataFrame(out), footnotes=notes,
                 population=total.population, source=total.source, stub=stub,
                 groups=list(total.groups) if total.groups is not None else None, cell_subjects=cells)


def arms_footnote(kind: Kind, arms: Sequence[Arm], total: bool) -> str:
    var, _, flag = ARM_VARIABLES[kind]
    what = "actual treatment" if kind == "safety" else "randomised (planned) arm"
    pop = "safety population" if kind == "safety" else "intent-to-treat population"
    tail = "; Total: all arms together" if total else ""
    return (f"Columns: {', '.join(a.label for a in arms)} by {what} ({var}){tail}. N = subjects of the "
            f"{pop} ({flag} = Y) in the column; percentages use the column's own denominator.")


class ArmSplit:
    """One ADSL's arms, per kind of table, and each frame's rows per arm, each computed once.

    A randomised study's report rebuilds some 25 tables per arm from the same few frames (ADSL,
    ADAE, ADLB, ...): :func:`rebuild_by_arm` given a split selects a frame's rows of an arm once
    and hands each builder a shallow copy of them (pandas copy-on-write: a builder that adds a
    column changes only its own copy). Frames are recognised by identity and kept alive by the
    split, so a key is never reused for another frame (issue 15).
    """

    def __init__(self, adsl: pd.DataFrame):
        self.adsl = adsl
        self._arms: dict[str, list[Arm]] = {}
        self._rows: dict[tuple[int, frozenset[str]], tuple[pd.DataFrame, pd.DataFrame]] = {}

    def arms(self, kind: Kind) -> list[Arm]:
        """:func:`study_arms` of this ADSL."""
        if kind not in self._arms:
            self._arms[kind] = study_arms(self.adsl, kind)
        return self._arms[kind]

    def subset(self, value: Any, subjects: frozenset[str]) -> Any:
        """:func:`subset_to_subjects`, computed once per frame and subject set."""
        if not (isinstance(value, pd.DataFrame) and "USUBJID" in value.columns):
            return value
        key = (id(value), subjects)
        hit = self._rows.get(key)
        if hit is None or hit[0] is not value:
            hit = (value, subset_to_subjects(value, subjects))
            self._rows[key] = hit
        return hit[1].copy(deep=False)


def rebuild_by_arm(t: Table, adsl: pd.DataFrame, split: ArmSplit | None = None) -> Table:
    """The table by arm (see module docstring), or ``t`` unchanged when it has no recipe.

    ``split``: the arms and arm subsets of ``adsl`` shared by the tables of one report (the same
    tables as without it, computed once; :class:`ArmSplit`).
    """
    recipe: ArmRecipe | None = getattr(t, RECIPE_ATTR, None)
    if recipe is None:
        return t
    if split is None or split.adsl is not adsl:
        split = ArmSplit(adsl)
    arms = split.arms(recipe.kind)
    if len(arms) < 2:
        return t
    built = []
    for arm in arms:
        args = tuple(split.subset(v, arm.subjects) for v in recipe.args)
        kwargs = {k: split.subset(v, arm.subjects) for k, v in (recipe.kwargs | recipe.arm_kwargs).items()}
        built.append((arm, recipe.builder(*args, **kwargs)))
    total_n = population_n(adsl, recipe.kind) if recipe.total else None
    return merge_arm_tables(t, built, total_n=total_n, value_columns=recipe.value_columns,
                            footnote=arms_footnote(recipe.kind, arms, recipe.total))
