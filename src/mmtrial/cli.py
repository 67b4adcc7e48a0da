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

from mmtrial.cli_protocol import app as protocol_app

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
def simulate(
    out: Annotated[Path, typer.Option("--out", help="study folder to write")],
    n: Annotated[int | None, typer.Option("--n", min=1, help="number of subjects (default: the protocol's [simulation] n, else 123)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed (default: the protocol's, else 7)")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help=PROTOCOL_HELP)] = None,
    format: Annotated[Format, typer.Option("--format", help="file format of the domains")] = Format.csv,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display")] = False,
) -> None:
    """Write a synthetic study (SDTM-style domains) simulated under a protocol's regimen."""
    from pydantic import ValidationError

    from mmtrial.errors import UsageError
    from mmtrial.simulate import simulate_study, write_study
    from mmtrial.simulate.study import load_simulation

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
                      f"in {time.perf_counter() - t0:.1f} s -> {out}", soft_wrap=True)
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


@app.command()
def analyze(
    study_dir: Annotated[Path, typer.Argument(help="study folder (SDTM-style domains)")],
    out: Annotated[Path, typer.Option("--out", help="output folder (replaced atomically)")],
    protocol: Annotated[Path | None, typer.Option("--protocol", help="protocol TOML (default: bundled STORM)")] = None,
    profile: Annotated[Profile | None, typer.Option("--profile", help="method profile: sas or r (default: protocol's)")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="also write report.pdf")] = False,
    only: Annotated[Only | None, typer.Option("--only", help="run only this analysis (after the ADSL and response steps it needs)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display or summary")] = False,
) -> None:
    """Analyse a study: input checks, ADaM datasets, statistics, results.json and report.html."""
    from mmtrial.pipeline import STEPS
    from mmtrial.pipeline import analyze as run_analysis
    from mmtrial.sdtm import StudyInputError

    options = {"profile": profile.value} if profile else {}
    steps = None
    if only is not None:
        steps = tuple(s for s in STEPS if s in ("adsl", "response", only.value))
    t0 = time.perf_counter()
    try:
        with _progress(quiet) as (on_stage, _):
            result = run_analysis(study_dir, out, protocol=protocol, options=options, steps=steps,
                                  pdf=pdf, on_stage=on_stage)
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
    n: Annotated[int | None, typer.Option("--n", min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help=PROTOCOL_HELP)] = None,
    pdf: Annotated[bool, typer.Option("--pdf")] = False,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Simulate a synthetic study under a protocol (default: STORM) and analyse it (the README's first command)."""
    simulate(out=out / "study", n=n, seed=seed, protocol=protocol, format=Format.csv, quiet=quiet)
    analyze(out / "study", out=out / "output", protocol=_protocol_path(protocol), profile=None, pdf=pdf,
            only=None, quiet=quiet)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
