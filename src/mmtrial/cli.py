"""The ``mmtrial`` command line: thin; parses options, calls the pipeline, shows progress.

Exit codes (data contract v2; docs/cli.md): 0 done, 1 input errors (``issues.csv``, no report),
2 usage errors (one line: bad option, protocol file, output folder, study path), 3 an internal
error (a bug: a short message and the path of a log with the traceback). Every command is
wrapped in :func:`reports_errors` so that no user mistake ends in a Python traceback; a new
command should be too (``@app.command()`` then ``@reports_errors``).
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mmtrial.cli_protocol import app as protocol_app
from mmtrial.errors import EXIT_BUG, EXIT_INPUT, EXIT_USAGE, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Analyse single-arm multiple-myeloma trials from SDTM to a CSR-style report.")
console = Console(stderr=True)
app.add_typer(protocol_app, name="protocol")


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"


class Profile(StrEnum):
    sas = "sas"
    r = "r"


class Only(StrEnum):
    biomarker = "biomarker"


class PdfEngine(StrEnum):
    weasyprint = "weasyprint"
    chromium = "chromium"


class PdfContent(StrEnum):
    body = "body"
    full = "full"


@contextmanager
def _progress(quiet: bool):
    """A rich progress display (silent with --quiet); yields (on_stage, on_fraction)."""
    if quiet:
        yield (lambda stage: None), (lambda stage, frac: None)
        return
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as prog:
        task = prog.add_task("starting", total=None)

        def on_stage(stage: str) -> None:
            prog.update(task, description=stage, total=None)

        def on_fraction(stage: str, frac: float) -> None:
            prog.update(task, description=stage, total=1.0, completed=frac)

        yield on_stage, on_fraction


def _problem_text(problem: str, hint: str | None) -> str:
    """The problem and its hint as two sentences ("unit unknown ... GI/L. Fix LBSTRESU ...")."""
    problem = (problem or "").rstrip()
    if not hint:
        return problem
    if problem and problem[-1] not in ".;:!?":
        problem += "."
    return f"{problem} {hint.strip()}".strip()


def _show_issues(issues, limit: int = 12, csv_path: Path | None = None) -> None:
    """Issues in bulk: one line per kind (rule, domain, variable) with its count, then examples;
    errors first. At most ``limit`` kinds; every issue is in issues.csv."""
    from mmtrial.sdtm.issues import describe_example, group_issues, summarise_groups

    groups = group_issues(issues)
    if not groups:
        return
    console.print(f"[bold]Input check: {summarise_groups(groups)}", highlight=False)
    for g in groups[:limit]:
        colour = "red" if g.severity == "error" else "yellow"
        rule = f" ({escape(g.rule)})" if g.rule else ""
        console.print(f"[{colour}]{g.severity:<7}[/] {escape(g.domain)} {escape(g.variable)}{rule}: "
                      f"{g.count:,} \u00d7 {escape(_problem_text(g.problem, g.hint))}",
                      soft_wrap=True, highlight=False)
        shown = [describe_example(e) for e in g.examples[:2]]
        shown = [e for e in shown if e]
        if shown:
            console.print(f"        e.g. {escape('; '.join(shown))}", soft_wrap=True, highlight=False)
    rest = groups[limit:]
    where = f" in {escape(str(csv_path))}" if csv_path is not None else " in issues.csv"
    if rest:
        console.print(f"... {len(rest)} more kind(s), {sum(g.count for g in rest):,} issue(s); "
                      f"all are{where}", soft_wrap=True, highlight=False)


def _usage_error(message: str) -> None:
    console.print(f"[red]Error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def _write_bug_log(exc: BaseException) -> Path | None:
    """The traceback of an unexpected error, in a log file in the temporary folder."""
    from mmtrial import __version__

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(tempfile.gettempdir()) / f"mmtrial-error-{stamp}-{os.getpid()}.log"
    try:
        path.write_text(f"mmtrial {__version__} failed on an internal error (a bug).\n"
                        f"command: {' '.join(sys.argv)}\n\n"
                        + "".join(traceback.format_exception(exc)), "utf-8")
    except OSError:
        return None
    return path


#: Exceptions that are the CLI framework's own control flow (exit, abort, bad parameter). typer
#: ships its own copy of click (typer >= 0.20 does not depend on the click package).
_CLI_CONTROL: tuple[type[BaseException], ...] = (
    typer.Exit, typer.Abort, next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))


def reports_errors(command):
    """Turn a user's mistake into its exit code and one clear message, never a traceback:
    :class:`UsageError` exits 2, :class:`StudyInputError` exits 1 (issues shown grouped), any
    other exception is a bug: a short message naming the log with the traceback, exit 3
    (``MMTRIAL_DEBUG=1`` raises it instead)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from mmtrial.sdtm.issues import StudyInputError

        try:
            return command(*args, **kwargs)
        except _CLI_CONTROL:
            raise
        except UsageError as exc:
            _usage_error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except StudyInputError as exc:
            _show_issues(exc.issues)
            console.print("[red]Input errors: nothing analysed.", highlight=False)
            raise typer.Exit(EXIT_INPUT) from None
        except Exception as exc:
            if os.environ.get("MMTRIAL_DEBUG"):
                raise
            log = getattr(exc, "mmtrial_log", None) or _write_bug_log(exc)
            where = f" with the log {log}" if log else ""
            console.print(f"[red]mmtrial stopped on an internal error:[/] {escape(type(exc).__name__)}: "
                          f"{escape(str(exc).splitlines()[0] if str(exc) else '')}", soft_wrap=True,
                          highlight=False)
            console.print(f"This is a bug in mmtrial, not a mistake of yours. Please report it{where}.",
                          soft_wrap=True, highlight=False)
            raise typer.Exit(EXIT_BUG) from None

    return wrapper


def _protocol_path(value: str | None) -> Path | None:
    """A protocol file, or the bundled protocol of that name (``stratus`` -> protocol/stratus.toml)."""
    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        return p
    from mmtrial.protocol.model import bundled

    try:
        return bundled(value)
    except KeyError as exc:
        console.print(f"--protocol {value}: no such file, and {exc.args[0]}", style="red", markup=False,
                      soft_wrap=True)
        raise typer.Exit(2) from None


PROTOCOL_HELP = "protocol TOML file or bundled protocol name (default: bundled STORM)"


@app.command()
@reports_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", help="study folder to write (new, empty, or an earlier simulate's)")],
    n: Annotated[int | None, typer.Option("--n", min=1, help="number of subjects (default: the protocol's [simulation] n, else 123)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed (default: the protocol's, else 7)")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help=PROTOCOL_HELP)] = None,
    format: Annotated[Format, typer.Option("--format", help="file format of the domains")] = Format.csv,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display")] = False,
) -> None:
    """Write a synthetic study (SDTM-style domains) simulated under a protocol's regimen."""
    from pydantic import ValidationError

    from mmtrial._io import check_output_folder
    from mmtrial.errors import UsageError
    from mmtrial.simulate import simulate_study, write_study
    from mmtrial.simulate.study import load_simulation

    check_output_folder(out, kind="study")  # before any work
    t0 = time.perf_counter()
    path = _protocol_path(protocol)
    try:
        proto, cfg, _ = load_simulation(path)
    except (UsageError, ValidationError, OSError) as exc:
        msg = str(exc).splitlines()[0]
        msg = msg if isinstance(exc, UsageError) else f"{path or 'protocol'}: {msg}"
        console.print(msg, style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    n = n if n is not None else (cfg.n or 123)
    with _progress(quiet) as (_, on_fraction):
        sim = simulate_study(n=n, seed=seed, progress=on_fraction, protocol=proto)
        write_study(sim, out, fmt=format.value)
    if not quiet:
        rows = sum(len(df) for df in sim.domains.values())
        console.print(f"[green]Simulated {n} subjects under {proto.study.id} ({rows:,} rows, synthetic data) "
                      f"in {time.perf_counter() - t0:.1f} s -> {escape(str(out))}", soft_wrap=True)
    typer.echo(str(out))


@app.command()
@reports_errors
def check(
    study_dir: Annotated[Path, typer.Argument(help="study folder (SDTM-style domains)")],
    out: Annotated[Path | None, typer.Option("--out", help="write the issues table here (a new CSV file, or one mmtrial wrote)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Check a study folder against the data contract; exit 1 when there are errors."""
    from mmtrial._io import check_output_file
    from mmtrial.pipeline import check_study_folder
    from mmtrial.sdtm import load_study
    from mmtrial.sdtm.issues import is_issues_csv, write_issues_csv

    study = check_study_folder(study_dir)
    target = None if out is None else check_output_file(out, is_mine=is_issues_csv, study=study)
    with _progress(quiet) as (on_stage, _):
        _, issues = load_study(study, on_stage=on_stage)
    if target is not None:
        write_issues_csv(issues, target)
    _show_issues(issues, csv_path=out)
    n_err = sum(i.severity == "error" for i in issues)
    if not quiet:
        console.print(f"{n_err} error(s), {len(issues) - n_err} warning(s)")
    raise typer.Exit(EXIT_INPUT if n_err else 0)


def _parse_cutoff(value: str | None):
    """``--cutoff`` as a date; a malformed one is a usage error (exit 2)."""
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--cutoff must be a date YYYY-MM-DD; got {value!r}") from None


def freeze_imported_objects() -> None:
    """Move every object alive now (the modules the command imported, their functions and
    constants) to the garbage collector's permanent generation (:func:`gc.freeze`), so the
    analysis's collections do not scan them again and again: demo ``mmtrial analyze`` 4.56 ->
    4.09 s of CPU (3 alternating pairs, quiet machine; docs/design.md "seventh pass"). Only the
    command's own process does this: a Python caller of :func:`mmtrial.analyze` keeps its
    collector as it is. Frozen objects are still freed when their last reference goes; only
    reference cycles among them would stay, and import-time objects live as long as the
    process anyway."""
    gc.freeze()


@app.command()
@reports_errors
def analyze(
    study_dir: Annotated[Path, typer.Argument(help="study folder (SDTM-style domains)")],
    out: Annotated[Path, typer.Option("--out", help="output folder: new, empty, or an earlier analyze's (replaced atomically)")],
    protocol: Annotated[Path | None, typer.Option("--protocol", help="protocol TOML (default: bundled STORM)")] = None,
    profile: Annotated[Profile | None, typer.Option("--profile", help="method profile: sas or r (default: protocol's)")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="also write report.pdf (needs mmtrial[pdf])")] = False,
    only: Annotated[Only | None, typer.Option("--only", help="run only this analysis (after the ADSL and response steps it needs)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display or summary")] = False,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="data cut-off YYYY-MM-DD: later records are not used (default: protocol's [study] data_cutoff)")] = None,
    pdf_engine: Annotated[PdfEngine, typer.Option("--pdf-engine", help="PDF renderer for --pdf: weasyprint (default) or chromium (headless, faster; docs/report.md)")] = PdfEngine.weasyprint,
    pdf_content: Annotated[PdfContent, typer.Option("--pdf-content", help="what --pdf prints: body (default: sections, tables, figures, footnotes, input issues) or full (also the subject listings and the method-settings appendix, which report.html always has; docs/report.md)")] = PdfContent.body,
) -> None:
    """Analyse a study: input checks, ADaM datasets, statistics, results.json and report.html."""
    from mmtrial.pipeline import STEPS
    from mmtrial.pipeline import analyze as run_analysis
    from mmtrial.sdtm import StudyInputError

    options = {"profile": profile.value} if profile else {}
    cutoff_date = _parse_cutoff(cutoff)
    steps = None
    if only is not None:
        steps = tuple(s for s in STEPS if s in ("adsl", "response", only.value))
    t0 = time.perf_counter()
    if pdf:  # the renderer is loaded (and checked) before any work, so its modules are frozen too
        from mmtrial.pipeline import require_pdf_renderer

        require_pdf_renderer(pdf_engine.value)
    freeze_imported_objects()
    try:
        with _progress(quiet) as (on_stage, _):
            result = run_analysis(study_dir, out, protocol=protocol, options=options, steps=steps,
                                  pdf=pdf, on_stage=on_stage, cutoff=cutoff_date,
                                  pdf_engine=pdf_engine.value, pdf_content=pdf_content.value)
    except StudyInputError as exc:
        _show_issues(exc.issues, csv_path=out / "issues.csv")
        console.print(f"[red]Input errors: no report written. All issues: {escape(str(out / 'issues.csv'))}",
                      soft_wrap=True)
        raise typer.Exit(EXIT_INPUT) from None
    a = result.analysis
    if not quiet:
        _show_issues(a.issues, limit=10, csv_path=out / "issues.csv")
        pops = a.results.get("populations", {})
        label = " (synthetic data)" if a.study.synthetic else ""
        console.print(f"[green]Analysed {pops.get('enrolled')} subjects{label}: safety {pops.get('safety')}, "
                      f"efficacy {pops.get('efficacy')}; {len(a.sections)} report sections in "
                      f"{time.perf_counter() - t0:.1f} s", soft_wrap=True)
    if result.report_pdf is not None and not quiet:
        console.print(f"PDF: {result.report_pdf}", soft_wrap=True, highlight=False)
    typer.echo(str(result.report_html))


@app.command()
@reports_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for the synthetic study and its analysis")] = Path("demo"),
    n: Annotated[int | None, typer.Option("--n", min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help=PROTOCOL_HELP)] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="also write output/report.pdf (as analyze --pdf)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
    pdf_engine: Annotated[PdfEngine, typer.Option("--pdf-engine", help="PDF renderer for --pdf, as analyze's")] = PdfEngine.weasyprint,
    pdf_content: Annotated[PdfContent, typer.Option("--pdf-content", help="what --pdf prints, as analyze's")] = PdfContent.body,
) -> None:
    """Simulate a synthetic study under a protocol (default: STORM) and analyse it (the README's first command).

    OUT holds ``study/`` and ``output/`` and follows the output-folder rules (docs/cli.md)."""
    from mmtrial._io import check_output_folder, write_marker
    from mmtrial.pipeline import require_pdf_renderer

    root = check_output_folder(out, kind="demo")  # every refusal before any work
    check_output_folder(root / "study", kind="study")
    check_output_folder(root / "output", kind="analysis", study=root / "study")
    if pdf:
        require_pdf_renderer(pdf_engine.value)
    root.mkdir(parents=True, exist_ok=True)
    write_marker(root, kind="demo", status="complete", folders=("study", "output"))
    simulate(out=out / "study", n=n, seed=seed, protocol=protocol, format=Format.csv, quiet=quiet)
    analyze(out / "study", out=out / "output", protocol=_protocol_path(protocol), profile=None, pdf=pdf,
            only=None, quiet=quiet, pdf_engine=pdf_engine, pdf_content=pdf_content)


class CohortFormat(StrEnum):
    sdtm = "sdtm"
    omop = "omop"


@app.command("simulate-cohort")
@reports_errors
def simulate_cohort_cmd(
    out: Annotated[Path, typer.Option("--out", help="cohort folder to write (new, empty, or an earlier simulate-cohort's)")],
    n: Annotated[int, typer.Option("--n", min=1, help="number of patients")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 1,
    format: Annotated[CohortFormat, typer.Option("--format", help="sdtm: CSV domains; omop: OMOP CDM v5.4 in cdm.duckdb")] = CohortFormat.sdtm,
    quiet: Annotated[bool, typer.Option("--quiet", help="no summary")] = False,
) -> None:
    """Write a synthetic real-world myeloma cohort (long treatment histories, known treatment
    effect and confounding; docs/external.md) as SDTM-style domains or an OMOP CDM database."""
    from mmtrial._io import check_output_folder
    from mmtrial.simulate.cohort import simulate_cohort, write_cohort

    check_output_folder(out, kind="cohort")  # before any work
    t0 = time.perf_counter()
    sim = simulate_cohort(n=n, seed=seed)
    write_cohort(sim, out, fmt=format.value)
    if not quiet:
        nl = int(sim.truth_lines.shape[0])
        console.print(f"[green]Simulated a cohort of {n} patients ({nl:,} lines of therapy, synthetic data, "
                      f"{format.value}) in {time.perf_counter() - t0:.1f} s -> {escape(str(out))}", soft_wrap=True)
    typer.echo(str(out))


@app.command("external")
@reports_errors
def external_cmd(
    study_dir: Annotated[Path, typer.Argument(help="study folder of the single-arm trial (SDTM-style domains)")],
    cohort: Annotated[str, typer.Option("--cohort", help="external cohort: SDTM-style folder, OMOP CDM DuckDB file, or postgresql:// connection string")],
    out: Annotated[Path, typer.Option("--out", help="output folder: new, empty, or an earlier run's")],
    protocol: Annotated[Path | None, typer.Option("--protocol", help="protocol TOML (default: bundled STORM); [external] and [eligibility] sections")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display or summary")] = False,
) -> None:
    """Compare the trial with an external control emulated from a real-world cohort (docs/external.md)."""
    from mmtrial.external.run import run_external

    with _progress(quiet) as (on_stage, _):
        res = run_external(study_dir, cohort, out, protocol=protocol, on_stage=on_stage)
    r = res.results
    if not quiet:
        label = " (synthetic data)" if r.get("synthetic") else ""
        hr = f"HR {r['hr']:.2f} ({r['hr_ci'][0]:.2f}-{r['hr_ci'][1]:.2f})" if r.get("hr") is not None else "HR not computed"
        console.print(f"[green]External control{label}: trial {r['n']['trial']} vs {r['n']['external_lines']} index "
                      f"line(s) of {r['n']['external_patients']} patient(s); {r.get('primary_endpoint')} {hr}",
                      soft_wrap=True)
    typer.echo(str(res.report_html))


@app.command("maic")
@reports_errors
def maic_cmd(
    study_dir: Annotated[Path, typer.Argument(help="study folder of the single-arm trial (SDTM-style domains)")],
    target: Annotated[str, typer.Option("--target", help="MAIC target TOML, or a bundled target name (mammoth)")],
    out: Annotated[Path, typer.Option("--out", help="output folder: new, empty, or an earlier run's")],
    protocol: Annotated[Path | None, typer.Option("--protocol", help="protocol TOML (default: bundled STORM)")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=0, help="bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display or summary")] = False,
) -> None:
    """Matching-adjusted indirect comparison of the trial with a published cohort (docs/external.md)."""
    from mmtrial.external.run import run_maic

    with _progress(quiet) as (on_stage, _):
        res = run_maic(study_dir, target, out, protocol=protocol, n_boot=n_boot, seed=seed, on_stage=on_stage)
    r = res.results
    if not quiet:
        label = " (synthetic data)" if r.get("synthetic") else ""
        ep = r["primary_endpoint"]
        v = r["endpoints"][ep]
        console.print(f"[green]MAIC{label} vs {r['target']['id']}: ESS {r['ess']['trial']:.1f} of {r['n']['trial']}; "
                      f"{ep} median weighted {v['median_months_weighted']} months vs published "
                      f"{v['published_median_months']}", soft_wrap=True)
    typer.echo(str(res.report_html))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
