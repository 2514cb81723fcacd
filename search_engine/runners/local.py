"""``local``: evaluates a batch of archs in this process, in one evaluator call.

One call, because the latency evaluator times the archs of a call together, interleaved (see
``search_engine.latency_meter``); timed one by one, a search's latencies were up to 1.7x off their
re-measurement. The archs are claimed in the store before the call, so a killed run still loses at
most the batch in flight. If the call fails, the archs are evaluated one by one, so that only the
arch that cannot be measured is recorded as failed.
"""
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
        start = time.perf_counter()
        try:
            results = self.evaluator.evaluate(list(archs))
        except HynasError:
            raise  # bad input or setup, not a property of an arch: stop the run
        except Exception:
            yield from self._one_by_one(archs)
            return
        seconds = (time.perf_counter() - start) / max(len(archs), 1)
        for arch, metrics in zip(archs, results):
            yield arch, Metrics(metrics.values, metrics.seconds or seconds, metrics.meta)

    def _one_by_one(self, archs: Sequence[Any]) -> Iterator[tuple[Any, Metrics | Exception]]:
        for arch in archs:
            start = time.perf_counter()
            try:
                (metrics,) = self.evaluator.evaluate([arch])
            except HynasError:
                raise
            except Exception as err:  # an arch that cannot be measured is recorded, the search goes on
                log.warning("evaluation of %s failed: %s: %s", arch, type(err).__name__, err)
                yield arch, err
                continue
            yield arch, Metrics(metrics.values, metrics.seconds or time.perf_counter() - start, metrics.meta)

    def close(self) -> None:
        pass
