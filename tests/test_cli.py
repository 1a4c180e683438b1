"""The approxpost command end to end in a temporary directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import approxpost as ap
from approxpost.cli import ALL_METHODS, METHOD_NAMES, default_methods, main


def test_compare_writes_the_table_and_figures(tmp_path, capsys):
    out = tmp_path / "results"
    code = main(
        [
            "compare",
            "--dataset",
            "gap",
            "--methods",
            "hmc,bbb",
            "--seed",
            "0",
            "--out",
            str(out),
            "--budget",
            "2000",
            "--quiet",
        ]
    )
    assert code == 0
    for name in ("table.md", "bands.png", "grad_variance.png"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| HMC |" in printed and "| BBB |" in printed
    assert "| HMC |" in (out / "table.md").read_text()


def test_compare_on_moons_writes_classification_figures(tmp_path, capsys):
    out = tmp_path / "moons"
    argv = ["compare", "--dataset", "moons", "--methods", "hmc,bbb", "--budget", "1000", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    for name in ("table.md", "reliability.png", "decision_surface.png", "entropy.png", "grad_variance.png"):
        assert (out / name).stat().st_size > 0
    assert not (out / "bands.png").exists()
    table = (out / "table.md").read_text()
    assert "test accuracy" in table and "test ECE" in table and "test RMSE" not in table
    assert "| BBB |" in capsys.readouterr().out


def test_compare_on_digits_runs_the_cnn_with_ood_columns(tmp_path, capsys):
    """``--dataset digits`` builds the default CNN; ``all`` there is the minibatch methods, and OOD AUROC is reported."""
    out = tmp_path / "digits"
    argv = ["compare", "--dataset", "digits", "--methods", "map", "--budget", "30", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert (out / "reliability.png").stat().st_size > 0
    assert not (out / "grad_variance.png").exists() and not (out / "decision_surface.png").exists()
    table = (out / "table.md").read_text()
    assert "test accuracy" in table and "OOD AUROC (MI)" in table
    assert f"D={ap.nn.CNN().dim}" in capsys.readouterr().out


def test_all_on_digits_means_the_minibatch_methods():
    from approxpost.cli import IMAGE_METHODS, _parse_methods, image_methods

    assert _parse_methods("all", "digits") == list(IMAGE_METHODS) and set(image_methods()) == set(IMAGE_METHODS)
    assert _parse_methods("all", "gap") == list(ALL_METHODS)


@pytest.mark.parametrize("dataset", ["gap", "moons"])
def test_every_method_runs_from_the_command_line(dataset, tmp_path, capsys):
    out = tmp_path / dataset
    argv = ["compare", "--dataset", dataset, "--methods", "every", "--budget", "3000", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed, table = capsys.readouterr().out, (out / "table.md").read_text()
    for label in METHOD_NAMES.values():
        assert f"| {label} |" in printed and f"| {label} |" in table


def test_a_budget_too_small_for_laplaces_newton_phase_is_a_usage_error_before_any_fit(tmp_path, capsys):
    # 100 pays for the Newton phase's D-free part (82) but not for moons' 11 Jacobians of 2 outputs too
    argv = ["compare", "--dataset", "moons", "--methods", "map,laplace", "--budget", "100", "--out", str(tmp_path)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "approxpost: error: --budget 100 is too small for Laplace on this data set" in captured.err
    assert "| MAP |" not in captured.out  # nothing was fitted


def test_all_is_the_five_classic_methods_and_every_name_selects_its_method():
    from approxpost.cli import _parse_methods

    assert _parse_methods("all") == ["metropolis", "hmc", "is", "bbvi", "bbb"] == list(ALL_METHODS)
    assert _parse_methods("every") == list(METHOD_NAMES) and len(METHOD_NAMES) == 12
    defaults = default_methods()
    assert set(defaults) == set(METHOD_NAMES)
    for name in METHOD_NAMES:
        assert _parse_methods(f" {name.upper()} ") == [name]
    assert _parse_methods("sgld,map") == ["sgld", "map"]
    assert type(defaults["ensemble"]) is ap.DeepEnsemble and type(defaults["mc_dropout"]) is ap.MCDropout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--dataset", "spirals"], "unknown dataset 'spirals'; valid: gap, blundell, linear, moons, digits"),
        (
            ["compare", "--methods", "hmc,nope"],
            "unknown method 'nope'; valid: all, every, metropolis, hmc, is, bbvi, bbb, laplace, sgld, sghmc, map, ensemble, "
            "mc_dropout, nuts",
        ),
    ],
)
def test_unknown_names_exit_2_with_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"approxpost: error: {message}"


def test_version_via_python_m():
    result = subprocess.run(
        [sys.executable, "-m", "approxpost", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"approxpost {ap.__version__}"


def test_the_installed_console_script_runs_and_reports_usage_errors(tmp_path):
    """The README runs ``approxpost ...``: the script pip installs, not ``python -m``."""
    script = Path(sys.executable).with_name("approxpost")
    if not script.exists() and not os.environ.get("CI"):  # a source checkout on PYTHONPATH, not installed
        pytest.skip("approxpost is not installed in this environment (pip install -e .)")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"approxpost {ap.__version__}")
    wrong = subprocess.run([str(script), "compare", "--methods", "nope"], capture_output=True, text=True, cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith("approxpost: error: ") and len(wrong.stderr.strip().splitlines()) == 1


def _run(*argv, cwd):
    """The command as a user runs it, in a fresh process (``python -m approxpost`` is the console script's entry)."""
    return subprocess.run([sys.executable, "-m", "approxpost", *argv], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--methods", "hmc", "--budget", "100"],
            "--budget 100 is too small for HMC: n_evals must be an integer of at least 404",
        ),
        (["--methods", "bbvi", "--budget", "0"], "--budget must be a positive number of evaluations, got 0"),
        (["--out", "/proc/nope"], "--out '/proc/nope' cannot be created"),
        (["--out", "table_as_file"], "--out 'table_as_file' cannot be created: File exists"),
        (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["--dataset", "spirals"], "unknown dataset 'spirals'"),
    ],
)
def test_a_users_mistake_is_one_line_and_exit_code_2(argv, message, tmp_path):
    (tmp_path / "table_as_file").write_text("")
    result = _run("compare", "--quiet", *argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"approxpost: error: {message}"), result.stderr
    assert result.stdout == ""  # nothing was fitted before the mistake was caught
