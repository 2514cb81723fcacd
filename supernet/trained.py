"""A trained supernet with the space and data set it was trained on, from a config and checkpoint."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from search_space.config import ExperimentConfig, load_space
from search_space.errors import ConfigError
from search_space.hybrid import HybridSpace
from supernet.checkpoint import load_checkpoint
from supernet.data import Dataset, load_dataset
from supernet.device import checked_device
from supernet.model import Supernet
from supernet.train import refuse_other_data, split_seed, supernet_from_state


@dataclass(frozen=True)
class Trained:
    space: HybridSpace
    data: Dataset
    supernet: Supernet


def load_trained(config: ExperimentConfig, checkpoint: Path, device: str | None = None) -> Trained:
    """The supernet on ``device`` (``--device``), else on the config's, with the data set split as it was
    trained (whatever the config's seed); refused if those are not the images it was trained on."""
    space = load_space(config.space, config.table)
    if not isinstance(space, HybridSpace):
        raise ConfigError(f"{config.source}: space {config.space!r} is a table; only hybrid spaces have a supernet")
    where = "--device" if device else f"{config.source}: device"
    target = checked_device(device or config.device, where)
    state, data = checked_data(config, space, checkpoint)
    return Trained(space, data, supernet_from_state(space, state, target))


def checked_data(config: ExperimentConfig, space: HybridSpace, checkpoint: Path) -> tuple[dict, Dataset]:
    """The checkpoint's state and the data set split as the supernet was trained (with the seed the checkpoint
    records, whatever the config's); a one-line error if those are not the images it was trained on."""
    state = load_checkpoint(checkpoint, space)
    data = load_dataset(config.data, space.input, split_seed(state, config.seed))
    refuse_other_data(checkpoint, state, data)
    return state, data
