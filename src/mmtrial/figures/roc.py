"""ROC curve of the response classifier (issue 8).

The cross-validated curve is drawn from the out-of-fold predicted probabilities (each subject
scored by a model that never saw it); the validation-set curve, when the protocol designates a
split, from the final model's probabilities. Convert with
:func:`mmtrial.figures.svg.figure_to_svg`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmtrial.tables.format import fmt_num

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure as MplFigure

    from mmtrial.stats.classifier import Performance


def _auc_text(perf: Performance) -> str:
    a = perf.auc
    if a.estimate is None:
        return "AUC NE"
    ci = "" if a.ci is None else f" ({fmt_num(a.ci[0], 2)}-{fmt_num(a.ci[1], 2)})"
    return f"AUC {fmt_num(a.estimate, 2)}{ci}"


def roc_figure(cv: Performance, validation: Performance | None = None) -> tuple[MplFigure, str]:
    """The ROC figure and its alt text.

    Parameters
    ----------
    cv : cross-validated performance (out-of-fold predictions) of the training set.
    validation : the final model's performance on the validation set, or None.

    Rule
    ----
    ROC = (1 - specificity, sensitivity) over all thresholds of the predicted probability
    (``sklearn.metrics.roc_curve`` without dropping points), joined by straight lines from (0, 0)
    to (1, 1), so tied scores give a diagonal segment and the area under the drawn curve is the
    reported AUC; the dashed diagonal is chance. The legend gives each AUC with its CI (method in the footnote).
    """
    from mmtrial.figures.svg import new_figure

    fig = new_figure(figsize=(5.0, 5.0), dpi=100)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#969696", lw=0.8, ls="--", label="Chance")
    curves = [("Cross-validated (training set)", cv, "#08519c", "-")]
    if validation is not None:
        curves.append(("Final model, validation set", validation, "#cb181d", "-."))
    described = []
    for label, perf, colour, ls in curves:
        roc = perf.roc
        n1 = int(perf.predictions["y"].sum())
        n0 = int(len(perf.predictions) - n1)
        if len(roc) == 0:
            described.append(f"{label}: not drawn (only one class, {n1} responders and {n0} non-responders)")
            continue
        ax.plot(roc["fpr"].to_numpy(), roc["tpr"].to_numpy(), color=colour, lw=1.6, ls=ls,
                label=f"{label}: {_auc_text(perf)}; {n1} R / {n0} NR")
        described.append(f"{label} ({n1} responders, {n0} non-responders): {_auc_text(perf)}")
        acc = perf.accuracy
        if acc.n:
            fpr = 1 - (perf.specificity.estimate if perf.specificity.estimate is not None else np.nan)
            tpr = perf.sensitivity.estimate if perf.sensitivity.estimate is not None else np.nan
            ax.plot([fpr], [tpr], marker="o", color=colour, ms=5, ls="none")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    alt = ("Receiver operating characteristic curves of the response classifier, sensitivity against "
           "1 - specificity, with the chance diagonal. " + "; ".join(described)
           + ". Dots mark the operating point of the probability threshold.")
    return fig, alt
