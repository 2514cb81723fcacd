"""The Ray runner on a real local Ray instance (started once for the session), worker and driver faults."""
import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from search_engine.job import run_job
from search_space.config import load_config
from tests.conftest import NB201_CSV, REPO, free_port, run_cli, write_trained_config

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _archs(folder: Path) -> list[str]:
    return [r["arch"] for r in csv.DictReader((folder / "measured.csv").open())]


def test_ray_and_local_measure_the_same_archs(ray_session, tmp_path, capsys):
    runs = {}
    for runner in ("local", "ray"):
        argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
                "test_acc:max,latency_raspi4_ms:min", "--strategy", "nsga2", "--budget", "40", "--batch-size", "8",
                "--seed", "4", "--runner", runner, "--workers", "2" if runner == "ray" else "1", "--out",
                str(tmp_path / runner), "-q"]
        code, err = run_cli(argv, capsys)
        assert code == 0, err
        runs[runner] = _archs(tmp_path / runner)
    assert len(runs["ray"]) == 40 and set(runs["ray"]) == set(runs["local"])
    hosts = {r["worker_host"] for r in csv.DictReader((tmp_path / "ray" / "measured.csv").open())}
    assert hosts and all(hosts)  # every result says where it was measured


@pytest.fixture(scope="module")
def hybrid_config(tiny_run, tmp_path_factory):
    """The tiny trained supernet searched for accuracy and ONNX Runtime latency."""
    return write_trained_config(tiny_run, tmp_path_factory.mktemp("ray_hybrid"), "rayhybrid", budget=14,
                                batch_size=4, initial=4, strategy="random")


def test_a_killed_worker_is_replaced_and_nothing_is_lost(ray_session, hybrid_config, tmp_path):
    config = load_config(str(hybrid_config), ["search.runner=ray", "search.workers=2"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome = {}
    search = threading.Thread(target=lambda: outcome.update(result=run_job(config, run_dir, progress=False)))
    search.start()
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and search.is_alive():
        rows = list(csv.DictReader((run_dir / "measured.csv").open())) if (run_dir / "measured.csv").exists() else []
        if len(rows) >= 4:  # mid-search: the first batch is stored, the workers are busy with the next
            killed = int(rows[-1]["worker_pid"])  # each result names the worker process that measured it
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    search.join(timeout=600)
    assert killed is not None, "the search ended before a worker could be killed"
    _, result = outcome["result"]
    archs = _archs(run_dir)
    assert len(archs) == 14 and len(set(archs)) == 14  # full budget, no arch lost or duplicated
    assert result.failures == 0  # the arch the dead worker held was run again


def test_latency_pinned_to_a_node_runs_there_and_a_node_ray_lacks_is_one_line(ray_session, hybrid_config, tmp_path,
                                                                                 capsys):
    """Before session 32 a profile naming a node Ray lacks left every evaluation pending for good, in silence."""
    import yaml

    from tests.conftest import FAST_ORT

    node = ray.nodes()[0]["NodeManagerAddress"]
    board = tmp_path / "board.yaml"
    argv = ["search", "--config", str(hybrid_config), "--runner", "ray", "--workers", "1", "--budget", "4",
            "--batch-size", "2", "--set", f"hardware=[{board}]", "-q"]
    board.write_text(yaml.safe_dump({**FAST_ORT, "node": "203.0.113.7"}))  # an address no machine has
    code, err = run_cli(argv + ["--out", str(tmp_path / "elsewhere")], capsys)
    assert code == 2 and err == [f"hynas search: error: {board}: node: 203.0.113.7 is not this host ({node}), where "
                                 "a local Ray instance runs; name it, join that node's cluster with --address, or "
                                 "drop `node:`"]
    assert not (tmp_path / "elsewhere").exists()
    board.write_text(yaml.safe_dump({**FAST_ORT, "node": node}))
    code, err = run_cli(argv + ["--out", str(tmp_path / "here")], capsys)
    assert code == 0, err
    assert len(_archs(tmp_path / "here")) == 4


def test_a_killed_driver_resumes_and_loses_nothing(hybrid_config, tmp_path, capsys):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, str(REPO / "search.py"), "search", "--config", str(hybrid_config),
                               "--out", str(run_dir), "-q"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if (run_dir / "measured.csv").exists() and len(_archs(run_dir)) >= 4:
            break
        time.sleep(0.1)
    assert driver.poll() is None, "the driver finished before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {r["arch"]: r["accuracy"] for r in csv.DictReader((run_dir / "measured.csv").open())}
    code, err = run_cli(["search", "--config", str(hybrid_config), "--out", str(run_dir), "--resume", "-q"], capsys)
    assert code == 0, err
    after = {r["arch"]: r["accuracy"] for r in csv.DictReader((run_dir / "measured.csv").open())}
    assert len(_archs(run_dir)) == 14 and len(after) == 14
    assert all(after[arch] == acc for arch, acc in before.items())  # what was stored before the kill is kept


@pytest.mark.parametrize("stop, runner, code, said", [
    (signal.SIGINT, "local", 130, "interrupted"),
    # a scheduler's stop (Slurm, Kubernetes): before session 32 SIGTERM ended the driver at once, its batch's
    # claims left RUNNING (exit 143), and with Ray in the driver through Ray's own handler (exit 15)
    (signal.SIGTERM, "local", 143, "terminated"),
    (signal.SIGTERM, "ray", 143, "terminated"),
])
def test_a_stopped_driver_withdraws_its_claims_and_writes_what_it_measured(hybrid_config, tmp_path, stop, runner,
                                                                           code, said):
    """Ctrl-C mid-batch: before session 29 the batch's claims stayed RUNNING in the study (counted against the
    budget of any other driver sharing it until this one resumed) and measured.csv lagged a batch behind."""
    import optuna

    run_dir = tmp_path / "run"
    driver = subprocess.Popen([sys.executable, str(REPO / "search.py"), "search", "--config", str(hybrid_config),
                               "--out", str(run_dir), "--runner", runner, "--workers", "1", "-q"], cwd=REPO,
                              # as a user's shell has it: this session's ray.init set RAY_AUTH_MODE in os.environ
                              env={**{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"},
                                   "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if (run_dir / "measured.csv").exists() and len(_archs(run_dir)) >= 4:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # into the next batch
    assert driver.poll() is None, "the driver finished before it could be interrupted"
    driver.send_signal(stop)
    err = driver.communicate(timeout=120)[1]
    assert driver.returncode == code and f"{said}; continue with --resume" in err, err[-500:]
    assert "Token authentication" not in err  # Ray's notice on every new local instance, under -q (before session 34)
    study = optuna.load_study(study_name="rayhybrid", storage=f"sqlite:///{run_dir / 'study.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    complete = [t.user_attrs["arch"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert _archs(run_dir) == complete and 4 <= len(complete) < 14


def test_two_process_training_writes_a_checkpoint_that_loads_and_evaluates(ray_session, tiny_run, tmp_path, capsys):
    folder, _ = tiny_run
    out = tmp_path / "ddp"
    code, err = run_cli(["train", "--config", str(folder / "tiny.yaml"), "--out", str(out), "--workers", "2",
                         "--set", "train.epochs=1", "-q"], capsys)
    assert code == 0, err
    config = load_config(str(folder / "tiny.yaml"))
    from supernet.calibration import subnet_accuracy
    from supernet.checkpoint import load_checkpoint
    from supernet.trained import load_trained

    trained = load_trained(config, out / "supernet.pt")
    accuracy = subnet_accuracy(trained.supernet, trained.space.largest(), trained.data.train, trained.data.val, 2)
    assert accuracy > 20  # ten classes: better than chance after one epoch
    assert load_checkpoint(out / "supernet.pt", trained.space)["epoch"] == 1
    # the workers' logs stay on their nodes: the driver tells each epoch from the checkpoint (before session 29 the
    # run's log said nothing between "training on Ray Train" and the end)
    assert re.search(r"hynas.train: epoch 1/1: loss [\d.]+, largest [\d.]+ %, smallest [\d.]+ % \(validation\)",
                     (out / "hynas.log").read_text())


@pytest.mark.parametrize("address,words", [("127.0.0.1:{port}", "no Ray cluster answers there"),
                                           ("no-port-here", "expected host:port")])
def test_a_wrong_cluster_address_is_one_line_in_seconds_and_makes_no_run_folder(tmp_path, capsys, address, words):
    address = address.format(port=free_port())
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--budget", "10", "--runner", "ray", "--address", address,
            "--out", str(tmp_path / "run")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and f"--address {address}: {words}" in err[0], err
    assert not (tmp_path / "run").exists()


def test_an_address_where_another_server_answers_is_one_line_and_makes_no_run_folder(tmp_path, capsys):
    """Before, an HTTP server there (the dashboard's port 8265, say) left Ray retrying for minutes, printing a
    warning every few seconds."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_) -> None:  # its log would land in the command's captured stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--budget", "10", "--runner", "ray", "--address", address,
            "--out", str(tmp_path / "run")]
    try:
        code, err = run_cli(argv, capsys)
    finally:
        server.shutdown()
    assert code == 2 and err == [f"hynas search: error: --address {address}: something answers there, but not a Ray "
                                 "cluster (its GCS, `ray start --head --port`, 6379 by default; 8265 is the "
                                 "dashboard's)"]
    assert not (tmp_path / "run").exists()


def test_address_auto_without_a_cluster_makes_no_run_folder(tmp_path, capsys, monkeypatch):
    """Before, `--address auto` was left to ray.init, which failed only after the run folder was made."""
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")  # where "auto" leads: no cluster there
    argv = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--budget", "10", "--runner", "ray", "--address", "auto",
            "--out", str(tmp_path / "run")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and "--address auto (" in err[0] and "no Ray cluster answers there" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_refused_join_says_how_to_give_the_heads_token(monkeypatch):
    """Ray 2.60 sends its token to `auto` alone; before session 32 a token-protected head given as IP:port was only
    'Failed to connect to Ray cluster' (checked by hand against `ray start --head`: the hint, then a search once
    RAY_AUTH_MODE=token was set)."""
    from search_engine.runners.ray_runner import _token_hint

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in _token_hint("10.1.2.3:6379")
    assert _token_hint("auto") == "" and _token_hint(None) == ""  # Ray finds the token there itself
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert _token_hint("10.1.2.3:6379") == ""  # given: the refusal has another cause
