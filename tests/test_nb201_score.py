"""The NB201 benchmark's score (benchmarks/nb201_score.py) on a table small enough to compute by hand."""
import pytest

from benchmarks.nb201_score import NB201Score
from search_space import CellArch, load_space

# edges: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3; node 2 feeds nothing, so edge 0->2 is dead
CONV = ("nor_conv_3x3", "none", "none", "skip_connect", "skip_connect", "none")
CONV_COPY = ("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "skip_connect", "none")  # same network
FAST = ("none", "none", "none", "skip_connect", "none", "none")
SLOW = ("nor_conv_3x3", "none", "none", "nor_conv_3x3", "nor_conv_3x3", "none")


@pytest.fixture
def score(tmp_path):
    rows = [(CONV, 90.0, 10.0), (CONV_COPY, 85.0, 12.0), (FAST, 85.0, 5.0), (SLOW, 81.0, 20.0)]
    table = tmp_path / "tiny.csv"
    table.write_text("arch,test_acc,latency_ms\n" + "".join(
        f"{CellArch(ops).to_str()},{acc},{lat}\n" for ops, acc, lat in rows))
    return NB201Score(load_space("nb201", str(table)), "test_acc", "latency_ms")


def test_score_and_front_share_count_the_true_front_above_80(score):
    # latency is scaled by the table's slowest (20 ms); reference (80 %, 1): true HV = 0.05 * 0.75 + 0.05 * 0.5
    assert score.true_hv == pytest.approx(0.0625)
    assert score.score([{"test_acc": 85.0, "latency_ms": 5.0}]) == pytest.approx(0.05 * 0.75 / 0.0625)
    assert score.front_share([{"test_acc": 90.0, "latency_ms": 10.0}, {"test_acc": 81.0, "latency_ms": 20.0}]) == 0.5


def test_share_ceiling_counts_a_front_point_among_copies_at_its_chance(score):
    # two front points: FAST's network has one cell, CONV's has two (CONV and its copy) of which one is on the front
    assert score.share_ceiling == pytest.approx((1 + 1 / 2) / 2)
