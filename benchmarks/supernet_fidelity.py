"""Does the supernet rank subnets like training them does? 20 random subnets, each trained from
scratch (quantization-aware, same short budget each), against their inherited-weight accuracy after
BN recalibration; prints both columns and the Kendall tau between them.

The tau is also printed on both held-out splits together (validation + test) and on cross-entropy
instead of top-1, next to how reproducible each ranking is at all: the inherited ranking on the
validation split against the same subnets' ranking on the test split. On a few hundred images
top-1 steps one image at a time, so no fidelity above that ceiling can be measured. With
``--ref-seeds 2`` or more, each subnet is trained alone once per seed, the reference is their mean,
and the first two seeds' rankings against each other show how reproducible the reference is.

    python benchmarks/supernet_fidelity.py --run runs/demo --archs 20 --epochs 3
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from predictors import kendall_tau  # noqa: E402
from search_engine.deploy import run_config  # noqa: E402
from supernet.calibration import Scores, calibrated, scores  # noqa: E402
from supernet.model import Supernet  # noqa: E402
from supernet.train import make_optimizer  # noqa: E402
from supernet.trained import load_trained  # noqa: E402


def train_alone(space, arch, data, cfg, epochs: int, seed: int) -> tuple[Scores, Scores]:
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
    net.eval()
    return scores(net, data.val, arch), scores(net, data.test, arch)


def inherited(net, arch, data, bn_batches: int) -> tuple[Scores, Scores]:
    """Validation and test scores of ``arch`` with the supernet's weights (the search's accuracy objective)."""
    with calibrated(net, arch, data.train, bn_batches):
        return scores(net, data.val, arch), scores(net, data.test, arch)


def pooled(val: Scores, test: Scores, n_val: int, n_test: int) -> Scores:
    """The scores on validation and test images together."""
    n = n_val + n_test
    return Scores((val.accuracy * n_val + test.accuracy * n_test) / n, (val.nll * n_val + test.nll * n_test) / n)


def mean_scores(scores: list[Scores]) -> Scores:
    """The mean of several trainings' scores on one split."""
    return Scores(float(np.mean([s.accuracy for s in scores])), float(np.mean([s.nll for s in scores])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ref-seeds", type=int, default=1, help="training seeds per subnet trained alone (mean taken)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of the subnets trained alone (default: the run's train.lr); fix it "
                        "to compare supernets trained at other rates against one reference")
    a = p.parse_args()
    if a.ref_seeds < 1:
        p.error("--ref-seeds must be at least 1")
    config = run_config(a.run)
    alone_cfg = config.train if a.lr is None else replace(config.train, lr=a.lr)
    trained = load_trained(config, Path(a.run) / "supernet.pt")
    space, data, net = trained.space, trained.data, trained.supernet
    rng = np.random.default_rng(a.seed)
    archs = [space.sample(rng) for _ in range(a.archs)]
    start = time.perf_counter()
    mine = [inherited(net, arch, data, config.train.bn_batches) for arch in archs]
    t_inherited = time.perf_counter() - start
    start = time.perf_counter()
    runs = [[train_alone(space, arch, data, alone_cfg, a.epochs, a.seed + k) for arch in archs]
            for k in range(a.ref_seeds)]
    t_scratch = time.perf_counter() - start
    alone = [tuple(mean_scores([run[i][split] for run in runs]) for split in (0, 1)) for i in range(len(archs))]
    n_val, n_test = len(data.val), len(data.test)
    mine_all = [pooled(v, t, n_val, n_test) for v, t in mine]
    alone_all = [pooled(v, t, n_val, n_test) for v, t in alone]
    print(f"{'arch':<60}{'inherited %':>14}{'scratch %':>14}{'inherited CE':>14}{'scratch CE':>14}")
    print(f"{'':<60}{'(validation)':>14}{'(validation)':>14}{'(val. + test)':>14}{'(val. + test)':>14}")
    for arch, (iv, _), (sv, _), i_all, s_all in zip(archs, mine, alone, mine_all, alone_all):
        print(f"{arch.to_str()[:58]:<60}{iv.accuracy:>14.2f}{sv.accuracy:>14.2f}{i_all.nll:>14.4f}{s_all.nll:>14.4f}")

    def tau(xs, ys, key):
        return kendall_tau([getattr(x, key) for x in xs], [getattr(y, key) for y in ys])

    print(f"\nKendall tau, inherited vs from scratch ({a.epochs} epochs each at peak lr {alone_cfg.lr:g}), "
          f"{len(archs)} subnets (goal >= 0.7):")
    rows = [(f"top-1 on the validation split ({n_val} images, as the search sees it)",
             tau([v for v, _ in mine], [v for v, _ in alone], "accuracy")),
            (f"top-1 on validation + test ({n_val + n_test} images)", tau(mine_all, alone_all, "accuracy")),
            ("cross-entropy on validation + test", tau(mine_all, alone_all, "nll"))]
    for label, value in rows:
        print(f"  {label:<72}{value:.3f}")
    print("Ceiling: inherited ranking on the validation split vs on the test split (same subnets):")
    print(f"  top-1 {tau([v for v, _ in mine], [t for _, t in mine], 'accuracy'):.3f}, "
          f"cross-entropy {tau([v for v, _ in mine], [t for _, t in mine], 'nll'):.3f}")
    if a.ref_seeds >= 2:
        first, second = ([pooled(v, t, n_val, n_test) for v, t in run] for run in runs[:2])
        print(f"Reference: subnets trained alone with seed {a.seed} vs seed {a.seed + 1} (val. + test):")
        print(f"  top-1 {tau(first, second, 'accuracy'):.3f}, cross-entropy {tau(first, second, 'nll'):.3f}")
    print(f"time {t_inherited:.0f} s inherited vs {t_scratch:.0f} s from scratch "
          f"({t_scratch / max(t_inherited, 1e-9):.0f}x)")


if __name__ == "__main__":
    run(main)
