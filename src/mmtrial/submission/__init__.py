"""Submission outputs beside the Parquet: XPT v5, Dataset-JSON v1.1, define.xml, RTF tables.

:func:`write_submission` writes them all from a finished analysis (data contract v2,
"Submission outputs"); the ADaM specification (``data/adam_spec.toml``, :mod:`.spec`)
drives the three dataset writers so that they describe the same thing. docs/submission.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmtrial.context import Analysis

#: The ADaM datasets of the data contract that go into the submission files.
SUBMISSION_DATASETS: tuple[str, ...] = ("adsl", "adrs", "adtte", "adae", "adlb", "adex")


@dataclass
class SubmissionFiles:
    xpt: list[Path] = field(default_factory=list)
    json: list[Path] = field(default_factory=list)
    define: Path | None = None
    rtf: list[Path] = field(default_factory=list)


def data_cutoff(a: Analysis) -> date | None:
    """The data cut-off in force: the one applied (:func:`mmtrial.sdtm.cutoff.apply_data_cutoff`),
    else the cut-off a simulated study was generated with (its metadata), else ``None``."""
    value = a.study.metadata.get("applied_cutoff") or a.study.metadata.get("data_cutoff")
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def parameters(frame) -> tuple[tuple[str, str], ...]:
    """(PARAMCD, PARAM) pairs of a BDS dataset in order of first appearance (empty without PARAMCD)."""
    if "PARAMCD" not in frame:
        return ()
    label = frame["PARAM"] if "PARAM" in frame else frame["PARAMCD"]
    pairs = frame.assign(_L=label)[["PARAMCD", "_L"]].dropna(subset=["PARAMCD"]).drop_duplicates("PARAMCD")
    return tuple((str(c), str(lab)) for c, lab in zip(pairs["PARAMCD"], pairs["_L"], strict=True))


def write_submission(a: Analysis, out_dir: Path, *, created: str | None = None) -> SubmissionFiles:
    """Write ``adam/<name>.xpt``, ``adam/<name>.json``, ``define.xml`` and ``tlf/*.rtf`` into ``out_dir``."""
    from mmtrial._memory import release_memory
    from mmtrial.report.model import Listing, Table
    from mmtrial.report.numbering import csr_numbers
    from mmtrial.submission.datasetjson import write_dataset_json
    from mmtrial.submission.define import WrittenDataset, write_define
    from mmtrial.submission.spec import load_spec, submission_frame
    from mmtrial.submission.tlf import TlfHeader, write_table_rtf
    from mmtrial.submission.xpt import write_xpt

    spec = load_spec()
    study_id = a.protocol.study.id
    files = SubmissionFiles()
    written = []
    for name in SUBMISSION_DATASETS:
        if name not in a.adam:
            continue
        frame, columns, ds = submission_frame(name, a.adam[name], study_id, spec)
        files.xpt.append(write_xpt(frame, columns, ds, out_dir / "adam" / f"{name}.xpt"))
        files.json.append(write_dataset_json(frame, columns, ds, out_dir / "adam" / f"{name}.json",
                                             study_oid=study_id, created=created))
        written.append(WrittenDataset(spec=ds, columns=columns, xpt_name=f"{name}.xpt", records=len(frame),
                                      params=parameters(frame)))
        del frame
        release_memory()  # one dataset's submission frame at a time (issue 15)
    files.define = write_define(out_dir / "define.xml", written, spec, study_id=study_id,
                                study_title=a.protocol.study.title, cutoff=data_cutoff(a), created=created)
    header = TlfHeader(study=study_id, cutoff=data_cutoff(a), synthetic=a.study.synthetic)
    sections = sorted(a.sections, key=lambda s: s.order)  # the report's order (report_sections)
    numbers = csr_numbers(sections)
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Table) and not isinstance(block, Listing):
                files.rtf.append(write_table_rtf(block, out_dir / "tlf", header, numbers.get(id(block))))
    return files
