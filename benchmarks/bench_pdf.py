"""Benchmark: CPU of the ``--pdf`` extra on the demo (issue 15), Chromium and (optionally) WeasyPrint.

Simulates the demo (n = 123, seed 7), analyses it in this process, then measures in alternating
runs (the machine is shared: compare within one run, never across runs):

* ``render_html(for_pdf=True)``: the print form of the report (Python, this process);
* ``floor``: Chromium printing a one-page HTML with mmtrial's command (start-up and shut-down,
  what any print costs);
* ``mmtrial``: the demo report printed by :func:`mmtrial.report.pdf.render_pdf_chromium`;
* ``bare``: the same print with the switches mmtrial used before issue 15's fourth pass;
* ``untagged``: mmtrial's command plus ``--disable-pdf-tagging`` (what tagging costs);
* with ``--weasyprint``: :func:`mmtrial.report.pdf.render_pdf` once (about a minute).

CPU is process plus children (``resource.getrusage``). Chromium's helper processes (zygote,
renderer, GPU, utility) are not all reaped by the browser process, so their CPU is lost to a
plain ``RUSAGE_CHILDREN`` count (it then shows about 1.7 s for the demo instead of 7 s): this
script makes itself a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``) and reaps every
orphaned helper, so all of Chromium's CPU is counted. Prints each run, the medians, and the
ratio of each to the floor.

    .venv/bin/python benchmarks/bench_pdf.py [--repeat 3] [--weasyprint]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
BARE_FLAGS = ("--disable-gpu", "--no-first-run", "--no-pdf-header-footer")  # before the fourth pass


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--weasyprint", action="store_true", help="also time WeasyPrint once (slow)")
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
        t0 = _cpu_self()
        html = render_html(a, run_date="2026-12-05T00:00:00Z", for_pdf=True)
        t_html = _cpu_self() - t0
        one = "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>One page.</p></body></html>"
        exe = pdf.find_chromium()
        original = pdf.chromium_command

        def print_with(doc: str, flags: tuple[str, ...], out: Path):
            def run():
                pdf.chromium_command = lambda *a, **k: original(*a, flags=flags)
                try:
                    pdf.render_pdf_chromium(doc, out)
                finally:
                    pdf.chromium_command = original
            return run

        variants = {
            "floor": (one, pdf.CHROMIUM_FLAGS),
            "mmtrial": (html, pdf.CHROMIUM_FLAGS),
            "bare": (html, BARE_FLAGS),
            "untagged": (html, (*pdf.CHROMIUM_FLAGS, "--disable-pdf-tagging")),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        print(f"chromium: {exe}; print HTML {len(html) / 1e6:.2f} MB; render_html(for_pdf) {t_html:.2f} s CPU")
        for r in range(args.repeat):
            for name, (doc, flags) in variants.items():
                out = tmp / f"{name}.pdf"
                dt = _measure(print_with(doc, flags, out))
                times[name].append(dt)
                print(f"run {r + 1} {name:9s} {dt:6.2f} s CPU  {out.stat().st_size / 1e6:5.2f} MB  {_pages(out)} pages "
                      f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        floor = statistics.median(times["floor"])
        for name, v in times.items():
            med = statistics.median(v)
            print(f"median {name:9s} {med:6.2f} s CPU  ratio to floor {med / floor:5.2f}")
        extra = t_html + statistics.median(times["mmtrial"])
        print(f"--pdf extra with chromium (print form + print): {extra:.2f} s CPU (issue 15 target: < 5 s)")
        if args.weasyprint:
            t0 = _cpu_self()
            pdf.render_pdf(html, tmp / "weasyprint.pdf")
            t_wp = _cpu_self() - t0
            print(f"weasyprint {t_wp:6.2f} s CPU  {_pages(tmp / 'weasyprint.pdf')} pages  ratio to floor {t_wp / floor:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
