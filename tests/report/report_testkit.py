"""Helpers for the report tests: a crafted analysis with known counts, and a tiny HTML tree.

Imported by conftest.py (which puts this folder on sys.path) and by the tests.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from mmtrial.context import Analysis, Study
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Figure, Section, Table, Text
from mmtrial.sdtm.issues import InputIssue
from mmtrial.stats.proportion import proportion_ci
from mmtrial.tables.format import fmt_ci, fmt_n_pct

CATEGORIES = ["sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"]
#: BOR of the crafted subjects, in USUBJID order: counts sCR 1, CR 0, VGPR 1, PR 3, MR 2, SD 3, PD 1, NE 1
CRAFTED_BOR = ["PR", "SD", "VGPR", "PD", "PR", "MR", "SD", "sCR", "NE", "MR", "PR", "SD"]


def waterfall_svg(values: list[float], alt: str) -> str:
    import matplotlib.pyplot as plt

    from mmtrial.figures.svg import figure_to_svg

    fig, ax = plt.subplots(figsize=(6, 3))
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    ax.bar(np.arange(v.size), v, color="#4477aa")
    for y in (-25, -50, -90, 25):
        ax.axhline(y, ls="--", lw=0.8, color="grey")
    ax.set_ylabel("Best change in M-protein (%)")
    ax.set_xlabel("Subjects")
    return figure_to_svg(fig, alt)


def make_analysis(*, synthetic: bool = True, study_path: str = "/data/demo-study") -> Analysis:
    """A small analysis whose numbers are known by construction (12 subjects, :data:`CRAFTED_BOR`)."""
    ids = [f"SIM-01-{i:04d}" for i in range(1, len(CRAFTED_BOR) + 1)]
    start = pd.Timestamp("2019-01-07")
    adsl = pd.DataFrame(
        {
            "USUBJID": ids,
            "SITEID": ["01"] * len(ids),
            "AGE": [65, 70, 58, 61, 77, 69, 55, 72, 66, 63, 59, 74],
            "SEX": ["F", "M"] * 6,
            "SAFFL": ["Y"] * len(ids),
            "EFFFL": ["Y"] * len(ids),
            "NLINES": [7, 6, 8, 5, 7, 9, 6, 7, 4, 6, 8, 7],
            "TCRFL": ["Y"] * len(ids),
            "PENTAFL": ["Y", "N"] * 6,
            "TRTSDT": [start + pd.Timedelta(days=7 * i) for i in range(len(ids))],
            "BOR": CRAFTED_BOR,
            "BORDT": [start + pd.Timedelta(days=7 * i + 56) for i in range(len(ids))],
            "RSPDT": [
                start + pd.Timedelta(days=7 * i + 28)
                if b in ("sCR", "CR", "VGPR", "PR")
                else pd.NaT
                for i, b in enumerate(CRAFTED_BOR)
            ],
        }
    )
    # ex: subject 1 reduced 160 -> 100 mg/week; the others stay at 160 (80 mg twice weekly)
    ex = pd.DataFrame(
        {
            "USUBJID": [*ids, ids[0]],
            "EXTRT": ["SELINEXOR"] * (len(ids) + 1),
            "EXDOSE": [80.0] * len(ids) + [100.0],
            "EXDOSFRQ": ["BIW"] * len(ids) + ["QW"],
            "EXSTDT": [*list(adsl["TRTSDT"]), start + pd.Timedelta(days=28)],
        }
    )
    counts = {c: CRAFTED_BOR.count(c) for c in CATEGORIES}
    n = len(ids)
    x_orr = sum(counts[c] for c in ("sCR", "CR", "VGPR", "PR"))
    orr_ci = proportion_ci(x_orr, n)
    results = {
        "populations": {"safety": n, "efficacy": n},
        "response": {
            "counts": counts,
            "orr": {
                "x": x_orr,
                "n": n,
                "estimate": x_orr / n,
                "ci": list(orr_ci),
                "method": "clopper-pearson",
                "level": 0.95,
            },
        },
    }
    rows, cell_subjects = [], {}
    for r, c in enumerate(CATEGORIES):
        ci = proportion_ci(counts[c], n)
        rows.append((c, fmt_n_pct(counts[c], n), fmt_ci((ci[0] * 100, ci[1] * 100))))
        cell_subjects[(r, "n (%)")] = [s for s, b in zip(ids, CRAFTED_BOR, strict=True) if b == c]
    rows.append(("ORR (>=PR)", fmt_n_pct(x_orr, n), fmt_ci((orr_ci[0] * 100, orr_ci[1] * 100))))
    cell_subjects[(len(CATEGORIES), "n (%)")] = [
        s for s, b in zip(ids, CRAFTED_BOR, strict=True) if b in ("sCR", "CR", "VGPR", "PR")
    ]
    bor = Table(
        id="bor",
        title="Best overall response (IMWG), mITT",
        data=pd.DataFrame(rows, columns=["Response", "n (%)", "95% CI"]),
        footnotes=["95% CI: exact Clopper-Pearson."],
        population=f"mITT (N = {n})",
        source="ADSL, ADRS (PARAMCD BOR)",
        stub="Response",
        cell_subjects=cell_subjects,
    )
    ae = Table(
        id="ae-grade",
        title="Adverse events by worst grade",
        data=pd.DataFrame(
            {
                "Preferred term": ["Thrombocytopenia", "Anaemia", "Nausea"],
                "Any grade": ["3 (25.0)", "2 (16.7)", "1 (8.3)"],
                "Grade >=3": ["2 (16.7)", "1 (8.3)", "0"],
            }
        ),
        population=f"Safety (N = {n})",
        source="ADAE",
        footnotes=[
            "CTCAE v5.0; a subject counted once per term at the worst grade.",
            "<script>x</script>",
        ],
        stub="Preferred term",
        groups=["Blood and lymphatic system disorders"] * 2 + ["Gastrointestinal disorders"],
        cell_subjects={
            (0, "Any grade"): ids[:3],
            (0, "Grade >=3"): ids[:2],
            (1, "Any grade"): ids[3:5],
            (1, "Grade >=3"): [ids[3]],
            (2, "Any grade"): [ids[6]],
        },
    )
    wf_alt = "Waterfall plot: best percent change in serum M-protein, one bar per subject."
    figure = Figure(
        id="waterfall",
        title="Best change in M-protein from baseline",
        alt=wf_alt,
        svg=waterfall_svg([-95, -60, -55, -52, -30, -28, -10, 0, 5, 12, 30, 80], wf_alt),
        footnotes=["Reference lines at -90, -50, -25 and +25 percent."],
    )
    sections = [
        Section(id="safety", title="Safety", blocks=[ae], order=60),
        Section(
            id="efficacy-response",
            title="Efficacy: response",
            blocks=[Text("Best overall response by IMWG criteria & confirmation."), bor, figure],
            order=40,
        ),
    ]
    study = Study(
        domains={"ex": ex},
        path=Path(study_path),
        synthetic=synthetic,
        checksum="sha256:0f3a9c" + "0" * 58,
    )
    issues = [
        InputIssue(
            domain="lb",
            variable="LBSTRESU",
            problem="unit converted from g/L",
            severity="warning",
            usubjid=ids[1],
            row=17,
            value="g/L",
            hint="values were divided by 10",
        ),
    ]
    return Analysis(
        study=study,
        protocol=Protocol.load(),
        adam={"adsl": adsl},
        results=results,
        sections=sections,
        issues=issues,
        methods={
            "response": {"confirmation": "two consecutive assessments", "ci": "clopper-pearson"}
        },
        options={"profile": "sas"},
    )


# --- a minimal HTML tree (stdlib parser), for structural checks without extra dependencies ---

VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.content: list[str | Node] = []  # text and children in document order

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.content)

    def iter(self, tag: str | None = None):
        if tag is None or self.tag == tag:
            yield self
        for c in self.children:
            yield from c.iter(tag)

    def find_all(self, tag: str) -> list[Node]:
        return [n for n in self.iter(tag) if n is not self]

    def ancestor(self, tag: str) -> Node | None:
        p = self.parent
        while p is not None and p.tag != tag:
            p = p.parent
        return p


def parse_html(html: str) -> Node:
    """Parse the report into a :class:`Node` tree; fails on unbalanced tags (well-formedness)."""
    from html.parser import HTMLParser

    root = Node("#root", {}, None)

    class P(HTMLParser):
        cur = root

        def handle_starttag(self, tag, attrs):
            n = Node(tag, dict(attrs), self.cur)
            self.cur.children.append(n)
            self.cur.content.append(n)
            if tag not in VOID:
                self.cur = n

        def handle_startendtag(self, tag, attrs):
            n = Node(tag, dict(attrs), self.cur)
            self.cur.children.append(n)
            self.cur.content.append(n)

        def handle_endtag(self, tag):
            if tag in VOID:
                return
            assert self.cur.tag == tag, f"unbalanced </{tag}> closes <{self.cur.tag}>"
            self.cur = self.cur.parent

        def handle_data(self, data):
            self.cur.content.append(data)

    p = P(convert_charrefs=True)
    p.feed(html)
    p.close()
    assert p.cur is root, f"unclosed <{p.cur.tag}>"
    return root
