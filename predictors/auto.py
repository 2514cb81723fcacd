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
    """Chooses a model among ``CANDIDATES`` and a view of the features by 3-fold CV Kendall tau,
    then refits the choice on all rows.

    ``encoding_columns`` (from ``SearchSpace.encoding_size``) names the leading columns that
    are the plain encoding; the rest are derived features (paths, analytic costs). Derived
    features help one objective and add noise to another, so both views compete.
    The choice is re-made only every ``reselect_every`` fits: CV costs many fits, and the
    best model changes slowly as data accumulates.
    """

    def __init__(self, seed: int = 0, candidates: tuple[str, ...] = CANDIDATES, reselect_every: int = 3,
                 encoding_columns: int | None = None) -> None:
        self.seed, self.candidates, self.reselect_every = seed, candidates, reselect_every
        self.encoding_columns = encoding_columns
        self.chosen: tuple[str, str] | None = None
        self.scores: dict[tuple[str, str], float] = {}
        self._fits = 0

    def _view(self, X: np.ndarray, view: str) -> np.ndarray:
        return X[:, : self.encoding_columns] if view == "encoding" else X

    def fit(self, X: np.ndarray, y: np.ndarray) -> AutoPredictor:
        X, y = np.asarray(X, float), np.asarray(y, float)
        views = ["all"] + (["encoding"] if self.encoding_columns and self.encoding_columns < X.shape[1] else [])
        if self.chosen is None or self._fits % self.reselect_every == 0:
            if len(X) >= 9:
                self.scores = {(c, v): cross_validated_tau(c, self._view(X, v), y, self.seed)
                               for c in self.candidates for v in views}
                self.chosen = max(self.scores, key=self.scores.get)
                log.debug("auto predictor: %s on %s features (CV tau %.3f)", *self.chosen, self.scores[self.chosen])
            else:
                self.chosen = ("ridge", "all")
        self._fits += 1
        name, view = self.chosen
        self._model = PREDICTORS.get(name)(seed=self.seed).fit(self._view(X, view), y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._model.predict(self._view(np.asarray(X, float), self.chosen[1]))
