"""A trained supernet with the space and data set it was trained on, from a config and checkpoint."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from search_space.config import ExperimentConfig, load_space
from search_space.errors import ConfigError
from search_space.hybrid import HybridSpace
from supernet.data import Dataset, load_dataset
from supernet.device import checked_device
from supernet.model import Supernet
from supernet.train import load_supernet


@dataclass(frozen=True)
class Trained:
    space: HybridSpace
    data: Dataset
    supernet: Supernet


def load_trained(config: ExperimentConfig, checkpoint: Path, device: str | None = None) -> Trained:
    """The supernet on ``device`` (``--device``), else on the config's."""
    space = load_space(config.space, config.table)
    if not isinstance(space, HybridSpace):
        raise ConfigError(f"{config.source}: space {config.space!r} is a table; only hybrid spaces have a supernet")
    where = "--device" if device else f"{config.source}: device"
    data = load_dataset(config.data, space.input, config.seed)
    net = load_supernet(space, checkpoint, checked_device(device or config.device, where), data)
    return Trained(space, data, net)
