"""The whole job from the CLI, in process: run, export, finetune, plot; and bad input everywhere."""
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import search
import supernet.data
from search_space import ConfigError
from search_space.config import load_config
from supernet.checkpoint import load_checkpoint
from supernet.model import Supernet
from supernet.trained import load_trained
from tests.conftest import FAST_ORT, run_cli, write_trained_config


@pytest.fixture(scope="module")
def pipeline_run(tiny_run, tmp_path_factory):
    """`hynas run` on the tiny supernet's checkpoint (so the train phase is a check, not training)."""
    folder = tmp_path_factory.mktemp("pipeline")
    config = write_trained_config(tiny_run, folder, "pipe", budget=10, batch_size=5, initial=5)
    run = folder / "run"
    with pytest.MonkeyPatch.context() as patch:  # counts the data set reads of the whole run
        read = supernet.data._read_dataset
        patch.setattr(supernet.data, "_read_dataset", lambda *args: DATA_READS.append(args) or read(*args))
        assert search.main(["run", "--config", str(config), "--out", str(run), "-q"]) == 0
    return folder, run


DATA_READS: list[tuple] = []  # the arguments of each data set read of the `pipeline_run` fixture


def test_a_run_reads_its_data_set_once(pipeline_run):
    assert len(DATA_READS) == 1  # the CLI's check, search, validate and export each read it before


def test_the_run_log_says_which_command_wrote_it(pipeline_run):
    folder, run = pipeline_run
    first = (run / "hynas.log").read_text().splitlines()[0]
    assert re.search(rf"INFO hynas.run: hynas run --config {re.escape(str(folder / 'pipe.yaml'))} --out "
                     rf"{re.escape(str(run))} -q \(process \d+ on \S+\)$", first), first


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_most_accurate_export_breaks_top1_ties_by_validation_cross_entropy(pipeline_run):
    from search_engine.job import build_job
    from search_engine.pipeline import pick_exports

    folder, run = pipeline_run
    job = build_job(load_config(str(folder / "pipe.yaml")))
    rows = [{"trial": 0, "accuracy": 98.0, "val_cross_entropy": 0.30, "latency_ms": 0.5, "size_mb": 0.3},
            {"trial": 1, "accuracy": 98.0, "val_cross_entropy": 0.20, "latency_ms": 0.4, "size_mb": 0.2},
            {"trial": 2, "accuracy": 97.0, "val_cross_entropy": 0.10, "latency_ms": 0.1, "size_mb": 0.1}]
    picks = dict(pick_exports(rows, job))
    assert picks["most accurate"]["trial"] == 1 and picks["fastest"]["trial"] == 2
    validated = (run / "validated.csv").read_text().splitlines()
    assert "val_cross_entropy" in validated[0].split(",")  # recorded with each front subnet


def test_picks_mean_the_most_accurate_of_the_runs_feasible_front(pipeline_run):
    """Before, `export --pick` and the run's "most accurate" export took the first objective listed (with
    latency first they gave the fastest subnet), and --pick ignored the run's own constraints."""
    from dataclasses import replace

    from search_engine.deploy import open_finished_run, pick_subnet
    from search_engine.job import build_job
    from search_engine.pipeline import pick_exports
    from search_space import load_space
    from search_space.objectives import Constraint

    folder, run = pipeline_run
    finished = open_finished_run(run)
    latency_first = tuple(sorted(finished.objectives, key=lambda o: o.name != "latency_ms"))
    assert latency_first[0].name == "latency_ms"
    for objectives in (finished.objectives, latency_first):
        picked = pick_subnet(replace(finished, objectives=objectives), load_space("mnist_hybrid"), pick="size_mb<=1")
        assert picked.record.values["accuracy"] == max(r.values["accuracy"] for r in finished.records)
    # the run's own constraints (search.constraints) bound the front that --pick chooses from
    best = max(finished.records, key=lambda r: r.values["accuracy"])
    limit = Constraint.parse(f"latency_ms<={best.values['latency_ms'] * 0.99}", ["latency_ms"], "test")
    feasible = [r for r in finished.records if limit.satisfied(r.values)]
    picked = pick_subnet(replace(finished, constraints=(limit,)), load_space("mnist_hybrid"), pick="size_mb<=1")
    assert picked.record.values["accuracy"] == max(r.values["accuracy"] for r in feasible)
    assert limit.satisfied(picked.record.values)
    # constraints nothing measured meets: one line (before: min() of an empty front, a traceback)
    impossible = Constraint.parse("accuracy>=101", ["accuracy"], "test")
    with pytest.raises(ConfigError, match=r"the run's front is empty: none of its \d+ subnets meets its constraints "
                                          r"\(accuracy >= 101\); choose with --trial or --arch"):
        pick_subnet(replace(finished, constraints=(impossible,)), load_space("mnist_hybrid"), pick="size_mb<=1")
    job = build_job(load_config(str(folder / "pipe.yaml")))
    rows = [{"trial": 0, "accuracy": 98.0, "latency_ms": 0.5, "size_mb": 0.3},
            {"trial": 1, "accuracy": 97.0, "latency_ms": 0.1, "size_mb": 0.1}]
    assert dict(pick_exports(rows, replace(job, objectives=latency_first)))["most accurate"]["trial"] == 0
    # without a latency objective the cheap end of the front is still exported: its smallest subnet
    no_latency = tuple(o for o in job.objectives if o.base != "latency_ms")
    assert dict(pick_exports(rows, replace(job, objectives=no_latency)))["smallest"]["trial"] == 1


def test_pick_and_the_runs_most_accurate_export_break_a_tie_alike(pipeline_run):
    """Before session 33 `export --pick` took the first of two subnets tied on accuracy and the run's export the
    one of lower validation cross-entropy: in session 33's fresh clone `hynas export runs/demo --pick
    'latency_ms<=0.3'` exported trial 72 beside the run's most accurate trial 73 (both 98.4 %)."""
    from dataclasses import replace

    from results.store import Record
    from search_engine.deploy import open_finished_run, pick_subnet
    from search_engine.job import build_job
    from search_engine.pipeline import pick_exports
    from search_space import load_space

    folder, run = pipeline_run
    finished = open_finished_run(run)
    first, second = finished.records[:2]
    tied = (Record(5, first.arch, {"accuracy": 98.4, "latency_ms": 0.1, "size_mb": 0.2},
                   {"val_cross_entropy": "0.19"}),
            Record(6, second.arch, {"accuracy": 98.4, "latency_ms": 0.2, "size_mb": 0.1},
                   {"val_cross_entropy": "0.17"}))
    picked = pick_subnet(replace(finished, records=tied), load_space("mnist_hybrid"), pick="latency_ms<=0.3")
    assert picked.record.number == 6  # as measured.csv gives it: the cross-entropy a string
    job = build_job(load_config(str(folder / "pipe.yaml")))
    rows = [{"trial": r.number, **r.values, "val_cross_entropy": float(r.meta["val_cross_entropy"])} for r in tied]
    assert dict(pick_exports(rows, job))["most accurate"]["trial"] == 6


def test_the_front_against_uniform_int8_takes_the_latency_timed_beside_the_baselines():
    """What `hynas run` prints and reports, and `benchmarks/joint_vs_int8.py` measures: the fastest and the smallest
    front subnet at least as accurate as the largest at uniform int8, latency as the validation phase timed it."""
    from results.versus_int8 import versus_uniform_int8

    front = [{"trial": 1, "accuracy": 97.8, "latency_ms": 0.2, "latency_ms_again": 0.1, "size_mb": 0.05},
             {"trial": 2, "accuracy": 98.0, "latency_ms": 0.15, "latency_ms_again": 0.15, "size_mb": 0.02},
             {"trial": 3, "accuracy": 97.0, "latency_ms": 0.01, "latency_ms_again": 0.01, "size_mb": 0.001}]
    anchor = {"baseline": "uniform int8 of the largest", "accuracy": 97.8, "latency_ms": 0.3, "size_mb": 0.1}
    baselines = [{"baseline": "largest", "accuracy": 98.2, "latency_ms": 0.25, "size_mb": 0.4}, anchor]
    versus = versus_uniform_int8(front, baselines)
    assert (versus.fastest["trial"], versus.smallest["trial"]) == (1, 2)  # trial 3 is less accurate
    assert versus.latency_ratio == pytest.approx(3.0) and versus.size_ratio == pytest.approx(5.0)
    assert versus.sentence() == ("against the largest subnet at uniform int8 (97.80 % on validation, 0.300 ms, "
                                 "0.1000 MB), at least as accurate: trial 1 at 0.100 ms (3.00x lower latency), "
                                 "trial 2 at 0.0200 MB (5.00x smaller)")
    beyond = versus_uniform_int8(front, [{**anchor, "accuracy": 99.0}])
    assert beyond.sentence().endswith("(99.00 % on validation, 0.300 ms, 0.1000 MB): no front subnet is as accurate")
    untimed = versus_uniform_int8([{k: v for k, v in f.items() if "latency" not in k} for f in front],
                                  [{k: v for k, v in anchor.items() if k != "latency_ms"}])
    assert untimed.fastest is None and untimed.sentence().endswith(": trial 2 at 0.0200 MB (5.00x smaller)")
    assert versus_uniform_int8(front, baselines[:1]) is None  # a space without 8 bits has no such baseline
    # a latency named for its profile; before, "(97.80 % on validation, ): no front subnet is as accurate"
    named = [{"trial": f["trial"], "accuracy": f["accuracy"], "latency_ms@board": f["latency_ms"],
              "latency_ms@board_again": f["latency_ms_again"]} for f in front]
    timed_on_board = {"baseline": anchor["baseline"], "accuracy": 97.8, "latency_ms@board": 0.3}
    assert versus_uniform_int8(named, [timed_on_board]).sentence() == (
        "against the largest subnet at uniform int8 (97.80 % on validation, 0.300 ms on board), at least as accurate: "
        "trial 1 at 0.100 ms on board (3.00x lower latency)")
    no_costs = {"baseline": anchor["baseline"], "accuracy": 97.8}
    assert versus_uniform_int8(front, [no_costs]) is None  # nothing to compare


def test_a_run_without_latency_profiles_nothing_and_says_so(tiny_run, tmp_path):
    config = write_trained_config(tiny_run, tmp_path, "nolat", budget=6, batch_size=3, initial=3,
                                  objectives=["accuracy:max", "size_mb:min"])
    assert search.main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert not list((tmp_path / "run").glob("lut_*.json"))  # before: a table profiled for half a minute, unused
    report = (tmp_path / "run" / "report.md").read_text()
    assert "validated: test-split accuracy." in report and "latency_ms" not in report.split("## Baselines")[0]
    assert "Measured latency varies" not in report
    assert ", hardware none (no latency measured)" in report  # before: the config's profile, which measured nothing


def test_a_run_of_accuracy_and_size_within_a_latency_limit_measures_and_shows_the_latency(tiny_run, tmp_path, capsys):
    """Before, a limit on a value that is no objective was refused on a supernet's space ("constraint on unknown
    value 'latency_ms'") though its evaluators measure every constrained value and a table's search took it."""
    config = write_trained_config(tiny_run, tmp_path, "limited", budget=6, batch_size=3, initial=3,
                                  objectives=["accuracy:max", "size_mb:min"], constraints=["latency_ms <= 50"])
    run = tmp_path / "run"
    assert search.main(["run", "--config", str(config), "--out", str(run), "-q"]) == 0
    printed = capsys.readouterr().out
    with open(run / "measured.csv", newline="") as handle:
        measured = list(csv.DictReader(handle))
    assert len(measured) == 6 and all(float(row["latency_ms"]) > 0 for row in measured)
    assert (run / "validated.csv").read_text().startswith("trial,arch,accuracy,size_mb,latency_ms,test_accuracy,"
                                                          "latency_ms_again,")
    report = (run / "report.md").read_text()
    assert "| accuracy [%] (higher is better) | size_mb [MB] (lower is better) | latency_ms [ms] (latency_ms <= 50) |" \
        in report.split("## Baselines")[1]
    assert "constraints latency_ms <= 50 (the front meets them)" in report
    front = [line for line in printed.splitlines() if line.startswith("  trial ")]
    assert front and all(re.search(r"size_mb=\S+  latency_ms=\S+", line) for line in front)


def test_run_writes_report_plots_front_and_checked_exports(pipeline_run):
    _, run = pipeline_run
    report = (run / "report.md").read_text()
    assert "## Measured front" in report and "## Baselines" in report and "uniform int8 of the largest" in report
    baselines = report.split("## Baselines")[1].split("##")[0]
    assert "| baseline | arch | accuracy [%] (higher is better) | latency_ms [ms] (lower is better)" in baselines
    largest = next(line for line in baselines.splitlines() if line.startswith("| largest |")).strip("| ").split(" | ")
    assert all(re.fullmatch(r"\d+\.\d\d", largest[i]) for i in (2, 5))  # accuracies: two decimals, always
    for png in ("pareto_accuracy_latency_ms.png", "pareto_accuracy_size_mb.png", "pareto_latency_ms_size_mb.png",
                "hypervolume.png"):
        assert (run / png).stat().st_size > 10_000 and f"({png})" in report
    assert (run / "lut_fast_ort.json").is_file()
    summary = report.split("## Measured front")[0]  # the front against the largest subnet at uniform int8
    assert "- against the largest subnet at uniform int8 (" in summary
    validated = (run / "validated.csv").read_text().splitlines()
    assert validated[0].startswith("trial,arch,accuracy,latency_ms,size_mb,test_accuracy")
    exports = sorted((run / "export").iterdir())
    assert 1 <= len(exports) <= 3
    for folder in exports:
        info = yaml.safe_load((folder / "arch.yaml").read_text())
        checks = info["checks"]
        assert checks["model.pt"] <= 1e-4 and checks["model.pt2"] <= 1e-4 and checks["model_fp32.onnx"] <= 1e-3
        assert checks.get("model_int8.onnx", 1.0) >= 0.95  # the tiny supernet is weak: near-ties do not count
        artefacts = {"model.pt", "model.pt2", "model_fp32.onnx", "README.md", "space.yaml"}
        assert artefacts <= {p.name for p in folder.iterdir()}
        assert re.search(r"^\| accuracy \| \d+\.\d\d \|$", (folder / "README.md").read_text(), re.M)  # as elsewhere


def test_a_finished_run_plots_where_its_hardware_profile_file_is_not(pipeline_run, tmp_path):
    """A run folder copied to another machine: plot and export read its config without timing anything, so the
    hardware YAML it names need not be there (session 34 read every profile to parse the constraints, briefly)."""
    _, run = pipeline_run
    moved = tmp_path / "moved"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("export", ".hynas.lock"))
    config = yaml.safe_load((moved / "config.yaml").read_text())
    config["hardware"] = [str(tmp_path / "gone" / "board.yaml")]
    (moved / "config.yaml").write_text(yaml.safe_dump(config))
    assert search.main(["plot", str(moved), "--out", str(tmp_path / "plots"), "-q"]) == 0
    assert (tmp_path / "plots" / "pareto_accuracy_latency_ms.png").stat().st_size > 10_000


def test_an_unmeasured_arch_exports_with_its_analytic_costs(pipeline_run, tmp_path, capsys):
    """Before, its README's metrics table said "(none recorded)": its size, known without measuring, was left out;
    and a subnet without an int8 model did not say why that file is missing."""
    from search_space import load_space
    from search_space.costs import arch_costs

    _, run = pipeline_run
    arch = "c16:conv_k3_e2_w4a32|c32:conv_k3_e4_w32a32"  # no layer at <= 8 bits throughout: no int8 model either
    assert arch not in (run / "measured.csv").read_text()
    assert search.main(["export", str(run), "--arch", arch, "--out", str(tmp_path / "e"), "-q"]) == 0
    info = yaml.safe_load((tmp_path / "e" / "arch.yaml").read_text())
    space = load_space("mnist_hybrid")
    assert info["metrics"]["size_mb"] == pytest.approx(arch_costs(space, space.arch_from_str(arch)).size_mb)
    readme = (tmp_path / "e" / "README.md").read_text()
    assert "latency is not known" in readme
    assert "No `model_int8.onnx`" in readme and not (tmp_path / "e" / "model_int8.onnx").exists()


def test_an_arch_copied_from_the_reports_table_picks_that_trial(pipeline_run):
    """report.md's table writes an arch as `c16:...\\|c32:...` (markdown escapes the '|'): pasted from there, or
    with spaces around the separators, --arch said "cannot parse layer 'conv_k5_e4_w8a8\\'"."""
    import re

    from search_engine.deploy import open_finished_run, pick_subnet
    from search_space import load_space

    _, run = pipeline_run
    row = next(line for line in (run / "report.md").read_text().splitlines() if re.match(r"\| \d+ \| `", line))
    trial, pasted = row.split(" | ")[0].strip("| "), row.split(" | ")[1]
    assert pasted.startswith("`") and "\\|" in pasted
    finished = open_finished_run(str(run))
    space = load_space(finished.config.space)
    picked = pick_subnet(finished, space, arch=pasted)
    assert picked.label == f"trial-{trial}" and picked.record.number == int(trial)
    spaced = picked.arch.to_str().replace("|", " | ").replace(",", ", ")
    assert pick_subnet(finished, space, arch=spaced).label == f"trial-{trial}"


def test_an_arch_of_a_supernet_not_yet_searched_exports(tiny_run, tmp_path, capsys):
    """Before, `export RUN --arch` of a folder that `hynas train` wrote asked for a search first."""
    trained = tmp_path / "trained"  # what `hynas train` leaves (the shared tiny run is searched by other tests)
    trained.mkdir()
    for name in ("config.yaml", "supernet.pt"):
        shutil.copy(tiny_run[1] / name, trained / name)
    arch = "c16:conv_k3_e2_w4a8|c32:conv_k3_e4_w8a8"
    assert search.main(["export", str(trained), "--arch", arch, "--out", str(tmp_path / "e"), "-q"]) == 0
    assert yaml.safe_load((tmp_path / "e" / "arch.yaml").read_text())["arch"] == arch
    code, err = run_cli(["export", str(trained), "--trial", "0", "--out", str(tmp_path / "t")], capsys)
    assert code == 2 and len(err) == 1 and "nothing measured to choose from" in err[0] and "--arch" in err[0]


def test_exported_program_reproduces_the_supernet(pipeline_run):
    folder, run = pipeline_run
    config = load_config(str(folder / "pipe.yaml"))
    trained = load_trained(config, Path(config.checkpoint))
    most_accurate = max(yaml.safe_load(p.read_text())["metrics"]["accuracy"] for p in run.glob("export/*/arch.yaml"))
    for arch_file in run.glob("export/*/arch.yaml"):
        info = yaml.safe_load(arch_file.read_text())
        arch = trained.space.arch_from_str(info["arch"])
        from supernet.calibration import calibrated

        x = trained.data.val.images[:64]
        with calibrated(trained.supernet, arch, trained.data.train, config.train.bn_batches), torch.no_grad():
            expected = trained.supernet(x, arch)
        program = torch.export.load(arch_file.parent / "model.pt2").module()
        with torch.no_grad():
            assert (program(x) - expected).abs().max() <= 1e-4
        if info["metrics"]["accuracy"] == most_accurate and "model_int8.onnx" in info["checks"]:
            assert info["checks"]["model_int8.onnx"] >= 0.95


def test_the_loading_code_in_an_export_readme_runs_as_written(pipeline_run, monkeypatch, capsys):
    _, run = pipeline_run
    folder = sorted((run / "export").iterdir())[0]
    readme = (folder / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(compile(code, str(folder / "README.md"), "exec"), namespace)  # before: NameError, `images` was undefined
    assert namespace["logits"].shape == (1, namespace["space"].input.classes)
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_an_export_records_how_raw_pixels_become_its_inputs_and_its_class_names(pipeline_run):
    folder, run = pipeline_run
    config = load_config(str(folder / "pipe.yaml"))
    data = load_trained(config, Path(config.checkpoint)).data
    info = yaml.safe_load(next(run.glob("export/*/arch.yaml")).read_text())
    assert info["classes"] == [str(d) for d in range(10)]  # MNIST's digits, in output order
    pixels = (data.val.images[:8].numpy() * data.preprocessing.std[0] + data.preprocessing.mean[0]) * 255
    mean, std = (np.float32(info["input"][k][0]) for k in ("mean", "std"))
    recipe = (np.round(pixels).astype(np.float32) / 255 - mean) / std  # as the export's README does it
    assert info["input"]["shape"] == [1, 28, 28] and np.abs(recipe - data.val.images[:8].numpy()).max() < 1e-5
    readme = next(run.glob("export/*/README.md")).read_text()
    assert f"supernet ({min(256, len(data.val))} validation images)" in readme  # was always "256", also of 30


def test_finetune_then_export_uses_the_finetuned_weights(pipeline_run, capsys):
    _, run = pipeline_run
    trial = int((run / "validated.csv").read_text().splitlines()[1].split(",")[0])
    assert search.main(["finetune", str(run), "--trial", str(trial), "--epochs", "1", "-q"]) == 0
    hint = capsys.readouterr().out.splitlines()[-1]
    # before: the hint named an export that stops on the folder of the inherited weights' export
    if (run / "export" / f"trial-{trial}").exists():
        assert hint.endswith(f"`hynas export {run} --trial {trial} --force` exports the fine-tuned weights, replacing "
                             f"{run / 'export' / f'trial-{trial}'}")
    else:
        assert hint.endswith(f"`hynas export {run} --trial {trial}` exports the fine-tuned weights")
    checkpoint = run / "finetuned" / f"trial-{trial}" / "supernet.pt"
    out = run.parent / "tuned_export"
    code, err = run_cli(["export", str(run), "--trial", str(trial), "--out", str(out), "-q"], capsys)
    assert code == 0, err
    assert "Fine-tuned for 1 epoch (" in (out / "README.md").read_text()  # not "1 epochs"
    space = load_trained(load_config(str(run / "config.yaml")), checkpoint).space
    state = load_checkpoint(checkpoint, space)
    arch = space.arch_from_str(yaml.safe_load((out / "arch.yaml").read_text())["arch"])
    model = Supernet(space).extract(arch).eval()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    tuned = Supernet(space)
    tuned.load_state_dict(state["model"])
    original = Supernet(space)
    original.load_state_dict(load_checkpoint(Path(load_config(str(run / "config.yaml")).checkpoint), space)["model"])
    changed = [n for n, p in tuned.state_dict().items() if not torch.equal(p, original.state_dict()[n])]
    assert changed  # fine-tuning changed weights, and the export carries them (it reproduced its own net)
    assert state["finetune"]["after"]["val"] >= 0


def test_exporting_again_what_run_exported_is_done_unless_the_weights_changed(pipeline_run, tmp_path, capsys):
    """`hynas export runs/demo --pick ...`, the help's own example, right after `make demo` stopped with "export
    folder exists" (before session 33) when `run` had exported that subnet already."""
    _, run = pipeline_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("finetuned"))
    folder = sorted((copy / "export").iterdir())[0]
    trial = folder.name.removeprefix("trial-")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert search.main(["export", str(copy), "--trial", trial, "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{folder} holds this export already (the same arch and weights; --force exports it again)")
    assert "model.pt          max abs logit difference" in out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written
    # fine-tuned since: the folder holds the inherited weights' export, which --force replaces
    assert search.main(["finetune", str(copy), "--trial", trial, "--epochs", "1", "-q"]) == 0
    capsys.readouterr()
    code, err = run_cli(["export", str(copy), "--trial", trial, "-q"], capsys)
    assert code == 2 and err == [f"hynas export: error: {folder}: export folder exists; continue it with --resume "
                                 "or replace it with --force"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert search.main(["export", str(copy), "--trial", trial, "--force", "-q"]) == 0
    assert capsys.readouterr().out.startswith("exported ")
    assert "Fine-tuned for 1 epoch (" in (folder / "README.md").read_text()
    assert search.main(["export", str(copy), "--trial", trial, "-q"]) == 0  # and now that export is the one
    assert "holds this export already" in capsys.readouterr().out
    # a checkpoint gone since: the line that loading it gives, not one from reading its digest
    shutil.rmtree(copy / "finetuned")
    config = yaml.safe_load((copy / "config.yaml").read_text())
    (copy / "config.yaml").write_text(yaml.safe_dump({**config, "checkpoint": str(tmp_path / "gone.pt")}))
    code, err = run_cli(["export", str(copy), "--trial", trial, "-q"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].endswith(f"gone.pt: checkpoint not found; train the supernet there first (hynas train --out "
                           f"{tmp_path}), or name a trained one with `checkpoint:` in the config"), err


def test_a_run_configured_for_a_gpu_exports_on_a_cpu(pipeline_run, tmp_path, capsys):
    _, run = pipeline_run
    gpu_run = tmp_path / "gpu_run"
    shutil.copytree(run, gpu_run, ignore=shutil.ignore_patterns("export", "finetuned"))
    config = yaml.safe_load((gpu_run / "config.yaml").read_text())
    config["device"] = "cuda:99"  # this machine has no such device: loading the supernet there would fail
    (gpu_run / "config.yaml").write_text(yaml.safe_dump(config))
    trial = int((run / "validated.csv").read_text().splitlines()[1].split(",")[0])
    code, err = run_cli(["export", str(gpu_run), "--trial", str(trial), "--out", str(tmp_path / "out"), "-q"], capsys)
    assert code == 0, err
    assert yaml.safe_load((tmp_path / "out" / "arch.yaml").read_text())["checks"]["model.pt"] <= 1e-4


def test_an_int8_export_of_a_model_that_decides_nothing_clearly_is_unchecked_not_failed(tiny_run, tmp_path):
    from search_engine.deploy import int8_capable
    from supernet.export import export_subnet

    folder, run = tiny_run
    trained = load_trained(load_config(str(folder / "tiny.yaml")), run / "supernet.pt")
    net, space = trained.supernet, trained.space
    with torch.no_grad():  # near-equal logits, as a barely trained supernet gives: int8 rounding flips near-ties
        net.head.weight.mul_(1e-3)
        net.head.bias.mul_(1e-3)
    arch = space.uniform_int8(space.largest())
    result = export_subnet(net, arch, trained.data, tmp_path / "out", 2, int8_capable)  # before: ExportError
    assert np.isnan(result.checks["model_int8.onnx"]) and result.checks["model_fp32.onnx"] <= 1e-3
    assert np.isnan(yaml.safe_load((tmp_path / "out" / "arch.yaml").read_text())["checks"]["model_int8.onnx"])
    assert "| `model_int8.onnx` | not checked: the supernet decides none of the" in (tmp_path / "out" / "README.md"
                                                                                    ).read_text()


def test_run_resume_finishes_without_redoing_work(pipeline_run, capsys):
    folder, run = pipeline_run
    measured = (run / "measured.csv").read_text()
    spent = json.loads((run / "phases.json").read_text())
    code, err = run_cli(["run", "--config", str(folder / "pipe.yaml"), "--out", str(run), "--resume", "-q"], capsys)
    assert code == 0, err
    assert (run / "measured.csv").read_text() == measured  # the budget was already spent: nothing re-measured
    # the report keeps the run's own time per phase (before session 29: the resume's, about 0 s each)
    again = json.loads((run / "phases.json").read_text())
    assert spent["search"] > 0 and spent["search"] <= again["search"] < spent["search"] + 1
    line = next(x for x in (run / "report.md").read_text().splitlines() if x.startswith("- time per phase"))
    assert f"search {again['search']:.0f} s" in line


def test_resume_without_a_config_continues_the_run_as_it_was_started(pipeline_run, tmp_path, capsys):
    _, run = pipeline_run
    measured = (run / "measured.csv").read_text()
    code, err = run_cli(["run", "--out", str(run), "--resume", "-q"], capsys)
    assert code == 0, err  # before: the demo's config was compared with the run's, and refused
    assert (run / "measured.csv").read_text() == measured
    copy = shutil.copytree(run, tmp_path / "copy", ignore=shutil.ignore_patterns("export", "finetuned"))
    code, err = run_cli(["search", "--out", str(copy), "--resume", "--budget", "11", "-q"], capsys)
    assert code == 0, err
    assert len((copy / "measured.csv").read_text().splitlines()) == 1 + 11  # one more arch than the run's 10
    code, err = run_cli(["run", "--out", str(copy), "--resume", "--budget", "12", "-q"], capsys)
    assert code == 0, err
    assert len((copy / "measured.csv").read_text().splitlines()) == 1 + 12


def test_a_run_folder_in_use_is_refused_in_one_line_and_left_alone(pipeline_run, tmp_path, capsys):
    """Before session 29 a second `hynas run --resume` (or `--force`) on a folder a first one was still working in
    went ahead: two trainings of one checkpoint, or a folder emptied under the first."""
    import fcntl

    folder, run = pipeline_run
    copy = shutil.copytree(run, tmp_path / "copy")
    with open(copy / ".hynas.lock", "a+") as held:  # as the first command holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.truncate(0)
        held.write("process 4242 on elsewhere since 2026-11-29 01:00:00")
        held.flush()
        before = _snapshot(copy)
        for argv in (["run", "--out", str(copy), "--resume"], ["search", "--out", str(copy), "--resume"],
                     ["run", "--config", str(folder / "pipe.yaml"), "--out", str(copy), "--force"]):
            code, err = run_cli(argv + ["-q"], capsys)
            assert code == 2 and len(err) == 1, err
            assert err[0].endswith(f"{copy}: in use by process 4242 on elsewhere since 2026-11-29 01:00:00; wait "
                                   "for it to end, or give another --out"), err
        assert _snapshot(copy) == before
    code, err = run_cli(["run", "--out", str(copy), "--resume", "-q"], capsys)  # released: the run goes on
    assert code == 0, err
    assert "since" in (copy / ".hynas.lock").read_text() and "4242" not in (copy / ".hynas.lock").read_text()


def test_a_study_of_another_supernet_is_not_resumed(pipeline_run, tmp_path, capsys):
    """Before session 29, `--resume` after the checkpoint was retrained in place measured the new supernet's
    subnets into the old study: a front mixing two supernets, without a word."""
    _, run = pipeline_run
    copy = shutil.copytree(run, tmp_path / "copy", ignore=shutil.ignore_patterns("export", "finetuned"))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    checkpoint = Path(shutil.copy(config["checkpoint"], tmp_path / "supernet.pt"))
    (copy / "config.yaml").write_text(yaml.safe_dump({**config, "checkpoint": str(checkpoint)}))
    code, err = run_cli(["search", "--out", str(copy), "--resume", "--budget", "11", "-q"], capsys)
    assert code == 0, err  # the same supernet, copied: its study goes on
    state = torch.load(checkpoint, weights_only=True)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = state["model"][first] + 0.01  # as if trained again
    torch.save(state, checkpoint)
    before = _snapshot(copy)
    for command in ("search", "run"):
        code, err = run_cli([command, "--out", str(copy), "--resume", "--budget", "12", "-q"], capsys)
        assert code == 2 and len(err) == 1 and "measured the subnets of another supernet" in err[0], err
    for command in ("export", "finetune"):  # their records would label the new weights with the old numbers
        code, err = run_cli([command, str(copy), "--trial", "0", "-q"], capsys)
        assert code == 2 and len(err) == 1 and "its measurements are of another supernet" in err[0], err
    assert _snapshot(copy) == before
    # what the line offers: --force starts over on the new supernet (before session 32 it was refused the same)
    code, err = run_cli(["search", "--config", str(copy / "config.yaml"), "--out", str(copy), "--force", "--budget",
                         "4", "-q"], capsys)
    assert code == 0, err
    assert len((copy / "measured.csv").read_text().splitlines()) == 5


def test_a_search_in_a_run_folder_says_the_report_describes_the_front_before_it(pipeline_run, tmp_path, capsys):
    """Before, report.md, the plots and export/ went on showing the old front without a word."""
    _, run = pipeline_run
    copy = shutil.copytree(run, tmp_path / "my copy")  # a folder name the hint must quote to be pasted
    report = (copy / "report.md").read_bytes()
    code = search.main(["search", "--out", str(copy), "--resume", "--budget", "12", "-q"])
    out = capsys.readouterr().out
    assert code == 0 and len((copy / "measured.csv").read_text().splitlines()) == 13
    assert out.splitlines()[-1] == (f"report.md, the plots and export/ describe the front before this search; "
                                    f"`hynas run --out '{copy}' --resume` validates, exports and reports the new one")
    assert (copy / "report.md").read_bytes() == report


def test_plot_compares_runs(pipeline_run, tmp_path, capsys):
    _, run = pipeline_run
    code, err = run_cli(["plot", str(run), str(run), "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert (tmp_path / "hypervolume.png").stat().st_size > 10_000

    # without --out, beside the first run's own plots: its report shows those (before, they were replaced)
    copy = shutil.copytree(run, tmp_path / "copy")
    own = _snapshot(copy)
    code, err = run_cli(["plot", str(copy), str(run)], capsys)
    assert code == 0, err
    assert (copy / "compare" / "hypervolume.png").is_file()
    assert {k: v for k, v in _snapshot(copy).items() if not k.startswith("compare")} == own


BAD = [
    # (argv builder given (folder, run), words the one line must contain)
    (lambda f, r: ["run", "--config", str(f / "nope.yaml")], "not found"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r)], "--resume"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--force"], "contradict"),
    (lambda f, r: ["run", "--config", str(f / "malformed.yaml"), "--out", str(r), "--resume"], "malformed.yaml"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "search.objectives=[accuracy:max,speed:min]"], "speed"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "search.constraints=['size_mb <= 0.00001']"], "no arch"),
    # limits no measurement can meet: before, the whole budget was measured into an empty front
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "search.constraints=['latency_ms <= 0']"], "a measured latency_ms is above 0 ms"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "search.constraints=['accuracy >= 101']"], "a measured accuracy is between 0 and 100 %"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "search.strategy=annealing"], "strategy"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set", "train.lr=-1"], "lr"),
    # the search flags of `run` are config overrides, checked like --set (before session 29, `run` had none)
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--strategy", "random"],
     "search.strategy"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--runner", "rayy"],
     "did you mean 'ray'"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--budget", "0"], "positive"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "train.teachers=smallest"], "teachers"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set", "space=no_space"],
     "no_space"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   f"hardware=[{f / 'missing_hw.yaml'}]"], "missing_hw.yaml"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   f"checkpoint={f / 'corrupt.pt'}"], "corrupt.pt"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   f"space={f / 'badblock.yaml'}"], "transformer"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "data.dataset=folder", "--set", f"data.path={f / 'no_images'}"], "no_images"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--seed", "x"], "'x' is not an integer"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set", "device=cuda:99"],
     "device: 'cuda:99'"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   "data.dataset=folder", "--set", f"data.path={f / 'eleven_classes'}"], "11 classes"),
    (lambda f, r: ["export", str(f / "not_a_run")], "not a run folder"),
    (lambda f, r: ["export", str(r)], "exactly one"),
    (lambda f, r: ["export", str(r), "--trial", "1", "--pick", "latency_ms<=1"], "exactly one"),
    (lambda f, r: ["export", str(r), "--trial", "999"], "no such measured trial"),
    (lambda f, r: ["export", str(r), "--pick", "latency_ms<=0.000001"], "satisfies it; the front's best latency_ms is"),
    (lambda f, r: ["export", str(r), "--pick", "accuracy>=0,size_mb<=0.0001"], "the front's best size_mb is"),
    (lambda f, r: ["export", str(r), "--pick", "latency_ms<<1"], "cannot parse"),
    (lambda f, r: ["export", str(r), "--pick", "latency_ms<=1 and size_mb<=1"], "write limits separated by commas"),
    (lambda f, r: ["export", str(r), "--pick", "speed<=1"], "speed"),
    (lambda f, r: ["export", str(r), "--arch", "c99:conv_k3_e2_w8a8"], "c99"),
    (lambda f, r: ["export", str(r), "--arch", "garbage"], "--arch: cannot parse stage 'garbage'"),
    (lambda f, r: ["export", str(r), "--trial", "0", "--out", str(r)],
     "export folder exists; continue it with --resume or replace it with --force"),
    (lambda f, r: ["export", str(r), "--trial", "0", "--out", str(r), "--force"], "--force would delete"),
    (lambda f, r: ["finetune", str(r)], "exactly one"),
    (lambda f, r: ["finetune", str(r), "--trial", "0", "--epochs", "0"], "must be positive"),
    (lambda f, r: ["finetune", str(f / "not_a_run"), "--trial", "0"], "not a run folder"),
    (lambda f, r: ["finetune", str(r), "--trial", "0", "--device", "cuda:99"], "--device: 'cuda:99'"),
    (lambda f, r: ["plot", str(f / "not_a_run")], "not a run folder"),
    (lambda f, r: ["plot", str(r), str(f / "other_objectives")], "objectives"),
    (lambda f, r: ["profile", "--out", str(r / "lut_fast_ort.json")], "--resume"),
    (lambda f, r: ["profile", "--out", str(f / "absent.json"), "--resume"], "nothing to resume"),
    (lambda f, r: ["profile", "--space", "nb201", "--out", str(f / "t.json")], "table"),
    (lambda f, r: ["profile", "--space", "nosuch", "--out", str(f / "t.json")], "nosuch"),
    (lambda f, r: ["profile", "--hardware", str(f / "malformed.yaml"), "--out", str(f / "t.json")], "malformed"),
    (lambda f, r: ["space", "info", "nosuch_space"], "nosuch_space"),
    (lambda f, r: ["space", "info", "--samples", "-1"], "--samples: -1 must be at least 0"),  # was taken as 0
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--device", "cuda:99"],
     "device: 'cuda:99'"),
    (lambda f, r: ["search", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--device", "cuda:99"],
     "device: 'cuda:99'"),
    (lambda f, r: ["export", str(r), "--trial", "0", "--out", str(f / "pipe.yaml" / "x")], "Not a directory"),
    (lambda f, r: ["plot", str(r), "--out", str(f / "pipe.yaml" / "x")], "Not a directory"),
    (lambda f, r: ["plot", str(r), "--out", str(f / "pipe.yaml")], "a file is there; give a folder for the plots"),
    (lambda f, r: ["run", "--config", str(f / "pipe.yaml"), "--out", str(r), "--resume", "--set",
                   f"checkpoint={f / 'pipe.yaml'}"], "not a complete torch archive"),
]


def test_resuming_a_supernet_with_other_settings_is_one_line_and_touches_nothing(tiny_run, capsys):
    folder, run = tiny_run
    before = _snapshot(run)
    for command in ("train", "run"):
        code, err = run_cli([command, "--config", str(folder / "tiny.yaml"), "--out", str(run), "--resume",
                             "--set", "train.lr=0.07", "--seed", "3"], capsys)
        assert code == 2 and len(err) == 1, err
        assert "train.lr=0.05 in the checkpoint, 0.07 now; seed=0 in the checkpoint, 3 now" in err[0]
    # training longer is the usual wish: the line says why it is another training (session 29)
    code, err = run_cli(["train", "--config", str(folder / "tiny.yaml"), "--out", str(run), "--resume", "--set",
                         "train.epochs=5"], capsys)
    assert code == 2 and len(err) == 1 and "cosine schedule spans train.epochs" in err[0], err
    assert _snapshot(run) == before


@pytest.fixture(scope="module")
def bad_inputs(pipeline_run):
    folder, run = pipeline_run
    (folder / "malformed.yaml").write_text("name: [unclosed\n")
    (folder / "corrupt.pt").write_bytes(b"PK\x03\x04 half a zip")
    space = yaml.safe_load((Path(search.__file__).parent / "configs/spaces/mnist_hybrid.yaml").read_text())
    space["stages"][1]["blocks"] = ["conv", "transformer"]
    (folder / "badblock.yaml").write_text(yaml.safe_dump(space))
    (folder / "no_images").mkdir(exist_ok=True)
    for c in range(11):  # more classes than the space's 10 outputs
        (folder / "eleven_classes" / str(c)).mkdir(parents=True, exist_ok=True)
        Image.new("L", (28, 28), 20 * c).save(folder / "eleven_classes" / str(c) / "0.png")
    other = folder / "other_objectives"
    other.mkdir(exist_ok=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["search"]["objectives"] = ["accuracy:max", "size_mb:min"]
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    (other / "measured.csv").write_text((run / "measured.csv").read_text())
    return folder, run


@pytest.mark.parametrize("argv,words", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_is_one_line_exit_2_and_leaves_the_run_alone(bad_inputs, capsys, argv, words):
    folder, run = bad_inputs
    before = _snapshot(run)
    code, err = run_cli(argv(folder, run), capsys)
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert "Traceback" not in err[0]
    assert _snapshot(run) == before


@pytest.mark.parametrize("named", [True, False])
def test_force_does_not_delete_the_supernet_a_search_reads(tiny_run, tmp_path, capsys, named):
    """Before, `search --out runs/demo --force` (with checkpoint=runs/demo/supernet.pt, or without, which reads
    the folder's own) deleted the supernet, then stopped for want of it."""
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(tiny_run[1] / "supernet.pt", own / "supernet.pt")
    config = write_trained_config(tiny_run, tmp_path, "own", budget=4, batch_size=2, initial=2)
    before = _snapshot(own)
    checkpoint = str(own / "supernet.pt") if named else "null"
    code, err = run_cli(["search", "--config", str(config), "--set", f"checkpoint={checkpoint}", "--out", str(own),
                         "--force"], capsys)
    assert code == 2 and len(err) == 1 and "--force would delete" in err[0] and "supernet.pt" in err[0]
    assert _snapshot(own) == before


def test_there_are_at_least_thirty_bad_inputs():
    assert len(BAD) >= 30


def test_an_unmeasured_arch_gets_the_same_folder_in_every_process(pipeline_run):
    _, run = pipeline_run
    code = ("from search_engine.deploy import open_finished_run, pick_subnet; from search_space import load_space; "
            f"r = open_finished_run({str(run)!r}); print(pick_subnet(r, load_space('mnist_hybrid'), "
            "arch='c16:conv_k3_e2_w4a8|c32:conv_k3_e4_w8a8').label)")
    cwd = Path(search.__file__).parent
    labels = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert len(labels) == 1 and labels.pop().startswith("arch-")


def test_a_search_or_run_stopped_by_its_input_leaves_no_run_folder(pipeline_run, tmp_path, capsys):
    folder, run = pipeline_run
    config = str(folder / "pipe.yaml")
    cases = [("search", ["--set", "data.dataset=folder", "--set", f"data.path={tmp_path / 'absent'}"],
              "data folder not found"),
             ("search", ["--set", "checkpoint=null"], "checkpoint not found"),  # a new folder has no trained supernet
             ("search", ["--set", "data.limit=900"], "holds other images than the supernet was trained on (800 / 100 "),
             ("run", ["--set", "data.limit=900"], "holds other images than the supernet was trained on (800 / 100 "),
             ("run", ["--set", "space=nb201"], "`run` trains a supernet; space 'nb201' is a table")]
    # a lookup table timed with other settings than its profile's (before session 29: found after the folder was made)
    run_table = next(run.glob("lut_*.json"))
    (tmp_path / "two_threads.yaml").write_text(yaml.safe_dump({**FAST_ORT, "threads": 2, "lut": str(run_table)}))
    cases.append(("search", ["--set", f"hardware=[{tmp_path / 'two_threads.yaml'}]"],
                  "latency table was profiled with threads=1 but hardware profile 'fast_ort' says 2"))
    for command, extra, words in cases:
        code, err = run_cli([command, "--config", config, "--out", str(tmp_path / "new"), *extra], capsys)
        assert code == 2 and len(err) == 1 and words in err[0], err
        assert not (tmp_path / "new").exists()


def test_an_exports_readme_says_where_its_low_bit_weights_run(mnist_space):
    from search_engine.deploy import int8_capable
    from supernet.export import _low_bits_note

    def note(arch: str) -> str:
        return _low_bits_note(mnist_space.arch_from_str(arch), int8_capable)

    # before: every subnet with 4-bit weights read "run as int8", also where they run in a float layer
    assert "int8" not in note("c16:conv_k5_e2_w32a32|c32:conv_k5_e2_w8a8,conv_k5_e2_w4a32")
    all_int8 = note("c16:conv_k5_e2_w4a8|c32:conv_k5_e2_w8a8")
    assert "int8" in all_int8 and "floats" not in all_int8
    assert note("c16:conv_k5_e2_w8a8|c32:conv_k5_e2_w32a32") == ""  # nothing below 8 bits: nothing to say


def test_low_bit_activations_are_named_where_they_run(mnist_space):
    """Before session 29 the export README and the report spoke of 4- and 6-bit weights only, and of "layers with
    8-bit activations", also for a space of 6-bit activations."""
    from dataclasses import replace

    from search_engine.deploy import int8_capable
    from search_engine.pipeline import _low_bits_note as report_note
    from supernet.export import _low_bits_note

    space = replace(mnist_space, quantization=replace(mnist_space.quantization, weight_bits=(6, 8, 32),
                                                      act_bits=(6, 8, 32)))
    int8_layers = _low_bits_note(space.arch_from_str("c16:conv_k5_e2_w6a6|c32:conv_k5_e2_w8a6"), int8_capable)
    assert int8_layers.startswith("6-bit weights and 6-bit activations are simulated")
    assert "such activations run at 8 bits in `model_int8.onnx`" in int8_layers and "stay float" not in int8_layers
    float_layer = _low_bits_note(space.arch_from_str("c16:conv_k5_e2_w32a6|c32:conv_k5_e2_w8a8"), int8_capable)
    assert float_layer.startswith("6-bit activations are simulated") and "stay float" in float_layer
    assert "Weights are counted" not in float_layer  # no low-bit weight in it
    assert report_note(space.quantization, {"onnxruntime"}).startswith("6-bit weights and 6-bit activations are "
                                                                        "simulated")
    assert report_note(mnist_space.quantization, {"onnxruntime"}).startswith("4-bit weights are simulated")


def test_the_reports_bit_width_note_speaks_of_the_backend_that_timed_latency(mnist_space):
    """Before, a run timed in torch eager (cpu_torch) read that its low-bit layers run as int8 in ONNX Runtime."""
    from search_engine.pipeline import _low_bits_note

    torch_only = _low_bits_note(mnist_space.quantization, {"torch"})
    assert "ONNX Runtime" not in torch_only and "torch eager runs every layer in float" in torch_only
    assert "real int8 in ONNX Runtime" in _low_bits_note(mnist_space.quantization, {"onnxruntime"})
    assert _low_bits_note(mnist_space.quantization, set()) == ("4-bit weights are simulated (fake quantization) for "
                                                               "accuracy; weights are counted at their width for size.")
