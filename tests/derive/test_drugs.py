"""Drug dictionary (data/drug_classes.toml): names, synonyms and brands to classes; unknown
names reported, never dropped (data-contract.md: CMTRT matched through a shipped, editable table)."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.derive.drugs import (
    DrugDictionary,
    compute_drug_names,
    derive_drug_class_membership,
    derive_drug_exposure,
)

DICT = DrugDictionary.load()


@pytest.mark.parametrize(
    ("name", "drug", "cls"),
    [
        # brand -> generic -> class, per the FDA labels of each product
        ("Velcade", "bortezomib", "PI"),
        ("KYPROLIS", "carfilzomib", "PI"),
        ("ninlaro", "ixazomib", "PI"),
        ("Revlimid", "lenalidomide", "IMID"),
        ("Pomalyst", "pomalidomide", "IMID"),
        ("Imnovid", "pomalidomide", "IMID"),
        ("Thalomid", "thalidomide", "IMID"),
        ("Darzalex Faspro", "daratumumab", "ANTI-CD38"),
        ("Sarclisa", "isatuximab", "ANTI-CD38"),
        ("Empliciti", "elotuzumab", "ANTI-SLAMF7"),
        ("Alkeran", "melphalan", "ALKYLATOR"),
        ("Cytoxan", "cyclophosphamide", "ALKYLATOR"),
        ("Treanda", "bendamustine", "ALKYLATOR"),
        ("melflufen", "melphalan flufenamide", "ALKYLATOR"),
        ("Decadron", "dexamethasone", "GLUCOCORTICOID"),
        ("prednisone", "prednisone", "GLUCOCORTICOID"),
        ("Farydak", "panobinostat", "HDAC"),
        ("Venclexta", "venetoclax", "BCL2"),
        ("Blenrep", "belantamab mafodotin", "ANTI-BCMA"),
        ("Xpovio", "selinexor", "XPO1"),
        ("ide-cel", "idecabtagene vicleucel", "CAR-T"),
        ("Carvykti", "ciltacabtagene autoleucel", "CAR-T"),
        ("Tecvayli", "teclistamab", "BISPECIFIC"),
        ("Talvey", "talquetamab", "BISPECIFIC"),
    ],
)
def test_brand_and_synonym_map_to_drug_and_class(name, drug, cls):
    got = compute_drug_names(pd.Series([name]), DICT).iloc[0]
    assert got == drug
    assert cls in set(DICT.drug_classes.loc[DICT.drug_classes["DRUG"] == drug, "CLASS"])


def test_matching_ignores_case_punctuation_and_blanks():
    names = pd.Series(["  velcade ", "PS-341", "ps 341", "Daratumumab and Hyaluronidase", None])
    assert compute_drug_names(names, DICT).tolist()[:4] == ["bortezomib"] * 3 + ["daratumumab"]
    assert pd.isna(compute_drug_names(names, DICT).iloc[4])


def test_unknown_drug_is_kept_and_reported_with_row_subject_and_value():
    cm = pd.DataFrame({
        "USUBJID": ["S1", "S1"], "CMCAT": ["PRIOR ANTI-MYELOMA THERAPY"] * 2, "CMGRPID": ["R1", "R1"],
        "CMTRT": ["BORTEZOMIB", "Wonderdrug-7"],
        "CMSTDT": pd.to_datetime(["2016-01-01"] * 2), "CMENDT": pd.to_datetime(["2016-02-01"] * 2),
        "ROWNUM": [4, 9],
    })
    exp, issues = derive_drug_exposure(cm, dictionary=DICT)
    assert exp["DRUG"].tolist() == ["bortezomib", "wonderdrug 7"]
    assert exp["DRUGKNFL"].tolist() == ["Y", "N"]
    assert len(issues) == 1
    i = issues[0]
    assert (i.domain, i.variable, i.row, i.usubjid, i.value, i.severity) == ("cm", "CMTRT", 9, "S1", "Wonderdrug-7", "warning")
    # the unknown drug has no class, so it never counts toward a class
    mem = derive_drug_class_membership(exp, DICT)
    assert mem["DRUG"].tolist() == ["bortezomib"]


def test_only_prior_therapy_rows_and_missing_regimen_id_reported():
    cm = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1"],
        "CMCAT": ["PRIOR ANTI-MYELOMA THERAPY", "SUBSEQUENT ANTI-MYELOMA THERAPY", "prior anti-myeloma therapy"],
        "CMGRPID": ["R1", "R9", None], "CMTRT": ["LENALIDOMIDE", "SELINEXOR", "MELPHALAN"],
        "CMSTDT": pd.to_datetime(["2016-01-01"] * 3), "CMENDT": pd.to_datetime(["2016-02-01"] * 3),
        "ROWNUM": [1, 2, 3],
    })
    exp, issues = derive_drug_exposure(cm, dictionary=DICT)
    assert exp["DRUG"].tolist() == ["lenalidomide", "melphalan"]
    assert exp["CMGRPID"].tolist() == ["R1", "ROW3"]
    assert [(i.variable, i.row) for i in issues] == [("CMGRPID", 3)]


def test_dictionary_checks_itself(tmp_path):
    bad = tmp_path / "d.toml"
    bad.write_text('[classes.PI]\nlabel="PI"\n[drugs.x]\nclasses=["NOPE"]\n')
    with pytest.raises(ValueError, match="class 'NOPE' unknown"):
        DrugDictionary.load(bad)
    dup = tmp_path / "e.toml"
    dup.write_text('[classes.PI]\nlabel="PI"\n[drugs.a]\nclasses=["PI"]\nsynonyms=["z"]\n'
                   '[drugs.b]\nclasses=["PI"]\nsynonyms=["Z"]\n')
    with pytest.raises(ValueError, match="maps to both"):
        DrugDictionary.load(dup)


def test_editable_dictionary_adds_a_local_spelling(tmp_path):
    p = tmp_path / "local.toml"
    p.write_text('[classes.PI]\nlabel="Proteasome inhibitor"\nprefix="PI"\n'
                 '[drugs.bortezomib]\nclasses=["PI"]\ncode="BTZ"\nsynonyms=["Bortezomib Teva"]\n')
    d = DrugDictionary.load(p)
    assert compute_drug_names(pd.Series(["BORTEZOMIB TEVA"]), d).iloc[0] == "bortezomib"
    assert d.resolve("pi") == ("class", "PI")
    assert d.code_of("bortezomib") == "BTZ"
