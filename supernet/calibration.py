"""Per-subnet BatchNorm and activation-range recalibration, and accuracy of a subnet.

Shared BatchNorm statistics are a blend over every arch trained; a subnet needs its own
(Once-for-All's finding). ``calibrated`` re-estimates them, and the activation ranges of its
bit-widths, on fixed training batches, and restores the supernet's buffers afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from search_space.arch import Arch
from supernet.data import Split
from supernet.elastic import ElasticBatchNorm2d
from supernet.model import Supernet
from supernet.quant import ActQuant

CALIBRATION_SEED = 1234  # the same batches for every arch: the accuracy objective is deterministic


def _set_calibration(net: Supernet, on: bool) -> None:
    for m in net.modules():
        if isinstance(m, (ElasticBatchNorm2d, ActQuant)):
            m.cumulative = on
            if on:
                m.reset_statistics()


@contextmanager
def calibrated(net: Supernet, arch: Arch, data: Split, batches: int, batch_size: int = 64) -> Iterator[Supernet]:
    """Inside the block, ``net`` is in eval mode with statistics re-estimated for ``arch``."""
    snapshot = {name: buf.clone() for name, buf in net.named_buffers()}
    was_training = net.training
    device = next(net.parameters()).device
    try:
        _set_calibration(net, True)
        net.train()
        generator = torch.Generator().manual_seed(CALIBRATION_SEED)
        with torch.no_grad():
            for i, (x, _) in enumerate(data.batches(batch_size, generator)):
                if i >= batches:
                    break
                net(x.to(device), arch)
        _set_calibration(net, False)
        net.eval()
        yield net
    finally:
        _set_calibration(net, False)
        with torch.no_grad():
            for name, buf in net.named_buffers():
                buf.copy_(snapshot[name])
        net.train(was_training)


@dataclass(frozen=True)
class Scores:
    """Top-1 accuracy in percent and mean cross-entropy (nats) of a model on one split.

    On a few hundred images top-1 moves in steps of one image; the cross-entropy uses every
    image's full output, so it orders close models far more reproducibly (measured on the demo
    supernet: 30 random subnets ranked on the validation vs the test split, Kendall tau 0.22-0.39
    by top-1, 0.76-0.78 by cross-entropy; README, Benchmarks)."""

    accuracy: float
    nll: float


@torch.no_grad()
def scores(model, data: Split, arch: Arch | None = None, batch_size: int = 256) -> Scores:
    """Top-1 and cross-entropy of ``model`` (a Supernet with ``arch``, or a standalone model)."""
    device = next(model.parameters()).device
    correct, nll = 0, 0.0
    for x, y in data.batches(batch_size):
        logits = (model(x.to(device), arch) if arch is not None else model(x.to(device))).cpu()
        correct += int((logits.argmax(dim=1) == y).sum())
        nll += float(F.cross_entropy(logits, y, reduction="sum"))
    return Scores(100.0 * correct / len(data), nll / len(data))


def accuracy(model, data: Split, arch: Arch | None = None, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of ``model`` (a Supernet with ``arch``, or a standalone model)."""
    return scores(model, data, arch, batch_size).accuracy


def subnet_accuracy(net: Supernet, arch: Arch, calibration_data: Split, eval_data: Split, batches: int) -> float:
    """Inherited-weight accuracy of ``arch`` after recalibration (the search's accuracy objective)."""
    with calibrated(net, arch, calibration_data, batches):
        return accuracy(net, eval_data, arch)
