"""The registry of every public loss, with a way to make valid inputs.

``test_invariants.py`` runs the shared invariants over every case here, so a new
loss is covered as soon as its family module in ``tests/cases/`` lists it. A
case builds inputs for a batch shape ``batch``: the loss with
``reduction="none"`` returns an array of shape ``batch`` (elementwise losses
have inputs of that shape; losses over a class or feature axis add trailing
axes), or ``batch`` followed by a set axis for losses that score every item of
a set against the others (``ntxent``).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np

Args = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Option:
  """A numeric option of a loss, for the traced-option invariants.

  Attributes:
    value: a valid value (the tests pass it as a Python number, a 0-d array and
      a tracer, and vmap over values near it).
    invalid: a value ``jl.checked`` must reject when traced (NaN is always tried).
    differentiable: ``jax.grad`` with respect to the option must match central
      finite differences at ``value``.
    spread: the values the vmap and cache checks use are ``value * (1 + spread * k)``.
  """

  value: float
  invalid: float | None = None
  differentiable: bool = True
  spread: float = 0.1


@dataclasses.dataclass(frozen=True)
class Case:
  """One loss with one set of options.

  Attributes:
    name: test id, ``"<loss>"`` or ``"<loss>-<options>"``.
    fn: the public loss.
    make: ``make(rng, batch) -> args``, valid positional inputs (NumPy, float64
      for real-valued arrays) whose per-example loss has shape ``batch``, away
      from kinks.
    kwargs: options passed with every call.
    array_kwargs: ``array_kwargs(rng, batch) -> dict`` of keyword arrays with a
      leading batch shape (sliced and vmapped with the positional ones).
    diff: indices of the positional arguments the tests differentiate.
    extremes: ``extremes(rng, batch) -> [args, ...]``: inputs at the edges of
      the domain (1e4, 1e-30, exact kinks) where value and gradient must be
      finite.
    where_on_inputs: ``where`` and ``weights`` broadcast to the inputs rather
      than to the per-example loss (``rmse``).
    count_weights: ``count_weights(args) -> array`` of the per-example factors the
      weighted mean also divides by (torch's class weights of the targets, 0 for
      ignored ones), or None: the mean is ``sum(w * l) / sum(w * count_weights)``.
    where_on_items: ``where`` masks items of the first input (list items of a
      ranking loss) while ``weights`` still broadcast to the per-example loss.
    items: the positional input whose shape ``where`` has when
      ``where_on_items`` (0: the scores of a ranking list; 1: the labels
      ``[..., N]`` of a set of class scores ``[..., N, C]``).
    separable: masking one entry of the per-example loss leaves the others
      unchanged. False when ``where`` removes items from a set the loss is
      computed over (ranking lists, the batch of ``ntxent``): the weighted mean
      is then checked with weights alone.
    forward_mode: the loss supports forward-mode autodiff (``jvp``,
      ``jacfwd``, ``hessian``). False for a ``jax.custom_vjp`` loss: the tests
      then check reverse-mode gradients only (first order; Hessians as
      ``jacrev(jacrev)``) and assert that ``jax.jvp`` raises.
    shared: indices of positional arguments shared by every example (a weight
      matrix): they have no batch axes, so the tests neither slice, vmap nor
      mask them, and compare their gradients whole.
    options: ``{name: Option}``, every numeric option of the loss (declared on
      one case per loss; ``test_api`` checks that each loss declares all of its
      own): the traced-option invariants run over them.
  """

  name: str
  fn: Callable[..., Any]
  make: Callable[[np.random.Generator, tuple[int, ...]], Args]
  extremes: Callable[[np.random.Generator, tuple[int, ...]], list[Args]]
  kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  array_kwargs: Callable[[np.random.Generator, tuple[int, ...]], dict[str, Any]] | None = None
  diff: tuple[int, ...] = (0,)
  where_on_inputs: bool = False
  count_weights: Callable[[Args], Any] | None = None
  where_on_items: bool = False
  items: int = 0
  separable: bool = True
  forward_mode: bool = True
  shared: tuple[int, ...] = ()
  options: dict[str, Option] = dataclasses.field(default_factory=dict)

  def __str__(self) -> str:
    return self.name


def all_cases() -> list[Case]:
  """Every case of every family module in ``tests/cases``."""
  import cases

  out = []
  for info in sorted(pkgutil.iter_modules(cases.__path__), key=lambda i: i.name):
    module = importlib.import_module(f"cases.{info.name}")
    out.extend(module.CASES)
  return out


def numeric_grad(f, x, step=1e-6):
  """Central differences of the NumPy reference ``f`` (a scalar) at ``x``, in float64: the tests' gradient reference."""
  x = np.asarray(x, np.float64)
  out = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += step
    down[index] -= step
    out[index] = (f(up) - f(down)) / (2 * step)
  return out
