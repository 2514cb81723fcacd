"""The benchmark scripts meet a wrong --run as the CLI does (one line naming the folder, exit code 2), and a reader
that stops early as well."""
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from search_space.errors import EXIT_BROKEN_PIPE

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TAKES_A_RUN = ["fault_drill", "int8_speedup", "joint_ceiling", "joint_vs_int8", "ray_scaling", "supernet_fidelity",
               "supernet_quality"]


def test_every_script_that_takes_a_run_is_listed():
    takes = sorted(p.stem for p in BENCHMARKS.glob("*.py") if '"--run"' in p.read_text())
    assert takes == TAKES_A_RUN


@pytest.mark.parametrize("script", TAKES_A_RUN)
def test_a_folder_that_is_not_a_run_is_one_line_exit_2(script, tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--run", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(BENCHMARKS / f"{script}.py"), run_name="__main__")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and err[0].startswith(f"{script}.py: error: {tmp_path}")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_reader_that_stops_early_gets_no_traceback():
    """`python benchmarks/joint_vs_int8.py ... | head -1`: every script ends through ``benchmarks.entry.run``,
    which ends quietly, as `hynas` does, when the pipe closes before it writes."""
    printing = "from benchmarks.entry import run; run(lambda: print('row\\n' * 100_000))"
    proc = subprocess.Popen([sys.executable, "-c", printing], cwd=BENCHMARKS.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert err.decode() == "" and proc.returncode == EXIT_BROKEN_PIPE
