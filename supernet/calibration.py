"""Per-subnet BatchNorm and activation-range recalibration, and accuracy of a subnet.

Shared BatchNorm statistics are a blend over every arch trained; a subnet needs its own
(Once-for-All's finding). ``calibrated`` re-estimates them, and the activation ranges of its
bit-widths, on fixed training batches, and restores the supernet's buffers afterwards;
a ``Calibrator`` does the same and remembers each arch's statistics for the next evaluator.
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


class Calibrator:
    """Recalibrates one supernet for any arch on fixed training batches, and remembers each arch's
    statistics (the ``keep`` most recent archs; 13 KB each on the demo space).

    The accuracy and the latency evaluator both recalibrate the same arch (the int8 model must compute
    what the accuracy was measured on), and recalibration is about a third of an arch's evaluation
    (profiled: 0.33 s of 1.37 s per arch on the demo space), so the second asks the same calibrator
    and reads the first one's statistics. The batches are fixed, so remembered statistics equal
    recomputed ones (tested) as long as the supernet's weights do not change: use one calibrator per
    trained supernet, not during training.
    """

    def __init__(self, net: Supernet, data: Split, batches: int, batch_size: int = 64, keep: int = 1024) -> None:
        self.net, self.data, self.batches, self.batch_size, self.keep = net, data, batches, batch_size, keep
        self._states: dict[Arch, dict[str, torch.Tensor]] = {}

    @contextmanager
    def __call__(self, arch: Arch) -> Iterator[Supernet]:
        """Inside the block, the supernet is in eval mode with statistics re-estimated for ``arch``;
        its own buffers are restored afterwards."""
        net = self.net
        snapshot = {name: buf.clone() for name, buf in net.named_buffers()}
        was_training = net.training
        try:
            state = self._states.get(arch)
            if state is None:
                self._estimate(arch)
                self._remember(arch)
            else:
                _load_buffers(net, state)
            net.eval()
            yield net
        finally:
            _set_calibration(net, False)
            _load_buffers(net, snapshot)
            net.train(was_training)

    def _estimate(self, arch: Arch) -> None:
        net = self.net
        device = next(net.parameters()).device
        _set_calibration(net, True)
        net.train()
        generator = torch.Generator().manual_seed(CALIBRATION_SEED)
        with torch.no_grad():
            for i, (x, _) in enumerate(self.data.batches(self.batch_size, generator)):
                if i >= self.batches:
                    break
                net(x.to(device), arch)
        _set_calibration(net, False)

    def _remember(self, arch: Arch) -> None:
        if self.keep <= 0:
            return
        self._states[arch] = {name: buf.clone() for name, buf in self.net.named_buffers()}
        while len(self._states) > self.keep:
            del self._states[next(iter(self._states))]  # the oldest: dicts keep insertion order


def _load_buffers(net: Supernet, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, buf in net.named_buffers():
            buf.copy_(state[name])


def calibrated(net: Supernet, arch: Arch, data: Split, batches: int, batch_size: int = 64):
    """A one-off ``Calibrator(...)(arch)``: ``net`` in eval mode with statistics re-estimated for ``arch``."""
    return Calibrator(net, data, batches, batch_size, keep=0)(arch)


@dataclass(frozen=True)
class Scores:
    """Top-1 accuracy in percent and mean cross-entropy (nats) of a model on one split.

    On a few hundred images top-1 moves in steps of one image; the cross-entropy uses every
    image's full output, so it orders close models far more reproducibly (measured on the demo
    supernet: 30 random subnets ranked on the validation vs the test split, Kendall tau 0.22-0.39
    by top-1, 0.76-0.78 by cross-entropy; docs/experiments.md, Supernet)."""

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
