"""Step ``adsl``: the base ADSL (treatment dates, SAFFL, death, last alive, disposition)."""

from __future__ import annotations

from mmtrial.context import Analysis
from mmtrial.derive.adsl import compute_disposition_not_derivable, derive_adsl


def run(a: Analysis) -> None:
    a.adam["adsl"] = derive_adsl(a.study.domains)
    rnd = a.protocol.randomisation if a.protocol.is_randomised else None
    if rnd is not None:  # two-arm trials: arms, TRT01P/A, RANDDT, ITTFL, SAFFL, strata (derive/arms.py)
        from mmtrial.derive.arms import derive_adsl_arms

        labels = {code: a.protocol.arm_label(code) for code in a.protocol.arms}
        a.adam["adsl"] = derive_adsl_arms(a.adam["adsl"], a.study.domains, labels=labels,
                                          experimental=rnd.experimental, control=rnd.control,
                                          strata=rnd.strata, per_protocol=rnd.per_protocol,
                                          per_protocol_exclude=rnd.per_protocol_exclude)
    a.methods["populations"] = {
        "safety": a.protocol.populations.safety,
        "efficacy": a.protocol.populations.efficacy,
    }
    why = compute_disposition_not_derivable(a.study.get("ds"))
    if why:
        a.note_not_computable("Disposition: end-of-treatment and end-of-study status (EOTSTT, EOSSTT)", why,
                              step="adsl", key="safety.disposition")
