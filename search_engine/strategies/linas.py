"""``linas``: predictor-guided evolutionary search (the default).

Each round after an initial random batch:

1. fit one predictor per measured objective on every measured arch (objectives with an
   exact formula, such as model size, are computed instead of predicted);
2. run a pymoo NSGA-II (or NSGA-III) for thousands of cheap inner evaluations on the
   predicted means, seeded with the measured front, and keep every distinct arch it visits;
3. choose the batch greedily by hypervolume improvement of *optimistic* predictions
   (mean minus ``beta`` std, the predictors' uncertainty as an exploration bonus) over the
   measured front, adding each pick's *mean* prediction to the front before the next pick
   (the "kriging believer"), so the batch spreads along the front instead of piling up
   where the predictor is most confident.

The hypervolume of step 3 is taken in *quantile space*: each objective mapped through the
empirical distribution of its measured values. That makes the choice invariant to the
objectives' units and monotone transforms, and it weighs a gain by how many measured archs
it overtakes: a percent of accuracy among the best archs counts for more than a percent
among broken ones, so the few degenerate archs of a space (say, 10 % accuracy at near-zero
latency) do not pull the search towards them.

Measured archs are never proposed again; constraints on predicted values drop candidates
predicted to violate them, and constraints on exact values are checked before proposing.
"""
from __future__ import annotations

import logging

import numpy as np
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from pymoo.util.ref_dirs import get_reference_directions

from predictors import PREDICTORS
from results.pareto import hypervolume, nondominated_ranks, pareto_mask
from search_engine.strategies.base import STRATEGIES, Strategy
from search_engine.strategies.genetic import integer_nsga2
from search_space.errors import ConfigError

log = logging.getLogger("hynas.linas")
INNER_ALGORITHMS = ("nsga2", "nsga3", "agemoea")


class QuantileScale:
    """Per-column empirical CDF of measured values (min form), extended linearly beyond them so
    that a candidate better than every measured arch maps below 0 and keeps its advantage."""

    def __init__(self, F: np.ndarray) -> None:
        self.sorted = np.sort(F, axis=0)
        n = len(F)
        self.p = (np.arange(n) + 0.5) / n

    def __call__(self, F: np.ndarray) -> np.ndarray:
        out = np.empty_like(F, dtype=float)
        k = max(2, len(self.p) // 10)
        for j in range(F.shape[1]):
            y = self.sorted[:, j]
            lo = (self.p[k - 1] - self.p[0]) / max(y[k - 1] - y[0], 1e-12)
            hi = (self.p[-1] - self.p[-k]) / max(y[-1] - y[-k], 1e-12)
            col = np.interp(F[:, j], y, self.p)
            col = np.where(F[:, j] < y[0], self.p[0] + (F[:, j] - y[0]) * lo, col)
            out[:, j] = np.where(F[:, j] > y[-1], self.p[-1] + (F[:, j] - y[-1]) * hi, col)
        return out


class _PredictedProblem(Problem):
    """Integer genes -> predicted (min-form) objectives; records every arch it evaluates."""

    def __init__(self, strategy: Linas) -> None:
        lower, upper = strategy.space.bounds()
        super().__init__(n_var=len(upper), n_obj=len(strategy.objectives), xl=lower, xu=upper, vtype=int)
        self.strategy = strategy
        self.visited: dict = {}

    def _evaluate(self, X, out, *args, **kwargs):
        archs = [self.strategy.space.decode(x) for x in np.asarray(X).astype(int)]
        mean, _ = self.strategy.predict(archs)
        penalty = np.array([0.0 if self.strategy.allowed(a) else 1e6 for a in archs])
        out["F"] = mean + penalty[:, None]
        for arch in archs:
            self.visited.setdefault(arch, None)


@STRATEGIES.register("linas")
class Linas(Strategy):
    def __init__(self, *args, initial: int = 20, predictor: str = "auto", inner: str = "nsga2",
                 inner_population: int = 100, inner_generations: int = 40, beta: float = 1.0,
                 explore: float = 0.2, shortlist: int = 300, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if inner not in INNER_ALGORITHMS:
            raise ConfigError(f"linas inner search {inner!r} is not available; choose one of {', '.join(INNER_ALGORITHMS)}")
        PREDICTORS.get(predictor)  # fail early on an unknown name
        self.initial, self.inner, self.beta, self.shortlist = initial, inner, beta, shortlist
        self.explore = explore
        self.inner_population, self.inner_generations = inner_population, inner_generations
        self.predicted = [o for o in self.objectives if o.name not in self.exact]
        options = {"encoding_columns": self.space.encoding_size()} if predictor == "auto" else {}
        self._models = {o.name: PREDICTORS.get(predictor)(seed=self.seed, **options) for o in self.predicted}
        self._features: dict = {}
        self.reference: np.ndarray | None = None

    # -- helpers used by the inner problem -----------------------------------------------
    def allowed(self, arch) -> bool:
        return arch not in self.seen and self.space.contains(arch) and self.precheck(arch)

    def _feature_matrix(self, archs) -> np.ndarray:
        rows = []
        for arch in archs:
            if arch not in self._features:
                self._features[arch] = self.space.features(arch)
            rows.append(self._features[arch])
        return np.stack(rows)

    def predict(self, archs) -> tuple[np.ndarray, np.ndarray]:
        """Min-form predicted means and stds, shape (len(archs), objectives)."""
        X = self._feature_matrix(archs)
        mean = np.zeros((len(archs), len(self.objectives)))
        std = np.zeros_like(mean)
        for j, o in enumerate(self.objectives):
            if o.name in self.exact:
                mean[:, j] = [self.exact[o.name](a) * o.sign for a in archs]
            else:
                m, s = self._models[o.name].predict(X)
                mean[:, j], std[:, j] = m * o.sign, s
        return mean, std

    # -- the round ------------------------------------------------------------------------
    def _propose(self, n: int) -> list:
        if len(self.measured) < max(self.initial, 3):
            # A supernet space's largest and smallest archs anchor both ends of the front; random
            # samples almost never hit them.
            extremes = [f() for f in (getattr(self.space, "largest", None), getattr(self.space, "smallest", None)) if f]
            first = [a for a in extremes if a not in self.seen and self.precheck(a)]
            return (first + self.fresh_random(n, exclude=set(first)))[:n]
        archs = [a for a, _ in self.measured]
        X = self._feature_matrix(archs)
        for o in self.predicted:
            self._models[o.name].fit(X, np.array([v[o.name] for _, v in self.measured]))
        candidates = list(dict.fromkeys(self._inner_search() + self._front_neighbours()))
        if len(candidates) < n:
            candidates += [a for a in self.fresh_random(n, exclude=set(candidates))]
        return self._select(candidates, n)

    def _inner_search(self) -> list:
        problem = _PredictedProblem(self)
        F = np.stack([self.min_form(v) for _, v in self.measured])
        feasible = np.array([self.violation(v) == 0 for _, v in self.measured])
        front = [a for (a, _), keep in zip(self.measured, pareto_mask(F) & feasible) if keep]
        lower, upper = self.space.bounds()
        seeds = [self.space.encode(a) for a in front][: self.inner_population // 2]
        randoms = self.rng.integers(lower, upper + 1, size=(self.inner_population - len(seeds), len(upper)))
        start = np.vstack([np.array(seeds).reshape(-1, len(upper)), randoms]).astype(float)
        algorithm = self._inner_algorithm(start)
        minimize(problem, algorithm, ("n_gen", self.inner_generations), seed=int(self.rng.integers(2**31)),
                 verbose=False)
        return [a for a in problem.visited if self.allowed(a)]

    def _inner_algorithm(self, start: np.ndarray):
        if self.inner == "nsga3":
            dirs = get_reference_directions("energy", len(self.objectives), self.inner_population, seed=self.seed)
            return NSGA3(dirs, pop_size=self.inner_population, sampling=start)
        if self.inner == "agemoea":
            try:  # pymoo's AGE-MOEA needs numba, an optional extra
                from pymoo.algorithms.moo.age import AGEMOEA
            except Exception:
                raise ConfigError("linas inner search 'agemoea' needs numba: pip install 'hynas[agemoea]'") from None
            return AGEMOEA(pop_size=self.inner_population, sampling=start)
        return integer_nsga2(self.inner_population, sampling=start)

    def _front_neighbours(self) -> list:
        """Every arch one gene away from a measured arch on the first two fronts: local search
        around the front finds the archs next to known good ones that the inner search may skip."""
        F = np.stack([self.min_form(v) for _, v in self.measured])
        ranks = nondominated_ranks(F)
        lower, upper = self.space.bounds()
        neighbours = []
        for (arch, _), rank in zip(self.measured, ranks):
            if rank > 1:
                continue
            genes = self.space.encode(arch)
            for i in range(len(genes)):
                for value in range(lower[i], upper[i] + 1):
                    if value != genes[i]:
                        mutant = genes.copy()
                        mutant[i] = value
                        neighbours.append(self.space.decode(mutant))
        return [a for a in dict.fromkeys(neighbours) if self.allowed(a)]

    def _select(self, candidates: list, n: int) -> list:
        mean, std = self.predict(candidates)
        # Drop candidates whose predicted means violate a constraint, unless that leaves too few.
        if self.constraints:
            ok = np.array([self.violation({o.name: m * o.sign for o, m in zip(self.objectives, row)}) == 0
                           for row in mean])
            if ok.sum() >= n:
                candidates, mean, std = [c for c, k in zip(candidates, ok) if k], mean[ok], std[ok]
        optimistic = mean - self.beta * std
        order = np.argsort(nondominated_ranks(optimistic), kind="stable")[: self.shortlist]
        scale = QuantileScale(np.stack([self.min_form(v) for _, v in self.measured]))
        candidates, mean, optimistic = [candidates[i] for i in order], scale(mean[order]), scale(optimistic[order])
        # Every measured arch lies inside [0, 1] in quantile space; the margin lets the worst count.
        self.reference = np.full(len(self.objectives), 1.1)
        feasible = [self.min_form(v) for _, v in self.measured if self.violation(v) == 0]
        measured_F = scale(np.stack(feasible)) if feasible else self.reference[None, :]
        front = measured_F[pareto_mask(measured_F)]
        base = hypervolume(front, self.reference)
        picked: list[int] = []
        exploit = n - int(round(self.explore * n))
        for k in range(min(n, len(candidates))):
            # Most of the batch goes where the predicted means gain most; the rest explores with optimism.
            values = mean if k < exploit else optimistic
            gains = np.full(len(candidates), -np.inf)
            for i in range(len(candidates)):
                if i not in picked:
                    gains[i] = hypervolume(np.vstack([front, values[i]]), self.reference) - base
            best = int(np.argmax(gains))
            if gains[best] <= 0:  # nothing is predicted to improve the front: take the closest to it
                best = self._closest_to_front(values, front, picked)
            picked.append(best)
            front = np.vstack([front, mean[best]])
            front = front[pareto_mask(front)]
            base = hypervolume(front, self.reference)
        log.debug("linas picked %d of %d candidates", len(picked), len(candidates))
        return [candidates[i] for i in picked]

    @staticmethod
    def _closest_to_front(points: np.ndarray, front: np.ndarray, picked: list[int]) -> int:
        """The candidate that needs the smallest shift (additive epsilon, in quantile units) to
        escape domination by the front: the one predicted closest to improving it."""
        epsilon = np.max(np.min(points[:, None, :] - front[None, :, :], axis=2), axis=1)
        epsilon[picked] = np.inf
        return int(np.argmin(epsilon))
