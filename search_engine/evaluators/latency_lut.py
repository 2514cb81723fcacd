"""``latency_ms`` predicted from a latency lookup table (``hynas profile``): no device, no torch.

Deterministic: with a LUT the same seed gives the same search."""
from __future__ import annotations

import time
from collections.abc import Sequence

from predictors.lut import LatencyTable
from search_engine.evaluators.base import EVALUATORS, per_profile
from search_space.arch import Arch
from search_space.config import HardwareProfile
from search_space.errors import ConfigError
from search_space.hybrid import HybridSpace
from search_space.objectives import Metrics


@EVALUATORS.register("latency-lut")
class LutLatencyEvaluator:
    def __init__(self, space: HybridSpace, profile: HardwareProfile, objective: str = "latency_ms") -> None:
        if profile.lut is None:
            raise ValueError("profile has no lut")  # build_job only picks this evaluator when it has one
        self.table = LatencyTable.load(profile.lut, space)
        for key in ("backend", "threads", "batch_size", "int8"):
            if self.table.hardware.get(key) != getattr(profile, key):
                raise ConfigError(f"{profile.lut}: latency table was profiled with "
                                  f"{key}={self.table.hardware.get(key)!r} but hardware profile {profile.name!r} "
                                  f"says {getattr(profile, key)!r}")
        self.table.predict(space, space.smallest(), profile.runs_int8)  # an incomplete table fails now
        self.space, self.profile, self.objective = space, profile, objective
        self.provides = (objective,)

    def evaluate(self, archs: Sequence[Arch]) -> list[Metrics]:
        out = []
        for arch in archs:
            start = time.perf_counter()
            ms = self.table.predict(self.space, arch, self.profile.runs_int8)
            out.append(Metrics({self.objective: ms}, time.perf_counter() - start, per_profile({
                "backend": self.profile.backend, "profile": self.profile.name, "lut": self.profile.lut,
                "device": self.table.machine.get("host", "?")}, self.objective)))
        return out
