"""Elastic primitives: one full-size weight, sliced for the active width and kernel (the
Once-for-All approach). Each has ``static(...)``, which returns a plain torch module with the
active slice copied (weights already fake-quantized), for extracted subnets.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.quant import fake_quant_weight


class ElasticConv2d(nn.Module):
    """A conv whose output channels, input channels and (centre-cropped) kernel can shrink."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 1, depthwise: bool = False,
                 bias: bool = False) -> None:
        super().__init__()
        self.stride, self.depthwise, self.max_kernel = stride, depthwise, max_kernel
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, max_kernel, max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None

    def _slice(self, c_in: int, c_out: int, kernel: int, wbits: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        start = (self.max_kernel - kernel) // 2
        w = self.weight[:c_out, : (1 if self.depthwise else c_in), start:start + kernel, start:start + kernel]
        return fake_quant_weight(w, wbits), None if self.bias is None else self.bias[:c_out]

    def forward(self, x: torch.Tensor, c_out: int, kernel: int, wbits: int) -> torch.Tensor:
        c_in = x.shape[1]
        w, b = self._slice(c_in, c_out, kernel, wbits)
        return F.conv2d(x, w, b, self.stride, kernel // 2, groups=c_in if self.depthwise else 1)

    def static(self, c_in: int, c_out: int, kernel: int, wbits: int) -> nn.Conv2d:
        w, b = self._slice(c_in, c_out, kernel, wbits)
        conv = nn.Conv2d(c_in, c_out, kernel, self.stride, kernel // 2, groups=c_in if self.depthwise else 1,
                         bias=b is not None)
        conv.weight.data.copy_(w.detach())
        if b is not None:
            conv.bias.data.copy_(b.detach())
        return conv


class ElasticBatchNorm2d(nn.Module):
    """BatchNorm over the first ``C`` channels of full-size affine parameters and statistics."""

    def __init__(self, max_c: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(max_c))
        self.bias = nn.Parameter(torch.zeros(max_c))
        self.register_buffer("running_mean", torch.zeros(max_c))
        self.register_buffer("running_var", torch.ones(max_c))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self.cumulative = False  # calibration: an exact running mean instead of the EMA

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        factor = self.momentum
        if self.training:
            self.batches += 1
            if self.cumulative:
                factor = 1.0 / self.batches.item()
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)

    def reset_statistics(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.batches.zero_()

    def static(self, c: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum)
        bn.weight.data.copy_(self.weight[:c].detach())
        bn.bias.data.copy_(self.bias[:c].detach())
        bn.running_mean.copy_(self.running_mean[:c])
        bn.running_var.copy_(self.running_var[:c])
        return bn


class ElasticLinear(nn.Module):
    """A linear layer over the first input features; output rows are the first ``n`` or an index."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True) -> None:
        super().__init__()
        layer = nn.Linear(max_in, max_out, bias=bias)
        self.weight, self.bias = layer.weight, layer.bias

    def _slice(self, c_in: int, rows: int | torch.Tensor, wbits: int):
        w = self.weight[:rows] if isinstance(rows, int) else self.weight[rows]
        w = fake_quant_weight(w[:, :c_in], wbits)
        b = None if self.bias is None else (self.bias[:rows] if isinstance(rows, int) else self.bias[rows])
        return w, b

    def forward(self, x: torch.Tensor, rows: int | torch.Tensor, wbits: int) -> torch.Tensor:
        w, b = self._slice(x.shape[-1], rows, wbits)
        return F.linear(x, w, b)

    def static(self, c_in: int, rows: int | torch.Tensor, wbits: int) -> nn.Linear:
        w, b = self._slice(c_in, rows, wbits)
        layer = nn.Linear(c_in, w.shape[0], bias=b is not None)
        layer.weight.data.copy_(w.detach())
        if b is not None:
            layer.bias.data.copy_(b.detach())
        return layer


class ElasticLayerNorm(nn.Module):
    def __init__(self, max_c: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(max_c))
        self.bias = nn.Parameter(torch.zeros(max_c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def static(self, c: int) -> nn.LayerNorm:
        ln = nn.LayerNorm(c, eps=self.eps)
        ln.weight.data.copy_(self.weight[:c].detach())
        ln.bias.data.copy_(self.bias[:c].detach())
        return ln
