"""The CLI in process: help, exit codes, one-line errors."""
import re
from pathlib import Path

import pytest

import search
from search_space.errors import EXIT_BROKEN_PIPE
from tests.conftest import NB201_CSV, run_cli


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        search.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("space", "train", "profile", "search", "run", "finetune", "export", "plot"):
        assert name in out


@pytest.mark.parametrize("command, out_means, ignored", [
    ("train", "run folder", ()), ("profile", "the lookup table file", ()), ("export", "export folder", ()),
    ("finetune", None, ("--out", "--resume")), ("plot", "where the PNG files go", ("--resume", "--force")),
])
def test_each_subcommand_says_what_its_out_names_and_offers_no_flag_it_ignores(command, out_means, ignored, capsys):
    with pytest.raises(SystemExit):
        search.main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    if out_means:
        assert re.search(rf" --out (PATH|DIR) {out_means}", help_text), help_text
    for flag in ignored:
        assert f" {flag} " not in help_text  # listed as an option (the usage line writes "[--out PATH]")


def test_version_names_hynas_as_setup_cfg_does_and_the_torch_it_runs_on(capsys):
    import configparser

    import torch

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    with pytest.raises(SystemExit) as exit_:
        search.main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"hynas {setup['metadata']['version']} (") and f"torch {torch.__version__}" in out


def test_a_reader_that_stops_early_gets_no_traceback():
    """`hynas space info ... | head -1`: the pipe is closed before hynas writes, as when head has its line."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, search.__file__, "space", "info", "mnist_hybrid"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "" and proc.returncode == EXIT_BROKEN_PIPE


def test_space_info_prints_size_and_extremes(capsys):
    assert search.main(["space", "info", "mnist_hybrid", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "271,065,600 distinct archs" in out and "largest: c24:" in out and out.count("sample ") == 2
    stages = [line for line in out.splitlines() if line.startswith("  stage ")]
    assert "heads" not in stages[0] and "kernel [3, 5] expand [2, 4] heads [2, 4]" in stages[1]  # conv-only, then both


def test_space_info_default_comes_from_config(capsys):
    assert search.main(["space", "info", "--config", "configs/demo.yaml", "--samples", "0"]) == 0
    assert "space mnist_hybrid" in capsys.readouterr().out


def test_space_info_tabular(capsys):
    assert search.main(["space", "info", "nb201", "--table", str(NB201_CSV), "--samples", "1"]) == 0
    assert "15,625 distinct archs" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["space", "info", "--samples", "many"],
    ["space", "info", "nb201", "--table", "/no/such.csv"],
    ["space", "info", "--config", "nope.yaml"],
    ["space", "info", "--config", "configs/demo.yaml", "--set", "search.budget=-1"],
    ["frobnicate"],
    ["train", "--seed", "-1"],  # before: numpy's "expected non-negative integer" traceback, after the folder was made
    ["space", "info", "--set", "seed=99999999999999999999"],
])
def test_bad_input_is_one_line_exit_2(capsys, argv):
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert len(err) == 1 and "error" in err[0]


def test_a_nested_commands_error_is_named_as_argparse_names_it(capsys):
    code, err = run_cli(["space", "info", "nosuch"], capsys)  # before session 32: "hynas space: error: ..."
    assert code == 2 and err == ["hynas space info: error: nosuch: space file not found; give a YAML path or a preset: "
                                 "cifar_hybrid, mnist_hybrid"]


@pytest.mark.parametrize("argv, says", [
    (["search", "--budjet", "5"], "hynas search: error: unrecognized arguments: --budjet 5; did you mean --budget? "
                                  "(see hynas search --help)"),
    (["space", "info", "--space", "nb201"],
     "SPACE takes no flag: hynas space info SPACE (see hynas space info --help)"),
    (["plot", "runs/a", "--bogus=3"], "hynas plot: error: unrecognized arguments: --bogus=3 (see hynas plot --help)"),
])
def test_an_unknown_option_points_at_the_subcommands_help_and_the_option_meant(capsys, argv, says):
    """Before, argparse named `hynas --help` (the top level, where no subcommand's options are listed)."""
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and err[0].endswith(says)


@pytest.mark.parametrize("argv,hint", [(["finetune", "runs/x", "--trial", "1"], "nothing of it was kept; run it again"),
                                       (["search", "--space", "nb201"], "continue with --resume")])
def test_ctrl_c_says_how_to_go_on_only_with_flags_the_command_has(argv, hint, capsys, monkeypatch):
    """Before session 29 an interrupted `finetune` said "continue with --resume", a flag it does not have."""
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(search, f"cmd_{argv[0]}", interrupted)
    code, err = run_cli(argv, capsys)
    assert code == 130 and err == [f"hynas {argv[0]}: interrupted; {hint}"]
