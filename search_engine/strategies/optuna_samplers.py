"""``optuna-nsga2`` and ``optuna-tpe``: Optuna's samplers driven through ask/tell.

The sampler runs on its own in-memory study over the integer genes; an arch it proposes
again is told its known values at once, so it learns without a second measurement.
"""
from __future__ import annotations

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from search_engine.strategies.base import STRATEGIES, Strategy

optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaStrategy(Strategy):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        lower, upper = self.space.bounds()
        self._distributions = {name: IntDistribution(int(lo), int(up))
                               for name, lo, up in zip(self.space.genes(), lower, upper, strict=True)}
        self._study = optuna.create_study(
            sampler=self._sampler(),
            directions=["minimize" if o.direction == "min" else "maximize" for o in self.objectives])
        self._pending: dict = {}
        self._values: dict = {}

    def _sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def _tell(self, trial, values: dict[str, float] | None) -> None:
        if values is None:
            self._study.tell(trial, state=TrialState.FAIL)
            return
        for c in self.constraints:  # Optuna 5: a trial is feasible when every constraint value is <= 0
            trial.set_constraint(str(c), c.violation(values))
        self._study.tell(trial, [values[o.name] for o in self.objectives])

    def _propose(self, n: int) -> list:
        picked: list = []
        for _ in range(50 * n + 50):
            if len(picked) == n:
                break
            trial = self._study.ask(self._distributions)
            arch = self.space.decode([trial.params[k] for k in self._distributions])
            if arch in self._values:
                self._tell(trial, self._values[arch])
            elif arch in self.seen or arch in picked or not self.space.contains(arch) or not self.precheck(arch):
                self._study.tell(trial, state=TrialState.FAIL)
            else:
                self._pending[arch] = trial
                picked.append(arch)
        return picked or self.fresh_random(n)

    def _observe(self, archs, results) -> None:
        for arch, result in zip(archs, results):
            values = None if result is None else dict(result.values)
            if values is not None:
                self._values[arch] = values
            if arch in self._pending:
                self._tell(self._pending.pop(arch), values)


@STRATEGIES.register("optuna-nsga2")
class OptunaNSGA2(OptunaStrategy):
    def __init__(self, *args, population: int = 20, **kwargs) -> None:
        self.population = population
        super().__init__(*args, **kwargs)

    def _sampler(self):
        return optuna.samplers.NSGAIISampler(population_size=self.population, seed=self.seed)


@STRATEGIES.register("optuna-tpe")
class OptunaTPE(OptunaStrategy):
    def _sampler(self):
        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=10, multivariate=True, constant_liar=True)
