"""The run folder: created fresh, continued with ``resume``, replaced with ``force``, never clobbered."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from search_space.config import ExperimentConfig, load_hardware
from search_space.errors import ConfigError
from search_space.files import atomic_write_text

try:
    import fcntl
except ImportError:  # Windows: no advisory locks of this kind; folders go unguarded, as before session 29
    fcntl = None

LOG_FILE = "hynas.log"
LOCK_FILE = ".hynas.lock"  # held while a command works in the folder (see _held)
CONFIG_FILE = "config.yaml"
STUDY_FILE = "study.db"  # the search's Optuna study, unless --storage names another
# What a resumed run may change: how long and where it runs, not what it computes.
RESUME_MAY_CHANGE = frozenset({"search.budget", "search.time_limit_s", "search.runner", "search.workers",
                               "search.address", "device"})

log = logging.getLogger("hynas.run")


def folder_storage(folder: Path) -> str:
    """The Optuna storage URL of the study in a run folder (the default of ``--storage``)."""
    return f"sqlite:///{(folder / STUDY_FILE).resolve()}"


def prepare_run_folder(path: str | Path, resume: bool, force: bool, reads: Iterable[str | Path] = (),
                       what: str = "run folder") -> Path:
    """Return the run folder, ready to write; an existing non-empty one needs ``resume`` or ``force``. ``force``
    is refused when the folder holds one of the files the command ``reads`` (a checkpoint it searches)."""
    path = Path(path)
    if _check_run_folder(path, resume, force, reads, what):
        _empty(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _empty(folder: Path) -> None:
    """Delete what ``folder`` holds but its lock: a command that starts meanwhile must find the folder held."""
    for child in folder.iterdir():
        if child.name != LOCK_FILE:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _check_run_folder(path: Path, resume: bool, force: bool, reads: Iterable[str | Path],
                      what: str = "run folder") -> bool:
    """One line if ``path`` cannot be used as asked, changing nothing; True when ``force`` is to empty it."""
    if resume and force:
        raise ConfigError("--resume and --force contradict each other; give one")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir()):
        if force:
            _refuse_deleting_inputs(path, reads)
            return True
        if not resume:
            raise ConfigError(f"{path}: {what} exists; continue it with --resume or replace it with --force")
    elif resume:
        raise ConfigError(f"{path}: no run to resume there; drop --resume to start one")
    return False


@contextmanager
def _held(folder: Path) -> Iterator[None]:
    """This process's hold on ``folder`` (an advisory lock on a file in it, released when the ``with`` ends or the
    process dies), or one line saying who holds it: two commands in one run folder would train one checkpoint
    twice over, or redo each other's phases. The file stays (deleting it would let a third command lock a new
    one beside a holder of the old)."""
    if fcntl is None:
        yield
        return
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(f"{folder}: in use by {holder}; wait for it to end, or give another --out") from None
        except OSError as err:  # a file system without locks (some network mounts): run unguarded, as before
            log.debug("%s: cannot lock it (%s); not guarded against a second command", folder, err)
        else:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()} since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            handle.flush()
        yield  # the lock goes with the file's closing


def _refuse_deleting_inputs(folder: Path, reads: Iterable[str | Path]) -> None:
    """Before ``--force`` empties ``folder``: one line if an input of the command lies in it. Replacing
    ``runs/demo`` by a search of ``runs/demo/supernet.pt`` deleted the supernet, then stopped for want of it."""
    root = folder.resolve()
    for read in reads:
        target = Path(read).resolve()
        if target == root or root in target.parents:
            raise ConfigError(f"{folder}: --force would delete {read}, which this command reads; give another --out")


def config_inputs(config: ExperimentConfig) -> list[str]:
    """The files and folders a run reads that its config names (beyond its own run folder): the supernet
    checkpoint, the space and hardware YAML files, their lookup tables, the benchmark table, the data set."""
    named = [config.checkpoint, config.table, config.data.path, config.space, *config.hardware]
    luts = [profile.lut for profile in map(load_hardware, config.hardware) if profile.lut]
    return [str(p) for p in named + luts if p and Path(p).exists()]  # preset names are no paths


def prepare_output_file(path: Path, resume: bool, force: bool) -> None:
    """The same rule for a single output file (a latency table): continue or replace, never clobber."""
    if resume and force:
        raise ConfigError("--resume and --force contradict each other; give one")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: exists and is not a file")
    if path.exists():
        if force:
            path.unlink()
        elif not resume:
            raise ConfigError(f"{path}: exists; continue it with --resume or replace it with --force")
    elif resume:
        raise ConfigError(f"{path}: nothing to resume there; drop --resume to start")
    path.parent.mkdir(parents=True, exist_ok=True)


class EarlyRecords(logging.Handler):
    """Keeps what the ``hynas`` log says before the command's run folder is open (reading and checking the data
    set, say), for ``open_run`` to write into the folder's ``hynas.log`` after the command line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _replay_early_records(into: logging.Handler) -> None:
    logger = logging.getLogger("hynas")
    for early in [h for h in logger.handlers if isinstance(h, EarlyRecords)]:
        logger.removeHandler(early)  # from here on the file has every record
        for record in early.records:
            into.handle(record)


def attach_log_file(folder: Path) -> logging.Handler:
    """Mirror the ``hynas`` log into ``<run folder>/hynas.log``; returns the handler to detach."""
    handler = logging.FileHandler(folder / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("hynas").addHandler(handler)
    return handler


def run_folder_path(config: ExperimentConfig, out: str | None) -> Path:
    """Where a command's run folder is: ``out``, else ``runs/<config name>``."""
    return Path(out or Path("runs") / config.name)


def _flat(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _recorded_settings(folder: Path) -> dict | None:
    """The settings a folder's ``config.yaml`` records, None if it has none; one ``ConfigError`` line if unreadable."""
    recorded = folder / CONFIG_FILE
    if not recorded.is_file():
        return None
    try:
        settings = yaml.safe_load(recorded.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{recorded}: cannot read the settings this run was started with: "
                          f"{str(err).splitlines()[0]}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{recorded}: cannot read the settings this run was started with: not a mapping")
    return settings


def recorded_name(folder: Path) -> str | None:
    """The run name in a folder's ``config.yaml``, None where there is none to read (the resume check that follows,
    ``refuse_other_run_settings``, reports an unreadable file)."""
    try:
        name = (_recorded_settings(folder) or {}).get("name")
    except ConfigError:
        return None
    return name if isinstance(name, str) else None


def refuse_other_run_settings(folder: Path, config: ExperimentConfig) -> None:
    """Before a resumed run's folder is touched: if its ``config.yaml`` records other settings than
    ``config`` (beyond ``RESUME_MAY_CHANGE``), one ``ConfigError`` line naming each. Settings the
    recorded file lacks (written by an older version) are not compared."""
    settings = _recorded_settings(folder)
    if settings is None:
        return
    before = _flat(settings)
    now = _flat(yaml.safe_load(config.to_yaml()))  # through YAML, as the recorded file went, so like compares with like
    differences = [f"{key}={before[key]!r} in the run, {value!r} now" for key, value in now.items()
                   if key in before and key not in RESUME_MAY_CHANGE and before[key] != value]
    if differences:
        raise ConfigError(f"{folder / CONFIG_FILE}: the run was started with other settings "
                          f"({'; '.join(differences)}); resume with the same ones, or start over with --force or "
                          "another --out")


def ensure_run_folder(folder: Path, config: ExperimentConfig) -> None:
    """For library calls (``run_job``, ``run_pipeline``): the folder exists and records the settings it runs with,
    as ``open_run`` leaves it for the CLI, so that ``hynas export``, ``plot`` and ``--resume`` can read it back.
    No resume or force rule here: a library caller chooses the folder and what is in it."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / CONFIG_FILE).is_file():
        atomic_write_text(folder / CONFIG_FILE, config.to_yaml())


@contextmanager
def open_run(config: ExperimentConfig, out: str | None, resume: bool, force: bool,
             reads: Iterable[Path] = ()) -> Iterator[Path]:
    """The run folder (``run_folder_path``), prepared, with the resolved ``config.yaml`` written and the log
    mirrored into it, held by this command (``_held``) until the ``with`` ends. Call only after the input is
    validated. A resumed run must keep the settings it was started with (``refuse_other_run_settings``).
    ``reads``: inputs beyond those the config names (``config_inputs``), such as a search's supernet in its own
    folder, which ``force`` must not delete."""
    path = run_folder_path(config, out)
    if resume and not force:
        refuse_other_run_settings(path, config)
    empty_it = _check_run_folder(path, resume, force, [*config_inputs(config), *reads])
    path.mkdir(parents=True, exist_ok=True)
    with _held(path):
        if empty_it:
            _empty(path)
        atomic_write_text(path / CONFIG_FILE, config.to_yaml())
        handler = attach_log_file(path)
        _replay_early_records(handler)
        try:
            yield path
        finally:
            logging.getLogger("hynas").removeHandler(handler)
            handler.close()
