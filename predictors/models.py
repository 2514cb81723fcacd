"""The surrogate models: Bayesian ridge, Gaussian process, extra-trees forest, MLP ensemble.

Each is small and fits in well under a second on a few hundred archs on 2 cores (the GP on at most 500 of them).
"""
from __future__ import annotations

import warnings
from functools import partial

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import BayesianRidge
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from predictors.base import PREDICTORS, Standardized


@PREDICTORS.register("ridge")
class RidgePredictor(Standardized):
    """Bayesian ridge regression: fast, and its posterior gives a calibrated std."""

    def __init__(self, seed: int = 0, rank_target: bool = False) -> None:
        self.seed, self.rank_target = seed, rank_target

    def _fit(self, X, y):
        self._scaler = StandardScaler().fit(X)
        self._model = BayesianRidge().fit(self._scaler.transform(X), y)

    def _predict(self, X):
        return self._model.predict(self._scaler.transform(X), return_std=True)


@PREDICTORS.register("gp")
class GPPredictor(Standardized):
    """Gaussian process with a Matern-5/2 kernel and learned noise, fitted on at most ``MAX_ROWS`` rows."""

    # Each step of the kernel's optimization factors an n x n matrix: a fit took 0.5-2 s at 500 rows, 4 s at 1,000
    # and about 90 s at 3,000 (2 cores), so a `linas` round at 3,000 measured archs took 86 s and its rounds
    # that re-choose models 11 minutes. Past this many rows a seeded random subset is fitted; the other models
    # fit every row, and `auto`'s cross-validation judges the subset GP as it is used.
    MAX_ROWS = 500

    def __init__(self, seed: int = 0, rank_target: bool = False) -> None:
        self.seed, self.rank_target = seed, rank_target

    def _fit(self, X, y):
        if len(X) > self.MAX_ROWS:
            rows = np.random.default_rng(self.seed).choice(len(X), self.MAX_ROWS, replace=False)
            X, y = X[rows], y[rows]
        self._scaler = StandardScaler().fit(X)
        Xs = self._scaler.transform(X)
        length = np.sqrt(Xs.shape[1])  # start the length scale at the typical distance of standardized rows
        kernel = ConstantKernel(1.0) * Matern(length_scale=length, length_scale_bounds=(1e-2, 1e4), nu=2.5) \
            + WhiteKernel(0.1, noise_level_bounds=(1e-6, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=1,
                                                   random_state=self.seed).fit(Xs, y)

    def _predict(self, X):
        return self._model.predict(self._scaler.transform(X), return_std=True)


@PREDICTORS.register("forest")
class ForestPredictor(Standardized):
    """A ridge trend plus extremely randomized trees on its residuals.

    Trees alone rank additive effects poorly from a few hundred rows; the linear trend takes
    those, and the trees model the interactions left over. The spread of the trees is the std.
    """

    def __init__(self, seed: int = 0, rank_target: bool = False, trees: int = 100) -> None:
        self.seed, self.rank_target, self.trees = seed, rank_target, trees

    def _fit(self, X, y):
        self._trend = RidgePredictor(self.seed)
        self._trend._fit(X, y)
        residual = y - self._trend._predict(X)[0]
        self._model = ExtraTreesRegressor(self.trees, min_samples_leaf=2, max_features=0.5,
                                          random_state=self.seed, n_jobs=1).fit(X, residual)

    def _predict(self, X):
        X32 = np.asarray(X, dtype=np.float32)  # tree_.predict skips sklearn's per-call validation: 10x faster
        per_tree = np.stack([t.tree_.predict(X32).ravel() for t in self._model.estimators_])
        return self._trend._predict(X)[0] + per_tree.mean(axis=0), per_tree.std(axis=0)


@PREDICTORS.register("mlp")
class MLPEnsemblePredictor(Standardized):
    """An ensemble of small MLPs, each on a bootstrap sample; their disagreement is the std."""

    def __init__(self, seed: int = 0, rank_target: bool = False, members: int = 5, hidden: int = 64) -> None:
        self.seed, self.rank_target, self.members, self.hidden = seed, rank_target, members, hidden

    def _fit(self, X, y):
        rng = np.random.default_rng(self.seed)
        self._scaler = StandardScaler().fit(X)
        Xs = self._scaler.transform(X)
        self._models = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for m in range(self.members):
                rows = rng.integers(0, len(Xs), len(Xs))
                model = MLPRegressor(hidden_layer_sizes=(self.hidden, self.hidden), alpha=1e-3, learning_rate_init=3e-3,
                                     max_iter=300, random_state=self.seed + m)
                self._models.append(model.fit(Xs[rows], y[rows]))

    def _predict(self, X):
        Xs = self._scaler.transform(X)
        preds = np.stack([m.predict(Xs) for m in self._models])
        return preds.mean(axis=0), preds.std(axis=0)


for _name in ("ridge", "gp", "forest", "mlp"):
    # The same model fitted on rank-transformed targets (see ``RankTarget``).
    PREDICTORS.register(f"{_name}-rank")(partial(PREDICTORS.get(_name), rank_target=True))
