"""Statistics with stable names (../shared/spec/data-contract.md, "Python API for the statistics")."""

from mmtrial.stats.compare import (
    compute_cox,
    compute_landmark_comparison,
    compute_logrank,
    compute_mantel_byar,
    compute_naive_comparison,
    compute_time_dependent_cox,
)
from mmtrial.stats.proportion import (
    CI_METHODS,
    BinomialTest,
    ProportionResult,
    compute_binomial_test,
    compute_proportion,
    proportion_ci,
)
from mmtrial.stats.survival import METHOD_PROFILES, KaplanMeier, KMOptions, kaplan_meier, km_options

__all__ = [
    "CI_METHODS",
    "METHOD_PROFILES",
    "BinomialTest",
    "KMOptions",
    "KaplanMeier",
    "ProportionResult",
    "compute_binomial_test",
    "compute_cox",
    "compute_landmark_comparison",
    "compute_logrank",
    "compute_mantel_byar",
    "compute_naive_comparison",
    "compute_proportion",
    "compute_time_dependent_cox",
    "kaplan_meier",
    "km_options",
    "proportion_ci",
]
