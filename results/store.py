"""The results store: an Optuna study in RDB storage, one trial per measured arch.

Contract (the store is the single source of truth of a run):

* A trial is *claimed* (state RUNNING) before an arch is evaluated and *completed* with its
  objective values (COMPLETE) or *failed* with its error (FAIL) when the result arrives.
  ``params`` are the arch's genes, ``user_attrs`` its string, the driver and measurement metadata.
* Several drivers may share one study: a claim that duplicates an earlier live claim of the
  same arch, or that falls beyond the budget, is withdrawn, so the study ends with exactly
  ``budget`` distinct archs. The lower trial number wins every race.
* A RUNNING trial whose driver process died on this host, or whose driver (on any host) stopped
  sending heartbeats for ``2 * heartbeat_seconds``, is failed by ``release_stale`` (its arch is
  free to be claimed again). Each store sends its claims' heartbeats from a daemon thread.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from results.urls import hide_password
from search_space.errors import ConfigError, HynasError
from search_space.objectives import Metrics, Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger("hynas.store")

ATTR_ARCH, ATTR_DRIVER, ATTR_ERROR = "arch", "driver", "error"
WITHDRAWN = "withdrawn"  # the error text of a claim given up to another driver or to the budget


@dataclass(frozen=True)
class Record:
    """One measured arch as stored."""

    number: int
    arch: str
    values: dict[str, float] = field(hash=False)
    meta: dict[str, Any] = field(hash=False)


def driver_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_installed_driver(url: str) -> str:
    """``url`` with the PostgreSQL driver that is installed, when it names none.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, while ``hynas[postgres]`` installs
    psycopg2 (the driver most PostgreSQL deployments have); without this the README's URL fails
    with "driver missing" right after that install. A URL that names its driver is left alone."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "postgresql" and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return url


# Drivers started together on an empty database all create Optuna's tables, and all but one fail
# (optuna/optuna#1092: "duplicate key value violates unique constraint pg_type_typname_nsp_index" on
# PostgreSQL); opening again then finds the tables. Measured: two `hynas search` started at once on a
# new PostgreSQL database, one exited 2 before this.
SCHEMA_RACE_ATTEMPTS = 8
SCHEMA_RACE_SIGNS = ("already exists", "duplicate key", "UNIQUE constraint failed")  # PostgreSQL, SQLite


@contextmanager
def _experimental_optuna() -> Iterator[None]:
    """Optuna's API hynas relies on that Optuna marks "experimental" (heartbeats since 2.9, metric names since
    3.2), without the warning it prints at every use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _database_reason(err: BaseException) -> str:
    """The database's own words for a failure (``database or disk is full``), on one line: Optuna wraps them in a
    generic "An exception is raised during the commit", SQLAlchemy adds the statement and a link, and PostgreSQL's
    run over lines ("... failed: Connection refused / Is the server running ...")."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return " ".join(str(err).split())


def open_storage(url: str, heartbeat_seconds: int | None = None) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage for ``url`` (SQLite file, PostgreSQL, ...), with a clear error when it fails;
    ``heartbeat_seconds``: Optuna's heartbeat interval of the trials it runs (None: no heartbeats)."""
    if "://" not in url:  # a bare path: SQLAlchemy's "Could not parse SQLAlchemy URL" does not say what would do
        raise ConfigError(f"storage {url}: not a database URL; give one such as sqlite:///runs/x/study.db (a file) "
                          "or postgresql://user@host/db")
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        for attempt in range(SCHEMA_RACE_ATTEMPTS):
            try:
                with _experimental_optuna():
                    return optuna.storages.RDBStorage(with_installed_driver(url), engine_kwargs=kwargs,
                                                      heartbeat_interval=heartbeat_seconds)
            except (IntegrityError, ProgrammingError, OperationalError) as err:
                racing = any(sign in str(err) for sign in SCHEMA_RACE_SIGNS)  # not, e.g., a permission denied
                if not racing or attempt == SCHEMA_RACE_ATTEMPTS - 1:
                    raise
                time.sleep(random.Random().uniform(0.1, 0.5) * (attempt + 1))  # not the seeded global state
    except ImportError as err:
        raise ConfigError(f"storage {hide_password(url)}: the database driver is missing ({err}); "
                          "for PostgreSQL: pip install 'hynas[postgres]'") from None
    except Exception as err:  # SQLAlchemy raises many types for a bad URL or unreachable server
        reason = hide_password(_database_reason(err))
        raise ConfigError(f"storage {hide_password(url)}: cannot open it: {reason}") from None


SUPERNET = "supernet"  # the study's user attribute: the digest of the checkpoint its subnets were measured on


FOLDER_REMEDY = "search into another --out, or --force to start over"


def shared_study_remedy(study_name: str) -> str:
    """What to do about a study kept in a ``--storage`` of its own, which ``--force`` (emptying the run folder) leaves
    alone."""
    return f"give the search another name (--set name=...), or delete study {study_name!r} from that storage"


def refuse_another_supernet(study_name: str, recorded: str, now: str, remedy: str = FOLDER_REMEDY) -> None:
    """One line when a study's subnets were measured on another supernet than the one about to be measured."""
    if recorded != now:
        raise ConfigError(f"study {study_name!r} measured the subnets of another supernet (checkpoint digest "
                          f"{recorded}, now {now}): the checkpoint changed since, and its results would mix with "
                          f"these; {remedy}")


TABLE = "table"  # the study's user attribute: the digest of the benchmark table's columns it searched


@dataclass(frozen=True)
class SearchedTable:
    """The benchmark table a study measures: its file, and the digest of the columns searched (``Table.digest``)."""

    source: str
    digest: str


def refuse_another_table(study_name: str, recorded: str, now: str, source: str, remedy: str = FOLDER_REMEDY) -> None:
    """One line when a study measured other values of a benchmark table than the table now holds."""
    if recorded != now:
        raise ConfigError(f"{source}: study {study_name!r} measured other values of the columns it searches (digest "
                          f"{recorded}, now {now}): the table changed since, and its results would mix with these; "
                          f"restore the table, or {remedy}")


def recorded_identity(url: str, study_name: str, key: str) -> str | None:
    """What a stored study records under ``key`` (``SUPERNET``, ``TABLE``); None where there is no such study or
    it records none (nothing is created)."""
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(url)).user_attrs.get(key)
    except KeyError:  # no study of that name
        return None


class StoreError(HynasError):
    """The results store failed during a search (a full disk, a database server gone): what it holds is kept."""


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _reported(method: _Method) -> _Method:
    """A store call whose storage fails mid-search ends in one line naming the storage, not in a traceback
    through SQLAlchemy: a full disk or a lost server is for the user to fix, and the run continues after it."""
    @wraps(method)
    def call(self: ResultsStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as err:
            raise StoreError(f"storage {hide_password(self.url)}: {hide_password(_database_reason(err))}; what it "
                             "recorded before is kept: fix that, then continue with --resume") from None
    return call  # type: ignore[return-value]


# A driver that dies on another host leaves its claims RUNNING; no process id there can be checked, so each
# driver beats for its claims and another driver fails them after two beats missed (Optuna's heartbeat, timed by
# the database's clock, not the hosts'). A minute costs one write per claim in flight and releases in two.
HEARTBEAT_SECONDS = 60
LOST_DRIVER = "lost in flight: its driver died"


def _arch_count(trials: Sequence[FrozenTrial]) -> int:
    """How many archs ``trials`` hold against a budget: archs, not trials. A duplicate claim its driver has not
    withdrawn yet is one arch; counted twice, it withdrew claims within the budget, so that two drivers proposing
    alike (one config, one seed) ended one arch short."""
    return len({t.user_attrs.get(ATTR_ARCH) for t in trials})


class ResultsStore:
    """Measured archs of one search, in an Optuna study."""

    def __init__(self, storage_url: str, study_name: str, objectives: Sequence[Objective], space_name: str,
                 genes: Mapping[str, Sequence], supernet: str | None = None, table: SearchedTable | None = None,
                 heartbeat_seconds: int = HEARTBEAT_SECONDS) -> None:
        """``genes``: a trial's parameters, the space's gene names with their choices (a gene's value is the index
        of its choice). Archs are read back from their strings, so a study whose parameters were named otherwise
        (``g0``, ``g1``, ... before session 28) or held choice indexes (before session 29) still resumes.
        ``supernet``: the digest of the checkpoint whose subnets are measured (``file_digest``), None for a table;
        ``table``: the benchmark table whose objective (and constraint) columns are measured, None for a supernet."""
        self.objectives = tuple(objectives)
        self.url = storage_url
        self.heartbeat_seconds = heartbeat_seconds
        self.storage = open_storage(storage_url, heartbeat_seconds)
        self.study = optuna.create_study(
            storage=self.storage, study_name=study_name, load_if_exists=True,
            directions=["minimize" if o.direction == "min" else "maximize" for o in self.objectives])
        self._check_or_set_identity(space_name, supernet, table)
        self._distributions = self._parameter_distributions(genes)
        self.driver = driver_id()
        self._claims: dict[int, int] = {}  # this store's claims in flight (number: trial id), whose heartbeats it sends
        self._claims_lock = threading.Lock()
        self._stop_beating = threading.Event()
        self._beating: threading.Thread | None = None

    # -- heartbeats ------------------------------------------------------------------
    def in_flight(self) -> list[int]:
        """This store's claims neither measured nor failed yet: what a driver that stops early withdraws."""
        with self._claims_lock:
            return sorted(self._claims)

    def _beat(self, number: int, trial_id: int) -> None:
        """Record a heartbeat of this store's claim ``number`` now, and keep sending them until it is settled."""
        self.storage.record_heartbeat(trial_id)
        with self._claims_lock:
            if self._beating is None:  # the thread runs while claims are in flight
                self._beating = threading.Thread(target=self._keep_beating, name="hynas-heartbeat", daemon=True)
                self._beating.start()

    def _keep_beating(self) -> None:
        while not self._stop_beating.wait(self.heartbeat_seconds):
            with self._claims_lock:
                claims = sorted(self._claims.items())
                if not claims:
                    self._beating = None
                    return
            for number, trial_id in claims:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as err:  # noqa: BLE001 - a beat missed is retried; the driver reports store errors
                    log.debug("heartbeat of trial %d not recorded: %s", number, err)

    def _settled(self, number: int) -> None:
        with self._claims_lock:
            self._claims.pop(number, None)

    def close(self) -> None:
        """Stop sending heartbeats (claims still in flight are then released by the next driver, as if this one
        had died)."""
        self._stop_beating.set()

    def _parameter_distributions(self, genes: Mapping[str, Sequence]) -> dict[str, BaseDistribution]:
        """Each gene's choices as an Optuna categorical, so that the study shows ``s1.l0.block: attn``; a study that
        began with choice indexes (IntDistribution) keeps them: Optuna refuses two kinds for one parameter."""
        first = next((t for t in self._trials((TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL))
                      if t.distributions), None)
        if first is not None and any(isinstance(first.distributions.get(name), IntDistribution)
                                     for name in genes):
            return {name: IntDistribution(0, len(choices) - 1) for name, choices in genes.items()}
        return {name: CategoricalDistribution(tuple(choices)) for name, choices in genes.items()}

    def _check_or_set_identity(self, space_name: str, supernet: str | None, table: SearchedTable | None) -> None:
        """What the study's measurements are of: the same space, objectives and supernet (or table values) each time
        it is opened. A study that lacks a key (a new one, or one written before the key was recorded) gets it now."""
        wanted = {"space": space_name, "objectives": [str(o) for o in self.objectives], SUPERNET: supernet,
                  TABLE: table.digest if table else None}
        attrs = self.study.user_attrs
        if "objectives" not in attrs:
            with _experimental_optuna():
                self.study.set_metric_names([o.name for o in self.objectives])
        for key, value in wanted.items():
            if value is None:
                continue
            if key not in attrs:
                self.study.set_user_attr(key, value)
            elif key == SUPERNET:
                refuse_another_supernet(self.study.study_name, attrs[key], value)
            elif key == TABLE:
                refuse_another_table(self.study.study_name, attrs[key], value, table.source)
            elif attrs[key] != value:
                raise ConfigError(f"study {self.study.study_name!r} holds a search with {key} {attrs[key]}, "
                                  f"not {value}; use another --out or --storage, or --force to start over")

    # -- claims --------------------------------------------------------------------
    @_reported
    def claim(self, arch_str: str, genes: Sequence[int], budget: int) -> int | None:
        """Create a RUNNING trial for ``arch_str``; ``None`` when another driver has it or the budget is spent."""
        template = create_trial(
            state=TrialState.RUNNING,
            params={name: distribution.to_external_repr(int(g))
                    for (name, distribution), g in zip(self._distributions.items(), genes, strict=True)},
            distributions=self._distributions,
            user_attrs={ATTR_ARCH: arch_str, ATTR_DRIVER: self.driver},
        )
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        trial_id = self.storage.create_new_trial(study_id, template_trial=template)
        number = self.storage.get_trial_number_from_id(trial_id)
        with self._claims_lock:  # at once: a driver stopped from here on withdraws it (``in_flight``)
            self._claims[number] = trial_id
        live = [t for t in self._trials((TrialState.RUNNING, TrialState.COMPLETE)) if t.number <= number]
        duplicate = any(t.user_attrs.get(ATTR_ARCH) == arch_str and t.number < number for t in live)
        if duplicate or _arch_count(live) > budget:
            self.withdraw(number)
            return None
        self._beat(number, trial_id)
        return number

    def withdraw(self, number: int) -> None:
        """Give up a claim unmeasured: it no longer counts against the budget, and is no failed arch."""
        self.fail(number, WITHDRAWN)

    @_reported
    def complete(self, number: int, metrics: Metrics) -> None:
        trial_id = self._trial_id(number)
        self.storage.set_trial_user_attr(trial_id, "seconds", float(metrics.seconds))
        for key, value in metrics.meta.items():
            self.storage.set_trial_user_attr(trial_id, f"meta.{key}", value)
        extra = {k: v for k, v in metrics.values.items() if k not in {o.name for o in self.objectives}}
        if extra:
            self.storage.set_trial_user_attr(trial_id, "extra", json.dumps(extra))
        self.study.tell(number, [float(metrics.values[o.name]) for o in self.objectives])
        self._settled(number)

    @_reported
    def fail(self, number: int, error: str) -> None:
        self.storage.set_trial_user_attr(self._trial_id(number), ATTR_ERROR, error[:2000])
        self.study.tell(number, state=TrialState.FAIL)
        self._settled(number)

    @_reported
    def release_stale(self) -> int:
        """Fail RUNNING trials left by dead drivers: on this host at once, on any host once their heartbeats
        stopped; returns how many."""
        host = socket.gethostname()
        released = 0
        for t in self._trials((TrialState.RUNNING,)):
            d_host, _, pid = str(t.user_attrs.get(ATTR_DRIVER, "")).rpartition(":")
            if d_host == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                self.fail(t.number, LOST_DRIVER)
                released += 1
        running = len(self._trials((TrialState.RUNNING,)))
        with _experimental_optuna():
            optuna.storages.fail_stale_trials(self.study)  # without a word on why: failures() says it
        return released + running - len(self._trials((TrialState.RUNNING,)))

    # -- reading -------------------------------------------------------------------
    def _trials(self, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(
            self.storage.get_study_id_from_name(self.study.study_name), number)

    @_reported
    def measured(self) -> list[Record]:
        """Every COMPLETE trial, in trial order."""
        records = []
        for t in self._trials((TrialState.COMPLETE,)):
            values = dict(zip((o.name for o in self.objectives), t.values))
            values.update(json.loads(t.user_attrs.get("extra", "{}")))
            meta = {k[5:]: v for k, v in t.user_attrs.items() if k.startswith("meta.")}
            meta["seconds"] = t.user_attrs.get("seconds", 0.0)
            records.append(Record(t.number, t.user_attrs[ATTR_ARCH], values, meta))
        return records

    def failures(self) -> list[tuple[str, str]]:
        """(arch, error) of every failed evaluation, withdrawn claims excluded."""
        return [(t.user_attrs.get(ATTR_ARCH, "?"), t.user_attrs.get(ATTR_ERROR, f"{LOST_DRIVER} (heartbeats stopped)"))
                for t in self._trials((TrialState.FAIL,)) if t.user_attrs.get(ATTR_ERROR) != WITHDRAWN]

    @_reported
    def active_count(self) -> int:
        """Measured plus in-flight archs: what counts toward the budget."""
        return _arch_count(self._trials((TrialState.COMPLETE, TrialState.RUNNING)))

    # -- run metadata -----------------------------------------------------------------
    def reference(self) -> np.ndarray | None:
        ref = self.study.user_attrs.get("reference")
        return None if ref is None else np.asarray(ref, dtype=float)

    @_reported
    def set_reference(self, reference: np.ndarray) -> None:
        if self.reference() is None:
            self.study.set_user_attr("reference", [float(v) for v in reference])

    def hv_history(self) -> list[tuple[int, float]]:
        return [tuple(x) for x in self.study.user_attrs.get("hv_history", [])]

    @_reported
    def log_hv(self, measured: int, hv: float) -> None:
        history = [h for h in self.hv_history() if h[0] != measured] + [(measured, float(hv))]
        self.study.set_user_attr("hv_history", sorted(history))

