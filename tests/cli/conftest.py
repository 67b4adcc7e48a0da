"""Fixtures shared by the CLI tests: a valid small study and a guard that nothing reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmtrial.pipeline as pipeline
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


@pytest.fixture
def study(tmp_path) -> Path:
    """A valid study folder (tests/support/sdtm_study.py)."""
    return write_study_folder(tmp_path / "study", valid_raw_domains())


@pytest.fixture
def no_reading(monkeypatch):
    """Usage errors and refusals come before any work: reading the study fails the test."""
    def fail(*a, **k):
        raise AssertionError("the study was read before the usage error or refusal")

    monkeypatch.setattr(pipeline, "load_study", fail)
