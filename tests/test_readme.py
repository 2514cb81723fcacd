"""The README's library examples run as written (only the paths and the budget swapped for the test's)."""
from pathlib import Path

import numpy as np

from results.pareto import pareto_mask, to_min_form

README = Path(__file__).resolve().parent.parent / "README.md"


def library_examples() -> list[str]:
    section = README.read_text().split("## Use it as a library\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def run_example(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_the_ask_and_tell_example_measures_its_budget_and_reports_the_front(capsys):
    ns = run_example(library_examples()[0])
    measured = ns["strategy"].measured
    assert len(measured) == 40 and len({a for a, _ in measured}) == 40
    F = to_min_form([v for _, v in measured], ns["objectives"])
    assert set(ns["front"]) == {a for (a, _), keep in zip(measured, pareto_mask(F)) if keep}
    assert capsys.readouterr().out == f"{len(ns['front'])} of 40 measured archs are on the front\n"


def test_the_run_job_example_searches_a_finished_runs_supernet_again(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    code = library_examples()[1]
    for old, new in (('Path("runs/demo")', repr(run)), ('Path("runs/demo-nsga2")', repr(tmp_path / "again")),
                     ("search.budget=30", "search.budget=6")):
        assert old in code
        code = code.replace(old, new)
    ns = run_example(code.replace("from pathlib import Path", "from pathlib import Path, PosixPath"))
    assert ns["config"].search.strategy == "nsga2" and len(ns["outcome"].records) == 6
    assert (tmp_path / "again" / "measured.csv").read_text().count("\n") == 7  # header + 6 archs
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(ns["outcome"].front) >= 1
    assert np.isfinite(ns["outcome"].hypervolume)
    # the folder records its settings, so the CLI can take over from the library call
    import search

    trial = ns["outcome"].front[0].number
    assert search.main(["export", str(tmp_path / "again"), "--trial", str(trial), "-q"]) == 0
    assert (tmp_path / "again" / "export" / f"trial-{trial}" / "model.pt").is_file()
