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
    d = pd.DataFrame({"USUBJID": adsl["USUBJID"].astype(str), "ARM": lab, "POP": _flag(adsl, flag)})
    d["ORD"] = pd.to_numeric(adsl[num], errors="coerce") if num in adsl.columns else float("nan")
    d = d.dropna(subset=["ARM"])
    order = d.groupby("ARM", sort=True)["ORD"].min().sort_values(kind="stable", na_position="last")
    subj = d.groupby("ARM")["USUBJID"].agg(frozenset)
    n = d.loc[d["POP"]].groupby("ARM").size()
    # an arm value with nobody in the population (e.g. TRT01A "Not Treated") is no column
    return [Arm(str(a), subj[a], int(n[a])) for a in order.index if int(n.get(a, 0)) > 0]


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


def _keyed(t: Table) -> pd.DataFrame:
    df = t.data.reset_index(drop=True).copy()
    df.columns = [str(c) for c in df.columns]
    stub = t.stub if t.stub in df.columns else df.columns[0]
    grp = pd.Series(t.groups if t.groups is not None and len(t.groups) == len(df) else [""] * len(df),
                    dtype="string").fillna("")
    key = grp + "\x1f" + df[stub].astype("string").fillna("")
    df["_KEY"] = key.to_numpy()
    df["_OCC"] = df.groupby("_KEY").cumcount().to_numpy()
    df["_POS"] = range(len(df))
    return df


def merge_arm_tables(total: Table, arm_tables: Sequence[tuple[Arm, Table | None]], *, total_n: int | None,
                     value_columns: int | None = None, footnote: str = "") -> Table:
    """The arms' tables side by side on the pooled table's rows (and the pooled values as Total).

    Rows are matched on (row group, row label, occurrence); a row of the pooled table that an
    arm's table lacks is a count of zero in that arm ("0") when the pooled cell is a count, and
    blank otherwise. Subjects behind linked counts (``cell_subjects``) follow their cells.
    """
    base = _keyed(total)
    stub = total.stub if total.stub in total.data.columns else str(total.data.columns[0])
    tot_cols = _value_columns(total)
    if value_columns is not None:
        tot_cols = tot_cols[:value_columns]
    out = base[[stub]].copy()
    cells: dict[tuple[int, str], list[str]] = {}
    counts = {c: base[c].astype("string").fillna("").str.strip().str.match(_COUNT_CELL.pattern) for c in tot_cols}
    for arm, t in arm_tables:
        if t is None:
            continue
        k = _keyed(t)
        cols = _value_columns(t)
        if value_columns is not None:
            cols = cols[:value_columns]
        names = _arm_column_names(arm.label, arm.n, cols)
        m = base[["_KEY", "_OCC", "_POS"]].merge(k[["_KEY", "_OCC", "_POS", *cols]], on=["_KEY", "_OCC"],
                                                 how="left", suffixes=("", "_ARM"))
        for j, c in enumerate(cols):
            # the arm's column j matches the pooled column j (its header may differ: "... (N=arm n)")
            tc = c if c in counts else (tot_cols[j] if j < len(tot_cols) else None)
            filler = counts[tc].to_numpy() if tc in counts else pd.Series(False, index=m.index).to_numpy()
            vals = m[c].astype("object")
            missing = vals.isna().to_numpy()
            vals = vals.where(~missing, pd.Series(["0" if f else "" for f in filler], index=m.index, dtype=object))
            out[names[c]] = vals.to_numpy()
        arm_pos = m["_POS_ARM"]
        back = {int(p): i for i, p in arm_pos.dropna().items()}
        for (r, c), subs in t.cell_subjects.items():
            if str(c) in names and r in back:
                cells[(back[r], names[str(c)])] = subs
    if total_n is not None:
        names = _arm_column_names("Total", total_n, tot_cols)
        for c in tot_cols:
            out[names[c]] = base[c].to_numpy()
        for (r, c), subs in total.cell_subjects.items():
            if str(c) in names:
                cells[(r, names[str(c)])] = subs
    notes = list(total.footnotes)
    if footnote:
        notes.append(footnote)
    return Table(id=total.id, title=total.title, data=out.reset_index(drop=True), footnotes=notes,
                 population=total.population, source=total.source, stub=stub,
                 groups=list(total.groups) if total.groups is not None else None, cell_subjects=cells)


def arms_footnote(kind: Kind, arms: Sequence[Arm], total: bool) -> str:
    var, _, flag = ARM_VARIABLES[kind]
    what = "actual treatment" if kind == "safety" else "randomised (planned) arm"
    pop = "safety population" if kind == "safety" else "intent-to-treat population"
    tail = "; Total: all arms together" if total else ""
    return (f"Columns: {', '.join(a.label for a in arms)} by {what} ({var}){tail}. N = subjects of the "
            f"{pop} ({flag} = Y) in the column; percentages use the column's own denominator.")


def rebuild_by_arm(t: Table, adsl: pd.DataFrame) -> Table:
    """The table by arm (see module docstring), or ``t`` unchanged when it has no recipe."""
    recipe: ArmRecipe | None = getattr(t, RECIPE_ATTR, None)
    if recipe is None:
        return t
    arms = study_arms(adsl, recipe.kind)
    if len(arms) < 2:
        return t
    built = []
    for arm in arms:
        args = tuple(subset_to_subjects(v, arm.subjects) for v in recipe.args)
        kwargs = {k: subset_to_subjects(v, arm.subjects) for k, v in (recipe.kwargs | recipe.arm_kwargs).items()}
        built.append((arm, recipe.builder(*args, **kwargs)))
    total_n = population_n(adsl, recipe.kind) if recipe.total else None
    return merge_arm_tables(t, built, total_n=total_n, value_columns=recipe.value_columns,
                            footnote=arms_footnote(recipe.kind, arms, recipe.total))
