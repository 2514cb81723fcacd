"""``accuracy``: top-1 validation accuracy with inherited supernet weights after BN recalibration."""
from __future__ import annotations

import time
from collections.abc import Sequence

from search_engine.evaluators.base import EVALUATORS
from search_space.arch import Arch
from search_space.objectives import Metrics
from supernet.calibration import subnet_accuracy
from supernet.data import Dataset
from supernet.model import Supernet


@EVALUATORS.register("accuracy")
class AccuracyEvaluator:
    """Deterministic for a given supernet: the same calibration batches for every arch. Cached by arch."""

    provides = ("accuracy",)

    def __init__(self, supernet: Supernet, data: Dataset, bn_batches: int) -> None:
        self.supernet, self.data, self.bn_batches = supernet, data, bn_batches
        self._cache: dict[Arch, float] = {}

    def evaluate(self, archs: Sequence[Arch]) -> list[Metrics]:
        out = []
        for arch in archs:
            start = time.perf_counter()
            if arch not in self._cache:
                self._cache[arch] = subnet_accuracy(self.supernet, arch, self.data.train, self.data.val,
                                                    self.bn_batches)
            out.append(Metrics({"accuracy": self._cache[arch]}, time.perf_counter() - start, {"split": "val"}))
        return out
