"""The ``SearchSpace`` protocol every space implements (``HybridSpace``, ``TabularSpace``)."""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SearchSpace(Protocol):
    """A finite set of archs with an integer genome.

    ``decode(encode(a)) == a`` for every arch ``a``; ``features`` gives predictors a float vector,
    and ``feature_views`` names groups of its columns (each a view a predictor may use alone);
    ``size`` is the exact number of distinct archs; archs with equal ``network`` compute the same
    function with the same operations (a second one measures only noise).
    """

    name: str

    def sample(self, rng: np.random.Generator) -> Any: ...
    def contains(self, arch: object) -> bool: ...
    def encode(self, arch: Any) -> np.ndarray: ...
    def decode(self, genes: Any) -> Any: ...
    def bounds(self) -> tuple[np.ndarray, np.ndarray]: ...
    def genes(self) -> dict[str, tuple]: ...
    def features(self, arch: Any) -> np.ndarray: ...
    def feature_views(self) -> dict[str, np.ndarray]: ...
    def size(self) -> int: ...
    def arch_from_str(self, text: str) -> Any: ...
    def describe(self, arch: Any) -> str: ...
    def network(self, arch: Any) -> Hashable: ...


def column_views(parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns each named part fills when the parts are concatenated in order (a space's
    ``feature_views``, derived from the parts of any one arch, so no offset is written by hand)."""
    sizes = [len(part) for part in parts.values()]
    ends = np.cumsum(sizes, dtype=int)
    return {name: np.arange(end - size, end) for name, size, end in zip(parts, sizes, ends)}
