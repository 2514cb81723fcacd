"""Timing a torch module the way a hardware profile says: backend, threads, batch size, precision.

Used for whole subnets (the ``latency_ms`` evaluator) and single layers (``hynas profile``), so
both are measured by one protocol: fixed thread count, warm-up runs, then the median of ``repeats``
timed runs, with the interquartile range as the spread. Measured latency varies from run to run
and machine to machine: the same seed gives the same protocol, not the same numbers.
"""
from __future__ import annotations

import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from search_space.arch import Arch
from search_space.config import HardwareProfile
from search_space.hybrid import HybridSpace
from supernet import onnx_io


@dataclass(frozen=True)
class Timing:
    median_ms: float
    spread_ms: float  # interquartile range of the timed runs


def time_ms(run: Callable[[], object], warmup: int, repeats: int, blocks: int = 3) -> Timing:
    """The lowest of the medians of ``blocks`` consecutive blocks of timed calls, and the interquartile
    range of all of them. On a shared (virtual) machine, other tenants slow whole stretches of tens
    to hundreds of ms; the lowest block median is the least disturbed estimate of the model's own cost."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(max(repeats, blocks)):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    medians = [statistics.median(block) for block in np.array_split(np.array(samples), blocks)]
    q1, q3 = np.percentile(samples, [25, 75])
    return Timing(float(min(medians)), float(q3 - q1))


def machine_info() -> dict[str, str]:
    import onnxruntime

    return {"host": socket.gethostname(), "processor": platform.processor() or platform.machine(),
            "system": platform.platform(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


class LatencyMeter:
    def __init__(self, profile: HardwareProfile) -> None:
        self.profile = profile

    def measure(self, model: nn.Module, input_shape: Sequence[int], float_prefixes: Sequence[str] = onnx_io.ALL_FLOAT,
                calibration: np.ndarray | None = None, ranges: Mapping[str, tuple[float, float]] | None = None,
                ) -> tuple[Timing, dict]:
        """Time ``model`` (eval mode) on a batch of ``input_shape`` (without the batch dimension).

        onnxruntime: the nodes under ``float_prefixes`` stay float (the default ``ALL_FLOAT`` matches every
        node); the rest run in int8, with activation ranges from ``ranges`` (see
        ``onnx_io.quantize_int8``) or else from ``calibration`` images."""
        p = self.profile
        x = torch.zeros(p.batch_size, *input_shape)
        meta = {"backend": p.backend, "threads": p.threads, "batch_size": p.batch_size, "profile": p.name,
                "host": socket.gethostname()}
        if p.backend == "torch":
            previous = torch.get_num_threads()
            torch.set_num_threads(p.threads)
            try:
                with torch.inference_mode():
                    return time_ms(lambda: model(x), p.warmup, p.repeats), {**meta, "precision": "fp32"}
            finally:
                torch.set_num_threads(previous)
        with tempfile.TemporaryDirectory(prefix="hynas-ort-") as tmp:
            path = onnx_io.export_onnx(model, x, Path(tmp) / "fp32.onnx")
            all_float = tuple(float_prefixes) == onnx_io.ALL_FLOAT
            if not all_float:
                if calibration is None:
                    calibration = np.random.default_rng(0).standard_normal((16, *input_shape)).astype(np.float32)
                path = onnx_io.quantize_int8(path, Path(tmp) / "int8.onnx", calibration, float_prefixes, ranges)
            feed = x.numpy()
            # Measured here: the same model runs at one of two speeds (up to 2x apart) depending on the
            # session it was loaded into, and a session keeps its speed; the fastest of a few is stable.
            timing = min((time_ms(lambda: onnx_io.run(sess, feed), p.warmup, p.repeats)
                          for sess in (onnx_io.session(path, p.threads) for _ in range(p.sessions))),
                         key=lambda t: t.median_ms)
            precision = "fp32" if all_float else ("int8" if not float_prefixes else "mixed")
            return timing, {**meta, "precision": precision, "onnx_bytes": path.stat().st_size}

    def float_parts(self, space: HybridSpace, arch: Arch) -> tuple[str, ...]:
        """The node-name prefixes of ``arch``'s extracted subnet that run in float on this profile."""
        return onnx_io.float_prefixes(arch, space.quantization.stem_head_bits, self.profile.runs_int8)

    def measure_subnet(self, model: nn.Module, space: HybridSpace, arch: Arch, calibration: np.ndarray | None = None,
                       ranges: Mapping[str, tuple[float, float]] | None = None) -> tuple[Timing, dict]:
        """Time ``model``, the extracted subnet of ``arch``, each layer at the precision its bits allow."""
        return self.measure(model, (space.input.channels, space.input.size, space.input.size),
                            self.float_parts(space, arch), calibration, ranges)
