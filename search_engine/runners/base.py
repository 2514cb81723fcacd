"""The runner contract: ``submit(archs)`` yields ``(arch, Metrics | Exception)`` as each finishes.

Order of completion may differ from submission (the Ray runner hands out archs as workers
free up). A runner never raises for one arch's failure: it yields the exception. A runner is
built from ``build_evaluator``, a picklable zero-argument callable, so that each worker builds
(and loads the supernet for) its own evaluator once.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from search_space.objectives import Metrics
from search_space.registry import Registry

RUNNERS: Registry = Registry("runner", imported_on_use={"ray": "search_engine.runners.ray_runner"})


class Runner(Protocol):
    def submit(self, archs: Sequence[Any]) -> Iterator[tuple[Any, Metrics | Exception]]: ...
    def close(self) -> None: ...
