"""Fault drill: SIGKILL the search driver at random times, resume each time, and count what was lost.

Each round starts (or resumes) a search of a trained run's supernet in a subprocess and kills it
after a random delay; before every kill the measured trials in the study are noted. At the end a
last resume finishes the budget. Lost = an arch that was measured before some kill and is missing
(or changed) afterwards; in flight = claimed but unfinished when killed (measured again on resume).

    python benchmarks/fault_drill.py --run runs/demo --kills 10 --budget 40 --seed 0
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.entry import run  # noqa: E402
from search_engine.deploy import run_config  # noqa: E402


def trials(study_db: Path) -> tuple[dict[str, tuple], int]:
    """Measured arch -> objective values, and the number of claims in flight."""
    if not study_db.exists():
        return {}, 0
    storage = f"sqlite:///{study_db}"
    names = optuna.study.get_all_study_names(storage)
    if not names:
        return {}, 0
    study = optuna.load_study(study_name=names[0], storage=storage)
    done = {t.user_attrs["arch"]: tuple(t.values) for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE}
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False))
    return done, running


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    run_config(a.run)  # a folder that is not a run stops here, not in the first driver's hidden stderr
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(a.seed)
    out = Path(tempfile.mkdtemp(prefix="hynas-drill-")) / "run"
    base = [sys.executable, str(REPO / "search.py"), "search", "--config", str(a.run / "config.yaml"), "--out",
            str(out), "--set", f"checkpoint={(a.run / 'supernet.pt').resolve()}", "--set",
            f"search.budget={a.budget}", "--set", "search.batch_size=4", "--set", "search.strategy=random", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    seen: dict[str, tuple] = {}
    lost, in_flight, kills = 0, 0, 0
    for i in range(a.kills):
        argv = base + (["--resume"] if out.exists() else [])
        driver = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(4, 14)))  # start-up (imports, loading the supernet) takes about 4 s
        before, _ = trials(out / "study.db")
        if driver.poll() is not None:
            break  # the budget was reached before this kill
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        kills += 1
        after, running = trials(out / "study.db")
        in_flight += running
        seen.update(before)
        lost += sum(1 for arch, values in seen.items() if after.get(arch) != values)
        print(f"kill {i + 1}: {len(after)} measured, {running} in flight")
    final = subprocess.run(base + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True)
    done, running = trials(out / "study.db")
    lost += sum(1 for arch, values in seen.items() if done.get(arch) != values)
    print(f"{kills} driver kills; archs lost: {lost}; in flight at the kills (measured again): {in_flight}; "
          f"final: {len(done)} distinct archs measured of a budget of {a.budget}, {running} left running, "
          f"exit code {final.returncode}")
    shutil.rmtree(out.parent)


if __name__ == "__main__":
    run(main)
