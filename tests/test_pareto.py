import numpy as np
import pytest

from results.pareto import hypervolume, nondominated_ranks, pareto_mask, reference_from, to_min_form
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
