"""The two kinds of user mistake and their exit codes (data contract v2, "Exit codes").

- :class:`~mmtrial.sdtm.issues.StudyInputError`: the study's data has errors; exit 1, ``issues.csv``
  written, no report.
- :class:`UsageError`: a bad option, a bad protocol file or an unusable output folder; exit 2,
  one line, nothing done.

Anything else that escapes is a bug in mmtrial, never a user's mistake: the command line prints
a short request to report it with the log it wrote, and exits with :data:`EXIT_BUG`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_BUG = 3


class UsageError(Exception):
    """A usage error: the message is one line a user can act on (exit code 2)."""

    exit_code = EXIT_USAGE


class ProtocolError(UsageError):
    """A protocol file that cannot be used: names the file, the key and (when known) the line."""

    def __init__(self, message: str, *, file: str = "", key: str = "", line: int | None = None):
        self.file, self.key, self.line = file, key, line
        where = file + (f":{line}" if line is not None else "")
        at = f" [{key}]" if key else ""
        super().__init__(f"{where}{at}: {message}" if where or at else message)


class OutputFolderError(UsageError):
    """``--out`` names a folder mmtrial may not write (data contract v2, "The output folder is the user's")."""
