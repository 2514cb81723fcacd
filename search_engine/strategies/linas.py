"""``linas``: predictor-guided search, partly local around the measured front, partly global.

Each round after an initial random batch:

1. fit one predictor per measured objective on every measured arch (objectives with an
   exact formula, such as model size, are computed instead of predicted);
2. a share of the batch comes from the archs one gene away from a measured arch on the first
   two non-dominated fronts;
3. the rest from those neighbours plus every arch a pymoo NSGA-II (NSGA-III or AGE-MOEA
   selectable) visits in thousands of cheap inner evaluations on the predictors.

The share (``local_share``) is fixed (0.5 by default), or ``"adaptive"``: each part is credited
with its picks that improved the measured front, and the share follows the two parts' success
rates (see ``current_local_share``).

Both parts are picked greedily by the hypervolume a candidate's *predicted means* would add
to the measured front (in the objectives' own units, the same kind of hypervolume the run
reports), adding each pick's prediction to the front before the next pick (the "kriging
believer") so that the batch spreads along the front; once nothing is predicted to add any,
the candidates predicted closest to the front. The reference point of that hypervolume is
taken each round from every arch measured so far: one fixed from the initial batch gave no
gain at all to a candidate slower (or worse) than the first 20 archs, and on the NB201 table
that hid the two most accurate cells in 3 of 8 seeds (docs/experiments.md, "Search").

Why both, measured side by side (docs/experiments.md, "How linas came to be"): on the NB201 table
predictors rank the best archs among themselves at a Kendall tau of 0.1-0.3, so a measured good arch says
more about its neighbours than a distant prediction does, and local picks win there; on the
demo's hybrid space (10^8 archs, 60 measured) one-gene steps are too short and the global
inner search wins. Neither fixed share fits both, hence the adaptive option. Sampling the
predictive distribution (Thompson sampling, Monte-Carlo expected hypervolume improvement)
or an optimistic mean-minus-std bonus did worse on both: the stds of these small models are
not calibrated enough to steer by.

Measured archs are never proposed again; constraints on predicted values drop candidates
predicted to violate them (a constrained value that is no objective gets its own predictor),
and constraints on exact values are checked before proposing.
"""
from __future__ import annotations

import logging

import numpy as np
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from pymoo.util.ref_dirs import get_reference_directions
from scipy import special

from predictors import PREDICTORS
from results.pareto import hypervolume_gains, nondominated_ranks, pareto_mask, reference_from, to_min_form
from search_engine.strategies.base import STRATEGIES, Strategy
from search_engine.strategies.genetic import integer_nsga2
from search_space.errors import ConfigError

log = logging.getLogger("hynas.linas")
INNER_ALGORITHMS = ("nsga2", "nsga3", "agemoea")


class _PredictedProblem(Problem):
    """Integer genes -> predicted (min-form) objectives; records every arch it evaluates."""

    def __init__(self, strategy: Linas) -> None:
        lower, upper = strategy.space.bounds()
        super().__init__(n_var=len(upper), n_obj=len(strategy.objectives), xl=lower, xu=upper, vtype=int)
        self.strategy = strategy
        self.visited: dict = {}

    def _evaluate(self, X, out, *args, **kwargs):
        archs = [self.strategy.space.decode(x) for x in np.asarray(X).astype(int)]
        mean = self.strategy.predict(archs)
        penalty = np.array([0.0 if self.strategy.allowed(a) else 1e6 for a in archs])
        out["F"] = mean + penalty[:, None]
        for arch in archs:
            self.visited.setdefault(arch, None)


@STRATEGIES.register("linas")
class Linas(Strategy):
    def __init__(self, *args, initial: int = 20, predictor: str = "auto", inner: str = "nsga2",
                 inner_population: int = 100, inner_generations: int = 40, shortlist: int = 1000,
                 local_share: float | str = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if inner not in INNER_ALGORITHMS:
            raise ConfigError(f"linas inner search {inner!r} is not available; "
                              f"choose one of {', '.join(INNER_ALGORITHMS)}")
        if local_share != "adaptive" and not (isinstance(local_share, (int, float)) and 0 <= local_share <= 1):
            raise ConfigError(f"linas local_share must be a number in [0, 1] or 'adaptive', got {local_share!r}")
        PREDICTORS.get(predictor)  # fail early on an unknown name
        self.initial, self.inner, self.shortlist, self.local_share = initial, inner, shortlist, local_share
        self.inner_population, self.inner_generations = inner_population, inner_generations
        self.predicted = [o for o in self.objectives if o.name not in self.exact]
        # Measured values that are constrained without being objectives (a table's other latency column): predicted
        # too, else nothing would keep the picks within their limits.
        objective_names = {o.name for o in self.objectives}
        self.constrained = list(dict.fromkeys(c.name for c in self.constraints
                                              if c.name not in objective_names and c.name not in self.exact))
        options = {"views": self.space.feature_views()} if predictor == "auto" else {}
        self._models = {name: PREDICTORS.get(predictor)(seed=self.seed, **options)
                        for name in [o.name for o in self.predicted] + self.constrained}
        self._features: dict = {}
        self._networks: set = set()  # space.network of every arch told, measured or failed
        self._origin: dict = {}  # pick -> "local" or "global", until it is measured
        self.credit = {"local": [0, 0], "global": [0, 0]}  # picks that improved the front, picks measured

    # -- helpers used by the inner problem -----------------------------------------------
    def allowed(self, arch) -> bool:
        """Unseen, in the space, past the precheck, and not a copy of a network already measured: a copy has the
        same features, so its prediction says nothing new, yet while the predictors overrate a network its copies
        kept being picked (one NB201 seed spent 289 of 500 measurements on copies and never reached 0.99)."""
        return (arch not in self.seen and self.space.contains(arch) and self.space.network(arch) not in self._networks
                and self.precheck(arch))

    def _feature_matrix(self, archs) -> np.ndarray:
        rows = []
        for arch in archs:
            if arch not in self._features:
                self._features[arch] = self.space.features(arch)
            rows.append(self._features[arch])
        return np.stack(rows)

    def predict(self, archs) -> np.ndarray:
        """Min-form predicted means, shape (len(archs), objectives)."""
        X = self._feature_matrix(archs)
        mean = np.zeros((len(archs), len(self.objectives)))
        for j, o in enumerate(self.objectives):
            if o.name in self.exact:
                mean[:, j] = [self.exact[o.name](a) * o.sign for a in archs]
            else:
                mean[:, j] = self._models[o.name].predict(X)[0] * o.sign
        return mean

    def _measured_matrix(self, feasible_only: bool = False) -> np.ndarray:
        """Min-form measured values (of the feasible archs only, if asked)."""
        rows = [v for _, v in self.measured if not feasible_only or self.violation(v) == 0]
        return to_min_form(rows, self.objectives)

    # -- the local/global split -------------------------------------------------------------
    def current_local_share(self) -> float:
        """``local_share`` if fixed; adaptive: the posterior probability that local picks improve
        the measured front more often than global ones (each part's rate a Beta(1 + hits,
        1 + misses), compared in the normal approximation), kept within [0.2, 0.8] so that
        neither part stops being tried. It starts at 0.5 and leans hard once the evidence
        does: a ratio of rates would stay near 0.6 for rates of 18 % and 11 %."""
        if self.local_share != "adaptive":
            return float(self.local_share)
        means, variances = [], []
        for hits, tries in (self.credit["local"], self.credit["global"]):
            mean = (hits + 1) / (tries + 2)
            means.append(mean)
            variances.append(mean * (1 - mean) / (tries + 3))
        z = (means[0] - means[1]) / np.sqrt(variances[0] + variances[1])
        return float(np.clip(special.ndtr(z), 0.2, 0.8))

    def _observe(self, archs, results) -> None:
        """Credits the local or global part with each of its picks now measured; a failed pick
        is dropped without credit."""
        self._networks.update(self.space.network(a) for a in archs)
        new = sum(r is not None for r in results)
        before = self.measured[: len(self.measured) - new]
        front = to_min_form([v for _, v in before if self.violation(v) == 0], self.objectives)
        for arch, result in zip(archs, results):
            origin = self._origin.pop(arch, None)
            if origin is None or result is None:
                continue
            point = self.min_form(result.values)
            improved = self.violation(result.values) == 0 and not np.any(np.all(front <= point, axis=1))
            self.credit[origin][0] += int(improved)
            self.credit[origin][1] += 1

    # -- the round ------------------------------------------------------------------------
    def _propose(self, n: int) -> list:
        if len(self.measured) < max(self.initial, 3):
            anchors = getattr(self.space, "anchors", list)()  # a supernet space's extremes (HybridSpace.anchors)
            first = [a for a in anchors if a not in self.seen and self.precheck(a)]
            return (first + self.fresh_random(n, exclude=set(first)))[:n]
        archs = [a for a, _ in self.measured]
        X = self._feature_matrix(archs)
        for name, model in self._models.items():  # the predicted objectives and constrained values
            model.fit(X, np.array([v[name] for _, v in self.measured]))
        neighbours = self._front_neighbours()
        picks = self._select(neighbours, int(round(self.current_local_share() * n)), believed=[], fill=False)
        self._origin.update(dict.fromkeys(picks, "local"))
        if len(picks) < n:
            taken = set(picks)
            pool = dict.fromkeys(self._inner_search() + neighbours)
            more = self._select([a for a in pool if a not in taken], n - len(picks), believed=picks, fill=True)
            self._origin.update(dict.fromkeys(more, "global"))
            picks += more
        if len(picks) < n:
            picks += self.fresh_random(n - len(picks), exclude=set(picks))
        return picks

    def _inner_search(self) -> list:
        problem = _PredictedProblem(self)
        F = self._measured_matrix()
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
        """Every allowed arch one gene away from a measured arch on the first two fronts."""
        ranks = nondominated_ranks(self._measured_matrix())
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

    def _select(self, candidates: list, n: int, believed: list, fill: bool = False) -> list:
        """Up to ``n`` candidates, greedily by the hypervolume their predicted means add to the
        measured front plus the ``believed`` picks; once nothing is predicted to add any, the
        ones predicted closest to the front. Only candidates predicted to meet the constraints, unless
        ``fill`` (the round's last stage) and fewer than ``n`` are: then those predicted to break them least."""
        if not candidates or n <= 0:
            return []
        mean = self.predict(candidates)
        # Towards the limits when too few candidates are predicted within them, as NSGA-II ranks infeasible
        # solutions: the feasible first, then by how far they are predicted to break the limits.
        if self.constraints:
            X = self._feature_matrix(candidates)
            others = {name: self._models[name].predict(X)[0] for name in self.constrained}
            broken = np.array([self.violation({**{o.name: m * o.sign for o, m in zip(self.objectives, row)},
                                               **{name: values[i] for name, values in others.items()}})
                               for i, row in enumerate(mean)])
            fits = (broken == 0).sum()
            keep = np.argsort(broken, kind="stable")[:max(n, fits) if fill else fits]
            candidates, mean = [candidates[i] for i in keep], mean[keep]
        order = np.argsort(nondominated_ranks(mean), kind="stable")[: self.shortlist]
        candidates, mean = [candidates[i] for i in order], mean[order]
        reference = reference_from(self._measured_matrix())
        front = self._measured_matrix(feasible_only=True)
        if believed:
            front = np.vstack([front, self.predict(believed)])
        picked: list[int] = []
        for _ in range(min(n, len(candidates))):
            gains = hypervolume_gains(front, mean, reference)
            gains[picked] = -np.inf
            best = int(np.argmax(gains))
            if gains[best] <= 0:
                best = self._closest_to_front(mean, front, picked, reference)
            picked.append(best)
            front = np.vstack([front, mean[best]])
            front = front[pareto_mask(front)]
        log.debug("linas picked %d of %d candidates", len(picked), len(candidates))
        return [candidates[i] for i in picked]

    @staticmethod
    def _closest_to_front(points: np.ndarray, front: np.ndarray, picked: list[int], reference: np.ndarray) -> int:
        """The candidate that needs the smallest shift (additive epsilon, in units of each
        objective's span on the front) to escape domination by it: the one predicted closest to
        improving it."""
        if not len(front):
            return next(i for i in range(len(points)) if i not in picked)
        span = np.maximum(reference - front.min(axis=0), 1e-12)
        epsilon = np.max(np.min((points[:, None, :] - front[None, :, :]) / span, axis=2), axis=1)
        epsilon[picked] = np.inf
        return int(np.argmin(epsilon))
