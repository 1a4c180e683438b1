"""The Method base: abstract hooks, the hidden cost counter, declared costs and methods without a start."""

import dataclasses
import pathlib
from typing import NamedTuple

import numpy as np
import pytest

import approxpost as ap
from approxpost.methods.base import Method, stack_infos
from approxpost.posteriors import SamplePosterior


class _State(NamedTuple):
    position: np.ndarray


class _Info(NamedTuple):
    calls: float


@dataclasses.dataclass(frozen=True)
class _Probe(Method):
    """Each step evaluates the density at 3 points and the gradient at 2, and declares 5 more gradient passes."""

    n_steps: int = 4
    seen: list = dataclasses.field(default_factory=list, compare=False)

    @property
    def n_main_steps(self) -> int:
        return self.n_steps

    def evals_per_step(self, model) -> int:
        return 10

    def uncounted_evals_per_step(self, model) -> tuple:
        return 5, 0

    def with_budget(self, n_evals: int):
        return dataclasses.replace(self, n_steps=n_evals // 10)

    def init(self, model, position, rng):
        return _State(np.asarray(position, dtype=np.float64))

    def step(self, model, state, rng):
        self.seen.append(model)
        model.log_joint(np.zeros((3, model.dim)))
        model.log_joint_and_grad(np.zeros((2, model.dim)))
        return state, _Info(calls=5.0)

    def keep(self, model, state, info):
        return state.position

    def build_posterior(self, model, state, kept, history):
        return SamplePosterior(np.stack(kept, axis=1))  # (1 chain, n_steps, D)


def test_a_method_missing_a_hook_cannot_be_built():
    @dataclasses.dataclass(frozen=True)
    class NoStep(Method):
        @property
        def n_main_steps(self):
            return 1

        def evals_per_step(self, model):
            return 1

        def with_budget(self, n_evals):
            return self

        def init(self, model, position, rng):
            return None

        def build_posterior(self, model, state, kept, history):
            return None

    with pytest.raises(TypeError, match="step"):
        NoStep()


def test_fit_counts_without_the_method_seeing_a_counter(linear):
    probe = _Probe(n_steps=4)
    post = probe.fit(linear, seed=0)
    # the model a step gets is the user's class, with the user's data
    assert all(type(m) is type(linear) and m.x is linear.x for m in probe.seen)
    # per step: 3 density rows, 2 gradient rows, 5 declared gradient passes; the start check is not billed
    assert post.cost.density_evals == 4 * 3
    assert post.cost.grad_evals == 4 * (2 + 5)
    assert post.model is linear


@dataclasses.dataclass(frozen=True)
class _Phased(_Probe):
    """The probe whose hidden cost depends on the step: 5 gradient passes on even steps, 1 density pass on odd."""

    def init(self, model, position, rng):
        return _State(np.zeros(1))  # position[0] is the step count

    def step(self, model, state, rng):
        _, info = super().step(model, state, rng)
        return _State(state.position + 1), info

    def uncounted_evals(self, model, state, new_state, info) -> tuple:
        assert new_state.position[0] == state.position[0] + 1 and isinstance(info, _Info)
        assert "log_joint" not in vars(model)  # the hook gets the user's model, not the counting copy
        return (5, 0) if state.position[0] % 2 == 0 else (0, 1)

    def build_posterior(self, model, state, kept, history):
        return SamplePosterior(np.zeros((1, 2, model.dim)))


def test_a_hidden_cost_that_depends_on_the_step_is_charged_step_by_step(linear):
    post = _Phased(n_steps=5).fit(linear, seed=0)
    assert post.cost.grad_evals == 5 * 2 + 3 * 5  # counted rows, then the three even steps' declared passes
    assert post.cost.density_evals == 5 * 3 + 2 * 1


def test_only_laplace_declares_a_step_dependent_cost_so_the_others_cost_what_they_did():
    # the default uncounted_evals is uncounted_evals_per_step after every step, which is what fit charged
    # before the hook existed (test_fit_counts_without_the_method_seeing_a_counter)
    import approxpost.methods as methods

    classes = {obj for obj in vars(methods).values() if isinstance(obj, type) and issubclass(obj, Method)}
    overriding = {cls.__name__ for cls in classes if cls.uncounted_evals is not Method.uncounted_evals}
    assert overriding == {"Laplace"} and len(classes) >= 12


def test_the_user_model_is_left_uncounted_and_unchanged(linear):
    _Probe(n_steps=2).fit(linear, seed=0)
    assert "log_joint" not in vars(linear)  # fit wraps a copy, never the user's model


def test_a_method_without_a_start_refuses_init_and_is_initialised_with_none(linear):
    method = ap.ImportanceSampling(n_samples=100, batch_size=50)
    assert method.needs_start is False
    with pytest.raises(ValueError, match="init"):
        method.fit(linear, seed=0, init=np.zeros(linear.dim))
    state = method.init(linear, None, np.random.default_rng(0))
    assert state.n_particles == 0
    with pytest.raises(ValueError, match="position"):
        method.init(linear, np.zeros(linear.dim), np.random.default_rng(0))


def test_only_the_base_knows_the_counter():
    package = pathlib.Path(ap.__file__).parent
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "CostCounter" in p.read_text())
    assert users == ["methods/base.py"]
    estimators = (package / "estimators.py").read_text()
    assert "from .methods" not in estimators and "import methods" not in estimators


class _MixedInfo(NamedTuple):
    value: float
    accepted: bool
    n_steps: int
    per_chain: np.ndarray


def test_history_stacks_every_field_as_stacking_them_one_by_one_does():
    rng = np.random.default_rng(0)
    infos = [_MixedInfo(float(rng.standard_normal()), bool(i % 2), i, rng.standard_normal(3)) for i in range(7)]
    history = stack_infos(infos)
    for name in _MixedInfo._fields:
        plain = np.stack([np.asarray(getattr(info, name), dtype=np.float64) for info in infos])
        assert history[name].dtype == np.float64 and history[name].shape == plain.shape
        np.testing.assert_array_equal(history[name], plain)
    assert stack_infos([]) == {}
    with pytest.raises(ValueError):  # a field whose shape changes from step to step has no stacked form
        stack_infos([_MixedInfo(0.0, True, 0, np.zeros(3)), _MixedInfo(0.0, True, 0, np.zeros(2))])
