"""The weight-sharing supernet of a ``HybridSpace`` and the extraction of standalone subnets.

The arch is an explicit argument of ``forward``: no module holds an "active subnet" state,
so two archs can be run one after the other (the sandwich rule) without setup calls.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.arch import Arch
from search_space.hybrid import HybridSpace
from supernet.blocks import AttnBranch, ConvBranch
from supernet.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from supernet.quant import FULL_PRECISION, ActQuant, FrozenActQuant, without_activation_quantizers


def _bit_choices(space: HybridSpace) -> tuple[int, ...]:
    q = space.quantization
    return tuple(sorted(set(q.act_bits) | {q.stem_head_bits}))


def to_body_layout(x: torch.Tensor) -> torch.Tensor:
    """The memory layout of every layer after the stem, in the supernet and in extracted subnets.

    Channels-last: PyTorch's CPU depthwise convolutions (forward and, above all, backward) run
    2-4x faster in it, which makes a training step about 1.4x faster
    (benchmarks/supernet_overhead.py); the attention block's tokens are then a plain view. Both
    models must share it: float rounding that differs in the last bit can flip an activation's
    quantization level, and the logits then differ by a level's worth (up to 0.02 on the demo).
    """
    return x.contiguous(memory_format=torch.channels_last)


class Supernet(nn.Module):
    def __init__(self, space: HybridSpace) -> None:
        super().__init__()
        self.space = space
        bits = _bit_choices(space)
        fixed = (space.quantization.stem_head_bits,)
        stem = space.stem
        self.stem = ElasticConv2d(space.input.channels, stem.channels, stem.kernel, stem.stride)
        self.stem_bn = ElasticBatchNorm2d(stem.channels)
        self.q_stem = ActQuant(fixed)
        self.slots = nn.ModuleList()
        c_in_max, widths_in = stem.channels, (stem.channels,)
        for spec in space.stages:
            stage = nn.ModuleList()
            for slot in range(max(spec.depth)):
                first = slot == 0
                max_in = c_in_max if first else max(spec.width)
                stride = spec.stride if first else 1
                branches = nn.ModuleDict()
                if "conv" in spec.blocks:
                    branches["conv"] = ConvBranch(max_in, max(spec.width), max(spec.expand), max(spec.kernel),
                                                  stride, bits)
                if "attn" in spec.blocks:
                    # Only a stage's first layer can change width: when some input width differs from some output.
                    can_change = first and any(a != b for a in widths_in for b in spec.width)
                    branches["attn"] = AttnBranch(max_in, max(spec.width), max(spec.heads), spec.head_dim,
                                                  max(spec.mlp_ratio), stride, can_change, bits)
                stage.append(branches)
            self.slots.append(stage)
            c_in_max, widths_in = max(spec.width), spec.width
        self.head = ElasticLinear(c_in_max, space.input.classes)
        self.q_head = ActQuant(fixed)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        bits = self.space.quantization.stem_head_bits
        x = F.relu(self.stem_bn(self.stem(self.q_stem(x, bits), self.space.stem.channels,
                                          self.space.stem.kernel, bits)))  # (B, stem, H/s, W/s)
        x = to_body_layout(x)
        for stage_modules, stage in zip(self.slots, arch.stages):
            for branches, layer in zip(stage_modules, stage.layers):
                x = branches[layer.block](x, layer, stage.width)
        x = x.mean(dim=(2, 3))  # (B, C_last)
        return self.head(self.q_head(x, bits), self.space.input.classes, bits)  # (B, classes)

    def extract(self, arch: Arch, simulate_activations: bool = True) -> SubNet:
        """A standalone model of ``arch``: copied weights (fake-quantized once), frozen activation
        ranges and BatchNorm statistics as they are now (recalibrate first), no elastic parts.

        ``simulate_activations=False`` leaves out the activation quantizers
        (``quant.without_activation_quantizers``): the float graph a runtime executes, what latency is
        timed on (torch eager, or ONNX Runtime, whose int8 models add their own QDQ nodes to it)."""
        self.space.validate(arch)
        bits = self.space.quantization.stem_head_bits
        stem = self.space.stem
        layers = []
        c_in = stem.channels
        for stage_modules, stage in zip(self.slots, arch.stages):
            for branches, layer in zip(stage_modules, stage.layers):
                layers.append(branches[layer.block].static(layer, c_in, stage.width))
                c_in = stage.width
        subnet = SubNet(
            q_stem=self.q_stem.frozen(bits), stem=self.stem.static(self.space.input.channels, stem.channels,
                                                                  stem.kernel, bits),
            stem_bn=self.stem_bn.static(stem.channels), layers=nn.Sequential(*layers),
            q_head=self.q_head.frozen(bits), head=self.head.static(c_in, self.space.input.classes, bits))
        subnet.arch_str = arch.to_str()
        if not simulate_activations:
            without_activation_quantizers(subnet)
        return subnet.train(self.training)


# The activation quantizer in front of each weighted op, by the op's attribute name (blocks.mbconv and
# blocks.attention quantize exactly the inputs of their weighted ops).
INPUT_QUANTIZERS = {"stem": "q_stem", "head": "q_head", "expand": "q_in", "dw": "q_mid", "project": "q_proj",
                    "reduce": "q_reduce", "pos": "q_pos", "qkv": "q_qkv", "proj": "q_proj", "fc1": "q_fc1",
                    "fc2": "q_fc2"}


class SubNet(nn.Module):
    """An extracted subnet: plain torch modules, ready for torch.export and ONNX."""

    arch_str: str = ""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        for name, module in modules.items():
            setattr(self, name, module)

    def activation_ranges(self) -> dict[str, tuple[float, float]]:
        """Weighted op's module path -> the (min, max) its input is quantized over, for every op whose
        input is quantized (a subnet extracted with ``simulate_activations=True``)."""
        out = {}
        for name, _ in self.named_modules():
            parent, _, leaf = name.rpartition(".")
            quantizer = getattr(self.get_submodule(parent) if parent else self, INPUT_QUANTIZERS.get(leaf, ""), None)
            if isinstance(quantizer, FrozenActQuant) and quantizer.bits < FULL_PRECISION:
                lo, hi = quantizer.range.tolist()
                out[name] = (min(lo, 0.0), max(hi, 0.0))  # 0 is always representable (see fake_quant_act)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(self.q_stem(x))))
        x = self.layers(to_body_layout(x))
        return self.head(self.q_head(x.mean(dim=(2, 3))))
