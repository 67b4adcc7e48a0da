"""The one record for a problem found in the input, and the error that carries all of them.

Readers and checks collect every problem before anything is derived (STYLE.md section 5),
then raise one :class:`StudyInputError` carrying the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class InputIssue:
    """One problem in one place of the input.

    ``row`` is the 1-based data row of the domain file (header excluded), or ``None`` when the
    problem concerns a whole file or a whole subject.
    """

    domain: str
    variable: str
    problem: str
    severity: Severity = "error"
    usubjid: str | None = None
    row: int | None = None
    value: str | None = None
    hint: str = ""
    rule: str = ""

    def message(self) -> str:
        where = f"{self.domain}" + (f" row {self.row}" if self.row is not None else "")
        who = f", USUBJID {self.usubjid}" if self.usubjid else ""
        val = f" = {self.value!r}" if self.value is not None else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"{where}{who}: {self.variable}{val}: {self.problem}.{hint}"


ISSUE_COLUMNS = [f.name for f in fields(InputIssue)]


def issues_frame(issues: Iterable[InputIssue]) -> pd.DataFrame:
    """The issues as a table (the layout of ``OUT_DIR/issues.csv``)."""
    rows = [asdict(i) for i in issues]
    df = pd.DataFrame(rows, columns=ISSUE_COLUMNS)
    df["row"] = df["row"].astype("Int64")  # 12, not 12.0, when some rows are None
    return df


# --- issues.csv: safe in a spreadsheet, exact for a program (docs/input-checks.md "issues.csv") ----

#: A text cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV
#: Injection": = + - @ tab carriage return; OWASP ASVS 5.0 requirement 1.2.10 adds NUL). Such a cell
#: is written with a leading single quote; so is a cell that itself starts with a quote, so that
#: removing one leading quote always gives back the exact value.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
CSV_ESCAPE = "'"


def neutralise_cell(value: str) -> str:
    """``'=1+2'`` -> ``"'=1+2"``; ``"-5"`` -> ``"'-5"``; ``"'x"`` -> ``"''x"``; others unchanged."""
    return CSV_ESCAPE + value if value.startswith((*FORMULA_TRIGGERS, CSV_ESCAPE)) else value


def restore_cell(value: str) -> str:
    """Undo :func:`neutralise_cell`: remove one leading single quote."""
    return value[1:] if value.startswith(CSV_ESCAPE) else value


def _text_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])]


def write_issues_csv(issues: Iterable[InputIssue] | pd.DataFrame, path: str | Path) -> Path:
    """Write ``issues.csv`` (UTF-8, comma-separated, RFC 4180 quoting) with every text cell
    neutralised for spreadsheets (:func:`neutralise_cell`); :func:`read_issues_csv` reads it back
    exactly. Missing values (``None``) and empty strings are both written as an empty cell."""
    from mmtrial._io import atomic_write_bytes

    df = issues if isinstance(issues, pd.DataFrame) else issues_frame(issues)
    df = df.copy()
    for c in _text_columns(df):
        df[c] = df[c].map(lambda v: neutralise_cell(v) if isinstance(v, str) else v)
    path = Path(path)
    # RFC 4180 line ends (CRLF): the csv writer then quotes every cell holding a CR or LF
    atomic_write_bytes(path, df.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))
    return path


def read_issues_csv(path: str | Path) -> pd.DataFrame:
    """Read an ``issues.csv`` written by mmtrial, undoing the spreadsheet neutralisation.

    Text columns come back as the exact strings written (an empty cell is missing, ``None``);
    ``row`` is a nullable integer.
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8")
    for c in df.columns:
        text = df[c]
        text = text.where(~text.str.startswith(CSV_ESCAPE), text.str[1:])
        df[c] = pd.Series(np.where(df[c] == "", None, text), index=df.index, dtype=object)
    if "row" in df.columns:
        df["row"] = pd.to_numeric(df["row"]).astype("Int64")
    return df


def is_issues_csv(path: str | Path) -> bool:
    """Whether ``path`` starts with the header line mmtrial writes (so mmtrial may replace it)."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return head[:4] == ISSUE_COLUMNS[:4]


# --- issues in bulk on a terminal: grouped by rule, counts before examples ------------------------


@dataclass(frozen=True)
class IssueGroup:
    """Issues of one kind: one rule (or, without a rule, one problem) on one domain variable."""

    severity: Severity
    rule: str
    domain: str
    variable: str
    problem: str
    hint: str
    count: int
    examples: tuple[InputIssue, ...]


def group_issues(issues: Iterable[InputIssue], examples: int = 3) -> list[IssueGroup]:
    """Group issues by severity, rule, domain and variable (by problem text where the rule is
    empty); errors first, then warnings, each in the order first found (so the structural errors
    that explain later ones come first). Each group keeps its first ``examples`` issues."""
    groups: dict[tuple, list] = {}
    for i in issues:
        key = (i.severity, i.rule, i.domain, i.variable, "" if i.rule else i.problem)
        g = groups.get(key)
        if g is None:
            groups[key] = [0, [i]]
            g = groups[key]
        elif len(g[1]) < examples:
            g[1].append(i)
        g[0] += 1
    out = [IssueGroup(severity=k[0], rule=k[1], domain=k[2], variable=k[3], problem=ex[0].problem,
                      hint=ex[0].hint, count=n, examples=tuple(ex)) for k, (n, ex) in groups.items()]
    return sorted(out, key=lambda g: g.severity != "error")  # stable: keeps first-found order


def describe_example(issue: InputIssue) -> str:
    """Where one issue is: ``row 12, USUBJID 01-001, value 'x'`` (parts that are known)."""
    parts = []
    if issue.row is not None:
        parts.append(f"row {issue.row}")
    if issue.usubjid:
        parts.append(f"USUBJID {issue.usubjid}")
    if issue.value is not None:
        value = issue.value if len(issue.value) <= 40 else issue.value[:37] + "..."
        parts.append(f"value {value!r}")
    return ", ".join(parts)


def summarise_groups(groups: Sequence[IssueGroup]) -> str:
    """``3 errors (2 kinds), 1 warning (1 kind)``."""
    def part(sev: str, word: str) -> str:
        gs = [g for g in groups if g.severity == sev]
        n = sum(g.count for g in gs)
        return f"{n:,} {word}{'' if n == 1 else 's'} ({len(gs)} kind{'' if len(gs) == 1 else 's'})"

    return f"{part('error', 'error')}, {part('warning', 'warning')}"


class StudyInputError(Exception):
    """Raised when the input has at least one error; carries every issue found."""

    def __init__(self, issues: list[InputIssue]):
        self.issues = list(issues)
        errors = [i for i in self.issues if i.severity == "error"]
        head = "\n".join(i.message() for i in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} input error(s):\n{head}{more}")

    def frame(self) -> pd.DataFrame:
        return issues_frame(self.issues)
