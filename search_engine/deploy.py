"""From a finished run to deployable subnets: pick an arch, fine-tune it, export it.

A run folder holds ``config.yaml``, the supernet checkpoint and ``measured.csv``; a subnet is
chosen by trial number, by arch string, or by a ``--pick`` expression over the measured front
(constraints in the usual syntax, comma-separated; the most accurate member of the run's feasible front
that meets them wins).
A fine-tuned subnet lives in ``<run>/finetuned/<label>/``; exporting it says so.
"""
from __future__ import annotations

import csv
import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from results.store import Record
from results.tables import front_of
from search_engine.run_folder import CONFIG_FILE
from search_space.arch import Arch
from search_space.config import ExperimentConfig, counted, load_config
from search_space.errors import ConfigError, SearchSpaceError
from search_space.files import file_digest
from search_space.hybrid import HybridSpace
from search_space.objectives import ANALYTIC_OBJECTIVES, TIE_BREAK, Constraint, Objective, best_first

META_COLUMNS = ("trial", "arch")


@dataclass(frozen=True)
class FinishedRun:
    folder: Path
    config: ExperimentConfig
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]  # the run's own (search.constraints): its front is the feasible one
    records: tuple[Record, ...]

    @property
    def checkpoint(self) -> Path:
        return self.config.checkpoint_path(self.folder)


def run_config(folder: str | Path) -> ExperimentConfig:
    """The config a run folder was written with; a folder that is not a run is a ConfigError saying so."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise ConfigError(f"{folder}: not a run folder (no config.yaml); give the folder a `hynas run` or "
                          "`hynas search` wrote")
    return load_config(folder / CONFIG_FILE)


def open_finished_run(folder: str | Path, need_records: bool = True) -> FinishedRun:
    folder = Path(folder)
    config = run_config(folder)
    from search_engine.job import objectives_and_constraints
    from search_space.config import load_space

    objectives, constraints = objectives_and_constraints(config, load_space(config.space, config.table))
    measured = folder / "measured.csv"
    records = read_measured(measured, objectives, constraints) if measured.is_file() else ()
    if need_records and not records:
        raise ConfigError(f"{folder}: no measured.csv with results; search it first "
                          f"(`hynas search --out {shlex.quote(str(folder))} --resume`)")
    return FinishedRun(folder, config, objectives, constraints, tuple(records))


def refuse_stale_measurements(run: FinishedRun) -> None:
    """One line when the run's study measured another supernet than its checkpoint now holds (trained again or
    replaced since): its records would label the exported weights with another network's accuracy and latency."""
    from search_engine.job import study_supernet

    if not (run.records and run.checkpoint.is_file()):
        return
    recorded, now = study_supernet(run.folder, run.config.name), file_digest(run.checkpoint)
    if recorded not in (None, now):
        raise ConfigError(f"{run.folder}: its measurements are of another supernet than {run.checkpoint} holds now "
                          f"(checkpoint digest {recorded}, now {now}); search this one (into another --out) first")


def read_measured(path: Path, objectives: tuple[Objective, ...],
                  constraints: tuple[Constraint, ...] = ()) -> list[Record]:
    """The records of a run's measured.csv: objectives, analytic costs and constrained values as numbers (the front
    is judged on them: a limited value read as metadata would let archs past its limit onto the front)."""
    try:
        rows = list(csv.DictReader(path.open()))
        out = []
        for row in rows:
            values = {o.name: float(row[o.name]) for o in objectives}
            numbers = (*ANALYTIC_OBJECTIVES, *(c.name for c in constraints))
            values.update({k: float(row[k]) for k in numbers if row.get(k)})
            meta = {k: v for k, v in row.items() if k not in values and k not in META_COLUMNS}
            out.append(Record(int(row["trial"]), row["arch"], values, meta))
        return out
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: unreadable ({e!r}); it is rewritten by `hynas search --resume`") from None


@dataclass(frozen=True)
class Pick:
    arch: Arch
    label: str  # folder name: trial-12, or a short form of the arch
    record: Record | None  # the measured record, when the arch was measured


def _as_pasted(arch: str) -> str:
    """An arch string as a user pastes it: from the source of report.md's table, which wraps it in backticks and
    escapes its '|' as '\\|', or with spaces around the separators."""
    return re.sub(r"\s*([|,:])\s*", r"\1", arch.strip().strip("`").replace("\\|", "|"))


def pick_subnet(run: FinishedRun, space: HybridSpace, trial: int | None = None, arch: str | None = None,
                pick: str | None = None) -> Pick:
    given = [x is not None for x in (trial, arch, pick)]
    if sum(given) != 1:
        raise ConfigError("choose the subnet with exactly one of --trial N, --arch STR or --pick EXPR")
    if trial is not None:
        matches = [r for r in run.records if r.number == trial]
        if not matches:
            numbers = sorted(r.number for r in run.records)
            raise ConfigError(f"--trial {trial}: no such measured trial in {run.folder / 'measured.csv'} "
                              f"(trials {numbers[0]}..{numbers[-1]})")
        return Pick(space.arch_from_str(matches[0].arch), f"trial-{trial}", matches[0])
    if arch is not None:
        try:
            parsed = space.arch_from_str(_as_pasted(arch))
        except SearchSpaceError as err:
            raise ConfigError(f"--arch: {err}; the arch column of {run.folder / 'measured.csv'} has examples") from None
        known = [r for r in run.records if r.arch == parsed.to_str()]
        # A digest, not hash(): str hashes change between processes, and finetune and export must agree.
        digest = hashlib.sha256(parsed.to_str().encode()).hexdigest()[:10]
        label = f"trial-{known[0].number}" if known else f"arch-{digest}"
        return Pick(parsed, label, known[0] if known else None)
    names = sorted({k for r in run.records for k in r.values})
    constraints = [Constraint.parse(text.strip(), names, "--pick",
                                    "write limits separated by commas, e.g. 'latency_ms<=0.3,size_mb<=0.05'")
                   for text in pick.split(",") if text.strip()]
    front = front_of(run.records, run.objectives, run.constraints)
    if not front:
        why = (f"none of its {counted(len(run.records), 'subnet')} meets its constraints "
               f"({', '.join(map(str, run.constraints))})" if run.records else "it measured no subnet")
        raise ConfigError(f"--pick {pick!r}: the run's front is empty: {why}; choose with --trial or --arch")
    feasible = [r for r in front if all(c.satisfied(r.values) for c in constraints)]
    if not feasible:
        raise ConfigError(f"--pick {pick!r}: no subnet of the measured front ({len(front)}) satisfies it; "
                          f"{_closest_to(constraints, front)}")
    key = best_first(run.objectives)
    best = min(feasible, key=lambda r: key({**r.values, TIE_BREAK: r.meta.get(TIE_BREAK)}))  # measurement metadata
    return Pick(space.arch_from_str(best.arch), f"trial-{best.number}", best)


def _closest_to(constraints: list[Constraint], front: list[Record]) -> str:
    """What the front offers against limits none of it meets together: the best value of a limit that no front
    subnet meets, else that each limit alone is met."""
    for limit in constraints:
        if not any(limit.satisfied(r.values) for r in front):
            pick_best = max if limit.op.startswith(">") else min
            return f"the front's best {limit.name} is {pick_best(r.values[limit.name] for r in front):.4g}"
    return "each limit alone is met by a front subnet, not all of them together"


def finetuned_checkpoint(run: FinishedRun, label: str) -> Path:
    return run.folder / "finetuned" / label / "supernet.pt"


def int8_capable(weight_bits: int, act_bits: int) -> bool:
    """The layers an exported int8 ONNX model quantizes: those whose bit-widths are all <= 8."""
    return weight_bits <= 8 and act_bits <= 8


def weights_of(run: FinishedRun, chosen: Pick) -> Path:
    """The checkpoint ``chosen`` is exported from: its fine-tuned one when there is one, else the run's supernet."""
    tuned = finetuned_checkpoint(run, chosen.label)
    return tuned if tuned.is_file() else run.checkpoint


def export_pick(run: FinishedRun, trained, chosen: Pick, out: Path):
    """Export ``chosen`` from the run's supernet, or from its fine-tuned checkpoint when there is one."""
    from search_space.costs import arch_costs
    from supernet.checkpoint import load_checkpoint
    from supernet.export import export_subnet

    net, note = trained.supernet, "Weights inherited from the supernet."
    if chosen.record:
        metrics = dict(chosen.record.values)
    else:  # an --arch the search did not measure: what is known without measuring it
        metrics = arch_costs(trained.space, chosen.arch).as_dict()
        note += " The run did not measure this arch: its costs are analytic, its latency is not known."
    weights = weights_of(run, chosen)
    if weights != run.checkpoint:
        state = load_checkpoint(weights, trained.space)
        net = type(net)(trained.space)
        net.load_state_dict(state["model"])
        net.eval()
        info = state["finetune"]
        note = (f"Fine-tuned for {counted(info['epochs'], 'epoch')} (quantization-aware, distilled from the largest "
                f"arch): validation accuracy {info['before']['val']:.2f} -> {info['after']['val']:.2f} %, test "
                f"{info['before']['test']:.2f} -> {info['after']['test']:.2f} %.")
    return export_subnet(net, chosen.arch, trained.data, out, run.config.train.bn_batches, int8_capable,
                         metrics, note, weights=file_digest(weights))
