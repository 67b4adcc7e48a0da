"""figure_to_svg: reproducible bytes, alt text inside the SVG, nothing external."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from mmtrial.figures.svg import figure_to_svg

CODE = """
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt, sys
from mmtrial.figures.svg import figure_to_svg
fig, ax = plt.subplots(figsize=(4, 3))
ax.step([0, 1, 2, 3], [1.0, 0.8, 0.5, 0.2], where="post")
ax.plot([1.5], [0.8], "+")
ax.set_title("PFS <all>")
sys.stdout.write(figure_to_svg(fig, "Kaplan-Meier curve of PFS & censoring marks"))
"""


def _svg(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, check=True, env=env
    ).stdout.decode()


def test_same_figure_gives_the_same_bytes_in_different_processes():
    # matplotlib salts SVG ids with uuid4 unless rcParams["svg.hashsalt"] is set (matplotlib docs)
    a, b = _svg("1"), _svg("2")
    assert a == b
    assert "<dc:date>" not in a


def test_alt_text_is_the_svg_title_and_aria_label():
    svg = _svg("0")
    assert svg.startswith("<svg")
    head = svg[: svg.index(">") + 1]
    assert 'role="img"' in head
    assert 'aria-label="Kaplan-Meier curve of PFS &amp; censoring marks"' in head
    assert "<title>Kaplan-Meier curve of PFS &amp; censoring marks</title>" in svg


def test_no_metadata_urls_and_no_external_references():
    svg = _svg("0")
    assert "<metadata>" not in svg
    assert not re.search(r"(?:href|src)=\"(?!#|data:)", svg)
    urls = set(re.findall(r"https?://[^\"\s)]+", svg))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # namespaces only


def test_alt_text_is_required():
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="alt text is required"):
        figure_to_svg(fig, "  ")
    plt.close(fig)


def test_crop_is_the_size_savefig_tight_gives():
    # figure_to_svg draws once and crops with the viewBox; the oracle is matplotlib's own
    # savefig(bbox_inches="tight") of the same figure: same width and height in points
    import io

    from mmtrial.figures.svg import new_figure

    def make():
        fig = new_figure((5, 3))
        ax = fig.subplots()
        ax.plot([0, 10], [0, 1])
        ax.set_ylabel("a long y label that sticks out")
        fig.text(0.0, -0.05, "footnote below the axes")
        return fig

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "x", "svg.fonttype": "path"}):
        make().savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    ref = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', buf.getvalue())
    got = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt" viewBox="(-?[\d.]+) (-?[\d.]+) ', figure_to_svg(make(), "x"))
    assert float(got[1]) == pytest.approx(float(ref[1]), abs=1e-3)
    assert float(got[2]) == pytest.approx(float(ref[2]), abs=1e-3)
    assert float(got[4]) + float(got[2]) > 3 * 72  # the crop reaches below the figure (the footnote)
