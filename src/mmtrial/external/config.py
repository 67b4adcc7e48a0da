"""Protocol section ``[external]``: the external-control comparison (docs/external.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmtrial.external.emulate import EmulationOptions

#: Covariates an external cohort provides at every line start (and the trial's ADSL at first dose).
KNOWN_COVARIATES = ("AGE", "MALE", "NPRIOR", "PENTAFL", "TCRFL", "QUADFL", "DIAGYRS", "HRCYTOFL", "LSTREFFL")


class ExternalConfig(BaseModel):
    """``[external]``: covariates of the propensity score, estimand, weights and the emulation."""

    model_config = ConfigDict(extra="forbid")
    covariates: list[str] = Field(
        default_factory=lambda: ["AGE", "MALE", "NPRIOR", "PENTAFL"],
        description=f"propensity-score covariates (any of {', '.join(KNOWN_COVARIATES)})")
    estimand: Literal["ATT", "ATE", "ATO"] = Field(
        "ATT", description="ATT: weights toward the trial population; ATO: overlap weights; ATE")
    trim: list[float] | None = Field(
        None, description="[low, high]: drop patients whose propensity score lies outside (Crump-style trimming)")
    truncate_quantile: float | None = Field(
        None, description="truncate weights at this upper quantile (e.g. 0.99)")
    endpoints: list[Literal["OS", "PFS"]] = Field(
        default_factory=lambda: ["OS", "PFS"], description="endpoints compared (the first is primary)")
    index: Literal["first", "every", "random"] = Field("first", description="index line(s) in the cohort")
    seed: int = Field(1, description="seed of the random index line")
    measurable: Literal["when_available", "require", "ignore"] = Field(
        "when_available", description="measurable disease at the line start when labs allow")
    lab_window_days: int = Field(30, ge=0, description="serum M-protein within this many days before the line start")
    exclude_study_drugs: bool = Field(True, description="lines with or after the trial's study drugs are not eligible")
    max_followup_days: int | None = Field(None, ge=1, description="administrative censoring of the external arm")

    @field_validator("covariates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c.upper() not in KNOWN_COVARIATES]
        if bad:
            raise ValueError(f"unknown covariate(s) {bad}; allowed {list(KNOWN_COVARIATES)}")
        if not v:
            raise ValueError("give at least one covariate")
        return [c.upper() for c in v]

    @field_validator("trim")
    @classmethod
    def _trim(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 2 or not 0 <= v[0] < v[1] <= 1):
            raise ValueError(f"trim must be [low, high] with 0 <= low < high <= 1; got {v}")
        return v

    @field_validator("truncate_quantile")
    @classmethod
    def _q(cls, v: float | None) -> float | None:
        if v is not None and not 0.5 < v < 1:
            raise ValueError(f"truncate_quantile must lie in (0.5, 1); got {v}")
        return v

    def emulation(self, study_drugs: tuple[str, ...] = ()) -> EmulationOptions:
        return EmulationOptions(index=self.index, seed=self.seed, measurable=self.measurable,
                                lab_window_days=self.lab_window_days,
                                exclude_drugs=study_drugs if self.exclude_study_drugs else (),
                                max_followup_days=self.max_followup_days)
