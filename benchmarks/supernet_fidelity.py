"""Does the supernet rank subnets like training them does? 20 random subnets, each trained from
scratch (quantization-aware, same short budget each), against their inherited-weight validation
accuracy after BN recalibration; prints both columns and the Kendall tau between them.

    python benchmarks/supernet_fidelity.py --run runs/demo --archs 20 --epochs 3
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictors import kendall_tau  # noqa: E402
from search_space import load_config  # noqa: E402
from supernet.calibration import accuracy, subnet_accuracy  # noqa: E402
from supernet.model import Supernet  # noqa: E402
from supernet.train import make_optimizer  # noqa: E402
from supernet.trained import load_trained  # noqa: E402


def train_alone(space, arch, data, cfg, epochs: int, seed: int) -> float:
    """A fresh net trained on ``arch`` only: the subnet from scratch, with the same fake quantization."""
    torch.manual_seed(seed)
    net = Supernet(space)
    opt = make_optimizer(net, cfg)
    steps = epochs * ((len(data.train) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    for epoch in range(epochs):
        net.train()
        for x, y in data.train.batches(cfg.batch_size, torch.Generator().manual_seed(seed + epoch), augment=True):
            opt.zero_grad()
            F.cross_entropy(net(x, arch), y, label_smoothing=cfg.label_smoothing).backward()
            opt.step()
            sched.step()
    return accuracy(net.eval(), data.val, arch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    config = load_config(Path(a.run) / "config.yaml")
    trained = load_trained(config, Path(a.run) / "supernet.pt")
    space, data, net = trained.space, trained.data, trained.supernet
    rng = np.random.default_rng(a.seed)
    archs = [space.sample(rng) for _ in range(a.archs)]
    start = time.perf_counter()
    inherited = [subnet_accuracy(net, arch, data.train, data.val, config.train.bn_batches) for arch in archs]
    t_inherited = time.perf_counter() - start
    start = time.perf_counter()
    scratch = [train_alone(space, arch, data, config.train, a.epochs, a.seed) for arch in archs]
    t_scratch = time.perf_counter() - start
    print(f"{'arch':<72}{'inherited':>10}{'scratch':>9}")
    for arch, i, s in zip(archs, inherited, scratch):
        print(f"{arch.to_str()[:70]:<72}{i:>10.2f}{s:>9.2f}")
    print(f"Kendall tau inherited vs from scratch ({a.epochs} epochs each): {kendall_tau(scratch, inherited):.3f} "
          f"(goal >= 0.7); time {t_inherited:.0f} s inherited vs {t_scratch:.0f} s from scratch "
          f"({t_scratch / max(t_inherited, 1e-9):.0f}x)")


if __name__ == "__main__":
    main()
