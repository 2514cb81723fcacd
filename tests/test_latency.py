"""Latency on the target: ONNX Runtime fp32/int8 measurement, int8 fidelity, lookup tables, profiling."""
import csv
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from predictors.lut import LatencyTable
from search_engine.evaluators.latency import LatencyEvaluator
from search_engine.latency_meter import MIN_CALLS, LatencyMeter, time_interleaved
from search_engine.profiling import distinct_layers, fit_scales, profile_space
from search_space.arch import LayerArch
from search_space.config import HardwareProfile, load_config
from search_space.costs import LayerConfig
from search_space.errors import ConfigError
from search_space.objectives import Metrics
from search_space.hybrid import HybridSpace
from search_space.schema import build
from supernet import onnx_io
from supernet.blocks import standalone_layer
from supernet.calibration import Calibrator, calibrated, scores
from supernet.model import Supernet
from supernet.trained import load_trained
from tests.conftest import FAST_ORT, run_cli

ORT = HardwareProfile(**FAST_ORT)
STEADY_ORT = HardwareProfile(**{**FAST_ORT, "rounds": 8, "round_ms": 10})  # for comparing timings with each other
TINY_SPACE = {
    "name": "tiny_lut", "input": {"channels": 1, "size": 16, "classes": 4}, "stem": {"channels": 16, "stride": 2},
    "stages": [{"depth": [1, 2], "width": [16, 32], "blocks": ["conv", "attn"], "kernel": [3], "expand": [2],
                "heads": [1], "mlp_ratio": [2], "head_dim": 8, "stride": 1}],
    "quantization": {"weight_bits": [8, 32], "act_bits": [8, 32]},
}


@pytest.fixture(scope="module")
def trained(tiny_run):
    folder, run = tiny_run
    return load_trained(load_config(str(folder / "tiny.yaml")), run / "supernet.pt")


@pytest.fixture(scope="module")
def tiny_space():
    return build(HybridSpace, TINY_SPACE, "tiny_lut")


def test_models_timed_together_take_turns_round_by_round():
    calls = []
    runs = [lambda: calls.append("a"), lambda: calls.append("b")]
    timings = time_interleaved(runs, warmup=1, rounds=3, round_ms=0)  # 0 ms: MIN_CALLS calls per round
    assert calls == ["a", "b"] + (["a"] * MIN_CALLS + ["b"] * MIN_CALLS) * 3
    assert all(0 <= t.best_ms <= t.median_ms for t in timings)


def test_onnxruntime_latency_is_recorded_with_its_settings_and_grows_with_the_arch(trained):
    space = trained.space
    evaluator = LatencyEvaluator(trained.supernet, ORT, trained.data.train, 2)
    big, small = evaluator.evaluate([space.largest(), space.smallest()])
    assert big["latency_ms"] > 1.5 * small["latency_ms"] > 0  # several times slower in practice; wide margin
    # the largest arch is 32-bit, so its stem and head (8 bits) run in float beside it; the smallest is all <= 8
    assert big.meta["precision"] == "fp32" and small.meta["precision"] == "int8"
    for m in (big, small):
        assert m.meta["backend"] == "onnxruntime" and m.meta["threads"] == 1 and m.meta["batch_size"] == 1
        assert m.meta["median_call_ms"] >= m["latency_ms"] and m.meta["onnx_bytes"] > 0
    assert small.meta["onnx_bytes"] < big.meta["onnx_bytes"] / 2  # int8 weights are stored in a quarter


def test_mixed_precision_arch_keeps_its_32_bit_layers_in_float_and_stem_and_head_follow_their_neighbours(trained):
    space, meter = trained.space, LatencyMeter(ORT)
    arch = space.arch_from_str(space.largest().to_str().replace("w32a32", "w8a8", 1))
    parts = meter.float_parts(space, arch)
    assert "/layers/layers.0/" not in parts and "/layers/layers.1/" in parts
    assert "/stem/" not in parts and "/head/" in parts  # int8 beside the first layer, float beside the last
    assert meter.float_parts(space, space.largest()) == onnx_io.ALL_FLOAT  # no int8 island at either end
    assert meter.float_parts(space, space.uniform_int8(space.largest())) == ()


def test_int8_onnx_model_agrees_with_the_fake_quantized_subnet(trained, tmp_path):
    space, net, data = trained.space, trained.supernet, trained.data
    arch = space.arch_from_str(space.largest().to_str().replace("w32a32", "w8a8"))
    with calibrated(net, arch, data.train, 4):
        simulated = net.extract(arch).eval()
        deployed = net.extract(arch, simulate_activations=False).eval()
    images, labels = data.val.images[:200], data.val.labels[:200]
    fp32 = onnx_io.export_onnx(deployed, images[:1], tmp_path / "fp32.onnx")
    int8 = onnx_io.quantize_int8(fp32, tmp_path / "int8.onnx", data.train.images[:64].numpy(),
                                 ranges=simulated.activation_ranges())
    predicted = onnx_io.run(onnx_io.session(int8), images.numpy()).argmax(1)
    with torch.no_grad():
        reference = simulated(images).argmax(1).numpy()
    assert (reference == labels.numpy()).mean() > 0.5  # a trained net, so agreement is not trivial
    assert (predicted == reference).mean() >= 0.95
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(int8)).graph.node}


def test_attention_exports_with_constant_reshapes_and_a_dynamic_batch(tiny_space, tmp_path):
    arch = tiny_space.arch_from_str(tiny_space.largest().to_str().replace("conv_k3_e2", "attn_h1_m2"))
    assert arch.layers()[-1].block == "attn"
    model = Supernet(tiny_space).eval().extract(arch, simulate_activations=False)
    fp32 = onnx_io.export_onnx(model, torch.zeros(1, 1, 16, 16), tmp_path / "fp32.onnx")
    # no shape arithmetic left for ONNX Runtime to run on every call (it cost the int8 largest 8 %)
    assert "Shape" not in {n.op_type for n in onnx.load(str(fp32)).graph.node}
    images = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        reference = model(images).numpy()
    assert np.abs(onnx_io.run(onnx_io.session(fp32), images.numpy()) - reference).max() < 1e-4


@pytest.mark.parametrize("layer,c_in,c_out,stride", [("conv_k3_e2", 8, 8, 1), ("attn_h1_m2", 8, 16, 2)])
def test_a_profiled_int8_layer_exports_the_float_graph_a_subnet_does(layer, c_in, c_out, stride, tmp_path):
    # The quantizer adds int8's QDQ nodes to the float graph; fake quantization exported as float arithmetic
    # (Div, Round, Clip, ...) ran as extra work and timed int8 layers 1.4-2.3x slow in the lookup table.
    def exported_ops(bits: str) -> list[str]:
        cfg = LayerConfig(LayerArch.from_str(f"{layer}_{bits}"), c_in, c_out, stride, 8, 4)
        path = onnx_io.export_onnx(standalone_layer(cfg), torch.zeros(1, c_in, 8, 8), tmp_path / f"{bits}.onnx")
        return sorted(n.op_type for n in onnx.load(str(path)).graph.node)

    assert exported_ops("w8a8") == exported_ops("w32a32")


def test_every_int8_convolution_of_an_untrained_subnet_runs_fused(tiny_space, tmp_path):
    # Untrained BatchNorms fold into equal (zero) biases, which the exporter merges into one initializer;
    # a shared bias cannot take each convolution's scale, and ONNX Runtime then leaves the convolution
    # unfused (float Conv on dequantized weights), unlike the same subnet trained.
    arch = tiny_space.arch_from_str(tiny_space.largest().to_str().replace("attn_h1_m2", "conv_k3_e2")
                                    .replace("w32a32", "w8a8"))
    model = Supernet(tiny_space).eval().extract(arch, simulate_activations=False)
    fp32 = onnx_io.export_onnx(model, torch.zeros(1, 1, 16, 16), tmp_path / "fp32.onnx")
    exported = onnx.load(str(fp32)).graph
    initializers = {t.name for t in exported.initializer}
    readers = [i for n in exported.node for i in n.input if i in initializers]
    assert len(readers) > len(set(readers))  # the exporter did merge equal initializers
    int8 = onnx_io.quantize_int8(fp32, tmp_path / "int8.onnx", np.zeros((4, 1, 16, 16), np.float32))
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    convs = sum(n.op_type == "Conv" for n in exported.node)
    assert ops.count("QLinearConv") == convs and "Conv" not in ops and "FusedConv" not in ops


def test_scales_per_kind_of_layer_are_recovered_and_robust_to_one_disturbed_timing():
    rng = np.random.default_rng(0)
    true = {"attn_float": 1.2, "attn_int8": 0.7, "conv_float": 1.2, "conv_int8": 0.55}
    sums = [{k: float(v) for k, v in zip(true, rng.uniform(0, 0.1, 4)) if v > 0.02} for _ in range(40)]
    measured = np.array([0.015 + sum(true[k] * v for k, v in s.items()) for s in sums])
    measured[3] *= 1.6  # one call caught by a busy neighbour
    fitted = fit_scales(sums, measured, np.full(len(sums), 0.015))
    assert fitted == pytest.approx(true, rel=0.02)


def test_a_calibrator_remembers_statistics_that_equal_recomputed_ones(trained, monkeypatch):
    space, net, data = trained.space, trained.supernet, trained.data
    arch = space.arch_from_str(space.largest().to_str().replace("w32a32", "w8a8"))
    before = {n: b.clone() for n, b in net.named_buffers()}
    estimates = []
    original = Calibrator._estimate
    monkeypatch.setattr(Calibrator, "_estimate", lambda self, a: (estimates.append(a), original(self, a)))
    calibrator = Calibrator(net, data.train, 4)
    x = data.val.images[:32]
    with torch.no_grad():
        with calibrated(net, arch, data.train, 4) as fresh:
            reference = fresh(x, arch)
        outputs = []
        for _ in range(2):
            with calibrator(arch) as calibrated_net:
                outputs.append(calibrated_net(x, arch))
    assert estimates == [arch, arch]  # the one-off, then the calibrator once: its second use remembered
    assert torch.equal(outputs[0], reference) and torch.equal(outputs[1], reference)
    assert all(torch.equal(b, before[n]) for n, b in net.named_buffers())  # the supernet's own statistics restored


def test_accuracy_and_latency_evaluators_calibrate_each_arch_once(trained, monkeypatch):
    from search_engine.evaluators.accuracy import AccuracyEvaluator

    space, net, data = trained.space, trained.supernet, trained.data
    archs = [space.arch_from_str(space.largest().to_str().replace("w32a32", "w8a8")), space.smallest()]
    estimates = []
    original = Calibrator._estimate
    monkeypatch.setattr(Calibrator, "_estimate", lambda self, a: (estimates.append(a), original(self, a)))
    calibrator = Calibrator(net, data.train, 4)
    shared = AccuracyEvaluator(net, data, 4, calibrator).evaluate(archs)
    LatencyEvaluator(net, ORT, data.train, 4, calibrator=calibrator).evaluate(archs)
    assert sorted(map(str, estimates)) == sorted(map(str, archs))
    alone = AccuracyEvaluator(net, data, 4).evaluate(archs)
    assert [m["accuracy"] for m in shared] == [m["accuracy"] for m in alone]
    with calibrated(net, archs[0], data.train, 4) as fresh:
        expected = scores(fresh, data.val, archs[0])
    assert shared[0]["accuracy"] == expected.accuracy
    assert shared[0].meta["val_cross_entropy"] == pytest.approx(expected.nll) and expected.nll > 0


def test_every_distinct_layer_is_profiled_once_and_the_table_predicts_measured_latency(tiny_space, tmp_path):
    layers = distinct_layers(tiny_space, ORT)
    # conv (k3 e2) and attn (h1 m2), int8 or float, first layer 16->16 or 16->32, later 16->16 or 32->32
    assert len(layers) == 2 * 2 * 3
    table = profile_space(tiny_space, STEADY_ORT, tmp_path / "lut.json", fit_archs=8, progress=False)
    assert set(table.layers) == set(layers) and table.complete
    # the frame at each pair of stem and head precisions; each subnet pays the one it runs
    assert set(table.frame_ms) == {"stem_float+head_float", "stem_float+head_int8", "stem_int8+head_float",
                                   "stem_int8+head_int8"}
    assert table.frame(tiny_space, tiny_space.largest(), ORT.runs_int8) == table.frame_ms["stem_float+head_float"]
    assert table.frame(tiny_space, tiny_space.smallest(), ORT.runs_int8) == table.frame_ms["stem_int8+head_int8"]
    assert LatencyTable.load(tmp_path / "lut.json", tiny_space) == table
    meter, net = LatencyMeter(STEADY_ORT), Supernet(tiny_space).eval()
    for arch in (tiny_space.largest(), tiny_space.smallest()):
        measured = meter.measure_subnet(net.extract(arch, simulate_activations=False), tiny_space, arch)[0].best_ms
        predicted = table.predict(tiny_space, arch, STEADY_ORT.runs_int8)
        assert measured / 3 < predicted < measured * 3  # a loose bound: these nets run in tens of microseconds


def test_interrupted_profiling_resumes_without_remeasuring(tiny_space, tmp_path):
    out = tmp_path / "lut.json"
    full = profile_space(tiny_space, ORT, out, fit_archs=3, progress=False)
    kept = dict(list(full.layers.items())[:5])
    data = json.loads(out.read_text())
    data.update(layers=kept, frame_ms={})  # as if killed after five layers
    out.write_text(json.dumps(data))
    resumed = profile_space(tiny_space, ORT, out, resume=True, fit_archs=3, progress=False)
    assert set(resumed.layers) == set(full.layers) and resumed.complete
    assert all(resumed.layers[k] == v for k, v in kept.items())


def test_a_table_of_another_space_or_a_corrupt_one_is_refused(tiny_space, mnist_space, tmp_path):
    out = tmp_path / "lut.json"
    profile_space(tiny_space, ORT, out, fit_archs=3, progress=False)
    with pytest.raises(ConfigError, match="profiled for space 'tiny_lut'"):
        LatencyTable.load(out, mnist_space)
    out.write_text(out.read_text()[:200])
    with pytest.raises(ConfigError, match="not a readable latency table"):
        LatencyTable.load(out, tiny_space)


def _lut_config(tmp_path: Path, space_file: Path, lut: Path) -> Path:
    (tmp_path / "lut_ort.yaml").write_text(yaml.safe_dump({**FAST_ORT, "name": "lut_ort", "lut": str(lut)}))
    config = {"name": "lut", "space": str(space_file), "hardware": [str(tmp_path / "lut_ort.yaml")], "seed": 3,
              "search": {"objectives": ["latency_ms:min", "size_mb:min"], "budget": 12, "batch_size": 4,
                         "strategy": "nsga2"}}
    (tmp_path / "lut.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "lut.yaml"


def test_cli_profile_then_search_on_the_table_is_deterministic(tiny_space, tmp_path, capsys):
    space_file = tmp_path / "tiny_lut.yaml"
    space_file.write_text(yaml.safe_dump(TINY_SPACE))
    (tmp_path / "hw.yaml").write_text(yaml.safe_dump(FAST_ORT))
    lut = tmp_path / "lut.json"
    code, err = run_cli(["profile", "--space", str(space_file), "--hardware", str(tmp_path / "hw.yaml"),
                         "--out", str(lut), "--fit-archs", "3", "-q"], capsys)
    assert code == 0, err
    config = _lut_config(tmp_path, space_file, lut)
    runs = []
    for name in ("a", "b"):
        code, err = run_cli(["search", "--config", str(config), "--out", str(tmp_path / name), "-q"], capsys)
        assert code == 0, err
        rows = csv.DictReader((tmp_path / name / "measured.csv").open())
        runs.append([(r["arch"], r["latency_ms"], r["size_mb"]) for r in rows])
    assert len(runs[0]) == 12 and runs[0] == runs[1]  # latency from the table: the same archs and values


def test_a_latency_limit_on_a_table_keeps_every_arch_linas_asks_for_inside_it(tiny_space, tmp_path):
    from search_engine.job import build_job, make_strategy

    space_file = tmp_path / "tiny_lut.yaml"
    space_file.write_text(yaml.safe_dump(TINY_SPACE))
    lut = tmp_path / "lut.json"
    profile_space(tiny_space, ORT, lut, fit_archs=3, progress=False)
    table = LatencyTable.load(lut, tiny_space)
    rng = np.random.default_rng(0)
    latency = {a: table.predict(tiny_space, a, ORT.runs_int8) for a in (tiny_space.sample(rng) for _ in range(200))}
    limit = float(np.median(list(latency.values())))
    config = load_config(_lut_config(tmp_path, space_file, lut), [
        "search.strategy=linas", f"search.constraints=[latency_ms<={limit}]", "search.batch_size=6"])
    strategy = make_strategy(build_job(config), config)
    asked = strategy.ask(12)  # the first batch, drawn at random: before, about half of it past the limit
    assert len(asked) == 12 and all(table.predict(tiny_space, a, ORT.runs_int8) <= limit for a in asked)
    strategy.tell(asked, [Metrics({"latency_ms": table.predict(tiny_space, a, ORT.runs_int8), "size_mb": 1.0}, 0.0, {})
                          for a in asked])
    assert all(table.predict(tiny_space, a, ORT.runs_int8) <= limit for a in strategy.ask(6))  # a predicted round


def test_a_measured_latency_limit_is_checked_against_the_runs_own_table_before_measuring(tiny_space, tmp_path):
    from search_engine.job import build_job, make_strategy, profiled_table

    space_file = tmp_path / "tiny_lut.yaml"
    space_file.write_text(yaml.safe_dump(TINY_SPACE))
    (tmp_path / "measured.yaml").write_text(yaml.safe_dump(FAST_ORT))  # measures: no lut of its own
    run = tmp_path / "run"
    run.mkdir()
    table = profile_space(tiny_space, ORT, profiled_table(run, ORT.name), fit_archs=3, progress=False)
    error = table.fit["max_abs_error"]
    rng = np.random.default_rng(0)
    estimates = [table.predict(tiny_space, a, ORT.runs_int8) for a in (tiny_space.sample(rng) for _ in range(200))]
    limit = float(np.quantile(estimates, 0.3)) * (1 + error)  # a third or so of the space is sure to break it
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "name": "c", "space": str(space_file), "hardware": [str(tmp_path / "measured.yaml")], "seed": 3,
        "search": {"objectives": ["latency_ms:min", "size_mb:min"], "budget": 12, "batch_size": 6,
                   "strategy": "linas", "constraints": [f"latency_ms<={limit}"]}}))
    config = load_config(str(tmp_path / "c.yaml"))
    asked = make_strategy(build_job(config), config, run).ask(12)  # before: the table beside the run was ignored
    assert len(asked) == 12
    assert all(table.predict(tiny_space, a, ORT.runs_int8) * (1 - error) <= limit for a in asked)
    elsewhere = make_strategy(build_job(config), config, tmp_path).ask(12)  # no table there: only measuring can tell
    assert any(table.predict(tiny_space, a, ORT.runs_int8) * (1 - error) > limit for a in elsewhere)


@pytest.mark.parametrize("damage,named", [
    (lambda p: p.write_text("{not json"), "not a readable latency table"),
    # a table timed by an earlier protocol: its numbers are not what the meter measures now
    (lambda p: p.write_text(p.read_text().replace("hynas-latency-lut/5", "hynas-latency-lut/4")),
     "format is not hynas-latency-lut/5"),
    (lambda p: p.unlink(), "not found"),
    # profiling stopped before the frame (before: the table's space named instead of its file)
    (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "frame_ms": {}})),
     "lut.json: latency table is incomplete (profiling stopped after"),
])
def test_search_with_a_bad_table_is_one_line(tiny_space, tmp_path, capsys, damage, named):
    space_file = tmp_path / "tiny_lut.yaml"
    space_file.write_text(yaml.safe_dump(TINY_SPACE))
    lut = tmp_path / "lut.json"
    profile_space(tiny_space, ORT, lut, fit_archs=3, progress=False)
    damage(lut)
    capsys.readouterr()
    code, err = run_cli(["search", "--config", str(_lut_config(tmp_path, space_file, lut)), "--out",
                         str(tmp_path / "r")], capsys)
    assert code == 2 and len(err) == 1 and named in err[0] and "lut.json" in err[0]
    assert not (tmp_path / "r").exists()  # refused before the run folder was made


def test_profile_refuses_to_overwrite_a_table(tmp_path, capsys):
    out = tmp_path / "lut.json"
    out.write_text("precious")
    code, err = run_cli(["profile", "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1 and "--resume" in err[0] and out.read_text() == "precious"


def test_profile_int8_rule_follows_the_profile():
    assert ORT.runs_int8(4, 8) and not ORT.runs_int8(8, 32)
    assert not HardwareProfile("t", backend="torch").runs_int8(8, 8)
    assert not HardwareProfile("t", int8=False).runs_int8(8, 8)
