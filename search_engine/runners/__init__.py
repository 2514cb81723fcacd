"""Runners: where evaluations happen (``local`` in process, ``ray`` on a cluster)."""
from search_engine.runners import local  # noqa: F401 (registers; ``ray`` registers when first used: ray is heavy)
from search_engine.runners.base import RUNNERS, Runner

__all__ = ["RUNNERS", "Runner"]
