"""The protocol as data: regimen, dose ladder, visit schedule, populations, method defaults.

A protocol file (TOML) is validated here for its core sections. Each capability reads its own
section through :meth:`Protocol.section` and validates it with its own options model, so the
rules for IMWG response, time-to-event sources, eligibility, dose rules or the classifier live
next to the code that applies them (e.g. ``derive/response.py`` reads ``[response]``).
"""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmtrial.protocol.regimen import Regimen, RegimenDrug

__all__ = ["DoseLadder", "DoseLevel", "Populations", "Protocol", "Regimen", "RegimenDrug", "StudyInfo",
           "VisitSchedule", "load_protocol"]


class StudyInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    reference: str = ""
    drug: str
    phase: str = ""
    data_cutoff: date | None = None  # [study] data_cutoff: records after it are not used (sdtm/cutoff.py)


class DoseLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int
    label: str
    weekly_mg: float = Field(ge=0)
    dose_mg: float = Field(ge=0)
    days_of_week: list[int]


class DoseLadder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    levels: list[DoseLevel]

    @field_validator("levels")
    @classmethod
    def _descending(cls, v: list[DoseLevel]) -> list[DoseLevel]:
        w = [lvl.weekly_mg for lvl in v]
        if w != sorted(w, reverse=True):
            raise ValueError(f"dose ladder levels must be in descending weekly dose; got {w}")
        return v


class VisitSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_assessment_days: int = Field(gt=0, description="days between disease assessments")
    lab_interval_days: int = Field(gt=0)
    assessment_window_days: int = Field(ge=0, description="allowed deviation around a visit")


class Populations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    safety: str = "at least one dose of study drug"
    efficacy: str = "at least one dose and measurable disease at baseline"
    efficacy_requires_measurable_disease: bool = True


class Protocol(BaseModel):
    """A study protocol. Core sections are validated here; others via :meth:`section`."""

    model_config = ConfigDict(extra="allow")
    study: StudyInfo
    regimen: Regimen
    dose_ladder: DoseLadder
    visits: VisitSchedule
    populations: Populations = Populations()
    methods: dict[str, Any] = Field(default_factory=dict)
    published: dict[str, Any] = Field(default_factory=dict)
    source_path: str = ""

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
        """Load a protocol TOML; ``None`` loads the bundled STORM protocol."""
        if path is None:
            text = resources.files("mmtrial.protocol").joinpath("storm.toml").read_text("utf-8")
            src = "mmtrial/protocol/storm.toml"
        else:
            p = Path(path)
            text = p.read_text("utf-8")
            src = str(p)
        data = tomllib.loads(text)
        data["source_path"] = src
        return cls.model_validate(data)


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Load a protocol file (``None``: the bundled STORM protocol)."""
    return Protocol.load(path)
