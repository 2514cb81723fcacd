"""``hynas train --workers N``: data-parallel supernet training on Ray Train (torch DDP, gloo on CPU).

Every worker runs the same ``supernet.train.train_supernet`` loop as single-process training, on
its slice of each batch, with the supernet wrapped in DistributedDataParallel; the chief (rank 0)
evaluates and writes the checkpoint, in the same format. The sandwich rule's archs are drawn from
the same seeds on every worker, so all workers train the same subnets each step. The checkpoint
path must be reachable from every worker (one machine, or a shared file system on a cluster).
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from search_space.config import ExperimentConfig
from search_space.hybrid import HybridSpace
from supernet.checkpoint import load_checkpoint
from supernet.train import epoch_line

log = logging.getLogger("hynas.train")


def _worker_loop(setup: dict) -> None:
    import ray.train
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from supernet.data import load_dataset
    from supernet.train import Shard, train_supernet

    config: ExperimentConfig = setup["config"]
    space: HybridSpace = setup["space"]
    context = ray.train.get_context()
    torch.set_num_threads(setup["threads"])
    data = load_dataset(config.data, space.input, config.seed)
    # find_unused_parameters: each forward runs one subnet, so most supernet weights get no gradient.
    train_supernet(space, data, config.train, config.seed, Path(setup["checkpoint"]), resume=setup["resume"],
                   progress=False, shard=Shard(context.get_world_rank(), context.get_world_size()),
                   wrap=lambda net: DistributedDataParallel(net, find_unused_parameters=True))


POLL_SECONDS = 1.0  # how often the driver looks for a new epoch in the checkpoint


def _fit_off_the_main_thread(trainer, poll: Callable[[], None]) -> None:
    """``trainer.fit()`` in another thread, calling ``poll`` about every second until it ends. In the main thread,
    Ray Train replaces the SIGINT handler by one that aborts the run and then leaves with exit code 1 and no
    message; from another thread it installs none, so Ctrl-C stays a KeyboardInterrupt here: exit 130 and
    "continue with --resume", as without Ray (``train_on_ray`` then stops the workers; the checkpoint of the
    last whole epoch is kept)."""
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # noqa: BLE001 - raised again in the calling thread
            failure.append(err)

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(timeout=POLL_SECONDS)
        poll()
    if failure:
        raise failure[0]


class _EpochReporter:
    """The chief worker's epochs, told on the driver: the workers' own logs stay on their nodes, so the driver
    reads each epoch from the checkpoint the chief writes after it (same log line and bar as one process)."""

    def __init__(self, checkpoint: Path, space: HybridSpace, epochs: int, progress: bool) -> None:
        self.checkpoint, self.space, self.epochs = checkpoint, space, epochs
        self.seen = self._epoch() if checkpoint.is_file() else 0  # resumed: the epochs done before
        self._stamp = self._mtime()
        self.bar = tqdm(total=epochs, initial=self.seen, desc="epochs (Ray Train)", unit="epoch", disable=not progress)

    def _mtime(self) -> float | None:
        return self.checkpoint.stat().st_mtime if self.checkpoint.is_file() else None

    def _epoch(self) -> int:
        return load_checkpoint(self.checkpoint, self.space)["epoch"]

    def poll(self) -> None:
        stamp = self._mtime()
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        history = load_checkpoint(self.checkpoint, self.space)["history"]
        for record in history[self.seen:]:
            log.info(epoch_line(record, self.epochs))
        self.bar.update(len(history) - self.seen)
        self.seen = len(history)

    def close(self) -> None:
        self.poll()
        self.bar.close()


def train_on_ray(space: HybridSpace, config: ExperimentConfig, checkpoint: Path, workers: int, resume: bool,
                 address: str | None, run_dir: Path, progress: bool = True) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from search_engine.runners.ray_runner import start_ray

    owns = start_ray(address, workers)
    try:
        threads = max(1, (os.cpu_count() or 1) // workers)
        setup = {"config": config, "space": space, "checkpoint": str(checkpoint.resolve()), "resume": resume,
                 "threads": threads}
        log.info("training on Ray Train: %d workers, gloo, %d torch thread(s) each", workers, threads)
        trainer = TorchTrainer(_worker_loop, train_loop_config=setup, torch_config=TorchConfig(backend="gloo"),
                               scaling_config=ScalingConfig(num_workers=workers, use_gpu=False),
                               run_config=RunConfig(name="train", storage_path=str((run_dir / "ray_train").resolve())))
        reporter = _EpochReporter(checkpoint, space, config.train.epochs, progress)
        try:
            _fit_off_the_main_thread(trainer, reporter.poll)
        finally:
            reporter.close()
    finally:
        if owns:
            import ray

            ray.shutdown()
