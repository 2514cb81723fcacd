"""Fake quantization with a straight-through estimator.

* Weights: symmetric, per output channel, scale = max|w| / (2^(b-1) - 1).
* Activations: asymmetric (unsigned range with a zero point), one observed [min, max] range
  per bit-width, kept as buffers so that a 4-bit and an 8-bit subnet do not share ranges.
  Ranges follow an exponential moving average in training and are re-estimated for a subnet
  by ``calibrate`` (together with its BatchNorm statistics).

At 32 bits both are skipped entirely: the forward is the unquantized one, bit for bit.
"""
from __future__ import annotations

import torch
from torch import nn

FULL_PRECISION = 32


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize ``w`` (out channels first) per output channel; STE gradient."""
    if bits >= FULL_PRECISION:
        return w
    qmax = 2 ** (bits - 1) - 1
    scale = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-8) / qmax
    scale = scale.reshape(-1, *([1] * (w.dim() - 1)))
    q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (q - w).detach()


def fake_quant_act(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize ``x`` to ``bits`` over [lo, hi] (0 always representable); STE gradient."""
    levels = 2**bits - 1
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    scale = ((hi - lo) / levels).clamp_min(1e-8)
    zero_point = torch.round(-lo / scale)
    q = (torch.clamp(torch.round(x / scale) + zero_point, 0, levels) - zero_point) * scale
    return x + (q - x).detach()


class ActQuant(nn.Module):
    """Observes and fake-quantizes one activation, with a range per allowed bit-width."""

    momentum = 0.1

    def __init__(self, bit_choices: tuple[int, ...]) -> None:
        super().__init__()
        self.bit_choices = tuple(b for b in bit_choices if b < FULL_PRECISION)
        for b in self.bit_choices:
            self.register_buffer(f"range_{b}", torch.zeros(2))
            self.register_buffer(f"seen_{b}", torch.zeros((), dtype=torch.long))
        self.cumulative = False  # calibration: an exact running mean instead of the EMA

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        if bits >= FULL_PRECISION:
            return x
        rng, seen = getattr(self, f"range_{bits}"), getattr(self, f"seen_{bits}")
        if self.training:
            with torch.no_grad():
                observed = torch.stack([x.min(), x.max()])
                factor = 1.0 / (seen.item() + 1) if (self.cumulative or seen.item() == 0) else self.momentum
                rng.mul_(1 - factor).add_(observed, alpha=factor)
                seen.add_(1)
        return fake_quant_act(x, rng[0], rng[1], bits)

    def reset_statistics(self) -> None:
        for b in self.bit_choices:
            getattr(self, f"range_{b}").zero_()
            getattr(self, f"seen_{b}").zero_()

    def frozen(self, bits: int) -> FrozenActQuant:
        """A standalone quantizer with this one's current range for ``bits``."""
        if bits >= FULL_PRECISION:
            return FrozenActQuant(None, bits)
        return FrozenActQuant(getattr(self, f"range_{bits}").detach().clone(), bits)


class FrozenActQuant(nn.Module):
    """The activation quantizer of an extracted subnet: a fixed range, no observation."""

    def __init__(self, rng: torch.Tensor | None, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.register_buffer("range", rng if rng is not None else torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= FULL_PRECISION:
            return x
        return fake_quant_act(x, self.range[0], self.range[1], self.bits)


def without_activation_quantizers(module: nn.Module) -> nn.Module:
    """``module`` with each ``FrozenActQuant`` replaced, in place, by the identity: the float graph a
    runtime executes. ONNX Runtime's int8 models quantize with their own QDQ nodes; fake quantization
    exported into the graph as float arithmetic (Div, Round, Clip, ...) is work no deployment does, and
    it made the lookup table time int8 layers 1.4-2.3x slow (docs/experiments.md, session 26)."""
    for name, child in list(module.named_modules()):
        if isinstance(child, FrozenActQuant):
            parent, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent) if parent else module, attr, nn.Identity())
    return module
