"""Pickling of session-fixture results shared between pytest-xdist workers (tests/conftest.py).

The pipeline's tables remember the builder that made them (tables/byarm.py's recipes hold the
undecorated function, which is not importable under its own name): such a function is pickled as
``module.qualname.__wrapped__``.
"""

from __future__ import annotations

import importlib
import pickle
import types
from typing import Any


def wrapped_function(module: str, qualname: str) -> types.FunctionType:
    """The original function under the decorated ``module.qualname``."""
    return getattr(importlib.import_module(module), qualname).__wrapped__


class SharedPickler(pickle.Pickler):
    """A pickler that also handles decorated functions' originals (see the module docstring)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            try:
                top = getattr(importlib.import_module(obj.__module__), obj.__qualname__, None)
            except ImportError:
                return NotImplemented
            if top is not obj and getattr(top, "__wrapped__", None) is obj:
                return wrapped_function, (obj.__module__, obj.__qualname__)
        return NotImplemented


def dump(obj: Any, path) -> None:
    with open(path, "wb") as f:
        SharedPickler(f, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
