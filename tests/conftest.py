"""Shared fixtures: the preset spaces and the shipped NB201 table (loaded once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search_space.config import load_space

REPO = Path(__file__).resolve().parent.parent
NB201_CSV = REPO / "benchmarks" / "data" / "nb201" / "nb201_cifar10.csv"


@pytest.fixture(scope="session", autouse=True)
def image_cache_in_a_temporary_folder(tmp_path_factory):
    """Decoded image folders (supernet.image_cache) go to a folder of this session, not the user's ~/.cache;
    set before any Ray worker starts, so that workers inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYNAS_CACHE_DIR", str(tmp_path_factory.mktemp("image-cache")))
        yield


@pytest.fixture(scope="session", params=["mnist_hybrid", "cifar_hybrid"])
def hybrid_space(request):
    return load_space(request.param)


@pytest.fixture(scope="session")
def mnist_space():
    return load_space("mnist_hybrid")


@pytest.fixture(scope="session")
def nb201_space():
    return load_space("nb201", str(NB201_CSV))


def free_port() -> int:
    """A local TCP port nothing listens on once this returns: connecting there is refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """Run the CLI in process; return its exit code (argparse's too) and its stderr lines."""
    import search

    try:
        code = search.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip().splitlines()


TINY = {
    "name": "tiny", "space": "mnist_hybrid", "hardware": ["fast_torch"], "seed": 0,
    "data": {"dataset": "mnist5k", "limit": 1000},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.05, "bn_batches": 2},
    "search": {"objectives": ["accuracy:max", "latency_ms:min", "size_mb:min"], "budget": 8, "batch_size": 4,
               "initial": 4, "strategy": "linas"},
}
FAST_TORCH = {"name": "fast_torch", "backend": "torch", "threads": 1, "warmup": 1, "rounds": 1, "round_ms": 1}
FAST_ORT = {"name": "fast_ort", "backend": "onnxruntime", "threads": 1, "warmup": 1, "rounds": 2, "round_ms": 1,
            "calibration_images": 32}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A supernet trained for 3 epochs on 800 digits (shared by the tests that need trained weights),
    with fast hardware profiles beside its config. Returns (folder, run folder)."""
    import search

    folder = tmp_path_factory.mktemp("tiny")
    for profile in (FAST_TORCH, FAST_ORT):
        (folder / f"{profile['name']}.yaml").write_text(yaml.safe_dump(profile))
    config = dict(TINY, hardware=[str(folder / "fast_torch.yaml")])
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    run = folder / "run"
    assert search.main(["train", "--config", str(folder / "tiny.yaml"), "--out", str(run), "-q"]) == 0
    return folder, run


def write_trained_config(tiny_run, folder: Path, name: str, **search) -> Path:
    """A config that searches the tiny trained supernet (its checkpoint given, so nothing is trained) for
    accuracy, ONNX Runtime latency and size, with ``search`` overriding the search section."""
    _, trained_run = tiny_run
    (folder / "fast_ort.yaml").write_text(yaml.safe_dump(FAST_ORT))
    config = dict(TINY, name=name, hardware=[str(folder / "fast_ort.yaml")],
                  checkpoint=str(trained_run / "supernet.pt"), search={**TINY["search"], **search})
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return folder / f"{name}.yaml"
