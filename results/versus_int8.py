"""What a joint search of arch and bit-widths bought over quantizing the largest subnet to int8 (the comparison
SimQ-NAS reports): the front subnets at least as accurate on validation as the largest subnet at uniform int8, the
fastest and the smallest of them, and their ratios against it. Rows are a run's ``validated.csv`` (the front) and
``baselines.csv``, whose latency the validation phase timed together."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ANCHOR = "uniform int8 of the largest"  # the baseline the validation phase measures for this comparison


def _latency(row: Mapping) -> float | None:
    """The front's latency timed beside the baselines (``latency_ms_again``) where there is one."""
    value = row.get("latency_ms_again", row.get("latency_ms"))
    return None if value in (None, "") else float(value)


@dataclass(frozen=True)
class VersusInt8:
    anchor: Mapping
    fastest: Mapping | None  # None: no front subnet as accurate, or no latency measured
    smallest: Mapping | None  # None: no front subnet as accurate, or no size recorded

    @property
    def latency_ratio(self) -> float | None:
        return _latency(self.anchor) / _latency(self.fastest) if self.fastest else None

    @property
    def size_ratio(self) -> float | None:
        return float(self.anchor["size_mb"]) / float(self.smallest["size_mb"]) if self.smallest else None

    def sentence(self) -> str:
        a = self.anchor
        costs = [f"{latency:.3f} ms" for latency in [_latency(a)] if latency is not None]
        if "size_mb" in a:
            costs.append(f"{float(a['size_mb']):.4f} MB")
        head = f"against the largest subnet at uniform int8 ({float(a['accuracy']):.2f} % on validation, " \
            f"{', '.join(costs)})"
        if self.fastest is None and self.smallest is None:
            return f"{head}: no front subnet is as accurate"
        found = []
        if self.fastest:
            found.append(f"trial {int(self.fastest['trial'])} at {_latency(self.fastest):.3f} ms "
                         f"({self.latency_ratio:.2f}x lower latency)")
        if self.smallest:
            found.append(f"trial {int(self.smallest['trial'])} at {float(self.smallest['size_mb']):.4f} MB "
                         f"({self.size_ratio:.2f}x smaller)")
        return f"{head}, at least as accurate: {', '.join(found)}"


def versus_uniform_int8(front: Sequence[Mapping], baselines: Sequence[Mapping]) -> VersusInt8 | None:
    """None when the run has no such baseline (a space without 8 bits) or does not measure accuracy."""
    anchor = next((b for b in baselines if b.get("baseline") == ANCHOR), None)
    if anchor is None or anchor.get("accuracy") in (None, ""):
        return None
    peers = [f for f in front if float(f["accuracy"]) >= float(anchor["accuracy"])]
    timed = [f for f in peers if _latency(f) is not None] if _latency(anchor) is not None else []
    sized = [f for f in peers if f.get("size_mb") not in (None, "")] if "size_mb" in anchor else []
    return VersusInt8(anchor, min(timed, key=_latency, default=None),
                      min(sized, key=lambda f: float(f["size_mb"]), default=None))
