"""A randomised two-arm study (BOSTON-like) from a two-arm protocol (data contract v2).

``simulate_two_arm`` (called by :func:`~mmtrial.simulate.study.simulate_study` when the protocol
has ``[arms]`` and ``[randomisation]``):

1. draws every subject's enrolment (randomisation) date and baseline factors: prior lines
   (1-3), prior proteasome-inhibitor therapy, prior transplant and the protocol's
   stratification factors (``[simulation.two_arm]``);
2. randomises with stratified permuted blocks (:func:`randomise_permuted_blocks`);
3. simulates each arm with the single-arm model, vectorised over the arm's subjects, under the
   arm's regimen (``Protocol.regimen_for``) and the arm's ``[simulation.arms.<ARMCD>]`` options
   (response, PFS/OS targets, toxicity), with the study's common data cut-off;
4. adds what a randomised study has: dm ACTARMCD/ACTARM, ds RANDOMIZED (DSCAT PROTOCOL
   MILESTONE), suppdm strata, crossover of control subjects to the experimental drug after
   progression (cm SUBSEQUENT ANTI-MYELOMA THERAPY; survival after the switch x
   ``crossover_acceleration_factor``, decided in the control arm's model), randomised subjects
   never treated (``not_treated_prob``: ACTARMCD NOTTRT, no ex) and prognostic strata
   (``time_ratio`` of a stratum level: the latent progression and death times multiplied).

Never imports derive/ or stats/. Model and calibration: docs/simulator.md, "Two-arm studies".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmtrial.errors import ProtocolError
from mmtrial.protocol.model import Protocol
from mmtrial.simulate._frames import constcol, datecol, strcol
from mmtrial.simulate.config import (
    SimulationConfig,
    TwoArmSimulation,
    arm_config,
    simulation_params,
)
from mmtrial.simulate.history_early import early_history
from mmtrial.simulate.params import SimulationParams

__all__ = ["randomise_permuted_blocks", "simulate_two_arm"]

SUPPDM_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG"]


def randomise_permuted_blocks(rng: np.random.Generator, stratum: np.ndarray, ratio: tuple[int, int],
                              block_size: int) -> np.ndarray:
    """Arm (0 = experimental, 1 = control) of each subject, in enrolment order, by stratified permuted blocks.

    Within each stratum, subjects in enrolment order fill consecutive blocks of ``block_size``;
    each block holds ``block_size x ratio / sum(ratio)`` of each arm in random order (Zelen M,
    J Chronic Dis 1974;27:365-375; ICH E9 section 2.3.1). The last block of a stratum may be
    incomplete, so the imbalance per stratum is at most half a block.

    Parameters
    ----------
    stratum : integer stratum code per subject, subjects in enrolment order.
    ratio : allocation ratio experimental:control.
    block_size : a multiple of ``sum(ratio)``.
    """
    total = sum(ratio)
    if block_size % total:
        raise ValueError(f"block_size {block_size} is not a multiple of the allocation ratio's sum {total}")
    stratum = np.asarray(stratum, dtype=np.int64)
    n = len(stratum)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(stratum, kind="stable")  # enrolment order kept within each stratum
    s_sorted = stratum[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    counts = np.diff(np.r_[starts, n])
    pos = np.arange(n) - np.repeat(starts, counts)  # position within the stratum
    blocks_per = -(-counts // block_size)
    block_offset = np.r_[0, np.cumsum(blocks_per)[:-1]]
    block_id = np.repeat(block_offset, counts) + pos // block_size
    template = np.repeat([0, 1], [block_size * ratio[0] // total, block_size * ratio[1] // total])
    perm = np.argsort(rng.random((int(blocks_per.sum()), block_size)), axis=1)
    labels = template[perm]
    arm = np.empty(n, dtype=np.int64)
    arm[order] = labels[block_id, pos % block_size]
    return arm


def _stratum_values(rng: np.random.Generator, tw: TwoArmSimulation, strata: list[str], n_lines: np.ndarray,
                    prior_pi: np.ndarray, source: str) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """QLABEL, level names and codes of each stratification factor (QNAM)."""
    out: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    specs = {k.upper(): v for k, v in tw.strata.items()}
    for q in strata:
        spec = specs.get(q.upper())
        if spec is None:
            raise ProtocolError(f"no way to simulate the stratification factor {q!r}: add "
                                f"[simulation.two_arm.strata.{q}] with derived or levels", file=source,
                                key=f"simulation.two_arm.strata.{q}")
        if spec.derived == "prior_pi":
            names, codes = np.array(["Y", "N"], dtype=object), np.where(prior_pi, 0, 1)
        elif spec.derived == "prior_lines":
            names, codes = np.array(["1", ">1"], dtype=object), np.where(n_lines == 1, 0, 1)
        else:
            names = np.array(list(spec.levels), dtype=object)
            w = np.array(list(spec.levels.values()))
            codes = rng.choice(len(names), len(n_lines), p=w / w.sum())
        out[q] = (spec.label or q, names, codes)
    return out


def _arm_protocol(proto: Protocol, armcd: str, cfg: SimulationConfig) -> Protocol:
    """A view of the protocol for one arm: the arm's regimen and its merged ``[simulation]`` options."""
    raw = dict(proto.model_extra or {})
    raw["simulation"] = arm_config(cfg, armcd).model_dump(mode="json", exclude={"arms", "two_arm"})
    view = proto.model_copy(update={"regimen": proto.regimen_for(armcd), "arms": {}})
    view.__pydantic_extra__ = {**raw}
    return view


def simulate_two_arm(proto: Protocol, cfg: SimulationConfig, n: int, seed: int,
                     params: SimulationParams | None = None, progress=None):
    """Simulate a randomised two-arm study of ``n`` subjects (see the module docstring).

    Returns a :class:`~mmtrial.simulate.study.SimulatedStudy`: domains as the single-arm
    simulator plus suppdm; ``truth`` with ARMCD, the strata, TRUE_CROSSOVER and
    TRUE_CROSSOVER_DT; metadata with the randomisation.
    """
    from mmtrial.simulate.study import ArmFrame, CrossoverPlan, SimulatedStudy, simulate_study

    rnd = proto.randomisation
    assert rnd is not None
    tw = cfg.two_arm
    unknown = sorted({c for c in cfg.arms if c.upper() not in {a.upper() for a in proto.arms}})
    if unknown:
        raise ProtocolError(f"{unknown[0]!r} is not an arm of [arms] ({', '.join(proto.arms)})",
                            file=proto.source_path, key=f"simulation.arms.{unknown[0]}")
    report = progress or (lambda stage, frac: None)
    base = simulation_params(cfg, params)
    r_rand, r_base, r_cross, r_seed, r_nt = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5))

    # --- enrolment and baseline factors (before randomisation) ---------------------------------
    start = int(np.datetime64(base.enrollment_start, "D").astype(np.int64))
    rand_day = np.sort(start + r_base.integers(0, base.enrollment_days + 1, n))
    lo, hi = tw.randomisation_to_dose_days
    first_dose = rand_day + r_base.integers(lo, hi + 1, n)
    cutoff = int(first_dose.max()) + base.cutoff_after_last_days
    n_lines = r_base.choice(3, n, p=np.asarray(tw.prior_lines_probs)) + 1
    prior_pi = r_base.random(n) < tw.prior_pi_prob
    transplant = r_base.random(n) < tw.transplant_prob
    site = r_base.integers(1, base.n_sites + 1, n)
    usubjid = np.char.add(np.char.add(np.char.zfill(site.astype(str), 3), "-"),
                          np.char.zfill(np.arange(1, n + 1).astype(str), 6)).astype(object)
    strata = _stratum_values(r_base, tw, list(rnd.strata), n_lines, prior_pi, proto.source_path)

    # --- stratified permuted-block randomisation -----------------------------------------------
    code = np.zeros(n, dtype=np.int64)
    for _label, names, codes in strata.values():
        code = code * len(names) + codes
    arm_idx = randomise_permuted_blocks(r_rand, code, tuple(rnd.ratio), tw.block_size)
    arms = [rnd.experimental, rnd.control]
    time_ratio = _time_ratio(tw, strata, n)
    cross_draw = r_cross.random(n)  # crossover of control subjects (decided in the arm's model)
    report("randomised", 0.05)

    # --- each arm with the single-arm model ----------------------------------------------------
    parts: list[Any] = []
    arm_seeds = r_seed.integers(0, 2**31 - 1, 2)
    for k, armcd in enumerate(arms):
        idx = np.flatnonzero(arm_idx == k)
        view = _arm_protocol(proto, armcd, cfg)
        plan = (CrossoverPlan(draw=cross_draw[idx], prob=tw.crossover_prob,
                              acceleration_factor=tw.crossover_acceleration_factor) if armcd == rnd.control else None)
        frame = ArmFrame(usubjid=usubjid[idx], site=site[idx], first_dose=first_dose[idx], cutoff=cutoff,
                         arm=(armcd, proto.arm_label(armcd)),
                         history=early_history(n_lines[idx], prior_pi[idx], transplant[idx]),
                         time_ratio=None if time_ratio is None else time_ratio[idx], crossover=plan)
        sub = simulate_study(len(idx), int(arm_seeds[k]), params=params, protocol=view, arm_frame=frame,
                             progress=lambda stage, frac, k=k, a=armcd: report(f"{a}: {stage}", 0.05 + 0.45 * (k + frac)))
        parts.append((idx, sub))

    # --- assemble -------------------------------------------------------------------------------
    domains: dict[str, pd.DataFrame] = {}
    names = [nm for nm in parts[0][1].domains if nm in parts[1][1].domains] + [
        nm for _, s in parts for nm in s.domains if nm not in parts[0][1].domains or nm not in parts[1][1].domains]
    for nm in dict.fromkeys(names):
        frames = [s.domains[nm] for _, s in parts if nm in s.domains]
        domains[nm] = _sort(pd.concat(frames, ignore_index=True), nm)
    truth = pd.concat([s.truth for _, s in parts], ignore_index=True)
    order = np.argsort(np.concatenate([idx for idx, _ in parts]))
    truth = truth.iloc[order].reset_index(drop=True)
    cycles = pd.concat([s.cycles for _, s in parts if s.cycles is not None], ignore_index=True)

    arm_of = np.asarray(arms, dtype=object)[arm_idx]
    truth.insert(1, "ARMCD", pd.Series(arm_of, dtype="str"))
    truth.insert(2, "TRUE_RAND_DT", datecol(rand_day))
    for q, (_label, nm_, codes) in strata.items():
        truth[q] = pd.Series(nm_[codes], dtype="str")
    truth["TRUE_PRIOR_LINES"] = n_lines
    if time_ratio is not None:
        truth["TRUE_TIME_RATIO"] = time_ratio
    p_any = parts[0][1].metadata
    study_id = str(p_any["study_id"])

    # dm: actual arm = planned arm (the never-treated subjects become NOTTRT below)
    dm = domains["dm"]
    at = list(dm.columns).index("ARM") + 1
    dm.insert(at, "ACTARMCD", dm["ARMCD"])
    dm.insert(at + 1, "ACTARM", dm["ARM"])

    # ds: one RANDOMIZED milestone per subject
    ds_rand = pd.DataFrame({
        "STUDYID": constcol(study_id, n), "USUBJID": strcol(usubjid, np.arange(n)),
        "DSCAT": constcol("PROTOCOL MILESTONE", n), "DSDECOD": constcol("RANDOMIZED", n),
        "DSTERM": constcol("RANDOMIZED", n), "DSSTDTC": datecol(rand_day)})
    domains["ds"] = _sort(pd.concat([domains["ds"], ds_rand], ignore_index=True), "ds")

    # suppdm: the stratification factors
    rows = []
    for q, (label, nm_, codes) in strata.items():
        rows.append(pd.DataFrame({
            "STUDYID": constcol(study_id, n), "RDOMAIN": constcol("DM", n),
            "USUBJID": strcol(usubjid, np.arange(n)), "IDVAR": constcol("", n), "IDVARVAL": constcol("", n),
            "QNAM": constcol(q, n), "QLABEL": constcol(label, n), "QVAL": strcol(nm_, codes),
            "QORIG": constcol("CRF", n)}))
    domains["suppdm"] = (pd.concat(rows, ignore_index=True).sort_values(["USUBJID", "QNAM"], kind="stable")
                         .reset_index(drop=True))[SUPPDM_COLUMNS]

    # crossover: control subjects whose subsequent therapy starts after progression
    domains["cm"], truth = _crossover(r_cross, tw, proto, rnd.control, domains["cm"], truth)
    cycles = _never_treated(r_nt, tw.not_treated_prob, domains, truth, cycles)
    report("assembled", 0.98)

    note = (f"Synthetic data from mmtrial's simulator under protocol {proto.study.id} (randomised, "
            f"{rnd.experimental} vs {rnd.control}); not trial data.")
    counts = {a: int((arm_idx == k).sum()) for k, a in enumerate(arms)}
    meta = {**p_any, "seed": int(seed), "n": int(n), "data_cutoff": str(np.datetime64(cutoff, "D")),
            "protocol": proto.source_path, "study_drug": proto.regimen.study_drug.upper(),
            "simulation": cfg.model_dump(mode="json"), "note": note,
            "arms": {a: {"n": counts[a], "seed": int(arm_seeds[k]), "params": parts[k][1].metadata["params"],
                         "simulation": parts[k][1].metadata["simulation"]} for k, a in enumerate(arms)},
            "randomisation": {"method": "stratified permuted blocks", "block_size": tw.block_size,
                              "ratio": list(rnd.ratio), "strata": list(rnd.strata)}}
    meta.pop("params", None)
    return SimulatedStudy(domains=domains, truth=truth, metadata=meta, cycles=cycles)


SORT_KEYS = {"ds": ["USUBJID", "DSSTDTC"], "cm": ["USUBJID"], "rs": ["USUBJID", "RSDTC"], "dm": ["USUBJID"],
             "ex": ["USUBJID"], "lb": ["USUBJID"], "ae": ["USUBJID", "AESTDTC"], "vs": ["USUBJID"]}


def _sort(df: pd.DataFrame, name: str) -> pd.DataFrame:
    keys = [k for k in SORT_KEYS.get(name, ["USUBJID"]) if k in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def _crossover(rng: np.random.Generator, tw: TwoArmSimulation, proto: Protocol, control: str,
               cm: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace the subsequent therapy of crossing-over control subjects by a crossover regimen.

    Who crosses over is decided in the control arm's model (:class:`~mmtrial.simulate.study.CrossoverPlan`:
    a control subject whose first subsequent therapy starts on or after the first progression
    (TRUE_PD_DT), with probability ``crossover_prob``; survival after the switch multiplied by
    ``crossover_acceleration_factor``); here the regimen is drawn from ``crossover_regimens`` and
    starts on the same day (data contract v2: crossover = the first subsequent-therapy record of a
    control subject whose CMTRT is the experimental drug, on or after progression).
    """
    is_control = truth["ARMCD"].to_numpy() == control
    cross = is_control & (truth["TRUE_CROSSOVER"].to_numpy(dtype=object) == "Y")
    cross_dt = truth["TRUE_CROSSOVER_DT"]
    truth = truth.drop(columns=["TRUE_CROSSOVER", "TRUE_CROSSOVER_DT"])  # re-added last
    truth["TRUE_CROSSOVER"] = np.where(is_control, np.where(cross, "Y", "N"), "")
    truth["TRUE_CROSSOVER_DT"] = cross_dt.astype(object).where(cross, None).astype("str")
    ids = truth.loc[cross, "USUBJID"].to_numpy(dtype=object)
    if len(ids) == 0:
        return cm, truth
    reg = rng.choice(len(tw.crossover_regimens), len(ids), p=np.asarray(tw.crossover_regimen_probs))
    sub = (cm["CMCAT"] == "SUBSEQUENT ANTI-MYELOMA THERAPY").to_numpy()
    drop = sub & cm["USUBJID"].isin(set(ids)).to_numpy()
    template = cm.loc[drop].drop_duplicates("USUBJID").set_index("USUBJID")
    lens = np.array([len(r) for r in tw.crossover_regimens])
    owner = np.repeat(np.arange(len(ids)), lens[reg])
    within = np.arange(len(owner)) - np.repeat(np.cumsum(lens[reg]) - lens[reg], lens[reg])
    drugs = np.array([[d.upper() for d in r] + [""] * (lens.max() - len(r)) for r in tw.crossover_regimens],
                     dtype=object)
    new = template.loc[ids[owner]].reset_index()
    new["CMTRT"] = pd.Series(drugs[reg[owner], within], dtype=cm["CMTRT"].dtype)
    new["CMGRPID"] = "S01"
    out = pd.concat([cm.loc[~drop], new[cm.columns]], ignore_index=True)
    return out.sort_values(["USUBJID"], kind="stable").reset_index(drop=True), truth


def _time_ratio(tw: TwoArmSimulation, strata: dict[str, tuple[str, np.ndarray, np.ndarray]],
                n: int) -> np.ndarray | None:
    """Each subject's multiplier of the latent progression and death times: the product over the
    stratification factors of their level's ``time_ratio`` (``None`` when no factor has one)."""
    specs = {k.upper(): v for k, v in tw.strata.items()}
    ratio = np.ones(n)
    any_ratio = False
    for q, (_label, names, codes) in strata.items():
        spec = specs.get(q.upper())
        if spec is None or not spec.time_ratio:
            continue
        any_ratio = True
        ratio = ratio * np.array([spec.time_ratio.get(str(nm), 1.0) for nm in names])[codes]
    return ratio if any_ratio else None


NOT_TREATED = ("NOTTRT", "Not Treated")  # SDTM IG 3.x ACTARMCD / ACTARM for a randomised subject never dosed


def _never_treated(rng: np.random.Generator, prob: float, domains: dict[str, pd.DataFrame], truth: pd.DataFrame,
                   cycles: pd.DataFrame) -> pd.DataFrame:
    """Make a ``prob`` fraction of randomised subjects never treated (in place; returns the cycles).

    dm ACTARMCD/ACTARM NOTTRT / "Not Treated" and no RFXSTDTC/RFXENDTC; no ex, ae or vs records
    and no end-of-treatment disposition; the efficacy follow-up (assessments, progression,
    survival) is kept as simulated (a simplification: docs/simulator.md). ``truth`` gets
    TRUE_TREATED (Y/N). With ``prob`` 0 nothing is drawn and nothing changes.
    """
    if prob <= 0:
        return cycles
    nt = rng.random(len(truth)) < prob
    truth["TRUE_TREATED"] = np.where(nt, "N", "Y")
    ids = set(truth.loc[nt, "USUBJID"])
    if not ids:
        return cycles
    dm = domains["dm"]
    m = dm["USUBJID"].isin(ids)
    dm.loc[m, "ACTARMCD"], dm.loc[m, "ACTARM"] = NOT_TREATED
    for col in ("RFXSTDTC", "RFXENDTC"):
        if col in dm:
            dm.loc[m, col] = None
    for name in ("ex", "ae", "vs"):
        if name in domains:
            d = domains[name]
            domains[name] = d.loc[~d["USUBJID"].isin(ids)].reset_index(drop=True)
    ds = domains["ds"]
    eot = ds["USUBJID"].isin(ids) & (ds.get("DSSCAT", pd.Series("", index=ds.index)) == "END OF TREATMENT")
    domains["ds"] = ds.loc[~eot].reset_index(drop=True)
    return cycles.loc[~cycles["USUBJID"].isin(ids)].reset_index(drop=True)
