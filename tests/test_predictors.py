import numpy as np
import pytest

from predictors import PREDICTORS, kendall_tau, mape, spearman


def _additive(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, size=(n, 8)).astype(float)
    weights = np.array([3.0, -2.0, 1.5, 1.0, 0.5, -0.5, 2.0, 0.0])
    return X, X @ weights + rng.normal(0, 0.3, n)


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_every_predictor_ranks_an_additive_objective(name):
    X, y = _additive(150, 0)
    Xt, yt = _additive(400, 1)
    mean, std = PREDICTORS.get(name)(seed=0).fit(X, y).predict(Xt)
    assert mean.shape == std.shape == (400,)
    assert np.all(std >= 0)
    assert kendall_tau(yt, mean) > 0.9


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_refit_with_more_rows_and_constant_columns(name):
    X, y = _additive(60, 2)
    X[:, 7] = 1.0  # a constant column must not break any model
    model = PREDICTORS.get(name)(seed=0).fit(X[:30], y[:30])
    model.fit(X, y)
    mean, _ = model.predict(X)
    assert np.isfinite(mean).all()


def test_a_gp_fits_a_subset_of_many_rows_and_still_ranks():
    """Fitted on every row, a GP of 3,000 rows took about 90 s (its kernel optimization is cubic in the rows)."""
    from predictors.models import GPPredictor

    X, y = _additive(1500, 6)
    Xt, yt = _additive(400, 7)
    gp = GPPredictor(seed=0).fit(X, y)
    assert len(gp._model.X_train_) == GPPredictor.MAX_ROWS == 500
    mean, std = gp.predict(Xt)
    assert kendall_tau(yt, mean) > 0.9 and np.all(std >= 0)


def test_auto_reports_its_choice_and_scores():
    X, y = _additive(60, 3)
    auto = PREDICTORS.get("auto")(seed=0).fit(X, y)
    assert auto.chosen in auto.scores and max(auto.scores.values()) == auto.scores[auto.chosen]


def test_auto_chooses_the_view_that_carries_the_signal():
    rng = np.random.default_rng(5)
    signal, _ = _additive(120, 5)
    X = np.hstack([rng.normal(size=(120, 40)), signal])  # 40 noise columns, then the 8 that matter
    y = signal @ np.array([3.0, -2.0, 1.5, 1.0, 0.5, -0.5, 2.0, 0.0]) + rng.normal(0, 0.3, 120)
    views = {"noise": np.arange(40), "signal": 40 + np.arange(8)}
    auto = PREDICTORS.get("auto")(seed=0, views=views).fit(X[:80], y[:80])
    assert auto.chosen[1] == "signal"
    assert auto.scores[auto.chosen] > auto.scores["ridge-rank", "all"] > auto.scores["ridge-rank", "noise"]
    assert kendall_tau(y[80:], auto.predict(X[80:])[0]) > 0.9


def test_auto_chooses_again_only_after_the_rows_grow_by_half():
    X, y = _additive(90, 4)
    auto = PREDICTORS.get("auto")(seed=0, candidates=("ridge", "forest"))
    auto.fit(X[:40], y[:40])
    first = auto.scores
    auto.fit(X[:59], y[:59])  # 59 < 1.5 * 40: the choice stands, no cross-validation
    assert auto.scores is first
    auto.fit(X[:60], y[:60])  # 60 = 1.5 * 40: chosen again on the new rows
    assert auto.scores is not first and set(auto.scores) == set(first)


def test_ranking_metrics():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert mape([100, 200], [110, 180]) == pytest.approx(10.0)
