"""Step ``csr_displays`` (after the analysis steps): CSR displays added in issue 14.

Spider plot of the myeloma marker by response and swimmer plot of responders coloured by
response (efficacy); treatment-related AEs by SOC/PT and grade, exposure-adjusted AE incidence
rates (safety); laboratory values over time, median and IQR by visit (table and figure).
Builders: ``tables/csr_more.py`` and ``figures/csr_more.py``.
"""

from __future__ import annotations

from mmtrial.context import Analysis
from mmtrial.derive.conventions import LAB_TEST_NAMES
from mmtrial.figures import csr_more as fm
from mmtrial.figures.svg import figure_to_svg
from mmtrial.report.model import DeferredFigure, Figure, Section
from mmtrial.steps.exposure_safety import SafetyOptions
from mmtrial.tables import csr_more as tm

#: Names of the laboratory tests over time (table and figure).
LAB_TIME_NAMES: dict[str, str] = {**LAB_TEST_NAMES, "NEUT": "Neutrophils", "HGB": "Haemoglobin"}


SPIDER_NOTE = ("Marker: serum M-protein, else urine M-protein, else dFLC (the IMWG route; PCHGPARM). Assessments "
               "before new anti-myeloma therapy; values above +100% drawn at +100%. Dashed lines: -50% (PR), -90% "
               "(VGPR), +25% (PD).")
SWIMMER_NOTE = ("Bar: first to last dose (TRTSDT to TRTEDT); triangle: first confirmed MR or better; cross: "
                "progression (PDDT); diamond: death; arrow: treatment ongoing at the data cut-off.")


def spider_figure(adrs, adsl, *, fig_id: str, title: str, alt_lead: str, population: str) -> Figure | None:
    """The spider plot of the myeloma marker's percent change over time for ``adsl``'s efficacy
    patients (None when nobody has a post-baseline value); pooled here, per arm in by_arm_displays."""
    d = fm.compute_spider_data(adrs, adsl)
    if not len(d):
        return None
    alt = (f"{alt_lead}percent change from baseline in the myeloma marker over time for "
           f"{d['USUBJID'].nunique()} efficacy patients, one line per patient coloured by best response.")
    return DeferredFigure(id=fig_id, title=title, alt=alt, draw=lambda: figure_to_svg(fm.plot_spider(d), alt),
                          footnotes=[SPIDER_NOTE, population])


def swimmer_response_figure(adsl, *, fig_id: str, title: str, alt_lead: str, population: str) -> Figure | None:
    """The swimmer plot of ``adsl``'s responders (MR or better), capped at the longest treated
    (None when there is no responder); pooled here, per arm in by_arm_displays."""
    s_all = fm.compute_swimmer_response(adsl)
    s = fm.cap_swimmer_response(s_all)
    if not len(s):
        return None
    capped = ([f"{len(s)} of {len(s_all)} responders shown: the {len(s)} longest treated (lanes are "
               "capped so the figure stays readable)."] if len(s) < len(s_all) else [])
    alt = (f"{alt_lead}months on treatment for {len(s)} patients with a minimal response or better, bars "
           "coloured by best response, with markers for first response, progression and death.")
    return DeferredFigure(id=fig_id, title=title, alt=alt,
                          draw=lambda: figure_to_svg(fm.plot_swimmer_response(s), alt),
                          footnotes=[SWIMMER_NOTE, population, *capped])


def _efficacy_blocks(a: Analysis) -> list:
    adsl, adrs = a.adam["adsl"], a.adam.get("adrs")
    blocks: list = []
    if adrs is not None and {"PCHG", "ANL01FL", "ADY"} <= set(adrs.columns) and "EFFFL" in adsl:
        blocks.append(spider_figure(
            adrs, adsl, fig_id="spider", title="Change from baseline in the myeloma marker over time, by best "
            "overall response", alt_lead="Spider plot: ",
            population="Population: efficacy population (EFFFL = Y) with a post-baseline value."))
    if "BOR" in adsl and "EFFFL" in adsl:
        blocks.append(swimmer_response_figure(
            adsl, fig_id="swimmer-response", title="Time on treatment of responders (MR or better), by best "
            "overall response", alt_lead="Swimmer plot: ",
            population="Population: efficacy population with a best response of MR or better."))
    return [b for b in blocks if b is not None]


def run(a: Analysis) -> None:
    if "adsl" not in a.adam:
        return
    adsl = a.adam["adsl"]
    eff = _efficacy_blocks(a)
    if eff:
        a.sections.append(Section(id="efficacy-time", title="Efficacy: the myeloma marker over time and time on "
                                  "treatment of responders", blocks=eff, order=46))
    adae, adlb = a.adam.get("adae"), a.adam.get("adlb")
    window = SafetyOptions.from_protocol(a.protocol).teae_window_days
    if adae is not None and {"TRTEMFL", "ATOXGR"} <= set(adae.columns):
        blocks = [tm.table_related_ae_by_grade(adae, adsl), tm.table_eair(adae, adsl, window_days=window)]
        a.sections.append(Section(id="safety-related-eair", title="Safety: treatment-related adverse events and "
                                  "exposure-adjusted incidence rates", blocks=blocks, order=61))
    if adlb is not None and "AVISITN" in adlb:
        st = tm.compute_lab_by_visit(adlb, adsl)
        if len(st):
            names = LAB_TIME_NAMES
            n_saf = int((adsl["SAFFL"] == "Y").sum())
            alt = ("Median and interquartile range of platelets, neutrophils, haemoglobin, sodium and creatinine "
                   "by analysis visit, one panel per test.")
            fig = DeferredFigure(id="labs-over-time", title="Laboratory values over time: median and interquartile "
                                 "range by visit", alt=alt,
                                 draw=lambda: figure_to_svg(fm.plot_lab_over_time(st, names), alt),
                                 footnotes=["Line: median; band: first to third quartile (SAS QNTLDEF=5); visits "
                                            "with at least 5 values.", "Population: safety population."])
            a.sections.append(Section(id="safety-labs-time", title="Safety: laboratory values over time", order=62,
                                      blocks=[tm.table_lab_by_visit(st, names, n_safety=n_saf), fig]))
