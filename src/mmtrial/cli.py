"""The ``mmtrial`` command line: thin; parses options, calls the pipeline, shows progress."""

from __future__ import annotations

import time
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Analyse single-arm multiple-myeloma trials from SDTM to a CSR-style report.")
console = Console(stderr=True)


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"


class Profile(StrEnum):
    sas = "sas"
    r = "r"


class Only(StrEnum):
    biomarker = "biomarker"


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


def _show_issues(issues, limit: int = 40) -> None:
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity != "error"]
    shown = (errors + warnings)[:limit]
    if not shown:
        return
    t = RichTable(title=f"Input check: {len(errors)} error(s), {len(warnings)} warning(s)", show_lines=False)
    for col in ("severity", "domain", "row", "USUBJID", "variable", "value", "problem"):
        t.add_column(col, overflow="fold")
    for i in shown:
        t.add_row(i.severity, i.domain, "" if i.row is None else str(i.row), i.usubjid or "", i.variable,
                  "" if i.value is None else str(i.value), _problem_text(i.problem, i.hint))
    console.print(t)
    if len(errors) + len(warnings) > limit:
        console.print(f"... {len(errors) + len(warnings) - limit} more in issues.csv")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="study folder to write")],
    n: Annotated[int, typer.Option("--n", min=1, help="number of subjects")] = 123,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 7,
    format: Annotated[Format, typer.Option("--format", help="file format of the domains")] = Format.csv,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display")] = False,
) -> None:
    """Write a synthetic STORM-like study (SDTM-style domains) from mmtrial's simulator."""
    from mmtrial.simulate import simulate_study, write_study

    t0 = time.perf_counter()
    with _progress(quiet) as (_, on_fraction):
        sim = simulate_study(n=n, seed=seed, progress=on_fraction)
        write_study(sim, out, fmt=format.value)
    if not quiet:
        rows = sum(len(df) for df in sim.domains.values())
        console.print(f"[green]Simulated {n} subjects ({rows:,} rows, synthetic data) in "
                      f"{time.perf_counter() - t0:.1f} s -> {out}", soft_wrap=True)
    typer.echo(str(out))


@app.command()
def check(
    study_dir: Annotated[Path, typer.Argument(help="study folder (SDTM-style domains)")],
    out: Annotated[Path | None, typer.Option("--out", help="write the issues table here (CSV)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Check a study folder against the data contract; exit 1 when there are errors."""
    from mmtrial.sdtm import issues_frame, load_study

    with _progress(quiet) as (on_stage, _):
        _, issues = load_study(study_dir, on_stage=on_stage)
    if out is not None:
        issues_frame(issues).to_csv(out, index=False)
    _show_issues(issues)
    n_err = sum(i.severity == "error" for i in issues)
    if not quiet:
        console.print(f"{n_err} error(s), {len(issues) - n_err} warning(s)")
    raise typer.Exit(1 if n_err else 0)


def _parse_cutoff(value: str | None):
    """``--cutoff`` as a date; a malformed one is a usage error (exit 2)."""
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--cutoff must be a date YYYY-MM-DD; got {value!r}") from None


@app.command()
def analyze(
    study_dir: Annotated[Path, typer.Argument(help="study folder (SDTM-style domains)")],
    out: Annotated[Path, typer.Option("--out", help="output folder (replaced atomically)")],
    protocol: Annotated[Path | None, typer.Option("--protocol", help="protocol TOML (default: bundled STORM)")] = None,
    profile: Annotated[Profile | None, typer.Option("--profile", help="method profile: sas or r (default: protocol's)")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="also write report.pdf")] = False,
    only: Annotated[Only | None, typer.Option("--only", help="run only this analysis (after the ADSL and response steps it needs)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display or summary")] = False,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="data cut-off YYYY-MM-DD: later records are not used (default: protocol's [study] data_cutoff)")] = None,
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
    try:
        with _progress(quiet) as (on_stage, _):
            result = run_analysis(study_dir, out, protocol=protocol, options=options, steps=steps,
                                  pdf=pdf, on_stage=on_stage, cutoff=cutoff_date)
    except StudyInputError as exc:
        _show_issues(exc.issues)
        console.print(f"[red]Input errors: no report written. All issues: {out / 'issues.csv'}")
        raise typer.Exit(1) from None
    a = result.analysis
    if not quiet:
        _show_issues(a.issues, limit=10)
        pops = a.results.get("populations", {})
        label = " (synthetic data)" if a.study.synthetic else ""
        console.print(f"[green]Analysed {pops.get('enrolled')} subjects{label}: safety {pops.get('safety')}, "
                      f"efficacy {pops.get('efficacy')}; {len(a.sections)} report sections in "
                      f"{time.perf_counter() - t0:.1f} s", soft_wrap=True)
    if result.report_pdf is not None and not quiet:
        console.print(f"PDF: {result.report_pdf}", soft_wrap=True, highlight=False)
    typer.echo(str(result.report_html))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for the synthetic study and its analysis")] = Path("demo"),
    n: Annotated[int, typer.Option("--n", min=1)] = 123,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    pdf: Annotated[bool, typer.Option("--pdf")] = False,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Simulate the bundled synthetic STORM-like study and analyse it (the README's first command)."""
    simulate(out=out / "study", n=n, seed=seed, format=Format.csv, quiet=quiet)
    analyze(out / "study", out=out / "output", protocol=None, profile=None, pdf=pdf, only=None, quiet=quiet)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
