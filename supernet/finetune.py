"""Fine-tune one subnet on its own, quantization-aware, distilled from the supernet's teachers.

The subnet is trained inside a copy of the supernet (``forward(x, arch)``), so weights are
re-quantized at the arch's bit-widths on every step exactly as in supernet training, and the
result is an ordinary supernet checkpoint that extraction and export read like any other. Only the
arch's slices of the weights change. The teachers are the archs the supernet was trained with on
the labels (``train.teachers``), frozen, each in its own copy with BatchNorm statistics
recalibrated for it: the supernet's running statistics are a blend over every arch it trained, not
the teachers' own.
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from search_space.arch import Arch
from search_space.config import TrainConfig, counted
from search_space.schema import to_plain
from supernet.calibration import calibrated, subnet_accuracy
from supernet.checkpoint import save_checkpoint
from supernet.data import Dataset
from supernet.model import Supernet
from supernet.train import make_optimizer, teachers

log = logging.getLogger("hynas.finetune")


@dataclass(frozen=True)
class FinetuneOutcome:
    supernet: Supernet
    before: dict[str, float]  # split -> accuracy % with inherited weights
    after: dict[str, float]  # split -> accuracy % after fine-tuning
    checkpoint: Path


def _scores(net: Supernet, arch: Arch, data: Dataset, bn_batches: int) -> dict[str, float]:
    return {split: subnet_accuracy(net, arch, data.train, getattr(data, split), bn_batches)
            for split in ("val", "test")}


def calibrated_copy(net: Supernet, arch: Arch, data: Dataset, bn_batches: int) -> Supernet:
    """A copy of ``net`` holding the BatchNorm statistics and activation ranges re-estimated for ``arch``."""
    out = copy.deepcopy(net)
    with calibrated(out, arch, data.train, bn_batches):
        state = copy.deepcopy(out.state_dict())
    out.load_state_dict(state)
    return out


def finetune_subnet(net: Supernet, arch: Arch, data: Dataset, cfg: TrainConfig, epochs: int, seed: int,
                    checkpoint: Path, lr_scale: float = 0.1, progress: bool = True) -> FinetuneOutcome:
    torch.manual_seed(seed)
    before = _scores(net.eval(), arch, data, cfg.bn_batches)
    taught = [(calibrated_copy(net, t, data, cfg.bn_batches).eval(), t) for t in teachers(net.space, cfg)]
    # Start from the statistics and activation ranges this subnet is evaluated with.
    student = calibrated_copy(net, arch, data, cfg.bn_batches)
    optimizer = make_optimizer(student, cfg)
    steps = epochs * math.ceil(len(data.train) / cfg.batch_size)
    lr = cfg.lr * lr_scale
    generator = torch.Generator().manual_seed(seed)
    step = 0
    device = next(net.parameters()).device
    for epoch in range(epochs):
        student.train()
        bar = tqdm(data.train.batches(cfg.batch_size, generator, augment=True), desc=f"fine-tune {epoch + 1}/{epochs}",
                   unit="step", disable=not progress, dynamic_ncols=True,
                   total=math.ceil(len(data.train) / cfg.batch_size))
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
            with torch.no_grad():
                soft = torch.stack([teacher(x, t).softmax(dim=1) for teacher, t in taught]).mean(dim=0)
            out = student(x, arch)
            loss = F.kl_div(out.log_softmax(dim=1), soft, reduction="batchmean") + \
                F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            optimizer.step()
            step += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    student.eval()
    after = _scores(student, arch, data, cfg.bn_batches)
    save_checkpoint(checkpoint, {"space": to_plain(net.space), "model": student.state_dict(), "arch": arch.to_str(),
                                 "finetune": {"epochs": epochs, "seed": seed, "before": before, "after": after}})
    # debug: the outcome is returned, and `hynas finetune` prints it (at info it showed twice on the console)
    log.debug("fine-tuned %s for %s: validation %.2f -> %.2f %%, test %.2f -> %.2f %%", arch, counted(epochs, "epoch"),
             before["val"], after["val"], before["test"], after["test"])
    return FinetuneOutcome(student, before, after, checkpoint)
