"""The approxpost command end to end in a temporary directory."""

import subprocess
import sys

import pytest

import approxpost as ap
from approxpost.cli import main


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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--dataset", "moons"], "unknown dataset 'moons'; valid: gap, blundell, linear"),
        (
            ["compare", "--methods", "hmc,gibbs"],
            "unknown method 'gibbs'; valid: all, metropolis, hmc, is, bbvi, bbb, nuts",
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
