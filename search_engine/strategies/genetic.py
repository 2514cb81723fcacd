"""``nsga2``: pymoo's NSGA-II run directly on measured values, through pymoo's ask/tell.

An offspring that decodes to an arch measured before is given its stored values without
a new measurement; one that fails the precheck gets a constraint violation instead.
"""
from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.core.termination import NoTermination

from search_engine.strategies.base import STRATEGIES, Strategy

FAILED = 1e9  # the constraint violation of a failed or prechecked-out arch


def integer_nsga2(pop_size: int, sampling=None) -> NSGA2:
    """NSGA-II over integer genes: SBX and polynomial mutation rounded back to integers."""
    return NSGA2(
        pop_size=pop_size,
        sampling=IntegerRandomSampling() if sampling is None else sampling,
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )


@STRATEGIES.register("nsga2")
class PymooNSGA2(Strategy):
    def __init__(self, *args, population: int = 20, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        lower, upper = self.space.bounds()
        n_constr = len(self.constraints) + 1  # +1: failed or prechecked-out archs
        self._problem = Problem(n_var=len(upper), n_obj=len(self.objectives), n_ieq_constr=n_constr,
                                xl=lower, xu=upper, vtype=int)
        self._algorithm = integer_nsga2(population)
        self._algorithm.setup(self._problem, seed=self.seed, termination=NoTermination(), verbose=False)
        self._known: dict = {}  # arch -> (F row, G row) of everything evaluated
        self._generation: list = []  # (individual index, arch) of the population being evaluated
        self._pop = None

    def _outcome(self, values: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
        if values is None:
            return np.full(len(self.objectives), FAILED), np.array([0.0] * len(self.constraints) + [FAILED])
        G = [c.violation(values) for c in self.constraints] + [0.0]
        return self.min_form(values), np.array(G)

    def _new_generation(self) -> None:
        for _ in range(100):  # a generation made only of known archs is told at once
            self._pop = self._algorithm.ask()
            if self._pop is None or not len(self._pop):  # mating found no offspring unlike the parents (a tiny space)
                self._pop = None
                return
            self._generation = [(i, self.space.decode(x)) for i, x in enumerate(self._pop.get("X").astype(int))]
            for _, arch in self._generation:
                if arch not in self._known and (not self.space.contains(arch) or not self.precheck(arch)):
                    self._known[arch] = self._outcome(None)
            if any(arch not in self._known for _, arch in self._generation):
                return
            self._tell_generation()

    def _tell_generation(self) -> None:
        F = np.stack([self._known[a][0] for _, a in self._generation])
        G = np.stack([self._known[a][1] for _, a in self._generation])
        self._pop.set("F", F, "G", G)
        self._algorithm.tell(infills=self._pop)
        self._pop, self._generation = None, []

    def _propose(self, n: int) -> list:
        if self._pop is None:
            self._new_generation()
        if self._pop is None:
            # pymoo bred nothing new that the space holds and the precheck passes in 100 generations (a table of a
            # few of the genome's cells, a tight limit) or at all: random unseen archs keep the budget going
            return self.fresh_random(n)
        pending = {a for _, a in self._generation if a not in self._known}
        fresh = [a for a in dict.fromkeys(a for _, a in self._generation) if a in pending and a not in self.seen]
        return fresh[:n]

    def _observe(self, archs, results) -> None:
        for arch, result in zip(archs, results):
            self._known[arch] = self._outcome(None if result is None else dict(result.values))
        if self._pop is not None and all(a in self._known for _, a in self._generation):
            self._tell_generation()
