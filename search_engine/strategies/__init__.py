"""Search strategies behind one ask/tell interface, registered by name in ``STRATEGIES``."""
from search_engine.strategies import genetic, linas, optuna_samplers, random_search  # noqa: F401 (registers)
from search_engine.strategies.base import STRATEGIES, Strategy

__all__ = ["STRATEGIES", "Strategy"]
