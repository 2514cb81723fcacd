"""``auto``: per objective, the predictor with the best cross-validated Kendall tau."""
from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import KFold

from predictors.base import PREDICTORS
from predictors.metrics import kendall_tau, top_weighted_tau

log = logging.getLogger("hynas.predictors")

CANDIDATES = ("ridge", "gp", "forest", "ridge-rank", "gp-rank", "forest-rank")


def cross_validated_tau(name: str, X: np.ndarray, y: np.ndarray, seed: int, folds: int = 3,
                        max_rows: int = 250, better: str | None = None) -> float:
    """Mean Kendall tau of predictor ``name`` over ``folds`` held-out folds of at most ``max_rows``
    rows (a seeded subsample beyond that: the GP's cost grows with the cube of the rows, and
    the ranking of the candidates is settled long before). With ``better`` ("higher" or
    "lower"), the top-weighted tau from that end instead."""
    if len(X) > max_rows:
        rows = np.random.default_rng(seed).choice(len(X), max_rows, replace=False)
        X, y = X[rows], y[rows]
    taus = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
        mean, _ = PREDICTORS.get(name)(seed=seed).fit(X[train], y[train]).predict(X[test])
        taus.append(kendall_tau(y[test], mean) if better is None
                    else top_weighted_tau(y[test], mean, higher_is_better=better == "higher"))
    return float(np.mean(taus))


@PREDICTORS.register("auto")
class AutoPredictor:
    """Ranks every (model in ``CANDIDATES``, view of the features) pair by 3-fold CV Kendall tau,
    refits the ``top`` best on all rows and averages their predictions.

    Averaging the top few rather than taking the single best: with ~100 rows the CV scores of
    the leaders differ by less than their noise, and the average ranks held-out archs better
    than the CV winner alone (measured on NB201: test_acc 0.710 vs 0.700, latency 0.852 vs 0.846).

    ``views`` (from ``SearchSpace.feature_views``) names column sets of the features. Each
    objective has its own best view: few aggregate columns (op counts, analytic costs) fit
    from a few dozen archs and rank latency well, while accuracy may need the full encoding;
    without views only all columns are used.
    ``better`` ("higher" or "lower", the objective's good end) makes the CV score the
    top-weighted tau from that end: a search needs the best archs ordered among themselves, and
    on NB201 the view that ranks all archs best ranks the top 10 % worst (op counts: 0.16 vs 0.26
    for the full features at 400 rows).

    The choice is re-made only once the rows have grown by ``reselect_growth`` (50 %) since the
    last one: CV costs dozens of fits, and the best model changes with the relative, not the
    absolute, growth of the data (20 -> 30 rows matters, 480 -> 490 does not). Between
    choices the members are refitted in place, so a GP starts from its last kernel.
    """

    def __init__(self, seed: int = 0, candidates: tuple[str, ...] = CANDIDATES, reselect_growth: float = 1.5,
                 views: dict[str, np.ndarray] | None = None, top: int = 3, better: str | None = None) -> None:
        if better not in (None, "higher", "lower"):
            raise ValueError(f"better must be 'higher', 'lower' or None, got {better!r}")
        self.seed, self.candidates, self.reselect_growth = seed, candidates, reselect_growth
        self.views, self.top, self.better = views, top, better
        self.chosen: list[tuple[str, str]] = []
        self.scores: dict[tuple[str, str], float] = {}
        self._chosen_at = 0
        self._models: list = []

    def _view(self, X: np.ndarray, view: str) -> np.ndarray:
        return X if self.views is None else X[:, self.views[view]]

    def fit(self, X: np.ndarray, y: np.ndarray) -> AutoPredictor:
        X, y = np.asarray(X, float), np.asarray(y, float)
        views = ["all"] if self.views is None else list(self.views)
        if not self.chosen or len(X) >= self.reselect_growth * self._chosen_at:
            if len(X) >= 9:
                self.scores = {(c, v): cross_validated_tau(c, self._view(X, v), y, self.seed, better=self.better)
                               for c in self.candidates for v in views}
                self.chosen = sorted(self.scores, key=self.scores.get, reverse=True)[: self.top]
                self._chosen_at = len(X)
                log.debug("auto predictor: %s", ", ".join(f"{c} on {v} (CV tau {self.scores[c, v]:.3f})"
                                                          for c, v in self.chosen))
            else:
                self.chosen = [("ridge", views[0])]
            self._models = [(PREDICTORS.get(name)(seed=self.seed), view) for name, view in self.chosen]
        for model, view in self._models:
            model.fit(self._view(X, view), y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The members' mean; the std of their mixture (own uncertainty plus disagreement)."""
        X = np.asarray(X, float)
        means, stds = zip(*(model.predict(self._view(X, view)) for model, view in self._models))
        means, stds = np.stack(means), np.stack(stds)
        return means.mean(axis=0), np.sqrt((stds**2).mean(axis=0) + means.var(axis=0))
