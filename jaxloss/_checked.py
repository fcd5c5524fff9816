"""``checked``: run any loss with its runtime checks switched on."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from jax.experimental import checkify

from jaxloss import _checks

P = ParamSpec("P")
R = TypeVar("R")


def checked(
  loss: Callable[P, R], *, errors: frozenset[checkify.ErrorCategory] = checkify.user_checks
) -> Callable[P, R]:
  """Wrap a loss so that invalid values raise instead of flowing on.

  Every jaxloss loss states runtime checks that cost nothing in normal use
  (they are ``checkify.debug_check`` calls, staged into a loss only while
  ``checked`` traces it, so ordinary calls keep JAX's fast dispatch): NaN in an
  (unmasked) input, and values outside the loss's domain, such as
  ``predictions <= -1`` for :func:`msle`, a negative ``variance`` for
  :func:`gaussian_nll`, labels out of range or probabilities outside [0, 1].
  ``checked(loss)`` runs the loss under ``jax.experimental.checkify`` and raises
  ``checkify.JaxRuntimeError`` naming the loss, the argument and the offending
  value. Use it while debugging, outside of ``jax.jit``. ``loss`` may also be
  your own function that calls jaxloss losses; pass it un-jitted (a function
  already compiled by your own ``jax.jit`` keeps the trace it cached without
  the checks).

  Args:
    loss: any jaxloss loss (or a function that calls some).
    errors: the checkify error set; ``checkify.user_checks`` (default) runs the
      loss's own checks, ``checkify.all_checks`` adds NaN-producing operations,
      division by zero and out-of-bounds indexing anywhere in the computation.

  Returns:
    A function with the loss's signature that returns the same value.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> try:
    ...   jl.checked(jl.msle)(jnp.array([-2.0]), jnp.array([1.0]))
    ... except Exception as e:
    ...   print(str(e).splitlines()[0])
    jaxloss.msle: `predictions` must be > -1, found -2.0. (`check` failed)
  """

  @functools.wraps(loss)
  def run(*args: P.args, **kwargs: P.kwargs) -> R:
    token = _checks.CHECKING.set(True)  # jaxloss losses traced from here on stage their checks
    try:
      err, out = checkify.checkify(functools.partial(loss, **kwargs), errors=errors)(*args)
    finally:
      _checks.CHECKING.reset(token)
    err.throw()
    return out

  return run
