"""The fast path: record a function's graph once per input shape, then replay it on arrays.

The plain engine (:mod:`~approxpost.autodiff.core`) rebuilds the graph on
every call: the user's Python runs again, every op makes a ``Var`` and its
VJP closures, and ``backward`` orders the nodes with a heap and a dict. On a
small model (a linear regression with D = 11) that bookkeeping costs several
times the arithmetic. A :class:`Tape` records, on a first call, which
primitive ran on which operands; replaying it for a new input of the same
shape calls the same primitives in the same order, on the same constants,
and walks the recorded list backwards, numbered slots in place of the heap.
Values and gradients are those of the plain engine, bit for bit: the same
NumPy calls run in the same order.

A :func:`split_primitive` (the fused layer, the Gaussian log density, and a
regression's whole log joint: :mod:`~approxpost.autodiff.fused`) replays without any ``Var`` at all: it
is written as a forward pass on arrays that returns what its backward pass
needs, and both are specialised to the recorded shapes once, when the tape
is made. Any other primitive replays on ``Var`` s around the slots' arrays.

Replaying is only right for a function whose graph depends on its input's
**shape** alone: a branch on ``theta.value``, or NumPy work on it outside the
``ad`` ops, is frozen at the recorded input. So it is opt-in: a model sets
``replay_graph = True`` (``Regression``, ``LinearRegression`` and ``Classification`` do), and
``ad.vjp`` / ``ad.value_and_grad`` stay on the plain path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from .core import IndexedGrad, Var, add_gradient, leaf_gradient, parent_gradients

__all__ = ["Tape", "primitive", "split_primitive", "recording"]

# the tape under construction: a list of (op, args, kwargs, output) while recording, else None
_records: list | None = None


def recording() -> list | None:
    """The list primitives append ``(op, args, kwargs, output)`` to while a tape records, else ``None``."""
    return _records


def primitive(op: Callable) -> Callable:
    """Make ``op`` recordable: each call that returns a ``Var`` is noted on the tape being recorded.

    Every op in :mod:`~approxpost.autodiff.ops` is one; an op defined
    elsewhere must be too (and make its node from its operands directly, as
    those do), or a tape of a graph using it is incomplete and the model
    falls back to the plain graph. The undecorated op stays
    reachable as ``.raw``: a replay calls that, so it records nothing.
    """

    @functools.wraps(op)
    def recorded(*args, **kwargs):
        global _records
        if _records is None:
            return op(*args, **kwargs)
        # the primitives an op calls inside are not steps: its node's parents then are not its operands,
        # so the tape is marked incomplete rather than replaying a gradient that skips them
        records, _records = _records, None
        try:
            out = op(*args, **kwargs)
        finally:
            _records = records
        if type(out) is Var:
            records.append((op, args, kwargs, out))
        return out

    recorded.raw = op
    return recorded


def split_primitive(n_operands: int) -> Callable:
    """Make a recordable op from ``make(needs, *args) -> (forward, backward)``, which the tape replays on arrays.

    The first ``n_operands`` arguments are the operands (``Var`` s or
    constants), the rest settings. ``make`` gets ``needs`` (which operands
    want a gradient) and every argument as a value, and returns
    ``forward(*operand_values) -> (value, saved)`` and
    ``backward(saved, g) -> one gradient per operand`` (``None`` where not
    needed; ``backward`` itself may be ``None`` when none is), the two halves
    of the op specialised to these shapes. Called
    with ``Var`` s, the op makes a node whose one joint VJP is ``backward``;
    a :class:`Tape` calls ``make`` once, at recording, and replays the halves.
    """

    def decorate(make: Callable) -> Callable:
        @functools.wraps(make)
        def op(*args, **kwargs):
            operands, needs, values, parents = args[:n_operands], [], [], []
            for a in operands:
                is_var = type(a) is Var
                needs.append(is_var)
                values.append(a.value if is_var else a)
                if is_var:
                    parents.append(a)
            forward, backward = make(tuple(needs), *values, *args[n_operands:], **kwargs)
            value, saved = forward(*values)
            if not parents:
                return value
            return Var(value, tuple(parents), lambda g: [c for c, need in zip(backward(saved, g), needs) if need])

        op.make, op.n_operands = make, n_operands
        return primitive(op)

    return decorate


class _Slot:
    """Stands in a recorded argument list for the node numbered ``index`` (0 is the input)."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _made_before(x, leaf: Var) -> bool:
    """Whether ``x`` is no ``Var`` made while recording: a constant, or a ``Var`` older than the input."""
    return type(x) is not Var or x.order < leaf.order


def _on_vars(op: Callable, kwargs: dict, fills: list) -> Callable:
    """A replay ``forward`` for an op that is not split: wrap its filled operands in ``Var`` s, return (value, node)."""

    def forward(*args):
        args = list(args)
        for i, j, _ in fills:  # the node of an earlier step on Vars is passed as it is
            if j is None:
                args[i] = args[i] if type(args[i]) is Var else Var(args[i])
            else:
                args[i][j] = args[i][j] if type(args[i][j]) is Var else Var(args[i][j])
        node = op(*args, **kwargs)
        return node.value, node

    return forward


def _node_vjps(node: Var, g) -> list:
    return parent_gradients(node.vjps, g)


def _no_gradient(saved, g) -> tuple:
    """The backward of a split step none of whose operands comes from the input (its ``make`` gave ``None``)."""
    return ()


class Tape:
    """The graph of ``f`` recorded at one input shape, replayable at any input of that shape.

    Parameters
    ----------
    f
        A function of one array written with :mod:`approxpost.autodiff` ops
        whose graph depends on the shape of its input only.
    x
        An example input: it fixes the shape the tape replays.

    Notes
    -----
    Each step holds the primitive, a replay ``forward``, its arguments with
    the nodes replaced by numbered slots (constants kept as they were), and
    whether it runs on ``Var`` s (an op that is not split); ``parents`` holds
    the slot of each operand its ``backward`` returns a gradient for.
    Replaying runs the forwards on the slots' arrays, and the backward pass
    visits steps in reverse order, which is a reverse topological order
    because a step's operands were made before it.
    """

    def __init__(self, f: Callable, x):
        global _records
        leaf = Var(np.array(x, dtype=np.float64, copy=True))
        outer, _records = _records, []
        try:
            out = f(leaf)
            records = _records
        finally:
            _records = outer
        self.shape = leaf.shape
        slot_of = {id(leaf): 0}
        self.steps, self.backwards, self.parents = [], [None], [None]
        # a parent made after the input but by no recorded step (an op not decorated with ``primitive``,
        # or the inside of one built from others) would be replayed as a constant: never use such a tape
        self.complete = True
        for op, args, kwargs, node in records:
            raw = getattr(op, "raw", op)
            self.complete &= all(_made_before(p, leaf) or id(p) in slot_of for p in node.parents)
            if hasattr(raw, "make"):  # split: specialised now; a Var made before the input is a constant
                operands = args[: raw.n_operands]
                needs = tuple(type(a) is Var and id(a) in slot_of for a in operands)
                values = [a.value if type(a) is Var else a for a in args]
                forward, backward = raw.make(needs, *values, **kwargs)
                backward = backward or _no_gradient
                fills = [(i, None, slot_of[id(a)]) for i, (a, need) in enumerate(zip(operands, needs)) if need]
                template, parents = values[: raw.n_operands], tuple(slot_of.get(id(a)) for a in operands)
                parents = tuple(p if need else None for p, need in zip(parents, needs))
            else:
                fills, template = [], list(args)
                for i, arg in enumerate(args):
                    if type(arg) is Var and id(arg) in slot_of:
                        template[i] = _Slot(slot_of[id(arg)])
                        fills.append((i, None, slot_of[id(arg)]))
                    elif type(arg) in (list, tuple) and any(type(a) is Var for a in arg):  # concatenate, stack
                        template[i] = list(arg)
                        fills += [
                            (i, j, slot_of[id(a)]) for j, a in enumerate(arg) if type(a) is Var and id(a) in slot_of
                        ]
                forward, backward = _on_vars(raw, kwargs, fills), _node_vjps
                parents = tuple(slot_of.get(id(p)) for p in node.parents)
            slot_of[id(node)] = len(self.steps) + 1
            self.steps.append((raw, forward, template, fills, backward is _node_vjps))
            self.backwards.append(backward)
            self.parents.append(parents)
        # an output not built from the input (a constant, or a Var made apart from it) has a zero gradient
        self.out_slot = slot_of.get(id(out)) if type(out) is Var else None
        self.complete &= _made_before(out, leaf) or self.out_slot is not None
        self.constant = None if self.out_slot is not None else np.asarray(getattr(out, "value", out), dtype=np.float64)
        self.out_shape = np.shape(getattr(out, "value", out))
        self.ones = np.ones(self.out_shape)  # value_and_grad's seed, made once: a backward pass never writes to it
        self.ones.flags.writeable = False

    def forward(self, x: np.ndarray) -> tuple:
        """``(values, saved)``: every slot's array for input ``x``, and what each step's backward needs."""
        values, saved = [x], [None]
        for _, forward, template, fills, on_vars in self.steps:
            args = template.copy()
            for i, j, slot in fills:
                # an op on Vars takes an earlier such step's node (what it saved) rather than a new Var of its value
                operand = saved[slot] if on_vars and type(saved[slot]) is Var else values[slot]
                if j is None:
                    args[i] = operand
                else:  # a list of operands: fill a copy, the template stays as recorded
                    if args[i] is template[i]:
                        args[i] = list(args[i])
                    args[i][j] = operand
            value, kept = forward(*args)
            values.append(value)
            saved.append(kept)
        return values, saved

    def backward(self, values: list, saved: list, g) -> np.ndarray:
        """The gradient of ``sum(g * f(x))`` with respect to x, from what :meth:`forward` returned."""
        g, out_shape = np.asarray(g, dtype=np.float64), np.shape(values[self.out_slot])
        return self._backward(saved, g if g.shape == out_shape else np.broadcast_to(g, out_shape))

    def _backward(self, saved: list, g: np.ndarray) -> np.ndarray:
        """:meth:`backward` for a ``g`` already shaped like the output."""
        grads, owned = {self.out_slot: g}, set()
        parents, backwards = self.parents, self.backwards
        for k in range(self.out_slot, 0, -1):
            g_k = grads.pop(k, None)
            if g_k is None:  # not on a path to the output
                continue
            for slot, contribution in zip(parents[k], backwards[k](saved[k], g_k)):
                if slot is None:
                    continue
                if slot in grads or type(contribution) is IndexedGrad:
                    add_gradient(grads, owned, slot, contribution)
                else:  # the first arrival, as add_gradient would store it, without the call
                    grads[slot] = contribution
        return leaf_gradient(grads, owned, 0, self.shape)

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if not self.complete:
            raise ValueError("this tape is incomplete: the function uses an op not decorated with ad.primitive")
        if x.shape != self.shape:
            raise ValueError(f"this tape was recorded for inputs of shape {self.shape}, got shape {x.shape}")
        return x

    def value(self, x) -> np.ndarray:
        """f(x) from the recorded forward steps alone (``x`` is not copied: nothing of it is kept)."""
        x = self._check(x)
        return self.constant if self.out_slot is None else self.forward(x)[0][self.out_slot]

    def vjp(self, x) -> tuple:
        """``(f(x), pullback)`` like :func:`~approxpost.autodiff.core.vjp`, from the recorded graph."""
        x = self._check(x)
        if self.out_slot is None:
            return self.constant, lambda g: np.zeros(self.shape)
        # a copy: the steps keep views of x until the pullback runs, which may be after the caller changes x
        values, saved = self.forward(np.array(x, dtype=np.float64, copy=True))
        return values[self.out_slot], lambda g: self.backward(values, saved, g)

    def value_and_grad(self, x) -> tuple:
        """``(f(x), ∇_x Σ f(x))``: :meth:`vjp` seeded with ones, the call a model's ``log_joint_and_grad`` makes.

        ``x`` is not copied: the backward pass runs before this returns.
        """
        x = self._check(x)
        if self.out_slot is None:
            return self.constant, np.zeros(self.shape)
        values, saved = self.forward(x)
        return values[self.out_slot], self._backward(saved, self.ones)
