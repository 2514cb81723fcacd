"""``auto``: per objective, the predictor with the best cross-validated Kendall tau."""
from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import KFold

from predictors.base import PREDICTORS
from predictors.metrics import kendall_tau

log = logging.getLogger("hynas.predictors")

CANDIDATES = ("ridge", "gp", "forest", "ridge-rank", "gp-rank", "forest-rank")


def cross_validated_tau(name: str, X: np.ndarray, y: np.ndarray, seed: int, folds: int = 3) -> float:
    """Mean Kendall tau of predictor ``name`` over ``folds`` held-out folds."""
    taus = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
        mean, _ = PREDICTORS.get(name)(seed=seed).fit(X[train], y[train]).predict(X[test])
        taus.append(kendall_tau(y[test], mean))
    return float(np.mean(taus))


@PREDICTORS.register("auto")
class AutoPredictor:
    """Chooses among ``CANDIDATES`` by 3-fold CV Kendall tau, then refits the choice on all rows.

    The choice is re-made only every ``reselect_every`` fits: CV costs several fits, and the
    best model changes slowly as data accumulates.
    """

    def __init__(self, seed: int = 0, candidates: tuple[str, ...] = CANDIDATES, reselect_every: int = 3) -> None:
        self.seed, self.candidates, self.reselect_every = seed, candidates, reselect_every
        self.chosen: str | None = None
        self.scores: dict[str, float] = {}
        self._fits = 0

    def fit(self, X: np.ndarray, y: np.ndarray) -> AutoPredictor:
        X, y = np.asarray(X, float), np.asarray(y, float)
        if self.chosen is None or self._fits % self.reselect_every == 0:
            if len(X) >= 9:
                self.scores = {c: cross_validated_tau(c, X, y, self.seed) for c in self.candidates}
                self.chosen = max(self.scores, key=self.scores.get)
                log.debug("auto predictor: %s (CV tau %s)", self.chosen,
                          ", ".join(f"{k}={v:.3f}" for k, v in self.scores.items()))
            else:
                self.chosen = "ridge"
        self._fits += 1
        self._model = PREDICTORS.get(self.chosen)(seed=self.seed).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._model.predict(X)
