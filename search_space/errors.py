"""The error family of hynas: every user-facing failure is a ``HynasError``.

The CLI maps any ``HynasError`` to one line on stderr and exit code 2, so messages
must name what to fix: the file, the key path, the bad value and what is allowed.
"""
from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable

EXIT_USAGE = 2  # the exit code of a user error, for the CLI and the benchmark scripts alike
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process that SIGPIPE ended, as `git log | head` does


def reader_gone() -> int:
    """After a BrokenPipeError on stdout (`hynas ... | head`): not an error of ours, the reader has all it
    wanted. Points stdout at devnull so that the interpreter's last flush cannot raise again (Python docs,
    signal module, "Note on SIGPIPE"); returns the exit code to end with."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


class HynasError(Exception):
    """Base class of every error hynas raises on bad user input or bad files."""


class ConfigError(HynasError):
    """A YAML config or CLI value is malformed, unknown or of the wrong type."""


class SearchSpaceError(HynasError):
    """A search space definition or an architecture does not fit its space."""


class CheckpointError(HynasError):
    """A checkpoint or lookup table is missing, corrupt or from another space."""


class DataError(HynasError):
    """A data set path is missing or does not hold what was expected."""


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest allowed name, or ``""``."""
    by_lower = {str(a).lower(): str(a) for a in allowed}  # 'LINAS' means 'linas'
    matches = difflib.get_close_matches(str(value).lower(), by_lower, n=1, cutoff=0.5)
    return f" (did you mean {by_lower[matches[0]]!r}?)" if matches else ""
