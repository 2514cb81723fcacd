"""How rare is a subnet both faster than the int8 largest by a given factor and as accurate as it?

`benchmarks/joint_vs_int8.py` asks a run's front for such a subnet. This asks the supernet itself,
with no search: it draws random archs, keeps those its lookup table (``lut_<profile>.json``, built by
`hynas run`) predicts at least ``--speedup`` times faster than the largest arch at uniform int8, and
scores some of them like the search does (inherited weights after BN recalibration), on the
validation split and, beside it, on the test split. A search can only find what this finds, so the
share of ties on validation says how often an 80-arch search will meet the goal, and the ties on
the test split say how many of them are really as accurate rather than lucky on 500 images.
Latency here is the table's prediction (within 10 % of measurement on 97 % of archs), not measured.

    python benchmarks/joint_ceiling.py --run runs/demo --score 1200
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_engine.deploy import run_config  # noqa: E402
from search_engine.evaluators.latency_lut import LutLatencyEvaluator  # noqa: E402
from search_engine.job import profiled_table  # noqa: E402
from search_space.config import load_hardware  # noqa: E402
from search_space.errors import ConfigError  # noqa: E402
from supernet.calibration import accuracy, calibrated  # noqa: E402
from supernet.trained import load_trained  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    p.add_argument("--speedup", type=float, default=4.5,
                   help="keep archs the table predicts this many times faster than the int8 largest "
                        "(a little below SimQ-NAS's 4.8x, for the table's error)")
    p.add_argument("--draws", type=int, default=20000, help="random archs timed by the table")
    p.add_argument("--score", type=int, default=400,
                   help="of the fast ones, how many to score (~0.25 s each on 2 cores)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    config = run_config(a.run)
    trained = load_trained(config, config.checkpoint_path(a.run))
    space, data, net, bn = trained.space, trained.data, trained.supernet, config.train.bn_batches
    profile = load_hardware(config.hardware[0])
    lut = Path(profile.lut) if profile.lut else profiled_table(a.run, profile.name)
    if not lut.is_file():
        raise ConfigError(f"{lut}: no latency table; `hynas profile --config {a.run / 'config.yaml'} --out {lut}` "
                         "makes one")
    table = LutLatencyEvaluator(space, replace(profile, lut=str(lut)))

    def latency(arch) -> float:
        return table.evaluate([arch])[0].values["latency_ms"]

    def accuracies(arch) -> tuple[float, float]:
        with calibrated(net, arch, data.train, bn):
            return accuracy(net, data.val, arch), accuracy(net, data.test, arch)

    anchor = space.uniform_int8(space.largest())
    if anchor is None:
        raise ConfigError(f"{a.run}: the space has no 8-bit weights and activations, so no uniform-int8 baseline")
    anchor_ms, (anchor_val, anchor_test) = latency(anchor), accuracies(anchor)
    print(f"largest at uniform int8: {anchor_ms:.3f} ms (table), validation {anchor_val:.2f} %, "
          f"test {anchor_test:.2f} %")
    rng = np.random.default_rng(a.seed)
    drawn = list(dict.fromkeys(space.sample(rng) for _ in range(a.draws)))
    fast = [arch for arch in tqdm(drawn, desc="timing", unit="arch") if latency(arch) * a.speedup <= anchor_ms]
    print(f"{len(fast)} of {len(drawn)} distinct random archs ({100 * len(fast) / len(drawn):.1f} %) are predicted "
          f">= {a.speedup:g}x faster")
    picked = [fast[i] for i in rng.permutation(len(fast))[: a.score]]
    if not picked:
        return
    scored = [(arch, *accuracies(arch)) for arch in tqdm(picked, desc="scoring", unit="arch")]
    val = np.array([s[1] for s in scored])
    test = np.array([s[2] for s in scored])
    ties = val >= anchor_val
    print(f"scored {len(scored)}: validation mean {val.mean():.2f} % (best {val.max():.2f}), test mean "
          f"{test.mean():.2f} % (best {test.max():.2f})")
    print(f"as accurate as the int8 largest on validation: {ties.sum()} ({100 * ties.mean():.2f} %); "
          f"of those also on the test split: {(test[ties] >= anchor_test).sum()}; "
          f"on both splits together: {((val + test) >= anchor_val + anchor_test).sum()}")
    for arch, v, t in sorted(scored, key=lambda s: -s[1])[:10]:
        print(f"  {anchor_ms / latency(arch):5.2f}x  validation {v:.2f}  test {t:.2f}  {arch.to_str()}")


if __name__ == "__main__":
    run(main)
