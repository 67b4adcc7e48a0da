"""Step ``adsl``: the base ADSL (treatment dates, SAFFL, death, last alive, disposition)."""

from __future__ import annotations

from mmtrial.context import Analysis
from mmtrial.derive.adsl import compute_disposition_not_derivable, derive_adsl


def run(a: Analysis) -> None:
    a.adam["adsl"] = derive_adsl(a.study.domains)
    a.methods["populations"] = {
        "safety": a.protocol.populations.safety,
        "efficacy": a.protocol.populations.efficacy,
    }
    why = compute_disposition_not_derivable(a.study.get("ds"))
    if why:
        a.note_not_computable("Disposition: end-of-treatment and end-of-study status (EOTSTT, EOSSTT)", why,
                              step="adsl", key="safety.disposition")
