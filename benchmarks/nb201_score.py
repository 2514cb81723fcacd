"""The NB201 search score of benchmarks/data/nb201/README.md: hypervolume above 80 % accuracy.

points: x = test_acc / 100 (max), y = latency / max latency of the table (min);
reference (x = 0.80, y = 1); score = HV(measured) / HV(all cells).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from results.pareto import hypervolume, pareto_mask
from search_space.tabular import TabularSpace

ACC_REFERENCE = 0.80


class NB201Score:
    def __init__(self, space: TabularSpace, accuracy: str, latency: str) -> None:
        self.space, self.accuracy, self.latency = space, accuracy, latency
        cols = space.table.columns
        self.lat_max = float(cols[latency].max())
        self.reference = np.array([-ACC_REFERENCE, 1.0])
        F = self.points(cols[accuracy], cols[latency])
        self.true_hv = hypervolume(F, self.reference)
        front = pareto_mask(F) & (cols[accuracy] / 100 > ACC_REFERENCE)
        self.front_points = {tuple(p) for p in F[front]}
        self.share_ceiling = self._share_ceiling(F, front)

    def points(self, acc, lat) -> np.ndarray:
        return np.stack([-np.asarray(acc, float) / 100, np.asarray(lat, float) / self.lat_max], axis=1)

    def score(self, rows) -> float:
        F = self.points([r[self.accuracy] for r in rows], [r[self.latency] for r in rows])
        return hypervolume(F, self.reference) / self.true_hv

    def front_share(self, rows) -> float:
        """Share of the true front's distinct points above 80 % that ``rows`` contain."""
        F = self.points([r[self.accuracy] for r in rows], [r[self.latency] for r in rows])
        return len(self.front_points & {tuple(p) for p in F}) / len(self.front_points)

    def _share_ceiling(self, F: np.ndarray, front: np.ndarray) -> float:
        """The front share a search can expect if it measures no network twice (``SearchSpace.network``: the
        same live and compiled ops), even one that measures exactly the networks holding front points: of a
        network's copies it measures one, and nothing tells the copies apart, so each holds its front points
        with the chance they make up of its copies. A point two cells share counts once (as in front_share), with the
        better of their chances."""
        networks = [self.space.network(a) for a in self.space.table.archs]
        copies = Counter(networks)
        chance: dict[tuple, float] = {}
        for network, point, on_front in zip(networks, map(tuple, F), front):
            if on_front:
                chance[point] = max(chance.get(point, 0.0), 1 / copies[network])
        return sum(chance.values()) / len(self.front_points)
