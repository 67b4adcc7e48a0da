"""Synthetic STORM-like study simulator (a generative model; never imports derive/ or stats/).

    from mmtrial.simulate import simulate_study, write_study, SimulationParams
    sim = simulate_study(n=122, seed=7)
    write_study(sim, "study/", fmt="csv")

Model, parameters and calibration: docs/simulator.md.
"""

from mmtrial.simulate.params import CATEGORIES, SimulationParams
from mmtrial.simulate.study import DOMAINS, SimulatedStudy, simulate_study, write_study

__all__ = ["CATEGORIES", "DOMAINS", "SimulatedStudy", "SimulationParams", "simulate_study",
           "write_study"]
