"""Atomic file writes (a reader, or a crash, never sees a half-written file) and file digests."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


# The permissions a plainly created file gets (0644 under the usual umask), read once, at import, where no other
# thread can be creating files meanwhile.
NEW_FILE_MODE = 0o666 & ~_umask()


@contextmanager
def named_on_failure(path: str | Path) -> Iterator[None]:
    """An OSError inside names ``path`` when it names no file: a full disk's "No space left on device" (ENOSPC
    on a write) does not say which file, and the CLI's one line would not either."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over ``path``. The file gets
    the permissions of any new file (``NEW_FILE_MODE``), not the owner-only ones of a temporary file, so that
    a checkpoint or an export can be shared like the plots beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with named_on_failure(path):
            os.fchmod(fd, NEW_FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def file_digest(path: str | Path) -> str:
    """A short content digest of a file (16 hex digits of its SHA-256): which checkpoint a study measured."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]
