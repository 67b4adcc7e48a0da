"""Atomic file and folder writes shared by the pipeline, the simulator and the report.

Outputs are written to a temporary path beside the target and moved into place with
``os.replace``, so a reader never sees a half-written file or folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def file_mode() -> int:
    """The permissions a normal ``open()`` would give (0o666 less the umask); mkstemp gives 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move a finished temporary folder into place (the old folder is removed only after)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
