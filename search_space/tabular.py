"""Tabular spaces: NAS-Bench-201 cells with their measured values read from a CSV.

A cell is a DAG of 4 nodes; each of its 6 edges carries one of 5 operations. The
canonical string lists the edges into nodes 1, 2 and 3::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|

Any CSV with an ``arch`` column in that format and numeric columns is a table; each
numeric column but the row key ``index`` (NB201's cell number) can be an objective.
"""
from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from search_space.errors import DataError, SearchSpaceError
from search_space.protocol import column_views

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to_node, from_node) of each of the 6 edges, in the order of the canonical string.
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
# The 4 input-to-output paths as edge indices: 0->3, 0->1->3, 0->2->3, 0->1->2->3.
NB201_PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


@dataclass(frozen=True)
class CellArch:
    """An NB201 cell: the operation on each of the 6 edges."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(NB201_EDGES):
            raise SearchSpaceError(f"a cell has {len(NB201_EDGES)} edges, got {len(self.ops)}")
        for op in self.ops:
            if op not in NB201_OPS:
                raise SearchSpaceError(f"unknown cell operation {op!r}; allowed: {', '.join(NB201_OPS)}")

    def to_str(self) -> str:
        nodes = []
        for to_node in (1, 2, 3):
            edges = [f"{op}~{src}" for op, (dst, src) in zip(self.ops, NB201_EDGES) if dst == to_node]
            nodes.append("|" + "|".join(edges) + "|")
        return "+".join(nodes)

    @classmethod
    def from_str(cls, text: str) -> CellArch:
        ops, expected = [], iter(NB201_EDGES)
        for node, part in enumerate(text.strip().split("+"), start=1):
            for token in part.strip("|").split("|"):
                op, _, src = token.partition("~")
                if next(expected, None) != (node, int(src) if src.isdigit() else -1):
                    raise SearchSpaceError(f"cannot parse cell {text!r}: edge {token!r} is out of place")
                ops.append(op)
        return cls(tuple(ops))

    def live_edges(self) -> frozenset[int]:
        """Edges on some input-to-output path with no 'none' on it (the rest cannot affect the output)."""
        return frozenset(e for path in NB201_PATHS if all(self.ops[i] != "none" for i in path) for e in path)

    def output_edges(self) -> frozenset[int]:
        """The edges a graph compiler keeps: those whose result reaches the output through no 'none'.

        Unlike ``live_edges`` this keeps an op whose *input* is cut off (it still runs, on zeros),
        and drops every edge when the output does not depend on the input (the cell folds to a
        constant). Devices measured through such a compiler pay for these ops, not for all.
        """
        feeds_output = {3}
        for e in reversed(range(len(NB201_EDGES))):  # edges are ordered by destination node
            to_node, from_node = NB201_EDGES[e]
            if to_node in feeds_output and self.ops[e] != "none":
                feeds_output.add(from_node)
        if 0 not in feeds_output:
            return frozenset()
        return frozenset(e for e, (to_node, _) in enumerate(NB201_EDGES)
                         if to_node in feeds_output and self.ops[e] != "none")

    def network(self) -> tuple:
        """What the cell computes and runs: the op of every live edge ('none' elsewhere) and the count of each
        op a compiler keeps. Cells with equal networks are copies (NB201 trained and timed each separately, so
        their rows differ by noise only): the 15,625 cells of the shipped table hold 11,021 networks."""
        live, kept = self.live_edges(), self.output_edges()
        return (tuple(op if e in live else "none" for e, op in enumerate(self.ops)),
                tuple(sorted(Counter(self.ops[e] for e in kept).items())))

    def __str__(self) -> str:
        return self.to_str()


@dataclass(frozen=True)
class Table:
    """Rows of a benchmark CSV: arch strings and numeric columns."""

    source: str
    archs: tuple[CellArch, ...]
    columns: dict[str, np.ndarray] = field(hash=False)

    @cached_property
    def row_of(self) -> dict[CellArch, int]:
        return {a: i for i, a in enumerate(self.archs)}

    @cached_property
    def network_of(self) -> dict[CellArch, tuple]:
        """``CellArch.network`` of every cell, computed once: ``linas`` asks it of every candidate it weighs."""
        return {a: a.network() for a in self.archs}

    def values(self, arch: CellArch) -> dict[str, float]:
        row = self.row_of[arch]
        return {name: float(col[row]) for name, col in self.columns.items()}

    def digest(self, names: Sequence[str]) -> str:
        """A digest of each cell's values in the columns ``names``: what a search of those columns measures. The
        row order, the file's path and the other columns (another device's, added later) do not enter it."""
        digest = hashlib.blake2b(digest_size=8)
        order, texts = self._rows_by_arch
        for name in sorted(set(names)):
            column = self.columns[name].tolist()
            digest.update(f"[{name}]".encode())
            digest.update("\n".join(f"{texts[i]}={column[i]!r}" for i in order).encode())
        return digest.hexdigest()

    @cached_property
    def _rows_by_arch(self) -> tuple[list[int], list[str]]:
        texts = [a.to_str() for a in self.archs]
        return sorted(range(len(texts)), key=texts.__getitem__), texts


# Columns that name a row rather than measure it: offering NB201's cell number as an objective invites nonsense.
KEY_COLUMNS = ("arch", "index")


def load_table(path: str | Path) -> Table:
    """Read a CSV with an ``arch`` column of NB201 cell strings plus numeric columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: benchmark table not found (expected a CSV with an 'arch' column)")
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows, header = list(reader), reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the table: {err}") from None
    if "arch" not in header:
        separated = "" if len(header) != 1 else f" (its header is one field, {header[0][:60]!r}: columns must be " \
                                                "separated by commas)"
        raise DataError(f"{path}: no 'arch' column{separated}; a table needs NB201 cell strings in a column named "
                        "'arch'")
    if not rows:
        raise DataError(f"{path}: the table has a header but no rows")
    names = [c for c in rows[0] if c not in KEY_COLUMNS]
    archs, numeric = [], {c: [] for c in names}
    first_line: dict[CellArch, int] = {}
    for line, row in enumerate(rows, start=2):
        try:
            arch = CellArch.from_str(row["arch"])
        except SearchSpaceError as err:
            raise DataError(f"{path}: line {line}: {err}") from None
        if first_line.setdefault(arch, line) != line:
            raise DataError(f"{path}: line {line}: the cell of line {first_line[arch]} again; each cell once")
        archs.append(arch)
        for c in names:
            try:
                numeric[c].append(float(row[c]))
            except (TypeError, ValueError):
                numeric[c].append(math.nan)
    columns = {c: np.asarray(v) for c, v in numeric.items() if not np.isnan(v).all()}
    if not columns:
        raise DataError(f"{path}: no numeric column to use as an objective")
    return Table(str(path), tuple(archs), columns)


def feature_parts(arch: CellArch) -> dict[str, np.ndarray]:
    """A cell's predictor features in named parts (the views of ``TabularSpace.feature_views``):

    - ``one-hot``: the op on each edge;
    - ``ops-every-edge`` and ``ops-feeding-output``: the count of each op (skip, conv 1x1,
      conv 3x3, pool) over every edge and over ``output_edges``;
    - ``live-structure``: the same counts over live edges; whether any path is live; per
      input-to-output path its convolutions and 3x3 convolutions (-1 if the path is cut); and
      over live paths the most convolutions, the most 3x3 convolutions, whether one is an
      identity, how many there are, and the most 3x3 windows (conv or pool) along one.

    The counts are what costs: an op costs the same on any edge, and which edges run depends on
    the device (an accelerator runs every edge, a compiler prunes what cannot reach the output).
    Depth along live paths is what accuracy follows. A predictor uses the part that ranks its
    objective best.
    """
    onehot = np.zeros((len(NB201_EDGES), len(NB201_OPS)))
    onehot[np.arange(len(NB201_EDGES)), [NB201_OPS.index(op) for op in arch.ops]] = 1.0

    def counts(edges) -> np.ndarray:
        return onehot[sorted(edges)].sum(axis=0)[1:]  # without 'none'

    convs, convs3, windows = [], [], []
    for path in NB201_PATHS:
        ops = [arch.ops[e] for e in path]
        cut = "none" in ops
        convs.append(-1 if cut else sum(op.startswith("nor_conv") for op in ops))
        convs3.append(-1 if cut else ops.count("nor_conv_3x3"))
        windows.append(-1 if cut else ops.count("nor_conv_3x3") + ops.count("avg_pool_3x3"))
    live_paths = sum(c >= 0 for c in convs)
    identity = any(all(arch.ops[e] == "skip_connect" for e in path) for path in NB201_PATHS)
    return {
        "one-hot": onehot.ravel(),
        "ops-every-edge": counts(range(len(NB201_EDGES))),
        "ops-feeding-output": counts(arch.output_edges()),
        "live-structure": np.concatenate([
            counts(arch.live_edges()), [float(live_paths > 0)], convs, convs3,
            [max(convs), max(convs3), float(identity), float(live_paths), max(windows)]]),
    }


@dataclass(frozen=True)
class TabularSpace:
    """The NB201 cell space restricted to the cells of a table. Genes: one op index per edge."""

    name: str
    table: Table = field(hash=False, compare=False)

    def sample(self, rng: np.random.Generator) -> CellArch:
        return self.table.archs[int(rng.integers(len(self.table.archs)))]

    def contains(self, arch: object) -> bool:
        return isinstance(arch, CellArch) and arch in self.table.row_of

    def validate(self, arch: CellArch) -> CellArch:
        if not self.contains(arch):
            raise SearchSpaceError(f"cell {arch} is not in table {self.table.source}")
        return arch

    def arch_from_str(self, text: str) -> CellArch:
        return self.validate(CellArch.from_str(text))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(NB201_EDGES)
        return np.zeros(n, dtype=np.int64), np.full(n, len(NB201_OPS) - 1, dtype=np.int64)

    def genes(self) -> dict[str, tuple]:
        """The operation on each edge, named as the arch string writes it (``node1~0``: node 1's input from
        node 0), with its choices."""
        return {f"node{to}~{src}": NB201_OPS for to, src in NB201_EDGES}

    def encode(self, arch: CellArch) -> np.ndarray:
        return np.asarray([NB201_OPS.index(op) for op in arch.ops], dtype=np.int64)

    def decode(self, genes) -> CellArch:
        genes = [int(g) for g in genes]
        if len(genes) != len(NB201_EDGES) or not all(0 <= g < len(NB201_OPS) for g in genes):
            raise SearchSpaceError(f"genome {genes} is not 6 op indices in 0..{len(NB201_OPS) - 1}")
        return CellArch(tuple(NB201_OPS[g] for g in genes))

    def size(self) -> int:
        return len(self.table.archs)

    def features(self, arch: CellArch) -> np.ndarray:
        """The parts of ``feature_parts`` end to end."""
        return np.concatenate(list(feature_parts(arch).values()))

    def feature_views(self) -> dict[str, np.ndarray]:
        """Each part of ``feature_parts`` as the columns it fills in ``features``."""
        return column_views(feature_parts(CellArch(("none",) * len(NB201_EDGES))))

    def describe(self, arch: CellArch) -> str:
        return arch.to_str()

    def network(self, arch: CellArch) -> tuple:
        return self.table.network_of.get(arch) or arch.network()
