"""Search efficiency on the NB201 table: every strategy, several seeds, one run.

Prints, per strategy: the median number of measured archs until the score (hypervolume
above 80 % accuracy relative to the true front, see nb201_score.py) reaches 0.99 (a run
that never does counts as the budget + 1 and is shown as ">budget"), the share of the true
front's distinct points above 80 % found after the budget (and the share a search can expect at best
without measuring a network twice), and the ratios to each baseline.

    python benchmarks/search_efficiency.py --seeds 10 --budget 500 --latency latency_raspi4_ms
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from benchmarks.nb201_score import NB201Score  # noqa: E402
from search_engine.evaluators import EVALUATORS  # noqa: E402
from search_engine.strategies import STRATEGIES  # noqa: E402
from search_space import Objective, load_space  # noqa: E402
from search_space.config import DEFAULT_NB201_TABLE  # noqa: E402

TARGET = 0.99


def one_run(args: tuple[str, int, int, str, str, int]) -> tuple[str, int, int, float, float, float]:
    name, seed, budget, latency, table, batch = args
    space = load_space("nb201", table)
    score = NB201Score(space, "test_acc", latency)
    objectives = (Objective("test_acc", "max"), Objective(latency, "min"))
    strategy = STRATEGIES.get(name)(space, objectives, seed=seed)
    evaluate = EVALUATORS.get("table")(space).evaluate
    reached, start = budget + 1, time.perf_counter()
    while len(strategy.measured) < budget:
        archs = strategy.ask(min(batch, budget - len(strategy.measured)))
        if not archs:
            break
        strategy.tell(archs, evaluate(archs))
        if reached > budget and score.score([v for _, v in strategy.measured]) >= TARGET:
            reached = len(strategy.measured)
    rows = [v for _, v in strategy.measured]
    return name, seed, reached, score.score(rows), score.front_share(rows), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=500)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--latency", default="latency_raspi4_ms")
    p.add_argument("--table", default=str(DEFAULT_NB201_TABLE))
    p.add_argument("--strategies", default=",".join(STRATEGIES.names()))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    names = a.strategies.split(",")
    tasks = [(n, s, a.budget, a.latency, a.table, a.batch) for n in names for s in range(a.seeds)]
    if a.jobs > 1:  # one BLAS thread per job, or the jobs' thread pools fight over the cores
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    # spawned (not forked) workers start their BLAS after the variables above are set
    with ProcessPoolExecutor(a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(one_run, tasks))
    rows = {}
    for name, seed, reached, score, share, seconds in results:
        rows.setdefault(name, []).append((reached, score, share, seconds))
    print(f"NB201 test_acc x {a.latency}, budget {a.budget}, batch {a.batch}, {a.seeds} seeds; "
          f"score = HV above 80 % / true HV")
    print(f"{'strategy':<14}{'median archs to 0.99':>22}{'runs reaching':>15}{'score @budget':>15}"
          f"{'front pts found':>17}{'s per run':>11}")
    medians = {}
    ceiling = NB201Score(load_space("nb201", a.table), "test_acc", a.latency).share_ceiling
    for name in names:
        r = np.array(rows[name])
        med = float(np.median(r[:, 0]))
        medians[name] = med
        shown = f">{a.budget}" if med > a.budget else f"{med:.0f}"
        print(f"{name:<14}{shown:>22}{int((r[:, 0] <= a.budget).sum()):>12}/{a.seeds:<2}{np.median(r[:, 1]):>15.4f}"
              f"{100 * np.median(r[:, 2]):>16.1f}%{np.median(r[:, 3]):>11.1f}")
    print(f"front points a search can expect without measuring a network twice (its copies look alike, see "
          f"nb201_score.py): {100 * ceiling:.1f}%")
    if "linas" in medians:
        scores = {n: float(np.median(np.array(rows[n])[:, 1])) for n in names}
        shares = {n: float(np.median(np.array(rows[n])[:, 2])) for n in names}
        for base in (n for n in names if n != "linas"):
            if max(medians[base], medians["linas"]) <= a.budget:
                archs = f"archs to 0.99 {medians[base] / medians['linas']:.2f}x fewer"
            elif medians["linas"] <= a.budget:
                archs = f"archs to 0.99 more than {(a.budget + 1) / medians['linas']:.2f}x fewer"
            else:
                archs = "linas did not reach 0.99 within the budget"
            points = f"{shares['linas'] / shares[base]:.2f}x" if shares[base] else f"{base} found none"
            print(f"linas vs {base}: {archs}; score at budget {scores['linas'] / scores[base]:.3f}x, "
                  f"front points {points}")

if __name__ == "__main__":
    run(main)
