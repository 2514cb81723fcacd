"""Evaluators: accuracy, latency, size and table lookups, behind one ``evaluate(archs)`` protocol."""
from search_engine.evaluators import analytic, latency_lut, table  # noqa: F401 (registers; the torch ones load on use)
from search_engine.evaluators.base import EVALUATORS, CompositeEvaluator, Evaluator

__all__ = ["EVALUATORS", "CompositeEvaluator", "Evaluator"]
