"""The results store and the search loop: claims, resume, shared budgets, files."""
import csv
import logging
import subprocess
import sys
import threading

import numpy as np
import pytest

import search
from results.store import ResultsStore
from search_engine.evaluators import EVALUATORS
from search_engine.loop import Budget, run_search
from search_engine.runners import RUNNERS
from search_engine.strategies import STRATEGIES
from search_space import ConfigError, HynasError, Metrics, Objective
from search_space.config import load_config
from tests.conftest import NB201_CSV, REPO, run_cli

OBJ = (Objective("test_acc", "max"), Objective("latency_raspi4_ms", "min"))


def _store(nb201_space, url, name="s"):
    return ResultsStore(url, name, OBJ, nb201_space.name, nb201_space.genes())


def _run(nb201_space, store, seed, budget, strategy="random"):
    runner = RUNNERS.get("local")(lambda: EVALUATORS.get("table")(nb201_space))
    strat = STRATEGIES.get(strategy)(nb201_space, OBJ, seed=seed)
    return run_search(nb201_space, OBJ, (), strat, runner, store, Budget(budget), batch_size=5, initial=10,
                      progress=False)


def test_claims_block_duplicates_and_the_budget(nb201_space, tmp_path):
    store = _store(nb201_space, f"sqlite:///{tmp_path}/s.db")
    arch = nb201_space.table.archs[0]
    genes = nb201_space.encode(arch)
    first = store.claim(arch.to_str(), genes, budget=2)
    assert first is not None
    assert store.claim(arch.to_str(), genes, budget=2) is None  # the same arch again
    other = nb201_space.table.archs[1]
    assert store.claim(other.to_str(), nb201_space.encode(other), budget=2) is not None
    third = nb201_space.table.archs[2]
    assert store.claim(third.to_str(), nb201_space.encode(third), budget=2) is None  # over budget
    store.complete(first, Metrics(nb201_space.table.values(arch), 0.5, {"host": "h"}))
    (record,) = store.measured()
    assert record.arch == arch.to_str() and record.values["test_acc"] == nb201_space.table.values(arch)["test_acc"]
    assert record.meta["host"] == "h" and store.active_count() == 2
    # the study's parameters say what each gene chooses (an Optuna dashboard's importances name them)
    # and the choice itself, not its index (before session 29: node1~0 = 3 for nor_conv_3x3)
    assert store.study.trials[first].params == dict(zip(nb201_space.genes(), arch.ops))
    assert list(store.study.trials[first].params)[:2] == ["node1~0", "node2~0"]


def test_every_batch_is_logged_also_before_the_hypervolumes_reference_is_fixed(nb201_space, tmp_path, caplog):
    """Before, the batches measured before the reference point was fixed (the demo's first 10 archs) left no line in
    the log, which is what a cluster job is followed by."""
    caplog.set_level(logging.INFO, logger="hynas.search")
    _run(nb201_space, _store(nb201_space, f"sqlite:///{tmp_path}/s.db"), seed=0, budget=15)
    lines = [r.getMessage() for r in caplog.records if "/15 measured" in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == ["5/15 measured", "10/15 measured", "15/15 measured"]
    assert lines[0] == "5/15 measured" and all(", hypervolume " in line for line in lines[1:])


def test_a_duplicate_not_yet_withdrawn_counts_once_against_the_budget(nb201_space, tmp_path):
    """Another driver's claim of the same arch, between its creation and its withdrawal, is one arch: before, it
    counted twice and a claim within the budget was withdrawn (same-seed drivers then ended one arch short)."""
    from optuna.trial import TrialState, create_trial

    store = _store(nb201_space, f"sqlite:///{tmp_path}/s.db")
    first, second = nb201_space.table.archs[:2]
    assert store.claim(first.to_str(), nb201_space.encode(first), budget=2) is not None
    racing = create_trial(state=TrialState.RUNNING, user_attrs={"arch": first.to_str()})  # not withdrawn yet
    study_id = store.storage.get_study_id_from_name(store.study.study_name)
    store.storage.create_new_trial(study_id, template_trial=racing)
    assert store.active_count() == 1  # before: 2, and a driver said one more arch was measured elsewhere
    assert store.claim(second.to_str(), nb201_space.encode(second), budget=2) is not None  # before: None


@pytest.mark.parametrize("method, at, measured", [
    ("claim", 13, 10),  # the 3rd claim of the 2nd batch, its trial just created: before session 32 left running
    ("complete", 12, 11),  # a measured arch not yet recorded: before, dropped from the claims to withdraw
])
def test_a_driver_stopped_anywhere_withdraws_every_claim_it_holds(nb201_space, tmp_path, method, at, measured):
    import optuna

    class Stopping(ResultsStore):
        calls = 0

        def claim(self, *args, **kwargs):
            number = super().claim(*args, **kwargs)
            return self._stop_at("claim", number)

        def complete(self, number, metrics):
            self._stop_at("complete", None)
            super().complete(number, metrics)

        def _stop_at(self, name, passed):
            if name == method:
                Stopping.calls += 1
                if Stopping.calls == at:
                    raise KeyboardInterrupt  # as Ctrl-C or SIGTERM (the CLI's Terminated) does there
            return passed

    url = f"sqlite:///{tmp_path}/s.db"
    store = Stopping(url, "s", OBJ, nb201_space.name, nb201_space.genes())
    with pytest.raises(KeyboardInterrupt):
        _run(nb201_space, store, seed=0, budget=30)
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert optuna.trial.TrialState.RUNNING not in states and states.count(optuna.trial.TrialState.COMPLETE) == measured
    resumed = _run(nb201_space, _store(nb201_space, url), seed=0, budget=30)
    assert len(resumed.records) == 30


def test_a_hybrid_space_names_every_gene_with_its_choices(mnist_space):
    genes = mnist_space.genes()
    assert [len(choices) - 1 for choices in genes.values()] == mnist_space.bounds()[1].tolist()
    assert list(genes)[:3] == ["s0.depth", "s0.width", "s0.l0.block"] and "s1.l2.wbits" in genes
    assert genes["s1.l0.block"] == ("conv", "attn") and genes["s1.l2.wbits"] == (4, 8, 32)
    arch = mnist_space.arch_from_str("c24:conv_k5_e4_w8a8|c48:attn_h4_m2_w4a32")
    values = {name: genes[name][g] for name, g in zip(genes, mnist_space.encode(arch))}
    assert (values["s0.width"], values["s1.l0.block"], values["s1.l0.heads"], values["s1.l0.wbits"]) == \
        (24, "attn", 4, 4)


def test_a_study_of_choice_indexes_resumes_with_them(nb201_space, tmp_path):
    """A study written before session 29 holds each gene as an index (IntDistribution); Optuna refuses another
    kind of distribution for the same parameter, so the store keeps writing indexes there."""
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    url = f"sqlite:///{tmp_path}/old.db"
    store = _store(nb201_space, url)
    arch, other = nb201_space.table.archs[:2]
    old = create_trial(state=TrialState.COMPLETE, values=[90.0, 10.0], user_attrs={"arch": arch.to_str()},
                       params=dict(zip(nb201_space.genes(), nb201_space.encode(arch).tolist())),
                       distributions={name: IntDistribution(0, 4) for name in nb201_space.genes()})
    store.study.add_trial(old)
    resumed = _store(nb201_space, url)
    number = resumed.claim(other.to_str(), nb201_space.encode(other), budget=5)
    assert number is not None  # before: "Cannot set different distribution kind to the same parameter name"
    assert resumed.study.trials[number].params == dict(zip(nb201_space.genes(), nb201_space.encode(other).tolist()))


def test_store_rejects_a_study_with_other_objectives(nb201_space, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    _store(nb201_space, url)
    with pytest.raises(ConfigError, match="objectives"):
        ResultsStore(url, "s", (Objective("val_acc", "max"), Objective("latency_raspi4_ms", "min")),
                     nb201_space.name, nb201_space.genes())


def test_claims_of_a_driver_whose_heartbeats_stopped_are_released_and_a_beating_ones_are_not(nb201_space, tmp_path):
    """A driver that dies on another host leaves claims no process id here can judge: before, they stayed RUNNING
    and counted against the budget forever. Drivers beat for their claims (here every second)."""
    import time

    url = f"sqlite:///{tmp_path}/beats.db"
    alive, dead = (ResultsStore(url, "s", OBJ, nb201_space.name, nb201_space.genes(), heartbeat_seconds=1)
                   for _ in range(2))
    archs = nb201_space.table.archs[:2]
    kept = alive.claim(archs[0].to_str(), nb201_space.encode(archs[0]), budget=10)
    lost = dead.claim(archs[1].to_str(), nb201_space.encode(archs[1]), budget=10)
    dead.close()  # its heartbeats stop, as when its host goes down
    time.sleep(4.5)  # two beats missed and more (SQLite's clock counts whole seconds)
    resumed = ResultsStore(url, "s", OBJ, nb201_space.name, nb201_space.genes(), heartbeat_seconds=1)
    assert resumed.release_stale() == 1 and resumed.active_count() == 1
    assert resumed.study.trials[lost].state.name == "FAIL" and resumed.study.trials[kept].state.name == "RUNNING"
    assert resumed.failures() == [(archs[1].to_str(), "lost in flight: its driver died (heartbeats stopped)")]
    alive.complete(kept, Metrics(nb201_space.table.values(archs[0])))
    assert [r.arch for r in resumed.measured()] == [archs[0].to_str()]


def test_two_drivers_share_one_budget_without_losing_or_duplicating(nb201_space, tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    stores = [_store(nb201_space, url, "shared") for _ in range(2)]
    threads = [threading.Thread(target=_run, args=(nb201_space, stores[i], i, 40)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = stores[0].measured()
    assert len(records) == 40 and len({r.arch for r in records}) == 40


def test_two_drivers_of_one_seed_both_run_nsga2_to_the_shared_budget(nb201_space, tmp_path):
    """Drivers started from one config share its seed, so they propose the same archs. Before, the NSGA-II driver
    whose generation the other had claimed had nothing left to ask and stopped, "space exhausted" (after 37 of 60
    archs in a run of two `hynas search` processes); it now waits for the other's results and breeds on."""
    url = f"sqlite:///{tmp_path}/shared.db"
    stores = [_store(nb201_space, url, "shared") for _ in range(2)]
    outcomes = [None, None]

    def drive(i):
        outcomes[i] = _run(nb201_space, stores[i], 0, 60, strategy="nsga2")

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.stopped_by for o in outcomes] == ["budget", "budget"]
    records = stores[0].measured()
    assert len(records) == 60 and len({r.arch for r in records}) == 60


def test_resume_keeps_the_first_k_and_ends_at_the_budget(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "optuna-tpe", "--seed", "1", "--out", str(out), "-q",
            "--set", "search.batch_size=5", "--set", "search.initial=10"]
    assert search.main(base + ["--budget", "15"]) == 0
    first = list(csv.DictReader((out / "measured.csv").open()))
    assert len(first) == 15
    assert search.main(base + ["--budget", "25"]) == 2  # exists: needs --resume or --force
    assert "--resume" in capsys.readouterr().err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # what the run computes cannot change on resume; how long it runs can
    assert search.main(base + ["--budget", "25", "--resume", "--set", "search.predictor=ridge", "--seed", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed=1 in the run, 2 now" in err
    assert "search.predictor='auto' in the run, 'ridge' now" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert search.main(base + ["--budget", "25", "--resume"]) == 0
    final = list(csv.DictReader((out / "measured.csv").open()))
    assert len(final) == 25 and len({r["arch"] for r in final}) == 25
    assert [r["arch"] for r in final[:15]] == [r["arch"] for r in first]
    pareto = list(csv.DictReader((out / "pareto.csv").open()))
    assert 0 < len(pareto) <= 25 and (out / "hynas.log").stat().st_size > 0
    # a budget below what was measured measures nothing, and the log says why (before session 33 only
    # "resuming: 25 archs already measured", then "stopped by budget")
    assert search.main(base + ["--budget", "20", "--resume"]) == 0
    assert len(list(csv.DictReader((out / "measured.csv").open()))) == 25
    assert "25 archs already measured, the budget of 20 is spent" in (out / "hynas.log").read_text()


def test_tabular_search_reports_the_ratio_to_the_true_front(tmp_path, capsys):
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_eyeriss_ms:min", "--strategy", "random", "--budget", "20", "--out",
            str(tmp_path / "r"), "-q", "--set", "search.reference={test_acc: 80, latency_eyeriss_ms: 10.5269}"]
    assert search.main(argv) == 0
    out = capsys.readouterr().out
    ratio = float(out.split(" of the table's true front")[0].rsplit("; ", 1)[1])
    assert 0 < ratio < 1
    assert "(reference point test_acc=80, latency_eyeriss_ms=10.5269; set it with search.reference)" in out


def test_a_table_run_takes_its_reference_from_the_whole_table(tmp_path, capsys):
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--budget", "10", "--out",
            str(tmp_path / "t"), "-q"]
    assert search.main(argv) == 0
    printed = capsys.readouterr().out.split("(reference point ")[1].split(";")[0]
    assert [v.split("=")[0] for v in printed.split(", ")] == ["test_acc", "latency_raspi4_ms"]
    acc, lat = (float(v.split("=")[1]) for v in printed.split(", "))
    table = list(csv.DictReader(NB201_CSV.open()))
    worst_acc, best_acc = (f(float(r["test_acc"]) for r in table) for f in (min, max))
    worst_lat, best_lat = (f(float(r["latency_raspi4_ms"]) for r in table) for f in (max, min))
    # the worst row of the table plus 10 % of the range, so that no cell lies beyond it
    assert acc == pytest.approx(worst_acc - 0.1 * (best_acc - worst_acc), rel=1e-5)  # in the objective's units
    assert lat == pytest.approx(worst_lat + 0.1 * (worst_lat - best_lat), rel=1e-5)


def test_constraint_keeps_the_front_feasible(tmp_path, capsys):
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--budget", "30", "--out",
            str(tmp_path / "c"), "-q", "--constraint", "latency_raspi4_ms <= 10"]
    assert search.main(argv) == 0
    pareto = list(csv.DictReader((tmp_path / "c" / "pareto.csv").open()))
    assert pareto and all(float(r["latency_raspi4_ms"]) <= 10 for r in pareto)
    capsys.readouterr()
    # a limit nothing measured meets: an empty front, and the summary says why (before: only "front of 0")
    assert search.main(argv[:-1] + ["test_acc >= 91.5", "--force"]) == 0
    assert "  none of the 30 measured archs meets test_acc >= 91.5; loosen the limits, or measure more with --resume " \
           "and a larger --budget" in capsys.readouterr().out.splitlines()


def test_hv_history_is_logged_per_batch(nb201_space, tmp_path):
    store = _store(nb201_space, f"sqlite:///{tmp_path}/h.db")
    outcome = _run(nb201_space, store, 0, 20)
    history = store.hv_history()
    assert [n for n, _ in history] == [10, 15, 20]
    assert all(b >= a for (_, a), (_, b) in zip(history, history[1:]))  # HV never falls
    assert outcome.hypervolume == pytest.approx(history[-1][1]) and np.all(outcome.reference)


@pytest.mark.parametrize("argv,named", [
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--strategy", "simulated-annealing"], "strategy"),
    (["--objectives", "test_acc:max,latncy_raspi4_ms:min"], "latncy_raspi4_ms"),
    (["--objectives", "test_acc,latency_raspi4_ms:min"], "test_acc:max"),
    (["--objectives", "test_acc:max"], "at least two"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:fastest"], "direction"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--constraint", "latency_raspi4_ms <= 0.001"], "no arch"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--constraint", "latency <= 5"], "latency"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--constraint", "latency_raspi4_ms < = 5"], "parse"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--budget", "0"], "budget"),
    ([], "set them with --objectives or search.objectives): unknown objective 'accuracy'"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--runner", "rey"], "runner"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--storage", "nosuchdb://x"], "storage"),
    # before: "Could not parse SQLAlchemy URL from given URL string"
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--storage", "runs/x/study.db"],
     "not a database URL; give one such as sqlite:///runs/x/study.db"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--time-limit", "1d"], "'1d' is not a duration"),
    # before: "missing ['test_acc', 'latency_raspi4_ms']", with nothing on the key given
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--set", "search.reference={test_accuracy: 80}"],
     "search.reference: 'test_accuracy' is no objective of this search (did you mean 'test_acc'?)"),
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--set", "search.reference=[80, 60]"],
     "expected a mapping of names to numbers"),
    # before: "hypervolume inf ... nan of the table's true front"
    (["--objectives", "test_acc:max,latency_raspi4_ms:min", "--set",
      "search.reference={test_acc: 50, latency_raspi4_ms: .inf}"],
     "search.reference.latency_raspi4_ms: got inf; give a finite number"),
])
def test_bad_search_input_is_one_line_and_leaves_the_run_untouched(tmp_path, capsys, argv, named):
    out = tmp_path / "run"
    ok = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
          "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--budget", "5", "--out", str(out), "-q"]
    assert search.main(ok) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    code, err = run_cli(["search", "--space", "nb201", "--table", str(NB201_CSV), "--out", str(out), "--force",
                         "-q"] + argv, capsys)
    assert code == 2 and len(err) == 1 and named in err[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_time_limit_takes_a_unit(tmp_path):
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--budget", "5", "-q"]
    limits = []
    for given in ("2h", "1.5m", "90"):
        assert search.main(argv + ["--time-limit", given, "--out", str(tmp_path / given)]) == 0
        limits.append(load_config(str(tmp_path / given / "config.yaml")).search.time_limit_s)
    assert limits == [7200, 90, 90]


def test_a_search_its_time_limit_stopped_says_how_far_it_got_and_resumes_to_the_budget(tmp_path, capsys):
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--budget", "5", "--out", str(tmp_path)]
    assert search.main(argv + ["--time-limit", "0.000001", "--force"]) == 0  # spent before the first batch
    out = capsys.readouterr().out.splitlines()  # before: "measured 0 archs (0 failed), stopped by time"
    assert out[:2] == ["measured 0 archs (0 failed); front of 0",
                       "  the time limit stopped the search at 0 of 5 archs; `--resume` measures more"], out
    assert search.main(argv + ["--time-limit", "1h", "--resume"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("measured 5 archs (0 failed), stopped by budget;") and "time limit" not in out[1]


def test_wall_clock_budget_stops_between_batches(nb201_space, tmp_path):
    store = _store(nb201_space, f"sqlite:///{tmp_path}/t.db")
    runner = RUNNERS.get("local")(lambda: EVALUATORS.get("table")(nb201_space))
    strat = STRATEGIES.get("random")(nb201_space, OBJ, seed=0)
    outcome = run_search(nb201_space, OBJ, (), strat, runner, store, Budget(1000, seconds=1e-9), batch_size=5,
                         initial=5, progress=False)
    assert outcome.stopped_by == "time" and len(outcome.records) == 0


def test_a_space_search_keeps_its_run_name_on_resume_and_takes_a_set_name(tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    base = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_eyeriss_ms:min", "--strategy", "random", "-q"]
    assert search.main(base + ["--budget", "6"]) == 0  # into runs/nb201-random-s0
    # resumed through an explicit --out: before, refused ("name='nb201-random-s0' in the run, 'demo' now")
    assert search.main(base + ["--budget", "9", "--out", "runs/nb201-random-s0", "--resume"]) == 0
    storage = "sqlite:///runs/nb201-random-s0/study.db"
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["nb201-random-s0"]
    assert len(optuna.load_study(study_name="nb201-random-s0", storage=storage).trials) == 9
    # a name the user sets wins over the derived one (before, it was silently replaced by it)
    assert search.main(base + ["--budget", "3", "--set", "name=mine"]) == 0
    assert (tmp_path / "runs" / "mine" / "measured.csv").read_text().count("\n") == 4


class _CannotMeasure:
    """The table's evaluator, but an arch whose first edge pools cannot be measured (as an export that fails
    for one arch would): the loop must record it as failed, go on, and never ask for it again."""

    def __init__(self, nb201_space, fail_all=False):
        self.table = EVALUATORS.get("table")(nb201_space)
        self.provides, self.fail_all = self.table.provides, fail_all

    def evaluate(self, archs):
        if self.fail_all or any(a.ops[0] == "avg_pool_3x3" for a in archs):
            raise RuntimeError("cannot export this arch")
        return self.table.evaluate(archs)


def test_an_arch_that_cannot_be_measured_is_recorded_and_the_search_goes_on(nb201_space, tmp_path):
    store = _store(nb201_space, f"sqlite:///{tmp_path}/f.db")
    runner = RUNNERS.get("local")(lambda: _CannotMeasure(nb201_space))
    strat = STRATEGIES.get("random")(nb201_space, OBJ, seed=0)
    outcome = run_search(nb201_space, OBJ, (), strat, runner, store, Budget(30), batch_size=5, initial=10,
                         progress=False)
    failed = store.failures()
    assert outcome.failures == len(failed) > 0 and len(outcome.records) == 30  # failures do not spend the budget
    assert all(arch.split("|")[1] == "avg_pool_3x3~0" and "cannot export" in error for arch, error in failed)
    measured = [r.arch for r in outcome.records]
    assert len(set(measured) | {a for a, _ in failed}) == len(measured) + len(failed)  # none asked twice
    assert not any(r.arch.split("|")[1] == "avg_pool_3x3~0" for r in outcome.records)


def test_a_run_of_failures_stops_the_search_with_the_last_error(nb201_space, tmp_path):
    store = _store(nb201_space, f"sqlite:///{tmp_path}/f.db")
    runner = RUNNERS.get("local")(lambda: _CannotMeasure(nb201_space, fail_all=True))
    strat = STRATEGIES.get("random")(nb201_space, OBJ, seed=0)
    with pytest.raises(HynasError, match="3 evaluations failed in a row; the last: RuntimeError: cannot export"):
        run_search(nb201_space, OBJ, (), strat, runner, store, Budget(30, max_consecutive_failures=3),
                   batch_size=5, initial=10, progress=False)
    assert len(store.failures()) == 3 and store.measured() == []


def _database_full(store: ResultsStore) -> None:
    """From now on the store's SQLite file may not grow: SQLite's own "database or disk is full", as on a full disk."""
    from sqlalchemy import event, text

    with store.storage.engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar()
    event.listen(store.storage.engine, "connect",
                 lambda dbapi_connection, _: dbapi_connection.execute(f"PRAGMA max_page_count = {pages}"))
    store.storage.engine.dispose()  # the pooled connections were opened without the limit


def test_a_storage_that_fails_mid_search_is_one_line_and_keeps_what_it_recorded(nb201_space, tmp_path):
    url = f"sqlite:///{tmp_path}/full.db"
    _run(nb201_space, _store(nb201_space, url), seed=0, budget=10)
    before = [r.arch for r in _store(nb201_space, url).measured()]
    # a driver whose disk fills up mid-search, in a process of its own: it ends, as the CLI does, with claims in
    # flight that it could not withdraw (the disk was full), which the next driver must release
    driver = ("from search_space import load_space; from tests.conftest import NB201_CSV; "
              "from tests.test_store_and_loop import _database_full, _run, _store; "
              f"space = load_space('nb201', str(NB201_CSV)); store = _store(space, {url!r}); _database_full(store)\n"
              "try: _run(space, store, seed=0, budget=200)\nexcept Exception as err: print(type(err).__name__, err)")
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, cwd=REPO)
    kind, _, message = done.stdout.strip().partition(" ")
    assert kind == "StoreError", done.stdout + done.stderr  # before: Optuna's StorageInternalError, a traceback
    assert message.startswith(f"storage {url}: database or disk is full;") and "--resume" in message, message
    assert "\n" not in message and "[SQL" not in message
    resumed = _store(nb201_space, url)  # the disk has room again
    assert [r.arch for r in resumed.measured()] == before
    outcome = _run(nb201_space, resumed, seed=0, budget=30)
    assert len(outcome.records) == 30 and len({r.arch for r in outcome.records}) == 30


def test_a_study_of_other_table_values_is_not_resumed(tmp_path, capsys):
    """Before session 32 a table edited between two commands of one search mixed its old values with its new."""
    lines = NB201_CSV.read_text().splitlines()
    table, out = tmp_path / "mine.csv", tmp_path / "run"
    table.write_text("\n".join(lines) + "\n")
    argv = ["search", "--space", "nb201", "--table", str(table), "--objectives", "test_acc:max,latency_raspi4_ms:min",
            "--strategy", "random", "--out", str(out), "-q"]
    assert search.main(argv + ["--budget", "5"]) == 0
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("latency_eyeriss_ms")] = "99"  # a column this search does not read: no obstacle
    table.write_text("\n".join([lines[0], ",".join(row)] + lines[2:]) + "\n")
    assert search.main(["search", "--out", str(out), "--resume", "--budget", "6", "-q"]) == 0
    row[header.index("test_acc")] = "99"  # one it reads
    table.write_text("\n".join([lines[0], ",".join(row)] + lines[2:]) + "\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    code, err = run_cli(["search", "--out", str(out), "--resume", "--budget", "7", "-q"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"hynas search: error: {table}: study ") and \
        "measured other values of the columns it searches" in err[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert search.main(argv + ["--budget", "5", "--force"]) == 0  # starting over measures the table as it is
    # a study in a storage of its own: --force empties the folder, not that storage, so the line says what will do
    shared = ["--storage", f"sqlite:///{tmp_path / 'shared.db'}", "--budget", "5"]
    assert search.main(argv + shared + ["--force"]) == 0
    table.write_text("\n".join(lines) + "\n")
    code, err = run_cli(argv + shared + ["--force"], capsys)
    assert code == 2 and err[0].endswith("restore the table, or give the search another name (--set name=...), or "
                                         "delete study 'nb201-random-s0' from that storage"), err


def test_a_table_column_with_a_gap_is_refused_in_one_line_when_searched(tmp_path, capsys):
    lines = NB201_CSV.read_text().splitlines()[:60]
    lines[4] = lines[4].rsplit(",", 1)[0] + ","  # line 5 of the file: its last column (Eyeriss latency) left empty
    table = tmp_path / "gap.csv"
    table.write_text("\n".join(lines) + "\n")
    argv = ["search", "--space", "nb201", "--table", str(table), "--budget", "12", "--strategy", "linas", "-q"]
    code, err = run_cli(argv + ["--objectives", "test_acc:max,latency_eyeriss_ms:min", "--out", str(tmp_path / "a")],
                        capsys)
    assert code == 2 and err == [f"hynas search: error: {table}: column 'latency_eyeriss_ms' has no finite number on "
                                 "line 5; fill it in, or search other columns"]  # before: the predictor's traceback
    assert not (tmp_path / "a").exists()
    code, err = run_cli(argv + ["--objectives", "test_acc:max,latency_raspi4_ms:min", "--out", str(tmp_path / "b")],
                        capsys)
    assert code == 0, err  # the gap is in a column this search does not read

    lines[4] = lines[4].rsplit(",", 1)[0] + ",inf"  # a number, but one that would make every hypervolume infinite
    table.write_text("\n".join(lines) + "\n")
    code, err = run_cli(argv + ["--objectives", "test_acc:max,latency_eyeriss_ms:min", "--out", str(tmp_path / "c")],
                        capsys)
    assert code == 2 and err[0].endswith("column 'latency_eyeriss_ms' has no finite number on line 5; fill it in, or "
                                         "search other columns")  # before: hypervolume inf, nan of the true front
