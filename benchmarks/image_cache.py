"""Reading an image folder: decoded every time (cache off) against read back from the image cache.

Times, side by side in one run, loading the folder as every command does (``supernet.data.load_dataset``:
listing, decoding or reading back, normalizing, splitting) with ``HYNAS_CACHE_DIR=off``, with an empty
cache (decode and store), and with the entry that run stored (read back), and checks that all three give
the same tensors. Without ``--folder`` it writes ``--images`` synthetic 500x375 JPEGs (the
size of a typical photo data set) into a temporary folder first.

    python benchmarks/image_cache.py --images 2000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_space.config import DataConfig  # noqa: E402
from search_space.hybrid import InputSpec  # noqa: E402
from supernet.data import Dataset, load_dataset  # noqa: E402


def synthetic_jpegs(root: Path, images: int, classes: int = 4, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 500)[None, :, None] * np.ones((375, 1, 3))
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = ramp * rng.uniform(0.3, 1, 3) + rng.normal(0, 20, (375, 500, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)


def timed(folder: Path, size: int, cache: str) -> tuple[float, Dataset]:
    os.environ["HYNAS_CACHE_DIR"] = cache
    classes = sum(1 for d in folder.iterdir() if d.is_dir())
    start = time.perf_counter()
    data = load_dataset(DataConfig(dataset="folder", path=str(folder)), InputSpec(3, size, classes), seed=0)
    return time.perf_counter() - start, data


def same(a: Dataset, b: Dataset) -> bool:
    return all(torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
               for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, help="a folder of class subfolders of images (default: synthetic JPEGs)")
    p.add_argument("--images", type=int, default=2000, help="synthetic JPEGs to write when no --folder is given")
    p.add_argument("--size", type=int, default=32, help="the side the images are resized to")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = a.folder or Path(scratch) / "images"
        if a.folder is None:
            synthetic_jpegs(folder, a.images, seed=a.seed)
        cache = str(Path(scratch) / "cache")
        off, plain = timed(folder, a.size, "off")
        cold, stored = timed(folder, a.size, cache)
        warm, read_back = timed(folder, a.size, cache)
    assert same(plain, stored) and same(plain, read_back), "the cache changed the pixels"
    images = sum(len(split.labels) for split in (plain.train, plain.val, plain.test))
    print(f"{images} images of {folder}: decoded {off:.2f} s (cache off), decoded and stored {cold:.2f} s, "
          f"read back {warm:.3f} s -> {off / warm:.0f}x faster; identical tensors")


if __name__ == "__main__":
    run(main)
