"""The analysis pipeline: read and check SDTM, run the analysis steps, write the outputs.

Each step is a module in ``mmtrial.steps`` with ``run(a: Analysis) -> None``: it calls pure
derivations (``derive/``) and statistics (``stats/``), then adds its ADaM datasets, its part of
``results.json`` and its report sections to the :class:`~mmtrial.context.Analysis`.
Steps run in the order of :data:`STEPS`; data flows one way.
"""

from __future__ import annotations

import importlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._io import replace_dir
from mmtrial.context import Analysis
from mmtrial.protocol.model import Protocol
from mmtrial.sdtm.check import ReadOptions, load_study
from mmtrial.sdtm.issues import StudyInputError, issues_frame

STEPS: tuple[str, ...] = (
    "adsl",  # populations, demographics, disposition, deaths (steps/adsl.py)
    "response",  # IMWG response, confirmation, BOR, MEASFL, EFFFL (issue 3)
    "prior_therapy",  # lines of therapy, refractory status, eligibility, Table 1 (issue 4)
    "tte",  # ADTTE and efficacy statistics (issue 5)
    "exposure_safety",  # ADEX, ADLB grades, ADAE tables, dose rules (issue 6)
    "biomarker",  # response classifier (issue 8)
)


def run_steps(
    a: Analysis,
    steps: Sequence[str] = STEPS,
    on_step: Callable[[str], None] | None = None,
) -> Analysis:
    """Run the named steps in order on ``a`` (mutated and returned)."""
    for name in steps:
        if on_step is not None:
            on_step(name)
        module = importlib.import_module(f"mmtrial.steps.{name}")
        module.run(a)
    return a


# --- the whole analysis, from a study folder to an output folder ---------------------------------




FINAL_STEPS: tuple[str, ...] = ("overview",)


@dataclass
class AnalysisOutput:
    """Where an analysis wrote its outputs."""

    analysis: Analysis
    out_dir: Path
    report_html: Path
    report_pdf: Path | None
    results_json: Path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if math.isnan(float(o)) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, datetime, date)):
        return o.isoformat()[:10]
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if o is pd.NaT or o is pd.NA:
        return None
    raise TypeError(f"results.json: cannot serialise {type(o).__name__}")


def _clean_nan(o: Any) -> Any:
    if (isinstance(o, float) and math.isnan(o)) or o is pd.NaT or o is pd.NA:
        return None
    if isinstance(o, dict):
        return {str(k): _clean_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_nan(v) for v in o]
    return o


def results_to_json(results: dict[str, Any]) -> str:
    """``results.json`` text: NaN and NaT become null (never a made-up number)."""
    return json.dumps(_clean_nan(results), default=_json_default, indent=2, allow_nan=False) + "\n"


def _for_storage(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types become text so Parquet/DuckDB store them faithfully.

    A column is left as is when every non-missing value is text (pandas' ``infer_dtype``, a C
    loop, not a Python call per row) or a list/array; otherwise each value is written as
    ``str(value)`` and missing values (None, NaN) stay missing. The frame is returned itself
    (not a copy) when nothing changes.
    """
    out: pd.DataFrame | None = None
    for c in df.columns:
        col = df[c]
        if col.dtype != object or pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
            continue
        sample = col.dropna()
        if sample.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).all():
            continue
        if out is None:
            out = df.copy()
        out[c] = col.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return df if out is None else out


def write_adam(adam: dict[str, pd.DataFrame], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in adam.items():
        _for_storage(df).to_parquet(folder / f"{name}.parquet", index=False)


def write_duckdb(a: Analysis, path: Path) -> None:
    """Every input domain (``sdtm_<dom>``) and derived dataset (``<name>``) as DuckDB tables.

    DuckDB scans each frame column by column in C++ (categoricals become ENUM types, as before);
    :func:`_for_storage` no longer makes a Python call per row (issue 15). Scanning through an
    Arrow table instead was measured: same speed, but categoricals became VARCHAR.
    """
    import duckdb

    con = duckdb.connect(str(path))
    try:
        for prefix, frames in (("sdtm_", a.study.domains), ("", a.adam)):
            for name, df in frames.items():
                frame = _for_storage(df)  # noqa: F841 - referenced by name in the SQL below
                con.execute(f'CREATE TABLE "{prefix}{name}" AS SELECT * FROM frame')
    finally:
        con.close()


def analyze(
    study_dir: str | Path,
    out_dir: str | Path,
    *,
    protocol: Protocol | str | Path | None = None,
    options: dict[str, Any] | None = None,
    read_options: ReadOptions | None = None,
    steps: Sequence[str] | None = None,
    pdf: bool = False,
    run_date: str | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> AnalysisOutput:
    """Read, check, derive, analyse and render one study into ``out_dir`` (atomically).

    On input errors, ``out_dir`` receives only ``issues.csv`` (never a partial report) and
    :class:`StudyInputError` is raised with every issue.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    proto = protocol if isinstance(protocol, Protocol) else Protocol.load(protocol)
    study, issues = load_study(study_dir, read_options, on_stage=on_stage)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        issues_frame(issues).to_csv(tmp / "issues.csv", index=False)
        if study is None or any(i.severity == "error" for i in issues):
            replace_dir(tmp, out_dir)
            raise StudyInputError(issues)
        study.metadata["issues"] = issues
        a = Analysis(study=study, protocol=proto, issues=[i for i in issues if i.severity != "error"],
                     options=dict(options or {}))
        try:
            run_steps(a, tuple(steps if steps is not None else STEPS) + FINAL_STEPS, on_step=on_stage)
        except StudyInputError as exc:  # a derivation found bad input (e.g. overlapping ex rows)
            issues_frame([*issues, *exc.issues]).to_csv(tmp / "issues.csv", index=False)
            replace_dir(tmp, out_dir)
            raise StudyInputError([*issues, *exc.issues]) from None
        if on_stage:
            on_stage("write outputs")
        write_adam(a.adam, tmp / "adam")
        a.results.setdefault("study", {})
        a.results["study"].update({"id": proto.study.id, "synthetic": study.synthetic,
                                   "checksum": study.checksum, "protocol": proto.source_path})
        (tmp / "results.json").write_text(results_to_json(a.results), "utf-8")
        write_duckdb(a, tmp / "mmtrial.duckdb")
        if on_stage:
            on_stage("render report")
        from mmtrial.report.render import write_report

        write_report(a, tmp, pdf=pdf, run_date=run_date)
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return AnalysisOutput(analysis=a, out_dir=out_dir, report_html=out_dir / "report.html",
                          report_pdf=(out_dir / "report.pdf") if pdf else None,
                          results_json=out_dir / "results.json")
