"""``random``: uniform samples of the space, the baseline every search must beat."""
from __future__ import annotations

from search_engine.strategies.base import STRATEGIES, Strategy


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    def _propose(self, n: int) -> list:
        return self.fresh_random(n)
