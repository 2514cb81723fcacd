"""Accuracy of a trained supernet's subnets on the validation split, and what quantization costs.

Loads a checkpoint (default: the demo run's) and prints the validation accuracy of the largest
and the smallest arch, then, for the largest arch and a few random ones, the accuracy at
32 bits, 8 bits and 4-bit weights (8-bit activations) side by side, all after BN recalibration.

    python benchmarks/supernet_quality.py --run runs/demo
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_engine.deploy import run_config  # noqa: E402
from search_space import Arch, StageArch  # noqa: E402
from supernet.calibration import subnet_accuracy  # noqa: E402
from supernet.trained import load_trained  # noqa: E402


def at_bits(arch: Arch, wbits: int, abits: int) -> Arch:
    return Arch(tuple(StageArch(s.width, tuple(replace(layer, wbits=wbits, abits=abits) for layer in s.layers))
                      for s in arch.stages))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--archs", type=int, default=5, help="random archs besides the largest")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    config = run_config(a.run)
    trained = load_trained(config, Path(a.run) / "supernet.pt")
    space, data, net = trained.space, trained.data, trained.supernet
    bn = config.train.bn_batches

    def acc(arch):
        return subnet_accuracy(net, arch, data.train, data.val, bn)

    print(f"supernet {a.run}: validation accuracy largest {acc(space.largest()):.2f} %, "
          f"smallest {acc(space.smallest()):.2f} %")
    q = space.quantization
    rng = np.random.default_rng(a.seed)
    print(f"{'arch':<70}{'32-bit':>8}{'W8A8':>8}{'W4A8':>8}{'8 vs 32':>9}{'4 vs 32':>9}")
    gaps8, gaps4 = [], []
    for arch in [space.largest()] + [space.sample(rng) for _ in range(a.archs)]:
        full = acc(at_bits(arch, 32, 32)) if 32 in q.weight_bits and 32 in q.act_bits else float("nan")
        a8 = acc(at_bits(arch, 8, 8)) if 8 in q.weight_bits and 8 in q.act_bits else float("nan")
        a4 = acc(at_bits(arch, 4, 8)) if 4 in q.weight_bits and 8 in q.act_bits else float("nan")
        gaps8.append(full - a8)
        gaps4.append(full - a4)
        name = at_bits(arch, 32, 32).to_str()
        print(f"{name[:68]:<70}{full:>8.2f}{a8:>8.2f}{a4:>8.2f}{full - a8:>+9.2f}{full - a4:>+9.2f}")
    print(f"mean accuracy drop from 32 bits: W8A8 {np.nanmean(gaps8):.2f} points, W4A8 {np.nanmean(gaps4):.2f} points")


if __name__ == "__main__":
    run(main)
