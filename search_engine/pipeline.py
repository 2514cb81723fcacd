"""``hynas run``: the whole job in one call, each phase resumable in the run folder.

1. train the supernet (skipped when the checkpoint has every epoch; continued when it has some);
2. profile this machine: a latency lookup table per hardware profile whose latency is searched
   (``lut_<profile>.json``), the artefact that lets the same search run later without the device;
3. search (continues the run's study to its budget);
4. validate the measured front on the test split, measure its latency again, and evaluate the
   baselines: the largest and smallest subnet, and every front subnet at uniform int8 (``validated.csv``,
   ``baselines.csv``); the front and the baselines are timed together, so their latencies compare;
5. export the most accurate, the fastest (or smallest) and the knee of the front (``export/trial-N``);
6. plot and write ``report.md``.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from results.plots import Series, plot_hypervolume, plot_pairs
from results.report import ReportInput, write_report
from results.store import Record
from results.versus_int8 import VersusInt8, versus_uniform_int8
from search_engine.evaluators import CompositeEvaluator, Evaluator
from search_engine.job import SearchJob, build_job, latency_profiles, make_evaluator, profiled_table, run_job
from search_engine.run_folder import ensure_run_folder
from search_space.arch import Arch
from search_space.config import TABULAR_SPACES, ExperimentConfig, counted
from search_space.errors import ConfigError
from search_space.files import atomic_write_text
from search_space.hybrid import HybridSpace, QuantSpec
from search_space.objectives import ANALYTIC_OBJECTIVES, TIE_BREAK, best_first

log = logging.getLogger("hynas.run")


PHASES = ("train", "profile", "search", "validate", "export", "plot")
PHASES_FILE = "phases.json"


@dataclass(frozen=True)
class PipelineOutcome:
    report: Path
    front: list[dict]
    measured: int  # archs the search measured
    stopped_short: str  # why the search ended before its budget ("" when it did not)
    exports: list[tuple[str, Path]]
    seconds: dict[str, float]
    versus_int8: VersusInt8 | None  # the front against the largest subnet at uniform int8


def build_run_job(config: ExperimentConfig) -> SearchJob:
    """The search job of a run, validated; a run trains a supernet, so its space must have one (checked first:
    a table's objectives are other names, and that is not what the user has to fix)."""
    if config.space in TABULAR_SPACES:
        raise ConfigError(f"{config.source}: `run` trains a supernet; space {config.space!r} is a table "
                          "(use `hynas search` for tabular benchmarks)")
    return build_job(config)


def run_pipeline(config: ExperimentConfig, run_dir: Path, storage: str | None = None,
                 progress: bool = True) -> PipelineOutcome:
    job = build_run_job(config)
    ensure_run_folder(run_dir, config)
    spent = _PhaseTimes(run_dir)
    seconds = spent.seconds

    def phase(name: str, work):
        log.info("phase %s", name)
        start = time.perf_counter()
        result = work()
        spent.add(name, time.perf_counter() - start)
        return result

    from supernet.data import loading_once

    with loading_once():  # train, search, validate and export each need the data: read it once
        phase("train", lambda: _train(config, job.space, run_dir, progress))
        phase("profile", lambda: _profile(config, job, run_dir, progress))
        _, outcome = phase("search", lambda: run_job(config, run_dir, storage, progress, job=job))
        validated, baselines = phase("validate", lambda: _validate(config, job, run_dir, outcome.front, progress))
        exports = phase("export", lambda: _export(config, run_dir, validated, job))
    plots = phase("plot", lambda: _plots(job, run_dir, outcome.records, baselines))
    versus = versus_uniform_int8(validated, baselines)
    report = write_report(run_dir, _report_input(config, job, outcome, validated, baselines, plots, exports, seconds,
                                                 versus))
    return PipelineOutcome(report, validated, len(outcome.records), outcome.stopped_short(job.budget), exports,
                           seconds, versus)


class _PhaseTimes:
    """Seconds per phase, summed over every `hynas run` that worked on the folder (``phases.json``, written after
    each phase): the report of a resumed run says how long its work took, not how long the last resume did."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / PHASES_FILE
        try:
            recorded = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            recorded = {}  # unreadable: count from here (the times are a report's, not results)
        self.seconds: dict[str, float] = {k: 0.0 for k in PHASES}
        self.seconds.update({k: float(v) for k, v in recorded.items() if k in PHASES})

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        atomic_write_text(self.path, json.dumps(self.seconds, indent=1) + "\n")


def _train(config: ExperimentConfig, space: HybridSpace, run_dir: Path, progress: bool) -> None:
    from supernet.checkpoint import load_checkpoint
    from supernet.data import load_dataset
    from supernet.train import refuse_other_settings, train_supernet

    checkpoint = config.checkpoint_path(run_dir)
    if config.checkpoint:
        load_checkpoint(checkpoint, space)  # a given checkpoint is used as it is
        log.info("using the supernet checkpoint %s", checkpoint)
        return
    resume = checkpoint.is_file()
    data = load_dataset(config.data, space.input, config.seed)
    done = resume and refuse_other_settings(checkpoint, space, config.train, config.seed, data).get("epoch", 0) >= \
        config.train.epochs
    if done:
        log.info("supernet already trained (%s)", checkpoint)
        return
    train_supernet(space, data, config.train, config.seed, checkpoint, resume=resume, device=config.device,
                   progress=progress)


def _profile(config: ExperimentConfig, job: SearchJob, run_dir: Path, progress: bool) -> None:
    """A lookup table for each hardware profile whose latency the search measures or limits (none when it
    searches without latency: profiling takes half a minute or more)."""
    from predictors.lut import LatencyTable
    from search_engine.profiling import profile_space

    space = job.space
    for profile in {p.name: p for p in latency_profiles(job, config).values()}.values():
        if profile.lut is not None:
            continue  # this profile already predicts from a table
        out = profiled_table(run_dir, profile.name)
        if out.is_file() and LatencyTable.load(out, space, unfinished=True).complete:
            continue
        profile_space(space, profile, out, resume=out.is_file(), seed=config.seed, progress=progress)


def _rows_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, keys)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _read_rows(path: Path) -> list[dict]:
    rows = list(csv.DictReader(path.open()))
    return [{k: _number(v) for k, v in r.items()} for r in rows]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _validate(config: ExperimentConfig, job: SearchJob, run_dir: Path, front: list[Record],
              progress: bool) -> tuple[list[dict], list[dict]]:
    validated_csv, baselines_csv = run_dir / "validated.csv", run_dir / "baselines.csv"
    front_archs = {r.arch for r in front}
    if validated_csv.is_file() and baselines_csv.is_file():
        validated = _read_rows(validated_csv)
        if {r["arch"] for r in validated} == front_archs:
            return validated, _read_rows(baselines_csv)
    from supernet.calibration import Calibrator, accuracy
    from supernet.trained import load_trained

    space = job.space
    trained = load_trained(config, config.checkpoint_path(run_dir))
    calibrator = Calibrator(trained.supernet, trained.data.train, config.train.bn_batches)
    evaluator = make_evaluator(job, config, run_dir, trained, calibrator)
    names = [o.name for o in job.objectives] + list(job.limited)

    candidates = [("largest", space.largest()), ("smallest", space.smallest())]
    if (anchor := space.uniform_int8(space.largest())) is not None:  # the SimQ-NAS comparison point
        candidates.append(("uniform int8 of the largest", anchor))
    candidates += [(f"uniform int8 of trial {r.number}", a) for r in front
                   if (a := space.uniform_int8(space.arch_from_str(r.arch))) is not None]
    seen: set[Arch] = set()
    candidates = [(label, a) for label, a in candidates if not (a in seen or seen.add(a))]  # each baseline once
    front_values = {space.arch_from_str(r.arch): {n: r.values[n] for n in names if n in r.values} for r in front}
    archs = list(dict.fromkeys([*front_values, *(a for _, a in candidates)]))  # each arch once
    log.info("validating %d front subnets and %d baselines: latency again, accuracy on the test split",
             len(front), len(candidates))
    again = dict(zip(archs, _measure_again(evaluator, archs, front_values)))
    for arch in tqdm(archs, desc="test accuracy", unit="subnet", disable=not progress):
        with calibrator(arch) as net:
            again[arch]["test_accuracy"] = accuracy(net, trained.data.test, arch)
    validated = []
    for r, arch in zip(front, front_values):
        values = again[arch]
        validated.append({"trial": r.number, "arch": r.arch, **front_values[arch],
                          "test_accuracy": values["test_accuracy"],
                          **{f"{n}_again": values[n] for n in names if n.startswith("latency_ms") and n in values},
                          **{k: r.meta[k] for k in (TIE_BREAK,) if k in r.meta}})
    baselines = [{"baseline": label, "arch": arch.to_str(), **{n: again[arch][n] for n in names if n in again[arch]},
                  "test_accuracy": again[arch]["test_accuracy"]} for label, arch in candidates]
    atomic_write_text(validated_csv, _rows_csv(validated))
    atomic_write_text(baselines_csv, _rows_csv(baselines))
    return validated, baselines


def _measure_again(evaluator: Evaluator, archs: list[Arch], known: dict[Arch, dict]) -> list[dict]:
    """Objective values of ``archs``: latency measured again for all of them, timed together (the latency
    evaluator interleaves the archs of one call, so the front and its baselines meet the same machine
    load); the deterministic objectives taken from ``known`` where it has them, evaluated otherwise."""
    parts = evaluator.parts if isinstance(evaluator, CompositeEvaluator) else (evaluator,)
    out = [dict(known.get(a, {})) for a in archs]
    unknown = [i for i, a in enumerate(archs) if a not in known]
    for part in parts:
        rows = range(len(archs)) if any(n.startswith("latency_ms") for n in part.provides) else unknown
        for i, metrics in zip(rows, part.evaluate([archs[i] for i in rows])):
            out[i].update(metrics.values)
    return out


def pick_exports(validated: list[dict], job: SearchJob) -> list[tuple[str, dict]]:
    """The most accurate (``best_first``: ties told apart by the validation cross-entropy), the fastest (the
    smallest when no latency is searched: a deployment still wants the cheap end) and the knee (closest to the ideal
    point, objectives scaled to [0, 1] over the front) of the validated front; each subnet once."""
    if not validated:
        return []
    objectives = job.objectives
    F = np.array([[r[o.name] * o.sign for o in objectives] for r in validated], dtype=float)
    span = np.where(np.ptp(F, axis=0) > 0, np.ptp(F, axis=0), 1.0)
    knee = int(np.argmin(np.linalg.norm((F - F.min(axis=0)) / span, axis=1)))
    key = best_first(objectives)
    chosen = {"most accurate": min(range(len(validated)), key=lambda i: key(validated[i]))}
    cheap_end = [("fastest", i) for i, o in enumerate(objectives) if o.base == "latency_ms"] + \
        [("smallest", i) for i, o in enumerate(objectives) if o.base in ANALYTIC_OBJECTIVES]
    if cheap_end:
        what, column = cheap_end[0]
        chosen[what] = int(np.argmin(F[:, column]))
    chosen["knee"] = knee
    out, seen = [], set()
    for what, i in chosen.items():
        if i not in seen:
            seen.add(i)
            out.append((what, validated[i]))
    return out


def _export(config: ExperimentConfig, run_dir: Path, validated: list[dict], job: SearchJob) -> list[tuple[str, Path]]:
    from search_engine.deploy import Pick, export_pick, open_finished_run
    from supernet.export import ExportError
    from supernet.trained import load_trained

    picks = pick_exports(validated, job)
    run = open_finished_run(run_dir)
    trained = None
    out = []
    for what, row in picks:
        folder = run_dir / "export" / f"trial-{int(row['trial'])}"
        what = f"{what}: trial {int(row['trial'])}"
        if not (folder / "README.md").is_file():
            trained = trained or load_trained(config, run.checkpoint)
            record = next(r for r in run.records if r.number == int(row["trial"]))
            try:
                result = export_pick(run, trained, Pick(job.space.arch_from_str(record.arch), folder.name, record),
                                     folder)
            except ExportError as err:  # the artefacts and their README are there; the report says what failed
                log.warning("%s", err)
                what += " (a check FAILED: see its README)"
            else:
                if any(math.isnan(v) for v in result.checks.values()):
                    what += " (int8 not checked: see its README)"
        out.append((what, folder))
    return out


def group_baselines(baselines: list[dict], objectives) -> list[Series]:
    """Baseline rows as plot series: largest, smallest, uniform int8 (of every front subnet)."""
    groups: dict[str, list[dict]] = {}
    for b in baselines:
        groups.setdefault("uniform int8" if str(b["baseline"]).startswith("uniform") else str(b["baseline"]),
                          []).append(b)
    return [Series(name, rows) for name, rows in groups.items() if all(o.name in rows[0] for o in objectives)]


def baseline_series(path: Path, objectives) -> list[Series]:
    return group_baselines(_read_rows(path), objectives)


def _plots(job: SearchJob, run_dir: Path, records: list[Record], baselines: list[dict]) -> list[Path]:
    searched = Series("search", [r.values for r in records], job.constraints)
    plots = plot_pairs([searched], job.objectives, run_dir, group_baselines(baselines, job.objectives))
    plots.append(plot_hypervolume([searched], job.objectives, run_dir))
    return plots


def _low_bits_note(q: QuantSpec, backends: set[str]) -> str:
    """The report's note on bit-widths: those below 8 are simulated; what they cost where the run timed latency
    (``backends`` of its hardware profiles): ONNX Runtime runs them at 8 bits or float, torch eager runs every
    layer in float."""
    low = [f"{'- and '.join(map(str, bits))}-bit {what}" for what, bits in (
        ("weights", [b for b in q.weight_bits if b < 8]), ("activations", [b for b in q.act_bits if b < 8])) if bits]
    simulated = f"{' and '.join(low)} are simulated (fake quantization) for accuracy" if low else ""
    timed = []
    if "onnxruntime" in backends:
        timed.append(("in ONNX Runtime they run at 8 bits, or as floats in a layer whose other width is 32; " if low
                      else "") + "layers of at most 8 bits run as real int8 in ONNX Runtime")
    if "torch" in backends:
        timed.append("torch eager runs every layer in float (with its fake quantization), so bit-widths do not "
                     "move a latency timed there")
    note = "; ".join([simulated] * bool(simulated) + ["weights are counted at their width for size"] + timed)
    return note[0].upper() + note[1:] + "."


def _report_input(config, job, outcome, validated, baselines, plots, exports, seconds, versus) -> ReportInput:
    searched = [(o.name, o.label()) for o in job.objectives] + [(n, job.limited_label(n)) for n in job.limited]
    again = [n for n, _ in searched if n.startswith("latency_ms")]
    front_cols = [("trial", "trial"), ("arch", "arch")] + searched
    front_cols += [("test_accuracy", "test accuracy [%]")] + [(f"{n}_again", f"{n} measured again") for n in again]
    base_cols = [("baseline", "baseline"), ("arch", "arch")] + searched + [("test_accuracy", "test accuracy [%]")]
    best = max(validated, key=lambda r: r["test_accuracy"]) if validated else None
    profiles = latency_profiles(job, config).values()  # read once: each resolves its hardware YAML
    measured_on = ", ".join(sorted({p.name for p in profiles}))
    limits = f", constraints {', '.join(map(str, job.constraints))} (the front meets them)" if job.constraints else ""
    summary = [f"space `{job.space.name}` ({job.space.size():,} archs), data `{config.data.dataset}`, "
               f"supernet trained {counted(config.train.epochs, 'epoch')}",
               f"search `{config.search.strategy}`, "
               + (f"{short} (`hynas run --resume` measures more)" if (short := outcome.stopped_short(job.budget))
                  else f"{len(outcome.records)} archs measured") + ", objectives "
               + ", ".join(map(str, job.objectives))
               + f", hardware {measured_on or 'none (no latency measured)'}" + limits,
               "time per phase (summed over every `hynas run` of this folder): "
               + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())]
    if best:
        summary.append(f"best test accuracy on the front: {best['test_accuracy']:.2f} % (trial {int(best['trial'])})")
    if versus:
        summary.append(f"{versus.sentence()}; latency as the validation phase timed them together"
                       if versus.fastest else versus.sentence())
    notes = [_low_bits_note(job.space.quantization, {p.backend for p in profiles})]
    if again:
        notes.append("Measured latency varies between runs and machines; the same seed gives the same protocol, not "
                     "the same numbers: the front's \"measured again\" column (`*_again` in validated.csv) shows "
                     "how much.")
    return ReportInput(f"hynas run `{config.name}`", summary, job.objectives, validated, front_cols, baselines,
                       base_cols, plots, exports, notes)
