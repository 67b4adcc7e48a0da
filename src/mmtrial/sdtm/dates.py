"""ISO 8601 dates (``--DTC``) to analysis dates, with documented imputation of partial dates.

Rule: SDTM IG 3.x section 4.4 (ISO 8601 date/time, partial dates by right truncation:
``2019-03``, ``2019``); ADaM IG imputation flags (``--DTF``: ``D`` day imputed, ``M`` month and
day imputed). Imputation follows admiral's ``derive_vars_dt(date_imputation=...)`` choices:
``first`` (day 1 / January), ``mid`` (day 15 / June 30 as admiral's "mid") or ``last`` (last day
of the month / December 31). Defaults: start-type dates ``first``, end-type dates (``--ENDTC``)
``last``; configurable per call and recorded in the analysis methods.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Imputation = Literal["first", "mid", "last", "none"]

#: The dates a ``datetime64[ns]`` column can hold without overflow (pandas' nanosecond range is
#: 1677-09-21 .. 2262-04-11). A calendar date outside it is never converted (it would wrap
#: around into another date, e.g. 2999-01-01 -> 1829-11-23): it is returned as NaT and flagged
#: ``out_of_range``. The plausibility window of ``data/plausibility.toml`` is narrower still.
NS_SAFE_MIN = np.datetime64("1678-01-01", "D")
NS_SAFE_MAX = np.datetime64("2261-12-31", "D")

# YYYY, YYYY-MM or YYYY-MM-DD, optionally followed by a time part (ignored): SDTM IG 4.4
_ISO_ARROW = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9:.+\-Z]*)?)?)?$"


def _np(a, dtype) -> np.ndarray:
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=dtype)


@dataclass(frozen=True)
class DateImputation:
    """How partial dates are completed. ``none`` leaves a partial date missing (NaT)."""

    start: Imputation = "first"
    end: Imputation = "last"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if v not in ("first", "mid", "last", "none"):
                raise ValueError(
                    f"DateImputation.{name} must be one of 'first', 'mid', 'last', 'none'; got {v!r}"
                )


@dataclass(frozen=True)
class ParsedDates:
    """Result of :func:`compute_iso_dates`: dates, imputation flags and an invalid mask."""

    dates: pd.Series  # datetime64[ns], NaT where missing/invalid/not imputed
    flags: pd.Series  # "" complete, "D" day imputed, "M" month and day imputed
    invalid: pd.Series  # bool: a non-empty value that is not ISO 8601 or not a calendar date
    out_of_range: pd.Series | None = None  # bool: a valid date outside NS_SAFE_MIN..NS_SAFE_MAX
    days: pd.Series | None = None  # the dates as datetime64[s] (never overflows; NaT as above)
    imputed: pd.Series | None = None  # bool: a partial date completed (flags != "")
    outside: pd.Series | None = None  # bool: a date (``days``) outside the ``window`` asked for


def compute_iso_dates(values: pd.Series, imputation: Imputation = "first",
                      window: tuple[_dt.date, _dt.date] | None = None, *, days: bool = True) -> ParsedDates:
    """Parse ISO 8601 strings (complete or right-truncated) into dates, vectorised.

    ``window``: (first, last) plausible date; ``outside`` then flags the valid dates outside it.
    ``days=False``: ``days`` is not built (None).

    Examples
    --------
    >>> r = compute_iso_dates(pd.Series(["2019-03-14", "2019-03", "2019", None, "2019-02-30"]))
    >>> [str(d.date()) if d is not pd.NaT else None for d in r.dates]
    ['2019-03-14', '2019-03-01', '2019-01-01', None, None]
    >>> list(r.flags), list(r.invalid)
    (['', 'D', 'M', '', ''], [False, False, False, False, True])

    A date outside the nanosecond range is never wrapped around (it is NaT, flagged):

    >>> r = compute_iso_dates(pd.Series(["2999-01-01", "1066-10-14"]))
    >>> list(r.dates.isna()), list(r.out_of_range), str(r.days.iloc[0].date())
    ([True, True], [True, True], '2999-01-01')
    """
    coded = parse_iso_dates_coded(values, imputation)
    codes = coded.codes  # -1 (missing) takes the last entry: the one for a missing value
    idx = values.index
    flags, invalid, out_of_range, dates = (a[codes] for a in (coded.flags, coded.invalid, coded.out_of_range,
                                                               coded.dates))
    day_values = coded.days[codes] if days else None
    imputed = coded.imputed[codes]
    outside = None
    if window is not None:
        outside = pd.Series(coded.outside(window)[codes], index=idx)
    return ParsedDates(dates=pd.Series(dates, index=idx), flags=pd.Series(flags, index=idx, dtype=object),
                       invalid=pd.Series(invalid, index=idx), out_of_range=pd.Series(out_of_range, index=idx),
                       days=None if day_values is None else pd.Series(day_values, index=idx),
                       imputed=pd.Series(imputed, index=idx), outside=outside)


@dataclass(frozen=True)
class CodedDates:
    """ISO 8601 texts parsed once per distinct text (:func:`parse_iso_dates_coded`).

    Each array has one entry per distinct text plus a last entry for a missing value; ``codes``
    gives each row's entry (-1, the last, for a missing value). ``arr[codes]`` is the per-row
    array of :class:`ParsedDates`; a check whose distinct entries are all false needs no
    per-row array at all (issue 15).
    """

    codes: np.ndarray
    flags: np.ndarray  # object: "" complete, "D" day imputed, "M" month and day imputed
    invalid: np.ndarray
    out_of_range: np.ndarray
    dates: np.ndarray  # datetime64[ns]
    days: np.ndarray  # datetime64[s]

    @property
    def imputed(self) -> np.ndarray:
        """A partial date completed (``flags != ""``; False for a missing value)."""
        return np.append(self.flags[:-1] != "", False)

    def outside(self, window: tuple[_dt.date, _dt.date]) -> np.ndarray:
        """A valid date (``days``) outside ``window`` = (first, last) plausible date."""
        lo, hi = (np.datetime64(w.isoformat(), "s") for w in window)
        with np.errstate(invalid="ignore"):
            return ~np.isnat(self.days) & ((self.days < lo) | (self.days > hi))


def parse_iso_dates_coded(values: pd.Series, imputation: Imputation = "first") -> CodedDates:
    """:func:`compute_iso_dates` on the distinct texts of ``values``, with each row's code.

    Each distinct text is parsed once and taken back to the rows by its code (a lab domain
    repeats a few thousand dates over millions of rows; the codes are shared with the other
    checks of the column, sdtm/_columns.py; issue 15).
    """
    from mmtrial.sdtm._columns import text_codes

    tc = text_codes(values)
    return CodedDates(tc.codes, *_parse_distinct(tc.dictionary, imputation))


def _parse_distinct(texts, imputation: Imputation) -> tuple[np.ndarray, ...]:
    """Flags, invalid, out-of-range, dates (``datetime64[ns]``) and days (``datetime64[s]``) of
    each text of the Arrow array ``texts``, plus one last entry for a missing value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.utf8_trim_whitespace(texts)
    length = pc.utf8_length(arr)
    present = _np(pc.fill_null(pc.greater(length, 0), False), bool)
    matched = _np(pc.fill_null(pc.match_substring_regex(arr, _ISO_ARROW), False), bool)
    n_chars = _np(pc.fill_null(length, 0), "int64")

    # numpy from here on: a few dozen pandas operations cost more than the parse on small domains
    def part(a: int, b: int, ok: np.ndarray) -> np.ndarray:
        sl = pc.utf8_slice_codeunits(arr, a, b)
        sl = pc.if_else(pa.array(ok), sl, pa.scalar(None, sl.type))
        return _np(pc.cast(sl, pa.float64()), "float64")  # NaN where absent

    y = part(0, 4, matched)
    m = part(5, 7, matched & (n_chars >= 7))
    d = part(8, 10, matched & (n_chars >= 10))
    has_m = ~np.isnan(m)
    has_d = ~np.isnan(d)
    flags = np.where(~present | ~matched, "", np.where(has_d, "", np.where(has_m, "D", "M"))).astype(object)

    if imputation == "none":
        m_imp = np.where(has_d, m, np.nan)
        d_imp = np.where(has_d, d, np.nan)
    elif imputation == "first":
        m_imp = np.where(has_m, m, 1.0)
        d_imp = np.where(has_d, d, 1.0)
    elif imputation == "mid":
        m_imp = np.where(has_m, m, 6.0)
        d_imp = np.where(has_d, d, np.where(has_m, 15.0, 30.0))
    else:  # last
        m_imp = np.where(has_m, m, 12.0)
        d_imp = np.where(has_d, d, 31.0)  # clipped to month end below
    with np.errstate(invalid="ignore"):  # NaN compares False
        ok_ym = ~np.isnan(y) & (m_imp >= 1) & (m_imp <= 12)
        yy = np.where(ok_ym, y, 1970).astype("int64")
        mm = np.where(ok_ym, m_imp, 1).astype("int64")
        month_start = (yy - 1970) * 12 + (mm - 1)
        first = month_start.astype("datetime64[M]").astype("datetime64[D]")
        nxt = (month_start + 1).astype("datetime64[M]").astype("datetime64[D]")
        month_len = (nxt - first).astype("int64")
        if imputation == "last":
            d_imp = np.where(has_d, d_imp, month_len)
        valid_day = ok_ym & (d_imp >= 1) & (d_imp <= month_len)
        dd = np.where(valid_day, d_imp, 1).astype("int64")
        raw = first + (dd - 1).astype("timedelta64[D]")  # datetime64[D]: years 0..9999 cannot overflow
        invalid = present & (~matched | (has_d & ~valid_day) | (has_m & ((m < 1) | (m > 12))))
    ok = valid_day & ~invalid
    in_ns = ok & (raw >= NS_SAFE_MIN) & (raw <= NS_SAFE_MAX)
    nat = np.datetime64("NaT")
    dates = np.where(in_ns, raw, nat).astype("datetime64[ns]")
    days = np.where(ok, raw, nat).astype("datetime64[s]")
    return (np.append(flags, np.array([""], dtype=object)), np.append(invalid, False),
            np.append(ok & ~in_ns, False), np.append(dates, np.datetime64("NaT", "ns")),
            np.append(days, np.datetime64("NaT", "s")))


def date_column_names(dtc_var: str) -> tuple[str, str]:
    """``LBDTC`` -> (``LBDT``, ``LBDTF``); ``RFXSTDTC`` -> (``RFXSTDT``, ``RFXSTDTF``)."""
    if not dtc_var.endswith("DTC"):
        raise ValueError(f"not an ISO 8601 date variable (must end in DTC): {dtc_var!r}")
    return dtc_var[:-1], dtc_var[:-1] + "F"


def is_end_date(dtc_var: str) -> bool:
    """End-type dates (``--ENDTC``, ``RFXENDTC``, ``RFENDTC``) impute to the last day."""
    return dtc_var.endswith("ENDTC")
