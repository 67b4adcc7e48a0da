"""Safe, atomic writes of mmtrial's output folders and files (data contract v2, "The output
folder is the user's"; docs/cli.md "The output folder").

Outputs are written to a temporary folder beside the target and moved into place with
``os.replace``, so a reader never sees a half-written file or folder.

mmtrial deletes or overwrites only what it wrote. Every folder it writes carries a marker file
(:data:`MARKER`, JSON) naming the tool, version, kind of output, study, time and every file it
wrote. ``--out OUT`` may be absent, an empty folder, or a folder whose marker is of the same kind
and lists every file in it; anything else is refused with :class:`~mmtrial.errors.OutputFolderError`
before any work is done. OUT may not be the study folder, lie inside it or contain it (symbolic
links resolved).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from mmtrial.errors import OutputFolderError

OutputKind = Literal["analysis", "study", "demo", "cohort", "external", "maic"]

#: The marker file mmtrial writes into every output folder it creates.
MARKER = ".mmtrial-output"
#: A temporary folder of an earlier run is stale when its process is gone or it is this old.
STALE_AFTER_SECONDS = 24 * 3600
#: Files that file managers create when a folder is browsed; kept across runs, never counted as
#: the user's work (they are moved into the new output, not deleted).
FILE_MANAGER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
#: What each kind of output is called in messages (the command that writes it).
KIND_COMMAND = {"analysis": "mmtrial analyze", "study": "mmtrial simulate", "demo": "mmtrial demo",
                "cohort": "mmtrial simulate-cohort", "external": "mmtrial external", "maic": "mmtrial maic"}


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def file_mode() -> int:
    """The permissions a normal ``open()`` would give (0o666 less the umask); mkstemp gives 0o600."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` only when the block completes: it
    writes a temporary file in the same folder (normal permissions), moved into place at the end;
    on any error the temporary file is removed and ``path`` is left as it was. Lets a writer
    stream its output a chunk at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (:func:`atomic_writer`)."""
    with atomic_writer(path) as fh:
        fh.write(data)


# --- checks: before any work ----------------------------------------------------------------------


def resolve_path(path: str | Path) -> Path:
    """Absolute path with ``~`` expanded and symbolic links resolved (the path need not exist)."""
    try:
        return Path(os.path.abspath(Path(path).expanduser())).resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic-link loop, an unreadable folder
        raise OutputFolderError(f"{path}: cannot be resolved ({exc})") from None


def _writable(folder: Path) -> bool:
    """Whether mmtrial may create entries in ``folder`` (patched in tests run as root)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_location(given: str | Path, out: Path, study: Path | None, what: str) -> None:
    """Refusals shared by output folders and files: broken link, under a file, study overlap,
    parent not writable."""
    if Path(given).expanduser().is_symlink() and not out.exists():
        raise OutputFolderError(f"{what} {given}: is a broken symbolic link; give a real path")
    base = _nearest_existing(out.parent)
    if not base.is_dir():
        raise OutputFolderError(f"{what} {given}: {base} is a file, so nothing can be written under it")
    if study is not None:
        if out == study:
            raise OutputFolderError(f"{what} {given}: is the study folder; give a separate output folder")
        if study in out.parents:
            raise OutputFolderError(f"{what} {given}: lies inside the study folder {study}; "
                                    "give an output folder outside it")
        if out in study.parents:
            raise OutputFolderError(f"{what} {given}: contains the study folder {study}; "
                                    "give an output folder that does not")
    if not _writable(base):
        raise OutputFolderError(f"{what} {given}: cannot write in {base} (permission denied)")


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a folder mmtrial wrote, or ``None`` when absent or not mmtrial's."""
    p = folder / MARKER
    if not p.is_file() or p.is_symlink():
        return None
    try:
        doc = json.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("tool") == "mmtrial" else None


def _owned(rel: str, files: set[str], folders: Iterable[str]) -> bool:
    """``rel`` (a path inside OUT, '/'-separated) is a file mmtrial listed, a folder holding one,
    or lies in a sub-folder that mmtrial owns as a whole (checked by that folder's own marker)."""
    if rel in files or rel == MARKER:
        return True
    if any(rel == d or rel.startswith(d + "/") for d in folders):
        return True
    return any(f.startswith(rel + "/") for f in files)


def foreign_entries(folder: Path, marker: dict[str, Any]) -> list[str]:
    """Entries of ``folder`` that its marker does not list (the user's files), sorted."""
    files = {str(f) for f in marker.get("files", [])}
    folders = [str(d).rstrip("/") for d in marker.get("folders", [])]
    found = []
    for root, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            rel = Path(root, name).relative_to(folder).as_posix()
            if name in FILE_MANAGER_FILES and not Path(root, name).is_dir():
                continue
            if not _owned(rel, files, folders):
                found.append(rel)
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    return sorted(found)


def check_output_folder(out: str | Path, *, kind: OutputKind, study: str | Path | None = None) -> Path:
    """Refuse an output folder mmtrial may not write; return it resolved.

    Allowed: an absent folder (its missing parents are created), an empty folder, or a folder
    whose :data:`MARKER` says an earlier run of the same kind wrote it and lists every file in it.
    Refused (:class:`~mmtrial.errors.OutputFolderError`, one line): anything else, a path that is
    a file or lies under one, the study folder itself, a folder inside it or containing it, and a
    place mmtrial cannot write.
    """
    what = "--out"
    path = resolve_path(out)
    study_path = resolve_path(study) if study is not None else None
    _check_location(out, path, study_path, what)
    if not path.exists():
        return path
    if not path.is_dir():
        raise OutputFolderError(f"{what} {out}: is a file, not a folder; give a new or empty folder")
    if not _writable(path):
        raise OutputFolderError(f"{what} {out}: cannot write in {path} (permission denied)")
    entries = [e.name for e in os.scandir(path) if e.name not in FILE_MANAGER_FILES]
    if not entries:
        return path
    marker = read_marker(path)
    if marker is None:
        raise OutputFolderError(
            f"{what} {out}: the folder is not empty and mmtrial did not write it (no {MARKER} "
            "marker); give a new or empty folder, mmtrial never deletes files it did not write")
    if marker.get("kind") != kind:
        other = KIND_COMMAND.get(str(marker.get("kind")), f"mmtrial ({marker.get('kind')})")
        raise OutputFolderError(f"{what} {out}: holds the output of `{other}`, not of "
                                f"`{KIND_COMMAND[kind]}`; give another folder")
    foreign = foreign_entries(path, marker)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise OutputFolderError(
            f"{what} {out}: holds files mmtrial did not write ({', '.join(foreign[:3])}{more}); "
            "move them out or give another folder")
    return path


def check_output_file(out: str | Path, *, is_mine, study: str | Path | None = None) -> Path:
    """Refuse an output file mmtrial may not write; return it resolved.

    Allowed: an absent file (missing parent folders are created) or an existing regular file
    for which ``is_mine(path)`` says mmtrial wrote it (e.g. its header line). Refused: a folder,
    a file mmtrial did not write, anything inside the study folder, a place mmtrial cannot write.
    """
    what = "--out"
    path = resolve_path(out)
    study_path = resolve_path(study) if study is not None else None
    if path.is_dir():
        raise OutputFolderError(f"{what} {out}: is a folder; give a file name such as issues.csv")
    _check_location(out, path, study_path, what)
    if path.exists():
        if not path.is_file() or not is_mine(path):
            raise OutputFolderError(f"{what} {out}: the file exists and mmtrial did not write it; "
                                    "give a new file name")
        if not os.access(path, os.W_OK) and not _writable(path.parent):
            raise OutputFolderError(f"{what} {out}: cannot write it (permission denied)")
    return path


# --- writing: temporary folder, marker, swap --------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version() -> str:
    from mmtrial import __version__

    return __version__


def write_marker(folder: Path, *, kind: OutputKind, status: str, study: Path | None = None,
                 files: Iterable[str] = (), folders: Iterable[str] = ()) -> None:
    """Write :data:`MARKER` into ``folder`` (atomically)."""
    doc = {"tool": "mmtrial", "version": _version(), "kind": kind, "status": status,
           "study": None if study is None else str(study), "written": _now(), "pid": os.getpid(),
           "files": sorted(files), "folders": sorted(folders)}
    atomic_write_bytes(folder / MARKER, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))


def list_files(folder: Path) -> list[str]:
    """Every file under ``folder`` ('/'-separated, relative), the marker excepted."""
    out = []
    for root, _, names in os.walk(folder):
        for name in names:
            rel = Path(root, name).relative_to(folder).as_posix()
            if rel != MARKER:
                out.append(rel)
    return sorted(out)


def remove_tree(folder: Path) -> None:
    """Delete a folder mmtrial wrote, its marker last (so a half-deleted folder stays recognisable)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in os.scandir(folder):
        if entry.name == MARKER:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    try:
        (folder / MARKER).unlink(missing_ok=True)
        folder.rmdir()
    except OSError:
        pass


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)(?:-[A-Za-z0-9_]+)?$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_temps(out: Path, *, now: float | None = None) -> list[Path]:
    """Delete temporary folders that earlier killed runs left beside ``out``.

    A folder named ``.OUT.tmp-PID-*`` or ``.OUT.old-PID`` is deleted when process PID is gone or
    the folder is older than :data:`STALE_AFTER_SECONDS`, and only when it is empty or carries
    mmtrial's marker (so nothing else is ever deleted). Returns the folders deleted.
    """
    now = time.time() if now is None else now
    parent = out.parent
    if not parent.is_dir():
        return []
    removed = []
    for entry in os.scandir(parent):
        m = _TEMP_NAME.match(entry.name)
        if not m or m.group("name") != out.name or not entry.is_dir(follow_symlinks=False):
            continue
        p = Path(entry.path)
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS
        except OSError:
            continue
        if _process_alive(int(m.group("pid"))) and not old:
            continue
        if read_marker(p) is None and any(os.scandir(p)):
            continue
        remove_tree(p)
        if not p.exists():
            removed.append(p)
    return removed


def new_temp_dir(out: Path, *, kind: OutputKind, study: Path | None = None) -> Path:
    """Create the temporary folder a run writes into (beside ``out``, marked at once).

    Creates ``out``'s missing parent folders and first removes stale temporary folders of
    earlier killed runs (:func:`clean_stale_temps`).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp gives 0o700; an output folder gets the usual mode
    write_marker(tmp, kind=kind, status="writing", study=study)
    return tmp


def _carry_file_manager_files(old: Path, new: Path) -> None:
    """Move file-manager files (``.DS_Store`` ...) of the old output into the new one."""
    for root, _, names in os.walk(old):
        for name in names:
            if name in FILE_MANAGER_FILES:
                src = Path(root, name)
                dst = new / src.relative_to(old)
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move a finished temporary folder into place (the old folder is removed only after)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if old.exists():
            remove_tree(old)
        os.replace(out_dir, old)
        _carry_file_manager_files(old, tmp)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)  # put the previous output back
        raise
    if old is not None:
        remove_tree(old)


def finish_dir(tmp: Path, out: Path, *, kind: OutputKind, status: str, study: Path | None = None,
               folders: Iterable[str] = ()) -> None:
    """Mark ``tmp`` with every file written in it, then swap it into place as ``out``."""
    write_marker(tmp, kind=kind, status=status, study=study, files=list_files(tmp), folders=folders)
    replace_dir(tmp, out)
