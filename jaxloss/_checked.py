"""``checked``: run any loss with its runtime checks switched on."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
from jax.experimental import checkify


def checked(loss: Callable[..., jax.Array], *, errors=checkify.user_checks) -> Callable[..., jax.Array]:
  """Wrap a loss so that invalid values raise instead of flowing on.

  Every jaxloss loss states runtime checks that cost nothing in normal use
  (they are ``checkify.debug_check`` calls, removed by XLA): NaN in an
  (unmasked) input, and values outside the loss's domain, such as
  ``predictions <= -1`` for :func:`msle`, a negative ``variance`` for
  :func:`gaussian_nll`, labels out of range or probabilities outside [0, 1].
  ``checked(loss)`` runs the loss under ``jax.experimental.checkify`` and raises
  ``checkify.JaxRuntimeError`` naming the loss, the argument and the offending
  value. Use it while debugging, outside of ``jax.jit``; inside a jitted
  function, use ``checkify.checkify`` around that function instead.

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
  def run(*args, **kwargs):
    err, out = checkify.checkify(functools.partial(loss, **kwargs), errors=errors)(*args)
    err.throw()
    return out

  return run
