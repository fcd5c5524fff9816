"""Small ``jax.custom_jvp`` primitives with deliberate derivatives at kinks and edges.

jaxloss's convention is the minimum-norm subgradient: where 0 is in the
subdifferential, the derivative is exactly 0. ``jnp.abs`` gives +1 at 0 and
``jnp.maximum`` splits a tie 0.5/0.5; neither is a choice a loss should inherit.
custom_jvp (not custom_vjp) keeps forward mode, so ``jax.jvp``, ``jax.jacfwd``
and ``jax.hessian`` work through every primitive here.

The ReLU/hinge kink needs no primitive of its own: ``jax.nn.relu`` already has
derivative 0 at 0 (Bertoin et al., "Numerical influence of ReLU'(0) on
backpropagation", NeurIPS 2021), and jaxloss uses it for every ``max(0, x)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.custom_jvp
def abs(x: jax.Array) -> jax.Array:  # noqa: A001 - the module namespace is the point
  """``|x|`` with derivative ``sign(x)``: exactly 0 at ``x == 0`` (jnp.abs gives 1)."""
  return jnp.abs(x)


@abs.defjvp
def _abs_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return jnp.abs(x), jnp.sign(x) * t


@jax.custom_jvp
def sqrt(x: jax.Array) -> jax.Array:
  """``sqrt(x)`` for ``x >= 0`` with derivative 0 at ``x == 0`` instead of inf.

  Used where ``x`` is a sum of squares: ``sqrt(sum(e**2))`` is a norm, whose
  subdifferential at ``e == 0`` is the unit ball with minimum-norm element 0.
  """
  return jnp.sqrt(x)


@sqrt.defjvp
def _sqrt_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = jnp.sqrt(x)
  positive = x > 0
  return y, jnp.where(positive, t / (2 * jnp.where(positive, y, 1)), jnp.zeros_like(t))


def safe_log(x: jax.Array) -> jax.Array:
  """``log(x)`` for ``x >= 0``: -inf at 0 with a zero (not NaN) derivative there.

  The "double where": 0 never reaches ``log``, so ``0 * log(0)`` terms masked
  with ``jnp.where(x > 0, ..., 0)`` have a finite gradient.
  """
  positive = x > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, x, 1)), -jnp.inf)


@jax.custom_jvp
def divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator`` whose derivatives never square the denominator.

  The quotient rule is written ``(dn - q dd) / d`` with ``q = n / d``, rather
  than ``dn / d - n dd / d**2``: a tiny denominator (1e-29 in float32) whose
  square underflows to 0 gives finite derivatives of every order instead of
  ``0 / 0``.
  """
  return numerator / denominator


@divide.defjvp
def _divide_jvp(primals, tangents):
  (n, d), (dn, dd) = primals, tangents
  q = divide(n, d)
  return q, divide(dn - q * dd, d)


@jax.custom_jvp
def max(x: jax.Array) -> jax.Array:  # noqa: A001 - the module namespace is the point
  """``max`` over the last axis whose derivative averages over tied maximisers.

  The subdifferential of ``max`` at a tie is the convex hull of the tied unit
  vectors; their average is its minimum-norm element. (``jnp.max`` averages
  today, but jaxloss does not leave a tie to it.)
  """
  return jnp.max(x, axis=-1)


@max.defjvp
def _max_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = jnp.max(x, axis=-1)
  ties = x == y[..., None]
  count = jnp.sum(ties, axis=-1).astype(t.dtype)
  return y, jnp.sum(jnp.where(ties, t, 0), axis=-1) / count


_LOG2 = float(np.log(2.0))


@jax.custom_jvp
def log_cosh(x: jax.Array) -> jax.Array:
  """``log(cosh(x))`` without overflow for large ``|x|`` or cancellation near 0.

  With ``u = expm1(-|x|)``: near 0 it is ``log1p(u**2 / (2 (1 + u)))``, since
  ``cosh(x) - 1 = u**2 / (2 (1 + u))`` (accurate where ``log(cosh(x))`` rounds
  to 0); elsewhere ``|x| - log 2 + log1p((1 + u)**2)``, since
  ``exp(-2|x|) = (1 + u)**2``. One expm1 and one log1p serve both branches
  (about 2x faster on CPU than evaluating each branch's own). The derivative is
  ``tanh(x)`` and the second derivative ``1 - tanh(x)**2``, including at 0.
  """
  a = jnp.abs(x)
  u = jnp.expm1(-a)
  small = a < 1
  # Far out 1 + u underflows to 0 and the unselected near-zero argument is inf, never NaN.
  argument = jnp.where(small, u * u / (2 * (1 + u)), (1 + u) * (1 + u))
  return jnp.log1p(argument) + jnp.where(small, 0, a - _LOG2)


@log_cosh.defjvp
def _log_cosh_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return log_cosh(x), jnp.tanh(x) * t
