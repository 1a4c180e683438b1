"""approxpost compare with the stored reference posteriors: on by default, --no-reference turns it off."""

import re

import approxpost as ap
from approxpost.cli import build_model, default_methods, main


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "out"
    argv = ["compare", "--dataset", "gap", "--methods", "map,bbb", "--budget", "500", "--out", str(out), "--quiet"]
    assert main([*argv, *extra]) == 0
    return capsys.readouterr().out, (out / "table.md").read_text()


def _cell(table: str, row: str, column: str) -> float:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == row:
            return float(cells[header.index(column)].replace(",", ""))
    raise AssertionError(f"no row {row!r} in\n{table}")


def test_the_gap_table_has_the_distance_to_the_stored_reference_recomputed_here(tmp_path, capsys):
    assert "gap" in ap.references.available()
    printed, table = _run(tmp_path, capsys)
    assert "distances to a reference: yes, stored NUTS reference" in printed
    assert "W2 to reference" in table and "Distances to the stored NUTS reference" in table
    data = ap.datasets.gap_regression(seed=0)
    model = build_model(data)
    methods = {"MAP": default_methods()["map"].with_budget(500), "BBB": default_methods()["bbb"].with_budget(500)}
    again = ap.compare(model, methods, test=(data.x_test, data.y_test), seed=0, reference=ap.references.load("gap"))
    for name in methods:
        assert _cell(table, name, "W2 to reference") == round(again.table[name]["w2_reference"], 3)
        assert again.table[name]["w2_reference"] > 0.0


def test_no_reference_leaves_the_column_out(tmp_path, capsys):
    printed, table = _run(tmp_path, capsys, "--no-reference")
    assert "distances to a reference: no, --no-reference" in printed
    assert "W2 to reference" not in table and "| MAP |" in table


def test_another_seed_has_no_reference_and_says_why(tmp_path, capsys):
    printed, table = _run(tmp_path, capsys, "--seed", "1")
    assert re.search(r"distances to a reference: no, the stored gap reference is for --seed 0, not 1", printed)
    assert "W2 to reference" not in table


def test_a_data_set_without_a_stored_reference_runs_without_distances(tmp_path, capsys):
    out = tmp_path / "linear"
    assert main(["compare", "--dataset", "linear", "--methods", "map", "--out", str(out), "--quiet"]) == 0
    assert "distances to a reference: no, no stored reference for linear" in capsys.readouterr().out
    assert "W2 to reference" not in (out / "table.md").read_text()


def test_the_moons_table_has_agreement_and_total_variation_to_the_stored_reference(tmp_path, capsys):
    assert "moons" in ap.references.available()
    out = tmp_path / "moons"
    argv = ["compare", "--dataset", "moons", "--methods", "map", "--budget", "300", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert "distances to a reference: yes, stored NUTS reference" in capsys.readouterr().out
    table = (out / "table.md").read_text()
    data = ap.datasets.two_moons(seed=0)
    model = build_model(data)
    methods = {"MAP": default_methods()["map"].with_budget(300)}
    again = ap.compare(model, methods, test=(data.x_test, data.y_test), seed=0, reference=ap.references.load("moons"))
    assert _cell(table, "MAP", "agreement") == round(again.table["MAP"]["agreement"], 3)
    assert _cell(table, "MAP", "TV to reference") == round(again.table["MAP"]["tv_reference"], 3)
    assert 0.0 < again.table["MAP"]["tv_reference"] < 0.5 and again.table["MAP"]["agreement"] > 0.5


def test_every_stored_reference_is_the_cli_default_for_its_data_set_at_its_seed():
    from approxpost.cli import stored_reference

    for name in ap.references.available():
        reference, why = stored_reference(name, 0)
        assert reference is not None and why.startswith("stored NUTS reference"), (name, why)
        assert stored_reference(name, 1) == (None, f"the stored {name} reference is for --seed 0, not 1")
