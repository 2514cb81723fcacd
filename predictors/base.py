"""The predictor contract and registry.

A predictor maps encoded arch vectors ``X`` (rows from ``SearchSpace.features``) to one
objective. ``fit(X, y)`` may be called again with more rows at any time (a refit, not an
update); ``predict(X)`` returns ``(mean, std)``, both of shape ``(len(X),)``, ``std >= 0``.
Every predictor is built as ``PREDICTORS.get(name)(seed=...)``.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import stats

from search_space.registry import Registry


class Predictor(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor: ...
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


PREDICTORS: Registry = Registry("predictor")


class RankTarget:
    """A monotone map of targets to normal scores of their ranks, and back.

    Skewed, outlier-heavy targets (a few broken archs at 10 % accuracy among many near 90 %)
    pull a squared-error fit towards the outliers; ranks do not, and ranking is what a search
    needs. The inverse interpolates the training pairs and extrapolates linearly beyond them,
    so that a predicted improvement over the best seen arch is not clipped away.
    """

    def __init__(self, y: np.ndarray) -> None:
        order = np.argsort(y, kind="stable")
        self.y = y[order]
        self.z = stats.norm.ppf((np.arange(len(y)) + 0.5) / len(y))

    def forward(self, y: np.ndarray) -> np.ndarray:
        return np.interp(y, self.y, self.z)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        k = max(2, len(self.z) // 10)
        lo_slope = (self.y[k - 1] - self.y[0]) / (self.z[k - 1] - self.z[0])
        hi_slope = (self.y[-1] - self.y[-k]) / (self.z[-1] - self.z[-k])
        out = np.interp(z, self.z, self.y)
        out = np.where(z < self.z[0], self.y[0] + (z - self.z[0]) * lo_slope, out)
        return np.where(z > self.z[-1], self.y[-1] + (z - self.z[-1]) * hi_slope, out)


class Standardized:
    """Mixin: standardize targets (or rank-transform them, ``rank_target=True``) and drop
    constant feature columns around the model's ``_fit``/``_predict``."""

    rank_target: bool = False

    def fit(self, X: np.ndarray, y: np.ndarray):
        X, y = np.asarray(X, float), np.asarray(y, float)
        self._keep = X.std(axis=0) > 0
        if not self._keep.any():
            self._keep[:] = True
        if self.rank_target:
            self._ranks = RankTarget(y)
            self._fit(X[:, self._keep], self._ranks.forward(y))
        else:
            self._mu, self._sd = float(y.mean()), float(y.std()) or 1.0
            self._fit(X[:, self._keep], (y - self._mu) / self._sd)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._predict(np.asarray(X, float)[:, self._keep])
        std = np.maximum(std, 0.0)
        if self.rank_target:
            lo, mid, hi = (self._ranks.inverse(mean + d * std) for d in (-1.0, 0.0, 1.0))
            return mid, np.abs(hi - lo) / 2
        return mean * self._sd + self._mu, std * self._sd

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError
