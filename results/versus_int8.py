"""What a joint search of arch and bit-widths bought over quantizing the largest subnet to int8 (the comparison
SimQ-NAS reports): the front subnets at least as accurate on validation as the largest subnet at uniform int8, the
fastest and the smallest of them, and their ratios against it. Rows are a run's ``validated.csv`` (the front) and
``baselines.csv``, whose latency the validation phase timed together."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ANCHOR = "uniform int8 of the largest"  # the baseline the validation phase measures for this comparison


def _latency_key(row: Mapping) -> str | None:
    """The run's first latency column: ``latency_ms``, or ``latency_ms@<profile>`` of the first profile searched."""
    return next((k for k in row if k.startswith("latency_ms") and not k.endswith("_again")), None)


def _number(row: Mapping, key: str | None) -> float | None:
    value = row.get(key) if key else None
    return None if value in (None, "") else float(value)


def _timed(row: Mapping, latency: str | None) -> float | None:
    """A front row's ``latency`` as the validation phase timed it beside the baselines (``*_again``) where it did."""
    if latency is None:
        return None
    again = _number(row, f"{latency}_again")
    return again if again is not None else _number(row, latency)


@dataclass(frozen=True)
class VersusInt8:
    anchor: Mapping
    latency: str | None  # the latency column compared (None: the run times no latency)
    fastest: Mapping | None  # None: no front subnet as accurate, or no latency measured
    smallest: Mapping | None  # None: no front subnet as accurate, or no size recorded

    @property
    def latency_ratio(self) -> float | None:
        return _number(self.anchor, self.latency) / _timed(self.fastest, self.latency) if self.fastest else None

    @property
    def size_ratio(self) -> float | None:
        return float(self.anchor["size_mb"]) / float(self.smallest["size_mb"]) if self.smallest else None

    def _ms(self, value: float) -> str:
        profile = self.latency.partition("@")[2] if self.latency else ""
        return f"{value:.3f} ms" + (f" on {profile}" if profile else "")

    def sentence(self) -> str:
        a = self.anchor
        costs = [self._ms(latency) for latency in [_number(a, self.latency)] if latency is not None]
        if "size_mb" in a:
            costs.append(f"{float(a['size_mb']):.4f} MB")
        head = f"against the largest subnet at uniform int8 ({float(a['accuracy']):.2f} % on validation, " \
            f"{', '.join(costs)})"
        if self.fastest is None and self.smallest is None:
            return f"{head}: no front subnet is as accurate"
        found = []
        if self.fastest:
            found.append(f"trial {int(self.fastest['trial'])} at {self._ms(_timed(self.fastest, self.latency))} "
                         f"({self.latency_ratio:.2f}x lower latency)")
        if self.smallest:
            found.append(f"trial {int(self.smallest['trial'])} at {float(self.smallest['size_mb']):.4f} MB "
                         f"({self.size_ratio:.2f}x smaller)")
        return f"{head}, at least as accurate: {', '.join(found)}"


def versus_uniform_int8(front: Sequence[Mapping], baselines: Sequence[Mapping]) -> VersusInt8 | None:
    """None when there is nothing to compare: no such baseline (a space without 8 bits), no accuracy measured, or
    neither latency nor size recorded."""
    anchor = next((b for b in baselines if b.get("baseline") == ANCHOR), None)
    if anchor is None or _number(anchor, "accuracy") is None:
        return None
    key = _latency_key(anchor)
    latency = key if _number(anchor, key) is not None else None
    if latency is None and "size_mb" not in anchor:
        return None
    peers = [f for f in front if float(f["accuracy"]) >= float(anchor["accuracy"])]
    timed = [f for f in peers if _timed(f, latency) is not None]
    sized = [f for f in peers if _number(f, "size_mb") is not None] if "size_mb" in anchor else []
    return VersusInt8(anchor, latency, min(timed, key=lambda f: _timed(f, latency), default=None),
                      min(sized, key=lambda f: float(f["size_mb"]), default=None))
