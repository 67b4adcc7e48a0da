"""Tables of the response classifier (issue 8): performance, selection frequency, final model.

Numbers come typed from :mod:`mmtrial.stats.classifier`; this module only formats them and
writes footnotes from the result's own option fields, so the text cannot drift from the method.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmtrial.report.model import Table
from mmtrial.stats import proportion as _proportion
from mmtrial.stats.classifier import MODEL_LABELS, ClassifierResult, Performance, ProportionEstimate
from mmtrial.tables.format import NE, fmt_ci, fmt_num, fmt_p

_CI_LABELS: dict[str, str] = getattr(_proportion, "CI_METHOD_LABELS", {"wilson": "Wilson (score)"})

AUC_METHOD_LABELS = {
    "delong": "DeLong (DeLong et al. 1988)",
    "bootstrap": "stratified percentile bootstrap",
}


def ci_label(method: str, level: float) -> str:
    """``95% CI, Wilson (score)``."""
    return f"{level * 100:g}% CI, {_CI_LABELS.get(method, method)}"


def _prop_cells(p: ProportionEstimate) -> tuple[str, str, str]:
    if p.n == 0 or p.estimate is None:
        return f"{p.x}/{p.n}", NE, fmt_ci(None)
    return f"{p.x}/{p.n}", fmt_num(100 * p.estimate, 1), fmt_ci(p.ci, 1, scale=100)


def _auc_cells(perf: Performance) -> tuple[str, str, str]:
    a = perf.auc
    if a.estimate is None:
        return f"{a.n_positive} R / {a.n_negative} NR", NE, fmt_ci(None)
    return f"{a.n_positive} R / {a.n_negative} NR", fmt_num(a.estimate, 3), fmt_ci(a.ci, 3)


def _subjects(perf: Performance, which: str) -> list[str]:
    d = perf.predictions
    y = d["y"].to_numpy(dtype=bool)
    pr = d["predicted"].to_numpy(dtype=bool)
    mask = {"correct": y == pr, "tp": y & pr, "tn": ~y & ~pr}[which]
    return [str(s) for s in d.index[mask]]


def performance_table(result: ClassifierResult, *, footnotes: list[str], population: str = "") -> Table:
    """Accuracy, sensitivity, specificity (n/N, %, CI), AUC (CI) and the permutation p-value.

    Rows are grouped "Cross-validated (training set)" and, when present, "Validation set
    (final model)". The n/N cells link to the subjects counted (correctly classified, true
    positives, true negatives).
    """
    rows: list[dict[str, str]] = []
    groups: list[str] = []
    cells: dict[tuple[int, str], list[str]] = {}
    o = result.options
    sets: list[tuple[str, Performance]] = [
        (f"Cross-validated, training set (n = {result.n})", result.cv)]
    if result.validation is not None:
        sets.append((f"Validation set, final model (n = {len(result.validation.predictions)})", result.validation))
    for label, perf in sets:
        for name, est, which in (("Accuracy", perf.accuracy, "correct"),
                                 ("Sensitivity (responders predicted responders)", perf.sensitivity, "tp"),
                                 ("Specificity (non-responders predicted non-responders)", perf.specificity, "tn")):
            nn, e, ci = _prop_cells(est)
            cells[(len(rows), "n/N")] = _subjects(perf, which)
            rows.append({"Statistic": name, "n/N": nn, "Estimate": f"{e}%" if e != NE else e,
                         f"{o.level * 100:g}% CI": ci})
            groups.append(label)
        nn, e, ci = _auc_cells(perf)
        rows.append({"Statistic": "Area under the ROC curve", "n/N": nn, "Estimate": e,
                     f"{o.level * 100:g}% CI": ci})
        groups.append(label)
        if perf is result.cv and result.permutation is not None:
            pt = result.permutation
            rows.append({"Statistic": f"Permutation test ({pt.n_permutations} permutations, statistic: "
                                      f"{pt.statistic})",
                         "n/N": "", "Estimate": f"p = {_fmt_p(pt.p_value)}", f"{o.level * 100:g}% CI": ""})
            groups.append(label)
    data = pd.DataFrame(rows)
    return Table(id="biomarker-performance", title="Response classifier: performance", data=data,
                 footnotes=footnotes, population=population, source="LB (LBCAT = BIOMARKER), ADSL",
                 stub="Statistic", groups=groups, cell_subjects=cells)


def _fmt_p(p: float) -> str:
    return fmt_p(p)


def selection_table(result: ClassifierResult, *, max_rows: int = 25, footnotes: list[str] | None = None,
                    population: str = "") -> Table:
    """How often each marker was selected across the outer folds (markers selected at least once)."""
    counts = result.selection_counts
    final = set(result.selected_markers)
    shown = counts.iloc[:max_rows]
    data = pd.DataFrame({
        "Marker": [str(m) for m in shown.index],
        "Folds selecting": [f"{int(c)}/{result.n_folds}" for c in shown.to_numpy()],
        "Selection frequency": [f"{fmt_num(100 * c / result.n_folds, 1)}%" for c in shown.to_numpy()],
        "In final model": ["Yes" if m in final else "No" for m in shown.index],
    })
    notes = [f"Each of the {result.n_folds} outer cross-validation folds selects its own "
             f"{_k_text(result)} markers from its training subjects only; a marker selected in every fold "
             "is stable, one selected rarely is likely noise."]
    if len(counts) > max_rows:
        notes.append(f"{len(counts) - max_rows} further markers were selected in at least one fold "
                     "(all in results.json).")
    notes.append(f"{result.n_markers} markers in the panel; {len(counts)} selected at least once.")
    return Table(id="biomarker-selection", title="Response classifier: marker selection frequency across folds",
                 data=data, footnotes=notes + list(footnotes or []), population=population,
                 source="LB (LBCAT = BIOMARKER), ADSL", stub="Marker")


def _k_text(result: ClassifierResult) -> str:
    o = result.options
    return f"k = {o.k_markers}" if not o.k_grid else f"k (tuned among {', '.join(map(str, o.k_values))})"


def coefficient_table(result: ClassifierResult, *, footnotes: list[str] | None = None,
                      population: str = "") -> Table:
    """The final model: its markers with standardised coefficients and odds ratios (or importances)."""
    freq = result.selection_frequency
    markers = list(result.coefficients.index)
    sel_freq = [f"{fmt_num(100 * float(freq.get(m, 0.0)), 1)}%" for m in markers]
    if result.options.model == "random-forest":
        data = pd.DataFrame({"Marker": markers,
                             "Importance (mean decrease in impurity)": [fmt_num(v, 3) for v in result.coefficients],
                             "Selection frequency in CV": sel_freq})
        notes = ["Importances of the random forest refitted on all training subjects; they sum to 1."]
    else:
        coef = result.coefficients.to_numpy(dtype=float)
        data = pd.DataFrame({
            "Marker": [*markers, "(Intercept)"],
            "Coefficient (log-odds per SD)": [fmt_num(v, 3) for v in coef] + [fmt_num(result.intercept, 3)],
            "Odds ratio per SD": [fmt_num(math.exp(v), 2) for v in coef] + [""],
            "Selection frequency in CV": [*sel_freq, ""],
        })
        notes = ["Coefficients of the final model (the whole procedure refitted on all training subjects) on "
                 "standardised markers (per training-set SD). A coefficient of 0 means the penalty removed a "
                 "selected marker. Penalised coefficients are shrunk towards 0 and carry no valid CI or p-value."]
    params = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                       for k, v in result.final_params.items())
    notes.append(f"Model: {MODEL_LABELS[result.options.model]}; tuned parameters: {params}.")
    return Table(id="biomarker-coefficients", title="Response classifier: final model", data=data,
                 footnotes=notes + list(footnotes or []), population=population,
                 source="LB (LBCAT = BIOMARKER), ADSL", stub="Marker")


def method_footnotes(result: ClassifierResult, *, responder_label: str, extra: list[str] | None = None) -> list[str]:
    """The footnotes stating the honest procedure, generated from the options in force."""
    o = result.options
    grid = {"l1-logistic": f"C in {{{', '.join(f'{c:g}' for c in o.c_grid)}}}",
            "elasticnet-logistic": (f"C in {{{', '.join(f'{c:g}' for c in o.c_grid)}}} and l1_ratio in "
                                    f"{{{', '.join(f'{r:g}' for r in o.l1_ratio_grid)}}}"),
            "random-forest": (f"min_samples_leaf in {{{', '.join(map(str, o.rf_min_samples_leaf_grid))}}} "
                              f"({o.rf_trees} trees)")}[o.model]
    if o.k_grid:
        grid += f" and k in {{{', '.join(map(str, o.k_values))}}}"
    notes = [
        f"Responder: {responder_label}. {result.n_responders} responders and {result.n_nonresponders} "
        f"non-responders in the training set; {result.n_markers} markers.",
        f"Model: {MODEL_LABELS[o.model]} in a scikit-learn pipeline "
        + ("(median imputation, " if result.missing_values else "(")
        + f"selection of the top {_k_text(result)} markers by two-group F statistic, standardisation, model). "
        "Every step is fitted on training folds only: marker selection happens inside the cross-validation, "
        "never on all subjects (Ambroise & McLachlan, PNAS 2002).",
        f"Nested cross-validation ({o.cv_label}): {grid} tuned by the inner folds ({o.tuning_score}) within each "
        "outer training fold (Varma & Simon, BMC Bioinformatics 2006); accuracy, sensitivity, specificity and AUC "
        "come from the outer-fold predictions, each subject predicted once by a model that never saw it. "
        f"Predicted responder when the probability exceeds {o.threshold:g}.",
        f"Accuracy, sensitivity, specificity: {ci_label(o.accuracy_ci, o.level)}; it treats the out-of-fold "
        "predictions as independent, which they are only approximately. AUC: "
        f"{o.level * 100:g}% CI, {AUC_METHOD_LABELS[o.auc_ci]}"
        + (f", {o.bootstrap_reps} replicates" if o.auc_ci == "bootstrap" else "") + ".",
    ]
    if result.permutation is not None:
        notes.append(
            f"Permutation test: the whole procedure (selection and tuning included) was rerun on "
            f"{result.permutation.n_permutations} random permutations of the response labels; p = (1 + number of "
            f"permutations with {result.permutation.statistic} >= observed) / (1 + permutations) "
            "(Ojala & Garriga, JMLR 2010; Phipson & Smyth 2010).")
    else:
        notes.append("Permutation test not run (permutations = 0).")
    if result.validation is not None:
        notes.append("Validation set: predicted once by the final model fitted on the training set only "
                     "(protocol-designated split, LBSCAT TRAINING/VALIDATION).")
    if result.missing_values:
        notes.append(f"{result.missing_values} missing marker values were imputed by the training-fold median "
                     "inside the pipeline.")
    notes.append(f"Random seed {o.seed}; results are reproducible under the same seed.")
    return notes + list(extra or [])


def selection_frequency_frame(result: ClassifierResult) -> pd.DataFrame:
    """Selection counts and frequencies as a numeric frame (for listings and exports)."""
    c = result.selection_counts
    return pd.DataFrame({"MARKER": c.index.astype(str), "COUNT": c.to_numpy(dtype=np.int64),
                         "FREQ": (c / result.n_folds).to_numpy(dtype=float),
                         "FINALFL": np.where(c.index.isin(result.selected_markers), "Y", "N")})
