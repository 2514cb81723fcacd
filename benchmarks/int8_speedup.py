"""int8 vs fp32 in ONNX Runtime for subnets of a trained supernet, side by side in one run: latency
ratio, agreement of the int8 model's predictions with the fake-quantized subnet, and what one
arch costs to evaluate (accuracy, measured latency, LUT latency).

    python benchmarks/int8_speedup.py --run runs/demo --archs 20 --seed 0
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_engine.deploy import run_config  # noqa: E402
from search_engine.evaluators.accuracy import AccuracyEvaluator  # noqa: E402
from search_engine.evaluators.latency import LatencyEvaluator  # noqa: E402
from search_engine.latency_meter import time_interleaved  # noqa: E402
from search_space.config import load_hardware  # noqa: E402
from supernet import onnx_io  # noqa: E402
from supernet.calibration import Calibrator, calibrated  # noqa: E402
from supernet.trained import load_trained  # noqa: E402


def all_8_bit(space, arch):
    """The same arch with every 32-bit width lowered to 8 (so that it can run entirely in int8)."""
    return space.arch_from_str(arch.to_str().replace("w32", "w8").replace("a32", "a8"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--hardware", default="cpu_ort")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    config = run_config(a.run)
    trained = load_trained(config, a.run / "supernet.pt")
    space, net, data = trained.space, trained.supernet, trained.data
    hardware = load_hardware(a.hardware)
    rng = np.random.default_rng(a.seed)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(a.archs - 2)]
    archs = [all_8_bit(space, arch) for arch in archs]
    x1, images = data.val.images[:1].numpy(), data.val.images[:500]
    rows, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(archs):
            with calibrated(net, arch, data.train, config.train.bn_batches):
                simulated = net.extract(arch).eval()
                deployed = net.extract(arch, simulate_activations=False).eval()
            fp32 = onnx_io.export_onnx(deployed, torch.from_numpy(x1), Path(tmp) / f"{i}.onnx")
            int8 = onnx_io.quantize_int8(fp32, Path(tmp) / f"{i}q.onnx", data.train.images[:64].numpy(),
                                         ranges=simulated.activation_ranges())
            runs += [onnx_io.timed_call(onnx_io.session(path, hardware.threads), x1) for path in (fp32, int8)]
            with torch.no_grad():
                reference = simulated(images).argmax(1).numpy()
            agree = float((onnx_io.run(onnx_io.session(int8), images.numpy()).argmax(1) == reference).mean())
            rows.append([agree, sum(p.numel() for p in deployed.parameters())])
        # every fp32 and int8 model timed together, interleaved round by round (see latency_meter)
        best = [t.best_ms for t in time_interleaved(runs, hardware.warmup, hardware.rounds, hardware.round_ms)]
    rows = np.column_stack([best[0::2], best[1::2], np.array(rows)])
    print(f"{len(archs)} subnets of {space.name} at 8 bits (largest, smallest, random), ONNX Runtime, "
          f"{hardware.threads} thread, batch 1; reduce_range={onnx_io.REDUCE_RANGE}")
    print(f"{'params':>9s} {'fp32 ms':>8s} {'int8 ms':>8s} {'speedup':>8s} {'agree':>6s}")
    for fp, q, agree, params in rows[np.argsort(rows[:, 3])]:
        print(f"{int(params):9d} {fp:8.3f} {q:8.3f} {fp / q:7.2f}x {100 * agree:5.1f}%")
    print(f"median speedup {statistics.median(rows[:, 0] / rows[:, 1]):.2f}x; int8 agrees with the fake-quantized "
          f"subnet on {100 * rows[:, 2].mean():.1f} % of {len(images)} validation images "
          f"(min {100 * rows[:, 2].min():.1f} %)")
    # as in a search: one batch, accuracy first, the latency evaluator reusing its recalibrations
    calibrator = Calibrator(net, data.train, config.train.bn_batches)
    accuracy = AccuracyEvaluator(net, data, config.train.bn_batches, calibrator)
    latency = LatencyEvaluator(net, hardware, data.train, config.train.bn_batches, calibrator=calibrator)
    fresh = [space.sample(rng) for _ in range(10)]
    costs = {}
    for name, evaluator in (("accuracy", accuracy), ("latency (measured)", latency)):
        start = time.perf_counter()
        evaluator.evaluate(fresh)
        costs[name] = (time.perf_counter() - start) / len(fresh)
    print("evaluation cost per arch, a batch of 10: " + ", ".join(f"{k} {v:.2f} s" for k, v in costs.items())
          + f"; together {sum(costs.values()):.2f} s (goal < 2 s)")


if __name__ == "__main__":
    run(main)
