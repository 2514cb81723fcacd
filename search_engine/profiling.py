"""``hynas profile``: measure every distinct layer of a space once on this machine and write a
latency lookup table, then its frame costs and scales.

Layers are timed in chunks, interleaved (see ``search_engine.latency_meter``), and the table is
rewritten (atomically) after each chunk; ``resume`` skips the layers it already holds. Each layer is
stored net of the cost of calling a model with its input shape (measured on a no-op model). The
frame every subnet runs (stem, pooling, classifier) is measured at each pair of stem and head
precisions a subnet can give it (``HybridSpace.frame_int8``); the scales, one per kind of layer
(``predictors.lut.layer_kind``), are fitted on ``fit_archs`` whole subnets (the largest, the
smallest and random ones drawn with ``seed``); the error on those subnets is recorded.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares
from tqdm import tqdm

from predictors.lut import LatencyTable, frame_kind, space_fingerprint
from search_engine.latency_meter import LatencyMeter, Workload, machine_info
from search_space.config import HardwareProfile
from search_space.costs import LayerConfig, space_layer_configs
from search_space.errors import ConfigError
from search_space.hybrid import HybridSpace
from search_space.schema import to_plain
from supernet.blocks import standalone_layer
from supernet.onnx_io import ALL_FLOAT, frame_float_prefixes
from supernet.model import Supernet

log = logging.getLogger("hynas.profile")
LAYERS_PER_CHUNK = 24  # timed together and saved together: an interruption costs one chunk (about 5 s)


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0  # an exportable no-op: the cost of a call with this input


def distinct_layers(space: HybridSpace, profile: HardwareProfile) -> dict[str, tuple[LayerConfig, bool]]:
    """Latency key -> (a layer configuration with that key, whether it runs in int8)."""
    out: dict[str, tuple[LayerConfig, bool]] = {}
    for cfg in space_layer_configs(space):
        int8 = profile.runs_int8(cfg.layer.wbits, cfg.layer.abits)
        out.setdefault(cfg.latency_key(int8), (cfg, int8))
    return out


def _hardware(profile: HardwareProfile) -> dict:
    return {k: v for k, v in to_plain(profile).items() if k not in ("lut", "node")}


def _start_table(space: HybridSpace, profile: HardwareProfile, out: Path, resume: bool) -> LatencyTable:
    fresh = LatencyTable(space.name, space_fingerprint(space), _hardware(profile), machine_info())
    if not resume or not out.exists():
        return fresh
    old = LatencyTable.load(out, space, unfinished=True)
    if dict(old.hardware) != fresh.hardware:
        raise ConfigError(f"{out}: was profiled with other settings ({old.hardware}); use --force to start over")
    return old


class _Frame(torch.nn.Module):
    """What every subnet runs besides its searchable layers: stem, global pooling and classifier."""

    def __init__(self, space: HybridSpace) -> None:
        super().__init__()
        stem = space.stem
        self.stem = torch.nn.Conv2d(space.input.channels, stem.channels, stem.kernel, stem.stride, stem.kernel // 2)
        self.head = torch.nn.Linear(stem.channels, space.input.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(x)).mean(dim=(2, 3)))


def _frame_workloads(meter: LatencyMeter, space: HybridSpace) -> dict[str, Workload]:
    """Per ``frame_kind`` the profile allows, a subnet with no searchable layer at those precisions:
    the table's frame costs are measured, not fitted."""
    bits = space.quantization.stem_head_bits
    shape = (space.input.channels, space.input.size, space.input.size)
    pairs = [(s, h) for s in (False, True) for h in (False, True)] if meter.profile.runs_int8(bits, bits) \
        else [(False, False)]
    out = {}
    for stem_int8, head_int8 in pairs:
        floats = frame_float_prefixes(stem_int8, head_int8)
        out[frame_kind(stem_int8, head_int8)] = Workload(_Frame(space).eval(), shape,
                                                         ALL_FLOAT if len(floats) == 2 else tuple(floats))
    return out


def profile_space(space: HybridSpace, profile: HardwareProfile, out: Path, resume: bool = False, seed: int = 0,
                  fit_archs: int = 40, progress: bool = True) -> LatencyTable:
    torch.manual_seed(seed)
    table = _start_table(space, profile, out, resume)
    meter = LatencyMeter(profile)
    layers = dict(table.layers)
    todo = {k: v for k, v in distinct_layers(space, profile).items() if k not in layers}
    log.info("profiling %d layer configurations of space %s on %s (%s, %d thread(s), batch %d)%s", len(todo),
             space.name, table.machine["host"], profile.backend, profile.threads, profile.batch_size,
             f"; {len(layers)} already in {out}" if layers else "")
    shapes = sorted({(cfg.c_in, cfg.size_in) for cfg, _ in todo.values()})
    calls = meter.measure_many([Workload(_Identity(), (c, size, size)) for c, size in shapes])
    # What one call costs whatever it runs (session, copies) is paid once per subnet, not per layer.
    call_cost = {shape: timing.best_ms for shape, (timing, _) in zip(shapes, calls)}
    keys = list(todo)
    with tqdm(total=len(keys), desc="layers", unit="layer", disable=not progress) as bar:
        for first in range(0, len(keys), LAYERS_PER_CHUNK):
            chunk = [todo[key] for key in keys[first:first + LAYERS_PER_CHUNK]]
            timings = meter.measure_many([Workload(standalone_layer(cfg), (cfg.c_in, cfg.size_in, cfg.size_in),
                                                   () if int8 else ALL_FLOAT) for cfg, int8 in chunk])
            for key, (cfg, _), (timing, _) in zip(keys[first:], chunk, timings):
                layers[key] = max(0.0, timing.best_ms - call_cost[(cfg.c_in, cfg.size_in)])
            replace(table, layers=dict(layers)).save(out)
            bar.update(len(chunk))
    table = replace(table, layers=layers)
    table.save(out)
    if table.complete and not todo:
        return table
    rng = np.random.default_rng(seed)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(max(0, fit_archs - 2))]
    net = Supernet(space).eval()
    frames = _frame_workloads(meter, space)
    log.info("timing %d whole subnets and %d frames together to fit the scales", len(archs), len(frames))
    workloads = [meter.subnet_workload(net.extract(arch, simulate_activations=False), space, arch) for arch in archs]
    timings = [timing.best_ms for timing, _ in meter.measure_many(workloads + list(frames.values()))]
    measured, frame_ms = np.array(timings[:len(archs)]), dict(zip(frames, timings[len(archs):]))
    sums = [table.layer_sums(space, arch, profile.runs_int8) for arch in archs]
    scales = fit_scales(sums, measured, np.array([frame_ms[frame_kind(*space.frame_int8(arch, profile.runs_int8))]
                                                  for arch in archs]))
    table = replace(table, frame_ms=frame_ms, scales=scales)
    error = np.abs([table.predict(space, arch, profile.runs_int8) for arch in archs] - measured) / measured
    table = replace(table, fit={"archs": len(archs), "median_abs_error": float(np.median(error)),
                                "max_abs_error": float(error.max())})
    table.save(out)
    log.info("latency table %s: %d layers, frames %s ms, scales %s, median error %.1f %% on %d subnets", out,
             len(layers), ", ".join(f"{k} {v:.3f}" for k, v in sorted(frame_ms.items())),
             ", ".join(f"{k} {v:.2f}" for k, v in sorted(scales.items())), 100 * table.fit["median_abs_error"],
             len(archs))
    return table


def fit_scales(sums: list[dict[str, float]], measured: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """One scale per layer kind such that ``frame + sum of scale x kind's summed layers`` matches the
    measured subnets in relative terms. Each subnet's frame is measured (the frame alone), not fitted; a
    soft-L1 loss keeps one disturbed timing from pulling the scales; they stay positive."""
    kinds = sorted({kind for s in sums for kind in s})
    X = np.array([[s.get(kind, 0.0) for kind in kinds] for s in sums])

    def relative_error(scales: np.ndarray) -> np.ndarray:
        return (frames + X @ scales - measured) / measured

    fitted = least_squares(relative_error, np.ones(len(kinds)), bounds=(1e-3, np.inf), loss="soft_l1", f_scale=0.05)
    return {kind: float(v) for kind, v in zip(kinds, fitted.x)}
