"""``analytic``: parameters, MACs, BitOps and size from the space's cost formulas (no torch)."""
from __future__ import annotations

from collections.abc import Sequence

from search_engine.evaluators.base import EVALUATORS
from search_space.arch import Arch
from search_space.costs import arch_costs
from search_space.hybrid import HybridSpace
from search_space.objectives import ANALYTIC_OBJECTIVES, Metrics


@EVALUATORS.register("analytic")
class AnalyticEvaluator:
    provides = ANALYTIC_OBJECTIVES

    def __init__(self, space: HybridSpace) -> None:
        self.space = space

    def evaluate(self, archs: Sequence[Arch]) -> list[Metrics]:
        return [Metrics(arch_costs(self.space, self.space.validate(a)).as_dict(), 0.0, {}) for a in archs]
