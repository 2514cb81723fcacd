"""Analytic costs of a hybrid arch, without torch: parameters, MACs, BitOps, bytes.

What is counted (the supernet's extracted modules match it exactly, tested):

* parameters: every trainable tensor: conv/linear weights and biases, BatchNorm and
  LayerNorm weight and bias (running statistics are buffers, not parameters).
* MACs: multiply-accumulates of convolutions, linear layers and the two attention
  matmuls (Q K^T and A V) at batch size 1; no MACs for norms, activations, pooling, adds.
* BitOps: MACs x weight bits x activation bits per layer; the attention matmuls
  multiply two activations, so they count activation bits squared.
* bytes: conv/linear weights at their layer's weight bits, every other parameter
  (biases, norm affine) at 32 bits. ``size_mb`` = bytes / 1e6.

The stem and the classifier run at ``quantization.stem_head_bits``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import product

from search_space.arch import Arch, LayerArch
from search_space.hybrid import HybridSpace, StageSpec


def conv_out(size: int, stride: int) -> int:
    """Output side of an odd-kernel 'same'-padded conv or pool with this stride."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class LayerConfig:
    """Everything that fixes one layer's cost and latency: the key of a latency lookup table."""

    layer: LayerArch
    c_in: int
    c_out: int
    stride: int
    size_in: int
    head_dim: int

    @property
    def size_out(self) -> int:
        return conv_out(self.size_in, self.stride)

    def key(self) -> str:
        return f"{self.layer.to_str()}_i{self.c_in}_o{self.c_out}_s{self.stride}_r{self.size_in}_d{self.head_dim}"

    def latency_key(self, int8: bool) -> str:
        """The key of a latency lookup table: bit-widths matter to latency only as the precision the
        layer executes in (int8 or float), so they are replaced by w8a8 or w32a32."""
        bits = 8 if int8 else 32
        return replace(self, layer=replace(self.layer, wbits=bits, abits=bits)).key()


@dataclass(frozen=True)
class Costs:
    params: int
    macs: int
    bitops: int
    size_mb: float

    def as_dict(self) -> dict[str, float]:
        return {"params": self.params, "macs": self.macs, "bitops": self.bitops, "size_mb": self.size_mb}


@dataclass(frozen=True)
class _Tally:
    """Parts of a cost: quantized weights, other params, weight MACs, activation-activation MACs."""

    weights: int = 0
    other: int = 0
    macs: int = 0
    act_macs: int = 0

    def __add__(self, o: _Tally) -> _Tally:
        return _Tally(self.weights + o.weights, self.other + o.other, self.macs + o.macs, self.act_macs + o.act_macs)


def layer_configs(space: HybridSpace, arch: Arch) -> Iterator[LayerConfig]:
    """The searchable layers of ``arch`` with their input shapes, in forward order."""
    c_in = space.stem.channels
    size = conv_out(space.input.size, space.stem.stride)
    for spec, stage in zip(space.stages, arch.stages):
        for i, layer in enumerate(stage.layers):
            stride = spec.stride if i == 0 else 1
            cfg = LayerConfig(layer, c_in, stage.width, stride, size, spec.head_dim)
            yield cfg
            c_in, size = stage.width, cfg.size_out


def stage_layer_choices(spec: StageSpec, weight_bits, act_bits) -> list[LayerArch]:
    """Every layer a stage of this spec can hold."""
    out = []
    for block, wb, ab in product(spec.blocks, weight_bits, act_bits):
        if block == "conv":
            out += [LayerArch("conv", kernel=k, expand=e, wbits=wb, abits=ab)
                    for k, e in product(spec.kernel, spec.expand)]
        else:
            out += [LayerArch("attn", heads=h, mlp_ratio=m, wbits=wb, abits=ab)
                    for h, m in product(spec.heads, spec.mlp_ratio)]
    return out


def space_layer_configs(space: HybridSpace) -> list[LayerConfig]:
    """Every distinct layer configuration (layer choice and input shape) any arch of ``space`` contains."""
    configs: dict[str, LayerConfig] = {}
    c_ins = (space.stem.channels,)
    size = conv_out(space.input.size, space.stem.stride)
    q = space.quantization
    for spec in space.stages:
        layers = stage_layer_choices(spec, q.weight_bits, q.act_bits)
        first = [LayerConfig(layer, c_in, width, spec.stride, size, spec.head_dim)
                 for layer, c_in, width in product(layers, c_ins, spec.width)]
        size = conv_out(size, spec.stride)
        later = [LayerConfig(layer, width, width, 1, size, spec.head_dim)
                 for layer, width in product(layers, spec.width)] if max(spec.depth) > 1 else []
        for cfg in first + later:
            configs.setdefault(cfg.key(), cfg)
        c_ins = spec.width
    return list(configs.values())


def _conv_tally(cfg: LayerConfig) -> _Tally:
    hidden = cfg.c_in * cfg.layer.expand
    k, s_in, s_out = cfg.layer.kernel, cfg.size_in**2, cfg.size_out**2
    expand = _Tally(cfg.c_in * hidden, 2 * hidden, s_in * cfg.c_in * hidden)
    depthwise = _Tally(hidden * k * k, 2 * hidden, s_out * hidden * k * k)
    project = _Tally(hidden * cfg.c_out, 2 * cfg.c_out, s_out * hidden * cfg.c_out)
    return expand + depthwise + project


def _attn_tally(cfg: LayerConfig) -> _Tally:
    c, tokens = cfg.c_out, cfg.size_out**2
    inner, hidden = cfg.layer.heads * cfg.head_dim, c * cfg.layer.mlp_ratio
    total = _Tally()
    if cfg.c_in != cfg.c_out:  # 1x1 conv + BN after the (parameter-free) strided pooling
        total += _Tally(cfg.c_in * c, 2 * c, tokens * cfg.c_in * c)
    total += _Tally(9 * c, c, tokens * 9 * c)  # depthwise 3x3 positional conv with bias
    total += _Tally(0, 2 * c)  # LayerNorm before attention
    total += _Tally(3 * inner * c, 3 * inner, tokens * c * 3 * inner)  # qkv
    total += _Tally(0, 0, 0, 2 * tokens * tokens * inner)  # Q K^T and A V
    total += _Tally(inner * c, c, tokens * inner * c)  # output projection
    total += _Tally(0, 2 * c)  # LayerNorm before the MLP
    total += _Tally(c * hidden, hidden, tokens * c * hidden) + _Tally(hidden * c, c, tokens * hidden * c)
    return total


def layer_tally(cfg: LayerConfig) -> _Tally:
    return _conv_tally(cfg) if cfg.layer.block == "conv" else _attn_tally(cfg)


def _stem_tally(space: HybridSpace) -> _Tally:
    k, cin, cout = space.stem.kernel, space.input.channels, space.stem.channels
    out = conv_out(space.input.size, space.stem.stride) ** 2
    return _Tally(k * k * cin * cout, 2 * cout, out * k * k * cin * cout)


def _head_tally(c_last: int, classes: int) -> _Tally:
    return _Tally(c_last * classes, classes, c_last * classes)


def arch_costs(space: HybridSpace, arch: Arch) -> Costs:
    """Parameters, MACs, BitOps and size of ``arch`` as defined in the module docstring."""
    fixed_bits = space.quantization.stem_head_bits
    fixed = _stem_tally(space) + _head_tally(arch.stages[-1].width, space.input.classes)
    params = fixed.weights + fixed.other
    macs = fixed.macs
    bitops = fixed.macs * fixed_bits * fixed_bits
    bits = fixed.weights * fixed_bits + fixed.other * 32
    for cfg in layer_configs(space, arch):
        t = layer_tally(cfg)
        wb, ab = cfg.layer.wbits, cfg.layer.abits
        params += t.weights + t.other
        macs += t.macs + t.act_macs
        bitops += t.macs * wb * ab + t.act_macs * ab * ab
        bits += t.weights * wb + t.other * 32
    return Costs(params=params, macs=macs, bitops=bitops, size_mb=bits / 8 / 1e6)
