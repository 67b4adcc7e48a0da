"""The data cut-off: applied once to the read study, before any derivation.

A clinical study report analyses the data up to a cut-off date (ICH E3, section 11.4.1; the
FDA's "data cutoff date" of an interim or primary analysis). :func:`apply_data_cutoff` returns
the study as it stood on that date, by the rules of :data:`CUTOFF_RULES` (docs/submission.md):

* a record that starts after the cut-off is dropped (a lab drawn, an assessment made, a dose
  started, an adverse event or a subsequent therapy begun, a disposition event such as death
  recorded after it is ignored: a death after the cut-off is not a death);
* an end date after the cut-off: exposure (EXENDTC, dm RFXENDTC) is truncated at the cut-off;
  an adverse event or a concomitant therapy still going on at the cut-off gets no end date
  (ongoing), as do the death fields of dm (DTHDTC, DTHFL) dated after it;
* so follow-up ends at the cut-off: last-known-alive dates, and with them every censoring date,
  are on or before it.

Dates are compared after partial-date imputation (``sdtm/dates.py``), on the normalised date
columns (``LBDTC`` -> ``LBDT``); the ``--DTC`` text is kept consistent with them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from mmtrial.context import Study


@dataclass(frozen=True)
class CutoffRule:
    """What happens to one date variable of a domain when it is after the cut-off.

    ``action``: ``drop`` the record, ``truncate`` the date to the cut-off, or ``blank`` it (and
    the variables in ``also_blank``).
    """

    domain: str
    variable: str  # the normalised date column (the --DTC name without its trailing C)
    action: str
    also_blank: tuple[str, ...] = ()


CUTOFF_RULES: tuple[CutoffRule, ...] = (
    CutoffRule("dm", "DTHDT", "blank", ("DTHFL",)),
    CutoffRule("dm", "RFXSTDT", "blank", ("RFXENDT",)),
    CutoffRule("dm", "RFXENDT", "truncate"),
    CutoffRule("ex", "EXSTDT", "drop"),
    CutoffRule("ex", "EXENDT", "truncate"),
    CutoffRule("ae", "AESTDT", "drop"),
    CutoffRule("ae", "AEENDT", "blank"),
    CutoffRule("lb", "LBDT", "drop"),
    CutoffRule("ds", "DSSTDT", "drop"),
    CutoffRule("cm", "CMSTDT", "drop"),
    CutoffRule("cm", "CMENDT", "blank"),
    CutoffRule("rs", "RSDT", "drop"),
    CutoffRule("pr", "PRSTDT", "drop"),
    CutoffRule("tu", "TUDT", "drop"),
    CutoffRule("tr", "TRDT", "drop"),
)


def _text_column(df: pd.DataFrame, var: str) -> str | None:
    name = f"{var}C"
    return name if name in df.columns else None


def apply_cutoff_to_domain(df: pd.DataFrame, rules: list[CutoffRule], cutoff: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """One domain at the cut-off, and the number of records dropped."""
    out = df
    dropped = 0
    for rule in rules:
        if rule.variable not in out.columns:
            continue
        when = pd.to_datetime(out[rule.variable], errors="coerce")
        after = (when > cutoff).fillna(False).to_numpy(dtype=bool)
        if not after.any():
            continue
        if rule.action == "drop":
            dropped += int(after.sum())
            out = out.loc[~after]
            continue
        out = out.copy()
        text = _text_column(out, rule.variable)
        if rule.action == "truncate":
            out.loc[after, rule.variable] = cutoff
            if text:
                out[text] = out[text].astype(object)
                out.loc[after, text] = cutoff.date().isoformat()
        else:
            out.loc[after, rule.variable] = pd.NaT
            if text:
                out[text] = out[text].astype(object)
                out.loc[after, text] = None
            for extra in rule.also_blank:
                if extra in out.columns:
                    if pd.api.types.is_datetime64_any_dtype(out[extra]):
                        out.loc[after, extra] = pd.NaT
                    else:
                        out[extra] = out[extra].astype(object)
                        out.loc[after, extra] = None
                    extra_text = _text_column(out, extra)
                    if extra_text:
                        out[extra_text] = out[extra_text].astype(object)
                        out.loc[after, extra_text] = None
    return out, dropped


def apply_data_cutoff(study: Study, cutoff: date) -> Study:
    """The study as it stood on ``cutoff`` (rules in the module docstring and :data:`CUTOFF_RULES`).

    The returned study records the cut-off in ``metadata["applied_cutoff"]`` and the records
    dropped per domain in ``metadata["cutoff_dropped"]``; the input is not modified.
    """
    ts = pd.Timestamp(cutoff)
    domains = {}
    dropped: dict[str, int] = {}
    for name, df in study.domains.items():
        rules = [r for r in CUTOFF_RULES if r.domain == name]
        new, n = apply_cutoff_to_domain(df, rules, ts) if rules else (df, 0)
        domains[name] = new
        if n:
            dropped[name] = n
    meta = {**study.metadata, "applied_cutoff": cutoff, "cutoff_dropped": dropped}
    return replace(study, domains=domains, metadata=meta)
