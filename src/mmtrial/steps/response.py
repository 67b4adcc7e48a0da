"""Step ``response``: IMWG response from laboratory values (ADRS), BOR and EFFFL in ADSL,
``results.json`` ``response``, and the "efficacy-response" report section.

Reads the ``[response]`` protocol section (:class:`ResponseConfig`); ``a.options["response"]``
(a dict with the same keys) overrides it. Rules and options: docs/imwg-response.md.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmtrial.context import Analysis
from mmtrial.derive.baseline import MeasurableDisease
from mmtrial.derive.concordance import (
    derive_assessor_bor,
    derive_concordance,
    derive_disagreement_listing,
    extract_assessor_responses,
)
from mmtrial.derive.confirm import ConfirmationRule
from mmtrial.derive.response import RANK, RANK_NAMES, ResponseOptions, derive_adrs
from mmtrial.figures.waterfall import derive_best_change, waterfall_figure
from mmtrial.report.model import DeferredFigure, Section, Text
from mmtrial.stats.proportion import CI_METHOD_LABELS
from mmtrial.tables.response import (
    bor_table,
    compute_response_summary,
    concordance_table,
    disagreement_listing,
)

SECTION_ID = "efficacy-response"
SECTION_ORDER = 40


class ConfirmationConfig(BaseModel):
    """``[response.confirmation]``: fields of :class:`~mmtrial.derive.confirm.ConfirmationRule`."""

    model_config = ConfigDict(extra="forbid")
    consecutive: Literal[1, 2] = 2
    confirm_pd: bool = True
    accept_unconfirmed_last_pd: bool = False
    ne_breaks_confirmation: bool = True
    marrow_route_needs_confirmation: bool = False
    sd_min_days: int = Field(0, ge=0)
    new_therapy_same_day_counts: bool = True


class ResponseConfig(BaseModel):
    """The ``[response]`` protocol section (see storm.toml and docs/imwg-response.md)."""

    model_config = ConfigDict(extra="forbid")
    criteria: str = "IMWG 2016 (Kumar S et al., Lancet Oncol 2016;17:e328-e346)"
    serum_measurable_g_dl: float = Field(0.5, gt=0)
    urine_measurable_mg_24h: float = Field(200.0, gt=0)
    involved_flc_measurable_mg_dl: float = Field(10.0, gt=0)
    flc_ratio_normal: tuple[float, float] = (0.26, 1.65)
    marrow_route_min_pct: float = Field(30.0, gt=0)
    marrow_counts_as_measurable: bool = False
    baseline_window_days: int | None = Field(None, ge=0)
    visit_window_days: int = Field(3, ge=0)
    assessment_date: Literal["last", "first"] = "last"
    nadir_basis: Literal["all", "confirmed"] = "all"
    missing_marker: Literal["ne", "use_available"] = "ne"
    pd_from_non_route_mprotein: bool = True
    flc_cr_requires_normal_ratio: bool = True
    flc_vgpr: bool = True
    marrow_carry_forward: bool = True
    confirmation: ConfirmationConfig = ConfirmationConfig()

    def to_options(self) -> tuple[ResponseOptions, ConfirmationRule]:
        meas = MeasurableDisease(
            serum_mprotein_g_dl=self.serum_measurable_g_dl, urine_mprotein_mg_24h=self.urine_measurable_mg_24h,
            involved_flc_mg_dl=self.involved_flc_measurable_mg_dl, flc_ratio_normal=tuple(self.flc_ratio_normal),
            marrow_pc_pct=self.marrow_route_min_pct, marrow_counts_as_measurable=self.marrow_counts_as_measurable,
            baseline_window_days=self.baseline_window_days)
        opts = ResponseOptions(
            measurable=meas, visit_window_days=self.visit_window_days, assessment_date=self.assessment_date,
            nadir_basis=self.nadir_basis, missing_marker=self.missing_marker,
            pd_from_non_route_mprotein=self.pd_from_non_route_mprotein,
            flc_cr_requires_normal_ratio=self.flc_cr_requires_normal_ratio, flc_vgpr=self.flc_vgpr,
            marrow_carry_forward=self.marrow_carry_forward, criteria=self.criteria)
        return opts, ConfirmationRule(**self.confirmation.model_dump())


def load_config(a: Analysis) -> ResponseConfig:
    """The protocol's ``[response]`` section with ``a.options["response"]`` overrides."""
    raw: dict[str, Any] = dict(a.protocol.section("response"))
    over = dict(a.options.get("response", {}) or {})
    if "confirmation" in over:
        raw["confirmation"] = {**raw.get("confirmation", {}), **over.pop("confirmation")}
    raw.update(over)
    return ResponseConfig.model_validate(raw)


def method_footnotes(cfg: ResponseConfig, ci_label: str, population: str) -> list[str]:
    """The footnotes that name population, criteria, options in force and CI method."""
    c = cfg.confirmation
    conf = ("two consecutive assessments before any new anti-myeloma therapy (Durie 2006); PD too, except PD by "
            "new lesion or plasmacytoma growth" if c.consecutive == 2 else "no confirmation required (sensitivity)")
    if c.consecutive == 2 and c.accept_unconfirmed_last_pd:
        conf += "; a PD at the last assessment before new therapy counts unconfirmed"
    nadir = ("all prior values including baseline" if cfg.nadir_basis == "all"
             else "confirmed values only (each earlier value counts as the higher of it and the next value: "
             "a level held at two assessments in a row)")
    return [
        f"Population: {population}.",
        f"Response derived from laboratory values by {cfg.criteria}, as confirmed best overall response. "
        f"Confirmation: {conf}. Marrow results need no repeat.",
        f"Measurable disease: serum M-protein >= {cfg.serum_measurable_g_dl:g} g/dL, urine M-protein >= "
        f"{cfg.urine_measurable_mg_24h:g} mg/24h, or involved FLC >= {cfg.involved_flc_measurable_mg_dl:g} mg/dL "
        f"with an abnormal kappa/lambda ratio (normal {cfg.flc_ratio_normal[0]:g}-{cfg.flc_ratio_normal[1]:g}); "
        f"marrow route when marrow plasma cells >= {cfg.marrow_route_min_pct:g}%.",
        f"PD nadir: {nadir}. Results within {cfg.visit_window_days} days form one assessment; "
        + ("a missing measurable marker makes the assessment NE." if cfg.missing_marker == "ne"
           else "a missing measurable marker is judged on the markers available."),
        f"CI: {ci_label}. ORR = sCR + CR + VGPR + PR; clinical benefit = ORR + MR.",
    ]


#: LBTESTCDs that make a study's myeloma response evaluable (IMWG: serum/urine M-protein or serum
#: free light chains; Kumar 2016). Marrow plasma cells alone do not define measurable disease.
DISEASE_TESTS: tuple[str, ...] = ("MPROTEIN", "KAPPAFLC", "LAMBDFLC")


def compute_efficacy_not_evaluable(lb: pd.DataFrame | None, adsl: pd.DataFrame) -> str:
    """Why the efficacy population is empty, in terms a user can check ("" when it is not).

    Checked in order: no subjects in dm; no subject dosed (SAFFL); no myeloma disease data (no
    M-protein or free light chain results in lb); no subject with measurable disease at baseline.
    """
    eff = adsl["EFFFL"].astype("string").eq("Y").fillna(False) if "EFFFL" in adsl else pd.Series(False, index=adsl.index)
    if bool(eff.any()):
        return ""
    if len(adsl) == 0:
        return "the study has no subjects (dm has no rows)"
    if not bool(adsl["SAFFL"].astype("string").eq("Y").fillna(False).any()):
        return "no subject received study treatment (safety population empty: no ex record with EXDOSE > 0)"
    codes = set() if lb is None or "LBTESTCD" not in lb else set(lb["LBTESTCD"].dropna().astype(str).str.upper())
    if not codes & set(DISEASE_TESTS):
        return ("efficacy is not evaluable: the study has no myeloma disease data (lb has no serum/urine "
                "M-protein (MPROTEIN) or free light chain (KAPPAFLC, LAMBDFLC) results), so IMWG response "
                "cannot be derived")
    nmeas = int(adsl["MEASFL"].astype("string").eq("Y").fillna(False).sum()) if "MEASFL" in adsl else 0
    if nmeas == 0:
        return ("the efficacy population is empty: no treated subject has measurable disease at baseline "
                "(IMWG measurable-disease thresholds in the footnotes)")
    return "the efficacy population is empty (no subject meets the protocol's efficacy population definition)"


def run(a: Analysis) -> None:
    """Derive ADRS and the ADSL response variables; add results, methods and the report section."""
    cfg = load_config(a)
    options, rule = cfg.to_options()
    requires = a.protocol.populations.efficacy_requires_measurable_disease
    res = derive_adrs(a.study.domains, a.adam["adsl"], options=options, rule=rule,
                      efficacy_requires_measurable=requires)
    a.adam["adrs"] = res.adrs
    a.adam["adsl"] = res.adsl
    a.issues.extend(res.issues)
    method = str(a.protocol.methods.get("proportion_ci", "clopper-pearson"))
    level = float(a.protocol.methods.get("level", 0.95))
    summary = compute_response_summary(res.adsl, method=method, level=level)
    eff = (res.adsl["EFFFL"] == "Y").to_numpy()
    routes = res.adsl.loc[eff, "RSPROUTE"].value_counts().to_dict()
    a.results["response"] = {
        "n": summary["n"], "counts": summary["counts"], "orr": summary["orr"], "cbr": summary["cbr"],
        "vgpr_or_better": summary["vgpr_or_better"],
        "routes": {str(k): int(v) for k, v in routes.items()},
        "measurable": {"Y": int((res.adsl["MEASFL"] == "Y").sum()), "N": int((res.adsl["MEASFL"] == "N").sum())},
    }
    not_evaluable = compute_efficacy_not_evaluable(a.study.get("lb"), res.adsl)
    a.results["efficacy"] = {"evaluable": not not_evaluable, "reason": not_evaluable or None}
    if not_evaluable:
        a.results["response"]["not_estimable"] = not_evaluable
        a.note_not_computable("Efficacy (IMWG response, ORR, clinical benefit, time-to-event endpoints)",
                              not_evaluable, step="response", key="efficacy")
    ci_label = f"{level * 100:g}% CI, {CI_METHOD_LABELS.get(method, method)}"
    population = a.protocol.populations.efficacy
    notes = method_footnotes(cfg, ci_label, population)
    blocks: list = [bor_table(summary, footnotes=notes, population=population)]
    if not_evaluable:
        blocks.insert(0, Text(f"Not computed: {not_evaluable}."))
    # waterfall
    best = derive_best_change(res.adrs, res.adsl)
    if len(best):
        from mmtrial.figures.svg import figure_to_svg

        fig, alt = waterfall_figure(best, n_eligible=summary["n"])
        # drawn when the report reads it: a randomised study's report replaces it with one per arm (issue 15)
        blocks.append(DeferredFigure(id="rsp-waterfall", title="Best percent change from baseline in the myeloma "
                                     "marker", alt=alt, draw=lambda: figure_to_svg(fig, alt), footnotes=[
                                 f"{len(best)} of {summary['n']} efficacy patients with a post-baseline value of "
                                 "their marker (serum M-protein if measurable, else urine M-protein, else dFLC, "
                                 "else marrow plasma cells) before new therapy. Increases above +100% are drawn at "
                                 "+100% and marked with a triangle. Colour: confirmed best overall response.",
                                 notes[0]]))
    else:
        blocks.append(Text("No post-baseline marker values: waterfall plot not drawn."))
    # concordance with assessor responses
    resp, iss = extract_assessor_responses(a.study.get("rs"), pd.Index(res.baseline["USUBJID"]))
    a.issues.extend(iss)
    conc_results: dict[str, Any] = {}
    if len(resp):
        from mmtrial.derive.baseline import _to_days

        fd = _to_days(res.adsl["TRTSDT"])
        nact = _to_days(res.adsl["NACTDT"])
        assessed = derive_assessor_bor(resp, fd, nact, rule=rule)
        derived = res.adsl["BOR"].astype("string").map(RANK).fillna(-1).to_numpy(dtype="int64")
        derived = np.where(eff, derived, -1)
        usub = res.adsl["USUBJID"].to_numpy(dtype=object)
        order = sorted(assessed, key=lambda e: (e != "INDEPENDENT ASSESSOR", e))
        for ev in order:
            conc = derive_concordance(derived, assessed[ev], usub)
            if conc["n"] == 0:
                continue
            k, wk = conc["kappa"], conc["weighted_kappa"]
            conc_results[ev] = {
                "n": conc["n"], "agree": conc["agree"], "kappa": k.kappa, "weighted_kappa": wk.kappa,
                "weights": "linear", "table": {d: {s: int(v) for s, v in row.items()} for d, row in conc["table"].iterrows()},
            }
            blocks.append(concordance_table(conc, ev, footnotes=[
                f"Rows: BOR derived from laboratory values; columns: BOR from {ev.lower()} per-assessment responses "
                "(rs OVRLRESP) under the same confirmation rule, or the assessor's BOR when given.", notes[0]]))
            r_ev = assessed[ev]
            assessed_txt = pd.Series(np.where(r_ev >= 0, RANK_NAMES[np.clip(r_ev, 0, None)], ""), index=usub)
            lst = derive_disagreement_listing(res.adrs, res.adsl, res.baseline, assessed_txt, conc["disagree"])
            if len(lst):
                blocks.append(disagreement_listing(lst, ev))
        if conc_results:
            a.results["response"]["concordance"] = conc_results
    a.methods["response"] = {
        "criteria": cfg.criteria, "options": options.describe(), "confirmation": rule.describe(),
        "ci": {"method": method, "level": level, "label": ci_label}, "population": population,
        "efficacy_requires_measurable_disease": requires, "footnotes": notes,
    }
    a.sections.append(Section(id=SECTION_ID, title="Efficacy: IMWG response", blocks=blocks, order=SECTION_ORDER))
