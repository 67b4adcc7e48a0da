"""The objects that flow through the pipeline: a read study and an analysis in progress.

Normalised SDTM conventions (what every derivation may rely on after ``sdtm.read_study``):

* each domain is a pandas DataFrame keyed by its lower-case name (``dm``, ``ex``, ``lb`` ...);
* ``ROWNUM`` is the 1-based data row of the source file (for messages and traceability);
* ``USUBJID`` and character variables are ``str`` (missing as ``""`` is never used: missing is NA);
* every ``--DTC`` variable present gets a date column named without the trailing ``C``
  (``LBDTC`` -> ``LBDT``, ``RFXSTDTC`` -> ``RFXSTDT``; pandas ``datetime64[ns]``, NaT if missing)
  and an imputation flag with ``F`` in place of ``C`` (``LBDTF``: ``""`` none, ``"D"`` day,
  ``"M"`` month and day imputed; see ``sdtm/dates.py``);
* ``lb``: ``LBSTRESN`` is in the contract's default unit for known tests and ``LBSTRESU`` names
  it; the values as given are kept in ``LBSTRESN_RAW`` and ``LBSTRESU_RAW``; ``LBSTRESC``,
  ``LBSPEC``, ``LBTESTCD`` and ``LBCAT`` are upper-case;
* numeric variables of the contract (AGE, EXDOSE, AETOXGR, LBSTNRLO, LBSTNRHI, CMDOSE) are float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mmtrial.protocol.model import Protocol
    from mmtrial.report.model import Section
    from mmtrial.sdtm.issues import InputIssue


@dataclass
class Study:
    """SDTM domains of one study, normalised (see module docstring)."""

    domains: dict[str, pd.DataFrame]
    path: Path | None = None
    synthetic: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""
    released: set[str] = field(default_factory=set)
    narrowed: dict[str, str] = field(default_factory=dict)
    #: What the pipeline does with a domain after the running step (narrow or release it; set by
    #: ``pipeline.run_steps`` for each step, empty between steps): carried out as soon as the step
    #: calls :meth:`last_read` (issue 15).
    after_last_read: dict[str, Callable[[], None]] = field(default_factory=dict, repr=False, compare=False)
    #: Domains the running step said it has read for the last time (:meth:`last_read`).
    finished: set[str] = field(default_factory=set, repr=False, compare=False)

    def get(self, name: str) -> pd.DataFrame | None:
        self._check_released(name)
        return self.domains.get(name)

    def __getitem__(self, name: str) -> pd.DataFrame:
        self._check_released(name)
        return self.domains[name]

    def __contains__(self, name: str) -> bool:
        return name in self.domains or name in self.released

    def last_read(self, name: str) -> None:
        """The running step will not read domain ``name`` again (it holds no reference to it): what
        the pipeline planned for the domain after this step -- keep only the rows later steps read
        (:meth:`narrow`) or release it -- is done now, and the memory it frees is returned to the
        system, so the rest of the step does not hold the domain (issue 15: lb's 13 M records at
        100,000 subjects while ADLB's dose rules and safety tables run). Without such a plan it
        changes nothing in memory. Until the step ends, reading the domain raises."""
        action = self.after_last_read.pop(name, None)
        self.finished.add(name)
        if action is not None:
            from mmtrial._memory import release_memory

            action()
            release_memory()

    def release(self, keep: tuple[str, ...] = ()) -> None:
        """Drop every domain but ``keep`` from memory once nothing will read it (issue 15:
        ``pipeline.analyze`` does so after the outputs that read the domains are written).
        Reading a released domain afterwards raises, so it is never mistaken for an absent one."""
        for name in [n for n in self.domains if n not in keep]:
            del self.domains[name]
            self.released.add(name)

    def narrow(self, name: str, rows: np.ndarray, readers: str = "") -> None:
        """Keep only the rows ``rows`` (a boolean mask) of domain ``name``, in their order, with
        their index and every variable, once the steps still to run read no other rows (issue 15:
        ``pipeline.analyze`` keeps the 2,350 biomarker records of lb's 2.7 M for the biomarker
        step, see ``pipeline.DOMAIN_ROWS_READ_BY_STEP``). ``readers`` names those steps
        (:attr:`narrowed`)."""
        df = self.domains[name]
        keep = np.flatnonzero(np.asarray(rows, dtype=bool))
        self.domains[name] = df if keep.size == len(df) else df.iloc[keep]
        self.narrowed[name] = readers

    def _check_released(self, name: str) -> None:
        if name in self.finished:
            raise RuntimeError(f"SDTM domain {name!r} is read after the step said it would not read it "
                               "again (Study.last_read)")
        if name in self.released:
            raise RuntimeError(f"SDTM domain {name!r} was released from memory after its last use "
                               "(Study.release); read it before the analysis outputs are written")


@dataclass(frozen=True)
class NotComputable:
    """Something an analysis could not compute on this study, and why (issue 11).

    ``what`` names the output in words ("Overall response rate"), ``reason`` says why in terms a
    user can check in the data ("the efficacy population is empty: no subject has measurable
    disease at baseline"), ``step`` is the step that found it and ``key`` the dotted path of the
    ``results.json`` entry that is null because of it (``"response.orr"``; empty when none).
    """

    what: str
    reason: str
    step: str
    key: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"what": self.what, "reason": self.reason, "step": self.step, "key": self.key}


@dataclass
class Analysis:
    """An analysis in progress: each step in ``mmtrial.steps`` adds datasets, results, sections.

    ``adam`` holds ADaM-style datasets by lower-case name (``adsl``, ``adrs`` ...);
    ``results`` is what becomes ``results.json``; ``sections`` what the report shows;
    ``methods`` records every method choice in force (printed in the report's footnotes);
    ``not_computable`` what could not be computed on this study and why
    (:meth:`note_not_computable`).
    """

    study: Study
    protocol: Protocol
    adam: dict[str, pd.DataFrame] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    issues: list[InputIssue] = field(default_factory=list)
    methods: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    not_computable: list[NotComputable] = field(default_factory=list)

    def note_not_computable(self, what: str, reason: str, *, step: str, key: str = "") -> NotComputable:
        """Record that ``what`` could not be computed and why; the report's "Not computable"
        section and ``results.json`` ``not_computable`` list every such note (steps/overview.py)."""
        note = NotComputable(what=what, reason=reason, step=step, key=key)
        if note not in self.not_computable:
            self.not_computable.append(note)
        return note
