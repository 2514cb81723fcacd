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
    The choice is re-made only once the rows have grown by ``reselect_growth`` (1.5: 50 more
    rows after 100, 250 more after 500): CV costs dozens of fits (about 30 s on 500 rows, most
    of it the Gaussian processes) and the best model changes with the data's scale, not with
    each batch. A search of 500 archs from 20 thus chooses 8 times instead of every round.
    """

    def __init__(self, seed: int = 0, candidates: tuple[str, ...] = CANDIDATES, reselect_growth: float = 1.5,
                 encoding_columns: int | None = None) -> None:
        self.seed, self.candidates, self.reselect_growth = seed, candidates, reselect_growth
        self.encoding_columns = encoding_columns
        self.chosen: tuple[str, str] | None = None
        self.scores: dict[tuple[str, str], float] = {}
        self._rows_at_choice = 0  # rows of the last cross-validated choice (0: none made yet)

    def _view(self, X: np.ndarray, view: str) -> np.ndarray:
        return X[:, : self.encoding_columns] if view == "encoding" else X

    def fit(self, X: np.ndarray, y: np.ndarray) -> AutoPredictor:
        X, y = np.asarray(X, float), np.asarray(y, float)
        views = ["all"] + (["encoding"] if self.encoding_columns and self.encoding_columns < X.shape[1] else [])
        if len(X) >= self.reselect_growth * self._rows_at_choice:  # always, until a choice is made
            if len(X) >= 9:
                self.scores = {(c, v): cross_validated_tau(c, self._view(X, v), y, self.seed)
                               for c in self.candidates for v in views}
                self.chosen = max(self.scores, key=self.scores.get)
                self._rows_at_choice = len(X)
                log.debug("auto predictor: %s on %s features (CV tau %.3f)", *self.chosen, self.scores[self.chosen])
            else:
                self.chosen = ("ridge", "all")
        name, view = self.chosen
        self._model = PREDICTORS.get(name)(seed=self.seed).fit(self._view(X, view), y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._model.predict(self._view(np.asarray(X, float), self.chosen[1]))
