"""The one record for a problem found in the input, and the error that carries all of them.

Readers and checks collect every problem before anything is derived (STYLE.md section 5),
then raise one :class:`StudyInputError` carrying the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Literal

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
    return pd.DataFrame(rows, columns=ISSUE_COLUMNS)


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
