"""The report's study and methods summary: protocol, regimen, populations, key method choices,
and an appendix listing every method setting in force.

Built from ``a.protocol`` (the protocol file, data not code) and ``a.methods`` (what each analysis
step recorded as the method it applied: option dataclasses, pydantic models or plain dicts). The
methods section shows the headline choices (:func:`build_methods_summary_table`) and links to the
appendix (:func:`build_settings_appendix_section`), where the reader sees in one place every
choice that the table footnotes refer to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmtrial.report.model import Section, SectionLink, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    from mmtrial.context import Analysis

#: Section order of the methods summary (first in the report).
METHODS_ORDER = 10
#: Section id, order and title of the appendix with every method setting in force.
SETTINGS_APPENDIX_ID = "methods-settings"
SETTINGS_APPENDIX_ORDER = 97
SETTINGS_APPENDIX_TITLE = "Appendix: every method setting in force"


def _scalar_text(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)


def flatten_settings(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested settings into ``(dotted.name, text)`` pairs, in their given order.

    Dicts, dataclasses and pydantic models recurse; lists of scalars become comma-separated text;
    lists of sentences (any item ending in ".") are joined with a space;
    lists of mappings recurse with ``[i]`` in the name. Used for ``a.methods`` and protocol sections.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump()
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out.extend(flatten_settings(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list | tuple):
        if any(
            isinstance(x, Mapping) or dataclasses.is_dataclass(x) or hasattr(x, "model_dump")
            for x in value
        ):
            out = []
            for i, x in enumerate(value):
                out.extend(flatten_settings(x, f"{prefix}[{i}]"))
            return out
        texts = [_scalar_text(x) for x in value]
        # a list of sentences (e.g. footnotes) reads as prose, not as "a., b."
        sep = " " if any(isinstance(x, str) and x.rstrip().endswith(".") for x in value) else ", "
        return [(prefix, sep.join(texts))]
    return [(prefix, _scalar_text(value))]


def build_methods_table(a: Analysis) -> Table:
    """Every method choice in force: protocol ``[methods]`` then each step's ``a.methods`` entry."""
    rows: list[tuple[str, str, str]] = []
    for name, text in flatten_settings(a.protocol.methods):
        rows.append((name, text, "protocol [methods]"))
    for step, value in a.methods.items():
        for name, text in flatten_settings(value, str(step)):
            rows.append((name, text, f"analysis step: {step}"))
    for name, text in flatten_settings(a.options):
        rows.append((name, text, "run options"))
    data = pd.DataFrame(rows, columns=["Setting", "Value", "Set by"])
    return Table(
        id="methods-in-force",
        title="Method choices in force",
        data=data,
        footnotes=[
            "Each table's footnote names the methods it applied; this table lists them all."
        ],
        source=f"protocol file {a.protocol.source_path or '(bundled)'}; analysis steps",
        stub="Setting",
    )


def _first(settings: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` recorded in ``settings`` with a non-empty value."""
    for n in names:
        v = settings.get(n)
        if v not in (None, ""):
            return v
    return None


def summary_rows(a: Analysis) -> list[tuple[str, str]]:
    """The headline method choices, ``(label, text)``, read from the recorded settings.

    Profile, confidence intervals for proportions, Kaplan-Meier (CI transform, variance, median
    rule, quantile CIs), IMWG response options, CTCAE version, TEAE window and the populations.
    A row whose step did not run (nothing recorded) is left out.
    """
    proto = dict(flatten_settings(a.protocol.methods))
    steps = dict(flatten_settings(dict(a.methods)))
    opts = dict(flatten_settings(a.options))
    rows: list[tuple[str, str]] = []

    def add(label: str, text: str | None) -> None:
        if text:
            rows.append((label, text))

    profile = _first(opts, "profile") or _first(proto, "profile")
    add("Method profile", profile)
    ci = _first(steps, "response.ci.label")
    if ci is None and _first(proto, "proportion_ci"):
        level = _first(proto, "level")
        ci = (f"{float(level) * 100:g}% CI, " if level else "") + str(proto["proportion_ci"])
    add("Confidence intervals for proportions", ci)
    km = []
    if _first(steps, "tte.km.variance"):
        km.append(f"{steps['tte.km.variance'].capitalize()} variance")
    if _first(steps, "tte.km.ci_transform"):
        km.append(f"{steps['tte.km.ci_transform']} CI transform")
    if _first(steps, "tte.km.median_rule"):
        km.append(f"median rule: {steps['tte.km.median_rule']}")
    if _first(steps, "tte.km.quantile_ci"):
        km.append(f"quantile CIs: {steps['tte.km.quantile_ci']}")
    add("Kaplan-Meier", "; ".join(km) or None)
    crit = _first(steps, "response.criteria", "response.options.criteria")
    if crit is not None:
        imwg = [crit]
        k = _first(steps, "response.confirmation.consecutive")
        if k is not None:
            imwg.append(f"response confirmed by {k} consecutive assessments")
        pd_conf = _first(steps, "response.confirmation.confirm_pd")
        if pd_conf is not None:
            imwg.append(f"PD confirmed: {pd_conf}")
        win = _first(steps, "response.options.visit_window_days")
        if win is not None:
            imwg.append(f"visit window {win} days")
        add("Response criteria (IMWG options)", "; ".join(imwg))
    ctcae = _first(steps, "safety.ctcae_version")
    add("CTCAE version", f"v{ctcae}" if ctcae else None)
    window = _first(steps, "safety.teae_window_days")
    add(
        "Treatment-emergent AE window",
        f"first dose to {window} days after the last dose" if window else None,
    )
    p = a.protocol.populations
    add("Safety population", _first(steps, "populations.safety") or p.safety)
    add("Efficacy population", _first(steps, "populations.efficacy") or p.efficacy)
    return rows


def build_methods_summary_table(a: Analysis) -> Table:
    """The key method choices (:func:`summary_rows`); the appendix lists every setting."""
    data = pd.DataFrame(summary_rows(a), columns=["Setting", "Value"])
    return Table(
        id="methods-summary",
        title="Key method choices",
        data=data,
        footnotes=[
            "Each table's footnote names the methods it applied; every setting in force, with "
            f"where it was set, is listed in the section {SETTINGS_APPENDIX_TITLE!r}."
        ],
        source=f"protocol file {a.protocol.source_path or '(bundled)'}; analysis steps; run options",
        stub="Setting",
    )


def build_settings_appendix_section(a: Analysis) -> Section:
    """The appendix with the full method-choices table (order :data:`SETTINGS_APPENDIX_ORDER`)."""
    return Section(
        id=SETTINGS_APPENDIX_ID,
        title=SETTINGS_APPENDIX_TITLE,
        blocks=[
            Text(
                "Every method choice in force for this run: the protocol [methods] section, then "
                "each analysis step's recorded settings, then the run options."
            ),
            build_methods_table(a),
        ],
        order=SETTINGS_APPENDIX_ORDER,
    )


def _populations_table(a: Analysis) -> Table:
    p = a.protocol
    counts = a.results.get("populations", {}) if isinstance(a.results, dict) else {}
    pops = pd.DataFrame(
        {
            "Population": ["Safety", "Efficacy (mITT)"],
            "Definition": [p.populations.safety, p.populations.efficacy],
            "N": [
                _scalar_text(counts["safety"]) if "safety" in counts else "not computed",
                _scalar_text(counts["efficacy"]) if "efficacy" in counts else "not computed",
            ],
        }
    )
    return Table(
        id="populations",
        title="Analysis populations",
        data=pops,
        footnotes=[],
        population="as defined in the protocol [populations]",
        source="protocol [populations]; ADSL (SAFFL, EFFFL); results.json populations",
        stub="Population",
    )


def _dosing_days(drug) -> str:
    """``days 1, 3 of each week`` (days_of_week) or ``days 1-28 of each cycle`` (cycle_days)."""
    if drug.days_of_week is not None:
        return "days " + ", ".join(str(x) for x in drug.days_of_week) + " of each week"
    days = list(drug.cycle_days or [])
    if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        return f"days {days[0]}-{days[-1]} of each cycle"
    return "days " + ", ".join(str(x) for x in days) + " of each cycle"


def build_methods_section(a: Analysis) -> Section:
    """The study and methods summary section (order :data:`METHODS_ORDER`).

    It holds the headline method choices and links to the appendix with every setting
    (:func:`build_settings_appendix_section`), so the report does not open on a long table.
    """
    p = a.protocol
    s = p.study
    blocks: list = [
        Text(
            f"{s.id}: {s.title}."
            + (f" Phase {s.phase}." if s.phase else "")
            + f" Study drug: {s.drug}."
            + (f" Reference: {s.reference}." if s.reference else "")
        ),
        Text(f"Protocol file: {p.source_path or '(bundled)'}."),
    ]
    reg = pd.DataFrame(
        {
            "Drug": [d.name for d in p.regimen.drugs],
            "Dose per administration (mg)": [f"{d.dose_mg:g}" for d in p.regimen.drugs],
            "Dosing days": [_dosing_days(d) for d in p.regimen.drugs],
            "Weekly dose (mg)": [f"{p.regimen.planned_weekly_dose(d.name):.4g}" for d in p.regimen.drugs],
        }
    )
    blocks.append(
        Table(
            id="regimen",
            title="Treatment regimen",
            data=reg,
            footnotes=[
                f"Cycles of {p.regimen.cycle_length_days} days; dose ladder applies to "
                f"{p.regimen.study_drug}."
            ],
            source="protocol [regimen]",
            stub="Drug",
        )
    )
    ladder = pd.DataFrame(
        {
            "Level": [str(lv.level) for lv in p.dose_ladder.levels],
            "Dose": [lv.label for lv in p.dose_ladder.levels],
            "Weekly dose (mg)": [f"{lv.weekly_mg:g}" for lv in p.dose_ladder.levels],
        }
    )
    blocks.append(
        Table(
            id="dose-ladder",
            title="Dose reduction ladder",
            data=ladder,
            footnotes=[f"Source: {p.dose_ladder.source}."],
            source="protocol [dose_ladder]",
            stub="Level",
        )
    )
    if not any(sec.id == "populations" for sec in a.sections):  # a step may show them itself
        blocks.append(_populations_table(a))
    v = p.visits
    blocks.append(
        Text(
            f"Visit schedule: disease assessment every {v.response_assessment_days} days, "
            f"laboratory tests every {v.lab_interval_days} days, window +/- "
            f"{v.assessment_window_days} days."
        )
    )
    blocks.append(build_methods_summary_table(a))
    blocks.append(
        SectionLink(
            text="Every method setting in force, with where it was set: {link}.",
            section_id=SETTINGS_APPENDIX_ID,
            label=SETTINGS_APPENDIX_TITLE,
        )
    )
    return Section(
        id="methods", title="Study and methods summary", blocks=blocks, order=METHODS_ORDER
    )
