"""The allocator tuning happens at first use (fit / compare / the CLI), never as a side effect of import."""

import subprocess
import sys

import pytest

SCRIPT = """
import approxpost as ap
from approxpost.autodiff import memory
print(memory._applied)
{use}
print(memory._applied)
"""


@pytest.mark.parametrize(
    "use",
    [
        "ap.HMC(n_samples=4, n_warmup=0, n_chains=1).fit(ap.targets.Gaussian(), seed=0)",
        "ap.compare(ap.targets.Gaussian(), {'IS': ap.ImportanceSampling(n_samples=10, proposal=ap.distributions.Normal([0, 0], 2.0))})",
    ],
)
def test_import_leaves_the_allocator_alone_and_first_use_tunes_it(use):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(use=use)], capture_output=True, text=True, check=True)
    before, after = result.stdout.split()
    assert before == "[]"
    assert after in ("[True]", "[False]")  # False only off glibc or with APPROXPOST_MALLOC_TUNING=0


def test_the_opt_out_is_respected():
    env_script = "import os; os.environ['APPROXPOST_MALLOC_TUNING'] = '0'\n" + SCRIPT.format(
        use="ap.autodiff.ensure_malloc_tuned()"
    )
    result = subprocess.run([sys.executable, "-c", env_script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]", "[False]"]
