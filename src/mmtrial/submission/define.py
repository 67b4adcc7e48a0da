"""``define.xml``: Define-XML 2.1 metadata of the ADaM datasets written (CDISC Define-XML v2.1).

One ``ItemGroupDef`` per dataset (class, structure, keys, the XPT as ``def:leaf``), one
``ItemDef`` per variable (name, SAS name, data type, length, display format, label, origin),
``CodeList`` for the specification's codelists that a variable uses, ``MethodDef`` for every
derivation text, a ``def:CommentDef`` with the data cut-off, and value-level metadata of AVAL
per PARAMCD for the BDS datasets (``def:ValueListDef`` / ``def:WhereClauseDef``). Element order follows the
Define-XML 2.1 schema (``define2-1-0.xsd``); the tests validate against it. Written with the standard library's ElementTree (why not odmlib: docs/design.md).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from mmtrial._io import atomic_write_bytes
from mmtrial.submission.spec import AdamSpec, Column, DatasetSpec

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"
XLINK = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ADAMIG_VERSION = "1.3"

ET.register_namespace("", ODM)
ET.register_namespace("def", DEF)
ET.register_namespace("xlink", XLINK)

_DEFINE_TYPE = {"text": "text", "integer": "integer", "float": "float", "date": "integer"}


@dataclass(frozen=True)
class WrittenDataset:
    """A dataset as written: its specification, columns and the XPT file name."""

    spec: DatasetSpec
    columns: list[Column]
    xpt_name: str
    records: int
    #: (PARAMCD, PARAM) of a BDS dataset, in order: value-level metadata of AVAL per parameter
    params: tuple[tuple[str, str], ...] = ()


def _o(tag: str) -> str:
    return f"{{{ODM}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{DEF}}}{tag}"


def _description(parent: ET.Element, text: str) -> None:
    desc = ET.SubElement(parent, _o("Description"))
    ET.SubElement(desc, _o("TranslatedText"), {XML_LANG: "en"}).text = text


def _value_lists(mdv: ET.Element, vlm: dict[str, WrittenDataset]) -> None:
    """Value-level metadata (Define-XML 2.1 section 5.3.6): for each BDS dataset, a
    ``def:ValueListDef`` of AVAL with one ItemRef per parameter, each selected by a
    ``def:WhereClauseDef`` PARAMCD EQ code (placed before the ItemGroupDefs, as the schema orders)."""
    for name, w in vlm.items():
        vl = ET.SubElement(mdv, _d("ValueListDef"), {"OID": f"VL.{name}.AVAL"})
        for i, (code, _) in enumerate(w.params, start=1):
            ref = ET.SubElement(vl, _o("ItemRef"), {"ItemOID": f"IT.{name}.AVAL.{code}", "OrderNumber": str(i),
                                                    "Mandatory": "No"})
            ET.SubElement(ref, _d("WhereClauseRef"), {"WhereClauseOID": f"WC.{name}.PARAMCD.{code}"})
    for name, w in vlm.items():
        for code, _ in w.params:
            wc = ET.SubElement(mdv, _d("WhereClauseDef"), {"OID": f"WC.{name}.PARAMCD.{code}"})
            rc = ET.SubElement(wc, _o("RangeCheck"), {"Comparator": "EQ", "SoftHard": "Soft",
                                                       _d("ItemOID"): f"IT.{name}.PARAMCD"})
            ET.SubElement(rc, _o("CheckValue")).text = code


def define_xml(datasets: list[WrittenDataset], spec: AdamSpec, *, study_id: str, study_title: str,
               cutoff: date | None = None, created: str | None = None) -> bytes:
    """The define.xml document (UTF-8 bytes)."""
    now = created or datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element(_o("ODM"), {
        "FileOID": f"mmtrial.{study_id}.ADaM.define", "ODMVersion": "1.3.2", "FileType": "Snapshot",
        "CreationDateTime": now, "Originator": "mmtrial", _d("Context"): "Submission"})
    study = ET.SubElement(root, _o("Study"), {"OID": f"STDY.{study_id}"})
    gv = ET.SubElement(study, _o("GlobalVariables"))
    ET.SubElement(gv, _o("StudyName")).text = study_id
    ET.SubElement(gv, _o("StudyDescription")).text = study_title or study_id
    ET.SubElement(gv, _o("ProtocolName")).text = study_id
    mdv = ET.SubElement(study, _o("MetaDataVersion"), {
        "OID": f"MDV.{study_id}", "Name": f"Study {study_id}, ADaM data definitions",
        "Description": f"Study {study_id}, ADaM data definitions", _d("DefineVersion"): "2.1.0"})
    stds = ET.SubElement(mdv, _d("Standards"))
    ET.SubElement(stds, _d("Standard"), {"OID": "STD.ADAMIG", "Name": "ADaMIG", "Type": "IG",
                                         "Status": "Final", "Version": ADAMIG_VERSION})

    vlm = {w.spec.name.upper(): w for w in datasets
           if w.params and {"PARAMCD", "AVAL"} <= {c.name for c in w.columns}}
    _value_lists(mdv, vlm)

    methods: dict[str, str] = {}
    used_codelists: list[str] = []
    for w in datasets:
        name = w.spec.name.upper()
        igd = ET.SubElement(mdv, _o("ItemGroupDef"), {
            "OID": f"IG.{name}", "Name": name, "SASDatasetName": name,
            "Repeating": "No" if w.spec.klass == "SUBJECT LEVEL ANALYSIS DATASET" and w.spec.name == "adsl" else "Yes",
            "IsReferenceData": "No", "Purpose": "Analysis", _d("StandardOID"): "STD.ADAMIG",
            _d("Structure"): w.spec.structure, _d("ArchiveLocationID"): f"LF.{name}"}
            | ({_d("CommentOID"): "COM.CUTOFF"} if cutoff else {}))
        _description(igd, w.spec.label)
        for i, c in enumerate(w.columns, start=1):
            attrs = {"ItemOID": f"IT.{name}.{c.name}", "OrderNumber": str(i),
                     "Mandatory": "Yes" if c.spec.name in w.spec.keys else "No"}
            if c.spec.name in w.spec.keys:
                attrs["KeySequence"] = str(w.spec.keys.index(c.spec.name) + 1)
            if c.spec.method and c.spec.origin == "Derived":
                oid = f"MT.{name}.{c.name}"
                methods[oid] = c.spec.method
                attrs["MethodOID"] = oid
            ET.SubElement(igd, _o("ItemRef"), attrs)
        ET.SubElement(igd, _d("Class"), {"Name": w.spec.klass})
        leaf = ET.SubElement(igd, _d("leaf"), {"ID": f"LF.{name}", f"{{{XLINK}}}href": f"adam/{w.xpt_name}"})
        ET.SubElement(leaf, _d("title")).text = w.xpt_name

    for w in datasets:
        name = w.spec.name.upper()
        for c in w.columns:
            attrs = {"OID": f"IT.{name}.{c.name}", "Name": c.name, "SASFieldName": c.name,
                     "DataType": _DEFINE_TYPE[c.data_type], "Length": str(c.length)}
            if c.display_format:
                attrs[_d("DisplayFormat")] = c.display_format
            item = ET.SubElement(mdv, _o("ItemDef"), attrs)
            _description(item, c.spec.label)
            if c.spec.codelist:
                ET.SubElement(item, _o("CodeListRef"), {"CodeListOID": f"CL.{c.spec.codelist}"})
                if c.spec.codelist not in used_codelists:
                    used_codelists.append(c.spec.codelist)
            origin_attrs = {"Type": c.spec.origin}
            if c.spec.origin == "Derived":
                origin_attrs["Source"] = "Sponsor"
            origin = ET.SubElement(item, _d("Origin"), origin_attrs)
            if c.spec.origin == "Predecessor" and c.spec.source:
                _description(origin, c.spec.source)
            if c.name == "AVAL" and name in vlm:
                ET.SubElement(item, _d("ValueListRef"), {"ValueListOID": f"VL.{name}.AVAL"})
        if name in vlm:  # value-level ItemDefs of AVAL, one per parameter
            aval = next(c for c in w.columns if c.name == "AVAL")
            for code, label in w.params:
                item = ET.SubElement(mdv, _o("ItemDef"), {
                    "OID": f"IT.{name}.AVAL.{code}", "Name": "AVAL", "SASFieldName": "AVAL",
                    "DataType": _DEFINE_TYPE[aval.data_type], "Length": str(aval.length)}
                    | ({_d("DisplayFormat"): aval.display_format} if aval.display_format else {}))
                _description(item, f"{aval.spec.label}: {label}")
                ET.SubElement(item, _d("Origin"), {"Type": "Derived", "Source": "Sponsor"})

    for key in used_codelists:
        cl = spec.codelists[key]
        el = ET.SubElement(mdv, _o("CodeList"), {"OID": f"CL.{key}", "Name": cl.name, "DataType": cl.data_type,
                                                  _d("IsNonStandard"): "Yes"})
        for i, v in enumerate(cl.values, start=1):
            if cl.decodes:
                item = ET.SubElement(el, _o("CodeListItem"), {"CodedValue": str(v), "OrderNumber": str(i)})
                dec = ET.SubElement(item, _o("Decode"))
                ET.SubElement(dec, _o("TranslatedText"), {XML_LANG: "en"}).text = cl.decodes[i - 1]
            else:
                ET.SubElement(el, _o("EnumeratedItem"), {"CodedValue": str(v), "OrderNumber": str(i)})

    for oid, text in methods.items():
        m = ET.SubElement(mdv, _o("MethodDef"), {"OID": oid, "Name": f"Algorithm for {oid[3:]}",
                                                 "Type": "Computation"})
        _description(m, text)
    if cutoff:
        com = ET.SubElement(mdv, _d("CommentDef"), {"OID": "COM.CUTOFF"})
        _description(com, f"Data cut-off {cutoff.isoformat()}: records dated after it are not used; "
                          "time-to-event data are censored at it (docs/submission.md).")
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def write_define(path: Path, datasets: list[WrittenDataset], spec: AdamSpec, **kw) -> Path:
    """Write ``define.xml`` atomically."""
    atomic_write_bytes(path, define_xml(datasets, spec, **kw))
    return path
