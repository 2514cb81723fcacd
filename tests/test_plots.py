"""Plots zoom onto the front a reader looks at, and draw the front a run's constraints allow."""
import numpy as np

from results.plots import Series, curve_labels, hypervolume_curves, outlying_front, plot_pairs
from search_space.objectives import Constraint, Objective

ACC = Objective("test_acc", "max")
LATENCY = Objective("latency_ms", "min")


def test_a_lone_degenerate_front_point_is_left_off_the_axes():
    # NB201: a cell that never connects input to output is on the front at 10 % accuracy.
    acc = np.array([10.0, 83.9, 84.6, 86.5, 87.8, 88.9, 90.1, 90.7, 91.0, 91.5])
    assert outlying_front(acc, ACC).tolist() == [True] + [False] * 9
    latency = np.array([0.0118, 2.5, 2.8, 5.0, 7.4, 12.4, 19.5, 22.9, 35.4, 59.1])
    assert not outlying_front(latency, LATENCY).any()  # the fast end is the better end: always shown


def test_an_evenly_spread_or_tiny_front_is_shown_whole():
    assert not outlying_front(np.linspace(90, 98, 12), ACC).any()
    assert not outlying_front(np.array([10.0, 90.0]), ACC).any()
    # a gap that would hide more than a tenth of the front is the front's own shape, not an outlier
    spread = np.array([1.0, 1.1, 1.2, 9.0, 9.1, 9.2, 9.3, 9.4, 9.5, 9.6])
    assert not outlying_front(spread, LATENCY).any()
    assert outlying_front(np.append(spread[3:], 80.0), LATENCY).tolist() == [False] * 7 + [True]
    # the most accurate subnet twice as slow as the rest of the front is the front's end, not an outlier
    assert not outlying_front(np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.75]), LATENCY).any()


def test_runs_compared_side_by_side_each_leave_their_own_outlier_off_the_axes():
    """Before, three NB201 runs' three chance-level cells were more than a tenth of the fronts together, so the axes
    spanned 10-91 % and squashed every front into a corner."""
    import matplotlib.pyplot as plt

    from results.plots import _focus

    acc = np.array([10.0, 83.9, 84.6, 86.5, 87.8, 88.9, 90.1, 90.7, 91.0, 91.5])
    latency = np.array([0.0118, 2.5, 2.8, 5.0, 7.4, 12.4, 19.5, 22.9, 35.4, 59.1])
    fronts = [np.column_stack([acc[keep], latency[keep]]) for keep in (slice(None), [0, 2, 4, 6, 8], [0, 1, 5, 9])]
    fig, ax = plt.subplots()
    _focus(ax, fronts, ACC, LATENCY)
    low, high = ax.get_xlim()
    plt.close(fig)
    assert 80 < low < 83.9 and 91.5 < high < 93


def test_a_constrained_run_plots_and_scores_only_its_feasible_front(tmp_path):
    rows = [{"test_acc": 90.0, "latency_ms": 1.0}, {"test_acc": 95.0, "latency_ms": 9.0},
            {"test_acc": 80.0, "latency_ms": 0.5}]
    limit = Constraint.parse("latency_ms<=5", ["latency_ms"], "test")
    free, bound = Series("free", rows), Series("bound", rows, (limit,))
    assert bound.feasible().tolist() == [True, False, True]
    (free_hv, bound_hv), _ = hypervolume_curves([free, bound], (ACC, LATENCY))
    assert free_hv[1] > free_hv[0] and bound_hv[1] == bound_hv[0]  # the 9 ms arch adds nothing when infeasible
    assert bound_hv[2] > bound_hv[1]
    # nothing feasible measured yet: a hypervolume of 0, and the plot still draws the measured points
    none = Series("none", rows[1:2], (limit,))
    (curve,), _ = hypervolume_curves([none], (ACC, LATENCY))
    assert curve.tolist() == [0.0]
    (path,) = plot_pairs([bound, none], (ACC, LATENCY), tmp_path)
    assert path.stat().st_size > 10_000


def test_the_hypervolume_chart_names_each_runs_own_constraints():
    """Before, the title named every run's constraints, as if a run without any had been bound by them."""
    limit = Constraint.parse("latency_ms<=5", ["latency_ms"], "test")
    free, bound, also_bound = Series("free", []), Series("bound", [], (limit,)), Series("also", [], (limit,))
    assert curve_labels([free, bound]) == (["free", "bound, within latency_ms <= 5"], "")
    assert curve_labels([bound, also_bound]) == (["bound", "also"], "latency_ms <= 5")
    assert curve_labels([free]) == (["free"], "")


def test_the_front_plot_and_pick_read_keeps_a_limit_on_a_value_that_is_no_objective(tmp_path):
    """Before, measured.csv's constrained columns that are no objectives were read back as metadata, so the front
    that `hynas plot` draws and `export --pick` chooses from let archs past the limit on (12 points against
    pareto.csv's 8 in this search)."""
    import csv

    import search
    from results.tables import front_of
    from search_engine.deploy import open_finished_run
    from tests.conftest import NB201_CSV

    out = tmp_path / "limited"
    assert search.main(["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
                        "test_acc:max,latency_raspi4_ms:min", "--constraint", "latency_eyeriss_ms <= 5",
                        "--strategy", "random", "--budget", "60", "--out", str(out), "-q"]) == 0
    run = open_finished_run(out)
    front = front_of(run.records, run.objectives, run.constraints)
    with open(out / "pareto.csv", newline="") as handle:
        written = sorted(int(row["trial"]) for row in csv.DictReader(handle))
    assert len(written) >= 2 and sorted(r.number for r in front) == written
    assert all(r.values["latency_eyeriss_ms"] <= 5 for r in front)


def test_a_table_runs_plot_draws_the_tables_exact_front_under_its_constraints(tmp_path, capsys):
    """Before session 32 a tabular run's plot showed its own front alone, though the search scores it against the
    table's exact front."""
    import search
    from search_engine.deploy import open_finished_run
    from tests.conftest import NB201_CSV

    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--budget", "20", "-q"]
    assert search.main(argv + ["--out", str(tmp_path / "free")]) == 0
    assert search.main(argv + ["--out", str(tmp_path / "bound"), "--constraint", "latency_raspi4_ms <= 10"]) == 0
    free, bound = open_finished_run(tmp_path / "free"), open_finished_run(tmp_path / "bound")
    exact = search._table_front([free]).rows
    assert len(exact) == 54  # the shipped table's front for these two columns, its 10 %-accuracy cell included
    found = np.array([[r.values["test_acc"], r.values["latency_raspi4_ms"]] for r in free.records])
    front = np.array([[r["test_acc"], r["latency_raspi4_ms"]] for r in exact])
    # nothing measured is better than the exact front: each point is matched or beaten by one of its points
    assert all(((front[:, 0] >= a) & (front[:, 1] <= t)).any() for a, t in found)
    limited = search._table_front([bound]).rows
    assert 0 < len(limited) < len(exact) and all(r["latency_raspi4_ms"] <= 10 for r in limited)
    assert search._table_front([free, bound]) is None  # no one front to draw for runs of different limits
    capsys.readouterr()
    assert search.main(["plot", str(tmp_path / "free")]) == 0
    assert (tmp_path / "free" / "pareto_test_acc_latency_raspi4_ms.png").stat().st_size > 10_000
