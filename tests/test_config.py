import subprocess
import sys

import pytest
import yaml

import search
from search_space import ConfigError, HybridSpace, HynasError, Registry, load_config, load_space
from search_space.schema import build
from tests.conftest import REPO

GOOD_SPACE = {
    "name": "t", "input": {"channels": 1, "size": 28, "classes": 10}, "stem": {"channels": 8},
    "stages": [{"depth": [1, 2], "width": [8, 16], "blocks": ["conv", "attn"], "kernel": [3, 5]}],
    "quantization": {"weight_bits": [4, 8], "act_bits": [8]},
}


def _space_with(path: str, value) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD_SPACE))
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()

# (key path, bad value, text the message must name)
BAD_SPACES = [
    ("stages.0.blocks", ["conv", "lstm"], "blocks"),
    ("stages.0.blocks", [], "blocks"),
    ("stages.0.kernel", [], "kernel"),
    ("stages.0.kernel", [4], "kernel"),
    ("quantization.weight_bits", [3, 8], "weight_bits"),
    ("quantization.act_bits", [8, 8], "act_bits"),
    ("stages.0.depth", [-1, 2], "depth"),
    ("stages.0.depth", "two", "depth"),
    ("stages.0.width", [8.5], "width"),
    ("stages.0.stride", 3, "stride"),
    ("stages.0.widht", [8], "widht"),
    ("input.channels", 0, "channels"),
    ("input.size", _DELETE, "size"),
    ("stages", [], "stages"),
    ("stem", "big", "stem"),
    ("quantization.stem_head_bits", 5, "stem_head_bits"),
]


@pytest.mark.parametrize("path,value,named", BAD_SPACES, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD_SPACES])
def test_malformed_spaces_name_the_key_and_exit_2_in_the_cli(tmp_path, capsys, path, value, named):
    f = tmp_path / "space.yaml"
    f.write_text(yaml.safe_dump(_space_with(path, value)))
    with pytest.raises(HynasError) as err:
        load_space(str(f))
    assert named in str(err.value) and str(f) in str(err.value)
    assert search.main(["space", "info", str(f)]) == 2
    captured = capsys.readouterr().err.strip().splitlines()
    assert len(captured) == 1 and named in captured[0] and "Traceback" not in captured[0]


def test_unknown_key_suggests_the_closest(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text(yaml.safe_dump(_space_with("stages.0.kernal", [3])))
    with pytest.raises(ConfigError, match=r"stages\[0\]\.kernal: unknown key \(did you mean 'kernel'\?\)"):
        load_space(str(f))


def test_malformed_yaml_gives_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("name: x\nstages: [\n  {depth: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_space(str(f))


def test_a_key_given_twice_is_malformed_yaml_but_a_merged_key_may_be_overridden(tmp_path):
    """Before, PyYAML let the second `search:` replace the first, and its budget was lost without a word."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: x\nsearch: {budget: 10}\nsearch: {strategy: random}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(twice))
    assert str(err.value) == f"{twice}: malformed YAML at line 3, column 1: key 'search' appears twice in one mapping"
    merged = tmp_path / "merged.yaml"
    merged.write_text("name: x\nsearch: {<<: {budget: 5, strategy: random}, budget: 7}\n")
    assert (load_config(str(merged)).search.budget, load_config(str(merged)).search.strategy) == (7, "random")


def test_a_scalar_pins_a_choice():
    space = build(HybridSpace, _space_with("stages.0.kernel", 5), "inline")
    assert space.stages[0].kernel == (5,)


def test_config_overrides_and_write_back(tmp_path):
    config = load_config("configs/demo.yaml", ["search.budget=7", "train.lr=0.1", "search.strategy=random"])
    assert (config.search.budget, config.train.lr, config.search.strategy) == (7, 0.1, "random")
    out = tmp_path / "resolved.yaml"
    out.write_text(config.to_yaml())
    again = load_config(out)
    assert again.search == config.search and again.train == config.train and again.data == config.data


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads 5e-4 as a string: before, `weight_decay: 5e-4` was refused as "expected a number"
    (tmp_path / "c.yaml").write_text("name: c\ntrain: {weight_decay: 5e-4, lr: 1E-1}\n")
    config = load_config(tmp_path / "c.yaml", ["search.local_share=2.5e-1"])
    assert (config.train.weight_decay, config.train.lr, config.search.local_share) == (5e-4, 0.1, 0.25)
    with pytest.raises(ConfigError, match="search.budget"):
        load_config("configs/demo.yaml", ["search.budget=1e2"])  # an integer field stays an integer


@pytest.mark.parametrize("overrides,says", [
    # before: "0 hardware profiles; name one: latency_ms@<profile>"
    (["hardware=[]"], "'latency_ms' needs a hardware profile to time it on, and hardware is empty"),
    (["hardware=[cpu_ort, cpu_torch]"], "2 hardware profiles (cpu_ort, cpu_torch); name one: latency_ms@<profile>"),
    (["hardware=[cpu_ort]", "search.objectives=[accuracy:max,latency_ms@board:min]"],
     "'latency_ms@board' names no hardware profile of the config (hardware: cpu_ort)"),
    # a latency limit on a search of other objectives needs its profile as much
    (["hardware=[cpu_ort, cpu_torch]", "search.objectives=[accuracy:max,size_mb:min]",
      "search.constraints=[latency_ms<=1]"],
     "2 hardware profiles (cpu_ort, cpu_torch); name one: latency_ms@<profile>"),
    (["hardware=[cpu_ort]", "search.objectives=[accuracy:max,size_mb:min]", "search.constraints=[latency_ms@board<=1]"],
     "'latency_ms@board' names no hardware profile of the config (hardware: cpu_ort)"),
])
def test_a_latency_objective_names_the_profile_it_needs(overrides, says):
    from search_engine.job import build_job, latency_profiles

    config = load_config("configs/demo.yaml", overrides)
    with pytest.raises(ConfigError) as err:
        latency_profiles(build_job(config), config)
    assert says in str(err.value)


def test_objectives_set_as_one_comma_separated_value_read_as_a_list():
    from search_engine.job import build_job

    listed = build_job(load_config("configs/demo.yaml", ["search.objectives=[accuracy:max,latency_ms:min]"]))
    # before: "direction of 'accuracy' must be 'min' or 'max', got 'max,latency_ms:min'"
    comma = build_job(load_config("configs/demo.yaml", ["search.objectives=accuracy:max,latency_ms:min"]))
    assert comma.objectives == listed.objectives and [o.name for o in comma.objectives] == ["accuracy", "latency_ms"]


@pytest.mark.parametrize("override,named", [
    ("search.budgt=3", "search.budgt"), ("search.budget=many", "search.budget"), ("train.epochs=0", "epochs"),
    ("nosection", "key=value"), ("data.dataset=imagenet", "data.dataset"), ("data.val_fraction=2", "val_fraction"),
    ("search.local_share=1.5", "local_share"), ("search.local_share=sometimes", "search.local_share"),
    ("train.weight_decay=5e-4x", "train.weight_decay"),
    # each rule names its own field (before: "random_archs must be >= 0, lr > 0 and label_smoothing in [0, 1)")
    ("train.lr=-1", "train: lr: must be positive, got -1.0"), ("train.weight_decay=-1", "train: weight_decay"),
    ("train.label_smoothing=1", "train: label_smoothing: must be in [0, 1)"),
    ("search.workers=0", "search: workers: must be positive, got 0"), ("search.initial=-1", "search: initial"),
    # before: ignored by the local runner, which measured one arch at a time
    ("search.workers=4", "search: workers: 4 needs runner 'ray'; use --runner ray, or --workers 1"),
    ("search.address=auto",
     "search: address: 'auto' needs runner 'ray'; use --runner ray, or --set search.address=null"),
    ("data.val_fraction=0.9", "val_fraction + test_fraction: must be below 1"),
    # the default run folder is runs/<name>: before, name=../../x wrote outside runs/
    ("name=../../x", "name: must be a folder name, without '/'"), ("name=..", "name: must be a folder name"),
])
def test_bad_overrides(override, named):
    with pytest.raises(ConfigError) as err:
        load_config("configs/demo.yaml", [override])
    assert named in str(err.value)


def test_missing_config_file_suggests_presets():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/nope.yaml")


def test_registry_rejects_duplicates_and_suggests():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha")(1)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("alpha")(2)
    with pytest.raises(ConfigError, match="did you mean 'alpha'"):
        reg.get("alpah")
    assert reg.names() == ["alpha"] and "alpha" in reg
    with pytest.raises(ConfigError, match="did you mean 'alpha'"):
        reg.get("ALPHA")  # before: no suggestion for another case


def test_a_runner_imported_on_first_use_is_listed_among_the_choices():
    """Before, `--runner rayy` answered "choose one of: local": the Ray runner registers when its module is imported."""
    from search_engine.runners import RUNNERS

    with pytest.raises(ConfigError, match=r"unknown runner 'rayy' \(did you mean 'ray'\?\); choose one of: local, ray"):
        RUNNERS.check("rayy")
    assert "ray" in RUNNERS and RUNNERS.get("ray").__name__ == "RayRunner"


def test_an_empty_config_file_takes_the_defaults_and_says_so(tmp_path, caplog):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set yet\n")
    with caplog.at_level("WARNING", logger="hynas.config"):
        config = load_config(empty)
    assert config.name == "empty" and config.seed == load_config("demo").seed
    assert [r.getMessage() for r in caplog.records] == [f"{empty} is empty: every setting takes its default"]


def test_a_config_names_its_files_absolutely_and_presets_by_name(tmp_path, monkeypatch):
    """So that the copy in a run folder works from any folder; `hardware: [board]` finds ./board.yaml."""
    import shutil

    from search_space.config import configs_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "board.yaml").write_text("name: board\nbackend: onnxruntime\nthreads: 1\n")
    shutil.copy(configs_dir() / "spaces" / "mnist_hybrid.yaml", tmp_path / "your.yaml")
    (tmp_path / "mine.yaml").write_text("space: your.yaml\nhardware: [board, cpu_ort]\ncheckpoint: sub/supernet.pt\n")
    config = load_config("mine.yaml")
    here = tmp_path.resolve()
    assert (config.space, config.hardware) == (str(here / "your.yaml"), (str(here / "board.yaml"), "cpu_ort"))
    assert config.checkpoint == str(here / "sub" / "supernet.pt")
    assert (load_config("demo").space, load_config("demo").hardware) == ("mnist_hybrid", ("cpu_ort",))


def test_a_config_finds_the_files_beside_it_when_run_from_another_folder(tmp_path, monkeypatch):
    import shutil

    from search_space.config import configs_dir

    experiment = tmp_path / "experiments"
    (experiment / "data").mkdir(parents=True)
    (experiment / "board.yaml").write_text("name: board\nbackend: onnxruntime\nthreads: 1\n")
    shutil.copy(configs_dir() / "spaces" / "mnist_hybrid.yaml", experiment / "my_space.yaml")
    (experiment / "exp.yaml").write_text("space: my_space.yaml\nhardware: [board]\n"
                                         "data: {dataset: folder, path: data}\ncheckpoint: new/supernet.pt\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load_config("../experiments/exp.yaml")  # before: names as written, not found when used
    here = experiment.resolve()
    assert (config.space, config.hardware, config.data.path) == \
        (str(here / "my_space.yaml"), (str(here / "board.yaml"),), str(here / "data"))
    assert config.checkpoint == str((tmp_path / "elsewhere" / "new" / "supernet.pt").resolve())  # not there: as given
    # a file of that name in the current folder comes first, as before
    shutil.copy(experiment / "my_space.yaml", tmp_path / "elsewhere" / "my_space.yaml")
    assert load_config("../experiments/exp.yaml").space == str((tmp_path / "elsewhere" / "my_space.yaml").resolve())


def test_a_path_under_home_is_expanded_in_a_config_and_in_a_flag_after_an_equals_sign(tmp_path, monkeypatch):
    """Before, `data.path: ~/images` was looked for in a folder named `~`, and so was `--out=~/runs/x` (the shell
    expands `~` only at the start of a word)."""
    import search

    from search_space.config import configs_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "images").mkdir()
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "mine.yaml").write_bytes((configs_dir() / "spaces" / "mnist_hybrid.yaml").read_bytes())
    (tmp_path / "exp.yaml").write_text("space: ~/spaces/mine.yaml\ndata: {dataset: folder, path: ~/images}\n")
    config = load_config("~/exp.yaml")
    assert (config.data.path, config.space) == (str(tmp_path / "images"), str(tmp_path / "spaces" / "mine.yaml"))
    args = search.build_parser().parse_args(["search", "--out=~/runs/x", "--config=~/exp.yaml"])
    assert (args.out, args.config) == (str(tmp_path / "runs" / "x"), str(tmp_path / "exp.yaml"))


def test_the_configs_own_bookkeeping_is_not_a_key_a_user_can_set():
    with pytest.raises(ConfigError, match="source: unknown key") as err:
        load_config("demo", ["source=x"])
    assert "source" not in str(err.value).split("allowed keys: ")[1]  # before: offered, and accepted


def test_an_atomically_written_file_gets_the_permissions_of_any_new_file(tmp_path):
    """Before, checkpoints, tables and exports were owner-only (a temporary file's 0600) beside 0644 plots."""
    import stat

    from search_space.files import atomic_write_text

    atomic_write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("atomic.txt", "plain.txt")}
    assert modes["atomic.txt"] == modes["plain.txt"], modes


def _refused_write(imports: str, statement: str) -> str:
    """``statement`` run in a process of its own whose files may not grow past 1,000 bytes (`ulimit -f`, which
    refuses a write as a full disk does, with EFBIG for ENOSPC); the refusal's file name and reason."""
    script = (f"import resource, signal; {imports}\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
              f"try: {statement}\nexcept OSError as err: print(err.filename, err.strerror)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() + done.stderr


def test_a_file_the_system_refuses_to_grow_is_named_and_its_old_content_kept(tmp_path):
    """A full disk's ENOSPC names no file, so the CLI said only "No space left on device" when a checkpoint or
    an export could not be written."""
    target = tmp_path / "supernet.pt"
    target.write_bytes(b"epoch 1")
    refused = _refused_write("from search_space.files import atomic_write",
                             f"atomic_write({str(target)!r}, lambda fh: fh.write(bytes(5000)))")
    assert refused == f"{target} File too large"
    assert target.read_bytes() == b"epoch 1" and [p.name for p in tmp_path.iterdir()] == ["supernet.pt"]
    # the ONNX exporter writes its file itself: the same refusal names that file too
    onnx_file = tmp_path / "model_fp32.onnx"
    refused = _refused_write("import torch; from supernet.onnx_io import export_onnx",
                             f"export_onnx(torch.nn.Linear(100, 100), torch.zeros(1, 100), {str(onnx_file)!r})")
    assert refused == f"{onnx_file} File too large"


def test_a_hardware_profile_error_names_the_file_and_the_key(tmp_path):
    """Before session 29: "board.yaml: <top level>: threads: must be positive"."""
    from search_space.config import load_hardware

    (tmp_path / "board.yaml").write_text("name: board\nthreads: 0\n")
    with pytest.raises(ConfigError) as err:
        load_hardware(str(tmp_path / "board.yaml"))
    assert str(err.value) == f"{tmp_path / 'board.yaml'}: threads: must be positive, got 0"


def test_accuracies_print_with_two_decimals_and_everything_else_with_four_digits():
    """Before, a table's accuracy printed as test_acc=84 beside test_acc=89.16, and an export's README gave its
    accuracy as 97.8 beside the exported model's 97.80 %."""
    from search_space.objectives import format_value

    assert (format_value("accuracy", 98.0), format_value("test_acc", 84.0)) == ("98.00", "84.00")
    assert (format_value("latency_ms@cpu_ort", 0.123456), format_value("size_mb", 0.0159)) == ("0.1235", "0.0159")
