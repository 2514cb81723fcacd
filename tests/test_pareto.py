import numpy as np
import pytest

from results.pareto import hypervolume, hypervolume_gains, nondominated_ranks, pareto_mask, reference_from, to_min_form
from search_space import Objective


def test_front_and_hypervolume_of_a_hand_computed_example():
    # minimize both: (1,3), (2,2), (3,1) form the front; (3,3) and (2,2.5) are dominated
    F = np.array([[1, 3], [2, 2], [3, 1], [3, 3], [2, 2.5]], dtype=float)
    assert pareto_mask(F).tolist() == [True, True, True, False, False]
    assert nondominated_ranks(F).tolist() == [0, 0, 0, 2, 1]
    # reference (4,4): staircase area = 1*1 + 1*2 + 1*3 ... computed by columns: x in [1,2): 4-3=1, [2,3): 2, [3,4): 3
    assert hypervolume(F, np.array([4.0, 4.0])) == pytest.approx(6.0)
    # points beyond the reference add nothing
    assert hypervolume(np.array([[5.0, 0.0]]), np.array([4.0, 4.0])) == 0.0


def test_exact_ties_stay_on_the_front():
    F = np.array([[1, 1], [1, 1], [2, 2]], dtype=float)
    assert pareto_mask(F).tolist() == [True, True, False]


def test_min_form_flips_maximized_objectives_and_reference_adds_margin():
    objs = (Objective("acc", "max"), Objective("lat", "min"))
    F = to_min_form([{"acc": 90, "lat": 2}, {"acc": 80, "lat": 1}], objs)
    assert F.tolist() == [[-90, 2], [-80, 1]]
    assert reference_from(F).tolist() == pytest.approx([-79.0, 2.1])


def test_hypervolume_gains_of_a_hand_computed_example():
    front = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    points = np.array([[1.5, 1.5],   # x in 1.5..2 under y = 3: 0.5 x 1.5; x in 2..3 under y = 2: 1 x 0.5
                       [2.5, 2.5],   # dominated by (2, 2): adds nothing
                       [0.0, 4.0],   # beyond the reference in the second objective: adds nothing
                       [0.5, 3.5]])  # strip left of (1, 3): 0.5 x 0.5
    gains = hypervolume_gains(front, points, np.array([4.0, 4.0]))
    assert np.allclose(gains, [1.25, 0.0, 0.0, 0.25])


@pytest.mark.parametrize("objectives", [2, 3])
def test_hypervolume_gains_agree_with_pymoo(objectives):
    rng = np.random.default_rng(objectives)
    reference = np.ones(objectives)
    for _ in range(20):
        front, points = rng.random((int(rng.integers(0, 8)), objectives)), rng.random((15, objectives)) * 1.2 - 0.1
        base = hypervolume(front, reference)
        expected = [hypervolume(np.vstack([front, p]), reference) - base for p in points]
        assert np.allclose(hypervolume_gains(front, points, reference), expected)
