"""Randomised trials as data: the arms, their regimens, randomisation and crossover.

Schema: data contract v2, "Randomised two-arm trials" (../shared/spec/data-contract.md).
``[arms.<ARMCD>]`` gives one arm: its label (dm ARM) and its regimen
(``[arms.<ARMCD>.regimen]``, the shape of ``[regimen]``: drugs, phases, body-size units).
``[randomisation]`` names the experimental and control arms (ARMCD values), the stratification
factors (suppdm QNAM values), the sidedness of the log-rank test and how crossover from the
control arm is handled. A protocol with ``[arms]`` needs no ``[regimen]``: the experimental arm's
regimen is the study regimen (:attr:`mmtrial.protocol.model.Protocol.regimen`).

BOSTON (Grosicki S et al., Lancet 2020;396:1563-73) is the worked example: arms SVD and VD,
strata prior PI, prior lines (1 vs > 1), R-ISS (III vs I/II), Vd patients crossing over after
confirmed progression.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmtrial.protocol.regimen import Regimen

__all__ = ["ArmSpec", "CrossoverConfig", "RandomisationConfig"]


class ArmSpec(BaseModel):
    """``[arms.<ARMCD>]``: one arm of a randomised trial."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field("", description="the arm's name as in dm ARM (default: its ARMCD)")
    regimen: Regimen = Field(description="the arm's regimen, same shape as [regimen]")


class CrossoverConfig(BaseModel):
    """``[randomisation.crossover]``: control patients switching to the experimental drug."""

    model_config = ConfigDict(extra="forbid")
    allowed: bool = Field(False, description="control-arm patients may cross over after progression")
    drugs: list[str] = Field(default_factory=list,
                             description="cm CMTRT / ex EXTRT values whose first use after progression in the "
                                         "control arm is a crossover (default: the experimental arm's study drug)")
    censor_os: bool = Field(False, description="censor OS at crossover in the primary analysis (default: no, "
                                               "intention to treat; crossover is handled by the RPSFTM sensitivity)")
    rpsftm: bool = Field(True, description="report OS adjusted for crossover by the rank-preserving structural "
                                           "failure time model (Robins & Tsiatis 1991), a sensitivity analysis")
    recensor: bool = Field(True, description="RPSFTM recensoring (Robins & Tsiatis 1991; NICE DSU TSD 16)")


class RandomisationConfig(BaseModel):
    """``[randomisation]``: which arm is compared with which, and how."""

    model_config = ConfigDict(extra="forbid")
    experimental: str = Field(min_length=1, description="ARMCD of the experimental arm")
    control: str = Field(min_length=1, description="ARMCD of the control arm")
    strata: list[str] = Field(default_factory=list,
                              description="stratification factors: suppdm QNAM values (RDOMAIN DM)")
    ratio: tuple[int, int] = Field((1, 1), description="allocation ratio experimental:control")
    sided: Literal[1, 2] = Field(2, description="sidedness of the log-rank p-value reported")
    per_protocol: bool = Field(False, description="also analyse a per-protocol population (randomised, treated "
                                                  "as randomised, no major deviation)")
    per_protocol_exclude: list[str] = Field(
        default_factory=list,
        description="with per_protocol: protocol deviations (dv) that exclude a subject from the per-protocol "
                    "population, by DVCAT or DVDECOD value (case-insensitive), e.g. [\"MAJOR\"]; empty: dv is "
                    "not read")
    crossover: CrossoverConfig = Field(default_factory=CrossoverConfig, description="crossover handling")

    @field_validator("ratio")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 1:
            raise ValueError(f"ratio must be two positive integers, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _two_arms(self) -> RandomisationConfig:
        if self.experimental == self.control:
            raise ValueError(f"experimental and control are the same arm ({self.experimental!r})")
        if self.per_protocol_exclude and not self.per_protocol:
            raise ValueError("per_protocol_exclude needs per_protocol = true (it defines who leaves the "
                             "per-protocol population)")
        if len({s.upper() for s in self.strata}) != len(self.strata):
            raise ValueError(f"strata repeat a factor: {self.strata}")
        return self


def check_arms(protocol: object) -> RandomisationConfig:
    """``[randomisation]`` against ``[arms]``: both arms named must be arms of the protocol.

    Called by the protocol loader (protocol/sections.py) so that an error names the key and line.
    """
    rnd: RandomisationConfig | None = getattr(protocol, "randomisation", None)
    arms: dict[str, ArmSpec] = getattr(protocol, "arms", {})
    if rnd is None:
        raise ValueError("[randomisation] needs experimental and control")
    codes = {c.upper() for c in arms}
    if not arms:
        raise ValueError("experimental: [randomisation] needs [arms.<ARMCD>] tables, one per arm, each with "
                         "its regimen")
    for key in ("experimental", "control"):
        code = getattr(rnd, key)
        if code.upper() not in codes:
            raise ValueError(f"{key} = {code!r} is not an arm of [arms] ({', '.join(arms)})")
    return rnd
