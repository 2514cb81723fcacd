"""``latency_ms``: measured latency of the extracted subnet on the machine that runs the evaluator.

With the ``onnxruntime`` backend the subnet is exported to ONNX and its layers whose bit-widths are
all <= 8 run as static int8 (see ``supernet.onnx_io``), so quantization shows up in measured time,
for better or worse: on small layers int8's quantize/dequantize overhead can cost more than it
saves, and the search should see that. With ``torch`` it runs in float in eager mode.

Protocol and caveats: ``search_engine.latency_meter``. The LUT variant is in ``latency_lut``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from search_engine.evaluators.base import EVALUATORS, per_profile
from search_engine.latency_meter import LatencyMeter, Workload
from search_space.arch import Arch
from search_space.config import HardwareProfile
from search_space.objectives import Metrics
from supernet.calibration import Calibrator
from supernet.data import Split
from supernet import onnx_io
from supernet.model import Supernet


@EVALUATORS.register("latency")
class LatencyEvaluator:
    def __init__(self, supernet: Supernet, profile: HardwareProfile, calibration: Split, bn_batches: int,
                 objective: str = "latency_ms", calibrator: Calibrator | None = None) -> None:
        self.supernet, self.profile, self.objective, self.calibration = supernet, profile, objective, calibration
        # Shared with the accuracy evaluator (same supernet, batches): an arch is recalibrated once.
        self.calibrator = calibrator or Calibrator(supernet, calibration, bn_batches)
        self.provides = (objective,)
        self.meter = LatencyMeter(profile)

    def evaluate(self, archs: Sequence[Arch]) -> list[Metrics]:
        """All ``archs`` timed together, interleaved (see ``search_engine.latency_meter``): the local
        runner asks for a search's batch, a Ray worker for one arch, validation for the front and its
        baselines."""
        start = time.perf_counter()
        workloads = [self._workload(arch) for arch in archs]
        timed = self.meter.measure_many(workloads)
        seconds = (time.perf_counter() - start) / max(len(archs), 1)
        return [Metrics({self.objective: timing.best_ms}, seconds,
                        per_profile({**meta, "median_call_ms": timing.median_ms}, self.objective))
                for timing, meta in timed]

    def _workload(self, arch: Arch) -> Workload:
        net = self.supernet
        if self.meter.float_parts(net.space, arch) == onnx_io.ALL_FLOAT:
            return self.meter.subnet_workload(net.extract(arch, simulate_activations=False).eval(), net.space, arch)
        # The int8 model computes what the accuracy objective measured: BatchNorm statistics and
        # activation ranges recalibrated for this subnet. Float timing does not depend on them.
        with self.calibrator(arch):
            ranges = net.extract(arch).activation_ranges()
            model = net.extract(arch, simulate_activations=False).eval()
        images = self.calibration.images[:self.profile.calibration_images].numpy()
        return self.meter.subnet_workload(model, net.space, arch, images, ranges)
