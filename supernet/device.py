"""Checking a configured torch device before any work: one clear line instead of a CUDA traceback
halfway through a run."""
from __future__ import annotations

import torch

from search_space.errors import ConfigError


def checked_device(name: str, where: str) -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``), if this machine has it;
    a ``ConfigError`` that starts with ``where`` (file and field) otherwise."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{where}: {name!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{where}: {name!r}, but torch {torch.__version__} sees no CUDA GPU here; use cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{where}: {name!r}, but this machine has {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{where}: 'mps' is not available on this machine; use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{where}: {name!r} is not supported; use cpu, cuda, cuda:N or mps")
    return device
