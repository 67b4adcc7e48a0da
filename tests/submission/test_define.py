"""define.xml against the Define-XML 2.1 structure (CDISC Define-XML v2.1 specification).

Structural checks always run: one ItemGroupDef per dataset written with its def:leaf, one
ItemRef and ItemDef per variable, codelists and methods referenced exist, keys ordered.
Schema validation runs by default against the CDISC Define-XML 2.1 schema (``define2-1-0.xsd``
with the ODM 1.3.2 schema it extends) as redistributed in the odmlib package (MIT licence;
``odmlib/schemas/define/2.1``, a test dependency); ``MMTRIAL_DEFINE21_SCHEMA`` may name another
folder holding ``cdisc-define-2.1/define2-1-0.xsd`` (the layout of CDISC's release package).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmtrial.submission.define import DEF, ODM, WrittenDataset, define_xml
from mmtrial.submission.spec import load_spec, submission_frame

NS = {"odm": ODM, "def": DEF}


def _written():
    adsl = pd.DataFrame({"USUBJID": ["1", "2"], "AGE": [60.0, 70.0], "AGEGR1": ["<65", "65-74"],
                         "TRTSDT": pd.to_datetime(["2019-01-01", "2019-02-01"]), "SAFFL": ["Y", "Y"]})
    adtte = pd.DataFrame({"USUBJID": ["1", "2"], "PARAMCD": ["PFS", "PFS"], "AVAL": [30.0, 60.0],
                          "CNSR": [0, 1], "ADT": pd.to_datetime(["2019-01-30", "2019-04-01"])})
    out = []
    for name, df in (("adsl", adsl), ("adtte", adtte)):
        frame, cols, ds = submission_frame(name, df, "STUDY1")
        out.append(WrittenDataset(spec=ds, columns=cols, xpt_name=f"{name}.xpt", records=len(frame)))
    return out


def check_define_structure(xml: bytes, expect: dict[str, list[str]]) -> None:
    """Assert define.xml describes exactly the datasets and variables in ``expect``."""
    root = ET.fromstring(xml)
    assert root.tag == f"{{{ODM}}}ODM" and root.get("ODMVersion") == "1.3.2"
    mdv = root.find("odm:Study/odm:MetaDataVersion", NS)
    assert mdv.get(f"{{{DEF}}}DefineVersion") == "2.1.0"
    groups = {g.get("Name"): g for g in mdv.findall("odm:ItemGroupDef", NS)}
    assert set(groups) == {k.upper() for k in expect}
    items = {i.get("OID"): i for i in mdv.findall("odm:ItemDef", NS)}
    codelists = {c.get("OID") for c in mdv.findall("odm:CodeList", NS)}
    methods = {m.get("OID") for m in mdv.findall("odm:MethodDef", NS)}
    for name, variables in expect.items():
        g = groups[name.upper()]
        refs = g.findall("odm:ItemRef", NS)
        assert [r.get("ItemOID") for r in refs] == [f"IT.{name.upper()}.{v}" for v in variables]
        assert [int(r.get("OrderNumber")) for r in refs] == list(range(1, len(refs) + 1))
        leaf = g.find("def:leaf", NS)
        assert leaf.get("{http://www.w3.org/1999/xlink}href") == f"adam/{name}.xpt"
        assert g.find("def:Class", NS).get("Name")
        for r in refs:
            item = items[r.get("ItemOID")]
            assert item.find("odm:Description/odm:TranslatedText", NS).text
            assert len(item.get("SASFieldName")) <= 8 and int(item.get("Length")) >= 1
            assert item.find("def:Origin", NS) is not None
            cl = item.find("odm:CodeListRef", NS)
            if cl is not None:
                assert cl.get("CodeListOID") in codelists
            if r.get("MethodOID"):
                assert r.get("MethodOID") in methods
        keys = sorted((int(r.get("KeySequence")), r.get("ItemOID")) for r in refs if r.get("KeySequence"))
        assert [k for k, _ in keys] == list(range(1, len(keys) + 1))


def define21_xsd() -> Path:
    """The Define-XML 2.1 schema: ``MMTRIAL_DEFINE21_SCHEMA`` (a CDISC release folder), else the
    copy odmlib ships (imports resolved relative to it: ../../odm/1.3.2/ODM1-3-2-foundation.xsd)."""
    folder = os.environ.get("MMTRIAL_DEFINE21_SCHEMA")
    if folder:
        return Path(folder) / "cdisc-define-2.1" / "define2-1-0.xsd"
    odmlib = pytest.importorskip("odmlib", reason="odmlib (test extra) ships the Define-XML 2.1 schema")
    return Path(odmlib.__file__).parent / "schemas" / "define" / "2.1" / "define2-1-0.xsd"


def validate_xsd(xml: bytes) -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(define21_xsd())))
    doc = etree.fromstring(xml)
    assert schema.validate(doc), schema.error_log


def test_define_structure_small():
    w = _written()
    xml = define_xml(w, load_spec(), study_id="STUDY1", study_title="A study", cutoff=date(2019, 6, 1),
                     created="2026-01-01T00:00:00")
    check_define_structure(xml, {d.spec.name: [c.name for c in d.columns] for d in w})
    root = ET.fromstring(xml)
    trtsdt = root.find(".//odm:ItemDef[@OID='IT.ADSL.TRTSDT']", NS)
    assert trtsdt.get("DataType") == "integer" and trtsdt.get(f"{{{DEF}}}DisplayFormat") == "DATE9."
    usubjid = root.find(".//odm:ItemDef[@OID='IT.ADSL.USUBJID']", NS)
    assert usubjid.find("def:Origin", NS).get("Type") == "Predecessor"
    assert "2019-06-01" in root.find(".//def:CommentDef/odm:Description/odm:TranslatedText", NS).text
    cnsr = root.find(".//odm:CodeList[@OID='CL.CNSR']", NS)
    assert [i.get("CodedValue") for i in cnsr.findall("odm:CodeListItem", NS)] == ["0", "1"]


def test_define_validates_against_schema_small():
    xml = define_xml(_written(), load_spec(), study_id="STUDY1", study_title="A study", cutoff=date(2019, 6, 1))
    validate_xsd(xml)
    # the schema is really applied: an ItemDef without its required DataType, or a def:Class
    # outside the Define-XML 2.1 enumeration, is invalid
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(define21_xsd())))
    for broken in (xml.replace(b'DataType="integer"', b"", 1),
                   xml.replace(b'Name="SUBJECT LEVEL ANALYSIS DATASET"', b'Name="NOT A CLASS"', 1)):
        assert broken != xml
        assert not schema.validate(etree.fromstring(broken))


def test_demo_define(demo):
    xml = (demo.out_dir / "define.xml").read_bytes()
    expect = {}
    from mmtrial.submission import SUBMISSION_DATASETS

    for name in SUBMISSION_DATASETS:
        import json

        doc = json.loads((demo.out_dir / "adam" / f"{name}.json").read_text())
        expect[name] = [c["name"] for c in doc["columns"]]
    check_define_structure(xml, expect)
    validate_xsd(xml)


def test_define_lengths_follow_data():
    df = pd.DataFrame({"USUBJID": ["1", "22222"], "SEX": [None, np.nan], "DCTREAS": ["caf\u00e9", None]})
    _frame, cols, _ds = submission_frame("adsl", df, "S")
    lengths = {c.name: c.length for c in cols}
    assert lengths["USUBJID"] == 5 and lengths["SEX"] == 1 and lengths["STUDYID"] == 1
    assert lengths["DCTREAS"] == 5  # bytes in UTF-8, as SAS transport stores them ("\u00e9" is 2 bytes)


def test_value_level_metadata_of_aval_per_paramcd():
    # Define-XML 2.1 section 5.3.6: AVAL of a BDS dataset described per PARAMCD by a ValueListDef
    # whose ItemRefs are selected by WhereClauseDefs (PARAMCD EQ code); schema-valid
    from mmtrial.submission import parameters

    adtte = pd.DataFrame({"USUBJID": ["1", "1", "2"], "PARAMCD": ["PFS", "OS", "PFS"],
                          "PARAM": ["Progression-free survival (days)", "Overall survival (days)",
                                    "Progression-free survival (days)"],
                          "AVAL": [30.0, 90.0, 60.0], "CNSR": [0, 1, 1],
                          "ADT": pd.to_datetime(["2019-01-30", "2019-04-01", "2019-04-01"])})
    frame, cols, ds = submission_frame("adtte", adtte, "STUDY1")
    params = parameters(frame)
    assert params == (("PFS", "Progression-free survival (days)"), ("OS", "Overall survival (days)"))
    w = [WrittenDataset(spec=ds, columns=cols, xpt_name="adtte.xpt", records=len(frame), params=params)]
    xml = define_xml(w, load_spec(), study_id="STUDY1", study_title="A study")
    validate_xsd(xml)
    root = ET.fromstring(xml)
    mdv = root.find("odm:Study/odm:MetaDataVersion", NS)
    aval = mdv.find("odm:ItemDef[@OID='IT.ADTTE.AVAL']", NS)
    assert aval.find("def:ValueListRef", NS).get("ValueListOID") == "VL.ADTTE.AVAL"
    vl = mdv.find("def:ValueListDef[@OID='VL.ADTTE.AVAL']", NS)
    refs = vl.findall("odm:ItemRef", NS)
    assert [r.get("ItemOID") for r in refs] == ["IT.ADTTE.AVAL.PFS", "IT.ADTTE.AVAL.OS"]
    for r, (code, label) in zip(refs, params, strict=True):
        wc = mdv.find(f"def:WhereClauseDef[@OID='{r.find('def:WhereClauseRef', NS).get('WhereClauseOID')}']", NS)
        rc = wc.find("odm:RangeCheck", NS)
        assert rc.get("Comparator") == "EQ" and rc.get(f"{{{DEF}}}ItemOID") == "IT.ADTTE.PARAMCD"
        assert rc.find("odm:CheckValue", NS).text == code
        item = mdv.find(f"odm:ItemDef[@OID='{r.get('ItemOID')}']", NS)
        assert item.get("Name") == "AVAL" and label in item.find("odm:Description/odm:TranslatedText", NS).text
    # without parameters (ADSL) no value list
    assert mdv.find("def:ValueListDef[@OID='VL.ADSL.AVAL']", NS) is None
