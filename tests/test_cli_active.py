"""``approxpost active`` end to end on a tiny budget, and its usage errors."""

import subprocess
import sys

import pytest

from approxpost.cli import main

TINY = ["--pool", "120", "--n-initial", "10", "--batch-size", "20", "--max-labels", "50", "--steps", "30"]


def _run(*argv, cwd):
    return subprocess.run(
        [sys.executable, "-m", "approxpost", "active", *argv], capture_output=True, text=True, cwd=cwd
    )


def test_active_writes_the_figure_and_table(tmp_path):
    out = tmp_path / "al"
    argv = ["--dataset", "digits", "--method", "mc_dropout", "--acquisitions", "bald,random", "--seeds", "2"]
    result = _run(*argv, *TINY, "--samples", "5", "--out", str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "active_curves.png").stat().st_size > 0
    table = (out / "active_table.md").read_text()
    assert "| acquisition | accuracy @ 50 | accuracy @ 100 | accuracy @ 200 | accuracy @ 400 | labels to 90% |" in table
    rows = [line for line in table.splitlines() if line.startswith("| bald |") or line.startswith("| random |")]
    assert len(rows) == 2
    for row in rows:  # 10 + 2 × 20 labels: the 50-label column is filled, the larger ones are not
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert " ± " in cells[1] and cells[2:5] == ["—", "—", "—"]
    assert "| bald |" in result.stdout


def test_active_is_deterministic_per_seed(tmp_path):
    argv = ["active", "--dataset", "moons", "--method", "ensemble", "--acquisitions", "max_entropy", "--seeds", "1"]
    for out in ("a", "b"):
        assert main([*argv, *TINY, "--out", str(tmp_path / out), "--quiet"]) == 0
    strip = lambda text: text.split(". ", 1)[1].rsplit("\n\n", 1)[-1]  # noqa: E731 (the header carries the wall time)
    assert strip((tmp_path / "a" / "active_table.md").read_text()) == strip(
        (tmp_path / "b" / "active_table.md").read_text()
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "mnist"], "unknown dataset 'mnist'; valid: digits, moons"),
        (["--method", "hmc"], "unknown method 'hmc'; valid: mc_dropout, ensemble, bbb, laplace, map"),
        (["--acquisitions", "bald,coreset"], "unknown acquisition 'coreset'; valid: bald, max_entropy"),
        (["--seeds", "0"], "--seeds must be a positive integer, got 0"),
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--pool", "1797"], "--pool 1797 leaves no test set"),
        (["--pool", "100", "--max-labels", "400"], "--max-labels 400 must lie between"),
        (["--target", "1.5"], "--target must be an accuracy in (0, 1], got 1.5"),
        (["--method", "map", "--acquisitions", "bald"], "acquisition='bald' is 0 at every point for MAP"),
        (["--out", "/proc/nope"], "--out '/proc/nope' cannot be created"),
    ],
)
def test_a_users_mistake_is_one_line_and_exit_code_2(argv, message, tmp_path, capsys):
    assert main(["active", "--quiet", "--out", str(tmp_path / "out"), *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"approxpost: error: {message}"), captured.err
    assert captured.out == ""  # nothing was fitted before the mistake was caught
