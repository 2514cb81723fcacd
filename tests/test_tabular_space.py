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
    assert values["test_acc"] == pytest.approx(90.5133) and values["latency_eyeriss_ms"] > 0
    assert "index" not in values  # the row key is not an objective


def test_live_edges_and_path_features():
    dead = CellArch(("none",) * 6)
    assert dead.live_edges() == frozenset()
    direct = CellArch(("none", "none", "none", "nor_conv_3x3", "none", "none"))
    assert direct.live_edges() == {3}
    # an op on an edge that reaches no output is not live
    dangling = CellArch(("nor_conv_3x3", "none", "none", "skip_connect", "none", "none"))
    assert dangling.live_edges() == {3}


def test_output_edges_are_what_a_compiler_keeps():
    # edge 0->1 conv feeds node 1, which reaches the output by 1->3: kept although node 1's
    # result is also used nowhere else; the 0->2 pool reaches no output: dropped
    cell = CellArch(("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "none"))
    assert cell.output_edges() == {0, 3, 4}
    # an op whose input is cut off (node 1 gets 'none' from the input) still runs, on zeros
    cut_input = CellArch(("none", "none", "none", "skip_connect", "nor_conv_3x3", "none"))
    assert cut_input.output_edges() == {3, 4} and cut_input.live_edges() == {3}
    # the output does not depend on the input: the whole cell folds to a constant
    folded = CellArch(("none", "none", "nor_conv_3x3", "none", "nor_conv_3x3", "nor_conv_3x3"))
    assert folded.output_edges() == frozenset() and folded.live_edges() == frozenset()


def test_features_count_ops_per_view(nb201_space):
    views = nb201_space.feature_views()
    cell = CellArch(("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "none"))
    f = nb201_space.features(cell)
    assert np.array_equal(np.sort(np.concatenate(list(views.values()))), np.arange(len(f)))
    assert f[views["one-hot"]].reshape(6, 5).argmax(axis=1).tolist() == [3, 4, 0, 1, 2, 0]
    # per op (skip, conv 1x1, conv 3x3, pool): every edge, edges feeding the output
    assert f[views["ops-every-edge"]].tolist() == [1, 1, 1, 1]
    assert f[views["ops-feeding-output"]].tolist() == [1, 1, 1, 0]
    live = f[views["live-structure"]]
    # live counts (0->3 skip, 0->1->3 conv3x3 + conv1x1), connected, convs / 3x3 convs per path,
    # then most convs, most 3x3 convs, identity path, live paths, most 3x3 windows
    assert live.tolist() == [1, 1, 1, 0, 1, 0, 2, -1, -1, 0, 1, -1, -1, 2, 1, 1, 2, 1]


def test_features_separate_connected_from_disconnected(nb201_space):
    rng = np.random.default_rng(0)
    connected = nb201_space.feature_views()["live-structure"][4]
    for _ in range(100):
        arch = nb201_space.sample(rng)
        assert nb201_space.features(arch)[connected] == (1.0 if arch.live_edges() else 0.0)


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
    cell = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|"
    for content, says in [
        (f"arch;acc\n{cell};1\n", "its header is one field, 'arch;acc': columns must be separated by commas"),
        ("arch,acc\n", "the table has a header but no rows"),  # before: "no 'arch' column"
        (f"arch,acc\n{cell},1\n{cell},2\n", "line 3: the cell of line 2 again"),  # before: no line named
    ]:
        table = tmp_path / "t.csv"
        table.write_text(content)
        with pytest.raises(DataError) as err:
            load_table(table)
        assert says in str(err.value)


def test_copies_of_one_network_share_it_and_other_networks_differ(nb201_space):
    # edges: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3
    conv = CellArch(("nor_conv_3x3", "none", "none", "skip_connect", "skip_connect", "none"))
    # another op on an edge whose result reaches nothing (0->2, node 2 feeds nothing): the same network
    assert CellArch(("nor_conv_3x3", "avg_pool_3x3", "none", "skip_connect", "skip_connect", "none")).network() == \
        conv.network()
    # another op on a live edge: another network
    assert CellArch(("nor_conv_1x1", "none", "none", "skip_connect", "skip_connect", "none")).network() != \
        conv.network()
    # the same live ops plus a conv that runs on zeros (2->3, node 2 gets nothing): a compiler runs it, so another
    with_dead_input = CellArch(("nor_conv_3x3", "none", "none", "skip_connect", "skip_connect", "nor_conv_3x3"))
    assert with_dead_input.live_edges() == conv.live_edges() and with_dead_input.network() != conv.network()
    assert len({nb201_space.network(a) for a in nb201_space.table.archs}) == 11021  # of 15,625 cells


def test_a_tables_objectives_take_units_from_their_column_names(nb201_space):
    """Plot axes and report headers give units (issue 8); a table's columns have none but their names say them
    (before session 29, `hynas plot` of an NB201 run labelled `test_acc (higher is better)`)."""
    from search_engine.job import objective_vocabulary
    from search_space.objectives import parse_objectives

    test_acc, latency = parse_objectives("test_acc:max,latency_raspi4_ms:min", objective_vocabulary(nb201_space), "x")
    assert test_acc.label() == "test_acc [%] (higher is better)"
    assert latency.label() == "latency_raspi4_ms [ms] (lower is better)"
    assert objective_vocabulary(nb201_space)["latency_eyeriss_ms"] == (None, "ms")
