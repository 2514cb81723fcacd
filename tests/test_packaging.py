"""What `pip install hynas` (a wheel, not the editable install `make` uses) brings."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from search_space import ConfigError, config, load_space

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_and_preset_of_the_repository(tmp_path):
    # Built from the tracked files alone, as from a fresh clone: an editable install's hynas.egg-info
    # lists every file and hides packages that setup.cfg leaves out.
    source = tmp_path / "source"
    for name in subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True,
                               text=True).stdout.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("hynas-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    packages = ("search_space", "supernet", "predictors", "results", "search_engine")
    wanted = {str(p.relative_to(REPO)) for name in packages for p in (REPO / name).rglob("*.py")}
    wanted |= {str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")} | {"search.py"}
    assert wanted - shipped == set()  # before: search_engine/evaluators, runners and strategies were missing


def test_nb201_without_a_table_beside_an_installation_says_to_pass_one(monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_NB201_TABLE", config.REPO_ROOT / "benchmarks" / "absent" / "nb201.csv")
    with pytest.raises(ConfigError, match=r"no --table given.*benchmarks/absent/nb201.csv.*pass --table PATH"):
        load_space("nb201")
