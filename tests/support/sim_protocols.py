"""Protocols written for the simulator's tests (the core sections only, as a user would write them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmtrial.protocol.model import Protocol

VISITS = {"response_assessment_days": 28, "lab_interval_days": 7, "assessment_window_days": 7}


def protocol(regimen: dict[str, Any], ladder_doses: list[float] | None = None,
             simulation: dict[str, Any] | None = None, study_id: str = "TEST") -> Protocol:
    """A Protocol with [study], [regimen], [visits] and, when ``ladder_doses`` are given, the study
    drug's [dose_ladder.<DRUG>] (doses per administration on the drug's own days)."""
    data: dict[str, Any] = {
        "study": {"id": study_id, "title": f"{study_id} (test protocol)", "drug": regimen["study_drug"]},
        "regimen": regimen,
        "visits": VISITS,
        "source_path": f"{study_id.lower()}.toml",
    }
    if ladder_doses:
        data["dose_ladder"] = {regimen["study_drug"]: {
            "source": "test protocol", "levels": [{"level": -i, "dose": d} for i, d in enumerate(ladder_doses)]}}
    if simulation is not None:
        data["simulation"] = simulation
    return Protocol.model_validate(data)


#: Pomalidomide 4 mg days 1-21 + dexamethasone 40 mg days 1, 8, 15, 22 of 28-day cycles
#: (the POMALYST label's Pd regimen), ladder 4 -> 3 -> 2 -> 1 mg.
POMDEX = {
    "cycle_length_days": 28, "study_drug": "POMALIDOMIDE",
    "drugs": [
        {"name": "POMALIDOMIDE", "dose": 4, "unit": "mg", "route": "ORAL", "cycle_days": list(range(1, 22))},
        {"name": "DEXAMETHASONE", "dose": 40, "unit": "mg", "route": "ORAL", "cycle_days": [1, 8, 15, 22]},
    ],
}
POMDEX_LADDER = [4.0, 3.0, 2.0, 1.0]

#: Carfilzomib 20/56 mg/m2 days 1, 2, 8, 9, 15, 16 (20 mg/m2 on cycle 1 days 1-2) + dexamethasone,
#: 28-day cycles, DuBois BSA; ladder 56 -> 45 -> 36 -> 27 mg/m2.
KD = {
    "cycle_length_days": 28, "study_drug": "CARFILZOMIB", "bsa_formula": "dubois",
    "drugs": [
        {"name": "CARFILZOMIB", "dose": 56, "unit": "mg/m2", "route": "INTRAVENOUS",
         "cycle_days": [1, 2, 8, 9, 15, 16],
         "step_up": [{"cycle": 1, "day": 1, "dose": 20}, {"cycle": 1, "day": 2, "dose": 20}]},
        {"name": "DEXAMETHASONE", "dose": 20, "unit": "mg", "route": "ORAL",
         "cycle_days": [1, 2, 8, 9, 15, 16, 22, 23]},
    ],
}
KD_LADDER = [56.0, 45.0, 36.0, 27.0]

#: Daratumumab 16 mg/kg weekly (cycles 1-2), every 2 weeks (3-6), every 4 weeks (7+), 28-day cycles.
DARA = {
    "study_drug": "DARATUMUMAB",
    "phases": [
        {"cycles": [1, 2], "cycle_length_days": 28, "drugs": [
            {"name": "DARATUMUMAB", "dose": 16, "unit": "mg/kg", "route": "INTRAVENOUS", "cycle_days": [1, 8, 15, 22]}]},
        {"cycles": [3, 6], "cycle_length_days": 28, "drugs": [
            {"name": "DARATUMUMAB", "dose": 16, "unit": "mg/kg", "route": "INTRAVENOUS", "cycle_days": [1, 15]}]},
        {"cycles": [7, 999], "cycle_length_days": 28, "drugs": [
            {"name": "DARATUMUMAB", "dose": 16, "unit": "mg/kg", "route": "INTRAVENOUS", "cycle_days": [1]}]},
    ],
}


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path
