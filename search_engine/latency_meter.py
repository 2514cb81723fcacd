"""Timing torch modules the way a hardware profile says: backend, threads, batch size, precision.

Used for whole subnets (the ``latency_ms`` evaluator) and single layers (``hynas profile``), so both
are measured by one protocol: fixed thread count, warm-up calls, then ``rounds`` rounds in which each
model is called for ``round_ms`` (at least ``MIN_CALLS`` times); the latency is the fastest call. ONNX Runtime
sessions are called with their input and output bound once (``onnx_io.timed_call``).

Why the fastest call, and why rounds (measured on this shared 2-core VM, docs/experiments.md "Objectives on target
hardware"): other tenants slow the machine in stretches of about half a second, during which even the
fastest call is 1.4x slower, and outside them half the calls are still disturbed; the median of a few
dozen calls agreed with a re-measurement of the same model within 10 % for only 15-25 % of 40 subnets.
The fastest call of a stretch that escaped the disturbance is the model's own cost, and interleaving
several models round by round spreads each one's calls over the whole measurement, so that one
disturbed stretch cannot hold all of them: 8 rounds of 25 ms agreed within 10 % for 40 of 40, and 6
rounds of 20 ms (the default) for 97 of 100 (benchmarks/latency_lut.py). A model measured alone
(a Ray worker's arch) has no others to interleave with; its rounds run back to back. Measured latency
still varies between runs and machines: the same seed gives the same protocol, not the same numbers.
"""
from __future__ import annotations

import contextlib
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from search_space.arch import Arch
from search_space.config import HardwareProfile
from search_space.hybrid import HybridSpace
from supernet import onnx_io

MIN_CALLS = 3  # per model and round, however slow the model


@dataclass(frozen=True)
class Timing:
    best_ms: float  # the fastest call: the latency reported
    median_ms: float  # the median call: how much the machine's load added on top


@dataclass(frozen=True, eq=False)
class Workload:
    """``model`` (eval mode) on a batch of ``input_shape`` (without the batch dimension). With
    onnxruntime the nodes under ``float_prefixes`` stay float (``ALL_FLOAT`` matches every node) and the
    rest run in int8, with activation ranges from ``ranges`` (see ``onnx_io.quantize_int8``) or else
    from ``calibration`` images."""

    model: nn.Module
    input_shape: tuple[int, ...]
    float_prefixes: tuple[str, ...] = onnx_io.ALL_FLOAT
    calibration: np.ndarray | None = None
    ranges: Mapping[str, tuple[float, float]] | None = None


def time_interleaved(runs: Sequence[Callable[[], object]], warmup: int, rounds: int, round_ms: float) -> list[Timing]:
    """Time each of ``runs``: ``warmup`` untimed calls each, then ``rounds`` rounds that call each run
    for ``round_ms`` (at least ``MIN_CALLS`` times) in turn."""
    for run in runs:
        for _ in range(warmup):
            run()
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, out in zip(runs, samples):
            calls, end = 0, time.perf_counter() + round_ms / 1000
            while calls < MIN_CALLS or time.perf_counter() < end:
                start = time.perf_counter()
                run()
                out.append((time.perf_counter() - start) * 1000)
                calls += 1
    return [Timing(min(s), statistics.median(s)) for s in samples]


def machine_info() -> dict[str, str]:
    import onnxruntime

    return {"host": socket.gethostname(), "processor": platform.processor() or platform.machine(),
            "system": platform.platform(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


class LatencyMeter:
    def __init__(self, profile: HardwareProfile) -> None:
        self.profile = profile

    def measure_many(self, workloads: Sequence[Workload]) -> list[tuple[Timing, dict]]:
        """Time every workload, interleaved round by round (see the module's docstring); for each, the
        timing and what it was measured with."""
        with tempfile.TemporaryDirectory(prefix="hynas-ort-") as tmp, self._torch_threads():
            prepared = [self._prepare(w, Path(tmp) / str(i)) for i, w in enumerate(workloads)]
            timings = time_interleaved([run for run, _ in prepared], self.profile.warmup, self.profile.rounds,
                                       self.profile.round_ms)
        return [(timing, meta) for timing, (_, meta) in zip(timings, prepared)]

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        if self.profile.backend != "torch":
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.profile.threads)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(previous)

    def _prepare(self, w: Workload, stem: Path) -> tuple[Callable[[], object], dict]:
        """A call that runs ``w`` once, and its metadata. ONNX files go under ``stem``'s folder; a session
        holds its model in memory, so the files may go once this returns."""
        p = self.profile
        x = torch.zeros(p.batch_size, *w.input_shape)
        meta = {"backend": p.backend, "threads": p.threads, "batch_size": p.batch_size, "profile": p.name,
                "host": socket.gethostname()}
        if p.backend == "torch":
            return (lambda: w.model(x)), {**meta, "precision": "fp32"}
        path = onnx_io.export_onnx(w.model, x, stem.with_suffix(".fp32.onnx"))
        all_float = w.float_prefixes == onnx_io.ALL_FLOAT
        if not all_float:
            calibration = w.calibration
            if calibration is None:
                calibration = np.random.default_rng(0).standard_normal((16, *w.input_shape)).astype(np.float32)
            path = onnx_io.quantize_int8(path, stem.with_suffix(".int8.onnx"), calibration, w.float_prefixes, w.ranges)
        session, feed = onnx_io.session(path, p.threads), x.numpy()
        precision = "fp32" if all_float else ("int8" if not w.float_prefixes else "mixed")
        return onnx_io.timed_call(session, feed), {**meta, "precision": precision, "onnx_bytes": path.stat().st_size}

    def float_parts(self, space: HybridSpace, arch: Arch) -> tuple[str, ...]:
        """The node-name prefixes of ``arch``'s extracted subnet that run in float on this profile."""
        return onnx_io.float_prefixes(space, arch, self.profile.runs_int8)

    def subnet_workload(self, model: nn.Module, space: HybridSpace, arch: Arch, calibration: np.ndarray | None = None,
                        ranges: Mapping[str, tuple[float, float]] | None = None) -> Workload:
        """``model``, the extracted subnet of ``arch``, with each layer at the precision its bits allow."""
        return Workload(model, (space.input.channels, space.input.size, space.input.size),
                        self.float_parts(space, arch), calibration, ranges)

    def measure_subnet(self, model: nn.Module, space: HybridSpace, arch: Arch, calibration: np.ndarray | None = None,
                       ranges: Mapping[str, tuple[float, float]] | None = None) -> tuple[Timing, dict]:
        """Time ``model``, the extracted subnet of ``arch``, alone."""
        return self.measure_many([self.subnet_workload(model, space, arch, calibration, ranges)])[0]
