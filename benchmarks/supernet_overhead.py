"""Cost of weight sharing: one training step of the supernet on its largest arch vs the same
arch extracted and trained standalone, on the same batch, timed side by side in one run.

Both run their body in channels-last memory format (faster depthwise convolutions on CPU; the
extracted model keeps the supernet's layout so that it reproduces it bit for bit), so the overhead
of weight sharing is read like for like.

    python benchmarks/supernet_overhead.py --space mnist_hybrid --repeats 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.entry import run  # noqa: E402
from search_space import load_space  # noqa: E402
from supernet.model import Supernet  # noqa: E402


def step_time(forward, params, x, y, repeats: int) -> float:
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(forward(x), y).backward()
        opt.step()
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mnist_hybrid")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30)
    a = p.parse_args()
    torch.manual_seed(0)
    space = load_space(a.space)
    net = Supernet(space).train()
    arch = space.largest()
    x = torch.randn(a.batch, space.input.channels, space.input.size, space.input.size)
    y = torch.randint(0, space.input.classes, (a.batch,))
    with torch.no_grad():
        net(x, arch)  # initializes activation ranges
    standalone = net.extract(arch).train()  # fresh torch modules with the supernet's weights: trainable
    rows = []
    for _ in range(3):  # interleave them so that machine noise hits both alike
        rows.append((step_time(lambda t: net(t, arch), net.parameters(), x, y, a.repeats),
                     step_time(standalone, standalone.parameters(), x, y, a.repeats)))
    sup, alone = (statistics.median(r[i] for r in rows) for i in range(2))
    print(f"training step, largest arch of {a.space}, batch {a.batch}, median of {3 * a.repeats}:")
    print(f"  supernet     {1000 * sup:8.1f} ms")
    print(f"  standalone   {1000 * alone:8.1f} ms (extracted: weights fake-quantized once, no elastic slicing)")
    print(f"  ratio supernet / standalone: {sup / alone:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    run(main)
