"""Runners: where evaluations happen (``local`` in process, ``ray`` on a cluster)."""
from search_engine.runners import local  # noqa: F401 (registers; ``ray`` registers when imported, see load_runner)
from search_engine.runners.base import RUNNERS, Runner

__all__ = ["RUNNERS", "Runner", "load_runner"]


def load_runner(name: str):
    """The runner class of ``name``; the Ray runner is imported only when asked for (ray is heavy)."""
    if name == "ray":
        from search_engine.runners import ray_runner  # noqa: F401 (registers)
    return RUNNERS.get(name)
