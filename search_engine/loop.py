"""The search loop: ask a batch, claim it in the store, measure it, record each result as it
arrives, tell the strategy, log the hypervolume; until the budget is spent.

The store is the source of truth: at start and after every batch the loop tells the
strategy whatever the store holds that it has not seen (a resumed run's archs, or those of
other drivers sharing the study), so a killed run continues where it stopped.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from results.pareto import hypervolume, reference_from, to_min_form
from results.store import Record, ResultsStore
from results.tables import front_of
from search_engine.runners.base import Runner
from search_engine.strategies.base import Strategy
from search_space.errors import HynasError
from search_space.objectives import Constraint, Metrics, Objective
from search_space.protocol import SearchSpace

log = logging.getLogger("hynas.search")
WAIT_FOR_OTHERS_S = 0.5  # how often a driver with nothing to ask checks the archs other drivers are measuring


@dataclass(frozen=True)
class Budget:
    archs: int  # measured archs (failures do not count)
    seconds: float | None = None  # wall-clock limit; checked between batches
    max_consecutive_failures: int = 10


@dataclass(frozen=True)
class SearchOutcome:
    records: list[Record]
    front: list[Record]
    reference: np.ndarray | None
    hypervolume: float
    stopped_by: str  # "budget", "time", "space exhausted"
    failures: int
    in_flight_elsewhere: int = 0  # claimed by other drivers sharing the study, not measured yet when this one ended

    def stopped_short(self, budget: Budget) -> str:
        """Why the search ended before its budget, for a summary line ("" when it measured the budget, or
        measured every arch of a small space): a time limit leaves the rest to ``--resume``."""
        if self.stopped_by != "time":
            return ""
        return f"the time limit stopped the search at {len(self.records)} of {budget.archs} archs"


def _hv(records: Sequence[Record], objectives: Sequence[Objective], constraints: Sequence[Constraint],
        reference: np.ndarray | None) -> float:
    front = front_of(records, objectives, constraints)
    if reference is None or not front:
        return 0.0
    return hypervolume(to_min_form([r.values for r in front], objectives), reference)


def _withdraw(store: ResultsStore) -> None:
    """A driver that stops early (Ctrl-C, SIGTERM, an error) fails the claims it did not measure, so that they
    neither count against the budget of other drivers sharing the study nor show as running in it: those of the
    batch in flight, and those of a batch it was still claiming (before session 32 an interrupt there left them
    running). Best effort: the error that stopped the driver may be the store's own."""
    for number in store.in_flight():
        try:
            store.withdraw(number)
        except Exception as err:  # noqa: BLE001 - the original error is the one to report
            log.warning("could not withdraw trial %d from the study: %s", number, err)
            return


@dataclass
class _Failures:
    """Failed evaluations, in all and in a row: ten in a row stop the search (the evaluator is broken, not an arch)."""

    limit: int
    total: int = 0
    in_row: int = 0

    def count(self, outcome: Metrics | Exception) -> None:
        if isinstance(outcome, Metrics):
            self.in_row = 0
            return
        self.total, self.in_row = self.total + 1, self.in_row + 1
        if self.in_row >= self.limit:
            raise HynasError(f"{self.in_row} evaluations failed in a row; the last: "
                             f"{type(outcome).__name__}: {outcome}")


def _measure(archs: list, claims: dict, runner: Runner, store: ResultsStore, failures: _Failures,
             bar: tqdm) -> dict[Any, Metrics | None]:
    """Measure the claimed ``archs``, writing each result to the store as it arrives; None marks a failure."""
    results: dict[Any, Metrics | None] = {}
    for arch, outcome in runner.submit(archs):
        if isinstance(outcome, Metrics):
            store.complete(claims[arch], outcome)
            bar.update(1)
        else:
            store.fail(claims[arch], f"{type(outcome).__name__}: {outcome}")
        results[arch] = outcome if isinstance(outcome, Metrics) else None
        failures.count(outcome)
    return results


def _log_batch(records: list[Record], objectives: Sequence[Objective], constraints: Sequence[Constraint],
               store: ResultsStore, budget: Budget, bar: tqdm) -> None:
    """Every batch in the log (a cluster job is followed by it), with the hypervolume once its reference is fixed,
    which the store keeps per batch for the plots."""
    hv_note = ""
    if store.reference() is not None:
        hv = _hv(records, objectives, constraints, store.reference())
        store.log_hv(len(records), hv)
        bar.set_postfix(hv=f"{hv:.4g}")
        hv_note = f", hypervolume {hv:.6g}"
    log.info("%d/%d measured%s", len(records), budget.archs, hv_note)


def run_search(space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint],
               strategy: Strategy, runner: Runner, store: ResultsStore, budget: Budget, batch_size: int,
               initial: int, reference: np.ndarray | None = None,
               after_batch: Callable[[list[Record]], Any] | None = None, progress: bool = True) -> SearchOutcome:
    """Run until ``budget`` archs are measured in ``store`` (shared with any other driver)."""
    start = time.monotonic()
    if released := store.release_stale():
        log.info("%d archs were in flight when an earlier driver died; they will be measured again", released)
    if reference is not None:
        store.set_reference(np.asarray(reference, dtype=float))
    told: set[int] = set()

    def sync() -> list[Record]:
        records = store.measured()
        new = [r for r in records if r.number not in told]
        if new:
            strategy.tell([space.arch_from_str(r.arch) for r in new], [Metrics(r.values) for r in new])
            told.update(r.number for r in new)
        if store.reference() is None and len(records) >= initial:
            store.set_reference(reference_from(to_min_form([r.values for r in records[:initial]], objectives)))
        return records

    records = sync()
    if len(records) >= budget.archs:  # a --resume with a budget at or below what was measured
        log.info("resuming: %d archs already measured, the budget of %d is spent; a larger --budget measures more",
                 len(records), budget.archs)
    elif records:
        log.info("resuming: %d archs already measured", len(records))
    stopped_by, failures, waiting = "budget", _Failures(budget.max_consecutive_failures), False
    bar = tqdm(total=budget.archs, initial=min(len(records), budget.archs), desc="search", unit="arch",
               disable=not progress, dynamic_ncols=True)
    try:
        while store.active_count() < budget.archs:
            if budget.seconds is not None and time.monotonic() - start > budget.seconds:
                stopped_by = "time"
                break
            archs = strategy.ask(min(batch_size, budget.archs - store.active_count()))
            if not archs and store.active_count() > len(records):
                # Other drivers on the study hold archs this strategy proposed too (drivers of one config share
                # its seed): NSGA-II breeds on once their results are in, so wait for them rather than stop.
                if not waiting:
                    log.info("waiting for the %d archs other drivers are measuring",
                             store.active_count() - len(records))
                    waiting = True
                time.sleep(WAIT_FOR_OTHERS_S)
                store.release_stale()  # a driver that died holding them does not hold this one up for good
                records = sync()
                continue
            waiting = False
            if not archs:
                stopped_by = "space exhausted"
                break
            claims = {a: store.claim(space.describe(a), space.encode(a), budget.archs) for a in archs}
            mine = [a for a in archs if claims[a] is not None]
            results = _measure(mine, claims, runner, store, failures, bar)
            strategy.tell(mine, [results[a] for a in mine])
            told.update(n for a, n in claims.items() if n is not None and results.get(a) is not None)
            records = sync()
            _log_batch(records, objectives, constraints, store, budget, bar)
            if after_batch is not None:
                after_batch(records)
    except BaseException:
        _withdraw(store)
        raise
    finally:
        bar.close()
    records = store.measured()
    # The budget counts claims: when it is spent, other drivers on the study may still be measuring theirs.
    elsewhere = store.active_count() - len(records)
    if elsewhere > 0:
        log.info("%d archs are still being measured by other drivers sharing the study; `hynas search --resume` "
                 "later adds them to measured.csv", elsewhere)
    ref = store.reference()
    return SearchOutcome(records, front_of(records, objectives, constraints), ref,
                         _hv(records, objectives, constraints, ref), stopped_by, failures.total, elsewhere)
