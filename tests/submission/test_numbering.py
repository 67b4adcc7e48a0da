"""CSR numbering (report/numbering.py) per ICH E3: 14.1 demographic, 14.2 efficacy, 14.3 safety,
16.2 listings; p-values as CSR tables print them (tables/format.py fmt_p)."""

from __future__ import annotations

import pandas as pd

from mmtrial.report.model import Figure, Listing, Section, Table
from mmtrial.report.numbering import csr_numbers
from mmtrial.tables.format import fmt_p


def _t(i: str) -> Table:
    return Table(id=i, title=i, data=pd.DataFrame({"a": ["1"]}))


def test_numbers_by_ich_e3_group_in_reading_order():
    t1, t2, t3, t4 = _t("dst"), _t("bor"), _t("ae"), _t("tte")
    f1 = Figure(id="km", title="km", alt="km", svg="<svg/>")
    lst = Listing(id="l", title="l", data=pd.DataFrame({"a": ["1"]}))
    methods = Section(id="methods", title="Methods", blocks=[_t("m")], order=10)
    secs = [methods, Section(id="disposition", title="d", blocks=[t1], order=15),
            Section(id="efficacy-response", title="r", blocks=[t2, f1, lst], order=40),
            Section(id="efficacy-tte", title="t", blocks=[t4], order=45),
            Section(id="safety", title="s", blocks=[t3], order=60)]
    n = csr_numbers(secs)
    assert [n[id(b)] for b in (t1, t2, f1, t4, t3, lst)] == [
        "Table 14.1.1", "Table 14.2.1", "Figure 14.2.1", "Table 14.2.2", "Table 14.3.1", "Listing 16.2.1"]
    assert n[id(methods.blocks[0])] == "Table 9.1"  # in-text table of the methods section (ICH E3 9)


def test_p_values_never_in_scientific_notation():
    assert fmt_p(6.82e-06) == "<0.0001"
    assert fmt_p(0.0001) == "0.0001"
    assert fmt_p(0.00005) == "<0.0001"
    assert fmt_p(0.04996) == "0.0500"  # half-up at 4 decimals, as SAS PVALUE6.4
    assert fmt_p(0.012345) == "0.0123"
    assert fmt_p(1.0) == "1.0000"
    assert fmt_p(None) == "NE" and fmt_p(float("nan")) == "NE"
