"""The README's two commands are what users and CI run (DEVELOPERS brief: "Two commands")."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim():
    test_cmd = next(b for b in _bash_blocks() if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_readme_demo_command_installs_and_runs_the_demo():
    demo = next(b for b in _bash_blocks() if "mmtrial demo" in b)
    assert demo.startswith("python3 -m venv .venv") and "pip install" in demo


def test_no_file_names_a_package_registry_host():
    # spelled in pieces so this file does not name them itself
    hosts = tuple(".".join(parts) for parts in (("pypi", "org"), ("files", "pythonhosted", "org"),
                                                ("registry", "npmjs", "org"), ("deb", "debian", "org")))
    for p in ROOT.rglob("*"):
        if any(part in (".venv", ".git", "__pycache__", ".hypothesis") for part in p.parts) or not p.is_file():
            continue
        if p.suffix in (".parquet", ".png", ".pdf", ".duckdb", ".xpt"):
            continue
        text = p.read_text(errors="ignore")
        assert not any(h in text for h in hosts), p
