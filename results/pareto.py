"""Pareto fronts and hypervolume over objective values (pymoo's sorting and HV).

Everything here works on a matrix ``F`` in *minimization form*: each objective
multiplied by its ``Objective.sign``, so that lower is better in every column.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from search_space.objectives import Objective


def to_min_form(rows: Sequence[Mapping[str, float]], objectives: Sequence[Objective]) -> np.ndarray:
    """Objective values of each row, as a (rows, objectives) matrix to minimize."""
    F = np.array([[r[o.name] * o.sign for o in objectives] for r in rows], dtype=float)
    return F.reshape(len(rows), len(objectives))


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` (exact ties are all kept)."""
    mask = np.zeros(len(F), dtype=bool)
    if len(F):
        mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def nondominated_ranks(F: np.ndarray) -> np.ndarray:
    """Front index of every row: 0 for the Pareto front, 1 for the next, ..."""
    ranks = np.empty(len(F), dtype=int)
    for r, front in enumerate(NonDominatedSorting().do(F)):
        ranks[front] = r
    return ranks


def hypervolume(F: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``F`` and bounded by ``reference`` (rows beyond it count for nothing)."""
    F = np.asarray(F, dtype=float)
    inside = F[np.all(F < reference, axis=1)] if len(F) else F
    if not len(inside):
        return 0.0
    return float(HV(ref_point=np.asarray(reference, dtype=float))(inside))


def reference_from(F: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The worst value of each column plus ``margin`` times the column's range (min form)."""
    worst, best = F.max(axis=0), F.min(axis=0)
    span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1.0))
    return worst + margin * span


def hypervolume_gains(front: np.ndarray, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each row of ``points`` would add, alone, to ``front`` (min form).

    Two objectives take an exact vectorized path (the front's staircase as segments); more
    fall back to pymoo's HV per point.
    """
    reference = np.asarray(reference, float)
    front = np.asarray(front, float).reshape(-1, len(reference))
    points = np.asarray(points, float)
    front = front[np.all(front < reference, axis=1)]
    if len(reference) != 2:
        base = hypervolume(front, reference)
        return np.array([hypervolume(np.vstack([front, p]), reference) - base for p in points])
    front = front[pareto_mask(front)]
    order = np.argsort(front[:, 0])
    starts = np.concatenate([[-np.inf], front[order, 0]])  # staircase segment k covers [starts[k], ends[k])
    ends = np.concatenate([front[order, 0], [reference[0]]])
    heights = np.minimum.accumulate(np.concatenate([[reference[1]], front[order, 1]]))
    x = np.maximum(points[:, :1], starts[None, :])
    width = np.clip(ends[None, :] - x, 0.0, None)
    height = np.clip(heights[None, :] - points[:, 1:2], 0.0, None)
    return (width * height).sum(axis=1)
