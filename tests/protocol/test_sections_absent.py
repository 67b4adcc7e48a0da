"""A protocol section the file leaves out takes its model's defaults without being validated or
imported (issue 15: the simulator's and the external-control modules are not loaded by analyze);
these tests keep that safe: every such section's defaults validate, and a written section is
still validated."""

from __future__ import annotations

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


def test_loading_storm_asks_for_neither_the_simulator_nor_external_control(monkeypatch):
    # STORM's protocol writes neither [simulation] nor [external]: their models are not looked up
    # (so their modules are not imported); the sections it writes still are
    from mmtrial.protocol import sections

    asked: list[str] = []
    real = sections.section_model

    def recording(name):
        asked.append(name)
        return real(name)

    monkeypatch.setattr(sections, "section_model", recording)
    Protocol.load(None)
    assert "simulation" not in asked and "external" not in asked
    assert {"tte", "response", "eligibility", "exposure"} <= set(asked)
