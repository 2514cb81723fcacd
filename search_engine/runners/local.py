"""``local``: evaluates archs one by one in this process."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from search_engine.evaluators.base import Evaluator
from search_engine.runners.base import RUNNERS
from search_space.errors import HynasError
from search_space.objectives import Metrics

log = logging.getLogger("hynas.runner")


@RUNNERS.register("local")
class LocalRunner:
    def __init__(self, build_evaluator: Callable[[], Evaluator], workers: int = 1, **_: Any) -> None:
        self.evaluator = build_evaluator()

    def submit(self, archs: Sequence[Any]) -> Iterator[tuple[Any, Metrics | Exception]]:
        for arch in archs:
            start = time.perf_counter()
            try:
                (metrics,) = self.evaluator.evaluate([arch])
            except HynasError:
                raise  # bad input or setup, not a property of this arch: stop the run
            except Exception as err:  # an arch that cannot be measured is recorded, the search goes on
                log.warning("evaluation of %s failed: %s: %s", arch, type(err).__name__, err)
                yield arch, err
                continue
            yield arch, Metrics(metrics.values, metrics.seconds or time.perf_counter() - start, metrics.meta)

    def close(self) -> None:
        pass
