"""``table``: objective values looked up in a benchmark CSV (tabular spaces)."""
from __future__ import annotations

from collections.abc import Sequence

from search_engine.evaluators.base import EVALUATORS
from search_space.objectives import Metrics
from search_space.tabular import CellArch, TabularSpace


@EVALUATORS.register("table")
class TableEvaluator:
    """Every numeric column of the table, for each cell: exact and deterministic."""

    def __init__(self, space: TabularSpace) -> None:
        self.space = space
        self.provides = tuple(space.table.columns)

    def evaluate(self, archs: Sequence[CellArch]) -> list[Metrics]:
        return [Metrics(self.space.table.values(self.space.validate(a)), 0.0, {"backend": "table"}) for a in archs]
