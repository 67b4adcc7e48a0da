"""Drug dictionary and prior-therapy drug exposure (cm PRIOR ANTI-MYELOMA THERAPY rows).

The dictionary is data (``mmtrial/data/drug_classes.toml``): drug names, synonyms and brands
mapped, case-insensitively, to classes (PI, IMID, ANTI-CD38, ALKYLATOR, GLUCOCORTICOID ...).
Unknown names are reported as :class:`~mmtrial.sdtm.issues.InputIssue` warnings and kept as
drugs of their own (class unknown), never dropped.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.sdtm.issues import InputIssue

PRIOR_THERAPY_CATEGORY = "PRIOR ANTI-MYELOMA THERAPY"

_NON_ALNUM = re.compile(r"[^0-9A-Z]+")


def compute_normalised_name(names: pd.Series) -> pd.Series:
    """Upper-case names with every run of non-alphanumerics turned into one blank, stripped.

    ``"Velcade "``, ``"VELCADE"`` and ``"velcade"`` all give ``"VELCADE"``;
    ``"PS-341"`` and ``"ps 341"`` both give ``"PS 341"``. Missing stays missing.
    """
    s = names.astype("string").str.upper()
    return s.str.replace(r"[^0-9A-Z]+", " ", regex=True).str.strip()


def _normalise_one(name: str) -> str:
    return _NON_ALNUM.sub(" ", name.upper()).strip()


@dataclass(frozen=True)
class DrugDictionary:
    """The drug dictionary in force.

    Attributes
    ----------
    drugs : DataFrame
        One row per drug: ``DRUG`` (canonical lower-case name), ``CODE`` (ADSL prefix or NA).
    drug_classes : DataFrame
        One row per (``DRUG``, ``CLASS``) pair (a drug may belong to several classes).
    classes : DataFrame
        One row per class: ``CLASS``, ``LABEL``, ``PREFIX`` (ADSL prefix for class variables).
    lookup : dict
        Normalised name or synonym -> canonical drug name.
    version, source : str
        Printed in the method notes.
    """

    drugs: pd.DataFrame
    drug_classes: pd.DataFrame
    classes: pd.DataFrame
    lookup: dict[str, str] = field(repr=False)
    version: str = ""
    source: str = ""
    path: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> DrugDictionary:
        """Load and check a dictionary TOML (``None``: the shipped ``data/drug_classes.toml``).

        Raises ``ValueError`` naming the entry when a drug names an unknown class, has no class,
        or a synonym maps to two different drugs.
        """
        if path is None:
            text = resources.files("mmtrial.data").joinpath("drug_classes.toml").read_text("utf-8")
            src = "mmtrial/data/drug_classes.toml"
        else:
            text = Path(path).read_text("utf-8")
            src = str(path)
        data = tomllib.loads(text)
        return cls.from_dict(data, path=src)

    @classmethod
    def from_dict(cls, data: dict, *, path: str = "") -> DrugDictionary:
        classes = data.get("classes", {})
        if not classes:
            raise ValueError(f"drug dictionary {path}: [classes] is empty; expected class entries")
        class_rows = []
        for code, spec in classes.items():
            prefix = spec.get("prefix", code)
            class_rows.append({"CLASS": code, "LABEL": spec.get("label", code), "PREFIX": prefix})
        lookup: dict[str, str] = {}
        drug_rows, pair_rows = [], []
        for name, spec in data.get("drugs", {}).items():
            canon = name.lower().strip()
            dclasses = spec.get("classes", [])
            if not dclasses:
                raise ValueError(f"drug dictionary {path}: drug {name!r} has no classes; "
                                 f"expected classes = [one of {sorted(classes)}]")
            for c in dclasses:
                if c not in classes:
                    raise ValueError(f"drug dictionary {path}: drug {name!r}: class {c!r} unknown; "
                                     f"allowed {sorted(classes)}")
                pair_rows.append({"DRUG": canon, "CLASS": c})
            drug_rows.append({"DRUG": canon, "CODE": spec.get("code")})
            for syn in [name, *spec.get("synonyms", [])]:
                key = _normalise_one(syn)
                if key in lookup and lookup[key] != canon:
                    raise ValueError(f"drug dictionary {path}: synonym {syn!r} maps to both "
                                     f"{lookup[key]!r} and {canon!r}")
                lookup[key] = canon
        meta = data.get("meta", {})
        drugs = pd.DataFrame(drug_rows, columns=["DRUG", "CODE"])
        return cls(
            drugs=drugs,
            drug_classes=pd.DataFrame(pair_rows, columns=["DRUG", "CLASS"]),
            classes=pd.DataFrame(class_rows, columns=["CLASS", "LABEL", "PREFIX"]),
            lookup=lookup,
            version=str(meta.get("version", "")),
            source=str(meta.get("source", "")),
            path=path,
        )

    def resolve(self, name: str) -> tuple[str, str]:
        """Resolve a drug or class reference used in rules: ``("drug", name)`` or ``("class", code)``.

        Classes are matched by code (case-insensitive: ``pi``, ``IMID``, ``anti-cd38``), drugs
        by any synonym. Raises ``ValueError`` listing what is allowed.
        """
        up = name.strip().upper()
        codes = {c.upper(): c for c in self.classes["CLASS"]}
        if up in codes:
            return "class", codes[up]
        key = _normalise_one(name)
        if key in self.lookup:
            return "drug", self.lookup[key]
        raise ValueError(f"{name!r} is neither a drug nor a class of the drug dictionary "
                         f"({self.path}); classes: {sorted(codes.values())}")

    def code_of(self, drug: str) -> str:
        """The ADSL prefix of a drug (its ``code``, else its first three letters upper-cased)."""
        row = self.drugs.loc[self.drugs["DRUG"] == drug, "CODE"]
        if len(row) and isinstance(row.iloc[0], str):
            return row.iloc[0]
        return _normalise_one(drug).replace(" ", "")[:3]

    def prefix_of(self, cls_code: str) -> str:
        row = self.classes.loc[self.classes["CLASS"] == cls_code, "PREFIX"]
        return str(row.iloc[0]) if len(row) else cls_code

    def label_of(self, cls_code: str) -> str:
        row = self.classes.loc[self.classes["CLASS"] == cls_code, "LABEL"]
        return str(row.iloc[0]) if len(row) else cls_code


def compute_drug_names(names: pd.Series, dictionary: DrugDictionary) -> pd.Series:
    """Canonical drug names for free-text names (NA where the dictionary has no match).

    Examples
    --------
    >>> d = DrugDictionary.load()
    >>> compute_drug_names(pd.Series(["VELCADE", "revlimid", "Dara", "xyz"]), d).tolist()
    ['bortezomib', 'lenalidomide', 'daratumumab', <NA>]
    """
    key = compute_normalised_name(names)
    return key.map(dictionary.lookup).astype("string")


DRUG_EXPOSURE_COLUMNS = [
    "USUBJID", "ROWNUM", "CMGRPID", "CMTRT", "DRUG", "DRUGKNFL", "CMSTDT", "CMENDT",
    "CMSTDTF", "CMENDTF", "CMRSDISC", "CMSCAT", "CMLNKGRP",
]


def derive_drug_exposure(
    cm: pd.DataFrame | None,
    *,
    dictionary: DrugDictionary,
    category: str = PRIOR_THERAPY_CATEGORY,
) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Prior anti-myeloma drug exposure: one row per cm drug row, with its canonical drug name.

    Rule
    ----
    data-contract.md (cm prior therapy): CMCAT ``PRIOR ANTI-MYELOMA THERAPY``, one row per drug
    per regimen, CMGRPID the regimen. Names are matched through the drug dictionary.

    Algorithm
    ---------
    1. Keep rows with CMCAT equal to ``category`` (case-insensitive).
    2. Map CMTRT to a canonical drug; unmatched names keep their normalised CMTRT as ``DRUG``
       with ``DRUGKNFL = "N"`` and give one warning each (domain cm, variable CMTRT, row ROWNUM).
    3. Rows without CMGRPID become a one-row regimen ``ROW<ROWNUM>`` (warning).

    Returns
    -------
    (exposure, issues)
    """
    issues: list[InputIssue] = []
    if cm is None or len(cm) == 0 or "CMTRT" not in cm.columns:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in DRUG_EXPOSURE_COLUMNS}), issues
    cat = cm["CMCAT"].astype("string").str.upper().str.strip() if "CMCAT" in cm else None
    x = cm.loc[cat == category] if cat is not None else cm.copy(deep=False)  # (loc copies: no second copy)
    if "ROWNUM" not in x:
        x["ROWNUM"] = np.arange(1, len(x) + 1)
    for col in ("CMGRPID", "CMRSDISC", "CMSCAT", "CMLNKGRP", "CMSTDTF", "CMENDTF"):
        if col not in x:
            x[col] = pd.NA
    for col in ("CMSTDT", "CMENDT"):
        if col not in x:
            x[col] = pd.NaT
        x[col] = pd.to_datetime(x[col])
    for col in ("CMRSDISC", "CMSCAT"):
        x[col] = x[col].astype("string").str.upper().str.strip()
    x["CMLNKGRP"] = x["CMLNKGRP"].astype("string").str.strip().replace("", pd.NA)
    x["CMSTDTF"] = x["CMSTDTF"].astype("string").fillna("")
    x["CMENDTF"] = x["CMENDTF"].astype("string").fillna("")
    drug = compute_drug_names(x["CMTRT"], dictionary)
    known = drug.notna()
    x["DRUG"] = drug.fillna(compute_normalised_name(x["CMTRT"]).str.lower())
    x["DRUGKNFL"] = np.where(known, "Y", "N")
    bad = x.loc[~known]
    issues += [
        InputIssue(domain="cm", variable="CMTRT", problem="drug name not in the drug dictionary; kept "
                   "as its own drug with no class", severity="warning", usubjid=str(u), row=int(r),
                   value=None if pd.isna(v) else str(v),
                   hint=f"Add it (or a synonym) to {dictionary.path}.", rule="drug dictionary")
        for u, r, v in zip(bad["USUBJID"], bad["ROWNUM"], bad["CMTRT"], strict=True)
    ]
    grp = x["CMGRPID"].astype("string").str.strip().replace("", pd.NA)
    nogrp = grp.isna()
    if nogrp.any():
        b = x.loc[nogrp]
        issues += [
            InputIssue(domain="cm", variable="CMGRPID", problem="no regimen id; the row is taken as a "
                       "one-drug regimen of its own", severity="warning", usubjid=str(u), row=int(r),
                       value=None, hint="Give every drug of a regimen the same CMGRPID.",
                       rule="data-contract cm prior therapy")
            for u, r in zip(b["USUBJID"], b["ROWNUM"], strict=True)
        ]
    x["CMGRPID"] = grp.fillna("ROW" + x["ROWNUM"].astype("string"))
    x["USUBJID"] = x["USUBJID"].astype("string")
    nost = x["CMSTDT"].isna()
    if nost.any():
        b = x.loc[nost]
        issues += [
            InputIssue(domain="cm", variable="CMSTDTC", problem="prior-therapy start date missing; the "
                       "drug counts as exposure, its regimen is placed last in the line sequence",
                       severity="warning", usubjid=str(u), row=int(r), value=None,
                       hint="Give at least the year.", rule="lines of therapy")
            for u, r in zip(b["USUBJID"], b["ROWNUM"], strict=True)
        ]
    return x[DRUG_EXPOSURE_COLUMNS].reset_index(drop=True), issues


def derive_drug_class_membership(exposure: pd.DataFrame, dictionary: DrugDictionary) -> pd.DataFrame:
    """Distinct (USUBJID, DRUG, CLASS) for the drugs in ``exposure`` (unknown drugs have none)."""
    d = exposure[["USUBJID", "DRUG"]].drop_duplicates()
    return d.merge(dictionary.drug_classes, on="DRUG", how="inner")
