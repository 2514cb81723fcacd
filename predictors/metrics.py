"""Ranking and error metrics for predictors."""
from __future__ import annotations

import numpy as np
from scipy import stats


def kendall_tau(y_true, y_pred) -> float:
    tau = stats.kendalltau(y_true, y_pred).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def spearman(y_true, y_pred) -> float:
    rho = stats.spearmanr(y_true, y_pred).statistic
    return 0.0 if np.isnan(rho) else float(rho)


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent (rows with a zero target are skipped)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = y_true != 0
    return float(np.mean(np.abs((y_pred[nonzero] - y_true[nonzero]) / y_true[nonzero])) * 100)
