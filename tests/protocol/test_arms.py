"""Randomised protocols: [arms] and [randomisation] (data contract v2, "Randomised two-arm trials")."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmtrial.errors import ProtocolError
from mmtrial.protocol.model import Protocol

TWO_ARM = Path(__file__).parent / "data" / "two_arm.toml"


def test_two_arm_protocol_gives_each_arm_its_regimen() -> None:
    p = Protocol.load(TWO_ARM)
    assert p.is_randomised
    rnd = p.randomisation
    assert (rnd.experimental, rnd.control, rnd.strata) == ("SVD", "VD", ["STRATPI", "STRATLOT", "STRATRISS"])
    assert rnd.crossover.allowed and not rnd.crossover.censor_os and rnd.sided == 2
    # no [regimen]: the experimental arm's regimen is the study's (protocol/arms.py docstring)
    assert p.regimen.study_drug == "SELINEXOR"
    assert p.regimen_for("svd") == p.regimen
    vd = p.regimen_for("VD")
    # BOSTON's Vd arm (Grosicki 2020): 21-day cycles 1-8, then 35-day cycles
    assert [ph.cycle_length_days for ph in vd.effective_phases()] == [21, 35]
    # bortezomib 1.3 mg/m2 on days 1, 4, 8, 11 of 21: 4 x 1.3 x 7 / 21 = 1.7333 mg/m2 per week
    assert vd.planned_weekly_dose("BORTEZOMIB", 1) == pytest.approx(4 * 1.3 * 7 / 21)
    assert p.arm_label("vd") == "Bortezomib + dexamethasone"
    assert set(p.regimens()) == {"SVD", "VD"}
    with pytest.raises(KeyError, match="XX"):
        p.regimen_for("XX")


def test_single_arm_protocol_is_not_randomised() -> None:
    p = Protocol.load("storm")
    assert not p.is_randomised and p.randomisation is None
    assert p.regimen_for(None) is p.regimen and p.regimens() == {"": p.regimen}


@pytest.mark.parametrize(("edit", "key", "words"), [
    (('control = "VD"', 'control = "XX"'), "randomisation.control", "is not an arm of [arms] (SVD, VD)"),
    (('control = "VD"', 'control = "SVD"'), "randomisation.experimental", "same arm"),
    (('sided = 2', 'sided = 3'), "randomisation.sided", ""),
    (('crossover = { allowed = true }', 'crossover = { allowed = true, censor = 1 }'),
     "randomisation.crossover.censor", "unknown key"),
])
def test_randomisation_errors_name_the_key(tmp_path: Path, edit: tuple[str, str], key: str, words: str) -> None:
    text = TWO_ARM.read_text().replace('crossover = {', 'sided = 2\ncrossover = {')
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ProtocolError) as e:
        Protocol.load(bad)
    assert e.value.key == key and words in str(e.value)
    assert e.value.line is not None


def test_arms_without_randomisation_is_an_error(tmp_path: Path) -> None:
    text = TWO_ARM.read_text()
    head = text[: text.index("[randomisation]")]
    bad = tmp_path / "bad.toml"
    bad.write_text(head + '\n[regimen]\ncycle_length_days = 28\nstudy_drug = "SELINEXOR"\ndrugs = [{ name = "SELINEXOR", dose = 80, '
                          'days_of_week = [1, 3] }]\n')
    with pytest.raises(ProtocolError, match=r"needs \[randomisation\]"):
        Protocol.load(bad)
