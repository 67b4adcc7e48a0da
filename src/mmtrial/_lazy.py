"""Heavy modules imported on first use (issue 15: ``import mmtrial`` stays light).

``stats = lazy_module("scipy.stats")`` at the top of a module binds a stand-in that imports
``scipy.stats`` the first time one of its attributes is read, then behaves as the module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any


class _LazyModule:
    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = importlib.import_module(self._name)
            self._module = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when an attribute is first read."""
    return _LazyModule(name)


#: scikit-learn's compiled liblinear wrapper and the packages whose ``__init__`` it need not run.
LIBLINEAR = "sklearn.svm._liblinear"
_LIBLINEAR_PARENTS = ("sklearn", "sklearn.utils", "sklearn.svm")


def import_liblinear() -> ModuleType:
    """scikit-learn's compiled liblinear module (``train_wrap``), without importing scikit-learn.

    ``import sklearn`` runs ``sklearn/__init__.py``, which imports ``sklearn.base`` and with it
    scipy.stats, joblib and threadpoolctl (about 1.5 s of CPU, issue 15); the compiled
    ``_liblinear`` needs none of that: it imports only NumPy and two other compiled modules of
    scikit-learn (``sklearn._cyutility``, ``sklearn.utils._cython_blas``). When scikit-learn is
    not imported yet, its three packages are entered in ``sys.modules`` as empty package modules
    whose ``__path__`` is the installed folder, so the import system finds the compiled modules
    there without running any package ``__init__``; the empty packages are removed again
    afterwards. The compiled modules stay in ``sys.modules`` under their own names, and a later
    ``import sklearn`` runs the real package code and uses them (the same files). When scikit-learn
    is already imported, or anything fails, this is the ordinary import.
    """
    if LIBLINEAR in sys.modules or "sklearn" in sys.modules:
        return importlib.import_module(LIBLINEAR)
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return importlib.import_module(LIBLINEAR)  # raises the usual ImportError
    root = next(iter(spec.submodule_search_locations))
    placed: dict[str, ModuleType] = {}
    try:
        for name in _LIBLINEAR_PARENTS:
            if name in sys.modules:  # pragma: no cover - a parent without "sklearn" itself
                continue
            pkg = ModuleType(name)
            pkg.__path__ = [os.path.join(root, *name.split(".")[1:])]
            pkg.__package__ = name
            sys.modules[name] = placed[name] = pkg
        module = importlib.import_module(LIBLINEAR)
    except Exception:
        module = None
    finally:
        for name, pkg in placed.items():
            if sys.modules.get(name) is pkg:
                del sys.modules[name]
    if module is None:  # pragma: no cover - another scikit-learn layout: the ordinary import
        return importlib.import_module(LIBLINEAR)
    return module


__all__ = ["import_liblinear", "lazy_module"]
