"""The results.json form of the statistics' result dataclasses (one rule for all of them)."""

from __future__ import annotations

import dataclasses
from typing import Any


class AsDict:
    """Mixin for a result dataclass: :meth:`as_dict` gives its fields in order, tuples as lists
    (JSON arrays); a ``reason`` field is written as ``not_estimable`` and only when not empty."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name == "reason":
                if v:
                    out["not_estimable"] = v
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out
