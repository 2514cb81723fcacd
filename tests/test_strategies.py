"""One contract suite over every registered strategy, on the NB201 table and a hybrid space."""
import math

import numpy as np
import pytest

from search_engine.evaluators import EVALUATORS
from search_engine.strategies import STRATEGIES
from search_space import Constraint, Metrics, Objective, arch_costs

TAB_OBJECTIVES = (Objective("test_acc", "max"), Objective("latency_raspi4_ms", "min"))
FAST = {"linas": {"initial": 10, "inner_population": 40, "inner_generations": 8}}


def _strategy(name, space, objectives, seed=0, **kwargs):
    return STRATEGIES.get(name)(space, objectives, seed=seed, **FAST.get(name, {}), **kwargs)


def _table_eval(space):
    evaluator = EVALUATORS.get("table")(space)
    return evaluator.evaluate


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_budget_respected_and_no_arch_measured_twice(name, nb201_space):
    strategy = _strategy(name, nb201_space, TAB_OBJECTIVES)
    measured = strategy.run(_table_eval(nb201_space), budget=35, batch_size=10)
    archs = [a for a, _ in measured]
    assert len(archs) == 35 and len(set(archs)) == 35
    assert all(nb201_space.contains(a) for a in archs)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_a_table_of_a_few_cells_is_searched_to_its_end(name, tmp_path):
    from search_space.config import load_space
    from tests.conftest import NB201_CSV

    table = tmp_path / "few.csv"
    table.write_text("\n".join(NB201_CSV.read_text().splitlines()[:31]) + "\n")  # 30 of the genome's 15,625 cells
    space = load_space("nb201", str(table))
    measured = _strategy(name, space, TAB_OBJECTIVES).run(_table_eval(space), budget=100, batch_size=10)
    assert len({a for a, _ in measured}) == 30  # before: nsga2 bred only cells outside the table and measured none


def test_random_search_of_a_whole_table_measures_every_cell(nb201_space):
    """Rejection sampling finds the last unmeasured cells of 15,625 only by luck: before, the search stopped 5
    short ("space exhausted"); the rest are now listed."""
    measured = _strategy("random", nb201_space, TAB_OBJECTIVES).run(_table_eval(nb201_space), budget=20_000)
    assert len({a for a, _ in measured}) == nb201_space.size() == 15_625


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_a_space_of_two_archs_is_searched_to_its_end(name):
    from search_space.hybrid import HybridSpace
    from search_space.schema import build

    space = build(HybridSpace, {
        "name": "two", "input": {"channels": 1, "size": 28, "classes": 10}, "stem": {"channels": 8, "stride": 2},
        "stages": [{"depth": [1], "width": [8], "blocks": ["conv"], "kernel": [3], "expand": [2], "stride": 1}],
        "quantization": {"weight_bits": [8, 32], "act_bits": [32]}}, "two")
    objectives = (Objective("size_mb", "min"), Objective("bitops", "min"))
    evaluator = EVALUATORS.get("analytic")(space)
    measured = _strategy(name, space, objectives).run(evaluator.evaluate, budget=10, batch_size=4)
    assert space.size() == 2 and len({a for a, _ in measured}) == 2  # before: nsga2 raised AttributeError


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_same_seed_same_sequence(name, nb201_space):
    runs = [[a for a, _ in _strategy(name, nb201_space, TAB_OBJECTIVES, seed=3)
             .run(_table_eval(nb201_space), budget=30, batch_size=10)] for _ in range(2)]
    other = [a for a, _ in _strategy(name, nb201_space, TAB_OBJECTIVES, seed=4)
             .run(_table_eval(nb201_space), budget=30, batch_size=10)]
    assert runs[0] == runs[1]
    assert other != runs[0]


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_precheck_constraints_are_never_violated(name, mnist_space):
    objectives = (Objective("size_mb", "min"), Objective("bitops", "min"))
    limit = Constraint("params", "<=", 20000)
    precheck = lambda arch: limit.satisfied(arch_costs(mnist_space, arch).as_dict())  # noqa: E731
    evaluator = EVALUATORS.get("analytic")(mnist_space)
    exact = {o.name: (lambda n: lambda a: arch_costs(mnist_space, a).as_dict()[n])(o.name) for o in objectives}
    strategy = _strategy(name, mnist_space, objectives, constraints=(limit,), precheck=precheck, exact=exact)
    measured = strategy.run(evaluator.evaluate, budget=30, batch_size=10)
    assert len(measured) == 30
    assert all(v["params"] <= 20000 for _, v in measured)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_failures_are_not_retried(name, nb201_space):
    strategy = _strategy(name, nb201_space, TAB_OBJECTIVES)
    evaluate = _table_eval(nb201_space)
    first = strategy.ask(10)
    strategy.tell(first, [None] * 10)
    later = strategy.ask(10)
    assert not set(first) & set(later) and len(later) == 10
    strategy.tell(later, evaluate(later))


def test_linas_beats_random_on_the_table(nb201_space):
    """The predictor-guided search finds a better front than random search with the same budget, in the
    median of five seeds: at these fast settings one seed in five can stall below random (a mean of
    two seeds failed on one fresh install: 1008 and 880 against 955 and 941)."""
    from results.pareto import hypervolume, to_min_form

    def hv(name, seed):
        options = {"initial": 20, "inner_population": 50, "inner_generations": 15} if name == "linas" else {}
        strategy = STRATEGIES.get(name)(nb201_space, TAB_OBJECTIVES, seed=seed, **options)
        measured = strategy.run(_table_eval(nb201_space), budget=80, batch_size=10)
        F = to_min_form([v for _, v in measured], TAB_OBJECTIVES)
        return hypervolume(F, np.array([-80.0, 100.0]))

    seeds = range(5)
    assert np.median([hv("linas", s) for s in seeds]) > np.median([hv("random", s) for s in seeds])


def test_linas_measures_no_second_copy_of_a_network_after_its_first_batch(nb201_space):
    strategy = _strategy("linas", nb201_space, TAB_OBJECTIVES)
    measured = [a for a, _ in strategy.run(_table_eval(nb201_space), budget=60, batch_size=10)]
    first = {nb201_space.network(a) for a in measured[:10]}
    later = [nb201_space.network(a) for a in measured[10:]]
    assert len(set(later)) == len(later) and not first & set(later)


def test_metrics_of_a_failed_arch_may_be_none(nb201_space):
    strategy = _strategy("random", nb201_space, TAB_OBJECTIVES)
    archs = strategy.ask(3)
    strategy.tell(archs, [Metrics(nb201_space.table.values(archs[0])), None, None])
    assert len(strategy.measured) == 1 and len(strategy.failed) == 2


@pytest.mark.parametrize("inner", ["nsga2", "nsga3"])
def test_linas_inner_search_proposes_unmeasured_archs(inner, nb201_space):
    strategy = STRATEGIES.get("linas")(nb201_space, TAB_OBJECTIVES, seed=0, initial=10, inner=inner,
                                       inner_population=20, inner_generations=3)
    measured = strategy.run(_table_eval(nb201_space), budget=20, batch_size=10)
    for o in strategy.predicted:
        strategy._models[o.name].fit(strategy._feature_matrix([a for a, _ in measured]),
                                     np.array([v[o.name] for _, v in measured]))
    proposed = strategy._inner_search()
    assert len(proposed) > 20 and not set(proposed) & {a for a, _ in measured}
    assert all(nb201_space.contains(a) for a in proposed)


def test_linas_fills_the_batch_from_the_inner_search_once_neighbours_run_out(nb201_space):
    strategy = STRATEGIES.get("linas")(nb201_space, TAB_OBJECTIVES, seed=0, initial=10,
                                       inner_population=20, inner_generations=3)
    strategy.tell(archs := strategy.ask(10), _table_eval(nb201_space)(archs))
    neighbours = strategy._front_neighbours()[:3]
    strategy._front_neighbours = lambda: neighbours  # as if every other neighbour were measured
    batch = strategy.ask(10)
    assert len(batch) == 10 and set(neighbours) <= set(batch) and not set(batch) & set(archs)


def test_linas_credits_each_part_with_the_picks_that_improved_the_front(nb201_space):
    strategy = _strategy("linas", nb201_space, TAB_OBJECTIVES, local_share="adaptive")
    evaluate = _table_eval(nb201_space)
    strategy.tell(archs := strategy.ask(10), evaluate(archs))
    assert strategy.current_local_share() == 0.5  # no evidence yet
    batch = strategy.ask(10)
    origins = dict(strategy._origin)
    assert sorted(origins.values()).count("local") == 5 and set(origins) == set(batch)
    before = strategy._measured_matrix()
    results = evaluate(batch)
    strategy.tell(batch, results)
    for part in ("local", "global"):
        picks = [(a, r) for a, r in zip(batch, results) if origins[a] == part]
        improved = sum(not np.any(np.all(before <= strategy.min_form(r.values), axis=1)) for _, r in picks)
        assert strategy.credit[part] == [improved, len(picks)]
    strategy.credit = {"local": [8, 10], "global": [0, 10]}
    assert strategy.current_local_share() == 0.8  # clipped: the global part keeps 20 %
    strategy.credit = {"local": [2, 10], "global": [3, 10]}
    rates = np.array([3 / 12, 4 / 12])  # Beta(1 + hits, 1 + misses) means
    z = (rates[0] - rates[1]) / np.sqrt((rates * (1 - rates) / 13).sum())
    assert strategy.current_local_share() == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))))  # ~0.32
    strategy.credit = {"local": [3, 20], "global": [3, 20]}
    assert strategy.current_local_share() == 0.5


def test_linas_values_archs_slower_than_its_first_batch_once_such_an_arch_is_measured(nb201_space):
    """The hypervolume reference follows every measured arch: one fixed from the first batch gave
    the table's most accurate cell (59 ms) no gain after a first batch of fast cells."""
    table, (acc, lat) = nb201_space.table, (o.name for o in TAB_OBJECTIVES)
    exact = {name: (lambda n: lambda a: table.values(a)[n])(name) for name in (acc, lat)}
    strategy = _strategy("linas", nb201_space, TAB_OBJECTIVES, exact=exact)
    values = [table.values(a) for a in table.archs]
    fast = [a for a, v in zip(table.archs, values) if 80 < v[acc] < 85 and v[lat] < 10][:10]
    slow = max(table.archs, key=lambda a: table.values(a)[lat])
    best = max(table.archs, key=lambda a: table.values(a)[acc])
    evaluate = _table_eval(nb201_space)
    strategy.tell(fast, evaluate(fast))
    first_front = strategy._measured_matrix()
    quick = next(a for a in table.archs if a not in fast and 80 < table.values(a)[acc] and table.values(a)[lat] < 10
                 and not np.any(np.all(first_front <= strategy.min_form(table.values(a)), axis=1)))
    strategy.tell([slow], evaluate([slow]))
    assert table.values(best)[lat] > max(table.values(a)[lat] for a in fast)
    assert strategy._select([quick, best], 1, believed=[]) == [best]


def test_linas_keeps_its_picks_within_a_limit_on_a_measured_value_that_is_no_objective(nb201_space):
    """Before, a limit on a table column that no objective names (Eyeriss latency while searching for raspi4's)
    filtered nothing: 57-63 of the 80 picks after the first batch broke it (4 seeds of `hynas search`)."""
    limit = Constraint("latency_eyeriss_ms", "<=", 3.0)
    strategy = _strategy("linas", nb201_space, TAB_OBJECTIVES, constraints=(limit,))
    measured = strategy.run(_table_eval(nb201_space), budget=50, batch_size=10)
    after_first = [v for _, v in measured[10:]]
    assert sum(not limit.satisfied(v) for v in after_first) <= len(after_first) // 3


def test_linas_rejects_an_unknown_inner_search(nb201_space):
    from search_space import ConfigError

    with pytest.raises(ConfigError, match="nsga2"):
        STRATEGIES.get("linas")(nb201_space, TAB_OBJECTIVES, inner="cmaes")
    with pytest.raises(ConfigError, match="local_share"):
        STRATEGIES.get("linas")(nb201_space, TAB_OBJECTIVES, local_share=2.0)


class _TableWithABrokenArch:
    """The real table evaluator, except that one arch cannot be measured (as a device may refuse one)."""

    def __init__(self, space, broken):
        self.table, self.broken = EVALUATORS.get("table")(space), broken
        self.provides, self.calls = self.table.provides, []

    def evaluate(self, archs):
        self.calls.append(len(archs))
        if self.broken in archs:
            raise RuntimeError("cannot measure this arch")
        return self.table.evaluate(archs)


def test_local_runner_measures_a_batch_in_one_call_and_isolates_a_failing_arch(nb201_space):
    from search_engine.runners import RUNNERS

    archs = nb201_space.table.archs[:4]
    evaluator = _TableWithABrokenArch(nb201_space, archs[2])
    runner = RUNNERS.get("local")(lambda: evaluator)
    outcomes = dict(runner.submit(archs))
    assert evaluator.calls == [4, 1, 1, 1, 1]  # the batch together; after its failure, one by one
    assert isinstance(outcomes[archs[2]], RuntimeError)
    expected = EVALUATORS.get("table")(nb201_space).evaluate([archs[0], archs[1], archs[3]])
    assert [outcomes[a].values for a in (archs[0], archs[1], archs[3])] == [m.values for m in expected]
    evaluator.broken = None
    evaluator.calls.clear()
    assert len(list(runner.submit(archs))) == 4 and evaluator.calls == [4]
