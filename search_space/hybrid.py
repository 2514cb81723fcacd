"""The hybrid conv/attention search space read from YAML, and its genome.

Genome layout (integers, one list per arch), per stage ``s`` then per layer slot::

    [depth_idx, width_idx] + max_depth * [block_idx, kernel_idx, expand_idx, heads_idx, mlp_idx, wbits_idx, abits_idx]

Genes that do not apply (slots beyond the depth, the other block type's dimensions)
are masked: ``decode`` ignores them and ``encode`` writes 0 there, so genomes that
differ only in masked genes decode to the same ``Arch``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from search_space.arch import ALLOWED_BITS, BLOCK_TYPES, Arch, LayerArch, StageArch
from search_space.errors import SearchSpaceError
from search_space.protocol import column_views

LAYER_GENES = ("block", "kernel", "expand", "heads", "mlp_ratio", "wbits", "abits")


def _check_choices(name: str, values: tuple[int, ...], allowed: tuple[int, ...] | None = None) -> None:
    if not values:
        raise SearchSpaceError(f"{name}: the list of choices is empty")
    if len(set(values)) != len(values):
        raise SearchSpaceError(f"{name}: choices {list(values)} repeat a value")
    for v in values:
        if allowed is not None and v not in allowed:
            raise SearchSpaceError(f"{name}: {v} is not allowed; choose from {list(allowed)}")
        if v <= 0:
            raise SearchSpaceError(f"{name}: {v} must be positive")


@dataclass(frozen=True)
class InputSpec:
    channels: int  # image channels (1 for MNIST, 3 for CIFAR-10)
    size: int  # square input side in pixels
    classes: int

    def __post_init__(self) -> None:
        for name in ("channels", "size", "classes"):
            if getattr(self, name) <= 0:
                raise SearchSpaceError(f"{name}: must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class StemSpec:
    channels: int  # output channels of the fixed stem convolution
    stride: int = 2  # downsample early: attention and depthwise convs are far cheaper at 14x14
    kernel: int = 3

    def __post_init__(self) -> None:
        _check_choices("channels", (self.channels,))
        _check_choices("stride", (self.stride,), (1, 2))
        if self.kernel % 2 == 0 or self.kernel <= 0:
            raise SearchSpaceError(f"kernel: {self.kernel} must be a positive odd number")


@dataclass(frozen=True)
class StageSpec:
    """Choices of one stage; every layer of the stage picks from the same lists."""

    depth: tuple[int, ...]
    width: tuple[int, ...]  # channel count of the stage's residual stream
    blocks: tuple[str, ...] = ("conv",)
    kernel: tuple[int, ...] = (3,)
    expand: tuple[int, ...] = (4,)
    heads: tuple[int, ...] = (2,)
    mlp_ratio: tuple[int, ...] = (2,)
    head_dim: int = 8  # channels per attention head; heads * head_dim = attention inner width
    stride: int = 1  # applied by the stage's first layer

    def __post_init__(self) -> None:
        for name in ("depth", "width", "kernel", "expand", "heads", "mlp_ratio"):
            _check_choices(name, getattr(self, name))
        if not self.blocks:
            raise SearchSpaceError("blocks: the list of choices is empty")
        for b in self.blocks:
            if b not in BLOCK_TYPES:
                raise SearchSpaceError(f"blocks: unknown block type {b!r}; allowed: {', '.join(BLOCK_TYPES)}")
        if len(set(self.blocks)) != len(self.blocks):
            raise SearchSpaceError(f"blocks: choices {list(self.blocks)} repeat a value")
        if even := [k for k in self.kernel if k % 2 == 0]:
            raise SearchSpaceError(f"kernel: {even[0]} is even; depthwise kernels must be odd")
        _check_choices("head_dim", (self.head_dim,))
        _check_choices("stride", (self.stride,), (1, 2))

    def choices(self, gene: str) -> tuple:
        if gene == "block":
            return self.blocks
        return getattr(self, gene)


@dataclass(frozen=True)
class QuantSpec:
    weight_bits: tuple[int, ...] = (32,)
    act_bits: tuple[int, ...] = (32,)
    # The fixed stem and classifier stay at this width, as HAQ and APQ keep first and last layers at 8 bits.
    stem_head_bits: int = 8

    def __post_init__(self) -> None:
        _check_choices("weight_bits", self.weight_bits, ALLOWED_BITS)
        _check_choices("act_bits", self.act_bits, ALLOWED_BITS)
        _check_choices("stem_head_bits", (self.stem_head_bits,), ALLOWED_BITS)


@dataclass(frozen=True)
class HybridSpace:
    """A weight-sharing space of conv (MBConv) and attention layers with quantization choices."""

    name: str
    input: InputSpec
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    quantization: QuantSpec = QuantSpec()

    def __post_init__(self) -> None:
        if not self.stages:
            raise SearchSpaceError("stages: a space needs at least one stage")

    # -- sampling and membership -------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random genome, decoded (so deeper stages are as likely as shallow ones)."""
        lower, upper = self.bounds()
        return self.decode(rng.integers(lower, upper + 1))

    def contains(self, arch: object) -> bool:
        return self.mismatch(arch) is None

    def mismatch(self, arch: object) -> str | None:
        """Where ``arch`` leaves this space (the first choice it makes that the space lacks), or None."""
        if not isinstance(arch, Arch) or len(arch.stages) != len(self.stages):
            return f"{len(self.stages)} stages expected"
        q = self.quantization
        for s, (spec, stage) in enumerate(zip(self.stages, arch.stages), start=1):
            choices = {"depth": (stage.depth, spec.depth), "width": (stage.width, spec.width)}
            for i, layer in enumerate(stage.layers, start=1):
                choices |= {f"layer {i} block": (layer.block, spec.blocks),
                            f"layer {i} wbits": (layer.wbits, q.weight_bits),
                            f"layer {i} abits": (layer.abits, q.act_bits)}
                if layer.block == "conv":
                    choices |= {f"layer {i} kernel": (layer.kernel, spec.kernel),
                                f"layer {i} expand": (layer.expand, spec.expand)}
                if layer.block == "attn":
                    choices |= {f"layer {i} heads": (layer.heads, spec.heads),
                                f"layer {i} mlp_ratio": (layer.mlp_ratio, spec.mlp_ratio)}
            for what, (value, allowed) in choices.items():
                if value not in allowed:
                    return f"stage {s} {what} {value!r} is not one of {list(allowed)}"
        return None

    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` or raise ``SearchSpaceError`` saying where it leaves this space."""
        if (where := self.mismatch(arch)) is not None:
            raise SearchSpaceError(f"arch {arch.to_str()!r} is not in space {self.name!r}: {where}")
        return arch

    def arch_from_str(self, text: str) -> Arch:
        return self.validate(Arch.from_str(text))

    # -- genome ---------------------------------------------------------------------
    def _gene_choices(self, spec: StageSpec, gene: str) -> tuple:
        if gene == "wbits":
            return self.quantization.weight_bits
        if gene == "abits":
            return self.quantization.act_bits
        return spec.choices(gene)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer lower and upper bounds of every gene (pymoo style)."""
        upper: list[int] = []
        for spec in self.stages:
            upper += [len(spec.depth) - 1, len(spec.width) - 1]
            upper += [len(self._gene_choices(spec, g)) - 1 for g in LAYER_GENES] * max(spec.depth)
        return np.zeros(len(upper), dtype=np.int64), np.asarray(upper, dtype=np.int64)

    def genes(self) -> dict[str, tuple]:
        """What each gene chooses, in ``bounds`` order, with its choices: ``s1.depth``, ``s1.l0.block`` -> ("conv",
        "attn"), ... A gene's value is the index of its choice. The names and choices are the parameters of the
        Optuna study, so that a dashboard shows ``s1.l0.block: attn`` and its importances say what mattered."""
        genes: dict[str, tuple] = {}
        for i, spec in enumerate(self.stages):
            genes[f"s{i}.depth"], genes[f"s{i}.width"] = spec.depth, spec.width
            for slot in range(max(spec.depth)):
                genes.update({f"s{i}.l{slot}.{g}": self._gene_choices(spec, g) for g in LAYER_GENES})
        return genes

    def decode(self, genes) -> Arch:
        genes = [int(g) for g in genes]
        lower, upper = self.bounds()
        if len(genes) != len(upper) or any(g < lo or g > up for g, lo, up in zip(genes, lower, upper)):
            raise SearchSpaceError(f"genome {genes} does not fit space {self.name!r} (bounds {upper.tolist()})")
        pos, stages = 0, []
        for spec in self.stages:
            depth, width = spec.depth[genes[pos]], spec.width[genes[pos + 1]]
            pos += 2
            layers = []
            for slot in range(max(spec.depth)):
                values = {g: self._gene_choices(spec, g)[genes[pos + i]] for i, g in enumerate(LAYER_GENES)}
                pos += len(LAYER_GENES)
                if slot < depth:
                    layers.append(_layer_from_values(values))
            stages.append(StageArch(width, tuple(layers)))
        return Arch(tuple(stages))

    def encode(self, arch: Arch) -> np.ndarray:
        self.validate(arch)
        genes: list[int] = []
        for spec, stage in zip(self.stages, arch.stages):
            genes += [spec.depth.index(stage.depth), spec.width.index(stage.width)]
            for slot in range(max(spec.depth)):
                if slot >= stage.depth:
                    genes += [0] * len(LAYER_GENES)
                    continue
                layer = stage.layers[slot]
                for g in LAYER_GENES:
                    value = getattr(layer, g)
                    applies = g in ("block", "wbits", "abits") or value != 0
                    genes.append(self._gene_choices(spec, g).index(value) if applies else 0)
        return np.asarray(genes, dtype=np.int64)

    # -- extremes and counting --------------------------------------------------
    def _extreme_layer(self, spec: StageSpec, block: str, pick) -> LayerArch:
        """A layer of ``block`` with ``pick`` (max or min) of each of its choices and of the bit-widths."""
        q = self.quantization
        bits = {"wbits": pick(q.weight_bits), "abits": pick(q.act_bits)}
        if block == "conv":
            return LayerArch("conv", kernel=pick(spec.kernel), expand=pick(spec.expand), **bits)
        return LayerArch("attn", heads=pick(spec.heads), mlp_ratio=pick(spec.mlp_ratio), **bits)

    def _extreme(self, pick) -> Arch:
        """Every stage at ``pick`` (max or min) of each choice; per stage the block type whose
        layer has the most (or fewest) parameters there, since that differs across spaces."""
        from search_space.costs import arch_costs

        stages = [StageArch(pick(s.width), (self._extreme_layer(s, s.blocks[0], pick),) * pick(s.depth))
                  for s in self.stages]
        for i, spec in enumerate(self.stages):
            candidates = []
            for block in spec.blocks:
                trial = list(stages)
                trial[i] = StageArch(stages[i].width, (self._extreme_layer(spec, block, pick),) * stages[i].depth)
                candidates.append(Arch(tuple(trial)))
            stages = list(pick(candidates, key=lambda a: arch_costs(self, a).params).stages)
        return Arch(tuple(stages))

    def largest(self) -> Arch:
        """Every dimension at its maximum, at the widest bit-widths (the first distillation teacher)."""
        return self._extreme(max)

    def largest_of_each_block(self) -> list[Arch]:
        """The largest arch, then for each block type, the largest arch built of it wherever a stage
        offers it (duplicates dropped): the sandwich's teachers. ``largest`` picks one block type per
        stage, so the other type's branches would never be trained at full size; their subnets then
        inherit weights trained only in random archs and rank too low (docs/experiments.md, Supernet)."""
        largest = self.largest()
        blocks = dict.fromkeys(block for spec in self.stages for block in spec.blocks)
        archs = [largest]
        for block in blocks:
            archs.append(Arch(tuple(
                StageArch(stage.width, (self._extreme_layer(spec, block, max),) * stage.depth)
                if block in spec.blocks else stage for spec, stage in zip(self.stages, largest.stages))))
        return list(dict.fromkeys(archs))

    def smallest(self) -> Arch:
        """Every dimension at its minimum, at the lowest bit-widths."""
        return self._extreme(min)

    def uniform_int8(self, arch: Arch) -> Arch | None:
        """``arch`` with every layer at 8-bit weights and activations (None if the space has no 8 bits)."""
        q = self.quantization
        if 8 not in q.weight_bits or 8 not in q.act_bits:
            return None
        return Arch(tuple(StageArch(stage.width, tuple(replace(layer, wbits=8, abits=8) for layer in stage.layers))
                          for stage in arch.stages))

    def frame_int8(self, arch: Arch, runs_int8: Callable[[int, int], bool]) -> tuple[bool, bool]:
        """Whether the stem and the head of ``arch`` run in int8, where ``runs_int8(weight bits,
        activation bits)`` says which layers do: each only where its bits allow it and the layer next
        to it runs in int8 too. An int8 stem or head beside float layers is an island that pays
        quantize, dequantize and layout changes around one small op (measured on ONNX Runtime: about
        0.01 ms per subnet, up to 1.7x the latency of a small float subnet; docs/experiments.md); run in float, it
        computes the same 8-bit weights with finer activations, as every layer does on a profile
        without int8."""
        bits = self.quantization.stem_head_bits
        layers = arch.layers()
        allowed = runs_int8(bits, bits)
        return (allowed and runs_int8(layers[0].wbits, layers[0].abits),
                allowed and runs_int8(layers[-1].wbits, layers[-1].abits))

    def anchors(self) -> list[Arch]:
        """What a search measures first: the largest arch, the same at uniform int8 (the deployment a
        mixed-precision search has to beat, and SimQ-NAS's comparison point) and the smallest. Random
        samples almost never hit them, and a front that holds them covers both ends and dominates
        the plain int8 model."""
        largest = self.largest()
        return list(dict.fromkeys(a for a in (largest, self.uniform_int8(largest), self.smallest()) if a))

    def size(self) -> int:
        """The exact number of distinct archs (masked genes counted once)."""
        q = self.quantization
        bits = len(q.weight_bits) * len(q.act_bits)
        total = 1
        for spec in self.stages:
            per_layer = bits * (
                ("conv" in spec.blocks) * len(spec.kernel) * len(spec.expand)
                + ("attn" in spec.blocks) * len(spec.heads) * len(spec.mlp_ratio)
            )
            total *= len(spec.width) * sum(per_layer**d for d in spec.depth)
        return total

    # -- features for predictors ---------------------------------------------------
    def feature_parts(self, arch: Arch) -> dict[str, np.ndarray]:
        """An arch's predictor features in named parts (the views of ``feature_views``):

        - ``choices``: per stage its depth and width, per layer slot whether it runs, its block
          type, kernel, expand ratio, heads, MLP ratio and bit-widths (0 where they do not apply);
        - ``analytic-costs``: log10 of parameters, MACs, bit-operations and size, which rank
          latency and size well on their own.
        """
        from search_space.costs import arch_costs

        choices: list[float] = []
        for spec, stage in zip(self.stages, arch.stages):
            choices += [_ordinal(spec.depth, stage.depth), _ordinal(spec.width, stage.width)]
            for slot in range(max(spec.depth)):
                if slot >= stage.depth:
                    choices += [0.0] * 8
                    continue
                layer = stage.layers[slot]
                conv = layer.block == "conv"
                choices += [
                    1.0,
                    0.0 if conv else 1.0,
                    _ordinal(spec.kernel, layer.kernel) if conv else 0.0,
                    _ordinal(spec.expand, layer.expand) if conv else 0.0,
                    0.0 if conv else _ordinal(spec.heads, layer.heads),
                    0.0 if conv else _ordinal(spec.mlp_ratio, layer.mlp_ratio),
                    math.log2(layer.wbits) / 5.0,
                    math.log2(layer.abits) / 5.0,
                ]
        costs = arch_costs(self, arch)
        return {"choices": np.asarray(choices, dtype=np.float64),
                "analytic-costs": np.log10([costs.params, costs.macs, costs.bitops, costs.size_mb])}

    def features(self, arch: Arch) -> np.ndarray:
        """The parts of ``feature_parts`` end to end."""
        return np.concatenate(list(self.feature_parts(arch).values()))

    def feature_views(self) -> dict[str, np.ndarray]:
        """Each part of ``feature_parts`` as the columns it fills in ``features``."""
        return column_views(self.feature_parts(self.smallest()))

    def describe(self, arch: Arch) -> str:
        return arch.to_str()

    def network(self, arch: Arch) -> Arch:
        """The arch itself: genomes that differ only in masked layers already decode to one ``Arch``."""
        return arch


def _ordinal(choices: tuple[int, ...], value: int) -> float:
    """Position of ``value`` in the sorted choices, scaled to (0, 1]; 1.0 for a pinned choice."""
    ranked = sorted(choices)
    return (ranked.index(value) + 1) / len(ranked)


def _layer_from_values(values: dict) -> LayerArch:
    if values["block"] == "conv":
        return LayerArch("conv", kernel=values["kernel"], expand=values["expand"],
                         wbits=values["wbits"], abits=values["abits"])
    return LayerArch("attn", heads=values["heads"], mlp_ratio=values["mlp_ratio"],
                     wbits=values["wbits"], abits=values["abits"])
