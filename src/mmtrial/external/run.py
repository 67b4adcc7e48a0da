"""``mmtrial external`` and ``mmtrial maic``: from a study (and a cohort or a published target)
to an output folder with results.json (entry ``external``), report.html and the tables behind
them (docs/external.md). Output-folder rules as ``mmtrial analyze`` (docs/cli.md)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.errors import UsageError
from mmtrial.external.compare import DAYS_PER_MONTH, SYNTHETIC_LABEL, compare_external
from mmtrial.external.config import ExternalConfig
from mmtrial.report.model import Figure, Section, Table, Text

SECTION_ID = "external-control"
SECTION_ORDER = 48


@dataclass
class ExternalOutput:
    out_dir: Path
    results: dict[str, Any]
    report_html: Path


def external_config(protocol) -> ExternalConfig:
    """The protocol's ``[external]`` section (defaults when absent)."""
    return ExternalConfig.model_validate(dict(protocol.section("external")))


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "NE"
    return f"{v:.{nd}f}"


def _p(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "NE"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def build_external_section(res: dict[str, Any], *, attrition: pd.DataFrame | None, smd: pd.DataFrame | None,
                           km: dict[str, dict[str, Any]] | None, synthetic: bool, notes: list[str]) -> Section:
    """The report section: attrition (CONSORT-style), balance table and love plot, HR and medians
    per endpoint, KM figure of the primary endpoint; "synthetic data" on every block when so."""
    lab = f" ({SYNTHETIC_LABEL})" if synthetic else ""
    blocks: list = []
    blocks.append(Text(f"{res['method']}. Estimand {res.get('estimand', '')}. Trial n = {res['n']['trial']}; "
                       f"external: {res['n'].get('external_lines', res['n'].get('external', ''))} index line(s) of "
                       f"{res['n'].get('external_patients', '')} patient(s). Effective sample size: trial "
                       f"{res['ess']['trial']}, external {res['ess'].get('external', 'NE')}.{lab}"))
    if attrition is not None:
        att = attrition.rename(columns={"step": "Step", "criterion": "Criterion", "rule": "Rule",
                                        "patients": "Patients", "lines": "Lines",
                                        "patients_excluded": "Patients excluded"})
        blocks.append(Table(id="external-attrition", title=f"External cohort: attrition at each eligibility step{lab}",
                            data=att.astype("string").fillna(""), footnotes=notes, population="External cohort",
                            source="cohort cm, rs, ds, lb (lines and refractory status at every line start)"))
    if smd is not None and len(smd):
        bal = pd.DataFrame({"Covariate": smd["covariate"],
                            "Trial mean": smd["mean_treated"].map(lambda v: _fmt(v, 3)),
                            "External mean": smd["mean_control"].map(lambda v: _fmt(v, 3)),
                            "External mean, weighted": smd["mean_control_weighted"].map(lambda v: _fmt(v, 3)),
                            "SMD before": smd["smd_unweighted"].map(lambda v: _fmt(v, 3)),
                            "SMD after": smd["smd_weighted"].map(lambda v: _fmt(v, 3))})
        blocks.append(Table(id="external-balance", title=f"Covariate balance before and after weighting{lab}",
                            data=bal, footnotes=["SMD: standardised mean difference (Austin 2009); |SMD| < 0.1 is "
                                                 "negligible imbalance.", *res.get("covariate_notes", [])],
                            population="Trial and external index lines", source="ADSL; cohort index lines"))
        try:
            from mmtrial.figures.love import love_svg

            blocks.append(Figure(id="external-love", title=f"Love plot: covariate balance{lab}",
                                 alt="Absolute standardised mean differences before and after weighting",
                                 svg=love_svg(smd, "Love plot of covariate balance")))
        except Exception:  # a figure must never stop the results
            pass
    rows = []
    for ep, r in res.get("endpoints", {}).items():
        if not r.get("computed"):
            rows.append({"Endpoint": ep, "HR (95% CI), weighted": "not computed: " + r.get("reason", ""),
                         "p": "", "HR (95% CI), unadjusted": "", "Median trial, months": "",
                         "Median external, weighted": "", "Median external, unweighted": "", "E-value (CI)": ""})
            continue
        m = r["medians"]
        rows.append({
            "Endpoint": ep,
            "HR (95% CI), weighted": f"{_fmt(r['hr'])} ({_fmt(r['hr_ci'][0])}-{_fmt(r['hr_ci'][1])})",
            "p": _p(r["p"]),
            "HR (95% CI), unadjusted": f"{_fmt(r['hr_unadjusted'])} ({_fmt(r['hr_unadjusted_ci'][0])}-"
                                       f"{_fmt(r['hr_unadjusted_ci'][1])})",
            "Median trial, months": _fmt(m["trial"]["median_months"], 1),
            "Median external, weighted": _fmt(m["external_weighted"]["median_months"], 1),
            "Median external, unweighted": _fmt(m["external_unweighted"]["median_months"], 1),
            "E-value (CI)": f"{_fmt(r['evalue']['estimate'])} ({_fmt(r['evalue']['ci_limit'])})",
        })
    if rows:
        blocks.append(Table(id="external-hr", title=f"Trial versus external control{lab}", data=pd.DataFrame(rows),
                            footnotes=["HR < 1 favours the trial. Weighted Cox model, robust (sandwich) variance "
                                       "clustered by patient (Lin & Wei 1989); weighted Kaplan-Meier medians.",
                                       "E-value: VanderWeele & Ding 2017 (HR converted to a risk ratio for a common "
                                       "outcome)."],
                            population="Trial and external index lines", source="ADTTE; cohort index lines"))
    if km:
        ep = res.get("primary_endpoint")
        if ep in km:
            try:
                from mmtrial.figures.km import km_svg

                c = km[ep]
                curves = {"Trial": c["trial"], "External (weighted)": c["external_weighted"],
                          "External (unweighted)": c["external_unweighted"]}
                blocks.append(Figure(id="external-km", title=f"{ep}: trial and external control{lab}",
                                     alt=f"Kaplan-Meier curves of {ep} for the trial and the weighted external control",
                                     svg=km_svg(curves, f"Kaplan-Meier {ep}", show_ci=False)))
            except Exception:
                pass
    return Section(id=SECTION_ID, title=f"External control{lab}", blocks=blocks, order=SECTION_ORDER)


def tag_cohort_issues(issues: list) -> list:
    """Cohort issues with their domain written ``cohort:<domain>`` (issues.csv then tells the
    cohort's rows from the study's)."""
    from dataclasses import replace

    return [i if str(i.domain).startswith("cohort:") else replace(i, domain=f"cohort:{i.domain}") for i in issues]


def write_input_errors(issues: list, out: Path, study: Path, *, kind: str = "external") -> None:
    """Input errors (data contract v2, output folder rules): OUT receives only ``issues.csv``
    (never a partial report; an earlier report is replaced), as ``mmtrial analyze`` does."""
    from mmtrial._io import finish_dir, new_temp_dir, remove_tree
    from mmtrial.sdtm.issues import write_issues_csv

    tmp = new_temp_dir(out, kind=kind, study=study)
    try:
        write_issues_csv(issues, tmp / "issues.csv")
        finish_dir(tmp, out, kind=kind, status="input-errors", study=study)
    finally:
        if tmp.exists():
            remove_tree(tmp)


def _write(a, tmp: Path, out: Path, study: Path, extra: dict[str, pd.DataFrame], issues: list | None = None,
           *, kind: str = "external") -> None:
    from mmtrial._io import finish_dir
    from mmtrial.pipeline import results_to_json
    from mmtrial.report.render import write_report
    from mmtrial.sdtm.issues import write_issues_csv

    write_issues_csv(list(issues or []), tmp / "issues.csv")  # warnings, as mmtrial analyze writes them
    (tmp / "results.json").write_text(results_to_json(a.results), "utf-8")
    for name, df in extra.items():
        df.to_csv(tmp / name, index=False)
    write_report(a, tmp)
    finish_dir(tmp, out, kind=kind, status="complete", study=study)


def run_external(study_dir: str | Path, cohort: str | Path, out_dir: str | Path, *, protocol=None,
                 on_stage=None) -> ExternalOutput:
    """The trial (STUDY's analysis) against the emulated external cohort (docs/external.md)."""
    from mmtrial._io import check_output_folder, new_temp_dir, remove_tree
    from mmtrial.derive.drugs import DrugDictionary
    from mmtrial.derive.lines import LineRule
    from mmtrial.derive.refractory import RefractoryRule
    from mmtrial.external.cohort import read_cohort
    from mmtrial.external.emulate import emulate_target_trial
    from mmtrial.external.history import derive_cohort_history
    from mmtrial.external.trial import analyse_trial, derive_external_frame, derive_trial_frame
    from mmtrial.pipeline import check_study_folder, load_protocol_file
    from mmtrial.sdtm.issues import StudyInputError
    from mmtrial.steps.prior_therapy import eligibility_rule

    study = check_study_folder(study_dir)
    out = check_output_folder(out_dir, kind="external", study=study)
    proto = load_protocol_file(protocol)
    cfg = external_config(proto)
    stage = on_stage or (lambda s: None)
    stage("read cohort")
    try:
        coh = read_cohort(cohort)
    except StudyInputError as exc:
        issues = tag_cohort_issues(exc.issues)
        write_input_errors(issues, out, study)
        raise StudyInputError(issues) from None
    stage("analyse trial")
    try:
        a = analyse_trial(study, proto)
    except StudyInputError as exc:
        issues = [*exc.issues, *tag_cohort_issues(coh.issues)]
        write_input_errors(issues, out, study)
        raise StudyInputError(issues) from None
    stage("lines and refractory status at every line")
    dictionary = DrugDictionary.load(None)
    hist = derive_cohort_history(coh.frames, dictionary=dictionary,
                                 line_rule=LineRule.from_protocol(proto.section("lines")),
                                 refractory_rule=RefractoryRule.from_protocol(proto.section("refractory")))
    elig = eligibility_rule(proto)
    if not elig.criteria:
        raise UsageError("mmtrial external: the protocol lists no [eligibility] criteria to emulate")
    study_drug = str(proto.regimen.study_drug or "").lower()
    kind, canon = dictionary.resolve(study_drug) if study_drug else ("", "")
    opts = cfg.emulation((canon,) if kind == "drug" else ())
    stage("emulate the target trial")
    em = emulate_target_trial(hist, coh.frames, eligibility=elig, options=opts, dictionary=dictionary)
    trial = derive_trial_frame(a)
    ext = derive_external_frame(em.index)
    if len(ext) == 0:
        raise UsageError("mmtrial external: no line of the cohort meets the eligibility criteria "
                         "(see the attrition: rerun with fewer criteria or another cohort)")
    stage("weight and compare")
    cmp = compare_external(trial, ext, covariates=cfg.covariates, estimand=cfg.estimand,
                           trim=tuple(cfg.trim) if cfg.trim else None, truncate_quantile=cfg.truncate_quantile,
                           endpoints=tuple(cfg.endpoints))
    synthetic = bool(a.study.synthetic or coh.synthetic)
    res = dict(cmp.results)
    res.update({"kind": "external control (IPTW)", "synthetic": synthetic,
                "label": SYNTHETIC_LABEL if synthetic else "",
                "cohort": {"source": str(cohort), "format": coh.kind, "patients": int(coh.frames["dm"]["USUBJID"].nunique())},
                "emulation": opts.as_dict(), "emulation_text": opts.describe(),
                "eligibility": [{"id": c.id, "label": c.label, "terms": list(c.terms)} for c in elig.criteria],
                "attrition": em.attrition.astype(object).where(em.attrition.notna(), None).to_dict(orient="records")})
    a.results = {"study": {"id": proto.study.id, "synthetic": a.study.synthetic, "protocol": proto.source_path},
                 "external": res}
    a.methods = {"external": {"emulation": opts.as_dict(), "config": cfg.model_dump()}}
    notes = [opts.describe(), f"Eligibility: {elig.source}."]
    a.sections = [build_external_section(res, attrition=em.attrition, smd=cmp.smd, km=cmp.km, synthetic=synthetic,
                                         notes=notes)]
    stage("write outputs")
    tmp = new_temp_dir(out, kind="external", study=study)
    try:
        d = cmp.data
        weights = d[["GROUP", "ID", "CLUSTER", "PS", "W"]].assign(GROUP=np.where(d["GROUP"] == 1, "trial", "external"))
        _write(a, tmp, out, study, {"attrition.csv": em.attrition, "index_lines.csv": em.index, "weights.csv": weights,
                                    "balance.csv": cmp.smd},
               issues=[*a.issues, *tag_cohort_issues([*coh.issues, *hist.issues])])
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return ExternalOutput(out_dir=Path(out_dir), results=res, report_html=Path(out_dir) / "report.html")


# ---------------------------------------------------------------------------------------- MAIC

def load_target(path: str | Path) -> dict[str, Any]:
    """A MAIC target file (TOML; e.g. external/targets/mammoth.toml), or a bundled name (``mammoth``)."""
    p = Path(path)
    if not p.is_file():
        name = f"{p.name.lower().removesuffix('.toml')}.toml"
        try:
            text = resources.files("mmtrial.external").joinpath("targets", name).read_text("utf-8")
        except (FileNotFoundError, OSError):
            raise UsageError(f"--target {path}: not found (bundled targets: mammoth)") from None
        src = f"bundled {name}"
    else:
        text = p.read_text("utf-8")
        src = str(p)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--target {path}: not valid TOML: {exc}") from None
    t = doc.get("target")
    if not isinstance(t, dict) or not t.get("baseline"):
        raise UsageError(f"--target {path}: needs [target] with [[target.baseline]] rows (variable, mean)")
    for i, b in enumerate(t["baseline"]):
        if "variable" not in b or "mean" not in b:
            raise UsageError(f"--target {path}: target.baseline[{i}] needs variable and mean")
    t["path"] = src
    return t


def run_maic(study_dir: str | Path, target: str | Path, out_dir: str | Path, *, protocol=None, n_boot: int = 1000,
             seed: int = 1, on_stage=None) -> ExternalOutput:
    """Unanchored MAIC of the trial against a published cohort (stats/maic.py)."""
    from mmtrial._io import check_output_folder, new_temp_dir, remove_tree
    from mmtrial.external.trial import analyse_trial, derive_trial_frame
    from mmtrial.pipeline import check_study_folder, load_protocol_file
    from mmtrial.stats.maic import compare_maic

    study = check_study_folder(study_dir)
    out = check_output_folder(out_dir, kind="maic", study=study)
    proto = load_protocol_file(protocol)
    tgt = load_target(target)
    stage = on_stage or (lambda s: None)
    stage("analyse trial")
    from mmtrial.sdtm.issues import StudyInputError

    try:
        a = analyse_trial(study, proto)
    except StudyInputError as exc:
        write_input_errors(exc.issues, out, study, kind="maic")
        raise
    trial = derive_trial_frame(a)
    base = {b["variable"].upper(): float(b["mean"]) for b in tgt["baseline"]}
    missing = [v for v in base if v not in trial or trial[v].isna().all()]
    if missing:
        raise UsageError(f"--target: the trial has no values for {missing}; matchable: AGE, MALE, NPRIOR, PENTAFL, "
                         "TCRFL, QUADFL, DIAGYRS, HRCYTOFL, LSTREFFL")
    X = trial[list(base)].astype(float)
    keep = X.notna().all(axis=1).to_numpy()
    # a target outside the trial's range (e.g. 79% triple-class refractory vs a trial where all are)
    # cannot be reached by positive weights: the variable is not matched, and the report says so
    unmatched = []
    for v, m in list(base.items()):
        lo, hi = float(X.loc[keep, v].min()), float(X.loc[keep, v].max())
        if not lo < m < hi:
            unmatched.append(f"{v}: target {m:g} outside the trial's range [{lo:g}, {hi:g}]; not matched")
            del base[v]
    if not base:
        raise UsageError("--target: no baseline variable can be matched (every target lies outside the trial's range)")
    X = X[list(base)]
    stage("weight and compare")
    endpoints: dict[str, Any] = {}
    first = None
    for ep in ("OS", "PFS"):
        pub = tgt.get("outcomes", {}).get(ep)
        if pub is None:
            continue
        t = trial[f"{ep}DAYS"].to_numpy(float) / DAYS_PER_MONTH
        e = trial[f"{ep}EVENT"].to_numpy(float)
        ok = keep & np.isfinite(t) & np.isfinite(e)
        r = compare_maic(X[ok], base, time=t[ok], event=e[ok].astype(int),
                         published={"median": float(pub["median_months"])}, n_boot=n_boot, seed=seed)
        first = first or r
        endpoints[ep] = {"median_months_unweighted": r.estimate_unweighted, "median_months_weighted": r.estimate_weighted,
                         "ci_months": list(r.ci), "published_median_months": float(pub["median_months"]),
                         "published_ci_months": pub.get("ci"), "published_status": pub.get("status", "U"),
                         "published_source": pub.get("source", ""), "difference_months": r.difference,
                         "n_boot": r.n_boot, "boot_failed": r.boot_failed}
    if first is None:
        raise UsageError("--target: no [target.outcomes.OS] or [target.outcomes.PFS] median to compare with")
    synthetic = bool(a.study.synthetic)
    bal = first.balance
    res = {
        "kind": "MAIC", "method": first.method, "synthetic": synthetic, "label": SYNTHETIC_LABEL if synthetic else "",
        "target": {"id": tgt.get("id"), "source": tgt.get("source"), "n": tgt.get("n"), "file": tgt["path"],
                   "baseline": [{k: b.get(k) for k in ("variable", "label", "mean", "status", "source")} for b in tgt["baseline"]]},
        "n": {"trial": int(keep.sum()), "target": tgt.get("n")},
        "ess": {"trial": round(float(first.ess), 2)},
        "smd": None,
        "balance": bal.to_dict(orient="records"), "unmatched": unmatched,
        "endpoints": endpoints, "primary_endpoint": next(iter(endpoints)),
        "hr": None, "hr_ci": None, "p": None,
        "note": "Unanchored MAIC compares the weighted trial median with the published median; no hazard ratio "
                "without the comparator's individual data (NICE DSU TSD 18).",
    }
    a.results = {"study": {"id": proto.study.id, "synthetic": synthetic, "protocol": proto.source_path},
                 "external": res}
    lab = f" ({SYNTHETIC_LABEL})" if synthetic else ""
    bt = pd.DataFrame({"Variable": bal["variable"], "Target": bal["target"].map(lambda v: _fmt(v, 3)),
                       "Trial, unweighted": bal["mean_unweighted"].map(lambda v: _fmt(v, 3)),
                       "Trial, weighted": bal["mean_weighted"].map(lambda v: _fmt(v, 3))})
    status = {b["variable"].upper(): b.get("status", "U") for b in tgt["baseline"]}
    bt["Target status"] = bt["Variable"].map(status).fillna("")
    ot = pd.DataFrame([{"Endpoint": ep, "Trial median, unweighted (months)": _fmt(v["median_months_unweighted"], 1),
                        "Trial median, weighted (95% bootstrap CI)": f"{_fmt(v['median_months_weighted'], 1)} "
                        f"({_fmt(v['ci_months'][0], 1)}-{_fmt(v['ci_months'][1], 1)})",
                        "Published median (months)": _fmt(v["published_median_months"], 1),
                        "Status": v["published_status"]} for ep, v in endpoints.items()])
    blocks = [Text(f"{first.method}. Target: {tgt.get('source')}. Trial n = {int(keep.sum())}, effective sample size "
                   f"{first.ess:.1f}.{lab}"),
              Table(id="maic-balance", title=f"MAIC: baseline after weighting{lab}", data=bt,
                    footnotes=["Status C: confirmed in the publication; U: unconfirmed (a median used as a mean, or a "
                               "companion abstract).", *unmatched], population="Trial", source=f"ADSL; {tgt['path']}"),
              Table(id="maic-outcomes", title=f"MAIC: weighted trial outcome versus the published cohort{lab}", data=ot,
                    footnotes=[res["note"], "Bootstrap: patients resampled, weights re-estimated in each resample."],
                    population="Trial", source=f"ADTTE; {tgt['path']}")]
    a.sections = [Section(id="maic", title=f"Matching-adjusted indirect comparison{lab}", blocks=blocks, order=SECTION_ORDER)]
    a.methods = {"maic": {"target": tgt["path"], "n_boot": n_boot, "seed": seed}}
    tmp = new_temp_dir(out, kind="maic", study=study)
    try:
        w = pd.DataFrame({"ID": trial.loc[keep, "ID"].to_numpy(), "W": first.weights})
        _write(a, tmp, out, study, {"maic_weights.csv": w, "maic_balance.csv": bal}, issues=a.issues, kind="maic")
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return ExternalOutput(out_dir=Path(out_dir), results=res, report_html=Path(out_dir) / "report.html")
