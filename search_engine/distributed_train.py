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
from pathlib import Path

from search_space.config import ExperimentConfig
from search_space.hybrid import HybridSpace

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


def train_on_ray(space: HybridSpace, config: ExperimentConfig, checkpoint: Path, workers: int, resume: bool,
                 address: str | None, run_dir: Path) -> None:
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
        trainer.fit()
    finally:
        if owns:
            import ray

            ray.shutdown()
