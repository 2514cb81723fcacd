"""Engine overhead of one round with many archs measured: ``ask`` (predictor fits, inner search,
batch selection) after telling each strategy the same random archs of the NB201 table, timed
side by side in one run. linas's first round includes ``auto``'s cross-validated choice of
models (re-made after the measured archs grow by half, so not again within these rounds at
500), so the mean over the rounds is the cost to compare; the median shows a plain round.

    python benchmarks/engine_overhead.py --measured 500 --rounds 10
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_engine.evaluators import EVALUATORS  # noqa: E402
from search_engine.strategies import STRATEGIES  # noqa: E402
from search_space import Objective, load_space  # noqa: E402
from search_space.config import DEFAULT_NB201_TABLE  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measured", type=int, default=500)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--table", default=str(DEFAULT_NB201_TABLE))
    a = p.parse_args()
    space = load_space("nb201", a.table)
    evaluate = EVALUATORS.get("table")(space).evaluate
    objectives = (Objective("test_acc", "max"), Objective("latency_raspi4_ms", "min"))
    rng = np.random.default_rng(0)
    picks = rng.choice(len(space.table.archs), a.measured, replace=False)
    history = [space.table.archs[i] for i in picks]
    print(f"seconds per ask({a.batch}) with {a.measured} archs measured, over {a.rounds} rounds:")
    print(f"  {'strategy':<12}{'first':>8}{'median':>8}{'mean':>8}")
    times = {}
    for name in ("linas", "optuna-tpe", "nsga2", "random"):
        strategy = STRATEGIES.get(name)(space, objectives, seed=0)
        strategy.tell(history, evaluate(history))
        samples = []
        for _ in range(a.rounds):
            start = time.perf_counter()
            archs = strategy.ask(a.batch)
            samples.append(time.perf_counter() - start)
            strategy.tell(archs, evaluate(archs))
        times[name] = statistics.mean(samples)
        print(f"  {name:<12}{samples[0]:8.2f}{statistics.median(samples):8.2f}{times[name]:8.2f}")
    print(f"linas / optuna-tpe (means): {times['linas'] / times['optuna-tpe']:.1f}x "
          f"(goal for linas: under 5 s per round)")


if __name__ == "__main__":
    run(main)
