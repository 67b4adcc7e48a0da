"""Example counts of property tests: a smaller default, the full count under ``--sweeps``.

tests/conftest.py sets :data:`FULL` from the ``--sweeps`` option in ``pytest_configure``, which
runs before any test module is imported, so a module-level ``@settings(max_examples=examples(...))``
sees the option (also on every xdist worker: each one configures with the same options).
"""

from __future__ import annotations

FULL = False  # set by tests/conftest.py: True under ``pytest --sweeps``


def examples(default: int, full: int) -> int:
    """``max_examples`` for a hypothesis test: ``full`` under ``--sweeps``, else ``default``."""
    if not 0 < default <= full:
        raise ValueError(f"default examples {default} must be in 1..{full}")
    return full if FULL else default
