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


def per_profile(meta: dict[str, Any], objective: str) -> dict[str, Any]:
    """Measurement metadata of a latency objective, named after its hardware profile where several profiles measure
    (``latency_ms@pi4``: ``backend@pi4``, ...), so that one profile's settings do not overwrite another's when the
    evaluators' metrics are merged (``measured.csv`` read backend torch beside ONNX Runtime's model bytes)."""
    _, at, profile = objective.partition("@")
    return {f"{key}@{profile}": value for key, value in meta.items()} if at else meta


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
