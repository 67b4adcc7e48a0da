"""Benchmark: CPU of the ``--pdf`` extra on the demo (issue 15), Chromium and (optionally) WeasyPrint.

Simulates the demo (n = 123, seed 7), analyses it in this process, renders the two print forms
(``render_html(for_pdf=True, pdf_content="body")``, the default, and ``"full"``), then measures
in alternating runs (the machine is shared: compare within one run, never across runs), for
each Chromium executable installed (the headless shell ``chromium-headless-shell``, which
:func:`mmtrial.report.pdf.find_chromium` prefers, and the browser ``chromium``):

* ``floor``: a one-page HTML printed with mmtrial's command (start-up and shut-down, what any
  print costs);
* ``body``: the demo's default print form printed by :func:`mmtrial.report.pdf.render_pdf_chromium`;
* ``full``: the print form with the listings and the method-settings appendix
  (``--pdf-content full``).

With ``--weasyprint``: :func:`mmtrial.report.pdf.render_pdf` once per print form. With
``--end-to-end``: ``mmtrial analyze`` of the demo as a child process without ``--pdf`` (the
floor), with ``--pdf`` (the default engine, WeasyPrint, and default content) and with ``--pdf
--pdf-engine chromium``, alternating, ``--repeat`` times each; prints each variant's ratio to the
floor and its extra CPU. ``--no-chromium`` leaves Chromium out (prints and end to end).

CPU is process plus children (``resource.getrusage``). Chromium's helper processes (zygote,
renderer, GPU, utility) are not all reaped by the browser process, so their CPU is lost to a
plain ``RUSAGE_CHILDREN`` count (it then shows about 1.7 s for the demo instead of 7 s): this
script makes itself a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``) and reaps every
orphaned helper, so all of Chromium's CPU is counted. Prints each run, the medians, and the
ratio of each to the floor of the same executable.

    .venv/bin/python benchmarks/bench_pdf.py [--repeat 3] [--weasyprint] [--end-to-end] [--no-chromium]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
EXECUTABLES = ("chromium-headless-shell", "chromium")  # each one found on PATH is measured


def _cpu_self() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _cpu_children() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _reap_orphans() -> None:
    """Wait for every child left (Chromium helpers re-parented to this subreaper)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _measure(fn) -> float:
    c0 = _cpu_children()
    fn()
    _reap_orphans()
    return _cpu_children() - c0


def _pages(pdf: Path) -> int:
    with contextlib.suppress(ImportError):
        import pypdf

        return len(pypdf.PdfReader(str(pdf)).pages)
    return -1


def _end_to_end(study: Path, tmp: Path, repeat: int, chromium: bool) -> None:
    """``mmtrial analyze`` of the demo without ``--pdf`` (the floor), with ``--pdf`` (the default
    engine, WeasyPrint, default content) and, when ``chromium``, with ``--pdf --pdf-engine
    chromium``; alternating, ``repeat`` rounds. Prints each run, the medians, each variant's
    ratio to the floor and its extra CPU over the floor (issue 15: < 5 s)."""
    cmd = [sys.executable, "-m", "mmtrial.cli", "analyze", str(study), "--quiet"]
    variants = {"analyze": [], "analyze --pdf": ["--pdf"]}
    if chromium:
        variants["analyze --pdf --pdf-engine chromium"] = ["--pdf", "--pdf-engine", "chromium"]
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeat):
        for name, extra in variants.items():
            out = tmp / ("e2e-" + "-".join(x.strip("-") for x in extra) if extra else "e2e")
            dt = _measure(lambda out=out, extra=extra: subprocess.run(
                [*cmd, "--out", str(out), *extra], check=True, stdout=subprocess.DEVNULL))
            times[name].append(dt)
            pages = f"  {_pages(out / 'report.pdf')} pages" if extra else ""
            print(f"run {r + 1} {name:36s} {dt:6.2f} s CPU{pages} (load average {os.getloadavg()[0]:.1f})",
                  flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["analyze"]
    for k, v in med.items():
        print(f"median {k:36s} {v:6.2f} s CPU  ratio to floor (analyze) {v / floor:5.2f}")
    for k in variants:
        if k != "analyze":
            pairs = [b - a for a, b in zip(times["analyze"], times[k], strict=True)]
            print(f"end to end --pdf extra, {k[len('analyze '):]}: {med[k] - floor:.2f} s CPU (medians; "
                  f"per round {', '.join(f'{x:+.2f}' for x in pairs)}; issue 15 target: < 5 s)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--weasyprint", action="store_true", help="also time WeasyPrint once per print form (slow)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="also time mmtrial analyze without --pdf, with --pdf (WeasyPrint) and with --pdf-engine chromium")
    ap.add_argument("--no-chromium", action="store_true",
                    help="skip every Chromium measurement (prints and end to end): WeasyPrint only")
    args = ap.parse_args()
    if not sys.platform.startswith("linux"):
        print("bench_pdf needs Linux (child subreaper for Chromium's helper processes)")
        return 2
    import mmtrial.report.pdf as pdf
    from mmtrial.pipeline import analyze
    from mmtrial.report.render import render_html

    with tempfile.TemporaryDirectory(prefix="bench-pdf-") as tmp_s:
        tmp = Path(tmp_s)
        subprocess.run([sys.executable, "-m", "mmtrial.cli", "simulate", "--n", "123", "--seed", "7", "--out",
                        str(tmp / "study"), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        a = analyze(tmp / "study", tmp / "out", run_date="2026-12-05T00:00:00Z").analysis
        with contextlib.suppress(ChildProcessError):  # anything analyze left finished: reap it now
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        forms: dict[str, str] = {}
        t_html: dict[str, float] = {}
        for content in ("body", "full"):
            t0 = _cpu_self()
            forms[content] = render_html(a, run_date="2026-12-05T00:00:00Z", for_pdf=True, pdf_content=content)
            t_html[content] = _cpu_self() - t0
            print(f"print form {content}: {len(forms[content]) / 1e6:.2f} MB HTML, render_html {t_html[content]:.2f} s CPU")
        one = "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>One page.</p></body></html>"
        exes = {name: path for name in EXECUTABLES if (path := shutil.which(name))}
        if args.no_chromium:
            exes = {}
        elif not exes:
            exes = {"chromium": pdf.find_chromium()}
        if exes:
            print(f"preferred by mmtrial: {pdf.find_chromium()}")
        original = pdf.find_chromium
        docs = {"floor": one, **forms}
        times: dict[tuple[str, str], list[float]] = {}
        try:
            for r in range(args.repeat):
                for exe_name, exe in exes.items():
                    pdf.find_chromium = lambda exe=exe: exe
                    for name, doc in docs.items():
                        out = tmp / f"{exe_name}-{name}.pdf"
                        dt = _measure(lambda doc=doc, out=out: pdf.render_pdf_chromium(doc, out))
                        times.setdefault((exe_name, name), []).append(dt)
                        raw = out.read_bytes()
                        print(f"run {r + 1} {exe_name:24s} {name:6s} {dt:6.2f} s CPU  {len(raw) / 1e6:5.2f} MB  "
                              f"{_pages(out)} pages  tagged {b'/StructTreeRoot' in raw}  bookmarks "
                              f"{b'/Outlines' in raw}  (load average {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            pdf.find_chromium = original
        for exe_name in exes:
            floor = statistics.median(times[(exe_name, "floor")])
            for name in docs:
                med = statistics.median(times[(exe_name, name)])
                print(f"median {exe_name:24s} {name:6s} {med:6.2f} s CPU  ratio to floor {med / floor:5.2f}")
            extra = t_html["body"] + statistics.median(times[(exe_name, "body")])
            print(f"--pdf extra with {exe_name} (body print form + print): {extra:.2f} s CPU (issue 15 target: < 5 s)")
        if args.weasyprint:
            for content, doc in forms.items():
                t0 = _cpu_self()
                pdf.render_pdf(doc, tmp / f"weasyprint-{content}.pdf")
                t_wp = _cpu_self() - t0
                print(f"weasyprint {content:4s} {t_wp:6.2f} s CPU  {_pages(tmp / f'weasyprint-{content}.pdf')} pages")
        if args.end_to_end:
            _end_to_end(tmp / "study", tmp, args.repeat, chromium=not args.no_chromium)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
