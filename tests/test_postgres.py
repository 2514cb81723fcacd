"""The results store on a real PostgreSQL server: the cluster path of `--storage`.

A throwaway server is started for the session from the machine's PostgreSQL binaries (`initdb`,
`pg_ctl`; as an unprivileged user when the tests run as root, which PostgreSQL refuses); the tests
are skipped, saying why, where there are none or no driver is installed (`pip install
'hynas[postgres]'`; `make test` installs it).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import search
from results.store import with_installed_driver
from tests.conftest import NB201_CSV, free_port

psycopg2 = pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install 'hynas[postgres]'")


def _binary(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")), None)


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="hynas-pg-"))
    if as_user:
        shutil.chown(folder, "nobody")
    port = free_port()
    subprocess.run(as_user + [initdb, "-D", str(folder / "data"), "-U", "hynas", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run(as_user + [pg_ctl, "-D", str(folder / "data"), "-w", "-l", str(folder / "log"), "-o",
                              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql://hynas@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(folder / "data"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_bare_postgresql_url_uses_the_driver_the_postgres_extra_installs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "psycopg" else real(name))
    assert with_installed_driver("postgresql://u:p@db/hynas") == "postgresql+psycopg2://u:p@db/hynas"
    assert with_installed_driver("postgresql+psycopg://u:p@db/hynas") == "postgresql+psycopg://u:p@db/hynas"
    assert with_installed_driver("sqlite:///runs/x/study.db") == "sqlite:///runs/x/study.db"


def _search(out: Path, url: str, *more: str) -> list[str]:
    """`hynas search` arguments: random search of NB201 into ``out``, on the study `shared` of ``url``."""
    return ["search", "--space", "nb201", "--table", str(NB201_CSV), "--objectives",
            "test_acc:max,latency_raspi4_ms:min", "--strategy", "random", "--set", "name=shared", "--set",
            "search.batch_size=5", "--out", str(out), "--storage", url, "-q", *more]


def _measured_csv_archs(folder: Path) -> list[str]:
    return [row.split(",")[1] for row in (folder / "measured.csv").read_text().splitlines()[1:]]


def test_two_drivers_started_together_on_a_new_database_share_one_budget(postgres_url, tmp_path):
    """Both create Optuna's tables at once (optuna#1092); both must finish, with the budget measured once."""
    budget = 30
    drivers = [subprocess.Popen([sys.executable, search.__file__] + _search(
        tmp_path / f"driver{seed}", postgres_url, "--budget", str(budget), "--seed", str(seed)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    outcomes = [(d.wait(timeout=300), d.stdout.read(), d.stderr.read()) for d in drivers]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    import optuna
    from results.store import open_storage

    study = optuna.load_study(study_name="shared", storage=open_storage(postgres_url))
    measured = [t.user_attrs["arch"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert len(measured) == budget and len(set(measured)) == budget
    for seed, (_, out, _) in enumerate(outcomes):
        # each driver's measured.csv holds the shared study as it was when that driver ended, and says what it misses
        mine = _measured_csv_archs(tmp_path / f"driver{seed}")
        assert set(mine) <= set(measured) and len(mine) == len(set(mine))
        missing = budget - len(mine)
        assert (f"{missing} more are still being measured by other drivers" in out) == (missing > 0), out
    code = search.main(_search(tmp_path / "driver0", postgres_url, "--budget", str(budget), "--seed", "0", "--resume"))
    assert code == 0 and sorted(_measured_csv_archs(tmp_path / "driver0")) == sorted(measured)


def test_a_server_that_does_not_answer_is_one_line_with_the_reason(tmp_path, capsys):
    from tests.conftest import run_cli

    url = f"postgresql://hynas:s3cret@127.0.0.1:{free_port()}/hynas"  # nothing listens there
    code, err = run_cli(_search(tmp_path / "run", url)[:-1], capsys)  # without -q
    assert code == 2 and len(err) == 1 and "Connection refused" in err[0], err  # before: cut at "... failed:"
    assert "hynas:***@127.0.0.1" in err[0] and "s3cret" not in err[0]
    assert not (tmp_path / "run").exists()


def test_the_storage_password_stays_out_of_the_output_and_the_runs_log(postgres_url, tmp_path, capsys):
    """The server trusts every login, so any password opens it: the run must work and never show it."""
    url = postgres_url.replace("hynas@", "hynas:s3cret@")
    assert search.main(_search(tmp_path / "run", url, "--budget", "5", "--set", "name=secret")) == 0
    out = capsys.readouterr().out
    assert "store postgresql://hynas:***@127.0.0.1" in out and "s3cret" not in out
    log = (tmp_path / "run" / "hynas.log").read_text()
    assert "--storage postgresql://hynas:***@" in log and "s3cret" not in log
