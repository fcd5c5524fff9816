"""Divergences between discrete probability distributions.

Each example is a distribution over the last axis (or ``axis=``): inputs have
shape ``[..., C, ...]`` and ``reduction="none"`` returns one divergence per
example, the shape of the inputs without ``axis``. ``weights`` and ``where``
broadcast to that shape. Inputs are computed in float32 at least (float16 and
bfloat16 are promoted, the result is float32). Natural logarithms throughout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _inputs, _reduce
from jaxloss._api import Static, loss

_LOG2 = float(np.log(2.0))


def _distributions(names: tuple[str, str], first, second, axis: int, where, *, second_floating: bool):
  """Two arrays of the same shape, distribution axis moved last, promoted and masked; and the mask."""
  a = _checks.floating(names[0], first)
  if a.ndim == 0:
    raise ValueError(f"{_checks.name()}: `{names[0]}` must have a distribution axis, got a scalar.")
  axis = _checks.axis_index(axis, a.ndim)
  a, b, mask = _inputs.prepare(
    (names[0], a, "floating"), (names[1], second, "floating" if second_floating else "real"), where=where, axes=axis
  )
  return jnp.moveaxis(a, axis, -1), jnp.moveaxis(b, axis, -1), mask


def _check_log_probabilities(**arrays: jax.Array) -> None:
  for name, x in arrays.items():
    _checks.debug_values(name, x, x <= 0, "a log-probability, <= 0")


def _relative_entropy_terms(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """``p (log p - log q)`` elementwise, exactly 0 (with a zero gradient) where ``p = 0``; NaN ``log p`` gives NaN."""
  absent = log_p == -jnp.inf  # not `log_p > -inf`: that is False for NaN, which would silently count as p = 0
  log_p = jnp.where(absent, 0, log_p)
  log_q = jnp.where(absent, 0, log_q)
  return jnp.where(absent, 0, jnp.exp(log_p) * (log_p - log_q))


def _target_entropy_terms(p: jax.Array, log_q: jax.Array) -> jax.Array:
  """:func:`_relative_entropy_terms` from ``p`` itself (xlogy-style): no ``exp(log p)`` round trip.

  The double where keeps ``p = 0`` away from ``log`` and ``log q = -inf`` away
  from the product, so those classes are exactly 0 with a zero gradient for both.
  A negative or NaN ``p`` reaches ``log`` and gives NaN, as torch's ``xlogy``.
  """
  absent = p == 0
  safe_p = jnp.where(absent, 1, p)
  return jnp.where(absent, 0, safe_p * (jnp.log(safe_p) - jnp.where(absent, 0, log_q)))


@loss
def kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  *,
  log_targets: Static[bool] = False,
  axis: Static[int] = -1,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Kullback-Leibler divergence ``KL(p || q)`` of the predictions ``q`` from the targets ``p``.

  .. math::
    \ell_i = \sum_c p_{ic} \big(\log p_{ic} - \log q_{ic}\big), \qquad 0 \log 0 = 0

  Args:
    log_predictions: floating ``[..., C]``, log-probabilities ``log q``.
    targets: the target distribution ``p`` (in ``[0, 1]``), or ``log p`` if
      ``log_targets``; same shape.
    log_targets: whether ``targets`` are log-probabilities.
    axis: the distribution axis (default the last).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to the shape without
      ``axis``.
    where: optional per-example boolean mask, broadcastable likewise.

  Returns:
    A scalar, or the shape without ``axis`` for ``reduction="none"``; float32
    for half inputs.

  Edges: a class with ``p = 0`` (``log p = -inf``) contributes exactly 0, even
  where ``log q = -inf`` (torch: NaN), with a zero gradient for both arguments
  (the one-sided derivative in ``p`` is -inf at 0; jaxloss returns 0, never
  NaN). Where ``p > 0`` and ``log q = -inf`` the value is +inf and the gradient
  with respect to ``log q`` is the finite ``-p``. A NaN or negative target (a
  NaN log-target) gives NaN, as in torch, never a silently dropped class;
  :func:`jaxloss.checked` reports it. With ``reduction="mean"`` this is torch's
  ``kl_div(log_predictions, targets, reduction="batchmean")`` for 2-d inputs
  (torch divides by the first dimension only; here by the number of examples).
  Also ``optax.losses.kl_divergence`` per example.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> p = jnp.array([[0.5, 0.5, 0.0]])
    >>> print(jl.kl_divergence(jnp.log(jnp.array([[0.25, 0.25, 0.5]])), p))
    0.6931472
    >>> print(jl.kl_divergence(jnp.log(jnp.array([[0.5, 0.5, 0.0]])), p))
    0.0
  """
  log_q, t, mask = _distributions(
    ("log_predictions", "targets"), log_predictions, targets, axis, where, second_floating=log_targets
  )
  if log_targets:
    _check_log_probabilities(log_predictions=log_q, targets=t)
  else:
    _check_log_probabilities(log_predictions=log_q)
    _checks.debug_probabilities(targets=t)
  terms = _relative_entropy_terms(t, log_q) if log_targets else _target_entropy_terms(t, log_q)
  loss = jnp.sum(terms, axis=-1)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def js_divergence(
  log_p: ArrayLike,
  log_q: ArrayLike,
  *,
  axis: Static[int] = -1,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Jensen-Shannon divergence, the symmetrised and bounded KL divergence.

  .. math::
    \ell_i = \tfrac12 \mathrm{KL}(p_i \,\|\, m_i) + \tfrac12 \mathrm{KL}(q_i \,\|\, m_i),
    \qquad m_i = \tfrac12 (p_i + q_i)

  Args:
    log_p: floating ``[..., C]``, log-probabilities of the first distribution.
    log_q: floating, same shape, log-probabilities of the second.
    axis: the distribution axis (default the last).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional per-example weights broadcastable to the shape without
      ``axis``.
    where: optional per-example boolean mask, broadcastable likewise.

  Returns:
    A scalar, or the shape without ``axis`` for ``reduction="none"``, in
    ``[0, log 2]``; float32 for half inputs.

  Symmetric in its arguments and finite everywhere: ``m`` is computed as
  ``logaddexp(log p, log q) - log 2``, a class where either probability is 0
  contributes only through the other, and a class where both are 0 contributes
  exactly 0 with a zero gradient. Value, gradient and Hessian are finite for
  -inf log-probabilities. Reference: Lin, "Divergence Measures Based on the
  Shannon Entropy", IEEE Trans. Inf. Theory 1991.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> print(jl.js_divergence(jnp.log(jnp.array([1.0, 0.0])), jnp.log(jnp.array([0.0, 1.0]))))
    0.6931472
  """
  lp, lq, mask = _distributions(("log_p", "log_q"), log_p, log_q, axis, where, second_floating=True)
  _check_log_probabilities(log_p=lp, log_q=lq)
  absent = (lp == -jnp.inf) & (lq == -jnp.inf)
  lp, lq = jnp.where(absent, 0, lp), jnp.where(absent, 0, lq)
  log_m = jnp.logaddexp(lp, lq) - _LOG2
  terms = _relative_entropy_terms(lp, log_m) + _relative_entropy_terms(lq, log_m)
  loss = 0.5 * jnp.sum(jnp.where(absent, 0, terms), axis=-1)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)
