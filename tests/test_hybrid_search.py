"""End to end on the hybrid space, in process: train a tiny supernet, search it, bad input."""
import csv
import re

import pytest

import search
from search_engine.evaluators.latency import LatencyEvaluator
from search_engine.strategies import STRATEGIES
from search_space import Objective, load_space
from search_space.config import HardwareProfile
from supernet.model import Supernet
from tests.conftest import run_cli


def test_train_then_search_measures_every_objective(tiny_run, capsys):
    folder, run = tiny_run
    assert search.main(["search", "--config", str(folder / "tiny.yaml"), "--out", str(run), "--resume", "-q"]) == 0
    rows = list(csv.DictReader((run / "measured.csv").open()))
    assert len(rows) == 8 and len({r["arch"] for r in rows}) == 8
    for r in rows:
        assert 0 <= float(r["accuracy"]) <= 100 and float(r["latency_ms"]) > 0 and float(r["size_mb"]) > 0
        assert r["backend"] == "torch" and r["threads"] == "1" and float(r["val_cross_entropy"]) > 0
    out = capsys.readouterr().out
    assert "front of" in out
    printed = re.findall(r"^  accuracy=(\S+)", out, re.MULTILINE)  # the front's lines
    assert printed and all(re.fullmatch(r"\d+\.\d\d", a) for a in printed)  # 98.0 prints as 98.00, not 98


def test_linas_measures_the_largest_its_uniform_int8_and_the_smallest_first(mnist_space):
    objectives = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    first = STRATEGIES.get("linas")(mnist_space, objectives, seed=0).ask(10)
    largest, smallest = mnist_space.largest(), mnist_space.smallest()
    int8 = mnist_space.uniform_int8(largest)
    assert first[:3] == [largest, int8, smallest] and len(set(first)) == 10
    assert {(layer.wbits, layer.abits) for layer in int8.layers()} == {(8, 8)}
    assert [stage.width for stage in int8.stages] == [stage.width for stage in largest.stages]
    assert int8.to_str().replace("w8a8", "w32a32") == largest.to_str()


def test_larger_archs_are_slower(mnist_space):
    net = Supernet(mnist_space).eval()
    evaluator = LatencyEvaluator(net, HardwareProfile("t", backend="torch", threads=1, warmup=3, rounds=3, round_ms=5),
                                 None, 0)
    (big, small) = evaluator.evaluate([mnist_space.largest(), mnist_space.smallest()])
    assert big["latency_ms"] > 1.5 * small["latency_ms"]  # several times slower in practice; wide margin
    assert big.meta["median_call_ms"] >= big["latency_ms"] and big.meta["batch_size"] == 1


@pytest.mark.parametrize("extra,named", [
    (["--set", "data.dataset=cifar10", "--set", "data.path=/no/such/folder"], "/no/such/folder"),
    (["--set", "data.limit=5"], "limit"),
    (["--set", "train.epochs=-1"], "epochs"),
    (["--config", "/no/such.yaml"], "not found"),
    (["--set", "space=nb201"], "table"),
    (["--device", "cuda:99"], "cuda:99"),  # no GPU here; on a GPU machine, not 100 of them
    (["--set", "device=tpu"], "device: 'tpu' is not a torch device"),
])
def test_train_bad_input_is_one_line_and_leaves_the_run_alone(tiny_run, capsys, extra, named):
    folder, run = tiny_run
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    argv = ["train", "--config", str(folder / "tiny.yaml"), "--out", str(run), "--force"] + extra
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and named in err[0]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_search_with_a_corrupt_checkpoint_is_one_line(tiny_run, tmp_path, capsys):
    folder, _ = tiny_run
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "supernet.pt").write_bytes(b"\x00garbage")
    code, err = run_cli(["search", "--config", str(folder / "tiny.yaml"), "--out", str(broken), "--resume"], capsys)
    assert code == 2 and len(err) == 1 and "supernet.pt" in err[0]


def test_unknown_latency_profile_is_rejected(tiny_run, tmp_path, capsys):
    folder, run = tiny_run
    code, err = run_cli(["search", "--config", str(folder / "tiny.yaml"), "--out", str(run), "--resume",
                      "--objectives", "accuracy:max,latency_ms@phone:min"], capsys)
    assert code == 2 and "phone" in err[0]


def test_space_presets_load():
    assert load_space("mnist_hybrid").input.size == 28


def test_a_search_with_another_seed_measures_on_the_split_its_supernet_was_trained_on(tiny_run, tmp_path, capsys):
    from tests.conftest import write_trained_config

    config = write_trained_config(tiny_run, tmp_path, "reseeded", objectives=["accuracy:max", "size_mb:min"],
                                  budget=3, batch_size=3, initial=3)
    measured = {}
    for seed in (0, 1):  # the tiny supernet was trained with seed 0, which also drew its data split
        code, err = run_cli(["search", "--config", str(config), "--out", str(tmp_path / f"s{seed}"), "--seed",
                             str(seed), "-q"], capsys)
        assert code == 0, err  # before: seed 1 split the images anew and was refused as "other images"
        rows = csv.DictReader((tmp_path / f"s{seed}" / "measured.csv").open())
        measured[seed] = {r["arch"]: r["accuracy"] for r in rows}
    assert measured[1] == measured[0]  # the largest, its int8 copy and the smallest, on the same validation images


def test_two_hardware_profiles_keep_their_own_measurement_records(tiny_run, tmp_path, capsys):
    folder, run = tiny_run
    code, err = run_cli(["search", "--config", str(folder / "tiny.yaml"), "--out", str(tmp_path / "r"), "-q",
                         "--set", f"checkpoint={run / 'supernet.pt'}", "--set",
                         f"hardware=[{folder / 'fast_torch.yaml'},{folder / 'fast_ort.yaml'}]", "--objectives",
                         "accuracy:max,latency_ms@fast_torch:min,latency_ms@fast_ort:min", "--budget", "4"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "r" / "measured.csv").open()))
    assert len(rows) == 4 and all(float(r["latency_ms@fast_ort"]) > 0 for r in rows)
    # before: one "backend" column, the last profile's, beside the other's ONNX model size
    assert {(r["backend@fast_torch"], r["backend@fast_ort"]) for r in rows} == {("torch", "onnxruntime")}


def test_more_local_ray_workers_than_cores_timing_latency_is_warned_of(tiny_run, caplog, monkeypatch):
    """Four workers timing latency on two cores contend; before session 29 nothing said so."""
    import logging

    from search_engine.job import _warn_if_timings_contend, build_job
    from search_space.config import load_config

    folder, _ = tiny_run
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    for sets, warned in ((["search.runner=ray", "search.workers=4"], True),
                         (["search.runner=ray", "search.workers=2"], False),
                         (["search.runner=ray", "search.workers=4", "search.objectives=[accuracy:max,size_mb:min]"],
                          False)):  # nothing timed
        config = load_config(str(folder / "tiny.yaml"), sets)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hynas"):
            _warn_if_timings_contend(build_job(config), config, threads=1)
        assert ("4 Ray workers x 1 thread(s) on 2 cores" in caplog.text) == warned, sets
