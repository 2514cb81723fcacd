"""Joint search of architecture and bit-widths vs uniform int8 (the SimQ-NAS comparison), from what
`hynas run` measured in one run on one machine: the largest subnet at uniform int8 against the
searched front subnet at least as accurate with the lowest latency (and the one with the smallest
size), and against the largest subnet at 32 bits (faster than int8 on CPUs where int8 does not pay);
then the same for every front arch at uniform int8. Accuracy is the validation split's, as in
the search; the test split's is printed beside it. Latency is the validation phase's, which timed the
front and its baselines together (``latency_ms_again``; the search's own value for older runs).

    python benchmarks/joint_vs_int8.py --run runs/demo
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from results.versus_int8 import versus_uniform_int8  # noqa: E402
from search_space.errors import ConfigError  # noqa: E402


def rows(path: Path) -> list[dict]:
    """The CSV's rows with numbers as floats; an empty cell (a column that runs measured before it
    was recorded lack, e.g. ``val_cross_entropy`` in a run resumed across versions) becomes None."""
    return [{k: (v if k in ("arch", "baseline") else float(v) if v != "" else None) for k, v in r.items()}
            for r in csv.DictReader(path.open())]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    a = p.parse_args()
    front = [{**f, "latency_ms": f.get("latency_ms_again", f["latency_ms"])} for f in rows(a.run / "validated.csv")]
    baselines = rows(a.run / "baselines.csv")
    largest = next(b for b in baselines if b["baseline"] == "largest")
    versus = versus_uniform_int8(front, baselines)  # the comparison `hynas run` prints and reports
    if versus is None:
        raise ConfigError(f"{a.run}/baselines.csv has no uniform-int8 version of the largest arch")
    anchor = versus.anchor
    print(f"largest subnet at uniform int8: validation {anchor['accuracy']:.2f} % "
          f"(test {anchor['test_accuracy']:.2f} %), "
          f"{anchor['latency_ms']:.3f} ms, {anchor['size_mb']:.4f} MB")
    if versus.fastest and versus.smallest:
        fast, small = versus.fastest, versus.smallest
        print(f"searched, at least as accurate: fastest trial {int(fast['trial'])} {fast['accuracy']:.2f} % "
              f"(test {fast['test_accuracy']:.2f} %) {fast['latency_ms']:.3f} ms -> "
              f"{versus.latency_ratio:.2f}x lower latency; smallest trial {int(small['trial'])} "
              f"{small['size_mb']:.4f} MB -> {versus.size_ratio:.2f}x smaller (SimQ-NAS: 4.8x and 3.4x)")
    else:
        print("no searched front subnet is as accurate as the largest subnet at uniform int8")
    # On CPUs where int8 runs slower than float (these small nets, docs/experiments.md), the 32-bit largest is the
    # faster deployment of the same arch: the ratio against it is the honest one to quote beside.
    peers = [f for f in front if f["accuracy"] >= largest["accuracy"]]
    if peers:
        fast = min(peers, key=lambda f: f["latency_ms"])
        print(f"against the largest subnet at 32 bits ({largest['accuracy']:.2f} %, {largest['latency_ms']:.3f} ms): "
              f"trial {int(fast['trial'])} {fast['latency_ms']:.3f} ms -> "
              f"{largest['latency_ms'] / fast['latency_ms']:.2f}x lower latency")
    print()
    int8 = [b for b in baselines if b["baseline"].startswith("uniform int8")]
    print(f"{'uniform int8 baseline':34s} {'acc':>6s} {'ms':>7s} {'MB':>8s} | {'searched ms':>11s} {'x':>6s} | "
          f"{'searched MB':>11s} {'x':>6s}")
    speedups, shrinks = [], []
    for b in sorted(int8, key=lambda r: -r["accuracy"]):
        peers = [f for f in front if f["accuracy"] >= b["accuracy"]]
        if not peers:
            print(f"{b['baseline']:34s} {b['accuracy']:6.1f}  (no searched subnet as accurate)")
            continue
        fast = min(peers, key=lambda f: f["latency_ms"])
        small = min(peers, key=lambda f: f["size_mb"])
        speedups.append(b["latency_ms"] / fast["latency_ms"])
        shrinks.append(b["size_mb"] / small["size_mb"])
        print(f"{b['baseline']:34s} {b['accuracy']:6.1f} {b['latency_ms']:7.3f} {b['size_mb']:8.4f} | "
              f"{fast['latency_ms']:11.3f} {speedups[-1]:5.2f}x | {small['size_mb']:11.4f} {shrinks[-1]:5.2f}x")
    if speedups:
        print(f"at equal or better validation accuracy, the searched front is "
              f"{statistics.median(speedups):.2f}x faster "
              f"(max {max(speedups):.2f}x) and {statistics.median(shrinks):.2f}x smaller (max {max(shrinks):.2f}x) "
              f"than the same archs at uniform int8 (medians over {len(speedups)} baselines)")


if __name__ == "__main__":
    run(main)
