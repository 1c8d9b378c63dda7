"""User-facing errors.

Every problem with a user's input or output path is raised as `RppgEditError` with a one-line message
that names the file and the problem. The command line prints that line and exits non-zero.
"""

import os


class RppgEditError(Exception):
    """A one-line, user-facing error (bad input file, bad output path, missing weights, ...)."""


def one_line(text: object) -> str:
    """`text` with its lines joined by '; ' (third-party messages often span several lines)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def path_error(path, problem: str) -> RppgEditError:
    """A one-line `RppgEditError` that names `path` (a file or folder) and the problem."""
    return RppgEditError(" ".join(f"{os.fspath(path)}: {problem}".split()))
