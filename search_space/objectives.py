"""Objectives, constraints and measured metrics: the vocabulary shared by every layer."""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from search_space.errors import ConfigError, did_you_mean

Direction = Literal["min", "max"]

# Built-in objectives of hybrid spaces: default direction and unit.
HYBRID_OBJECTIVES: dict[str, tuple[Direction, str]] = {
    "accuracy": ("max", "%"),
    "latency_ms": ("min", "ms"),
    "size_mb": ("min", "MB"),
    "bitops": ("min", "BitOps"),
    "macs": ("min", "MACs"),
    "params": ("min", "params"),
}
ANALYTIC_OBJECTIVES = ("size_mb", "bitops", "macs", "params")  # known before any measurement
# A table's columns carry no units; these name endings say them (NB201: ``test_acc``, ``latency_raspi4_ms``).
UNIT_SUFFIXES = {"_acc": "%", "_ms": "ms", "_s": "s", "_mb": "MB"}
# What a measured objective of a hybrid space can be at all (lowest, highest, in words): a limit outside it is a typo.
MEASURED_RANGES: dict[str, tuple[float, float, str]] = {
    "accuracy": (0.0, 100.0, "between 0 and 100 %"), "latency_ms": (math.ulp(0.0), math.inf, "above 0 ms")}


def unit_of_column(name: str) -> str:
    """The unit a benchmark table's column name implies by its ending; "" when it implies none."""
    return next((unit for suffix, unit in UNIT_SUFFIXES.items() if name.lower().endswith(suffix)), "")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Direction
    unit: str = ""

    @property
    def sign(self) -> float:
        """Multiply a value by this to turn the objective into one to minimize."""
        return 1.0 if self.direction == "min" else -1.0

    @property
    def base(self) -> str:
        """The name without a hardware profile suffix: ``latency_ms@pi4`` -> ``latency_ms``."""
        return self.name.split("@", 1)[0]

    def label(self) -> str:
        arrow = "lower is better" if self.direction == "min" else "higher is better"
        return f"{self.name} [{self.unit}] ({arrow})" if self.unit else f"{self.name} ({arrow})"

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


def format_value(name: str, value: float) -> str:
    """A value for people: accuracies (``accuracy``, a table's ``*_acc``) with two fixed decimals, so that 98.0 does
    not print as 98 beside 97.6; everything else to four significant digits."""
    base = name.split("@", 1)[0]
    return f"{value:.2f}" if "accuracy" in base or base.endswith("_acc") else f"{value:.4g}"


def headline_index(objectives: Sequence[Objective]) -> int:
    """Which objective "best" means where one subnet is picked (``export --pick``, the run's most accurate
    export): accuracy where it is an objective, wherever it is listed; else the first one listed."""
    return next((i for i, o in enumerate(objectives) if o.base == "accuracy"), 0)


TIE_BREAK = "val_cross_entropy"  # measured beside the accuracy of a supernet's subnets (its metadata)


def best_first(objectives: Sequence[Objective]) -> Callable[[Mapping[str, Any]], tuple[float, float]]:
    """Sort key of measured values (with ``TIE_BREAK`` among them), best on the headline objective first. Subnets
    tied on it (top-1 on a few hundred images ties often) are told apart by their validation cross-entropy where it
    was recorded (absent in table runs and in runs measured before it was; a string or "" when read from a CSV), so
    that `export --pick` and the run's most accurate export choose alike."""
    headline = objectives[headline_index(objectives)]

    def key(values: Mapping[str, Any]) -> tuple[float, float]:
        try:
            tie = float(values.get(TIE_BREAK))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            tie = 0.0
        return float(values[headline.name]) * headline.sign, tie
    return key


def parse_objectives(text: str | Iterable[str], known: Mapping[str, tuple[Direction | None, str]],
                     where: str) -> tuple[Objective, ...]:
    """Parse ``"accuracy:max,latency_ms:min"``; names must be in ``known`` (name -> default direction, unit;
    a default of ``None`` means the direction must be given). ``latency_ms@<profile>`` is accepted
    wherever ``latency_ms`` is known.
    """
    # "a:max,b:min" as one string or as list items, or both: `--set search.objectives=a:max,b:min` gives one item
    items = [t.strip() for part in ([text] if isinstance(text, str) else text) for t in part.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{where}: no objective given; choose from {', '.join(known)}")
    objectives = []
    for item in items:
        name, _, direction = item.partition(":")
        base = name.split("@", 1)[0]
        if base not in known:
            raise ConfigError(
                f"{where}: unknown objective {name!r}{did_you_mean(name, known)}; choose from {', '.join(known)}"
            )
        default_dir, unit = known[base]
        direction = direction or default_dir
        if direction is None:
            raise ConfigError(f"{where}: say whether to maximize or minimize {name!r}: {name}:max or {name}:min")
        if direction not in ("min", "max"):
            raise ConfigError(f"{where}: direction of {name!r} must be 'min' or 'max', got {direction!r}")
        objectives.append(Objective(name, direction, unit))  # type: ignore[arg-type]
    if len({o.name for o in objectives}) != len(objectives):
        raise ConfigError(f"{where}: an objective is listed twice in {items}")
    if len(objectives) < 2:
        raise ConfigError(f"{where}: a multi-objective search needs at least two objectives, got {items}")
    return tuple(objectives)


_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CONSTRAINT = re.compile(r"\s*([A-Za-z_][\w@.\-]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*")


@dataclass(frozen=True)
class Constraint:
    """``name op bound``, e.g. ``latency_ms <= 5``."""

    name: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str, names: Iterable[str], where: str,
              how: str = "write one limit, e.g. 'latency_ms <= 5'") -> Constraint:
        m = _CONSTRAINT.fullmatch(text)
        if not m:
            raise ConfigError(f"{where}: cannot parse constraint {text!r}; {how}")
        name, op, bound = m.groups()
        names = list(names)
        if name not in names:
            raise ConfigError(f"{where}: constraint on unknown value {name!r}{did_you_mean(name, names)}; "
                              f"choose from {', '.join(names)}")
        try:
            return cls(name, op, float(bound))
        except ValueError:
            raise ConfigError(f"{where}: bound {bound!r} of {text!r} is not a number") from None

    def satisfied(self, values: Mapping[str, float]) -> bool:
        return _OPS[self.op](values[self.name], self.bound)

    def violation(self, values: Mapping[str, float]) -> float:
        """How far ``values`` is from satisfying this constraint (0 when satisfied)."""
        if self.satisfied(values):
            return 0.0
        return abs(values[self.name] - self.bound) + 1e-12

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}"


def constraint_name(text: str) -> str | None:
    """The name a constraint's text limits (``latency_ms@board`` in ``'latency_ms@board <= 1'``), None if unparsable."""
    m = _CONSTRAINT.fullmatch(text)
    return m.group(1) if m else None


def meets(values: Mapping[str, float], constraints: Iterable[Constraint]) -> bool:
    """Whether ``values`` meet every constraint on a value they hold (a record measured before a constrained
    value was recorded is judged on the rest): the one rule of ``pareto.csv``'s front and of the plots'."""
    return all(c.satisfied(values) for c in constraints if c.name in values)


@dataclass(frozen=True)
class Metrics:
    """Measured objective values of one arch, with how and where they were measured."""

    values: Mapping[str, float] = field(hash=False)
    seconds: float = 0.0  # wall time of the measurement
    meta: Mapping[str, str | float | int] = field(default_factory=dict, hash=False)  # device, backend, threads, host...

    def __getitem__(self, name: str) -> float:
        return self.values[name]
