"""Evaluation throughput of the Ray runner with 1 and 2 workers against the local runner, in one run,
on the same archs of a trained supernet's space (accuracy + ONNX Runtime latency + size).

    python benchmarks/ray_scaling.py --run runs/demo --archs 24

Worker start-up (loading the supernet and data set) is timed apart from throughput: it is paid once
per worker per search. Every evaluation runs on one torch thread, in the driver (local) as in each
Ray worker, so the comparison is of the same work.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_engine.deploy import run_config  # noqa: E402
from search_engine.job import EvaluatorRecipe  # noqa: E402
from search_engine.runners import RUNNERS  # noqa: E402
from search_space import load_space  # noqa: E402


def throughput(runner_name: str, recipe, archs, workers: int) -> tuple[float, float]:
    start = time.perf_counter()
    runner = RUNNERS.get(runner_name)(recipe, workers=workers)
    if runner_name == "ray":
        runner.worker_pids()  # wait until every worker has built its evaluator
    ready = time.perf_counter() - start
    start = time.perf_counter()
    done = sum(1 for _ in runner.submit(archs))
    per_minute = 60 * done / (time.perf_counter() - start)
    runner.close()
    return per_minute, ready


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    p.add_argument("--archs", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    config = run_config(a.run)
    import ray
    import torch

    torch.set_num_threads(1)  # as each Ray worker does: one core per evaluation, the same work on both sides
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    recipe = EvaluatorRecipe(config, a.run)
    space = load_space(config.space)
    rng = np.random.default_rng(a.seed)
    # The same archs for every configuration: each runner builds its own evaluators, so no cache carries over, and
    # fresh archs per configuration made the ratios differ by which subnets (large or small) each one drew.
    archs = [space.sample(rng) for _ in range(a.archs)]
    rows = [(name, workers, *throughput(name, recipe, archs, workers))
            for name, workers in (("local", 1), ("ray", 1), ("ray", 2))]
    ray.shutdown()
    local = rows[0][2]
    print(f"{a.archs} archs per configuration, {config.space}, objectives {', '.join(config.search.objectives)}, "
          f"hardware {', '.join(config.hardware)}")
    print(f"{'runner':8s} {'workers':>7s} {'archs/min':>10s} {'vs local':>9s} {'start-up s':>11s}")
    for name, workers, per_minute, ready in rows:
        print(f"{name:8s} {workers:7d} {per_minute:10.1f} {per_minute / local:8.2f}x {ready:11.1f}")
    print(f"2 workers vs 1: {rows[2][2] / rows[1][2]:.2f}x; Ray overhead with 1 worker: "
          f"{100 * (1 - rows[1][2] / local):.1f} %")


if __name__ == "__main__":
    run(main)
