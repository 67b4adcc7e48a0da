"""Statistics with stable names (../shared/spec/data-contract.md)."""

from mmtrial.stats.proportion import proportion_ci

__all__ = ["proportion_ci"]
