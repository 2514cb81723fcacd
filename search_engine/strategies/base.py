"""The strategy contract: ``ask(n)`` / ``tell(archs, results)`` plus a one-call ``run``.

Call order: ``ask`` a batch, evaluate it, ``tell`` the results (a ``Metrics`` or ``None``
for a failed evaluation, per arch), repeat. ``ask(n)`` returns at most ``n`` distinct archs
that were never returned before and that pass the strategy's ``precheck`` (constraints on
values known before measuring, such as model size). It returns fewer only when the space
is exhausted. Strategies are seeded and batch-synchronous: the same seed and the same told
values give the same sequence of archs, whatever runner measured them.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from search_space.objectives import Constraint, Metrics, Objective
from search_space.protocol import SearchSpace
from search_space.registry import Registry

STRATEGIES: Registry = Registry("strategy")

Arch = Hashable


class Strategy:
    """Base class: bookkeeping of what was asked and measured; subclasses implement ``_propose``."""

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 seed: int = 0, precheck: Callable[[Any], bool] | None = None,
                 exact: dict[str, Callable[[Any], float]] | None = None) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.precheck = precheck or (lambda arch: True)
        self.exact = dict(exact or {})  # objectives computable without measuring (analytic costs)
        self.seen: set[Arch] = set()
        self.measured: list[tuple[Arch, dict[str, float]]] = []
        self.failed: list[Arch] = []

    # -- the contract -------------------------------------------------------------
    def ask(self, n: int) -> list[Arch]:
        archs = []
        for arch in self._propose(n):
            if arch not in self.seen and len(archs) < n:
                self.seen.add(arch)
                archs.append(arch)
        return archs

    def tell(self, archs: Sequence[Arch], results: Sequence[Metrics | None]) -> None:
        for arch, result in zip(archs, results, strict=True):
            self.seen.add(arch)
            if result is None:
                self.failed.append(arch)
            else:
                self.measured.append((arch, dict(result.values)))
        self._observe(archs, results)

    def run(self, evaluate: Callable[[list[Arch]], list[Metrics | None]], budget: int,
            batch_size: int = 10) -> list[tuple[Arch, dict[str, float]]]:
        """Ask, evaluate and tell until ``budget`` archs are measured; returns them."""
        while len(self.measured) < budget:
            archs = self.ask(min(batch_size, budget - len(self.measured)))
            if not archs:
                break
            self.tell(archs, evaluate(archs))
        return self.measured

    # -- for subclasses --------------------------------------------------------------
    def _propose(self, n: int) -> list[Arch]:
        """Up to ``n`` archs to measure next (duplicates of seen archs are dropped by ``ask``)."""
        raise NotImplementedError

    def _observe(self, archs: Sequence[Arch], results: Sequence[Metrics | None]) -> None:
        """Hook called by ``tell`` after the bookkeeping."""

    def fresh_random(self, n: int, exclude: set | None = None) -> list[Arch]:
        """Up to ``n`` random unseen archs that pass the precheck."""
        exclude = exclude or set()
        picked: list[Arch] = []
        for _ in range(200 * n + 1000):
            if len(picked) == n:
                break
            arch = self.space.sample(self.rng)
            if arch not in self.seen and arch not in exclude and arch not in picked and self.precheck(arch):
                picked.append(arch)
        return picked

    def min_form(self, values: dict[str, float]) -> np.ndarray:
        return np.array([values[o.name] * o.sign for o in self.objectives])

    def violation(self, values: dict[str, float]) -> float:
        return sum(c.violation(values) for c in self.constraints if c.name in values)
