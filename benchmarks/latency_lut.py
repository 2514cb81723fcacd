"""Latency lookup table vs measured latency, on random subnets of a space, side by side in one run.

Profiles the space on this machine (or reuses --lut), then measures N random subnets twice, each
time all of them interleaved round by round (``search_engine.latency_meter``). The
second measurement is the noise ceiling: no predictor can agree with a measurement better than
the measurement agrees with itself. This shared VM also runs faster or slower as a whole from one
minute to the next (by up to 10-20 %, docs/experiments.md), which no table profiled earlier can know; the rows
"up to the machine's speed" divide that out (one factor, the median ratio) to show how well the
table ranks and proportions subnets.

    python benchmarks/latency_lut.py --space mnist_hybrid --hardware cpu_ort --archs 100 --seed 0
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from predictors.metrics import kendall_tau  # noqa: E402
from search_engine.latency_meter import LatencyMeter  # noqa: E402
from search_engine.profiling import profile_space  # noqa: E402
from search_space import load_space  # noqa: E402
from search_space.config import load_hardware  # noqa: E402
from supernet.model import Supernet  # noqa: E402


def agreement(predicted: np.ndarray, measured: np.ndarray) -> tuple[float, float, float]:
    """Share within +-10 %, Kendall tau, median absolute relative error."""
    rel = np.abs(predicted - measured) / measured
    return float(np.mean(rel <= 0.10)), kendall_tau(predicted, measured), float(np.median(rel))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mnist_hybrid")
    p.add_argument("--hardware", default="cpu_ort")
    p.add_argument("--archs", type=int, default=100)
    p.add_argument("--lut", type=Path, help="an existing table (default: profile now)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    space, hardware = load_space(a.space), load_hardware(a.hardware)
    start = time.perf_counter()
    if a.lut is None:
        a.lut = Path(tempfile.mkdtemp()) / "lut.json"
        table = profile_space(space, hardware, a.lut, seed=a.seed)
    else:
        from predictors.lut import LatencyTable

        table = LatencyTable.load(a.lut, space)
    profiling = time.perf_counter() - start
    meter, net = LatencyMeter(hardware), Supernet(space).eval()
    rng = np.random.default_rng(a.seed + 1)  # other archs than the ones the constant was fitted on
    archs = [space.sample(rng) for _ in range(a.archs)]
    workloads = [meter.subnet_workload(net.extract(arch, simulate_activations=False), space, arch) for arch in archs]
    # Both passes time all subnets interleaved (the protocol of every measurement, see latency_meter);
    # the second pass, later in time, is the noise ceiling.
    first, second = ([t.best_ms for t, _ in meter.measure_many(workloads)] for _ in range(2))
    first, second = np.array(first), np.array(second)
    predicted = np.array([table.predict(space, arch, hardware.runs_int8) for arch in archs])
    print(f"{a.space} on {hardware.name} ({hardware.backend}, {hardware.threads} thread, batch {hardware.batch_size}): "
          f"{len(table.layers)} layers profiled in {profiling:.0f} s; {a.archs} random subnets, "
          f"measured {first.min():.3f}-{first.max():.3f} ms")
    print(f"{'':48s} {'within +-10%':>13s} {'Kendall tau':>12s} {'median error':>13s}")
    for name, pred in (("LUT vs measurement", predicted), ("re-measurement (ceiling)", second)):
        factor = float(np.median(first / pred))
        for label, values in ((name, pred), (f"  up to the machine's speed (x {factor:.3f})", pred * factor)):
            share, tau, err = agreement(values, first)
            print(f"{label:48s} {100 * share:12.1f}% {tau:12.3f} {100 * err:12.1f}%")


if __name__ == "__main__":
    run(main)
