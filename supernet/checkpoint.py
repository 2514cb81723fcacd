"""Supernet checkpoints: written atomically, loaded with ``weights_only=True``, checked against the space.

A checkpoint is a plain dict of tensors and Python values:
``format``, ``space`` (the space as plain data), ``model``, ``optimizer``, ``epoch`` (epochs
completed), ``history`` (per-epoch metrics), ``train`` (the training config), ``seed``, ``data``
(``fingerprint`` and split sizes of the images trained on; absent in checkpoints of older versions).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from search_space.errors import CheckpointError
from search_space.files import atomic_write
from search_space.hybrid import HybridSpace
from search_space.schema import to_plain

FORMAT = "hynas-supernet-1"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def load_checkpoint(path: Path, space: HybridSpace) -> dict[str, Any]:
    """Load and validate a checkpoint of ``space``; any problem is a one-line ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train the supernet there first (hynas train --out "
                              f"{path.parent}), or name a trained one with `checkpoint:` in the config")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch.load's own message is a page of advice
        raise CheckpointError(f"{path}: corrupt or not a hynas checkpoint (not a complete torch archive; "
                              "hynas train writes one as supernet.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or not a hynas checkpoint ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a hynas supernet checkpoint (format {FORMAT} expected)")
    if state.get("space") != to_plain(space):
        raise CheckpointError(f"{path}: checkpoint of space {state.get('space', {}).get('name')!r} with other choices "
                              f"than space {space.name!r}; train for this space or pass its own checkpoint")
    return state
