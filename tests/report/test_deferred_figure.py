"""report.model.DeferredFigure: the SVG is drawn on first read, once, so a figure that a later
step replaces before the report is rendered is never drawn (issue 15, fifth pass). That the
drawn SVGs are the eager ones is checked on whole reports (docs/design.md, fifth pass)."""

from __future__ import annotations

import copy
import pickle

from mmtrial.report.model import DeferredFigure, Figure


def _counting():
    calls: list[int] = []

    def draw() -> str:
        calls.append(1)
        return '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><title>x</title></svg>'

    return calls, draw


def test_drawn_once_on_first_read():
    calls, draw = _counting()
    f = DeferredFigure(id="f", title="t", alt="a", draw=draw, footnotes=["n"])
    assert isinstance(f, Figure) and calls == []
    assert f.svg == f.svg and f.svg.startswith("<svg") and calls == [1]


def test_an_svg_set_later_replaces_the_pending_drawing():
    calls, draw = _counting()
    f = DeferredFigure(id="f", title="t", alt="a", draw=draw)
    f.svg = "<svg/>"
    assert f.svg == "<svg/>" and calls == []


def test_pickle_and_copy_keep_the_svg_not_the_function():
    calls, draw = _counting()
    f = DeferredFigure(id="f", title="t", alt="a", draw=lambda: draw())  # a lambda cannot be pickled
    g = pickle.loads(pickle.dumps(f))
    assert calls == [1] and g.svg == f.svg and g._draw is None
    assert copy.deepcopy(f).svg == f.svg and calls == [1]
