"""Loading YAML into frozen dataclasses: search spaces and experiment configs.

``load_config(path, overrides)`` is the one entry point of experiments; ``--set a.b=v``
overrides are parsed as YAML scalars and applied before validation, so they are checked
exactly like the file.
"""
from __future__ import annotations

import importlib.resources
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from search_space.errors import ConfigError, did_you_mean
from search_space.hybrid import HybridSpace
from search_space.schema import build, to_plain
from search_space.tabular import TabularSpace, load_table

log = logging.getLogger("hynas.config")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NB201_TABLE = REPO_ROOT / "benchmarks" / "data" / "nb201" / "nb201_cifar10.csv"
TABULAR_SPACES = ("nb201",)
MAX_SEED = 2**32 - 1  # numpy's and torch's generators take seeds of 32 bits everywhere


def configs_dir() -> Path:
    """The packaged ``configs/`` folder (works from a checkout and from an install)."""
    return Path(str(importlib.resources.files("configs")))


def resolve_path(name: str, kind: str) -> Path:
    """A YAML path as given, else a packaged preset (``mnist_hybrid`` -> ``configs/spaces/mnist_hybrid.yaml``),
    else ``<name>.yaml`` in the current folder (``hardware: [board]`` beside ``board.yaml``; presets win)."""
    direct = Path(name).expanduser()
    if direct.is_file():
        return direct
    sub = {"space": "spaces", "hardware": "hardware", "config": ""}[kind]
    for candidate in (configs_dir() / sub / name, configs_dir() / sub / f"{name}.yaml",
                      configs_dir() / direct.name if direct.parts[:1] == ("configs",) else None,
                      Path(f"{name}.yaml") if not direct.suffix else None):
        if candidate is not None and candidate.is_file():
            return candidate
    presets = sorted(p.stem for p in (configs_dir() / sub).glob("*.yaml"))
    raise ConfigError(f"{name}: {kind} file not found{did_you_mean(direct.stem, presets)}; "
                      f"give a YAML path or a preset: {', '.join(presets)}")


def _require(spec: object, rules: dict[str, tuple[bool, str]]) -> None:
    """Stop at the first field of ``spec`` whose rule fails, naming that field: ``lr: must be positive, got -1.0``."""
    for name, (ok, rule) in rules.items():
        if not ok:
            raise ConfigError(f"{name}: must be {rule}, got {getattr(spec, name)!r}")


def _positive(spec: object, *names: str) -> dict[str, tuple[bool, str]]:
    return {name: (getattr(spec, name) > 0, "positive") for name in names}


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a key given twice in one mapping, which YAML forbids and PyYAML lets the second
    silently replace (``search: {budget: 10}`` lost to a later ``search: {strategy: random}``)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}") from None


def load_space(name: str, table: str | None = None) -> HybridSpace | TabularSpace:
    """A hybrid space from a YAML path or preset name, or a tabular space (``nb201``) over ``table``."""
    if name in TABULAR_SPACES:
        if table is None and not DEFAULT_NB201_TABLE.is_file():  # installed from a wheel: the table stays in the repo
            raise ConfigError(f"space {name!r}: no --table given, and the NB201 table that the hynas repository ships "
                              f"({DEFAULT_NB201_TABLE.relative_to(REPO_ROOT)}) is not beside this installation; "
                              "pass --table PATH to a copy")
        return TabularSpace(name, load_table(table or DEFAULT_NB201_TABLE))
    path = resolve_path(name, "space")
    return build(HybridSpace, read_yaml(path), str(path))


@dataclass(frozen=True)
class HardwareProfile:
    """Where and how latency is measured (``configs/hardware/*.yaml``)."""

    name: str
    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    threads: int = 1  # the same on every worker, so that measurements stay comparable
    batch_size: int = 1
    warmup: int = 5
    rounds: int = 6  # timing rounds; models measured together take turns (see search_engine.latency_meter)
    round_ms: float = 20.0  # calls per model and round: for this long; the fastest call is the latency
    int8: bool = True  # onnxruntime: run layers whose bit-widths are all <= 8 as int8
    calibration_images: int = 64  # onnxruntime int8: images that set the activation ranges
    lut: str | None = None  # a latency lookup table (``hynas profile``): predict instead of measuring
    node: str | None = None  # Ray: measure only on the node with this IP address (one device, one clock)

    def __post_init__(self) -> None:
        _require(self, {**_positive(self, "threads", "batch_size", "rounds", "round_ms", "calibration_images"),
                       "warmup": (self.warmup >= 0, ">= 0")})

    @property
    def timing_node(self) -> str | None:
        """The node whose clock times this profile's latency: ``node``, unless a lookup table predicts it."""
        return self.node if self.lut is None else None

    def runs_int8(self, weight_bits: int, act_bits: int) -> bool:
        """Whether a layer at these bit-widths executes in int8 on this profile's backend."""
        return self.backend == "onnxruntime" and self.int8 and weight_bits <= 8 and act_bits <= 8


def load_hardware(name: str) -> HardwareProfile:
    path = resolve_path(name, "hardware")
    data = read_yaml(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
        if data.get("lut"):  # relative to the profile's own folder, so profile and table travel together
            data["lut"] = str((path.parent / str(data["lut"])).resolve())
    return build(HardwareProfile, data, str(path))


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["mnist5k", "cifar10", "folder"] = "mnist5k"
    path: str | None = None  # cifar-10-batches-py folder, or a folder of class subfolders
    val_fraction: float = 0.1  # held out from training, used by the search
    test_fraction: float = 0.1  # held out from both, used only to report the final front
    limit: int | None = None  # use only this many images (quick runs and tests)

    def __post_init__(self) -> None:
        _require(self, {name: (0 < getattr(self, name) < 1, "in (0, 1)") for name in ("val_fraction", "test_fraction")})
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"val_fraction + test_fraction: must be below 1 (the rest trains the supernet), got "
                              f"{self.val_fraction} + {self.test_fraction}")
        if self.dataset != "mnist5k" and not self.path:
            raise ConfigError(f"path: dataset {self.dataset!r} needs a path")
        if self.limit is not None and self.limit < 20:
            raise ConfigError(f"limit: {self.limit} is too few images; use at least 20")


TEACHERS = ("mixed", "per-block", "largest")


def counted(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``, ``1 subnet``: how reports and messages count things (regular plurals)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.01  # peak learning rate of SGD with Nesterov momentum, cosine to 0
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    random_archs: int = 2  # sandwich rule: teachers + smallest + this many random archs per step
    # "per-block": the largest arch of each block type teach together (HybridSpace.largest_of_each_block);
    # "mixed": the same teachers with their layers exchanged at random each step (every mix of block types
    # teaches; ranks subnets more like training them alone, docs/experiments.md, Supernet); "largest": the
    # largest arch alone (classic sandwich; one forward and backward pass less per step)
    teachers: str = "mixed"
    distill: bool = True  # in-place distillation: smaller archs learn the teachers' soft labels
    bn_batches: int = 10  # batches used to recalibrate BN statistics of a subnet

    def __post_init__(self) -> None:
        _require(self, {**_positive(self, "epochs", "batch_size", "bn_batches", "lr"),
                       "weight_decay": (self.weight_decay >= 0, ">= 0"),
                       "random_archs": (self.random_archs >= 0, ">= 0"),
                       "label_smoothing": (0 <= self.label_smoothing < 1, "in [0, 1)")})
        if self.teachers not in TEACHERS:
            raise ConfigError(f"teachers: must be one of {', '.join(TEACHERS)}, got {self.teachers!r}")


@dataclass(frozen=True)
class SearchConfig:
    objectives: tuple[str, ...] = ("accuracy:max", "latency_ms:min", "size_mb:min")
    constraints: tuple[str, ...] = ()  # e.g. "latency_ms <= 5"
    strategy: str = "linas"
    budget: int = 100  # measured archs (failures do not count)
    time_limit_s: float | None = None  # wall-clock limit; the run stops after the batch in flight
    batch_size: int = 10
    initial: int = 0  # random archs measured first (0: two batches, at least 10)
    predictor: str = "auto"
    inner: Literal["nsga2", "nsga3", "agemoea"] = "nsga2"  # linas: the search run on the predictors
    # linas: share of each batch from one-gene neighbours of the measured front (the rest: global);
    # "adaptive" moves it each round towards the part whose picks improve the front more often
    local_share: float | Literal["adaptive"] = 0.5
    runner: str = "local"
    workers: int = 1
    address: str | None = None  # Ray cluster to join (``auto``, ``host:port``, ``ray://host:10001``); None: local
    reference: dict[str, float] = field(default_factory=dict)  # HV reference point per objective

    def __post_init__(self) -> None:
        _require(self, {**_positive(self, "budget", "batch_size", "workers"), "initial": (self.initial >= 0, ">= 0"),
                       "time_limit_s": (self.time_limit_s is None or self.time_limit_s > 0, "positive")})
        # the local runner would ignore both: one arch at a time, in this process
        if self.runner == "local" and self.workers > 1:
            raise ConfigError(f"workers: {self.workers} needs runner 'ray'; use --runner ray, or --workers 1 with the "
                              "local runner (it measures one arch at a time)")
        if self.runner == "local" and self.address:
            raise ConfigError(f"address: {self.address!r} needs runner 'ray'; use --runner ray, or --set "
                              "search.address=null with the local runner (it uses no cluster)")
        if self.local_share != "adaptive" and not 0 <= self.local_share <= 1:
            raise ConfigError(f"local_share: must be in [0, 1] or 'adaptive', got {self.local_share}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs; written to the run folder as ``config.yaml``."""

    name: str
    space: str = "mnist_hybrid"  # a space YAML path, a preset name, or a tabular space (nb201)
    table: str | None = None  # the benchmark CSV of a tabular space
    hardware: tuple[str, ...] = ("cpu_ort",)  # hardware profiles (YAML path or preset name)
    checkpoint: str | None = None  # supernet checkpoint (default: <run folder>/supernet.pt)
    seed: int = 0
    device: str = "cpu"  # torch device of training and accuracy evaluation
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig()
    source: str = field(default="", compare=False, metadata={"internal": True})  # the file it came from; not a key

    def __post_init__(self) -> None:
        # the name is the default run folder's (runs/<name>): `name=../../x` would write outside runs/
        plain_name = bool(self.name.strip()) and not {"/", "\\"} & set(self.name) and self.name not in (".", "..")
        _require(self, {"name": (plain_name, "a folder name, without '/' (--out says where a run goes)"),
                        "seed": (0 <= self.seed <= MAX_SEED, f"from 0 to {MAX_SEED}")})

    def checkpoint_path(self, run_dir: Path) -> Path:
        """The supernet checkpoint: the one the config names, else the run folder's ``supernet.pt``."""
        return Path(self.checkpoint) if self.checkpoint else run_dir / "supernet.pt"

    def to_yaml(self) -> str:
        plain = to_plain(self)
        plain.pop("source")
        return yaml.safe_dump(plain, sort_keys=False)


def apply_override(data: dict, assignment: str) -> None:
    """Apply one ``a.b.c=value`` to nested ``data`` in place, ``value`` parsed as a YAML scalar."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. --set search.budget=50")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is not a section")
    node[parts[-1]] = value


def load_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> ExperimentConfig:
    """Load an experiment YAML (path or preset name) and apply ``--set`` overrides."""
    resolved = resolve_path(str(path), "config")
    data = read_yaml(resolved)
    if data is None:  # valid YAML, but more likely a mistake than a wish for every default: say so
        log.warning("%s is empty: every setting takes its default", resolved)
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{resolved}: expected a mapping of settings at the top level")
    data.setdefault("name", resolved.stem)
    for assignment in overrides:
        apply_override(data, assignment)
    source = f"{resolved} with --set {' '.join(overrides)}" if overrides else str(resolved)
    config = _with_absolute_files(build(ExperimentConfig, data, source), resolved.parent)
    # Later checks (objectives, constraints, device) name the file; say when flags changed what it holds.
    return replace(config, source=f"{resolved} (with command-line overrides)" if overrides else str(resolved))


def _with_absolute_files(config: ExperimentConfig, folder: Path) -> ExperimentConfig:
    """The config with every file it names (space, hardware, table, checkpoint, data path) as an absolute
    path, so that the copy in a run folder works from any folder (export, plot, --resume); presets and
    ``nb201`` stay names, so they still find the installed presets. A relative path is found from the current
    folder, else from the config file's ``folder`` (a config beside its space and hardware files works from
    anywhere)."""
    def beside(name: str) -> str:
        """``name`` (``~`` expanded) in the config's folder where only that folder has it (the current folder wins)."""
        name = os.path.expanduser(name)
        if Path(name).is_absolute() or Path(name).exists():
            return name
        return str(folder / name) if (folder / name).exists() or (folder / f"{name}.yaml").is_file() else name

    def located(name: str, kind: str) -> str:
        if name in TABULAR_SPACES:
            return name
        try:
            path = resolve_path(name, kind).resolve()
        except ConfigError:
            try:
                path = resolve_path(beside(name), kind).resolve()
            except ConfigError:
                return name  # reported where it is used, as written
        return name if configs_dir().resolve() in path.parents else str(path)

    def absolute(path: str | None) -> str | None:
        return None if path is None else str(Path(beside(path)).resolve())

    return replace(config, space=located(config.space, "space"),
                   hardware=tuple(located(h, "hardware") for h in config.hardware), table=absolute(config.table),
                   checkpoint=absolute(config.checkpoint), data=replace(config.data, path=absolute(config.data.path)))
