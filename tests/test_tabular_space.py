import numpy as np
import pytest

from search_space import CellArch, DataError, SearchSpaceError, load_table


def test_nb201_table_loads_all_distinct_cells_and_round_trips(nb201_space):
    table = nb201_space.table
    assert nb201_space.size() == len(set(table.archs)) == 15625
    for arch in table.archs:
        assert nb201_space.decode(nb201_space.encode(arch)) == arch
        assert CellArch.from_str(arch.to_str()) == arch
    assert set(table.columns) >= {"test_acc", "val_acc", "latency_raspi4_ms", "latency_eyeriss_ms"}


def test_known_row_values(nb201_space):
    best = nb201_space.arch_from_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    values = nb201_space.table.values(best)
    assert values["index"] == 1 and values["test_acc"] == pytest.approx(90.5133)


def test_live_edges_and_path_features():
    dead = CellArch(("none",) * 6)
    assert dead.live_edges() == frozenset()
    direct = CellArch(("none", "none", "none", "nor_conv_3x3", "none", "none"))
    assert direct.live_edges() == {3}
    # an op on an edge that reaches no output is not live
    dangling = CellArch(("nor_conv_3x3", "none", "none", "skip_connect", "none", "none"))
    assert dangling.live_edges() == {3}


def test_features_separate_connected_from_disconnected(nb201_space):
    rng = np.random.default_rng(0)
    for _ in range(100):
        arch = nb201_space.sample(rng)
        f = nb201_space.features(arch)
        assert f[-1] == (1.0 if arch.live_edges() else 0.0)


@pytest.mark.parametrize("text", ["|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|", "garbage",
                                  "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_cell_strings(text):
    with pytest.raises(SearchSpaceError):
        CellArch.from_str(text)


def test_bad_tables(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_table(tmp_path / "missing.csv")
    no_arch = tmp_path / "no_arch.csv"
    no_arch.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="'arch'"):
        load_table(no_arch)
    bad_row = tmp_path / "bad_row.csv"
    bad_row.write_text("arch,acc\nnonsense,1\n")
    with pytest.raises(DataError, match="line 2"):
        load_table(bad_row)
