"""The searchable blocks. Each block's computation is written once, as a function of its
operations (``mbconv``, ``attention``): the elastic branch calls it with its full-size
operations bound to the active choice, the extracted static block with plain modules.
So the supernet and a deployed subnet cannot drift apart.
"""
from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from search_space.arch import LayerArch
from search_space.costs import LayerConfig
from supernet.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticLayerNorm, ElasticLinear
from supernet.quant import ActQuant, without_activation_quantizers


def mbconv(x: torch.Tensor, ops) -> torch.Tensor:
    """1x1 expand -> depthwise kxk (stride) -> 1x1 project, residual when shapes allow."""
    h = F.relu(ops.bn1(ops.expand(ops.q_in(x))))  # (B, C_in * e, H, W)
    h = F.relu(ops.bn2(ops.dw(ops.q_mid(h))))  # (B, C_in * e, H', W')
    h = ops.bn3(ops.project(ops.q_proj(h)))  # (B, C_out, H', W')
    return h + x if ops.residual else h


def attention(x: torch.Tensor, ops) -> torch.Tensor:
    """Optional strided pooling and 1x1 width change, a depthwise-conv positional signal, then
    pre-norm multi-head self-attention and MLP over the feature map's tokens."""
    if ops.stride > 1:
        x = F.avg_pool2d(x, 3, ops.stride, 1, count_include_pad=False)
    if ops.reduce is not None:
        x = ops.reduce_bn(ops.reduce(ops.q_reduce(x)))
    x = x + ops.pos(ops.q_pos(x))
    # Sizes as Python ints and -1 for the batch: an ONNX export (dynamic batch) then gets constant reshape
    # targets instead of Shape -> Gather -> Concat chains per reshape, which made the int8 largest subnet 8 %
    # slower in ONNX Runtime (docs/experiments.md, session 25). A traced export fixes the map's size, as before.
    c, h, w = (int(n) for n in x.shape[1:])
    heads, d = ops.heads, ops.head_dim
    t = x.reshape(-1, c, h * w).transpose(1, 2)  # (B, T, C)
    qkv = ops.qkv(ops.q_qkv(ops.ln1(t)))  # (B, T, 3 * heads * d)
    q, k, v = qkv.reshape(-1, h * w, 3, heads, d).permute(2, 0, 3, 1, 4)  # each (B, heads, T, d)
    att = torch.softmax((q @ k.transpose(-2, -1)) * d**-0.5, dim=-1)  # (B, heads, T, T)
    t = t + ops.proj(ops.q_proj((att @ v).transpose(1, 2).reshape(-1, h * w, heads * d)))
    t = t + ops.fc2(ops.q_fc2(F.gelu(ops.fc1(ops.q_fc1(ops.ln2(t))))))
    return t.transpose(1, 2).reshape(-1, c, h, w)


class ConvBranch(nn.Module):
    """Elastic MBConv: width, expand ratio and kernel are chosen per forward."""

    def __init__(self, max_in: int, max_out: int, max_expand: int, max_kernel: int, stride: int,
                 bits: tuple[int, ...]) -> None:
        super().__init__()
        hidden = max_in * max_expand
        self.stride = stride
        self.expand, self.bn1 = ElasticConv2d(max_in, hidden, 1), ElasticBatchNorm2d(hidden)
        self.dw = ElasticConv2d(hidden, hidden, max_kernel, stride, depthwise=True)
        self.bn2 = ElasticBatchNorm2d(hidden)
        self.project, self.bn3 = ElasticConv2d(hidden, max_out, 1), ElasticBatchNorm2d(max_out)
        self.q_in, self.q_mid, self.q_proj = ActQuant(bits), ActQuant(bits), ActQuant(bits)

    def forward(self, x: torch.Tensor, layer: LayerArch, c_out: int) -> torch.Tensor:
        hidden, wb, ab = x.shape[1] * layer.expand, layer.wbits, layer.abits
        ops = SimpleNamespace(
            expand=partial(self.expand, c_out=hidden, kernel=1, wbits=wb), bn1=self.bn1,
            dw=partial(self.dw, c_out=hidden, kernel=layer.kernel, wbits=wb), bn2=self.bn2,
            project=partial(self.project, c_out=c_out, kernel=1, wbits=wb), bn3=self.bn3,
            q_in=partial(self.q_in, bits=ab), q_mid=partial(self.q_mid, bits=ab), q_proj=partial(self.q_proj, bits=ab),
            residual=self.stride == 1 and x.shape[1] == c_out)
        return mbconv(x, ops)

    def static(self, layer: LayerArch, c_in: int, c_out: int) -> StaticMBConv:
        hidden, wb, ab = c_in * layer.expand, layer.wbits, layer.abits
        return StaticMBConv(
            expand=self.expand.static(c_in, hidden, 1, wb), bn1=self.bn1.static(hidden),
            dw=self.dw.static(hidden, hidden, layer.kernel, wb), bn2=self.bn2.static(hidden),
            project=self.project.static(hidden, c_out, 1, wb), bn3=self.bn3.static(c_out),
            q_in=self.q_in.frozen(ab), q_mid=self.q_mid.frozen(ab), q_proj=self.q_proj.frozen(ab),
            residual=self.stride == 1 and c_in == c_out)


class StaticMBConv(nn.Module):
    def __init__(self, residual: bool, **modules: nn.Module) -> None:
        super().__init__()
        self.residual = residual
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mbconv(x, self)


class AttnBranch(nn.Module):
    """Elastic attention block: width, heads (of a fixed head size) and MLP ratio per forward."""

    def __init__(self, max_in: int, max_out: int, max_heads: int, head_dim: int, max_mlp: int, stride: int,
                 can_change_width: bool, bits: tuple[int, ...]) -> None:
        super().__init__()
        inner = max_heads * head_dim
        self.stride, self.head_dim, self.max_inner = stride, head_dim, inner
        self.reduce = ElasticConv2d(max_in, max_out, 1) if can_change_width else None
        self.reduce_bn = ElasticBatchNorm2d(max_out) if can_change_width else None
        self.pos = ElasticConv2d(max_out, max_out, 3, depthwise=True, bias=True)
        self.ln1, self.ln2 = ElasticLayerNorm(max_out), ElasticLayerNorm(max_out)
        self.qkv = ElasticLinear(max_out, 3 * inner)
        self.proj = ElasticLinear(inner, max_out)
        self.fc1, self.fc2 = ElasticLinear(max_out, max_out * max_mlp), ElasticLinear(max_out * max_mlp, max_out)
        self.q_reduce, self.q_pos, self.q_qkv = ActQuant(bits), ActQuant(bits), ActQuant(bits)
        self.q_proj, self.q_fc1, self.q_fc2 = ActQuant(bits), ActQuant(bits), ActQuant(bits)

    def _qkv_rows(self, inner: int) -> torch.Tensor:
        """Rows of the full qkv weight that belong to the first ``inner`` channels of q, k and v."""
        idx = torch.arange(inner, device=self.qkv.weight.device)
        return torch.cat([idx, idx + self.max_inner, idx + 2 * self.max_inner])

    def forward(self, x: torch.Tensor, layer: LayerArch, c_out: int) -> torch.Tensor:
        inner, wb, ab = layer.heads * self.head_dim, layer.wbits, layer.abits
        change = x.shape[1] != c_out
        ops = SimpleNamespace(
            stride=self.stride, heads=layer.heads, head_dim=self.head_dim,
            reduce=partial(self.reduce, c_out=c_out, kernel=1, wbits=wb) if change else None,
            reduce_bn=self.reduce_bn, q_reduce=partial(self.q_reduce, bits=ab),
            pos=partial(self.pos, c_out=c_out, kernel=3, wbits=wb), q_pos=partial(self.q_pos, bits=ab),
            ln1=self.ln1, ln2=self.ln2,
            qkv=partial(self.qkv, rows=self._qkv_rows(inner), wbits=wb), q_qkv=partial(self.q_qkv, bits=ab),
            proj=partial(self.proj, rows=c_out, wbits=wb), q_proj=partial(self.q_proj, bits=ab),
            fc1=partial(self.fc1, rows=c_out * layer.mlp_ratio, wbits=wb), q_fc1=partial(self.q_fc1, bits=ab),
            fc2=partial(self.fc2, rows=c_out, wbits=wb), q_fc2=partial(self.q_fc2, bits=ab))
        return attention(x, ops)

    def static(self, layer: LayerArch, c_in: int, c_out: int) -> StaticAttention:
        inner, hidden, wb, ab = layer.heads * self.head_dim, c_out * layer.mlp_ratio, layer.wbits, layer.abits
        change = c_in != c_out
        return StaticAttention(
            stride=self.stride, heads=layer.heads, head_dim=self.head_dim,
            reduce=self.reduce.static(c_in, c_out, 1, wb) if change else None,
            reduce_bn=self.reduce_bn.static(c_out) if change else None,
            q_reduce=self.q_reduce.frozen(ab) if change else None,
            pos=self.pos.static(c_out, c_out, 3, wb), q_pos=self.q_pos.frozen(ab),
            ln1=self.ln1.static(c_out), ln2=self.ln2.static(c_out),
            qkv=self.qkv.static(c_out, self._qkv_rows(inner), wb), q_qkv=self.q_qkv.frozen(ab),
            proj=self.proj.static(inner, c_out, wb), q_proj=self.q_proj.frozen(ab),
            fc1=self.fc1.static(c_out, hidden, wb), q_fc1=self.q_fc1.frozen(ab),
            fc2=self.fc2.static(hidden, c_out, wb), q_fc2=self.q_fc2.frozen(ab))


class StaticAttention(nn.Module):
    def __init__(self, stride: int, heads: int, head_dim: int, **modules: nn.Module | None) -> None:
        super().__init__()
        self.stride, self.heads, self.head_dim = stride, heads, head_dim
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attention(x, self)


def standalone_layer(cfg: LayerConfig) -> nn.Module:
    """One layer of this configuration as a static block with fresh weights and no activation quantizers
    (as ``Supernet.extract(..., simulate_activations=False)``, what subnets are timed as): what ``hynas
    profile`` times. Latency does not depend on the weights' values, only on the shapes and precision."""
    layer, bits = cfg.layer, (cfg.layer.abits,)
    if layer.block == "conv":
        branch = ConvBranch(cfg.c_in, cfg.c_out, layer.expand, layer.kernel, cfg.stride, bits)
    else:
        branch = AttnBranch(cfg.c_in, cfg.c_out, layer.heads, cfg.head_dim, layer.mlp_ratio, cfg.stride,
                            cfg.c_in != cfg.c_out, bits)
    return without_activation_quantizers(branch.static(layer, cfg.c_in, cfg.c_out)).eval()
