"""Predictor ranking quality on the NB201 table: Kendall tau on 3,000 held-out cells after fitting
on 100 random ones, per predictor and objective column, averaged over seeds; fit time per model.

    python benchmarks/predictors.py --seeds 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from predictors import PREDICTORS, kendall_tau  # noqa: E402
from search_space import load_space  # noqa: E402
from search_space.config import DEFAULT_NB201_TABLE  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--train", type=int, default=100)
    p.add_argument("--test", type=int, default=3000)
    p.add_argument("--columns", default="test_acc,latency_raspi4_ms,latency_eyeriss_ms")
    p.add_argument("--table", default=str(DEFAULT_NB201_TABLE))
    a = p.parse_args()
    space = load_space("nb201", a.table)
    X = np.stack([space.features(arch) for arch in space.table.archs])
    onehot = X[:, space.feature_views()["one-hot"]]  # the baseline: plain one-hot ops per edge
    names = PREDICTORS.names()
    columns = a.columns.split(",")
    print(f"Kendall tau on {a.test} held-out cells, fitted on {a.train}, mean of {a.seeds} seeds")
    print(f"{'predictor':<14}" + "".join(f"{c:>22}" for c in columns) + f"{'fit+predict s':>15}")
    table = {}
    for name in ["ridge (one-hot only)"] + names:
        taus, secs = [], []
        for col in columns:
            y = space.table.columns[col]
            col_taus = []
            for seed in range(a.seeds):
                idx = np.random.default_rng(seed).permutation(len(X))
                tr, te = idx[: a.train], idx[a.train: a.train + a.test]
                feats = onehot if name.startswith("ridge (") else X
                options = {"views": space.feature_views()} if name == "auto" else {}
                model = PREDICTORS.get(name.split(" ")[0])(seed=seed, **options)
                start = time.perf_counter()
                mean, _ = model.fit(feats[tr], y[tr]).predict(feats[te])
                secs.append(time.perf_counter() - start)
                col_taus.append(kendall_tau(y[te], mean))
            taus.append(float(np.mean(col_taus)))
        table[name] = taus
        print(f"{name:<14}" + "".join(f"{t:>22.3f}" for t in taus) + f"{np.mean(secs):>15.2f}")
    base = table["ridge (one-hot only)"]
    best = {c: max(table[n][i] for n in names) for i, c in enumerate(columns)}
    print("best vs one-hot ridge: " + ", ".join(f"{c} {best[c]:.3f} vs {base[i]:.3f} ({best[c] / base[i]:.2f}x)"
                                                 for i, c in enumerate(columns)))


if __name__ == "__main__":
    run(main)
