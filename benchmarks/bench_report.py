"""Benchmark: render a STORM-sized report (122 subjects, ~15 tables, ~8 figures) to HTML and PDF.

Target (issue 7): the 122-subject demo report renders in < 10 s end to end from the CLI. This
script times the report stage alone on a crafted analysis of that size: building the matplotlib
figures (SVG), ``render_html``, ``write_report`` (HTML, atomic) and the PDF. It prints seconds,
subjects/second and peak memory (tracemalloc and the process's max RSS).

    .venv/bin/python benchmarks/bench_report.py [--subjects 122] [--pdf] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmtrial.context import Analysis, Study
from mmtrial.figures.svg import figure_to_svg
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Figure, Section, Table, Text
from mmtrial.report.render import render_html, write_report
from mmtrial.tables.format import fmt_n_pct

CATS = np.array(["sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"])
P_CATS = np.array([2, 0, 6, 24, 16, 48, 20, 6]) / 122


def _km_figure(time_m: np.ndarray, event: np.ndarray, title: str) -> Figure:
    order = np.argsort(time_m, kind="mergesort")
    t, e = time_m[order], event[order]
    at_risk = t.size - np.arange(t.size)
    surv = np.cumprod(np.where(e == 1, 1 - 1 / at_risk, 1.0))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 4.5), gridspec_kw={"height_ratios": [4, 1]})
    ax.step(np.r_[0, t], np.r_[1, surv], where="post")
    ax.plot(t[e == 0], surv[e == 0], "|", ms=6)
    ax.set_ylabel("Probability")
    ax.set_title(title)
    grid = np.arange(0, np.ceil(t.max()) + 1, 3)
    n_risk = (t[None, :] >= grid[:, None]).sum(axis=1)
    ax2.axis("off")
    for g, n in zip(grid, n_risk, strict=True):
        ax2.text(g, 0.5, str(n), ha="center")
    alt = (
        f"Kaplan-Meier curve of {title} with censoring marks and the number at risk every 3 months."
    )
    return Figure(
        id=title.lower().replace(" ", "-"), title=title, alt=alt, svg=figure_to_svg(fig, alt)
    )


def _bar_figure(values: np.ndarray, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    v = np.sort(values)[::-1]
    ax.bar(np.arange(v.size), v, color="#4477aa")
    for y in (-90, -50, -25, 25):
        ax.axhline(y, ls="--", lw=0.7, color="grey")
    alt = f"{title}: one bar per subject, sorted."
    return Figure(
        id=title.lower().replace(" ", "-"), title=title, alt=alt, svg=figure_to_svg(fig, alt)
    )


def build_analysis(n: int, seed: int = 20190822) -> tuple[Analysis, float]:
    """A crafted analysis of ``n`` subjects; returns it and the seconds spent on figures."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"SIM-{i // 100 + 1:02d}-{i:04d}" for i in range(n)])
    bor = rng.choice(CATS, size=n, p=P_CATS)
    start = pd.Timestamp("2019-01-07") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    adsl = pd.DataFrame(
        {
            "USUBJID": ids,
            "SITEID": [s[4:6] for s in ids],
            "AGE": rng.integers(40, 86, n),
            "SEX": rng.choice(["F", "M"], n),
            "SAFFL": "Y",
            "EFFFL": "Y",
            "NLINES": rng.integers(3, 12, n),
            "TCRFL": "Y",
            "PENTAFL": rng.choice(["Y", "N"], n, p=[0.68, 0.32]),
            "TRTSDT": start,
            "TRTEDT": start + pd.to_timedelta(rng.integers(7, 400, n), unit="D"),
            "BOR": bor,
            "BORDT": start + pd.to_timedelta(rng.integers(28, 200, n), unit="D"),
        }
    )
    ex = pd.DataFrame(
        {
            "USUBJID": np.r_[ids, ids[: n // 2]],
            "EXTRT": "SELINEXOR",
            "EXDOSE": np.r_[np.full(n, 80.0), np.full(n // 2, 100.0)],
            "EXDOSFRQ": np.r_[np.full(n, "BIW"), np.full(n // 2, "QW")],
            "EXSTDT": np.r_[start, start[: n // 2] + pd.Timedelta(days=28)],
        }
    )
    blocks_eff, blocks_safe, blocks_other = [], [], []
    # efficacy: BOR table with traceability, plus subgroup tables
    rows, cells = [], {}
    for r, c in enumerate(CATS):
        m = bor == c
        rows.append((c, fmt_n_pct(int(m.sum()), n)))
        cells[(r, "n (%)")] = ids[m].tolist()
    blocks_eff.append(
        Table(
            id="bor",
            title="Best overall response",
            data=pd.DataFrame(rows, columns=["Response", "n (%)"]),
            stub="Response",
            cell_subjects=cells,
            population=f"mITT (N = {n})",
            source="ADSL, ADRS",
        )
    )
    for k in range(4):
        sub = rng.random(n) < 0.5
        rows = [
            (
                c,
                fmt_n_pct(int((bor[sub] == c).sum()), int(sub.sum())),
                fmt_n_pct(int((bor[~sub] == c).sum()), int((~sub).sum())),
            )
            for c in CATS
        ]
        blocks_eff.append(
            Table(
                id=f"bor-sub{k}",
                title=f"Best overall response by subgroup {k + 1}",
                data=pd.DataFrame(rows, columns=["Response", "Yes", "No"]),
                stub="Response",
            )
        )
    # safety: AE tables by SOC/PT with traceability (60 terms x 3 grade columns)
    terms = [f"TERM {i:02d}" for i in range(60)]
    socs = [f"SOC {i // 6:02d}" for i in range(60)]
    has = rng.random((n, 60)) < rng.uniform(0.02, 0.6, 60)
    grade = rng.integers(1, 5, (n, 60))
    for k in range(6):
        rows, cells = [], {}
        for j in range(60):
            any_ = has[:, j]
            g3 = any_ & (grade[:, j] >= 3)
            g4 = any_ & (grade[:, j] == 4)
            rows.append(
                (
                    terms[j],
                    fmt_n_pct(int(any_.sum()), n),
                    fmt_n_pct(int(g3.sum()), n),
                    fmt_n_pct(int(g4.sum()), n),
                )
            )
            cells[(j, "Any grade")] = ids[any_].tolist()
            cells[(j, "Grade >=3")] = ids[g3].tolist()
            cells[(j, "Grade 4")] = ids[g4].tolist()
        blocks_safe.append(
            Table(
                id=f"ae-{k}",
                title=f"Adverse events table {k + 1}",
                data=pd.DataFrame(
                    rows, columns=["Preferred term", "Any grade", "Grade >=3", "Grade 4"]
                ),
                stub="Preferred term",
                groups=socs,
                cell_subjects=cells,
                population=f"Safety (N = {n})",
                source="ADAE",
            )
        )
    for k in range(4):
        df = pd.DataFrame(
            {
                "Characteristic": [f"Row {i}" for i in range(12)],
                "Value": [f"{v:.1f}" for v in rng.normal(60, 10, 12)],
            }
        )
        blocks_other.append(
            Table(id=f"base-{k}", title=f"Baseline table {k + 1}", data=df, stub="Characteristic")
        )
    t0 = time.perf_counter()
    figs = [
        _km_figure(rng.exponential(5.0, n), (rng.random(n) < 0.8).astype(int), "PFS"),
        _km_figure(rng.exponential(10.0, n), (rng.random(n) < 0.7).astype(int), "OS"),
        _km_figure(rng.exponential(5.0, 32), (rng.random(32) < 0.7).astype(int), "DOR"),
        _km_figure(rng.exponential(12.0, n), (rng.random(n) < 0.6).astype(int), "OS responders"),
        _km_figure(rng.exponential(6.0, n), (rng.random(n) < 0.6).astype(int), "OS non-responders"),
        _bar_figure(rng.uniform(-100, 100, n), "Waterfall of best M-protein change"),
        _bar_figure(rng.uniform(-100, 100, n), "Waterfall of best FLC change"),
        _bar_figure(rng.uniform(0, 60, n) - 30, "Swimmer-like bars"),
    ]
    fig_s = time.perf_counter() - t0
    sections = [
        Section(id="baseline", title="Baseline characteristics", blocks=blocks_other, order=20),
        Section(
            id="efficacy-response",
            title="Efficacy: response",
            blocks=[Text("Responses."), *blocks_eff, *figs[5:]],
            order=40,
        ),
        Section(id="efficacy-tte", title="Efficacy: time to event", blocks=figs[:5], order=45),
        Section(id="safety", title="Safety", blocks=blocks_safe, order=60),
    ]
    a = Analysis(
        study=Study(
            domains={"ex": ex}, path=Path("/data/bench"), synthetic=True, checksum="sha256:bench"
        ),
        protocol=Protocol.load(),
        adam={"adsl": adsl},
        sections=sections,
        results={
            "populations": {"safety": n, "efficacy": n},
            "response": {"counts": {c: int((bor == c).sum()) for c in CATS}},
        },
    )
    return a, fig_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=122)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pdf", action="store_true", help="also time the PDF (WeasyPrint)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    a, fig_s = build_analysis(args.subjects)
    build_s = time.perf_counter() - t0
    n_tables = sum(isinstance(b, Table) for s in a.sections for b in s.blocks)
    n_figs = sum(isinstance(b, Figure) for s in a.sections for b in s.blocks)
    render_times, write_times = [], []
    html = ""
    pdf_s = None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(
            args.repeat
        ):  # timings without tracemalloc (it slows allocation several-fold)
            t = time.perf_counter()
            html = render_html(a, run_date="bench")
            render_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            write_report(a, Path(tmp), run_date="bench")
            write_times.append(time.perf_counter() - t)
        if args.pdf:
            from mmtrial.report.pdf import render_pdf

            t = time.perf_counter()
            render_pdf(html, Path(tmp) / "report.pdf")
            pdf_s = time.perf_counter() - t
    tracemalloc.start()  # one more render, for its peak memory
    render_html(a, run_date="bench")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median(render_times)
    print(
        f"subjects={args.subjects} tables={n_tables} figures={n_figs} html_bytes={len(html.encode()):,}"
    )
    print(
        f"build analysis (incl. figures) {build_s:.2f} s; matplotlib figures to SVG {fig_s:.2f} s"
    )
    print(
        f"render_html median {med:.3f} s over {args.repeat} ({args.subjects / med:,.0f} subjects/s)"
    )
    print(f"write_report (render + atomic write) median {statistics.median(write_times):.3f} s")
    if pdf_s is not None:
        print(f"render_pdf {pdf_s:.2f} s")
    total = fig_s + med + (pdf_s or 0.0)
    print(
        f"report stage end to end (figures + HTML{' + PDF' if pdf_s else ''}): {total:.2f} s (target < 10 s)"
    )
    print(
        f"render_html peak traced memory {peak / 2**20:.1f} MiB; process max RSS {rss_mb:.0f} MiB"
    )


if __name__ == "__main__":
    main()
