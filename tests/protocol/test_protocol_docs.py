"""docs/protocol.md documents every protocol section, key and default (issue 12 quality bar:
"every default is documented"); its reference block is generated from the validating models."""

from __future__ import annotations

import re
from pathlib import Path

from mmtrial.cli_protocol import BEGIN, END
from mmtrial.protocol import bundled_names
from mmtrial.protocol.sections import SECTIONS, defaults_markdown, documented_keys

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_reference_block_is_generated_from_the_models():
    text = (DOCS / "protocol.md").read_text("utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == defaults_markdown().strip(), (
        "docs/protocol.md reference is stale: run `mmtrial protocol defaults --write docs/protocol.md`")


def test_every_section_and_key_is_documented_with_its_default():
    pages: dict[str, str] = {}
    missing = []
    for name, (page, rows) in documented_keys().items():
        text = pages.setdefault(page, (DOCS / page).read_text("utf-8"))
        if name in SECTIONS and f"[{name}]" not in text:
            missing.append(f"{page}: [{name}]")
        for key, default, _ in rows:
            if not re.search(r"`" + re.escape(key) + r"`|\b" + re.escape(key) + r"\b", text):
                missing.append(f"{page}: {name}.{key} (default {default})")
    assert not missing, "undocumented protocol keys: " + "; ".join(missing)


def test_walkthrough_covers_each_kind_of_regimen_and_the_bundled_protocols():
    text = (DOCS / "protocol.md").read_text("utf-8")
    for words in ("A minimal protocol", "21-day oral regimen", "Phases", "mg/m2", "Step-up", "Dose ladders",
                  "18.67 mg/week", "include_unverified", "exit code 2"):
        assert words in text, words
    for name in bundled_names():
        assert f"`{name}`" in text, name


def test_every_toml_example_in_the_walkthrough_parses():
    import tomllib

    text = (DOCS / "protocol.md").read_text("utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4  # minimal, phases, step-up, ladder
    for b in blocks:
        tomllib.loads(b)


def test_defaults_write_to_a_missing_file_is_a_usage_error(tmp_path):
    """A --write target that does not exist: exit 2 and one line naming it, no traceback."""
    from typer.testing import CliRunner

    from mmtrial.cli import app

    missing = tmp_path / "nope.md"
    r = CliRunner().invoke(app, ["protocol", "defaults", "--write", str(missing)])
    assert r.exit_code == 2
    assert "nope.md: cannot be read" in r.output
    assert "Traceback" not in r.output and not missing.exists()
