"""Shared fixtures: the preset spaces and the shipped NB201 table (loaded once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

from search_space.config import load_space

REPO = Path(__file__).resolve().parent.parent
NB201_CSV = REPO / "benchmarks" / "data" / "nb201" / "nb201_cifar10.csv"


@pytest.fixture(scope="session", params=["mnist_hybrid", "cifar_hybrid"])
def hybrid_space(request):
    return load_space(request.param)


@pytest.fixture(scope="session")
def mnist_space():
    return load_space("mnist_hybrid")


@pytest.fixture(scope="session")
def nb201_space():
    return load_space("nb201", str(NB201_CSV))


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """Run the CLI in process; return its exit code (argparse's too) and its stderr lines."""
    import search

    try:
        code = search.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip().splitlines()
