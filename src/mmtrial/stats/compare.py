"""Comparing survival between groups when group membership is a response that happens later.

Responders must live long enough to respond, so "OS in responders vs non-responders" by best
response favours responders even when response changes nothing (guarantee-time or immortal-time
bias; Anderson, Cain & Gelber, J Clin Oncol 1983;1:710). Three analyses are offered side by side:

* :func:`compute_naive_comparison`: groups by best response, time from start (biased; the press
  figure, shown for contrast);
* :func:`compute_landmark_comparison`: Anderson 1983 landmark method: subjects alive and in
  follow-up at the landmark, grouped by response status at the landmark, time from the landmark;
* :func:`compute_mantel_byar` and :func:`compute_time_dependent_cox`: response as a
  time-dependent covariate (Mantel & Byar, JASA 1974;69:81; Cox model in counting-process form,
  :func:`mmtrial.stats.cox.fit_cox` with entry times).

Log-rank statistics use the hypergeometric variance (R ``survdiff``; SAS LIFETEST STRATA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmtrial.stats import _dist
from mmtrial.stats._result import AsDict
from mmtrial.stats.cox import fit_cox
from mmtrial.stats.survival import KaplanMeier, KMOptions, kaplan_meier

Ties = Literal["efron", "breslow"]


@dataclass(frozen=True)
class LogRankResult(AsDict):
    """Two-group (or time-dependent two-state) log-rank statistic."""

    observed: float  # events in group/state 1
    expected: float  # expected events in group/state 1 under H0
    variance: float
    chisq: float
    p_value: float
    method: str
    reason: str = ""  # why chisq/p are not estimable (empty when they are)


@dataclass(frozen=True)
class CoxResult(AsDict):
    """Hazard ratio of state/group 1 vs 0 from a Cox model."""

    hr: float
    ci: tuple[float, float]
    p_value: float
    ties: str
    level: float
    method: str
    n_subjects: int
    n_events: int
    reason: str = ""  # why the hazard ratio is not estimable (hr, ci, p NaN); empty when it is


def _as_arrays(*arrays) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=float).ravel() for a in arrays]
    n = out[0].size
    for a in out:
        if a.size != n:
            raise ValueError(f"arrays must have the same length; got {[x.size for x in out]}")
    return out


def compute_counting_process(time, event, switch_time) -> dict[str, np.ndarray]:
    """Split each subject at the time it enters state 1 (e.g. response): (start, stop] rows.

    A subject with ``switch_time`` NaN, or ``switch_time >= time``, stays in state 0 for its
    whole follow-up; a switch at time 0 puts the whole follow-up in state 1. Returns arrays
    ``id, start, stop, event, state`` (one or two rows per subject).

    Rule
    ----
    Counting-process form of a time-dependent covariate (Andersen & Gill 1982; Therneau &
    Grambsch 2000, section 3.7): the event belongs to the last interval only.
    """
    t, e, s = _as_arrays(time, event, switch_time)
    ids = np.arange(t.size)
    sw = ~np.isnan(s) & (s < t)
    at0 = sw & (s <= 0)
    split = sw & ~at0
    # state-0 rows: all subjects except those in state 1 from time 0
    keep0 = ~at0
    start0 = np.zeros(keep0.sum())
    stop0 = np.where(split, s, t)[keep0]
    event0 = np.where(split, 0.0, e)[keep0]
    # state-1 rows
    start1 = np.where(at0, 0.0, s)[sw]
    stop1 = t[sw]
    event1 = e[sw]
    return {
        "id": np.concatenate([ids[keep0], ids[sw]]),
        "start": np.concatenate([start0, start1]),
        "stop": np.concatenate([stop0, stop1]),
        "event": np.concatenate([event0, event1]),
        "state": np.concatenate([np.zeros(keep0.sum()), np.ones(sw.sum())]),
    }


def compute_mantel_byar(time, event, switch_time) -> LogRankResult:
    """Mantel-Byar test: log-rank with group membership that changes over time.

    Rule
    ----
    Mantel & Byar 1974: at each event time t the risk set is split by the state each subject is
    in at t (in state 1 when the switch happened strictly before t); O - E and the hypergeometric
    variance are summed over event times as in the log-rank test. With no switches after time 0
    it is the ordinary log-rank test (R ``survdiff``; ``scipy.stats.logrank``).
    """
    cp = compute_counting_process(time, event, switch_time)
    # rows starting at the origin are at risk from before time 0 (an event at time 0 counts)
    start = np.where(cp["start"] == 0, -np.inf, cp["start"])
    return _logrank_counting(start, cp["stop"], cp["event"], cp["state"], "Mantel-Byar")


def compute_logrank(time, event, group) -> LogRankResult:
    """Two-group log-rank test (group 1 vs 0), hypergeometric variance (R ``survdiff``)."""
    t, e, g = _as_arrays(time, event, group)
    return _logrank_counting(np.full_like(t, -np.inf), t, e, (g == 1).astype(float), "log-rank")


def compute_logrank_oev_counting(start, stop, event, state) -> tuple[float, float, float]:
    """Observed and expected events of state 1 and the hypergeometric variance (one stratum).

    Counting-process rows (start, stop]: a row is at risk at an event time t when start < t <= stop
    (rows from the origin have start = -inf). The one O, E, V engine of the log-rank tests here,
    the stratified test and the RPSFTM estimating equation (stats/twoarm.py, stats/rpsftm.py).
    """
    ev_t = np.unique(stop[event == 1])
    if ev_t.size == 0:
        return 0.0, 0.0, 0.0

    def at_risk(mask: np.ndarray) -> np.ndarray:
        # intervals (start, stop] containing t: start < t <= stop
        st = np.sort(start[mask])
        sp = np.sort(stop[mask])
        return np.searchsorted(st, ev_t, side="left") - np.searchsorted(sp, ev_t, side="left")

    one = state == 1
    n = at_risk(np.ones_like(one))
    n1 = at_risk(one)
    ev = event == 1
    d = np.bincount(np.searchsorted(ev_t, stop[ev]), minlength=ev_t.size)
    d1 = np.bincount(np.searchsorted(ev_t, stop[ev & one]), minlength=ev_t.size)
    nf = n.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = d * n1 / nf
        v = np.where(n > 1, d * (n1 / nf) * (1 - n1 / nf) * (nf - d) / (nf - 1), 0.0)
    return float(d1.sum()), float(e1.sum()), float(v.sum())


def _logrank_counting(start, stop, event, state, method: str) -> LogRankResult:
    if not np.any(event == 1):
        nan = float("nan")
        return LogRankResult(0.0, 0.0, 0.0, nan, nan, method, reason="no events")
    o, e_, var = compute_logrank_oev_counting(start, stop, event, state)
    chisq = (o - e_) ** 2 / var if var > 0 else float("nan")
    p = float(_dist.chi2_sf(chisq, 1)) if var > 0 else float("nan")
    reason = "" if var > 0 else "zero variance: at no event time are both groups at risk"
    return LogRankResult(o, e_, var, chisq, p, method, reason=reason)


def compute_time_dependent_cox(
    time, event, switch_time, *, ties: Ties = "efron", level: float = 0.95,
    labels: tuple[str, str] = ("responder", "not yet responder"),
) -> CoxResult:
    """Cox model with a time-dependent state indicator (e.g. responder from response onward).

    Rule
    ----
    Counting-process Cox model (Therneau & Grambsch 2000, section 3.7; R ``coxph(Surv(start,
    stop, event) ~ state)``; SAS PHREG with a programming-statement covariate), fitted by
    :func:`mmtrial.stats.cox.fit_cox` with entry times; Wald CI and p-value. Ties: Efron (R default) or
    Breslow (SAS default). Risk set as R: a row is at risk at t when start < t <= stop (a subject
    who becomes a responder on the day another dies is counted as a non-responder then).
    Not estimable (NaN with a ``reason``) as in :func:`compute_cox`.
    """
    cp = compute_counting_process(time, event, switch_time)
    n_subjects = int(np.asarray(time).size)
    return _cox(cp["stop"], cp["event"], cp["state"], cp["start"], ties, level, "time-dependent Cox", n_subjects,
                labels)


def compute_cox(time, event, group, *, entry=None, ties: Ties = "efron", level: float = 0.95,
                labels: tuple[str, str] = ("group 1", "group 0")) -> CoxResult:
    """Cox model with one binary covariate (group 1 vs 0), :func:`mmtrial.stats.cox.fit_cox`.

    Not estimable (hr, ci and p NaN, ``reason`` says why) when there is no event, when every
    subject is in one group, or when all events are in one group: the partial likelihood is then
    monotone and its maximum is at a hazard ratio of 0 or infinity (Heinze & Schemper, Biometrics
    2001;57:114), so no finite estimate or Wald interval exists. ``labels`` name group 1 and 0
    in that reason.
    """
    t, e, g = _as_arrays(time, event, group)
    return _cox(t, e, (g == 1).astype(float), entry, ties, level, "Cox", t.size, labels)


def cox_without_comparison(ev: np.ndarray, x1: np.ndarray, labels: tuple[str, str]) -> str:
    """Why a Cox model of one binary covariate compares nothing ("" when it compares): no subjects,
    no events, or every subject in one group (``ev``, ``x1``: boolean event and group-1 flags).
    Shared by :func:`compute_cox_estimability` and the stratified model's check
    (:func:`mmtrial.stats.twoarm.compute_stratified_cox_estimability`)."""
    if x1.size == 0:
        return "no subjects"
    if not ev.any():
        return "no events"
    if x1.all() or not x1.any():
        return f"all subjects are {labels[0] if x1.all() else labels[1]}s; there is no comparison group"
    return ""


def compute_cox_estimability(event, x, labels: tuple[str, str] = ("group 1", "group 0")) -> str:
    """Why a one-binary-covariate Cox model has no finite estimate ("" when it has one).

    See :func:`compute_cox`: no events; one group only; or every event in one group
    (monotone likelihood, Heinze & Schemper 2001).
    """
    ev = np.asarray(event, dtype=float) == 1
    x1 = np.asarray(x, dtype=float) == 1
    reason = cox_without_comparison(ev, x1, labels)
    if reason:
        return reason
    e1, e0 = int((ev & x1).sum()), int((ev & ~x1).sum())
    if e1 == 0 or e0 == 0:
        none = labels[0] if e1 == 0 else labels[1]
        return (f"no events among {none}s (all {e1 + e0} events in the other group): the hazard ratio "
                f"estimate is {'0' if e1 == 0 else 'infinite'} (monotone partial likelihood)")
    return ""


def _cox(stop, event, x, entry, ties, level, method, n_subjects, labels=("group 1", "group 0")) -> CoxResult:
    nan = float("nan")
    n_events = int(np.sum(event))
    reason = compute_cox_estimability(event, x, labels)
    if reason:
        return CoxResult(nan, (nan, nan), nan, ties, level, method, n_subjects, n_events, reason=reason)
    # R (start, stop]: a row is at risk at t when start < t <= stop (fit_cox's rule; an entry of
    # 0 means at risk from the start), so a subject who switches to "responder" on the day
    # another subject has the event is counted in the earlier state at that event
    try:
        fit = fit_cox(stop, event, np.asarray(x, float), entry=entry, ties=ties, missing="drop")
        b = float(fit.coef[0])
        se = float(fit.se[0])
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        return CoxResult(nan, (nan, nan), nan, ties, level, method, n_subjects, n_events,
                         reason=f"the Cox model could not be fitted ({exc})")
    z = float(_dist.norm_ppf(1 - (1 - level) / 2))
    with np.errstate(all="ignore"):
        hr, lo, hi = float(np.exp(b)), float(np.exp(b - z * se)), float(np.exp(b + z * se))
    if not (np.isfinite(b) and np.isfinite(se) and se > 0 and all(np.isfinite(v) and v > 0 for v in (hr, lo, hi))):
        return CoxResult(nan, (nan, nan), nan, ties, level, method, n_subjects, n_events,
                         reason="the Cox model has no finite estimate or standard error (coefficient "
                                f"{b:.3g}, SE {se:.3g}): the likelihood is flat or monotone")
    p = float(2 * _dist.norm_sf(abs(b / se)))
    return CoxResult(hr, (lo, hi), p, ties, level, method, n_subjects, n_events)


@dataclass(frozen=True)
class GroupComparison:
    """KM curves of two groups with their log-rank test and Cox hazard ratio."""

    label: str
    groups: dict[str, KaplanMeier]
    n_excluded: int
    logrank: LogRankResult
    cox: CoxResult
    landmark: float | None = None

    def as_dict(self, scale: float = 1.0) -> dict:
        def s(v):
            return None if v is None else v * scale

        return {
            "label": self.label,
            "landmark": self.landmark,
            "n_excluded": self.n_excluded,
            "groups": {
                k: {
                    "n": km.n,
                    "events": km.events,
                    "median": s(km.median),
                    "ci": [s(km.median_ci[0]), s(km.median_ci[1])],
                }
                for k, km in self.groups.items()
            },
            "logrank": self.logrank.as_dict(),
            "cox": self.cox.as_dict(),
        }


def compute_naive_comparison(
    time, event, responder, *, options: KMOptions, ties: Ties = "efron", labels=("responder", "non-responder")
) -> GroupComparison:
    """Responders vs non-responders by best response, time from start (guarantee-time biased)."""
    t, e, r = _as_arrays(time, event, responder)
    one = r == 1
    groups = {
        labels[0]: kaplan_meier(t[one], e[one], options=options),
        labels[1]: kaplan_meier(t[~one], e[~one], options=options),
    }
    return GroupComparison(
        "naive (by best response)", groups, 0, compute_logrank(t, e, one),
        compute_cox(t, e, one, ties=ties, labels=tuple(labels)),
    )


def compute_landmark_comparison(
    time,
    event,
    response_time,
    landmark: float,
    *,
    options: KMOptions,
    ties: Ties = "efron",
    labels=("responder", "non-responder"),
    unit: str = "",
) -> GroupComparison:
    """Landmark analysis: OS from the landmark by response status at the landmark.

    ``unit`` names the time unit in the comparison's label ("landmark at 2 months").

    Rule
    ----
    Anderson, Cain & Gelber 1983: keep subjects still at risk at the landmark (time >= L, so a
    subject censored or dead before L is excluded); responders are those whose response time
    is <= L; time is measured from L. Responses after L count as non-response.
    """
    t, e, rt = _as_arrays(time, event, response_time)
    keep = t >= landmark
    resp = ~np.isnan(rt) & (rt <= landmark)
    tl = t[keep] - landmark
    el = e[keep]
    rl = resp[keep]
    groups = {
        labels[0]: kaplan_meier(tl[rl], el[rl], options=options),
        labels[1]: kaplan_meier(tl[~rl], el[~rl], options=options),
    }
    return GroupComparison(
        f"landmark at {landmark:g} {unit}".rstrip(),
        groups,
        int((~keep).sum()),
        compute_logrank(tl, el, rl),
        compute_cox(tl, el, rl, ties=ties, labels=tuple(labels)),
        landmark=float(landmark),
    )
