"""The strategy contract: ``ask(n)`` / ``tell(archs, results)`` plus a one-call ``run``.

Call order: ``ask`` a batch, evaluate it, ``tell`` the results (a ``Metrics`` or ``None``
for a failed evaluation, per arch), repeat. ``ask(n)`` returns at most ``n`` distinct archs
that were never returned before and that pass the strategy's ``precheck`` (constraints on
values known before measuring, such as model size). It returns fewer only when the space
is exhausted. Strategies are seeded and batch-synchronous: the same seed and the same told
values give the same sequence of archs, whatever runner measured them.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from search_space.objectives import Constraint, Metrics, Objective
from search_space.protocol import SearchSpace
from search_space.registry import Registry

STRATEGIES: Registry = Registry("strategy")

# A space of at most this many genomes is listed once random sampling runs dry (NB201's 15,625 cells: under a
# second); a larger one, such as a hybrid space's, is not, and its search ends when sampling finds nothing new.
ENUMERABLE_GENOMES = 1_000_000

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
        self._every_arch: list[Arch] | None = None

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
        """Up to ``n`` random unseen archs that pass the precheck; fewer only when there are no more."""
        exclude = exclude or set()
        picked: list[Arch] = []

        def fresh(arch: Arch) -> bool:
            return arch not in self.seen and arch not in exclude and arch not in picked and self.precheck(arch)

        for _ in range(200 * n + 1000):
            if len(picked) == n:
                break
            arch = self.space.sample(self.rng)
            if fresh(arch):
                picked.append(arch)
        if len(picked) < n:  # nearly every arch seen: sampling finds the last few only by luck, so list them
            left = [arch for arch in self._listed_space() if fresh(arch)]
            picked += [left[i] for i in self.rng.permutation(len(left))[:n - len(picked)]]
        return picked

    def _listed_space(self) -> list[Arch]:
        """Every arch of the space, in genome order, when it has at most ``ENUMERABLE_GENOMES`` genomes; else none.
        Before, a search with a budget near a table's size stopped a few archs short, "space exhausted"."""
        if self._every_arch is None:
            low, high = self.space.bounds()
            self._every_arch = []
            if np.prod((high - low + 1).astype(float)) <= ENUMERABLE_GENOMES:
                decoded = (self.space.decode(genes) for genes in itertools.product(
                    *(range(int(a), int(b) + 1) for a, b in zip(low, high))))
                self._every_arch = list(dict.fromkeys(a for a in decoded if self.space.contains(a)))
        return self._every_arch

    def min_form(self, values: dict[str, float]) -> np.ndarray:
        return np.array([values[o.name] * o.sign for o in self.objectives])

    def violation(self, values: dict[str, float]) -> float:
        return sum(c.violation(values) for c in self.constraints if c.name in values)
