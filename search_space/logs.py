"""Quieting a library's log for a while (its advice is not the user's business), shared by the packages."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def logger_held_at(name: str | None, level: int) -> Iterator[None]:
    """The logger ``name`` (the root logger for None) at ``level`` inside, at its own level again after."""
    held = logging.getLogger(name)
    before = held.level
    held.setLevel(level)
    try:
        yield
    finally:
        held.setLevel(before)
