"""mmtrial: single-arm multiple-myeloma trial analysis, from SDTM to a CSR-style report.

Public API (heavy modules load on first use)::

    from mmtrial import simulate_study, read_study, analyze
    sim = simulate_study(n=123, seed=7)         # synthetic STORM-like study (in memory)
    study = read_study("study/")                # checked, normalised SDTM domains
    out = analyze("study/", "out/")             # ADaM, results.json, report.html
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("mmtrial")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_LAZY = {
    "read_study": ("mmtrial.sdtm.check", "read_study"),
    "load_study": ("mmtrial.sdtm.check", "load_study"),
    "ReadOptions": ("mmtrial.sdtm.check", "ReadOptions"),
    "StudyInputError": ("mmtrial.sdtm.issues", "StudyInputError"),
    "InputIssue": ("mmtrial.sdtm.issues", "InputIssue"),
    "Protocol": ("mmtrial.protocol.model", "Protocol"),
    "load_protocol": ("mmtrial.protocol.model", "load_protocol"),
    "Analysis": ("mmtrial.context", "Analysis"),
    "Study": ("mmtrial.context", "Study"),
    "analyze": ("mmtrial.pipeline", "analyze"),
    "derive": ("mmtrial.pipeline", "run_steps"),
    "render": ("mmtrial.report.render", "render_html"),
    "simulate_study": ("mmtrial.simulate", "simulate_study"),
    "write_study": ("mmtrial.simulate", "write_study"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'mmtrial' has no attribute {name!r}")
