"""Training the supernet once: sandwich rule, in-place distillation, fake quantization.

Every step trains the teachers on the labels, then the smallest and ``random_archs`` random
archs (random bit-widths included) on the teachers' mean soft predictions, accumulating
gradients before one SGD step (BigNAS/Once-for-All). The teachers are the largest arch of each
block type (``HybridSpace.largest_of_each_block``), so that both branches of a layer are trained
at full size every step; by default (``teachers: mixed``) they exchange layers at random each step, so
that every mix of block types is taught too; ``teachers: largest`` is the classic sandwich. The learning
rate follows a cosine schedule per step. All randomness derives from (seed, epoch): batch order and sampled archs
of an epoch do not depend on what ran before, so a resumed run continues bit-exactly.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from search_space.arch import Arch, StageArch
from search_space.config import TrainConfig, counted
from search_space.errors import CheckpointError
from search_space.hybrid import HybridSpace
from search_space.schema import to_plain
from supernet.calibration import subnet_accuracy
from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.data import Dataset
from supernet.model import Supernet

log = logging.getLogger("hynas.train")
FINE_RANKING_IMAGES = 100  # fewer validation images rank subnets in steps over a point of accuracy


@dataclass(frozen=True)
class TrainOutcome:
    supernet: Supernet
    history: list[dict]  # per epoch: loss, largest and smallest validation accuracy, seconds
    checkpoint: Path


def make_optimizer(net: Supernet, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)  # no weight decay on norms and biases
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, momentum=0.9, nesterov=True)


def _lr(cfg: TrainConfig, step: int, total: int) -> float:
    warmup = max(1, total // 50)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def teachers(space: HybridSpace, cfg: TrainConfig, rng: np.random.Generator | None = None) -> list[Arch]:
    """The archs trained on the labels each step, whose mean soft predictions the others learn.

    ``mixed`` with an ``rng`` (a training step) exchanges the per-block teachers' layers at random;
    without one (fine-tuning's fixed teachers) it gives the per-block teachers themselves."""
    if cfg.teachers == "largest":
        return [space.largest()]
    fixed = space.largest_of_each_block()
    return exchange_layers(fixed, rng) if cfg.teachers == "mixed" and rng is not None else fixed


def exchange_layers(archs: list[Arch], rng: np.random.Generator) -> list[Arch]:
    """``archs`` (same depth and width per stage) with each layer position's layers dealt out among them
    in a random order: every branch a teacher held is still held by one, but in a random mix of block types.

    Per-block teachers alone train each layer only after layers of its own type: a conv layer after an
    attention layer then learns only in random archs, and such mixed subnets inherit too little of what
    they reach alone (docs/experiments.md, Supernet)."""
    dealt: list[list[StageArch]] = [[] for _ in archs]  # per teacher, its stages so far
    for position, first in enumerate(archs[0].stages):
        order = [rng.permutation(len(archs)) for _ in first.layers]  # per layer: which teacher's layer each gets
        for t, stages in enumerate(dealt):
            held = (archs[o[t]].stages[position].layers[i] for i, o in enumerate(order))
            stages.append(StageArch(first.width, tuple(held)))
    return [Arch(tuple(stages)) for stages in dealt]


def train_step(net: nn.Module, space: HybridSpace, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor,
               rng: np.random.Generator) -> float:
    """One sandwich-rule step's forward and backward passes (gradients accumulate; no optimizer step).
    Returns the teachers' mean loss on the labels."""
    taught = teachers(space, cfg, rng)
    probs, losses = [], []
    for arch in taught:
        logits = net(x, arch)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        probs.append(logits.detach().softmax(dim=1))
        losses.append(float(loss.detach()))
    soft = torch.stack(probs).mean(dim=0)
    for arch in [space.smallest()] + [space.sample(rng) for _ in range(cfg.random_archs)]:
        out = net(x, arch)
        if cfg.distill:
            student = F.kl_div(out.log_softmax(dim=1), soft, reduction="batchmean")
        else:
            student = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
        student.backward()
    return float(np.mean(losses))


# Train settings that checkpoints of older versions lack, with the value their training used.
OLDER_TRAIN_DEFAULTS = {"teachers": "largest"}  # a second teacher came in session 11


def setting_differences(state: dict, cfg: TrainConfig, seed: int, data: Dataset | None = None) -> list[str]:
    """How the settings a checkpoint was trained with differ from ``cfg``, ``seed`` and the images of ``data``,
    one item per setting."""
    saved = {**OLDER_TRAIN_DEFAULTS, **state.get("train", {})}
    out = [f"train.{name}={saved.get(name)!r} in the checkpoint, {value!r} now"
           for name, value in to_plain(cfg).items() if saved.get(name) != value]
    if state.get("seed") != seed:
        out.append(f"seed={state.get('seed')!r} in the checkpoint, {seed!r} now")
    if data is not None and (difference := data_difference(state, data)):
        out.append(difference)
    return out


def data_difference(state: dict, data: Dataset) -> str | None:
    """How ``data`` differs from the images a checkpoint was trained on (``Dataset.fingerprint``); None if it
    does not, or if the checkpoint does not say (written before the fingerprint was recorded)."""
    recorded = state.get("data")
    if not recorded or recorded["fingerprint"] == data.fingerprint:
        return None
    then, now = tuple(recorded["images"]), data.sizes
    counts = " / ".join(f"{n:,}" for n in then), " / ".join(f"{n:,}" for n in now)
    return (f"{data.source} holds other images than the supernet was trained on ({counts[0]} train / validation / "
            f"test then, {counts[1]} now{'; other files or splits' if then == now else ''})")


def refuse_other_data(checkpoint: Path, state: dict, data: Dataset) -> None:
    """A one-line ``CheckpointError`` if ``data`` is not what the checkpoint was trained on: its accuracies
    would be measured on other images than the run's earlier ones (or on its training images)."""
    if difference := data_difference(state, data):
        raise CheckpointError(f"{checkpoint}: {difference}; restore those images, or train a supernet on these "
                              "(another --out)")


def refuse_other_settings(checkpoint: Path, space: HybridSpace, cfg: TrainConfig, seed: int,
                          data: Dataset | None = None) -> dict:
    """The checkpoint's state, if it was trained with ``cfg``, ``seed`` and the images of ``data``; else a
    one-line ``CheckpointError`` naming each setting that differs (a supernet is continued as it was started)."""
    state = load_checkpoint(checkpoint, space)
    if differences := setting_differences(state, cfg, seed, data):
        why = " (the learning rate's cosine schedule spans train.epochs: other epochs make another training)" \
            if any(d.startswith("train.epochs=") for d in differences) else ""
        raise CheckpointError(f"{checkpoint}: trained with other settings ({'; '.join(differences)}); "
                              f"resume with the same ones or start over with --force{why}")
    return state


def epoch_line(record: dict, epochs: int) -> str:
    """The log line of one epoch of the checkpoint's ``history``."""
    return (f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.4f}, largest {record['largest_val_acc']:.2f} %, "
            f"smallest {record['smallest_val_acc']:.2f} % (validation)")


@dataclass(frozen=True)
class Shard:
    """This process's part of data-parallel training: every process draws the same batches and archs
    (same seeds) and computes on its slice of each batch; gradients are averaged by the wrapper."""

    rank: int = 0
    world: int = 1

    @property
    def chief(self) -> bool:
        return self.rank == 0


def train_supernet(space: HybridSpace, data: Dataset, cfg: TrainConfig, seed: int, checkpoint: Path,
                   resume: bool = False, device: str = "cpu", progress: bool = True,
                   stop_after_epoch: int | None = None, shard: Shard = Shard(),
                   wrap: Callable[[Supernet], nn.Module] | None = None) -> TrainOutcome:
    """Train (or continue training) the supernet of ``space``, checkpointing after every epoch.

    Data-parallel: ``wrap`` (e.g. torch DDP) wraps the supernet for the forward and backward passes and
    ``shard`` says which slice of each batch is this process's; only the chief evaluates and writes the
    checkpoint, in the same format as single-process training."""
    torch.manual_seed(seed)
    net = Supernet(space).to(device)
    optimizer = make_optimizer(net, cfg)
    start_epoch, history = 0, []
    if resume:
        state = refuse_other_settings(checkpoint, space, cfg, seed, data)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], list(state["history"])
        log.info("resuming supernet training after epoch %d of %d", start_epoch, cfg.epochs)
    if shard.chief:
        log.info("training the supernet of %s on %s: %d train / %d validation / %d test images, %s",
                 space.name, data.name, len(data.train), len(data.val), len(data.test), counted(cfg.epochs, "epoch"))
        if len(data.val) < FINE_RANKING_IMAGES:
            log.warning("the validation split holds %s, so accuracy moves in steps of %.3g points, and the search "
                        "ranks subnets by it; more images (or a larger data.val_fraction) rank them finer",
                        counted(len(data.val), "image"), 100 / len(data.val))
    model = wrap(net) if wrap is not None else net
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        rng = np.random.default_rng([seed, epoch])
        losses = []
        bar = tqdm(data.train.batches(cfg.batch_size, generator, augment=True), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", disable=not (progress and shard.chief),
                   dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            for group in optimizer.param_groups:
                group["lr"] = _lr(cfg, epoch * steps_per_epoch + i, total)
            if len(y) < shard.world:
                continue  # a last batch too small to give every process a sample (the same on all of them)
            optimizer.zero_grad(set_to_none=True)
            x, y = x[shard.rank::shard.world], y[shard.rank::shard.world]
            losses.append(train_step(model, space, cfg, x.to(device), y.to(device), rng))
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if shard.chief:  # the other processes hold the same weights
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                      "largest_val_acc": subnet_accuracy(net, space.largest(), data.train, data.val, cfg.bn_batches),
                      "smallest_val_acc": subnet_accuracy(net, space.smallest(), data.train, data.val, cfg.bn_batches)}
            history.append(record)
            log.info(epoch_line(record, cfg.epochs))
            save_checkpoint(checkpoint, {"space": to_plain(space), "model": net.state_dict(),
                                         "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "history": history,
                                         "train": to_plain(cfg), "seed": seed,
                                         "data": {"fingerprint": data.fingerprint, "images": list(data.sizes)}})
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return TrainOutcome(net, history, checkpoint)


def split_seed(state: dict, default: int) -> int:
    """The seed of the train / validation / test split a checkpoint was trained on (its training's seed; ``default``
    for a checkpoint that does not say). A search with any other ``--seed`` measures on that split: the only
    validation images the supernet never trained on."""
    return state.get("seed", default)


def supernet_from_state(space: HybridSpace, state: dict, device: str | torch.device = "cpu") -> Supernet:
    """The trained supernet of a loaded checkpoint, in eval mode."""
    net = Supernet(space)
    net.load_state_dict(state["model"])
    return net.to(device).eval()
