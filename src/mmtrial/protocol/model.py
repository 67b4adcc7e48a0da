"""The protocol as data: regimen, dose ladders, visit schedule, populations, method defaults.

A protocol file (TOML) is validated here for its core sections. Each capability reads its own
section through :meth:`Protocol.section` and validates it with its own options model, so the
rules for IMWG response, time-to-event sources, eligibility, dose rules or the classifier live
next to the code that applies them (e.g. ``derive/response.py`` reads ``[response]``).

Dose ladders (data contract v2, "A dose ladder per drug")
---------------------------------------------------------
``[dose_ladder.<DRUG>]`` gives one drug's dose-reduction steps; STORM's older single-ladder form
(``[dose_ladder]`` with ``source`` and ``levels``) is the study drug's ladder. Each level gives its
``dose`` per administration (in the drug's unit; ``dose_mg`` is an alias) and optionally its own
dosing days (``cycle_days`` or ``days_of_week``; default: the drug's days in the cycle). The one
API every consumer uses is :meth:`Protocol.ladder_for` (levels with dose, days and weekly dose).

Bundled protocols
-----------------
``Protocol.load("stratus")`` (a bare name, not an existing file) loads a bundled protocol;
:func:`bundled_names` lists them and :func:`bundled` gives a bundled file's path.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mmtrial.errors import ProtocolError
from mmtrial.protocol.arms import ArmSpec, RandomisationConfig
from mmtrial.protocol.regimen import OPEN_END, Regimen, RegimenDrug

__all__ = ["DoseLadder", "LadderSpec", "LadderStep", "LevelSpec", "Populations", "Protocol", "Regimen",
           "RegimenDrug", "StudyInfo", "VisitSchedule", "bundled", "bundled_names", "load_protocol"]


class StudyInfo(BaseModel):
    """``[study]``: what the study is (shown on every output)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="study identifier (report title, file headers)")
    title: str = Field(min_length=1, description="full title of the study")
    reference: str = Field("", description="primary publication or registry entry")
    drug: str = Field("", description="name of the study drug as shown in the report (default: regimen.study_drug)")
    phase: str = Field("", description="trial phase, e.g. '2b'")
    data_cutoff: date | None = Field(None, description="data cut-off: records after it are not used (sdtm/cutoff.py; --cutoff overrides)")


class LevelSpec(BaseModel):
    """One step of a dose ladder as written in the protocol."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    level: int = Field(description="0 = starting dose, -1 = first reduction, ...")
    label: str = Field("", description="shown in the report (default: dose and days, e.g. '3 mg days 1-21')")
    dose: float = Field(gt=0, validation_alias=AliasChoices("dose", "dose_mg"),
                        description="dose per administration, in the drug's unit (`dose_mg` is an accepted alias)")
    cycle_days: list[int] | None = Field(None, description="dosing days within the cycle (default: the drug's)")
    days_of_week: list[int] | None = Field(None, description="shorthand: days of every week (1-7)")
    weekly_mg: float | None = Field(None, ge=0, description="optional check: planned weekly dose at this level")

    @field_validator("cycle_days", "days_of_week")
    @classmethod
    def _ascending(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(d < 1 for d in v) or sorted(set(v)) != list(v)):
            raise ValueError(f"days must be a non-empty list, distinct, ascending and >= 1; got {v}")
        return v

    @model_validator(mode="after")
    def _one_day_spec(self) -> LevelSpec:
        if self.cycle_days is not None and self.days_of_week is not None:
            raise ValueError("give at most one of cycle_days or days_of_week")
        if self.days_of_week is not None and max(self.days_of_week) > 7:
            raise ValueError(f"days_of_week are 1-7; got {self.days_of_week}")
        return self


class LadderSpec(BaseModel):
    """One drug's dose-reduction ladder as written in the protocol (``[dose_ladder.<DRUG>]``)."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field("", description="where the ladder comes from (label table, protocol section)")
    levels: list[LevelSpec] = Field(min_length=1, description="starting dose first (level 0), then each reduction")

    @field_validator("levels")
    @classmethod
    def _descending(cls, v: list[LevelSpec]) -> list[LevelSpec]:
        lv = [x.level for x in v]
        if lv[0] != 0:
            raise ValueError(f"the first level must be level 0 (the starting dose); got {lv[0]}")
        if any(b >= a for a, b in pairwise(lv)):
            raise ValueError(f"levels must be listed in strictly descending order (0, -1, -2, ...); got {lv}")
        return v


@dataclass(frozen=True)
class LadderStep:
    """One level of a drug's dose ladder, resolved for a cycle (what :meth:`Protocol.ladder_for` returns).

    ``dose`` is per administration in ``unit``; ``days`` the dosing days within a cycle of
    ``cycle_length_days``; ``weekly_dose`` the planned dose per week averaged over the cycle
    (dose x len(days) x 7 / cycle length; data contract v2, PLNWKDOS).
    """

    drug: str
    level: int
    label: str
    dose: float
    unit: str
    days: tuple[int, ...]
    cycle_length_days: int
    weekly_dose: float
    days_of_week: tuple[int, ...] | None = None

    # first-release names (fixed-mg STORM ladder)
    @property
    def dose_mg(self) -> float:
        return self.dose

    @property
    def weekly_mg(self) -> float:
        return self.weekly_dose


@dataclass(frozen=True)
class DoseLadder:
    """A drug's resolved ladder: its ``source`` and ``levels`` (starting dose first)."""

    drug: str
    source: str
    levels: tuple[LadderStep, ...]


class VisitSchedule(BaseModel):
    """``[visits]``: the assessment schedule (defaults: 4-weekly disease assessment, weekly labs)."""

    model_config = ConfigDict(extra="forbid")
    response_assessment_days: int = Field(28, gt=0, description="days between disease assessments")
    lab_interval_days: int = Field(7, gt=0, description="days between safety laboratory visits")
    assessment_window_days: int = Field(7, ge=0, description="allowed deviation around a visit")


class Populations(BaseModel):
    """``[populations]``: analysis population definitions as shown in the report."""

    model_config = ConfigDict(extra="forbid")
    safety: str = Field("at least one dose of study drug", description="wording of the safety population (SAFFL)")
    efficacy: str = Field("at least one dose and measurable disease at baseline",
                          description="wording of the efficacy population (EFFFL)")
    efficacy_requires_measurable_disease: bool = Field(True, description="EFFFL needs measurable disease at baseline")


class MethodsConfig(BaseModel):
    """``[methods]``: the method profile and defaults shared by the statistics."""

    model_config = ConfigDict(extra="forbid")
    profile: Literal["sas", "r"] = Field("sas", description="sas: log-log CIs, SAS median rule, Breslow ties; "
                                                            "r: log CIs, midpoint median, Efron ties")
    proportion_ci: str = Field("clopper-pearson", description="CI method of response rates (docs/statistics.md)")
    level: float = Field(0.95, gt=0, lt=1, description="confidence level")
    months_per_day: float = Field(1 / 30.4375, gt=0, description="months per day (1 / 30.4375)")


class PublishedConfig(BaseModel):
    """``[published]``: the trial's published results (number, text or [low, high]) and their source.

    Each key is compared with the computed value in the report (mmtrial.report.published); a
    key without a mapping is shown as such. ``source`` names the publication(s).
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float | str | list[float]] = Field(init=False)
    source: str = Field("", description="the publication(s) the values come from")


def describe_days(days: tuple[int, ...] | list[int], cycle_length_days: int,
                  days_of_week: tuple[int, ...] | list[int] | None = None) -> str:
    """Human wording of a dosing pattern: ``days 1-21 of 28``, ``days 1, 3 of each week``.

    Examples
    --------
    >>> describe_days((1, 2, 3, 8), 21)
    'days 1-3, 8 of 21'
    >>> describe_days((1, 3, 8, 10), 28, (1, 3))
    'twice weekly (days 1, 3)'
    """
    if days_of_week is not None:
        n = len(days_of_week)
        word = {1: "once weekly", 2: "twice weekly", 7: "daily"}.get(n, f"{n} days a week")
        return f"{word} (day{'s' if n > 1 else ''} {', '.join(str(d) for d in days_of_week)})"
    runs: list[str] = []
    seq = list(days)
    i = 0
    while i < len(seq):
        j = i
        while j + 1 < len(seq) and seq[j + 1] == seq[j] + 1:
            j += 1
        runs.append(f"{seq[i]}-{seq[j]}" if j > i + 1 else (f"{seq[i]}, {seq[j]}" if j == i + 1 else str(seq[i])))
        i = j + 1
    return f"day{'s' if len(seq) > 1 else ''} {', '.join(runs)} of {cycle_length_days}"


def bundled_names() -> list[str]:
    """Names of the protocols shipped with mmtrial (``storm``, ...), for ``Protocol.load(name)``."""
    root = resources.files("mmtrial.protocol")
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def bundled(name: str) -> Path:
    """Path of the bundled protocol ``name`` (e.g. ``"storm"``); KeyError naming the choices."""
    key = name.lower().removesuffix(".toml")
    if key not in bundled_names():
        raise KeyError(f"no bundled protocol {name!r}; bundled: {', '.join(bundled_names())}")
    return Path(str(resources.files("mmtrial.protocol").joinpath(key + ".toml")))


class Protocol(BaseModel):
    """A study protocol. Core sections are validated here; others via :meth:`section`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    study: StudyInfo
    regimen: Regimen
    arms: dict[str, ArmSpec] = Field(default_factory=dict,
                                     description="randomised trials: one table per arm ([arms.<ARMCD>]), "
                                                 "each with its regimen (protocol/arms.py)")
    ladders: dict[str, LadderSpec] = Field(default_factory=dict, alias="dose_ladder")
    visits: VisitSchedule = VisitSchedule()
    populations: Populations = Populations()
    methods: dict[str, Any] = Field(default_factory=dict)
    published: dict[str, Any] = Field(default_factory=dict)
    published_source: str = ""
    source_path: str = ""

    @model_validator(mode="before")
    @classmethod
    def _single_ladder(cls, data: Any) -> Any:
        """STORM's single ``[dose_ladder]`` (source + levels) is the study drug's ladder."""
        if isinstance(data, dict):
            pub = data.get("published")
            if isinstance(pub, dict) and "source" in pub:
                pub = dict(pub)
                data = {**data, "published": pub, "published_source": str(pub.pop("source"))}
            arms, rnd = data.get("arms"), data.get("randomisation")
            if "regimen" not in data and isinstance(arms, dict) and isinstance(rnd, dict):
                exp = arms.get(rnd.get("experimental"))
                if isinstance(exp, dict) and "regimen" in exp:  # the experimental arm's regimen is the study's
                    data = {**data, "regimen": exp["regimen"]}
            lad = data.get("dose_ladder")
            reg = data.get("regimen")
            if isinstance(lad, dict) and "levels" in lad and isinstance(reg, dict) and "study_drug" in reg:
                data = {**data, "dose_ladder": {str(reg["study_drug"]): lad}}
        return data

    @model_validator(mode="after")
    def _ladders_fit_regimen(self) -> Protocol:
        if not self.study.drug:
            self.study.drug = self.regimen.study_drug
        regimens = self.regimens()
        names = {n.upper(): n for r in regimens.values() for n in r.drug_names()}
        for drug, spec in self.ladders.items():
            if drug.upper() not in names:
                raise ValueError(f"dose_ladder.{drug}: {drug!r} is not a drug of the regimen "
                                 f"({', '.join(dict.fromkeys(names.values()))})")
            start_doses = {d.dose for r in regimens.values() for ph in r.effective_phases() for d in ph.drugs
                           if d.name.upper() == drug.upper()}
            if drug.upper() not in {n.upper() for n in self.regimen.drug_names()}:
                continue  # a drug of another arm only: its steps are resolved with that arm (ladder_for(arm=))
            if spec.levels[0].dose not in start_doses:
                raise ValueError(f"dose_ladder.{drug}: level 0 dose {spec.levels[0].dose:g} is not the "
                                 f"regimen's dose of {drug} ({', '.join(f'{x:g}' for x in sorted(start_doses))})")
            steps = self._resolve(drug, spec, self._first_cycle(drug))
            for lv, st in zip(spec.levels, steps, strict=True):
                if lv.weekly_mg is not None and not math.isclose(lv.weekly_mg, st.weekly_dose, abs_tol=0.01):
                    raise ValueError(f"dose_ladder.{drug}: level {lv.level} weekly_mg = {lv.weekly_mg:g} but "
                                     f"{st.dose:g} x {len(st.days)} days x 7 / {st.cycle_length_days} = "
                                     f"{st.weekly_dose:.4g}")
            w = [s.weekly_dose for s in steps]
            if any(b >= a - 1e-9 for a, b in pairwise(w)):
                raise ValueError(f"dose_ladder.{drug}: each level must have a lower weekly dose than the one "
                                 f"before; got {[round(x, 4) for x in w]}")
        return self

    @model_validator(mode="after")
    def _arms_randomised(self) -> Protocol:
        rnd = (self.model_extra or {}).get("randomisation")
        if self.arms and not isinstance(rnd, dict):
            raise ValueError("a protocol with [arms] needs [randomisation] with experimental and control "
                             f"(ARMCD values: {', '.join(self.arms)})")
        return self

    # ------------------------------------------------------------------ arms (randomised trials)
    @property
    def is_randomised(self) -> bool:
        """True for a randomised trial (``[arms]`` and ``[randomisation]``)."""
        return bool(self.arms)

    @property
    def randomisation(self) -> RandomisationConfig | None:
        """``[randomisation]`` (experimental and control ARMCD, strata, crossover) or ``None``."""
        raw = (self.model_extra or {}).get("randomisation")
        return RandomisationConfig.model_validate(raw) if isinstance(raw, dict) else None

    def regimens(self) -> dict[str, Regimen]:
        """Each arm's regimen by ARMCD; a single-arm protocol gives ``{"": regimen}``."""
        if not self.arms:
            return {"": self.regimen}
        return {code: arm.regimen for code, arm in self.arms.items()}

    def regimen_for(self, armcd: str | None) -> Regimen:
        """The regimen of arm ``armcd`` (case-insensitive); the study regimen for a single-arm
        protocol or ``None``. KeyError for an arm the protocol does not name."""
        if not self.arms or armcd is None:
            return self.regimen
        for code, arm in self.arms.items():
            if code.upper() == str(armcd).upper():
                return arm.regimen
        raise KeyError(f"arm {armcd!r} is not in the protocol's [arms] ({', '.join(self.arms)})")

    def arm_label(self, armcd: str) -> str:
        """The arm's label (dm ARM) from ``[arms.<ARMCD>] label``, else its code."""
        arm = next((a for c, a in self.arms.items() if c.upper() == armcd.upper()), None)
        return (arm.label or armcd) if arm is not None else armcd

    # ------------------------------------------------------------------ dose ladders
    def _first_cycle(self, drug: str) -> int:
        for ph in self.regimen.effective_phases():
            if any(d.name.upper() == drug.upper() for d in ph.drugs):
                return ph.cycles[0]
        raise KeyError(drug)

    def _resolve(self, drug: str, spec: LadderSpec | None, cycle: int) -> list[LadderStep]:
        ph = self.regimen.phase_of(cycle)
        d = self.regimen.drug(drug, cycle)
        if d is None:
            return []
        n = ph.cycle_length_days
        levels = spec.levels if spec is not None else [LevelSpec(level=0, dose=d.dose)]
        out = []
        for lv in levels:
            if lv.cycle_days is not None:
                days, dow = tuple(x for x in lv.cycle_days if x <= n), None
            elif lv.days_of_week is not None:
                days = tuple(7 * w + x for w in range(math.ceil(n / 7)) for x in lv.days_of_week if 7 * w + x <= n)
                dow = tuple(lv.days_of_week)
            else:
                days = d.days_in_cycle(n)
                dow = tuple(d.days_of_week) if d.days_of_week is not None else None
            label = lv.label or f"{lv.dose:g} {d.unit} {describe_days(days, n, dow)}"
            out.append(LadderStep(drug=d.name.upper(), level=lv.level, label=label, dose=float(lv.dose),
                                  unit=d.unit, days=days, cycle_length_days=n,
                                  weekly_dose=float(lv.dose) * len(days) * 7.0 / n, days_of_week=dow))
        return out

    def ladder_spec(self, drug: str) -> LadderSpec | None:
        """The ladder as written for ``drug`` (case-insensitive), or ``None`` when the protocol has none."""
        return next((s for k, s in self.ladders.items() if k.upper() == drug.upper()), None)

    def ladder_for(self, drug: str, cycle: int = 1) -> list[LadderStep]:
        """The dose ladder of ``drug`` in force in ``cycle``: starting dose (level 0) first.

        Each :class:`LadderStep` gives ``level``, ``label``, ``dose`` per administration (drug's
        unit), ``unit``, ``days`` (dosing days within the cycle), ``cycle_length_days`` and
        ``weekly_dose`` (averaged over the cycle). A level without its own days uses the drug's
        days in that cycle's phase. A drug without a ladder in the protocol has one level: its
        planned dose (no reduction defined; any lower dose is off-ladder). ``[]`` when the drug is
        not given in that cycle; KeyError when it is not a drug of the regimen.

        Examples
        --------
        >>> [(s.level, s.dose, s.weekly_dose) for s in Protocol.load("storm").ladder_for("selinexor")]
        [(0, 80.0, 160.0), (-1, 100.0, 100.0), (-2, 80.0, 80.0), (-3, 60.0, 60.0)]
        """
        if drug.upper() not in {n.upper() for n in self.regimen.drug_names()}:
            raise KeyError(f"{drug!r} is not a drug of the regimen ({', '.join(self.regimen.drug_names())})")
        return self._resolve(drug, self.ladder_spec(drug), cycle)

    @property
    def dose_ladder(self) -> DoseLadder:
        """The study drug's ladder (first-release API: ``.source``, ``.levels`` with ``weekly_mg``)."""
        drug = self.regimen.study_drug
        spec = self.ladder_spec(drug)
        source = spec.source if spec is not None else f"no [dose_ladder] for {drug}: the planned dose only"
        return DoseLadder(drug=drug.upper(), source=source,
                          levels=tuple(self.ladder_for(drug, self._first_cycle(drug))))

    def regimen_table(self) -> pd.DataFrame:
        """The regimen for the report: one row per phase and drug (cycles, dose, days, planned weekly dose)."""
        rows = []
        for ph in self.regimen.effective_phases():
            n = ph.cycle_length_days
            last = "onwards" if ph.cycles[1] >= OPEN_END else f"to {ph.cycles[1]}"
            for d in ph.drugs:
                days = d.days_in_cycle(n)
                dow = tuple(d.days_of_week) if d.days_of_week is not None else None
                ups = "; ".join(f"cycle {u.cycle} day {u.day}: {u.dose:g}" for u in d.step_up)
                rows.append({
                    "Cycles": f"{ph.cycles[0]} {last} ({n}-day cycles)",
                    "Drug": d.name,
                    "Dose per administration": f"{d.dose:g} {d.unit}",
                    "Route": d.route,
                    "Dosing days": describe_days(days, n, dow),
                    "Planned weekly dose": f"{d.dose * len(days) * 7.0 / n:.4g} {d.unit}/week",
                    "Step-up doses": ups,
                })
        out = pd.DataFrame(rows)
        if not out["Step-up doses"].astype(bool).any():
            out = out.drop(columns="Step-up doses")
        phases = self.regimen.effective_phases()
        if len(phases) == 1 and phases[0].cycles[1] >= OPEN_END:
            out = out.drop(columns="Cycles")
        return out

    def ladder_table(self, drug: str | None = None) -> pd.DataFrame:
        """A drug's dose ladder for the report (default: the study drug's)."""
        steps = self.ladder_for(drug or self.regimen.study_drug, self._first_cycle(drug or self.regimen.study_drug))
        return pd.DataFrame({
            "Level": [str(s.level) for s in steps],
            "Dose": [s.label for s in steps],
            "Planned weekly dose": [f"{s.weekly_dose:.4g} {s.unit}/week" for s in steps],
        })

    # ------------------------------------------------------------------ sections
    def section(self, name: str) -> dict[str, Any]:
        """A raw protocol section (``{}`` when absent), for a capability's own options model."""
        extra = self.model_extra or {}
        value = extra.get(name, getattr(self, name, None))
        if value is None:
            return {}
        if isinstance(value, BaseModel):
            return value.model_dump()
        return dict(value)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Protocol:
        """Load and validate a protocol TOML, every section, before any work.

        ``None`` loads the bundled STORM protocol; a bare name (``"stratus"``, not an existing
        file) a bundled one (:func:`bundled_names`). Any problem is a
        :class:`~mmtrial.errors.ProtocolError` (exit 2) naming the file, the dotted key and its line.
        """
        from mmtrial.protocol import sections as sec

        if path is None:
            path = "storm"
        p = Path(path)
        if not p.exists() and p.suffix == "" and len(p.parts) == 1 and p.name.lower() in bundled_names():
            real = bundled(p.name)
            src = f"mmtrial/protocol/{p.name.lower()}.toml"
        else:
            real, src = p, str(p)
        try:
            text = Path(real).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            hint = f" (bundled protocols: {', '.join(bundled_names())})" if isinstance(e, FileNotFoundError) else ""
            raise ProtocolError(f"cannot read the protocol file: {reason}{hint}", file=src) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise sec.syntax_error(e, file=src) from None
        sec.check_sections(data, text=text, file=src)
        try:
            proto = cls.model_validate({**data, "source_path": src})
        except ValidationError as e:
            raise sec.error_from_validation(e, prefix=(), text=text, file=src) from None
        sec.validate_sections(proto, data, text=text, file=src)
        return proto


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Load a protocol file (``None``: the bundled STORM protocol; a bare name: a bundled one)."""
    return Protocol.load(path)
