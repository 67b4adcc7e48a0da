"""Heavy modules imported on first use (issue 15: ``import mmtrial`` stays light).

``stats = lazy_module("scipy.stats")`` at the top of a module binds a stand-in that imports
``scipy.stats`` the first time one of its attributes is read, then behaves as the module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any


class _LazyModule:
    __slots__ = ("_importer", "_module", "_name")

    def __init__(self, name: str, importer: Callable[[], ModuleType] | None = None) -> None:
        self._name = name
        self._importer = importer
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._importer() if self._importer is not None else importlib.import_module(self._name)
            self._module = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str, importer: Callable[[], ModuleType] | None = None) -> Any:
    """A stand-in for module ``name`` that imports it when an attribute is first read (by
    ``importer()`` when given, e.g. :func:`import_special_ufuncs`)."""
    return _LazyModule(name, importer)


def import_bare(module: str, packages: tuple[str, ...]) -> ModuleType:
    """Import ``module`` without running the ``__init__`` of ``packages`` (issue 15).

    Each package of ``packages`` not imported yet is entered in ``sys.modules`` as an empty
    package module whose ``__path__`` is its installed folder, so the import system finds the
    modules inside it without running the package's ``__init__``; the empty packages are
    removed again afterwards. What was imported stays in ``sys.modules`` under its own name, and
    a later ordinary import of a package runs the real package code, which reuses those modules
    (the same files, the same objects; ``from package import module`` finds them in
    ``sys.modules``). When anything fails, this is the ordinary import. Meant for compiled
    modules whose packages' ``__init__`` imports much that they do not need.
    """
    if module in sys.modules:
        return sys.modules[module]
    placed: dict[str, ModuleType] = {}
    loaded = None
    try:
        todo = [name for name in packages if name not in sys.modules]
        roots: dict[str, str] = {}
        for top in dict.fromkeys(name.partition(".")[0] for name in todo):  # before any stand-in is placed
            spec = importlib.util.find_spec(top)
            if spec is None or not spec.submodule_search_locations:
                raise ImportError(top)
            roots[top] = next(iter(spec.submodule_search_locations))
        for name in todo:
            top, _, rest = name.partition(".")
            pkg = ModuleType(name)
            pkg.__path__ = [os.path.join(roots[top], *rest.split(".")) if rest else roots[top]]
            pkg.__package__ = name
            sys.modules[name] = placed[name] = pkg
        loaded = importlib.import_module(module)
    except Exception:
        loaded = None
    finally:
        for name, pkg in placed.items():
            if sys.modules.get(name) is pkg:
                del sys.modules[name]
    return loaded if loaded is not None else importlib.import_module(module)


#: scikit-learn's compiled liblinear wrapper and the packages whose ``__init__`` it need not run:
#: scikit-learn's three and SciPy's ``scipy.linalg`` (``sklearn.utils._cython_blas`` imports
#: the compiled ``scipy.linalg.cython_blas``, whose package ``__init__`` costs about 0.25 s of CPU).
LIBLINEAR = "sklearn.svm._liblinear"
_LIBLINEAR_PARENTS = ("sklearn", "sklearn.utils", "sklearn.svm", "scipy.linalg")


def import_liblinear() -> ModuleType:
    """scikit-learn's compiled liblinear module (``train_wrap``), without importing scikit-learn.

    ``import sklearn`` runs ``sklearn/__init__.py``, which imports ``sklearn.base`` and with it
    scipy.stats, joblib and threadpoolctl (about 1.5 s of CPU, issue 15); the compiled
    ``_liblinear`` needs none of that: it imports only NumPy and three other compiled modules
    (``sklearn._cyutility``, ``sklearn.utils._cython_blas``, ``scipy.linalg.cython_blas``).
    :func:`import_bare` with :data:`_LIBLINEAR_PARENTS`; when scikit-learn is already imported,
    the ordinary import.
    """
    if LIBLINEAR in sys.modules or "sklearn" in sys.modules:
        return importlib.import_module(LIBLINEAR)
    return import_bare(LIBLINEAR, _LIBLINEAR_PARENTS)


#: SciPy's compiled special functions (``ndtr``, ``ndtri``, ``chdtrc``, ``expit``, the Boost
#: distribution ufuncs ...): the same ufunc objects that ``scipy.special`` exports.
SPECIAL_UFUNCS = "scipy.special._ufuncs"


def import_special_ufuncs() -> ModuleType:
    """``scipy.special._ufuncs`` without running ``scipy/special/__init__.py``.

    The package's ``__init__`` builds the array-API dispatch layer and imports SciPy's array-API
    support (about 0.2 s of CPU, issue 15); the functions mmtrial calls are ufuncs of the compiled
    ``_ufuncs`` module, which ``scipy.special`` re-exports as the same objects (``scipy.special.ndtr
    is scipy.special._ufuncs.ndtr``), so the results are the same doubles.
    :func:`import_bare`; when ``scipy.special`` is already imported, the ordinary import.
    """
    if SPECIAL_UFUNCS in sys.modules or "scipy.special" in sys.modules:
        return importlib.import_module(SPECIAL_UFUNCS)
    return import_bare(SPECIAL_UFUNCS, ("scipy.special",))


__all__ = ["import_bare", "import_liblinear", "import_special_ufuncs", "lazy_module"]
