"""``latency_ms``: measured latency of the extracted subnet on the machine that runs the evaluator.

With the ``torch`` backend the subnet runs in float in eager mode (bit-widths change its size,
not its speed there); integer execution needs an int8 runtime backend.

Fixed thread count, warm-up runs, then the median of ``repeats`` timed runs; the spread
(interquartile range), batch size, threads, backend and host are recorded with it. Measured
latency varies from run to run and machine to machine: the same seed does not give the same
numbers, only the same protocol.
"""
from __future__ import annotations

import platform
import socket
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from search_engine.evaluators.base import EVALUATORS
from search_space.arch import Arch
from search_space.config import HardwareProfile
from search_space.errors import ConfigError
from search_space.objectives import Metrics
from supernet.model import Supernet


def time_ms(run: Callable[[], object], warmup: int, repeats: int) -> tuple[float, float]:
    """Median and interquartile range, in ms, of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    q1, q3 = np.percentile(samples, [25, 75])
    return statistics.median(samples), float(q3 - q1)


@EVALUATORS.register("latency")
class LatencyEvaluator:
    def __init__(self, supernet: Supernet, profile: HardwareProfile, objective: str = "latency_ms") -> None:
        if profile.backend != "torch":
            raise ConfigError(f"hardware profile {profile.name!r}: backend {profile.backend!r} is not available yet "
                              "in this version; use backend: torch")
        self.supernet, self.profile, self.objective = supernet, profile, objective
        self.provides = (objective,)
        space = supernet.space
        self._input = torch.zeros(profile.batch_size, space.input.channels, space.input.size, space.input.size)

    def evaluate(self, archs: Sequence[Arch]) -> list[Metrics]:
        out = []
        previous = torch.get_num_threads()
        torch.set_num_threads(self.profile.threads)
        try:
            for arch in archs:
                # Eager torch has no integer kernels: time the float graph a deployment would run.
                model = self.supernet.extract(arch, simulate_activations=False).eval()
                with torch.inference_mode():
                    median, spread = time_ms(lambda: model(self._input), self.profile.warmup, self.profile.repeats)
                out.append(Metrics({self.objective: median}, 0.0, {
                    "backend": "torch", "threads": self.profile.threads, "batch_size": self.profile.batch_size,
                    "spread_ms": spread, "host": socket.gethostname(), "device": platform.processor() or "cpu",
                    "profile": self.profile.name}))
        finally:
            torch.set_num_threads(previous)
        return out
