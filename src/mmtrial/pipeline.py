"""The analysis pipeline: read and check SDTM, run the analysis steps, write the outputs.

Each step is a module in ``mmtrial.steps`` with ``run(a: Analysis) -> None``: it calls pure
derivations (``derive/``) and statistics (``stats/``), then adds its ADaM datasets, its part of
``results.json`` and its report sections to the :class:`~mmtrial.context.Analysis`.
Steps run in the order of :data:`STEPS`; data flows one way.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
import shutil
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._io import (
    MARKER,
    check_output_folder,
    finish_dir,
    new_temp_dir,
    remove_tree,
    resolve_path,
)
from mmtrial._memory import release_memory
from mmtrial.context import Analysis
from mmtrial.errors import ProtocolError, UsageError
from mmtrial.protocol.model import Protocol
from mmtrial.sdtm.check import ReadOptions, load_study
from mmtrial.sdtm.issues import StudyInputError, write_issues_csv

STEPS: tuple[str, ...] = (
    "adsl",  # populations, demographics, disposition, deaths (steps/adsl.py)
    "response",  # IMWG response, confirmation, BOR, MEASFL, EFFFL (issue 3)
    "prior_therapy",  # lines of therapy, refractory status, eligibility, Table 1 (issue 4)
    "tte",  # ADTTE and efficacy statistics (issue 5)
    "exposure_safety",  # ADEX, ADLB grades, ADAE tables, dose rules (issue 6)
    "biomarker",  # response classifier (issue 8)
    "comparison",  # randomised two-arm trials: experimental vs control (issue 13); no-op for one arm
)


def run_steps(
    a: Analysis,
    steps: Sequence[str] = STEPS,
    on_step: Callable[[str], None] | None = None,
    *,
    release: bool = False,
    release_domains: Mapping[str, Sequence[str]] | None = None,
    narrow_domains: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> Analysis:
    """Run the named steps in order on ``a`` (mutated and returned).

    ``release``: after each step, hand the memory it freed back to the operating system
    (:func:`mmtrial._memory.release_memory`; :func:`analyze` does, issue 15).
    ``release_domains``: step name -> the SDTM domains to drop from memory after it
    (:func:`plan_domain_release`; :meth:`~mmtrial.context.Study.release`).
    ``narrow_domains``: step name -> domain -> the row selectors of the later steps that read
    only some of its rows: after the step, only the rows one of them selects are kept
    (:func:`plan_domain_narrowing`; :meth:`~mmtrial.context.Study.narrow`).
    A step that has read a domain for the last time may call
    :meth:`~mmtrial.context.Study.last_read`: the domain's plan after the step is then carried out
    at that point of the step."""
    for name in steps:
        if on_step is not None:
            on_step(name)
        module = importlib.import_module(f"mmtrial.steps.{name}")
        # what happens to a domain after the step; done earlier when the step calls Study.last_read
        after: dict[str, Callable[[], None]] = {}
        for dom, selectors in (narrow_domains or {}).get(name, {}).items():
            if dom in a.study.domains:
                after[dom] = functools.partial(_narrow_domain, a.study, dom, selectors)
        for dom in (release_domains or {}).get(name, ()):
            after[dom] = functools.partial(_release_domains, a.study, (dom,))
        a.study.after_last_read = dict(after)
        try:
            module.run(a)
        finally:
            after_step = a.study.after_last_read
            a.study.after_last_read = {}
            a.study.finished.clear()
        for action in after_step.values():  # the plans the step did not call for earlier
            action()
        if release:
            release_memory()
    return a


def _narrow_domain(study, dom: str, selectors: Sequence[str]) -> None:
    """Keep only the rows of ``dom`` one of ``selectors`` (:data:`DOMAIN_ROWS_READ_BY_STEP`) selects."""
    df = study.domains.get(dom)
    if df is None:
        return
    rows = np.zeros(len(df), dtype=bool)
    for sel in selectors:
        rows |= np.asarray(row_selector(sel)(df), dtype=bool)
    del df
    study.narrow(dom, rows, readers=", ".join(selectors))


def _release_domains(study, doms: Sequence[str]) -> None:
    """Release the domains ``doms`` from memory (:meth:`~mmtrial.context.Study.release`)."""
    study.release(keep=tuple(d for d in study.domains if d not in doms))


# --- the whole analysis, from a study folder to an output folder ---------------------------------




FINAL_STEPS: tuple[str, ...] = ("conventions", "csr_displays", "overview", "by_arm")  # issue 14: ADaM IG variables, CSR displays; issue 13: by arm


#: The SDTM domains still read once the steps have run: the report's subject listing (ex) and the
#: by-arm step rerun on a finished analysis (suppdm, dm); :func:`analyze` releases the others from
#: memory after their last reader (:meth:`~mmtrial.context.Study.release`, issue 15), so the
#: analysis it returns holds only these.
DOMAINS_READ_AFTER_OUTPUTS: tuple[str, ...] = ("dm", "ex", "suppdm")

#: The SDTM domains each step reads (``a.study.get`` / ``a.study[...]``); ``"*"``: every domain
#: (the step passes ``a.study.domains`` on). A step not named here counts as reading every
#: domain. tests/test_pipeline.py checks this table against the steps' source.
DOMAINS_READ_BY_STEP: dict[str, tuple[str, ...]] = {
    "adsl": ("*",),
    "response": ("*",),
    "prior_therapy": ("cm", "lb", "mh", "pr", "rs"),
    "tte": ("cm",),
    "exposure_safety": ("ae", "ex", "lb", "vs"),
    "biomarker": ("lb",),
    "comparison": ("suppdm",),
    "conventions": ("dm", "lb"),
    "csr_displays": (),
    "overview": (),
    "by_arm": ("suppdm",),
}


#: SDTM variables that no step reads: the checks made and read them (the lab values and units as
#: given before conversion, the date imputation flags of lb; a visit name the steps do not use,
#: lb's VISIT) and mmtrial.duckdb's ``sdtm_*`` tables, written before the steps, hold them.
#: :func:`analyze` drops them from memory once those tables are written (issue 15: 120 MB of lb
#: at 20,000 subjects, through every step that holds lb). tests/test_pipeline.py checks that no
#: step-side module names them.
VARIABLES_NOT_READ_BY_STEPS: dict[str, tuple[str, ...]] = {
    "lb": ("VISIT", "LBDTF", "LBSTRESN_RAW", "LBSTRESU_RAW"),
}


def drop_unread_variables(study, variables: Mapping[str, Sequence[str]] = VARIABLES_NOT_READ_BY_STEPS) -> None:
    """Drop ``variables`` (domain -> names; :data:`VARIABLES_NOT_READ_BY_STEPS`) from the study's
    domains in memory (the other variables are shared, not copied; issue 15)."""
    for dom, names in variables.items():
        df = study.domains.get(dom)
        if df is not None:
            cols = [c for c in names if c in df.columns]
            if cols:
                study.domains[dom] = df.drop(columns=cols)


def plan_domain_release(steps: Sequence[str], domains: Sequence[str],
                        keep: Sequence[str] = DOMAINS_READ_AFTER_OUTPUTS) -> dict[str, tuple[str, ...]]:
    """Step name -> the domains no later step reads, to release after it (issue 15).

    Each domain of ``domains`` not in ``keep`` is released after the last step of ``steps`` that
    reads it (:data:`DOMAINS_READ_BY_STEP`; a step reading every domain counts for each), or after
    the first step when none does. Memory only: a released domain raises when read
    (:meth:`~mmtrial.context.Study.release`), never passes for an absent one.
    """
    if not steps:
        return {}
    last: dict[str, int] = {}
    for i, step in enumerate(steps):
        reads = DOMAINS_READ_BY_STEP.get(step, ("*",))
        for d in domains:
            if "*" in reads or d in reads:
                last[d] = i
    plan: dict[str, list[str]] = {}
    for d in domains:
        if d not in keep:
            plan.setdefault(steps[last.get(d, 0)], []).append(d)
    return {step: tuple(ds) for step, ds in plan.items()}


#: Steps that read only some rows of a domain: (step, domain) -> ``"module:function"``, the
#: function giving the boolean mask of the rows the step reads (the step selects its rows with
#: that same function). Once no later step reads the whole domain, :func:`analyze` keeps only
#: the rows these later readers select (issue 15: 2,350 of lb's 2.7 M records at 20,000
#: subjects are read after ADLB is derived). A selector must give the same rows on any subset
#: of the domain that holds them (a row filter, or the first row per key of a row filter), so
#: it may run on the narrowed domain. tests/test_pipeline.py checks that each step calls its
#: selector.
DOMAIN_ROWS_READ_BY_STEP: dict[tuple[str, str], str] = {
    ("biomarker", "lb"): "mmtrial.steps.biomarker:biomarker_rows",
    ("conventions", "lb"): "mmtrial.steps.conventions:lbtest_name_rows",
}


def row_selector(path: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """The row selector ``"module:function"`` of :data:`DOMAIN_ROWS_READ_BY_STEP`."""
    module, _, func = path.partition(":")
    return getattr(importlib.import_module(module), func)


def plan_domain_narrowing(steps: Sequence[str], domains: Sequence[str],
                          keep: Sequence[str] = DOMAINS_READ_AFTER_OUTPUTS,
                          rows_read: Mapping[tuple[str, str], str] | None = None,
                          ) -> dict[str, dict[str, tuple[str, ...]]]:
    """Step name -> domain -> the row selectors (:data:`DOMAIN_ROWS_READ_BY_STEP`) of the later
    steps, to narrow the domain to after it (issue 15).

    A domain is narrowed after the last step that reads all of it (:data:`DOMAINS_READ_BY_STEP`,
    a step reading every domain counting for each) when every later step reading it reads only
    the rows of its selector; a domain in ``keep`` (read after the steps) is never narrowed.
    Memory only: each later reader finds every row it reads, in order, with every variable.
    """
    rows_read = DOMAIN_ROWS_READ_BY_STEP if rows_read is None else rows_read
    plan: dict[str, dict[str, tuple[str, ...]]] = {}
    for d in domains:
        if d in keep:
            continue
        whole, later = None, []
        for i, step in enumerate(steps):
            reads = DOMAINS_READ_BY_STEP.get(step, ("*",))
            if not ("*" in reads or d in reads):
                continue
            if (step, d) in rows_read:
                later.append(rows_read[(step, d)])
            else:
                whole, later = i, []
        if whole is not None and later:
            plan.setdefault(steps[whole], {})[d] = tuple(dict.fromkeys(later))
    return plan


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
        return float(o) if math.isfinite(float(o)) else None
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
    if (isinstance(o, float) and not math.isfinite(o)) or o is pd.NaT or o is pd.NA:
        return None
    if isinstance(o, dict):
        return {str(k): _clean_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_nan(v) for v in o]
    return o


def results_to_json(results: dict[str, Any]) -> str:
    """``results.json`` text: NaN, +-inf and NaT become null (never a made-up number); the reason
    a value is null is in ``not_computable`` (steps/overview.py)."""
    return json.dumps(_clean_nan(results), default=_json_default, indent=2, allow_nan=False) + "\n"


def _for_storage(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types become text so Parquet/DuckDB store them faithfully.

    A column is left as is when every non-missing value is text (pandas' ``infer_dtype``, a C
    loop, not a Python call per row) or a list/array; otherwise each value is written as
    ``str(value)`` and missing values (None, NaN) stay missing. The frame is returned itself
    (not a copy) when nothing changes.
    """
    out: pd.DataFrame | None = None
    # only object columns can change: their names from the dtypes, without a Series per column
    # (issue 15: the demo's 23 tables have 620 columns, most of them typed)
    for c in df.columns[df.dtypes.to_numpy() == np.dtype(object)]:
        col = df[c]
        if pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
            continue
        sample = col.dropna()
        if sample.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).all():
            continue
        if out is None:
            out = df.copy(deep=False)  # the other columns shared, not copied (issue 15: adrs at 100,000 subjects, 240 MB)
        out[c] = col.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return df if out is None else out


def write_adam(adam: dict[str, pd.DataFrame], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in adam.items():
        _for_storage(df).to_parquet(folder / f"{name}.parquet", index=False)


#: The DuckDB database of an analysis (every SDTM domain and ADaM dataset as a table).
DUCKDB_FILE = "mmtrial.duckdb"

#: DuckDB's memory limit while mmtrial.duckdb is written (:func:`write_duckdb`).
DUCKDB_MEMORY_LIMIT = "256MB"

#: DuckDB's worker threads while mmtrial.duckdb is written: one. Each table is one scan of a
#: pandas frame, which DuckDB runs on one thread anyway; its other threads only waited and
#: synchronised (issue 15, sixth pass: at 20,000 subjects the SDTM tables took 7.0-7.4 s of CPU
#: instead of 8.5-8.9 s, and +13-53 MB over the frames instead of +58-98 MB).
DUCKDB_THREADS = 1


def write_duckdb(a: Analysis, path: Path, *, sdtm: bool = True, adam: bool = True) -> None:
    """Every input domain (``sdtm_<dom>``) and derived dataset (``<name>``) as DuckDB tables
    (added to the database at ``path``; ``sdtm`` / ``adam`` False leave those out: :func:`analyze`
    writes the domains before the steps so each can leave memory after its last reader, issue 15).

    DuckDB scans each frame column by column in C++ (categoricals become ENUM types, as before);
    :func:`_for_storage` no longer makes a Python call per row (issue 15). Scanning through an
    Arrow table instead was measured: same speed, but categoricals became VARCHAR.
    """
    import duckdb

    con = duckdb.connect(str(path))
    try:
        # DuckDB keeps written table blocks in its buffer pool up to its memory limit (by default
        # 80% of RAM); a small limit makes it write them out as it goes (issue 15: at 20,000
        # subjects the peak over the frames fell from +850 MB to +300 MB at the same CPU)
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute(f"SET threads = {DUCKDB_THREADS}")
        for prefix, frames in (("sdtm_", a.study.domains if sdtm else {}), ("", a.adam if adam else {})):
            for name, df in frames.items():
                frame = _for_storage(df)  # noqa: F841 - referenced by name in the SQL below
                con.execute(f'CREATE TABLE "{prefix}{name}" AS SELECT * FROM frame')
    finally:
        con.close()


def _remove_duckdb(folder: Path) -> None:
    """Remove the DuckDB database :func:`analyze` started in its temporary folder (and its WAL)."""
    for name in (DUCKDB_FILE, DUCKDB_FILE + ".wal"):
        (folder / name).unlink(missing_ok=True)


# --- usage checks: before any work (data contract v2, exit code 2) --------------------------------

#: The log a failed run leaves in its output folder (with the traceback, for a bug report).
ERROR_LOG = "mmtrial-error.log"


def check_study_folder(study_dir: str | Path) -> Path:
    """The study folder, resolved; :class:`UsageError` when it is missing or not a folder."""
    p = Path(study_dir).expanduser()
    if not p.exists():
        raise UsageError(f"study folder not found: {study_dir}")
    if not p.is_dir():
        raise UsageError(f"{study_dir}: is a file; give the folder that holds the domain files")
    return resolve_path(p)


_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def load_protocol_file(protocol: str | Path | None) -> Protocol:
    """Load a protocol, turning every way a protocol file can be unusable into one
    :class:`ProtocolError` (file, key, line): missing or unreadable file, TOML syntax error,
    unknown key or bad value. A :class:`ProtocolError` raised by ``Protocol.load`` passes as is."""
    import tomllib

    from pydantic import ValidationError

    file = "" if protocol is None else str(protocol)
    try:
        return Protocol.load(protocol)
    except ProtocolError:
        raise
    except FileNotFoundError:
        raise ProtocolError("protocol file not found", file=file) from None
    except IsADirectoryError:
        raise ProtocolError("is a folder, not a protocol TOML file", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"cannot be read ({type(exc).__name__}: {exc})", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE.search(str(exc))
        msg = _TOML_LINE.sub("", str(exc)).strip()
        raise ProtocolError(f"TOML syntax error: {msg}", file=file,
                            line=int(m.group(1)) if m else None) from None
    except ValidationError as exc:
        # an unknown key first (the likeliest typo), then a bad value, then a missing one
        errs = sorted(exc.errors(), key=lambda e: (e.get("type") != "extra_forbidden",
                                                   e.get("type") == "missing"))
        first = errs[0]
        key = ".".join(str(part) for part in first.get("loc", ()))
        msg = first.get("msg", "invalid value")
        if first.get("type") == "extra_forbidden":
            msg = "unknown key (check its spelling; docs list every key)"
        elif "input" in first and not isinstance(first["input"], dict | list):
            msg += f" (got {first['input']!r})"
        more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
        raise ProtocolError(msg + more, file=file, key=key) from None


def require_pdf_renderer(engine: str = "weasyprint") -> None:
    """:class:`UsageError` unless the PDF renderer loads: WeasyPrint and its system libraries, or
    a Chromium executable for ``engine="chromium"`` (checked before any work, so a missing
    renderer never costs a finished analysis)."""
    from mmtrial.report.pdf import PDF_ENGINES, PdfUnavailableError, find_chromium, load_weasyprint

    if engine not in PDF_ENGINES:
        raise UsageError(f"--pdf-engine must be one of {', '.join(PDF_ENGINES)}; got {engine!r}")
    try:
        find_chromium() if engine == "chromium" else load_weasyprint()
    except PdfUnavailableError as exc:
        raise UsageError(f"--pdf: {exc}") from None


def mmtrial_version() -> str:
    from mmtrial import __version__

    return __version__


def _record_failure(tmp: Path, out: Path, exc: BaseException, study: Path) -> Path | None:
    """A run that failed on an unexpected error (a bug) replaces its output with the failure:
    ``issues.csv`` (when written), ``mmtrial-error.log`` and the marker (status ``failed``), so an
    earlier report never looks current. Returns the log's final path (None if it could not be
    written)."""
    try:
        for entry in tmp.iterdir():
            if entry.name not in ("issues.csv", MARKER):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        text = "".join(traceback.format_exception(exc))
        (tmp / ERROR_LOG).write_text(
            f"mmtrial {mmtrial_version()} failed on an internal error (a bug).\n"
            f"study: {study}\n\n{text}", "utf-8")
        finish_dir(tmp, out, kind="analysis", status="failed", study=study)
    except Exception:  # pragma: no cover - the failure itself could not be recorded
        return None
    return out / ERROR_LOG


def _apply_cutoff(study, cutoff: date | None):
    """The study at the data cut-off (``sdtm/cutoff.py``), or unchanged without one."""
    if cutoff is None:
        return study
    from mmtrial.sdtm.cutoff import apply_data_cutoff

    return apply_data_cutoff(study, cutoff)


def _write_submission(a: Analysis, out: Path) -> None:
    from mmtrial.submission import write_submission

    write_submission(a, out)


def pandas_options():
    """The pandas options an analysis runs under (a context manager; the caller's return after).

    ``compute.use_numexpr = False``: pandas hands arithmetic and comparisons on columns of over
    10,000 values to numexpr when that package is installed (it is not among mmtrial's
    dependencies; scikit-survival, a test dependency, brings it). Its threads cost more CPU than
    numpy's loops (2.7 M products: about 18 ms against 3-5 ms) and the analysis then depended on
    what else is installed. Off, every run computes with numpy as a plain ``pip install
    mmtrial`` does: read + check at 20,000 subjects 1.50 -> 1.18 s of CPU, CTCAE grading +
    exposure 2.2-2.4 -> 1.9 s (bench_steps_floor.py, alternating, quiet machine; docs/design.md
    "seventh pass merged"); results identical (bench_identical.py)."""
    return pd.option_context("compute.use_numexpr", False)


def _under_pandas_options(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with pandas_options():
            return fn(*args, **kwargs)

    return run


@_under_pandas_options
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
    cutoff: date | None = None,
    pdf_engine: str = "weasyprint",
    pdf_content: str = "body",
) -> AnalysisOutput:
    """Read, check, derive, analyse and render one study into ``out_dir`` (atomically).

    Before any work, usage errors raise :class:`~mmtrial.errors.UsageError` and nothing is
    touched: a missing study folder, an output folder mmtrial may not write
    (:class:`~mmtrial.errors.OutputFolderError`, docs/cli.md "The output folder"), an unusable
    protocol file (:class:`~mmtrial.errors.ProtocolError`), ``pdf`` without WeasyPrint, a ``pdf_content``
    not in :data:`mmtrial.report.render.PDF_CONTENTS` (``body``, the default: the report body;
    ``full``: with the listings and the method-settings appendix; docs/report.md).

    On input errors, ``out_dir`` receives only ``issues.csv`` (never a partial report) and
    :class:`StudyInputError` is raised with every issue. On an unexpected error (a bug) it
    receives ``issues.csv`` and ``mmtrial-error.log`` with the traceback, and the exception is
    raised again (its ``mmtrial_log`` attribute names the log). Either way an earlier report in
    ``out_dir`` is removed, so it never looks current.
    """
    study_path = check_study_folder(study_dir)
    out_user = Path(out_dir)
    out_path = check_output_folder(out_dir, kind="analysis", study=study_path)
    proto = protocol if isinstance(protocol, Protocol) else load_protocol_file(protocol)
    if pdf:
        require_pdf_renderer(pdf_engine)
        from mmtrial.report.render import PDF_CONTENTS

        if pdf_content not in PDF_CONTENTS:
            raise UsageError(f"--pdf-content must be one of {', '.join(PDF_CONTENTS)}; got {pdf_content!r}")
    tmp = new_temp_dir(out_path, kind="analysis", study=study_path)
    try:
        study, issues = load_study(study_dir, read_options, on_stage=on_stage, protocol=proto)  # the path as given, for the report
        write_issues_csv(issues, tmp / "issues.csv")
        if study is None or any(i.severity == "error" for i in issues):
            finish_dir(tmp, out_path, kind="analysis", status="input-errors", study=study_path)
            raise StudyInputError(issues)
        study.metadata["issues"] = issues
        study = _apply_cutoff(study, cutoff or proto.study.data_cutoff)  # data cut-off (issue 14)
        release_memory()  # what the checks freed goes back to the system (issue 15)
        a = Analysis(study=study, protocol=proto, issues=[i for i in issues if i.severity != "error"],
                     options=dict(options or {}))
        # the SDTM tables of mmtrial.duckdb first: each domain can then leave memory after the last
        # step that reads it (the lab records after ADaM conventions), not after every step (issue 15)
        write_duckdb(a, tmp / DUCKDB_FILE, adam=False)
        drop_unread_variables(a.study)  # mmtrial.duckdb holds them (issue 15)
        run = tuple(steps if steps is not None else STEPS) + FINAL_STEPS
        try:
            run_steps(a, run, on_step=on_stage, release=True,
                      release_domains=plan_domain_release(run, list(a.study.domains)),
                      narrow_domains=plan_domain_narrowing(run, list(a.study.domains)))
        except StudyInputError as exc:  # a derivation found bad input (e.g. overlapping ex rows)
            _remove_duckdb(tmp)  # only issues.csv is left for input errors
            write_issues_csv([*issues, *exc.issues], tmp / "issues.csv")
            finish_dir(tmp, out_path, kind="analysis", status="input-errors", study=study_path)
            raise StudyInputError([*issues, *exc.issues]) from None
        if on_stage:
            on_stage("write outputs")
        write_adam(a.adam, tmp / "adam")
        release_memory()
        a.results.setdefault("study", {})
        a.results["study"].update({"id": proto.study.id, "synthetic": study.synthetic,
                                   "checksum": study.checksum, "protocol": proto.source_path})
        (tmp / "results.json").write_text(results_to_json(a.results), "utf-8")
        write_duckdb(a, tmp / DUCKDB_FILE, sdtm=False)  # the derived datasets, after the SDTM tables
        release_memory()
        _write_submission(a, tmp)  # XPT, Dataset-JSON, define.xml, tlf/*.rtf (issue 14)
        release_memory()
        if on_stage:
            on_stage("render report")
        from mmtrial.report.render import write_report

        write_report(a, tmp, pdf=pdf, run_date=run_date, pdf_engine=pdf_engine, pdf_content=pdf_content)
        finish_dir(tmp, out_path, kind="analysis", status="complete", study=study_path)
    except (StudyInputError, UsageError):
        raise
    except Exception as exc:  # a bug: leave the failure, not an old report, in out_dir
        log = _record_failure(tmp, out_path, exc, study_path) if tmp.exists() else None
        if log is not None:
            exc.mmtrial_log = log  # type: ignore[attr-defined]
            exc.add_note(f"mmtrial wrote this traceback to {log}")
        raise
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return AnalysisOutput(analysis=a, out_dir=out_user, report_html=out_user / "report.html",
                          report_pdf=(out_user / "report.pdf") if pdf else None,
                          results_json=out_user / "results.json")
