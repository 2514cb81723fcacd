"""Architectures of a hybrid space and their compact string form.

Grammar of ``Arch.to_str()`` (one string per arch, readable like timm's block strings)::

    arch  := stage ("|" stage)*
    stage := "c" WIDTH ":" layer ("," layer)*       # depth = number of layers
    layer := "conv_k" K "_e" E "_w" WB "a" AB      # MBConv: kernel K, expand ratio E
           | "attn_h" H "_m" M "_w" WB "a" AB      # attention: H heads, MLP ratio M

``WB``/``AB`` are weight/activation bits (32 = not quantized). Example::

    c24:conv_k3_e4_w8a8|c48:conv_k5_e2_w4a8,attn_h4_m2_w8a32
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from search_space.errors import SearchSpaceError

BLOCK_TYPES = ("conv", "attn")
ALLOWED_BITS = (4, 6, 8, 32)

_CONV = re.compile(r"conv_k(\d+)_e(\d+)_w(\d+)a(\d+)")
_ATTN = re.compile(r"attn_h(\d+)_m(\d+)_w(\d+)a(\d+)")
_STAGE = re.compile(r"c(\d+):(.+)")


@dataclass(frozen=True)
class LayerArch:
    """One searchable layer. Fields of the other block type are 0."""

    block: str
    kernel: int = 0  # conv: depthwise kernel size
    expand: int = 0  # conv: hidden channels = input channels * expand
    heads: int = 0  # attn: number of heads (each of the stage's head_dim)
    mlp_ratio: int = 0  # attn: MLP hidden = width * mlp_ratio
    wbits: int = 32
    abits: int = 32

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise SearchSpaceError(f"unknown block type {self.block!r}; allowed: {', '.join(BLOCK_TYPES)}")
        own, other = ((self.kernel, self.expand), (self.heads, self.mlp_ratio))
        if self.block == "attn":
            own, other = other, own
        if min(own) <= 0 or any(other):
            raise SearchSpaceError(f"layer {self} sets the wrong fields for a {self.block} block")
        for name in ("wbits", "abits"):
            if getattr(self, name) not in ALLOWED_BITS:
                # the bit-widths any space may offer, not this space's: say so, or "not one of (4, 6, 8, 32)"
                # reads as the space's choices to a user whose space offers [4, 8, 32]
                raise SearchSpaceError(f"{name}={getattr(self, name)}: hynas quantizes to "
                                       f"{', '.join(map(str, ALLOWED_BITS[:-1]))} or {ALLOWED_BITS[-1]} bits "
                                       f"({ALLOWED_BITS[-1]}: not quantized)")

    def to_str(self) -> str:
        if self.block == "conv":
            return f"conv_k{self.kernel}_e{self.expand}_w{self.wbits}a{self.abits}"
        return f"attn_h{self.heads}_m{self.mlp_ratio}_w{self.wbits}a{self.abits}"

    @classmethod
    def from_str(cls, text: str) -> LayerArch:
        if m := _CONV.fullmatch(text):
            k, e, wb, ab = map(int, m.groups())
            return cls("conv", kernel=k, expand=e, wbits=wb, abits=ab)
        if m := _ATTN.fullmatch(text):
            h, mr, wb, ab = map(int, m.groups())
            return cls("attn", heads=h, mlp_ratio=mr, wbits=wb, abits=ab)
        raise SearchSpaceError(f"cannot parse layer {text!r}; expected e.g. 'conv_k3_e4_w8a8' or 'attn_h2_m4_w8a32'")


@dataclass(frozen=True)
class StageArch:
    """The active layers of one stage, all at the stage's width (channel count)."""

    width: int
    layers: tuple[LayerArch, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class Arch:
    """A subnet of a ``HybridSpace``: per stage its width and active layers."""

    stages: tuple[StageArch, ...]

    def to_str(self) -> str:
        return "|".join(
            f"c{s.width}:" + ",".join(layer.to_str() for layer in s.layers) for s in self.stages
        )

    @classmethod
    def from_str(cls, text: str) -> Arch:
        stages = []
        for part in text.strip().split("|"):
            m = _STAGE.fullmatch(part)
            if not m:
                raise SearchSpaceError(f"cannot parse stage {part!r} of arch {text!r}; expected 'c<width>:<layer>,...'")
            stages.append(StageArch(int(m.group(1)), tuple(LayerArch.from_str(t) for t in m.group(2).split(","))))
        return cls(tuple(stages))

    def layers(self) -> list[LayerArch]:
        return [layer for stage in self.stages for layer in stage.layers]

    def __str__(self) -> str:
        return self.to_str()
