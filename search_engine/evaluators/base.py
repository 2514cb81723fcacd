"""The evaluator contract and registry.

``evaluate(archs) -> list[Metrics]``, one per arch in order; an evaluator raises on an arch
it cannot measure (the runner records the error and the search goes on). Evaluators are
built from a ``EvaluationContext`` (space, config, run folder) by their registered factory.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from search_space.objectives import Metrics
from search_space.registry import Registry

EVALUATORS: Registry = Registry("evaluator")


class Evaluator(Protocol):
    provides: tuple[str, ...]  # the objective names this evaluator measures

    def evaluate(self, archs: Sequence[Any]) -> list[Metrics]: ...


class CompositeEvaluator:
    """Several evaluators as one: their metrics merged per arch."""

    def __init__(self, parts: Sequence[Evaluator]) -> None:
        self.parts = tuple(parts)
        self.provides = tuple(name for p in self.parts for name in p.provides)

    def evaluate(self, archs: Sequence[Any]) -> list[Metrics]:
        merged = [Metrics({}, 0.0, {}) for _ in archs]
        for part in self.parts:
            for i, m in enumerate(part.evaluate(archs)):
                merged[i] = Metrics({**merged[i].values, **m.values}, merged[i].seconds + m.seconds,
                                    {**merged[i].meta, **m.meta})
        return merged
