"""One search job from a resolved config: objectives, constraints, evaluator, strategy,
runner and store wired together, run, and summarized. Usable as a library call."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictors import PREDICTORS
from predictors.lut import LatencyTable
from results.pareto import hypervolume, pareto_mask, reference_from, to_min_form
from results.store import (FOLDER_REMEDY, SUPERNET, TABLE, Record, ResultsStore, SearchedTable, open_storage,
                           recorded_identity, refuse_another_supernet, refuse_another_table, shared_study_remedy)
from results.tables import write_tables
from results.urls import hide_password
from search_engine.evaluators import EVALUATORS, CompositeEvaluator
from search_engine.loop import Budget, SearchOutcome, run_search
from search_engine.run_folder import STUDY_FILE, ensure_run_folder, folder_storage
from search_engine.runners import RUNNERS
from search_engine.strategies import STRATEGIES, Strategy
from search_space.arch import Arch
from search_space.config import ExperimentConfig, HardwareProfile, load_hardware, load_space, resolve_path
from search_space.costs import arch_costs
from search_space.errors import ConfigError, HynasError, did_you_mean
from search_space.files import file_digest
from search_space.hybrid import HybridSpace
from search_space.objectives import (ANALYTIC_OBJECTIVES, HYBRID_OBJECTIVES, MEASURED_RANGES, Constraint, Objective,
                                     constraint_name, parse_objectives, unit_of_column)
from search_space.protocol import SearchSpace
from search_space.tabular import TabularSpace

log = logging.getLogger("hynas.search")


@dataclass(frozen=True)
class SearchJob:
    """What a search needs, built from the config (see ``build_job``)."""

    space: HybridSpace | TabularSpace
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    budget: Budget
    batch_size: int
    initial: int
    reference: np.ndarray | None

    @property
    def limited(self) -> tuple[str, ...]:
        """The values limited without being objectives (``latency_ms`` in accuracy x size within ``latency_ms <= 0.1``):
        measured with every arch and shown beside the objectives."""
        objectives = {o.name for o in self.objectives}
        return tuple(dict.fromkeys(c.name for c in self.constraints if c.name not in objectives))

    def limited_label(self, name: str) -> str:
        """A limited value's column heading: its unit and its limits."""
        unit = objective_vocabulary(self.space)[name.split("@", 1)[0]][1]
        limits = ", ".join(str(c) for c in self.constraints if c.name == name)
        return f"{name} [{unit}] ({limits})" if unit else f"{name} ({limits})"


def objective_vocabulary(space) -> dict:
    if isinstance(space, TabularSpace):
        return {name: (None, unit_of_column(name)) for name in space.table.columns}
    return HYBRID_OBJECTIVES


def objectives_and_constraints(config: ExperimentConfig, space) -> tuple[tuple[Objective, ...],
                                                                         tuple[Constraint, ...]]:
    """The config's ``search.objectives`` and ``search.constraints``, parsed against ``space``'s vocabulary."""
    where = f"{config.source}: search.objectives"
    if isinstance(space, TabularSpace):  # `--space nb201` alone keeps the default config's objectives, a supernet's
        where += " (a table's objectives are its columns: set them with --objectives or search.objectives)"
    objectives = parse_objectives(config.search.objectives, objective_vocabulary(space), where)
    if isinstance(space, TabularSpace):
        names = list(objective_vocabulary(space))
    else:  # a limit on a value that is no objective is measured too: accuracy x size within a latency budget
        # latency_ms@<profile> names a profile, checked against the config's hardware where latency is timed
        # (``latency_profiles``): a finished run reads (export, plot) where its hardware files are not
        profiled = [n for n in map(constraint_name, config.search.constraints) if n and n.startswith("latency_ms@")]
        names = list(dict.fromkeys([o.name for o in objectives] + list(ANALYTIC_OBJECTIVES) + ["accuracy", "latency_ms"]
                                   + profiled))
    constraints = tuple(Constraint.parse(c, names, f"{config.source}: search.constraints")
                        for c in config.search.constraints)
    return objectives, constraints


def build_job(config: ExperimentConfig) -> SearchJob:
    space = load_space(config.space, config.table)
    objectives, constraints = objectives_and_constraints(config, space)
    if isinstance(space, TabularSpace):
        _check_complete(space.table, [o.name for o in objectives] + [c.name for c in constraints])
    _check_satisfiable(space, constraints, config.source)
    ref = config.search.reference
    reference = None
    if ref:
        names = [o.name for o in objectives]
        for key in ref:
            if key not in names:
                raise ConfigError(f"{config.source}: search.reference: {key!r} is no objective of this search"
                                  f"{did_you_mean(key, names)}; give one value for each of {', '.join(names)}")
        missing = [name for name in names if name not in ref]
        if missing:
            raise ConfigError(f"{config.source}: search.reference: give a value for every objective; missing {missing}")
        for key, value in ref.items():
            if not np.isfinite(value):  # a nan point bounds nothing (hypervolume 0), an inf one everything (inf)
                raise ConfigError(f"{config.source}: search.reference.{key}: got {value}; give a finite number")
        reference = np.array([ref[o.name] * o.sign for o in objectives])
    elif isinstance(space, TabularSpace):
        # A table holds every value before the run starts: its worst row gives a reference that counts
        # every cell, where one from the first batch leaves out anything slower or worse than those archs.
        reference = reference_from(np.stack([space.table.columns[o.name] * o.sign for o in objectives], axis=1))
    s = config.search
    STRATEGIES.check(s.strategy), PREDICTORS.check(s.predictor), RUNNERS.check(s.runner)  # unknown names fail here
    for name in config.hardware:
        profile = load_hardware(name)
        if profile.lut is not None and isinstance(space, HybridSpace):  # the table loads and fits profile and space
            EVALUATORS.get("latency-lut")(space, profile)
    if isinstance(space, HybridSpace):
        from supernet.device import checked_device

        checked_device(config.device, f"{config.source}: device")
    if config.checkpoint and isinstance(space, HybridSpace):  # a given checkpoint must load before any run starts
        from supernet.checkpoint import load_checkpoint

        load_checkpoint(Path(config.checkpoint), space)
    initial = s.initial or max(10, 2 * s.batch_size)
    return SearchJob(space, objectives, constraints, Budget(s.budget, s.time_limit_s), s.batch_size,
                     min(initial, s.budget), reference)


def _check_complete(table, names: list[str]) -> None:
    """Refuse a table column the search reads (objective or constraint) with a cell that is not a finite number:
    each measured cell must have a value, a predictor cannot fit a missing one, and one 'inf' would make every
    hypervolume infinite."""
    for name in dict.fromkeys(names):
        missing = np.flatnonzero(~np.isfinite(table.columns[name]))
        if len(missing):
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ConfigError(f"{table.source}: column {name!r} has no finite number on line {missing[0] + 2}{more}; "
                              f"fill {'them' if more else 'it'} in, or search other columns")


def _check_satisfiable(space, constraints, source: str) -> None:
    """Refuse a constraint no arch can meet, judged by the extremes of the space (hybrid, analytic
    values: the smallest and largest archs bound every cost), of the table's column, or of what a measurement
    can give at all (accuracy in 0-100 %, a latency above 0)."""
    for c in constraints:
        below = c.op in ("<=", "<")
        base = c.name.split("@", 1)[0]
        if isinstance(space, TabularSpace):
            column = space.table.columns[c.name]
            best = column.min() if below else column.max()
            why = f"the best value in the space is {best:g}"
        elif c.name in ANALYTIC_OBJECTIVES:
            best = arch_costs(space, space.smallest() if below else space.largest()).as_dict()[c.name]
            why = f"the best value in the space is {best:g}"
        elif base in MEASURED_RANGES:
            lowest, highest, words = MEASURED_RANGES[base]
            best, why = lowest if below else highest, f"a measured {base} is {words}"
        else:
            continue
        if not c.satisfied({c.name: float(best)}):
            raise ConfigError(f"{source}: search.constraints: no arch can meet '{c}': {why}")


def profiled_table(run_dir: Path, profile_name: str) -> Path:
    """Where ``hynas run`` keeps the lookup table it profiles for a hardware profile without its own ``lut:``."""
    return run_dir / f"lut_{profile_name}.json"


def _estimated_before_measuring(job: SearchJob, config: ExperimentConfig,
                                run_dir: Path) -> dict[str, tuple[Callable[[Arch], float], float]]:
    """Latency that a profile measures, estimated from the table ``hynas run`` profiled for it on this machine (in
    the run folder), with the table's largest relative error on the subnets its scales were fitted on: enough to
    skip archs sure to break a latency limit, never a stand-in for the measurement."""
    estimates = {}
    for name, profile in latency_profiles(job, config).items():
        path = profiled_table(run_dir, profile.name)
        if profile.lut is not None or profile.node or not path.is_file():
            continue
        table = LatencyTable.load(path, job.space)
        if table.complete and table.machine.get("host") == socket.gethostname():
            estimates[name] = (_table_latency(table, job.space, profile), float(table.fit.get("max_abs_error", 0.0)))
    return estimates


def _may_satisfy(constraint: Constraint, estimate: float, error: float) -> bool:
    """Whether some value within ``error`` (relative) of ``estimate`` meets ``constraint``."""
    return any(constraint.satisfied({constraint.name: estimate * f}) for f in (1 - error, 1 + error))


def make_strategy(job: SearchJob, config: ExperimentConfig, run_dir: Path | None = None) -> Strategy:
    """The configured strategy, told what can be checked before measuring: constraints on analytic values and on
    latency from a table exactly; with ``run_dir``, latency limits a profile measures also against the run's own
    table, skipping only archs that break them by more than the table's error."""
    space = job.space
    exact, precheck = {}, None
    if isinstance(space, HybridSpace):
        known = _known_before_measuring(job, config)
        estimated = _estimated_before_measuring(job, config, run_dir) if run_dir is not None else {}
        # Latency from a table stays predicted as an objective: computed exactly, it searched no better (3 demo
        # searches, docs/experiments.md, session 24); as a constraint it keeps every measurement inside the limit.
        exact = {o.name: known[o.name] for o in job.objectives if o.name in ANALYTIC_OBJECTIVES}
        checkable = [c for c in job.constraints if c.name in known]
        bounded = [c for c in job.constraints if c.name in estimated and c.name not in known]
        for c in bounded:
            log.info("'%s' checked before measuring against this run's latency table (skipping archs past it by "
                     "more than the table's %.0f %% error)", c, 100 * estimated[c.name][1])
        if checkable or bounded:
            def precheck(arch) -> bool:
                return (all(c.satisfied({c.name: known[c.name](arch)}) for c in checkable) and
                        all(_may_satisfy(c, estimated[c.name][0](arch), estimated[c.name][1]) for c in bounded))
    search = config.search
    options = {"initial": job.initial, "predictor": search.predictor, "inner": search.inner,
               "local_share": search.local_share} if search.strategy == "linas" else {}
    return STRATEGIES.get(config.search.strategy)(space, job.objectives, job.constraints, seed=config.seed,
                                                  precheck=precheck, exact=exact, **options)


@dataclass(frozen=True)
class EvaluatorRecipe:
    """How to build the job's evaluators, picklable: a Ray worker calls it once to build its own."""

    config: ExperimentConfig
    run_dir: Path

    def __call__(self):
        return make_evaluator(build_job(self.config), self.config, self.run_dir)


def _known_before_measuring(job: SearchJob, config: ExperimentConfig) -> dict[str, Callable[[Arch], float]]:
    """The values of a hybrid arch that cost microseconds to know before measuring it: analytic costs, and
    latency where a hardware profile reads it from a lookup table (the search's own evaluator reads the same
    table, so the value is the one it would measure)."""
    space = job.space
    # linas asks for these of every arch its inner search visits, often the same arch again
    costs_of = functools.lru_cache(maxsize=1 << 16)(lambda arch: arch_costs(space, arch).as_dict())
    known: dict[str, Callable[[Arch], float]] = {name: (lambda arch, n=name: costs_of(arch)[n])
                                                 for name in ANALYTIC_OBJECTIVES}
    for name, profile in latency_profiles(job, config).items():
        if profile.lut is not None:
            known[name] = _table_latency(LatencyTable.load(Path(profile.lut), space), space, profile)
    return known


def _table_latency(table: LatencyTable, space: HybridSpace, profile: HardwareProfile) -> Callable[[Arch], float]:
    """``table``'s latency of an arch as ``profile`` runs it, cached: linas asks again for archs it visits again."""
    return functools.lru_cache(maxsize=1 << 16)(functools.partial(table.predict, space, runs_int8=profile.runs_int8))


def make_evaluator(job: SearchJob, config: ExperimentConfig, run_dir: Path, trained=None, calibrator=None):
    """The evaluators of the job's objectives: a table lookup, or accuracy, latency and analytic costs.
    ``trained``: the supernet with its data set, when the caller has loaded it already; ``calibrator``:
    a ``supernet.calibration.Calibrator`` of it to share (one is made otherwise)."""
    space = job.space
    if isinstance(space, TabularSpace):
        return EVALUATORS.get("table")(space)
    wanted, latency = _wanted(job), latency_profiles(job, config)
    needs_supernet = _needs_supernet(wanted, latency)
    if needs_supernet:
        from search_engine.evaluators import accuracy, latency as _  # noqa: F401 (torch: loaded only when needed)
        from supernet.trained import load_trained

        trained = trained or load_trained(config, config.checkpoint_path(run_dir))
    parts = []
    if needs_supernet and calibrator is None:  # shared: the accuracy and latency evaluators calibrate an arch once
        from supernet.calibration import Calibrator

        calibrator = Calibrator(trained.supernet, trained.data.train, config.train.bn_batches)
    if "accuracy" in wanted:
        parts.append(EVALUATORS.get("accuracy")(trained.supernet, trained.data, config.train.bn_batches, calibrator))
    for name, profile in latency.items():
        if profile.lut is not None:
            parts.append(EVALUATORS.get("latency-lut")(space, profile, name))
        else:
            parts.append(EVALUATORS.get("latency")(trained.supernet, profile, trained.data.train,
                                                   config.train.bn_batches, name, calibrator))
    parts.append(EVALUATORS.get("analytic")(space))
    return CompositeEvaluator(parts)


def _wanted(job: SearchJob) -> set[str]:
    return {o.name for o in job.objectives} | {c.name for c in job.constraints}


def latency_profiles(job: SearchJob, config: ExperimentConfig) -> dict:
    """The hardware profile of each latency the job measures or constrains."""
    profiles = {p.name: p for p in (load_hardware(h) for h in config.hardware)}
    return {name: _profile_of(name, profiles, config.source) for name in sorted(_wanted(job))
            if name.startswith("latency_ms")}


def _needs_supernet(wanted: set[str], latency: dict) -> bool:
    """Whether the evaluators run the supernet: for accuracy, or for latency measured rather than looked up."""
    return "accuracy" in wanted or any(p.lut is None for p in latency.values())


def loads_supernet(job: SearchJob, config: ExperimentConfig, trains: bool = False) -> bool:
    """Whether the job runs a supernet: a hybrid space measured for accuracy or timed rather than looked up."""
    return isinstance(job.space, HybridSpace) and (trains or _needs_supernet(_wanted(job),
                                                                            latency_profiles(job, config)))


def searched_supernet(job: SearchJob, config: ExperimentConfig, run_dir: Path) -> str | None:
    """The digest of the checkpoint whose subnets the job measures; None for a table, costs only, or a supernet
    not trained yet (``hynas run`` trains it before it searches)."""
    path = config.checkpoint_path(run_dir)
    return file_digest(path) if loads_supernet(job, config) and path.is_file() else None


def searched_table(job: SearchJob) -> SearchedTable | None:
    """The benchmark table whose columns the job measures (objectives and constraints); None for a supernet."""
    space = job.space
    if not isinstance(space, TabularSpace):
        return None
    names = [o.name for o in job.objectives] + [c.name for c in job.constraints]
    return SearchedTable(space.table.source, space.table.digest(names))


def study_supernet(run_dir: Path, study_name: str, storage: str | None = None) -> str | None:
    """The supernet digest the run's study records: in ``storage``, else in the run folder's own study; None where
    there is no such study or it records none. Creates nothing."""
    return _study_identity(run_dir, study_name, storage, SUPERNET)


def _study_identity(run_dir: Path, study_name: str, storage: str | None, key: str) -> str | None:
    if storage is None and not (run_dir / STUDY_FILE).is_file():
        return None
    return recorded_identity(storage or folder_storage(run_dir), study_name, key)


def _refuse_another_table(job: SearchJob, config: ExperimentConfig, run_dir: Path, storage: str | None) -> None:
    """Before the run folder is touched: a resumed study that measured other values of its table (edited since)
    is one line; before session 32 the old values mixed with the new."""
    table = searched_table(job)
    recorded = _study_identity(run_dir, config.name, storage, TABLE) if table is not None else None
    if recorded is not None:
        refuse_another_table(config.name, recorded, table.digest, table.source, _remedy(config, storage))


def _refuse_another_supernet(job: SearchJob, config: ExperimentConfig, run_dir: Path, storage: str | None) -> None:
    """Before the run folder is touched: a resumed study whose subnets were measured on another supernet (its
    checkpoint retrained or replaced since) is one line; before session 29 its results mixed with the new ones."""
    digest = searched_supernet(job, config, run_dir)
    recorded = study_supernet(run_dir, config.name, storage) if digest is not None else None
    if recorded is not None:
        refuse_another_supernet(config.name, recorded, digest, _remedy(config, storage))


def _remedy(config: ExperimentConfig, storage: str | None) -> str:
    """How to start over when a run's study measured something else: --force empties the folder, not a storage."""
    return FOLDER_REMEDY if storage is None else shared_study_remedy(config.name)


def check_latency_node(config: ExperimentConfig) -> None:
    """Before the run folder is touched: a hardware profile's ``node`` must be one the Ray runner can place its
    workers on (Ray would leave every evaluation pending, without a word, on an address it does not know)."""
    if config.search.runner != "ray":
        return
    for name in config.hardware:
        node = load_hardware(name).timing_node
        if node:
            from search_engine.runners.ray_runner import node_addresses

            nodes = node_addresses(config.search.address)
            if node in nodes:
                continue
            where = f"{resolve_path(name, 'hardware')}: node: {node}"
            if config.search.address:
                raise ConfigError(f"{where} is no live node of the Ray cluster at {config.search.address} (its nodes: "
                                  f"{', '.join(nodes)}); name one of those, or drop `node:`")
            raise ConfigError(f"{where} is not this host ({nodes[0]}), where a local Ray instance runs; name it, "
                              "join that node's cluster with --address, or drop `node:`")


@contextlib.contextmanager
def inputs_checked(job: SearchJob, config: ExperimentConfig, run_dir: Path, trains: bool = False,
                   storage: str | None = None, force: bool = False) -> Iterator:
    """Read the data set and the supernet checkpoint a search (``trains``: a run that trains the supernet first)
    will load, before it touches its run folder, and yield the data set (None where this process needs none). A wrong
    data path, a folder without a trained supernet, a supernet trained on other images, or a study (in ``storage``,
    default the run folder's) of another supernet or of other values of its table is one line and leaves no
    half-made or changed run folder behind.
    ``force``: the run folder will be emptied, its own study with it, so what that study measured is no obstacle.
    Within the block the evaluators reuse the data set read here (``supernet.data.loading_once``)."""
    if storage is not None:
        open_storage(storage)  # a bad URL or an unreachable server: one line, before anything else
    study_kept = not force or storage is not None  # --force empties the folder, not another storage
    if study_kept:
        _refuse_another_table(job, config, run_dir, storage)
    if not loads_supernet(job, config, trains):
        yield None  # a table, or costs only: nothing to read, and no torch to import
        return
    if study_kept:
        _refuse_another_supernet(job, config, run_dir, storage)
    from supernet.data import load_dataset, loading_once
    from supernet.trained import checked_data

    in_process = trains or config.search.runner != "ray"  # Ray workers read their own data set
    with loading_once() if in_process else contextlib.nullcontext():
        if config.checkpoint or not trains:  # a run's own checkpoint is the training's to check, with its settings
            _, data = checked_data(config, job.space, config.checkpoint_path(run_dir))
        else:
            data = load_dataset(config.data, job.space.input, config.seed)
        if not in_process:
            data = None  # checked; no copy held here for the whole search
        yield data


def _profile_of(objective: str, profiles: dict, source: str):
    """The hardware profile of ``latency_ms`` or ``latency_ms@<profile>``."""
    _, _, name = objective.partition("@")
    if not profiles:
        raise ConfigError(f"{source}: {objective!r} needs a hardware profile to time it on, and hardware is "
                          "empty; name one (hardware: [cpu_ort]), or drop it")
    if not name and len(profiles) > 1:
        raise ConfigError(f"{source}: {len(profiles)} hardware profiles ({', '.join(profiles)}); name one: "
                          f"{objective}@<profile>")
    name = name or next(iter(profiles))
    if name not in profiles:
        raise ConfigError(f"{source}: {objective!r} names no hardware profile of the config "
                          f"(hardware: {', '.join(profiles)})")
    return profiles[name]


def true_front(space: SearchSpace, objectives: Sequence[Objective],
               constraints: Sequence[Constraint]) -> list[dict[str, float]] | None:
    """The rows of a tabular space's exact front (of its feasible rows), else None."""
    if not isinstance(space, TabularSpace):
        return None
    rows = [space.table.values(a) for a in space.table.archs]
    rows = [r for r in rows if all(c.satisfied(r) for c in constraints)]
    mask = pareto_mask(to_min_form(rows, objectives))
    return [r for r, on_front in zip(rows, mask) if on_front]


def true_front_hypervolume(job: SearchJob, reference: np.ndarray) -> float | None:
    """Hypervolume of the exact front of a tabular space, else None."""
    rows = true_front(job.space, job.objectives, job.constraints)
    return None if rows is None else hypervolume(to_min_form(rows, job.objectives), reference)


def _warn_if_timings_contend(job: SearchJob, config: ExperimentConfig, threads: int) -> None:
    """More Ray workers than this machine's cores time their latencies against each other: each reads slow, by
    how much depends on what the others run at that moment."""
    s, cores = config.search, os.cpu_count() or 1
    timed = any(p.lut is None for p in latency_profiles(job, config).values())
    if s.runner == "ray" and not s.address and timed and s.workers * threads > cores:
        log.warning("%d Ray workers x %d thread(s) on %d cores: latencies timed at once contend for the CPU and read "
                    "slow; use --workers %d, or a lookup table (`lut:` in the hardware profile)", s.workers, threads,
                    cores, max(1, cores // threads))


def run_job(config: ExperimentConfig, run_dir: Path, storage: str | None = None, progress: bool = True,
            job: SearchJob | None = None) -> tuple[SearchJob, SearchOutcome]:
    """Run (or continue) the search of ``config``, recording into ``storage`` (default: the run folder's SQLite).
    ``job``: the job already built (and so validated) from ``config``, if the caller has it."""
    job = job or build_job(config)
    ensure_run_folder(run_dir, config)
    url = storage or folder_storage(run_dir)
    store = ResultsStore(url, config.name, job.objectives, job.space.name, job.space.genes(),
                         searched_supernet(job, config, run_dir), searched_table(job))
    strategy = make_strategy(job, config, run_dir)
    profiles = [load_hardware(name) for name in config.hardware]
    node = next((p.timing_node for p in profiles if p.timing_node), None)
    threads = max((p.threads for p in profiles), default=1)
    runner = RUNNERS.get(config.search.runner)(EvaluatorRecipe(config, run_dir), workers=config.search.workers,
                                               address=config.search.address, threads=threads, node=node)
    limits = f" within {', '.join(map(str, job.constraints))}" if job.constraints else ""
    log.info("search %s: %s on %s (%s archs), objectives %s%s, budget %d, store %s", config.name,
             config.search.strategy, job.space.name, f"{job.space.size():,}", ", ".join(map(str, job.objectives)),
             limits, job.budget.archs, hide_password(url))
    _warn_if_timings_contend(job, config, threads)

    def tables(records: list[Record]) -> None:
        write_tables(run_dir, records, job.objectives, job.constraints)

    try:
        outcome = run_search(job.space, job.objectives, job.constraints, strategy, runner, store, job.budget,
                             job.batch_size, job.initial, job.reference, after_batch=tables, progress=progress)
    except (KeyboardInterrupt, HynasError):  # the tables show what was measured up to the stop
        tables(store.measured())
        raise
    finally:
        runner.close()
    tables(outcome.records)
    return job, outcome
