"""Honest small-sample response classifier from a pre-treatment marker panel (issue 8).

STORM reported a four-protein classifier of response from pre-treatment blood of 35 patients
(16 responders, 19 non-responders), AUC 0.86, and 83% accuracy (95% CI 55-95, the Wilson
interval of 10/12) in a 12-patient validation set (../shared/reference/domain.md section 1.11;
the protein names and the build method are tagged U there). With 35 subjects and thousands of
markers, selecting markers on all the data and cross-validating afterwards reports an accuracy
that is not real (Ambroise & McLachlan, PNAS 2002;99:6562-6; Simon et al., JNCI 2003;95:14-18).
This module makes the honest procedure the only one on offer:

* every step that looks at the labels (marker selection, scaling, imputation, the model and the
  tuning of its penalty) sits inside a scikit-learn :class:`~sklearn.pipeline.Pipeline` fitted
  on the training fold only;
* the penalty (and optionally k) is tuned by an inner cross-validation within each outer
  training fold (nested cross-validation; Varma & Simon, BMC Bioinformatics 2006;7:91);
* the whole procedure, selection and tuning included, is repeated on label permutations for a
  permutation p-value (Ojala & Garriga, JMLR 2010;11:1833-63), computed as
  ``(1 + #{null >= observed}) / (1 + B)`` (Phipson & Smyth, Stat Appl Genet Mol Biol 2010;9:39).

The public entry point is :func:`fit_response_classifier`; it needs no pipeline or study.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial.stats import _dist
from mmtrial.stats import proportion as _proportion_module
from mmtrial.stats.proportion import proportion_ci

ModelName = Literal["l1-logistic", "elasticnet-logistic", "random-forest"]
AucCiMethod = Literal["delong", "bootstrap"]
TuningScore = Literal["roc_auc", "neg_log_loss", "accuracy"]
PermutationStatistic = Literal["accuracy", "auc"]
MissingRule = Literal["impute-median", "error"]

MODELS: tuple[str, ...] = ("l1-logistic", "elasticnet-logistic", "random-forest")
AUC_CI_METHODS: tuple[str, ...] = ("delong", "bootstrap")
TUNING_SCORES: tuple[str, ...] = ("roc_auc", "neg_log_loss", "accuracy")
PERMUTATION_STATISTICS: tuple[str, ...] = ("accuracy", "auc")
MISSING_RULES: tuple[str, ...] = ("impute-median", "error")
#: CI methods accepted for accuracy, sensitivity and specificity (those of ``proportion_ci``).
ACCURACY_CI_METHODS: tuple[str, ...] = tuple(
    getattr(_proportion_module, "CI_METHODS", ("clopper-pearson", "wilson")))

#: liblinear's constant feature for the intercept (see :func:`_model`).
INTERCEPT_SCALING = 10.0

#: scikit-learn releases (major.minor) on which tests/stats/test_classifier_fast.py has shown the
#: direct paths (liblinear fitter, stratified folds, imputer and scaler arithmetic) equal to
#: scikit-learn's estimators bit for bit. On these the analysis does not import scikit-learn at
#: all (issue 15: its import costs about 0.5 s of CPU); on any other release the first call
#: compares both at run time, as before, and falls back to scikit-learn on a difference.
VERIFIED_SKLEARN: tuple[str, ...] = ("1.9",)

#: Default seed: STORM's NEJM publication date (2019-08-22), any fixed integer would do.
DEFAULT_SEED = 20190822

MODEL_LABELS: dict[str, str] = {
    "l1-logistic": "L1-penalised (lasso) logistic regression",
    "elasticnet-logistic": "elastic-net penalised logistic regression",
    "random-forest": "random forest",
}


def _check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"ClassifierOptions: {name} must be one of {list(allowed)}; got {value!r}")


def _check_positive_grid(name: str, grid: tuple[float, ...], *, upper: float | None = None) -> None:
    if len(grid) == 0:
        raise ValueError(f"ClassifierOptions: {name} must have at least one value; got ()")
    for v in grid:
        if not (v > 0) or (upper is not None and v > upper) or math.isinf(v):
            rng = f"in (0, {upper}]" if upper is not None else "positive and finite"
            raise ValueError(f"ClassifierOptions: every {name} value must be {rng}; got {v!r}")


@dataclass(frozen=True)
class ClassifierOptions:
    """Method choices of the response classifier (protocol section ``[biomarker]``).

    Options
    -------
    model : "l1-logistic" (default), "elasticnet-logistic" or "random-forest"
        L1 (lasso) logistic regression is the default: sparse and interpretable. Elastic net
        mixes L1 and L2 (``l1_ratio_grid``); the random forest is the non-linear alternative.
    k_markers : int, default 4
        Markers kept by the univariate screen inside each training fold (STORM: four proteins).
    k_grid : tuple of int, default () (k fixed)
        When given, k is tuned among these values by the inner cross-validation.
    outer_folds : int, default 5
        Stratified k-fold outer cross-validation; 0 means leave-one-out.
    inner_folds : int, default 3
        Stratified k-fold inner cross-validation for the tuning (nested CV).
    c_grid : tuple of float, default (0.03, 0.1, 0.3, 1, 3, 10)
        Inverse penalty strengths tried for the logistic models (ascending: on a tie the
        first, i.e. the more penalised, model wins, as in ``GridSearchCV``).
    l1_ratio_grid : tuple of float, default (0.5,)
        Elastic-net mixing values tried (1 = lasso).
    rf_trees : int, default 100; rf_min_samples_leaf_grid : default (1, 3)
        Random forest size and its tuned leaf size.
    class_weight : "balanced" (default) or "none"
        "balanced" weights classes inversely to their frequency (responders are the minority).
    tuning_score : "roc_auc" (default), "neg_log_loss" or "accuracy"
        What the inner cross-validation maximises (mean over inner folds).
    threshold : float, default 0.5
        A subject is predicted a responder when the predicted probability exceeds it
        (scikit-learn's ``predict`` rule).
    accuracy_ci : default "wilson"
        CI for accuracy, sensitivity and specificity (any ``proportion_ci`` method). Wilson
        reproduces STORM's published 55-95 for 10/12 (validation.md section 1).
    auc_ci : "delong" (default) or "bootstrap"; bootstrap_reps : default 2000
        DeLong et al., Biometrics 1988;44:837-45 (as ``pROC::ci.auc``), or a stratified
        percentile bootstrap.
    permutations : int, default 100; permutation_statistic : "accuracy" (default) or "auc"
        Label permutations of the whole procedure (0 skips the test).
    missing : "impute-median" (default) or "error"
        Missing marker values are imputed by the training-fold median inside the pipeline.
    level : float, default 0.95
    seed : int, default 20190822
        Seeds every random choice (fold assignment, forest, permutations, bootstrap).
    n_jobs : int, default 1
        Worker processes for the permutations (results do not depend on it).
    """

    model: ModelName = "l1-logistic"
    k_markers: int = 4
    k_grid: tuple[int, ...] = ()
    outer_folds: int = 5
    inner_folds: int = 3
    c_grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    l1_ratio_grid: tuple[float, ...] = (0.5,)
    rf_trees: int = 100
    rf_min_samples_leaf_grid: tuple[int, ...] = (1, 3)
    class_weight: Literal["balanced", "none"] = "balanced"
    tuning_score: TuningScore = "roc_auc"
    threshold: float = 0.5
    accuracy_ci: str = "wilson"
    auc_ci: AucCiMethod = "delong"
    bootstrap_reps: int = 2000
    permutations: int = 100
    permutation_statistic: PermutationStatistic = "accuracy"
    missing: MissingRule = "impute-median"
    level: float = 0.95
    seed: int = DEFAULT_SEED
    n_jobs: int = 1

    def __post_init__(self) -> None:
        _check_choice("model", self.model, MODELS)
        _check_choice("auc_ci", self.auc_ci, AUC_CI_METHODS)
        _check_choice("tuning_score", self.tuning_score, TUNING_SCORES)
        _check_choice("permutation_statistic", self.permutation_statistic, PERMUTATION_STATISTICS)
        _check_choice("missing", self.missing, MISSING_RULES)
        _check_choice("class_weight", self.class_weight, ("balanced", "none"))
        _check_choice("accuracy_ci", self.accuracy_ci, ACCURACY_CI_METHODS)
        for name in ("k_grid", "c_grid", "l1_ratio_grid", "rf_min_samples_leaf_grid"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if int(self.k_markers) != self.k_markers or self.k_markers < 1:
            raise ValueError(f"ClassifierOptions: k_markers must be an integer >= 1; got {self.k_markers!r}")
        if any(int(k) != k or k < 1 for k in self.k_grid):
            raise ValueError(f"ClassifierOptions: k_grid values must be integers >= 1; got {self.k_grid!r}")
        if self.outer_folds == 1 or self.outer_folds < 0:
            raise ValueError(
                f"ClassifierOptions: outer_folds must be >= 2 (or 0 for leave-one-out); got {self.outer_folds!r}"
            )
        if self.inner_folds < 2:
            raise ValueError(f"ClassifierOptions: inner_folds must be >= 2; got {self.inner_folds!r}")
        _check_positive_grid("c_grid", self.c_grid)
        _check_positive_grid("l1_ratio_grid", self.l1_ratio_grid, upper=1.0)
        if len(self.rf_min_samples_leaf_grid) == 0 or any(v < 1 for v in self.rf_min_samples_leaf_grid):
            raise ValueError(
                f"ClassifierOptions: rf_min_samples_leaf_grid values must be >= 1; got {self.rf_min_samples_leaf_grid!r}"
            )
        if self.rf_trees < 1:
            raise ValueError(f"ClassifierOptions: rf_trees must be >= 1; got {self.rf_trees!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"ClassifierOptions: threshold must be in (0, 1); got {self.threshold!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"ClassifierOptions: level must be in (0, 1); got {self.level!r}")
        if self.permutations < 0:
            raise ValueError(f"ClassifierOptions: permutations must be >= 0; got {self.permutations!r}")
        if self.bootstrap_reps < 1:
            raise ValueError(f"ClassifierOptions: bootstrap_reps must be >= 1; got {self.bootstrap_reps!r}")
        if self.n_jobs == 0:
            raise ValueError(f"ClassifierOptions: n_jobs must be non-zero (-1 = all cores); got {self.n_jobs!r}")

    @property
    def k_values(self) -> tuple[int, ...]:
        """The k values considered (the tuned grid, or the fixed ``k_markers``)."""
        return tuple(sorted({int(k) for k in self.k_grid})) if self.k_grid else (int(self.k_markers),)

    @property
    def cv_label(self) -> str:
        outer = "leave-one-out" if self.outer_folds == 0 else f"stratified {self.outer_folds}-fold"
        return f"{outer} outer cross-validation, stratified {self.inner_folds}-fold inner cross-validation"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# --------------------------------------------------------------------------------------------
# Result objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProportionEstimate:
    """x/n with its confidence interval (accuracy, sensitivity, specificity)."""

    x: int
    n: int
    estimate: float | None
    ci: tuple[float, float] | None
    method: str
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "n": self.n, "estimate": self.estimate,
                "ci": None if self.ci is None else list(self.ci), "method": self.method, "level": self.level}


@dataclass(frozen=True)
class AucEstimate:
    """Area under the ROC curve with its confidence interval (None when one class is empty)."""

    estimate: float | None
    ci: tuple[float, float] | None
    method: str
    level: float
    n_positive: int
    n_negative: int
    se: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci": None if self.ci is None else list(self.ci),
                "method": self.method, "level": self.level, "se": self.se,
                "n_positive": self.n_positive, "n_negative": self.n_negative}


@dataclass(frozen=True)
class PermutationTest:
    """Permutation test of the whole procedure (selection and tuning repeated per permutation)."""

    statistic: str
    observed: float
    p_value: float
    n_permutations: int
    null: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "observed": self.observed, "p_value": self.p_value,
                "n_permutations": self.n_permutations,
                "method": "whole-procedure label permutation, p = (1 + #{null >= observed}) / (1 + B)"}


@dataclass(frozen=True)
class Performance:
    """Accuracy, sensitivity, specificity and AUC of one set of predictions."""

    accuracy: ProportionEstimate
    sensitivity: ProportionEstimate
    specificity: ProportionEstimate
    auc: AucEstimate
    predictions: pd.DataFrame  # index = subject; y, probability, predicted (and fold for CV)
    roc: pd.DataFrame  # fpr, tpr, threshold

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy.to_dict(), "sensitivity": self.sensitivity.to_dict(),
                "specificity": self.specificity.to_dict(), "auc": self.auc.to_dict()}


@dataclass(frozen=True)
class ClassifierResult:
    """What :func:`fit_response_classifier` returns.

    Attributes
    ----------
    options : the options in force.
    n, n_responders, n_nonresponders, n_markers : sizes of the training data.
    cv : :class:`Performance` of the out-of-fold predictions (each subject predicted once, by a
        model that never saw it, its markers selected and its penalty tuned without it).
    permutation : :class:`PermutationTest` or None when ``permutations == 0``.
    selection_counts : Series (marker -> number of outer folds whose model selected it), sorted
        by count descending then marker name; ``n_folds`` is the number of outer folds.
    fold_params : tuned parameters per outer fold.
    selected_markers : markers of the final model (the procedure refitted on all training data).
    coefficients : Series (marker -> standardised log-odds coefficient, or impurity importance for
        the forest); ``coefficient_kind`` names which; ``intercept`` (logistic models).
    final_params : tuned parameters of the final model.
    validation : :class:`Performance` of the final model on the validation set, or None.
    missing_values : number of missing marker values (imputed inside the pipeline).
    """

    options: ClassifierOptions
    n: int
    n_responders: int
    n_nonresponders: int
    n_markers: int
    cv: Performance
    permutation: PermutationTest | None
    selection_counts: pd.Series
    n_folds: int
    fold_params: tuple[dict[str, Any], ...]
    selected_markers: tuple[str, ...]
    coefficients: pd.Series
    coefficient_kind: str
    intercept: float | None
    final_params: dict[str, Any]
    validation: Performance | None = None
    missing_values: int = 0
    final_pipeline: Any = field(default=None, repr=False, compare=False)

    @property
    def selection_frequency(self) -> pd.Series:
        """Fraction of outer folds whose model selected each marker."""
        return self.selection_counts / self.n_folds

    def to_dict(self) -> dict[str, Any]:
        """The ``biomarker`` part of results.json (plain JSON types)."""
        freq = self.selection_frequency
        out: dict[str, Any] = {
            "n": self.n, "n_responders": self.n_responders, "n_nonresponders": self.n_nonresponders,
            "n_markers": self.n_markers, "model": self.options.model,
            "cv": self.options.cv_label, "seed": self.options.seed,
            **self.cv.to_dict(),
            "permutation": None if self.permutation is None else self.permutation.to_dict(),
            "selection_frequency": {str(k): float(v) for k, v in freq.items()},
            "n_folds": self.n_folds,
            "selected_markers": list(self.selected_markers),
            "coefficients": {str(k): float(v) for k, v in self.coefficients.items()},
            "coefficient_kind": self.coefficient_kind,
            "intercept": self.intercept,
            "final_params": _jsonable(self.final_params),
            "missing_values": self.missing_values,
            "validation": None if self.validation is None else self.validation.to_dict(),
            "options": self.options.to_dict(),
        }
        return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


# --------------------------------------------------------------------------------------------
# Array-level statistics
# --------------------------------------------------------------------------------------------


def compute_f_statistic(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-group one-way ANOVA F statistic per column (the square of the pooled two-sample t).

    Rule
    ----
    One-way ANOVA with two groups: F = [n1 (m1 - m)^2 + n0 (m0 - m)^2] / [SSW / (n - 2)];
    equals ``sklearn.feature_selection.f_classif`` and ``scipy.stats.ttest_ind(...)**2``.
    A column with no variation at all scores 0 (never selected ahead of an informative one); a
    column that separates the groups perfectly with no within-group variation scores +inf.
    Vectorised over columns; NaN is not allowed (impute first).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0 or y.size < 3:
        raise ValueError(f"compute_f_statistic: need both classes and n >= 3; got n1={n1}, n0={n0}")
    # F is shift invariant; subtracting the first row makes a constant column exactly 0
    X = X - X[:1]
    X1, X0 = X[y], X[~y]
    # sum / count is what ndarray.mean computes (the same doubles, without its per-call overhead)
    m = X.sum(axis=0) / y.size
    m1 = X1.sum(axis=0) / n1
    m0 = X0.sum(axis=0) / n0
    ssb = n1 * (m1 - m) ** 2 + n0 * (m0 - m) ** 2
    ssw = ((X1 - m1) ** 2).sum(axis=0) + ((X0 - m0) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ssb / (ssw / (y.size - 2))
    f = np.where(np.isnan(f), 0.0, f)
    return f


def f_score(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Score function for ``SelectKBest`` (scores only): :func:`compute_f_statistic`."""
    return compute_f_statistic(X, y)


def _midrank(x: np.ndarray) -> np.ndarray:
    return _dist.midrank(x)


def _auc_pairwise(y: np.ndarray, score: np.ndarray) -> float:
    """:func:`compute_auc` for the small validation folds of the tuning, bit for bit.

    Counts the positive-negative pairs directly (1 when the positive scores higher, 1/2 on a
    tie): the numerator is the same integer or half-integer as the midrank sum, so the quotient
    is the same double. Used where the folds are small (a few dozen subjects).
    """
    yb = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=float)
    pos, neg = s[yb], s[~yb]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return float("nan")
    p, q = pos[:, None], neg[None, :]
    return float((int((p > q).sum()) + 0.5 * int((p == q).sum())) / (m * n))


def compute_auc(y: np.ndarray, score: np.ndarray) -> float:
    """AUC as the Mann-Whitney probability P(score_pos > score_neg) + 0.5 P(tie).

    Rule
    ----
    Hanley & McNeil, Radiology 1982;143:29-36; equals ``sklearn.metrics.roc_auc_score``.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=float)
    m = int(y.sum())
    n = y.size - m
    if m == 0 or n == 0:
        return float("nan")
    r = _midrank(s)
    return float((r[y].sum() - m * (m + 1) / 2) / (m * n))


def compute_delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong variance.

    Rule
    ----
    DeLong, DeLong & Clarke-Pearson, Biometrics 1988;44:837-45, with the midrank algorithm of
    Sun & Xu, IEEE Signal Process Lett 2014;21:1389-93: the structural components
    V10(x_i) = P(Y < x_i) + 0.5 P(Y = x_i) over negatives Y for each positive x_i, and
    V01(y_j) likewise over positives; Var(AUC) = s10^2 / m + s01^2 / n with the sample
    variances (ddof 1) of the components. Same as ``pROC::var(roc(...))``.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=float)
    pos = s[y]
    neg = s[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise ValueError(f"compute_delong: need both classes; got {m} positive and {n} negative")
    tz = _midrank(np.concatenate([pos, neg]))
    tx = _midrank(pos)
    ty = _midrank(neg)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    auc = float(v10.mean())
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return auc, s10 / m + s01 / n


def compute_auc_ci(
    y: np.ndarray,
    score: np.ndarray,
    *,
    method: AucCiMethod = "delong",
    level: float = 0.95,
    bootstrap_reps: int = 2000,
    seed: int = DEFAULT_SEED,
) -> AucEstimate:
    """AUC with a DeLong or stratified percentile bootstrap confidence interval.

    Rule
    ----
    DeLong: AUC +/- z_(1-alpha/2) sqrt(Var_DeLong), limits clipped to [0, 1] (as
    ``pROC::ci.auc(method = "delong")``). Bootstrap: positives and negatives resampled
    separately ``bootstrap_reps`` times (``pROC`` ``boot.stratified = TRUE``), percentile limits.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=float)
    m = int(y.sum())
    n = y.size - m
    if m == 0 or n == 0:
        return AucEstimate(None, None, method, level, m, n)
    if method == "delong":
        auc, var = compute_delong(y, s)
        z = float(_dist.norm_ppf(1 - (1 - level) / 2))
        se = math.sqrt(max(var, 0.0))
        ci = (max(0.0, auc - z * se), min(1.0, auc + z * se))
        return AucEstimate(auc, ci, "delong", level, m, n, se)
    if method != "bootstrap":
        raise ValueError(f"compute_auc_ci: method must be 'delong' or 'bootstrap'; got {method!r}")
    pos = s[y]
    neg = s[~y]
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    rng = np.random.default_rng(seed)
    wp = rng.multinomial(m, np.full(m, 1 / m), size=bootstrap_reps).astype(float)
    wn = rng.multinomial(n, np.full(n, 1 / n), size=bootstrap_reps).astype(float)
    boot = ((wp @ psi) * wn).sum(axis=1) / (m * n)
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    auc = float(psi.mean())
    return AucEstimate(auc, (float(lo), float(hi)), "bootstrap", level, m, n, float(boot.std(ddof=1)))


def compute_roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every point of the empirical ROC curve: (false positive rate, true positive rate, threshold).

    Rule
    ----
    One point per distinct score, highest first, plus (0, 0) at threshold +inf: TPR = #{positives
    with score >= t} / #positives, FPR likewise over negatives (Fawcett, Pattern Recognit Lett
    2006;27:861-74). The counts are integers, so the rates are the same doubles as
    ``sklearn.metrics.roc_curve(y, score, drop_intermediate=False)`` (tested); both classes needed.
    """
    yb = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=float)
    thresholds = np.unique(s)[::-1]
    pos = np.sort(s[yb])
    neg = np.sort(s[~yb])
    tps = (pos.size - np.searchsorted(pos, thresholds, side="left")).astype(float)
    fps = (neg.size - np.searchsorted(neg, thresholds, side="left")).astype(float)
    tps = np.r_[0.0, tps]
    fps = np.r_[0.0, fps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


def _proportion(x: int, n: int, method: str, level: float) -> ProportionEstimate:
    if n == 0:
        return ProportionEstimate(0, 0, None, None, method, level)
    lo, hi = proportion_ci(int(x), int(n), method=method, level=level)
    return ProportionEstimate(int(x), int(n), x / n, (float(lo), float(hi)), method, level)


def compute_performance(
    y: pd.Series, probability: pd.Series, *, options: ClassifierOptions, extra: pd.DataFrame | None = None
) -> Performance:
    """Accuracy, sensitivity, specificity (each with its CI) and AUC of predicted probabilities.

    Rule
    ----
    Predicted responder when probability > threshold (scikit-learn ``predict``). Accuracy =
    correct / n; sensitivity = true positives / responders; specificity = true negatives /
    non-responders; CIs by ``options.accuracy_ci`` (Wilson by default: Wilson, JASA 1927).
    """
    yb = np.asarray(y).astype(bool)
    p = np.asarray(probability, dtype=float)
    pred = p > options.threshold
    correct = int((pred == yb).sum())
    tp = int((pred & yb).sum())
    tn = int((~pred & ~yb).sum())
    m = options.accuracy_ci
    lvl = options.level
    acc = _proportion(correct, yb.size, m, lvl)
    sens = _proportion(tp, int(yb.sum()), m, lvl)
    spec = _proportion(tn, int((~yb).sum()), m, lvl)
    auc = compute_auc_ci(yb, p, method=options.auc_ci, level=lvl,
                         bootstrap_reps=options.bootstrap_reps, seed=options.seed)
    preds = pd.DataFrame({"y": yb.astype(int), "probability": p, "predicted": pred.astype(int)},
                         index=pd.Index(y.index, name="subject"))
    if extra is not None:
        preds = preds.join(extra)
    if yb.all() or (~yb).all():
        roc = pd.DataFrame({"fpr": [], "tpr": [], "threshold": []})
    else:
        fpr, tpr, thr = compute_roc_points(yb, p)
        roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})
    return Performance(acc, sens, spec, auc, preds, roc)


# --------------------------------------------------------------------------------------------
# The procedure
# --------------------------------------------------------------------------------------------


def _param_grid(options: ClassifierOptions) -> list[dict[str, Any]]:
    """The tuning grid, in the order GridSearchCV would enumerate it (first wins on ties)."""
    ks = options.k_values
    if options.model == "l1-logistic":
        inner = [{"C": c} for c in options.c_grid]
    elif options.model == "elasticnet-logistic":
        inner = [{"C": c, "l1_ratio": r} for c in options.c_grid for r in options.l1_ratio_grid]
    else:
        inner = [{"min_samples_leaf": int(v)} for v in options.rf_min_samples_leaf_grid]
    return [{"k": k, **g} for k in ks for g in inner]


def _model(options: ClassifierOptions, params: dict[str, Any], random_state: int):
    cw = "balanced" if options.class_weight == "balanced" else None
    if options.model == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=options.rf_trees, min_samples_leaf=params["min_samples_leaf"],
            max_features="sqrt", class_weight=cw, random_state=random_state, n_jobs=1,
        )
    from sklearn.linear_model import LogisticRegression

    if options.model == "l1-logistic":
        # liblinear penalises the intercept like a coefficient (a constant feature of value
        # intercept_scaling); scikit-learn's documentation advises a larger intercept_scaling to
        # lessen that, so an unbalanced sample keeps its baseline log-odds
        return LogisticRegression(C=params["C"], l1_ratio=1.0, solver="liblinear", class_weight=cw,
                                  intercept_scaling=INTERCEPT_SCALING, random_state=random_state, max_iter=1000)
    return LogisticRegression(C=params["C"], l1_ratio=params["l1_ratio"], solver="saga", class_weight=cw,
                              random_state=random_state, max_iter=5000, tol=1e-4)


def build_pipeline(options: ClassifierOptions, params: dict[str, Any], *, impute: bool, random_state: int):
    """The scikit-learn pipeline fitted in every training fold.

    Steps: [``impute`` (training-fold median, only when values are missing)] -> ``select``
    (``SelectKBest`` by the two-group F statistic, k markers) -> ``scale`` (``StandardScaler``)
    -> ``model``. Every step that learns from data learns from the training fold only.
    """
    from sklearn.feature_selection import SelectKBest
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = []
    if impute:
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    steps += [
        ("select", SelectKBest(f_score, k=params["k"])),
        ("scale", StandardScaler()),
        ("model", _model(options, params, random_state)),
    ]
    return Pipeline(steps)


def _top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns SelectKBest keeps for k (its rule: stable argsort, last k), ascending order."""
    s = np.where(np.isnan(scores), np.finfo(float).min, scores)
    top = np.argsort(s, kind="mergesort")[-k:]
    return np.sort(top)


def _expit(z: np.ndarray) -> np.ndarray:
    """``scipy.special.expit`` (the same ufunc, from its compiled module: ``_dist._special``)."""
    return _dist._special("expit")(z)


def _score(kind: str, y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    if kind == "roc_auc":
        return _auc_pairwise(y, p)
    if kind == "accuracy":
        return float(((p > threshold) == y.astype(bool)).mean())
    eps = 1e-15
    pc = np.clip(p, eps, 1 - eps)
    yb = y.astype(float)
    return float(np.mean(yb * np.log(pc) + (1 - yb) * np.log(1 - pc)))


def _auc_pairwise_rows(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """:func:`_auc_pairwise` of each row of ``scores`` (same labels): the same pair counts and
    the same division, so the same doubles."""
    yb = np.asarray(y).astype(bool)
    pos, neg = scores[:, yb], scores[:, ~yb]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        return np.full(scores.shape[0], np.nan)
    p, q = pos[:, :, None], neg[:, None, :]
    return ((p > q).sum(axis=(1, 2)) + 0.5 * (p == q).sum(axis=(1, 2))) / (m * n)


def _score_rows(kind: str, y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """:func:`_score` of each row of ``p`` (the predictions of several fits on one fold)."""
    if kind == "roc_auc":
        return _auc_pairwise_rows(y, p)
    return np.array([_score(kind, y, row, threshold) for row in p])


def _sklearn_stratified_kfold(y: np.ndarray, n_folds: int, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_folds, shuffle=True, random_state=random_state).split(np.zeros(y.size), y))


def _numpy_stratified_kfold(y: np.ndarray, n_folds: int, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``StratifiedKFold(n_folds, shuffle=True, random_state).split(X, y)`` for a 0/1 label vector.

    scikit-learn's rule (``StratifiedKFold._make_test_folds``): classes in order of first
    appearance; the sorted labels dealt round-robin to the folds give each fold's count per class;
    each class's fold numbers (``arange(n_folds).repeat(count)``) are shuffled by one
    ``RandomState(random_state)``, class after class, and assigned to that class's subjects in
    order. Its checks and warning are kept (a fold count above every class size is an error,
    above the smallest a UserWarning). :func:`_stratified_kfold` checks the result against
    scikit-learn before using it.
    """
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    _, class_perm = np.unique(first, return_inverse=True)
    code = class_perm[inverse.reshape(-1)]
    counts = np.bincount(code)
    if np.all(n_folds > counts):
        raise ValueError(f"n_splits={n_folds} cannot be greater than the number of members in each class.")
    if n_folds > counts.min():
        warnings.warn(f"The least populated class in y has only {counts.min()} members, which is less than "
                      f"n_splits={n_folds}.", UserWarning, stacklevel=3)
    test_folds = np.empty(y.size, dtype="i")
    for k, folds_for_class in enumerate(_shuffled_fold_numbers(code, counts, n_folds, random_state)):
        test_folds[code == k] = folds_for_class
    idx = np.arange(y.size)
    return [(idx[test_folds != i], idx[test_folds == i]) for i in range(n_folds)]


#: :func:`_shuffled_fold_numbers` by (seed, folds, class sizes in order of first appearance).
_FOLD_NUMBERS: dict[tuple[int, int, tuple[int, ...]], tuple[np.ndarray, ...]] = {}


def _shuffled_fold_numbers(code: np.ndarray, counts: np.ndarray, n_folds: int, random_state) -> tuple[np.ndarray, ...]:
    """Each class's shuffled fold numbers, in StratifiedKFold's order (see the caller).

    They depend on the seed, the fold count and the class sizes only (the sorted labels dealt
    round-robin, then one ``RandomState(random_state)`` shuffling class after class), not on
    which subjects carry the labels. The permutation test asks for the same few combinations
    thousands of times (permuted labels keep the class sizes), and seeding a ``RandomState``
    costs about 0.3 ms, so the arrays are kept per combination (read-only) and reused: the
    same numbers.
    """
    key = None
    if isinstance(random_state, (int, np.integer)):
        key = (int(random_state), int(n_folds), tuple(int(c) for c in counts))
        hit = _FOLD_NUMBERS.get(key)
        if hit is not None:
            return hit
    n_classes = counts.size
    order = np.sort(code)
    allocation = np.asarray([np.bincount(order[i::n_folds], minlength=n_classes) for i in range(n_folds)])
    rng = np.random.RandomState(random_state)
    out = []
    for k in range(n_classes):
        folds_for_class = np.arange(n_folds).repeat(allocation[:, k])
        rng.shuffle(folds_for_class)
        folds_for_class.flags.writeable = False
        out.append(folds_for_class)
    if key is not None:
        if len(_FOLD_NUMBERS) >= 4096:  # bounded: a long-running session with many seeds
            _FOLD_NUMBERS.clear()
        _FOLD_NUMBERS[key] = tuple(out)
    return tuple(out)


_KFOLD_OK: list[bool] = []


def _stratified_kfold(y: np.ndarray, n_folds: int, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified shuffled folds, as scikit-learn's ``StratifiedKFold`` gives them (issue 15).

    The permutation test asks for thousands of fold splits of a few dozen labels; scikit-learn
    spends most of each call validating its arguments. The first call compares
    :func:`_numpy_stratified_kfold` with scikit-learn on seeded label vectors and keeps it only
    when every fold is identical (else, e.g. after a scikit-learn upgrade that changes the rule,
    scikit-learn is used); labels other than a 1-D vector of 0/1 always go to scikit-learn. On a
    release in :data:`VERIFIED_SKLEARN` the tests have made that comparison, so it is skipped.
    """
    if not _KFOLD_OK and _sklearn_release_verified():
        _KFOLD_OK.append(True)
    if not _KFOLD_OK:
        rng = np.random.default_rng(2024)
        ok = True
        for n, folds, seed in ((28, 3, 7), (35, 5, 123456789), (23, 3, 4242), (40, 4, 1)):
            yy = (rng.random(n) < 0.4).astype(int)
            a, b = _numpy_stratified_kfold(yy, folds, seed), _sklearn_stratified_kfold(yy, folds, seed)
            ok &= len(a) == len(b) and all(np.array_equal(p, q) for pa, pb in zip(a, b, strict=True) for p, q in zip(pa, pb, strict=True))
        _KFOLD_OK.append(bool(ok))
    y = np.asarray(y)
    if _KFOLD_OK[0] and y.ndim == 1 and y.size and np.isin(y, (0, 1)).all():
        return _numpy_stratified_kfold(y, n_folds, random_state)
    return _sklearn_stratified_kfold(y, n_folds, random_state)


def _inner_splits(y: np.ndarray, n_folds: int, random_state: int):
    return _stratified_kfold(y, n_folds, random_state)


def _outer_splits(y: np.ndarray, options: ClassifierOptions, random_state: int):
    if options.outer_folds == 0:
        from sklearn.model_selection import LeaveOneOut

        return list(LeaveOneOut().split(np.zeros(y.size)))
    return _stratified_kfold(y, options.outer_folds, random_state)


@dataclass(frozen=True)
class _Seeds:
    outer: int
    inner: int
    model: int
    permutation: int


def _seeds(seed: int) -> _Seeds:
    a = np.random.SeedSequence(seed).generate_state(4, dtype=np.uint32)
    return _Seeds(*(int(v) for v in a))


_VERIFIED: list[bool] = []


def _sklearn_release_verified() -> bool:
    """Whether the installed scikit-learn is a release in :data:`VERIFIED_SKLEARN` (read from its
    package metadata, without importing it)."""
    if not _VERIFIED:
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = ".".join(version("scikit-learn").split(".")[:2])
        except PackageNotFoundError:
            release = ""
        _VERIFIED.append(release in VERIFIED_SKLEARN)
    return _VERIFIED[0]


class _LiblinearL1:
    """``LogisticRegression(l1_ratio=1, solver="liblinear", ...)`` fitted without its overhead.

    The lasso logistic model of ``l1-logistic`` is fitted thousands of times on a few dozen
    subjects and k markers (inner folds x penalties x outer folds x permutations); each
    scikit-learn ``fit`` spends almost all of its time validating arguments and data, not
    solving. This calls the same liblinear solver (``sklearn.svm._liblinear.train_wrap``, the
    routine ``LogisticRegression.fit`` ends in) with exactly the arguments ``fit`` would pass:
    labels 0/1, "balanced" class weights n / (2 n_c), unit sample weights, the L1-logistic
    solver type, tolerance, ``max_iter``, the bias ``intercept_scaling`` and the solver seed
    drawn from ``RandomState(random_state)`` as ``_fit_liblinear`` draws it. The result is the
    same coefficients bit for bit; :func:`_liblinear_l1` checks that on a test problem before
    using it and otherwise falls back to the estimator (e.g. after a scikit-learn upgrade that
    changes the private routine).
    """

    #: liblinear's solver type L1R_LR (L1-regularised logistic regression; liblinear's ``linear.h``),
    #: what ``sklearn.svm._base._get_liblinear_solver_type("ovr", "l1", "logistic_regression",
    #: False)`` returns (tested).
    SOLVER_L1R_LR = 6
    #: ``LogisticRegression``'s default ``tol`` and the ``max_iter`` :func:`_model` sets (tested).
    TOL = 1e-4
    MAX_ITER = 1000

    def __init__(self, options: ClassifierOptions, random_state: int) -> None:
        from mmtrial._lazy import import_liblinear

        liblinear = import_liblinear()
        self._train = liblinear.train_wrap
        self._set_verbosity = liblinear.set_verbosity_wrap
        self._solver = self.SOLVER_L1R_LR
        self._tol = self.TOL
        self._max_iter = self.MAX_ITER
        self._bias = float(INTERCEPT_SCALING)
        self._balanced = options.class_weight == "balanced"
        self._seed = int(np.random.RandomState(random_state).randint(np.iinfo("i").max))

    def fit(self, Z: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
        """(coef_ of shape (1, k), intercept_ of shape (1,)) as ``LogisticRegression.fit``."""
        return self.fit_path(Z, y, (C,))[0]

    def fit_path(self, Z: np.ndarray, y: np.ndarray, Cs) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`fit` for each penalty in ``Cs`` on the same data (the tuning grid of one split).

        The arrays liblinear receives (data, labels, class weights, unit sample weights) are
        built once and passed to every fit; liblinear copies the data into its own problem and
        writes none of them (checked in tests/stats/test_classifier_fast.py), so each fit is
        the one :meth:`fit` would make.
        """
        yi = np.asarray(y)
        n = yi.size
        if n == 0 or yi.min() == yi.max():  # as LogisticRegression.fit: both classes needed
            raise ValueError("This solver needs samples of at least 2 classes in the data")
        if self._balanced:
            counts = np.bincount(yi.astype(np.intp), weights=np.ones(n), minlength=2)
            cw = counts.sum() / (2 * counts)
        else:
            cw = np.ones(2)
        Zc = np.ascontiguousarray(Z, dtype=np.float64)
        yf = np.array(yi, dtype=np.float64)
        sw = np.ones(n)
        self._set_verbosity(0)
        out = []
        for C in Cs:  # the handful of penalties of the grid
            raw, _ = self._train(Zc, yf, False, self._solver, self._tol, self._bias, float(C), cw, self._max_iter,
                                 self._seed, 0.1, sw)
            out.append((raw[:, :-1], self._bias * raw[:, -1]))
        return out


_LIBLINEAR_OK: dict[tuple[Any, ...], bool] = {}
#: One fitter per (options, seed): it holds no state between fits (issue 15: built once, not per fold).
_FITTERS: dict[tuple[Any, ...], _LiblinearL1] = {}


def _liblinear_l1(options: ClassifierOptions, random_state: int) -> _LiblinearL1 | None:
    """The direct liblinear fitter for ``l1-logistic``, or None (other models, or a mismatch).

    The first call per configuration fits a seeded test problem both ways and keeps the fast
    path only when coefficients and intercept are identical bit for bit; on a scikit-learn
    release in :data:`VERIFIED_SKLEARN` the tests have done that, so the check is skipped.
    """
    if options.model != "l1-logistic":
        return None
    key = (options.class_weight, random_state)
    fitter = _FITTERS.get((options, random_state))
    if fitter is None:
        try:
            fitter = _LiblinearL1(options, random_state)
        except Exception:  # a private routine moved: use the estimator
            return None
        _FITTERS[(options, random_state)] = fitter
    if key not in _LIBLINEAR_OK and _sklearn_release_verified():
        _LIBLINEAR_OK[key] = True
    if key not in _LIBLINEAR_OK:
        rng = np.random.default_rng(12345)
        Z = rng.normal(size=(30, 4))
        y = (Z[:, 0] + rng.normal(size=30) > 0.3).astype(int)
        ok = True
        try:
            for C in (0.05, 1.0):
                est = _model(options, {"C": C}, random_state).fit(Z, y)
                coef, icpt = fitter.fit(Z, y, C)
                ok &= np.array_equal(coef, est.coef_) and np.array_equal(icpt, est.intercept_)
        except Exception:
            ok = False
        _LIBLINEAR_OK[key] = bool(ok)
    return fitter if _LIBLINEAR_OK[key] else None


def tune_in_training_fold(
    X: np.ndarray, y: np.ndarray, *, options: ClassifierOptions, impute: bool, seeds: _Seeds,
    fast_fit: bool = True,
) -> tuple[dict[str, Any], np.ndarray]:
    """Choose the tuning parameters by inner cross-validation on one training set.

    Rule
    ----
    Exactly ``GridSearchCV(build_pipeline(...), grid, cv=StratifiedKFold(inner_folds),
    scoring=tuning_score)`` (mean inner-fold score, first best on ties), computed faster: the
    imputation and the F screen depend on the inner training split only, not on the penalty, so
    they are fitted once per inner split and the top-k columns for each k are taken from the
    same ranking (``SelectKBest``'s own rule). Varma & Simon 2006: tuning must not see the
    outer test fold.

    The lasso logistic fits go through :class:`_LiblinearL1` (same solver, same arguments,
    same coefficients; ``fast_fit=False`` uses the estimator, for the tests that check this).

    Returns the best parameters and the grid's mean scores.
    """
    grid = _param_grid(options)
    by_k = {k: [g for g, params in enumerate(grid) if params["k"] == k] for k in options.k_values}
    fast = _liblinear_l1(options, seeds.model) if fast_fit else None
    splits = _inner_splits(y, options.inner_folds, seeds.inner)
    scores = np.zeros((len(grid), len(splits)))
    for s, (tr, va) in enumerate(splits):
        Xtr, Xva = X[tr], X[va]
        if impute:
            med = compute_training_medians(Xtr)
            Xtr, Xva = impute_medians(Xtr, med), impute_medians(Xva, med)
        fs = compute_f_statistic(Xtr, y[tr])
        for k in options.k_values:
            cols = _top_k_columns(fs, k)
            # StandardScaler arithmetic (mean, population SD, SD 0 -> 1), done once per k
            mu = Xtr[:, cols].mean(axis=0)
            sd = Xtr[:, cols].std(axis=0)
            sd = np.where(sd < 10 * np.finfo(float).eps * np.maximum(np.abs(mu), 1.0), 1.0, sd)
            Ztr = (Xtr[:, cols] - mu) / sd
            Zva = (Xva[:, cols] - mu) / sd
            if fast is not None:  # every penalty of this k at once; the same fits and scores
                gk = by_k[k]
                fits = fast.fit_path(Ztr, y[tr], [grid[g]["C"] for g in gk])
                p = _expit(np.stack([Zva @ coef[0] + icpt[0] for coef, icpt in fits]))
                scores[gk, s] = _score_rows(options.tuning_score, y[va], p, options.threshold)
                continue
            for g, params in enumerate(grid):
                if params["k"] != k:
                    continue
                est = _model(options, params, seeds.model).fit(Ztr, y[tr])
                if options.model == "random-forest":
                    p = est.predict_proba(Zva)[:, 1]
                else:  # the logistic model's predict_proba: expit of the decision function
                    p = _expit(Zva @ est.coef_[0] + est.intercept_[0])
                scores[g, s] = _score(options.tuning_score, y[va], p, options.threshold)
    mean = scores.mean(axis=1)
    best = int(np.flatnonzero(mean == mean.max())[0])
    return dict(grid[best]), mean


def _fit_predict_fold(
    Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, params: dict[str, Any], *,
    options: ClassifierOptions, impute: bool, seeds: _Seeds, fast: _LiblinearL1 | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit :func:`build_pipeline` on one training set; (test probabilities, selection mask).

    With the direct liblinear fitter the pipeline's steps are applied one by one with the same
    arithmetic in NumPy (:func:`compute_training_medians` as ``SimpleImputer``, ``SelectKBest``'s
    top-k rule, :func:`compute_standard_scaling` as ``StandardScaler``, the liblinear fit and
    ``predict_proba``'s expit of ``X @ coef_.T + intercept_``), which gives the pipeline's
    probabilities bit for bit without scikit-learn (tests/stats/test_classifier_fast.py).
    """
    if fast is None:
        pipe = build_pipeline(options, params, impute=impute, random_state=seeds.model).fit(Xtr, ytr)
        return pipe.predict_proba(Xte)[:, 1], pipe.named_steps["select"].get_support()
    model = _fit_direct(Xtr, ytr, params, impute=impute, fast=fast)
    return model.probability(Xte), model.mask


@dataclass(frozen=True)
class _DirectL1Model:
    """:func:`build_pipeline` fitted step by step (imputer medians, selected columns, scaler mean and
    scale, liblinear coefficients): the pipeline's numbers without scikit-learn."""

    medians: np.ndarray | None
    mask: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (1, k), as LogisticRegression.coef_
    intercept: np.ndarray  # (1,), as LogisticRegression.intercept_

    def probability(self, X: np.ndarray) -> np.ndarray:
        """``Pipeline.predict_proba(X)[:, 1]``: expit of ``Z @ coef_.T + intercept_``."""
        if self.medians is not None:
            X = impute_medians(X, self.medians)
        Z = standard_scale(X[:, self.mask], self.mean, self.scale)
        return _expit((Z @ self.coef.T + self.intercept).reshape(-1))


def _fit_direct(Xtr: np.ndarray, ytr: np.ndarray, params: dict[str, Any], *, impute: bool,
                fast: _LiblinearL1) -> _DirectL1Model:
    medians = compute_training_medians(Xtr) if impute else None
    if medians is not None:
        Xtr = impute_medians(Xtr, medians)
    cols = _top_k_columns(compute_f_statistic(Xtr, ytr), params["k"])
    mask = np.zeros(Xtr.shape[1], dtype=bool)
    mask[cols] = True
    mean, scale = compute_standard_scaling(Xtr[:, mask])
    coef, icpt = fast.fit(standard_scale(Xtr[:, mask], mean, scale), ytr, params["C"])
    return _DirectL1Model(medians, mask, mean, scale, coef, icpt)


def compute_training_medians(X: np.ndarray) -> np.ndarray:
    """Column medians of the observed values, 0 for a column with none.

    Rule
    ----
    ``SimpleImputer(strategy="median", keep_empty_features=True).fit(X).statistics_``, with the
    same NumPy call scikit-learn makes (``numpy.ma.median`` of X masked where NaN; scikit-learn
    1.9 ``impute/_base.py``), so the same doubles (tested).
    """
    X = np.asarray(X, dtype=np.float64)
    median_masked = np.ma.median(np.ma.masked_array(X, mask=np.isnan(X)), axis=0)
    median = np.array(np.ma.getdata(median_masked), dtype=np.float64)
    median[np.ma.getmaskarray(median_masked)] = 0
    return median


def impute_medians(X: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """X with each missing value replaced by its column's training median (``SimpleImputer.transform``)."""
    X = np.array(X, dtype=np.float64)
    missing = np.isnan(X)
    X[missing] = np.broadcast_to(medians, X.shape)[missing]
    return X


def compute_standard_scaling(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of ``StandardScaler().fit(X)`` for a float array without missing values.

    Rule
    ----
    scikit-learn's arithmetic (1.9: ``utils/extmath._incremental_mean_and_var`` from zero
    samples seen, ``preprocessing/_data._is_constant_feature`` and ``_handle_zeros_in_scale``):
    mean = sum / n; variance by the corrected two-pass algorithm (Chan, Golub & LeVeque, Am Stat
    1983;37:242-7): with d = X - sum / n, var = (sum d^2 - (sum d)^2 / n) / n; scale = sqrt(var),
    1 for a column whose variance is within rounding of 0 (var <= n eps var + (n mean eps)^2).
    The same operations in the same order give the same doubles (tested against the scaler).
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    new_sum = np.sum(X, axis=0)
    count = np.full(X.shape[1], float(n))
    mean = (np.zeros(X.shape[1]) + new_sum) / count
    d = X - new_sum / count
    correction = np.sum(d, axis=0)
    d **= 2
    var = np.sum(d, axis=0)
    var -= correction**2 / count
    var = var / count
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def standard_scale(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``StandardScaler.transform``: (X - mean) / scale."""
    Z = np.array(X, dtype=np.float64)
    Z -= mean
    Z /= scale
    return Z


def _nested_cv(
    X: np.ndarray, y: np.ndarray, *, options: ClassifierOptions, impute: bool, seeds: _Seeds,
    fast_fit: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold probabilities, fold ids, selection masks (folds x markers), tuned params."""
    splits = _outer_splits(y, options, seeds.outer)
    fast = _liblinear_l1(options, seeds.model) if fast_fit else None
    prob = np.full(y.size, np.nan)
    fold = np.full(y.size, -1, dtype=int)
    masks = np.zeros((len(splits), X.shape[1]), dtype=bool)
    params_list: list[dict[str, Any]] = []
    for f, (tr, te) in enumerate(splits):
        params, _ = tune_in_training_fold(X[tr], y[tr], options=options, impute=impute, seeds=seeds,
                                          fast_fit=fast_fit)
        prob[te], masks[f] = _fit_predict_fold(X[tr], y[tr], X[te], params, options=options, impute=impute,
                                               seeds=seeds, fast=fast)
        fold[te] = f
        params_list.append(params)
    return prob, fold, masks, params_list


def _statistic(kind: str, y: np.ndarray, prob: np.ndarray, threshold: float) -> float:
    if kind == "auc":
        return compute_auc(y, prob)
    return float(((prob > threshold) == y.astype(bool)).mean())


def _permutation_statistic(
    X: np.ndarray, y_perm: np.ndarray, options: ClassifierOptions, impute: bool, seeds: _Seeds
) -> float:
    with warnings.catch_warnings(), _fast_sklearn():
        _ignore_convergence()
        prob, _, _, _ = _nested_cv(X, y_perm, options=options, impute=impute, seeds=seeds)
    return _statistic(options.permutation_statistic, y_perm, prob, options.threshold)


def _fast_sklearn():
    """scikit-learn without its per-call checks of parameters and finiteness (about 12% faster).

    Safe here: every estimator parameter comes from a validated :class:`ClassifierOptions`, and
    :func:`fit_response_classifier` rejects infinite values and routes NaN to the imputer. A
    no-op when scikit-learn is not imported (the direct paths do not use it; a run that needs its
    estimators imports it first, :func:`_uses_sklearn`).
    """
    if "sklearn" not in sys.modules:
        return contextlib.nullcontext()
    import sklearn

    return sklearn.config_context(skip_parameter_validation=True, assume_finite=True)


def _ignore_convergence() -> None:
    if "sklearn" not in sys.modules:  # no scikit-learn estimator runs: nothing to silence
        return
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", category=ConvergenceWarning)


def _uses_sklearn(options: ClassifierOptions, seeds: _Seeds) -> bool:
    """Whether the procedure needs scikit-learn's estimators (other models, leave-one-out, or a
    scikit-learn release whose direct liblinear path did not check out)."""
    return options.model != "l1-logistic" or options.outer_folds == 0 or _liblinear_l1(options, seeds.model) is None


class _LazyPipeline:
    """The final :func:`build_pipeline`, fitted with scikit-learn on first use.

    The analysis itself takes the final model's markers, coefficients and validation
    probabilities from the direct fit (:class:`_DirectL1Model`, the same numbers); this object
    gives callers the fitted scikit-learn ``Pipeline`` (``predict_proba``, ``named_steps``, ...)
    when they ask for it, so a run that never does so does not import scikit-learn.
    """

    def __init__(self, options: ClassifierOptions, params: dict[str, Any], impute: bool, random_state: int,
                 X: np.ndarray, y: np.ndarray) -> None:
        self._args = (options, dict(params), impute, random_state, X, y)
        self._pipeline: Any = None

    @property
    def pipeline(self) -> Any:
        """The fitted scikit-learn ``Pipeline``."""
        if self._pipeline is None:
            options, params, impute, random_state, X, y = self._args
            import sklearn  # noqa: F401  (so that _fast_sklearn and _ignore_convergence apply)

            with warnings.catch_warnings(), _fast_sklearn():
                _ignore_convergence()
                self._pipeline = build_pipeline(options, params, impute=impute, random_state=random_state).fit(X, y)
        return self._pipeline

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.pipeline, name)


def _worker_count(n_jobs: int, B: int) -> int:
    """Worker processes for B permutations: ``n_jobs`` (-1 = all cores), at most B, 1 without fork."""
    import multiprocessing
    import os

    if n_jobs == 1 or B < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = os.cpu_count() or 1
    n = cores + 1 + n_jobs if n_jobs < 0 else n_jobs
    return max(1, min(n, B))


def _permutation_chunk(args: tuple[np.ndarray, np.ndarray, ClassifierOptions, bool, _Seeds]) -> list[float]:
    X, perms, options, impute, seeds = args
    with _fast_sklearn():
        return [_permutation_statistic(X, p, options, impute, seeds) for p in perms]


def _map_in_workers(
    X: np.ndarray, perms: np.ndarray, options: ClassifierOptions, impute: bool, seeds: _Seeds, workers: int
) -> list[float]:
    """The permutations in forked worker processes, in order; every worker is joined on return.

    Forked workers start in milliseconds with everything imported. The pool lives in a ``with``
    block: on return (or on an error) the executor is shut down and waits for its processes,
    so none outlives the call (no helper process either: fork needs no resource tracker). Each
    permutation carries its own labels, so the result does not depend on the worker count.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = np.array_split(np.arange(perms.shape[0]), workers)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        parts = list(pool.map(_permutation_chunk, [(X, perms[c], options, impute, seeds) for c in chunks]))
    return [v for part in parts for v in part]


def compute_permutation_test(
    X: np.ndarray, y: np.ndarray, observed: float, *, options: ClassifierOptions, impute: bool, seeds: _Seeds
) -> PermutationTest:
    """Permutation p-value of the whole cross-validated procedure.

    Rule
    ----
    The labels are permuted ``B`` times (seeded); for each permutation the complete procedure
    (imputation, marker selection, nested tuning, outer cross-validation) is rerun and its
    statistic recorded (Ojala & Garriga 2010, test 1). p = (1 + #{null >= observed}) / (1 + B)
    (Phipson & Smyth 2010: never 0).
    """
    B = options.permutations
    rng = np.random.default_rng(seeds.permutation)
    perms = rng.permuted(np.tile(y, (B, 1)), axis=1)
    # The inputs were validated once above; skipping scikit-learn's per-call validation of the
    # same arrays (a public, documented setting) changes no result.
    with _fast_sklearn():
        workers = _worker_count(options.n_jobs, B)
        if workers <= 1:
            null = [_permutation_statistic(X, perms[b], options, impute, seeds) for b in range(B)]
        else:
            null = _map_in_workers(X, perms, options, impute, seeds, workers)
    null_a = np.asarray(null, dtype=float)
    p = (1 + int((null_a >= observed - 1e-12).sum())) / (1 + B)
    return PermutationTest(options.permutation_statistic, float(observed), float(p), B,
                           tuple(float(v) for v in null_a))


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _check_inputs(X: pd.DataFrame, y: pd.Series, options: ClassifierOptions, what: str) -> np.ndarray:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"fit_response_classifier: {what} X must be a pandas DataFrame (subjects x markers); "
                        f"got {type(X).__name__}")
    if not isinstance(y, pd.Series):
        raise TypeError(f"fit_response_classifier: {what} y must be a pandas Series; got {type(y).__name__}")
    if not X.index.equals(y.index):
        raise ValueError(f"fit_response_classifier: {what} X and y must have the same index (subjects) in the "
                         f"same order; X has {len(X)} rows, y {len(y)}; align them with y.reindex(X.index)")
    if X.index.has_duplicates:
        dup = X.index[X.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"fit_response_classifier: {what} X has duplicated subjects {dup}; one row per subject")
    bad = y[~y.isin([0, 1, True, False]) | y.isna()]
    if len(bad):
        raise ValueError(f"fit_response_classifier: {what} y must be 0/1 (1 = responder); subject "
                         f"{bad.index[0]!r} has {_plain(bad.iloc[0])!r} ({len(bad)} such)")
    nonnum = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if nonnum:
        raise ValueError(f"fit_response_classifier: {what} markers must be numeric; {nonnum[:5]} are "
                         f"{[str(X[c].dtype) for c in nonnum[:5]]}")
    arr = X.to_numpy(dtype=float)
    if np.isinf(arr).any():
        r, c = np.argwhere(np.isinf(arr))[0]
        raise ValueError(f"fit_response_classifier: {what} subject {X.index[r]!r}, marker {X.columns[c]!r}: "
                         f"value {float(arr[r, c])!r} is not finite")
    if options.missing == "error" and np.isnan(arr).any():
        r, c = np.argwhere(np.isnan(arr))[0]
        raise ValueError(f"fit_response_classifier: {what} subject {X.index[r]!r}, marker {X.columns[c]!r} is "
                         f"missing ({int(np.isnan(arr).sum())} missing values); set missing='impute-median' "
                         "to impute the training-fold median inside the pipeline")
    return arr


def _min_class_size(options: ClassifierOptions) -> int:
    """Smallest class size for which every outer and inner fold can hold both classes."""
    outer = options.outer_folds
    for n_min in range(2, 10_000):
        in_train = n_min - 1 if outer == 0 else n_min - math.ceil(n_min / outer)
        if (outer == 0 or n_min >= outer) and in_train >= options.inner_folds:
            return n_min
    raise ValueError("ClassifierOptions: folds too many")  # pragma: no cover


def fit_response_classifier(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    options: ClassifierOptions | None = None,
    X_validation: pd.DataFrame | None = None,
    y_validation: pd.Series | None = None,
) -> ClassifierResult:
    """Fit and honestly evaluate a response classifier from a marker panel.

    Parameters
    ----------
    X : DataFrame, subjects x markers (index = subject id, columns = marker names), numeric.
    y : Series, same index, 1 = responder, 0 = non-responder.
    options : :class:`ClassifierOptions` (defaults: L1 logistic, k = 4, 5x3 nested CV, Wilson,
        DeLong, 100 permutations, seed 20190822).
    X_validation, y_validation : optional held-out validation set (same markers), predicted
        by the final model only.

    Returns
    -------
    ClassifierResult

    Rule
    ----
    Algorithm (Ambroise & McLachlan 2002; Varma & Simon 2006; Ojala & Garriga 2010):

    1. Split the subjects into stratified outer folds (or leave-one-out), seeded.
    2. In each outer training set: tune the parameters by inner stratified cross-validation,
       where each inner fit runs the full pipeline (median imputation, top-k F screen,
       standardisation, model) on the inner training split only
       (:func:`tune_in_training_fold`); refit the pipeline with the best parameters on the
       outer training set; predict the outer test fold; record the markers it selected.
    3. Accuracy, sensitivity, specificity (Wilson CIs) and AUC (DeLong CI) of the pooled
       out-of-fold predictions; selection frequency = share of outer folds selecting a marker.
    4. Permutation test: steps 1-3 repeated on permuted labels.
    5. Final model: step 2 on all subjects; its markers and coefficients are reported; it alone
       predicts the validation set, if given.

    The Wilson interval treats the n out-of-fold predictions as independent; they are not
    exactly (the fold models share training subjects), so the permutation test, which makes
    no such assumption, is the test of "better than chance".

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = pd.Series([1] * 12 + [0] * 12, index=[f"S{i:02d}" for i in range(24)])
    >>> X = pd.DataFrame(rng.normal(size=(24, 30)), index=y.index,
    ...                  columns=[f"M{j}" for j in range(30)])
    >>> X["M0"] += 3 * y
    >>> res = fit_response_classifier(X, y, options=ClassifierOptions(k_markers=2, permutations=0))
    >>> res.selection_frequency.index[0], res.cv.accuracy.x >= 20
    ('M0', True)
    """
    options = options or ClassifierOptions()
    arr = _check_inputs(X, y, options, "training")
    yv = np.asarray(y).astype(int)
    n1 = int(yv.sum())
    n0 = int(yv.size - n1)
    need = _min_class_size(options)
    if min(n1, n0) < need:
        raise ValueError(
            f"fit_response_classifier: {n1} responders and {n0} non-responders; each class needs at least "
            f"{need} subjects for {options.cv_label}. Use fewer folds (outer_folds, inner_folds)."
        )
    if max(options.k_values) > arr.shape[1]:
        raise ValueError(f"fit_response_classifier: k = {max(options.k_values)} markers requested but X has "
                         f"only {arr.shape[1]} markers")
    impute = bool(np.isnan(arr).any()) or (
        X_validation is not None and bool(X_validation.reindex(columns=X.columns).isna().to_numpy().any())
    )
    seeds = _seeds(options.seed)
    markers = pd.Index(X.columns.astype(str))
    direct = not _uses_sklearn(options, seeds)
    if not direct:
        import sklearn  # noqa: F401  (imported before the block: its fast settings apply)

    with warnings.catch_warnings(), _fast_sklearn():
        _ignore_convergence()
        prob, fold, masks, fold_params = _nested_cv(arr, yv, options=options, impute=impute, seeds=seeds)
        cv_perf = compute_performance(
            y.astype(int), pd.Series(prob, index=y.index), options=options,
            extra=pd.DataFrame({"fold": fold}, index=pd.Index(y.index, name="subject")),
        )
        observed = _statistic(options.permutation_statistic, yv, prob, options.threshold)
        perm = (compute_permutation_test(arr, yv, observed, options=options, impute=impute, seeds=seeds)
                if options.permutations > 0 else None)

        final_params, _ = tune_in_training_fold(arr, yv, options=options, impute=impute, seeds=seeds)
        if direct:
            fitted = _fit_direct(arr, yv, final_params, impute=impute, fast=_liblinear_l1(options, seeds.model))
            final: Any = _LazyPipeline(options, final_params, impute, seeds.model, arr, yv)
            support, coef_, intercept_, predict = fitted.mask, fitted.coef, fitted.intercept, fitted.probability
        else:
            final = build_pipeline(options, final_params, impute=impute, random_state=seeds.model).fit(arr, yv)
            support = final.named_steps["select"].get_support()
            model = final.named_steps["model"]
            coef_, intercept_ = getattr(model, "coef_", None), getattr(model, "intercept_", None)

            def predict(v: np.ndarray) -> np.ndarray:
                return final.predict_proba(v)[:, 1]

    counts = pd.Series(masks.sum(axis=0), index=markers, name="count")
    counts = counts[counts > 0]
    counts = counts.iloc[np.lexsort((counts.index.to_numpy(dtype=str), -counts.to_numpy()))]

    sel = markers[support]
    if options.model == "random-forest":
        coefs = pd.Series(final.named_steps["model"].feature_importances_, index=sel, name="importance")
        kind, intercept = "impurity importance", None
    else:
        coefs = pd.Series(coef_[0], index=sel, name="coefficient")
        kind, intercept = "log-odds per SD (standardised)", float(intercept_[0])
    order = np.lexsort((coefs.index.to_numpy(dtype=str), -np.abs(coefs.to_numpy())))
    coefs = coefs.iloc[order]

    validation = None
    if X_validation is not None or y_validation is not None:
        if X_validation is None or y_validation is None:
            raise ValueError("fit_response_classifier: give both X_validation and y_validation, or neither")
        varr = _check_inputs(X_validation, y_validation, options, "validation")
        missing_cols = [c for c in X.columns if c not in X_validation.columns]
        if missing_cols:
            raise ValueError(f"fit_response_classifier: validation X lacks markers {missing_cols[:5]} "
                             f"({len(missing_cols)} in all) present in training X")
        varr = X_validation[X.columns].to_numpy(dtype=float)
        vprob = predict(varr)
        validation = compute_performance(y_validation.astype(int), pd.Series(vprob, index=y_validation.index),
                                         options=options)

    return ClassifierResult(
        options=options, n=int(yv.size), n_responders=n1, n_nonresponders=n0, n_markers=int(arr.shape[1]),
        cv=cv_perf, permutation=perm, selection_counts=counts, n_folds=int(masks.shape[0]),
        fold_params=tuple(fold_params), selected_markers=tuple(str(s) for s in sel),
        coefficients=coefs, coefficient_kind=kind, intercept=intercept, final_params=final_params,
        validation=validation, missing_values=int(np.isnan(arr).sum()), final_pipeline=final,
    )


__all__ = [
    "AucEstimate",
    "ClassifierOptions",
    "ClassifierResult",
    "Performance",
    "PermutationTest",
    "ProportionEstimate",
    "build_pipeline",
    "compute_auc",
    "compute_auc_ci",
    "compute_delong",
    "compute_f_statistic",
    "compute_performance",
    "compute_permutation_test",
    "fit_response_classifier",
    "tune_in_training_fold",
]
