"""The argument checks in approxpost._validate: one message shape, "`name` must be ..., got ..."."""

import pathlib
import re

import numpy as np
import pytest

import approxpost as ap
from approxpost import _validate as check


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check.count("n", 0), "n must be a positive integer, got 0"),
        (lambda: check.count("n", True), "n must be a positive integer, got True"),
        (lambda: check.count("n", 2.0), "n must be a positive integer, got 2.0"),
        (lambda: check.count("n_warmup", -1, minimum=0), "n_warmup must be a non-negative integer, got -1"),
        (lambda: check.count("k", 3, 5, "why"), "k must be an integer of at least 5 (why), got 3"),
        (lambda: check.positive("lr", 0.0), "lr must be a positive finite number, got 0.0"),
        (lambda: check.positive("lr", np.inf), "lr must be a positive finite number, got inf"),
        (lambda: check.positive("lr", "1"), "lr must be a positive finite number, got '1'"),
        (lambda: check.probability("p", 1.0), "p must lie strictly between 0 and 1, got 1.0"),
        (lambda: check.flag("f", 1), "f must be True or False, got 1"),
        (lambda: check.number("j", 1.0, 0.0, 1.0, closed="left"), r"j must be a number in [0, 1), got 1.0"),
        (lambda: check.number("w", -1.0, 0.0), "w must be a finite number >= 0, got -1.0"),
        (lambda: check.number("w", False, 0.0), "w must be a finite number >= 0, got False"),
    ],
)
def test_bad_values_get_one_message_shape(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_good_values_come_back_as_plain_python_numbers():
    assert check.count("n", np.int64(3)) == 3 and type(check.count("n", np.int64(3))) is int
    assert check.positive("x", np.float32(0.5)) == 0.5
    assert check.number("j", 0.0, 0.0, 1.0, closed="left") == 0.0
    assert check.flag("f", np.bool_(True)) is True
    assert check.optional(check.count, "b", None) is None and check.optional(check.count, "b", 4) == 4


def test_no_inline_bool_or_int_type_tests_outside_the_validators():
    package = pathlib.Path(ap.__file__).parent
    files = [
        *(package / "methods").glob("*.py"),
        *(package / "models").glob("*.py"),
        *(package / n for n in ("compare.py", "datasets.py", "optim.py")),
    ]
    pattern = re.compile(r"isinstance\([^)]*, bool\)|np\.integer|np\.floating")
    offenders = [
        f"{f.name}:{i}" for f in files for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)
    ]
    assert offenders == []
