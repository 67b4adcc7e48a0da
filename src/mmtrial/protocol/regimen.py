"""The regimen as data: drugs, doses, dosing days within a cycle, phases, step-up doses.

Schema: data contract v2, "Protocol: the regimen" (../shared/spec/data-contract.md). A drug gives
its dose, unit (``mg``; ``mg/m2`` from body-surface area; ``mg/kg`` from weight), route and its
dosing days within the cycle (``cycle_days``), or STORM's ``days_of_week`` shorthand (days of
every week of the cycle). ``[[regimen.phases]]`` replace the single cycle when dosing changes
over time (BOSTON's Vd arm: 21-day cycles 1-8, then 35-day cycles). ``step_up`` doses replace
the planned dose on given days of given cycles (bispecific antibodies).

The one planned-dosing table every consumer uses (exposure, simulator, report) is
:meth:`Regimen.schedule`: one row per planned administration.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

DoseUnit = Literal["mg", "mg/m2", "mg/kg"]
BsaFormula = Literal["mosteller", "dubois"]

#: The last cycle of an open-ended phase (``cycles = [9, 999]``): "until progression".
OPEN_END = 999


class StepUpDose(BaseModel):
    """A dose that replaces (or adds) the planned dose on one day of one cycle."""

    model_config = ConfigDict(extra="forbid")
    cycle: int = Field(ge=1, description="the cycle of the step-up dose")
    day: int = Field(ge=1, description="its day within the cycle")
    dose: float = Field(gt=0, description="its dose, in the drug's unit")


class RegimenDrug(BaseModel):
    """One drug of a regimen (data contract v2)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, description="EXTRT value (matched case-insensitively)")
    dose: float = Field(gt=0, validation_alias=AliasChoices("dose", "dose_mg"),
                        description="dose per administration, in `unit` (`dose_mg` is an accepted alias)")
    unit: DoseUnit = Field("mg", description="mg; mg/m2 (x body-surface area from vs HEIGHT/WEIGHT); mg/kg (x vs WEIGHT)")
    route: str = Field("ORAL", description="EXROUTE of the administrations (e.g. ORAL, INTRAVENOUS, SUBCUTANEOUS)")
    cycle_days: list[int] | None = Field(default=None, description="dosing days within the cycle (1 = day 1)")
    days_of_week: list[int] | None = Field(default=None, description="shorthand: days of every week (1-7)")
    step_up: list[StepUpDose] = Field(default_factory=list, description="doses replacing (or added to) the "
                                                                       "planned dose on given days of given cycles")

    @field_validator("cycle_days", "days_of_week")
    @classmethod
    def _ascending(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("must list at least one day")
            if any(d < 1 for d in v) or sorted(set(v)) != list(v):
                raise ValueError(f"days must be distinct, ascending and >= 1; got {v}")
        return v

    @model_validator(mode="after")
    def _one_day_spec(self) -> RegimenDrug:
        if (self.cycle_days is None) == (self.days_of_week is None):
            raise ValueError(f"drug {self.name!r}: give exactly one of cycle_days or days_of_week")
        if self.days_of_week is not None and max(self.days_of_week) > 7:
            raise ValueError(f"drug {self.name!r}: days_of_week are 1-7; got {self.days_of_week}")
        return self

    def days_in_cycle(self, cycle_length_days: int) -> tuple[int, ...]:
        """Dosing days within a cycle of ``cycle_length_days`` (``days_of_week`` expanded)."""
        if self.cycle_days is not None:
            return tuple(self.cycle_days)
        weeks = math.ceil(cycle_length_days / 7)
        days = [7 * w + d for w in range(weeks) for d in self.days_of_week or ()]
        return tuple(d for d in days if d <= cycle_length_days)

    # compatibility with the first release's fixed-mg, weekly-pattern regimen
    @property
    def dose_mg(self) -> float:
        return self.dose

    @property
    def weekly_dose_mg(self) -> float:
        """Planned dose per week for a ``days_of_week`` drug (dose x days), in ``unit``."""
        return self.dose * len(self.days_of_week or self.cycle_days or ())


class Phase(BaseModel):
    """A run of cycles with its own cycle length and drugs (``cycles = [first, last]``)."""

    model_config = ConfigDict(extra="forbid")
    cycles: tuple[int, int] = Field(description="[first, last] cycle of the phase (999: until progression)")
    cycle_length_days: int = Field(gt=0, description="days per cycle in this phase")
    drugs: list[RegimenDrug] = Field(min_length=1, description="the drugs of the phase, as regimen.drugs[]")

    @field_validator("cycles")
    @classmethod
    def _range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < v[0]:
            raise ValueError(f"cycles = [first, last] with 1 <= first <= last; got {list(v)}")
        return v

    @model_validator(mode="after")
    def _days_fit(self) -> Phase:
        for d in self.drugs:
            days = d.days_in_cycle(self.cycle_length_days)
            if days and max(days) > self.cycle_length_days:
                raise ValueError(f"drug {d.name!r}: day {max(days)} is beyond the "
                                 f"{self.cycle_length_days}-day cycle")
        return self


class Regimen(BaseModel):
    """A treatment regimen: one cycle (``cycle_length_days`` + ``drugs``) or ``phases``."""

    model_config = ConfigDict(extra="forbid")
    cycle_length_days: int | None = Field(default=None, gt=0, description="days per cycle (required without "
                                          "phases; with phases: the first phase's)")
    study_drug: str = Field(min_length=1, description="the drug whose dose ladder applies (EXTRT value)")
    drugs: list[RegimenDrug] = Field(default_factory=list, description="the drugs of a one-cycle regimen "
                                                                       "(see regimen.drugs[] below)")
    phases: list[Phase] = Field(default_factory=list, description="runs of cycles with their own length and "
                                                                  "drugs, instead of drugs (regimen.phases[])")
    bsa_formula: BsaFormula = Field("mosteller", description="body-surface area for mg/m2 doses: mosteller "
                                                             "(Mosteller 1987) or dubois (DuBois 1916)")

    @model_validator(mode="after")
    def _shape(self) -> Regimen:
        if self.phases and self.drugs:
            raise ValueError("give either drugs (one cycle) or phases, not both")
        if not self.phases:
            if not self.drugs:
                raise ValueError("a regimen needs drugs (or phases)")
            if self.cycle_length_days is None:
                raise ValueError("cycle_length_days is required when the regimen has no phases")
            Phase(cycles=(1, OPEN_END), cycle_length_days=self.cycle_length_days, drugs=self.drugs)
        else:
            ph = sorted(self.phases, key=lambda p: p.cycles[0])
            if ph[0].cycles[0] != 1:
                raise ValueError(f"phases must start at cycle 1; got {ph[0].cycles[0]}")
            for a, b in pairwise(ph):
                if b.cycles[0] != a.cycles[1] + 1:
                    raise ValueError(f"phases must be contiguous: cycles {list(a.cycles)} then {list(b.cycles)}")
            if self.cycle_length_days is None:
                self.cycle_length_days = ph[0].cycle_length_days
        if self.study_drug.upper() not in {n.upper() for n in self.drug_names()}:
            raise ValueError(f"study_drug {self.study_drug!r} is not one of the drugs {self.drug_names()}")
        return self

    def effective_phases(self) -> list[Phase]:
        """The phases in cycle order (a single-cycle regimen is one open-ended phase)."""
        if self.phases:
            return sorted(self.phases, key=lambda p: p.cycles[0])
        assert self.cycle_length_days is not None
        return [Phase(cycles=(1, OPEN_END), cycle_length_days=self.cycle_length_days, drugs=self.drugs)]

    def drug_names(self) -> list[str]:
        """Every drug of the regimen, in first-mention order."""
        seen: dict[str, None] = {}
        for ph in self.phases or [None]:
            for d in (ph.drugs if ph is not None else self.drugs):
                seen.setdefault(d.name, None)
        return list(seen)

    def drug(self, name: str, cycle: int = 1) -> RegimenDrug | None:
        """The drug's definition in force in ``cycle`` (``None`` when not given then)."""
        ph = self.phase_of(cycle)
        return next((d for d in ph.drugs if d.name.upper() == name.upper()), None)

    def phase_of(self, cycle: int) -> Phase:
        for ph in self.effective_phases():
            if ph.cycles[0] <= cycle <= ph.cycles[1]:
                return ph
        return self.effective_phases()[-1]

    def schedule(self, n_cycles: int) -> pd.DataFrame:
        """Planned administrations of cycles 1..``n_cycles``: one row per drug, cycle and day.

        Columns: DRUG, CYCLE, CYCLEDY (day within the cycle), CYCLEST (first day of the cycle,
        counted from day 1 of cycle 1 = 1, with planned cycle lengths), CYCLEN (cycle length),
        STUDYDY (= CYCLEST + CYCLEDY - 1), DOSE, UNIT, ROUTE, STEPUP ("Y" for a step-up dose).
        """
        frames = []
        start = 1
        for ph in self.effective_phases():
            first, last = ph.cycles[0], min(ph.cycles[1], n_cycles)
            if first > n_cycles:
                break
            cycles = np.arange(first, last + 1)
            starts = start + (cycles - first) * ph.cycle_length_days
            for d in ph.drugs:
                days = np.asarray(d.days_in_cycle(ph.cycle_length_days), dtype=np.int64)
                f = pd.DataFrame({
                    "DRUG": d.name.upper(),
                    "CYCLE": np.repeat(cycles, len(days)),
                    "CYCLEDY": np.tile(days, len(cycles)),
                    "CYCLEST": np.repeat(starts, len(days)),
                    "CYCLEN": ph.cycle_length_days,
                    "DOSE": float(d.dose),
                    "UNIT": d.unit,
                    "ROUTE": d.route,
                    "STEPUP": "",
                })
                for s in d.step_up:
                    if first <= s.cycle <= last:
                        hit = (f["CYCLE"] == s.cycle) & (f["CYCLEDY"] == s.day)
                        if hit.any():
                            f.loc[hit, ["DOSE", "STEPUP"]] = [s.dose, "Y"]
                        else:
                            extra = f.iloc[:1].copy()
                            extra[["CYCLE", "CYCLEDY", "DOSE", "STEPUP"]] = [s.cycle, s.day, s.dose, "Y"]
                            extra["CYCLEST"] = start + (s.cycle - first) * ph.cycle_length_days
                            f = pd.concat([f, extra], ignore_index=True)
                frames.append(f)
            start += (last - first + 1) * ph.cycle_length_days
            if last >= n_cycles:
                break
        if not frames:
            return pd.DataFrame(columns=["DRUG", "CYCLE", "CYCLEDY", "CYCLEST", "CYCLEN", "STUDYDY",
                                         "DOSE", "UNIT", "ROUTE", "STEPUP"])
        out = pd.concat(frames, ignore_index=True)
        out["STUDYDY"] = out["CYCLEST"] + out["CYCLEDY"] - 1
        return out.sort_values(["DRUG", "STUDYDY"], kind="stable").reset_index(drop=True)[
            ["DRUG", "CYCLE", "CYCLEDY", "CYCLEST", "CYCLEN", "STUDYDY", "DOSE", "UNIT", "ROUTE", "STEPUP"]]

    def planned_weekly_dose(self, name: str, cycle: int = 1) -> float:
        """Planned dose per week averaged over the cycle, in the drug's unit.

        Data contract v2: 4 mg on days 1-14 of a 21-day cycle = 4 x 14 x 7 / 21 = 18.67 mg/week.
        Step-up doses are not counted (the target dose's intensity).
        """
        ph = self.phase_of(cycle)
        d = self.drug(name, cycle)
        if d is None:
            return 0.0
        return d.dose * len(d.days_in_cycle(ph.cycle_length_days)) * 7.0 / ph.cycle_length_days


def compute_bsa(height_cm: np.ndarray, weight_kg: np.ndarray, formula: BsaFormula = "mosteller") -> np.ndarray:
    """Body-surface area in m2.

    Rule: Mosteller RD, N Engl J Med 1987;317:1098: sqrt(height_cm x weight_kg / 3600).
    DuBois D, DuBois EF, Arch Intern Med 1916;17:863: 0.007184 x height_cm^0.725 x weight_kg^0.425.

    Examples
    --------
    >>> compute_bsa(np.array([170.0]), np.array([70.0])).round(4)
    array([1.8181])
    >>> compute_bsa(np.array([170.0]), np.array([70.0]), "dubois").round(4)
    array([1.8097])
    """
    h = np.asarray(height_cm, dtype=float)
    w = np.asarray(weight_kg, dtype=float)
    if formula == "mosteller":
        return np.sqrt(h * w / 3600.0)
    if formula == "dubois":
        return 0.007184 * h**0.725 * w**0.425
    raise ValueError(f"compute_bsa: formula allowed 'mosteller', 'dubois'; got {formula!r}")


def compute_dose_mg(dose: np.ndarray, unit: np.ndarray, bsa_m2: np.ndarray, weight_kg: np.ndarray) -> np.ndarray:
    """The dose in mg: ``mg`` as is, ``mg/m2`` x BSA, ``mg/kg`` x weight (NaN when not known).

    Examples
    --------
    >>> compute_dose_mg(np.array([4.0, 1.3, 16.0]), np.array(["mg", "mg/m2", "mg/kg"]),
    ...                 np.array([1.8, 1.8, 1.8]), np.array([70.0, 70.0, 70.0]))
    array([   4.  ,    2.34, 1120.  ])
    """
    dose = np.asarray(dose, dtype=float)
    unit = np.asarray(unit, dtype=object)
    return np.select([unit == "mg", unit == "mg/m2", unit == "mg/kg"],
                     [dose, dose * np.asarray(bsa_m2, dtype=float), dose * np.asarray(weight_kg, dtype=float)],
                     default=np.nan)
