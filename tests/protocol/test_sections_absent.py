"""A protocol section the file leaves out takes its model's defaults without being validated or
imported (issue 15: the simulator's and the external-control modules are not loaded by analyze);
these tests keep that safe: every such section's defaults validate, and a written section is
still validated."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel, TypeAdapter

from mmtrial.errors import ProtocolError
from mmtrial.protocol.model import Protocol
from mmtrial.protocol.sections import BUILT_WHEN_ABSENT, CORE_SECTIONS, SECTIONS, section_model

OPTIONAL = [n for n, s in SECTIONS.items() if n not in CORE_SECTIONS and not s.when_present]


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_absent_section_has_valid_defaults(name):
    # the check validate_sections made for an absent section, made here once for each model
    model = section_model(name)
    if model is None:  # optional module not installed
        pytest.skip(f"[{name}]: model module not installed")
    if isinstance(model, type) and issubclass(model, BaseModel):
        model.model_validate({})
    else:
        TypeAdapter(model).validate_python({})


def test_builders_run_for_absent_sections_have_builders():
    assert all(SECTIONS[n].build for n in BUILT_WHEN_ABSENT)


def test_a_written_simulation_section_is_still_validated(tmp_path):
    from mmtrial.protocol import bundled

    storm = bundled("storm").read_text("utf-8")
    f = tmp_path / "p.toml"
    f.write_text(storm + "\n[simulation]\nno_such_key = 1\n", "utf-8")
    with pytest.raises(ProtocolError) as e:
        Protocol.load(f)
    assert "simulation" in str(e.value)


def test_loading_storm_imports_neither_the_simulator_nor_external_control():
    code = ("import sys; from mmtrial.pipeline import load_protocol_file; load_protocol_file(None); "
            "print([m for m in sys.modules if m.startswith(('mmtrial.simulate', 'mmtrial.external'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
