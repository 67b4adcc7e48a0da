"""XPT v5 and Dataset-JSON v1.1 round trips: the same rows and values as the Parquet.

The oracle is the Parquet file the pipeline writes (pandas/pyarrow), read back independently;
the XPT is read with pyreadstat (ReadStat), the Dataset-JSON with the json module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmtrial.pipeline import write_adam
from mmtrial.sdtm.write import write_domain
from mmtrial.submission import SUBMISSION_DATASETS
from mmtrial.submission.datasetjson import write_dataset_json
from mmtrial.submission.spec import LABEL_MAX, SAS_NAME, load_spec, submission_frame
from mmtrial.submission.xpt import write_xpt
from support.submission_roundtrip import compare_with_parquet


def _small_adsl() -> pd.DataFrame:
    return pd.DataFrame({
        "USUBJID": pd.array(["001-1", "001-2", "002-3"], dtype="string"),
        "AGE": [64.0, 75.0, np.nan],
        "SEX": ["F", None, "M"],
        "TRTSDT": pd.to_datetime(["2019-01-07", "1960-01-01", None]),
        "DTHDT": pd.to_datetime([None, None, "2020-02-29"]),
        "SAFFL": ["Y", "Y", "N"],
        "NLINES": [7, 3, 10],
        "DCTREAS": ["Caf\u00e9 au lait, 10\u00b5g", "", None],
    })


def _small_adlb() -> pd.DataFrame:
    return pd.DataFrame({
        "USUBJID": ["1", "1"], "PARAMCD": ["PLAT", "HGB"], "ADT": pd.to_datetime(["2019-01-03", "2019-02-01"]),
        "AVAL": [45.5, 7.9], "ATOXGR": pd.array([3.0, None], dtype="Float64"),
        "ATOXGRN": pd.array([3.0, None], dtype="Float64"), "ROWNUM": [1, 2],
    })


@pytest.mark.parametrize(("name", "make"), [("adsl", _small_adsl), ("adlb", _small_adlb)])
def test_round_trip_small(tmp_path: Path, name, make):
    df = make()
    write_adam({name: df}, tmp_path)
    frame, cols, ds = submission_frame(name, df, "STUDY1")
    write_xpt(frame, cols, ds, tmp_path / f"{name}.xpt")
    write_dataset_json(frame, cols, ds, tmp_path / f"{name}.json", study_oid="STUDY1")
    assert compare_with_parquet(name, tmp_path / f"{name}.parquet", tmp_path / f"{name}.xpt",
                                tmp_path / f"{name}.json") > 0


def test_xpt_dates_are_sas_dates(tmp_path: Path):
    """SAS dates count days from 1960-01-01 (SAS Language Reference): 2019-01-07 = 21556."""
    import pyreadstat

    frame, cols, ds = submission_frame("adsl", _small_adsl(), "S")
    write_xpt(frame, cols, ds, tmp_path / "adsl.xpt")
    raw, meta = pyreadstat.read_xport(str(tmp_path / "adsl.xpt"), disable_datetime_conversion=True)
    assert raw["TRTSDT"].tolist()[:2] == [21556.0, 0.0]
    assert meta.table_name == "ADSL" and meta.file_label == "Subject-Level Analysis Dataset"
    assert "STUDYID" in raw.columns and raw["STUDYID"].eq("S").all()


def test_character_grade_in_submission_files(tmp_path: Path):
    """ADaMIG: ATOXGR is character; the numeric grade is ATOXGRN."""
    frame, cols, ds = submission_frame("adlb", _small_adlb(), "S")
    write_dataset_json(frame, cols, ds, tmp_path / "adlb.json", study_oid="S")
    doc = json.loads((tmp_path / "adlb.json").read_text())
    types = {c["name"]: c["dataType"] for c in doc["columns"]}
    assert types["ATOXGR"] == "string" and types["ATOXGRN"] == "double" and types["ADT"] == "date"
    col = [c["name"] for c in doc["columns"]].index("ATOXGR")
    assert [r[col] for r in doc["rows"]] == ["3", None]
    assert doc["datasetJSONVersion"] == "1.1.0" and doc["records"] == 2 and doc["itemGroupOID"] == "IG.ADLB"


def test_spec_names_and_labels_fit_sas_transport():
    spec = load_spec()
    for ds in spec.datasets.values():
        assert len(ds.label) <= LABEL_MAX
        for v in ds.variables:
            assert SAS_NAME.match(v.sas_name), v
            assert len(v.label) <= LABEL_MAX, v
            assert (v.xpt is not None) == (len(v.name) > 8), f"{v.name}: xpt mapping only for long names"


def test_unlisted_variables_get_unique_short_names(tmp_path: Path):
    df = _small_adsl().assign(ELIG_EXP_BTZ="Y", ELIG_EXP_CFZ="N")
    _frame, cols, _ = submission_frame("adsl", df, "S")
    names = [c.name for c in cols]
    assert "ELIG_E01" in names and "ELIG_E02" in names and len(set(names)) == len(names)


def test_simulator_writer_never_leaves_empty_files(tmp_path: Path):
    """The SDTM writers (used by the simulator) refuse long names before writing and write atomically."""
    df = pd.DataFrame({"USUBJID": ["1"], "A_VERY_LONG_NAME": [1.0], "DT": pd.to_datetime(["2020-01-01"])})
    with pytest.raises(ValueError, match="A_VERY_LONG_NAME"):
        write_domain(df, tmp_path / "xx.xpt")
    assert not any(tmp_path.iterdir())
    write_domain(df[["USUBJID", "DT"]], tmp_path / "xx.json")
    doc = json.loads((tmp_path / "xx.json").read_text())
    assert doc["rows"] == [["1", "2020-01-01"]]


def test_demo_round_trip(demo):
    """Every submitted dataset of the demo: XPT and Dataset-JSON equal the Parquet, cell by cell."""
    adam = demo.out_dir / "adam"
    total = 0
    for name in SUBMISSION_DATASETS:
        total += compare_with_parquet(name, adam / f"{name}.parquet", adam / f"{name}.xpt", adam / f"{name}.json")
    assert total > 100_000
    assert not [p for p in adam.iterdir() if p.stat().st_size == 0]


def test_demo_datasets_fully_specified(demo):
    """The shipped specification names every variable the demo's submitted datasets carry."""
    from mmtrial.submission.spec import unlisted

    spec = load_spec()
    for name in SUBMISSION_DATASETS:
        cols = pd.read_parquet(demo.out_dir / "adam" / f"{name}.parquet").columns
        assert unlisted(spec.datasets[name], cols) == [], name


#: CDISC Dataset-JSON v1.1 JSON schema, vendored (MIT licence; tests/data/schemas/dataset-json-1.1/SOURCE.md)
DATASET_JSON_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schemas" / "dataset-json-1.1" / "dataset.schema.json"


def dataset_json_validator():
    """Validator of CDISC's Dataset-JSON v1.1 schema (``schema/dataset.schema.json`` of
    cdisc-org/DataExchange-DatasetJson, vendored); ``MMTRIAL_DATASETJSON_SCHEMA`` may name another copy."""
    import os

    jsonschema = pytest.importorskip("jsonschema")
    path = Path(os.environ.get("MMTRIAL_DATASETJSON_SCHEMA") or DATASET_JSON_SCHEMA)
    schema = json.loads(path.read_text("utf-8"))
    return jsonschema.Draft201909Validator(schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER)


def test_dataset_json_validates_against_cdisc_schema(tmp_path: Path):
    validator = dataset_json_validator()
    for name, make in (("adsl", _small_adsl), ("adlb", _small_adlb)):
        frame, cols, ds = submission_frame(name, make(), "STUDY1")
        write_dataset_json(frame, cols, ds, tmp_path / f"{name}.json", study_oid="STUDY1")
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        errors = list(validator.iter_errors(doc))
        assert not errors, [e.message for e in errors[:5]]
    # the schema is really applied: a wrong version string or a column without its dataType fails
    bad = dict(doc, datasetJSONVersion="1.0")
    assert list(validator.iter_errors(bad))
    bad = dict(doc, columns=[{k: v for k, v in doc["columns"][0].items() if k != "dataType"}, *doc["columns"][1:]])
    assert list(validator.iter_errors(bad))


def test_demo_dataset_json_files_validate_against_cdisc_schema(demo):
    validator = dataset_json_validator()
    files = sorted((demo.out_dir / "adam").glob("*.json"))
    assert {f.stem for f in files} >= set(SUBMISSION_DATASETS)
    for f in files:
        errors = list(validator.iter_errors(json.loads(f.read_text("utf-8"))))
        assert not errors, (f.name, [e.message for e in errors[:3]])


def test_dataset_json_written_in_chunks_is_json_dumps_of_the_document(tmp_path: Path, monkeypatch):
    """Streaming rows a chunk at a time (issue 15) writes exactly ``json.dumps`` of the whole
    document (the json module's own text for the same dict), for 0, 1 and several chunks."""
    import mmtrial.submission.datasetjson as dj

    monkeypatch.setattr(dj, "ROWS_PER_CHUNK", 2)
    for n in (0, 1, 2, 3):
        frame, cols, ds = submission_frame("adsl", _small_adsl().iloc[:n], "S")
        path = dj.write_dataset_json(frame, cols, ds, tmp_path / f"adsl{n}.json", study_oid="S", created="2026-01-01")
        want = json.dumps(dj.dataset_json(frame, cols, ds, study_oid="S", created="2026-01-01"), allow_nan=False)
        assert path.read_text("utf-8") == want
        assert len(json.loads(want)["rows"]) == n
