"""Surrogate models on encoded arch vectors (ridge, GP, forest, MLP ensemble, auto), the latency
lookup-table model, and ranking metrics (Kendall tau, Spearman, MAPE)."""
from predictors import auto, models  # noqa: F401  (registers the predictors)
from predictors.base import PREDICTORS, Predictor
from predictors.metrics import kendall_tau, mape, spearman

__all__ = ["PREDICTORS", "Predictor", "kendall_tau", "mape", "spearman"]
