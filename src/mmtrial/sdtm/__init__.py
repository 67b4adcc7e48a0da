"""SDTM input: read four formats, check against the data contract, normalise types, dates, units."""

from mmtrial.sdtm.check import ReadOptions, load_study, read_study
from mmtrial.sdtm.dates import DateImputation
from mmtrial.sdtm.issues import InputIssue, StudyInputError, issues_frame

__all__ = ["DateImputation", "InputIssue", "ReadOptions", "StudyInputError", "issues_frame", "load_study", "read_study"]
