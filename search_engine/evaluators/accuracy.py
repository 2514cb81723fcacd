"""``accuracy``: top-1 validation accuracy with inherited supernet weights after BN recalibration."""
from __future__ import annotations

import time
from collections.abc import Sequence

from search_engine.evaluators.base import EVALUATORS
from search_space.arch import Arch
from search_space.objectives import Metrics
from supernet.calibration import Calibrator, Scores, scores
from supernet.data import Dataset
from supernet.model import Supernet


@EVALUATORS.register("accuracy")
class AccuracyEvaluator:
    """Deterministic for a given supernet: the same calibration batches for every arch. Cached by arch.
    ``calibrator``: shared with the latency evaluator, so that an arch is recalibrated once.

    The validation cross-entropy is recorded beside the accuracy (``val_cross_entropy`` in the metadata,
    a column of ``measured.csv``): on a few hundred images it orders close subnets far more
    reproducibly than top-1 (see ``supernet.calibration.Scores``)."""

    provides = ("accuracy",)

    def __init__(self, supernet: Supernet, data: Dataset, bn_batches: int,
                 calibrator: Calibrator | None = None) -> None:
        self.data = data
        self.calibrator = calibrator or Calibrator(supernet, data.train, bn_batches)
        self._cache: dict[Arch, Scores] = {}

    def evaluate(self, archs: Sequence[Arch]) -> list[Metrics]:
        out = []
        for arch in archs:
            start = time.perf_counter()
            if arch not in self._cache:
                with self.calibrator(arch) as net:
                    self._cache[arch] = scores(net, self.data.val, arch)
            got = self._cache[arch]
            out.append(Metrics({"accuracy": got.accuracy}, time.perf_counter() - start,
                               {"split": "val", "val_cross_entropy": got.nll}))
        return out
