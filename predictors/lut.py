"""Latency lookup tables: a subnet's latency predicted from the sum of its layers' profiled latencies,
plus the measured cost of the frame every subnet runs (stem, head, call) at the precisions the subnet
runs them in, with one scale per kind of layer fitted on whole subnets (the nn-Meter approach, at
layer granularity).

Why a scale per kind (block type x execution precision): a layer timed alone pays for entering and
leaving its runtime's layout (ONNX Runtime runs int8 convolutions in NHWC behind transposes, float
ones in blocked NCHWc behind reorders), which a run of layers of its kind in a subnet pays once;
measured, int8 conv layers cost 0.45-0.55x their isolated time in a subnet, float ones 1.0-1.2x (they
break the int8 layout around them). Fitted on 40 subnets, one scale for all put 38 % of 260 others
within 10 % of their measured latency, one per kind 84 % (docs/experiments.md, "Objectives on target hardware").

A table is profiled once on the target (``hynas profile``) and travels as a JSON file; searching
with it needs neither the device nor torch. It is tied to one space: its fingerprint is checked.
Layers are keyed by ``LayerConfig.latency_key``: shape, block choice and execution precision.
"""
from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space.arch import Arch
from search_space.costs import layer_configs
from search_space.errors import ConfigError
from search_space.files import atomic_write_text
from search_space.hybrid import HybridSpace
from search_space.schema import to_plain

# /1 had one scale, and its int8 layers were timed with the artefact ``onnx_io.unshare_initializers`` removes;
# /2 one constant, for a stem and head always in int8 (before ``HybridSpace.frame_int8``); /3 timed attention
# layers with run-time shape arithmetic and every call through ``session.run`` (before ``onnx_io.timed_call``)
# /4 timed int8 layers with their fake quantization exported as float arithmetic (session 26)
FORMAT = "hynas-latency-lut/5"


def layer_kind(block: str, int8: bool) -> str:
    """The group of layers that share a scale: ``conv_int8``, ``attn_float``, ..."""
    return f"{block}_{'int8' if int8 else 'float'}"


def frame_kind(stem_int8: bool, head_int8: bool) -> str:
    """The key of ``LatencyTable.frame_ms`` for a stem and head at these precisions."""
    return f"stem_{'int8' if stem_int8 else 'float'}+head_{'int8' if head_int8 else 'float'}"


def space_fingerprint(space: HybridSpace) -> str:
    """A short hash of everything that defines the space's layers and shapes."""
    return hashlib.sha256(json.dumps(to_plain(space), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LatencyTable:
    space: str
    fingerprint: str
    hardware: Mapping[str, Any]  # the profile's settings (backend, threads, batch size, int8, ...)
    machine: Mapping[str, str]  # where it was profiled: host, processor, library versions
    layers: Mapping[str, float] = field(default_factory=dict)  # latency key -> median ms
    # per ``frame_kind``: the measured stem, head, pooling and per-call overhead; empty until profiled
    frame_ms: Mapping[str, float] = field(default_factory=dict)
    scales: Mapping[str, float] = field(default_factory=dict)  # per ``layer_kind``, fitted; a kind not fitted: 1
    fit: Mapping[str, float] = field(default_factory=dict)  # how the scales were fitted, and their error

    @property
    def complete(self) -> bool:
        return bool(self.frame_ms)

    def layer_sums(self, space: HybridSpace, arch: Arch, runs_int8: Callable[[int, int], bool]) -> dict[str, float]:
        """The profiled latencies of ``arch``'s layers summed per ``layer_kind``."""
        sums: dict[str, float] = {}
        for cfg in layer_configs(space, arch):
            int8 = runs_int8(cfg.layer.wbits, cfg.layer.abits)
            key = cfg.latency_key(int8)
            if key not in self.layers:
                raise ConfigError(f"latency table of space {self.space!r} has no entry for layer {key}; "
                                  "profile again with `hynas profile --resume`")
            kind = layer_kind(cfg.layer.block, int8)
            sums[kind] = sums.get(kind, 0.0) + self.layers[key]
        return sums

    def predict(self, space: HybridSpace, arch: Arch, runs_int8: Callable[[int, int], bool]) -> float:
        if not self.complete:
            raise ConfigError(f"latency table of space {self.space!r} is incomplete (profiling stopped before the "
                              "frame was measured); finish it with `hynas profile --resume`")
        sums = self.layer_sums(space, arch, runs_int8)
        return self.frame(space, arch, runs_int8) + sum(self.scales.get(kind, 1.0) * sums[kind] for kind in sums)

    def frame(self, space: HybridSpace, arch: Arch, runs_int8: Callable[[int, int], bool]) -> float:
        """The measured cost of ``arch``'s stem, head and call, at the precisions it runs them in."""
        return self.frame_ms[frame_kind(*space.frame_int8(arch, runs_int8))]

    def save(self, path: Path) -> None:
        data = {"format": FORMAT, "space": self.space, "fingerprint": self.fingerprint, "hardware": dict(self.hardware),
                "machine": dict(self.machine), "frame_ms": dict(self.frame_ms), "scales": dict(self.scales),
                "fit": dict(self.fit),
                "layers": dict(sorted(self.layers.items()))}
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path, space: HybridSpace | None = None, unfinished: bool = False) -> LatencyTable:
        """Read a table; with ``space``, refuse a table profiled for another space; unless ``unfinished`` (for
        profiling to go on with it), refuse one whose profiling stopped before it could predict."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: latency table not found; make one with "
                              f"`hynas profile --out {shlex.quote(str(path))}`")
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            table = cls(space=str(data["space"]), fingerprint=str(data["fingerprint"]), hardware=data["hardware"],
                        machine=data["machine"], layers={str(k): float(v) for k, v in data["layers"].items()},
                        frame_ms={str(k): float(v) for k, v in data["frame_ms"].items()},
                        scales={str(k): float(v) for k, v in data.get("scales", {}).items()},
                        fit={str(k): float(v) for k, v in data.get("fit", {}).items()})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"{path}: not a readable latency table ({e}); make it again with `hynas profile`") \
                from None
        if space is not None and table.fingerprint != space_fingerprint(space):
            raise ConfigError(f"{path}: latency table was profiled for space {table.space!r} "
                              f"(fingerprint {table.fingerprint}), not for this space {space.name!r} "
                              f"({space_fingerprint(space)}); profile this space with `hynas profile`")
        if not (unfinished or table.complete):
            raise ConfigError(f"{path}: latency table is incomplete (profiling stopped after {len(table.layers)} "
                              f"layer configurations, before the frame was measured); finish it with `hynas profile "
                              f"--space {table.space} --hardware {table.hardware.get('name')} "
                              f"--out {shlex.quote(str(path))} --resume`")
        return table
