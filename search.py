"""hynas: hardware-aware, quantization-aware NAS over hybrid conv/attention supernets.

The CLI is thin: it parses arguments, loads the config, calls one package function per
subcommand and prints a summary. Every ``HynasError`` becomes one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from results.urls import hide_password
from search_space.config import MAX_SEED, ExperimentConfig, counted, load_config, load_space
from search_space.errors import EXIT_USAGE, HynasError, reader_gone

if TYPE_CHECKING:
    from results.plots import Series
    from search_engine.deploy import FinishedRun
    from search_space.hybrid import HybridSpace
    from supernet.data import Dataset

log = logging.getLogger("hynas")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


RUN_FOLDER = "run folder (default: runs/<config name>)"
DEFAULT_CONFIG = "configs/demo.yaml"
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600}  # of --time-limit


def _user_path(text: str) -> str:
    """A path flag with ``~`` expanded, as the shell does for a word but not after ``=`` (``--out=~/runs/x``)."""
    return os.path.expanduser(text)


def _config_file(args: argparse.Namespace) -> str:
    """``--config``; else, resuming a folder that holds a run's ``config.yaml``, that file (so ``--out DIR
    --resume`` alone continues a run as it was started); else the demo's."""
    if args.config:
        return args.config
    if getattr(args, "resume", False) and getattr(args, "out", None) and (Path(args.out) / "config.yaml").is_file():
        return str(Path(args.out) / "config.yaml")
    return DEFAULT_CONFIG


def _common(p: argparse.ArgumentParser, out: str | None = RUN_FOLDER, config: bool = True) -> None:
    """The flags every subcommand shares; ``out`` describes what ``--out`` names (None: no output of its own)."""
    g = p.add_argument_group("common options")
    if config:
        g.add_argument("--config", metavar="FILE", type=_user_path,
                       help=f"experiment YAML, a path or a preset name (default: {DEFAULT_CONFIG}; with --resume, "
                            "the config.yaml of the --out folder being continued)" if out == RUN_FOLDER else
                            f"experiment YAML, a path or a preset name (default: {DEFAULT_CONFIG})")
        g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set search.budget=50 (repeatable)")
    if out:
        g.add_argument("--out", metavar="PATH", type=_user_path, help=out)
        g.add_argument("--resume", action="store_true", help="continue what an earlier command left in --out")
        g.add_argument("--force", action="store_true", help="replace what is in --out")
    g.add_argument("--seed", type=_int_at_least(0, MAX_SEED), help="random seed (default: the config's, 0)")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def _sub(subs, name: str, help_text: str, example: str, out: str | None = RUN_FOLDER,
         config: bool = True) -> argparse.ArgumentParser:
    p = subs.add_parser(name, help=help_text, description=f"{help_text}\n\nexample:\n  {example}",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p, out, config)
    p.set_defaults(command_parser=p)  # for errors argparse only finds after the subcommand's parser returned
    return p


def _subnet_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", type=_user_path, help="a run folder written by `hynas run` or `hynas search`")
    g = p.add_argument_group("which subnet (exactly one)")
    g.add_argument("--trial", type=int, help="a measured trial (the `trial` column of measured.csv)")
    g.add_argument("--arch", help="an arch string of the run's space")
    g.add_argument("--pick", metavar="EXPR", help="the most accurate subnet of the measured front meeting these "
                   "comma-separated constraints, e.g. 'latency_ms<=0.3,size_mb<=0.05'")


def _versions() -> str:
    """hynas's version and those of the libraries whose versions change measured numbers (for bug reports)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"
    libraries = ", ".join(f"{name} {installed(name)}" for name in ("torch", "onnxruntime", "optuna", "pymoo", "ray"))
    return f"hynas {installed('hynas')} ({libraries})"


class _PrintVersions(argparse.Action):
    """``--version``, looked up only when asked for (reading package metadata costs every other command ~40 ms)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(_versions())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hynas",
        description="Hardware-aware, quantization-aware neural architecture search.\n"
                    "One supernet of conv and attention blocks with per-layer bit-widths, trained once; "
                    "a multi-objective search for accuracy, latency and size.",
        epilog="Start with `hynas run` (the default config does the whole job on the embedded MNIST digits, "
               "about 8 minutes on 2 cores). `hynas <command> --help` explains each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_PrintVersions,
                        help="print the versions of hynas and of the libraries that set its numbers, then exit")
    subs = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    subs.required = True

    space = subs.add_parser("space", help="inspect a search space")
    space_subs = space.add_subparsers(dest="space_command", metavar="<space command>", parser_class=_Parser)
    space_subs.required = True
    info = _sub(space_subs, "info", "print a space's size, largest and smallest arch with costs, and samples",
                "hynas space info configs/spaces/cifar_hybrid.yaml", out=None)
    info.add_argument("space", nargs="?", type=_user_path,
                      help="space YAML, preset name or nb201 (default: the config's space)")
    info.add_argument("--table", type=_user_path, help="benchmark CSV of a tabular space")
    info.add_argument("--samples", type=_int_at_least(0), default=3, help="random archs to show (default: %(default)s)")
    info.set_defaults(handler=cmd_space_info)

    search_p = _sub(subs, "search", "multi-objective search of subnets, or of a benchmark table",
                    "hynas search --space nb201 --objectives test_acc:max,latency_raspi4_ms:min --budget 200 --seed 0")
    g = search_p.add_argument_group("search options (each overrides the config)")
    g.add_argument("--space", type=_user_path, help="space YAML, preset name, or nb201 (a tabular benchmark)")
    g.add_argument("--table", metavar="CSV", type=_user_path,
                   help="benchmark table of a tabular space (default: the shipped NB201 table)")
    _search_options(g)
    _device_option(search_p)
    search_p.set_defaults(handler=cmd_search)

    train_p = _sub(subs, "train", "train the supernet once (sandwich rule, in-place distillation, fake quantization)",
                   "hynas train --config configs/demo.yaml --set train.epochs=6")
    _device_option(train_p, times=False)
    train_p.add_argument("--workers", type=_positive_int, default=1,
                         help="data-parallel processes on Ray Train (torch DDP, gloo); 1 trains in this process")
    train_p.add_argument("--address", help="Ray cluster for --workers (as for search); default: local")
    train_p.set_defaults(handler=cmd_train)

    profile_p = _sub(subs, "profile", "measure every layer configuration of a space on this machine into a latency "
                     "lookup table (profile a device once, search anywhere with `lut:` in a hardware profile)",
                     "hynas profile --space mnist_hybrid --hardware cpu_ort --out luts/mnist_cpu_ort.json",
                     out="the lookup table file (default: runs/luts/<space>@<hardware>.json)")
    profile_p.add_argument("--space", type=_user_path, help="space YAML or preset name (default: the config's space)")
    profile_p.add_argument("--hardware", help="hardware profile YAML or preset name (default: the config's first)")
    profile_p.add_argument("--fit-archs", type=_positive_int, default=40,
                           help="whole subnets measured to fit the table's scale per kind of layer "
                                "(default: %(default)s)")
    profile_p.set_defaults(handler=cmd_profile)

    export_p = _sub(subs, "export", "export a subnet: weights, torch.export program, ONNX fp32 and int8, each "
                    "checked against the supernet, with a README", "hynas export runs/demo --pick 'latency_ms<=0.3'",
                    out="export folder (default: RUN/export/trial-N, or a short form of --arch)", config=False)
    _subnet_choice(export_p)
    export_p.set_defaults(handler=cmd_export)

    finetune_p = _sub(subs, "finetune", "fine-tune one searched subnet on its own (quantization-aware, distilled "
                      "from the supernet's teachers), then re-measure it; a later export uses the fine-tuned weights",
                      "hynas finetune runs/demo --trial 12 --epochs 3", out=None, config=False)
    _subnet_choice(finetune_p)
    _device_option(finetune_p, "the run's", times=False)
    finetune_p.add_argument("--epochs", type=_positive_int, default=3, help="epochs (default: %(default)s)")
    finetune_p.add_argument("--force", action="store_true",
                            help="fine-tune again, replacing RUN/finetuned/<subnet>/ (it starts from the supernet "
                            "either way)")
    finetune_p.set_defaults(handler=cmd_finetune)

    run_p = _sub(subs, "run", "the whole job: train the supernet, profile this machine, search, validate the front "
                 "on the test split, export the best subnets, plot, report (each phase resumes with --resume)",
                 "hynas run --config configs/demo.yaml")
    _search_options(run_p.add_argument_group("search options (each overrides the config's search section)"))
    _device_option(run_p)
    run_p.set_defaults(handler=cmd_run)

    plot_p = _sub(subs, "plot", "plot Pareto fronts (every pair of objectives) and hypervolume of one or more runs "
                  "of the same objectives", "hynas plot runs/demo runs/demo-nsga2 --out plots/", config=False,
                  out=None)
    plot_p.add_argument("runs", nargs="+", metavar="RUN", type=_user_path, help="run folders")
    plot_p.add_argument("--out", metavar="DIR", type=_user_path,
                        help="where the PNG files go (default: the run folder for one run; "
                        "FIRST_RUN/compare for several, so that the plots its report shows stay)")
    plot_p.set_defaults(handler=cmd_plot)
    return parser


def _search_options(g: argparse._ArgumentGroup) -> None:
    """What ``search`` and ``run`` both take: what to search for, how long, where, and the store."""
    g.add_argument("--objectives", metavar="LIST",
                   help="comma-separated name:max|min, e.g. accuracy:max,latency_ms:min,size_mb:min")
    g.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="a limit on an objective or on any measured value, e.g. 'latency_ms <= 5' (repeatable); "
                        "with --objectives accuracy:max,size_mb:min it is a latency budget, measured with every arch")
    g.add_argument("--budget", type=_positive_int, help="measured archs to stop at")
    g.add_argument("--time-limit", type=_duration, metavar="DURATION",
                   help="wall-clock limit, checked between batches: seconds, or with a unit (90s, 30m, 2h)")
    g.add_argument("--batch-size", type=_positive_int, help="archs per round")
    g.add_argument("--strategy", help="linas (default), random, nsga2, optuna-nsga2, optuna-tpe")
    g.add_argument("--runner", help="local (default) or ray")
    g.add_argument("--workers", type=_positive_int, help="parallel evaluation workers (ray runner)")
    g.add_argument("--address", help="Ray cluster to join: auto (on a node of the cluster) or HEAD_IP:6379; "
                   "ray://HEAD_IP:10001 needs ray[client]; default: a local instance")
    g.add_argument("--storage", metavar="URL",
                   help="Optuna storage URL (default: sqlite:///<run folder>/study.db; postgresql://... for clusters)")


def _int_at_least(minimum: int, maximum: int | None = None):
    """An argparse type: an integer of at least ``minimum`` and at most ``maximum`` (a bad value is argparse's one
    line, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text} must be from {minimum} to {maximum}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be {'positive' if minimum == 1 else f'at least {minimum}'}")
        return value
    return parse


_positive_int = _int_at_least(1)


def _duration(text: str) -> float:
    """An argparse type: seconds, as ``90``, ``90s``, ``30m`` or ``2h``."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in SECONDS_PER_UNIT else (text, "s")
    try:
        return float(number) * SECONDS_PER_UNIT[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (seconds, or 90s, 30m, 2h)") from None


def _device_option(p: argparse.ArgumentParser, default: str = "the config's", times: bool = True) -> None:
    """``times``: the command measures latency (search, run), which the device does not move."""
    p.add_argument("--device", help=f"torch device for training and accuracy, e.g. cpu or cuda (default: {default}, "
                   "cpu)" + ("; latency is measured where the hardware profile says" if times else ""))


def _common_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values, then ``--seed`` and ``--device`` as config overrides (validated like the YAML)."""
    return list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else []) + \
        ([f"device={args.device}"] if args.device else [])


def _search_overrides(args: argparse.Namespace) -> list[str]:
    """CLI flags of ``search`` as config overrides (so they are validated like the YAML)."""
    sets = _common_overrides(args)
    flags = {"space": "space", "table": "table", "budget": "search.budget", "time_limit": "search.time_limit_s",
             "batch_size": "search.batch_size", "strategy": "search.strategy", "runner": "search.runner",
             "workers": "search.workers", "address": "search.address"}
    for attr, key in flags.items():
        if getattr(args, attr, None) is not None:
            sets.append(f"{key}={getattr(args, attr)}")
    if args.objectives:
        sets.append(f"search.objectives=[{args.objectives}]")
    if args.constraint:
        sets.append("search.constraints=[" + ", ".join(f"'{c}'" for c in args.constraint) + "]")
    return sets


def _search_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config of ``search``. A run name the user did not ``--set`` comes from the run folder being resumed,
    else, for ``--space``, from what the search is (``nb201-linas-s0``: the config's name would describe another
    job), else from the config; it names the study, so a resumed run must keep it."""
    from search_engine.run_folder import recorded_name

    config = load_config(_config_file(args), _search_overrides(args))
    if any(s.partition("=")[0].strip() == "name" for s in args.overrides):
        return config
    name = recorded_name(Path(args.out)) if args.resume and args.out else None
    if name is None and args.space:
        name = f"{Path(args.space).stem}-{config.search.strategy}-s{config.seed}"
    return config if name in (None, config.name) else replace(config, name=name)


def cmd_search(args: argparse.Namespace) -> int:
    from search_space.objectives import format_value
    from search_engine.job import build_job, inputs_checked, loads_supernet, run_job, true_front_hypervolume
    from search_engine.run_folder import STUDY_FILE, open_run, run_folder_path

    config = _search_config(args)
    job = build_job(config)  # validate everything before touching the run folder
    run_path = run_folder_path(config, args.out)
    with inputs_checked(job, config, run_path, storage=args.storage, force=args.force):
        _check_cluster(config.search.address, config)
        supernet = [config.checkpoint_path(run_path)] if loads_supernet(job, config) else []
        with open_run(config, args.out, args.resume, args.force, supernet) as run_dir:
            job, outcome = run_job(config, run_dir, args.storage, progress=not args.quiet, job=job)
    stopped_short = outcome.stopped_short(job.budget)
    print(f"measured {counted(len(outcome.records), 'arch')} ({outcome.failures} failed)"
          + ("" if stopped_short else f", stopped by {outcome.stopped_by}") + f"; front of {len(outcome.front)}")
    if stopped_short:
        print(f"  {stopped_short}; `--resume` measures more")
    _say_why_the_front_is_empty(outcome.front, len(outcome.records), config)
    if outcome.in_flight_elsewhere:
        print(f"  {outcome.in_flight_elsewhere} more are still being measured by other drivers sharing the study; "
              "`--resume` later adds them")
    for r in outcome.front[:15]:
        print("  " + "  ".join(f"{n}={format_value(n, r.values[n])}" for n in [o.name for o in job.objectives]
                               + [n for n in job.limited if n in r.values])
              + f"  {r.arch}")
    if outcome.reference is not None:
        point = ", ".join(f"{o.name}={v * o.sign:.6g}" for o, v in zip(job.objectives, outcome.reference))
        line = f"hypervolume {outcome.hypervolume:.6g} (reference point {point}; set it with search.reference)"
        true_hv = true_front_hypervolume(job, outcome.reference)
        if true_hv:
            line += f"; {outcome.hypervolume / true_hv:.4f} of the table's true front"
        print(line)
    store = hide_password(args.storage) if args.storage else run_dir / STUDY_FILE
    print(f"results: {run_dir}/measured.csv, {run_dir}/pareto.csv, store {store}")
    if (run_dir / "report.md").is_file():  # a `hynas run` folder: its later phases saw the front before this search
        print("report.md, the plots and export/ describe the front before this search; "
              f"`hynas run --out {shlex.quote(str(run_dir))} --resume` validates, exports and reports the new one")
    return 0


def _say_why_the_front_is_empty(front: Sequence, measured: int, config: ExperimentConfig) -> None:
    if measured and not front and config.search.constraints:
        print(f"  none of the {counted(measured, 'measured arch')} meets {' and '.join(config.search.constraints)}; "
              "loosen the limits, or measure more with --resume and a larger --budget")


def _check_cluster(address: str | None, config: ExperimentConfig | None = None) -> None:
    """Before the run folder is touched: a wrong Ray ``--address``, or a profile's ``node`` that is not in the
    cluster (``config``: a search's), stops the command in seconds."""
    if address:
        from search_engine.runners.ray_runner import check_ray_address

        check_ray_address(address)
    if config is not None:
        from search_engine.job import check_latency_node

        check_latency_node(config)


def _refuse_other_training(config: ExperimentConfig, space: HybridSpace, args: argparse.Namespace,
                           data: Dataset) -> None:
    """Before the run folder is touched (its config.yaml and log): with ``--resume``, a supernet
    trained there with other settings or on other images stops the command with one line naming them."""
    from search_engine.run_folder import run_folder_path
    from supernet.train import refuse_other_settings

    checkpoint = run_folder_path(config, args.out) / "supernet.pt"
    if args.resume and not config.checkpoint and checkpoint.is_file():
        refuse_other_settings(checkpoint, space, config.train, config.seed, data)


def cmd_train(args: argparse.Namespace) -> int:
    from search_engine.run_folder import open_run
    from search_space.hybrid import HybridSpace
    from supernet.checkpoint import load_checkpoint
    from supernet.data import load_dataset
    from supernet.device import checked_device
    from supernet.train import train_supernet

    config = load_config(_config_file(args), _common_overrides(args))
    space = load_space(config.space, config.table)
    if not isinstance(space, HybridSpace):
        raise HynasError(f"{config.source}: space {config.space!r} is a table; only hybrid spaces have a supernet")
    checked_device(config.device, f"{config.source}: device")
    data = load_dataset(config.data, space.input, config.seed)
    _refuse_other_training(config, space, args, data)
    _check_cluster(args.address if args.workers > 1 else None)
    with open_run(config, args.out, args.resume, args.force) as run_dir:
        checkpoint = run_dir / "supernet.pt"
        if args.workers > 1:
            from search_engine.distributed_train import train_on_ray

            train_on_ray(space, config, checkpoint, args.workers, args.resume, args.address, run_dir,
                         progress=not args.quiet)
            history = load_checkpoint(checkpoint, space)["history"]
        else:
            history = train_supernet(space, data, config.train, config.seed, checkpoint, resume=args.resume,
                                     device=config.device, progress=not args.quiet).history
    last = history[-1]
    print(f"supernet trained for {counted(last['epoch'], 'epoch')}: validation accuracy largest "
          f"{last['largest_val_acc']:.2f} %, smallest {last['smallest_val_acc']:.2f} %; checkpoint {checkpoint}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from search_space.objectives import format_value
    from search_engine.job import inputs_checked
    from search_engine.pipeline import build_run_job, run_pipeline
    from search_engine.run_folder import open_run, run_folder_path

    config = load_config(_config_file(args), _search_overrides(args))
    job = build_run_job(config)  # validate everything before touching the run folder, the data set too
    with inputs_checked(job, config, run_folder_path(config, args.out), trains=True, storage=args.storage,
                        force=args.force) as data:
        _refuse_other_training(config, job.space, args, data)
        _check_cluster(config.search.address, config)
        with open_run(config, args.out, args.resume, args.force) as run_dir:
            outcome = run_pipeline(config, run_dir, args.storage, progress=not args.quiet)
    print(f"run {config.name}: front of {counted(len(outcome.front), 'subnet')}, validated on the test split "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in outcome.seconds.items())})")
    if outcome.stopped_short:
        print(f"  {outcome.stopped_short}; `hynas run --out {shlex.quote(str(run_dir))} --resume` measures more")
    _say_why_the_front_is_empty(outcome.front, outcome.measured, config)
    for row in outcome.front[:10]:
        print(f"  trial {int(row['trial']):3d}  test {row['test_accuracy']:.2f} %  " + "  ".join(
            f"{k}={format_value(k, row[k])}" for k in row if k not in ("trial", "arch", "test_accuracy") and
            not k.endswith("_again")))
    if outcome.versus_int8:
        print(outcome.versus_int8.sentence())
    for what, folder in outcome.exports:
        print(f"exported {what}: {folder}")
    print(f"report: {outcome.report}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from results.plots import Series, plot_hypervolume, plot_pairs
    from search_engine.deploy import open_finished_run

    folders: dict[Path, str] = {}
    for given in args.runs:  # each run once, named as first given
        folders.setdefault(Path(given).resolve(), given)
    runs = [open_finished_run(r) for r in folders.values()]
    objectives = runs[0].objectives
    for run in runs[1:]:
        if [o.name for o in run.objectives] != [o.name for o in objectives]:
            raise HynasError(f"{run.folder}: objectives {[str(o) for o in run.objectives]} differ from "
                             f"{runs[0].folder}'s {[str(o) for o in objectives]}; plot runs of the same objectives")
    # several runs: beside the first run's own plots, not over them (its report.md shows those, with baselines)
    out = Path(args.out) if args.out else runs[0].folder / ("compare" if len(runs) > 1 else "")
    if out.exists() and not out.is_dir():
        raise HynasError(f"--out {out}: a file is there; give a folder for the plots")
    out.mkdir(parents=True, exist_ok=True)
    labels = [r.folder.name if r.config.search.strategy in r.folder.name else
              f"{r.folder.name} ({r.config.search.strategy})" for r in runs]
    series = [Series(label, [rec.values for rec in r.records], r.constraints) for label, r in zip(labels, runs)]
    baselines = []
    if len(runs) == 1 and (runs[0].folder / "baselines.csv").is_file():
        from search_engine.pipeline import baseline_series

        baselines = baseline_series(runs[0].folder / "baselines.csv", objectives)
    paths = plot_pairs(series, objectives, out, baselines, _table_front(runs)) + [
        plot_hypervolume(series, objectives, out)]
    for path in paths:
        print(path)
    return 0


def _table_front(runs: Sequence[FinishedRun]) -> Series | None:
    """The exact front of the benchmark table the runs searched, when they searched one table under one set of
    constraints (what each run's "of the table's true front" is measured against)."""
    from results.plots import Series
    from search_engine.job import true_front

    first = runs[0]
    if any((r.config.space, r.config.table, r.constraints) != (first.config.space, first.config.table,
                                                                first.constraints) for r in runs):
        return None
    rows = true_front(load_space(first.config.space, first.config.table), first.objectives, first.constraints)
    return None if rows is None else Series("the table's true front", rows)


def _chosen_subnet(args: argparse.Namespace):
    """The finished run and the subnet ``--trial``, ``--arch`` or ``--pick`` chooses in it."""
    from search_engine.deploy import open_finished_run, pick_subnet, refuse_stale_measurements

    run = open_finished_run(args.run, need_records=False)
    refuse_stale_measurements(run)
    if not run.records and args.arch is None:  # an --arch of a trained supernet needs no search
        raise HynasError(f"{run.folder}: nothing measured to choose from (no measured.csv with results); search it "
                         f"first (`hynas search --out {shlex.quote(str(run.folder))} --resume`), or name a subnet "
                         "with --arch")
    return run, pick_subnet(run, load_space(run.config.space), args.trial, args.arch, args.pick)


def cmd_export(args: argparse.Namespace) -> int:
    from search_engine.deploy import export_pick, weights_of
    from search_engine.run_folder import prepare_run_folder
    from search_space.files import file_digest
    from supernet.export import finished_export
    from supernet.trained import load_trained

    run, chosen = _chosen_subnet(args)
    out = Path(args.out) if args.out else run.folder / "export" / chosen.label
    # `hynas run` exports the front's best few, and exporting one of them again from the same weights is done
    # already (before session 33 the help's own example, run right after `make demo`, said "export folder exists")
    source = weights_of(run, chosen)  # when it is missing, loading it below says so
    export_anew = args.force or args.resume or not source.is_file()
    result = None if export_anew else finished_export(out, chosen.arch, file_digest(source))
    if result:
        print(f"{out} holds this export already (the same arch and weights; --force exports it again): accuracy of "
              f"the exported model validation {result.accuracy['validation']:.2f} %, test "
              f"{result.accuracy['test']:.2f} %")
    else:
        trained = load_trained(run.config, run.checkpoint, "cpu")  # cheap on a CPU: a GPU's run exports anywhere
        out = prepare_run_folder(out, args.resume, args.force, reads=[run.folder], what="export folder")
        result = export_pick(run, trained, chosen, out)
        print(f"exported {chosen.arch} to {out}: accuracy of the exported model validation "
              f"{result.accuracy['validation']:.2f} %, test {result.accuracy['test']:.2f} %")
    for name, value in result.checks.items():
        print(f"  {name:17s} " + (f"max abs logit difference {value:.1e}" if name != "model_int8.onnx" else
                                   f"top-1 agreement {100 * value:.1f} % where the supernet decides clearly"
                                   if not math.isnan(value) else "not checked: the supernet decides no image clearly"))
    print(f"how to load each file: {out / 'README.md'}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from search_engine.deploy import finetuned_checkpoint
    from supernet.finetune import finetune_subnet
    from supernet.trained import load_trained

    run, chosen = _chosen_subnet(args)
    trained = load_trained(run.config, run.checkpoint, args.device)
    checkpoint = finetuned_checkpoint(run, chosen.label)
    if checkpoint.exists() and not args.force:
        raise HynasError(f"{checkpoint}: this subnet is already fine-tuned; replace it with --force")
    seed = run.config.seed if args.seed is None else args.seed
    outcome = finetune_subnet(trained.supernet, chosen.arch, trained.data, run.config.train, args.epochs, seed,
                              checkpoint, progress=not args.quiet)
    print(f"fine-tuned {chosen.arch} for {counted(args.epochs, 'epoch')}: validation {outcome.before['val']:.2f} -> "
          f"{outcome.after['val']:.2f} %, test {outcome.before['test']:.2f} -> {outcome.after['test']:.2f} %")
    export = run.folder / "export" / chosen.label
    replaced = export.exists()  # an export of the inherited weights is there
    print(f"checkpoint {checkpoint}; `hynas export {shlex.quote(str(run.folder))} "
          f"--{'trial' if chosen.record else 'arch'} "
          f"{chosen.record.number if chosen.record else shlex.quote(chosen.arch.to_str())}"
          f"{' --force' if replaced else ''}` exports the fine-tuned weights"
          + (f", replacing {export}" if replaced else ""))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from search_engine.profiling import profile_space
    from search_space.config import load_hardware
    from search_space.hybrid import HybridSpace
    from search_engine.run_folder import prepare_output_file

    seed = [f"seed={args.seed}"] if args.seed is not None else []
    config = load_config(_config_file(args), list(args.overrides) + seed)
    space = load_space(args.space or config.space)
    if not isinstance(space, HybridSpace):
        raise HynasError(f"space {space.name!r} is a table: its latencies are already in the table")
    hardware = load_hardware(args.hardware or config.hardware[0])
    out = Path(args.out or Path("runs") / "luts" / f"{space.name}@{hardware.name}.json")
    prepare_output_file(out, args.resume, args.force)
    table = profile_space(space, hardware, out, resume=args.resume, seed=config.seed, fit_archs=args.fit_archs,
                          progress=not args.quiet)
    print(f"latency table {out}: {len(table.layers)} layer configurations of {space.name} on "
          f"{table.machine['host']} ({hardware.backend}, {hardware.threads} thread(s)); "
          f"fit on {int(table.fit['archs'])} subnets: latency = the frame ("
          + ", ".join(f"{kind} {ms:.4f} ms" for kind, ms in sorted(table.frame_ms.items()))
          + ") + the layers' sum, scaled per kind ("
          + ", ".join(f"{kind} x {scale:.2f}" for kind, scale in sorted(table.scales.items()))
          + f"), median error {100 * table.fit['median_abs_error']:.1f} %")
    print(f"search with it: add `lut: {out.resolve()}` to a hardware profile YAML")
    return 0


def cmd_space_info(args: argparse.Namespace) -> int:
    from search_space.summary import space_summary

    if args.space is None:
        config = load_config(_config_file(args), args.overrides)
        space = load_space(config.space, args.table or config.table)
        seed = config.seed if args.seed is None else args.seed
    else:
        space, seed = load_space(args.space, args.table), args.seed or 0
    print(space_summary(space, np.random.default_rng(seed), args.samples))
    return 0


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (it may be replaced after setup, e.g. by pytest)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _setup_logging(args: argparse.Namespace, command_line: str) -> None:
    """Console output at the level the flags ask; the ``hynas`` logger itself stays at INFO (or DEBUG
    with -v) so that a run folder's ``hynas.log`` is complete whatever the console shows: it opens with
    ``command_line`` and what was logged before the folder was (``EarlyRecords``)."""
    console_level = logging.WARNING if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", 0) else logging.INFO)
    logger = logging.getLogger("hynas")
    logger.setLevel(min(console_level, logging.INFO))
    logger.propagate = False
    from search_engine.run_folder import EarlyRecords

    for old in [h for h in logger.handlers if getattr(h, "_hynas_console", False) or isinstance(h, EarlyRecords)]:
        logger.removeHandler(old)
    early = EarlyRecords()
    early.handle(logger.makeRecord("hynas.run", logging.INFO, __file__, 0, "%s (process %d on %s)",
                                   (command_line, os.getpid(), socket.gethostname()), None))
    logger.addHandler(early)
    console = _StderrHandler()
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    console._hynas_console = True  # type: ignore[attr-defined]
    logger.addHandler(console)


def _reject_unknown(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """Exit 2 naming the arguments the subcommand does not take, with the option it has that is closest."""
    import difflib

    actions = parser._actions  # argparse has no public list
    positional = {a.dest: a.metavar or a.dest.upper() for a in actions if not a.option_strings}
    flag = next((u.split("=")[0] for u in unknown if u.startswith("--")), None)
    hint = ""
    if flag and flag[2:] in positional:  # `hynas space info --space X`, as `hynas search --space X` has it
        hint = f"; {positional[flag[2:]]} takes no flag: {parser.prog} {positional[flag[2:]]}"
    elif flag and (close := difflib.get_close_matches(flag, [o for a in actions for o in a.option_strings], n=1,
                                                      cutoff=0.75)):  # 0.6 offered --out for --bogus
        hint = f"; did you mean {close[0]}?"
    parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


class Terminated(KeyboardInterrupt):
    """SIGTERM: a scheduler ending the job (Slurm at its time limit, Kubernetes, `kill`). Raised where Ctrl-C's
    KeyboardInterrupt is, so the command stops as it does on Ctrl-C: the search withdraws its claims and writes
    its tables, Ray shuts down, and the exit says how to continue."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_command(args: argparse.Namespace) -> int:
    command = args.command_parser.prog  # `hynas space info`, as argparse's own errors name it
    try:
        code = args.handler(args)
        sys.stdout.flush()  # so that a reader gone early (`hynas ... | head`) shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return reader_gone()
    except HynasError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        # A path the system refuses (--out under a file, no permission, disk full): the user's to fix, and the
        # traceback would hide the path. -v keeps the traceback, for a bug report.
        if getattr(args, "verbose", 0):
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"{command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        # finetune starts from the supernet each time, so it has no --resume (nor have plot and space info)
        hint = "continue with --resume" if hasattr(args, "resume") else "nothing of it was kept; run it again"
        terminated = isinstance(stop, Terminated)
        print(f"{command}: {'terminated' if terminated else 'interrupted'}; {hint}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)  # as the shell reports a signal's exit


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``search.py`` and the ``hynas`` console script; returns the exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse names only `hynas --help` here; the subcommand's own options are what was meant
        _reject_unknown(args.command_parser, unknown)
    _setup_logging(args, hide_password(shlex.join(["hynas", *(sys.argv[1:] if argv is None else argv)])))
    with _sigterm_as_interrupt():
        return _run_command(args)


if __name__ == "__main__":
    sys.exit(main())
