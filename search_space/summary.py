"""A human-readable summary of a search space (``hynas space info``)."""
from __future__ import annotations

import numpy as np

from search_space.costs import arch_costs
from search_space.hybrid import HybridSpace
from search_space.tabular import TabularSpace


def _cost_line(space: HybridSpace, arch) -> str:
    c = arch_costs(space, arch)
    return f"params {c.params:,}  MACs {c.macs:,}  BitOps {c.bitops:.3g}  size {c.size_mb:.4f} MB"


def space_summary(space: HybridSpace | TabularSpace, rng: np.random.Generator, samples: int = 3) -> str:
    """Size, genome length, extremes with their costs (hybrid) or columns (tabular), and random samples."""
    lower, upper = space.bounds()
    lines = [f"space {space.name}: {space.size():,} distinct archs, genome of {len(upper)} genes"]
    if isinstance(space, HybridSpace):
        q = space.quantization
        lines.append(f"input {space.input.channels}x{space.input.size}x{space.input.size}, "
                     f"{space.input.classes} classes; "
                     f"stem {space.stem.channels} ch, stride {space.stem.stride}; bits: weights {list(q.weight_bits)}, "
                     f"activations {list(q.act_bits)}, stem/head {q.stem_head_bits}")
        for i, s in enumerate(space.stages):
            conv = f" kernel {list(s.kernel)} expand {list(s.expand)}" if "conv" in s.blocks else ""
            attn = f" heads {list(s.heads)} mlp_ratio {list(s.mlp_ratio)}" if "attn" in s.blocks else ""
            lines.append(f"  stage {i}: depth {list(s.depth)} width {list(s.width)} blocks {list(s.blocks)}"
                         f"{conv}{attn} stride {s.stride}")  # only the choices its block types use
        for label, arch in (("largest", space.largest()), ("smallest", space.smallest())):
            lines += [f"{label}: {arch.to_str()}", f"  {_cost_line(space, arch)}"]
        for i in range(samples):
            arch = space.sample(rng)
            lines += [f"sample {i}: {arch.to_str()}", f"  {_cost_line(space, arch)}"]
    else:
        lines.append(f"table {space.table.source}; numeric columns: {', '.join(space.table.columns)}")
        for i in range(samples):
            arch = space.sample(rng)
            values = ", ".join(f"{k}={v:g}" for k, v in space.table.values(arch).items())
            lines += [f"sample {i}: {arch.to_str()}", f"  {values}"]
    return "\n".join(lines)
