"""``mmtrial protocol``: check a protocol file, start one from a bundled protocol, the JSON Schema.

Registered in :mod:`mmtrial.cli` as a sub-command group. Every problem with a protocol is a
:class:`~mmtrial.errors.ProtocolError`: one line ``FILE:LINE [key]: message`` on stderr, exit 2.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mmtrial.errors import EXIT_USAGE, ProtocolError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Write and check protocol files (docs/protocol.md).")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@app.command("check")
def check(
    file: Annotated[str, typer.Argument(help="protocol TOML, or the name of a bundled protocol (e.g. storm)")],
) -> None:
    """Validate a protocol file: every section, key, type and value (exit 0 ok, 2 with the problem)."""
    from mmtrial.protocol.model import Protocol

    try:
        p = Protocol.load(file)
    except ProtocolError as e:
        _fail(str(e))
        return
    drugs = ", ".join(p.regimen.drug_names())
    fields = {"ladders": "dose_ladder"}
    present = sorted({fields.get(f, f) for f in p.model_fields_set - {"source_path", "published_source"}}
                     | set(p.model_extra or {}))
    typer.echo(f"{file}: ok - study {p.study.id}; regimen {drugs} ({len(p.regimen.effective_phases())} "
               f"phase(s)); sections: {', '.join(present)}")


@app.command("init")
def init(
    like: Annotated[str, typer.Option("--like", help="the bundled protocol to start from (mmtrial protocol list)")],
) -> None:
    """Print a commented starting point for a new protocol, copied from a bundled one (redirect it to a file)."""
    from mmtrial.protocol.model import bundled, bundled_names
    from mmtrial.protocol.sections import SECTIONS

    try:
        path = bundled(like)
    except KeyError:
        _fail(f"--like {like!r}: no bundled protocol of that name; bundled: {', '.join(bundled_names())}")
        return
    optional = [f"[{n}]" for n in SECTIONS if n not in ("study", "regimen")]
    header = [
        f"# A new mmtrial protocol, started from the bundled protocol {like!r} (mmtrial protocol init --like {like}).",
        "# Only [study] and [regimen] are required. Every other section is optional and has documented",
        "# defaults (docs/protocol.md): " + ", ".join(optional) + ".",
        "# Edit the values for your trial (the published values below are the example trial's), then",
        "# check the file with: mmtrial protocol check FILE",
        "# Editor completion: `mmtrial protocol schema > protocol.schema.json`, then put the line",
        "# `#:schema ./protocol.schema.json` first in this file (taplo / Even Better TOML).",
        "",
    ]
    typer.echo("\n".join(header) + path.read_text("utf-8"), nl=False)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a protocol file (for editors; shipped as mmtrial/protocol/protocol.schema.json)."""
    from mmtrial.protocol.sections import protocol_json_schema

    typer.echo(json.dumps(protocol_json_schema(), indent=2))


@app.command("list")
def list_() -> None:
    """List the bundled protocols (names for --protocol, protocol check and init --like)."""
    from mmtrial.protocol.model import Protocol, bundled_names

    for name in bundled_names():
        p = Protocol.load(name)
        typer.echo(f"{name:10s} {p.study.id}: {p.study.title}")


BEGIN, END = "<!-- protocol-reference:begin (generated: mmtrial protocol defaults) -->", "<!-- protocol-reference:end -->"


@app.command("defaults")
def defaults(
    write: Annotated[str | None, typer.Option("--write", help="replace the generated block of this Markdown "
                                                              "file (docs/protocol.md) instead of printing")] = None,
) -> None:
    """Print every section, key, default and meaning (the reference of docs/protocol.md)."""
    from pathlib import Path

    from mmtrial.protocol.sections import defaults_markdown

    text = defaults_markdown()
    if write is None:
        typer.echo(text)
        return
    path = Path(write)
    try:
        doc = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{write}: cannot be read ({type(exc).__name__}: {exc.strerror or exc})"
              if isinstance(exc, OSError) else f"{write}: not UTF-8 text")
    if BEGIN not in doc or END not in doc:
        _fail(f"{write}: no generated block ({BEGIN} ... {END})")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    from mmtrial._io import atomic_write_bytes

    atomic_write_bytes(path, f"{head}{BEGIN}\n{text}\n{END}{tail}".encode())
