"""Pareto-front and hypervolume plots (PNG), for one run or several side by side.

For each pair of objectives: every measured arch (light dots), the front of that pair as a step
line, per run; baselines (e.g. the largest and smallest subnet, uniform int8) as labelled markers
with their own front dashed; for a benchmark table, its exact front as a thin gray line. Hypervolume
over measurements uses one reference point for all runs given (their worst values plus a margin), so
the curves are comparable.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from results.pareto import hypervolume, pareto_mask, reference_from, to_min_form  # noqa: E402
from search_space.files import atomic_write  # noqa: E402
from search_space.objectives import Constraint, Objective, meets  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


@dataclass(frozen=True)
class Series:
    """Points to plot: a run's measured archs (in measurement order), or a baseline's. A run's front and
    hypervolume count only the archs meeting its constraints, as its ``pareto.csv`` and logged hypervolume do."""

    label: str
    rows: Sequence[Mapping[str, float]]
    constraints: Sequence[Constraint] = ()

    def feasible(self) -> np.ndarray:
        return np.array([meets(r, self.constraints) for r in self.rows], dtype=bool)


def _front_2d(points: np.ndarray, x: Objective, y: Objective) -> np.ndarray:
    """The non-dominated points of (x, y), sorted along x."""
    F = points * np.array([x.sign, y.sign])
    front = points[pareto_mask(F)]
    return front[np.argsort(front[:, 0])]


def _step(ax, front: np.ndarray, x: Objective, y: Objective, **style) -> None:
    # A staircase through the front: what each x buys at best.
    where = "pre" if (x.direction == "min") == (y.direction == "max") else "post"
    ax.step(front[:, 0], front[:, 1], where=where, **style)


def outlying_front(values: np.ndarray, objective: Objective, max_share: float = 0.1) -> np.ndarray:
    """Mask of front values cut off at the objective's worse end by a gap over four times the span of
    the rest, when they are at most ``max_share`` of the front (at least one).

    Such points squash what a reader looks at: on NB201 a cell whose input never reaches its output
    (10 % accuracy, near-zero latency) is on the front, 74 points left of the others, which span 8.
    A front's own costly end (the most accurate subnet, twice as slow as the next) stays."""
    order = np.sort(values * objective.sign)  # min form: the worse end is the high end
    if len(order) < 3 or order[-1] == order[0]:
        return np.zeros(len(values), dtype=bool)
    gaps = np.diff(order)
    cut = int(np.argmax(gaps))
    outliers = len(order) - cut - 1
    if gaps[cut] <= 4 * (order[cut] - order[0]) or outliers > max(1, int(max_share * len(order))):
        return np.zeros(len(values), dtype=bool)
    return values * objective.sign > order[cut]


def _focus(ax, fronts: Sequence[np.ndarray], x: Objective, y: Objective) -> None:
    """Zoom onto the fronts without their outlying points (``outlying_front``, judged within each run's own front:
    runs compared side by side each bring their own such point) and say what is off the axes."""
    if not fronts:
        return
    every = np.vstack(fronts)
    hidden = np.concatenate([outlying_front(f[:, 0], x) | outlying_front(f[:, 1], y) for f in fronts])
    if not hidden.any() or hidden.all():
        return
    shown = every[~hidden]
    limits = []
    for values, set_limits in ((shown[:, 0], ax.set_xlim), (shown[:, 1], ax.set_ylim)):
        low, high = values.min(), values.max()
        pad = 0.08 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
        limits.append((low - pad, high + pad))
        set_limits(*limits[-1])
    (x_low, x_high), (y_low, y_high) = limits
    inside = (every[:, 0] >= x_low) & (every[:, 0] <= x_high) & (every[:, 1] >= y_low) & (every[:, 1] <= y_high)
    off = np.unique(every[~inside], axis=0)  # another run's front may reach where this run's outlier lies
    if len(off):
        note = ", ".join(f"({px:.4g}, {py:.4g})" for px, py in off[:3])
        ax.annotate(f"{len(off)} front point(s) off the axes: {note}", xy=(0.01, 0.01),
                    xycoords="axes fraction", fontsize=7, color="dimgray")


def plot_pairs(runs: Sequence[Series], objectives: Sequence[Objective], folder: Path,
               baselines: Sequence[Series] = (), true_front: Series | None = None) -> list[Path]:
    """``true_front``: the exact front of a benchmark table, drawn under the runs' fronts as what they aim at."""
    out = []
    for x, y in combinations(objectives, 2):
        fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
        fronts = []
        if true_front is not None and true_front.rows:
            front = _front_2d(np.array([[r[x.name], r[y.name]] for r in true_front.rows]), x, y)
            fronts.append(front)
            _step(ax, front, x, y, color="gray", lw=1, alpha=0.8, label=f"{true_front.label} ({len(front)})")
            ax.scatter(front[:, 0], front[:, 1], s=8, color="gray", alpha=0.8, zorder=2)
        for i, run in enumerate(runs):
            pts, ok = np.array([[r[x.name], r[y.name]] for r in run.rows]), run.feasible()
            color = COLORS[i % len(COLORS)]
            ax.scatter(pts[ok, 0], pts[ok, 1], s=12, alpha=0.3, color=color,
                       label=f"{run.label}: measured ({int(ok.sum())})")
            if not ok.all():
                ax.scatter(pts[~ok, 0], pts[~ok, 1], s=12, alpha=0.5, color="gray", marker="x",
                           label=f"{run.label}: outside {', '.join(map(str, run.constraints))} ({int((~ok).sum())})")
            if not ok.any():
                continue
            front = _front_2d(pts[ok], x, y)
            fronts.append(front)
            _step(ax, front, x, y, color=color, lw=1.8, label=f"{run.label}: front ({len(front)})")
            ax.scatter(front[:, 0], front[:, 1], s=22, color=color, zorder=3)
        for j, base in enumerate(baselines):
            pts = np.array([[r[x.name], r[y.name]] for r in base.rows])
            color, marker = "black", "*^sXD"[j % 5]
            # earlier baselines on top: the smallest arch and its uniform-int8 twin often share a point
            ax.scatter(pts[:, 0], pts[:, 1], s=110 if marker == "*" else 60, marker=marker, color=color,
                       zorder=4 + len(baselines) - j, edgecolors="white", linewidths=0.6, label=base.label)
            if len(pts) > 2:
                _step(ax, _front_2d(pts, x, y), x, y, color=color, lw=1, ls="--")
        _focus(ax, fronts, x, y)
        ax.set_xlabel(x.label())
        ax.set_ylabel(y.label())
        ax.set_title(f"{y.name} vs {x.name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = folder / f"pareto_{x.name}_{y.name}.png".replace("@", "-")
        atomic_write(path, lambda fh: fig.savefig(fh, format="png"))  # noqa: B023 - called at once
        plt.close(fig)
        out.append(path)
    return out


def hypervolume_curves(runs: Sequence[Series], objectives: Sequence[Objective]) -> tuple[list[np.ndarray], np.ndarray]:
    """Per run, the hypervolume after each measurement, in the box from the best value of each objective
    over all runs (0) to one reference point for all runs (1), so that 1 is unreachable and runs compare."""
    everything = to_min_form([r for run in runs for r in run.rows], objectives)
    reference, ideal = reference_from(everything), everything.min(axis=0)
    scale = np.where(reference > ideal, reference - ideal, 1.0)
    curves = []
    for run in runs:
        F, ok = (to_min_form(run.rows, objectives) - ideal) / scale, run.feasible()
        prefixes = (F[:n][ok[:n]] for n in range(1, len(F) + 1))
        curves.append(np.array([hypervolume(P[pareto_mask(P)], np.ones(len(objectives))) if len(P) else 0.0
                                for P in prefixes]))
    return curves, reference


def curve_labels(runs: Sequence[Series]) -> tuple[list[str], str]:
    """The legend's label per run and the constraints the title names. Each curve counts only the archs within its
    run's own constraints: the title names them when every run has the same, each label otherwise (a run without
    constraints is not "within" another run's)."""
    limits = [", ".join(sorted(map(str, run.constraints))) for run in runs]
    if len(set(limits)) == 1:
        return [run.label for run in runs], limits[0]
    return [f"{run.label}, within {within}" if within else run.label for run, within in zip(runs, limits)], ""


def plot_hypervolume(runs: Sequence[Series], objectives: Sequence[Objective], folder: Path) -> Path:
    curves, _ = hypervolume_curves(runs, objectives)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    labels, shared = curve_labels(runs)
    for i, (label, curve) in enumerate(zip(labels, curves)):
        # a line style per run as well: runs that start alike (same seed, same first batch) overlap, and a solid
        # line drawn over another hid it
        ax.plot(np.arange(1, len(curve) + 1), curve, color=COLORS[i % len(COLORS)], lw=1.8, label=label,
                ls=("-", "--", ":", "-.")[i % 4])
    ax.set_xlabel("archs measured")
    ax.set_ylabel("hypervolume (normalized objectives, higher is better)")
    # two lines: three objectives with long table column names overflow one
    ax.set_title("hypervolume of the measured front\n" + ", ".join(str(o) for o in objectives)
                 + (f"; within {shared}" if shared else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = folder / "hypervolume.png"
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)
    return path
